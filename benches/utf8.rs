//! UTF-8 validation throughput: `Utf8Validator::feed` (+ `finish`) on a whole text and
//! on the same text fed in 1 KiB pieces (code points split between pieces), next to
//! `std::str::from_utf8` of the same bytes; ASCII and mixed multibyte text, 1 KiB and
//! 64 KiB.
//!
//! Run with `cargo bench --bench utf8`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use websocket_driver::proto::Utf8Validator;

const SIZES: [usize; 2] = [1024, 64 * 1024];
const PIECE: usize = 1024;

/// `len` bytes of valid UTF-8 made by repeating `sample`, padded with ASCII at the end.
fn text(sample: &str, len: usize) -> Vec<u8> {
    let mut s = String::with_capacity(len + 4);
    'fill: loop {
        for ch in sample.chars() {
            if s.len() + ch.len_utf8() > len {
                break 'fill;
            }
            s.push(ch);
        }
    }
    while s.len() < len {
        s.push('.');
    }
    s.into_bytes()
}

/// ASCII, and text mixing 1-, 2-, 3- and 4-byte code points (about 2.2 bytes each).
fn samples() -> [(&'static str, &'static str); 2] {
    [
        (
            "ascii",
            "The quick brown fox jumps over the lazy dog; 0123456789 {\"k\": [1, 2]}\n",
        ),
        (
            "mixed",
            "κόσμε Grüße, 世界! €100 — naïve café 😀🚀 Привет, мир. مرحبا 你好 ü ß ¥ 🎉\n",
        ),
    ]
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (kind, sample) in samples() {
        for &size in &SIZES {
            let data = text(sample, size);
            assert_eq!(data.len(), size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{kind}/feed"), size),
                &data,
                |b, data| {
                    b.iter(|| {
                        let mut v = Utf8Validator::new();
                        v.feed(black_box(data)).unwrap();
                        v.finish().unwrap();
                    })
                },
            );
            if size > PIECE {
                group.bench_with_input(
                    BenchmarkId::new(format!("{kind}/feed_1k_pieces"), size),
                    &data,
                    |b, data| {
                        b.iter(|| {
                            let mut v = Utf8Validator::new();
                            for piece in black_box(data).chunks(PIECE) {
                                v.feed(piece).unwrap();
                            }
                            v.finish().unwrap();
                        })
                    },
                );
            }
            group.bench_with_input(
                BenchmarkId::new(format!("{kind}/std_from_utf8"), size),
                &data,
                |b, data| b.iter(|| std::str::from_utf8(black_box(data)).is_ok()),
            );
        }
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
    targets = utf8
}
criterion_main!(benches);
