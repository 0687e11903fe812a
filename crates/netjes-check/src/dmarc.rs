//! The DMARC lint (RFC 9989).

use crate::report::{Category, Finding, Fix, Status};
use netjes_auth::dmarc::record::{is_dmarc_record, parse_dmarc_record};
use netjes_auth::dmarc::{evaluate, DmarcInput, DmarcResult, Policy};
use netjes_dns::{Resolver, ResolverExt};

const C: Category = Category::Dmarc;

pub async fn check_dmarc(dns: &dyn Resolver, domain: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let starter = format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}");
    let name = format!("_dmarc.{domain}");
    // The records at the domain itself, to judge their number and syntax.
    let own = match dns.txt(&name).await {
        Ok(t) => t
            .into_iter()
            .filter(|r| is_dmarc_record(r))
            .collect::<Vec<_>>(),
        Err(e) if e.is_temporary() => {
            out.push(
                Finding::new(
                    C,
                    "dmarc.dns-error",
                    Status::Error,
                    format!("DMARC could not be checked: {e}"),
                )
                .advice("try again later; this is a DNS failure, not a missing record"),
            );
            return out;
        }
        Err(_) => vec![],
    };
    if own.len() > 1 {
        out.push(
            Finding::new(
                C,
                "dmarc.multiple",
                Status::Fail,
                format!(
                    "{name} has {} DMARC records: receivers then apply none",
                    own.len()
                ),
            )
            .advice("keep one"),
        );
        return out;
    }
    if let Some(raw) = own.first() {
        if let Err(e) = parse_dmarc_record(raw) {
            out.push(
                Finding::new(
                    C,
                    "dmarc.syntax",
                    Status::Fail,
                    format!("{name}: {e}: \"{}\"", String::from_utf8_lossy(raw)),
                )
                // The record meant, mended; the starter only if that fails.
                .fix(Fix::txt(&name, &{
                    let mended = repair(&String::from_utf8_lossy(raw), domain, &[]);
                    if parse_dmarc_record(mended.as_bytes()).is_ok() { mended } else { starter.clone() }
                })),
            );
            return out;
        }
    }
    let from = [domain.to_string()];
    let r = evaluate(
        dns,
        &DmarcInput {
            from_domains: &from,
            shown_domains: &[],
            spf: None,
            dkim: &[],
        },
    )
    .await;
    if r.result == DmarcResult::Temperror {
        out.push(Finding::new(
            C,
            "dmarc.dns-error",
            Status::Error,
            format!(
                "DMARC could not be checked: {}",
                r.reason.unwrap_or_default()
            ),
        ));
        return out;
    }
    let Some(rec) = r.record.clone() else {
        // A record meant as DMARC that receivers do not read as one:
        // quotes pasted, or v=DMARC1 not first.
        if let Some(meant) = dns.txt(&name).await.ok().and_then(|t| {
            t.into_iter()
                .map(|r| String::from_utf8_lossy(&r).into_owned())
                .find(|r| r.to_ascii_lowercase().contains("v=dmarc1"))
        }) {
            let why = if meant.contains('"') {
                "it holds literal quote characters: it was pasted with the quotes of a zone file"
            } else {
                "it does not start with v=DMARC1, which receivers require"
            };
            out.push(
                Finding::new(C, "dmarc.pasted", Status::Fail, format!("{name} holds a record meant as DMARC that receivers cannot read: {why}"))
                    .fix(Fix::txt(&name, &repair(&meant, domain, &[]))),
            );
            return out;
        }
        out.push(
            Finding::new(C, "dmarc.missing", Status::Fail, format!("{domain} publishes no DMARC policy: receivers decide alone, and Gmail and Yahoo require one from bulk senders"))
                .advice("start with p=none and reports, then tighten")
                .fix(Fix::txt(&name, &starter)),
        );
        return out;
    };
    let at = r.policy_domain.clone().unwrap_or_default();
    if at == domain {
        out.push(Finding::new(
            C,
            "dmarc.present",
            Status::Pass,
            format!("DMARC record: {}", rec.text),
        ));
    } else {
        out.push(Finding::new(
            C,
            "dmarc.inherited",
            Status::Info,
            format!(
                "no record at {name}: the policy of _dmarc.{at} applies ({})",
                rec.text
            ),
        ));
    }
    let policy_name = format!("_dmarc.{at}");
    match r.policy {
        Some(Policy::None) => out.push(
            Finding::new(C, "dmarc.policy", Status::Warn, "p=none only monitors: forged mail in your name is still delivered")
                .advice("the roll-out path is none → quarantine → reject, once the aggregate reports show all your own mail passing")
                .fix(Fix::txt(&policy_name, &repair(&rec.text, domain, &[("p", "quarantine")]))),
        ),
        Some(Policy::Quarantine) => out.push(
            Finding::new(C, "dmarc.policy", Status::Info, "p=quarantine: forged mail goes to spam")
                .advice("p=reject is the last step, when the reports stay clean")
                .fix(Fix::txt(&policy_name, &repair(&rec.text, domain, &[("p", "reject")]))),
        ),
        Some(Policy::Reject) => out.push(Finding::new(C, "dmarc.policy", Status::Pass, "p=reject: forged mail is refused")),
        None => {}
    }
    if rec.testing {
        out.push(Finding::new(
            C,
            "dmarc.testing",
            Status::Info,
            "t=y: receivers apply the policy one level softer",
        ));
    }
    let show = |p: Option<Policy>| p.map(|p| p.as_str()).unwrap_or("as p");
    out.push(Finding::new(
        C,
        "dmarc.tags",
        Status::Info,
        format!(
            "sp={} np={} adkim={} aspf={}",
            show(rec.sp),
            show(rec.np),
            if rec.adkim_strict { "s" } else { "r" },
            if rec.aspf_strict { "s" } else { "r" }
        ),
    ));
    for o in &rec.obsolete {
        out.push(Finding::new(
            C,
            "dmarc.removed-tag",
            Status::Info,
            format!("{o}: RFC 9989 removed this tag; receivers ignore it"),
        ));
    }
    for u in &rec.unknown {
        out.push(Finding::new(
            C,
            "dmarc.unknown-tag",
            Status::Warn,
            format!("{u}= is not a DMARC tag: a typo?"),
        ));
    }
    let rua_written = rec.text.split(';').any(|t| {
        t.split_once('=')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("rua"))
    });
    if rec.rua.is_empty() && rua_written {
        // rua=dmarc@example.com: written, but not a URI, so receivers
        // drop it. The fix mends it; it never adds a second rua=.
        out.push(
            Finding::new(
                C,
                "dmarc.rua-syntax",
                Status::Fail,
                "rua= is there, but its addresses are not mailto: URIs, so no report is sent",
            )
            .fix(Fix::txt(&policy_name, &repair(&rec.text, domain, &[]))),
        );
    } else if rec.rua.is_empty() {
        out.push(
            Finding::new(
                C,
                "dmarc.no-rua",
                Status::Warn,
                "no rua=: you receive no aggregate reports, so you cannot see who sends as you",
            )
            .fix(Fix::txt(&policy_name, &repair(&rec.text, domain, &[]))),
        );
    }
    // RFC 9989 §3 / RFC 7489 §7.1: a report address outside the policy
    // domain must authorise it, or no report is ever sent there.
    for (tag, addrs) in [("rua", &rec.rua), ("ruf", &rec.ruf)] {
        for a in addrs.iter() {
            let dest = a
                .rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
                .unwrap_or_default();
            let org = r
                .organizational_domain
                .clone()
                .unwrap_or_else(|| at.clone());
            if dest.is_empty()
                || dest == at
                || dest.ends_with(&format!(".{at}"))
                || dest == org
                || dest.ends_with(&format!(".{org}"))
            {
                out.push(Finding::new(
                    C,
                    &format!("dmarc.{tag}"),
                    Status::Info,
                    format!("{tag}= {a}"),
                ));
                continue;
            }
            let auth = format!("{at}._report._dmarc.{dest}");
            match dns.txt(&auth).await {
                Ok(t) if t.iter().any(|r| is_dmarc_record(r)) => {
                    out.push(Finding::new(C, &format!("dmarc.{tag}-external"), Status::Pass, format!("{tag}= {a}: {dest} accepts reports for {at}")));
                }
                Err(e) if e.is_temporary() => {
                    out.push(Finding::new(C, &format!("dmarc.{tag}-external"), Status::Error, format!("could not check that {dest} accepts reports: {e}")));
                }
                _ => out.push(
                    Finding::new(C, &format!("dmarc.{tag}-external"), Status::Fail, format!("{tag}= {a}: {dest} has not authorised reports for {at}, so none are sent"))
                        .advice(format!("the owner of {dest} must publish this record"))
                        .fix(Fix::txt(&auth, "v=DMARC1")),
                ),
            }
        }
    }
    out
}

/// The record the user meant, as a valid one: `v=DMARC1` first, each tag
/// once, the policy's spelling mended to the nearest of none, quarantine
/// and reject (never a downgrade: `p=rejct` becomes `p=reject`), report
/// addresses as `mailto:` URIs, the tags RFC 9989 removed (pct, rf, ri)
/// gone, and `overrides` set. What it cannot mend it leaves for the
/// caller's starter record.
/// What a domain's aggregate reports say (from `netjes report`'s
/// readiness): the evidence behind advice to tighten the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEvidence {
    /// Messages in the reports of the window.
    pub messages: u64,
    /// Every source that sends for the domain passes.
    pub ready: bool,
    /// The readiness sentence, with the failing sources named.
    pub sentence: String,
    /// The window, in days.
    pub days: u32,
}

/// Bends the policy advice to the reports: the next step is offered as a
/// fix only when the reports show the domain's own mail passing; while a
/// source that sends for it fails, the advice is to fix that first, and
/// no record that would refuse its mail is offered.
pub fn apply_reports(findings: &mut Vec<Finding>, domain: &str, ev: &ReportEvidence) {
    if ev.messages == 0 {
        findings.push(Finding::new(
            C,
            "dmarc.reports",
            Status::Info,
            format!("no aggregate reports for {domain} in the last {} days: publish rua= and wait a day or two before tightening the policy", ev.days),
        ));
        return;
    }
    findings.push(Finding::new(
        C,
        "dmarc.reports",
        Status::Info,
        format!("the aggregate reports of the last {} days ({} messages): {}", ev.days, ev.messages, ev.sentence),
    ));
    for f in findings.iter_mut().filter(|f| f.id == "dmarc.policy") {
        match (f.status, ev.ready) {
            (Status::Warn, true) => f.advice = Some("the reports show every source that sends for you passing: publish p=quarantine now, then p=reject after a quiet week".into()),
            (Status::Info, true) => f.advice = Some("the reports show every source that sends for you passing: publish p=reject".into()),
            (Status::Warn | Status::Info, false) => {
                f.advice = Some(format!("not yet: {}", ev.sentence));
                // The next step would refuse the domain's own mail.
                f.fix = None;
            }
            _ => {}
        }
    }
}

pub fn repair(text: &str, domain: &str, overrides: &[(&str, &str)]) -> String {
    let mut tags: Vec<(String, String)> = Vec::new();
    for part in tag_specs(text) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"').trim().to_ascii_lowercase();
        let v = v.trim().trim_matches('"').trim().to_string();
        if k == "v" || k.is_empty() || ["pct", "rf", "ri"].contains(&k.as_str()) {
            continue;
        }
        let v = match k.as_str() {
            "p" | "sp" | "np" => nearest_policy(&v).to_string(),
            "rua" | "ruf" => v
                .split(',')
                .map(|a| a.trim())
                .filter(|a| !a.is_empty())
                .map(|a| {
                    if a.to_ascii_lowercase().starts_with("mailto:") {
                        a.to_string()
                    } else {
                        format!("mailto:{a}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => v,
        };
        if !tags.iter().any(|(t, _)| *t == k) {
            tags.push((k, v));
        }
    }
    for (k, v) in overrides {
        match tags.iter_mut().find(|(t, _)| t == k) {
            Some(t) => t.1 = v.to_string(),
            None => tags.push((k.to_string(), v.to_string())),
        }
    }
    if !tags.iter().any(|(t, _)| t == "p") {
        tags.insert(0, ("p".into(), "none".into()));
    }
    if !tags.iter().any(|(t, _)| t == "rua") {
        tags.push(("rua".into(), format!("mailto:dmarc-reports@{domain}")));
    }
    // p= right after v= (RFC 9989 recommends it; some parsers insist).
    tags.sort_by_key(|(t, _)| t != "p");
    let mut out = String::from("v=DMARC1");
    for (k, v) in tags {
        out.push_str(&format!("; {k}={v}"));
    }
    out
}

/// The tag specs of a record as written, also where a `;` was left out
/// (`v=DMARC1 p=reject`): a word that starts with `name=` begins a tag.
fn tag_specs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split(';') {
        let mut current: Option<String> = None;
        for word in part.split_whitespace() {
            let starts_tag = word
                .split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && k.trim_matches('"').chars().all(|c| c.is_ascii_alphabetic()));
            match current.as_mut() {
                Some(c) if !starts_tag => {
                    c.push(' ');
                    c.push_str(word);
                }
                _ => {
                    out.extend(current.take());
                    current = Some(word.to_string());
                }
            }
        }
        out.extend(current);
    }
    out
}

/// The policy a misspelt value means: the nearest by edit distance, and of
/// equally near ones the strictest (a typo never weakens the policy).
fn nearest_policy(v: &str) -> &'static str {
    let v = v.to_ascii_lowercase();
    ["reject", "quarantine", "none"]
        .into_iter()
        .min_by_key(|p| edit_distance(&v, p))
        .unwrap_or("none")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every repaired record parses, keeps the intent, and has one rua.
    #[test]
    fn repairs_keep_the_intent_and_parse() {
        for (bad, want) in [
            ("v=DMARC1; p=rejct", "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.com"),
            ("v=DMARC1; p=quarantin; pct=50; rua=dmarc@example.com", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"),
            ("p=reject; v=DMARC1", "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.com"),
            ("v=DMARC1 p=reject", "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.com"),
            ("v=DMARC1; p=none; rua=mailto:a@example.com, b@example.net; ri=3600; rf=afrf", "v=DMARC1; p=none; rua=mailto:a@example.com,mailto:b@example.net"),
            ("\"v=DMARC1; p=reject; adkim=s\"", "v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc-reports@example.com"),
        ] {
            let got = repair(bad, "example.com", &[]);
            assert_eq!(got, want, "{bad}");
            let r = parse_dmarc_record(got.as_bytes()).unwrap();
            assert_eq!(r.rua.len(), got.matches("mailto:").count(), "{got}");
            assert!(r.obsolete.is_empty());
        }
        let up = repair("v=DMARC1; p=none; pct=10; rua=mailto:d@example.com", "example.com", &[("p", "quarantine")]);
        assert_eq!(up, "v=DMARC1; p=quarantine; rua=mailto:d@example.com");
    }
}
