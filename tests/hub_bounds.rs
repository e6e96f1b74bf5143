//! The hub's bounds from outside: settings checked up front, a join past a bound
//! refused with its typed error on a real connection, and idle topics with a
//! history forgotten by the hub's periodic sweep.

#![cfg(feature = "server")]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use websocket_driver as ws;

#[path = "support/raw_ws.rs"]
mod raw_ws;
use raw_ws::Client;

#[test]
fn settings_check_refuses_hub_values_it_cannot_work_with() {
    let mut settings = ws::Settings::default();
    assert_eq!(settings.check(), Ok(()));
    settings.hub.slow_close_code = 1006;
    assert_eq!(
        settings.check(),
        Err(ws::settings::SettingsError::InvalidCloseCode {
            key: "hub.slow_close_code",
            code: 1006
        })
    );
    settings.hub.slow_close_code = 4000;
    settings.hub.max_topics_per_connection = 0;
    assert_eq!(
        settings.check().unwrap_err().to_string(),
        format!(
            "hub.max_topics_per_connection = 0 is out of range: it must be within 1..={}",
            usize::MAX
        )
    );
}

#[cfg(feature = "serde")]
#[test]
fn the_longest_history_ttl_is_refused_in_toml_and_by_the_check_not_a_panic() {
    let err = toml::from_str::<ws::Settings>("[hub]\nhistory_ttl_ms = 18446744073709551615\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("history_ttl_ms"), "{err}");
    let mut settings = ws::Settings::default();
    settings.hub.history_ttl = Some(std::time::Duration::from_millis(u64::MAX));
    assert_eq!(
        settings.check().unwrap_err().to_string(),
        "hub.history_ttl_ms = 18446744073709551615 is out of range: it must be within 0..=4294967295"
    );
    // A hub made with it anyway keeps and expires its history without overflow.
    let hub = ws::Hub::with_settings(&settings);
    hub.configure("t", hub.topic_defaults().history_size(10));
    hub.publish("t", "kept");
    assert_eq!(hub.position("t").unwrap().offset, 1);
}

/// A server whose connections on `/` are handed to the test.
fn server() -> (
    SocketAddr,
    actix_server::ServerHandle,
    Arc<Mutex<Vec<ws::Conn>>>,
) {
    struct Opened(Arc<Mutex<Vec<ws::Conn>>>);
    impl ws::Endpoint for Opened {
        fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
            self.0.lock().unwrap().push(conn.clone());
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns: Arc<Mutex<Vec<ws::Conn>>> = Arc::default();
    let opened = conns.clone();
    let running = ws::Server::new()
        .listen_on(listener, 1, move |_| {
            Ok(ws::endpoint(Opened(opened.clone())))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    (addr, handle, conns)
}

/// Wait (bounded) until `f` holds, polling every 5 ms.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[actix_rt::test]
async fn a_join_past_a_bound_is_refused_with_its_error_and_the_connection_stays_in_its_topics() {
    let mut settings = ws::Settings::default();
    settings.hub.max_topics_per_connection = 2;
    let hub = ws::Hub::with_settings(&settings);
    let (addr, handle, conns) = server();
    let mut client = Client::connect(addr, "/").await;
    until("the connection opened", || conns.lock().unwrap().len() == 1).await;
    let conn = conns.lock().unwrap()[0].clone();
    hub.join(&conn, "a").unwrap();
    hub.join(&conn, "b").unwrap();
    assert_eq!(
        hub.join(&conn, "c"),
        Err(ws::JoinError::TooManyTopics { limit: 2 })
    );
    assert_eq!(hub.join(&conn, "{c}"), Err(ws::JoinError::InvalidTopic));
    assert_eq!(
        hub.join(&conn, "c").unwrap_err().to_string(),
        "member of 2 topics already"
    );
    hub.publish("b", "still here");
    assert_eq!(client.text().await, "still here");
    assert_eq!(hub.topics(), ["a", "b"]);
    handle.stop(false).await;
}

#[actix_rt::test]
async fn an_idle_topic_with_a_history_is_forgotten_by_the_sweep_once_it_expired() {
    let mut settings = ws::Settings::default();
    settings.hub.history_size = 10;
    settings.hub.history_ttl = Some(Duration::from_millis(50));
    let hub = ws::Hub::named("hub_bounds_sweep", &settings);
    let (addr, handle, conns) = server();
    let mut client = Client::connect(addr, "/").await;
    until("the connection opened", || conns.lock().unwrap().len() == 1).await;
    let conn = conns.lock().unwrap()[0].clone();
    hub.join(&conn, "room").unwrap();
    hub.publish("room", "one");
    assert_eq!(client.text().await, "one");
    assert!(hub.leave(conn.id(), "room"));
    // Kept for its history, with no member; nothing else happens on the hub: the
    // periodic sweep alone forgets it.
    assert_eq!(hub.topics(), ["room"]);
    until("the sweep forgot the topic", || hub.topics().is_empty()).await;
    let text = ws::metrics::encode_text();
    assert!(
        text.contains("ws_hub_history_bytes{hub=\"hub_bounds_sweep\"} 0"),
        "{text}"
    );
    handle.stop(false).await;
}
