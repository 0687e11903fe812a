//! The policy service's state: greylist triplets, the auto-whitelist of
//! clients, and rate-limit windows. Behind a trait so that a store shared
//! by many MX hosts (Redis) can come later; the embedded default is SQLite
//! in WAL mode, whose committed transactions survive a kill -9.

use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store: cannot create {0}: {1}")]
    Dir(String, std::io::Error),
}

/// One greylist triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripletRow {
    pub first_seen: i64,
    pub last_seen: i64,
    /// The sender retried after the delay: later attempts pass at once.
    pub passed: bool,
}

pub trait Store: Send + Sync {
    /// Reads a triplet and writes what `decide` makes of it, atomically.
    fn update_triplet(&self, key: &str, decide: &mut dyn FnMut(Option<TripletRow>) -> TripletRow) -> Result<(Option<TripletRow>, TripletRow), StoreError>;
    /// Successful deliveries counted for a client network.
    fn awl_count(&self, client: &str) -> Result<u32, StoreError>;
    fn awl_bump(&self, client: &str, now: i64) -> Result<u32, StoreError>;
    /// Adds `by` to a rate window and returns its new total.
    fn rate_add(&self, key: &str, window_start: i64, by: u32) -> Result<u32, StoreError>;
    /// Forgets triplets and clients unseen since `before`, and rate windows
    /// that ended before `rate_before`. Returns the rows removed.
    fn expire(&self, before: i64, rate_before: i64) -> Result<usize, StoreError>;
}

pub struct SqliteStore {
    conn: Mutex<rusqlite::Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
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
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
        Self::open_file(&dir.join("policy.sqlite"))
    }

    pub fn open_file(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        // WAL: readers do not block the writer, and a commit is durable
        // against a killed process; synchronous=NORMAL gives up only the
        // last commits on a power loss, which greylisting forgives.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // change is in a transaction), so the poison is not contagious.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for SqliteStore {
    fn update_triplet(&self, key: &str, decide: &mut dyn FnMut(Option<TripletRow>) -> TripletRow) -> Result<(Option<TripletRow>, TripletRow), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let old = {
            let mut st = tx.prepare_cached("SELECT first_seen, last_seen, passed FROM greylist WHERE key = ?1")?;
            let mut rows = st.query([key])?;
            match rows.next()? {
                Some(r) => Some(TripletRow { first_seen: r.get(0)?, last_seen: r.get(1)?, passed: r.get::<_, i64>(2)? != 0 }),
                None => None,
            }
        };
        let new = decide(old);
        tx.prepare_cached("INSERT INTO greylist (key, first_seen, last_seen, passed) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET first_seen = ?2, last_seen = ?3, passed = ?4")?
            .execute(rusqlite::params![key, new.first_seen, new.last_seen, new.passed as i64])?;
        tx.commit()?;
        Ok((old, new))
    }

    fn awl_count(&self, client: &str) -> Result<u32, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached("SELECT count FROM awl WHERE client = ?1")?;
        let mut rows = st.query([client])?;
        Ok(match rows.next()? {
            Some(r) => r.get::<_, i64>(0)?.clamp(0, u32::MAX as i64) as u32,
            None => 0,
        })
    }

    fn awl_bump(&self, client: &str, now: i64) -> Result<u32, StoreError> {
        let c = self.conn();
        let n: i64 = c
            .prepare_cached("INSERT INTO awl (client, count, last_seen) VALUES (?1, 1, ?2) ON CONFLICT(client) DO UPDATE SET count = count + 1, last_seen = ?2 RETURNING count")?
            .query_row(rusqlite::params![client, now], |r| r.get(0))?;
        Ok(n.clamp(0, u32::MAX as i64) as u32)
    }

    fn rate_add(&self, key: &str, window_start: i64, by: u32) -> Result<u32, StoreError> {
        let c = self.conn();
        let n: i64 = c
            .prepare_cached("INSERT INTO rate (key, window_start, count) VALUES (?1, ?2, ?3) ON CONFLICT(key, window_start) DO UPDATE SET count = count + ?3 RETURNING count")?
            .query_row(rusqlite::params![key, window_start, by as i64], |r| r.get(0))?;
        Ok(n.clamp(0, u32::MAX as i64) as u32)
    }

    fn expire(&self, before: i64, rate_before: i64) -> Result<usize, StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let mut n = tx.execute("DELETE FROM greylist WHERE last_seen < ?1", [before])?;
        n += tx.execute("DELETE FROM awl WHERE last_seen < ?1", [before])?;
        n += tx.execute("DELETE FROM rate WHERE window_start < ?1", [rate_before])?;
        tx.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            s.update_triplet("k", &mut |old| {
                assert!(old.is_none());
                TripletRow { first_seen: 100, last_seen: 100, passed: false }
            })
            .unwrap();
            assert_eq!(s.awl_bump("192.0.2", 100).unwrap(), 1);
            assert_eq!(s.awl_bump("192.0.2", 101).unwrap(), 2);
            assert_eq!(s.rate_add("client:192.0.2.1:60", 60, 3).unwrap(), 3);
            assert_eq!(s.rate_add("client:192.0.2.1:60", 60, 2).unwrap(), 5);
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let (old, _) = s.update_triplet("k", &mut |old| old.unwrap()).unwrap();
        assert_eq!(old, Some(TripletRow { first_seen: 100, last_seen: 100, passed: false }));
        assert_eq!(s.awl_count("192.0.2").unwrap(), 2);
        assert_eq!(s.expire(102, 61).unwrap(), 3);
        assert_eq!(s.awl_count("192.0.2").unwrap(), 0);
    }
}
