//! Opening handshake (placeholder, being written).

/// Handshake error (placeholder).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
