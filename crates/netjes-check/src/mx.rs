//! MX records (RFC 5321 §5.1, RFC 7505 null MX) and the reverse DNS of the
//! addresses that send and receive mail.

use crate::report::{Category, Finding, Fix, Status};
use netjes_dns::{Resolver, ResolverExt};
use std::net::IpAddr;

/// What the MX check learned, for the checks that follow it.
#[derive(Debug, Clone, Default)]
pub struct MxFacts {
    pub hosts: Vec<String>,
    pub addresses: Vec<IpAddr>,
    pub null_mx: bool,
}

/// More MX hosts than this are not looked at: each costs lookups and, with
/// --smtp, a connection.
const MAX_MX: usize = 20;

pub async fn check_mx(dns: &dyn Resolver, domain: &str) -> (Vec<Finding>, MxFacts) {
    const C: Category = Category::Mx;
    let mut out = Vec::new();
    let mut facts = MxFacts::default();
    let mxs = match dns.mx(domain).await {
        Ok(m) => m,
        Err(e) if e.is_temporary() => {
            out.push(
                Finding::new(
                    C,
                    "mx.dns-error",
                    Status::Error,
                    format!("MX could not be checked: {e}"),
                )
                .advice("try again later; this is a DNS failure, not a missing record"),
            );
            return (out, facts);
        }
        Err(_) => {
            out.push(
                Finding::new(C, "mx.missing", Status::Warn, format!("{domain} has no MX record: senders fall back to its A record (RFC 5321 §5.1)"))
                    .advice(format!("publish an MX for the server that receives your mail (here mail.{domain}; use its real name). Only if the domain sends and receives no mail at all, publish the null MX \"{domain}. IN MX 0 .\" (RFC 7505) instead"))
                    .fix(Fix { name: domain.into(), rtype: "MX".into(), value: format!("10 mail.{domain}.") }),
            );
            return (out, facts);
        }
    };
    if mxs.len() == 1 && mxs[0].1.is_empty() {
        facts.null_mx = true;
        out.push(Finding::new(
            C,
            "mx.null",
            Status::Info,
            format!("{domain} has a null MX: it receives no mail (RFC 7505)"),
        ));
        return (out, facts);
    }
    if mxs.iter().any(|(_, h)| h.is_empty()) {
        out.push(Finding::new(
            C,
            "mx.null-mixed",
            Status::Fail,
            "a null MX (\".\") must be the only MX record (RFC 7505 §3)",
        ));
    }
    if mxs.len() > MAX_MX {
        out.push(Finding::new(
            C,
            "mx.many",
            Status::Warn,
            format!(
                "{domain} has {} MX records; only the first {MAX_MX} are checked",
                mxs.len()
            ),
        ));
    }
    let mxs: Vec<(u16, String)> = mxs.into_iter().take(MAX_MX).collect();
    let hosts: Vec<String> = mxs
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| h.clone())
        .collect();
    let lookups = hosts
        .iter()
        .map(|h| async move { (dns.a(h).await, dns.aaaa(h).await, dns.cname(h).await) });
    let answers = netjes_dns::join_all(lookups).await;
    for ((pref, host), (a, aaaa, cname)) in mxs.iter().filter(|(_, h)| !h.is_empty()).zip(answers) {
        let id = format!("mx.host.{host}");
        if host.parse::<IpAddr>().is_ok() {
            out.push(Finding::new(
                C,
                &id,
                Status::Fail,
                format!("MX {pref} {host} is an IP address; an MX must name a host"),
            ));
            continue;
        }
        if let Err(e) = &cname {
            if e.is_temporary() {
                out.push(Finding::new(
                    C,
                    &format!("{id}.cname"),
                    Status::Error,
                    format!("whether MX {host} is an alias could not be checked: {e}"),
                ));
            }
        }
        if let Ok(target) = cname {
            out.push(
                Finding::new(C, &format!("{id}.cname"), Status::Fail, format!("MX {pref} {host} is an alias (CNAME to {target}); RFC 2181 §10.3 forbids it and some senders refuse it"))
                    .fix(Fix { name: domain.into(), rtype: "MX".into(), value: format!("{pref} {target}.") }),
            );
        }
        let mut addrs: Vec<IpAddr> = Vec::new();
        let mut temp = None;
        for r in [
            a.map(|v| v.into_iter().map(IpAddr::V4).collect::<Vec<_>>()),
            aaaa.map(|v| v.into_iter().map(IpAddr::V6).collect()),
        ] {
            match r {
                Ok(v) => addrs.extend(v),
                Err(e) if e.is_temporary() => temp = Some(e),
                Err(_) => {}
            }
        }
        if addrs.is_empty() {
            match temp {
                Some(e) => out.push(Finding::new(C, &id, Status::Error, format!("MX {pref} {host} could not be resolved: {e}"))),
                None => out.push(Finding::new(C, &id, Status::Fail, format!("MX {pref} {host} has no A or AAAA record: mail for {domain} cannot be delivered there"))),
            }
            continue;
        }
        let private: Vec<String> = addrs
            .iter()
            .filter(|a| !netjes_net::is_public(**a))
            .map(|a| a.to_string())
            .collect();
        if !private.is_empty() {
            // A LAN address published to the world (a split-horizon
            // mistake): senders on the internet cannot reach it.
            out.push(Finding::new(
                C,
                &format!("{id}.private"),
                Status::Fail,
                format!("MX {pref} {host} resolves to {}, which is not a public address: senders on the internet cannot reach it", private.join(", ")),
            )
            .advice(format!("publish the public address of {host} in the public DNS (RFC 1918 addresses belong to the internal view only)")));
        }
        let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        out.push(Finding::new(
            C,
            &id,
            Status::Pass,
            format!("MX {pref} {host} → {}", shown.join(", ")),
        ));
        facts.addresses.extend(addrs);
    }
    facts.hosts = hosts;
    (out, facts)
}

/// Names that look like an ISP's pool rather than a mail server.
pub fn looks_generic(name: &str, ip: IpAddr) -> bool {
    let n = name.to_ascii_lowercase();
    let words = [
        "dynamic",
        "dyn.",
        "dhcp",
        "dsl",
        "cable",
        "pool",
        "ppp",
        "dial",
        "client",
        "broadband",
        "customer",
        "static-",
        "host-",
        "ip-",
        "unassigned",
    ];
    if words.iter().any(|w| n.contains(w)) {
        return true;
    }
    // The address's own digits in the name: 192-0-2-25.example.net.
    if let IpAddr::V4(v4) = ip {
        let o = v4.octets();
        for sep in ['-', '.', '_'] {
            let fwd = format!("{}{sep}{}{sep}{}{sep}{}", o[0], o[1], o[2], o[3]);
            let rev = format!("{}{sep}{}{sep}{}{sep}{}", o[3], o[2], o[1], o[0]);
            if n.contains(&fwd) || n.contains(&rev) {
                return true;
            }
        }
    }
    false
}

/// The forward-confirmed reverse DNS of one address (RFC 8601 §3 iprev).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iprev {
    /// A PTR name whose A/AAAA records include the address.
    Confirmed(String),
    /// No PTR record (NXDOMAIN or NODATA).
    NoPtr,
    /// PTR names, none of which resolves back to the address.
    NotConfirmed(Vec<String>),
    /// A DNS timeout or SERVFAIL: nothing can be said.
    Temporary(String),
}

/// Looks up the PTR names of `ip` and confirms one forward, at most 10
/// names as RFC 8601 §3 suggests bounding the work.
pub async fn iprev(dns: &dyn Resolver, ip: IpAddr) -> Iprev {
    let names = match dns.ptr(ip).await {
        Ok(n) => n,
        Err(e) if e.is_temporary() => return Iprev::Temporary(e.to_string()),
        Err(_) => return Iprev::NoPtr,
    };
    let mut temp = None;
    for n in names.iter().take(10) {
        match dns.addrs_like(n, ip).await {
            Ok(a) if a.contains(&ip) => return Iprev::Confirmed(n.clone()),
            Err(e) if e.is_temporary() => temp = Some(e.to_string()),
            _ => {}
        }
    }
    match temp {
        Some(e) => Iprev::Temporary(e),
        None => Iprev::NotConfirmed(names),
    }
}

/// Forward-confirmed reverse DNS of each address (RFC 8601 iprev).
pub async fn check_ptr(dns: &dyn Resolver, addresses: &[IpAddr], what: &str) -> Vec<Finding> {
    const C: Category = Category::Ptr;
    let results = netjes_dns::join_all(
        addresses
            .iter()
            .map(|ip| async move { (*ip, iprev(dns, *ip).await) }),
    )
    .await;
    let mut out = Vec::new();
    for (ip, result) in results {
        let id = format!("ptr.{ip}");
        let rev = netjes_dns::reverse_name(ip);
        match result {
            Iprev::Temporary(e) => out.push(Finding::new(C, &id, Status::Error, format!("the PTR of {ip} could not be checked: {e}"))),
            Iprev::NoPtr => out.push(
                Finding::new(C, &id, Status::Fail, format!("{ip} ({what}) has no PTR record: many receivers refuse mail from it"))
                    .advice(format!("ask whoever owns the address block (your hosting provider) to set the PTR of {ip} to your mail server's name")),
            ),
            Iprev::Confirmed(name) if looks_generic(&name, ip) => out.push(
                Finding::new(C, &id, Status::Warn, format!("{ip} ({what}) → {name}, which looks like a generic or dynamic name"))
                    .advice("receivers score generic names as home connections; set a PTR like mail.yourdomain"),
            ),
            Iprev::Confirmed(name) => out.push(Finding::new(C, &id, Status::Pass, format!("{ip} ({what}) → {name} → {ip}: forward-confirmed"))),
            Iprev::NotConfirmed(names) => out.push(
                Finding::new(C, &id, Status::Fail, format!("{ip} ({what}) has PTR {} ({rev}), which does not resolve back to {ip}", names.join(", ")))
                    .advice("publish an A/AAAA record for that name pointing at this address, or change the PTR"),
            ),
        }
    }
    out
}
