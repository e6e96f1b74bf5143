//! `FrameHeader::decode` on arbitrary bytes, and the encode round trip of whatever
//! decodes (checks in `fuzz/driver.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| {
    driver::fuzz_header(data);
});
