//! What a returned message says about a recipient: a hard bounce (the
//! address or its domain does not exist: stop sending), a soft one
//! (mailbox full, greylisted, delayed: it may work later), a block (the
//! receiver refused the mail for policy or reputation: the address is
//! fine, the sending is not), or a complaint (an ARF feedback report, RFC
//! 5965, or Hotmail's older JMRP). Read in this order:
//!
//! 1. an ARF report (message/feedback-report): a complaint, unless it is a
//!    DMARC failure report (auth-failure) or says not-spam;
//! 2. a read receipt (RFC 8098) or an auto-reply (RFC 3834): no bounce;
//! 3. an RFC 3464 notification: each failed or delayed recipient by its
//!    status code, then by the remote reply's words;
//! 4. a plain-text bounce (qmail, Exim, old Exchange and Yahoo), known by
//!    its sender, subject or X-Failed-Recipients: the first status code
//!    and reply in its text.
//!
//! Only evidence makes a bounce hard, because a hard bounce suppresses the
//! address: a plain-text failure whose reason cannot be read is soft.

use crate::dsn::{self, Action, Status};
use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Hard,
    Soft,
    Block,
    Complaint,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Hard => "hard",
            Class::Soft => "soft",
            Class::Block => "block",
            Class::Complaint => "complaint",
        }
    }
}

/// One recipient's bounce or complaint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounce {
    pub class: Class,
    pub recipient: Option<String>,
    /// The enhanced status code (RFC 3463), when there is one.
    pub status: Option<String>,
    /// The remote server's SMTP reply code and text.
    pub remote_code: Option<u16>,
    pub reply: Option<String>,
    pub reporting_mta: Option<String>,
    /// "dsn", "arf", "jmrp" or "text": how it was read.
    pub source: &'static str,
    /// Why this class.
    pub reason: String,
    /// The returned message's Message-ID, to find what was sent.
    pub original_message_id: Option<String>,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reading {
    Bounces { bounces: Vec<Bounce> },
    NotABounce { why: String },
}

/// Words in a remote reply, by what they show. Blocks are looked for
/// first: "550 5.7.1 ... blocked using zen.spamhaus.org; mailbox
/// unavailable" is about the sender, not the mailbox.
const BLOCK_WORDS: &[&str] = &[
    "spamhaus", "blocklist", "blacklist", "block list", "black list", "dnsbl", "rbl", "listed at", "listed in", "reputation", "spam", "junk", "policy",
    "dmarc", "spf", "dkim", "unauthenticated", "not authorized", "not permitted", "banned", "blocked", "denied", "content rejected",
    "virus", "too large", "size limit", "message size", "exceeds the maximum", "rate limit", "too many",
];
const HARD_WORDS: &[&str] = &[
    "user unknown", "unknown user", "no such user", "no such mailbox", "no such recipient", "unknown recipient", "recipient unknown", "mailbox not found",
    "mailbox unavailable", "mailbox does not exist", "does not exist", "doesn't exist", "invalid recipient", "invalid mailbox", "invalid address",
    "recipient not found", "recipientnotfound", "not found in", "no mailbox here", "address rejected", "unrouteable", "unroutable", "host not found",
    "domain not found", "no such domain", "name or service not known", "not a valid", "account has been disabled", "account is disabled",
    "account disabled", "inactive", "no longer", "bad destination", "addressee unknown", "not listed in", "unknown address", "nonexistent",
    "non-existent", "user doesn't have a", "domain name not found",
];
const SOFT_WORDS: &[&str] = &[
    "quota", "mailbox full", "mailbox is full", "full mailbox", "enough space", "insufficient storage", "storage", "try again", "temporar",
    "greylist", "graylist", "deferred", "timed out", "timeout", "connection refused", "connection dropped", "was dropped", "delay", "retry",
];

fn words(text: &str, list: &[&str]) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    list.iter().find(|w| lower.contains(**w)).map(|w| format!("the reply says \"{w}\""))
}

/// Codes that say exactly what happened, whatever the words around them:
/// the address or domain does not exist (5.4.1 is Exchange Online's
/// "Recipient address rejected: Access denied" for an unknown recipient),
/// the mailbox is disabled or full.
fn strong(s: Status) -> Option<(Class, &'static str)> {
    match (s.subject, s.detail) {
        (1, 1 | 2 | 3 | 6 | 10) | (2, 1) | (4, 1 | 4) => Some((Class::Hard, "the address or its domain does not exist")),
        (2, 2) => Some((Class::Soft, "the mailbox is full")),
        _ => None,
    }
}

/// Codes that say less than the words next to them (MTAs put 5.7.1 on an
/// unknown user and 5.2.3 on a full mailbox): used when the words say
/// nothing.
fn weak(s: Status) -> Option<(Class, &'static str)> {
    match (s.subject, s.detail) {
        (2, 3) | (3, 4) => Some((Class::Block, "the message is too large for the receiver")),
        (1, 7 | 8) => Some((Class::Block, "the receiver refuses the sender's address")),
        (6, _) | (7, _) => Some((Class::Block, "refused for policy or reputation")),
        _ => None,
    }
}

/// A status code and the reply's words, as a class and the reason.
pub(crate) fn by_status(status: Option<Status>, action: &Action, text: &str) -> (Class, String) {
    if *action == Action::Delayed {
        return (Class::Soft, "delayed: the sending server is still trying".into());
    }
    if let Some(s) = status {
        if s.class == 4 {
            return (Class::Soft, format!("{s} is temporary"));
        }
        if let Some((class, why)) = strong(s) {
            return (class, format!("{s}: {why}"));
        }
    }
    for (class, list) in [(Class::Block, BLOCK_WORDS), (Class::Hard, HARD_WORDS), (Class::Soft, SOFT_WORDS)] {
        if let Some(w) = words(text, list) {
            return (class, w);
        }
    }
    match status {
        Some(s) => match weak(s) {
            Some((class, why)) => (class, format!("{s}: {why}")),
            None => (Class::Hard, format!("{s}: a permanent failure with no more specific reason")),
        },
        None => (Class::Soft, "a failure whose reason cannot be read: not taken as hard".into()),
    }
}

/// The SMTP reply code at the start of a diagnostic ("550 5.1.1 ...").
fn reply_code(text: &str) -> Option<u16> {
    let code = text.trim_start().get(..3)?;
    let rest = text.trim_start().get(3..4).unwrap_or(" ");
    (code.bytes().all(|b| b.is_ascii_digit()) && matches!(code.as_bytes()[0], b'2' | b'4' | b'5') && (rest == " " || rest == "-")).then(|| code.parse().ok())?
}

fn from_dsn(d: dsn::Dsn) -> Reading {
    let bounces: Vec<Bounce> = d
        .recipients
        .iter()
        .filter(|r| matches!(r.action, Action::Failed | Action::Delayed))
        .map(|r| {
            let text = r.diagnostic.clone().unwrap_or_default();
            // A generic Status (5.0.0) over a remote reply that has its own
            // code ("550 5.4.1 ..."): the reply's is the one that means it.
            let status = match (r.status.subject, r.status.detail) {
                (0, 0) => status_in(&text).filter(|s| s.class == r.status.class).unwrap_or(r.status),
                _ => r.status,
            };
            let (class, reason) = by_status(Some(status), &r.action, &text);
            Bounce {
                class,
                recipient: Some(r.original_recipient.clone().unwrap_or_else(|| r.final_recipient.clone())),
                status: Some(status.to_string()),
                remote_code: reply_code(&text),
                reply: r.diagnostic.clone(),
                reporting_mta: d.reporting_mta.clone(),
                source: "dsn",
                reason,
                original_message_id: d.original_message_id.clone(),
            }
        })
        .collect();
    if bounces.is_empty() {
        return Reading::NotABounce { why: "a delivery notice: every recipient was delivered, relayed or expanded".into() };
    }
    Reading::Bounces { bounces }
}

fn content_is(m: &mail_parser::Message<'_>, ctype: &str, sub: &str) -> bool {
    m.parts.iter().any(|p| p.content_type().is_some_and(|c| c.ctype().eq_ignore_ascii_case(ctype) && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case(sub))))
}

fn report_type(m: &mail_parser::Message<'_>) -> Option<String> {
    m.content_type().filter(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))).and_then(|c| c.attribute("report-type")).map(|r| r.to_ascii_lowercase())
}

/// `Name: value` lines of a text part, names in lower case.
fn fields(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect()
}

fn arf(m: &mail_parser::Message<'_>) -> Option<Reading> {
    let part = m.parts.iter().find(|p| p.content_type().is_some_and(|c| c.ctype().eq_ignore_ascii_case("message") && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("feedback-report"))))?;
    let f = fields(&String::from_utf8_lossy(part.contents()));
    let get = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let kind = get("feedback-type").unwrap_or_else(|| "abuse".into()).to_ascii_lowercase();
    if kind == "auth-failure" || kind == "not-spam" {
        return Some(Reading::NotABounce { why: format!("an ARF report of type {kind}, not a complaint") });
    }
    let original = original_message(m);
    let recipient = get("original-rcpt-to").or_else(|| original.as_ref().and_then(|o| o.to.clone()));
    Some(Reading::Bounces {
        bounces: vec![Bounce {
            class: Class::Complaint,
            recipient: recipient.map(|r| r.trim_matches(['<', '>']).to_string()),
            status: None,
            remote_code: None,
            reply: None,
            reporting_mta: get("reporting-mta").map(|v| v.split_once(';').map_or(v.clone(), |(_, h)| h.trim().to_string())).or_else(|| sender_domain(m)),
            source: "arf",
            reason: format!("an ARF feedback report (Feedback-Type: {kind})"),
            original_message_id: original.and_then(|o| o.message_id),
        }],
    })
}

struct Original {
    to: Option<String>,
    message_id: Option<String>,
}

/// The returned or reported message's To and Message-ID.
fn original_message(m: &mail_parser::Message<'_>) -> Option<Original> {
    for part in &m.parts {
        if let mail_parser::PartType::Message(inner) = &part.body {
            return Some(Original { to: first_address(inner.to()), message_id: inner.message_id().map(String::from) });
        }
        if part.content_type().is_some_and(|c| c.subtype().is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))) {
            let h = MessageParser::new().parse_headers(part.contents())?;
            return Some(Original { to: first_address(h.to()), message_id: h.message_id().map(String::from) });
        }
    }
    None
}

fn first_address(a: Option<&mail_parser::Address<'_>>) -> Option<String> {
    a.and_then(|a| a.first()).and_then(|a| a.address()).map(String::from)
}

fn sender_domain(m: &mail_parser::Message<'_>) -> Option<String> {
    first_address(m.from()).and_then(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
}

/// Hotmail's feedback loop before it spoke ARF (JMRP): the complained-of
/// message attached, its recipient in X-HmXmrOriginalRecipient.
fn jmrp(raw: &[u8], m: &mail_parser::Message<'_>) -> Option<Reading> {
    let text = String::from_utf8_lossy(raw);
    let rcpt = text.lines().find_map(|l| l.strip_prefix("X-HmXmrOriginalRecipient:")).map(|v| v.trim().to_string())?;
    Some(Reading::Bounces {
        bounces: vec![Bounce {
            class: Class::Complaint,
            recipient: Some(rcpt),
            status: None,
            remote_code: None,
            reply: None,
            reporting_mta: sender_domain(m),
            source: "jmrp",
            reason: "a Hotmail JMRP complaint (X-HmXmrOriginalRecipient)".into(),
            original_message_id: original_message(m).and_then(|o| o.message_id),
        }],
    })
}

fn auto_reply(m: &mail_parser::Message<'_>) -> Option<String> {
    let header = |n: &str| m.header_raw(n).map(|v| v.trim().to_ascii_lowercase());
    if header("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied")) || header("X-Autoreply").is_some() || header("X-Autorespond").is_some() {
        return Some("an auto-reply (Auto-Submitted: auto-replied)".into());
    }
    let subject = m.subject().unwrap_or("").to_ascii_lowercase();
    ["out of office", "out of the office", "automatic reply", "auto:", "autoreply", "auto-reply", "vacation", "away from"]
        .iter()
        .find(|w| subject.starts_with(**w) || subject.contains(&format!(" {}", w)))
        .map(|w| format!("an auto-reply (the subject says \"{w}\")"))
}

/// A message in the form of a bounce without a status part.
fn looks_bounced(m: &mail_parser::Message<'_>) -> bool {
    let from = first_address(m.from()).unwrap_or_default().to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or("");
    let subject = m.subject().unwrap_or("").to_ascii_lowercase();
    m.header_raw("X-Failed-Recipients").is_some()
        || matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon" | "mailerdaemon")
        || ["undeliver", "returned mail", "delivery status notification", "failure notice", "delivery failure", "mail delivery failed", "could not be delivered", "nondeliverable", "non-delivery", "delivery has failed", "undelivered"]
            .iter()
            .any(|w| subject.contains(w))
}

/// Where the bounce's own words end and the copy of the failed message
/// begins, in the forms qmail, Gmail, Yahoo and others write.
const COPY_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "original message follows",
    "----- original message -----",
    "lines of your original message follow",
    "------ this is a copy of the message",
    "----- the header of the original message",
    "--- original message",
];

/// The bounce's own first text part, without the returned message that
/// plain-text bounces paste under it (its words are the sender's, not the
/// receiver's).
fn own_text(m: &mail_parser::Message<'_>) -> String {
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    let end = COPY_MARKERS.iter().filter_map(|k| lower.find(k)).min().unwrap_or(text.len());
    text[..end].to_string()
}

/// The first enhanced status code in a text ("#5.1.1", "5.2.2").
fn status_in(text: &str) -> Option<Status> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|w| w.len() >= 5).find_map(|w| Status::parse(w.trim_matches('.')).filter(|s| s.class != 2))
}

/// The first line with an SMTP reply code ("550 ...", "550-...").
fn reply_in(text: &str) -> Option<(u16, String)> {
    text.lines().find_map(|l| {
        let t = l.trim_start_matches(|c: char| c.is_whitespace() || c == '>' || c == '<' || c == '(' || c == '"');
        let code = reply_code(t).filter(|c| *c >= 400)?;
        Some((code, t.trim().to_string()))
    })
}

fn plain_text(m: &mail_parser::Message<'_>) -> Reading {
    let text = own_text(m);
    let status = status_in(&text);
    let reply = reply_in(&text);
    let recipient = m
        .header_raw("X-Failed-Recipients")
        .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
        .or_else(|| address_in(&text, first_address(m.to()).as_deref()));
    let reply_text = reply.as_ref().map(|(_, t)| t.clone());
    let evidence = format!("{} {}", reply_text.clone().unwrap_or_default(), text);
    let action = if status.is_some_and(|s| s.class == 4) { Action::Delayed } else { Action::Failed };
    let (class, reason) = by_status(status, &action, &evidence);
    Reading::Bounces {
        bounces: vec![Bounce {
            class,
            recipient,
            status: status.map(|s| s.to_string()),
            remote_code: reply.map(|(c, _)| c),
            reply: reply_text,
            reporting_mta: sender_domain(m),
            source: "text",
            reason,
            original_message_id: original_message(m).and_then(|o| o.message_id),
        }],
    }
}

/// The first address in a bounce's text that is not the bounce's own
/// recipient (the sender of the failed mail).
fn address_in(text: &str, not: Option<&str>) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '(' | ')' | ',' | ';' | ':' | '[' | ']'))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.')))
        .find(|w| not.is_none_or(|n| !n.eq_ignore_ascii_case(w)))
        .map(String::from)
}

/// Reads one message.
pub fn classify(raw: &[u8]) -> Reading {
    let Some(m) = MessageParser::new().parse(dsn::trim_saved(raw)) else {
        return Reading::NotABounce { why: "not a message".into() };
    };
    if let Some(r) = arf(&m) {
        return r;
    }
    if let Some(r) = jmrp(raw, &m) {
        return r;
    }
    if report_type(&m).as_deref() == Some("disposition-notification") || content_is(&m, "message", "disposition-notification") {
        return Reading::NotABounce { why: "a read receipt (RFC 8098)".into() };
    }
    match dsn::from_message(&m) {
        Ok(d) => return from_dsn(d),
        // No status part, or a broken one in a bounce: the text is read.
        Err(dsn::DsnError::NotADsn) => {}
        Err(_) if looks_bounced(&m) => {}
        Err(e) => return Reading::NotABounce { why: e.to_string() },
    }
    if let Some(why) = auto_reply(&m) {
        return Reading::NotABounce { why };
    }
    if looks_bounced(&m) {
        return plain_text(&m);
    }
    Reading::NotABounce { why: "neither a bounce nor a complaint: no status part, and not from a mailer daemon".into() }
}
