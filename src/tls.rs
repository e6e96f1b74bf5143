//! The rustls crypto provider of every TLS connection this crate makes: the
//! standalone server's `wss://` and the client's.

use std::sync::Arc;

use tokio_rustls::rustls;

/// The crypto provider `wss://` uses, on the standalone server and in the client:
/// the process default when the application installed one
/// (`rustls::crypto::CryptoProvider::install_default`, e.g. aws-lc-rs's, whose
/// key exchange includes the post-quantum X25519MLKEM768), else ring's (the one
/// this crate builds with: no C toolchain needed, no post-quantum key exchange).
///
/// ```
/// use websocket_driver as ws;
///
/// let provider = ws::tls::crypto_provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    match rustls::crypto::CryptoProvider::get_default() {
        Some(installed) => installed.clone(),
        None => ring_provider(),
    }
}

/// ring's provider. rustls 0.23.48 deprecates it for having no post-quantum key
/// exchange: an application that wants one installs aws-lc-rs's as the process
/// default, which [`crypto_provider`] then uses.
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
