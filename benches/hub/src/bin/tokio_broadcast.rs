//! tokio-tungstenite with a `tokio::sync::broadcast` room, one write per message:
//! see `src/broadcast.rs`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    wsd_hub_bench::broadcast::serve(wsd_hub_bench::bind_arg(), false).await
}
