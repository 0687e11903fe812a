//! `check_host()` (RFC 7208 §4) over the netjes [`Resolver`].

use super::record::{is_spf_record, parse_record, SpfRecord};
use super::{
    Identity, SpfOutcome, SpfResult, MAX_DNS_LOOKUPS, MAX_NAMES_PER_MECHANISM, MAX_VOID_LOOKUPS,
};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Macro, Mechanism, Qualifier, Variables};
use netjes_dns::{DnsError, Resolver, ResolverExt};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// The SMTP facts SPF works from.
#[derive(Debug, Clone)]
pub struct SpfRequest<'a> {
    pub ip: IpAddr,
    /// MAIL FROM, possibly empty (the null sender).
    pub sender: &'a str,
    pub helo: &'a str,
    /// Our own host name, for `%{r}` in explanations.
    pub receiver: &'a str,
}

/// Evaluates the identity a receiver acts on: MAIL FROM, or for the null
/// sender the HELO identity as postmaster@HELO (§2.4).
pub async fn evaluate(dns: &dyn Resolver, req: &SpfRequest<'_>) -> SpfOutcome {
    if req.sender.is_empty() {
        check_host(dns, req, Identity::Helo).await
    } else {
        check_host(dns, req, Identity::Mailfrom).await
    }
}

/// Runs `check_host()` for one identity.
pub async fn check_host(
    dns: &dyn Resolver,
    req: &SpfRequest<'_>,
    identity: Identity,
) -> SpfOutcome {
    // An IPv4-mapped IPv6 address is the IPv4 client it stands for.
    let ip = match req.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(req.ip),
        v4 => v4,
    };
    let helo = req.helo.trim_end_matches('.');
    let sender = match identity {
        Identity::Helo => format!("postmaster@{helo}"),
        Identity::Mailfrom => {
            let s = req.sender.trim_matches(['<', '>']);
            match s.rsplit_once('@') {
                // §4.3: an empty local-part is "postmaster".
                Some(("", d)) => format!("postmaster@{d}"),
                Some(_) => s.to_string(),
                None => format!("postmaster@{s}"),
            }
        }
    };
    let domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
        .trim_end_matches('.')
        .to_string();

    let mut out = SpfOutcome::new(identity, &domain, &sender);
    // §4.3: a domain that is not a fully qualified name gives "none".
    if !is_fqdn(&domain) {
        out.problem = Some(format!("{domain:?} is not a fully qualified domain name"));
        return out;
    }

    let mut vars = Variables::new();
    vars.set_ip(&ip);
    vars.set_sender(sender.clone().into_bytes());
    vars.set_helo_domain(helo.as_bytes().to_vec());
    vars.set_host_domain(req.receiver.as_bytes().to_vec());
    let mut ev = Evaluator {
        dns,
        ip,
        vars,
        lookups: 0,
        voids: 0,
        validated: None,
        top_record: None,
    };
    let r = ev.check(domain.clone(), 0).await;
    out.dns_lookups = ev.lookups;
    out.void_lookups = ev.voids;
    out.record = ev.top_record;
    match r {
        Ok(done) => {
            out.result = done.result;
            out.mechanism = done.mechanism;
            out.mechanism_domain = done.mechanism_domain;
            out.explanation = done.explanation;
            out.problem = done.note;
        }
        Err(Abort { result, problem }) => {
            out.result = result;
            out.problem = Some(problem);
        }
    }
    out
}

fn is_fqdn(d: &str) -> bool {
    !d.starts_with('[') && d.contains('.') && netjes_dns::is_valid_query_name(d)
}

/// A result that ends evaluation at once (permerror, temperror).
struct Abort {
    result: SpfResult,
    problem: String,
}

fn perm(problem: impl Into<String>) -> Abort {
    Abort {
        result: SpfResult::Permerror,
        problem: problem.into(),
    }
}

fn temp(e: &DnsError) -> Abort {
    Abort {
        result: SpfResult::Temperror,
        problem: e.to_string(),
    }
}

/// The result of evaluating one domain's record.
struct Done {
    result: SpfResult,
    mechanism: Option<String>,
    mechanism_domain: Option<String>,
    explanation: Option<String>,
    note: Option<String>,
}

struct Evaluator<'a> {
    dns: &'a dyn Resolver,
    ip: IpAddr,
    vars: Variables<'static>,
    lookups: u32,
    voids: u32,
    /// The validated `%{p}` name, computed once on first use.
    validated: Option<String>,
    top_record: Option<String>,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<'a> Evaluator<'a> {
    fn count_lookup(&mut self, term: &str) -> Result<(), Abort> {
        self.lookups += 1;
        if self.lookups > MAX_DNS_LOOKUPS {
            return Err(perm(format!(
                "more than {MAX_DNS_LOOKUPS} DNS lookups: the limit is crossed at {term:?} (RFC 7208 §4.6.4)"
            )));
        }
        Ok(())
    }

    fn count_void(&mut self, e: &DnsError, term: &str) -> Result<(), Abort> {
        if e.is_void() {
            self.voids += 1;
            if self.voids > MAX_VOID_LOOKUPS {
                return Err(perm(format!(
                    "more than {MAX_VOID_LOOKUPS} lookups returned no record: the limit is crossed at {term:?} (RFC 7208 §4.6.4)"
                )));
            }
        }
        Ok(())
    }

    /// Expands a domain-spec, truncating from the left to 253 octets (§7.3).
    fn expand(&self, m: &Macro, domain: &str) -> String {
        let mut vars = self.vars.clone();
        vars.set_domain(domain.as_bytes().to_vec());
        let mut v = m.eval(&vars, domain, false).into_owned();
        while v.ends_with('.') {
            v.pop();
        }
        while v.len() > 253 {
            match v.split_once('.') {
                Some((_, rest)) => v = rest.to_string(),
                None => break,
            }
        }
        v
    }

    async fn ensure_validated(&mut self, domain: &str) {
        if self.validated.is_some() {
            return;
        }
        let names = self.dns.ptr(self.ip).await.unwrap_or_default();
        let mut valid = Vec::new();
        for n in names.into_iter().take(MAX_NAMES_PER_MECHANISM) {
            if let Ok(addrs) = self.dns.addrs_like(&n, self.ip).await {
                if addrs.contains(&self.ip) {
                    valid.push(n);
                }
            }
        }
        // §7.3: prefer the <domain> itself, then a subdomain of it.
        let d = domain.to_ascii_lowercase();
        let pick = valid
            .iter()
            .find(|n| n.eq_ignore_ascii_case(&d))
            .or_else(|| {
                valid
                    .iter()
                    .find(|n| n.to_ascii_lowercase().ends_with(&format!(".{d}")))
            })
            .or(valid.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_string());
        self.vars.set_validated_domain(pick.clone().into_bytes());
        self.validated = Some(pick);
    }

    /// Fetches and selects the SPF record of `domain` (§4.4, §4.5).
    async fn fetch(&mut self, domain: &str) -> Result<Option<SpfRecord>, Abort> {
        let txts = match self.dns.txt(domain).await {
            Ok(t) => t,
            Err(e) if e.is_temporary() => return Err(temp(&e)),
            Err(_) => return Ok(None),
        };
        let spf: Vec<&Vec<u8>> = txts.iter().filter(|t| is_spf_record(t)).collect();
        match spf.as_slice() {
            [] => Ok(None),
            [one] => parse_record(one)
                .map(Some)
                .map_err(|e| perm(format!("the SPF record of {domain} is invalid: {e}"))),
            _ => Err(perm(format!(
                "{domain} publishes {} SPF records; there must be one (RFC 7208 §4.5)",
                spf.len()
            ))),
        }
    }

    fn check(&mut self, domain: String, depth: u32) -> BoxFut<'_, Result<Done, Abort>> {
        Box::pin(async move {
            let Some(rec) = self.fetch(&domain).await? else {
                return Ok(Done {
                    result: SpfResult::None,
                    mechanism: None,
                    mechanism_domain: None,
                    explanation: None,
                    note: Some(format!("{domain} publishes no SPF record")),
                });
            };
            if depth == 0 {
                self.top_record = Some(rec.text.clone());
            }
            if rec.spf.directives.iter().any(|d| d.mechanism.needs_ptr())
                || rec.spf.redirect.as_ref().is_some_and(|m| m.needs_ptr())
            {
                self.ensure_validated(&domain).await;
            }
            for (directive, term) in rec.spf.directives.iter().zip(rec.terms.iter()) {
                if self
                    .matches(&directive.mechanism, term, &domain, depth)
                    .await?
                {
                    let result = match directive.qualifier {
                        Qualifier::Pass => SpfResult::Pass,
                        Qualifier::Fail => SpfResult::Fail,
                        Qualifier::SoftFail => SpfResult::Softfail,
                        Qualifier::Neutral => SpfResult::Neutral,
                    };
                    let explanation = if result == SpfResult::Fail {
                        self.explain(&rec, &domain).await
                    } else {
                        None
                    };
                    return Ok(Done {
                        result,
                        mechanism: Some(term.clone()),
                        mechanism_domain: Some(domain.clone()),
                        explanation,
                        note: None,
                    });
                }
            }
            // §6.1: redirect= applies only when nothing matched and there is no "all".
            let has_all = rec
                .spf
                .directives
                .iter()
                .any(|d| matches!(d.mechanism, Mechanism::All));
            if let (Some(target), false) = (&rec.spf.redirect, has_all) {
                let term = format!("redirect={}", macro_text(&rec.text, "redirect="));
                self.count_lookup(&term)?;
                let target = self.expand(target, &domain);
                if !is_fqdn(&target) {
                    return Err(perm(format!(
                        "{term:?} expands to {target:?}, which is not a domain"
                    )));
                }
                let inner = self.check(target.clone(), depth + 1).await?;
                if inner.result == SpfResult::None {
                    return Err(perm(format!(
                        "{term:?} points at {target}, which has no SPF record (RFC 7208 §6.1)"
                    )));
                }
                return Ok(inner);
            }
            Ok(Done {
                result: SpfResult::Neutral,
                mechanism: None,
                mechanism_domain: Some(domain.clone()),
                explanation: None,
                note: Some(
                    "no mechanism matched and there is no \"all\": the default result is neutral"
                        .into(),
                ),
            })
        })
    }

    async fn matches(
        &mut self,
        m: &Mechanism,
        term: &str,
        domain: &str,
        depth: u32,
    ) -> Result<bool, Abort> {
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4 { addr, mask } => Ok(match self.ip {
                IpAddr::V4(ip) => u32::from(ip) & mask == u32::from(*addr) & mask,
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6 { addr, mask } => Ok(match self.ip {
                IpAddr::V6(ip) => u128::from(ip) & mask == u128::from(*addr) & mask,
                IpAddr::V4(_) => false,
            }),
            Mechanism::A {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                self.count_lookup(term)?;
                let target = self.expand(macro_string, domain);
                self.addr_match(&target, *ip4_mask, *ip6_mask, term).await
            }
            Mechanism::Mx {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                self.count_lookup(term)?;
                let target = self.expand(macro_string, domain);
                let mxs = match self.dns.mx(&target).await {
                    Ok(m) => m,
                    Err(e) if e.is_temporary() => return Err(temp(&e)),
                    Err(e) => {
                        self.count_void(&e, term)?;
                        return Ok(false);
                    }
                };
                if mxs.len() > MAX_NAMES_PER_MECHANISM {
                    return Err(perm(format!(
                        "{term:?}: {target} has {} MX records, more than {MAX_NAMES_PER_MECHANISM} (RFC 7208 §4.6.4)",
                        mxs.len()
                    )));
                }
                for (_, host) in mxs {
                    if host.is_empty() {
                        continue; // a null MX (RFC 7505) names no host
                    }
                    if self.addr_match(&host, *ip4_mask, *ip6_mask, term).await? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr { macro_string } => {
                self.count_lookup(term)?;
                let target = self.expand(macro_string, domain).to_ascii_lowercase();
                // §5.5: a DNS error on the PTR lookup means no match.
                let names = match self.dns.ptr(self.ip).await {
                    Ok(n) => n,
                    Err(e) => {
                        self.count_void(&e, term)?;
                        return Ok(false);
                    }
                };
                for n in names.into_iter().take(MAX_NAMES_PER_MECHANISM) {
                    let ln = n.to_ascii_lowercase();
                    if !(ln == target || ln.ends_with(&format!(".{target}"))) {
                        continue;
                    }
                    if let Ok(addrs) = self.dns.addrs_like(&n, self.ip).await {
                        if addrs.contains(&self.ip) {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
            Mechanism::Exists { macro_string } => {
                self.count_lookup(term)?;
                let target = self.expand(macro_string, domain);
                // §5.7: always an A query, whatever the client's family.
                match self.dns.a(&target).await {
                    Ok(a) => Ok(!a.is_empty()),
                    Err(e) if e.is_temporary() => Err(temp(&e)),
                    Err(e) => {
                        self.count_void(&e, term)?;
                        Ok(false)
                    }
                }
            }
            Mechanism::Include { macro_string } => {
                self.count_lookup(term)?;
                let target = self.expand(macro_string, domain);
                if !is_fqdn(&target) {
                    return Err(perm(format!(
                        "{term:?} expands to {target:?}, which is not a domain"
                    )));
                }
                let inner = self.check(target.clone(), depth + 1).await?;
                // §5.2: pass matches; fail, softfail, neutral do not; none is permerror.
                match inner.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::Softfail | SpfResult::Neutral => Ok(false),
                    SpfResult::None => Err(perm(format!(
                        "{term:?} points at {target}, which has no SPF record (RFC 7208 §5.2)"
                    ))),
                    SpfResult::Temperror => Err(Abort {
                        result: SpfResult::Temperror,
                        problem: inner.note.unwrap_or_default(),
                    }),
                    SpfResult::Permerror => Err(perm(inner.note.unwrap_or_default())),
                }
            }
        }
    }

    async fn addr_match(
        &mut self,
        target: &str,
        m4: u32,
        m6: u128,
        term: &str,
    ) -> Result<bool, Abort> {
        let addrs = match self.dns.addrs_like(target, self.ip).await {
            Ok(a) => a,
            Err(e) if e.is_temporary() => return Err(temp(&e)),
            Err(e) => {
                self.count_void(&e, term)?;
                return Ok(false);
            }
        };
        Ok(addrs.iter().any(|a| match (a, self.ip) {
            (IpAddr::V4(a), IpAddr::V4(ip)) => u32::from(*a) & m4 == u32::from(ip) & m4,
            (IpAddr::V6(a), IpAddr::V6(ip)) => u128::from(*a) & m6 == u128::from(ip) & m6,
            _ => false,
        }))
    }

    /// §6.2: the explanation; any problem just means there is none.
    async fn explain(&mut self, rec: &SpfRecord, domain: &str) -> Option<String> {
        let exp = rec.spf.exp.as_ref()?;
        if exp.needs_ptr() {
            self.ensure_validated(domain).await;
        }
        let name = self.expand(exp, domain);
        let txts = self.dns.txt(&name).await.ok()?;
        let [one] = txts.as_slice() else { return None };
        if !one.is_ascii() {
            return None;
        }
        let m = Macro::parse(one).ok()?;
        if m.needs_ptr() {
            self.ensure_validated(domain).await;
        }
        let mut vars = self.vars.clone();
        vars.set_domain(domain.as_bytes().to_vec());
        Some(m.eval(&vars, domain, false).into_owned())
    }
}

/// The value of a modifier as written, for messages.
fn macro_text<'r>(record: &'r str, prefix: &str) -> &'r str {
    record
        .split(' ')
        .find(|t| t.len() >= prefix.len() && t[..prefix.len()].eq_ignore_ascii_case(prefix))
        .map(|t| &t[prefix.len()..])
        .unwrap_or("")
}
