//! DKIM selectors: the given ones, or guessed from common names and from
//! the providers that MX and SPF reveal.

use crate::report::{Category, Finding, Status};
use netjes_auth::dkim::keys::{MIN_RSA_BITS, RECOMMENDED_RSA_BITS};
use netjes_auth::dkim::record::same_public_key;
use netjes_auth::dkim::{parse_key_record, KeyAlgorithm, KeyRecordError, PrivateKey};
use netjes_dns::{Resolver, ResolverExt};

const C: Category = Category::Dkim;

/// Selectors to try, each with why it was guessed.
pub fn guess_selectors(mx_hosts: &[String], spf_text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |s: &str, why: &str| {
        if !out.iter().any(|(x, _)| x == s) {
            out.push((s.to_string(), why.to_string()));
        }
    };
    let mx = mx_hosts.join(" ").to_ascii_lowercase();
    let spf = spf_text.to_ascii_lowercase();
    if mx.contains("google.com") || mx.contains("googlemail.com") || spf.contains("_spf.google.com")
    {
        add("google", "Google Workspace (MX/SPF)");
    }
    if mx.contains("outlook.com") || spf.contains("spf.protection.outlook.com") {
        add("selector1", "Microsoft 365 (MX/SPF)");
        add("selector2", "Microsoft 365 (MX/SPF)");
    }
    if spf.contains("sendgrid.net") {
        add("s1", "SendGrid (SPF)");
        add("s2", "SendGrid (SPF)");
    }
    if spf.contains("mcsv.net") || spf.contains("mailchimp") || spf.contains("mandrillapp.com") {
        for s in ["k1", "k2", "k3"] {
            add(s, "Mailchimp (SPF)");
        }
    }
    if mx.contains("messagingengine.com") || spf.contains("messagingengine.com") {
        for s in ["fm1", "fm2", "fm3"] {
            add(s, "Fastmail (MX/SPF)");
        }
    }
    for s in [
        "default",
        "mail",
        "dkim",
        "selector1",
        "selector2",
        "google",
        "s1",
        "s2",
        "k1",
        "smtp",
        "email",
        "key1",
        "dkim1",
        "mx",
    ] {
        add(s, "a common selector");
    }
    out
}

pub async fn check_dkim(
    dns: &dyn Resolver,
    domain: &str,
    given: &[String],
    mx_hosts: &[String],
    spf_text: &str,
) -> Vec<Finding> {
    let guessing = given.is_empty();
    let candidates: Vec<(String, String)> = if guessing {
        guess_selectors(mx_hosts, spf_text)
    } else {
        given
            .iter()
            .map(|s| (s.clone(), "given".to_string()))
            .collect()
    };
    let lookups = candidates.iter().map(|(s, _)| {
        let name = format!("{s}._domainkey.{domain}");
        async move { (name.clone(), dns.txt(&name).await) }
    });
    let answers = netjes_dns::join_all(lookups).await;
    let mut out = Vec::new();
    let mut found = 0;
    for ((sel, why), (name, res)) in candidates.iter().zip(answers) {
        let guess = if guessing {
            format!(" (guessed: {why})")
        } else {
            String::new()
        };
        let id = format!("dkim.{sel}");
        let txts = match res {
            Ok(t) => t,
            Err(e) if e.is_temporary() => {
                out.push(Finding::new(
                    C,
                    &id,
                    Status::Error,
                    format!("{name} could not be checked: {e}"),
                ));
                continue;
            }
            Err(_) => {
                if !guessing {
                    out.push(
                        Finding::new(
                            C,
                            &id,
                            Status::Fail,
                            format!("no key at {name}: mail signed with selector {sel} fails DKIM"),
                        )
                        .advice("publish the TXT record of the signing key at this name (its public half, as v=DKIM1; k=...; p=...)"),
                    );
                }
                continue;
            }
        };
        let Some(raw) = netjes_auth::dkim::key_records(&txts).first().copied() else {
            if !guessing {
                out.push(Finding::new(
                    C,
                    &id,
                    Status::Fail,
                    format!("{name} has TXT records, but no DKIM key"),
                ));
            }
            continue;
        };
        found += 1;
        match parse_key_record(raw) {
            Ok(k) => {
                let what = format!(
                    "{} {}-bit key at {name}{guess}",
                    k.algorithm.k_tag(),
                    k.bits
                );
                let f = if k.algorithm == KeyAlgorithm::Rsa && k.bits < MIN_RSA_BITS {
                    Finding::new(
                        C,
                        &id,
                        Status::Fail,
                        format!(
                            "{what}: under {MIN_RSA_BITS} bits receivers must ignore it (RFC 8301)"
                        ),
                    )
                    .advice("generate a 2048-bit key, publish it under a new selector, then sign with it")
                } else if k.algorithm == KeyAlgorithm::Rsa && k.bits < RECOMMENDED_RSA_BITS {
                    Finding::new(C, &id, Status::Warn, format!("{what}: 1024 bits is weak; use 2048")).advice("generate a 2048-bit key, publish it under a new selector, then switch signing to it")
                } else {
                    Finding::new(C, &id, Status::Pass, what)
                };
                out.push(f);
                for w in &k.warnings {
                    out.push(Finding::new(
                        C,
                        &format!("{id}.format"),
                        Status::Warn,
                        format!("{name}: {w}"),
                    ));
                }
                if k.testing {
                    out.push(Finding::new(
                        C,
                        &format!("{id}.testing"),
                        Status::Warn,
                        format!("{name} has t=y: receivers treat its signatures as a test"),
                    ));
                }
            }
            Err(KeyRecordError::Revoked) => out.push(Finding::new(
                C,
                &id,
                Status::Info,
                format!("{name} is revoked (empty p=){guess}"),
            )),
            Err(e) => out.push(Finding::new(
                C,
                &id,
                Status::Fail,
                format!("{name}: {e}{guess}"),
            )),
        }
    }
    if found == 0 && guessing && !out.iter().any(|f| f.status == Status::Error) {
        out.push(
            Finding::new(
                C,
                "dkim.none-found",
                Status::Warn,
                format!("no DKIM key found at {} common selectors", candidates.len()),
            )
            .advice("name the selector your mail server signs with: it is the s= of the DKIM-Signature in a message you sent"),
        );
    }
    out
}

/// What `testkey` found at a key's DNS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    Ok,
    NotPublished,
    DifferentKey,
    Malformed,
    /// A timeout or SERVFAIL: nothing is known.
    DnsError,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Ok => "ok",
            KeyStatus::NotPublished => "not-published",
            KeyStatus::DifferentKey => "different-key",
            KeyStatus::Malformed => "malformed",
            KeyStatus::DnsError => "dns-error",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyTest {
    pub status: KeyStatus,
    pub message: String,
    pub warnings: Vec<String>,
}

impl KeyTest {
    fn new(status: KeyStatus, message: String, warnings: Vec<String>) -> KeyTest {
        KeyTest {
            status,
            message,
            warnings,
        }
    }
}

/// opendkim-testkey: is the key published at `name` the public half of
/// `key`?
pub async fn testkey(dns: &dyn Resolver, name: &str, key: &PrivateKey) -> KeyTest {
    let mut warnings = Vec::new();
    if key.algorithm == KeyAlgorithm::Rsa && key.bits < RECOMMENDED_RSA_BITS {
        warnings.push(format!(
            "the key has {} bits; use 2048 (RFC 8301 §3.2)",
            key.bits
        ));
    }
    let txts = match dns.txt(name).await {
        Ok(t) => t,
        Err(e) if e.is_temporary() => {
            return KeyTest::new(
                KeyStatus::DnsError,
                format!("cannot check {name}: {e}"),
                warnings,
            )
        }
        Err(_) => {
            return KeyTest::new(
                KeyStatus::NotPublished,
                format!(
                    "no key is published at {name}: publish the key's TXT record there"
                ),
                warnings,
            )
        }
    };
    let dkim = netjes_auth::dkim::key_records(&txts);
    let Some(first) = dkim.first() else {
        return KeyTest::new(
            KeyStatus::NotPublished,
            format!("{name} has TXT records, but none is a DKIM key"),
            warnings,
        );
    };
    if dkim.len() > 1 {
        warnings.push(format!(
            "{name} has {} key records; verifiers use only one",
            dkim.len()
        ));
    }
    match parse_key_record(first) {
        Ok(rec) => {
            warnings.extend(rec.warnings.iter().cloned());
            if rec.testing {
                warnings
                    .push("the record has t=y: receivers treat the domain as testing DKIM".into());
            }
            if !rec.warnings.is_empty() && rec.warnings.iter().any(|w| w.contains("white space")) {
                return KeyTest::new(
                    KeyStatus::Malformed,
                    format!(
                        "{name}: the record is malformed: {}",
                        rec.warnings.join("; ")
                    ),
                    warnings,
                );
            }
            if rec.algorithm == key.algorithm
                && same_public_key(&rec.public_key, &key.public_key, key.algorithm)
            {
                KeyTest::new(KeyStatus::Ok, "key OK".to_string(), warnings)
            } else {
                KeyTest::new(KeyStatus::DifferentKey, format!("{name} publishes a different key ({} bits {}); publish the record of this key", rec.bits, rec.algorithm.k_tag()), warnings)
            }
        }
        Err(KeyRecordError::Revoked) => KeyTest::new(
            KeyStatus::DifferentKey,
            format!("{name} publishes a revoked key (empty p=)"),
            warnings,
        ),
        Err(e) => KeyTest::new(KeyStatus::Malformed, format!("{name}: {e}"), warnings),
    }
}
