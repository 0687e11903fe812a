//! ARC (RFC 8617): chain validation over netjes's DNS.

pub mod verify;

pub use verify::{verify_arc, ArcReport, ArcResult};
