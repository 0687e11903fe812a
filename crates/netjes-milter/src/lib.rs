//! `netjes milter`: DKIM signing of outgoing mail and SPF, DKIM, ARC and
//! DMARC verification of incoming mail inside Postfix, in one daemon.
//! The protocol and the session are free of IO; `server::run(listener,
//! milter, shutdown)` drives them over the real wire protocol.

pub mod client;
pub mod config;
pub mod keys;
pub mod protocol;
pub mod report;
pub mod report_send;
pub mod server;
pub mod session;
pub mod verdicts;
pub mod verdicts_pg;
pub mod work;
