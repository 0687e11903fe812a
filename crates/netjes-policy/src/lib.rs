//! `netjes policy`: the Postfix SMTP access policy service. SPF as
//! policyd-spf, greylisting as postgrey, weighted blocklists as postscreen,
//! rate limits and own-domain spoofing, in one service with one persistent
//! state. It answers while the client is still connected, so a rejection
//! never becomes backscatter.
//!
//! The protocol and the decisions are free of IO but for the injected
//! resolver and store; `server::run(listener, policy, shutdown)` drives
//! them over the real wire protocol, in tests as in production.

pub mod config;
pub mod dnsbl;
pub mod greylist;
/// The metrics live with the other daemon plumbing in netjes-net.
pub use netjes_net::metrics;
pub mod policy;
pub mod protocol;
pub mod senders;
pub mod server;
pub mod store;

pub use config::Config;
pub use policy::{Decision, Policy};
