//! `netjes check DOMAIN`: the domain audit.
//!
//! Each category is a module that turns DNS answers into findings; this
//! file runs them, the independent ones at the same time, and builds the
//! report. A DNS failure anywhere is status error ("could not be checked"),
//! never "missing".

pub mod blocklist;
pub mod dkim;
pub mod dmarc;
pub mod input;
pub mod mta_sts;
pub mod mx;
pub mod policy;
pub mod relay;
pub mod report;
pub mod score;
pub mod smtp;
pub mod spf;
pub mod tls;

pub use report::{Category, Finding, Fix, Report, Status};

use netjes_dns::Resolver;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Sending addresses to check (PTR and SPF).
    pub ips: Vec<IpAddr>,
    /// DKIM selectors; empty means guess.
    pub selectors: Vec<String>,
    /// IP blocklists; `None` for [`blocklist::DEFAULT_IP_LISTS`].
    pub ip_lists: Option<Vec<String>>,
    /// Domain blocklists; `None` for [`blocklist::DEFAULT_DOMAIN_LISTS`].
    pub domain_lists: Option<Vec<String>>,
    /// Ports, CA file and time budget of the checks that connect.
    pub net: tls::NetOptions,
    /// Connect to each MX on port 25 (`--smtp`).
    pub smtp: bool,
    /// What the domain's DMARC aggregate reports say, when netjes has
    /// them: the DMARC advice follows it.
    pub reports: Option<dmarc::ReportEvidence>,
}

/// Audits one domain.
///
/// The checks form chains of lookups that depend on each other (MX → A →
/// PTR → A; the SPF include tree; the DMARC walk). Each chain runs as its
/// own branch, all at once, so that the audit takes about as long as its
/// longest chain (see benches/check.rs).
pub async fn check_domain(dns: &dyn Resolver, domain: &str, opts: &CheckOptions) -> Report {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let d = domain.as_str();
    // A name that does not exist has nothing to audit: one headline, no
    // score (before, it scored 7.7 on the categories that "passed").
    if let Err(netjes_dns::DnsError::NxDomain { .. }) = netjes_dns::ResolverExt::mx(dns, d).await {
        return Report::nonexistent(d);
    }
    let ip_lists = opts.ip_lists.clone().unwrap_or_else(|| {
        blocklist::DEFAULT_IP_LISTS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    let domain_lists = opts.domain_lists.clone().unwrap_or_else(|| {
        blocklist::DEFAULT_DOMAIN_LISTS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });

    // Branch: MX, then everything that needs the MX hosts or addresses.
    let mx_branch = async {
        let (mx_findings, mx) = mx::check_mx(dns, d).await;
        let mut listed_ips = mx.addresses.clone();
        listed_ips.extend(opts.ips.iter().copied());
        listed_ips.sort();
        listed_ips.dedup();
        let (ptr, bl, smtp_findings, sts) = tokio::join!(
            mx::check_ptr(dns, &mx.addresses, "MX"),
            blocklist::check_blocklists(dns, d, &listed_ips, &ip_lists, &domain_lists),
            async {
                if opts.smtp {
                    smtp::check_smtp(dns, &mx.hosts, &opts.net).await
                } else {
                    Vec::new()
                }
            },
            async {
                let mut f = policy::check_mta_sts_record(dns, d).await;
                // The policy is fetched only when the record says there is one.
                if f.iter()
                    .any(|x| x.id == "mta-sts.record" && x.status == Status::Pass)
                {
                    f.extend(mta_sts::check_mta_sts_policy(dns, d, &mx.hosts, &opts.net).await);
                }
                f
            }
        );
        (mx_findings, ptr, bl, smtp_findings, sts)
    };
    // Branch: SPF and its tree.
    let spf_branch = async {
        // Whether to suggest "mx" in a missing record is known only from
        // the MX answer; ask for it alongside rather than before the tree.
        let (mx, (mut findings, tree)) = tokio::join!(
            netjes_dns::ResolverExt::mx(dns, d),
            spf::check_spf(dns, d, &opts.ips, false)
        );
        if mx.is_ok_and(|m| m.iter().any(|(_, h)| !h.is_empty())) {
            for f in findings.iter_mut().filter(|f| f.id == "spf.missing") {
                if let Some(fix) = f.fix.as_mut() {
                    fix.value = "v=spf1 mx -all".into();
                }
            }
        }
        (findings, tree)
    };
    // Branch: DKIM. Guessing selectors wants the MX hosts and the SPF
    // record; both are single lookups, asked here again rather than waiting
    // for the other branches.
    let dkim_branch = async {
        if opts.selectors.is_empty() {
            let (mx, txt) = tokio::join!(
                netjes_dns::ResolverExt::mx(dns, d),
                netjes_dns::ResolverExt::txt(dns, d)
            );
            let hosts: Vec<String> = mx.unwrap_or_default().into_iter().map(|(_, h)| h).collect();
            let spf_text = txt
                .unwrap_or_default()
                .into_iter()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .find(|t| t.to_ascii_lowercase().starts_with("v=spf1"))
                .unwrap_or_default();
            dkim::check_dkim(dns, d, &opts.selectors, &hosts, &spf_text).await
        } else {
            dkim::check_dkim(dns, d, &opts.selectors, &[], "").await
        }
    };
    let (mx_out, (spf_findings, spf_tree), dkim_findings, dmarc_findings, ptr_ips, rpt, bimi) = tokio::join!(
        mx_branch,
        spf_branch,
        dkim_branch,
        dmarc::check_dmarc(dns, d),
        mx::check_ptr(dns, &opts.ips, "sending address"),
        policy::check_tls_rpt(dns, d),
        policy::check_bimi(dns, d)
    );
    let (mx_findings, ptr_mx, bl, smtp_findings, sts) = mx_out;
    let mut findings = Vec::new();
    findings.extend(mx_findings);
    findings.extend(ptr_mx);
    findings.extend(ptr_ips);
    findings.extend(spf_findings);
    findings.extend(dkim_findings);
    findings.extend(dmarc_findings);
    if let Some(ev) = &opts.reports {
        dmarc::apply_reports(&mut findings, d, ev);
    }
    findings.extend(sts);
    findings.extend(rpt);
    findings.extend(bimi);
    findings.extend(bl);
    findings.extend(smtp_findings);
    Report::new(d, findings, spf_tree)
}
