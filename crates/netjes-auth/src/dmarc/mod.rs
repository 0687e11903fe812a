//! DMARC (RFC 9989, which replaced RFC 7489 in 2026).
//!
//! Records are parsed by mail-auth. Discovery and evaluation are ours, over
//! netjes's resolver, so that every DNS failure follows one contract and the
//! report can say where the policy was found, which identifier aligned, and
//! which tags RFC 9989 removed.

pub mod author;
pub mod evaluate;
pub mod record;

pub use author::{authors_of, AuthorError, Authors};
pub use evaluate::{evaluate, refused, DmarcInput, DmarcReport, DmarcResult};
pub use record::{parse_dmarc_record, DmarcRecord, Policy};
