//! Validating an ARC chain: mail-auth checks the seals and the newest
//! message signature; netjes fetches the keys and reports the chain.

use crate::dkim::verify::futures_join;
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
        .chain(msg.as_headers.iter().map(|h| format!("{}._domainkey.{}", h.header.s, h.header.d)))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    // A chain is at most 50 sets (RFC 8617 §4.2.1); so are the lookups.
    names.truncate(100);
    futures_join(names.iter().map(|n| cache.domain_key(dns, n))).await;
    authenticator().verify_arc(Parameters::new(msg).with_txt_cache(cache)).await
}

pub(crate) fn report_of(msg: &AuthenticatedMessage<'_>, out: &mail_auth::ArcOutput<'_>) -> ArcReport {
    let sealers: Vec<String> = out.sets().iter().map(|s| s.seal.header.d.to_ascii_lowercase()).collect();
    let (result, reason) = match out.result() {
        mail_auth::DkimResult::Pass => (ArcResult::Pass, None),
        mail_auth::DkimResult::None => (ArcResult::None, None),
        mail_auth::DkimResult::TempError(e) => (ArcResult::Temperror, Some(e.to_string())),
        mail_auth::DkimResult::Fail(e) | mail_auth::DkimResult::Neutral(e) | mail_auth::DkimResult::PermError(e) => {
            (ArcResult::Fail, Some(e.to_string()))
        }
    };
    ArcReport {
        result,
        instances: msg.as_headers.len().max(msg.ams_headers.len()) as u32,
        last_sealer: sealers.last().cloned(),
        sealers,
        reason,
    }
}
