//! The Redis backplane tests' server (`tests/backplane*.rs`): a standalone server
//! with a hub whose endpoint does what the request's path and query say.
//! `/sub?topic=T&user=U&since=EPOCH:OFFSET` joins T (each parameter optional; the
//! topic defaults to the server's) and answers `joined EPOCH OFFSET RECOVERED`
//! (`true`, `false`, or `none` without `since`); on any path, every text the
//! connection sends is published to its topic.
#![allow(dead_code)]

use std::net::SocketAddr;

use websocket_driver as ws;

/// The endpoint (see the module docs).
pub struct Member {
    hub: ws::Hub,
    topic: String,
    sub: bool,
    user: Option<String>,
    since: Option<ws::Position>,
}

impl Member {
    /// What `req` asks of `hub`, `topic` when it names none.
    pub fn from_request(hub: &ws::Hub, req: &ws::Request, topic: &str) -> Member {
        let since = req.query_param("since").and_then(|s| {
            let (epoch, offset) = s.split_once(':')?;
            Some(ws::Position {
                epoch: epoch.to_owned(),
                offset: offset.parse().ok()?,
            })
        });
        Member {
            hub: hub.clone(),
            topic: req
                .query_param("topic")
                .map_or_else(|| topic.to_owned(), |t| t.into_owned()),
            sub: req.path() == "/sub",
            user: req.query_param("user").map(|u| u.into_owned()),
            since,
        }
    }
}

impl ws::Endpoint for Member {
    fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
        if !self.sub {
            return;
        }
        let mut options = ws::JoinOptions::default().on_joined(|j| {
            vec![ws::Message::from(format!(
                "joined {} {} {}",
                j.position.epoch,
                j.position.offset,
                j.recovered
                    .map_or("none", |r| if r { "true" } else { "false" })
            ))]
        });
        if let Some(user) = self.user.take() {
            options = options.user(user);
        }
        if let Some(since) = self.since.take() {
            options = options.since(since);
        }
        // A join refused (the hub stopping) is seen by the test as no answer.
        let _ = self.hub.join_with(conn, &self.topic, options);
    }

    fn on_message(&mut self, _: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
        self.hub.publish(&self.topic, msg);
    }
}

/// Serve `hub` with `settings` on a free loopback port (2 workers), topic
/// `topic` by default; the server runs on the current actix system.
pub fn serve(
    settings: ws::Settings,
    hub: &ws::Hub,
    topic: &'static str,
) -> (SocketAddr, actix_server::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = hub.clone();
    let running = ws::Server::with_settings(settings)
        .listen_on(listener, 2, move |req| {
            Ok(ws::endpoint(Member::from_request(&hub, req, topic)))
        })
        .unwrap();
    let handle = running.handle();
    actix_rt::spawn(running);
    (addr, handle)
}
