//! No credential in `Debug` output or log lines: the Redis URL's password, the
//! client's token and authorization header, a request's cookie, each shown as
//! `***`.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use websocket_driver as ws;

const SECRETS: [&str; 4] = ["hunter2", "tok-s3cret", "bearer-s3cret", "cookie-s3cret"];

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} shown in {text}");
    }
}

fn settings_with_secrets() -> ws::Settings {
    let mut settings = ws::Settings::default();
    settings.redis.url = "redis://app:hunter2@127.0.0.1:6379/0".into();
    settings.client = ws::ClientSettings::default()
        .url("wss://feed.example/updates?room=1&token=tok-s3cret")
        .header("Authorization", "Bearer bearer-s3cret")
        .header("Cookie", "sid=cookie-s3cret")
        .header("X-Trace", "visible");
    settings
}

#[test]
fn settings_debug_shows_no_password_token_or_credential_header() {
    let settings = settings_with_secrets();
    for text in [format!("{settings:?}"), format!("{settings:#?}")] {
        assert_no_secret(&text);
        assert!(text.contains("redis://app:***@127.0.0.1:6379/0"), "{text}");
        assert!(text.contains("room=1&token=***"), "{text}");
        assert!(text.contains("visible"), "{text}");
    }
    let redis = format!("{:?}", settings.redis);
    assert!(
        redis.starts_with(
            "RedisSettings { url: \"redis://app:***@127.0.0.1:6379/0\", prefix: \"ws\""
        ),
        "{redis}"
    );
}

#[cfg(feature = "server")]
#[test]
fn a_request_debug_shows_no_cookie_authorization_or_token() {
    let req = ws::Request::from_bytes(
        b"GET /feed?room=1&token=tok-s3cret HTTP/1.1\r\nHost: x\r\n\
          Cookie: sid=cookie-s3cret\r\nAuthorization: Bearer bearer-s3cret\r\n\r\n",
    )
    .unwrap();
    let text = format!("{req:?}");
    assert_no_secret(&text);
    assert!(text.contains("/feed?room=1&token=***"), "{text}");
    assert_eq!(
        req.cookie("sid"),
        Some("cookie-s3cret"),
        "the values stay readable"
    );
}

/// A subscriber that writes every event's fields into one string.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        span.record(&mut Fields(&mut text));
        text.push('\n');
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[cfg(all(feature = "client", feature = "server"))]
#[actix_rt::test]
async fn client_log_lines_show_no_token() {
    struct Quiet;
    impl ws::Endpoint for Quiet {}
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ws::Server::new()
        .listen_on(listener, 1, |_: &ws::Request| Ok(ws::endpoint(Quiet)))
        .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);

    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(capture.clone());
    let mut settings = settings_with_secrets();
    settings.client.url = format!("ws://{addr}/updates?room=1&token=tok-s3cret");
    let client = ws::Client::with_settings(settings).unwrap();
    let (_, conn) = tokio::time::timeout(
        Duration::from_secs(5),
        client.connect_with_conn(ws::endpoint(Quiet)),
    )
    .await
    .unwrap()
    .unwrap();
    conn.close(ws::CloseCode::NORMAL, "").await.ok();
    drop(guard);
    handle.stop(false).await;
    let text = capture.0.lock().unwrap().clone();
    assert_no_secret(&text);
    assert!(
        text.contains("/updates?room=1&token=***"),
        "the URL is logged, masked: {text}"
    );
}
