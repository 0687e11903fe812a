//! The verdict of every verified message, kept for DMARC aggregate reports
//! (RFC 9990): who sent as which domain, from where, and what SPF, DKIM and
//! DMARC said. SQLite in the data directory, WAL mode; the insert happens
//! off the async runtime, and a failure to record never holds up mail.

use netjes_auth::verdict::Verdict;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("verdict store: {0}")]
pub struct VerdictError(String);

impl VerdictError {
    pub(crate) fn new(e: String) -> VerdictError {
        VerdictError(e)
    }
}

impl From<rusqlite::Error> for VerdictError {
    fn from(e: rusqlite::Error) -> Self {
        VerdictError(e.to_string())
    }
}

/// Each step takes the schema from its index to the next version
/// (`PRAGMA user_version`). The first is written so that a store made
/// before versions were counted passes through it unchanged.
const MIGRATIONS: &[&str] = &["
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    source_ip TEXT,
    header_from TEXT,
    envelope_from TEXT,
    policy_domain TEXT,
    policy TEXT,
    disposition TEXT NOT NULL,
    dmarc TEXT NOT NULL,
    spf_domain TEXT,
    spf TEXT,
    dkim TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_domain_time ON verdicts(header_from, time);
", "
-- What RFC 9990's policy_published and policy_evaluated need.
ALTER TABLE verdicts ADD COLUMN published TEXT;
ALTER TABLE verdicts ADD COLUMN spf_scope TEXT;
ALTER TABLE verdicts ADD COLUMN envelope_to TEXT;
ALTER TABLE verdicts ADD COLUMN override_reason TEXT;
ALTER TABLE verdicts ADD COLUMN override_comment TEXT;
ALTER TABLE verdicts ADD COLUMN dkim_aligned INTEGER;
ALTER TABLE verdicts ADD COLUMN spf_aligned INTEGER;
", "
-- Which day's report went to which destination: sent once.
CREATE TABLE reports_sent (policy_domain TEXT NOT NULL, day INTEGER NOT NULL, destination TEXT NOT NULL, sent INTEGER NOT NULL, PRIMARY KEY (policy_domain, day, destination));
", "
-- Mail to or from a report address: it makes no report (no loops).
ALTER TABLE verdicts ADD COLUMN about_reports INTEGER;
", "
-- Report destinations that refused for good, left alone until `until`.
CREATE TABLE dead_destinations (destination TEXT PRIMARY KEY, until INTEGER NOT NULL, why TEXT NOT NULL);
", "
-- The Message-ID each report mail went out with: a bounce that comes back
-- later names it, and only a bounce of our own mail marks a destination.
ALTER TABLE reports_sent ADD COLUMN message_id TEXT;
CREATE INDEX reports_sent_message_id ON reports_sent(message_id);
"];

fn migrate(c: &mut rusqlite::Connection) -> Result<(), VerdictError> {
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(VerdictError(format!(
            "the verdict store is of version {version}, newer than this netjes ({}); upgrade netjes",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let t = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = t.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        t.execute_batch(m)?;
        t.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        t.commit()?;
    }
    Ok(())
}

/// The policy as published, as RFC 9990's policy_published has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub p: Option<String>,
    pub sp: Option<String>,
    pub np: Option<String>,
    /// "r" or "s".
    pub adkim: String,
    pub aspf: String,
    pub fo: Option<String>,
    /// "y" or "n".
    pub testing: String,
    /// "treewalk": RFC 9989's discovery, the only one netjes uses.
    pub discovery_method: String,
    pub rua: Vec<String>,
}

impl Published {
    pub fn of(r: &netjes_auth::dmarc::DmarcRecord) -> Published {
        let p = |x: Option<netjes_auth::dmarc::Policy>| x.map(|x| x.as_str().to_string());
        let mode = |strict: bool| if strict { "s" } else { "r" }.to_string();
        Published {
            p: p(r.p),
            sp: p(r.sp),
            np: p(r.np),
            adkim: mode(r.adkim_strict),
            aspf: mode(r.aspf_strict),
            fo: r.fo.clone(),
            testing: if r.testing { "y" } else { "n" }.into(),
            discovery_method: "treewalk".into(),
            rua: r.rua.clone(),
        }
    }
}

/// One row, as the reports read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub time: i64,
    pub source_ip: Option<String>,
    pub header_from: Option<String>,
    pub envelope_from: String,
    pub policy_domain: Option<String>,
    pub policy: Option<String>,
    pub disposition: String,
    pub dmarc: String,
    pub spf_domain: Option<String>,
    pub spf: Option<String>,
    /// "domain:selector:result" per signature, space-separated.
    pub dkim: String,
    /// The policy record, when one was found.
    pub published: Option<Published>,
    /// "mfrom", or "helo" for the null sender.
    pub spf_scope: Option<String>,
    /// The domain of the first recipient.
    pub envelope_to: Option<String>,
    /// Why the applied disposition is not the policy's (RFC 9990
    /// PolicyOverrideType: trusted_forwarder, local_policy, ...).
    pub override_reason: Option<String>,
    pub override_comment: Option<String>,
    /// DMARC's own view: a passing DKIM signature, or SPF, aligned with
    /// the From domain (policy_evaluated's dkim and spf). Unknown (None)
    /// in rows from before they were kept.
    pub dkim_aligned: Option<bool>,
    pub spf_aligned: Option<bool>,
    /// Mail to or from one of our report addresses.
    pub about_reports: Option<bool>,
}

impl Row {
    /// A row of mail as a.example (p=reject, rua=`rua`) from `ip` at
    /// `time`, passing DMARC or failing it: the fixture of the report
    /// tests, in one place.
    pub fn sample(time: i64, ip: &str, pass: bool, rua: &[&str]) -> Row {
        Row {
            time,
            source_ip: Some(ip.into()),
            header_from: Some("a.example".into()),
            envelope_from: "bounce@a.example".into(),
            policy_domain: Some("a.example".into()),
            policy: Some("reject".into()),
            disposition: if pass { "none" } else { "reject" }.into(),
            dmarc: if pass { "pass" } else { "fail" }.into(),
            spf_domain: Some("a.example".into()),
            spf: Some(if pass { "pass" } else { "fail" }.into()),
            dkim: format!("a.example:s1:{}", if pass { "pass" } else { "fail" }),
            published: Some(Published {
                p: Some("reject".into()),
                adkim: "r".into(),
                aspf: "r".into(),
                testing: "n".into(),
                discovery_method: "treewalk".into(),
                rua: rua.iter().map(|r| r.to_string()).collect(),
                ..Default::default()
            }),
            spf_scope: Some("mfrom".into()),
            envelope_to: Some("mx.example.org".into()),
            override_reason: None,
            override_comment: None,
            dkim_aligned: Some(pass),
            spf_aligned: Some(pass),
            about_reports: Some(false),
        }
    }
}

/// Rows waiting for the writer past this are refused (and counted by the
/// caller): a stuck disk must not grow the milter's memory.
pub const MAX_QUEUED: usize = 10_000;
/// Rows written per transaction at most.
const BATCH: usize = 1_000;

/// The verdicts of verified mail. Rows go to one writer thread over a
/// bounded queue and are written in batches, one transaction for whatever
/// waits: a commit per message cost a thread hand-off and a WAL append
/// each, which showed in the verification p99. A row is queued after the
/// answer either way, so a crash loses what was queued in the last
/// milliseconds, as it lost the rows not yet committed before.
///
/// Or PostgreSQL ([`VerdictStore::open_postgres`]), shared by the milters
/// of several MX hosts.
#[derive(Debug, Clone)]
pub struct VerdictStore {
    tx: std::sync::mpsc::SyncSender<Row>,
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    /// For reading (reports, tests); the writer has its own connection.
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(Arc<crate::verdicts_pg::Pg>),
}

/// `report send`'s right to send now: always given on one host (SQLite),
/// and held by one process at a time across a cluster (PostgreSQL).
pub enum SendLock {
    Local,
    Cluster(crate::verdicts_pg::SendLock),
}

fn connect(path: &Path) -> Result<rusqlite::Connection, VerdictError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn write_batch(c: &mut rusqlite::Connection, rows: &[Row]) -> Result<(), VerdictError> {
    let t = c.transaction()?;
    {
        let mut st = t.prepare_cached(
            "INSERT INTO verdicts (time, source_ip, header_from, envelope_from, policy_domain, policy, disposition, dmarc, spf_domain, spf, dkim, published, spf_scope, envelope_to, override_reason, override_comment, dkim_aligned, spf_aligned, about_reports) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )?;
        for r in rows {
            st.execute(rusqlite::params![
                r.time,
                r.source_ip,
                r.header_from,
                r.envelope_from,
                r.policy_domain,
                r.policy,
                r.disposition,
                r.dmarc,
                r.spf_domain,
                r.spf,
                r.dkim,
                r.published.as_ref().and_then(|p| serde_json::to_string(p).ok()),
                r.spf_scope,
                r.envelope_to,
                r.override_reason,
                r.override_comment,
                r.dkim_aligned,
                r.spf_aligned,
                r.about_reports
            ])?;
        }
    }
    t.commit()?;
    Ok(())
}

impl VerdictStore {
    /// `metrics`: where the writer counts rows it could not write
    /// (`netjes_milter_errors_total{kind="store"}`), as the server counts
    /// rows it could not queue.
    pub fn open(
        dir: &Path,
        metrics: Option<Arc<netjes_net::metrics::Metrics>>,
    ) -> Result<VerdictStore, VerdictError> {
        netjes_net::private_dir(dir).map_err(VerdictError)?;
        let path = dir.join("verdicts.sqlite");
        // 0600 before SQLite opens it: its -wal and -shm take this mode.
        netjes_net::private_file(&path).map_err(VerdictError)?;
        let mut conn = connect(&path)?;
        migrate(&mut conn)?;
        let mut writer = connect(&path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Row>(MAX_QUEUED);
        std::thread::Builder::new()
            .name("netjes-verdicts".into())
            .spawn(move || {
                // Ends when every VerdictStore is gone, after the last rows.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = write_batch(&mut writer, &batch) {
                        tracing::error!("{} verdicts not kept: {e}", batch.len());
                        if let Some(m) = &metrics {
                            for _ in &batch {
                                m.inc("netjes_milter_errors_total", &[("kind", "store")]);
                            }
                        }
                    }
                }
            })
            .map_err(|e| VerdictError(format!("cannot start the writer: {e}")))?;
        Ok(VerdictStore {
            tx,
            backend: Backend::Sqlite(Arc::new(Mutex::new(conn))),
        })
    }

    /// The store in PostgreSQL (`config` from verdicts_pg::config): the
    /// schema is brought up to date, then rows are written by a thread of
    /// their own, as for SQLite.
    pub fn open_postgres(config: crate::verdicts_pg::PgSettings, metrics: Option<Arc<netjes_net::metrics::Metrics>>) -> Result<VerdictStore, VerdictError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Row>(MAX_QUEUED);
        let pg = crate::verdicts_pg::Pg::open(config, rx, metrics)?;
        Ok(VerdictStore { tx, backend: Backend::Postgres(Arc::new(pg)) })
    }

    /// The store a milter.toml names: PostgreSQL with `[store] url`, SQLite
    /// in `dir` otherwise.
    pub fn open_either(db: Option<&crate::verdicts_pg::PgSettings>, dir: &Path, metrics: Option<Arc<netjes_net::metrics::Metrics>>) -> Result<VerdictStore, VerdictError> {
        match db {
            Some(c) => VerdictStore::open_postgres(c.clone(), metrics),
            None => VerdictStore::open(dir, metrics),
        }
    }

    /// The right to send the day's reports now; None while another process
    /// of the cluster sends them.
    pub fn send_lock(&self) -> Result<Option<SendLock>, VerdictError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(Some(SendLock::Local)),
            Backend::Postgres(pg) => Ok(pg.send_lock()?.map(SendLock::Cluster)),
        }
    }

    fn sqlite(&self) -> Option<std::sync::MutexGuard<'_, rusqlite::Connection>> {
        match &self.backend {
            Backend::Sqlite(c) => Some(c.lock().unwrap_or_else(|p| p.into_inner())),
            Backend::Postgres(_) => None,
        }
    }

    fn pg(&self) -> Option<&crate::verdicts_pg::Pg> {
        match &self.backend {
            Backend::Postgres(p) => Some(p),
            Backend::Sqlite(_) => None,
        }
    }

    /// The row of a verdict; the applied disposition is the policy's
    /// until the caller records an override.
    pub fn row(v: &Verdict, ip: Option<IpAddr>, envelope_from: &str, envelope_to: Option<&str>, now: i64) -> Row {
        Row {
            time: now,
            source_ip: ip.map(|i| i.to_string()),
            header_from: v.dmarc.from_domain.clone(),
            envelope_from: envelope_from.to_string(),
            policy_domain: v.dmarc.policy_domain.clone(),
            policy: v.dmarc.policy.map(|p| p.as_str().to_string()),
            disposition: v.dmarc.disposition.as_str().to_string(),
            dmarc: v.dmarc.result.as_str().to_string(),
            spf_domain: v.spf.as_ref().map(|s| s.domain.clone()),
            spf: v.spf.as_ref().map(|s| s.result.as_str().to_string()),
            dkim: v
                .dkim
                .iter()
                .map(|d| format!("{}:{}:{}", d.domain, d.selector, d.result.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            published: v.dmarc.record.as_ref().map(Published::of),
            spf_scope: v.spf.as_ref().map(|s| match s.identity {
                netjes_auth::spf::Identity::Helo => "helo".to_string(),
                _ => "mfrom".to_string(),
            }),
            envelope_to: envelope_to
                .and_then(|t| t.rsplit_once('@'))
                .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()),
            override_reason: None,
            override_comment: None,
            dkim_aligned: Some(v.dmarc.dkim_aligned),
            spf_aligned: Some(v.dmarc.spf_aligned),
            about_reports: None,
        }
    }

    /// Records a row, off the async runtime.
    /// Queues a row for the writer; never waits. An error when the queue
    /// is full (the disk is stuck) or the writer is gone.
    pub fn record(&self, r: Row) -> Result<(), VerdictError> {
        self.tx.try_send(r).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => VerdictError(format!(
                "{MAX_QUEUED} verdicts wait for the disk; this one is dropped"
            )),
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                VerdictError("the writer has stopped".into())
            }
        })
    }

    /// Whether a day's report for a domain went to a destination.
    pub fn was_sent(&self, domain: &str, day: i64, destination: &str) -> Result<bool, VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.was_sent(domain, day, destination);
        }
        let c = self.sqlite().expect("one of the two");
        let n: i64 = c.query_row(
            "SELECT count(*) FROM reports_sent WHERE policy_domain = ?1 AND day = ?2 AND destination = ?3",
            rusqlite::params![domain, day, destination],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    pub fn mark_sent(&self, domain: &str, day: i64, destination: &str, message_id: &str, now: i64) -> Result<(), VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.mark_sent(domain, day, destination, message_id, now);
        }
        let c = self.sqlite().expect("one of the two");
        c.execute(
            "INSERT OR IGNORE INTO reports_sent (policy_domain, day, destination, sent, message_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![domain, day, destination, now, message_id],
        )?;
        Ok(())
    }

    /// The ledger entry (policy domain, destination entry) of the report
    /// mail that went out with this Message-ID, if one did.
    pub fn sent_as(&self, message_id: &str) -> Result<Option<(String, String)>, VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.sent_as(message_id);
        }
        let c = self.sqlite().expect("one of the two");
        let mut st = c.prepare_cached("SELECT policy_domain, destination FROM reports_sent WHERE message_id = ?1")?;
        let mut rows = st.query(rusqlite::params![message_id])?;
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    }

    /// Until when a destination is left alone, and why, if it refused.
    pub fn dead_until(&self, destination: &str, now: i64) -> Result<Option<(i64, String)>, VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.dead_until(destination, now);
        }
        let c = self.sqlite().expect("one of the two");
        let mut st = c.prepare_cached("SELECT until, why FROM dead_destinations WHERE destination = ?1 AND until > ?2")?;
        let mut rows = st.query(rusqlite::params![destination.to_ascii_lowercase(), now])?;
        Ok(match rows.next()? {
            Some(r) => Some((r.get(0)?, r.get(1)?)),
            None => None,
        })
    }

    pub fn mark_dead(&self, destination: &str, until: i64, why: &str) -> Result<(), VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.mark_dead(destination, until, why);
        }
        let c = self.sqlite().expect("one of the two");
        c.execute(
            "INSERT INTO dead_destinations (destination, until, why) VALUES (?1, ?2, ?3) ON CONFLICT (destination) DO UPDATE SET until = ?2, why = ?3",
            rusqlite::params![destination.to_ascii_lowercase(), until, why],
        )?;
        Ok(())
    }

    /// Whether mail from a domain was delivered (not rejected) since
    /// `since`: a domain we never took mail from gets no report of its
    /// rejected spoofs alone.
    pub fn delivered_from(&self, domain: &str, since: i64) -> Result<bool, VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.delivered_from(domain, since);
        }
        let c = self.sqlite().expect("one of the two");
        let n: i64 = c.query_row(
            "SELECT count(*) FROM (SELECT 1 FROM verdicts WHERE policy_domain = ?1 AND time >= ?2 AND disposition != 'reject' LIMIT 1)",
            rusqlite::params![domain, since],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// The rows of a From domain in [from, to).
    pub fn rows(&self, domain: &str, from: i64, to: i64) -> Result<Vec<Row>, VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.rows(Some(domain), from, to);
        }
        self.select("header_from = ?1 AND time >= ?2 AND time < ?3", rusqlite::params![domain, from, to])
    }

    /// Every row in [from, to): a day's reports are made from them.
    pub fn rows_between(&self, from: i64, to: i64) -> Result<Vec<Row>, VerdictError> {
        if let Some(pg) = self.pg() {
            return pg.rows(None, from, to);
        }
        self.select("time >= ?1 AND time < ?2", rusqlite::params![from, to])
    }

    fn select(&self, filter: &str, p: impl rusqlite::Params) -> Result<Vec<Row>, VerdictError> {
        let c = self.sqlite().expect("SQLite");
        let mut st = c.prepare_cached(&format!(
            "SELECT time, source_ip, header_from, envelope_from, policy_domain, policy, disposition, dmarc, spf_domain, spf, dkim, published, spf_scope, envelope_to, override_reason, override_comment, dkim_aligned, spf_aligned, about_reports FROM verdicts WHERE {filter} ORDER BY id"
        ))?;
        let rows = st
            .query_map(p, |r| {
                Ok(Row {
                    time: r.get(0)?,
                    source_ip: r.get(1)?,
                    header_from: r.get(2)?,
                    envelope_from: r.get(3)?,
                    policy_domain: r.get(4)?,
                    policy: r.get(5)?,
                    disposition: r.get(6)?,
                    dmarc: r.get(7)?,
                    spf_domain: r.get(8)?,
                    spf: r.get(9)?,
                    dkim: r.get(10)?,
                    published: r.get::<_, Option<String>>(11)?.and_then(|j| serde_json::from_str(&j).ok()),
                    spf_scope: r.get(12)?,
                    envelope_to: r.get(13)?,
                    override_reason: r.get(14)?,
                    override_comment: r.get(15)?,
                    dkim_aligned: r.get(16)?,
                    spf_aligned: r.get(17)?,
                    about_reports: r.get(18)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> Row {
        Row {
            time: i,
            source_ip: Some("192.0.2.7".into()),
            header_from: Some("example.com".into()),
            envelope_from: "a@example.com".into(),
            policy_domain: Some("example.com".into()),
            policy: Some("reject".into()),
            disposition: "none".into(),
            dmarc: "pass".into(),
            spf_domain: Some("example.com".into()),
            spf: Some("pass".into()),
            dkim: "example.com:s1:pass".into(),
            published: Some(Published { p: Some("reject".into()), adkim: "r".into(), aspf: "s".into(), testing: "n".into(), discovery_method: "treewalk".into(), rua: vec!["d@example.com".into()], ..Default::default() }),
            spf_scope: Some("mfrom".into()),
            envelope_to: Some("example.org".into()),
            override_reason: None,
            override_comment: None,
            dkim_aligned: Some(true),
            spf_aligned: Some(false),
            about_reports: Some(false),
        }
    }

    /// A store made before the schema had versions gains the columns of
    /// RFC 9990, and its old rows read with them empty.
    #[test]
    fn an_old_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join("verdicts.sqlite")).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute("INSERT INTO verdicts (time, source_ip, header_from, envelope_from, policy_domain, policy, disposition, dmarc, spf_domain, spf, dkim) VALUES (5, '192.0.2.1', 'example.com', '', 'example.com', 'none', 'none', 'fail', NULL, NULL, '')", []).unwrap();
        }
        let store = VerdictStore::open(dir.path(), None).unwrap();
        let old = store.rows("example.com", 0, 10).unwrap();
        assert_eq!((old.len(), old[0].published.clone(), old[0].envelope_to.clone()), (1, None, None));
        store.record(row(7)).unwrap();
        for _ in 0..200 {
            if store.rows("example.com", 0, 10).unwrap().len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let new = &store.rows("example.com", 6, 10).unwrap()[0];
        assert_eq!(new, &row(7));
        drop(store);
        // Opening again changes nothing; a newer store is refused.
        assert_eq!(VerdictStore::open(dir.path(), None).unwrap().rows("example.com", 0, 10).unwrap().len(), 2);
        rusqlite::Connection::open(dir.path().join("verdicts.sqlite")).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(VerdictStore::open(dir.path(), None).unwrap_err().to_string().contains("newer than this netjes"));
    }

    /// Rows queued faster than one transaction takes arrive in batches,
    /// in order, and are on disk for the next start.
    #[test]
    fn queued_rows_are_written_in_batches_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = VerdictStore::open(dir.path(), None).unwrap();
        for i in 0..2500 {
            store.record(row(i)).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..200 {
            got = store.rows("example.com", 0, i64::MAX).unwrap();
            if got.len() == 2500 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got.len(), 2500);
        assert!(got.iter().enumerate().all(|(i, r)| r.time == i as i64));
        drop(store);
        let again = VerdictStore::open(dir.path(), None).unwrap();
        assert_eq!(again.rows("example.com", 100, 200).unwrap().len(), 100);
    }
}
