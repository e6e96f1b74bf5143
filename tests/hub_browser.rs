//! The hub example in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver, with `fantoccini`). Two pages with different
//! nicknames join one room, side by side in one window; a message typed in one
//! appears in the other; both member lists show both; one page goes away, misses
//! two messages, comes back (a reload: its state is in localStorage) and shows
//! them; its status says "open". The test saves the screenshot of the window as
//! `docs/hub-two-browsers.png` (the README shows it).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`); `scripts/test-all.sh` installs them and runs it.

#[allow(dead_code)]
#[path = "../examples/hub.rs"]
mod chat;

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::Duration,
};

use actix_web::{web, App, HttpResponse, HttpServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use websocket_driver as ws;

/// Two chat pages side by side.
const DUO: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>two browsers, one room</title>
<style>
  body { margin: 0; display: flex; gap: 8px; background: #c9d2de; padding: 8px; }
  html, body { height: 100%; box-sizing: border-box; }
  iframe { flex: 1; height: 100%; border: 0; border-radius: 6px; background: #fff; }
</style>
<iframe id="alice" src="/?name=alice&room=lobby"></iframe>
<iframe id="bob" src="/?name=bob&room=lobby"></iframe>
"#;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/bin/chromedriver (apt-get install -y chromium-driver)");
    let driver = Driver(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (driver, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(port: u16, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,760",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session through chromedriver")
}

/// Evaluate `script` in frame `frame` (0: alice, 1: bob) until it returns `want`,
/// every 50 ms, for at most 20 s.
async fn until(client: &Client, frame: u16, script: &str, want: Value) {
    let mut last = Value::Null;
    for _ in 0..400 {
        client.enter_parent_frame().await.unwrap();
        client.enter_frame(frame).await.unwrap();
        last = client.execute(script, vec![]).await.unwrap();
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("frame {frame}: {script} gave {last}, not {want}");
}

const STATUS: &str = "return document.getElementById('status').textContent";
const MEMBERS: &str =
    "return Array.from(document.querySelectorAll('#members li')).map(li => li.textContent)";
const MESSAGES: &str = "return Array.from(document.querySelectorAll('#messages .msg')).map(m => \
    m.querySelector('.from').textContent + ': ' + m.querySelector('.text').textContent)";

async fn say(client: &Client, frame: u16, text: &str) {
    client.enter_parent_frame().await.unwrap();
    client.enter_frame(frame).await.unwrap();
    client
        .find(Locator::Id("text"))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
    client
        .find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Point bob's frame at `src` (from the parent page).
async fn bob_to(client: &Client, src: &str) {
    client.enter_parent_frame().await.unwrap();
    client
        .execute(
            "document.getElementById('bob').src = arguments[0]",
            vec![json!(src)],
        )
        .await
        .unwrap();
}

/// The chat example (hub named `name`) on 127.0.0.1:0, one worker, with `page`
/// served at `path` beside its routes.
fn start_chat(
    name: &'static str,
    path: &'static str,
    page: &'static str,
) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let settings = chat::chat_settings();
    let app = chat::ChatApp::new(name, &settings, chat::ChatOptions::default());
    let routes = chat::routes(app, ws::Server::with_settings(settings));
    let srv = HttpServer::new(move || {
        App::new().configure(routes.clone()).route(
            path,
            web::get().to(move || async move {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(page)
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = srv.addrs()[0];
    let running = srv.run();
    let handle = running.handle();
    actix_rt::spawn(running);
    (addr, handle)
}

#[actix_rt::test]
#[ignore = "needs chromium and chromedriver; scripts/test-all.sh runs it"]
async fn two_browsers_chat_in_one_room_and_a_reload_recovers_what_it_missed() {
    let (addr, handle) = start_chat("chat-browser", "/duo", DUO);
    let (_driver, port) = chromedriver().await;
    let profile = std::env::temp_dir().join(format!("wsd-hub-browser-{}", std::process::id()));
    let client = browser(port, &profile).await;
    client.goto(&format!("http://{addr}/duo")).await.unwrap();
    for frame in [0, 1] {
        until(&client, frame, STATUS, json!("open")).await;
        until(&client, frame, MEMBERS, json!(["alice", "bob"])).await;
    }

    say(&client, 0, "hello bob").await;
    until(&client, 1, MESSAGES, json!(["alice: hello bob"])).await;
    say(&client, 1, "hi alice").await;
    until(
        &client,
        0,
        MESSAGES,
        json!(["alice: hello bob", "bob: hi alice"]),
    )
    .await;

    // Bob goes away; alice sees him leave and says two things he misses.
    bob_to(&client, "about:blank").await;
    until(&client, 0, MEMBERS, json!(["alice"])).await;
    say(&client, 0, "while you were away 1").await;
    say(&client, 0, "while you were away 2").await;
    until(
        &client,
        0,
        MESSAGES,
        json!([
            "alice: hello bob",
            "bob: hi alice",
            "alice: while you were away 1",
            "alice: while you were away 2"
        ]),
    )
    .await;

    // Bob comes back: the page restores its room and position, rejoins with
    // `since`, and the server sends exactly what he missed.
    bob_to(&client, "/?name=bob&room=lobby").await;
    until(&client, 1, STATUS, json!("open")).await;
    until(
        &client,
        1,
        MESSAGES,
        json!([
            "alice: hello bob",
            "bob: hi alice",
            "alice: while you were away 1",
            "alice: while you were away 2"
        ]),
    )
    .await;
    for frame in [0, 1] {
        until(&client, frame, MEMBERS, json!(["alice", "bob"])).await;
    }

    client.enter_parent_frame().await.unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");
    std::fs::create_dir_all(docs).unwrap();
    std::fs::write(format!("{docs}/hub-two-browsers.png"), png).unwrap();

    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    handle.stop(false).await;
}

/// A chat page (alice, in room `sse`) and, beside it, an `EventSource` on the
/// room's event stream that keeps what it receives.
const SSE_PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>a room as Server-Sent Events</title>
<iframe id="alice" src="/?name=alice&room=sse"></iframe>
<script>
  window.got = [];
  window.opened = false;
  const source = new EventSource('/rooms/sse/events');
  source.onopen = () => { window.opened = true; };
  source.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === 'message') window.got.push([m.from, m.text, e.lastEventId === m.epoch + ':' + m.offset]);
  };
</script>
"#;

/// Evaluate `script` in the top page until it returns `want`, every 50 ms, for at
/// most 20 s.
async fn until_top(client: &Client, script: &str, want: Value) {
    let mut last = Value::Null;
    for _ in 0..400 {
        client.enter_parent_frame().await.unwrap();
        last = client.execute(script, vec![]).await.unwrap();
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{script} gave {last}, not {want}");
}

#[actix_rt::test]
#[ignore = "needs chromium and chromedriver; scripts/test-all.sh runs it"]
async fn an_event_source_on_a_room_sees_a_message_said_over_the_websocket() {
    let (addr, handle) = start_chat("chat-sse", "/sse", SSE_PAGE);

    let (_driver, port) = chromedriver().await;
    let profile = std::env::temp_dir().join(format!("wsd-hub-sse-{}", std::process::id()));
    let client = browser(port, &profile).await;
    client.goto(&format!("http://{addr}/sse")).await.unwrap();
    until_top(&client, "return window.opened", json!(true)).await;
    until(&client, 0, STATUS, json!("open")).await;
    say(&client, 0, "hello, event source").await;
    // Its id is the message's epoch and offset.
    until_top(
        &client,
        "return window.got",
        json!([["alice", "hello, event source", true]]),
    )
    .await;

    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    handle.stop(false).await;
}
