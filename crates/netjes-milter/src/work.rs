//! The end of a message: sign it (mail from our own clients) or verify it
//! (mail from outside) and enforce DMARC, as one decision. Every failure
//! maps to an answer in one place ([`Failure`]); nothing here panics on a
//! bad message.

use crate::keys::{KeySource, Keys};
use crate::protocol::Response;
use crate::session::Job;
use ipnet::IpNet;
use netjes_auth::dkim::{sign_with_hashes, SignOptions};
use netjes_auth::dmarc::{DmarcResult, Policy};
use netjes_auth::message::parse_prehashed;
use netjes_auth::spf::received_spf;
use netjes_auth::verdict::{verify_parsed, Envelope};
use netjes_dns::Resolver;
use netjes_net::in_nets;
use std::time::Duration;

/// What to do when the milter cannot do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// 4xx: the client tries again later; nothing is lost.
    Tempfail,
    /// Let the message through as it is.
    Accept,
}

/// What happens to a message netjes cannot judge: a header block over the
/// limits, one that is not a message, or one without a usable author
/// (RFC 7489 §6.6.1). Never "accept": a limit reached is no way around DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Malformed {
    /// 550 5.7.0 (5.7.1 for the author): refused, with the reason.
    Reject,
    /// 451 4.7.0: refused for now.
    Tempfail,
}

/// What p=quarantine does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineAction {
    /// Postfix's hold queue (SMFIR_QUARANTINE).
    Hold,
    /// Deliver with an X-Netjes-DMARC header for the mailbox's filter.
    Header,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub authserv_id: String,
    /// Clients whose mail is signed (besides SASL-authenticated ones).
    pub internal_hosts: Vec<IpNet>,
    /// A signing-table match whose key is broken.
    pub on_key_error: Failure,
    /// A DNS timeout or SERVFAIL that leaves DMARC undecided, or the time
    /// budget running out.
    pub on_dns_error: Failure,
    /// A message that cannot be judged (over a limit, unreadable, no
    /// usable author).
    pub on_malformed: Malformed,
    /// Reject p=reject failures at SMTP time.
    pub enforce_dmarc: bool,
    pub quarantine: QuarantineAction,
    /// Forwarders whose mail is not held to DMARC (they break SPF and
    /// sometimes DKIM).
    pub trusted_forwarders: Vec<IpNet>,
    /// ARC sealers whose validated chain overrides a DMARC failure
    /// (RFC 8617 §7.2).
    pub trusted_arc_sealers: Vec<String>,
    /// For one message's DNS work; well under Postfix's 30 s milter timeouts.
    pub time_budget: Duration,
    /// Seal verified mail with ARC (RFC 8617), on a host that forwards it.
    pub arc_seal: Option<ArcSealer>,
    /// Mail to or from these (lower case) makes no DMARC report.
    pub report_addresses: Vec<String>,
    /// Make failure reports (ruf=) for the server to send.
    pub failure_reports: bool,
    /// Connections: taken at start (a reload does not change them).
    pub conn: netjes_net::ConnLimits,
}

/// The ARC sealing identity of a forwarding host.
#[derive(Clone)]
pub struct ArcSealer {
    pub domain: String,
    pub selector: String,
    pub key: std::sync::Arc<netjes_auth::dkim::PrivateKey>,
}

impl std::fmt::Debug for ArcSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArcSealer({} s={})", self.domain, self.selector)
    }
}

impl Default for Settings {
    /// The settings of the default configuration (config.rs holds the
    /// defaults, once).
    fn default() -> Self {
        crate::config::Config::validate(crate::config::RawConfig::default())
            .expect("the default configuration is valid")
            .settings
    }
}

/// What the work decided, for logs and metrics, with the replies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub replies: Vec<Response>,
    /// The verdict of a verified message, for the DMARC report store.
    pub record: Option<crate::verdicts::Row>,
    /// "signed", "unsigned", "key-error", "pass", "fail", "reject",
    /// "quarantine", "tempfail", ...
    pub result: &'static str,
    /// The checks that met a DNS timeout or SERVFAIL ("spf", "dkim",
    /// "arc", "dmarc"), or "budget" when the time budget ran out.
    pub dns_errors: Vec<&'static str>,
    /// DMARC's result and disposition, for a verified message.
    pub dmarc: Option<(&'static str, &'static str)>,
    /// A failure report the domain asked for (ruf=, fo=).
    pub failure: Option<crate::report_send::FailureJob>,
}

fn failure(f: Failure, why: &str, result: &'static str) -> Outcome {
    match f {
        Failure::Tempfail => Outcome {
            replies: vec![Response::ReplyCode(format!(
                "451 4.7.5 {why}; try again later"
            ))],
            result,
            record: None,
            ..Default::default()
        },
        Failure::Accept => Outcome {
            replies: vec![Response::Continue],
            result,
            record: None,
            ..Default::default()
        },
    }
}

/// A header value as a milter sends it: folded lines joined by "\n\t"
/// (Postfix turns them into CRLF), without the trailing line end.
fn milter_value(folded: &str) -> String {
    folded.trim_end_matches(['\r', '\n']).replace("\r\n", "\n")
}

/// "Name: value\r\n\tmore\r\nName2: ..." as (name, milter value) pairs.
fn unfold_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_string(), v.to_string()));
        }
    }
    out
}

/// The first From address of a message.
fn from_address(message: &[u8]) -> Option<String> {
    let msg = mail_parser::MessageParser::default().parse_headers(message)?;
    msg.from()?.first()?.address().map(|a| a.to_string())
}

/// Whether the message comes from one of ours: SASL or an internal host.
/// A connect whose address is unknown or unreadable (family U, a scoped
/// IPv6 address, garbage) is a stranger: only an address we can match
/// against internal_hosts is ours. Postfix's own pickup (sendmail) is not
/// such a case: cleanup connects it as localhost, 127.0.0.1.
pub fn is_internal(job: &Job, s: &Settings) -> bool {
    job.auth_user.is_some() || job.conn.ip.is_some_and(|ip| in_nets(&s.internal_hosts, ip))
}

/// An application's login writes only in its own domains' names: every
/// author domain of the From field is checked (the policy service checked
/// the envelope sender at RCPT; the header From is what the recipient
/// sees). A store that cannot say is a tempfail, as a key error is.
fn sender_refused(job: &Job, s: &Settings, keys: &dyn KeySource) -> Option<Outcome> {
    let login = job.auth_user.as_deref()?;
    let authors = netjes_auth::dmarc::author::authors_of(&job.header_block).ok()?;
    for domain in &authors.domains {
        match keys.sender_refusal(login, domain) {
            Ok(None) => {}
            Ok(Some(why)) => {
                return Some(Outcome {
                    replies: vec![Response::ReplyCode(format!("550 5.7.1 From: {why}"))],
                    result: "refused-sender",
                    record: None,
                    ..Default::default()
                })
            }
            Err(e) => {
                tracing::error!(login, domain = %domain, "cannot check the sending rights: {e}");
                return Some(failure(s.on_key_error, "the sender's rights cannot be checked now", "key-error"));
            }
        }
    }
    None
}

/// The answer for a message that cannot be judged, with the reason.
fn malformed(s: &Settings, why: &str, code: &str) -> Outcome {
    let reply = match s.on_malformed {
        Malformed::Reject => format!("550 {code} {why}"),
        Malformed::Tempfail => format!("451 4.7.0 {why}; try again later"),
    };
    Outcome {
        replies: vec![Response::ReplyCode(reply)],
        result: "malformed",
        record: None,
        ..Default::default()
    }
}

pub async fn process(job: &Job, s: &Settings, keys: &dyn KeySource, dns: &dyn Resolver) -> Outcome {
    if is_internal(job, s) {
        if job.oversized {
            tracing::warn!(
                queue_id = job.queue_id.as_deref().unwrap_or(""),
                "not signed: the header block is over the limit"
            );
            return Outcome {
                replies: vec![Response::Continue],
                result: "unsigned",
                ..Default::default()
            };
        }
        sign(job, s, keys)
    } else if job.oversized {
        malformed(
            s,
            &format!(
                "the header block is over {} octets and cannot be checked",
                crate::session::MAX_HEADER_BLOCK
            ),
            "5.7.0",
        )
    } else {
        match tokio::time::timeout(s.time_budget, verify(job, s, dns)).await {
            Ok(o) => o,
            Err(_) => Outcome {
                dns_errors: vec!["budget"],
                ..failure(
                    s.on_dns_error,
                    "the message could not be checked in time",
                    "timeout",
                )
            },
        }
    }
}

/// Signing is CPU work (the RSA private-key operation): callers run it on
/// a blocking thread so it does not hold up the async workers.
pub fn sign(job: &Job, s: &Settings, keys: &dyn KeySource) -> Outcome {
    if let Some(refused) = sender_refused(job, s, keys) {
        return refused;
    }
    let Some(from) = from_address(&job.header_block) else {
        return Outcome {
            replies: vec![Response::Continue],
            result: "unsigned",
            record: None,
            ..Default::default()
        };
    };
    let keys = match keys.keys_for(&from) {
        Keys::NotOurs => {
            return Outcome {
                replies: vec![Response::Continue],
                result: "unsigned",
                record: None,
                ..Default::default()
            }
        }
        Keys::Broken(e) => {
            tracing::error!(from = %from, queue_id = job.queue_id.as_deref().unwrap_or(""), "cannot sign: {e}");
            return failure(s.on_key_error, "the message cannot be signed", "key-error");
        }
        Keys::Sign(k) => k,
    };
    let mut replies = Vec::new();
    for k in &keys {
        match sign_with_hashes(
            &job.header_block,
            &job.body_hashes,
            &k.signer,
            &SignOptions::new(&k.domain, &k.selector),
        ) {
            Ok(field) => {
                let value = field
                    .split_once(':')
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default();
                replies.push(Response::InsertHeader {
                    index: 0,
                    name: "DKIM-Signature".into(),
                    value: milter_value(&value),
                });
            }
            Err(e) => {
                tracing::error!(from = %from, domain = %k.domain, selector = %k.selector, "signing failed: {e}");
                return failure(s.on_key_error, "the message cannot be signed", "key-error");
            }
        }
    }
    replies.push(Response::Continue);
    Outcome {
        replies,
        result: "signed",
        record: None,
        ..Default::default()
    }
}

async fn verify(job: &Job, s: &Settings, dns: &dyn Resolver) -> Outcome {
    let env = Envelope {
        ip: job.conn.ip,
        helo: Some(job.conn.helo.clone()),
        mail_from: Some(job.mail_from.clone()),
    };
    let v = match parse_prehashed(&job.header_block, &job.body_hashes) {
        Ok(msg) => verify_parsed(dns, &msg, &env, &s.authserv_id).await,
        // Not a message we can read (over 1000 fields, no header): it is
        // not passed unchecked, which would be a way around DMARC.
        Err(e) => return malformed(s, &format!("the message cannot be checked: {e}"), "5.7.0"),
    };
    if let Some(err) = &v.dmarc.author_error {
        return malformed(s, &format!("{err}"), "5.7.1");
    }
    let mut o = enforce(job, s, dns, &v).await;
    let mut errors = Vec::new();
    use netjes_auth::spf::SpfResult;
    if [&v.spf, &v.spf_helo]
        .iter()
        .any(|x| x.as_ref().is_some_and(|x| x.result == SpfResult::Temperror))
    {
        errors.push("spf");
    }
    if v.dkim
        .iter()
        .any(|d| d.result == netjes_auth::dkim::DkimResult::Temperror)
    {
        errors.push("dkim");
    }
    if v.arc.result == netjes_auth::arc::ArcResult::Temperror {
        errors.push("arc");
    }
    if v.dmarc.result == DmarcResult::Temperror {
        errors.push("dmarc");
    }
    o.dns_errors = errors;
    o.dmarc = Some((v.dmarc.result.as_str(), v.dmarc.disposition.as_str()));
    o
}

/// CVE-2019-20790-style forgeries: an Authentication-Results that claims
/// our authserv-id (read by RFC 8601's grammar, netjes_auth::authres) can
/// only have come from outside. Each is deleted by its position among the
/// fields of that name, 1-based, and the last first: Postfix renumbers the
/// fields after each deletion, so deleting 1 then 2 of three forgeries
/// would delete the first and the third and leave the second standing.
fn delete_forged_results(job: &Job, authserv_id: &str) -> Vec<Response> {
    let mut forged = Vec::new();
    let mut n = 0;
    for (name, value) in &job.headers {
        if name.trim_end().eq_ignore_ascii_case("Authentication-Results") {
            n += 1;
            if netjes_auth::authres::claims(value, authserv_id) {
                forged.push(n);
            }
        }
    }
    forged
        .into_iter()
        .rev()
        .map(|index| Response::ChangeHeader {
            index,
            name: "Authentication-Results".into(),
            value: String::new(),
        })
        .collect()
}

/// Our fields on the message, the ARC seal, and DMARC enforced: the
/// decision for a verified message.
async fn enforce(
    job: &Job,
    s: &Settings,
    dns: &dyn Resolver,
    v: &netjes_auth::verdict::Verdict,
) -> Outcome {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut row = crate::verdicts::VerdictStore::row(
        v,
        job.conn.ip,
        &job.mail_from,
        job.rcpts.first().map(String::as_str),
        now,
    );
    let ours = |a: &str| s.report_addresses.iter().any(|r| r.eq_ignore_ascii_case(a));
    row.about_reports = Some(ours(&job.mail_from) || job.rcpts.iter().any(|r| ours(r)));
    let mut replies = Vec::new();
    replies.extend(delete_forged_results(job, &s.authserv_id));
    if let (Some(spf), Some(ip)) = (&v.spf, job.conn.ip) {
        replies.push(Response::InsertHeader {
            index: 0,
            name: "Received-SPF".into(),
            value: format!(
                " {}",
                received_spf(spf, ip, &job.conn.helo, &job.mail_from, &s.authserv_id)
            ),
        });
    }
    replies.push(Response::InsertHeader {
        index: 0,
        name: "Authentication-Results".into(),
        value: format!(" {}", milter_value(&v.authentication_results)),
    });
    let mut seal = Vec::new();
    if let Some(sealer) = &s.arc_seal {
        // The seal copies our Authentication-Results (RFC 8617 §4.1.1), so
        // it is made over the message with that field on top.
        let mut with_ar = format!(
            "Authentication-Results: {}\r\n",
            v.authentication_results.trim_end()
        )
        .into_bytes();
        with_ar.extend_from_slice(&job.header_block);
        let opts = netjes_auth::arc::SealOptions {
            domain: sealer.domain.clone(),
            selector: sealer.selector.clone(),
            authserv_id: s.authserv_id.clone(),
            headers: None,
        };
        let sealed = match parse_prehashed(&with_ar, &job.body_hashes) {
            Ok(msg) => netjes_auth::arc::seal_parsed(dns, &msg, &sealer.key, &opts, None).await,
            Err(e) => Err(e.into()),
        };
        match sealed {
            Ok(sealed) => {
                // Fields in the order they must stand, each inserted on top:
                // so the last first.
                let fields: Vec<(String, String)> = unfold_fields(&sealed.headers);
                for (name, value) in fields.into_iter().rev() {
                    seal.push(Response::InsertHeader {
                        index: 0,
                        name,
                        value,
                    });
                }
            }
            Err(e) => tracing::warn!(
                queue_id = job.queue_id.as_deref().unwrap_or(""),
                "not sealed: {e}"
            ),
        }
    }

    let dm = &v.dmarc;
    let domain = dm.from_domain.clone().unwrap_or_default();
    // What RFC 9990's policy_evaluated says of a failing message whose
    // policy was not applied, and why.
    if dm.result == DmarcResult::Fail && dm.disposition != Policy::None {
        if !s.enforce_dmarc {
            row.override_reason = Some("local_policy".into());
            row.override_comment = Some("monitoring only: the policy is not enforced here".into());
            row.disposition = "none".into();
        }
    } else if dm.result == DmarcResult::Fail && dm.record.as_ref().is_some_and(|r| r.testing) {
        // t=y softened the policy (RFC 9989): say so.
        row.override_reason = Some("policy_test_mode".into());
    }
    let record_of = |row: &crate::verdicts::Row| Some(row.clone());
    let failure_of = |row: &crate::verdicts::Row| failure_job(job, s, v, row);
    match dm.result {
        DmarcResult::Temperror if s.on_dns_error == Failure::Tempfail => {
            // Not recorded: the client will come back, and then it counts.
            return failure(
                Failure::Tempfail,
                &format!("DMARC for {domain} could not be checked (DNS)"),
                "tempfail",
            );
        }
        DmarcResult::Fail if s.enforce_dmarc => {
            let forwarder = job
                .conn
                .ip
                .is_some_and(|ip| in_nets(&s.trusted_forwarders, ip));
            let arc_ok = v.arc.result == netjes_auth::arc::ArcResult::Pass
                && v.arc.last_sealer.as_deref().is_some_and(|d| {
                    s.trusted_arc_sealers
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(d))
                });
            if forwarder || arc_ok {
                tracing::info!(domain = %domain, forwarder, arc_ok, "DMARC fail overridden");
                row.disposition = "none".into();
                if forwarder {
                    row.override_reason = Some("trusted_forwarder".into());
                } else {
                    // RFC 8617 §7.2.1: an ARC-based override is local
                    // policy, with the sealer named.
                    row.override_reason = Some("local_policy".into());
                    row.override_comment = Some(format!("arc=pass as[{}]={}", v.arc.instances, v.arc.last_sealer.clone().unwrap_or_default()));
                }
            } else {
                let failed: Vec<String> = {
                    let mut f = Vec::new();
                    match &v.spf {
                        Some(spf) => {
                            f.push(format!("SPF {} for {}", spf.result.as_str(), spf.domain))
                        }
                        None => f.push("SPF not checked".into()),
                    }
                    if v.dkim.is_empty() {
                        f.push("no DKIM signature".into());
                    }
                    for d in &v.dkim {
                        f.push(format!("DKIM {} for {}", d.result.as_str(), d.domain));
                    }
                    f
                };
                match dm.disposition {
                    Policy::Reject => {
                        return Outcome {
                            replies: vec![Response::ReplyCode(format!("550 5.7.1 DMARC policy of {domain} rejects this message: nothing aligned with From passed ({})", failed.join(", ")))],
                            result: "reject",
                            record: record_of(&row),
                            failure: failure_of(&row),
                            ..Default::default()
                        }
                    }
                    Policy::Quarantine => {
                        match s.quarantine {
                            QuarantineAction::Hold => replies.push(Response::Quarantine(format!("DMARC quarantine for {domain}"))),
                            QuarantineAction::Header => replies.push(Response::AddHeader { name: "X-Netjes-DMARC".into(), value: format!("quarantine ({domain})") }),
                        }
                        replies.extend(seal);
                        replies.push(Response::Continue);
                        return Outcome { replies, result: "quarantine", record: record_of(&row), failure: failure_of(&row), ..Default::default() };
                    }
                    Policy::None => {}
                }
            }
        }
        _ => {}
    }
    replies.extend(seal);
    replies.push(Response::Continue);
    Outcome {
        replies,
        result: dm.result.as_str(),
        record: record_of(&row),
        failure: failure_of(&row),
        ..Default::default()
    }
}

/// The failure report a verified message owes its From domain, if the
/// domain asks for one (ruf=, and fo= says this failure counts) and the
/// milter makes them; never about report mail.
fn failure_job(job: &Job, s: &Settings, v: &netjes_auth::verdict::Verdict, row: &crate::verdicts::Row) -> Option<crate::report_send::FailureJob> {
    let rec = v.dmarc.record.as_ref()?;
    if !s.failure_reports || rec.ruf.is_empty() || row.about_reports == Some(true) {
        return None;
    }
    let dm = &v.dmarc;
    let dkim_failed = v.dkim.iter().any(|d| d.result != netjes_auth::dkim::DkimResult::Pass);
    let spf_failed = v.spf.as_ref().is_some_and(|x| x.result != netjes_auth::spf::SpfResult::Pass);
    if !crate::report::fo_wants(rec.fo.as_deref(), dm.dkim_aligned, dm.spf_aligned, dkim_failed, spf_failed) {
        return None;
    }
    let alignment = match (dm.dkim_aligned, dm.spf_aligned) {
        (true, true) => "dkim/spf",
        (true, false) => "dkim",
        (false, true) => "spf",
        (false, false) => "none",
    };
    Some(crate::report_send::FailureJob {
        reported_domain: dm.from_domain.clone()?,
        ruf: rec.ruf.clone(),
        source_ip: job.conn.ip.map(|i| i.to_string()).unwrap_or_default(),
        mail_from: job.mail_from.clone(),
        arrival_date: mail_parser::DateTime::from_timestamp(row.time).to_rfc822(),
        authentication_results: v.authentication_results.clone(),
        identity_alignment: alignment,
        delivery_result: match row.disposition.as_str() {
            "reject" => "reject",
            "quarantine" => "spam",
            _ => "delivered",
        },
        headers: job.header_block.clone(),
    })
}
