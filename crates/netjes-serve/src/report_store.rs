//! Reports in the store: each accepted report once (a second copy of the
//! same reporter's report id is a duplicate), its rows by domain and day
//! for the sources view, and every rejected input kept with its reason
//! (and up to 1 MiB of it), so the user can see what failed and why.

use crate::store::{now, Store, StoreError};
use netjes_reports::sources::Row;
use netjes_reports::Report;
use rusqlite::params;
use serde::Serialize;

/// What became of one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Added {
    Stored,
    Duplicate,
}

/// A stored report, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub kind: String,
    pub reporter: String,
    pub report_id: String,
    pub policy_domain: String,
    pub begin: Option<i64>,
    pub end: Option<i64>,
    pub received: i64,
    pub trusted: bool,
    pub source: String,
}

/// The policy domain and dates of a report, for the index.
fn summary(r: &Report) -> (String, Option<i64>, Option<i64>) {
    match r {
        Report::Aggregate(a) => (a.policy.domain.clone(), Some(a.begin), Some(a.end)),
        Report::Tls(t) => (
            t.policies.first().map(|p| p.policy_domain.clone()).unwrap_or_default(),
            None,
            None,
        ),
        Report::Failure(f) => (f.reported_domain.clone().unwrap_or_default(), None, None),
    }
}

impl Store {
    /// Stores a report (and an aggregate report's rows); `trusted` when
    /// its mail was authenticated as the reporter's, or the user imported
    /// it; `source` names where it came from.
    pub fn add_report(&self, r: &Report, trusted: bool, source: &str) -> Result<Added, StoreError> {
        let (reporter, id) = r.key();
        let (domain, begin, end) = summary(r);
        let parsed = serde_json::to_string(r).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO reports (kind, reporter, report_id, policy_domain, begin, end, received, trusted, source, parsed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![r.kind(), reporter, id, domain, begin, end, now(), trusted, source, parsed],
        )?;
        if n == 0 {
            return Ok(Added::Duplicate);
        }
        let report = tx.last_insert_rowid();
        if let Report::Aggregate(a) = r {
            let mut st = tx.prepare(
                "INSERT INTO report_rows (report, domain, source_ip, count, day, disposition, dkim_aligned, spf_aligned, forwarded, dkim_other_pass, spf_other_pass) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for row in netjes_reports::sources::rows_of(a) {
                st.execute(params![
                    report,
                    a.policy.domain,
                    row.source_ip.to_string(),
                    row.count as i64,
                    row.day,
                    row.disposition,
                    row.dkim_aligned,
                    row.spf_aligned,
                    row.forwarded,
                    row.dkim_other_pass,
                    row.spf_other_pass
                ])?;
            }
        }
        tx.commit()?;
        Ok(Added::Stored)
    }

    /// Keeps an input that is not a report, with the reason.
    pub fn add_rejected(&self, source: &str, reason: &str, raw: &[u8]) -> Result<(), StoreError> {
        let kept = &raw[..raw.len().min(1024 * 1024)];
        self.db().execute(
            "INSERT INTO rejected_reports (received, source, reason, raw) VALUES (?1, ?2, ?3, ?4)",
            params![now(), source, reason, kept],
        )?;
        Ok(())
    }

    /// The rows of a domain's aggregate reports from `since_day` on.
    pub fn report_rows(&self, domain: &str, since_day: i64) -> Result<Vec<Row>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT source_ip, count, day, disposition, dkim_aligned, spf_aligned, forwarded, dkim_other_pass, spf_other_pass FROM report_rows WHERE domain = ?1 AND day >= ?2",
        )?;
        let rows = st
            .query_map(params![domain, since_day], |r| {
                let ip: String = r.get(0)?;
                Ok((ip, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(ip, count, day, disposition, dkim, spf, fwd, dkim_o, spf_o)| {
                Some(Row {
                    source_ip: ip.parse().ok()?,
                    count: count.max(0) as u64,
                    day,
                    disposition,
                    dkim_aligned: dkim,
                    spf_aligned: spf,
                    forwarded: fwd,
                    dkim_other_pass: dkim_o,
                    spf_other_pass: spf_o,
                })
            })
            .collect())
    }

    /// The reports about a domain, newest first.
    pub fn reports_for(&self, domain: &str) -> Result<Vec<ReportRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT kind, reporter, report_id, policy_domain, begin, end, received, trusted, source FROM reports WHERE policy_domain = ?1 ORDER BY COALESCE(end, received) DESC",
        )?;
        let rows = st
            .query_map(params![domain], |r| {
                Ok(ReportRow {
                    kind: r.get(0)?,
                    reporter: r.get(1)?,
                    report_id: r.get(2)?,
                    policy_domain: r.get(3)?,
                    begin: r.get(4)?,
                    end: r.get(5)?,
                    received: r.get(6)?,
                    trusted: r.get(7)?,
                    source: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
