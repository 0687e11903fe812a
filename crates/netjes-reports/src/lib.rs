//! DMARC aggregate reports (RFC 7489 and RFC 9990), DMARC failure reports
//! (RFC 6591 ARF, and the plain-text ones some senders mail instead) and
//! TLS reports (RFC 8460), read the way real reporters write them and
//! the way an attacker might.
//!
//! Free of IO: bytes in, reports or a reason out. One module per kind, one
//! for unpacking (gzip and zip, with caps counted on the output stream,
//! never on a header's claim), one for finding reports in a mail.
//!
//! Anyone can mail a report address, so every input is bounded: the
//! decompressed size (20 MiB by default), the number of files in a zip
//! (one), the XML (no DOCTYPE, no entities but the five predefined, a
//! depth limit), the number of records, and the time one report may take.

pub mod aggregate;
pub mod alerts;
pub mod failure;
pub mod message;
pub mod sources;
pub mod tls;
pub mod unpack;
pub mod write;

use serde::Serialize;
use std::time::Duration;

/// The bounds of reading one input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed octets of one report, counted as they come out.
    pub max_report_bytes: u64,
    /// Files taken from one zip.
    pub max_zip_entries: usize,
    /// Records (rows) of one aggregate report.
    pub max_records: usize,
    /// Time to read one report.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_report_bytes: 20 * 1024 * 1024,
            max_zip_entries: 1,
            max_records: 100_000,
            time_budget: Duration::from_secs(10),
        }
    }
}

/// Why an input is not a report. Every rejected input is kept with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum ReportError {
    #[error("it is over the limit of {0} octets once decompressed")]
    TooLarge(u64),
    #[error("the archive holds {0} files; at most {1} are read")]
    TooManyFiles(usize, usize),
    #[error("the archive cannot be read: {0}")]
    Archive(String),
    #[error("the XML declares a DOCTYPE, which reports never need (entity expansion is refused)")]
    Doctype,
    #[error("the XML is not well formed: {0}")]
    Xml(String),
    #[error("the JSON cannot be read: {0}")]
    Json(String),
    #[error("a required field is missing: {0}")]
    Missing(&'static str),
    #[error("a field has a value that cannot be read: {0}")]
    Invalid(String),
    #[error("it has over {0} records")]
    TooManyRecords(usize),
    #[error("reading it took longer than its time budget")]
    TooSlow,
    #[error("it is not a report: {0}")]
    NotAReport(String),
}

/// A report of any kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Report {
    Aggregate(aggregate::AggregateReport),
    Failure(failure::FailureReport),
    Tls(tls::TlsReport),
}

impl Report {
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Aggregate(_) => "aggregate",
            Report::Failure(_) => "failure",
            Report::Tls(_) => "tls",
        }
    }

    /// Who sent it, and its id: a report stored twice is a duplicate.
    pub fn key(&self) -> (String, String) {
        match self {
            Report::Aggregate(a) => (a.org_name.clone(), a.report_id.clone()),
            Report::Tls(t) => (t.organization.clone(), t.report_id.clone()),
            Report::Failure(f) => (f.reporter.clone(), f.message_id.clone()),
        }
    }
}

impl Report {
    /// When the period it covers ends (seconds since the epoch), when it
    /// says so in a form that can be read; failure reports have none.
    pub fn end_time(&self) -> Option<i64> {
        match self {
            Report::Aggregate(a) => Some(a.end),
            Report::Tls(t) => rfc3339_seconds(&t.end),
            Report::Failure(_) => None,
        }
    }

    /// The domain the reporter gives as its own: the contact address of an
    /// aggregate or TLS report, the From of a failure report.
    pub fn contact_domain(&self) -> Option<String> {
        let addr = match self {
            Report::Aggregate(a) => a.email.clone(),
            Report::Tls(t) => t.contact.clone(),
            Report::Failure(f) => Some(f.reporter.clone()),
        }?;
        // "mailto:" forms and display names appear in the wild.
        let addr = addr.trim().trim_start_matches("mailto:");
        let addr = addr.rsplit('<').next().unwrap_or(addr).trim_end_matches('>');
        let (_, domain) = addr.rsplit_once('@')?;
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        (!d.is_empty()).then_some(d)
    }
}

/// Days since the Unix epoch of a proleptic Gregorian date (Howard
/// Hinnant's days_from_civil); `None` for a month or day out of range.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Seconds since the epoch of an RFC 3339 date-time (RFC 8460 §4.4 uses
/// them), its offset applied; fractions of a second are dropped.
pub fn rfc3339_seconds(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| s.get(r).filter(|t| t.bytes().all(|b| b.is_ascii_digit())).and_then(|t| t.parse::<i64>().ok());
    let day = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?)?;
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?;
    let rest = rest.strip_prefix('.').map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit())).unwrap_or(rest);
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let v = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(day * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Reads a file or a mail: what `report import` and the inbox take. The
/// name (a file name, or a MIME name) hints at the form; the content
/// decides. One input may hold several reports (a mail with two
/// attachments), each read on its own.
pub fn read(name: &str, bytes: &[u8], limits: &Limits) -> Vec<Result<Report, ReportError>> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".eml") || message::looks_like_mail(bytes) {
        return message::reports_in(bytes, limits);
    }
    match unpack::documents(name, bytes, limits) {
        Ok(docs) => docs.iter().map(|d| document(d, limits)).collect(),
        Err(e) => vec![Err(e)],
    }
}

/// One unpacked document: XML (aggregate) or JSON (TLS).
pub fn document(d: &unpack::Document, limits: &Limits) -> Result<Report, ReportError> {
    let start = d.bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    match d.bytes.get(start) {
        Some(b'{') => tls::parse(&d.bytes).map(Report::Tls),
        Some(b'<') | Some(0xEF) => aggregate::parse(&d.bytes, limits).map(Report::Aggregate),
        None => Err(ReportError::NotAReport("it is empty".into())),
        _ => Err(ReportError::NotAReport(format!(
            "{} is neither XML nor JSON",
            d.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2026, 11, 30), Some(20_787));
        assert_eq!(days_from_civil(2026, 13, 1), None);
        assert_eq!(rfc3339_seconds("2016-04-01T00:00:00Z"), Some(1_459_468_800));
        assert_eq!(rfc3339_seconds("2016-04-01T02:00:00.123+02:00"), Some(1_459_468_800));
        assert_eq!(rfc3339_seconds("2016-04-01"), None);
        assert_eq!(rfc3339_seconds("2016-04-01T00:00:00"), None);
    }
}
