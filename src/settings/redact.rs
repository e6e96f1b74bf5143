//! Credentials kept out of `Debug` output, log lines and error messages: a URL's
//! password (and a user name standing alone, often a token), the values of query
//! parameters and headers whose names say they carry one, each shown as `***`.
//!
//! Plain string work: the settings use it for their `Debug`, the glue for what it
//! logs.

use std::{borrow::Cow, fmt};

/// What a credential is shown as.
pub(crate) const MASK: &str = "***";

/// Whether a query parameter or header named `name` carries a credential:
/// `Authorization`, `Cookie`, or a name with `token`, `pass`, `secret`, `key`,
/// `auth`, `sig`, `jwt`, `credential` or `session` in it (any case).
pub(crate) fn is_secret_name(name: &str) -> bool {
    const PARTS: [&str; 10] = [
        "token",
        "pass",
        "secret",
        "key",
        "auth",
        "sig",
        "jwt",
        "credential",
        "session",
        "cookie",
    ];
    let name = name.to_ascii_lowercase();
    PARTS.iter().any(|part| name.contains(part))
}

/// `url` with its credentials shown as `***`: the user information's password
/// (`redis://user:***@host`, `redis://:***@host`) or a user name standing alone
/// (`https://***@host`), and the values of query parameters that
/// [carry one](is_secret_name) (`?token=***`). Text that is not a URL comes back
/// as it is.
pub(crate) fn url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..authority_start]);
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            // The user name is shown when a password follows it (and it holds no
            // `@`, which would be part of a secret that was not encoded).
            if let Some((user, _)) = userinfo.split_once(':').filter(|(u, _)| !u.contains('@')) {
                out.push_str(user);
                out.push(':');
            }
            out.push_str(MASK);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let rest = &url[authority_end..];
    let (before_fragment, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _)) if is_secret_name(name) => {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    if out == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(out)
    }
}

/// A header value as it may be shown: `***` when the header
/// [carries a credential](is_secret_name).
pub(crate) fn header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        MASK
    } else {
        value
    }
}

/// Headers (name, value) shown with their credentials as `***`, for a `Debug`
/// output.
#[cfg(feature = "server")]
pub(crate) struct Headers<'a>(pub &'a [(String, Vec<u8>)]);

#[cfg(feature = "server")]
impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if is_secret_name(name) {
                    Cow::Borrowed(MASK)
                } else {
                    String::from_utf8_lossy(value)
                };
                (name, shown)
            }))
            .finish()
    }
}

/// A URL shown (`Debug` and `Display`) with its credentials as `***`.
pub(crate) struct Url<'a>(pub &'a str);

impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&url(self.0), f)
    }
}

impl fmt::Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&url(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_lone_user_names_are_masked() {
        assert_eq!(
            url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(url("redis://app:hunter2@host/0"), "redis://app:***@host/0");
        assert_eq!(url("https://tok3n@host/x"), "https://***@host/x");
        assert_eq!(url("redis://a:b:c@host"), "redis://a:***@host");
        assert_eq!(url("redis://a@b:c@host"), "redis://***@host");
        assert_eq!(url("redis://host:6379/0"), "redis://host:6379/0");
        assert!(matches!(url("redis://host:6379/0"), Cow::Borrowed(_)));
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn credential_query_values_are_masked() {
        assert_eq!(
            url("wss://h/p?room=1&token=abc&access_token=x&api_key=k&sig=s#frag"),
            "wss://h/p?room=1&token=***&access_token=***&api_key=***&sig=***#frag"
        );
        assert_eq!(url("wss://h/?room=1&flag"), "wss://h/?room=1&flag");
        assert_eq!(
            url("redis-cluster://:pw@h:1?node=h:2"),
            "redis-cluster://:***@h:1?node=h:2"
        );
    }

    #[test]
    fn secret_names_are_recognized() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "password",
            "sessionid",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "Host",
            "Origin",
            "User-Agent",
            "room",
            "Sec-WebSocket-Protocol",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert_eq!(header_value("Authorization", "Bearer x"), MASK);
        assert_eq!(header_value("X-Served-By", "ws-1"), "ws-1");
    }
}
