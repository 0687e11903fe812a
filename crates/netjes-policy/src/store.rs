//! The policy service's state: greylist triplets, the auto-whitelist of
//! clients, and rate-limit windows. Behind a trait so that a store shared
//! by many MX hosts (Redis) can come later; the embedded default is SQLite
//! in WAL mode.
//!
//! Group commit: one writer thread owns the connection. It takes every
//! operation that is waiting, runs them all in one transaction, commits,
//! and only then answers them. A request is answered after its state is
//! committed (so it survives a kill -9), yet concurrent requests share one
//! commit instead of queueing for one each.

use crate::greylist::{self, Params, Verdict};
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(String),
    #[error("state store: cannot create {0}: {1}")]
    Dir(String, String),
    #[error("state store: the writer thread has stopped")]
    Gone,
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

enum Op {
    Greylist(GreyAttempt, oneshot::Sender<Result<GreyOutcome, StoreError>>),
    Rate(String, i64, u32, oneshot::Sender<Result<u32, StoreError>>),
    Expire(i64, i64, oneshot::Sender<Result<usize, StoreError>>),
}

/// The most operations one transaction takes.
const MAX_BATCH: usize = 512;

#[derive(Debug)]
pub struct SqliteStore {
    tx: mpsc::UnboundedSender<Op>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS greylist (key TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, passed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS greylist_last_seen ON greylist(last_seen);
CREATE TABLE IF NOT EXISTS awl (client TEXT PRIMARY KEY, count INTEGER NOT NULL, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rate (key TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (key, window_start));
";

impl SqliteStore {
    /// Opens (and creates) `dir/policy.sqlite`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.display().to_string(), e.to_string()))?;
        Self::open_file(&dir.join("policy.sqlite"))
    }

    pub fn open_file(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        // WAL: a commit is in the file (through the OS) before the answer,
        // so a killed process loses nothing; synchronous=NORMAL gives up
        // only the last commits on a power loss, which greylisting forgives.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("netjes-policy-store".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError::Sqlite(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore { tx })
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| StoreError::Gone)?;
        rx.await.map_err(|_| StoreError::Gone)?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn greylist(&self, a: GreyAttempt) -> Result<GreyOutcome, StoreError> {
        self.call(|r| Op::Greylist(a, r)).await
    }

    async fn rate_add(&self, key: &str, window_start: i64, by: u32) -> Result<u32, StoreError> {
        let key = key.to_string();
        self.call(|r| Op::Rate(key, window_start, by, r)).await
    }

    async fn expire(&self, before: i64, rate_before: i64) -> Result<usize, StoreError> {
        self.call(|r| Op::Expire(before, rate_before, r)).await
    }
}

fn clamp_u32(n: i64) -> u32 {
    n.clamp(0, u32::MAX as i64) as u32
}

fn do_greylist(tx: &rusqlite::Transaction<'_>, a: &GreyAttempt) -> Result<GreyOutcome, rusqlite::Error> {
    if !a.force && a.awl_after > 0 {
        let n: Option<i64> = tx.prepare_cached("SELECT count FROM awl WHERE client = ?1")?.query_row([&a.client_net], |r| r.get(0)).ok();
        if clamp_u32(n.unwrap_or(0)) >= a.awl_after {
            return Ok(GreyOutcome::AutoWhitelisted);
        }
    }
    let old = tx
        .prepare_cached("SELECT first_seen, last_seen, passed FROM greylist WHERE key = ?1")?
        .query_row([&a.key], |r| Ok(crate::store::TripletRow { first_seen: r.get(0)?, last_seen: r.get(1)?, passed: r.get::<_, i64>(2)? != 0 }))
        .ok();
    let (row, verdict) = greylist::decide(old, a.now, &a.params);
    tx.prepare_cached("INSERT INTO greylist (key, first_seen, last_seen, passed) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET first_seen = ?2, last_seen = ?3, passed = ?4")?
        .execute(rusqlite::params![a.key, row.first_seen, row.last_seen, row.passed as i64])?;
    if matches!(verdict, Verdict::FirstPass | Verdict::Known) && a.awl_after > 0 {
        tx.prepare_cached("INSERT INTO awl (client, count, last_seen) VALUES (?1, 1, ?2) ON CONFLICT(client) DO UPDATE SET count = count + 1, last_seen = ?2")?
            .execute(rusqlite::params![a.client_net, a.now])?;
    }
    Ok(GreyOutcome::Triplet(verdict))
}

/// The writer thread: batches, one transaction per batch, answers after
/// the commit. A failed batch is answered with its error, all of it.
fn writer(mut conn: rusqlite::Connection, mut rx: mpsc::UnboundedReceiver<Op>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let run = |conn: &mut rusqlite::Connection, batch: &[Op]| -> Result<Vec<Result<i64, GreyOutcome>>, rusqlite::Error> {
            let tx = conn.transaction()?;
            let mut out = Vec::with_capacity(batch.len());
            for op in batch {
                out.push(match op {
                    Op::Greylist(a, _) => Err(do_greylist(&tx, a)?),
                    Op::Rate(key, w, by, _) => Ok(tx
                        .prepare_cached("INSERT INTO rate (key, window_start, count) VALUES (?1, ?2, ?3) ON CONFLICT(key, window_start) DO UPDATE SET count = count + ?3 RETURNING count")?
                        .query_row(rusqlite::params![key, w, *by as i64], |r| r.get(0))?),
                    Op::Expire(before, rate_before, _) => {
                        let mut n = tx.execute("DELETE FROM greylist WHERE last_seen < ?1", [before])?;
                        n += tx.execute("DELETE FROM awl WHERE last_seen < ?1", [before])?;
                        n += tx.execute("DELETE FROM rate WHERE window_start < ?1", [rate_before])?;
                        Ok(n as i64)
                    }
                });
            }
            tx.commit()?;
            Ok(out)
        };
        match run(&mut conn, &batch) {
            Ok(results) => {
                for (op, r) in batch.into_iter().zip(results) {
                    match (op, r) {
                        (Op::Greylist(_, reply), Err(g)) => {
                            let _ = reply.send(Ok(g));
                        }
                        (Op::Rate(_, _, _, reply), Ok(n)) => {
                            let _ = reply.send(Ok(clamp_u32(n)));
                        }
                        (Op::Expire(_, _, reply), Ok(n)) => {
                            let _ = reply.send(Ok(n.max(0) as usize));
                        }
                        _ => unreachable!("results follow their operations"),
                    }
                }
            }
            Err(e) => {
                let e = StoreError::from(e);
                for op in batch {
                    match op {
                        Op::Greylist(_, r) => drop(r.send(Err(e.clone()))),
                        Op::Rate(_, _, _, r) => drop(r.send(Err(e.clone()))),
                        Op::Expire(_, _, r) => drop(r.send(Err(e.clone()))),
                    }
                }
            }
        }
    }
}

/// One greylist triplet as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripletRow {
    pub first_seen: i64,
    pub last_seen: i64,
    /// The sender retried after the delay: later attempts pass at once.
    pub passed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params { delay: 300, retry_window: 2 * 86400, max_age: 35 * 86400 };

    fn attempt(key: &str, now: i64) -> GreyAttempt {
        GreyAttempt { key: key.into(), client_net: "192.0.2".into(), now, params: P, awl_after: 2, force: false }
    }

    #[tokio::test]
    async fn state_survives_reopening_and_concurrent_attempts_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            assert_eq!(s.greylist(attempt("k", 100)).await.unwrap(), GreyOutcome::Triplet(Verdict::New));
            assert_eq!(s.rate_add("r", 60, 3).await.unwrap(), 3);
            assert_eq!(s.rate_add("r", 60, 2).await.unwrap(), 5);
        }
        let s = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
        assert_eq!(s.greylist(attempt("k", 150)).await.unwrap(), GreyOutcome::Triplet(Verdict::TooEarly { remaining: 250 }));
        assert_eq!(s.greylist(attempt("k", 400)).await.unwrap(), GreyOutcome::Triplet(Verdict::FirstPass));
        assert_eq!(s.greylist(attempt("k", 500)).await.unwrap(), GreyOutcome::Triplet(Verdict::Known));
        // Two deliveries from 192.0.2: whitelisted for new triplets, unless forced.
        assert_eq!(s.greylist(attempt("other", 600)).await.unwrap(), GreyOutcome::AutoWhitelisted);
        assert_eq!(s.greylist(GreyAttempt { force: true, ..attempt("other", 600) }).await.unwrap(), GreyOutcome::Triplet(Verdict::New));
        // 200 attempts at once: each answered, each recorded.
        let all = futures_join(s.clone()).await;
        assert!(all.iter().all(|o| *o == GreyOutcome::Triplet(Verdict::New)));
        assert_eq!(s.expire(601, 61).await.unwrap(), 1 + 1 + 1 + 1 + 200);
    }

    async fn futures_join(s: std::sync::Arc<SqliteStore>) -> Vec<GreyOutcome> {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.greylist(GreyAttempt { client_net: format!("n{i}"), ..attempt(&format!("c{i}"), 100) }).await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}
