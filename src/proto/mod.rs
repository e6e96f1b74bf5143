//! The sans-I/O protocol core (RFC 6455): bytes in, events and bytes out.
//!
//! Nothing here does I/O, spawns, or depends on actix or tokio; the crate builds it
//! with `--no-default-features`.

mod close;
mod close_code;
mod connection;
mod deflate;
mod error;
mod event;
mod extension;
mod header;
mod mask;
mod message;
mod opcode;
mod output;
mod receive;
mod role;
mod send;
mod state;
mod utf8;
mod views;

pub use close::{CloseFrame, MAX_REASON_LEN};
pub use close_code::CloseCode;
pub use connection::{Connection, MAX_CONTROL_PAYLOAD, VERSION};
pub(crate) use deflate::compress_bits as deflate_compress_bits;
pub use deflate::{Deflate, DeflateParams, PreparedMessage, INFLATE_STEP, PERMESSAGE_DEFLATE};
pub use error::{CapacityError, Error, ExtensionError, ProtocolError, SendError};
pub use event::{CloseEvent, Event};
pub use extension::Extension;
pub use header::{FrameHeader, MAX_HEADER_LEN, RSV1, RSV2, RSV3};
pub use mask::{apply_mask, apply_mask_scalar, generate_mask};
pub use message::{Message, Utf8Bytes};
pub use opcode::OpCode;
pub use role::Role;
pub use state::{ReadyState, UnknownReadyState};
pub use utf8::Utf8Validator;
pub use views::{Info, Output, OutputMut};
