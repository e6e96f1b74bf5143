//! A server-role `Connection` with permessage-deflate negotiated, fed arbitrary bytes:
//! compressed frames that inflate to anything (bombs, broken streams, BFINAL blocks,
//! RSV1 where it does not belong). The first input byte picks the agreement (context
//! takeover each way, the windows); the rest is fed in chunks.
//!
//! Invariants (a panic is a finding): events come as `Open`, messages, at most one
//! `Error`, then exactly one `Close` and nothing after it; no message is larger
//! than the limit; the input held stays within the limits plus one inflate step and
//! the chunk just fed; every message received is echoed (compressed) while open.

#![no_main]

use libfuzzer_sys::fuzz_target;
use websocket_driver::{
    proto::{Connection, Deflate, DeflateParams, Event, Role, INFLATE_STEP},
    DeflateSettings, ProtocolSettings,
};

const LIMIT: usize = 4096;
const FRAME_LIMIT: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let params = DeflateParams {
        server_no_context_takeover: pick & 0x01 != 0,
        client_no_context_takeover: pick & 0x02 != 0,
        server_max_window_bits: Some(9 + (pick >> 2 & 0x07).min(6)),
        client_max_window_bits: Some(8 + (pick >> 5 & 0x07)),
    };
    let config = DeflateSettings::on();
    let mut core = Connection::new(
        Role::Server,
        ProtocolSettings::default()
            .max_message_size(LIMIT)
            .max_frame_size(FRAME_LIMIT),
    );
    core.set_extension(Box::new(Deflate::new(Role::Server, params, &config)));
    core.open();
    let mut opened = false;
    let mut errors = 0;
    let mut closed = false;
    let chunk_len = 1 + usize::from(pick % 61);
    let mut drain = |core: &mut Connection| {
        while let Some(event) = core.poll_event() {
            assert!(!closed, "an event after Close: {event:?}");
            match event {
                Event::Open => {
                    assert!(!opened, "a second Open");
                    opened = true;
                }
                Event::Message(message) => {
                    assert!(opened && errors == 0);
                    assert!(message.as_bytes().len() <= LIMIT, "a message past the limit");
                    let _ = core.send(&message);
                }
                Event::Error(_) => {
                    errors += 1;
                    assert_eq!(errors, 1, "a second Error");
                }
                Event::Close(_) => closed = true,
                Event::Ping(_) | Event::Pong(_) => {}
            }
        }
        let _ = core.take_output();
    };
    for chunk in input.chunks(chunk_len) {
        core.receive(chunk);
        drain(&mut core);
        assert!(
            core.info().buffered_input() <= FRAME_LIMIT + 14 + LIMIT + INFLATE_STEP + chunk.len(),
            "{} bytes of input held",
            core.info().buffered_input()
        );
    }
    core.receive_eof();
    drain(&mut core);
    assert!(closed, "no Close after the end of input");
});
