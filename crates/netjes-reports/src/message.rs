//! Reports that arrive by mail: the attachments of a report mail (an XML,
//! a .gz or a .zip, whatever its content type says), a TLS report
//! (application/tlsrpt+json or +gzip), or a failure report.

use crate::{failure, unpack, Limits, Report, ReportError};
use mail_parser::{MessageParser, MimeHeaders};

/// Whether bytes look like a mail rather than a bare report file.
pub fn looks_like_mail(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    !text.trim_start().starts_with('<')
        && !text.trim_start().starts_with('{')
        && (text.contains("\ncontent-type:") || text.starts_with("content-type:") || text.starts_with("return-path:") || text.starts_with("received:"))
        && (text.contains("\nfrom:") || text.starts_with("from:"))
}

/// A part that carries a report file: by its name or type, or by what its
/// first octets are (gzip, zip, XML, JSON), since reporters label them
/// every which way.
fn is_report_part(name: &str, ctype: &str, bytes: &[u8]) -> bool {
    let n = name.to_ascii_lowercase();
    let t = ctype.to_ascii_lowercase();
    n.ends_with(".xml") || n.ends_with(".gz") || n.ends_with(".zip") || n.ends_with(".json")
        || t.contains("zip") || t.contains("gzip") || t.contains("xml") || t.contains("tlsrpt")
        || bytes.starts_with(&[0x1f, 0x8b]) || bytes.starts_with(b"PK\x03\x04")
}

/// Every report in a mail; a mail with none is one error.
pub fn reports_in(bytes: &[u8], limits: &Limits) -> Vec<Result<Report, ReportError>> {
    let Some(m) = MessageParser::default().parse(bytes) else {
        return vec![Err(ReportError::NotAReport("the mail cannot be read".into()))];
    };
    if let Some(f) = failure::from_mail(&m) {
        return vec![f.map(Report::Failure)];
    }
    let mut out = Vec::new();
    for (i, part) in m.parts.iter().enumerate() {
        // The root of a multipart is its container, not a file.
        if i == 0 && m.parts.len() > 1 {
            continue;
        }
        let name = part.attachment_name().unwrap_or("").to_string();
        let ctype = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        if ctype.starts_with("multipart/") || ctype.starts_with("text/plain") && name.is_empty() || ctype.starts_with("text/html") {
            continue;
        }
        let data = part.contents();
        if !is_report_part(&name, &ctype, data) {
            continue;
        }
        match unpack::documents(&name, data, limits) {
            Ok(docs) => out.extend(docs.iter().map(|d| crate::document(d, limits))),
            Err(e) => out.push(Err(e)),
        }
    }
    if out.is_empty() {
        out.push(Err(ReportError::NotAReport("the mail carries no report file".into())));
    }
    out
}
