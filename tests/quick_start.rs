//! The quick-start programs run together: examples/auth.rs (a standalone server
//! refusing a missing token with 401, admitting a known one) and a client that
//! sends three messages and closes with 1000 (the whole client is `Three` and the
//! `run` call below).

#[allow(dead_code)]
#[path = "../examples/auth.rs"]
mod auth;

use std::{cell::RefCell, rc::Rc, time::Duration};

use actix::Actor;
use websocket_driver as ws;

/// Sends three names, keeps what comes back (each after a lookup, in order), closes
/// after the third echo.
struct Three {
    received: Rc<RefCell<Vec<String>>>,
}

impl ws::AsyncEndpoint for Three {
    async fn on_open(&mut self, conn: &ws::Conn) {
        for name in ["ada", "grace", "barbara"] {
            conn.send_text(name);
        }
    }

    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        let text = msg.as_text().unwrap_or_default().to_owned();
        // A lookup per message (a timer here, 0-6 ms): the next one waits for it.
        tokio::time::sleep(Duration::from_millis(text.len() as u64 % 7)).await;
        let mut received = self.received.borrow_mut();
        received.push(text);
        // The greeting, then the three echoes.
        if received.len() == 4 {
            conn.close(ws::CloseCode::NORMAL, "done");
        }
    }
}

/// The auth example's server on 127.0.0.1:0; its `ws://` URL.
fn serve() -> String {
    let tokens = auth::Tokens::new([("alice-token", "alice")]).start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ws::Server::new()
        .listen_on_async(listener, 1, move |req| auth::admit(tokens.clone(), req))
        .unwrap();
    actix_rt::spawn(server);
    format!("ws://{addr}/")
}

#[actix_rt::test]
async fn a_client_sends_three_messages_gets_them_back_in_order_and_closes_1000() {
    let url = serve();
    let received = Rc::new(RefCell::new(Vec::new()));
    let three = Three {
        received: received.clone(),
    };
    let close = ws::Client::new(&url)
        .unwrap()
        .header("Authorization", "Bearer alice-token")
        .run(ws::async_endpoint(three))
        .await
        .unwrap();
    assert_eq!(close.code, ws::CloseCode::NORMAL);
    assert!(close.was_clean);
    assert_eq!(
        *received.borrow(),
        ["hello alice", "ada", "grace", "barbara"]
    );
}

#[actix_rt::test]
async fn the_client_sees_the_401_and_its_body_without_a_token_or_with_a_wrong_one() {
    let url = serve();
    let cases = [
        (None, "missing bearer token\n"),
        (Some("Bearer guess"), r#"{"error":"invalid_token"}"#),
    ];
    for (authorization, expected) in cases {
        let mut client = ws::Client::new(&url).unwrap();
        if let Some(value) = authorization {
            client = client.header("Authorization", value);
        }
        let three = Three {
            received: Rc::default(),
        };
        match client.run(ws::async_endpoint(three)).await {
            Err(ws::ClientError::Status { status, body, .. }) => {
                assert_eq!(
                    (status, body.as_str()),
                    (401, expected),
                    "{authorization:?}"
                );
            }
            other => panic!("{authorization:?}: expected 401, got {other:?}"),
        }
    }
}
