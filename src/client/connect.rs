//! Establishing one connection: name resolution, TCP, TLS, the opening handshake.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

use super::{rustls, ClientError, Timeout, UrlError, WsUrl};
use crate::{
    actor::socket::{read_head, HeadError, ReadInput},
    handshake::{ClientRequest, HandshakeError, Response, MAX_HEADERS, MAX_HEAD_SIZE},
    proto::Deflate,
    settings::Settings,
};

/// The read half of a connection, boxed: TCP or TLS.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Unpin>;
/// The write half of a connection, boxed: TCP or TLS.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Unpin>;

/// Everything a connection attempt needs, checked once before the first one.
pub(crate) struct Plan {
    pub url: WsUrl,
    pub settings: Settings,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
}

impl Plan {
    /// Check the options (they must make a valid request) and build the TLS setup,
    /// before any I/O.
    pub fn new(
        url: WsUrl,
        settings: &Settings,
        tls_config: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, ClientError>,
    ) -> Result<Plan, ClientError> {
        // The request must be writable (headers, subprotocols, origin); the
        // permessage-deflate offer (RFC 7692 §5) comes from the `deflate` section,
        // and without one a server that answers with an extension fails the
        // handshake (RFC 6455 §4.1, `HandshakeError::UnofferedExtension`).
        ClientRequest::new(&url.host_header(), url.target(), settings)?;
        let tls = if url.is_secure() {
            let name = rustls::pki_types::ServerName::try_from(url.host().to_owned())
                .map_err(|_| UrlError::InvalidHost(url.host().to_owned()))?;
            let config = tls_config()?;
            Some((TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Plan {
            url,
            settings: settings.clone(),
            tls,
        })
    }
}

/// A connection whose opening handshake succeeded.
pub(crate) struct Established {
    /// The read half, holding the bytes that followed the response head.
    pub input: ReadInput<ReadHalf>,
    pub output: WriteHalf,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// permessage-deflate, when the server accepted our offer.
    pub deflate: Option<Deflate>,
    pub peer: SocketAddr,
}

/// Connect to the plan's URL and run the opening handshake, each within its
/// timeout.
pub(crate) async fn establish(plan: &Plan) -> Result<Established, ClientError> {
    let connect = connect_tcp(&plan.url);
    let tcp = tokio::time::timeout(plan.settings.client.connect_timeout, connect)
        .await
        .map_err(|_| ClientError::Timeout(Timeout::Connect))??;
    // Frames go out as soon as they are written (no Nagle delay for small ones).
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY not set");
    }
    let peer = tcp.peer_addr().map_err(ClientError::Io)?;
    let handshake = handshake(plan, tcp, peer);
    tokio::time::timeout(plan.settings.connection.handshake_timeout, handshake)
        .await
        .map_err(|_| ClientError::Timeout(Timeout::Handshake))?
}

/// Resolve the host and connect to its addresses in turn.
async fn connect_tcp(url: &WsUrl) -> Result<TcpStream, ClientError> {
    let mut last = None;
    for addr in resolve(url.host(), url.port()).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(source) => {
                tracing::debug!(%addr, error = %source, "websocket connect failed");
                last = Some(ClientError::Connect { addr, source });
            }
        }
    }
    Err(last.unwrap_or_else(|| no_address(url.host(), "no address")))
}

fn no_address(host: &str, why: &str) -> ClientError {
    ClientError::Dns {
        host: host.to_owned(),
        source: io::Error::new(io::ErrorKind::NotFound, why.to_owned()),
    }
}

/// The addresses of `host`: itself when an IP address, else the resolver's.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ClientError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // RFC 6761 §6.4: "Name resolution APIs and libraries SHOULD recognize "invalid"
    // names as special and SHOULD always return immediate negative responses."
    let name = host.trim_end_matches('.');
    let tld = name.rsplit('.').next().unwrap_or(name);
    if tld.eq_ignore_ascii_case("invalid") {
        return Err(no_address(
            host,
            "names under .invalid never resolve (RFC 6761)",
        ));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ClientError::Dns {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(no_address(host, "no address"));
    }
    Ok(addrs)
}

/// TLS when `wss`, then the opening handshake (RFC 6455 §4.1).
async fn handshake(
    plan: &Plan,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<Established, ClientError> {
    let (read, mut write): (ReadHalf, WriteHalf) = match &plan.tls {
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(tls_error)?;
            let (read, write) = tokio::io::split(tls);
            (Box::new(read), Box::new(write))
        }
        None => {
            let (read, write) = tcp.into_split();
            (Box::new(read), Box::new(write))
        }
    };
    // RFC 6455 §4.1 item 7: the key is "randomly selected for each connection".
    let request = ClientRequest::new(&plan.url.host_header(), plan.url.target(), &plan.settings)?;
    let mut head = Vec::new();
    request.write(&mut head);
    write.write_all(&head).await.map_err(ClientError::Io)?;
    write.flush().await.map_err(ClientError::Io)?;
    let mut input = ReadInput::new(read);
    let read = read_head(&mut input, |buf| parse_response(&request, buf)).await;
    let (response, rest) = match read {
        Ok(read) => read,
        Err(HeadError::Parse(NotOpened::Refused {
            status,
            headers,
            start,
        })) => {
            // RFC 6455 §4.1: a status other than 101 is handled "per HTTP
            // procedures": its body says why.
            let body = refusal_body(&mut input, &headers, start).await;
            return Err(ClientError::Status {
                status,
                headers,
                body,
            });
        }
        Err(HeadError::Parse(NotOpened::Failed(err))) => return Err(err),
        Err(HeadError::Closed) => {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection during the opening handshake",
            )))
        }
        Err(HeadError::Io(err)) => return Err(ClientError::Io(err)),
    };
    // RFC 7692 §7.1: an answer the client cannot accept "MUST _Fail the WebSocket
    // Connection_". Only what we offered can be answered (checked by the core).
    let deflate = match (&response.extensions, plan.settings.deflate.enabled) {
        (Some(answer), true) => Some(
            plan.settings
                .deflate
                .accept_response(answer)
                .map_err(ClientError::Handshake)?,
        ),
        _ => None,
    };
    input.set_first(rest);
    tracing::debug!(url = %plan.url, %peer, protocol = ?response.protocol, deflate = deflate.is_some(), "websocket handshake done");
    Ok(Established {
        input,
        output: write,
        protocol: response.protocol,
        deflate,
        peer,
    })
}

/// Why the response head does not open the connection.
enum NotOpened {
    /// A status other than 101: its headers and the body's start.
    Refused {
        status: u16,
        headers: Vec<(String, String)>,
        start: Vec<u8>,
    },
    Failed(ClientError),
}

/// The server's response head, checked (RFC 6455 §4.1: any mismatch and "the client
/// MUST _Fail the WebSocket Connection_"); a status other than 101 carries the
/// response's headers and what came after them.
fn parse_response(
    request: &ClientRequest,
    buf: &[u8],
) -> Result<Option<(Response, usize)>, NotOpened> {
    request.parse_response(buf).map_err(|err| match err {
        HandshakeError::UnexpectedStatus(status) => {
            let (headers, head_len) = head_headers(buf);
            let start = buf.get(head_len..).unwrap_or_default();
            NotOpened::Refused {
                status,
                headers,
                start: start[..start.len().min(MAX_REFUSAL_BODY)].to_vec(),
            }
        }
        err => NotOpened::Failed(ClientError::Handshake(err)),
    })
}

/// The headers of the (complete, bounded) response head at the start of `buf`,
/// and the head's length.
fn head_headers(buf: &[u8]) -> (Vec<(String, String)>, usize) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let window = buf.get(..MAX_HEAD_SIZE).unwrap_or(buf);
    let head_len = match response.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return (Vec::new(), buf.len()),
    };
    let headers = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    (headers, head_len)
}

/// At most this much of a refusal's body is kept.
const MAX_REFUSAL_BODY: usize = 4096;

/// How long a refusal's body is waited for, at most (within the handshake's time).
const REFUSAL_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The body of a refused handshake: `start` (what came with the head) and what
/// follows, up to its `Content-Length`, the end of
/// the input, [`MAX_REFUSAL_BODY`] bytes or [`REFUSAL_BODY_WAIT`]; a chunked body
/// is decoded. Decoded lossily as UTF-8.
async fn refusal_body<I: crate::actor::Input>(
    input: &mut I,
    headers: &[(String, String)],
    start: Vec<u8>,
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let mut buf = bytes::BytesMut::from(&start[..]);
    let wanted = length.unwrap_or(usize::MAX).min(MAX_REFUSAL_BODY);
    let read = async {
        while buf.len() < wanted && !(chunked && chunked_done(&buf)) {
            let more = std::future::poll_fn(|cx| input.poll_read_into(cx, &mut buf)).await;
            if !matches!(more, Ok(n) if n > 0) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_BODY_WAIT, read).await;
    let body = if chunked { dechunk(&buf) } else { buf.to_vec() };
    let body = &body[..body.len().min(wanted)];
    String::from_utf8_lossy(body).into_owned()
}

/// Whether a chunked body's last chunk (`0` CRLF CRLF) arrived.
fn chunked_done(buf: &[u8]) -> bool {
    buf.starts_with(b"0\r\n") || buf.windows(5).any(|w| w == b"\n0\r\n")
}

/// The data of a chunked body (RFC 9112 §7.1), as far as it is complete.
fn dechunk(mut buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&buf[..line_end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|&n| n > 0) else {
            break;
        };
        let data = &buf[line_end + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        buf = &data[size + 2..];
    }
    out
}

/// A failed TLS handshake: rustls's own error when it has one (an untrusted
/// certificate...), else the transport's.
fn tls_error(err: io::Error) -> ClientError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => ClientError::Tls(tls.clone()),
        None => ClientError::Io(err),
    }
}
