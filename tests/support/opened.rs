//! A standalone server whose connections on `/` are handed to the test as they
//! open (its clients are `raw_ws::Client`s).

use std::{net::SocketAddr, time::Duration};

use tokio::sync::mpsc;
use websocket_driver as ws;

use super::raw_ws::Client;

/// A server whose connections on `/` are handed to the test as they open.
pub struct Srv {
    pub addr: SocketAddr,
    pub handle: actix_server::ServerHandle,
    opened: mpsc::UnboundedReceiver<ws::Conn>,
}

pub fn server() -> Srv {
    struct Opened(mpsc::UnboundedSender<ws::Conn>);
    impl ws::Endpoint for Opened {
        fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
            let _ = self.0.send(conn.clone());
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, opened) = mpsc::unbounded_channel();
    let running = ws::Server::new()
        .listen_on(listener, 1, move |_| Ok(ws::endpoint(Opened(tx.clone()))))
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    Srv {
        addr,
        handle,
        opened,
    }
}

impl Srv {
    /// A client, and its connection on the server.
    pub async fn open(&mut self) -> (Client, ws::Conn) {
        let client = Client::connect(self.addr, "/").await;
        let conn = tokio::time::timeout(Duration::from_secs(10), self.opened.recv())
            .await
            .expect("the connection opened")
            .unwrap();
        (client, conn)
    }
}
