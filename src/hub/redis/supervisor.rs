//! The backplane's supervisor, on a thread of its own: it runs the backplane's
//! task (a tokio runtime each time) and, if it panics or ends unasked, counts
//! and logs it, settles what it left (see [`Supervisor::settle`]) and starts it
//! again after a back-off; the new task subscribes to what the hub wants and
//! announces its presence again. Meanwhile publications are delivered here
//! (counted as dropped) and joins answered from here.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
    time::{Duration, Instant},
};

use fred::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::{
    conns::{connect, RedisError},
    counters::add,
    events::Ask,
    shared::{panic_message, Shared, DOWN, STARTING, STOPPED, STOPPING, UP},
    subscriptions::backoff,
    task::{Exit, Task},
};
use crate::{hub::backplane::Publication, settings::RedisSettings};

/// What lives across the task's restarts, and runs them.
pub(super) struct Supervisor {
    pub config: Config,
    pub settings: RedisSettings,
    pub origin: u64,
    pub shared: Arc<Shared>,
    pub asks: mpsc::UnboundedReceiver<Ask>,
    pub pubs: mpsc::UnboundedReceiver<Publication>,
    pub ready: Option<oneshot::Sender<Result<(), RedisError>>>,
}

impl Supervisor {
    /// Run tasks until one stops; `finished` is told at the end.
    pub fn run(mut self, finished: oneshot::Sender<()>) {
        let mut attempts = 0u32;
        loop {
            let outcome =
                catch_unwind(AssertUnwindSafe(
                    || match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime.block_on(self.task()),
                        Err(err) => {
                            tracing::error!(%err, "redis backplane: no runtime");
                            Exit::ConnectFailed
                        }
                    },
                ));
            self.shared.set_state_unless_stopping(DOWN);
            self.settle();
            match outcome {
                Ok(Exit::Stopped | Exit::NotStarted) => break,
                Ok(Exit::ConnectFailed) => attempts = attempts.saturating_add(1),
                Ok(Exit::Lost(why)) => {
                    attempts = 1;
                    add(&self.shared.counters.restarts, 1);
                    tracing::error!(why, "redis backplane task ended: restarting it");
                }
                Err(panic) => {
                    attempts = 1;
                    add(&self.shared.counters.restarts, 1);
                    tracing::error!(
                        panic = panic_message(&*panic),
                        "redis backplane task panicked: restarting it"
                    );
                }
            }
            let wait = backoff(
                self.settings.reconnect_initial,
                self.settings.reconnect_max,
                attempts,
            );
            if self.wait_or_stop(wait) {
                break;
            }
        }
        self.shared.set_state(STOPPED);
        self.settle();
        let _ = finished.send(());
    }

    /// After a task: publications it sent and never saw answered are counted
    /// as abandoned; those still queued are delivered here (dropped for the
    /// others); joins it left unanswered are answered from here.
    fn settle(&mut self) {
        let abandoned = self
            .shared
            .awaiting
            .swap(0, std::sync::atomic::Ordering::AcqRel);
        self.shared.release(abandoned);
        add(&self.shared.counters.abandoned, abandoned as u64);
        while let Ok(publication) = self.pubs.try_recv() {
            self.shared.release(1);
            add(&self.shared.counters.dropped, 1);
            add(&self.shared.counters.dropped_while_down, 1);
            self.shared.local(publication);
        }
        self.shared.answer_orphans();
    }

    /// Wait `wait` before the next task; true when a stop came meanwhile.
    fn wait_or_stop(&mut self, wait: Duration) -> bool {
        if self.shared.state() == STOPPING {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        else {
            std::thread::sleep(wait);
            return self.shared.state() == STOPPING;
        };
        let shared = self.shared.clone();
        runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.stop.notified() => {}
            }
        });
        self.shared.state() == STOPPING
    }

    /// One task: connect, then serve until stopped or lost.
    async fn task(&mut self) -> Exit {
        let first = self.ready.is_some();
        let conns = match connect(&self.config, &self.settings).await {
            Ok(conns) => conns,
            Err(err) => {
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(err));
                    return Exit::NotStarted;
                }
                tracing::warn!(%err, "redis backplane: cannot connect yet");
                return Exit::ConnectFailed;
            }
        };
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Ok(()));
        }
        let (mut task, answers) = Task::new(conns, &self.settings, self.origin, &self.shared);
        if !self.shared.set_state_from(&[STARTING, DOWN], UP) {
            // A stop came while it connected.
            task.stopping = Some(Instant::now());
        }
        if !first {
            task.restarted();
        }
        task.run(&mut self.asks, &mut self.pubs, answers).await
    }
}
