//! Masking throughput: `apply_mask` next to the byte-at-a-time reference and next to a
//! plain copy of the same buffer, so that the ratio mask / memcpy can be read off one run.
//!
//! The project's target: masking 64 KiB runs at no less than half the speed of copying
//! 64 KiB (`mask/apply_mask/65536` median time <= 2 x `mask/memcpy/65536`).
//!
//! `apply_mask` and `memcpy` work on 16-byte aligned buffers (fresh `Vec`s);
//! `apply_mask_unaligned` masks the same length starting 14 bytes into an allocation,
//! where the payload of a masked frame with a 64-bit length sits after its header.
//!
//! Run with `cargo bench --bench mask`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use websocket_driver::proto::{apply_mask, apply_mask_scalar};

const SIZES: [usize; 4] = [16, 1024, 64 * 1024, 1024 * 1024];
const MASK: [u8; 4] = [0x6d, 0xb6, 0xb2, 0x80];
/// Where the payload of a masked frame with a 64-bit length starts: after 14 bytes.
const UNALIGNED: usize = 14;

fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(7))
        .collect()
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for &size in &SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = payload(size);
        group.bench_with_input(BenchmarkId::new("apply_mask", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf[..]), black_box(MASK), black_box(0)))
        });
        group.bench_with_input(
            BenchmarkId::new("apply_mask_scalar", size),
            &size,
            |b, _| {
                b.iter(|| apply_mask_scalar(black_box(&mut buf[..]), black_box(MASK), black_box(0)))
            },
        );
        let mut unaligned = payload(size + UNALIGNED);
        group.bench_with_input(
            BenchmarkId::new("apply_mask_unaligned", size),
            &size,
            |b, _| {
                b.iter(|| {
                    apply_mask(
                        black_box(&mut unaligned[UNALIGNED..]),
                        black_box(MASK),
                        black_box(0),
                    )
                })
            },
        );
        let src = payload(size);
        let mut dst = vec![0u8; size];
        group.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                black_box(&mut dst[..]).copy_from_slice(black_box(&src[..]));
            })
        });
        black_box((&buf, &unaligned, &dst));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = mask
}
criterion_main!(benches);
