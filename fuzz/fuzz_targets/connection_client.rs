//! A client-role `Connection` fed arbitrary bytes in arbitrary chunks; the invariants
//! are checked by the shared driver (`fuzz/driver.rs`, also used by
//! `tests/fuzz_smoke.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use websocket_driver::proto::Role;

#[path = "../driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| {
    driver::fuzz_connection(Role::Client, data);
});
