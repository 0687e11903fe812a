//! The policy service's state: greylist triplets, the auto-whitelist of
//! clients, and rate-limit windows. Behind a trait: the embedded default
//! is [`SqliteStore`] (SQLite fronted by a journal); [`RedisStore`] is the
//! state shared by the policy services of several MX hosts.

pub mod journal;
pub(crate) mod redis;
mod sqlite;

pub use self::redis::RedisStore;
pub use sqlite::SqliteStore;

use crate::greylist::{Params, Verdict};

#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(String),
    #[error("state store: cannot create {0}: {1}")]
    Dir(String, String),
    #[error("state store: journal {0}: {1}")]
    Journal(String, String),
    #[error("state store: {0} is in use by another process (another netjes policy on this data directory?)")]
    Locked(String),
    #[error("state store: {0} changes are waiting for the database, which fails; answering without state")]
    Backlog(usize),
    #[error("state store: the writer thread has stopped")]
    Gone,
    #[error("state store: Redis: {0}")]
    Redis(String),
    #[error("sending rights: {0}")]
    Rights(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

/// One greylisting attempt: the triplet, and the client network for the
/// auto-whitelist.
#[derive(Debug, Clone)]
pub struct GreyAttempt {
    pub key: String,
    pub client_net: String,
    pub now: i64,
    pub params: Params,
    /// Deliveries after which a network is whitelisted; 0: never.
    pub awl_after: u32,
    /// Greylist even a whitelisted network (a blocklist score asked for it).
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreyOutcome {
    /// The network is auto-whitelisted; the triplet was not looked at.
    AutoWhitelisted,
    Triplet(Verdict),
}

/// One greylist triplet as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripletRow {
    pub first_seen: i64,
    pub last_seen: i64,
    /// The sender retried after the delay: later attempts pass at once.
    pub passed: bool,
}

/// The state behind the policy checks.
///
/// Error contract: an `Err` means the attempt may not have been recorded;
/// the caller answers DUNNO (never a reject or a defer made up from
/// missing state) and counts the error. An `Ok` answer is durable: its
/// change survives a kill -9 of the process.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Looks the attempt up and records it, atomically.
    async fn greylist(&self, a: GreyAttempt) -> Result<GreyOutcome, StoreError>;
    /// Adds `by` to a rate window and returns its new total.
    async fn rate_add(&self, key: &str, window_start: i64, by: u32) -> Result<u32, StoreError>;
    /// Forgets triplets and clients unseen since `before`, and rate windows
    /// that began before `rate_before`. Returns the rows removed.
    async fn expire(&self, before: i64, rate_before: i64) -> Result<usize, StoreError>;
}

fn clamp_u32(n: i64) -> u32 {
    n.clamp(0, u32::MAX as i64) as u32
}
