//! `netjes check DOMAIN`: the domain audit.
//!
//! Each category is a module that turns DNS answers into findings; this
//! file runs them, the independent ones at the same time, and builds the
//! report. A DNS failure anywhere is status error ("could not be checked"),
//! never "missing".

pub mod dkim;
pub mod dmarc;
pub mod mx;
pub mod report;
pub mod spf;

pub use report::{Category, Finding, Fix, Report, Status};

use netjes_dns::Resolver;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Sending addresses to check (PTR and SPF).
    pub ips: Vec<IpAddr>,
    /// DKIM selectors; empty means guess.
    pub selectors: Vec<String>,
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
    let (dkim_findings, ptr_mx, ptr_ips) = tokio::join!(
        dkim::check_dkim(dns, d, &opts.selectors, &mx.hosts, &spf_text),
        mx::check_ptr(dns, &mx.addresses, "MX"),
        mx::check_ptr(dns, &opts.ips, "sending address")
    );
    let mut findings = Vec::new();
    findings.extend(mx_findings);
    findings.extend(ptr_mx);
    findings.extend(ptr_ips);
    findings.extend(spf_findings);
    findings.extend(dkim_findings);
    findings.extend(dmarc_findings);
    Report::new(d, findings, spf_tree)
}
