//! TLS for the standalone server: [`TlsSettings`] (the `[server.tls]` table).

/// The standalone server's certificate (the `[server.tls]` table): with it,
/// `Server::listen` serves `wss://` (TLS 1.2 and 1.3 through rustls with the ring
/// provider, ALPN `http/1.1`). Both files are PEM, read when the server starts
/// listening; a file that cannot be read or holds no certificate (key) fails
/// `listen`. The actix-web route ignores it: TLS there is actix-web's
/// (`HttpServer::bind_rustls_0_23`).
///
/// ```
/// use websocket_driver::{ServerSettings, TlsSettings};
///
/// let server = ServerSettings::default().tls(TlsSettings::new("cert.pem", "key.pem"));
/// assert_eq!(server.tls.unwrap().key_file, "key.pem");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct TlsSettings {
    /// The certificate chain, PEM: the server's certificate first, then the
    /// intermediates.
    pub cert_file: String,
    /// The private key, PEM (PKCS #8, PKCS #1 or SEC1). Only its path is ever
    /// shown.
    pub key_file: String,
}

impl TlsSettings {
    /// The certificate chain in `cert_file` and the key in `key_file`.
    pub fn new(cert_file: impl Into<String>, key_file: impl Into<String>) -> Self {
        TlsSettings {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }
}
