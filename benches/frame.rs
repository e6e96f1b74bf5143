//! Frame decode and encode rates for 20-byte and 1 KiB binary frames.
//!
//! - `decode/connection/N`: a server `Connection` (opened) receives one buffer of
//!   `FRAMES` masked frames of N bytes and every event is drained; throughput is in
//!   frames (elements).
//! - `decode/header/N`: `FrameHeader::decode` alone, on the header of such a frame.
//! - `encode/server/N`, `encode/client/N`: `Connection::send_binary` of N bytes and
//!   `take_output`, unmasked (server) and masked with a fresh key (client); one frame
//!   per iteration.
//! - `encode/header/N`: `FrameHeader::encode` alone.
//!
//! Run with `cargo bench --bench frame`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use websocket_driver::{
    proto::{apply_mask, Connection, Event, FrameHeader, OpCode, Role, MAX_HEADER_LEN},
    ProtocolSettings,
};

const SIZES: [usize; 2] = [20, 1024];
/// Frames per buffer fed to `Connection::receive`.
const FRAMES: usize = 256;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(1))
        .collect()
}

/// One masked binary frame of `len` bytes, as a client sends it.
fn masked_frame(len: usize) -> Vec<u8> {
    let header = FrameHeader {
        mask: Some(MASK),
        ..FrameHeader::new(OpCode::Binary, len as u64)
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut frame = head[..n].to_vec();
    let start = frame.len();
    frame.extend_from_slice(&payload(len));
    apply_mask(&mut frame[start..], MASK, 0);
    frame
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for &size in &SIZES {
        let frame = masked_frame(size);
        let stream = frame.repeat(FRAMES);

        group.throughput(Throughput::Elements(FRAMES as u64));
        let mut conn = Connection::new(Role::Server, ProtocolSettings::default());
        conn.open();
        assert!(matches!(conn.poll_event(), Some(Event::Open)));
        group.bench_with_input(
            BenchmarkId::new("connection", size),
            &stream,
            |b, stream| {
                b.iter(|| {
                    conn.receive(black_box(stream));
                    let mut messages = 0;
                    while let Some(event) = conn.poll_event() {
                        if let Event::Message(m) = event {
                            black_box(&m);
                            messages += 1;
                        }
                    }
                    assert_eq!(messages, FRAMES);
                })
            },
        );

        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("header", size), &frame, |b, frame| {
            b.iter(|| FrameHeader::decode(black_box(frame)))
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for &size in &SIZES {
        let data = payload(size);
        for (name, role) in [("server", Role::Server), ("client", Role::Client)] {
            let mut conn = Connection::new(role, ProtocolSettings::default());
            conn.open();
            group.bench_with_input(BenchmarkId::new(name, size), &data, |b, data| {
                b.iter(|| {
                    conn.send_binary(black_box(data)).unwrap();
                    black_box(conn.take_output())
                })
            });
        }

        let header = FrameHeader::new(OpCode::Binary, size as u64);
        group.bench_with_input(BenchmarkId::new("header", size), &header, |b, header| {
            let mut dst = [0u8; MAX_HEADER_LEN];
            b.iter(|| {
                let n = black_box(header).encode(&mut dst);
                black_box(&dst);
                n
            })
        });
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
    targets = decode, encode
}
criterion_main!(benches);
