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
pub mod failure;
pub mod message;
pub mod sources;
pub mod tls;
pub mod unpack;

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
