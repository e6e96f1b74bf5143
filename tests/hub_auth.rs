//! The hub's authorization with real connections: an asynchronous authorizer
//! reads the claims registered at the handshake; the join takes effect only
//! once it allows it, a refusal is a typed error with its reason, and an
//! answer that never comes is refused after `authorize_timeout`.

#![cfg(feature = "server")]

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use websocket_driver as ws;
use ws::hub::{Access, Decision, Verdict};

#[path = "support/opened.rs"]
mod opened;
#[path = "support/raw_ws.rs"]
mod raw_ws;
use opened::server;

/// The claims the application captured at the handshake.
struct Roles(Vec<&'static str>);

#[actix_rt::test]
async fn an_asynchronous_join_takes_effect_once_allowed_and_a_refusal_says_why() {
    let mut settings = ws::Settings::default();
    settings.hub.authorize_timeout = Duration::from_millis(200);
    let hub = ws::Hub::with_settings(&settings);
    // The lookup answers when the test opens the gate.
    let gate = Arc::new(Notify::new());
    let lookup = gate.clone();
    hub.set_authorizer(move |access: &Access| {
        if access.topic == "never" {
            return Decision::later(std::future::pending());
        }
        let admin = access
            .claims::<Roles>()
            .is_some_and(|r| r.0.contains(&"admin"));
        let (gate, topic) = (lookup.clone(), access.topic.clone());
        Decision::later(async move {
            gate.notified().await;
            if admin {
                Verdict::Allow
            } else {
                Verdict::deny(format!("{topic} is private"))
            }
        })
    });
    let mut srv = server();
    let (mut alice, ca) = srv.open().await;
    let (_bob, cb) = srv.open().await;
    hub.register_with_claims(&ca, "alice", Roles(vec!["admin"]))
        .unwrap();
    hub.register_with_claims(&cb, "bob", Roles(vec![])).unwrap();
    // The synchronous join cannot wait for the lookup.
    assert_eq!(hub.join(&ca, "$ops"), Err(ws::JoinError::Asynchronous));
    let join = actix_rt::spawn(hub.join_async(&ca, "$ops", ws::JoinOptions::default()));
    // Not a member while the lookup runs.
    assert_eq!(hub.count("$ops"), 0);
    gate.notify_one();
    let joined = join.await.unwrap().unwrap();
    assert_eq!(joined.position.offset, 0);
    assert_eq!(hub.members("$ops")[0].id, ca.id());
    hub.publish("$ops", "for admins");
    assert_eq!(alice.text().await, "for admins");
    gate.notify_one();
    assert_eq!(
        hub.join_async(&cb, "$ops", ws::JoinOptions::default())
            .await,
        Err(ws::JoinError::Denied {
            reason: "$ops is private".into()
        })
    );
    assert_eq!(
        hub.join_async(&cb, "never", ws::JoinOptions::default())
            .await,
        Err(ws::JoinError::AuthorizationTimedOut)
    );
    assert_eq!(hub.count("$ops"), 1);
    assert_eq!(hub.topics(), ["$ops"]);
    srv.handle.stop(false).await;
}
