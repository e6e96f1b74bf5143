//! `ws://` and `wss://` URLs (RFC 6455 §3), parsed by the `url` crate (the WHATWG
//! URL Standard browsers follow: IDNA for international names, percent-encoding of
//! what a request target may not carry, tabs and newlines removed).

use std::fmt;

/// A URL the client cannot connect to, named for what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL with a scheme (`scheme://`): the `url` crate's reading of it.
    #[error("invalid url: {0}")]
    Invalid(url::ParseError),
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
    /// A host that TLS cannot check a certificate against (`wss://`).
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// Port 0, which nothing listens on.
    #[error("invalid port 0")]
    InvalidPort,
    /// A fragment (`#...`): RFC 6455 §3: "Fragment identifiers are meaningless in
    /// the context of WebSocket URIs and MUST NOT be used on these URIs."
    #[error("websocket urls may not have a fragment")]
    Fragment,
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
/// let url = WsUrl::parse("ws://Bücher.example/a b").unwrap();
/// assert_eq!(url.host(), "xn--bcher-kva.example"); // IDNA
/// assert_eq!((url.port(), url.target()), (80, "/a%20b"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WsUrl {
    url: url::Url,
    /// The host without IPv6 brackets.
    host: String,
    port: u16,
}

impl WsUrl {
    /// Parse `url`: `ws://` or `wss://` (any case), a host (a DNS name, IDNA
    /// applied; an IPv4 address; an IPv6 literal in brackets), an optional port
    /// (default 80 for `ws`, 443 for `wss`, RFC 6455 §3), and an optional path and
    /// query (the /resource name/, `/` when empty). No credentials, no fragment.
    pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
        let url = url::Url::parse(url.trim()).map_err(|err| match err {
            url::ParseError::RelativeUrlWithoutBase => UrlError::MissingScheme,
            url::ParseError::EmptyHost => UrlError::MissingHost,
            err => UrlError::Invalid(err),
        })?;
        let secure = match url.scheme() {
            "ws" => false,
            "wss" => true,
            other => return Err(UrlError::UnsupportedScheme(other.to_owned())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(UrlError::MissingHost),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        if port == 0 {
            return Err(UrlError::InvalidPort);
        }
        Ok(WsUrl { url, host, port })
    }

    /// Whether the scheme is `wss` (TLS).
    pub fn is_secure(&self) -> bool {
        self.url.scheme() == "wss"
    }

    /// The host to connect to, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: the path and query, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        let start = self.url.path().as_ptr() as usize - self.url.as_str().as_ptr() as usize;
        &self.url.as_str()[start..]
    }

    /// The `Host` header's value (RFC 6455 §4.1 item 4): the host, with the port
    /// when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = match self.url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }
}

/// The normalized URL, with the values of query parameters that carry a
/// credential (`token`, `access_token`, `key`, `password`, ...) shown as `***`:
/// what the client logs. [`target`](WsUrl::target) is what it sends.
impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::settings::redact::url(self.url.as_str()))
    }
}

impl fmt::Debug for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WsUrl").field(&self.to_string()).finish()
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
                (true, "example.com", 443, "/", "example.com"),
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
            // WHATWG: international names through IDNA, spaces and non-ASCII in the
            // path percent-encoded, percent-encoded hosts decoded.
            (
                "ws://héllo/é",
                (false, "xn--hllo-bpa", 80, "/%C3%A9", "xn--hllo-bpa"),
            ),
            ("ws://h/a b", (false, "h", 80, "/a%20b", "h")),
            ("ws://h%41/", (false, "ha", 80, "/", "ha")),
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
    fn control_characters_never_reach_the_request_target() {
        // The URL Standard removes tabs and newlines before parsing: no header can
        // be injected through a URL.
        let url = WsUrl::parse("ws://h/a\r\nX: 1").unwrap();
        assert_eq!(url.target(), "/aX:%201");
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
    fn display_and_debug_mask_credentials_in_the_query() {
        let url = WsUrl::parse("wss://h/feed?room=1&token=s3cret").unwrap();
        assert_eq!(url.to_string(), "wss://h/feed?room=1&token=***");
        assert_eq!(
            format!("{url:?}"),
            "WsUrl(\"wss://h/feed?room=1&token=***\")"
        );
        assert_eq!(url.target(), "/feed?room=1&token=s3cret");
    }

    #[test]
    fn refuses_each_kind_of_bad_url_with_its_error() {
        let cases = [
            ("127.0.0.1:9001", UrlError::MissingScheme),
            ("/chat", UrlError::MissingScheme),
            ("http://h/", UrlError::UnsupportedScheme("http".into())),
            ("wsx://h/", UrlError::UnsupportedScheme("wsx".into())),
            ("ws://user:pw@h/", UrlError::UserInfo),
            ("ws://:80/", UrlError::MissingHost),
            ("ws://h o/", UrlError::Invalid(url::ParseError::IdnaError)),
            (
                "ws://[::1/",
                UrlError::Invalid(url::ParseError::InvalidIpv6Address),
            ),
            (
                "ws://[nope]/",
                UrlError::Invalid(url::ParseError::InvalidIpv6Address),
            ),
            ("ws://h:0/", UrlError::InvalidPort),
            (
                "ws://h:65536/",
                UrlError::Invalid(url::ParseError::InvalidPort),
            ),
            (
                "ws://h:8a/",
                UrlError::Invalid(url::ParseError::InvalidPort),
            ),
            ("ws://h/#frag", UrlError::Fragment),
            ("ws://h#", UrlError::Fragment),
        ];
        for (url, err) in cases {
            assert_eq!(WsUrl::parse(url), Err(err), "{url}");
        }
    }
}
