//! The quick-start programs run together: examples/token_server.rs (a standalone
//! server refusing a missing token with 401, answering after a lookup, in order)
//! and a client that sends three messages and closes with 1000 (the whole client
//! is `Three` and the `run` call below).

#[allow(dead_code)]
#[path = "../examples/token_server.rs"]
mod token_server;

use std::{cell::RefCell, rc::Rc};

use websocket_driver as ws;

/// Sends three names, prints the answers, closes after the third.
struct Three {
    answers: Rc<RefCell<Vec<String>>>,
}

impl ws::AsyncEndpoint for Three {
    async fn on_open(&mut self, conn: &ws::Conn) {
        for name in ["ada", "grace", "barbara"] {
            conn.send_text(name);
        }
    }

    async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
        let mut answers = self.answers.borrow_mut();
        answers.push(msg.as_text().unwrap_or_default().to_owned());
        if answers.len() == 3 {
            conn.close(ws::CloseCode::NORMAL, "done");
        }
    }
}

#[actix_rt::test]
async fn a_client_sends_three_messages_gets_three_answers_in_order_and_closes_1000() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(token_server::serve(listener).unwrap());
    let answers = Rc::new(RefCell::new(Vec::new()));
    let three = Three {
        answers: answers.clone(),
    };
    let close = ws::Client::new(&format!("ws://{addr}/?token=secret"))
        .unwrap()
        .run(ws::async_endpoint(three))
        .await
        .unwrap();
    assert_eq!(close.code, ws::CloseCode::NORMAL);
    assert!(close.was_clean);
    assert_eq!(*answers.borrow(), ["ada: 3", "grace: 5", "barbara: 7"]);
}

#[actix_rt::test]
async fn the_token_server_refuses_a_missing_or_wrong_token_with_401_and_its_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(token_server::serve(listener).unwrap());
    for url in [format!("ws://{addr}/"), format!("ws://{addr}/?token=guess")] {
        match ws::Client::new(&url)
            .unwrap()
            .run(ws::async_endpoint(Three {
                answers: Rc::default(),
            }))
            .await
        {
            Err(ws::ClientError::Status { status, body, .. }) => {
                assert_eq!(
                    (status, body.as_str()),
                    (401, "a token is needed\n"),
                    "{url}"
                );
            }
            other => panic!("{url}: expected 401, got {other:?}"),
        }
    }
    // The bearer header is accepted too.
    let close = ws::Client::new(&format!("ws://{addr}/"))
        .unwrap()
        .header("Authorization", "Bearer secret")
        .run(ws::async_endpoint(Three {
            answers: Rc::default(),
        }))
        .await
        .unwrap();
    assert_eq!(close.code, ws::CloseCode::NORMAL);
}
