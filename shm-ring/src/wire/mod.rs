//! The wire format: what a message's bytes mean, in one place for every reader and writer (the
//! publisher and subscriber here, the Python binding, the command line). See `docs/wire-format.md`.
//!
//! * [`Codec`]: the codec id stored with each message;
//! * [`topic_hash`]: the hash stored with each message and used by every hook table;
//! * [`compact`]: the compact encoding of primitive call arguments;
//! * `value`: [`PyValue`](pickle::PyValue), the Python values the Rust side writes and reads;
//! * [`pickle`]: the subset of pickle written from Rust and read back for display;
//! * [`buffers`]: the layout of a pickle whose buffers travel out of band;
//! * `objects`: how the display decoder shows the objects a pickle builds (arrays, buffers);
//! * [`render`]: decoding any payload into a [`pickle::PyValue`] for display, within limits.

pub mod buffers;
pub mod compact;
mod objects;
pub mod pickle;
pub mod render;
mod value;

pub use engine_core::topic_hash;

/// Codec tag stored with each message (the Python side may use further values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// Raw bytes: a Python handler receives one `bytes` argument.
    Raw = 0,
    /// A pickle of `(args, kwargs)`.
    Pickle = 1,
    /// The compact encoding of primitive call arguments (see [`compact`]).
    Compact = 2,
    /// A protocol-5 pickle of `(args, kwargs)` with its buffers out of band (see [`buffers`]).
    PickleBuffers = 3,
}

impl Codec {
    /// Its name as tools show it: `raw`, `pickle`, `compact`, `pickle-buffers`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Pickle => "pickle",
            Codec::Compact => "compact",
            Codec::PickleBuffers => "pickle-buffers",
        }
    }

    /// The codec with id `id`, if it is one of ours.
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Pickle),
            2 => Some(Codec::Compact),
            3 => Some(Codec::PickleBuffers),
            _ => None,
        }
    }
}

impl TryFrom<u8> for Codec {
    /// The id, when no codec has it.
    type Error = u8;

    /// The codec whose id is `id` (as read from a message or from the wire).
    fn try_from(id: u8) -> Result<Codec, u8> {
        Codec::from_id(id).ok_or(id)
    }
}
