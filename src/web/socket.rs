//! A handle on a route connection's TCP socket, so that the connection can end the
//! socket itself when actix-http would keep it open.
//!
//! actix-http owns the socket of an actix-web route and ends it only when its
//! dispatcher is done, which a WebSocket cannot make prompt by itself (see
//! `on_connect` in the `web` module, and the README's Design section):
//!
//! - after the response body (the connection's output) ends, the dispatcher
//!   writes what it holds, then lingers, reading, until the peer closes or
//!   `client_disconnect_timeout` (1 s by default) passes, and only then sends its
//!   FIN; a WebSocket server "MUST close the underlying TCP connection immediately"
//!   once the closing handshake is done (RFC 6455 §5.5.1, §7.1.1);
//! - while the peer does not read, the dispatcher waits for the socket to take its
//!   buffer and polls nothing else (not the body, no timer of its own): a peer that
//!   never reads keeps the socket, and what actix-http buffered for it, forever.
//!
//! With the socket's descriptor, the first is [`end_read`](SocketCut::end_read):
//! shutting down the socket's read side makes the lingering dispatcher read EOF
//! at once, so it closes (FIN) as soon as it has written what it holds; the output
//! already handed to it is not cut. The second is [`abort`](SocketCut::abort),
//! when the close times out (before the output ended, or after it, if actix-http
//! still cannot write it: [`watch_end`](SocketCut::watch_end)): shutting down both
//! sides fails the dispatcher's pending write, so it drops the socket at once, and
//! a zero linger time makes that close a reset, which frees the socket in the
//! kernel too (rather than leaving it to retransmit to a zero window for minutes).

use std::{net::SocketAddr, time::Duration};

/// The descriptor of a route connection's socket, borrowed from actix-http, with
/// the socket's two addresses.
///
/// The descriptor is open while the connection's writer (the response body) lives:
/// the dispatcher that owns the socket drops the body before or with it. Past
/// that, actix-http may close it, and the number may be reused: so every use first
/// checks that the descriptor is still the same socket (its inode number, unique
/// among open sockets) with the same local and peer addresses, and does nothing
/// otherwise. Used only on the connection's thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketCut {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    /// The socket's inode number: a descriptor number reused for another socket
    /// (even one between the same two addresses) has another.
    #[cfg(unix)]
    ino: u64,
    local: SocketAddr,
    peer: SocketAddr,
    /// How long the peer gets to take the output once it ended.
    close_timeout: Duration,
}

impl SocketCut {
    /// A handle on the socket `fd`, if it is a TCP socket connected to `peer`;
    /// [`watch_end`](Self::watch_end) gives the peer `close_timeout`.
    #[cfg(unix)]
    pub fn new(
        fd: std::os::fd::RawFd,
        peer: Option<SocketAddr>,
        close_timeout: Duration,
    ) -> Option<Self> {
        let (local, actual_peer) = Self::addrs(fd)?;
        let ino = Self::ino(fd)?;
        (Some(actual_peer) == peer).then_some(SocketCut {
            fd,
            ino,
            local,
            peer: actual_peer,
            close_timeout,
        })
    }

    #[cfg(unix)]
    fn addrs(fd: std::os::fd::RawFd) -> Option<(SocketAddr, SocketAddr)> {
        // SAFETY: only borrowed for two queries; a descriptor closed meanwhile
        // makes them fail (EBADF), one reused for something else is told apart by
        // its addresses.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let s = socket2::SockRef::from(&fd);
        Some((
            s.local_addr().ok()?.as_socket()?,
            s.peer_addr().ok()?.as_socket()?,
        ))
    }

    /// The inode number of the socket `fd` (`fstat`).
    #[cfg(unix)]
    fn ino(fd: std::os::fd::RawFd) -> Option<u64> {
        use std::os::{fd::FromRawFd, unix::fs::MetadataExt};
        // SAFETY: the `File` only borrows the descriptor for one `fstat`: it is
        // never dropped, so it never closes it.
        let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        file.metadata().ok().map(|m| m.ino())
    }

    /// Run `f` on the socket, if the descriptor is still this connection's.
    #[cfg(unix)]
    fn with(&self, f: impl FnOnce(socket2::SockRef<'_>)) {
        if Self::ino(self.fd) != Some(self.ino)
            || Self::addrs(self.fd) != Some((self.local, self.peer))
        {
            return;
        }
        // SAFETY: as in `addrs`: the descriptor is this connection's socket, which
        // nothing on this thread closes while `f` runs.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        f(socket2::SockRef::from(&fd));
    }

    /// The connection's output has ended: shut the read side down, so that the
    /// dispatcher, which reads until EOF before it closes, closes now.
    pub fn end_read(&self) {
        #[cfg(unix)]
        self.with(|s| {
            if let Err(err) = s.shutdown(std::net::Shutdown::Read) {
                tracing::trace!(error = %err, "websocket socket: shutdown(read) failed");
            }
        });
    }

    /// The close timed out: reset the connection and free the socket now, whatever
    /// is still queued for the peer.
    pub fn abort(&self) {
        #[cfg(unix)]
        self.with(|s| {
            tracing::debug!(peer = %self.peer, "websocket socket reset: the peer took nothing in time");
            let _ = s.set_linger(Some(Duration::ZERO));
            if let Err(err) = s.shutdown(std::net::Shutdown::Both) {
                tracing::trace!(error = %err, "websocket socket: shutdown(both) failed");
            }
        });
    }

    /// The output has ended: [`end_read`](Self::end_read), and
    /// [`abort_later`](Self::abort_later).
    pub fn watch_end(self) {
        self.end_read();
        self.abort_later();
    }

    /// [`abort`](Self::abort) after the close timeout if actix-http still holds
    /// the socket then (it cannot write what it buffered: the peer does not read).
    /// Queued on the thread's one timer task (a few dozen bytes per connection, not
    /// a task each: 10,000 connections closing in a second cost no megabytes): call
    /// it from a task of the connection (the writer's poll, the actor's).
    pub fn abort_later(self) {
        #[cfg(unix)]
        {
            // A close timeout set in code is not bounded by the settings' check:
            // past what an `Instant` holds, a year is as good as never.
            let now = tokio::time::Instant::now();
            let at = now
                .checked_add(self.close_timeout)
                .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
                .unwrap_or(now);
            later::push(at, self);
        }
    }
}

/// The sockets of this thread to reset once their close timeout passes, and the
/// one task that resets them.
#[cfg(unix)]
mod later {
    use std::{cell::RefCell, collections::VecDeque, rc::Rc};

    use tokio::{sync::Notify, time::Instant};

    use super::SocketCut;

    #[derive(Default)]
    struct Queue {
        /// In deadline order (with one close timeout, in the order they came).
        due: VecDeque<(Instant, SocketCut)>,
        /// The task that resets them is alive.
        running: bool,
    }

    thread_local! {
        static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
        /// Wakes the task when a socket is due before the one it waits for.
        static EARLIER: Rc<Notify> = Rc::new(Notify::new());
    }

    pub(super) fn push(at: Instant, socket: SocketCut) {
        let (spawn, earlier) = QUEUE.with_borrow_mut(|q| {
            let i = q.due.partition_point(|(t, _)| *t <= at);
            let earlier = i == 0 && !q.due.is_empty();
            q.due.insert(i, (at, socket));
            let spawn = !q.running;
            q.running = true;
            (spawn, earlier)
        });
        if spawn {
            actix_rt::spawn(run());
        } else if earlier {
            EARLIER.with(|n| n.notify_one());
        }
    }

    /// Marks the task gone when it ends, also when its runtime drops it, so that
    /// the next push starts another.
    struct Alive;

    impl Drop for Alive {
        fn drop(&mut self) {
            let _ = QUEUE.try_with(|q| {
                if let Ok(mut q) = q.try_borrow_mut() {
                    q.running = false;
                }
            });
        }
    }

    async fn run() {
        let _alive = Alive;
        let earlier = EARLIER.with(Rc::clone);
        loop {
            let next = QUEUE.with_borrow_mut(|q| {
                let now = Instant::now();
                while q.due.front().is_some_and(|(t, _)| *t <= now) {
                    if let Some((_, socket)) = q.due.pop_front() {
                        socket.abort();
                    }
                }
                let next = q.due.front().map(|(t, _)| *t);
                if next.is_none() {
                    // Nothing left: give the queue's memory back too.
                    q.due = VecDeque::new();
                }
                next
            });
            let Some(next) = next else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = earlier.notified() => {}
            }
        }
    }
}

impl crate::actor::TransportEnd for SocketCut {
    fn output_ended(&self) {
        self.watch_end();
    }

    fn abort(&self) {
        SocketCut::abort(self);
    }

    fn abandoned(&self) {
        self.abort_later();
    }

    fn task_dropped(&self) {
        self.end_read();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::{
        io::{Read, Write},
        net::{TcpListener, TcpStream},
        os::fd::AsRawFd,
        time::Duration,
    };

    use super::SocketCut;

    /// A client socket bound to `port` (0: any), connected to `listener`.
    fn connect_from(listener: &TcpListener, port: u16) -> TcpStream {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        s.connect(&listener.local_addr().unwrap().into()).unwrap();
        s.into()
    }

    #[test]
    fn a_cut_of_a_closed_socket_leaves_the_next_socket_on_its_descriptor_and_addresses_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let first_client = connect_from(&listener, 0);
        let port = first_client.local_addr().unwrap().port();
        let (first, peer) = listener.accept().unwrap();
        let fd = first.as_raw_fd();
        let cut = SocketCut::new(fd, Some(peer), Duration::from_secs(1)).expect("a TCP socket");
        // The server closes first (its side waits in TIME_WAIT, the client's not),
        // so the client can connect again from the same port.
        drop(first);
        let mut buf = [0u8; 1];
        assert_eq!((&first_client).read(&mut buf).unwrap(), 0);
        drop(first_client);
        let mut second_client = connect_from(&listener, port);
        let (mut second, second_peer) = listener.accept().unwrap();
        assert_eq!(second.as_raw_fd(), fd, "the descriptor number is reused");
        assert_eq!(second_peer, peer, "between the same two addresses");
        cut.abort();
        cut.end_read();
        // Neither reached the new socket: it still carries bytes both ways.
        second_client.write_all(b"x").unwrap();
        second.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x");
        second.write_all(b"y").unwrap();
        second_client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"y");
    }
}
