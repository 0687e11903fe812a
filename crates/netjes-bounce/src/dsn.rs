//! Delivery status notifications (RFC 3464): a multipart/report whose
//! message/delivery-status part holds one group of per-message fields and
//! one group per recipient, each group in RFC 5322 header syntax (folding,
//! comments), groups split by empty lines. RFC 6533's
//! message/global-delivery-status is the same in UTF-8.
//!
//! What real MTAs send that the grammar does not foresee, and what is made
//! of it here:
//! - no empty line between the per-message group and the first recipient
//!   (old Exchange): a first group that holds a recipient's fields is read
//!   as both;
//! - comments in Status and Action (`5.1.1 (bad destination mailbox)`,
//!   Sendmail): dropped, as RFC 3464 §2.1.1 allows them;
//! - `<` `>` around the address in Final-Recipient (qmail, Lotus): dropped;
//! - the status part nested in a multipart/mixed rather than at the top.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Serialize;

/// The largest status part read, and the most recipients taken from it:
/// a notification over either is refused whole, not read in part.
pub const MAX_STATUS_OCTETS: usize = 256 * 1024;
pub const MAX_RECIPIENTS: usize = 1000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsnError {
    #[error("not a delivery status notification (no message/delivery-status part)")]
    NotADsn,
    #[error("the delivery status is over {MAX_STATUS_OCTETS} octets")]
    TooLarge,
    #[error("more than {MAX_RECIPIENTS} recipients")]
    TooManyRecipients,
    #[error("the delivery status names no recipient with an action and a status")]
    NoRecipient,
}

/// RFC 3464 §2.3.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

/// An enhanced status code (RFC 3463): class.subject.detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        let mut it = s.trim().split('.');
        let num = |x: Option<&str>| x.filter(|d| (1..=3).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())).and_then(|d| d.parse::<u16>().ok());
        let class = num(it.next())?;
        let (subject, detail) = (num(it.next())?, num(it.next())?);
        (matches!(class, 2 | 4 | 5) && it.next().is_none()).then_some(Status { class: class as u8, subject, detail })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One recipient's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// Final-Recipient's address, without its type.
    pub final_recipient: String,
    pub original_recipient: Option<String>,
    pub action: Action,
    pub status: Status,
    /// Remote-MTA, without its type.
    pub remote_mta: Option<String>,
    /// Diagnostic-Code: its type (smtp, x-unix) and the remote reply.
    pub diagnostic_type: Option<String>,
    pub diagnostic: Option<String>,
}

/// A notification, read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dsn {
    /// Reporting-MTA, without its type.
    pub reporting_mta: Option<String>,
    pub arrival_date: Option<String>,
    pub recipients: Vec<Recipient>,
    /// The returned message's Message-ID (from a message/rfc822 or
    /// text/rfc822-headers part), without angle brackets.
    pub original_message_id: Option<String>,
}

/// One group's fields, unfolded, names in lower case.
fn fields(group: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in group.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        // RFC 5322 §3.6.8: ftext is printable US-ASCII but the colon.
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
            continue;
        }
        out.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    out
}

fn get<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The text without RFC 5322 comments (nested, with quoted pairs).
fn uncomment(s: &str) -> String {
    let (mut out, mut depth, mut escaped) = (String::new(), 0u32, false);
    for c in s.chars() {
        if depth > 0 {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '(') => depth += 1,
                (false, ')') => depth -= 1,
                _ => {}
            }
        } else if c == '(' {
            depth = 1;
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// `type; value` (address-type, mta-name-type, diagnostic-type), split.
fn typed(v: &str) -> (Option<String>, String) {
    match v.split_once(';') {
        Some((t, rest)) => (Some(t.trim().to_ascii_lowercase()), rest.trim().to_string()),
        None => (None, v.trim().to_string()),
    }
}

fn address(v: &str) -> String {
    uncomment(&typed(v).1).trim_matches(['<', '>', ' ']).to_string()
}

fn action(v: &str) -> Option<Action> {
    Some(match uncomment(v).to_ascii_lowercase().as_str() {
        "failed" => Action::Failed,
        "delayed" => Action::Delayed,
        "delivered" => Action::Delivered,
        "relayed" => Action::Relayed,
        "expanded" => Action::Expanded,
        _ => return None,
    })
}

fn recipient(f: &[(String, String)]) -> Option<Recipient> {
    let final_recipient = address(get(f, "final-recipient")?);
    let action = action(get(f, "action")?)?;
    // The status may trail its text ("5.1.1 user unknown", Exim's older
    // form): the first word is the code.
    let status = Status::parse(uncomment(get(f, "status")?).split_whitespace().next()?)?;
    let diag = get(f, "diagnostic-code").map(typed);
    Some(Recipient {
        final_recipient,
        original_recipient: get(f, "original-recipient").map(address),
        action,
        status,
        remote_mta: get(f, "remote-mta").map(|v| typed(v).1),
        diagnostic_type: diag.as_ref().and_then(|d| d.0.clone()),
        diagnostic: diag.map(|d| d.1).filter(|d| !d.is_empty()),
    })
}

fn is(part: &mail_parser::MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|c| c.ctype().eq_ignore_ascii_case(ctype) && c.subtype().is_some_and(|s| subtypes.iter().any(|x| s.eq_ignore_ascii_case(x))))
}

/// The returned message's Message-ID.
fn returned_message_id(m: &mail_parser::Message<'_>) -> Option<String> {
    for part in &m.parts {
        if let PartType::Message(inner) = &part.body {
            if is(part, "message", &["rfc822", "global"]) {
                return inner.message_id().map(String::from);
            }
        }
        if is(part, "text", &["rfc822-headers"]) || is(part, "message", &["global-headers"]) {
            let text = part.contents();
            return MessageParser::new().parse_headers(text).and_then(|h| h.message_id().map(String::from));
        }
    }
    None
}

/// The message without what saving it to a file put before it: blank
/// lines, and mbox's `From ` separator line.
pub fn trim_saved(mut raw: &[u8]) -> &[u8] {
    loop {
        let end = raw.iter().position(|b| *b == b'\n').map_or(raw.len(), |i| i + 1);
        let line = &raw[..end];
        if !line.is_empty() && (line.iter().all(|b| b.is_ascii_whitespace()) || line.starts_with(b"From ")) {
            raw = &raw[end..];
        } else {
            return raw;
        }
    }
}

/// Reads a notification from a whole message (as saved: see [`trim_saved`]).
pub fn parse(raw: &[u8]) -> Result<Dsn, DsnError> {
    let m = MessageParser::new().parse(trim_saved(raw)).ok_or(DsnError::NotADsn)?;
    from_message(&m)
}

/// Reads a notification from a parsed message.
pub fn from_message(m: &mail_parser::Message<'_>) -> Result<Dsn, DsnError> {
    let part = m
        .parts
        .iter()
        .find(|p| is(p, "message", &["delivery-status", "global-delivery-status"]))
        .ok_or(DsnError::NotADsn)?;
    let body = part.contents();
    if body.len() > MAX_STATUS_OCTETS {
        return Err(DsnError::TooLarge);
    }
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let groups: Vec<Vec<(String, String)>> = text.split("\n\n").map(fields).filter(|g| !g.is_empty()).collect();
    if groups.len() > MAX_RECIPIENTS + 1 {
        return Err(DsnError::TooManyRecipients);
    }
    let per_message = groups.first().cloned().unwrap_or_default();
    // A first group with a recipient's fields is read as one too.
    let skip = usize::from(get(&per_message, "final-recipient").is_none());
    let recipients: Vec<Recipient> = groups.iter().skip(skip).filter_map(|g| recipient(g)).collect();
    if recipients.is_empty() {
        return Err(DsnError::NoRecipient);
    }
    Ok(Dsn {
        reporting_mta: get(&per_message, "reporting-mta").map(|v| typed(v).1),
        arrival_date: get(&per_message, "arrival-date").map(String::from),
        recipients,
        original_message_id: returned_message_id(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &str = "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
To: noreply-dmarc@mx.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
X-Postfix-Queue-ID: 4ABC\r\n\
Arrival-Date: Mon, 30 Nov 2026 00:20:01 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; dmarc@gone.example\r\n\
Original-Recipient: rfc822;dmarc@gone.example\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.gone.example\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <dmarc@gone.example>: Recipient address\r\n\
\trejected: User unknown\r\n\
\r\n\
Final-Recipient: rfc822; slow@later.example\r\n\
Action: delayed (still trying)\r\n\
Status: 4.4.1 (no answer from host)\r\n\
\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: noreply-dmarc@mx.example.com\r\n\
Message-ID: <r1.dmarc.gone.example@mx.example.com>\r\n\
Subject: Report Domain: x\r\n\
--B--\r\n";

    #[test]
    fn a_postfix_bounce_is_read_field_by_field() {
        let d = parse(POSTFIX.as_bytes()).unwrap();
        assert_eq!(d.reporting_mta.as_deref(), Some("mx.example.com"));
        assert_eq!(d.original_message_id.as_deref(), Some("r1.dmarc.gone.example@mx.example.com"));
        assert_eq!(d.recipients.len(), 2);
        let r = &d.recipients[0];
        assert_eq!((r.final_recipient.as_str(), &r.action, r.status.to_string()), ("dmarc@gone.example", &Action::Failed, "5.1.1".into()));
        assert_eq!(r.diagnostic.as_deref(), Some("550 5.1.1 <dmarc@gone.example>: Recipient address rejected: User unknown"), "unfolded");
        assert_eq!((r.diagnostic_type.as_deref(), r.remote_mta.as_deref()), (Some("smtp"), Some("mx.gone.example")));
        let later = &d.recipients[1];
        assert_eq!((&later.action, later.status), (&Action::Delayed, Status { class: 4, subject: 4, detail: 1 }), "comments dropped");
    }

    #[test]
    fn what_is_not_a_dsn_or_is_too_much_is_refused_whole() {
        assert_eq!(parse(b"From: a@b.example\r\nSubject: hi\r\n\r\nhello\r\n"), Err(DsnError::NotADsn));
        let no_status = POSTFIX.replace("Status: 5.1.1\r\n", "Status: 9.1.1\r\n").replace("Status: 4.4.1 (no answer from host)\r\n", "");
        assert_eq!(parse(no_status.as_bytes()), Err(DsnError::NoRecipient));
        let many = "Final-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n".repeat(MAX_RECIPIENTS + 1);
        let huge = POSTFIX.replace("Final-Recipient: rfc822; slow@later.example", &format!("{many}Final-Recipient: rfc822; slow@later.example"));
        assert_eq!(parse(huge.as_bytes()), Err(DsnError::TooManyRecipients));
        let big = POSTFIX.replace("X-Postfix-Queue-ID: 4ABC\r\n", &format!("X-Filler: {}\r\n", "x".repeat(MAX_STATUS_OCTETS)));
        assert_eq!(parse(big.as_bytes()), Err(DsnError::TooLarge));
    }

    #[test]
    fn odd_forms_seen_in_the_field() {
        // No blank line after the per-message group; brackets around the
        // address; a status with its text; a base64 status part.
        let status = "Reporting-MTA: dns;exch.example\r\nFinal-Recipient: RFC822; <Bob@Example.com> (the boss)\r\nAction: FAILED\r\nStatus: 5.2.2 mailbox full\r\n";
        let b64 = "UmVwb3J0aW5nLU1UQTogZG5zO2V4Y2guZXhhbXBsZQ0KRmluYWwtUmVjaXBpZW50OiBSRkM4MjI7IDxCb2JARXhhbXBsZS5jb20+ICh0aGUgYm9zcykNCkFjdGlvbjogRkFJTEVEDQpTdGF0dXM6IDUuMi4yIG1haWxib3ggZnVsbA0K";
        for (enc, body) in [("7bit", status), ("base64", b64)] {
            let m = format!("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=i\r\n\r\n--i\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: {enc}\r\n\r\n{body}\r\n--i--\r\n--o--\r\n");
            let d = parse(m.as_bytes()).unwrap();
            assert_eq!(d.reporting_mta.as_deref(), Some("exch.example"));
            let r = &d.recipients[0];
            assert_eq!((r.final_recipient.as_str(), &r.action, r.status.to_string()), ("Bob@Example.com", &Action::Failed, "5.2.2".into()), "{enc}");
        }
    }

    #[test]
    fn status_codes_follow_rfc_3463() {
        assert_eq!(Status::parse("5.1.1"), Some(Status { class: 5, subject: 1, detail: 1 }));
        assert_eq!(Status::parse(" 4.7.100 "), Some(Status { class: 4, subject: 7, detail: 100 }));
        for bad in ["3.1.1", "5.1", "5.1.1.1", "5.1.1000", "5..1", "x.1.1", "", "5.1.-1"] {
            assert_eq!(Status::parse(bad), None, "{bad}");
        }
    }
}
