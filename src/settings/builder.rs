//! The setters that `ws::Server` and `ws::Client` share: one definition, each a
//! one-line change of the builder's [`Settings`](super::Settings) through its
//! `configure`.

/// Inside `impl Builder { .. }` of a type with
/// `fn configure(self, impl FnOnce(&mut Settings)) -> Self`: the setters of the
/// `[protocol]` and `[connection]` sections and the whole `[deflate]` section,
/// each named as the field it sets (`max_length` for `max_message_size`).
macro_rules! builder_setters {
    () => {
        /// The message limit (websocket-driver's (Common Lisp) `max-length`), see
        /// [`ProtocolSettings::max_message_size`](crate::settings::ProtocolSettings::max_message_size);
        /// lowers `max_frame_size` to it when that was larger.
        #[doc(alias = "max_message_size")]
        pub fn max_length(self, bytes: usize) -> Self {
            self.configure(|s| s.protocol = std::mem::take(&mut s.protocol).max_message_size(bytes))
        }

        /// See [`ProtocolSettings::max_frame_size`](crate::settings::ProtocolSettings::max_frame_size).
        pub fn max_frame_size(self, bytes: usize) -> Self {
            self.configure(|s| s.protocol.max_frame_size = bytes)
        }

        /// See [`ProtocolSettings::max_fragments`](crate::settings::ProtocolSettings::max_fragments).
        pub fn max_fragments(self, count: usize) -> Self {
            self.configure(|s| s.protocol.max_fragments = count)
        }

        /// See [`ProtocolSettings::auto_pong`](crate::settings::ProtocolSettings::auto_pong).
        pub fn auto_pong(self, on: bool) -> Self {
            self.configure(|s| s.protocol.auto_pong = on)
        }

        /// See [`ConnectionSettings::ping_interval`](crate::settings::ConnectionSettings::ping_interval).
        pub fn ping_interval(self, interval: Option<std::time::Duration>) -> Self {
            self.configure(|s| s.connection.ping_interval = interval)
        }

        /// See [`ConnectionSettings::idle_timeout`](crate::settings::ConnectionSettings::idle_timeout).
        pub fn idle_timeout(self, timeout: Option<std::time::Duration>) -> Self {
            self.configure(|s| s.connection.idle_timeout = timeout)
        }

        /// See [`ConnectionSettings::close_timeout`](crate::settings::ConnectionSettings::close_timeout).
        pub fn close_timeout(self, timeout: std::time::Duration) -> Self {
            self.configure(|s| s.connection.close_timeout = timeout)
        }

        /// How long the opening handshake may take where the crate reads it itself
        /// (the standalone server's request head; the client's TLS and response
        /// head), see
        /// [`ConnectionSettings::handshake_timeout`](crate::settings::ConnectionSettings::handshake_timeout).
        pub fn handshake_timeout(self, timeout: std::time::Duration) -> Self {
            self.configure(|s| s.connection.handshake_timeout = timeout)
        }

        /// See [`ConnectionSettings::max_send_buffer`](crate::settings::ConnectionSettings::max_send_buffer).
        pub fn max_send_buffer(self, bytes: usize) -> Self {
            self.configure(|s| s.connection.max_send_buffer = bytes)
        }

        /// See [`ConnectionSettings::close_on_backpressure`](crate::settings::ConnectionSettings::close_on_backpressure).
        pub fn close_on_backpressure(self, on: bool) -> Self {
            self.configure(|s| s.connection.close_on_backpressure = on)
        }

        /// Negotiate permessage-deflate (RFC 7692) as `deflate` says: see
        /// [`DeflateSettings`](crate::settings::DeflateSettings) for each choice,
        /// the memory it costs and what each role does with it. Default: off.
        pub fn deflate(self, deflate: crate::settings::DeflateSettings) -> Self {
            self.configure(|s| s.deflate = deflate)
        }
    };
}

pub(crate) use builder_setters;
