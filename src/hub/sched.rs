//! Switch points of the hub's membership code, for the tests that force
//! interleavings: each marks a place between two critical sections (no lock
//! held) where another thread may run. Outside the unit tests they compile to
//! nothing.
//!
//! Under [`run`] (unit tests only), the threads of a test run one at a time and
//! switch only at these points, the next thread drawn by a random generator
//! started from a schedule number: one number, one interleaving, replayed
//! exactly.

/// A place where another thread may run (no lock is held here).
#[cfg(not(test))]
#[inline(always)]
pub(super) fn point(_: &'static str) {}

#[cfg(test)]
pub(super) use self::forced::{point, run};

#[cfg(test)]
mod forced {
    use std::{
        cell::RefCell,
        sync::{Arc, Condvar, Mutex},
        time::Duration,
    };

    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Threads of one test, run one at a time.
    struct Sched {
        state: Mutex<State>,
        turn: Condvar,
    }

    struct State {
        /// The thread allowed to run (`None` before all started, or after all ended).
        running: Option<usize>,
        alive: Vec<bool>,
        started: usize,
        rng: StdRng,
        /// Each switch point passed: the thread and the point.
        trace: Vec<(usize, &'static str)>,
    }

    thread_local! {
        static CURRENT: RefCell<Option<(Arc<Sched>, usize)>> = const { RefCell::new(None) };
    }

    impl Sched {
        fn lock(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Let the next thread (drawn) run, and wait for `me`'s turn.
        fn switch(&self, me: Option<usize>, mut state: std::sync::MutexGuard<'_, State>) {
            let alive: Vec<usize> = (0..state.alive.len()).filter(|&i| state.alive[i]).collect();
            state.running = if alive.is_empty() {
                None
            } else {
                let at = state.rng.random_range(0..alive.len());
                Some(alive[at])
            };
            self.turn.notify_all();
            if let Some(me) = me {
                drop(self.wait_turn(me, state));
            }
        }

        /// Wait until it is `me`'s turn. Bounded: a thread blocked elsewhere (a
        /// switch point inside a critical section) would otherwise hang the test.
        fn wait_turn<'a>(
            &'a self,
            me: usize,
            mut state: std::sync::MutexGuard<'a, State>,
        ) -> std::sync::MutexGuard<'a, State> {
            for _ in 0..1_000 {
                if state.running == Some(me) {
                    return state;
                }
                state = self
                    .turn
                    .wait_timeout(state, Duration::from_millis(10))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            panic!("forced interleaving stuck: thread {me} never got its turn");
        }
    }

    /// Marks the end of a thread, even when its body panics.
    struct Finish(Arc<Sched>, usize);

    impl Drop for Finish {
        fn drop(&mut self) {
            let mut state = self.0.lock();
            state.alive[self.1] = false;
            self.0.switch(None, state);
        }
    }

    /// Under [`run`]: let another thread run here.
    pub(in crate::hub) fn point(name: &'static str) {
        CURRENT.with(|current| {
            if let Some((sched, me)) = &*current.borrow() {
                let mut state = sched.lock();
                state.trace.push((*me, name));
                sched.switch(Some(*me), state);
            }
        });
    }

    /// Run `bodies` on threads of their own, one at a time, switching only at
    /// the switch points, in the order schedule number `schedule` draws. Returns
    /// the trace: each
    /// switch point passed, with its thread.
    pub(in crate::hub) fn run(
        schedule: u64,
        bodies: Vec<Box<dyn FnOnce() + Send + '_>>,
    ) -> Vec<(usize, &'static str)> {
        let n = bodies.len();
        let sched = Arc::new(Sched {
            state: Mutex::new(State {
                running: None,
                alive: vec![true; n],
                started: 0,
                rng: StdRng::seed_from_u64(schedule),
                trace: Vec::new(),
            }),
            turn: Condvar::new(),
        });
        std::thread::scope(|scope| {
            for (me, body) in bodies.into_iter().enumerate() {
                let sched = sched.clone();
                scope.spawn(move || {
                    CURRENT.with(|c| *c.borrow_mut() = Some((sched.clone(), me)));
                    let _finish = Finish(sched.clone(), me);
                    {
                        let mut state = sched.lock();
                        state.started += 1;
                        if state.started == n {
                            sched.switch(Some(me), state);
                        } else {
                            // The first turn is drawn once all started.
                            drop(sched.wait_turn(me, state));
                        }
                    }
                    body();
                    CURRENT.with(|c| *c.borrow_mut() = None);
                });
            }
        });
        let state = sched.lock();
        state.trace.clone()
    }
}
