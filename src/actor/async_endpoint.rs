//! The async form: an [`AsyncEndpoint`] (a trait whose event methods are `async`)
//! served by the library's own actor, one event after the other, or with up to N
//! messages handled at once ([`AsyncServe::concurrent`]).
//!
//! Each event becomes one future (the endpoint's method, with the endpoint moved
//! into it and handed back when it ends). It is polled at once, in the handler the
//! driver calls: a handler that does not wait costs no allocation, no task and no
//! pause. One that waits is left in its slot (one box per connection, reused), the
//! connection stops reading (`Conn::pause_reading`: the input held stays what one
//! read brought), and a task of its own polls it until it ends, starts what
//! waited, and lets the connection read again. That task is not the connection's:
//! an endpoint's last futures (and its `on_close`) run to their end even when the
//! transport went first.

use std::{
    cell::RefCell,
    collections::VecDeque,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context as TaskContext, Poll, Wake, Waker},
};

use actix::{Actor, Context, Handler};
use atomic_waker::AtomicWaker;
use bytes::Bytes;

use super::{
    serve::Control, slab::with_owned, Close, Conn, Error, Message, Open, Ping, Pong, Serve,
    WithControl,
};
use crate::proto::CloseCode;

/// The application's end of a connection, as `async` callbacks: implement the
/// methods you need, the others do nothing (pings are answered either way while
/// `auto_pong` is on). Serve it with [`async_endpoint`] wherever an actor goes
/// (`ws::start`, `Server::listen`'s factory, `Client::connect`, `Client::run`).
///
/// Order is kept: the next event is handed over only once the previous method's
/// future has finished, and the connection stops reading meanwhile (the kernel's
/// TCP window pushes back on the peer). [`on_open`](Self::on_open) comes first,
/// [`on_close`](Self::on_close) exactly once and last, after every earlier future
/// has finished (also when the transport ended while one was running). Where order
/// does not matter, [`AsyncServe::concurrent`] handles up to N messages at once.
/// The endpoint outlives its connection's calls: a client with a reconnect policy
/// calls `on_open` again on the same endpoint for the next connection.
///
/// A method that panics fails the connection with 1011, as an
/// [`Endpoint`](super::Endpoint)'s does, and the endpoint (moved into the panicked
/// future) is gone: nothing more is called, `on_close` included.
///
/// The futures run on the connection's thread (they need not be `Send`), so the
/// [`Conn`] sends from them without a lock. A method that does not wait costs no
/// allocation, task or pause: measured on a 20-byte echo, about 430-450
/// instructions more per message than an `Endpoint`'s (5,880 against 5,420 through
/// the route, 1.08x; 4,410 against 3,990 on the standalone server, 1.11x). One that
/// waits costs a wake of the endpoint's task, the pause and the resumption of
/// reading, and another turn of the connection's: about 4,700-4,800 more again
/// (10,550 and 9,260 for an echo whose handler waits once). The connection's own
/// end does not wait for the futures: `Client::run` returns, and a server's
/// connection is gone, while an `on_close` that awaits still runs (on the runtime,
/// until it stops).
///
/// ```no_run
/// use std::time::Duration;
/// use websocket_driver as ws;
///
/// struct Lookup;
///
/// impl ws::AsyncEndpoint for Lookup {
///     async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
///         // A database call, an HTTP request, a timer: the next message waits.
///         tokio::time::sleep(Duration::from_millis(5)).await;
///         conn.send(msg);
///     }
/// }
///
/// async fn route(req: ws::Upgrade) -> impl actix_web::Responder {
///     ws::start(ws::async_endpoint(Lookup), &req)
/// }
/// ```
///
/// Coming from actix-ws: the loop over its `MessageStream` becomes these methods,
/// its `Session` the [`Conn`]; see the [migration guide](https://github.com/websocket-driver/websocket-driver/blob/main/docs/migrating.md).
#[doc(alias = "MessageStream")]
#[doc(alias = "StreamHandler")]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `ws::AsyncEndpoint`",
    label = "`ws::async_endpoint(..)` takes a `ws::AsyncEndpoint`",
    note = "implement it (`impl ws::AsyncEndpoint for {Self} {{}}`: every method has a default)"
)]
// The futures stay on the connection's thread, so no `Send` bound is wanted on them.
#[allow(async_fn_in_trait, unused_variables)]
pub trait AsyncEndpoint: Sized + 'static {
    /// The connection is open; first of all.
    async fn on_open(&mut self, conn: &Conn) {}

    /// A whole message arrived.
    async fn on_message(&mut self, conn: &Conn, message: Message) {}

    /// A Ping arrived. With `auto_pong` on (the default) its Pong is queued already;
    /// with it off, answer with [`Conn::send_pong`] (the default method does).
    async fn on_ping(&mut self, conn: &Conn, payload: Bytes) {
        if !conn.auto_pong() {
            conn.send_pong(&payload);
        }
    }

    /// A Pong arrived.
    async fn on_pong(&mut self, conn: &Conn, payload: Bytes) {}

    /// The connection failed (at most once, before [`on_close`](Self::on_close)).
    async fn on_error(&mut self, conn: &Conn, error: Error) {}

    /// The connection closed: its last call, after every earlier future finished.
    async fn on_close(&mut self, conn: &Conn, close: Close) {}
}

/// One event for the endpoint: which method to call.
#[derive(Debug)]
enum Call {
    Open,
    Message(Message),
    Ping(Bytes),
    Pong(Bytes),
    Error(Error),
    Close(Close),
}

impl Call {
    /// Open, Error and Close run alone, with the endpoint itself (not a copy), after
    /// everything before them and before anything after them.
    fn alone(&self) -> bool {
        matches!(self, Call::Open | Call::Error(_) | Call::Close(_))
    }
}

/// Run one event's method on `endpoint`; hands the endpoint back.
async fn call<E: AsyncEndpoint>(mut endpoint: E, conn: Conn, call: Call) -> E {
    match call {
        Call::Open => endpoint.on_open(&conn).await,
        Call::Message(message) => endpoint.on_message(&conn, message).await,
        Call::Ping(payload) => endpoint.on_ping(&conn, payload).await,
        Call::Pong(payload) => endpoint.on_pong(&conn, payload).await,
        Call::Error(error) => endpoint.on_error(&conn, error).await,
        Call::Close(close) => endpoint.on_close(&conn, close).await,
    }
    endpoint
}

/// Serve `endpoint` (an [`AsyncEndpoint`]) with the library's actor, every event
/// included, one at a time: `ws::start(ws::async_endpoint(Lookup), &req)`.
pub fn async_endpoint<E: AsyncEndpoint>(endpoint: E) -> AsyncServe<E, impl Future<Output = E>> {
    AsyncServe {
        endpoint,
        make: call::<E>,
        limit: 1,
        fork: None,
    }
}

/// What [`async_endpoint`] returns: serves wherever an actor goes. `F` is the
/// future of one event (named by the compiler, never by you).
pub struct AsyncServe<E, F> {
    endpoint: E,
    make: fn(E, Conn, Call) -> F,
    limit: usize,
    fork: Option<fn(&E) -> E>,
}

impl<E, F> std::fmt::Debug for AsyncServe<E, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncServe")
            .field("concurrent", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<E: AsyncEndpoint + Clone, F> AsyncServe<E, F> {
    /// Handle up to `messages` messages (and pings and pongs) at once, for an
    /// endpoint whose messages need no order (each carries its own request id, say):
    /// the connection stops reading while that many are running. Each message runs
    /// on a clone of the endpoint as `on_open` left it (keep what they share behind
    /// an `Rc` or `Arc`); `on_open`, `on_error` and `on_close` still run alone, with
    /// the endpoint itself, after every message before them. At least 1; 1 is the
    /// default (one event after the other).
    pub fn concurrent(mut self, messages: usize) -> Self {
        self.limit = messages.max(1);
        self.fork = (self.limit > 1).then_some(E::clone as fn(&E) -> E);
        self
    }
}

impl<E, F> Serve for AsyncServe<E, F>
where
    E: AsyncEndpoint,
    F: Future<Output = E> + 'static,
{
    type Actor = AsyncEndpointActor<E, F>;

    fn into_parts(self) -> (Self::Actor, Control<Self::Actor>) {
        let core = Core {
            conn: None,
            endpoint: Some(self.endpoint),
            make: self.make,
            fork: self.fork,
            limit: self.limit,
            slots: Vec::new(),
            in_flight: 0,
            alone: false,
            queue: VecDeque::new(),
            paused: false,
            task: None,
            runner: false,
            closed: false,
            finished: false,
        };
        WithControl(AsyncEndpointActor {
            core: Rc::new(RefCell::new(core)),
        })
        .into_parts()
    }
}

/// The library's actor that serves an [`AsyncEndpoint`]; made by
/// [`async_endpoint`].
pub struct AsyncEndpointActor<E: AsyncEndpoint, F: Future<Output = E> + 'static> {
    core: Rc<RefCell<Core<E, F>>>,
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> std::fmt::Debug
    for AsyncEndpointActor<E, F>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = self.core.borrow();
        f.debug_struct("AsyncEndpointActor")
            .field("conn", &core.conn.as_ref().map(Conn::id))
            .field("in_flight", &core.in_flight)
            .field("waiting", &core.queue.len())
            .finish()
    }
}

/// The endpoint's state, shared by the actor and the task that polls what waits.
struct Core<E, F> {
    conn: Option<Conn>,
    /// `None` while lent to a future that runs alone, and after the end.
    endpoint: Option<E>,
    make: fn(E, Conn, Call) -> F,
    /// Clones the endpoint for a message that runs beside others.
    fork: Option<fn(&E) -> E>,
    /// At most this many futures at once.
    limit: usize,
    slots: Vec<Slot<F>>,
    in_flight: usize,
    /// A future that runs alone is in flight.
    alone: bool,
    /// Events that wait for their turn.
    queue: VecDeque<Call>,
    /// Whether we paused the connection's reading.
    paused: bool,
    /// The waker of the task polling the futures that wait (made with the first
    /// slot), and whether that task runs.
    task: Option<Arc<AtomicWaker>>,
    runner: bool,
    /// The `Close` came (or was made up when the actor went without one).
    closed: bool,
    /// The connection's calls are over: `on_close` ran, or a panic took the
    /// endpoint.
    finished: bool,
}

/// One future's place: the box is made once and reused by the events that follow.
struct Slot<F> {
    /// `None` while the future is being polled (out of the core).
    future: Option<Boxed<F>>,
    wake: Arc<SlotWake>,
    waker: Waker,
    busy: bool,
    /// The future holds the endpoint itself (not a clone).
    owner: bool,
    /// The future is `on_close`.
    last: bool,
}

/// A slot's waker: notes that its future was woken and wakes the task polling it.
struct SlotWake {
    woken: AtomicBool,
    task: Arc<AtomicWaker>,
}

impl Wake for SlotWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

type Shared<E, F> = Rc<RefCell<Core<E, F>>>;

/// A future's box, reused by the events that follow.
type Boxed<F> = Pin<Box<Option<F>>>;

impl<E, F> Core<E, F> {
    /// Whether `next` may start now.
    fn may_start(&self, next: &Call) -> bool {
        if self.alone {
            return false;
        }
        if self.fork.is_none() || next.alone() {
            self.in_flight == 0
        } else {
            self.in_flight < self.limit
        }
    }

    /// Whether reading should be paused: something waits for its turn, or no other
    /// message could start.
    fn wants_pause(&self) -> bool {
        !self.queue.is_empty() || self.alone || self.in_flight >= self.limit
    }

    /// A free slot's index (a new slot when every one is busy).
    fn free_slot(&mut self) -> usize {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| !s.busy && s.future.is_some())
        {
            return i;
        }
        let task = self
            .task
            .get_or_insert_with(|| Arc::new(AtomicWaker::new()))
            .clone();
        let wake = Arc::new(SlotWake {
            woken: AtomicBool::new(false),
            task,
        });
        self.slots.push(Slot {
            future: Some(Box::pin(None)),
            waker: Waker::from(wake.clone()),
            wake,
            busy: false,
            owner: false,
            last: false,
        });
        self.slots.len() - 1
    }
}

/// Hand `call` over: started (and polled) at once when its turn has come, else
/// queued.
fn deliver<E: AsyncEndpoint, F: Future<Output = E> + 'static>(core: &Shared<E, F>, call: Call) {
    let started = {
        let mut c = core.borrow_mut();
        if matches!(call, Call::Close(_)) {
            c.closed = true;
        }
        if c.queue.is_empty() && c.may_start(&call) {
            c.start(call)
        } else {
            c.queue.push_back(call);
            None
        }
    };
    if let Some((i, future, waker)) = started {
        poll_slot(core, i, future, &waker);
    }
    let settled = {
        let c = core.borrow();
        c.queue.is_empty() && c.paused == (c.wants_pause() && !c.finished)
    };
    if !settled {
        pump(core);
    }
}

/// Start what waits, in order, while its turn has come; then pause or resume the
/// reading to match.
fn pump<E: AsyncEndpoint, F: Future<Output = E> + 'static>(core: &Shared<E, F>) {
    loop {
        let started = {
            let mut c = core.borrow_mut();
            match c.queue.front() {
                Some(next) if c.may_start(next) => {
                    let call = c.queue.pop_front().expect("a front");
                    c.start(call)
                }
                _ => break,
            }
        };
        if let Some((i, future, waker)) = started {
            poll_slot(core, i, future, &waker);
        }
    }
    set_pause(core);
}

impl<E: AsyncEndpoint, F: Future<Output = E>> Core<E, F> {
    /// Put `call`'s future in a free slot; returns the slot and the future (taken
    /// out, to be polled with the core free). `None` when there is nothing to call.
    fn start(&mut self, call: Call) -> Option<(usize, Boxed<F>, Waker)> {
        let alone = self.fork.is_none() || call.alone();
        let last = matches!(call, Call::Close(_));
        let endpoint = if alone {
            self.endpoint.take()
        } else {
            match (self.fork, self.endpoint.as_ref()) {
                (Some(fork), Some(endpoint)) => Some(fork(endpoint)),
                _ => None,
            }
        };
        let (Some(endpoint), Some(conn)) = (endpoint, self.conn.clone()) else {
            // After a panic (the endpoint went with it): nothing to call.
            if last {
                self.finished = true;
            }
            return None;
        };
        let i = self.free_slot();
        self.in_flight += 1;
        self.alone |= alone;
        let slot = &mut self.slots[i];
        slot.busy = true;
        slot.owner = alone;
        slot.last = last;
        let mut future = slot.future.take().expect("a free slot holds its box");
        future.set(Some((self.make)(endpoint, conn, call)));
        Some((i, future, slot.waker.clone()))
    }
}

/// Poll slot `i`'s `future` (taken out of the core meanwhile: the endpoint's code
/// runs with the core free) and put it back; settle it when it ended.
fn poll_slot<E: AsyncEndpoint, F: Future<Output = E> + 'static>(
    core: &Shared<E, F>,
    i: usize,
    mut future: Boxed<F>,
    waker: &Waker,
) {
    let mut cx = TaskContext::from_waker(waker);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        future.as_mut().as_pin_mut().map(|f| f.poll(&mut cx))
    }));
    let endpoint = match outcome {
        Ok(Some(Poll::Pending)) => {
            core.borrow_mut().slots[i].future = Some(future);
            ensure_runner(core);
            return;
        }
        Ok(Some(Poll::Ready(endpoint))) => Some(endpoint),
        Ok(None) => None,
        Err(_) => {
            panicked(core);
            None
        }
    };
    // Drop the finished future here, not when the slot is next used.
    future.set(None);
    let mut c = core.borrow_mut();
    let slot = &mut c.slots[i];
    slot.future = Some(future);
    slot.busy = false;
    let (owner, last) = (slot.owner, slot.last);
    c.in_flight -= 1;
    if owner {
        c.alone = false;
    }
    if last {
        c.finished = true;
    }
    // The endpoint itself is kept (a reconnecting client's next connection opens
    // on it); a clone that is done is dropped with the core free (its drop is the
    // application's code).
    let back = endpoint.filter(|_| owner);
    if back.is_some() {
        c.endpoint = back;
    } else {
        drop(c);
    }
}

/// The endpoint's code panicked: the connection fails with 1011 (as an
/// [`Endpoint`](super::Endpoint)'s would), and the endpoint is not called again.
fn panicked<E, F>(core: &Shared<E, F>) {
    let (conn, endpoint) = {
        let mut c = core.borrow_mut();
        c.queue.clear();
        c.finished = true;
        (c.conn.clone(), c.endpoint.take())
    };
    // The futures still running may go on; nothing new starts.
    drop(endpoint);
    if let Some(conn) = conn {
        tracing::error!(id = %conn.id(), "websocket handler panicked; closing with 1011");
        with_owned(conn.shared(), |owned| owned.fail(Error::HandlerPanicked));
    }
}

/// Pause or resume the connection's reading to match what waits.
fn set_pause<E, F>(core: &Shared<E, F>) {
    let (conn, pause) = {
        let mut c = core.borrow_mut();
        let pause = c.wants_pause() && !c.finished;
        if pause == c.paused {
            return;
        }
        c.paused = pause;
        (c.conn.clone(), pause)
    };
    if let Some(conn) = conn {
        if pause {
            conn.pause_reading();
        } else {
            conn.resume_reading();
        }
    }
}

/// A future waits: make sure a task polls it.
fn ensure_runner<E: AsyncEndpoint, F: Future<Output = E> + 'static>(core: &Shared<E, F>) {
    let task = {
        let mut c = core.borrow_mut();
        if c.runner {
            return;
        }
        c.runner = true;
        c.task.clone().expect("a slot made the task's waker")
    };
    let runner = Runner {
        core: core.clone(),
        task,
    };
    // Outside an actix arbiter (a runtime shutting down drops the actor) there is
    // nowhere to run it: it is dropped, and the endpoint with it.
    if catch_unwind(AssertUnwindSafe(|| actix_rt::spawn(runner))).is_err() {
        tracing::debug!("websocket endpoint: no arbiter to finish its futures on");
    }
}

/// The task that polls the futures that wait, starts what waits after them, and
/// ends when nothing is in flight.
struct Runner<E, F> {
    core: Shared<E, F>,
    task: Arc<AtomicWaker>,
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Future for Runner<E, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.task.register(cx.waker());
        loop {
            let woken = {
                let mut c = this.core.borrow_mut();
                let i = c
                    .slots
                    .iter()
                    .position(|s| s.busy && s.wake.woken.swap(false, Ordering::AcqRel));
                i.and_then(|i| {
                    let slot = &mut c.slots[i];
                    slot.future.take().map(|f| (i, f, slot.waker.clone()))
                })
            };
            let Some((i, future, waker)) = woken else {
                break;
            };
            poll_slot(&this.core, i, future, &waker);
        }
        pump(&this.core);
        let mut c = this.core.borrow_mut();
        if c.in_flight == 0 {
            c.runner = false;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Actor for AsyncEndpointActor<E, F> {
    type Context = Context<Self>;
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Handler<Open> for AsyncEndpointActor<E, F> {
    type Result = ();
    fn handle(&mut self, open: Open, _: &mut Context<Self>) {
        {
            // A new connection (a reconnecting client's next one, on the same
            // endpoint): reading is not paused, nothing is closed yet.
            let mut c = self.core.borrow_mut();
            c.conn = Some(open.conn);
            c.closed = false;
            c.finished = c.endpoint.is_none();
            c.paused = false;
        }
        deliver(&self.core, Call::Open);
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Handler<Message>
    for AsyncEndpointActor<E, F>
{
    type Result = ();
    fn handle(&mut self, message: Message, _: &mut Context<Self>) {
        deliver(&self.core, Call::Message(message));
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Handler<Ping> for AsyncEndpointActor<E, F> {
    type Result = ();
    fn handle(&mut self, ping: Ping, _: &mut Context<Self>) {
        deliver(&self.core, Call::Ping(ping.0));
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Handler<Pong> for AsyncEndpointActor<E, F> {
    type Result = ();
    fn handle(&mut self, pong: Pong, _: &mut Context<Self>) {
        deliver(&self.core, Call::Pong(pong.0));
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Handler<Error>
    for AsyncEndpointActor<E, F>
{
    type Result = ();
    fn handle(&mut self, error: Error, _: &mut Context<Self>) {
        deliver(&self.core, Call::Error(error));
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Handler<Close>
    for AsyncEndpointActor<E, F>
{
    type Result = ();
    fn handle(&mut self, close: Close, _: &mut Context<Self>) {
        // The actor is not stopped here: it ends with its connection (the server's
        // connection task, or the client when it stops reconnecting), while the
        // endpoint's own task finishes `on_close` if it waits.
        deliver(&self.core, Call::Close(close));
    }
}

impl<E: AsyncEndpoint, F: Future<Output = E> + 'static> Drop for AsyncEndpointActor<E, F> {
    fn drop(&mut self) {
        // The actor went without its `Close` (the transport ended while a future
        // ran and reading was paused, or the arbiter stopped): `on_close` still
        // comes, after what runs, with how the connection ended.
        let Ok(mut c) = self.core.try_borrow_mut() else {
            return;
        };
        if c.closed || c.conn.is_none() || std::thread::panicking() {
            return;
        }
        c.closed = true;
        let close = c
            .conn
            .as_ref()
            .and_then(|conn| conn.shared().close_event())
            .unwrap_or(Close {
                code: CloseCode::GOING_AWAY,
                reason: String::new(),
                was_clean: false,
            });
        c.queue.push_back(Call::Close(close));
        drop(c);
        pump(&self.core);
    }
}
