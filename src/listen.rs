//! A WebSocket server without actix-web: an actix-server acceptor, our own handshake
//! parse, and the same connection actor as the route ([`Server::listen`]).
//!
//! It serves WebSocket only (every path; anything else gets its refusal status), and
//! holds less per connection than the actix-web route: no HTTP dispatcher stays
//! behind the upgraded connection, and an idle connection keeps no read buffer.

use std::{
    io,
    net::ToSocketAddrs,
    pin::Pin,
    rc::Rc,
    task::{ready, Context, Poll},
    time::Duration,
};

use actix_rt::net::TcpStream;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use crate::{
    actor::{self, WebSocketActor},
    handshake::{self, HandshakeError},
    proto::{Connection, Role},
    web::Server,
};

/// Read buffer reserved when the socket is readable and the buffer is nearly full:
/// enough for a burst of small frames. The buffer is reused once the messages split
/// off it are dropped.
const READ_CHUNK: usize = 16 * 1024;

/// The socket as the connection's input: read straight into the driver's buffer,
/// only when the socket is readable, so an idle connection holds no read buffer.
struct SocketInput {
    socket: Rc<TcpStream>,
    /// Bytes that came after the handshake's head, in the same read.
    first: Option<Bytes>,
}

impl actor::Input for SocketInput {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = self.first.take() {
            buf.extend_from_slice(&first);
            return Poll::Ready(Ok(first.len()));
        }
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            let had_buffer = buf.capacity() > 0;
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            match self.socket.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !had_buffer && buf.is_empty() {
                        // Readiness was stale and nothing came: an idle connection
                        // keeps no buffer.
                        *buf = BytesMut::new();
                    }
                    continue;
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read the request head (bounded in size by [`handshake::MAX_HEAD_SIZE`] and in
/// time by `timeout`); returns it and the bytes that followed it.
async fn read_head(
    socket: &TcpStream,
    timeout: Duration,
) -> Result<(handshake::RequestHead, Bytes), Option<HandshakeError>> {
    let read = async {
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            socket.readable().await.map_err(|_| None)?;
            match socket.try_read_buf(&mut buf) {
                Ok(0) => return Err(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Err(None),
            }
            if let Some((head, used)) = handshake::parse_request(&buf).map_err(Some)? {
                let rest = buf.split_off(used).freeze();
                return Ok((head, rest));
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!("websocket handshake timed out");
            Err(None)
        }
    }
}

/// Serve one TCP connection: the handshake, then the connection's actor, with the
/// writer's bytes written to the socket.
async fn serve_connection<A: WebSocketActor>(
    server: Rc<Server>,
    socket: TcpStream,
    actor: impl FnOnce() -> A,
) {
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().ok();
    let settings = server.settings();
    let (head, rest) = match read_head(&socket, settings.connection.handshake_timeout).await {
        Ok(read) => read,
        Err(Some(err)) => {
            tracing::debug!(error = %err, "websocket handshake refused");
            let mut out = Vec::new();
            err.write_rejection(&mut out);
            let _ = write_all(&socket, &out).await;
            return;
        }
        Err(None) => return,
    };
    let options = server.handshake_options();
    let accept = match head.validate(&options) {
        Ok(accept) => accept,
        Err(err) => {
            tracing::debug!(error = %err, "websocket handshake refused");
            let mut out = Vec::new();
            err.write_rejection(&mut out);
            let _ = write_all(&socket, &out).await;
            return;
        }
    };
    let mut response = Vec::new();
    accept.write_response(&options, &mut response);
    if write_all(&socket, &response).await.is_err() {
        return;
    }
    let span = tracing::debug_span!(
        "websocket",
        peer = ?peer,
        path = head.target.as_str(),
        protocol = accept.protocol.as_deref().unwrap_or(""),
    );
    let mut core = Connection::new(Role::Server, settings.protocol.clone());
    core.set_protocol(accept.protocol.clone());
    if let Some(deflate) = accept.deflate(&options) {
        core.set_extension(Box::new(deflate));
    }
    core.open();
    let socket = Rc::new(socket);
    let input = SocketInput {
        socket: socket.clone(),
        first: (!rest.is_empty()).then_some(rest),
    };
    let (_addr, mut writer) = actor::spawn_input(actor(), core, input, &settings.connection, span);
    while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut writer).poll_next(cx)).await {
        match chunk {
            Ok(bytes) => {
                if write_all(&socket, &bytes).await.is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // Dropping the writer stops the actor and drops its input: the last handle on
    // the socket goes, and the server closes the TCP connection first (RFC 6455
    // §7.1.1).
    drop(writer);
}

impl Server {
    /// Serve WebSocket connections on `addr` without actix-web: each accepted
    /// connection runs the handshake with these settings and, if it succeeds, an
    /// actor made by `factory`, exactly as [`start`](Self::start) does on a route.
    /// A refused handshake gets its status (400, 403, 405, 426) and is closed.
    ///
    /// It uses `workers` threads (0: one per CPU) and returns the running
    /// `actix_server::Server`: await it, or stop it with its handle (call
    /// [`shutdown`](crate::shutdown) first to send Close 1001 to every peer).
    ///
    /// ```no_run
    /// # use actix::prelude::*;
    /// # use websocket_driver as ws;
    /// # #[derive(Default)] struct Echo;
    /// # impl Actor for Echo { type Context = Context<Self>; }
    /// # impl Handler<ws::Open> for Echo { type Result = (); fn handle(&mut self, _: ws::Open, _: &mut Context<Self>) {} }
    /// # impl Handler<ws::Message> for Echo { type Result = (); fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {} }
    /// # impl Handler<ws::Error> for Echo { type Result = (); fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {} }
    /// # impl Handler<ws::Close> for Echo { type Result = (); fn handle(&mut self, _: ws::Close, _: &mut Context<Self>) {} }
    /// #[actix_rt::main]
    /// async fn main() -> std::io::Result<()> {
    ///     ws::Server::new().listen("127.0.0.1:9001", 1, Echo::default)?.await
    /// }
    /// ```
    pub fn listen<A, F>(
        &self,
        addr: impl ToSocketAddrs,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        A: WebSocketActor,
        F: Fn() -> A + Send + Clone + 'static,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        self.listen_on(listener, workers, factory)
    }

    /// [`listen`](Self::listen) on a listener bound already (port 0 in tests, a
    /// socket handed over by systemd).
    pub fn listen_on<A, F>(
        &self,
        listener: std::net::TcpListener,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        A: WebSocketActor,
        F: Fn() -> A + Send + Clone + 'static,
    {
        let server = self.clone();
        let mut builder = actix_server::Server::build().disable_signals();
        if workers > 0 {
            builder = builder.workers(workers);
        }
        let server = builder
            .listen("websocket", listener, move || {
                let server = Rc::new(server.clone());
                let factory = factory.clone();
                actix_service::fn_service(move |socket: TcpStream| {
                    let fut = serve_connection(server.clone(), socket, factory.clone());
                    async move {
                        fut.await;
                        Ok::<(), io::Error>(())
                    }
                })
            })?
            .run();
        Ok(server)
    }
}
