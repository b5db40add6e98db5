//! freecall: a SIP softswitch (B2BUA) that connects calls someone else has paid for.
pub mod sip;
