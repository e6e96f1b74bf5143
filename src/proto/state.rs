//! The ready-state, as browsers and the Common Lisp websocket-driver name it.

use std::fmt;

/// Where a connection is in its life (the Common Lisp websocket-driver's
/// `ready-state`).
///
/// Each state has a stable number, the one browsers give `WebSocket.readyState`
/// (WHATWG WebSockets §3): [`as_u8`](Self::as_u8) and `TryFrom<u8>`, for atomics,
/// metrics and wire formats; [`name`](Self::name) is its label.
///
/// ```
/// use websocket_driver::proto::ReadyState;
///
/// assert_eq!(ReadyState::Closing.as_u8(), 2);
/// assert_eq!(ReadyState::try_from(1), Ok(ReadyState::Open));
/// assert!(ReadyState::try_from(4).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ReadyState {
    /// The opening handshake is not done yet; sends are queued. Number 0.
    Connecting = 0,
    /// Messages flow both ways. Number 1.
    Open = 1,
    /// A Close frame was sent; waiting for the peer's. Number 2.
    Closing = 2,
    /// Both Close frames were exchanged, or the connection failed or dropped.
    /// Number 3.
    Closed = 3,
}

impl ReadyState {
    /// Every state, in the order of their numbers (`ALL[n].as_u8() == n`).
    pub const ALL: [ReadyState; 4] = [
        ReadyState::Connecting,
        ReadyState::Open,
        ReadyState::Closing,
        ReadyState::Closed,
    ];

    /// Whether messages may be sent (queued, when `Connecting`).
    pub fn can_send(self) -> bool {
        matches!(self, ReadyState::Connecting | ReadyState::Open)
    }

    /// The state's number, as the browser's `readyState`: 0 `Connecting`, 1 `Open`,
    /// 2 `Closing`, 3 `Closed`.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The state's name in lower case (`"connecting"`, `"open"`, `"closing"`,
    /// `"closed"`), e.g. for a metric's label.
    pub const fn name(self) -> &'static str {
        match self {
            ReadyState::Connecting => "connecting",
            ReadyState::Open => "open",
            ReadyState::Closing => "closing",
            ReadyState::Closed => "closed",
        }
    }
}

impl From<ReadyState> for u8 {
    fn from(state: ReadyState) -> u8 {
        state.as_u8()
    }
}

impl TryFrom<u8> for ReadyState {
    type Error = UnknownReadyState;

    /// The state numbered `n` (see [`ReadyState::as_u8`]); 4 and up are no state.
    fn try_from(n: u8) -> Result<Self, UnknownReadyState> {
        ReadyState::ALL
            .get(usize::from(n))
            .copied()
            .ok_or(UnknownReadyState(n))
    }
}

/// A number that is no [`ReadyState`] (4 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownReadyState(pub u8);

impl fmt::Display for UnknownReadyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a ready state (0-3)", self.0)
    }
}

impl std::error::Error for UnknownReadyState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_browsers_and_round_trip() {
        let numbers: Vec<u8> = ReadyState::ALL.iter().map(|s| s.as_u8()).collect();
        assert_eq!(numbers, [0, 1, 2, 3]);
        let names: Vec<&str> = ReadyState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["connecting", "open", "closing", "closed"]);
        for n in 0..=u8::MAX {
            match ReadyState::try_from(n) {
                Ok(state) => assert_eq!(u8::from(state), n),
                Err(err) => {
                    assert!(n >= 4);
                    assert_eq!(err.to_string(), format!("{n} is not a ready state (0-3)"));
                }
            }
        }
    }
}
