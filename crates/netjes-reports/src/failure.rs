//! DMARC failure reports: RFC 6591 ARF (a multipart/report with a
//! message/feedback-report part), and the plain-text reports some senders
//! mail instead (Exim's "Sender Domain:", "Sender IP Address:" lines).
//! Only the headers of the failed message are kept: bodies hold other
//! people's mail.

use crate::ReportError;
use mail_parser::MimeHeaders;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    /// The report mail's From.
    pub reporter: String,
    /// The report mail's Message-ID, for duplicates.
    pub message_id: String,
    pub feedback_type: String,
    pub reported_domain: Option<String>,
    pub source_ip: Option<String>,
    pub original_mail_from: Option<String>,
    pub arrival_date: Option<String>,
    pub authentication_results: Option<String>,
    pub delivery_result: Option<String>,
    /// "arf" or "plain-text".
    pub format: &'static str,
    /// The failed message's header block, when the report carries it.
    pub headers: Option<String>,
}

/// `Name: value` lines, continuation lines joined.
fn fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(l) = out.last_mut() {
                l.1.push(' ');
                l.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

fn field(f: &[(String, String)], name: &str) -> Option<String> {
    f.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// The header block of a message held as text: up to its blank line.
fn header_block(text: &str) -> String {
    let end = text.find("\r\n\r\n").or_else(|| text.find("\n\n")).unwrap_or(text.len());
    text[..end].to_string()
}

/// A failure report in a parsed mail, or None when the mail is none.
pub fn from_mail(m: &mail_parser::Message<'_>) -> Option<Result<FailureReport, ReportError>> {
    let reporter = m
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_string();
    let message_id = m.message_id().unwrap_or("").to_string();
    let fb = m.parts.iter().find(|p| {
        p.content_type()
            .is_some_and(|c| c.ctype().eq_ignore_ascii_case("message") && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("feedback-report")))
    });
    if let Some(part) = fb {
        let text = String::from_utf8_lossy(part.contents()).into_owned();
        let f = fields(&text);
        let headers = m
            .parts
            .iter()
            .find(|p| {
                p.content_type().is_some_and(|c| {
                    let sub = c.subtype().unwrap_or("").to_ascii_lowercase();
                    sub == "rfc822-headers" || (c.ctype().eq_ignore_ascii_case("message") && sub == "rfc822")
                })
            })
            .map(|p| header_block(&String::from_utf8_lossy(p.contents())));
        return Some(Ok(FailureReport {
            reporter,
            message_id,
            feedback_type: field(&f, "feedback-type").unwrap_or_else(|| "auth-failure".into()).to_ascii_lowercase(),
            reported_domain: field(&f, "reported-domain").map(|d| d.to_ascii_lowercase()),
            source_ip: field(&f, "source-ip"),
            original_mail_from: field(&f, "original-mail-from"),
            arrival_date: field(&f, "arrival-date"),
            authentication_results: field(&f, "authentication-results"),
            delivery_result: field(&f, "delivery-result"),
            format: "arf",
            headers,
        }));
    }
    // Plain text: "Sender Domain:" and "Sender IP Address:" lines, then a
    // copy of the headers.
    let body = m.body_text(0)?.into_owned();
    if !body.contains("Sender Domain:") {
        return None;
    }
    // The lines are indented: each is read on its own, not as folding.
    let f: Vec<(String, String)> = body
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let headers = body
        .split_once("copy of the headers")
        .map(|(_, rest)| header_block(rest.split_once('\n').map(|x| x.1).unwrap_or(rest).trim_start()));
    Some(Ok(FailureReport {
        reporter,
        message_id,
        feedback_type: "auth-failure".into(),
        reported_domain: field(&f, "sender domain").map(|d| d.to_ascii_lowercase()),
        source_ip: field(&f, "sender ip address"),
        original_mail_from: None,
        arrival_date: field(&f, "received date"),
        authentication_results: None,
        delivery_result: field(&f, "dmarc results"),
        format: "plain-text",
        headers,
    }))
}
