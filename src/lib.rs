//! freecall: a SIP softswitch (B2BUA) that connects calls someone else has paid for.
pub mod accounting;
pub mod api;
pub mod auth;
pub mod billing;
pub mod call;
pub mod clock;
pub mod config;
pub mod dialog;
pub mod driver;
pub mod media;
pub mod numbers;
pub mod routing;
pub mod sip;
pub mod store;
pub mod testkit;
pub mod transaction;
