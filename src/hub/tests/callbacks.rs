//! The application's callbacks (the renderer, `on_joined`) panicking on the
//! thread of the backplane that called them: caught and counted, the thread
//! goes on, the join is answered.

use std::sync::atomic::Ordering;

use super::{
    super::{sync::lock, JoinOptions, Located, Position},
    harness::Harness,
};

fn at(offset: u64) -> Position {
    Position {
        epoch: "e".into(),
        offset,
    }
}

#[test]
fn a_panicking_on_joined_or_renderer_never_unwinds_through_the_backplanes_thread() {
    let mut h = Harness::new(1, Some(true));
    let c = h.conn(0);
    h.hub.set_renderer(|_, position, message| {
        assert_ne!(position.offset, 2, "the renderer fails on offset 2");
        message
    });
    h.join(
        c,
        "t",
        JoinOptions::default().on_joined(|_| panic!("on_joined fails")),
    )
    .unwrap();
    let (_, _, done) = lock(&h.backplane.locates).remove(0);
    let hub = h.hub.clone();
    // The backplane's thread: answers the join, delivers three publications.
    let thread = std::thread::spawn(move || {
        done(Located::new(at(0), None));
        for offset in 1..=3 {
            hub.deliver_numbered("t", &at(offset), format!("m{offset}").into(), None);
        }
    });
    assert!(thread.join().is_ok(), "the backplane's thread went on");
    h.pump_all();
    // Answered without a greeting; offset 2 not delivered here (counted).
    assert_eq!(h.received(c), ["m1", "m3"]);
    assert_eq!(
        h.hub.inner.metrics.callback_panics.load(Ordering::Relaxed),
        2
    );
}

#[test]
fn a_renderer_that_panics_on_a_missed_publication_makes_the_recovery_incomplete() {
    let mut h = Harness::new(1, Some(true));
    let c = h.conn(0);
    h.hub.set_renderer(|_, position, message| {
        assert_ne!(position.offset, 2, "the renderer fails on offset 2");
        message
    });
    let joined = std::sync::Arc::new(std::sync::Mutex::new(None));
    let answer = joined.clone();
    h.join(
        c,
        "t",
        JoinOptions::default().since(at(0)).on_joined(move |j| {
            *lock(&answer) = Some(j.clone());
            vec!["hello".into()]
        }),
    )
    .unwrap();
    let (_, _, done) = lock(&h.backplane.locates).remove(0);
    let missed = (1..=3).map(|o| (at(o), format!("m{o}").into())).collect();
    done(Located::new(at(3), Some(missed)));
    h.hub.deliver_numbered("t", &at(4), "m4".into(), None);
    h.pump_all();
    let joined = lock(&joined).clone().unwrap();
    assert_eq!((joined.recovered, joined.replayed), (Some(false), 0));
    // Never a partial recovery: nothing replayed, then live.
    assert_eq!(h.received(c), ["hello", "m4"]);
}
