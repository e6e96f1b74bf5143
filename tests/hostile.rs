//! Hostile peers against the examples as child processes: each case
//! starts `examples/echo.rs` (the actix-web route, or `--standalone`) or
//! `examples/hub.rs` with `tests/hostile/hostile.toml`, does what a hostile peer
//! does, asserts the exact close code (or HTTP status, or reset) the server
//! answers with, and reads the server's peak RSS (`VmHWM`) and open descriptors
//! from `/proc/<pid>/`, asserting a bound computed from the same settings.
//!
//! The examples are the debug builds `cargo test` makes (`cargo build --examples`
//! otherwise). The fast cases run with `cargo test`; the slow ones are ignored
//! and run with `cargo test --test hostile -- --ignored` (scripts/test-all.sh
//! runs them). Each case prints what it measured (`--nocapture` shows it).

#[path = "hostile/cases.rs"]
mod cases;
#[path = "hostile/harness.rs"]
mod harness;
#[path = "support/raw_ws.rs"]
mod raw_ws;
