//! The message test (`netjes analyze`), being built: so far the Received
//! chain, in the order the mail travelled, and the envelope facts it gives
//! when they are not given on the command line.

pub mod bulk;
pub mod finding;
pub mod format;
pub mod received;
