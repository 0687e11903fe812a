//! Bounces, read. [`dsn`] parses RFC 3464 delivery status notifications
//! (the report sender uses it to learn that a report destination is dead);
//! [`classify`] says what any returned message means for its recipient:
//! hard, soft, block or complaint. Free of IO: the callers read the mail
//! and act on what it says.

pub mod classify;
pub mod dsn;
pub mod events;

pub use dsn::{parse, Action, Dsn, DsnError, Recipient, Status};
