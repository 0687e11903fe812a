//! The policies fetched, kept in SQLite (`tlspolicy.sqlite`, mode 0600)
//! so that they survive a restart: RFC 8461 §3.3 has senders keep a
//! policy until its max_age ends, and use it while a refresh fails.

use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("the policy cache: {0}")]
pub struct CacheError(String);

impl From<rusqlite::Error> for CacheError {
    fn from(e: rusqlite::Error) -> Self {
        CacheError(e.to_string())
    }
}

/// One cached policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The id of the _mta-sts record it was fetched under.
    pub id: String,
    pub text: String,
    pub fetched: i64,
    /// fetched + max_age: used until then.
    pub expires: i64,
}

#[derive(Debug, Clone)]
pub struct Cache {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        netjes_net::private_dir(dir).map_err(CacheError)?;
        let path = dir.join("tlspolicy.sqlite");
        netjes_net::private_file(&path).map_err(CacheError)?;
        let c = rusqlite::Connection::open(&path)?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.execute_batch("CREATE TABLE IF NOT EXISTS policies (domain TEXT PRIMARY KEY, id TEXT NOT NULL, text TEXT NOT NULL, fetched INTEGER NOT NULL, expires INTEGER NOT NULL);")?;
        Ok(Cache { conn: Arc::new(Mutex::new(c)) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, domain: &str) -> Result<Option<Cached>, CacheError> {
        let db = self.db();
        let mut st = db.prepare_cached("SELECT id, text, fetched, expires FROM policies WHERE domain = ?1")?;
        let mut rows = st.query([domain])?;
        Ok(match rows.next()? {
            Some(r) => Some(Cached { id: r.get(0)?, text: r.get(1)?, fetched: r.get(2)?, expires: r.get(3)? }),
            None => None,
        })
    }

    pub fn put(&self, domain: &str, c: &Cached) -> Result<(), CacheError> {
        self.db().execute(
            "INSERT INTO policies (domain, id, text, fetched, expires) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain) DO UPDATE SET id = ?2, text = ?3, fetched = ?4, expires = ?5",
            rusqlite::params![domain, c.id, c.text, c.fetched, c.expires],
        )?;
        Ok(())
    }

    /// Removes a policy whose max_age ended long ago.
    pub fn forget_expired(&self, now: i64) -> Result<usize, CacheError> {
        Ok(self.db().execute("DELETE FROM policies WHERE expires < ?1", [now])?)
    }
}
