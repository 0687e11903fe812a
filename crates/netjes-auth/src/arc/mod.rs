//! ARC (RFC 8617): chain validation and sealing over netjes's DNS.

pub mod seal;
pub mod structure;
pub mod verify;

pub use seal::{seal_message, seal_modified, seal_parsed, SealError, SealOptions, Sealed};
pub use verify::{verify_arc, ArcReport, ArcResult};
