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
                .fix(Fix::txt(&name, &starter)),
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
                .fix(Fix::txt(&policy_name, &rec.text.replacen("p=none", "p=quarantine", 1))),
        ),
        Some(Policy::Quarantine) => out.push(
            Finding::new(C, "dmarc.policy", Status::Info, "p=quarantine: forged mail goes to spam")
                .advice("p=reject is the last step, when the reports stay clean"),
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
    if rec.rua.is_empty() {
        let mut with = rec.text.trim_end().trim_end_matches(';').to_string();
        with.push_str(&format!("; rua=mailto:dmarc-reports@{domain}"));
        out.push(
            Finding::new(
                C,
                "dmarc.no-rua",
                Status::Warn,
                "no rua=: you receive no aggregate reports, so you cannot see who sends as you",
            )
            .fix(Fix::txt(&policy_name, &with)),
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
