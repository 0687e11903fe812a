//! Reputation: the sending address against IP blocklists and every link
//! domain against domain blocklists, through the same blocklist code as
//! `netjes check`, so that a list's refusal (127.255.255.0/24) counts as an
//! error there and here alike.

use crate::finding::Finding;
use crate::links::org_domain;
use netjes_check::blocklist::check_blocklists;
use netjes_check::Status;
use netjes_dns::Resolver;
use std::net::IpAddr;

/// At most this many link domains are looked up; a message with more is
/// judged on the first ones (spam with hundreds of links is rare, and each
/// costs a query per list).
pub const MAX_LINK_DOMAINS: usize = 20;

fn map(f: netjes_check::Finding, listed_id: &'static str) -> Option<Finding> {
    match f.status {
        Status::Fail => Some({
            let mut x = Finding::new(listed_id, f.message);
            if let Some(a) = f.advice {
                x = x.fix(a);
            }
            x
        }),
        Status::Error => Some(Finding::new("reputation.list-error", f.message)),
        _ => None,
    }
}

pub async fn check_reputation(
    dns: &dyn Resolver,
    ip: Option<IpAddr>,
    link_hosts: &[String],
    ip_lists: &[String],
    domain_lists: &[String],
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let (Some(ip), false) = (ip, ip_lists.is_empty()) {
        out.extend(
            check_blocklists(dns, "", &[ip], ip_lists, &[])
                .await
                .into_iter()
                .filter_map(|f| map(f, "reputation.ip-listed")),
        );
    }
    if !domain_lists.is_empty() {
        let mut domains: Vec<String> = Vec::new();
        for h in link_hosts {
            let d = org_domain(h);
            if !domains.contains(&d) && d.contains('.') {
                domains.push(d);
            }
        }
        domains.truncate(MAX_LINK_DOMAINS);
        let all = netjes_dns::join_all(
            domains
                .iter()
                .map(|d| check_blocklists(dns, d, &[], &[], domain_lists)),
        )
        .await;
        out.extend(
            all.into_iter()
                .flatten()
                .filter_map(|f| map(f, "reputation.domain-listed")),
        );
    }
    out
}
