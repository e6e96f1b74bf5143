//! Which end of the connection we are.

/// Which end of the connection a [`Connection`](super::Connection) plays.
///
/// The role decides the direction of masking (RFC 6455 §5.1: a client masks every
/// frame it sends, a server masks none) and who closes the TCP connection first
/// (RFC 6455 §7.1.1: the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that accepted the connection.
    Server,
    /// The end that opened the connection.
    Client,
}

impl Role {
    /// Whether frames this role sends are masked (true for [`Role::Client`]).
    #[inline]
    pub fn masks_outgoing(self) -> bool {
        self == Role::Client
    }

    /// Whether frames this role receives must be masked (true for [`Role::Server`]).
    #[inline]
    pub fn expects_masked(self) -> bool {
        self == Role::Server
    }
}
