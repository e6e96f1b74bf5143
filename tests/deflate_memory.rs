//! Heap held by permessage-deflate, measured with a counting global allocator:
//! a deflate bomb never makes the process hold more than the message limit plus one
//! inflate step (and the inflater), and what a compressor and an inflater hold for
//! each setting (`cargo test --test deflate_memory -- --nocapture` prints the table
//! the README and `DeflateSettings`'s docs quote).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use bytes::BytesMut;
use websocket_driver::{
    proto::{
        apply_mask, Connection, Deflate, DeflateParams, Event, Extension, FrameHeader, OpCode,
        Role, INFLATE_STEP,
    },
    DeflateSettings, ProtocolSettings,
};

struct Counting;

// Counted per thread: a measurement sees only what its own thread allocates and
// frees, whatever the other tests of this binary (and the harness) do meanwhile.
thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(by: isize) {
    // `try_with`: a thread being torn down has no counters left; skip it.
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + by;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator unchanged; only counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the system does it: in place when it can (large blocks are
        // remapped, not copied), so the old and the new block are not both held.
        grow(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grow(-(layout.size() as isize));
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Run `f` on this thread; returns its result, the heap this thread held after it
/// (bytes, relative to before) and the peak above the start while it ran.
fn measure<T>(f: impl FnOnce() -> T) -> (T, isize, usize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let value = f();
    let end = CURRENT.with(Cell::get);
    let peak = PEAK.with(Cell::get);
    (value, end - start, (peak - start) as usize)
}

fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let header = FrameHeader {
        fin: true,
        rsv: (b0 >> 4) & 7,
        opcode: OpCode::from_bits(b0),
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::new();
    header.encode_into(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out.to_vec()
}

fn bomb(inflated: usize) -> Vec<u8> {
    let mut codec = Deflate::new(
        Role::Client,
        DeflateParams::default(),
        &DeflateSettings::on().level(9),
    );
    let mut out = BytesMut::new();
    assert!(codec
        .encode(OpCode::Binary, &vec![0u8; inflated], &mut out)
        .unwrap());
    out.to_vec()
}

fn json_like(len: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0u32;
    while s.len() < len {
        i += 1;
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user{}\",\"ok\":true}},",
            i % 97
        ));
    }
    s.truncate(len);
    s.into_bytes()
}

// conformance "permessage-deflate" rule 7: a 10 KiB message inflating to 10 MiB
// fails with 1009, and the heap never grows past the limit plus one inflate step
// plus the inflater's state.
#[test]
fn rule7_bomb_peak_heap_is_limit_plus_one_step() {
    let limit = 256 * 1024;
    let input = masked(0xc2, &bomb(10 << 20));
    assert!(input.len() < 11 * 1024, "{}", input.len());
    let mut server = Connection::new(
        Role::Server,
        ProtocolSettings::default().max_message_size(limit),
    );
    server.set_extension(Box::new(Deflate::new(
        Role::Server,
        DeflateParams::default(),
        &DeflateSettings::on(),
    )));
    server.open();
    let (code, _, peak) = measure(|| {
        server.receive(&input);
        let code = server.events().find_map(|e| match e {
            Event::Error(err) => Some(err.close_code()),
            _ => None,
        });
        code.map(|c| c.0)
    });
    assert_eq!(code, Some(1009));
    // The message buffer's capacity stays within the limit plus one step; plus the
    // inflater (46.4 KiB) and the input, read once.
    let bound = limit + INFLATE_STEP + 48 * 1024 + 2 * input.len();
    eprintln!("bomb: 10 MiB inflated, limit {limit} B: peak heap +{peak} B (bound {bound} B)");
    assert!(peak <= bound, "peak {peak} over {bound}");
}

/// The heap a codec keeps after one message each way with context takeover.
fn held(server_bits: u8, client_bits: u8, mem_level: u8) -> (isize, isize) {
    let config = DeflateSettings::on().mem_level(mem_level);
    let params = DeflateParams {
        server_max_window_bits: Some(server_bits),
        client_max_window_bits: Some(client_bits),
        ..Default::default()
    };
    let message = json_like(1024);
    let mut codec = Deflate::new(Role::Server, params, &config);
    let mut wire = BytesMut::new();
    let mut peer = Deflate::new(Role::Client, params, &config);
    peer.encode(OpCode::Text, &message, &mut wire).unwrap();
    // Room enough that neither buffer grows while measuring.
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut sink = BytesMut::with_capacity(64 * 1024);
    let (_, compressor, _) = measure(|| {
        codec.encode(OpCode::Text, &message, &mut sink).unwrap();
    });
    let (_, inflater, _) = measure(|| {
        codec.decode(&wire, true, &mut out, 1 << 20).unwrap();
    });
    (compressor, inflater)
}

#[test]
fn memory_held_per_setting() {
    eprintln!("window bits, mem_level: compressor held, inflater held (bytes)");
    let mut rows = Vec::new();
    for (bits, mem) in [(9, 1), (10, 3), (12, 5), (12, 8), (15, 5), (15, 8), (15, 9)] {
        let (compressor, inflater) = held(bits, bits, mem);
        eprintln!("{bits:>2}, {mem}: {compressor:>7}, {inflater:>7}");
        rows.push((bits, mem, compressor, inflater));
    }
    // zlib-rs: a fixed 128 KiB hash table, the window and its chain (4 << bits), the
    // symbol buffers (7 << (mem + 6)).
    for &(bits, mem, compressor, inflater) in &rows {
        let expected = 128 * 1024 + (4usize << bits) + (7usize << (mem + 6));
        let compressor = compressor as usize;
        assert!(
            compressor >= expected && compressor <= expected + 8 * 1024,
            "{bits}/{mem}: {compressor} vs {expected}"
        );
        // zlib-rs's inflater holds a 32 KiB window whatever the window bits.
        assert_eq!(inflater, rows[0].3, "{bits}: {inflater}");
        assert!(inflater <= 48 * 1024, "{bits}: {inflater}");
    }
}

#[test]
fn no_context_takeover_holds_nothing_between_messages() {
    let config = DeflateSettings::on();
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..Default::default()
    };
    let message = json_like(4096);
    let mut peer = Deflate::new(Role::Client, params, &config);
    let mut wire = BytesMut::new();
    peer.encode(OpCode::Text, &message, &mut wire).unwrap();
    let mut codec = Deflate::new(Role::Server, params, &config);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut sink = BytesMut::with_capacity(64 * 1024);
    let (_, held, peak) = measure(|| {
        codec.encode(OpCode::Text, &message, &mut sink).unwrap();
        codec.decode(&wire, true, &mut out, 1 << 20).unwrap();
    });
    eprintln!("no context takeover: held {held} B after a message each way (peak {peak} B)");
    assert_eq!(held, 0);
    assert!(peak > 100 * 1024, "the compressor was allocated: {peak}");
}
