//! `ws://` and `wss://` URLs (RFC 6455 §3).

use std::{fmt, net::Ipv6Addr};

/// A URL the client cannot connect to, named for what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No `scheme://` at the start.
    #[error("missing scheme: a websocket url starts with ws:// or wss://")]
    MissingScheme,
    /// A scheme other than `ws` or `wss` (RFC 6455 §3).
    #[error("unsupported scheme {0:?}: expected ws or wss")]
    UnsupportedScheme(String),
    /// Credentials in the URL (`user:password@`): send them in a header instead
    /// (`Client::header("Authorization", ..)`).
    #[error("credentials in the url are not supported; send an authorization header")]
    UserInfo,
    /// No host.
    #[error("missing host")]
    MissingHost,
    /// A host that is not a DNS name, an IPv4 address or a bracketed IPv6 literal
    /// (RFC 3986 §3.2.2; internationalized names must be given in their ASCII form).
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// A port that is not a number from 1 to 65535.
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    /// A fragment (`#...`): RFC 6455 §3: "Fragment identifiers are meaningless in
    /// the context of WebSocket URIs and MUST NOT be used on these URIs."
    #[error("websocket urls may not have a fragment")]
    Fragment,
    /// A path or query with a character that may not appear in a request target
    /// (a space, a control character, a non-ASCII character: percent-encode it).
    #[error("invalid path or query {0:?}")]
    InvalidTarget(String),
}

/// A parsed `ws://` or `wss://` URL: where to connect and what to ask for.
///
/// ```
/// use websocket_driver::client::WsUrl;
///
/// let url = WsUrl::parse("wss://[::1]:9443/chat?room=1").unwrap();
/// assert!(url.is_secure());
/// assert_eq!(url.host(), "::1");
/// assert_eq!(url.port(), 9443);
/// assert_eq!(url.target(), "/chat?room=1");
/// assert_eq!(url.host_header(), "[::1]:9443");
///
/// let url = WsUrl::parse("ws://example.com").unwrap();
/// assert_eq!((url.port(), url.target(), url.host_header().as_str()), (80, "/", "example.com"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    secure: bool,
    host: String,
    ipv6: bool,
    port: u16,
    target: String,
}

impl WsUrl {
    /// Parse `url`: `ws://` or `wss://` (any case), a host (a DNS name, an IPv4
    /// address or an IPv6 literal in brackets), an optional port (default 80 for
    /// `ws`, 443 for `wss`, RFC 6455 §3), and an optional path and query (the
    /// /resource name/, `/` when empty). No credentials, no fragment.
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::MissingScheme)?;
        let secure = if scheme.eq_ignore_ascii_case("wss") {
            true
        } else if scheme.eq_ignore_ascii_case("ws") {
            false
        } else {
            return Err(UrlError::UnsupportedScheme(scheme.to_owned()));
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, ipv6, port) = split_authority(authority)?;
        let port = match port {
            None | Some("") => {
                if secure {
                    443
                } else {
                    80
                }
            }
            Some(port) => parse_port(port)?,
        };
        // RFC 6455 §3: the resource name is "/" when the path is empty, then "?" and
        // the query when there is one.
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::InvalidTarget(target));
        }
        Ok(WsUrl {
            secure,
            host: host.to_owned(),
            ipv6,
            port,
            target,
        })
    }

    /// Whether the scheme is `wss` (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The host to connect to: a DNS name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL has none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target, the /resource name/ of RFC 6455 §3: the path (at least
    /// `/`) and the query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The `Host` header's value (RFC 6455 §4.1 item 4: the host, in brackets when
    /// IPv6, and the port when it is not the scheme's default).
    pub fn host_header(&self) -> String {
        let host = if self.ipv6 {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.secure { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.target)
    }
}

impl std::str::FromStr for WsUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WsUrl::parse(s)
    }
}

/// Host (without brackets), whether it is an IPv6 literal, and the port text.
fn split_authority(authority: &str) -> Result<(&str, bool, Option<&str>), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let (literal, after) = inner
            .split_once(']')
            .ok_or_else(|| UrlError::InvalidHost(authority.to_owned()))?;
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err(UrlError::InvalidHost(authority.to_owned()));
        }
        return match after {
            "" => Ok((literal, true, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((literal, true, Some(port))),
                None => Err(UrlError::InvalidHost(authority.to_owned())),
            },
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    // A DNS name or an IPv4 address: letters, digits, '-', '.', '_' (some internal
    // names have it); nothing that could end the authority or the Host header.
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !valid {
        return Err(UrlError::InvalidHost(host.to_owned()));
    }
    Ok((host, false, port))
}

fn parse_port(port: &str) -> Result<u16, UrlError> {
    match port.parse::<u16>() {
        Ok(n) if n > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(UrlError::InvalidPort(port.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (bool, String, u16, String, String) {
        let u = WsUrl::parse(url).unwrap();
        (
            u.is_secure(),
            u.host().to_owned(),
            u.port(),
            u.target().to_owned(),
            u.host_header(),
        )
    }

    #[test]
    fn parses_schemes_hosts_default_ports_and_targets() {
        let cases = [
            ("ws://h/", (false, "h", 80, "/", "h")),
            ("ws://h", (false, "h", 80, "/", "h")),
            (
                "WSS://Example.COM",
                (true, "Example.COM", 443, "/", "Example.COM"),
            ),
            ("ws://h:80/a", (false, "h", 80, "/a", "h")),
            ("ws://h:443/a", (false, "h", 443, "/a", "h:443")),
            ("wss://h:443/a", (true, "h", 443, "/a", "h")),
            ("wss://h:80/a", (true, "h", 80, "/a", "h:80")),
            ("ws://h:/a", (false, "h", 80, "/a", "h")),
            ("ws://h?x=1", (false, "h", 80, "/?x=1", "h")),
            (
                "ws://h/p/q?x=1&y=%20",
                (false, "h", 80, "/p/q?x=1&y=%20", "h"),
            ),
            (
                "ws://127.0.0.1:9001/",
                (false, "127.0.0.1", 9001, "/", "127.0.0.1:9001"),
            ),
            ("ws://[::1]:9001/", (false, "::1", 9001, "/", "[::1]:9001")),
            (
                "wss://[fe80::1]/x",
                (true, "fe80::1", 443, "/x", "[fe80::1]"),
            ),
            (
                "ws://a_b.internal:65535",
                (false, "a_b.internal", 65535, "/", "a_b.internal:65535"),
            ),
        ];
        for (url, (secure, host, port, target, header)) in cases {
            assert_eq!(
                parts(url),
                (
                    secure,
                    host.to_owned(),
                    port,
                    target.to_owned(),
                    header.to_owned()
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn display_writes_the_normalized_url() {
        assert_eq!(
            WsUrl::parse("WS://[::1]:80?q").unwrap().to_string(),
            "ws://[::1]/?q"
        );
        assert_eq!(
            WsUrl::parse("wss://h:8443/a").unwrap().to_string(),
            "wss://h:8443/a"
        );
    }

    #[test]
    fn refuses_each_kind_of_bad_url_with_its_error() {
        let cases = [
            ("127.0.0.1:9001", UrlError::MissingScheme),
            ("http://h/", UrlError::UnsupportedScheme("http".into())),
            ("wsx://h/", UrlError::UnsupportedScheme("wsx".into())),
            ("ws://user:pw@h/", UrlError::UserInfo),
            ("ws:///path", UrlError::MissingHost),
            ("ws://:80/", UrlError::MissingHost),
            ("ws://h o/", UrlError::InvalidHost("h o".into())),
            ("ws://h%41/", UrlError::InvalidHost("h%41".into())),
            ("ws://héllo/", UrlError::InvalidHost("héllo".into())),
            ("ws://[::1/", UrlError::InvalidHost("[::1".into())),
            ("ws://[nope]/", UrlError::InvalidHost("[nope]".into())),
            ("ws://[::1]x/", UrlError::InvalidHost("[::1]x".into())),
            ("ws://h:0/", UrlError::InvalidPort("0".into())),
            ("ws://h:65536/", UrlError::InvalidPort("65536".into())),
            ("ws://h:+80/", UrlError::InvalidPort("+80".into())),
            ("ws://h:8a/", UrlError::InvalidPort("8a".into())),
            ("ws://h/#frag", UrlError::Fragment),
            ("ws://h#", UrlError::Fragment),
            ("ws://h/a b", UrlError::InvalidTarget("/a b".into())),
            ("ws://h/é", UrlError::InvalidTarget("/é".into())),
            (
                "ws://h/a\r\nX: 1",
                UrlError::InvalidTarget("/a\r\nX: 1".into()),
            ),
        ];
        for (url, err) in cases {
            assert_eq!(WsUrl::parse(url), Err(err), "{url}");
        }
    }
}
