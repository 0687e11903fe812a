//! Reports in the store: each accepted report once (a second copy of the
//! same reporter's report id is a duplicate), its rows by domain and day
//! for the sources view, and every rejected input kept with its reason
//! (and up to 1 MiB of it), so the user can see what failed and why.
//!
//! A report that cannot be believed (its mail is not authenticated as the
//! reporter's, it is about a domain we do not serve, it ends in the
//! future) is stored but held: kept apart from every view until the user
//! releases it. Report mail is queued before the SMTP 250, so a crash
//! loses none of it. Anyone can mail a report address, so the store is
//! bounded: mails per sender and day, raw copies in all (the oldest go
//! first; parsed rows stay), and rejected and held entries by count.

use crate::store::{now, Store, StoreError};
use netjes_reports::sources::Row;
use netjes_reports::Report;
use crate::db::OptionalExtension;
use crate::params;
use serde::Serialize;

/// What became of one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Added {
    Stored,
    Duplicate,
}

/// Where a report came from and whether it is believed.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// Authenticated as the reporter's, or imported by the user.
    pub trusted: bool,
    /// Why it is kept apart, when it is.
    pub held: Option<String>,
    /// A file path, "smtp from ADDRESS", "imap NAME", "upload".
    pub source: String,
    /// The input it was read from, kept while there is room.
    pub raw: Option<Vec<u8>>,
}

/// A rejected input, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    pub id: i64,
    pub received: i64,
    pub source: String,
    pub reason: String,
    pub raw_kept: bool,
}

/// A stored report, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub id: i64,
    pub kind: String,
    pub reporter: String,
    pub report_id: String,
    pub policy_domain: String,
    pub begin: Option<i64>,
    pub end: Option<i64>,
    pub received: i64,
    pub trusted: bool,
    pub source: String,
    pub held: Option<String>,
}

const REPORT_COLUMNS: &str =
    "id, kind, reporter, report_id, policy_domain, begin, \"end\", received, trusted, source, held";

fn report_row(r: &crate::db::Row) -> Result<ReportRow, crate::db::DbError> {
    Ok(ReportRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        reporter: r.get(2)?,
        report_id: r.get(3)?,
        policy_domain: r.get(4)?,
        begin: r.get(5)?,
        end: r.get(6)?,
        received: r.get(7)?,
        trusted: r.get(8)?,
        source: r.get(9)?,
        held: r.get(10)?,
    })
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
    /// Stores a report (and an aggregate report's rows), trusted and held
    /// as its provenance says.
    pub fn add_report(&self, r: &Report, how: &Provenance) -> Result<Added, StoreError> {
        let (reporter, id) = r.key();
        let (domain, begin, end) = summary(r);
        let parsed = serde_json::to_string(r).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let raw = how.raw.as_deref().map(|b| &b[..b.len().min(RAW_KEPT)]);
        let db = self.db();
        let tx = db.transaction()?;
        let report: Option<i64> = tx
            .query_row(
                "INSERT INTO reports (kind, reporter, report_id, policy_domain, begin, \"end\", received, trusted, source, parsed, held, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING RETURNING id",
                params![r.kind(), reporter, id, domain, begin, end, now(), how.trusted, how.source, parsed, how.held, raw],
                |r| r.get(0),
            )
            .optional()?;
        let Some(report) = report else {
            return Ok(Added::Duplicate);
        };
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
        let kept = &raw[..raw.len().min(RAW_KEPT)];
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
            "SELECT source_ip, count, day, disposition, dkim_aligned, spf_aligned, forwarded, dkim_other_pass, spf_other_pass FROM report_rows JOIN reports ON reports.id = report_rows.report WHERE domain = ?1 AND day >= ?2 AND held IS NULL",
        )?;
        let rows = st
            .query_map(params![domain, since_day], |r| {
                let ip: String = r.get(0)?;
                Ok((ip, r.get::<i64>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
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

    /// The reports about a domain, newest first (held ones too).
    pub fn reports_for(&self, domain: &str) -> Result<Vec<ReportRow>, StoreError> {
        self.list_reports("policy_domain = ?1 ORDER BY COALESCE(\"end\", received) DESC LIMIT 1000", &params![domain])
    }

    /// Reports kept apart, newest first.
    pub fn held_reports(&self) -> Result<Vec<ReportRow>, StoreError> {
        self.list_reports("held IS NOT NULL ORDER BY received DESC LIMIT 1000", &[])
    }

    fn list_reports(&self, filter: &str, p: &[crate::db::Value]) -> Result<Vec<ReportRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!("SELECT {REPORT_COLUMNS} FROM reports WHERE {filter}"))?;
        let rows = st.query_map(p, report_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One report with its listing, as the JSON it was stored as.
    pub fn report(&self, id: i64) -> Result<Option<(ReportRow, serde_json::Value)>, StoreError> {
        let db = self.db();
        let rows = db.query(&format!("SELECT {REPORT_COLUMNS}, parsed FROM reports WHERE id = ?1"), params![id])?;
        let Some(r) = rows.first() else { return Ok(None) };
        let listing = report_row(r)?;
        let parsed: String = r.get(11)?;
        let report = serde_json::from_str(&parsed).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok(Some((listing, report)))
    }

    /// The domains with reports in view, with their count of reports and
    /// the time of the newest.
    pub fn report_domains(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT policy_domain, count(*), MAX(COALESCE(\"end\", received)) FROM reports WHERE held IS NULL AND policy_domain != '' GROUP BY policy_domain ORDER BY policy_domain LIMIT 1000",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Takes a held report into view; false when there is no such report.
    pub fn release_report(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.db().execute("UPDATE reports SET held = NULL WHERE id = ?1 AND held IS NOT NULL", params![id])? > 0)
    }

    /// Rejected inputs, newest first.
    pub fn rejected_reports(&self) -> Result<Vec<RejectedRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT id, received, source, reason, raw IS NOT NULL FROM rejected_reports ORDER BY received DESC, id DESC LIMIT 1000",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(RejectedRow { id: r.get(0)?, received: r.get(1)?, source: r.get(2)?, reason: r.get(3)?, raw_kept: r.get(4)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    // ---- report mail, queued before the SMTP reply ----

    /// Counts one mail from `sender` today; returns the count with it.
    pub fn count_report_sender(&self, sender: &str) -> Result<u32, StoreError> {
        let day = now().div_euclid(86_400);
        let db = self.db();
        db.execute("DELETE FROM report_senders WHERE day < ?1", params![day - 1])?;
        let n: i64 = db.query_row(
            "INSERT INTO report_senders (sender, day, count) VALUES (?1, ?2, 1) ON CONFLICT (sender, day) DO UPDATE SET count = report_senders.count + 1 RETURNING count",
            params![sender, day],
            |r| r.get(0),
        )?;
        Ok(n.clamp(0, u32::MAX as i64) as u32)
    }

    /// Queues a report mail with its SMTP facts (JSON); refused (`None`)
    /// when the queue already holds `cap` octets.
    pub fn queue_report_mail(&self, raw: &[u8], facts: &str, cap: u64) -> Result<Option<i64>, StoreError> {
        let db = self.db();
        let queued: i64 = db.query_row("SELECT COALESCE(SUM(length(raw)), 0) FROM report_mail", [], |r| r.get(0))?;
        if queued.max(0) as u64 + raw.len() as u64 > cap {
            return Ok(None);
        }
        let id = db.query_row("INSERT INTO report_mail (received, facts, raw) VALUES (?1, ?2, ?3) RETURNING id", params![now(), facts, raw], |r| r.get(0))?;
        Ok(Some(id))
    }

    /// A queued report mail: its facts (JSON) and octets.
    pub fn report_mail(&self, id: i64) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let db = self.db();
        Ok(db.query_row("SELECT facts, raw FROM report_mail WHERE id = ?1", params![id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
    }

    pub fn report_mail_done(&self, id: i64) -> Result<(), StoreError> {
        self.db().execute("DELETE FROM report_mail WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// The queued report mails, oldest first: what a crash left.
    pub fn queued_report_mails(&self) -> Result<Vec<i64>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT id FROM report_mail ORDER BY id")?;
        let ids = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Keeps the store within bounds: raw copies over `max_raw` octets are
    /// dropped oldest first (the parsed reports stay), and rejected inputs
    /// and held reports beyond `max_apart` each are deleted oldest first.
    pub fn trim_reports(&self, max_raw: u64, max_apart: u32) -> Result<(), StoreError> {
        let db = self.db();
        let raw_used = |db: &crate::db::Conn| -> Result<u64, StoreError> {
            Ok(db.query_row(
                "SELECT (SELECT COALESCE(SUM(length(raw)), 0) FROM reports) + (SELECT COALESCE(SUM(length(raw)), 0) FROM rejected_reports)",
                [],
                |r| r.get::<i64>(0),
            )?.max(0) as u64)
        };
        let mut used = raw_used(&db)?;
        while used > max_raw {
            // The oldest raw copies of either kind, a batch at a time.
            let oldest: Vec<(String, i64, i64)> = db
                .prepare(
                    "SELECT 'reports', id, received, length(raw) FROM reports WHERE raw IS NOT NULL UNION ALL SELECT 'rejected_reports', id, received, length(raw) FROM rejected_reports WHERE raw IS NOT NULL ORDER BY 3, 2 LIMIT 64",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            if oldest.is_empty() {
                break;
            }
            for (table, id, len) in oldest {
                if used <= max_raw {
                    break;
                }
                // `table` is one of the two literals above.
                db.execute(&format!("UPDATE {table} SET raw = NULL WHERE id = ?1"), params![id])?;
                used = used.saturating_sub(len.max(0) as u64);
            }
        }
        db.execute(
            "DELETE FROM rejected_reports WHERE id IN (SELECT id FROM rejected_reports ORDER BY received DESC, id DESC LIMIT -1 OFFSET ?1)",
            params![max_apart],
        )?;
        db.execute(
            "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE held IS NOT NULL ORDER BY received DESC, id DESC LIMIT -1 OFFSET ?1)",
            params![max_apart],
        )?;
        Ok(())
    }
}

impl Store {
    /// Whether an alert (or a channel's copy of it) went out already.
    pub fn alert_sent(&self, key: &str) -> Result<bool, StoreError> {
        let n: i64 = self.db().query_row("SELECT count(*) FROM report_alerts WHERE key = ?1", params![key], |r| r.get(0))?;
        Ok(n > 0)
    }

    pub fn record_alert(&self, key: &str, kind: &str, domain: &str, summary: &str) -> Result<(), StoreError> {
        self.db().execute(
            "INSERT INTO report_alerts (key, kind, domain, summary, sent) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![key, kind, domain, summary, now()],
        )?;
        Ok(())
    }

    /// Alerts sent since `since`, each once whatever its channels (the
    /// digest counts them).
    pub fn alerts_since(&self, since: i64) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT kind, domain, summary, MAX(sent) FROM report_alerts WHERE sent >= ?1 AND kind != 'digest' GROUP BY substr(key, instr(key, ':') + 1), kind, domain, summary ORDER BY 4 DESC LIMIT 1000")?;
        let rows = st.query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The end of the newest report in view about a domain.
    pub fn newest_report_end(&self, domain: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.db().query_row(
            "SELECT MAX(\"end\") FROM reports WHERE policy_domain = ?1 AND held IS NULL AND kind = 'aggregate'",
            params![domain],
            |r| r.get(0),
        )?)
    }
}

/// The most of an input kept as its raw copy.
const RAW_KEPT: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Report {
        let xml = format!("<feedback><report_metadata><org_name>r</org_name><report_id>{id}</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata><policy_published><domain>example.com</domain></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count></row><identifiers><header_from>example.com</header_from></identifiers></record></feedback>");
        Report::Aggregate(netjes_reports::aggregate::parse(xml.as_bytes(), &Default::default()).unwrap())
    }

    #[test]
    fn a_flood_drops_the_oldest_raw_copies_and_keeps_the_rows() {
        for b in crate::store::testing::each(&"11".repeat(32)) {
        let s = &b.store;
        
        for i in 0..10 {
            let how = Provenance { trusted: true, held: None, source: "t".into(), raw: Some(vec![b'x'; 100_000]) };
            s.add_report(&report(&format!("r{i}")), &how).unwrap();
            s.add_rejected("t", "not a report", &[b'y'; 50_000]).unwrap();
        }
        for i in 0..5 {
            let how = Provenance { trusted: false, held: Some("unverified".into()), source: "t".into(), raw: None };
            s.add_report(&report(&format!("h{i}")), &how).unwrap();
        }
        s.trim_reports(400_000, 3).unwrap();
        let db = s.db();
        let raw: i64 = db.query_row("SELECT (SELECT COALESCE(SUM(length(raw)),0) FROM reports) + (SELECT COALESCE(SUM(length(raw)),0) FROM rejected_reports)", [], |r| r.get(0)).unwrap();
        assert!(raw <= 400_000 && raw > 250_000, "{raw}");
        // The newest raw copy is kept, the oldest dropped.
        let kept: Vec<String> = db.prepare("SELECT report_id FROM reports WHERE raw IS NOT NULL ORDER BY id").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        assert_eq!(kept.last().map(String::as_str), Some("r9"), "{kept:?}");
        assert!(!kept.contains(&"r0".to_string()));
        // Every parsed report and its rows stay; held ones beyond three go.
        let n: i64 = db.query_row("SELECT count(*) FROM reports WHERE held IS NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 10);
        let held: i64 = db.query_row("SELECT count(*) FROM reports WHERE held IS NOT NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(held, 3);
        let rejected: i64 = db.query_row("SELECT count(*) FROM rejected_reports", [], |r| r.get(0)).unwrap();
        assert_eq!(rejected, 3);
        drop(db);
        assert_eq!(s.report_rows("example.com", 0).unwrap().len(), 10);
        }
    }

    /// Every statement of the report store, once, on each engine: what
    /// the flood test above does not reach.
    #[test]
    fn every_report_statement_runs_on_each_engine() {
        for b in crate::store::testing::each(&"11".repeat(32)) {
            let s = &b.store;
            let trusted = Provenance { trusted: true, held: None, source: "imap".into(), raw: Some(b"<feedback/>".to_vec()) };
            assert!(matches!(s.add_report(&report("a"), &trusted).unwrap(), Added::Stored));
            assert!(matches!(s.add_report(&report("a"), &trusted).unwrap(), Added::Duplicate), "{}", b.name);
            let held = Provenance { trusted: false, held: Some("unverified".into()), source: "smtp".into(), raw: None };
            s.add_report(&report("b"), &held).unwrap();
            s.add_rejected("smtp", "not XML", b"junk").unwrap();
            let listed = s.reports_for("example.com").unwrap();
            assert_eq!(listed.len(), 2, "{}", b.name);
            assert_eq!((listed[0].end, listed[0].trusted), (Some(1_700_086_399), listed[0].held.is_none()));
            let apart = s.held_reports().unwrap();
            assert_eq!(apart.len(), 1);
            let (row, parsed) = s.report(apart[0].id).unwrap().unwrap();
            assert_eq!((row.report_id.as_str(), parsed.is_object()), ("b", true), "{}", b.name);
            assert!(s.report(9_999).unwrap().is_none());
            assert_eq!(s.report_domains().unwrap(), vec![("example.com".to_string(), 1, 1_700_086_399)], "{}", b.name);
            assert!(s.release_report(apart[0].id).unwrap());
            assert_eq!(s.report_domains().unwrap()[0].1, 2);
            assert_eq!(s.newest_report_end("example.com").unwrap(), Some(1_700_086_399));
            assert_eq!(s.newest_report_end("other.example").unwrap(), None);
            let rejected = s.rejected_reports().unwrap();
            assert_eq!((rejected.len(), rejected[0].reason.as_str(), rejected[0].raw_kept), (1, "not XML", true), "{}", b.name);
            assert_eq!((s.count_report_sender("r@x.example").unwrap(), s.count_report_sender("r@x.example").unwrap()), (1, 2));
            let id = s.queue_report_mail(b"raw mail", "{}", 1000).unwrap().unwrap();
            assert_eq!(s.queue_report_mail(&[0; 1000], "{}", 1000).unwrap(), None, "over the cap");
            assert_eq!(s.queued_report_mails().unwrap(), vec![id]);
            assert_eq!(s.report_mail(id).unwrap(), Some(("{}".to_string(), b"raw mail".to_vec())));
            s.report_mail_done(id).unwrap();
            assert!(s.report_mail(id).unwrap().is_none() && s.queued_report_mails().unwrap().is_empty());
            assert!(!s.alert_sent("mail:x:1").unwrap());
            s.record_alert("mail:x:1", "new-failing-source", "example.com", "203.0.113.7").unwrap();
            s.record_alert("webhook:x:1", "new-failing-source", "example.com", "203.0.113.7").unwrap();
            s.record_alert("mail:x:1", "new-failing-source", "example.com", "again").unwrap();
            assert!(s.alert_sent("mail:x:1").unwrap());
            let since = s.alerts_since(0).unwrap();
            assert_eq!(since.len(), 1, "one alert whatever its channels, on {}: {since:?}", b.name);
            assert_eq!(since[0].2, "203.0.113.7");
        }
    }
}
