//! TLS for `wss://`: rustls with [`crypto_provider`] (the application's, else ring),
//! webpki-roots and any root certificates given.

use std::sync::Arc;

use super::{rustls, ClientError};
use crate::tls::crypto_provider;

/// A root certificate to trust besides webpki-roots.
#[derive(Debug, Clone)]
pub(crate) enum RootCertificate {
    Der(Vec<u8>),
    Pem(Vec<u8>),
}

/// The rustls configuration for `wss://`: `custom` as it is, else webpki-roots plus
/// `roots`, [`crypto_provider`], and ALPN `http/1.1`.
pub(crate) fn client_config(
    custom: Option<&Arc<rustls::ClientConfig>>,
    roots: &[RootCertificate],
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    {
        if let Some(config) = custom {
            return Ok(config.clone());
        }
        let mut store = rustls::RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in roots {
            let ders = match root {
                RootCertificate::Der(der) => {
                    vec![rustls::pki_types::CertificateDer::from(der.clone())]
                }
                RootCertificate::Pem(pem) => {
                    use rustls::pki_types::{pem::PemObject, CertificateDer};
                    let certs = CertificateDer::pem_slice_iter(pem)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| ClientError::RootCertificate(e.to_string()))?;
                    if certs.is_empty() {
                        return Err(ClientError::RootCertificate(
                            "no certificate in the pem text".into(),
                        ));
                    }
                    certs
                }
            };
            for der in ders {
                store
                    .add(der)
                    .map_err(|e| ClientError::RootCertificate(e.to_string()))?;
            }
        }
        let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Tls)?
            .with_root_certificates(store)
            .with_no_client_auth();
        // The opening handshake is an HTTP/1.1 upgrade (RFC 6455 §4.1 item 2).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
