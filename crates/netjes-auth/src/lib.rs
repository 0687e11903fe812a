//! The netjes authentication engine: SPF, DKIM, DMARC and ARC evaluated as
//! the RFCs say, over the DNS of [`netjes_dns`].
//!
//! Protocol logic lives in one module per protocol and one file per role.
//! All DNS goes through a [`netjes_dns::Resolver`]; mail-auth supplies the
//! record parsers and the DKIM/ARC cryptography.

pub mod arc;
pub mod authres;
pub mod dkim;
pub mod dmarc;
mod glue;
mod lex;
pub mod message;
pub mod spf;
pub mod verdict;
