//! [`ConnId`]: a connection's id.

use std::{
    fmt,
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
};

/// A connection's id: unique in the process for its lifetime, `Copy`, and usable as
/// a key (a hub's members, a room's table). It prints as `conn-N` and parses back
/// from that form (or from the bare number).
///
/// ```
/// use websocket_driver::ConnId;
///
/// let id: ConnId = "conn-42".parse().unwrap();
/// assert_eq!(id.get(), 42);
/// assert_eq!(id.to_string(), "conn-42");
/// assert_eq!("42".parse::<ConnId>(), Ok(id));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with number `n` (as [`get`](Self::get) returned it: sent through a
    /// backplane, kept in a database).
    pub fn from_raw(n: u64) -> ConnId {
        ConnId(n)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Why a string is not a [`ConnId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a connection id (expected conn-N or N)")]
pub struct ParseConnIdError;

impl FromStr for ConnId {
    type Err = ParseConnIdError;

    fn from_str(s: &str) -> Result<ConnId, ParseConnIdError> {
        let digits = s.strip_prefix("conn-").unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseConnIdError);
        }
        digits.parse().map(ConnId).map_err(|_| ParseConnIdError)
    }
}
