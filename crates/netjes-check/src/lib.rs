//! `netjes check DOMAIN`: the domain audit.
//!
//! Each category is a module that turns DNS answers into findings; this
//! file runs them, the independent ones at the same time, and builds the
//! report. A DNS failure anywhere is status error ("could not be checked"),
//! never "missing".

pub mod blocklist;
pub mod dkim;
pub mod dmarc;
pub mod mta_sts;
pub mod mx;
pub mod policy;
pub mod report;
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
}

/// Audits one domain.
pub async fn check_domain(dns: &dyn Resolver, domain: &str, opts: &CheckOptions) -> Report {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let d = domain.as_str();
    // MX first is not needed by SPF's tree or DMARC, so all three start now.
    let ((mx_findings, mx), spf_out, dmarc_findings) = tokio::join!(mx::check_mx(dns, d), async {
        // The SPF suggestion mentions mx only when there are MX hosts; it is
        // cheap to ask again (the cache answers).
        let has_mx = netjes_dns::ResolverExt::mx(dns, d).await.map(|m| !m.is_empty()).unwrap_or(false);
        spf::check_spf(dns, d, &opts.ips, has_mx).await
    }, dmarc::check_dmarc(dns, d));
    let (spf_findings, spf_tree) = spf_out;
    let spf_text = spf_tree.as_ref().and_then(|t| t.record.clone()).unwrap_or_default();
    let ip_lists = opts.ip_lists.clone().unwrap_or_else(|| blocklist::DEFAULT_IP_LISTS.iter().map(|s| s.to_string()).collect());
    let domain_lists = opts.domain_lists.clone().unwrap_or_else(|| blocklist::DEFAULT_DOMAIN_LISTS.iter().map(|s| s.to_string()).collect());
    let mut listed_ips = mx.addresses.clone();
    listed_ips.extend(opts.ips.iter().copied());
    listed_ips.sort();
    listed_ips.dedup();
    let (dkim_findings, ptr_mx, ptr_ips, sts, rpt, bimi, bl, smtp_findings) = tokio::join!(
        dkim::check_dkim(dns, d, &opts.selectors, &mx.hosts, &spf_text),
        mx::check_ptr(dns, &mx.addresses, "MX"),
        mx::check_ptr(dns, &opts.ips, "sending address"),
        async {
            let mut f = policy::check_mta_sts_record(dns, d).await;
            // The policy is fetched only when the record says there is one.
            if f.iter().any(|x| x.id == "mta-sts.record" && x.status == Status::Pass) {
                f.extend(mta_sts::check_mta_sts_policy(dns, d, &mx.hosts, &opts.net).await);
            }
            f
        },
        policy::check_tls_rpt(dns, d),
        policy::check_bimi(dns, d),
        blocklist::check_blocklists(dns, d, &listed_ips, &ip_lists, &domain_lists),
        async {
            if opts.smtp {
                smtp::check_smtp(dns, &mx.hosts, &opts.net).await
            } else {
                Vec::new()
            }
        }
    );
    let mut findings = Vec::new();
    findings.extend(mx_findings);
    findings.extend(ptr_mx);
    findings.extend(ptr_ips);
    findings.extend(spf_findings);
    findings.extend(dkim_findings);
    findings.extend(dmarc_findings);
    findings.extend(sts);
    findings.extend(rpt);
    findings.extend(bimi);
    findings.extend(bl);
    findings.extend(smtp_findings);
    Report::new(d, findings, spf_tree)
}
