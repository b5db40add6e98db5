//! Registrations as the call layer, the accounting service and the store share them:
//! where a member's softphone is (`Binding`) and what a REGISTER asks (`RegisterRequest`).
//!
//! Pure data: the call layer parses REGISTER and checks the nonce, the accounting service
//! checks the digest against the stored HA1 and writes the binding, the store keeps it.

use crate::auth::DigestProof;

/// One registered contact of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the phone registered (the Request-URI of calls to it).
    pub contact: String,
    /// `udp:127.0.0.1:5070` / `tcp:…`: where its REGISTER came from, and so where the
    /// switch sends calls to it (never to an address the Contact merely names).
    pub source: String,
    /// Wall-clock milliseconds.
    pub expires_ms: i64,
}

/// A REGISTER whose nonce the call layer accepted; the proof is checked against the
/// member's stored HA1 before anything is written.
#[derive(Clone, Debug)]
pub struct RegisterRequest {
    /// The address of record's user part (the member's SIP user), which must be the
    /// proof's user: nobody registers for someone else.
    pub user: String,
    pub proof: Box<DigestProof>,
    /// (Contact URI, seconds; 0 removes it).
    pub contacts: Vec<(String, u32)>,
    /// `Contact: *` with `Expires: 0`.
    pub remove_all: bool,
    pub source: String,
    pub call_id: String,
    pub cseq: u32,
    /// The most contacts one member may have registered at once (`limits.max_bindings_per_user`).
    pub max_bindings: usize,
}

/// Why a REGISTER was refused after the nonce check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterRefusal {
    /// Wrong password or unknown user: challenged again.
    BadCredentials,
    /// The store could not be reached.
    Unavailable,
    /// A new contact beyond `limits.max_bindings_per_user`: nothing changed.
    TooManyContacts,
}
