//! The header grammar of the opening handshake: header lookup by name (a header may
//! repeat), comma-separated token lists, and the `Sec-WebSocket-Extensions` grammar
//! (RFC 6455 §9.1).
//!
//! Headers are given as a slice of `(name, value)` pairs, names as text and values
//! as bytes (a peer's values need not be UTF-8). Names compare ASCII
//! case-insensitively (RFC 9110 §5.1). A header that appears several times reads as
//! if its values were joined with commas (RFC 9110 §5.3, formerly RFC 7230 §3.2.2).

use std::fmt;

use super::{BuildError, HandshakeError};

/// `Host` (RFC 9110 §7.2).
pub const HOST: &str = "Host";
/// `Upgrade` (RFC 9110 §7.8).
pub const UPGRADE: &str = "Upgrade";
/// `Connection` (RFC 9110 §7.6.1).
pub const CONNECTION: &str = "Connection";
/// `Origin` (RFC 6454 §7).
pub const ORIGIN: &str = "Origin";
/// `Sec-WebSocket-Key` (RFC 6455 §11.3.1).
pub const SEC_WEBSOCKET_KEY: &str = "Sec-WebSocket-Key";
/// `Sec-WebSocket-Accept` (RFC 6455 §11.3.3).
pub const SEC_WEBSOCKET_ACCEPT: &str = "Sec-WebSocket-Accept";
/// `Sec-WebSocket-Version` (RFC 6455 §11.3.5).
pub const SEC_WEBSOCKET_VERSION: &str = "Sec-WebSocket-Version";
/// `Sec-WebSocket-Protocol` (RFC 6455 §11.3.4).
pub const SEC_WEBSOCKET_PROTOCOL: &str = "Sec-WebSocket-Protocol";
/// `Sec-WebSocket-Extensions` (RFC 6455 §11.3.2).
pub const SEC_WEBSOCKET_EXTENSIONS: &str = "Sec-WebSocket-Extensions";

/// Whether `b` may appear in a token (`tchar`, RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether `s` is a token: one or more `tchar` (RFC 9110 §5.6.2). Header names,
/// subprotocols and extension names and parameters are tokens.
///
/// ```
/// use websocket_driver::handshake::headers::is_token;
///
/// assert!(is_token(b"chat.v2"));
/// assert!(!is_token(b"a b"));
/// assert!(!is_token(b""));
/// ```
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `s` may be written as a header value: no control character but the tab,
/// so no CR or LF that would end the header early (RFC 9110 §5.5). Bytes from 0x80
/// up (UTF-8 text) are allowed as `obs-text`.
pub fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `s` without leading and trailing optional whitespace (spaces and tabs,
/// RFC 9110 §5.6.3).
pub fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

/// Every value of the header `name` (compared ASCII case-insensitively), in order.
pub fn values<'a, N, V>(headers: &'a [(N, V)], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a
where
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    headers
        .iter()
        .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

/// `None` when the header is absent, `Some(None)` when it appears more than once,
/// `Some(Some(value))` when it appears exactly once.
pub(crate) fn one_value<'a, N, V>(headers: &'a [(N, V)], name: &'a str) -> Option<Option<&'a [u8]>>
where
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    let mut found = values(headers, name);
    let first = found.next()?;
    Some(if found.next().is_some() {
        None
    } else {
        Some(first)
    })
}

/// The elements of a comma-separated list value, trimmed of optional whitespace,
/// empty elements skipped (RFC 9110 §5.6.1: a recipient "MUST [...] ignore a
/// reasonable number of empty list elements"). Only for lists of tokens: a comma in
/// a quoted string is not understood (see [`parse_extensions`] for that grammar).
///
/// ```
/// use websocket_driver::handshake::headers::list_elements;
///
/// let elements: Vec<&[u8]> = list_elements(b" keep-alive,, Upgrade ").collect();
/// assert_eq!(elements, [&b"keep-alive"[..], &b"Upgrade"[..]]);
/// ```
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether the list header `name`, all its occurrences together, has the element
/// `token`, both compared ASCII case-insensitively: `Connection: keep-alive, Upgrade`
/// contains `upgrade`.
///
/// ```
/// use websocket_driver::handshake::headers::list_contains;
///
/// let headers = [("connection", &b"keep-alive, Upgrade"[..])];
/// assert!(list_contains(&headers, "Connection", "upgrade"));
/// assert!(!list_contains(&headers, "Connection", "close"));
/// ```
pub fn list_contains<N, V>(headers: &[(N, V)], name: &str, token: &str) -> bool
where
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    values(headers, name)
        .flat_map(list_elements)
        .any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

/// One extension of a `Sec-WebSocket-Extensions` list with its parameters, in the
/// order given (RFC 6455 §9.1). `Display` writes it back in that grammar.
///
/// ```
/// use websocket_driver::handshake::headers::Extension;
///
/// let ext = Extension {
///     name: "permessage-deflate".into(),
///     params: vec![("client_max_window_bits".into(), None), ("server_max_window_bits".into(), Some("10".into()))],
/// };
/// assert_eq!(ext.to_string(), "permessage-deflate; client_max_window_bits; server_max_window_bits=10");
/// assert_eq!(ext.param("server_max_window_bits"), Some(Some("10")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension's name (a token), e.g. `permessage-deflate`.
    pub name: String,
    /// Its parameters: `(name, None)` for `name`, `(name, Some(value))` for
    /// `name=value` and `name="value"` (quotes and escapes removed).
    pub params: Vec<(String, Option<String>)>,
}

impl Extension {
    /// The first parameter called `name` (compared ASCII case-insensitively): `None`
    /// when absent, `Some(None)` when given without a value, `Some(Some(value))`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            if let Some(value) = value {
                if is_token(value.as_bytes()) {
                    write!(f, "={value}")?;
                } else {
                    f.write_str("=\"")?;
                    for c in value.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
            }
        }
        Ok(())
    }
}

/// Parse a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
///
/// ```text
/// extension-list  = 1#extension
/// extension       = extension-token *( ";" extension-param )
/// extension-param = token [ "=" (token | quoted-string) ]
/// ```
///
/// with optional whitespace around `,`, `;` and `=`, and empty list elements ignored
/// (so an empty value gives an empty list). A quoted value is unescaped and "MUST
/// conform to the 'token' ABNF" (RFC 6455 §9.1). Anything else is
/// [`HandshakeError::InvalidExtensionsHeader`]. Names and parameters are returned as
/// written; their meaning (and duplicates) is for the extension to judge.
///
/// ```
/// use websocket_driver::handshake::headers::parse_extensions;
///
/// let list = parse_extensions(r#"permessage-deflate; client_max_window_bits, foo; bar="baz""#).unwrap();
/// assert_eq!(list.len(), 2);
/// assert_eq!(list[0].name, "permessage-deflate");
/// assert_eq!(list[0].params, [("client_max_window_bits".to_string(), None)]);
/// assert_eq!(list[1].params, [("bar".to_string(), Some("baz".to_string()))]);
/// assert!(parse_extensions("foo; =1").is_err());
/// ```
pub fn parse_extensions(value: &str) -> Result<Vec<Extension>, HandshakeError> {
    let mut cursor = Cursor {
        bytes: value.as_bytes(),
        pos: 0,
    };
    let mut list = Vec::new();
    loop {
        cursor.skip_ows();
        match cursor.peek() {
            None => return Ok(list),
            Some(b',') => {
                cursor.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut extension = Extension {
            name: cursor.token()?,
            params: Vec::new(),
        };
        loop {
            cursor.skip_ows();
            match cursor.peek() {
                None => {
                    list.push(extension);
                    return Ok(list);
                }
                Some(b',') => {
                    cursor.pos += 1;
                    list.push(extension);
                    break;
                }
                Some(b';') => {
                    cursor.pos += 1;
                    cursor.skip_ows();
                    let name = cursor.token()?;
                    cursor.skip_ows();
                    let value = if cursor.peek() == Some(b'=') {
                        cursor.pos += 1;
                        cursor.skip_ows();
                        Some(if cursor.peek() == Some(b'"') {
                            cursor.quoted_token()?
                        } else {
                            cursor.token()?
                        })
                    } else {
                        None
                    };
                    extension.params.push((name, value));
                }
                Some(_) => return Err(HandshakeError::InvalidExtensionsHeader),
            }
        }
    }
}

/// A read position in a header value, for [`parse_extensions`].
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// One or more `tchar`.
    fn token(&mut self) -> Result<String, HandshakeError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match self.bytes.get(start..self.pos) {
            Some(token) if !token.is_empty() => Ok(token.iter().map(|&b| char::from(b)).collect()),
            _ => Err(HandshakeError::InvalidExtensionsHeader),
        }
    }

    /// A quoted-string (RFC 9110 §5.6.4), unescaped, whose content must be a token
    /// (RFC 6455 §9.1).
    fn quoted_token(&mut self) -> Result<String, HandshakeError> {
        // The caller saw the opening quote.
        self.pos += 1;
        let mut content = Vec::new();
        loop {
            let b = self.peek().ok_or(HandshakeError::InvalidExtensionsHeader)?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escaped = self.peek().ok_or(HandshakeError::InvalidExtensionsHeader)?;
                    self.pos += 1;
                    content.push(escaped);
                }
                _ => content.push(b),
            }
        }
        if is_token(&content) {
            Ok(content.iter().map(|&b| char::from(b)).collect())
        } else {
            Err(HandshakeError::InvalidExtensionsHeader)
        }
    }
}

/// Parse every occurrence of the extensions header `name` in `headers`: the parsed
/// list, and the raw values joined with `", "` (`None` when the list is empty).
pub(crate) fn extensions_of<N, V>(
    headers: &[(N, V)],
    name: &str,
) -> Result<(Vec<Extension>, Option<String>), HandshakeError>
where
    N: AsRef<str>,
    V: AsRef<[u8]>,
{
    let mut list = Vec::new();
    let mut raw: Vec<&str> = Vec::new();
    for value in values(headers, name) {
        let text =
            std::str::from_utf8(value).map_err(|_| HandshakeError::InvalidExtensionsHeader)?;
        let parsed = parse_extensions(text)?;
        if !parsed.is_empty() {
            raw.push(text.trim_matches([' ', '\t']));
            list.extend(parsed);
        }
    }
    let raw = if raw.is_empty() {
        None
    } else {
        Some(raw.join(", "))
    };
    Ok((list, raw))
}

/// Check a header given to this crate: a token name, a value without control
/// characters, and not one of `reserved` (compared ASCII case-insensitively).
pub(crate) fn check_header(name: &str, value: &str, reserved: &[&str]) -> Result<(), BuildError> {
    if !is_token(name.as_bytes()) {
        return Err(BuildError::InvalidHeaderName(name.to_owned()));
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(BuildError::ReservedHeader(name.to_owned()));
    }
    if !is_field_value(value.as_bytes()) {
        return Err(BuildError::InvalidHeaderValue(name.to_owned()));
    }
    Ok(())
}

/// Headers a server's extra headers may not set: the `101` response writes the
/// first five itself, and a `1xx` response may carry no body headers (RFC 9110
/// §8.6: "A server MUST NOT send a Content-Length header field in any response with
/// a status code of 1xx").
pub(crate) const RESERVED_RESPONSE_HEADERS: [&str; 7] = [
    UPGRADE,
    CONNECTION,
    SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_EXTENSIONS,
    "Content-Length",
    "Transfer-Encoding",
];

/// Headers a client's extra headers may not set: the request writes them itself
/// (the first eight), and a handshake `GET` has no body.
pub(crate) const RESERVED_REQUEST_HEADERS: [&str; 10] = [
    HOST,
    UPGRADE,
    CONNECTION,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_EXTENSIONS,
    ORIGIN,
    "Content-Length",
    "Transfer-Encoding",
];

/// Check the subprotocols a client offers. RFC 6455 §4.1 item 10: the elements
/// "MUST be non-empty strings with characters in the range U+0021 to U+007E not
/// including separator characters [...] and MUST all be unique strings".
pub(crate) fn check_offered_protocols(protocols: &[String]) -> Result<(), BuildError> {
    for (i, protocol) in protocols.iter().enumerate() {
        if !is_token(protocol.as_bytes()) {
            return Err(BuildError::InvalidProtocol(protocol.clone()));
        }
        if protocols.iter().take(i).any(|earlier| earlier == protocol) {
            return Err(BuildError::DuplicateProtocol(protocol.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\r\na"), b"\r\na");
    }

    #[test]
    fn values_match_names_case_insensitively_in_order() {
        let headers = [("X-A", &b"1"[..]), ("x-b", b"2"), ("x-a", b"3")];
        let got: Vec<&[u8]> = values(&headers, "X-a").collect();
        assert_eq!(got, [&b"1"[..], b"3"]);
    }

    #[test]
    fn one_value_distinguishes_absent_single_and_repeated() {
        let headers = [("a", &b"1"[..]), ("B", b"2"), ("b", b"3")];
        assert_eq!(one_value(&headers, "c"), None);
        assert_eq!(one_value(&headers, "A"), Some(Some(&b"1"[..])));
        assert_eq!(one_value(&headers, "b"), Some(None));
    }

    #[test]
    fn list_contains_looks_across_repeated_headers() {
        let headers = [
            ("Connection", &b"keep-alive"[..]),
            ("connection", b" UPGRADE "),
        ];
        assert!(list_contains(&headers, "connection", "upgrade"));
        assert!(!list_contains(&headers, "connection", "upgrad"));
    }

    #[test]
    fn field_values_refuse_cr_lf_nul_and_del() {
        assert!(is_field_value(b"a\tb c\xc3\xa9"));
        for bad in [&b"a\rb"[..], b"a\nb", b"a\0", b"\x7f"] {
            assert!(!is_field_value(bad));
        }
    }

    #[test]
    fn parse_extensions_reads_params_of_every_form() {
        let list = parse_extensions(
            "permessage-deflate ; client_max_window_bits ;server_max_window_bits = 10, \
             x-foo;a=\"b\\c\",,  y",
        )
        .unwrap();
        assert_eq!(
            list,
            [
                ext(
                    "permessage-deflate",
                    &[
                        ("client_max_window_bits", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                ext("x-foo", &[("a", Some("bc"))]),
                ext("y", &[]),
            ]
        );
    }

    #[test]
    fn parse_extensions_of_empty_or_commas_is_empty() {
        assert_eq!(parse_extensions("").unwrap(), []);
        assert_eq!(parse_extensions(" , ,").unwrap(), []);
    }

    #[test]
    fn parse_extensions_refuses_bad_syntax() {
        for bad in [
            "foo;",
            "foo; =1",
            "foo; a=",
            "foo; a=\"\"",
            "foo; a=\"b c\"",
            "foo; a=\"unterminated",
            "foo; a=\"b\\",
            "foo bar",
            "foo; a b",
            ";a",
            "foo=1",
            "foo; a=b=c",
            "f\u{e9}e",
            "foo\r\n",
        ] {
            assert_eq!(
                parse_extensions(bad),
                Err(HandshakeError::InvalidExtensionsHeader),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn extension_display_round_trips() {
        let text = "permessage-deflate; client_max_window_bits; server_max_window_bits=10";
        let list = parse_extensions(text).unwrap();
        assert_eq!(list[0].to_string(), text);
        let odd = ext("x", &[("a", Some("b \"c\\"))]);
        assert_eq!(odd.to_string(), r#"x; a="b \"c\\""#);
    }

    #[test]
    fn extensions_of_joins_raw_values_and_skips_empty_ones() {
        let headers = [
            ("Sec-WebSocket-Extensions", &b" a; x=1 "[..]),
            ("sec-websocket-extensions", b""),
            ("Sec-WebSocket-Extensions", b"b"),
        ];
        let (list, raw) = extensions_of(&headers, SEC_WEBSOCKET_EXTENSIONS).unwrap();
        assert_eq!(list, [ext("a", &[("x", Some("1"))]), ext("b", &[])]);
        assert_eq!(raw.as_deref(), Some("a; x=1, b"));
        let none: [(&str, &[u8]); 0] = [];
        assert_eq!(
            extensions_of(&none, SEC_WEBSOCKET_EXTENSIONS).unwrap(),
            (vec![], None)
        );
        let invalid = [("Sec-WebSocket-Extensions", &b"\xff"[..])];
        assert_eq!(
            extensions_of(&invalid, SEC_WEBSOCKET_EXTENSIONS),
            Err(HandshakeError::InvalidExtensionsHeader)
        );
    }

    #[test]
    fn check_header_refuses_injection_and_reserved_names() {
        assert_eq!(check_header("X-A", "b", &[]), Ok(()));
        assert_eq!(
            check_header("X-A", "b\r\nEvil: 1", &[]),
            Err(BuildError::InvalidHeaderValue("X-A".into()))
        );
        assert_eq!(
            check_header("X A", "b", &[]),
            Err(BuildError::InvalidHeaderName("X A".into()))
        );
        assert_eq!(
            check_header("x-a\r\n", "b", &[]),
            Err(BuildError::InvalidHeaderName("x-a\r\n".into()))
        );
        assert_eq!(
            check_header("connection", "close", &[CONNECTION]),
            Err(BuildError::ReservedHeader("connection".into()))
        );
    }
}
