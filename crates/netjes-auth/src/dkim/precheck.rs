//! RFC 6376 §6.1's order of checks, before any hash is compared.
//!
//! mail-auth compares the body hash before it fetches the key, so a
//! changed body hid a key that could not be fetched: a DNS timeout came
//! out as `fail (body hash mismatch)`, a definite answer netjes never gives
//! for a timeout. Here, in the RFC's order:
//!
//! 1. §6.1.1, the signature itself: From signed, i= within d=, a query
//!    method we support (q=), not expired.
//! 2. §6.1.2, the key: fetched (a timeout or SERVFAIL is temperror; no
//!    record is permerror), usable (not revoked, parses, k= matches a=,
//!    its h= allows the hash, its s= covers email, t=s holds).
//!
//! Only a signature that passes both is judged by its hashes (§6.1.3).

use super::record::{key_records, parse_key_record, KeyRecord, KeyRecordError};
use super::verify::DkimResult;
use super::KeyAlgorithm;
use mail_auth::common::crypto::Algorithm;
use mail_auth::dkim::Signature;
use netjes_dns::DnsError;

/// A signature's tag-list (RFC 6376 §3.2): the value of tag `name`, with
/// folding white space removed, if the tag is there.
pub(crate) fn tag_value(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    text.split(';').find_map(|spec| {
        let (n, v) = spec.split_once('=')?;
        n.trim().eq_ignore_ascii_case(name).then(|| {
            v.chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect::<String>()
        })
    })
}

/// The domain of i=, lower case, when it has one.
fn auid_domain(sig: &Signature) -> Option<String> {
    if sig.i.is_empty() {
        return None;
    }
    Some(
        sig.i
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .trim_end_matches('.')
            .to_ascii_lowercase(),
    )
}

/// §6.1.1: what makes the signature itself unusable. `expired` is
/// mail-auth's finding, which it makes first too.
pub(crate) fn check_signature(
    sig: &Signature,
    raw_value: &[u8],
    expired: bool,
) -> Option<(DkimResult, String)> {
    let perm = |why: String| Some((DkimResult::Permerror, why));
    if !sig.h.iter().any(|h| h.trim().eq_ignore_ascii_case("from")) {
        return perm("h= does not sign the From field, which RFC 6376 §5.4 requires".into());
    }
    let d = sig.d.trim_end_matches('.').to_ascii_lowercase();
    if let Some(auid) = auid_domain(sig) {
        if auid != d && !auid.ends_with(&format!(".{d}")) {
            return perm(format!(
                "i= {} is not in d={} or a subdomain of it (RFC 6376 §3.5)",
                sig.i, sig.d
            ));
        }
    }
    if let Some(q) = tag_value(raw_value, "q") {
        // §3.5: "dns/txt" is the one method defined; RFC 4871 wrote it "dns".
        let ok = q
            .split(':')
            .any(|m| m.eq_ignore_ascii_case("dns/txt") || m.eq_ignore_ascii_case("dns"));
        if !ok {
            return perm(format!(
                "q={q}: no query method netjes supports (RFC 6376 §3.5 defines dns/txt)"
            ));
        }
    }
    if expired {
        return perm("signature expired (x= is in the past)".into());
    }
    None
}

/// The key record a signature gets from the TXT records at its selector:
/// the first DKIM key that parses, else the first one's error.
pub(crate) fn key_of(txts: &[Vec<u8>]) -> Option<Result<KeyRecord, KeyRecordError>> {
    let candidates = key_records(txts);
    let first_err = candidates.first().map(|t| parse_key_record(t));
    candidates
        .iter()
        .find_map(|t| parse_key_record(t).ok())
        .map(Ok)
        .or(first_err)
}

/// §6.1.2: the key fetched and usable for this signature.
pub(crate) fn check_key(
    sig: &Signature,
    answer: Option<&Result<Vec<Vec<u8>>, DnsError>>,
) -> Option<(DkimResult, String)> {
    let perm = |why: String| Some((DkimResult::Permerror, why));
    let txts = match answer {
        None => return Some((DkimResult::Temperror, "the key was not looked up".into())),
        Some(Err(e)) if e.is_temporary() => {
            return Some((
                DkimResult::Temperror,
                format!("DNS error looking up the key: {e}"),
            ))
        }
        Some(Err(_)) => {
            return perm("key not found: no key record is published at the selector".into())
        }
        Some(Ok(t)) => t,
    };
    let rec = match key_of(txts) {
        None => return perm("key not found: the TXT record there is not a DKIM key".into()),
        Some(Err(KeyRecordError::Revoked)) => {
            return perm("key revoked: the key record has an empty p=".into())
        }
        Some(Err(e)) => return perm(e.to_string()),
        Some(Ok(r)) => r,
    };
    let (want, hash) = match sig.a {
        Algorithm::RsaSha1 => (KeyAlgorithm::Rsa, "sha1"),
        Algorithm::RsaSha256 => (KeyAlgorithm::Rsa, "sha256"),
        Algorithm::Ed25519Sha256 => (KeyAlgorithm::Ed25519, "sha256"),
    };
    if rec.algorithm != want {
        return perm(format!(
            "the key is k={} but the signature is a={} (RFC 6376 §6.1.2)",
            rec.algorithm.k_tag(),
            super::verify::algorithm_name(sig.a)
        ));
    }
    if let Some(h) = &rec.hashes {
        if !h.iter().any(|x| x.eq_ignore_ascii_case(hash)) {
            return perm(format!(
                "the key record's h={} does not allow {hash} (RFC 6376 §3.6.1)",
                h.join(":")
            ));
        }
    }
    if let Some(s) = &rec.services {
        if !s.iter().any(|x| x == "*" || x.eq_ignore_ascii_case("email")) {
            return perm(format!(
                "the key record's s={} does not cover email (RFC 6376 §3.6.1)",
                s.join(":")
            ));
        }
    }
    if rec.strict {
        let d = sig.d.trim_end_matches('.').to_ascii_lowercase();
        if auid_domain(sig).is_some_and(|a| a != d) {
            return perm(format!(
                "i= {} is a subdomain of d={}, which the key's t=s forbids",
                sig.i, sig.d
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(a: Algorithm, i: &str, h: &[&str]) -> Signature {
        Signature {
            a,
            d: "example.com".into(),
            s: "s".into(),
            i: i.into(),
            h: h.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    const ED: &str = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    #[test]
    fn signature_checks_in_order() {
        let s = sig(Algorithm::Ed25519Sha256, "", &["from"]);
        assert_eq!(check_signature(&s, b"v=1; q=dns/txt", false), None);
        assert_eq!(check_signature(&s, b"v=1; q = dns", false), None);
        let (r, why) = check_signature(&s, b"v=1; q=http", false).unwrap();
        assert_eq!(r, DkimResult::Permerror);
        assert!(why.contains("q=http"), "{why}");
        let (_, why) = check_signature(&sig(Algorithm::RsaSha256, "", &["to"]), b"", false).unwrap();
        assert!(why.contains("From"), "{why}");
        let (_, why) =
            check_signature(&sig(Algorithm::RsaSha256, "@evil.example", &["from"]), b"", false)
                .unwrap();
        assert!(why.contains("not in d="), "{why}");
        assert!(!why.contains("t=s"), "{why}");
        assert!(check_signature(&sig(Algorithm::RsaSha256, "x@sub.example.com", &["from"]), b"", false).is_none());
        assert!(check_signature(&s, b"", true).unwrap().1.contains("expired"));
    }

    #[test]
    fn key_checks() {
        let s = sig(Algorithm::Ed25519Sha256, "", &["from"]);
        let ok = |rec: &str| Some(Ok(vec![rec.as_bytes().to_vec()]));
        assert_eq!(check_key(&s, ok(ED).as_ref()), None);
        let tmp: Result<Vec<Vec<u8>>, DnsError> = Err(DnsError::Temporary {
            name: "s._domainkey.example.com".into(),
            reason: "timeout".into(),
        });
        assert_eq!(check_key(&s, Some(&tmp)).unwrap().0, DkimResult::Temperror);
        let nx: Result<Vec<Vec<u8>>, DnsError> = Err(DnsError::NxDomain {
            name: "x".into(),
            negative_ttl: None,
        });
        assert_eq!(check_key(&s, Some(&nx)).unwrap().0, DkimResult::Permerror);
        for (rec, needle) in [
            ("v=DKIM1; k=ed25519; p=", "revoked"),
            ("v=DKIM1; k=ed25519; p=AAAA", "32 bytes"),
            (&format!("{ED}; h=sha1"), "h=sha1"),
            (&format!("{ED}; s=tlsrpt"), "s=tlsrpt"),
            ("v=DKIM1; k=rsa; p=AAAA", "RSA"),
            ("v=spf1 -all", "not a DKIM key"),
        ] {
            let (r, why) = check_key(&s, ok(rec).as_ref()).unwrap();
            assert_eq!(r, DkimResult::Permerror, "{rec}");
            assert!(why.contains(needle), "{rec}: {why}");
        }
        assert_eq!(check_key(&s, ok(&format!("{ED}; s=email:tlsrpt; h=sha256")).as_ref()), None);
        let rsa_sig = sig(Algorithm::RsaSha256, "", &["from"]);
        let (_, why) = check_key(&rsa_sig, ok(ED).as_ref()).unwrap();
        assert!(why.contains("k=ed25519"), "{why}");
        let sub = sig(Algorithm::Ed25519Sha256, "@sub.example.com", &["from"]);
        assert!(check_key(&sub, ok(ED).as_ref()).is_none());
        let (_, why) = check_key(&sub, ok(&format!("{ED}; t=s")).as_ref()).unwrap();
        assert!(why.contains("t=s"), "{why}");
    }
}
