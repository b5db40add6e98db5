//! freecall: a SIP softswitch (B2BUA) that connects calls someone else has paid for.
pub mod call;
pub mod clock;
pub mod config;
pub mod dialog;
pub mod driver;
pub mod media;
pub mod routing;
pub mod sip;
pub mod testkit;
pub mod transaction;
