//! The SPF lint: the record, the whole include/redirect tree, the lookups it
//! costs against the limits of RFC 7208 §4.6.4, and whether given sending
//! addresses pass.

use crate::report::{Category, Finding, Fix, Status};
use mail_auth::spf::Mechanism;
use netjes_auth::spf::record::{is_spf_record, mechanism_kind};
use netjes_auth::spf::{
    evaluate, parse_record, SpfRequest, SpfResult, MAX_DNS_LOOKUPS, MAX_VOID_LOOKUPS,
};
use netjes_dns::{Resolver, ResolverExt};
use serde::Serialize;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// One record in the tree.
#[derive(Debug, Clone, Serialize)]
pub struct SpfNode {
    pub domain: String,
    pub record: Option<String>,
    /// The DNS-querying terms of this record alone.
    pub lookups: u32,
    pub children: Vec<SpfChild>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The record could not be fetched (timeout, SERVFAIL): not "missing".
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dns_error: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpfChild {
    pub term: String,
    pub node: SpfNode,
}

const C: Category = Category::Spf;

/// The tree is walked past the limit of 10 to show it whole, but not
/// without end: a record of many includes, each of many includes, would
/// otherwise cost thousands of lookups.
const MAX_TREE_RECORDS: usize = 50;

struct Walk<'a> {
    dns: &'a dyn Resolver,
    records: usize,
    lookups: u32,
    voids: u32,
    crossing: Option<String>,
    void_crossing: Option<String>,
    ptr_terms: Vec<String>,
    errors: Vec<String>,
    dns_errors: Vec<String>,
}

type Fut<'a> = Pin<Box<dyn Future<Output = SpfNode> + Send + 'a>>;

impl<'a> Walk<'a> {
    fn count(&mut self, term: &str, domain: &str) {
        self.lookups += 1;
        if self.lookups == MAX_DNS_LOOKUPS + 1 {
            self.crossing = Some(format!("{term:?} in the record of {domain}"));
        }
    }

    fn void(&mut self, term: &str, domain: &str) {
        self.voids += 1;
        if self.voids == MAX_VOID_LOOKUPS + 1 {
            self.void_crossing = Some(format!("{term:?} in the record of {domain}"));
        }
    }

    fn node(&mut self, domain: String, depth: u32) -> Fut<'_> {
        Box::pin(async move {
            let mut node = SpfNode {
                domain: domain.clone(),
                record: None,
                lookups: 0,
                children: vec![],
                problem: None,
                dns_error: false,
            };
            self.records += 1;
            if self.records > MAX_TREE_RECORDS {
                node.problem = Some(format!(
                    "not followed: the tree has more than {MAX_TREE_RECORDS} records"
                ));
                return node;
            }
            if depth > 10 {
                node.problem = Some("the include chain loops or is deeper than 10".into());
                self.errors
                    .push(format!("the include chain through {domain} loops"));
                return node;
            }
            let txts = match self.dns.txt(&domain).await {
                Ok(t) => t,
                Err(e) if e.is_temporary() => {
                    node.problem = Some(e.to_string());
                    node.dns_error = true;
                    self.dns_errors.push(e.to_string());
                    return node;
                }
                Err(_) => {
                    node.problem = Some(format!("{domain} has no SPF record"));
                    return node;
                }
            };
            let spf: Vec<&Vec<u8>> = txts.iter().filter(|t| is_spf_record(t)).collect();
            let raw = match spf.as_slice() {
                [] => {
                    node.problem = Some(format!("{domain} has no SPF record"));
                    return node;
                }
                [one] => *one,
                many => {
                    node.problem = Some(format!(
                        "{domain} publishes {} SPF records; there must be one",
                        many.len()
                    ));
                    self.errors.push(node.problem.clone().unwrap());
                    return node;
                }
            };
            node.record = Some(String::from_utf8_lossy(raw).into_owned());
            let rec = match parse_record(raw) {
                Ok(r) => r,
                Err(e) => {
                    node.problem = Some(e.to_string());
                    if depth > 0 {
                        self.errors
                            .push(format!("the record of {domain} is invalid: {e}"));
                    }
                    return node;
                }
            };
            for (d, term) in rec.spf.directives.iter().zip(rec.terms.iter()) {
                let target = |m: &mail_auth::spf::Macro| match m {
                    mail_auth::spf::Macro::Literal(l) => {
                        Some(String::from_utf8_lossy(l).trim_end_matches('.').to_string())
                    }
                    mail_auth::spf::Macro::None => Some(domain.clone()),
                    _ => None,
                };
                match &d.mechanism {
                    Mechanism::Include { macro_string } => {
                        node.lookups += 1;
                        self.count(term, &domain);
                        if let Some(t) = target(macro_string) {
                            let child = self.node(t.clone(), depth + 1).await;
                            if child.record.is_none()
                                && !child.dns_error
                                && self.records <= MAX_TREE_RECORDS
                            {
                                self.void(term, &domain);
                                self.errors.push(format!("{term:?} in {domain} points at {t}, which has no SPF record: that is a permerror for everyone"));
                            }
                            node.children.push(SpfChild {
                                term: term.clone(),
                                node: child,
                            });
                        }
                    }
                    Mechanism::A { macro_string, .. }
                    | Mechanism::Mx { macro_string, .. }
                    | Mechanism::Exists { macro_string } => {
                        node.lookups += 1;
                        self.count(term, &domain);
                        let kind = mechanism_kind(&d.mechanism);
                        if let Some(t) = target(macro_string) {
                            let res = match kind {
                                "mx" => self.dns.mx(&t).await.map(|v| v.len()),
                                _ => self.dns.a(&t).await.map(|v| v.len()),
                            };
                            match res {
                                // exists: on a missing name is its normal "no".
                                Err(e) if e.is_void() && kind != "exists" => {
                                    self.void(term, &domain)
                                }
                                Err(e) if e.is_temporary() => self.dns_errors.push(e.to_string()),
                                _ => {}
                            }
                        }
                    }
                    Mechanism::Ptr { .. } => {
                        node.lookups += 1;
                        self.count(term, &domain);
                        self.ptr_terms.push(format!("{term} in {domain}"));
                    }
                    _ => {}
                }
            }
            let has_all = rec
                .spf
                .directives
                .iter()
                .any(|d| matches!(d.mechanism, Mechanism::All));
            if let (Some(m), false) = (&rec.spf.redirect, has_all) {
                node.lookups += 1;
                let term = rec
                    .text
                    .split(' ')
                    .find(|t| t.to_ascii_lowercase().starts_with("redirect="))
                    .unwrap_or("redirect")
                    .to_string();
                self.count(&term, &domain);
                if let mail_auth::spf::Macro::Literal(l) = m {
                    let t = String::from_utf8_lossy(l).trim_end_matches('.').to_string();
                    let child = self.node(t, depth + 1).await;
                    node.children.push(SpfChild { term, node: child });
                }
            }
            node
        })
    }
}

fn all_term(record: &str) -> Option<String> {
    record
        .split(' ')
        .find(|t| {
            t.trim_start_matches(['+', '-', '~', '?'])
                .eq_ignore_ascii_case("all")
        })
        .map(str::to_string)
}

/// The record with `ip` allowed: an ip4:/ip6: mechanism before its `all`
/// (or at the end), everything else as it was. The CLI's `check --ip` and
/// the message test's SPF fix both give this.
pub fn record_with_ip(record: &str, ip: IpAddr) -> String {
    let mech = if ip.is_ipv4() {
        format!("ip4:{ip}")
    } else {
        format!("ip6:{ip}")
    };
    match all_term(record) {
        Some(t) => record.replacen(&format!(" {t}"), &format!(" {mech} {t}"), 1),
        None => format!("{record} {mech}"),
    }
}

/// A TXT record meant as SPF that no receiver reads as one, and why, with
/// the record as it was meant: literal quotes pasted from a zone file,
/// white space before `v=spf1`, or `v=spf1` not first.
async fn pasted_wrong(dns: &dyn Resolver, domain: &str) -> Option<(String, String)> {
    let txts = netjes_dns::ResolverExt::txt(dns, domain).await.ok()?;
    for t in txts {
        let text = String::from_utf8_lossy(&t).into_owned();
        let lower = text.to_ascii_lowercase();
        let Some(at) = lower.find("v=spf1") else {
            continue;
        };
        let why = if text.contains('"') {
            format!("it holds literal quote characters (at character {}): it was pasted with the quotes of a zone file", text.find('"').unwrap_or(0) + 1)
        } else if text[..at].trim().is_empty() {
            format!("it starts with white space before v=spf1 (at character {})", at + 1)
        } else {
            format!("v=spf1 is not at its start (it is at character {})", at + 1)
        };
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter(|w| !w.is_empty() && !w.eq_ignore_ascii_case("v=spf1"))
            .collect();
        let mended = format!("v=spf1 {}", words.join(" "));
        return Some((why, mended.trim_end().to_string()));
    }
    None
}

/// Mechanisms after `all`, which are never reached, and the record with
/// `all` moved to the end of the mechanisms (modifiers after it), which is
/// what the writer meant by adding them.
pub fn after_all(record: &str) -> Option<(Vec<String>, String)> {
    let terms: Vec<&str> = record.split_whitespace().skip(1).collect();
    let is_all = |t: &str| t.trim_start_matches(['+', '-', '~', '?']).eq_ignore_ascii_case("all");
    let is_modifier = |t: &str| t.contains('=');
    let pos = terms.iter().position(|t| is_all(t))?;
    let unreached: Vec<String> = terms[pos + 1..]
        .iter()
        .filter(|t| !is_modifier(t))
        .map(|t| t.to_string())
        .collect();
    if unreached.is_empty() {
        return None;
    }
    let mechanisms: Vec<&str> = terms.iter().copied().filter(|t| !is_all(t) && !is_modifier(t)).collect();
    let modifiers: Vec<&str> = terms.iter().copied().filter(|t| is_modifier(t)).collect();
    let mut out = vec!["v=spf1"];
    out.extend(mechanisms);
    out.push(terms[pos]);
    out.extend(modifiers);
    Some((unreached, out.join(" ")))
}

/// Checks the SPF of `domain`, and whether each address in `ips` may send.
pub async fn check_spf(
    dns: &dyn Resolver,
    domain: &str,
    ips: &[IpAddr],
    has_mx: bool,
) -> (Vec<Finding>, Option<SpfNode>) {
    let mut out = Vec::new();
    let suggested = if has_mx {
        "v=spf1 mx -all"
    } else {
        "v=spf1 -all"
    };
    let mut w = Walk {
        dns,
        records: 0,
        lookups: 0,
        voids: 0,
        crossing: None,
        void_crossing: None,
        ptr_terms: vec![],
        errors: vec![],
        dns_errors: vec![],
    };
    let root = w.node(domain.to_string(), 0).await;

    if root.record.is_none() {
        let p = root.problem.clone().unwrap_or_default();
        if root.dns_error {
            out.push(
                Finding::new(
                    C,
                    "spf.dns-error",
                    Status::Error,
                    format!("SPF could not be checked: {p}"),
                )
                .advice("try again later; this is a DNS failure, not a missing record"),
            );
        } else if p.contains("SPF records") {
            out.push(
                Finding::new(
                    C,
                    "spf.multiple",
                    Status::Fail,
                    format!("{p}: receivers treat this as a permanent error"),
                )
                .advice("merge them into one record"),
            );
        } else if let Some((why, mended)) = pasted_wrong(dns, domain).await {
            // The record is there, but in a form receivers do not see as
            // SPF: say what went wrong, and give it back as it was meant.
            out.push(
                Finding::new(C, "spf.pasted", Status::Fail, format!("{domain} has a TXT record meant as SPF that receivers cannot read: {why}"))
                    .fix(Fix::txt(domain, &mended)),
            );
        } else {
            out.push(
                Finding::new(C, "spf.missing", Status::Fail, format!("{domain} publishes no SPF record: receivers cannot tell your servers from forgers"))
                    .fix(Fix::txt(domain, suggested)),
            );
        }
        return (out, Some(root));
    }
    let record = root.record.clone().unwrap();
    if let Some(p) = &root.problem {
        out.push(
            Finding::new(
                C,
                "spf.syntax",
                Status::Fail,
                format!("the SPF record is invalid: {p}"),
            )
            .advice("receivers give permerror for every message"),
        );
        return (out, Some(root));
    }
    out.push(Finding::new(
        C,
        "spf.present",
        Status::Pass,
        format!("SPF record: {record}"),
    ));
    if let Some((unreached, mended)) = after_all(&record) {
        out.push(
            Finding::new(C, "spf.after-all", Status::Warn, format!("{} come after all and are never reached (RFC 7208 §5.1): mail from them gets the all result", unreached.join(" ")))
                .fix(Fix::txt(domain, &mended)),
        );
    }

    for e in &w.dns_errors {
        out.push(Finding::new(
            C,
            "spf.dns-error",
            Status::Error,
            format!("part of the SPF tree could not be checked: {e}"),
        ));
    }
    for e in &w.errors {
        out.push(Finding::new(
            C,
            "spf.include-error",
            Status::Fail,
            e.clone(),
        ));
    }
    match &w.crossing {
        Some(at) => out.push(
            Finding::new(C, "spf.lookup-limit", Status::Fail, format!("the record costs {} DNS lookups; the limit is {MAX_DNS_LOOKUPS}, crossed at {at}", w.lookups))
                .advice("receivers give permerror: replace includes by ip4:/ip6: ranges, or drop services you no longer use"),
        ),
        None if w.lookups >= 8 => out.push(Finding::new(C, "spf.lookup-limit", Status::Warn, format!("the record costs {} of {MAX_DNS_LOOKUPS} DNS lookups; one more include can break it", w.lookups))),
        None => out.push(Finding::new(C, "spf.lookup-limit", Status::Pass, format!("{} of {MAX_DNS_LOOKUPS} DNS lookups", w.lookups))),
    }
    match &w.void_crossing {
        Some(at) => out.push(Finding::new(C, "spf.void-limit", Status::Fail, format!("{} lookups find nothing; the limit is {MAX_VOID_LOOKUPS}, crossed at {at}", w.voids))),
        None if w.voids > 0 => out.push(Finding::new(C, "spf.void-limit", Status::Warn, format!("{} lookup(s) find nothing (limit {MAX_VOID_LOOKUPS}): remove mechanisms that name hosts without addresses", w.voids))),
        None => {}
    }
    match all_term(&record).as_deref() {
        Some("+all") | Some("all") | Some("+ALL") | Some("ALL") => out.push(
            Finding::new(C, "spf.all", Status::Fail, "the record ends in +all: every server on the internet may send as you")
                .fix(Fix::txt(domain, &record.replace("+all", "-all").replace(" all", " -all"))),
        ),
        Some(t) if t.starts_with('?') => out.push(Finding::new(C, "spf.all", Status::Warn, "?all (neutral) says nothing about strangers: use ~all while testing, then -all").fix(Fix::txt(domain, &record.replace(t, "-all")))),
        Some(t) if t.starts_with('~') => out.push(Finding::new(C, "spf.all", Status::Info, "~all (softfail): strangers are suspicious but not refused; -all is stronger once every sender is listed")),
        Some(_) => out.push(Finding::new(C, "spf.all", Status::Pass, "-all: mail from other servers fails SPF")),
        None if record.to_ascii_lowercase().contains("redirect=") => {}
        None => out.push(Finding::new(C, "spf.all", Status::Warn, "the record has no \"all\": mail from other servers is neutral").fix(Fix::txt(domain, &format!("{record} -all")))),
    }
    for p in &w.ptr_terms {
        out.push(Finding::new(C, "spf.ptr", Status::Warn, format!("{p}: ptr is slow and deprecated (RFC 7208 §5.5); list the addresses with ip4:/ip6:")));
    }
    if record.len() > 450 {
        out.push(Finding::new(C, "spf.size", Status::Warn, format!("the record is {} octets: answers over 512 octets need EDNS or TCP, which some resolvers lack", record.len())));
    }

    for ip in ips {
        let sender = format!("postmaster@{domain}");
        let r = evaluate(
            dns,
            &SpfRequest {
                ip: *ip,
                sender: &sender,
                helo: domain,
                receiver: "netjes",
            },
        )
        .await;
        let by = r
            .mechanism
            .as_deref()
            .map(|m| format!(" (by {m})"))
            .unwrap_or_default();
        let f = match r.result {
            SpfResult::Pass => Finding::new(
                C,
                "spf.ip",
                Status::Pass,
                format!("{ip} may send for {domain}{by}"),
            ),
            SpfResult::Temperror => Finding::new(
                C,
                "spf.ip",
                Status::Error,
                format!(
                    "SPF for {ip} could not be checked: {}",
                    r.problem.unwrap_or_default()
                ),
            ),
            other => {
                let fixed = record_with_ip(&record, *ip);
                Finding::new(
                    C,
                    "spf.ip",
                    Status::Fail,
                    format!("{ip} gets SPF {other} for {domain}{by}: mail it sends will fail SPF"),
                )
                .fix(Fix::txt(domain, &fixed))
            }
        };
        out.push(f);
    }
    (out, Some(root))
}
