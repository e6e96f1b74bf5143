//! The server's origin policy: which pages a browser may open a connection from.
//!
//! WebSocket is not covered by CORS: a browser opens a connection to any server a
//! page asks for, with the user's cookies, and says which page asked in `Origin`
//! (RFC 6455 §4.1 item 8, §10.2). A server that does not look at it lets every
//! site its users visit talk to it in their name (cross-site WebSocket
//! hijacking). So a handshake is accepted when:
//!
//! - it has no `Origin` (a client that is not a browser: nothing is at stake for a
//!   user of a browser, and such a client could send any `Origin` anyway);
//! - its `Origin` is the server's own: the origin's host and port equal the
//!   request's `Host`, compared ASCII case-insensitively, a port left out being the
//!   scheme's default (80 for `http`/`ws`, 443 for `https`/`wss`);
//! - or the server lists it ([`ServerSettings::origins`](crate::ServerSettings::origins)):
//!   `"*"` (any origin), an exact origin (`https://app.example.com`,
//!   `http://localhost:3000`) or every subdomain of a domain
//!   (`https://*.example.com`: `a.example.com` and `a.b.example.com`, not
//!   `example.com` itself), with the scheme and the port compared too.
//!
//! Anything else, several `Origin` headers (RFC 6454 §7.3: a user agent "MUST NOT
//! include more than one Origin header field") or one that does not parse, is
//! refused with `403` ([`HandshakeError::OriginNotAllowed`]), as RFC 6455 §4.2.2
//! /origin/ has it: "If the server does not wish to accept this connection, it MUST
//! return an appropriate HTTP error code (e.g., a 403 Forbidden)". Each refused
//! origin is logged once at `debug` (a bounded set of the origins seen).
//!
//! Behind a proxy that rewrites `Host`, a browser's own origin no longer matches:
//! list it.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

use super::{
    headers::{one_value, trim_ows, ORIGIN},
    HandshakeError,
};

/// The origin list entry that allows any origin.
pub const ANY_ORIGIN: &str = "*";

/// Whether a handshake whose `Origin` header is `origin` (`None`: none) and whose
/// `Host` header is `host` may go on, with `allowed` the server's list (see the
/// [module docs](self)).
///
/// ```
/// use websocket_driver::handshake::origin_allowed;
///
/// let list = ["https://*.example.com".to_string()];
/// assert!(origin_allowed(None, "api.example.com", &list));
/// assert!(origin_allowed(Some("https://api.example.com"), "api.example.com:443", &list));
/// assert!(origin_allowed(Some("https://app.example.com"), "api.example.com", &list));
/// assert!(!origin_allowed(Some("https://evil.example"), "api.example.com", &list));
/// assert!(!origin_allowed(Some("http://app.example.com"), "api.example.com", &list));
/// ```
pub fn origin_allowed(origin: Option<&str>, host: &str, allowed: &[String]) -> bool {
    match origin {
        None => true,
        Some(origin) => allows(origin.as_bytes(), host.as_bytes(), allowed),
    }
}

/// The check of [`validate_request`](super::validate_request): the request's
/// `Origin` headers against its `Host` and `allowed`.
pub(super) fn check<N, V>(
    headers: &[(N, V)],
    host: &[u8],
    allowed: &[String],
) -> Result<(), HandshakeError>
where
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    let origin = match one_value(headers, ORIGIN) {
        None => return Ok(()),
        Some(None) => {
            note_refused(b"(several Origin headers)");
            return Err(HandshakeError::OriginNotAllowed);
        }
        Some(Some(origin)) => trim_ows(origin),
    };
    if allows(origin, trim_ows(host), allowed) {
        Ok(())
    } else {
        note_refused(origin);
        Err(HandshakeError::OriginNotAllowed)
    }
}

fn allows(origin: &[u8], host: &[u8], allowed: &[String]) -> bool {
    let parsed = Origin::parse(origin);
    if let Some(origin) = &parsed {
        if origin.is_host(host) {
            return true;
        }
    }
    allowed.iter().any(|entry| {
        let entry = entry.trim().as_bytes();
        if entry == ANY_ORIGIN.as_bytes() {
            return true;
        }
        match &parsed {
            Some(origin) => origin.is_listed(entry),
            // An opaque origin (`null`: a sandboxed frame, a `file:` page) is
            // allowed only when listed as such.
            None => entry.eq_ignore_ascii_case(origin) && !origin.is_empty(),
        }
    })
}

/// An origin as a browser serializes it (RFC 6454 §6.2): `scheme://host[:port]`.
#[derive(Debug, PartialEq, Eq)]
struct Origin<'a> {
    scheme: &'a [u8],
    host: &'a [u8],
    /// The port, when written.
    port: Option<u16>,
}

impl<'a> Origin<'a> {
    /// Parse `text` (no path, no user information); `None` for anything else,
    /// `null` included.
    fn parse(text: &'a [u8]) -> Option<Self> {
        let at = text.windows(3).position(|w| w == b"://")?;
        let (scheme, authority) = (&text[..at], &text[at + 3..]);
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return None;
        }
        let (host, port) = split_authority(authority)?;
        Some(Origin { scheme, host, port })
    }

    /// The port, the scheme's default when not written.
    fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }

    /// Whether this origin is the server's own: `host` is the request's `Host`
    /// (`host[:port]`), where a port left out is the default of the scheme the
    /// request came on, which only the origin's scheme can tell here.
    fn is_host(&self, host: &[u8]) -> bool {
        let Some((name, port)) = split_authority(host) else {
            return false;
        };
        if !name.eq_ignore_ascii_case(self.host) {
            return false;
        }
        match port {
            Some(port) => self.effective_port() == Some(port),
            None => self.port.is_none() || self.port == default_port(self.scheme),
        }
    }

    /// Whether `entry` (an origin, or one with `*.` before its host) names this
    /// origin: same scheme, same port (a default one written or not), same host
    /// or a subdomain of the wildcard's.
    fn is_listed(&self, entry: &[u8]) -> bool {
        let entry = entry.strip_suffix(b"/").unwrap_or(entry);
        let Some(listed) = Origin::parse(entry) else {
            return false;
        };
        if !listed.scheme.eq_ignore_ascii_case(self.scheme)
            || listed.effective_port() != self.effective_port()
        {
            return false;
        }
        match listed.host.strip_prefix(b"*") {
            Some(suffix) if suffix.starts_with(b".") && suffix.len() > 1 => {
                self.host.len() > suffix.len()
                    && self.host[self.host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            _ => listed.host.eq_ignore_ascii_case(self.host),
        }
    }
}

/// The default port of `scheme` (RFC 6455 §3 for `ws`/`wss`, RFC 9110 §4.2 for
/// `http`/`https`).
fn default_port(scheme: &[u8]) -> Option<u16> {
    if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"ws") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case(b"https") || scheme.eq_ignore_ascii_case(b"wss") {
        Some(443)
    } else {
        None
    }
}

/// Split `host[:port]` (RFC 3986 §3.2.2, §3.2.3; an IPv6 address in brackets).
/// An empty port is none. `None` when it is not one: an empty host, a port that is
/// not a number up to 65535, user information, a path.
fn split_authority(text: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, rest) = if text.first() == Some(&b'[') {
        let end = text.iter().position(|&b| b == b']')?;
        text.split_at(end + 1)
    } else {
        let end = text.iter().position(|&b| b == b':').unwrap_or(text.len());
        text.split_at(end)
    };
    let host_ok = !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~[]:*%".contains(&b));
    if !host_ok {
        return None;
    }
    let port = match rest {
        [] | [b':'] => None,
        [b':', digits @ ..] if digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit) => {
            Some(std::str::from_utf8(digits).ok()?.parse().ok()?)
        }
        _ => return None,
    };
    Some((host, port))
}

/// The most distinct refused origins remembered for logging; past it the set
/// starts again (so an origin may be logged again after this many others).
const MAX_LOGGED_ORIGINS: usize = 256;

/// The longest part of a refused origin that is logged and remembered.
const MAX_LOGGED_ORIGIN_LEN: usize = 128;

/// Log a refused origin at `debug`, once per origin (within the bounded set).
fn note_refused(origin: &[u8]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    static SEEN: OnceLock<Mutex<HashSet<Box<[u8]>>>> = OnceLock::new();
    let origin = &origin[..origin.len().min(MAX_LOGGED_ORIGIN_LEN)];
    {
        let mut seen = SEEN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.contains(origin) {
            return;
        }
        if seen.len() >= MAX_LOGGED_ORIGINS {
            seen.clear();
        }
        seen.insert(origin.into());
    }
    tracing::debug!(
        origin = %String::from_utf8_lossy(origin),
        "websocket handshake refused: origin not allowed (logged once per origin)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    fn ok(origin: &str, host: &str, entries: &[&str]) -> bool {
        origin_allowed(Some(origin), host, &list(entries))
    }

    #[test]
    fn same_host_and_port_is_the_servers_own_origin() {
        assert!(ok("http://example.com", "example.com", &[]));
        assert!(ok("http://EXAMPLE.com", "example.COM", &[]));
        assert!(ok("http://127.0.0.1:8080", "127.0.0.1:8080", &[]));
        assert!(!ok("http://127.0.0.1:8081", "127.0.0.1:8080", &[]));
        assert!(!ok("http://evil.example", "example.com", &[]));
        assert!(!ok("http://example.com.evil", "example.com", &[]));
    }

    #[test]
    fn default_ports_equal_none() {
        assert!(ok("http://example.com:80", "example.com", &[]));
        assert!(ok("http://example.com", "example.com:80", &[]));
        assert!(ok("https://example.com", "example.com:443", &[]));
        assert!(ok("https://example.com:443", "example.com", &[]));
        assert!(ok("wss://example.com", "example.com:443", &[]));
        assert!(!ok("http://example.com", "example.com:443", &[]));
        assert!(!ok("https://example.com", "example.com:80", &[]));
        assert!(!ok("http://example.com:8080", "example.com", &[]));
        assert!(!ok("http://example.com", "example.com:8080", &[]));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        assert!(ok("http://[::1]:8080", "[::1]:8080", &[]));
        assert!(ok("http://[::1]", "[::1]:80", &[]));
        assert!(ok("http://[FE80::1]", "[fe80::1]", &[]));
        assert!(!ok("http://[::1]:8080", "[::2]:8080", &[]));
        assert!(!ok("http://[::1]:8080", "[::1]:8081", &[]));
        assert!(ok(
            "http://[::1]:3000",
            "[::1]:8080",
            &["http://[::1]:3000"]
        ));
    }

    #[test]
    fn listed_origins_compare_scheme_host_and_port() {
        let entries = ["https://app.example.com", "http://localhost:3000/"];
        assert!(ok("https://app.example.com", "api.example.com", &entries));
        assert!(ok(
            "https://APP.example.com:443",
            "api.example.com",
            &entries
        ));
        assert!(ok("http://localhost:3000", "api.example.com", &entries));
        assert!(!ok("http://app.example.com", "api.example.com", &entries));
        assert!(!ok(
            "https://app.example.com:8443",
            "api.example.com",
            &entries
        ));
        assert!(!ok("http://localhost:3001", "api.example.com", &entries));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let entries = ["https://*.example.com"];
        assert!(ok("https://a.example.com", "x", &entries));
        assert!(ok("https://a.b.Example.com", "x", &entries));
        assert!(!ok("https://example.com", "x", &entries));
        assert!(!ok("https://aexample.com", "x", &entries));
        assert!(!ok("https://a.example.com.evil", "x", &entries));
        assert!(!ok("http://a.example.com", "x", &entries));
        assert!(!ok("https://a.example.com:8443", "x", &entries));
        assert!(!ok("https://a.example.com", "x", &["https://*"]));
    }

    #[test]
    fn a_star_allows_any_origin_even_one_that_does_not_parse() {
        assert!(ok("https://evil.example", "x", &["*"]));
        assert!(ok("null", "x", &["*"]));
        assert!(!ok("null", "x", &[]));
        assert!(ok("null", "x", &["null"]));
    }

    #[test]
    fn malformed_origins_are_refused() {
        for origin in [
            "",
            "example.com",
            "http://",
            "http://user@example.com",
            "http://example.com/path",
            "http://example.com:99999",
            "http://example.com:8a",
            "1http://example.com",
        ] {
            assert!(!ok(origin, "example.com", &[]), "{origin:?}");
        }
        assert!(ok("http://example.com:", "example.com", &[]));
    }

    #[test]
    fn several_origin_headers_are_refused_and_none_is_accepted() {
        let host = b"example.com";
        let one: &[(&str, &[u8])] = &[("Origin", b" http://example.com ")];
        assert_eq!(check(one, host, &[]), Ok(()));
        let two: &[(&str, &[u8])] = &[
            ("Origin", b"http://example.com"),
            ("origin", b"http://example.com"),
        ];
        assert_eq!(
            check(two, host, &list(&["*"])),
            Err(HandshakeError::OriginNotAllowed)
        );
        let none: &[(&str, &[u8])] = &[("Host", b"example.com")];
        assert_eq!(check(none, host, &[]), Ok(()));
    }
}
