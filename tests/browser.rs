//! A real browser (headless Chromium) talks to the echo example's route: `new
//! WebSocket(..)` opens, text and binary messages come back unchanged, and the close
//! the page starts completes cleanly.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`); `scripts/test-all.sh` installs it
//! and runs this test with `cargo test --test browser -- --ignored`.

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use tokio::sync::mpsc;
use websocket_driver as ws;

/// The page: opens a WebSocket to the server it came from, sends a text with
/// multibyte characters, a binary message with every edge byte, and a 70,000-byte
/// text (a 64-bit length), closes with 1000 once the three echoes are back, and
/// posts what it saw to `/report`. The close event carries the server's answering
/// Close: the same code (RFC 6455 §5.5.1), no reason.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>websocket-driver browser test</title>
<script>
const seen = [];
const ws = new WebSocket(`ws://${location.host}/echo`);
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  ws.send("h\u00e9llo \u2713 \u{1F600}");
  ws.send(new Uint8Array([0, 1, 127, 128, 255]).buffer);
  ws.send("x".repeat(70000));
};
ws.onmessage = (e) => {
  if (typeof e.data === "string") {
    seen.push(e.data.length > 100 ? `text of ${e.data.length}, all x: ${/^x*$/.test(e.data)}` : `text ${e.data}`);
  } else {
    seen.push(`binary ${Array.from(new Uint8Array(e.data)).join(",")}`);
  }
  if (seen.length === 3) ws.close(1000, "done");
};
ws.onclose = (e) => {
  fetch("/report", {
    method: "POST",
    body: JSON.stringify({ seen, code: e.code, reason: e.reason, clean: e.wasClean, protocol: ws.protocol }),
  });
};
</script>
"#;

const CHROMIUM: &str = "/usr/bin/chromium";

#[actix_rt::test]
#[ignore = "needs chromium; scripts/test-all.sh runs it"]
async fn chromium_websocket_echoes_text_and_binary_and_closes_cleanly() {
    let (tx, mut reports) = mpsc::unbounded_channel::<Bytes>();
    let settings = web::Data::new(ws::Server::new());
    let srv = HttpServer::new(move || {
        let tx = tx.clone();
        App::new()
            .app_data(settings.clone())
            .route(
                "/page",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(PAGE)
                }),
            )
            .route(
                "/report",
                web::post().to(move |body: Bytes| {
                    let _ = tx.send(body);
                    async { HttpResponse::NoContent().finish() }
                }),
            )
            .default_service(web::get().to(echo::route))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind("127.0.0.1:0")
    .expect("bind 127.0.0.1:0");
    let addr = srv.addrs()[0];
    let running = srv.run();
    let handle = running.handle();
    actix_rt::spawn(running);

    let profile = std::env::temp_dir().join(format!("wsd-chromium-{}", std::process::id()));
    let mut browser = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{addr}/page"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/bin/chromium (apt-get install -y chromium)");
    let report = tokio::time::timeout(Duration::from_secs(60), reports.recv()).await;
    let _ = browser.kill();
    let _ = browser.wait();
    let _ = std::fs::remove_dir_all(&profile);
    handle.stop(false).await;

    let report = report
        .expect("the page reported within 60 s")
        .expect("report channel open");
    assert_eq!(
        std::str::from_utf8(&report).unwrap(),
        concat!(
            r#"{"seen":["text héllo ✓ 😀","binary 0,1,127,128,255","#,
            r#""text of 70000, all x: true"],"code":1000,"reason":"","clean":true,"protocol":""}"#
        )
    );
}
