//! permessage-deflate cost for 1 KiB JSON-like text messages: one message sent by a
//! server `Connection` and received by a client `Connection` per iteration (encode +
//! decode, the client's frames unmasked, UTF-8 checked), with and without
//! compression, and the compression ratio of each setting (printed to stderr once).
//!
//! - `deflate/plain`: no extension, the baseline.
//! - `deflate/takeover/L`: permessage-deflate at level L, context takeover both ways
//!   (windows 12, mem_level 5: the `DeflateSettings` defaults).
//! - `deflate/no_takeover/L`: `server_no_context_takeover` (a fresh compressor and
//!   inflater per message, allocated and freed each time).
//! - `deflate/prepared`: a `PreparedMessage` (compressed once) sent to a connection
//!   with `server_no_context_takeover`, and decoded: the per-connection cost of a
//!   broadcast.
//!
//! Run with `cargo bench --bench deflate`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use websocket_driver::{
    proto::{Connection, Deflate, DeflateParams, Event, Message, PreparedMessage, Role},
    DeflateSettings, ProtocolSettings,
};

/// Messages cycled through, so context takeover sees realistic (not identical)
/// messages.
const MESSAGES: usize = 64;

fn json_message(seed: u32) -> String {
    let mut s = String::with_capacity(1100);
    let mut i = seed.wrapping_mul(2_654_435_761);
    while s.len() < 1024 {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push_str(&format!(
            "{{\"id\":{},\"user\":\"user{}\",\"event\":\"{}\",\"ts\":{},\"ok\":{}}},",
            i % 1_000_000,
            (i >> 7) % 5000,
            ["join", "leave", "message", "typing", "presence"][(i >> 3) as usize % 5],
            1_700_000_000 + (i % 100_000),
            i.is_multiple_of(3)
        ));
    }
    s.truncate(1024);
    s
}

fn pair(deflate: Option<(DeflateParams, DeflateSettings)>) -> (Connection, Connection) {
    let mut server = Connection::new(Role::Server, ProtocolSettings::default());
    let mut client = Connection::new(Role::Client, ProtocolSettings::default());
    if let Some((params, config)) = deflate {
        server.set_extension(Box::new(Deflate::new(Role::Server, params, &config)));
        client.set_extension(Box::new(Deflate::new(Role::Client, params, &config)));
    }
    server.open();
    client.open();
    let _ = server.poll_event();
    let _ = client.poll_event();
    (server, client)
}

fn one(server: &mut Connection, client: &mut Connection, text: &str) -> usize {
    server.send_text(text).unwrap();
    let wire = server.take_output();
    client.receive(&wire);
    match client.poll_event() {
        Some(Event::Message(m)) => {
            black_box(m);
        }
        other => panic!("{other:?}"),
    }
    wire.len()
}

fn params(no_takeover: bool, config: &DeflateSettings) -> DeflateParams {
    let offer = if no_takeover {
        "permessage-deflate; server_no_context_takeover; client_max_window_bits"
    } else {
        "permessage-deflate; client_max_window_bits"
    };
    config.accept_offer(offer).unwrap()
}

fn bench(c: &mut Criterion) {
    let messages: Vec<String> = (0..MESSAGES as u32).map(json_message).collect();
    let mut group = c.benchmark_group("deflate");
    group.throughput(Throughput::Bytes(1024));
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));

    let mut cases: Vec<(String, Option<(DeflateParams, DeflateSettings)>)> =
        vec![("plain".into(), None)];
    for level in [1u8, 6, 9] {
        let config = DeflateSettings::on().level(level);
        cases.push((
            format!("takeover/{level}"),
            Some((params(false, &config), config)),
        ));
    }
    for level in [1u8, 6] {
        let config = DeflateSettings::on().level(level);
        cases.push((
            format!("no_takeover/{level}"),
            Some((params(true, &config), config)),
        ));
    }
    for (name, deflate) in cases {
        let (mut server, mut client) = pair(deflate.clone());
        let wire: usize = messages
            .iter()
            .map(|m| one(&mut server, &mut client, m))
            .sum();
        eprintln!(
            "deflate/{name}: {:.3} bytes on the wire per byte of message",
            wire as f64 / (1024 * MESSAGES) as f64
        );
        let mut i = 0;
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                i = (i + 1) % MESSAGES;
                one(&mut server, &mut client, &messages[i])
            })
        });
    }

    let config = DeflateSettings::on().server_no_context_takeover(true);
    let prepared: Vec<PreparedMessage> = messages
        .iter()
        .map(|m| PreparedMessage::new(Message::from(m.as_str()), &config))
        .collect();
    let (mut server, mut client) = pair(Some((params(true, &config), config)));
    let wire: usize = prepared
        .iter()
        .map(|p| p.compressed_frame().map_or(p.frame().len(), |f| f.len()))
        .sum();
    eprintln!(
        "deflate/prepared: {:.3} bytes on the wire per byte of message",
        wire as f64 / (1024 * MESSAGES) as f64
    );
    let mut i = 0;
    group.bench_function("prepared", |b| {
        b.iter(|| {
            i = (i + 1) % MESSAGES;
            server.send_prepared(&prepared[i]).unwrap();
            let wire = server.take_output();
            client.receive(&wire);
            black_box(client.poll_event())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
