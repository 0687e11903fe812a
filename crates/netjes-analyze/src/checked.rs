//! What each section checked and found right, and what it could not
//! check: the report shows passes with their details, and a check that did
//! not run says "not checked", never a green tick.

use netjes_auth::dkim::DkimResult;
use netjes_auth::dmarc::DmarcResult;
use netjes_auth::spf::SpfResult;
use netjes_auth::verdict::Verdict;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Checked {
    /// What passed, with its details.
    pub passed: Vec<String>,
    /// What could not be checked, and why.
    pub not_checked: Vec<String>,
}

/// SPF by which mechanism, DKIM with d=, s=, key type and size, DMARC with
/// its policy and what aligned.
pub fn authentication(v: &Verdict) -> Checked {
    let mut c = Checked::default();
    match &v.spf {
        Some(s) if s.result == SpfResult::Pass => c.passed.push(format!(
            "SPF pass for {} by {}{}",
            s.domain,
            s.mechanism.as_deref().unwrap_or("its record"),
            s.mechanism_domain
                .as_deref()
                .filter(|d| *d != s.domain)
                .map(|d| format!(" (in {d})"))
                .unwrap_or_default()
        )),
        Some(_) => {}
        None => c
            .not_checked
            .push("SPF: the client's address is not known (no Received field names it, and none was given)".into()),
    }
    for d in v.dkim.iter().filter(|d| d.result == DkimResult::Pass) {
        c.passed.push(format!(
            "DKIM pass: d={} s={} ({}{})",
            d.domain,
            d.selector,
            d.algorithm,
            d.key_bits.map(|b| format!(", {b}-bit key")).unwrap_or_default()
        ));
    }
    let dm = &v.dmarc;
    if dm.result == DmarcResult::Pass {
        let by: Vec<&str> = [(dm.spf_aligned, "SPF"), (dm.dkim_aligned, "DKIM")]
            .into_iter()
            .filter(|(a, _)| *a)
            .map(|(_, n)| n)
            .collect();
        c.passed.push(format!(
            "DMARC pass for {}: p={} at _dmarc.{}, aligned by {}",
            dm.from_domain.as_deref().unwrap_or(""),
            dm.policy.map(|p| p.as_str()).unwrap_or("none"),
            dm.policy_domain.as_deref().unwrap_or(""),
            by.join(" and ")
        ));
    }
    c
}

/// The blocklists that were asked, by name, or why none were.
pub fn reputation(ip: Option<IpAddr>, ip_lists: &[String], domain_lists: &[String], links: usize) -> Checked {
    let mut c = Checked::default();
    match ip {
        _ if ip_lists.is_empty() => c.not_checked.push("address blocklists: none configured".into()),
        None => c.not_checked.push(
            "address blocklists: the client's address is not known (no Received field names it, and none was given)"
                .into(),
        ),
        Some(ip) => c.passed.push(format!("{ip} asked of {}", ip_lists.join(", "))),
    }
    if domain_lists.is_empty() {
        c.not_checked.push("domain blocklists: none configured".into());
    } else if links > 0 {
        c.passed.push(format!(
            "{links} link domain(s) asked of {}",
            domain_lists.join(", ")
        ));
    }
    c
}

/// SpamAssassin asked, or not.
pub fn spamassassin(asked: bool) -> Checked {
    let mut c = Checked::default();
    if !asked {
        c.not_checked
            .push("SpamAssassin was not asked: no spamd is configured".into());
    }
    c
}
