//! `netjes milter`: DKIM signing of outgoing mail and SPF, DKIM, ARC and
//! DMARC verification of incoming mail inside Postfix, in one daemon.
//! Being built: so far the milter wire protocol (version 6).

pub mod protocol;
pub mod keys;
pub mod server;
pub mod session;
pub mod work;
