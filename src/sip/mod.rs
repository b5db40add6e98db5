//! SIP messages: framing, parsing and building.
//!
//! rsip parses the grammar; this module wraps it so that the rest of the switch never sees
//! rsip types (it can be replaced) and so that the things rsip gets wrong for a switch are
//! handled here: stream framing, folded header lines, Content-Length against the body,
//! CSeq method against the request method, unbalanced quotes. A request that cannot be
//! parsed can still be answered with a stateless 400 built from its raw header lines.

mod builder;
mod message;
mod parse;

pub use builder::{Builder, OutRequest};
pub use message::{Header, Message, Method, StartLine, Transport, split_list};
pub use parse::{ParseError, frame_stream, parse_datagram, parse_framed, stateless_reply_to_raw};

/// The branch prefix RFC 3261 mandates, followed by our own marker so that a request that
/// comes back to us through a loop can be recognised.
pub const BRANCH_PREFIX: &str = "z9hG4bKfc";
