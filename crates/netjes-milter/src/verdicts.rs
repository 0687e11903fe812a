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

impl From<rusqlite::Error> for VerdictError {
    fn from(e: rusqlite::Error) -> Self {
        VerdictError(e.to_string())
    }
}

const SCHEMA: &str = "
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
";

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
}

#[derive(Debug, Clone)]
pub struct VerdictStore {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl VerdictStore {
    pub fn open(dir: &Path) -> Result<VerdictStore, VerdictError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| VerdictError(format!("{}: {e}", dir.display())))?;
        let conn = rusqlite::Connection::open(dir.join("verdicts.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(VerdictStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn row(v: &Verdict, ip: Option<IpAddr>, envelope_from: &str, now: i64) -> Row {
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
        }
    }

    /// Records a row, off the async runtime.
    pub async fn record(&self, r: Row) -> Result<(), VerdictError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            c.prepare_cached(
                "INSERT INTO verdicts (time, source_ip, header_from, envelope_from, policy_domain, policy, disposition, dmarc, spf_domain, spf, dkim) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(rusqlite::params![r.time, r.source_ip, r.header_from, r.envelope_from, r.policy_domain, r.policy, r.disposition, r.dmarc, r.spf_domain, r.spf, r.dkim])?;
            Ok(())
        })
        .await
        .map_err(|e| VerdictError(e.to_string()))?
    }

    /// The rows of a From domain in [from, to), for a report.
    pub fn rows(&self, domain: &str, from: i64, to: i64) -> Result<Vec<Row>, VerdictError> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = c.prepare_cached(
            "SELECT time, source_ip, header_from, envelope_from, policy_domain, policy, disposition, dmarc, spf_domain, spf, dkim FROM verdicts WHERE header_from = ?1 AND time >= ?2 AND time < ?3 ORDER BY id",
        )?;
        let rows = st
            .query_map(rusqlite::params![domain, from, to], |r| {
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
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
