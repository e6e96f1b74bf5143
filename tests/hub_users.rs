//! The hub's connections from outside: known from their first use (a register
//! or a join) until they close, reached by user and all together whether or not
//! they joined a topic, and at most `max_connections_per_user` per user.

#![cfg(feature = "server")]

use std::time::Duration;

use tokio::{io::AsyncWriteExt, sync::mpsc};
use websocket_driver as ws;

#[path = "support/opened.rs"]
mod opened;
#[path = "support/raw_ws.rs"]
mod raw_ws;
use opened::server;

#[actix_rt::test]
async fn registered_connections_are_reached_by_user_and_by_broadcast_without_any_topic() {
    let hub = ws::Hub::new();
    let mut srv = server();
    let (mut a1, ca1) = srv.open().await;
    let (mut a2, ca2) = srv.open().await;
    let (mut b, cb) = srv.open().await;
    // Before it is known, nothing reaches a connection.
    assert!(!hub.send_to(cb.id(), "lost"));
    hub.register(&ca1, "alice").unwrap();
    hub.register(&ca2, "alice").unwrap();
    hub.register(&cb, "bob").unwrap();
    assert_eq!(hub.connections_of("alice"), [ca1.id(), ca2.id()]);
    assert_eq!(hub.connections_of("bob"), [cb.id()]);
    assert!(hub.connections_of("nobody").is_empty());
    assert_eq!(hub.send_to_user("alice", "for alice"), 2);
    assert_eq!(hub.send_to_user("nobody", "for nobody"), 0);
    assert!(hub.send_to(cb.id(), "for bob"));
    hub.broadcast("to all but a2", Some(ca2.id()));
    assert!(hub.send_to(ca2.id(), "last"));
    assert_eq!(a1.text().await, "for alice");
    assert_eq!(a1.text().await, "to all but a2");
    assert_eq!(a2.text().await, "for alice");
    assert_eq!(a2.text().await, "last");
    assert_eq!(b.text().await, "for bob");
    assert_eq!(b.text().await, "to all but a2");
    assert_eq!(hub.connections().open, 3);
    srv.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_connection_is_its_first_named_joins_user_until_registered_as_another() {
    let hub = ws::Hub::new();
    let mut srv = server();
    let (mut c, conn) = srv.open().await;
    let id = conn.id();
    // Joined without a user: its own (its id).
    hub.join(&conn, "a").unwrap();
    assert_eq!(hub.connections_of(&id.to_string()), [id]);
    // The first join that names a user names it; a later one does not.
    hub.join_with(&conn, "b", ws::JoinOptions::default().user("carol"))
        .unwrap();
    hub.join_with(&conn, "c", ws::JoinOptions::default().user("dave"))
        .unwrap();
    assert!(hub.connections_of(&id.to_string()).is_empty());
    assert_eq!(hub.connections_of("carol"), [id]);
    assert!(hub.connections_of("dave").is_empty());
    // A register names it again.
    hub.register(&conn, "erin").unwrap();
    assert!(hub.connections_of("carol").is_empty());
    assert_eq!(hub.connections_of("erin"), [id]);
    // In no topic any more, it is still the hub's.
    for t in ["a", "b", "c"] {
        assert!(hub.leave(id, t));
    }
    assert_eq!(hub.send_to_user("erin", "still here"), 1);
    assert_eq!(c.text().await, "still here");
    srv.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_users_connections_are_bounded_and_a_closed_one_frees_its_place() {
    let mut settings = ws::Settings::default();
    settings.hub.max_connections_per_user = 2;
    settings.hub.presence = true;
    let hub = ws::Hub::with_settings(&settings);
    // Told when a connection's topics are left on its close (after it left
    // the hub's table).
    let (tx, mut left) = mpsc::unbounded_channel();
    hub.on_presence_fn(move |p: &ws::Presence| {
        if p.kind == ws::PresenceKind::Left {
            let _ = tx.send(p.user.clone());
        }
    })
    .unwrap();
    let mut srv = server();
    let (mut c1, conn1) = srv.open().await;
    let (_c2, conn2) = srv.open().await;
    let (mut c3, conn3) = srv.open().await;
    hub.register(&conn1, "alice").unwrap();
    hub.register(&conn2, "alice").unwrap();
    let full = ws::JoinError::TooManyConnections { limit: 2 };
    assert_eq!(hub.register(&conn3, "alice"), Err(full.clone()));
    assert_eq!(full.to_string(), "user has 2 connections already");
    // A join that would name it alice is refused too; it stays unknown.
    let as_alice = ws::JoinOptions::default().user("alice");
    assert_eq!(hub.join_with(&conn3, "room", as_alice), Err(full));
    assert_eq!(hub.connections_of("alice"), [conn1.id(), conn2.id()]);
    assert!(!hub.send_to(conn3.id(), "unknown"));
    assert_eq!(hub.count("room"), 0);
    // Too long a user is refused before any bound.
    let long = "u".repeat(settings.hub.max_user_bytes + 1);
    assert_eq!(
        hub.register(&conn3, long),
        Err(ws::JoinError::UserTooLong {
            limit: settings.hub.max_user_bytes
        })
    );
    // Alice's first connection closes: its place is free.
    hub.join_with(&conn1, "tabs", ws::JoinOptions::default().user("tab1"))
        .unwrap();
    c1.stream.shutdown().await.unwrap();
    let user = tokio::time::timeout(Duration::from_secs(10), left.recv())
        .await
        .expect("the closed connection left")
        .unwrap();
    assert_eq!(user, "tab1");
    assert_eq!(hub.connections_of("alice"), [conn2.id()]);
    hub.register(&conn3, "alice").unwrap();
    assert_eq!(hub.send_to_user("alice", "two of them"), 2);
    assert_eq!(c3.text().await, "two of them");
    srv.handle.stop(false).await;
}

#[actix_rt::test]
async fn a_hidden_websocket_member_receives_the_topic_out_of_presence() {
    let mut settings = ws::Settings::default();
    settings.hub.presence = true;
    let hub = ws::Hub::with_settings(&settings);
    let (tx, mut told) = mpsc::unbounded_channel();
    hub.on_presence_fn(move |p: &ws::Presence| {
        let _ = tx.send((p.user.clone(), p.kind));
    })
    .unwrap();
    let mut srv = server();
    let (mut visible, v) = srv.open().await;
    let (mut monitor, m) = srv.open().await;
    hub.join_with(&v, "t", ws::JoinOptions::default().user("vis"))
        .unwrap();
    hub.join_with(&m, "t", ws::JoinOptions::default().user("mon").hidden(true))
        .unwrap();
    hub.publish("t", "x");
    assert_eq!(visible.text().await, "x");
    assert_eq!(monitor.text().await, "x");
    let listed: Vec<ws::ConnId> = hub.members("t").iter().map(|m| m.id).collect();
    assert_eq!(listed, [v.id()]);
    assert_eq!(
        (hub.users("t"), hub.count("t")),
        (vec!["vis".to_owned()], 2)
    );
    // The monitor closes, then the visible one leaves: presence (in order per
    // topic) tells the visible one's join and leave, nothing of the monitor.
    monitor.stream.shutdown().await.unwrap();
    for _ in 0..1_000 {
        if hub.count("t") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hub.count("t"), 1, "the monitor's close took it out");
    assert!(hub.leave(v.id(), "t"));
    let mut events = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(10), told.recv())
            .await
            .expect("a presence event")
            .unwrap();
        events.push(event);
    }
    assert_eq!(
        events,
        [
            ("vis".to_owned(), ws::PresenceKind::Joined),
            ("vis".to_owned(), ws::PresenceKind::Left)
        ]
    );
    srv.handle.stop(false).await;
}
