//! The MTA-STS policy (RFC 8461 §3.2, §3.3): fetched over HTTPS from
//! mta-sts.DOMAIN with a valid certificate, no redirects, at most 64 KB, and
//! checked against the MX hosts it must cover.

use crate::report::{Category, Finding, Status};
use crate::tls::{client_config, handshake, https_get, NetOptions};
use netjes_dns::{Resolver, ResolverExt};
use std::net::{IpAddr, SocketAddr};

const C: Category = Category::MtaSts;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: String,
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// Parses a policy file (RFC 8461 §3.2).
pub fn parse_policy(text: &str) -> Result<StsPolicy, String> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("{line:?} is not a key: value line"))?;
        let (k, v) = (k.trim(), v.trim());
        match k {
            "version" => version = Some(v.to_string()),
            "mode" => mode = Some(v.to_string()),
            "max_age" => {
                max_age = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("max_age {v:?} is not a number"))?,
                )
            }
            "mx" => mx.push(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("the first key must be version: STSv1".into());
    }
    let mode = mode.ok_or("mode: is missing")?;
    if !matches!(mode.as_str(), "enforce" | "testing" | "none") {
        return Err(format!("mode {mode:?} must be enforce, testing or none"));
    }
    let max_age = max_age.ok_or("max_age: is missing")?;
    if max_age > 31_557_600 {
        return Err(format!("max_age {max_age} is over one year (31557600)"));
    }
    if mx.is_empty() && mode != "none" {
        return Err("no mx: lines: the policy covers no host".into());
    }
    Ok(StsPolicy { mode, mx, max_age })
}

/// RFC 8461 §4.1: "*.example.com" matches one label left of example.com.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
        None => host == pattern,
    }
}

/// Why a domain's policy could not be had; each carries the words the
/// check shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// mta-sts.DOMAIN could not be resolved (DNS failure): try later.
    Resolve(String),
    /// mta-sts.DOMAIN has no address.
    NoAddress(String),
    /// It resolves to an address the caller may not reach.
    NotPublic(String),
    /// The TLS handshake failed: the certificate is not valid for it.
    Tls(String),
    /// No connection, no answer in time, or HTTP broke off: try later.
    Unreachable(String),
    /// A redirect, which RFC 8461 §3.3 forbids following.
    Redirect(String),
    /// Another status than 200.
    Status(String),
    /// The body is not a valid policy; the content type it came with.
    Invalid(String, String),
}

impl FetchError {
    pub fn message(&self) -> &str {
        match self {
            FetchError::Resolve(m) | FetchError::NoAddress(m) | FetchError::NotPublic(m) | FetchError::Tls(m) | FetchError::Unreachable(m) | FetchError::Redirect(m) | FetchError::Status(m) | FetchError::Invalid(m, _) => m,
        }
    }

    /// Whether trying again later may help.
    pub fn is_temporary(&self) -> bool {
        matches!(self, FetchError::Resolve(_) | FetchError::Unreachable(_))
    }
}

/// A policy as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub policy: StsPolicy,
    /// The policy file as served.
    pub text: String,
    pub content_type: String,
}

/// Fetches a domain's policy (RFC 8461 §3.3): HTTPS to mta-sts.DOMAIN
/// with a certificate valid for it, no redirects, at most 64 KB.
pub async fn fetch_policy(dns: &dyn Resolver, domain: &str, net: &NetOptions) -> Result<Fetched, FetchError> {
    let host = format!("mta-sts.{domain}");
    let url = format!("https://{host}/.well-known/mta-sts.txt");
    let (a, aaaa) = tokio::join!(dns.a(&host), dns.aaaa(&host));
    let temporary = [a.as_ref().err(), aaaa.as_ref().err()]
        .into_iter()
        .flatten()
        .find(|e| e.is_temporary())
        .cloned();
    let addrs: Vec<IpAddr> = a
        .unwrap_or_default()
        .into_iter()
        .map(IpAddr::V4)
        .chain(aaaa.unwrap_or_default().into_iter().map(IpAddr::V6))
        .collect();
    let Some(ip) = addrs.first() else {
        return Err(match temporary {
            Some(e) => FetchError::Resolve(format!("{host} could not be resolved: {e}")),
            None => FetchError::NoAddress(format!("{host} has no address, so the policy at {url} cannot be fetched")),
        });
    };
    if net.public_only && !netjes_net::is_public(*ip) {
        // No connection at all, and no word on what answers there.
        return Err(FetchError::NotPublic(format!("not checked: {host} resolves to {ip}, which is not a public address")));
    }
    let cfg = client_config(net.ca_file.as_deref()).map_err(FetchError::Tls)?;
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect(SocketAddr::new(*ip, net.https_port))
            .await
            .map_err(|e| format!("cannot connect to {host} ({ip}): {e}"))?;
        let mut tls = handshake(cfg, &host, tcp)
            .await
            .map_err(|e| format!("TLS with {host} failed: {e}"))?;
        https_get(&mut tls, &host, "/.well-known/mta-sts.txt", 64 * 1024).await
    };
    let (status, content_type, body) = match tokio::time::timeout(net.timeout, fetch).await {
        Err(_) => return Err(FetchError::Unreachable(format!("{url} did not answer within {:?}", net.timeout))),
        Ok(Err(e)) if e.starts_with("TLS") => return Err(FetchError::Tls(format!("{e}: senders cannot fetch the policy and will ignore it"))),
        Ok(Err(e)) => return Err(FetchError::Unreachable(e)),
        Ok(Ok(r)) => r,
    };
    if (300..400).contains(&status) {
        return Err(FetchError::Redirect(format!("{url} answers {status}: RFC 8461 §3.3 forbids following redirects")));
    }
    if status != 200 {
        return Err(FetchError::Status(format!("{url} answers HTTP {status}")));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let policy = parse_policy(&text).map_err(|e| FetchError::Invalid(format!("the policy at {url} is invalid: {e}"), content_type.clone()))?;
    Ok(Fetched { policy, text, content_type })
}

pub async fn check_mta_sts_policy(
    dns: &dyn Resolver,
    domain: &str,
    mx_hosts: &[String],
    net: &NetOptions,
) -> Vec<Finding> {
    let url = format!("https://mta-sts.{domain}/.well-known/mta-sts.txt");
    let f = |st: Status, m: &str| vec![Finding::new(C, "mta-sts.policy", st, m)];
    let content_type_warning = |ct: &str| {
        (!ct.to_ascii_lowercase().starts_with("text/plain")).then(|| {
            Finding::new(C, "mta-sts.content-type", Status::Warn, format!("{url} is served as {ct:?}; RFC 8461 §3.2 wants text/plain"))
        })
    };
    let fetched = match fetch_policy(dns, domain, net).await {
        Ok(x) => x,
        Err(e @ (FetchError::Resolve(_) | FetchError::NotPublic(_) | FetchError::Unreachable(_))) => return f(Status::Error, e.message()),
        Err(FetchError::Tls(m)) if !m.starts_with("TLS") => return f(Status::Error, &m),
        Err(e @ FetchError::Tls(_)) => {
            return vec![Finding::new(C, "mta-sts.policy", Status::Fail, e.message()).advice("the certificate must be valid for mta-sts.DOMAIN")]
        }
        Err(FetchError::Invalid(m, ct)) => {
            let mut out: Vec<Finding> = content_type_warning(&ct).into_iter().collect();
            out.extend(f(Status::Fail, &m));
            return out;
        }
        Err(e) => return f(Status::Fail, e.message()),
    };
    let mut out: Vec<Finding> = content_type_warning(&fetched.content_type).into_iter().collect();
    let policy = fetched.policy;
    let st = if policy.mode == "enforce" {
        Status::Pass
    } else {
        Status::Info
    };
    out.push(Finding::new(
        C,
        "mta-sts.policy",
        st,
        format!(
            "policy mode {} for {}, max_age {}",
            policy.mode,
            policy.mx.join(", "),
            policy.max_age
        ),
    ));
    for h in mx_hosts {
        if !policy.mx.iter().any(|p| mx_matches(p, h)) {
            out.push(Finding::new(C, "mta-sts.mx", Status::Fail, format!("MX {h} is not covered by the policy: in enforce mode senders refuse to deliver to it")).advice(format!("add \"mx: {h}\" to {url}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mx, vec!["mail.example.com", "*.example.net"]);
        assert!(
            mx_matches("*.example.net", "mx1.example.net")
                && !mx_matches("*.example.net", "a.b.example.net")
        );
        assert!(parse_policy("mode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse_policy("version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999\n").is_err());
    }
}
