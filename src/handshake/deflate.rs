//! Reading the parameters of a `permessage-deflate` offer or answer (RFC 7692
//! §7.1). What to offer, accept and answer is decided from the settings, in
//! `settings/deflate.rs` (`DeflateSettings::accept_offer`, `offer`,
//! `accept_response`).

use super::headers::Extension;

/// The parameters of one `permessage-deflate` element, checked against RFC 7692
/// §7.1: known names, each at most once, values of the right form.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (allowed in an offer only).
    pub(crate) client_max_window_bits: Option<Option<u8>>,
}

/// A window-bits value: "a decimal integer value without leading zeroes between 8 to
/// 15, inclusive" (RFC 7692 §7.1.2.1, §7.1.2.2). The header parser has already
/// removed any quotes (RFC 7692 §7.1: a quoted-string value is read unquoted).
fn window_bits(value: &str) -> Option<u8> {
    let valid = !value.is_empty()
        && !value.starts_with('0')
        && value.len() <= 2
        && value.bytes().all(|b| b.is_ascii_digit());
    let bits: u8 = value.parse().ok().filter(|_| valid)?;
    (8..=15).contains(&bits).then_some(bits)
}

/// Read the parameters of one element. `None`: an unknown or repeated parameter,
/// or a value where none belongs or of the wrong form (RFC 7692 §7.1: a server
/// declines such an offer, a client fails such an answer). `offer` allows
/// `client_max_window_bits` without a value.
pub(crate) fn read_params(ext: &Extension, offer: bool) -> Option<Params> {
    let mut p = Params::default();
    for (name, value) in &ext.params {
        let value = value.as_deref();
        match name.as_str() {
            // RFC 7692 §7.1.1.1 and §7.1.1.2: these "have no value".
            "server_no_context_takeover" if !p.server_no_context_takeover && value.is_none() => {
                p.server_no_context_takeover = true;
            }
            "client_no_context_takeover" if !p.client_no_context_takeover && value.is_none() => {
                p.client_no_context_takeover = true;
            }
            "server_max_window_bits" if p.server_max_window_bits.is_none() => {
                p.server_max_window_bits = Some(window_bits(value?)?);
            }
            "client_max_window_bits" if p.client_max_window_bits.is_none() => {
                p.client_max_window_bits = Some(match value {
                    // RFC 7692 §7.1.2.2: "This parameter has no value or a decimal
                    // integer value" in an offer; an answer carries a value.
                    None if offer => None,
                    None => return None,
                    Some(v) => Some(window_bits(v)?),
                });
            }
            _ => return None,
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bits_reads_8_to_15_without_leading_zeroes() {
        assert_eq!(window_bits("8"), Some(8));
        assert_eq!(window_bits("15"), Some(15));
        assert_eq!(window_bits("7"), None);
        assert_eq!(window_bits("16"), None);
        assert_eq!(window_bits("08"), None);
        assert_eq!(window_bits("010"), None);
        assert_eq!(window_bits(""), None);
        assert_eq!(window_bits("+9"), None);
        assert_eq!(window_bits("999999999999"), None);
    }
}
