//! Negotiating permessage-deflate (RFC 7692 §5, §7.1) from these settings, in both
//! roles: a server's answer to a client's offers, a client's offer and its check
//! of the answer. The parameters' grammar is read by the handshake
//! (`handshake/deflate.rs`).

use super::{DeflateSettings, DEFAULT_DEFLATE_WINDOW_BITS};
use crate::{
    handshake::{
        deflate::read_params, headers::Extension as ExtensionOffer, parse_extensions,
        HandshakeError,
    },
    proto::{deflate_compress_bits, Deflate, DeflateParams, Role, PERMESSAGE_DEFLATE},
};

impl DeflateSettings {
    /// The server side: answer the client's `Sec-WebSocket-Extensions` offers.
    ///
    /// Takes the first `permessage-deflate` offer that can be accepted (RFC 7692
    /// §5.1: the server "accepts" one of the offers, in the client's order of
    /// preference) and returns what was agreed, to be written as the answer with
    /// `to_string()` and made into a codec with [`Deflate::new`]. An offer is
    /// declined (the next one is tried) when it has an unknown, repeated or invalid
    /// parameter (RFC 7692 §7.1: "A server MUST decline an extension negotiation
    /// offer for this extension if any of the following conditions are met"), or
    /// asks the server to compress with an 8-bit window, which zlib cannot do.
    /// `None` when none is acceptable, or when [`enabled`](Self::enabled) is off.
    ///
    /// The answer (RFC 7692 §7.1.1, §7.1.2):
    /// - `server_no_context_takeover` when offered ("the server MUST include" it when
    ///   accepting such an offer) or configured;
    /// - `client_no_context_takeover` when configured, or offered (the client said it
    ///   will not take over context; saying so back lets us free the inflater
    ///   between messages);
    /// - `server_max_window_bits` = the smaller of the offered and the configured
    ///   value, when either is under 15;
    /// - `client_max_window_bits` only when offered ("MUST NOT include" it
    ///   otherwise): the smaller of the offered value (if any) and the configured
    ///   one, when that is under 15.
    ///
    /// ```
    /// use websocket_driver::DeflateSettings;
    ///
    /// let config = DeflateSettings::on();
    /// let offers = "permessage-deflate; server_max_window_bits=8, \
    ///               permessage-deflate; client_max_window_bits";
    /// let agreed = config.accept_offer(offers).unwrap();
    /// assert_eq!(agreed.to_string(), "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
    /// ```
    pub fn accept_offer(&self, offers: &str) -> Option<DeflateParams> {
        let list = parse_extensions(offers).ok()?;
        self.accept_offers(&list)
    }

    /// [`accept_offer`](Self::accept_offer) on an already parsed list.
    pub(crate) fn accept_offers(&self, offers: &[ExtensionOffer]) -> Option<DeflateParams> {
        if !self.enabled {
            return None;
        }
        offers
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
            .find_map(|offer| self.answer(offer))
    }

    fn answer(&self, offer: &ExtensionOffer) -> Option<DeflateParams> {
        let Some(p) = read_params(offer, true) else {
            tracing::debug!(%offer, "permessage-deflate offer declined: invalid parameters");
            return None;
        };
        let ours = deflate_compress_bits(
            self.server_max_window_bits
                .unwrap_or(DEFAULT_DEFLATE_WINDOW_BITS),
        );
        let server_max_window_bits = match p.server_max_window_bits {
            // zlib compresses with 9 bits at least (conformance: "an offer that would
            // make us compress with 8 bits is declined").
            Some(8) => {
                tracing::debug!(%offer, "permessage-deflate offer declined: server_max_window_bits=8");
                return None;
            }
            // RFC 7692 §7.1.2.1: the answer's value is "equal to or smaller than"
            // the offered one.
            Some(bits) => Some(bits.min(ours)),
            None => (ours < 15).then_some(ours),
        };
        let client_max_window_bits = match p.client_max_window_bits {
            // RFC 7692 §7.1.2.2: the server "MUST NOT include" it unless offered.
            None => None,
            Some(offered) => {
                let wanted = self
                    .client_max_window_bits
                    .unwrap_or(DEFAULT_DEFLATE_WINDOW_BITS)
                    .clamp(8, 15);
                let bits = offered.map_or(wanted, |o| o.min(wanted));
                (bits < 15 || offered.is_some()).then_some(bits)
            }
        };
        Some(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        })
    }

    /// The client side: the `Sec-WebSocket-Extensions` value to offer (RFC 7692
    /// §7.1): `permessage-deflate`, then `server_no_context_takeover` and
    /// `client_no_context_takeover` when configured, `server_max_window_bits=N` when
    /// the server window is configured under 15, and `client_max_window_bits`,
    /// which tells the server it may limit our window: with `=N` when the client
    /// window is configured under 15, without a value otherwise. With the defaults
    /// this is the browsers' offer, `permessage-deflate; client_max_window_bits`,
    /// which any server can answer.
    ///
    /// ```
    /// use websocket_driver::DeflateSettings;
    ///
    /// assert_eq!(DeflateSettings::on().offer(), "permessage-deflate; client_max_window_bits");
    /// let small = DeflateSettings::on().server_max_window_bits(10).client_max_window_bits(12);
    /// assert_eq!(small.offer(), "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12");
    /// ```
    pub fn offer(&self) -> String {
        let server_bits = self.requested_server_bits();
        let client_bits = self.offered_client_bits();
        let mut offer = String::from(PERMESSAGE_DEFLATE);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if server_bits < 15 {
            offer.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        offer.push_str("; client_max_window_bits");
        if client_bits < 15 {
            offer.push_str(&format!("={client_bits}"));
        }
        offer
    }

    /// The server window a client asks for: 15 (no request) unless configured.
    fn requested_server_bits(&self) -> u8 {
        self.server_max_window_bits
            .map_or(15, deflate_compress_bits)
    }

    /// The client window a client offers: 15 (no value) unless configured.
    fn offered_client_bits(&self) -> u8 {
        self.client_max_window_bits
            .map_or(15, deflate_compress_bits)
    }

    /// The client side: check the server's `Sec-WebSocket-Extensions` answer to
    /// [`offer`](Self::offer) and make the codec to install with
    /// [`Connection::set_extension`](crate::proto::Connection::set_extension).
    /// Any error means the client "MUST _Fail the WebSocket Connection_" (RFC 7692
    /// §7.1): [`HandshakeError::InvalidDeflateAnswer`] when the answer
    ///
    /// - is not exactly one `permessage-deflate` element (a different extension is
    ///   [`HandshakeError::UnofferedExtension`]);
    /// - has an unknown, repeated or malformed parameter, or a window outside 8-15;
    /// - lacks `server_max_window_bits` though we asked for it, or answers a larger
    ///   value (RFC 7692 §7.1.2.1);
    /// - has `client_max_window_bits` larger than we offered, or 8, a window zlib
    ///   cannot compress with (RFC 7692 §7.1.2.2).
    ///
    /// `server_no_context_takeover` is accepted even if not asked for (RFC 7692
    /// §7.1.1.1: the server "MAY include" it); `client_no_context_takeover` binds us.
    ///
    /// ```
    /// use websocket_driver::{proto::Extension, DeflateSettings};
    ///
    /// let config = DeflateSettings::on().server_max_window_bits(12);
    /// let codec = config.accept_response("permessage-deflate; server_max_window_bits=10").unwrap();
    /// assert_eq!(codec.name(), "permessage-deflate");
    /// assert!(config.accept_response("permessage-deflate; server_max_window_bits=13").is_err());
    /// ```
    pub fn accept_response(&self, answer: &str) -> Result<Deflate, HandshakeError> {
        let invalid = |why: &str| HandshakeError::InvalidDeflateAnswer(why.to_owned());
        let list = parse_extensions(answer)?;
        if let Some(other) = list
            .iter()
            .find(|e| !e.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        {
            return Err(HandshakeError::UnofferedExtension(other.name.clone()));
        }
        let [answer] = list.as_slice() else {
            return Err(invalid("not exactly one permessage-deflate element"));
        };
        let p = read_params(answer, false).ok_or_else(|| invalid("invalid parameters"))?;
        let requested_server = self.requested_server_bits();
        if requested_server < 15 {
            match p.server_max_window_bits {
                None => return Err(invalid("server_max_window_bits missing")),
                Some(bits) if bits > requested_server => {
                    return Err(invalid("server_max_window_bits larger than requested"))
                }
                Some(_) => {}
            }
        }
        let offered_client = self.offered_client_bits();
        let client_max_window_bits = match p.client_max_window_bits.flatten() {
            Some(8) => return Err(invalid("client_max_window_bits=8 cannot be honoured")),
            Some(bits) if bits > offered_client => {
                return Err(invalid("client_max_window_bits larger than offered"))
            }
            Some(bits) => Some(bits),
            // Without an answer, the window we offered still bounds ours.
            None => (offered_client < 15).then_some(offered_client),
        };
        let params = DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits,
            client_max_window_bits,
        };
        Ok(Deflate::new(Role::Client, params, self))
    }
}
