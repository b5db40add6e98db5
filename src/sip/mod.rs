//! SIP messages: framing, parsing and building.
//!
//! `parse.rs` frames and parses: stream framing, folded header lines, compact names,
//! Content-Length against the body, headers that must appear once, CSeq method against
//! the request method, unbalanced quotes, bare CR/LF. `grammar.rs` reads the values the
//! switch uses (From/To/Contact name-addrs and tags, Via, a URI's scheme and user) as
//! tolerantly as RFC 4475 asks of valid messages and as strictly as it asks of invalid
//! ones; rsip could not read several of its valid messages (LWS around `;`, unusual
//! characters in a user part or an unknown method's URI, RFC 2543 Vias without a branch).
//! A request that cannot be parsed can still be answered with a stateless 400 (505 for an
//! unknown SIP version) built from its raw header lines.

mod builder;
mod grammar;
mod message;
mod parse;

pub use builder::{Builder, OutRequest};
pub use grammar::{scheme, uri_user};

/// The URI of a From, To or Contact value (as written), if it is well formed.
pub fn name_addr_uri(value: &str) -> Option<String> {
    grammar::name_addr(value).map(|n| n.uri)
}
pub use message::{Header, Message, Method, StartLine, Transport, split_list};
pub use parse::{ParseError, frame_stream, parse_datagram, parse_framed, stateless_reply_to_raw};

/// The branch prefix RFC 3261 mandates, followed by our own marker so that a request that
/// comes back to us through a loop can be recognised.
pub const BRANCH_PREFIX: &str = "z9hG4bKfc";
