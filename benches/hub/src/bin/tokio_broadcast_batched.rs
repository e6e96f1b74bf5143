//! tokio-tungstenite with a `tokio::sync::broadcast` room, writing what is ready
//! together (`feed` each message `try_recv` has, then one `flush`): see
//! `src/broadcast.rs`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    wsd_hub_bench::broadcast::serve(wsd_hub_bench::bind_arg(), true).await
}
