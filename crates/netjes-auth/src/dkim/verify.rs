//! Verifying DKIM signatures: mail-auth does the cryptography, netjes the
//! key lookups, the RFC 8301 rules and the reasons a postmaster can act on.

use super::precheck::{check_key, check_signature, key_of};
use super::record::KeyRecord;
use std::collections::HashMap;
use crate::glue::{authenticator, Prefetched};
use crate::message::MAX_DKIM_SIGNATURES;
use mail_auth::common::crypto::Algorithm;
use mail_auth::dkim::DkimError;
use mail_auth::{AuthenticatedMessage, DkimOutput, Parameters};
use netjes_dns::Resolver;
use serde::Serialize;

/// RFC 8601 §2.7.1 results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimResult {
    None,
    Pass,
    Fail,
    Policy,
    Neutral,
    Temperror,
    Permerror,
}

impl DkimResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::None => "none",
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Policy => "policy",
            DkimResult::Neutral => "neutral",
            DkimResult::Temperror => "temperror",
            DkimResult::Permerror => "permerror",
        }
    }
}

/// One signature's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct DkimSignatureReport {
    pub result: DkimResult,
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub key_bits: Option<usize>,
    /// The signing identity (i=), or @d when absent.
    pub identity: String,
    /// Why it did not pass.
    pub reason: Option<String>,
    pub warnings: Vec<String>,
    /// The key record says t=y (testing).
    pub testing: bool,
    /// The first 8 characters of b=, to tell signatures apart (RFC 6008).
    pub b: String,
    /// The header fields the signature covers (h=), in its order; what
    /// RFC 8058 §4 asks of List-Unsubscribe is judged from it.
    pub signed_headers: Vec<String>,
}

pub(crate) fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

/// What each mail-auth error means, in one place.
fn explain(err: &mail_auth::Error) -> (DkimResult, String) {
    use mail_auth::Error as E;
    match err {
        E::Dkim(DkimError::FailedBodyHashMatch) => (
            DkimResult::Fail,
            "body hash mismatch: the body was changed after signing".into(),
        ),
        E::Crypto(_) => (
            DkimResult::Fail,
            "signature mismatch: the signed headers were changed or the key is not the signer's"
                .into(),
        ),
        E::Dkim(DkimError::RevokedPublicKey) => (
            DkimResult::Permerror,
            "key revoked: the key record has an empty p=".into(),
        ),
        E::Dkim(DkimError::SignatureExpired) => (
            DkimResult::Permerror,
            "signature expired (x= is in the past)".into(),
        ),
        E::Dkim(DkimError::FailedAuidMatch) => (
            DkimResult::Permerror,
            "i= is not in d= as the key's t=s requires".into(),
        ),
        E::Dkim(DkimError::UnsupportedAlgorithm) => {
            (DkimResult::Permerror, "unsupported algorithm".into())
        }
        E::Dkim(DkimError::UnsupportedKeyType) => {
            (DkimResult::Permerror, "unsupported key type".into())
        }
        E::Dkim(DkimError::UnsupportedVersion) => (
            DkimResult::Permerror,
            "syntax: unsupported version (v= must be 1)".into(),
        ),
        E::Dkim(DkimError::UnsupportedCanonicalization) => (
            DkimResult::Permerror,
            "syntax: unsupported canonicalization".into(),
        ),
        E::Dkim(e) => (DkimResult::Permerror, format!("syntax: {e}")),
        E::Dns(mail_auth::DnsError::Resolver(r)) => (
            DkimResult::Temperror,
            format!("DNS error looking up the key: {r}"),
        ),
        E::Dns(mail_auth::DnsError::RecordNotFound(_)) => (
            DkimResult::Permerror,
            "key not found: no key record is published at the selector".into(),
        ),
        E::Dns(mail_auth::DnsError::InvalidRecordType) => (
            DkimResult::Permerror,
            "key not found: the TXT record there is not a DKIM key".into(),
        ),
        E::ParseError | E::Base64 => (
            DkimResult::Permerror,
            "syntax: the signature or key record cannot be parsed".into(),
        ),
        E::MissingParameters => (
            DkimResult::Permerror,
            "syntax: a required tag is missing".into(),
        ),
        other => (DkimResult::Permerror, other.to_string()),
    }
}

/// Verifies every DKIM-Signature of a parsed message.
pub async fn verify_dkim(
    dns: &dyn Resolver,
    msg: &AuthenticatedMessage<'_>,
) -> Vec<DkimSignatureReport> {
    let msg_all = msg;
    // Only the first MAX_DKIM_SIGNATURES are looked up and verified; the
    // rest are reported, not checked, so a message cannot buy unbounded work.
    let limited;
    let msg = if msg.dkim_headers.len() > MAX_DKIM_SIGNATURES {
        let mut m = msg.clone();
        m.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
        limited = m;
        &limited
    } else {
        msg
    };
    let cache = Prefetched::default();
    let mut names: Vec<String> = msg
        .dkim_headers
        .iter()
        .map(|h| format!("{}._domainkey.{}", h.header.s, h.header.d).to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let answers = netjes_dns::join_all(names.iter().map(|n| cache.domain_key(dns, n))).await;
    let answers: HashMap<String, Result<Vec<Vec<u8>>, netjes_dns::DnsError>> =
        names.into_iter().zip(answers).collect();
    // Each key record parsed once, for the key size and the warnings.
    let keys: HashMap<&str, KeyRecord> = answers
        .iter()
        .filter_map(|(n, r)| Some((n.as_str(), key_of(r.as_ref().ok()?)?.ok()?)))
        .collect();

    let outputs: Vec<DkimOutput<'_>> = authenticator()
        .verify_dkim(Parameters::new(msg).with_txt_cache(&cache))
        .await;
    let mut reports = Vec::new();
    for out in &outputs {
        let Some(sig) = out.signature() else {
            reports.push(malformed_report(out));
            continue;
        };
        let name = format!("{}._domainkey.{}", sig.s, sig.d).to_ascii_lowercase();
        let record = keys.get(name.as_str());
        let raw_value = msg
            .dkim_headers
            .iter()
            .find(|h| std::ptr::eq(&h.header, sig))
            .map(|h| h.value)
            .unwrap_or_default();
        let mail_auth_verdict = match out.result() {
            mail_auth::DkimResult::Pass => (DkimResult::Pass, None),
            mail_auth::DkimResult::None => (DkimResult::None, None),
            mail_auth::DkimResult::Neutral(e)
            | mail_auth::DkimResult::Fail(e)
            | mail_auth::DkimResult::PermError(e)
            | mail_auth::DkimResult::TempError(e) => {
                let (r, why) = explain(e);
                (r, Some(why))
            }
        };
        let expired = matches!(
            out.result(),
            mail_auth::DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::SignatureExpired))
        );
        // RFC 6376 §6.1: the signature, then the key, then the hashes.
        let (mut result, mut reason) = check_signature(sig, raw_value, expired)
            .or_else(|| check_key(sig, answers.get(&name)))
            .map(|(r, why)| (r, Some(why)))
            .unwrap_or(mail_auth_verdict);
        let mut warnings = Vec::new();
        if let Some(rec) = record {
            warnings.extend(rec.warnings.iter().cloned());
            // RFC 8301 §3.2: keys under 1024 bits must not be considered
            // valid. aws-lc will not even try them, so whatever the crypto
            // said, the answer is policy.
            if rec.algorithm == super::KeyAlgorithm::Rsa
                && rec.bits < super::keys::MIN_RSA_BITS
                && matches!(result, DkimResult::Pass | DkimResult::Fail)
            {
                result = DkimResult::Policy;
                reason = Some(format!(
                    "the key has {} bits; RFC 8301 §3.2 forbids accepting keys under 1024 bits",
                    rec.bits
                ));
            } else if rec.algorithm == super::KeyAlgorithm::Rsa
                && rec.bits < super::keys::RECOMMENDED_RSA_BITS
            {
                warnings.push(format!(
                    "the key has {} bits; use 2048 (RFC 8301 §3.2)",
                    rec.bits
                ));
            }
            if rec.testing {
                warnings.push("the key record has t=y: the domain says it is testing DKIM".into());
            }
        }
        // RFC 8301 §3.1: rsa-sha1 must not be used for verifying.
        if sig.a == Algorithm::RsaSha1 && result == DkimResult::Pass {
            result = DkimResult::Policy;
            reason = Some(
                "rsa-sha1 signature: RFC 8301 §3.1 forbids accepting it; sign with rsa-sha256"
                    .into(),
            );
        }
        if sig.l > 0 {
            warnings.push(format!(
                "l={} signs only part of the body: anyone can append content and keep the signature valid",
                sig.l
            ));
        }
        reports.push(DkimSignatureReport {
            result,
            domain: sig.d.to_ascii_lowercase(),
            selector: sig.s.clone(),
            algorithm: algorithm_name(sig.a).to_string(),
            key_bits: record.map(|r| r.bits),
            identity: if sig.i.is_empty() {
                format!("@{}", sig.d)
            } else {
                sig.i.clone()
            },
            reason,
            warnings,
            testing: record.is_some_and(|r| r.testing),
            b: base64_prefix(&sig.b),
            signed_headers: sig.h.clone(),
        });
    }
    for h in msg_all.dkim_headers.iter().skip(MAX_DKIM_SIGNATURES) {
        reports.push(DkimSignatureReport {
            result: DkimResult::Permerror,
            domain: h.header.d.to_ascii_lowercase(),
            selector: h.header.s.clone(),
            algorithm: algorithm_name(h.header.a).to_string(),
            key_bits: None,
            identity: h.header.i.clone(),
            reason: Some(format!("not verified: netjes verifies at most {MAX_DKIM_SIGNATURES} signatures per message")),
            warnings: vec![],
            testing: false,
            b: base64_prefix(&h.header.b),
            signed_headers: h.header.h.clone(),
        });
    }
    reports
}

/// A DKIM-Signature so malformed that it has no d= or s=.
fn malformed_report(out: &DkimOutput<'_>) -> DkimSignatureReport {
    let reason = match out.result() {
        mail_auth::DkimResult::Neutral(e) | mail_auth::DkimResult::PermError(e) => {
            format!("syntax: {e}")
        }
        other => other.to_string(),
    };
    DkimSignatureReport {
        result: DkimResult::Permerror,
        domain: String::new(),
        selector: String::new(),
        algorithm: String::new(),
        key_bits: None,
        identity: String::new(),
        reason: Some(reason),
        warnings: vec![],
        testing: false,
        b: String::new(),
        signed_headers: vec![],
    }
}

fn base64_prefix(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(b)
        .chars()
        .take(8)
        .collect()
}
