//! Policy discovery by the DNS tree walk and evaluation (RFC 9989 §4.10).

use super::record::{is_dmarc_record, parse_dmarc_record, DmarcRecord, Policy};
use crate::dkim::{DkimResult, DkimSignatureReport};
use crate::spf::{SpfOutcome, SpfResult};
use netjes_dns::{DnsError, Resolver, ResolverExt};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResult {
    Pass,
    Fail,
    None,
    Temperror,
    Permerror,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::None => "none",
            DmarcResult::Temperror => "temperror",
            DmarcResult::Permerror => "permerror",
        }
    }
}

/// What DMARC works from.
#[derive(Debug, Clone, Default)]
pub struct DmarcInput<'a> {
    /// The author domains: of the RFC 5322 From addresses
    /// ([`super::author::authors_of`]).
    pub from_domains: &'a [String],
    /// Other domains the reader is shown as the author (Sender,
    /// Resent-From, an encoded display name): their policy applies when
    /// they fail.
    pub shown_domains: &'a [String],
    /// SPF for the MAIL FROM identity, if it was checked.
    pub spf: Option<&'a SpfOutcome>,
    pub dkim: &'a [DkimSignatureReport],
}

#[derive(Debug, Clone, Serialize)]
pub struct DmarcReport {
    pub result: DmarcResult,
    /// The RFC 5322 From domain (the Author Domain).
    pub from_domain: Option<String>,
    /// Where the policy record was found.
    pub policy_domain: Option<String>,
    pub organizational_domain: Option<String>,
    pub record: Option<DmarcRecord>,
    /// The policy that applies to this message (p, sp or np, after t=y).
    pub policy: Option<Policy>,
    /// What the receiver should do: the policy when DMARC fails, else none.
    pub disposition: Policy,
    /// A passing SPF / DKIM result is aligned with the From domain, in the
    /// record's modes. Without any record they stay false: the tree walk
    /// then finds no organizational domain to align with.
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    /// The d= of the aligned passing DKIM signature.
    pub dkim_domain: Option<String>,
    pub reason: Option<String>,
    /// Why the message has no usable author, when it is refused for that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author_error: Option<super::author::AuthorError>,
    /// The other domains judged (more author domains, or domains the
    /// reader is shown as the author), when there were any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<DmarcReport>,
}

impl DmarcReport {
    fn none(from: Option<String>, reason: &str) -> Self {
        DmarcReport {
            result: DmarcResult::None,
            from_domain: from,
            policy_domain: None,
            organizational_domain: None,
            record: None,
            policy: None,
            disposition: Policy::None,
            spf_aligned: false,
            dkim_aligned: false,
            dkim_domain: None,
            reason: Some(reason.to_string()),
            author_error: None,
            others: Vec::new(),
        }
    }
}

/// The names the tree walk queries, longest first: the domain itself, then
/// (for names of 8 labels or more) straight to 7 labels, then one label at a
/// time down to the top-level domain (RFC 9989 §4.10).
pub fn walk_names(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = Vec::new();
    if labels.is_empty() {
        return out;
    }
    let mut count = labels.len();
    out.push(labels.join("."));
    if count >= 8 {
        count = 7;
    } else {
        count -= 1;
    }
    while count >= 1 {
        out.push(labels[labels.len() - count..].join("."));
        count -= 1;
    }
    out.dedup();
    out
}

/// The records found by one tree walk, longest name first.
struct Walk {
    found: Vec<(String, DmarcRecord)>,
    problems: Vec<String>,
}

struct Walker<'a> {
    dns: &'a dyn Resolver,
    memo: HashMap<String, Result<Walk, DnsError>>,
}

impl<'a> Walker<'a> {
    async fn walk(&mut self, domain: &str) -> Result<&Walk, DnsError> {
        if !self.memo.contains_key(domain) {
            let mut found = Vec::new();
            let mut problems = Vec::new();
            let mut failure = None;
            for name in walk_names(domain) {
                let q = format!("_dmarc.{name}");
                let txts = match self.dns.txt(&q).await {
                    Ok(t) => t,
                    Err(e) if e.is_temporary() => {
                        failure = Some(e);
                        break;
                    }
                    Err(_) => continue,
                };
                let recs: Vec<&Vec<u8>> = txts.iter().filter(|t| is_dmarc_record(t)).collect();
                match recs.as_slice() {
                    [] => continue,
                    [one] => match parse_dmarc_record(one) {
                        Ok(r) => {
                            let stop = r.psd.is_some();
                            found.push((name.clone(), r));
                            if stop {
                                break;
                            }
                        }
                        Err(e) => problems.push(format!("{q}: {e}")),
                    },
                    many => problems.push(format!(
                        "{q} has {} DMARC records; it must have one, so none applies",
                        many.len()
                    )),
                }
            }
            let v = match failure {
                Some(e) => Err(e),
                None => Ok(Walk { found, problems }),
            };
            self.memo.insert(domain.to_string(), v);
        }
        self.memo
            .get(domain)
            .unwrap()
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// RFC 9989 §4.10.2: psd=n marks the organizational domain, psd=y the
    /// public suffix above it; otherwise the record nearest the root.
    async fn org_domain(&mut self, domain: &str) -> Result<String, DnsError> {
        let start = domain.to_string();
        let walk = self.walk(domain).await?;
        for (name, rec) in &walk.found {
            match rec.psd {
                Some(false) => return Ok(name.clone()),
                Some(true) if *name != start => {
                    let depth = name.split('.').count() + 1;
                    let labels: Vec<&str> = start.split('.').collect();
                    return Ok(labels[labels.len().saturating_sub(depth)..].join("."));
                }
                _ => {}
            }
        }
        Ok(walk.found.last().map(|(n, _)| n.clone()).unwrap_or(start))
    }

    async fn aligned(
        &mut self,
        id: &str,
        author: &str,
        author_org: &str,
        strict: bool,
    ) -> Result<bool, DnsError> {
        let id = id.trim_end_matches('.').to_ascii_lowercase();
        if id == author {
            return Ok(true);
        }
        if strict || !(id == author_org || id.ends_with(&format!(".{author_org}"))) {
            return Ok(false);
        }
        Ok(self.org_domain(&id).await? == author_org)
    }
}

/// Marks the passing identities aligned with the author domain; returns what
/// could not be checked for a DNS failure.
async fn align(
    w: &mut Walker<'_>,
    input: &DmarcInput<'_>,
    author: &str,
    author_org: &str,
    aspf_strict: bool,
    adkim_strict: bool,
    report: &mut DmarcReport,
) -> Vec<String> {
    let mut temp_errors = Vec::new();
    if let Some(spf) = input.spf {
        match spf.result {
            SpfResult::Pass | SpfResult::Temperror => match w
                .aligned(&spf.domain, author, author_org, aspf_strict)
                .await
            {
                Ok(true) if spf.result == SpfResult::Pass => report.spf_aligned = true,
                Ok(true) => {
                    temp_errors.push(format!("SPF for {} had a temporary error", spf.domain))
                }
                Ok(false) => {}
                Err(e) => temp_errors.push(e.to_string()),
            },
            _ => {}
        }
    }
    for sig in input.dkim {
        if !matches!(sig.result, DkimResult::Pass | DkimResult::Temperror) || report.dkim_aligned {
            continue;
        }
        match w
            .aligned(&sig.domain, author, author_org, adkim_strict)
            .await
        {
            Ok(true) if sig.result == DkimResult::Pass => {
                report.dkim_aligned = true;
                report.dkim_domain = Some(sig.domain.clone());
            }
            Ok(true) => temp_errors.push(format!(
                "the DKIM key of {} could not be fetched",
                sig.domain
            )),
            Ok(false) => {}
            Err(e) => temp_errors.push(e.to_string()),
        }
    }
    temp_errors
}

/// Evaluates DMARC for one message: for each author domain, and for each
/// other domain the reader is shown as the author, and the strictest
/// outcome decides (RFC 7489 §6.6.1: with several authors, the strictest
/// failing policy applies).
pub async fn evaluate(dns: &dyn Resolver, input: &DmarcInput<'_>) -> DmarcReport {
    let mut domains: Vec<String> = Vec::new();
    for d in input.from_domains.iter().chain(input.shown_domains) {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if !d.is_empty() && !domains.contains(&d) {
            domains.push(d);
        }
    }
    if domains.is_empty() {
        return DmarcReport::none(None, "the message has no From address with a domain");
    }
    let mut w = Walker {
        dns,
        memo: HashMap::new(),
    };
    let mut reports = Vec::with_capacity(domains.len());
    for d in &domains {
        reports.push(evaluate_one(&mut w, dns, input, d).await);
    }
    combine(reports, input.from_domains.len().max(1))
}

/// The deciding report of several: a failure with the strictest
/// disposition, else a temporary error, else the first author domain's
/// (a pass of any author domain before a none). The others ride along in
/// `others`, so the report shows every domain that was judged.
fn combine(mut reports: Vec<DmarcReport>, authors: usize) -> DmarcReport {
    if reports.len() == 1 {
        return reports.remove(0);
    }
    let rank = |r: &DmarcReport, i: usize| -> (u8, u8, usize) {
        let kind = match r.result {
            DmarcResult::Fail => 5,
            DmarcResult::Permerror => 4,
            DmarcResult::Temperror => 3,
            DmarcResult::Pass if i < authors => 2,
            DmarcResult::None if i < authors => 1,
            _ => 0,
        };
        (kind, r.disposition as u8, usize::MAX - i)
    };
    let best = (0..reports.len())
        .max_by_key(|i| rank(&reports[*i], *i))
        .unwrap_or(0);
    let mut chosen = reports.remove(best);
    if best >= authors {
        let why = chosen.reason.clone().unwrap_or_default();
        chosen.reason = Some(format!(
            "{} is shown to the reader as the author and fails its own policy: {why}",
            chosen.from_domain.clone().unwrap_or_default()
        ));
    }
    chosen.others = reports;
    chosen
}

/// A message without a usable author: refused, never judged as none or by
/// a domain the attacker chose (RFC 7489 §6.6.1).
pub fn refused(err: &super::author::AuthorError) -> DmarcReport {
    DmarcReport {
        result: DmarcResult::Permerror,
        disposition: Policy::Reject,
        author_error: Some(err.clone()),
        ..DmarcReport::none(None, &format!("{err}: refused as malformed"))
    }
}

async fn evaluate_one(
    w: &mut Walker<'_>,
    dns: &dyn Resolver,
    input: &DmarcInput<'_>,
    author: &str,
) -> DmarcReport {
    let author = author.to_string();
    let temp = |e: DnsError, author: &str| DmarcReport {
        result: DmarcResult::Temperror,
        reason: Some(format!("DNS error during policy discovery: {e}")),
        ..DmarcReport::none(Some(author.to_string()), "")
    };
    let (found, problems) = match w.walk(&author).await {
        Ok(walk) => (walk.found.clone(), walk.problems.clone()),
        Err(e) => return temp(e, &author),
    };
    let author_org = match w.org_domain(&author).await {
        Ok(o) => o,
        Err(e) => return temp(e, &author),
    };
    // The author domain's own record, else the organizational domain's,
    // else the nearest the root (a public suffix's).
    let chosen = found
        .iter()
        .find(|(n, _)| *n == author)
        .or_else(|| found.iter().find(|(n, _)| *n == author_org))
        .or(found.last());
    let Some((policy_domain, record)) = chosen.cloned() else {
        let mut r = DmarcReport::none(
            Some(author.clone()),
            "no DMARC record was found for the From domain or above it",
        );
        if !problems.is_empty() {
            r.reason = Some(problems.join("; "));
        }
        r.organizational_domain = Some(author_org);
        return r;
    };
    let Some(p) = record.p.or(if record.rua.is_empty() {
        None
    } else {
        Some(Policy::None)
    }) else {
        let mut r = DmarcReport::none(Some(author.clone()), "the DMARC record has no valid p= tag and no rua=, so it does not apply (RFC 9989 §4.10.1)");
        // The record does not apply, but its alignment modes do say what
        // speaks for the From domain. A DNS failure leaves it unaligned.
        let _ = align(
            w,
            input,
            &author,
            &author_org,
            record.aspf_strict,
            record.adkim_strict,
            &mut r,
        )
        .await;
        r.policy_domain = Some(policy_domain);
        r.organizational_domain = Some(author_org);
        r.record = Some(record);
        return r;
    };
    let mut policy = if policy_domain == author {
        p
    } else {
        // np applies to a non-existent author domain (NXDOMAIN), sp to an
        // existing subdomain; both default to the one above them. A DNS
        // failure here proves nothing about existence, so sp, the policy
        // for the ordinary case, applies rather than an invented NXDOMAIN.
        let nonexistent = matches!(dns.a(&author).await, Err(DnsError::NxDomain { .. }))
            && matches!(dns.aaaa(&author).await, Err(DnsError::NxDomain { .. }));
        let sp = record.sp.unwrap_or(p);
        if nonexistent {
            record.np.unwrap_or(sp)
        } else {
            sp
        }
    };
    if record.testing {
        policy = policy.relaxed();
    }

    let mut report = DmarcReport {
        result: DmarcResult::Fail,
        from_domain: Some(author.clone()),
        policy_domain: Some(policy_domain),
        organizational_domain: Some(author_org.clone()),
        record: Some(record.clone()),
        policy: Some(policy),
        disposition: Policy::None,
        spf_aligned: false,
        dkim_aligned: false,
        dkim_domain: None,
        reason: None,
        author_error: None,
        others: Vec::new(),
    };
    let temp_errors = align(
        w,
        input,
        &author,
        &author_org,
        record.aspf_strict,
        record.adkim_strict,
        &mut report,
    )
    .await;
    if report.spf_aligned || report.dkim_aligned {
        report.result = DmarcResult::Pass;
    } else if !temp_errors.is_empty() {
        // §5.3.6: an aligned identifier that could not be checked means
        // DMARC can neither pass nor fail.
        report.result = DmarcResult::Temperror;
        report.reason = Some(temp_errors.join("; "));
    } else {
        report.disposition = policy;
        let spf_why = match input.spf {
            None => "SPF was not checked".to_string(),
            Some(s) if s.result == SpfResult::Pass => format!(
                "SPF passed for {}, which is not aligned with {author}",
                s.domain
            ),
            Some(s) => format!("SPF {} for {}", s.result, s.domain),
        };
        let passing: Vec<&str> = input
            .dkim
            .iter()
            .filter(|s| s.result == DkimResult::Pass)
            .map(|s| s.domain.as_str())
            .collect();
        let dkim_why = if input.dkim.is_empty() {
            "the message has no DKIM signature".to_string()
        } else if passing.is_empty() {
            "no DKIM signature passed".to_string()
        } else {
            format!(
                "DKIM passed only for {}, not aligned with {author}",
                passing.join(", ")
            )
        };
        report.reason = Some(format!("{spf_why}; {dkim_why}"));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::walk_names;

    #[test]
    fn tree_walk_names() {
        assert_eq!(
            walk_names("mail.example.com"),
            vec!["mail.example.com", "example.com", "com"]
        );
        let long = "a.b.c.d.e.f.g.h.example.com";
        let w = walk_names(long);
        assert_eq!(w[0], long);
        assert_eq!(w[1], "d.e.f.g.h.example.com");
        assert_eq!(w[1].split('.').count(), 7);
        assert_eq!(w.last().unwrap(), "com");
        assert_eq!(w.len(), 8);
    }
}
