//! The message test (`netjes analyze`): why a message lands in spam, scored
//! out of 10 as mail-tester scores it, with every point explained.
//!
//! The checks are free of IO where they can be (format, bulk, content,
//! Received, the HTML scan); DNS goes through the injected resolver, and
//! SpamAssassin is asked only when configured.

pub mod auth;
pub mod bulk;
pub mod checked;
pub mod config;
pub mod content;
pub mod finding;
pub mod format;
pub mod html;
pub mod html_report;
pub mod links;
pub mod penalties;
pub mod received;
pub mod reputation;
pub mod spamd;

use finding::{Finding, Section};
use netjes_auth::dkim::DkimResult;
use netjes_auth::dmarc::DmarcResult;
use netjes_auth::message::MessageError;
use netjes_auth::verdict::{verify_message, Envelope, Verdict};
use netjes_dns::Resolver;
use penalties::Penalties;
use received::Hop;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// RFC 7489 practice since 2024: without aligned DKIM or SPF, Gmail and
/// Yahoo treat mail as unauthenticated, whatever else is right.
pub const UNALIGNED_CAP: f32 = 6.0;
/// The best mark of a message its own domain's policy has receivers
/// reject (DMARC fail at p=reject, or a From no receiver accepts).
pub const REJECTED_CAP: f32 = 2.0;
/// ... and of one the policy sends to spam (p=quarantine).
pub const QUARANTINED_CAP: f32 = 4.0;

/// The most a message can score, the finding that takes the rest off, and
/// why: whatever else is right, receivers reject a DMARC failure at
/// p=reject and file one at p=quarantine as spam, and mail nothing
/// authenticates for its From domain is suspect.
fn mark_cap(v: &netjes_auth::verdict::Verdict, aligned: bool) -> (f32, &'static str, &'static str) {
    use netjes_auth::dmarc::Policy;
    let dm = &v.dmarc;
    match (dm.result, dm.disposition) {
        (DmarcResult::Permerror, Policy::Reject) if dm.author_error.is_some() => {
            (REJECTED_CAP, "auth.author-refused", "receivers refuse a message without a usable From")
        }
        (DmarcResult::Fail, Policy::Reject) => {
            (REJECTED_CAP, "auth.dmarc-fail", "DMARC fails and the domain's policy is reject: receivers refuse it")
        }
        (DmarcResult::Fail, Policy::Quarantine) => {
            (QUARANTINED_CAP, "auth.dmarc-fail", "DMARC fails and the domain's policy is quarantine: receivers file it as spam")
        }
        _ if !aligned => (UNALIGNED_CAP, "auth.unaligned", "nothing authenticates the From domain"),
        _ => (10.0, "", ""),
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Given envelope facts; missing ones are read from the Received chain.
    pub ip: Option<IpAddr>,
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    pub authserv_id: String,
    /// Unix time "now", for a Date in the future.
    pub now: i64,
    pub ip_lists: Vec<String>,
    pub domain_lists: Vec<String>,
    pub penalties: Penalties,
    /// spamd's HOST:PORT, and how long it may take.
    pub spamd: Option<(String, Duration)>,
    /// Who gave `ip`, `helo` and `mail_from`, for the report: "command
    /// line", or "the SMTP session" in `netjes serve`'s test inbox.
    pub envelope_given_by: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ip: None,
            helo: None,
            mail_from: None,
            authserv_id: "netjes".into(),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            ip_lists: vec![],
            domain_lists: vec![],
            penalties: Penalties::default(),
            spamd: None,
            envelope_given_by: "command line",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Message(#[from] MessageError),
    #[error("the input is not an RFC 5322 message: no header fields could be read")]
    NotAMessage,
}

/// The envelope the analysis used, and where each fact came from.
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeReport {
    pub ip: Option<IpAddr>,
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    /// "command line", or the Received header the facts were read from.
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionReport {
    pub section: Section,
    pub title: &'static str,
    /// Points this section takes off.
    pub penalty: f32,
    pub findings: Vec<Finding>,
    /// What it checked and found right, and what it could not check.
    #[serde(flatten)]
    pub checked: checked::Checked,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Out of 10, one decimal.
    pub score: f32,
    /// "Excellent", "Good", "Needs work" or "Poor", as the domain check
    /// words its score.
    pub verdict: &'static str,
    /// The mark was held down by a cap ([`mark_cap`]).
    pub capped: bool,
    /// Why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_reason: Option<String>,
    /// A DNS timeout or SERVFAIL kept a check from being made.
    pub incomplete: bool,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub size: usize,
    /// The (up to) three findings that cost the most: why this is spam.
    pub why_spam: Vec<Finding>,
    pub sections: Vec<SectionReport>,
    pub envelope: EnvelopeReport,
    pub hops: Vec<Hop>,
    pub auth: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spamassassin: Option<spamd::SpamAssassin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spamassassin_error: Option<String>,
}

impl Report {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.sections.iter().flat_map(|s| s.findings.iter())
    }

    pub fn has(&self, id: &str) -> bool {
        self.findings().any(|f| f.id == id)
    }
}

fn envelope(msg: &mail_parser::Message<'_>, hops: &[Hop], o: &Options) -> EnvelopeReport {
    let guess = received::envelope_of(msg, hops);
    let given = o.ip.is_some() || o.helo.is_some() || o.mail_from.is_some();
    let from_headers =
        guess.is_some() && (o.ip.is_none() || o.helo.is_none() || o.mail_from.is_none());
    let g = guess.clone();
    let source = match (given, from_headers, &guess) {
        (true, true, Some(g)) => format!("{}, the rest from {}", o.envelope_given_by, g.source),
        (false, true, Some(g)) => g.source.clone(),
        (true, _, _) => o.envelope_given_by.into(),
        _ => {
            "unknown: no Received header names the client (give the envelope: --ip, --helo and --mail-from on the command line)".into()
        }
    };
    EnvelopeReport {
        ip: o.ip.or(g.as_ref().and_then(|g| g.ip)),
        helo: o.helo.clone().or(g.as_ref().and_then(|g| g.helo.clone())),
        mail_from: o.mail_from.clone().or(g.and_then(|g| g.mail_from)),
        source,
    }
}

fn received_findings(hops: &[Hop]) -> Vec<Finding> {
    let mut out = Vec::new();
    if hops.is_empty() {
        out.push(Finding::new("received.none", "the message has no Received fields: it was not delivered by SMTP, so the envelope must be given"));
    }
    for h in hops {
        match h.delay {
            Some(d) if d < -60 => out.push(
                Finding::new(
                    "received.clock-skew",
                    format!(
                        "hop {} is timed {}s before the hop before it: a server's clock is wrong",
                        h.index, -d
                    ),
                )
                .fix("run NTP (chrony) on every server"),
            ),
            Some(d) if d > 3600 => out.push(Finding::new(
                "received.slow-hop",
                format!(
                    "hop {} took {} minutes: greylisting or a queue",
                    h.index,
                    d / 60
                ),
            )),
            _ => {}
        }
    }
    out
}

/// Analyses one message.
/// A message as it was sent, from a file as it was stored: an mbox
/// `From ` separator line is dropped, and a file whose lines all end in LF
/// (Maildir, mutt, Python's mailbox write it so) gets CRLF back. Only
/// mixed line ends, or a bare CR, are the sender's fault and stay for the
/// format check to find.
pub fn as_sent(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut body = raw;
    // "From sender date": mbox's separator. "From : x" is the obsolete
    // form of a From field (white space before the colon), and stays.
    let mbox = body.starts_with(b"From ")
        && body[5..].iter().find(|b| **b != b' ') != Some(&b':');
    if mbox {
        if let Some(nl) = body.iter().position(|b| *b == b'\n') {
            body = &body[nl + 1..];
        }
    }
    if !body.contains(&b'\r') && body.contains(&b'\n') {
        let mut out = Vec::with_capacity(body.len() + body.len() / 30);
        for &b in body {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        return std::borrow::Cow::Owned(out);
    }
    std::borrow::Cow::Borrowed(body)
}

pub async fn analyze(dns: &dyn Resolver, raw: &[u8], o: &Options) -> Result<Report, AnalyzeError> {
    let stored = as_sent(raw);
    let raw: &[u8] = &stored;
    // The limits first, then one parse and one read of the header fields
    // for every check that follows.
    netjes_auth::message::check_limits(raw)?;
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or(AnalyzeError::NotAMessage)?;
    let fields = netjes_auth::message::header_fields(raw);
    let hops = received::hops_of(&msg);
    let env = envelope(&msg, &hops, o);
    let verdict = verify_message(
        dns,
        raw,
        &Envelope {
            ip: env.ip,
            helo: env.helo.clone(),
            mail_from: env.mail_from.clone(),
        },
        &o.authserv_id,
    )
    .await?;

    let from = verdict.dmarc.from_domain.clone();
    let mut related: Vec<String> = from.iter().cloned().collect();
    related.extend(
        verdict
            .dkim
            .iter()
            .filter(|d| d.result == DkimResult::Pass)
            .map(|d| d.domain.clone()),
    );
    if let Some(mf) = env.mail_from.as_deref().and_then(|m| m.rsplit_once('@')) {
        related.push(mf.1.to_ascii_lowercase());
    }
    let content = content::check_content(&msg, &related);
    let content_link_hosts = content.link_hosts.len();

    let spamd = async {
        match &o.spamd {
            Some((addr, t)) => Some(spamd::ask(addr, raw, *t).await),
            None => None,
        }
    };
    let host = async {
        match env.ip {
            Some(ip) => auth::check_sender_host(dns, ip, env.helo.as_deref()).await,
            None => vec![],
        }
    };
    let (sa, host_findings, reputation) = tokio::join!(
        spamd,
        host,
        reputation::check_reputation(
            dns,
            env.ip,
            &content.link_hosts,
            &o.ip_lists,
            &o.domain_lists
        )
    );

    let mut all = auth::verdict_findings(&verdict);
    // With the client's address known, an SPF fail, softfail or neutral is
    // fixed by the domain's own record with that address added, as
    // `netjes check --ip` gives it.
    if let (Some(ip), Some(spf)) = (env.ip, &verdict.spf) {
        if let Some(record) = &spf.record {
            let merged = netjes_check::spf::record_with_ip(record, ip);
            for f in all.iter_mut().filter(|f| {
                matches!(f.id, "auth.spf-fail" | "auth.spf-softfail" | "auth.spf-neutral")
            }) {
                f.fix = Some(format!("{}. IN TXT \"{merged}\"", spf.domain));
            }
        }
    }
    all.extend(host_findings);
    all.extend(reputation);
    all.extend(format::check_format_of(raw, &fields, Some(&msg), o.now));
    // RFC 8058 §4 asks the unsubscribe fields to be signed by the signature
    // that speaks for the From domain.
    let signed = auth::aligned_dkim_domain(&verdict)
        .and_then(|dd| {
            verdict
                .dkim
                .iter()
                .find(|d| d.result == DkimResult::Pass && d.domain == dd)
        })
        .map(|d| d.signed_headers.clone());
    all.extend(bulk::check_unsubscribe_of(&fields, signed.as_deref()));
    let aligned = auth::aligned(&verdict);
    if !aligned {
        all.push(Finding::new(
            "bulk.unaligned",
            "Gmail, Yahoo and Outlook require From to be aligned with a passing DKIM or SPF",
        ));
    }
    if verdict.dmarc.result == DmarcResult::None && verdict.dmarc.record.is_none() {
        all.push(Finding::new(
            "bulk.no-dmarc",
            "Gmail, Yahoo and Outlook require bulk senders to publish DMARC",
        ));
    }
    // The hop that took the mail from another server: a Received field
    // without `from` (Gmail's internal "Received: by 2002:...") is not a
    // hop between servers, and its lack of TLS says nothing.
    if let Some(last) = hops
        .iter()
        .rev()
        .find(|h| h.from.is_some() || h.from_ip.is_some())
    {
        if last.tls.is_none() {
            all.push(
                Finding::new("bulk.no-tls", format!("the last hop ({} to {}) did not use TLS", last.from.clone().unwrap_or_default(), last.by.clone().unwrap_or_default()))
                    .fix("offer and use STARTTLS on every hop; Gmail marks mail without TLS with a red lock"),
            );
        }
    }
    all.extend(content.findings);
    all.extend(received_findings(&hops));
    let (spamassassin, spamassassin_error) = match sa {
        Some(Ok(s)) => {
            let top: Vec<String> = {
                let mut r: Vec<&spamd::SpamRule> =
                    s.rules.iter().filter(|r| r.points > 0.0).collect();
                r.sort_by(|a, b| b.points.total_cmp(&a.points));
                r.iter()
                    .take(5)
                    .map(|r| format!("{} ({:+.1}: {})", r.name, r.points, r.description))
                    .collect()
            };
            if s.score > 0.0 {
                all.push(Finding::new(
                    "spamassassin.score",
                    format!(
                        "SpamAssassin scores {:.1} (spam from {:.1}): {}",
                        s.score,
                        s.threshold,
                        top.join("; ")
                    ),
                ));
            }
            (Some(s), None)
        }
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };

    // Penalties from the table and the configuration.
    for f in &mut all {
        f.penalty = o.penalties.penalty(f.id);
        if f.id == "spamassassin.score" {
            // The table gives the most SpamAssassin may take off.
            let sa = spamassassin.as_ref().map(|s| s.score).unwrap_or(0.0);
            f.penalty = sa.clamp(0.0, f.penalty);
        }
    }
    let total: f32 = all.iter().map(|f| f.penalty).sum();
    let uncapped = (10.0 - total).max(0.0);
    let (cap, cap_id, cap_reason) = mark_cap(&verdict, aligned);
    let capped = uncapped > cap;
    if capped {
        // The cap is taken off by the finding that causes it, so that the
        // findings always add up to the mark.
        if let Some(f) = all.iter_mut().find(|f| f.id == cap_id) {
            f.penalty += uncapped - cap;
        }
    }
    let total: f32 = all.iter().map(|f| f.penalty).sum();
    let score = ((10.0 - total).max(0.0) * 10.0).round() / 10.0;
    let incomplete = all.iter().any(|f| f.id.ends_with("temperror"))
        || verdict
            .dkim
            .iter()
            .any(|d| d.result == DkimResult::Temperror);

    let mut why: Vec<&Finding> = all.iter().filter(|f| f.penalty > 0.0).collect();
    why.sort_by(|a, b| b.penalty.total_cmp(&a.penalty));
    let why_spam = why.into_iter().take(3).cloned().collect();
    let sections = Section::ALL
        .iter()
        .map(|s| {
            let findings: Vec<Finding> = all.iter().filter(|f| f.section == *s).cloned().collect();
            let checked = match s {
                Section::Authentication => checked::authentication(&verdict),
                Section::Reputation => checked::reputation(
                    env.ip,
                    &o.ip_lists,
                    &o.domain_lists,
                    content_link_hosts,
                ),
                Section::Spamassassin => checked::spamassassin(o.spamd.is_some()),
                _ => checked::Checked::default(),
            };
            SectionReport {
                section: *s,
                title: s.title(),
                penalty: findings.iter().map(|f| f.penalty).sum(),
                findings,
                checked,
            }
        })
        .collect();
    Ok(Report {
        score,
        verdict: netjes_check::score::verdict(score),
        capped,
        cap_reason: capped.then(|| cap_reason.to_string()),
        incomplete,
        subject: msg.subject().map(|s| s.to_string()),
        from: msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| a.to_string()),
        size: raw.len(),
        why_spam,
        sections,
        envelope: env,
        hops,
        auth: verdict,
        spamassassin,
        spamassassin_error,
    })
}

#[cfg(test)]
mod stored_tests {
    use super::as_sent;

    #[test]
    fn files_are_read_as_sent() {
        assert_eq!(&*as_sent(b"From: a@b.example\nSubject: x\n\nhi\n"), b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n");
        assert_eq!(
            &*as_sent(b"From alice@example.com Mon Nov 23 09:00:00 2026\nFrom: a@b.example\n\nhi\n"),
            b"From: a@b.example\r\n\r\nhi\r\n"
        );
        assert_eq!(&*as_sent(b"From : a@b.example\n\nx\n"), b"From : a@b.example\r\n\r\nx\r\n");
        // Mixed line ends are the sender's: left for the format check.
        let mixed = b"From: a@b.example\r\nSubject: x\n\r\nhi\r\n";
        assert_eq!(&*as_sent(mixed), &mixed[..]);
        let crlf = b"From: a@b.example\r\n\r\nhi\r\n";
        assert!(matches!(as_sent(crlf), std::borrow::Cow::Borrowed(_)));
    }
}
