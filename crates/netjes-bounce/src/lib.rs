//! Bounces, read. [`dsn`] parses RFC 3464 delivery status notifications;
//! the report sender uses it to learn that a report destination is dead.
//! Free of IO: the callers read the mail and act on what it says.

pub mod dsn;

pub use dsn::{parse, Action, Dsn, DsnError, Recipient, Status};
