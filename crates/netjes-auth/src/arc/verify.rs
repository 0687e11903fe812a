//! Validating an ARC chain: mail-auth checks the seals and the newest
//! message signature; netjes fetches the keys and reports the chain.

use crate::glue::{authenticator, Prefetched};
use mail_auth::{AuthenticatedMessage, Parameters};
use netjes_dns::Resolver;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArcResult {
    None,
    Pass,
    Fail,
    Temperror,
}

impl ArcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ArcResult::None => "none",
            ArcResult::Pass => "pass",
            ArcResult::Fail => "fail",
            ArcResult::Temperror => "temperror",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArcReport {
    /// The chain validation status (cv) this validator computes.
    pub result: ArcResult,
    /// The number of ARC sets (the highest i=).
    pub instances: u32,
    /// The sealer of the newest set (its d=).
    pub last_sealer: Option<String>,
    /// The sealers in order, oldest first.
    pub sealers: Vec<String>,
    /// RFC 8617 §5.2 step 5: the oldest instance whose ARC-Message-Signature
    /// still validates, 0 when all do; only for a passing chain.
    pub oldest_pass: Option<u32>,
    pub reason: Option<String>,
}

pub async fn verify_arc(dns: &dyn Resolver, msg: &AuthenticatedMessage<'_>) -> ArcReport {
    let cache = Prefetched::default();
    let out = verify_chain(dns, msg, &cache).await;
    let mut report = report_of(msg, &out);
    if let Some(problem) = super::structure::structural_problem(msg.raw_message) {
        report.result = ArcResult::Fail;
        report.reason = Some(problem);
    }
    if report.result == ArcResult::Pass {
        report.oldest_pass = Some(oldest_pass(msg, &out, &cache));
    }
    report
}

/// Fetches the keys of every ARC set and validates the chain with mail-auth.
pub(crate) async fn verify_chain<'x>(
    dns: &dyn Resolver,
    msg: &'x AuthenticatedMessage<'x>,
    cache: &'x Prefetched,
) -> mail_auth::ArcOutput<'x> {
    let mut names: Vec<String> = msg
        .ams_headers
        .iter()
        .map(|h| format!("{}._domainkey.{}", h.header.s, h.header.d))
        .chain(
            msg.as_headers
                .iter()
                .map(|h| format!("{}._domainkey.{}", h.header.s, h.header.d)),
        )
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    // A chain is at most 50 sets (RFC 8617 §4.2.1); so are the lookups.
    names.truncate(100);
    netjes_dns::join_all(names.iter().map(|n| cache.domain_key(dns, n))).await;
    authenticator()
        .verify_arc(Parameters::new(msg).with_txt_cache(cache))
        .await
}

pub(crate) fn report_of(
    msg: &AuthenticatedMessage<'_>,
    out: &mail_auth::ArcOutput<'_>,
) -> ArcReport {
    let sealers: Vec<String> = out
        .sets()
        .iter()
        .map(|s| s.seal.header.d.to_ascii_lowercase())
        .collect();
    let (result, reason) = match out.result() {
        mail_auth::DkimResult::Pass => (ArcResult::Pass, None),
        mail_auth::DkimResult::None => (ArcResult::None, None),
        mail_auth::DkimResult::TempError(e) => (ArcResult::Temperror, Some(e.to_string())),
        mail_auth::DkimResult::Fail(e)
        | mail_auth::DkimResult::Neutral(e)
        | mail_auth::DkimResult::PermError(e) => (ArcResult::Fail, Some(e.to_string())),
    };
    ArcReport {
        result,
        instances: msg.as_headers.len().max(msg.ams_headers.len()) as u32,
        last_sealer: sealers.last().cloned(),
        oldest_pass: None,
        sealers,
        reason,
    }
}

/// Verifies the older ARC-Message-Signatures, newest first, and returns the
/// lowest instance of the unbroken run that validates, or 0 when all do.
fn oldest_pass(
    msg: &AuthenticatedMessage<'_>,
    out: &mail_auth::ArcOutput<'_>,
    cache: &Prefetched,
) -> u32 {
    use mail_auth::common::crypto::HashAlgorithm;
    use mail_auth::common::resolver::ToFqdn;
    use mail_auth::ResolverCache;
    let sets = out.sets();
    let n = sets.len();
    // The newest AMS was verified by the chain validation itself.
    for i in (0..n.saturating_sub(1)).rev() {
        let header = &sets[i].signature;
        let sig = &header.header;
        let ha = HashAlgorithm::from(sig.a);
        let body_ok = msg
            .body_hashes
            .iter()
            .find(|(c, h, l, _)| c == &sig.cb && h == &ha && l == &sig.l)
            .is_some_and(|(.., bh)| bh == &sig.bh);
        let name = format!("{}._domainkey.{}", sig.s, sig.d);
        let key = match cache.get(name.to_fqdn().as_ref()) {
            Some(mail_auth::Txt::DomainKey(k)) => Some(k),
            _ => None,
        };
        let stripped = strip_b_tag(header.value);
        let valid = body_ok
            && key.as_ref().is_some_and(|k| {
                let mut headers = msg.signed_headers(&sig.h, header.name, &stripped);
                k.p.verify(&mut headers, &sig.b, sig.ch, sig.a).is_ok()
            });
        if !valid {
            return (i + 2) as u32;
        }
    }
    0
}

/// The header value with the value of its b= tag removed (RFC 6376 §3.7).
pub(crate) fn strip_b_tag(value: &[u8]) -> Vec<u8> {
    // The field's own line end goes too, as mail-auth's verifier drops it.
    let value = value
        .strip_suffix(b"\r\n")
        .or_else(|| value.strip_suffix(b"\n"))
        .unwrap_or(value);
    let mut out = Vec::with_capacity(value.len() + 2);
    let mut i = 0;
    let mut at_tag_start = true;
    while i < value.len() {
        let c = value[i];
        if at_tag_start && !c.is_ascii_whitespace() {
            at_tag_start = false;
            if c == b'b' {
                // Skip FWS between the name and '='.
                let mut j = i + 1;
                while j < value.len() && value[j].is_ascii_whitespace() {
                    j += 1;
                }
                if value.get(j) == Some(&b'=') {
                    out.extend_from_slice(&value[i..=j]);
                    i = j + 1;
                    while i < value.len() && value[i] != b';' {
                        i += 1;
                    }
                    continue;
                }
            }
        }
        if c == b';' {
            at_tag_start = true;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_only_b() {
        assert_eq!(
            super::strip_b_tag(b"i=1; bh=abc; b=xy\r\n z; d=ex"),
            b"i=1; bh=abc; b=; d=ex".to_vec()
        );
        assert_eq!(super::strip_b_tag(b" b = q"), b" b =".to_vec());
        assert_eq!(super::strip_b_tag(b"d=x; b=abc;\r\n"), b"d=x; b=;".to_vec());
    }
}
