//! A client's connections inside its actor: each one's driver runs in the actor's
//! context (`attach_input`), its bytes go out through a task of its own (the pump),
//! and the session, also in the actor's context, waits for the connection's end to
//! reconnect or to stop the actor.

use std::{
    future::{poll_fn, Future},
    pin::Pin,
    rc::Rc,
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use actix::{ActorContext, ActorFuture, Context};
use futures_core::Stream;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::{
    connect::{establish, Established, Plan, WriteHalf},
    ClientError,
};
use crate::{
    actor::{attach, open_core, Close, Conn, ConnTask, Control, WebSocketActor},
    proto::{CloseCode, Role},
    settings::ReconnectPolicy,
};

/// Start serving `established` in the actor's context: its driver there, its pump
/// as a task. Returns the connection's `Conn`.
pub(crate) fn start<A: WebSocketActor>(
    ctx: &mut Context<A>,
    plan: &Plan,
    established: Established,
    control: Control<A>,
) -> Conn {
    let span = tracing::debug_span!(
        "websocket",
        role = "client",
        url = %plan.url,
        peer = %established.peer,
        protocol = established.protocol.as_deref().unwrap_or(""),
    );
    let core = open_core(
        Role::Client,
        &plan.settings.protocol,
        established.protocol,
        established.deflate,
    );
    let connection = &plan.settings.connection;
    let (conn, task) = attach(ctx, core, established.input, control, connection, span);
    actix_rt::spawn(pump(task, established.output, connection.close_timeout));
    conn
}

/// Write the connection's output to the transport until the connection is over,
/// then close the transport.
///
/// The writer ends when the core says so: for a client after a clean close, once
/// the server closed TCP (RFC 6455 §7.1.1: "the server SHOULD close the TCP
/// connection first ... the client SHOULD wait for the server to close"), or when
/// the close timed out or the connection failed.
async fn pump(mut task: ConnTask, mut out: WriteHalf, close_timeout: Duration) {
    while let Some(Ok(chunk)) = poll_fn(|cx| Pin::new(&mut task).poll_next(cx)).await {
        let write = async {
            out.write_all(&chunk).await?;
            out.flush().await
        };
        // A write waits as long as the peer is slow; once the connection is being
        // cut (close timeout, actor stopped), a peer that reads nothing gets
        // `close_timeout` more, then the transport is dropped.
        let cut = async {
            poll_fn(|cx| task.poll_cut(cx)).await;
            tokio::time::sleep(close_timeout).await;
        };
        tokio::select! {
            written = write => if written.is_err() { break },
            () = cut => break,
        }
    }
    drop(task);
    // TLS: close_notify; TCP: FIN. Then the write half is dropped.
    let _ = tokio::time::timeout(close_timeout, out.shutdown()).await;
}

/// Runs in the client's actor context for as long as the client connects: waits for
/// each connection's driver to finish (its `Close` delivered), then reconnects or
/// stops the actor.
pub(crate) struct Session<A: WebSocketActor> {
    plan: Rc<Plan>,
    conn: Conn,
    control: Control<A>,
    reconnecting: Option<Reconnecting>,
    /// Told the last connection's `Close` when the session ends ([`Client::run`](super::Client::run)).
    done: Option<oneshot::Sender<Close>>,
}

/// The attempts of [`reconnect`], in flight.
type Reconnecting = Pin<Box<dyn Future<Output = Result<Established, ClientError>>>>;

impl<A: WebSocketActor> Session<A> {
    pub fn new(
        plan: Rc<Plan>,
        conn: Conn,
        control: Control<A>,
        done: Option<oneshot::Sender<Close>>,
    ) -> Self {
        Session {
            plan,
            conn,
            control,
            reconnecting: None,
            done,
        }
    }

    /// `run` learns the last connection's `Close`.
    fn tell_done(&mut self) {
        if let Some(done) = self.done.take() {
            let close = self.conn.close_event().unwrap_or(Close {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                was_clean: false,
            });
            let _ = done.send(close);
        }
    }

    /// The session ends: the actor stops, and `run` learns the last `Close`.
    fn end(&mut self, ctx: &mut Context<A>) -> Poll<()> {
        self.tell_done();
        ctx.stop();
        Poll::Ready(())
    }
}

impl<A: WebSocketActor> ActorFuture<A> for Session<A> {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        _: &mut A,
        ctx: &mut Context<A>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(reconnecting) = &mut this.reconnecting {
                match reconnecting.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(established)) => {
                        this.reconnecting = None;
                        this.conn = start(ctx, &this.plan, established, this.control.clone());
                        continue;
                    }
                    Poll::Ready(Err(err)) => {
                        tracing::warn!(url = %this.plan.url, error = %err, "websocket reconnect gave up");
                        return this.end(ctx);
                    }
                }
            }
            if this.conn.wait_finished(cx.waker()) {
                return Poll::Pending;
            }
            let close_requested = this.conn.closed_by_user();
            match &this.plan.settings.client.reconnect {
                Some(policy) if !close_requested && policy.allows(1) => {
                    let plan = this.plan.clone();
                    let policy = policy.clone();
                    this.reconnecting = Some(Box::pin(reconnect(plan, policy)));
                }
                _ => {
                    // The actor lives as long as its connection, as on the server.
                    return this.end(ctx);
                }
            }
        }
    }
}

impl<A: WebSocketActor> Drop for Session<A> {
    fn drop(&mut self) {
        // The actor stopped (an endpoint stops on its `Close`) before the session
        // saw the end.
        self.tell_done();
    }
}

/// Attempts in a row, each after its back-off, until one succeeds, an error is not
/// transient, or the policy's attempts are spent.
async fn reconnect(plan: Rc<Plan>, policy: ReconnectPolicy) -> Result<Established, ClientError> {
    let mut attempt = 1;
    loop {
        let delay = policy.jittered_delay(attempt);
        tracing::debug!(url = %plan.url, attempt, ?delay, "websocket reconnecting");
        tokio::time::sleep(delay).await;
        match establish(&plan).await {
            Ok(established) => return Ok(established),
            Err(err) if err.is_transient() && policy.allows(attempt.saturating_add(1)) => {
                tracing::debug!(url = %plan.url, attempt, error = %err, "websocket reconnect failed");
                attempt = attempt.saturating_add(1);
            }
            Err(err) => return Err(err),
        }
    }
}
