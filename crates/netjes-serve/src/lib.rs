//! `netjes serve`: the web UI and JSON API, the SMTP test inbox (a
//! self-hosted mail-tester), and the store of signing domains whose keys
//! the milter signs with.

pub mod config;
pub mod crypto;
pub mod keystore;
pub mod store;
