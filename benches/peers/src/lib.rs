//! Shared bits of the peers' echo servers: the `--bind ADDR` argument.

/// The address from `--bind ADDR` (default `127.0.0.1:9001`).
pub fn bind_arg() -> String {
    let mut args = std::env::args().skip(1);
    let mut bind = "127.0.0.1:9001".to_string();
    while let Some(a) = args.next() {
        if a == "--bind" {
            bind = args.next().expect("--bind needs ADDR");
        } else {
            eprintln!(
                "usage: {} [--bind ADDR]",
                std::env::args().next().unwrap_or_default()
            );
            std::process::exit(2);
        }
    }
    bind
}
