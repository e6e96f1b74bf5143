//! The tokio-util codec over the protocol core: the one seam between the sans-I/O
//! core and the async layers.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::{
    proto::{Connection, Event, Message},
    Error,
};

/// A [`Decoder`] of [`Event`]s and an [`Encoder`] of [`Message`]s over a
/// [`Connection`].
///
/// `decode` hands the read buffer to [`Connection::receive_buf`], so whole frames
/// are split off it without copying, and returns the core's events one at a time.
/// A protocol failure takes effect when its [`Event::Error`] is returned (see
/// [`Connection::poll_event`]); after [`Event::Close`] the connection reads nothing
/// more.
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use websocket_driver::{codec::Codec, proto::{Connection, Event, Message, Role}, Config};
///
/// let mut core = Connection::new(Role::Server, Config::default());
/// core.open();
/// let mut codec = Codec::new(core);
/// let mut input = BytesMut::from(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i'][..]);
/// assert!(matches!(codec.decode(&mut input).unwrap(), Some(Event::Open)));
/// assert!(matches!(codec.decode(&mut input).unwrap(), Some(Event::Message(Message::Text(t))) if t == "hi"));
/// assert!(codec.decode(&mut input).unwrap().is_none());
///
/// let mut out = BytesMut::new();
/// codec.encode(Message::from("hi"), &mut out).unwrap();
/// assert_eq!(&out[..], b"\x81\x02hi");
/// ```
#[derive(Debug)]
pub struct Codec {
    core: Connection,
}

impl Codec {
    /// A codec over `core`.
    pub fn new(core: Connection) -> Self {
        Codec { core }
    }

    /// The core.
    pub fn core(&self) -> &Connection {
        &self.core
    }

    /// The core, to send through it or to read its state.
    pub fn core_mut(&mut self) -> &mut Connection {
        &mut self.core
    }

    /// The core, by value.
    pub fn into_core(self) -> Connection {
        self.core
    }
}

impl Decoder for Codec {
    type Item = Event;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Error> {
        if self.core.peek_event().is_none() && !src.is_empty() {
            self.core.receive_buf(src);
        }
        Ok(self.core.poll_event())
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Error> {
        if let Some(event) = self.decode(src)? {
            return Ok(Some(event));
        }
        self.core.receive_eof();
        Ok(self.core.poll_event())
    }
}

impl Encoder<Message> for Codec {
    type Error = Error;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), Error> {
        self.core.send(&item)?;
        self.core.write_output_into(dst);
        Ok(())
    }
}
