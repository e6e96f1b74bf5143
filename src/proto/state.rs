//! The ready-state, as browsers and the seed name it.

/// Where a connection is in its life (the seed's `ready-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// The opening handshake is not done yet; sends are queued.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// A Close frame was sent; waiting for the peer's.
    Closing,
    /// Both Close frames were exchanged, or the connection failed or dropped.
    Closed,
}

impl ReadyState {
    /// Whether messages may be sent (queued, when `Connecting`).
    pub fn can_send(self) -> bool {
        matches!(self, ReadyState::Connecting | ReadyState::Open)
    }
}
