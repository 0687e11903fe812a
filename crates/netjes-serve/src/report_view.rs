//! What the stored reports say of one domain, for the web UI, the API and
//! `netjes report show`: its sources (with what DNS says of each), its
//! readiness, its days, and its TLS reports.

use crate::store::{Store, StoreError};
use netjes_dns::Resolver;
use netjes_reports::sources::{Day, Overview, SourceFacts};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Sources looked up in DNS, the biggest first; the rest are shown with
/// nothing known of them.
const MAX_LOOKED_UP: usize = 200;

/// What DNS says of each source: its forward-confirmed PTR, the
/// organisation of the PTR's base domain, and whether the domain's own
/// SPF lets it send; 16 sources at a time.
pub async fn facts_of(dns: &dyn Resolver, domain: &str, ips: &[IpAddr]) -> BTreeMap<IpAddr, SourceFacts> {
    let one = |ip: IpAddr| async move {
        let ptr = match netjes_check::mx::iprev(dns, ip).await {
            netjes_check::mx::Iprev::Confirmed(n) => Some(n),
            _ => None,
        };
        let sender = format!("postmaster@{domain}");
        let req = netjes_auth::spf::SpfRequest { ip, sender: &sender, helo: domain, receiver: "netjes" };
        let spf = netjes_auth::spf::check_host(dns, &req, netjes_auth::spf::Identity::Mailfrom).await;
        let spf_allowed = spf.result == netjes_auth::spf::SpfResult::Pass;
        // The include of the domain's own SPF that lets it send names a
        // provider as well as a PTR does (include:sendgrid.net).
        let via_spf = spf
            .mechanism_domain
            .filter(|m| spf_allowed && base_of(m) != base_of(domain))
            .and_then(|m| base_of(&m));
        let organization = organization_of(ptr.as_deref().and_then(base_of), via_spf);
        (ip, SourceFacts { ptr, organization, spf_allowed })
    };
    let mut out = BTreeMap::new();
    for chunk in ips.iter().take(MAX_LOOKED_UP).collect::<Vec<_>>().chunks(16) {
        for (ip, f) in netjes_dns::join_all(chunk.iter().map(|ip| one(**ip))).await {
            out.insert(ip, f);
        }
    }
    out
}

fn base_of(name: &str) -> Option<String> {
    psl::domain_str(name.trim_end_matches('.')).map(str::to_ascii_lowercase)
}

/// The organisation of a source: a known sender named by its PTR, then
/// one named by the SPF include that lets it send, then the PTR's base
/// domain, then the include's.
fn organization_of(ptr_base: Option<String>, spf_base: Option<String>) -> Option<String> {
    let known = |b: &Option<String>| b.as_deref().and_then(netjes_reports::sources::organization).map(str::to_string);
    known(&ptr_base).or_else(|| known(&spf_base)).or(ptr_base).or(spf_base)
}

/// A domain's view from `since_day` on.
#[derive(Debug, Clone, Serialize)]
pub struct DomainView {
    #[serde(flatten)]
    pub overview: Overview,
    pub days: Vec<Day>,
}

pub async fn domain_view(store: &Store, dns: &dyn Resolver, domain: &str, since_day: i64) -> Result<DomainView, StoreError> {
    let rows = store.report_rows(domain, since_day)?;
    let mut volume: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for r in &rows {
        *volume.entry(r.source_ip).or_default() += r.count;
    }
    let mut ips: Vec<IpAddr> = volume.keys().copied().collect();
    ips.sort_by_key(|ip| (std::cmp::Reverse(volume[ip]), *ip));
    let facts = facts_of(dns, domain, &ips).await;
    Ok(DomainView {
        overview: netjes_reports::sources::overview(domain, &rows, &facts),
        days: netjes_reports::sources::daily(&rows),
    })
}

/// What the last `days` of a domain's aggregate reports say, for the
/// domain check's DMARC advice; `None` when the store has none.
pub async fn evidence(store: &Store, dns: &dyn Resolver, domain: &str, days: u32) -> Result<Option<netjes_check::dmarc::ReportEvidence>, StoreError> {
    let since = crate::store::now().div_euclid(86_400) - i64::from(days);
    let view = domain_view(store, dns, domain, since).await?;
    let r = &view.overview.readiness;
    Ok((r.messages > 0).then(|| netjes_check::dmarc::ReportEvidence {
        messages: r.messages,
        ready: r.would_fail.is_empty(),
        sentence: r.sentence.clone(),
        days,
    }))
}

/// TLS reports of a domain, summed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsSummary {
    pub reports: u64,
    pub successful_sessions: u64,
    pub failed_sessions: u64,
    /// Failed sessions by kind: certificate, starttls, mta-sts, dane, other.
    pub failures: BTreeMap<String, u64>,
    /// Failed sessions by RFC 8460 result type.
    pub result_types: BTreeMap<String, u64>,
    pub organizations: Vec<String>,
}

/// The kind of an RFC 8460 §4.3 result type.
pub fn failure_kind(result_type: &str) -> &'static str {
    match result_type {
        t if t.starts_with("certificate-") => "certificate",
        "starttls-not-supported" => "starttls",
        t if t.starts_with("sts-") => "mta-sts",
        t if t.starts_with("tlsa-") || t == "dnssec-invalid" || t == "dane-required" => "dane",
        _ => "other",
    }
}

pub fn tls_summary(store: &Store, domain: &str) -> Result<TlsSummary, StoreError> {
    let mut s = TlsSummary::default();
    for r in store.reports_for(domain)? {
        if r.kind != "tls" || r.held.is_some() {
            continue;
        }
        let Some((_, parsed)) = store.report(r.id)? else { continue };
        s.reports += 1;
        if !s.organizations.contains(&r.reporter) {
            s.organizations.push(r.reporter.clone());
        }
        for p in parsed["policies"].as_array().into_iter().flatten() {
            s.successful_sessions += p["successful_sessions"].as_u64().unwrap_or(0);
            s.failed_sessions += p["failed_sessions"].as_u64().unwrap_or(0);
            for f in p["failures"].as_array().into_iter().flatten() {
                let t = f["result_type"].as_str().unwrap_or("unknown").to_ascii_lowercase();
                let n = f["failed_sessions"].as_u64().unwrap_or(0);
                *s.failures.entry(failure_kind(&t).to_string()).or_default() += n;
                *s.result_types.entry(t).or_default() += n;
            }
        }
    }
    s.organizations.sort();
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn organisations_come_from_the_ptr_then_the_spf_include() {
        use super::organization_of as o;
        let s = |x: &str| Some(x.to_string());
        assert_eq!(o(s("sendgrid.net"), s("google.com")).as_deref(), Some("SendGrid"));
        assert_eq!(o(s("myhoster.example"), s("google.com")).as_deref(), Some("Google"));
        assert_eq!(o(s("myhoster.example"), None).as_deref(), Some("myhoster.example"));
        assert_eq!(o(None, s("spf.example")).as_deref(), Some("spf.example"));
        assert_eq!(o(None, None), None);
    }

    #[test]
    fn tls_failures_are_grouped_by_kind() {
        use super::failure_kind;
        assert_eq!(failure_kind("certificate-expired"), "certificate");
        assert_eq!(failure_kind("starttls-not-supported"), "starttls");
        assert_eq!(failure_kind("sts-policy-invalid"), "mta-sts");
        assert_eq!(failure_kind("tlsa-invalid"), "dane");
        assert_eq!(failure_kind("validation-failure"), "other");
    }
}
