//! The embedded store: one SQLite file (`netjes.sqlite` in the data
//! directory) in WAL mode with full sync, so that users, signing keys and
//! test results survive a restart and a crash. The schema is versioned
//! with `PRAGMA user_version`; migrations run at open.
//!
//! Private keys are stored sealed (crypto.rs); the public key is kept
//! beside them in the clear, for the DNS record.

use crate::crypto::{self, MasterKey};
use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};
use crate::db::{Conn, DbError, OptionalExtension};
use crate::params;
use serde::Serialize;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("store: cannot create {0}: {1}")]
    Dir(String, String),
    #[error("store: the database is from a newer netjes (schema {0}); this one knows up to {1}")]
    TooNew(i64, i64),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// Each step takes the schema from its index to the next version.
const MIGRATIONS: &[&str] = &["
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, csrf TEXT NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE api_tokens (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, name TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE tests (id TEXT PRIMARY KEY, address TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,
  status TEXT NOT NULL, received INTEGER, facts TEXT, report TEXT, report_html TEXT, raw BLOB);
CREATE INDEX tests_created ON tests(created);
CREATE TABLE domains (domain TEXT PRIMARY KEY, active INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE keys (id INTEGER PRIMARY KEY, domain TEXT NOT NULL REFERENCES domains(domain) ON DELETE CASCADE,
  selector TEXT NOT NULL, algorithm TEXT NOT NULL, bits INTEGER NOT NULL, sealed BLOB NOT NULL, public_key TEXT NOT NULL,
  state TEXT NOT NULL, created INTEGER NOT NULL, rotated INTEGER, UNIQUE(domain, selector));
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('key_generation', 0);
", "
CREATE TABLE reports (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, reporter TEXT NOT NULL, report_id TEXT NOT NULL,
  policy_domain TEXT NOT NULL, begin INTEGER, \"end\" INTEGER, received INTEGER NOT NULL, trusted INTEGER NOT NULL,
  source TEXT NOT NULL, parsed TEXT NOT NULL, UNIQUE(kind, reporter, report_id));
CREATE INDEX reports_domain ON reports(policy_domain, \"end\");
CREATE TABLE report_rows (report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE, domain TEXT NOT NULL,
  source_ip TEXT NOT NULL, count INTEGER NOT NULL, day INTEGER NOT NULL, disposition TEXT NOT NULL,
  dkim_aligned INTEGER NOT NULL, spf_aligned INTEGER NOT NULL, forwarded INTEGER NOT NULL,
  dkim_other_pass INTEGER NOT NULL, spf_other_pass INTEGER NOT NULL);
CREATE INDEX report_rows_domain ON report_rows(domain, day);
CREATE TABLE rejected_reports (id INTEGER PRIMARY KEY, received INTEGER NOT NULL, source TEXT NOT NULL, reason TEXT NOT NULL, raw BLOB);
", "
ALTER TABLE reports ADD COLUMN held TEXT;
ALTER TABLE reports ADD COLUMN raw BLOB;
CREATE INDEX reports_received ON reports(received);
CREATE INDEX rejected_reports_received ON rejected_reports(received);
CREATE TABLE report_mail (id INTEGER PRIMARY KEY, received INTEGER NOT NULL, facts TEXT NOT NULL, raw BLOB NOT NULL);
CREATE TABLE report_senders (sender TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (sender, day));
", "
CREATE TABLE report_alerts (key TEXT PRIMARY KEY, kind TEXT NOT NULL, domain TEXT NOT NULL, summary TEXT NOT NULL, sent INTEGER NOT NULL);
", "
-- How each signing domain's mail leaves: direct, or through its relay.
CREATE TABLE routes (domain TEXT PRIMARY KEY REFERENCES domains(domain) ON DELETE CASCADE, kind TEXT NOT NULL, host TEXT, port INTEGER, tls TEXT,
    \"user\" TEXT, sealed_password BLOB, updated INTEGER NOT NULL);
CREATE INDEX routes_host ON routes(host, port);
", "
-- The applications (SASL logins) that may send for each signing domain.
CREATE TABLE domain_logins (domain TEXT NOT NULL REFERENCES domains(domain) ON DELETE CASCADE, login TEXT NOT NULL, PRIMARY KEY (domain, login));
CREATE INDEX domain_logins_login ON domain_logins(login);
", "
-- Recipients a customer domain no longer sends to: its hard bounces.
CREATE TABLE suppressions (domain TEXT NOT NULL REFERENCES domains(domain) ON DELETE CASCADE, address TEXT NOT NULL, class TEXT NOT NULL,
    reason TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (domain, address));
", "
-- Each customer domain's webhook, and the delivery events waiting for it
-- (kept across restarts, retried with back-off for a day).
CREATE TABLE webhooks (domain TEXT PRIMARY KEY REFERENCES domains(domain) ON DELETE CASCADE, url TEXT NOT NULL, sealed_secret BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE webhook_outbox (id INTEGER PRIMARY KEY, domain TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL, next_try INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE INDEX webhook_outbox_next ON webhook_outbox(next_try);
", "
-- Each customer domain's delivery outcomes by day, and its blocks by
-- receiving domain: the reputation view.
CREATE TABLE domain_stats (domain TEXT NOT NULL, day INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0, deferred INTEGER NOT NULL DEFAULT 0,
    hard INTEGER NOT NULL DEFAULT 0, soft INTEGER NOT NULL DEFAULT 0, block INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (domain, day));
CREATE TABLE domain_blocks (domain TEXT NOT NULL, day INTEGER NOT NULL, receiver TEXT NOT NULL, count INTEGER NOT NULL, last_reply TEXT NOT NULL,
    PRIMARY KEY (domain, day, receiver));
", "
-- What was delivered, by Message-ID, for a month: a complaint or a bounce
-- that comes back by mail counts only when it names mail we sent.
CREATE TABLE sent_messages (message_id TEXT NOT NULL, recipient TEXT NOT NULL, domain TEXT NOT NULL, time INTEGER NOT NULL, PRIMARY KEY (message_id, recipient));
CREATE INDEX sent_messages_time ON sent_messages(time);
ALTER TABLE domain_stats ADD COLUMN complaints INTEGER NOT NULL DEFAULT 0;
", "
-- A value sealed with the master key: a process with another key (a
-- second serve instance on the same PostgreSQL, say) is refused at start
-- instead of failing on every key it tries to open.
CREATE TABLE master_check (id INTEGER PRIMARY KEY CHECK (id = 1), sealed BLOB NOT NULL);
", "
-- Failed logins per account name, so that the delays after failures hold
-- across the serve instances of a cluster and across a restart.
CREATE TABLE login_failures (name TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_failure INTEGER NOT NULL);
"];

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How long a login lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;

#[derive(Debug, Clone, Serialize)]
pub struct TestRow {
    pub id: String,
    pub address: String,
    pub created: i64,
    pub expires: i64,
    /// waiting, done, or expired.
    pub status: String,
    pub received: Option<i64>,
    pub facts: Option<serde_json::Value>,
    pub report: Option<serde_json::Value>,
    /// The report rendered, for the result page.
    #[serde(skip)]
    pub report_html: Option<String>,
    #[serde(skip)]
    pub raw: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    pub id: i64,
    pub domain: String,
    pub selector: String,
    pub algorithm: KeyAlgorithm,
    pub bits: i64,
    /// The `p=` value.
    pub public_key: String,
    /// active (signs), pending (made by a rotation, waiting to be
    /// published), retired (replaced; its record can go once mail signed
    /// with it has been delivered).
    pub state: String,
    pub created: i64,
    pub rotated: Option<i64>,
}

impl KeyRow {
    /// The TXT record to publish, as `netjes dkim record` prints it.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    pub fn dns_value(&self) -> String {
        netjes_auth::dkim::keys::record_value(self.algorithm, &self.public_key)
    }

    /// The record as a zone-file line, split into TXT strings.
    pub fn zone_line(&self) -> String {
        format!(
            "{}. IN TXT ( {} )",
            self.dns_name(),
            netjes_dns::master::txt_strings(&self.dns_value())
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainRow {
    pub domain: String,
    pub active: bool,
    pub created: i64,
    pub keys: Vec<KeyRow>,
    /// The applications (SASL logins) that may send for it; none named:
    /// any login.
    pub logins: Vec<String>,
}

#[derive(Clone)]
pub struct Store {
    /// One connection (SQLite: one process writes at a time anyway), or a
    /// few to PostgreSQL, so that a slow query does not hold up every
    /// request.
    conns: Arc<Vec<Mutex<Conn>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) master: Arc<MasterKey>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(..)")
    }
}

/// A user as `netjes user list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserRow {
    pub name: String,
    pub created: i64,
    pub sessions: i64,
    /// The labels of its API tokens.
    pub tokens: Vec<String>,
}

pub fn valid_selector(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn valid_domain(d: &str) -> bool {
    netjes_dns::is_host_name(d)
}

fn algorithm_of(s: &str) -> KeyAlgorithm {
    if s == "ed25519" {
        KeyAlgorithm::Ed25519
    } else {
        KeyAlgorithm::Rsa
    }
}

fn aad(domain: &str, selector: &str) -> String {
    format!("netjes-dkim-key:{domain}/{selector}")
}

/// Opens (or makes) `netjes.sqlite` in `data_dir` and brings its schema
/// up to date.
pub fn open_connection(data_dir: &Path) -> Result<Conn, StoreError> {
    netjes_net::private_dir(data_dir)
        .map_err(|e| StoreError::Dir(data_dir.display().to_string(), e))?;
    let path = data_dir.join("netjes.sqlite");
    // The database holds password hashes and sealed keys: only we read it,
    // and its -wal and -shm, which SQLite makes with its mode.
    netjes_net::private_file(&path)
        .map_err(|e| StoreError::Dir(path.display().to_string(), e))?;
    let c = rusqlite::Connection::open(&path).map_err(|e| DbError::Other(e.to_string()))?;
    c.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| DbError::Other(e.to_string()))?;
    let c = Conn::sqlite(c);
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew(version, known));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = c.transaction()?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(m)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(c)
}

/// Whether a store given on the command line is a PostgreSQL connection
/// string (a URL, or libpq's key=value pairs) rather than a directory.
pub fn is_postgres_spec(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://") || spec.contains("dbname=") || spec.starts_with("host=")
}

/// serve's store as the helper commands name it (`--store`, `--data-dir`):
/// a data directory, or serve's PostgreSQL, whose password may come from
/// the file NETJES_POSTGRES_PASSWORD_FILE names (not the command line,
/// which `ps` shows).
pub fn open_spec(spec: &std::ffi::OsStr) -> Result<Conn, StoreError> {
    match spec.to_str().filter(|s| is_postgres_spec(s)) {
        None => open_connection(Path::new(spec)),
        Some(url) => {
            let password = match std::env::var_os("NETJES_POSTGRES_PASSWORD_FILE") {
                Some(f) => Some(netjes_net::read_secret_file(Path::new(&f)).map_err(|e| StoreError::Invalid(format!("NETJES_POSTGRES_PASSWORD_FILE: {e}")))?),
                None => None,
            };
            let settings = netjes_milter::verdicts_pg::config(url, password.as_deref(), None).map_err(|e| StoreError::Invalid(e.to_string()))?;
            open_postgres(settings)
        }
    }
}

/// Connects to a PostgreSQL shared by several serve instances and the
/// milters, and brings serve's tables up to date (the same steps as
/// SQLite's, in PostgreSQL's types).
pub fn open_postgres(settings: crate::db::PgSettings) -> Result<Conn, StoreError> {
    Ok(Conn::postgres(settings, MIGRATIONS)?)
}

impl Store {
    pub fn open(data_dir: &Path, master: MasterKey) -> Result<Store, StoreError> {
        Ok(Store::with(open_connection(data_dir)?, master))
    }

    /// The store on a connection already made (SQLite's or PostgreSQL's).
    pub fn with(c: Conn, master: MasterKey) -> Store {
        Store::pooled(vec![c], master)
    }

    /// The store on PostgreSQL with `connections` connections (the first
    /// made now, with the migrations; the others on first use).
    pub fn postgres(settings: crate::db::PgSettings, master: MasterKey, connections: usize) -> Result<Store, StoreError> {
        let mut conns = vec![open_postgres(settings.clone())?];
        conns.extend((1..connections.max(1)).map(|_| Conn::postgres_lazy(settings.clone())));
        Ok(Store::pooled(conns, master))
    }

    fn pooled(conns: Vec<Conn>, master: MasterKey) -> Store {
        Store {
            conns: Arc::new(conns.into_iter().map(Mutex::new).collect()),
            next: Arc::default(),
            master: Arc::new(master),
        }
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.db_indexed().1
    }

    /// A free connection if there is one (else the next in turn), and its
    /// index: what holds session state (an advisory lock) must come back
    /// to the same one.
    pub(crate) fn db_indexed(&self) -> (usize, std::sync::MutexGuard<'_, Conn>) {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for k in 0..n {
            let i = (start + k) % n;
            if let Ok(g) = self.conns[i].try_lock() {
                return (i, g);
            }
        }
        (start % n, self.db_at(start % n))
    }

    pub(crate) fn db_at(&self, i: usize) -> std::sync::MutexGuard<'_, Conn> {
        // A panic while holding the lock leaves SQLite consistent (each
        // statement is atomic), so a poisoned lock is still usable.
        self.conns[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a master key other than the one this store's private keys
    /// are sealed with. The first start with a check writes it, once one
    /// stored key (if any) has opened with this master key.
    pub fn check_master(&self) -> Result<(), StoreError> {
        const AAD: &str = "netjes-master-check";
        let wrong = || StoreError::Invalid("the master key is not the one this store's private keys are sealed with; every serve instance and milter sharing a database needs the same NETJES_MASTER_KEY or master_key_file".into());
        let sealed: Option<Vec<u8>> = self.db().query_row("SELECT sealed FROM master_check WHERE id = 1", [], |r| r.get(0)).optional()?;
        if let Some(s) = sealed {
            return self.master.open(&s, AAD).map(|_| ()).map_err(|_| wrong());
        }
        let some_key: Option<i64> = self.db().query_row("SELECT min(id) FROM keys", [], |r| r.get(0))?;
        if let Some(id) = some_key {
            self.private_key(id).map_err(|_| wrong())?;
        }
        self.db().execute("INSERT INTO master_check (id, sealed) VALUES (1, ?1) ON CONFLICT DO NOTHING", params![self.master.seal(b"netjes", AAD)])?;
        // Another instance may have written its own meanwhile.
        let s: Vec<u8> = self.db().query_row("SELECT sealed FROM master_check WHERE id = 1", [], |r| r.get(0))?;
        self.master.open(&s, AAD).map(|_| ()).map_err(|_| wrong())
    }

    // ---- users, sessions and API tokens ----

    /// One round trip to the database: whether it answers.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.db().query_row("SELECT 1", [], |r| r.get::<i64>(0))?;
        Ok(())
    }

    pub fn user_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
    }

    pub fn add_user(&self, name: &str, password: &str) -> Result<(), StoreError> {
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(StoreError::Invalid(
                "a user name is 1 to 64 visible ASCII characters".into(),
            ));
        }
        if password.len() < 10 || password.len() > 1024 {
            return Err(StoreError::Invalid(
                "a password has 10 to 1024 characters".into(),
            ));
        }
        let hash = hash_password(password);
        match self.db().execute(
            "INSERT INTO users (name, password, created) VALUES (?1, ?2, ?3)",
            params![name, hash, now()],
        ) {
            Err(crate::db::DbError::Constraint(_)) =>
            {
                Err(StoreError::Exists(format!("user {name}")))
            }
            r => r.map(|_| ()).map_err(Into::into),
        }
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        if password.len() < 10 || password.len() > 1024 {
            return Err(StoreError::Invalid(
                "a password has 10 to 1024 characters".into(),
            ));
        }
        let n = self.db().execute(
            "UPDATE users SET password = ?2 WHERE name = ?1",
            params![name, hash_password(password)],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {name}")));
        }
        // A new password ends every session of that user.
        self.db().execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            params![name],
        )?;
        Ok(())
    }

    /// The user's id when the password is right. Runs the hash even for an
    /// unknown user, so that timing does not tell which names exist.
    pub fn check_login(&self, name: &str, password: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64, String)> = self
            .db()
            .query_row(
                "SELECT id, password FROM users WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let ok = match &row {
            Some((_, hash)) => verify_password(password, hash),
            None => {
                verify_password(
                    password,
                    DUMMY_HASH.get_or_init(|| hash_password("not a password of anyone")),
                );
                false
            }
        };
        Ok(row.filter(|_| ok).map(|(id, _)| id))
    }

    /// The failed logins of an account name (failures, last failure),
    /// as every instance has counted them.
    pub fn login_failures(&self, name: &str) -> Result<(u32, i64), StoreError> {
        let key = name.trim().to_ascii_lowercase();
        Ok(self
            .db()
            .query_row("SELECT failures, last_failure FROM login_failures WHERE name = ?1", params![key], |r| Ok((r.get::<u32>(0)?, r.get::<i64>(1)?)))
            .optional()?
            .unwrap_or((0, 0)))
    }

    /// Counts a login's outcome for its account name: a success clears the
    /// failures. Rows idle for `forget_after` go (the name may be any
    /// stranger's guess).
    pub fn record_login(&self, name: &str, ok: bool, now: i64, forget_after: i64) -> Result<(), StoreError> {
        let key: String = name.trim().to_ascii_lowercase().chars().take(64).collect();
        let db = self.db();
        db.execute("DELETE FROM login_failures WHERE last_failure < ?1", params![now - forget_after])?;
        if ok {
            db.execute("DELETE FROM login_failures WHERE name = ?1", params![key])?;
        } else {
            db.execute(
                "INSERT INTO login_failures (name, failures, last_failure) VALUES (?1, 1, ?2) ON CONFLICT (name) DO UPDATE SET failures = login_failures.failures + 1, last_failure = ?2",
                params![key, now],
            )?;
        }
        Ok(())
    }

    /// A new session: (cookie token, CSRF token).
    pub fn create_session(&self, user_id: i64) -> Result<(String, String), StoreError> {
        let (token, csrf) = (crypto::token(), crypto::token());
        let db = self.db();
        db.execute("DELETE FROM sessions WHERE expires < ?1", params![now()])?;
        db.execute(
            "INSERT INTO sessions (token, user_id, csrf, expires) VALUES (?1, ?2, ?3, ?4)",
            params![
                crypto::token_hash(&token),
                user_id,
                csrf,
                now() + SESSION_SECONDS
            ],
        )?;
        Ok((token, csrf))
    }

    /// (user name, CSRF token) of a live session.
    pub fn session(&self, token: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .db()
            .query_row(
                "SELECT u.name, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token = ?1 AND s.expires >= ?2",
                params![crypto::token_hash(token), now()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.db().execute(
            "DELETE FROM sessions WHERE token = ?1",
            params![crypto::token_hash(token)],
        )?;
        Ok(())
    }

    /// Every user: name, when added, live sessions, and API tokens by
    /// label.
    pub fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT u.name, u.created, (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires > ?1) FROM users u ORDER BY u.name",
        )?;
        let rows = st
            .query_map(params![now()], |r| {
                Ok(UserRow {
                    name: r.get(0)?,
                    created: r.get(1)?,
                    sessions: r.get(2)?,
                    tokens: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for mut u in rows {
            let mut t = db.prepare(
                "SELECT t.name FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = ?1 ORDER BY t.created",
            )?;
            u.tokens = t
                .query_map(params![u.name], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            out.push(u);
        }
        Ok(out)
    }

    /// Deletes a user with its sessions and API tokens. The last user is
    /// kept: without one, nobody can log in to make another.
    pub fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        if self.user_count()? <= 1 {
            return Err(StoreError::Invalid(
                "the last user cannot be deleted: add another first".into(),
            ));
        }
        let n = self
            .db()
            .execute("DELETE FROM users WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {name}")));
        }
        Ok(())
    }

    /// Revokes a user's API tokens with this label (every token with
    /// `None`); how many.
    pub fn revoke_api_tokens(&self, user: &str, label: Option<&str>) -> Result<usize, StoreError> {
        Ok(self.db().execute(
            "DELETE FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE name = ?1) AND (?2 IS NULL OR name = ?2)",
            params![user, label],
        )?)
    }

    pub fn add_api_token(&self, user: &str, name: &str) -> Result<String, StoreError> {
        let token = format!("nj_{}", crypto::token());
        let n = self.db().execute(
            "INSERT INTO api_tokens (token, user_id, name, created) SELECT ?1, id, ?3, ?4 FROM users WHERE name = ?2",
            params![crypto::token_hash(&token), user, name, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {user}")));
        }
        Ok(token)
    }

    /// The user an API token belongs to.
    pub fn api_token_user(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db()
            .query_row("SELECT u.name FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token = ?1", params![crypto::token_hash(token)], |r| r.get(0))
            .optional()?)
    }

    // ---- the test inbox ----

    pub fn create_test(
        &self,
        id: &str,
        address: &str,
        lifetime: std::time::Duration,
    ) -> Result<TestRow, StoreError> {
        let created = now();
        let expires = created + lifetime.as_secs() as i64;
        self.db().execute("INSERT INTO tests (id, address, created, expires, status) VALUES (?1, ?2, ?3, ?4, 'waiting')", params![id, address, created, expires])?;
        Ok(TestRow {
            id: id.into(),
            address: address.into(),
            created,
            expires,
            status: "waiting".into(),
            received: None,
            facts: None,
            report: None,
            report_html: None,
            raw: None,
        })
    }

    pub fn test(&self, id: &str) -> Result<Option<TestRow>, StoreError> {
        let row = self
            .db()
            .query_row("SELECT id, address, created, expires, status, received, facts, report, report_html, raw FROM tests WHERE id = ?1", params![id], |r| {
                Ok(TestRow {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    created: r.get(2)?,
                    expires: r.get(3)?,
                    status: r.get(4)?,
                    received: r.get(5)?,
                    facts: r.get::<Option<String>>(6)?.and_then(|s| serde_json::from_str(&s).ok()),
                    report: r.get::<Option<String>>(7)?.and_then(|s| serde_json::from_str(&s).ok()),
                    report_html: r.get(8)?,
                    raw: r.get(9)?,
                })
            })
            .optional()?;
        Ok(row.map(|mut t| {
            if t.status == "waiting" && t.expires < now() {
                t.status = "expired".into();
            }
            t
        }))
    }

    /// Whether mail for this test id is accepted now.
    pub fn test_is_open(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.test(id)?.is_some_and(|t| t.status == "waiting"))
    }

    /// Takes the message for an open test; false when it is not open (any
    /// more). The first message wins, as at mail-tester.com.
    pub fn receive(
        &self,
        id: &str,
        raw: &[u8],
        facts: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let n = self.db().execute(
            "UPDATE tests SET status = 'analyzing', received = ?2, raw = ?3, facts = ?4 WHERE id = ?1 AND status = 'waiting' AND expires >= ?2",
            params![id, now(), raw, facts.to_string()],
        )?;
        Ok(n == 1)
    }

    pub fn finish(
        &self,
        id: &str,
        report: &serde_json::Value,
        html: &str,
    ) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE tests SET status = 'done', report = ?2, report_html = ?3 WHERE id = ?1",
            params![id, report.to_string(), html],
        )?;
        Ok(())
    }

    /// Tests received but not analysed, as after a crash: analysed again at start.
    pub fn unfinished(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT id FROM tests WHERE status = 'analyzing'")?;
        let ids = st
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// Makes room for a message of `incoming` octets under `cap` octets of
    /// stored messages in all, deleting the oldest finished tests first;
    /// false when even that is not enough (the inbox then answers 452).
    pub fn make_room(&self, cap: u64, incoming: u64) -> Result<bool, StoreError> {
        let db = self.db();
        loop {
            let used: i64 = db.query_row(
                "SELECT COALESCE(SUM(length(raw)), 0) FROM tests",
                [],
                |r| r.get(0),
            )?;
            if used.max(0) as u64 + incoming <= cap {
                return Ok(true);
            }
            let n = db.execute(
                "DELETE FROM tests WHERE id = (SELECT id FROM tests WHERE status = 'done' ORDER BY received LIMIT 1)",
                [],
            )?;
            if n == 0 {
                return Ok(false);
            }
            tracing::info!("inbox full: deleted the oldest test result");
        }
    }

    /// Deletes tests made before `before`; returns how many.
    pub fn purge_tests(&self, before: i64) -> Result<usize, StoreError> {
        Ok(self
            .db()
            .execute("DELETE FROM tests WHERE created < ?1", params![before])?)
    }

    // ---- signing domains ----

    fn bump_generation(db: &Conn) -> Result<(), StoreError> {
        db.execute(
            "UPDATE meta SET value = value + 1 WHERE name = 'key_generation'",
            [],
        )?;
        Ok(())
    }

    /// Changes with every change to the signing domains, so that a reader
    /// (the milter) knows when to load them again.
    pub fn key_generation(&self) -> Result<i64, StoreError> {
        key_generation(&self.db())
    }

    pub fn add_domain(&self, domain: &str) -> Result<(), StoreError> {
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !valid_domain(&d) {
            return Err(StoreError::Invalid(format!(
                "{domain:?} is not a domain name"
            )));
        }
        let db = self.db();
        match db.execute(
            "INSERT INTO domains (domain, active, created) VALUES (?1, 0, ?2)",
            params![d, now()],
        ) {
            Err(crate::db::DbError::Constraint(_)) =>
            {
                Err(StoreError::Exists(d))
            }
            r => {
                r?;
                Store::bump_generation(&db)
            }
        }
    }

    /// Stores a key for a domain. The first key of a domain is active;
    /// later ones (rotations) are pending until switched to.
    pub fn add_key(
        &self,
        domain: &str,
        selector: &str,
        key: &PrivateKey,
    ) -> Result<KeyRow, StoreError> {
        if !valid_selector(selector) {
            return Err(StoreError::Invalid(format!(
                "{selector:?} is not a selector: letters, digits and hyphens, at most 63"
            )));
        }
        let sealed = self.master.seal(key.pkcs8_der(), &aad(domain, selector));
        let db = self.db();
        let tx = db.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT count(*) FROM domains WHERE domain = ?1",
            params![domain],
            |r| r.get::<i64>(0),
        )? > 0;
        if !exists {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        let has_active: bool = tx.query_row(
            "SELECT count(*) FROM keys WHERE domain = ?1 AND algorithm = ?2 AND state = 'active'",
            params![domain, key.algorithm.k_tag()],
            |r| r.get::<i64>(0),
        )? > 0;
        let state = if has_active { "pending" } else { "active" };
        let public = key.public_key_b64();
        let id: i64 = match tx.query_row(
            "INSERT INTO keys (domain, selector, algorithm, bits, sealed, public_key, state, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            params![domain, selector, key.algorithm.k_tag(), key.bits as i64, sealed, public, state, now()],
            |r| r.get(0),
        ) {
            Err(crate::db::DbError::Constraint(_)) => return Err(StoreError::Exists(format!("selector {selector} of {domain}"))),
            r => r?,
        };
        Store::bump_generation(&tx)?;
        tx.commit()?;
        drop(db);
        self.key(id)?
            .ok_or_else(|| StoreError::NotFound("the new key".into()))
    }

    pub fn key(&self, id: i64) -> Result<Option<KeyRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!("{KEY_COLUMNS} WHERE id = ?1"),
                params![id],
                key_row,
            )
            .optional()?)
    }

    pub fn domains(&self) -> Result<Vec<DomainRow>, StoreError> {
        self.load_domains(None)
    }

    pub fn domain(&self, domain: &str) -> Result<Option<DomainRow>, StoreError> {
        Ok(self.load_domains(Some(domain))?.pop())
    }

    /// All domains with their keys, or the one named.
    fn load_domains(&self, only: Option<&str>) -> Result<Vec<DomainRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT domain, active, created FROM domains WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain")?;
        let mut out: Vec<DomainRow> = st
            .query_map(params![only], |r| {
                Ok(DomainRow {
                    domain: r.get(0)?,
                    active: r.get::<i64>(1)? != 0,
                    created: r.get(2)?,
                    keys: vec![],
                    logins: vec![],
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut st = db.prepare(&format!(
            "{KEY_COLUMNS} WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, created, id"
        ))?;
        let mut keys: std::collections::HashMap<String, Vec<KeyRow>> =
            std::collections::HashMap::new();
        for k in st.query_map(params![only], key_row)? {
            let k = k?;
            keys.entry(k.domain.clone()).or_default().push(k);
        }
        let mut st = db.prepare("SELECT domain, login FROM domain_logins WHERE ?1 IS NULL OR domain = ?1 ORDER BY login")?;
        let mut logins: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for row in st.query_map(params![only], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))? {
            let (d, l) = row?;
            logins.entry(d).or_default().push(l);
        }
        for d in &mut out {
            d.keys = keys.remove(&d.domain).unwrap_or_default();
            d.logins = logins.remove(&d.domain).unwrap_or_default();
        }
        Ok(out)
    }

    pub fn set_active(&self, domain: &str, active: bool) -> Result<(), StoreError> {
        let db = self.db();
        if db.execute(
            "UPDATE domains SET active = ?2 WHERE domain = ?1",
            params![domain, active as i64],
        )? == 0
        {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        Store::bump_generation(&db)
    }

    /// The switch of a rotation: this key signs from now on, and the
    /// active key of the same algorithm is retired.
    pub fn switch_to(&self, id: i64) -> Result<(), StoreError> {
        let db = self.db();
        let tx = db.transaction()?;
        let (domain, algorithm): (String, String) = tx
            .query_row(
                "SELECT domain, algorithm FROM keys WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("key {id}")))?;
        tx.execute("UPDATE keys SET state = 'retired', rotated = ?3 WHERE domain = ?1 AND algorithm = ?2 AND state = 'active'", params![domain, algorithm, now()])?;
        tx.execute(
            "UPDATE keys SET state = 'active', rotated = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        Store::bump_generation(&tx)?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_key(&self, id: i64) -> Result<(), StoreError> {
        let db = self.db();
        if db.execute(
            "DELETE FROM keys WHERE id = ?1 AND state != 'active'",
            params![id],
        )? == 0
        {
            return Err(StoreError::Invalid(
                "only a pending or retired key can be deleted; switch to another key first".into(),
            ));
        }
        Store::bump_generation(&db)
    }

    pub fn delete_domain(&self, domain: &str) -> Result<(), StoreError> {
        let db = self.db();
        if db.execute("DELETE FROM domains WHERE domain = ?1", params![domain])? == 0 {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        Store::bump_generation(&db)
    }

    /// The private key of a stored key, opened.
    pub fn private_key(&self, id: i64) -> Result<PrivateKey, StoreError> {
        let (domain, selector, sealed): (String, String, Vec<u8>) = self
            .db()
            .query_row(
                "SELECT domain, selector, sealed FROM keys WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("key {id}")))?;
        let der = self.master.open(&sealed, &aad(&domain, &selector))?;
        PrivateKey::from_pkcs8_der(&der).map_err(|e| {
            StoreError::Invalid(format!("stored key {selector}._domainkey.{domain}: {e}"))
        })
    }
}

const KEY_COLUMNS: &str =
    "SELECT id, domain, selector, algorithm, bits, public_key, state, created, rotated FROM keys";

fn key_row(r: &crate::db::Row) -> Result<KeyRow, DbError> {
    Ok(KeyRow {
        id: r.get(0)?,
        domain: r.get(1)?,
        selector: r.get(2)?,
        algorithm: algorithm_of(&r.get::<String>(3)?),
        bits: r.get(4)?,
        public_key: r.get(5)?,
        state: r.get(6)?,
        created: r.get(7)?,
        rotated: r.get(8)?,
    })
}

pub(crate) fn key_generation(db: &Conn) -> Result<i64, StoreError> {
    Ok(db.query_row(
        "SELECT value FROM meta WHERE name = 'key_generation'",
        [],
        |r| r.get(0),
    )?)
}

/// The keys that sign: active keys of active domains, each opened with
/// the master key. A key that does not open is an error for its domain.
/// (domain, selector, the key or why it does not open).
pub(crate) type SigningKeyRow = (String, String, Result<PrivateKey, String>);

pub(crate) fn signing_keys(
    db: &Conn,
    master: &MasterKey,
) -> Result<Vec<SigningKeyRow>, StoreError> {
    let mut st = db.prepare("SELECT k.domain, k.selector, k.sealed FROM keys k JOIN domains d ON d.domain = k.domain WHERE d.active = 1 AND k.state = 'active' ORDER BY k.domain, k.algorithm DESC")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<String>(1)?,
            r.get::<Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (domain, selector, sealed) = row?;
        let key = master
            .open(&sealed, &aad(&domain, &selector))
            .map_err(|e| e.to_string())
            .and_then(|der| PrivateKey::from_pkcs8_der(&der).map_err(|e| e.to_string()))
            .map_err(|e| format!("{selector}._domainkey.{domain}: {e}"));
        out.push((domain, selector, key));
    }
    Ok(out)
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt =
        SaltString::encode_b64(&crypto::random_bytes::<16>()).expect("16 octets make a salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The store on each engine, for the tests that every backend must pass:
/// SQLite in a temporary folder, and a throwaway PostgreSQL (initdb per
/// test, as the milter's verdict tests do).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct Backend {
        pub name: &'static str,
        pub store: Store,
        pub dir: tempfile::TempDir,
        pub pg: Option<netjes_testdns::postgres::PostgresServer>,
    }

    impl Backend {
        /// The same database again, as after a restart.
        pub fn reopen(&self, master: MasterKey) -> Store {
            match &self.pg {
                None => Store::open(self.dir.path(), master).unwrap(),
                Some(pg) => Store::with(open_postgres(pg_settings(pg)).unwrap(), master),
            }
        }
    }

    impl Backend {
        /// A second connection to the same database (another process's).
        pub fn conn(&self) -> Conn {
            match &self.pg {
                None => open_connection(self.dir.path()).unwrap(),
                Some(pg) => open_postgres(pg_settings(pg)).unwrap(),
            }
        }
    }

    pub fn pg_settings(pg: &netjes_testdns::postgres::PostgresServer) -> crate::db::PgSettings {
        netjes_milter::verdicts_pg::config(&pg.url(), None, None).unwrap()
    }

    pub fn each(master_hex: &str) -> Vec<Backend> {
        let master = || MasterKey::from_hex(master_hex).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Backend { name: "SQLite", store: Store::open(dir.path(), master()).unwrap(), dir, pg: None };
        let pg = netjes_testdns::postgres::PostgresServer::start_new();
        let store = Store::with(open_postgres(pg_settings(&pg)).unwrap(), master());
        assert!(store.db().is_postgres() && !sqlite.store.db().is_postgres());
        vec![sqlite, Backend { name: "PostgreSQL", store, dir: tempfile::tempdir().unwrap(), pg: Some(pg) }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few connections to PostgreSQL: a slow statement on one does not
    /// hold up the next request; with one, it does.
    #[test]
    fn a_slow_statement_does_not_hold_up_the_others() {
        let pg = netjes_testdns::postgres::PostgresServer::start_new();
        for (connections, waits) in [(4, false), (1, true)] {
            let s = Store::postgres(testing::pg_settings(&pg), MasterKey::from_hex(&"11".repeat(32)).unwrap(), connections).unwrap();
            let s2 = s.clone();
            let slow = std::thread::spawn(move || s2.db().query_row("SELECT 1 FROM pg_sleep(2)", [], |r| r.get::<i64>(0)).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(200));
            let t = std::time::Instant::now();
            assert_eq!(s.user_count().unwrap(), 0);
            assert_eq!(t.elapsed() > std::time::Duration::from_millis(1000), waits, "{connections}: {:?}", t.elapsed());
            assert_eq!(slow.join().unwrap(), 1);
        }
    }

    #[test]
    fn users_sessions_and_tokens() {
        for b in testing::each(&"11".repeat(32)) {
        let s = &b.store;
        s.add_user("admin", "correct horse battery").unwrap();
        assert!(matches!(
            s.add_user("admin", "another password"),
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.add_user("bob", "short"),
            Err(StoreError::Invalid(_))
        ));
        assert!(s.check_login("admin", "wrong password").unwrap().is_none());
        assert!(s
            .check_login("nobody", "correct horse battery")
            .unwrap()
            .is_none());
        let id = s
            .check_login("admin", "correct horse battery")
            .unwrap()
            .unwrap();
        let (token, csrf) = s.create_session(id).unwrap();
        assert_eq!(s.session(&token).unwrap(), Some(("admin".into(), csrf)));
        // Stored hashed: the database does not hold the cookie.
        let raw: String = s
            .db()
            .query_row("SELECT token FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(raw, token);
        s.end_session(&token).unwrap();
        assert!(s.session(&token).unwrap().is_none());
        let api = s.add_api_token("admin", "deploy").unwrap();
        assert_eq!(s.api_token_user(&api).unwrap().as_deref(), Some("admin"));
        assert!(s.api_token_user("nj_guess").unwrap().is_none());
        assert!(matches!(
            s.add_api_token("nobody", "x"),
            Err(StoreError::NotFound(_))
        ), "{}", b.name);
        }
    }

    #[test]
    fn keys_are_sealed_rotated_and_survive_a_reopen() {
        for b in testing::each(&"11".repeat(32)) {
        let s = &b.store;
        s.add_domain("Example.COM.").unwrap();
        assert!(matches!(
            s.add_domain("example.com"),
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.add_domain("not a domain"),
            Err(StoreError::Invalid(_))
        ));
        let g0 = s.key_generation().unwrap();
        let k1 = PrivateKey::generate(KeyAlgorithm::Ed25519, 256).unwrap();
        let r1 = s.add_key("example.com", "s1", &k1).unwrap();
        assert_eq!(r1.state, "active");
        assert!(s.key_generation().unwrap() > g0);
        let k2 = PrivateKey::generate(KeyAlgorithm::Ed25519, 256).unwrap();
        let r2 = s.add_key("example.com", "s2", &k2).unwrap();
        assert_eq!(r2.state, "pending");
        assert!(matches!(
            s.add_key("example.com", "s2", &k2),
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            s.add_key("example.com", "bad_selector", &k2),
            Err(StoreError::Invalid(_))
        ));

        // The private key is not in the database in the clear (nor in
        // SQLite's file and its log).
        let sealed: Vec<Vec<u8>> = s.db().query_map("SELECT sealed FROM keys", [], |r| r.get(0)).unwrap();
        let mut hay = sealed.concat();
        if b.pg.is_none() {
            hay.extend(std::fs::read(b.dir.path().join("netjes.sqlite")).unwrap());
            hay.extend(std::fs::read(b.dir.path().join("netjes.sqlite-wal")).unwrap_or_default());
        }
        assert!(!hay.is_empty() && !hay.windows(16).any(|w| w == &k1.pkcs8_der()[16..32]));
        let s = &b.reopen(MasterKey::from_hex(&"11".repeat(32)).unwrap());
        assert_eq!(s.private_key(r1.id).unwrap().public_key, k1.public_key);
        let master = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        // Inactive domains do not sign.
        assert!(signing_keys(&s.db(), &master).unwrap().is_empty());
        s.set_active("example.com", true).unwrap();
        let signing = signing_keys(&s.db(), &master).unwrap();
        assert_eq!(signing.len(), 1);
        assert_eq!(signing[0].1, "s1");
        s.switch_to(r2.id).unwrap();
        let d = s.domain("example.com").unwrap().unwrap();
        assert_eq!(
            d.keys
                .iter()
                .map(|k| (k.selector.as_str(), k.state.as_str()))
                .collect::<Vec<_>>(),
            [("s1", "retired"), ("s2", "active")]
        );
        assert_eq!(signing_keys(&s.db(), &master).unwrap()[0].1, "s2");
        assert!(s.delete_key(r2.id).is_err(), "the active key stays");
        s.delete_key(r1.id).unwrap();

        // Another master key opens nothing.
        let wrong = b.reopen(MasterKey::from_hex(&"22".repeat(32)).unwrap());
        assert!(matches!(
            wrong.private_key(r2.id),
            Err(StoreError::Crypto(_))
        ), "{}", b.name);
        }
    }

    #[test]
    fn tests_take_one_message_and_expire() {
        for b in crate::store::testing::each(&"11".repeat(32)) {
        let s = &b.store;
        
        s.create_test(
            "abc",
            "abc@test.example",
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(s.test_is_open("abc").unwrap());
        assert!(!s.test_is_open("abd").unwrap());
        assert!(s
            .receive(
                "abc",
                b"Subject: x\r\n\r\nhi\r\n",
                &serde_json::json!({"ip": "127.0.0.1"})
            )
            .unwrap());
        assert!(!s.receive("abc", b"second", &serde_json::json!({})).unwrap());
        assert_eq!(s.unfinished().unwrap(), ["abc"]);
        s.finish("abc", &serde_json::json!({"score": 9.5}), "<p>9.5</p>")
            .unwrap();
        let t = s.test("abc").unwrap().unwrap();
        assert_eq!(
            (t.status.as_str(), t.report.unwrap()["score"].as_f64()),
            ("done", Some(9.5))
        );
        s.create_test("old", "old@test.example", std::time::Duration::from_secs(0))
            .unwrap();
        s.db()
            .execute(
                "UPDATE tests SET expires = expires - 10 WHERE id = 'old'",
                [],
            )
            .unwrap();
        assert_eq!(s.test("old").unwrap().unwrap().status, "expired");
        assert!(!s.receive("old", b"late", &serde_json::json!({})).unwrap());
        assert_eq!(s.purge_tests(now() + 1).unwrap(), 2);
        }
    }
}
