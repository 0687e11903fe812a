//! Background work that one serve instance of several does at a time:
//! posting the webhook outbox, the report alerts, reading a report
//! mailbox over IMAP. On PostgreSQL each takes a session-level advisory
//! lock first, so two instances behind one load balancer neither post an
//! event twice nor race for the same mailbox; an instance that dies frees
//! its locks with its session, and another takes the work over on its
//! next round. One process owns an SQLite store, so there it always runs.

use crate::params;
use crate::store::{Store, StoreError};

/// Held while the work runs; released when dropped.
pub struct JobLock {
    store: Store,
    /// The lock's key and the connection (session) that holds it.
    key: Option<(i64, usize)>,
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some((k, i)) = self.key {
            // A lost connection has freed it already.
            let _ = self.store.db_at(i).query_row("SELECT pg_advisory_unlock(?1)", params![k], |r| r.get::<i64>(0));
        }
    }
}

/// "netjes" and a hash of the job's name (FNV-1a), so that the keys meet
/// neither the milters' (verdicts_pg.rs) nor another application's.
fn key_of(job: &str) -> i64 {
    let h = job.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    (0x6e65_746a_0000_0000u64 | (h & 0xffff_ffff)) as i64
}

impl Store {
    /// The lock of `job` when this instance may do it now; None while
    /// another instance does.
    pub fn job_lock(&self, job: &str) -> Result<Option<JobLock>, StoreError> {
        if !self.db().is_postgres() {
            return Ok(Some(JobLock { store: self.clone(), key: None }));
        }
        let k = key_of(job);
        let (i, db) = self.db_indexed();
        let got: bool = db.query_row("SELECT pg_try_advisory_lock(?1)", params![k], |r| r.get(0))?;
        drop(db);
        Ok(got.then(|| JobLock { store: self.clone(), key: Some((k, i)) }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_differ_by_job_and_stay_in_our_range() {
        let (a, b) = (super::key_of("webhooks"), super::key_of("imap:dmarc"));
        assert_ne!(a, b);
        assert_eq!((a as u64) >> 32, 0x6e65_746a);
    }
}
