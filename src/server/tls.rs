//! TLS for the standalone server: the rustls configuration (from the PEM files of
//! [`TlsSettings`], or given whole), and an accepted TLS stream as the two halves
//! the connection uses (the driver reads, the connection's task writes).

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
};

use crate::settings::TlsSettings;

/// The rustls configuration for `settings`: its certificate chain and key,
/// [`crypto_provider`](crate::tls::crypto_provider) (the application's, else
/// ring), TLS 1.2 and 1.3, ALPN `http/1.1` (the opening handshake is an HTTP/1.1
/// upgrade, RFC 6455 §4.1 item 2). An error names the file, never what it holds.
pub(crate) fn server_config(settings: &TlsSettings) -> io::Result<Arc<rustls::ServerConfig>> {
    tls_server_config(settings).map(Arc::new)
}

/// The rustls configuration the standalone server makes of `files` (its
/// certificate chain and key, [`crypto_provider`](crate::tls::crypto_provider),
/// TLS 1.2 and 1.3, ALPN
/// `http/1.1`), for a server of your own: the actix-web route behind
/// `HttpServer::bind_rustls_0_23` serves with the same certificate so. An error
/// names the file, never what it holds.
///
/// ```no_run
/// # fn run() -> std::io::Result<()> {
/// use websocket_driver as ws;
///
/// let config = ws::server::tls_server_config(&ws::TlsSettings::new("cert.pem", "key.pem"))?;
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// # Ok(()) }
/// ```
pub fn tls_server_config(settings: &TlsSettings) -> io::Result<rustls::ServerConfig> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let chain_pem = std::fs::read(&settings.cert_file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", settings.cert_file)))?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", settings.cert_file)))?;
    if chain.is_empty() {
        return Err(invalid(format!("{}: no certificate", settings.cert_file)));
    }
    let key_pem = std::fs::read(&settings.key_file)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", settings.key_file)))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| invalid(format!("{}: no private key", settings.key_file)))?;
    config_for(chain, key).map_err(|e| invalid(format!("{}: {e}", settings.cert_file)))
}

/// The configuration for a chain and its key, as [`server_config`] makes it.
fn config_for(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl super::Server {
    /// Serve `wss://` on [`listen`](Self::listen) with the certificate chain and
    /// key of `files` (see [`TlsSettings`]; the same as `[server.tls]`), read when
    /// the server starts listening.
    pub fn tls(mut self, files: TlsSettings) -> Self {
        self.settings.server.tls = Some(files);
        self
    }

    /// Serve `wss://` on [`listen`](Self::listen) with `config` as it is (a
    /// certificate resolver, client certificates, other protocol versions); it
    /// takes the place of [`tls`](Self::tls). Its `alpn_protocols` should be
    /// empty or hold `http/1.1`: the opening handshake is HTTP/1.1.
    pub fn tls_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

/// An accepted TLS stream, shared by its two halves. Both live on the
/// connection's thread and are used one at a time (a read by the driver, a write
/// by the connection's task, never one inside the other), so a `RefCell` suffices
/// where `tokio::io::split` would take a lock on every read and write.
type Stream = Rc<RefCell<tokio_rustls::server::TlsStream<TcpStream>>>;

/// Split an accepted TLS stream into its read and write halves; the write half
/// keeps how long its orderly end may take (`close_timeout`).
pub(crate) fn split(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    close_timeout: Duration,
) -> (TlsRead, TlsWrite) {
    let stream = Rc::new(RefCell::new(stream));
    (
        TlsRead(stream.clone()),
        TlsWrite {
            stream,
            close_timeout,
        },
    )
}

/// The read half of an accepted TLS stream.
pub(crate) struct TlsRead(Stream);

impl AsyncRead for TlsRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

/// The write half of an accepted TLS stream (a clone writes to the same stream:
/// the task that ends it in order holds one).
#[derive(Clone)]
pub(crate) struct TlsWrite {
    stream: Stream,
    close_timeout: Duration,
}

impl TlsWrite {
    /// How long the stream's orderly end (`close_notify`, then the TCP FIN) may
    /// take.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Make the TCP socket's close a reset (`SO_LINGER` 0): what the kernel holds
    /// for a peer that does not read is dropped, not kept.
    pub fn set_linger_zero(&self) -> io::Result<()> {
        let stream = self.stream.borrow();
        socket2::SockRef::from(stream.get_ref().0).set_linger(Some(Duration::ZERO))
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.borrow().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx)
    }

    /// Send TLS's `close_notify`, then shut the TCP socket's sending side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_hold_no_certificate_or_key_fail_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("wsd-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let empty = empty.to_str().unwrap().to_owned();
        let missing = dir.join("missing.pem").to_str().unwrap().to_owned();
        let err = server_config(&TlsSettings::new(&missing, &empty)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with(&missing), "{err}");
        let err = server_config(&TlsSettings::new(&empty, &empty)).unwrap_err();
        assert_eq!(err.to_string(), format!("{empty}: no certificate"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
