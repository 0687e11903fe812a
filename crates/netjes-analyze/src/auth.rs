//! The authentication section: the core engine's verdict (SPF, DKIM, DMARC,
//! ARC) read as findings, and the sending address's reverse DNS.

use crate::finding::Finding;
use crate::links::same_org;
use netjes_auth::arc::ArcResult;
use netjes_auth::dkim::DkimResult;
use netjes_auth::dmarc::{DmarcResult, Policy};
use netjes_auth::spf::SpfResult;
use netjes_auth::verdict::Verdict;
use netjes_check::mx::{iprev, looks_generic, Iprev};
use netjes_dns::{Resolver, ResolverExt};
use std::net::IpAddr;

/// The d= of the passing DKIM signature that speaks for the From domain.
/// With a DMARC record, DMARC's alignment decides (its modes); without
/// one, the tree walk has no organizational domain, and receivers (Gmail's
/// and Yahoo's bulk-sender rules among them) apply relaxed alignment by the
/// Public Suffix List.
pub fn aligned_dkim_domain(v: &Verdict) -> Option<&str> {
    if v.dmarc.record.is_some() {
        return v.dmarc.dkim_domain.as_deref();
    }
    let from = v.dmarc.from_domain.as_deref()?;
    v.dkim
        .iter()
        .find(|d| d.result == DkimResult::Pass && same_org(&d.domain, from))
        .map(|d| d.domain.as_str())
}

/// Whether a passing DKIM signature or a passing SPF check speaks for the
/// From domain, in the same terms as [`aligned_dkim_domain`].
pub fn aligned(v: &Verdict) -> bool {
    if v.dmarc.record.is_some() {
        return v.dmarc.spf_aligned || v.dmarc.dkim_aligned;
    }
    let spf = v.spf.as_ref().is_some_and(|s| {
        s.result == SpfResult::Pass
            && v.dmarc
                .from_domain
                .as_deref()
                .is_some_and(|f| same_org(&s.domain, f))
    });
    spf || aligned_dkim_domain(v).is_some()
}

/// The findings of a verdict. `spf_checked` is false when no client
/// address was known.
pub fn verdict_findings(v: &Verdict) -> Vec<Finding> {
    let mut out = Vec::new();
    match &v.spf {
        None => out.push(Finding::new("auth.spf-not-checked", "SPF was not checked: the client address is not in a Received header (give the envelope, or send the message to a test address)")),
        Some(s) => {
            let who = format!("{} for {}", s.domain, s.sender);
            let m = s.mechanism.as_deref().map(|m| format!(" ({m} matched)")).unwrap_or_default();
            let problem = s.problem.as_deref().map(|p| format!(": {p}")).unwrap_or_default();
            match s.result {
                SpfResult::Pass => {}
                SpfResult::Fail => out.push(
                    Finding::new("auth.spf-fail", format!("SPF fails for {who}{m}: the domain does not allow this address to send"))
                        .fix(format!("add the sending server to the SPF record of {}, for example with ip4: or include: of your provider", s.domain)),
                ),
                SpfResult::Softfail => out.push(Finding::new("auth.spf-softfail", format!("SPF softfails for {who}{m}")).fix(format!("add the sending server to the SPF record of {}", s.domain))),
                SpfResult::Neutral => out.push(
                    Finding::new("auth.spf-neutral", format!("SPF is neutral for {who}{m}: the record says nothing about this address"))
                        .fix(format!("list the sending server in the SPF record of {} and end it with -all", s.domain)),
                ),
                SpfResult::None => out.push(
                    Finding::new("auth.spf-none", format!("{} publishes no SPF record", s.domain)).fix(format!("{}. IN TXT \"v=spf1 mx -all\" (list every server that sends)", s.domain)),
                ),
                SpfResult::Permerror => out.push(Finding::new("auth.spf-permerror", format!("the SPF record of {} is broken{problem}", s.domain)).fix(format!("check the SPF record of {} with the domain check, which shows where it breaks", s.domain))),
                SpfResult::Temperror => out.push(Finding::new("auth.spf-temperror", format!("SPF of {} could not be checked{problem}; the mark is incomplete", s.domain))),
            }
        }
    }
    if v.dkim.is_empty() {
        let d = v
            .dmarc
            .from_domain
            .clone()
            .unwrap_or_else(|| "your domain".into());
        out.push(Finding::new("auth.dkim-none", "the message has no DKIM signature").fix(format!("sign outgoing mail for {d}: netjes dkim keygen, publish the record, and sign in the milter")));
    }
    for d in &v.dkim {
        let what = format!("the DKIM signature of {} (s={})", d.domain, d.selector);
        let why = d
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match d.result {
            DkimResult::Pass => {}
            DkimResult::Fail | DkimResult::Neutral | DkimResult::Permerror | DkimResult::None => {
                out.push(Finding::new("auth.dkim-fail", format!("{what} does not verify{why}")).fix("sign after the last change to the message; check that the published key is the signing key (netjes dkim testkey)"))
            }
            DkimResult::Policy => out.push(Finding::new("auth.dkim-policy", format!("{what} is not accepted{why}")).fix("sign with a 2048-bit RSA key and rsa-sha256, or Ed25519 as well")),
            DkimResult::Temperror => out.push(Finding::new("auth.dkim-temperror", format!("{what} could not be checked{why}; the mark is incomplete"))),
        }
        if d.result == DkimResult::Pass {
            if d.key_bits.is_some_and(|b| b < 2048) && d.algorithm.starts_with("rsa") {
                out.push(
                    Finding::new(
                        "auth.dkim-short-key",
                        format!("{what} uses a {}-bit key", d.key_bits.unwrap_or(0)),
                    )
                    .fix("rotate to a 2048-bit key: netjes dkim keygen"),
                );
            }
            if d.testing {
                out.push(Finding::new("auth.dkim-testing", format!("the key record of {what} has t=y: receivers may treat the signature as unsigned")).fix("remove t=y from the key record"));
            }
            if d.warnings.iter().any(|w| w.starts_with("l=")) {
                out.push(Finding::new("auth.dkim-body-length", format!("{what} has l=: anything appended to the message keeps the signature valid")).fix("sign the whole body (no l= tag)"));
            }
        }
    }
    let from = v.dmarc.from_domain.clone().unwrap_or_default();
    let any_dkim_pass = v.dkim.iter().any(|d| d.result == DkimResult::Pass);
    if any_dkim_pass
        && aligned_dkim_domain(v).is_none()
        && v.dmarc.result != DmarcResult::Temperror
        && !from.is_empty()
    {
        let signers: Vec<&str> = v
            .dkim
            .iter()
            .filter(|d| d.result == DkimResult::Pass)
            .map(|d| d.domain.as_str())
            .collect();
        out.push(
            Finding::new("auth.dkim-not-aligned", format!("DKIM passes only for {}, not for the From domain {from}", signers.join(", ")))
                .fix(format!("have your provider sign with d={from} (a custom DKIM domain), publishing its key under your domain")),
        );
    }
    let dm = &v.dmarc;
    let reason = dm
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match dm.result {
        DmarcResult::Pass => {
            if dm.policy == Some(Policy::None) {
                out.push(
                    Finding::new("auth.dmarc-monitor-only", format!("DMARC passes, but the policy of {} is p=none: anyone can still send as {from}", dm.policy_domain.clone().unwrap_or_default()))
                        .fix("once your reports show all your mail passes, move to p=quarantine, then p=reject"),
                );
            }
        }
        DmarcResult::Fail => out.push(Finding::new("auth.dmarc-fail", format!("DMARC fails for {from}{reason}: neither SPF nor DKIM passes aligned with From")).fix(format!("sign with d={from}, or send with a MAIL FROM in {from} that SPF allows"))),
        DmarcResult::None if dm.record.is_none() && !from.is_empty() => out.push(
            Finding::new("auth.dmarc-none", format!("{from} publishes no DMARC record; Gmail and Yahoo require one from bulk senders"))
                .fix(format!("_dmarc.{}. IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{}\"", dm.organizational_domain.as_deref().unwrap_or(&from), dm.organizational_domain.as_deref().unwrap_or(&from))),
        ),
        DmarcResult::None => {}
        // No usable author (none, several From fields, an address that
        // does not parse): receivers refuse it before any policy.
        DmarcResult::Permerror if dm.author_error.is_some() => out.push(
            Finding::new("auth.author-refused", format!("receivers refuse this message: {}", dm.author_error.as_ref().map(ToString::to_string).unwrap_or_default()))
                .fix("write exactly one From field with one plain address at your domain, such as From: Name <you@example.com>"),
        ),
        DmarcResult::Permerror => out.push(Finding::new("auth.dmarc-permerror", format!("the DMARC record for {from} is broken{reason}")).fix(format!("check the DMARC record of {from} with the domain check, which gives the record to publish"))),
        DmarcResult::Temperror => out.push(Finding::new("auth.dmarc-temperror", format!("DMARC for {from} could not be checked{reason}; the mark is incomplete"))),
    }
    if v.arc.result == ArcResult::Fail {
        out.push(
            Finding::new("auth.arc-fail", format!("the ARC chain is broken: {}", v.arc.reason.clone().unwrap_or_default()))
                .fix("the forwarder that sealed last must seal after its own changes; if it is yours, seal with netjes arc seal"),
        );
    }
    if !aligned(v) {
        let d = v
            .dmarc
            .from_domain
            .clone()
            .unwrap_or_else(|| "your domain".into());
        out.push(
            Finding::new("auth.unaligned", "neither DKIM nor SPF passes for the From domain, so receivers cannot tell this mail from a forgery: the mark cannot be above 6")
                .fix(format!("sign with d={d} (netjes dkim keygen, then sign in the milter), or send with a MAIL FROM in {d} that its SPF record allows")),
        );
    }
    out
}

/// Reverse DNS of the sending address, and whether the HELO name agrees.
pub async fn check_sender_host(dns: &dyn Resolver, ip: IpAddr, helo: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let ptr_name = match iprev(dns, ip).await {
        Iprev::Confirmed(name) => {
            if looks_generic(&name, ip) {
                out.push(
                    Finding::new(
                        "auth.ptr-generic",
                        format!("{ip} → {name} looks like a dynamic or home address"),
                    )
                    .fix("send through a server whose PTR is a name like mail.yourdomain"),
                );
            }
            Some(name)
        }
        Iprev::NoPtr => {
            out.push(
                Finding::new(
                    "auth.no-ptr",
                    format!("{ip} has no PTR record: many receivers refuse mail from it"),
                )
                .fix(format!(
                    "ask your hosting provider to set the PTR of {ip} to your server's name"
                )),
            );
            None
        }
        Iprev::NotConfirmed(names) => {
            out.push(
                Finding::new(
                    "auth.ptr-not-confirmed",
                    format!(
                        "{ip} has PTR {}, which does not resolve back to {ip}",
                        names.join(", ")
                    ),
                )
                .fix(format!(
                    "publish an A/AAAA record for {} pointing at {ip}",
                    names.first().cloned().unwrap_or_default()
                )),
            );
            None
        }
        Iprev::Temporary(e) => {
            out.push(Finding::new(
                "auth.ptr-temperror",
                format!("the reverse DNS of {ip} could not be checked: {e}"),
            ));
            return out;
        }
    };
    if let Some(h) = helo {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        let literal = h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("ipv6:")
            .parse::<IpAddr>()
            .ok();
        let matches = match literal {
            Some(a) => a == ip,
            None if ptr_name
                .as_deref()
                .is_some_and(|p| p.trim_end_matches('.').eq_ignore_ascii_case(&h)) =>
            {
                true
            }
            None => match dns.addrs_like(&h, ip).await {
                Ok(a) => a.contains(&ip),
                Err(e) if e.is_temporary() => true, // unknown: no penalty for a DNS failure
                Err(_) => false,
            },
        };
        if !matches {
            out.push(
                Finding::new(
                    "auth.helo-mismatch",
                    format!(
                        "the HELO name {h} does not resolve to {ip}{}",
                        ptr_name
                            .as_deref()
                            .map(|p| format!(" (its PTR is {p})"))
                            .unwrap_or_default()
                    ),
                )
                .fix("make the server greet with its own name, the one its PTR points to"),
            );
        }
    }
    out
}
