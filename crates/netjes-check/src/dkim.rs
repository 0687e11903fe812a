//! DKIM selectors: the given ones, or guessed from common names and from
//! the providers that MX and SPF reveal.

use crate::report::{Category, Finding, Status};
use netjes_auth::dkim::keys::{MIN_RSA_BITS, RECOMMENDED_RSA_BITS};
use netjes_auth::dkim::{parse_key_record, KeyAlgorithm, KeyRecordError};
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
    if mx.contains("google.com") || mx.contains("googlemail.com") || spf.contains("_spf.google.com") {
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
    for s in ["default", "mail", "dkim", "selector1", "selector2", "google", "s1", "s2", "k1", "smtp", "email", "key1", "dkim1", "mx"] {
        add(s, "a common selector");
    }
    out
}

pub async fn check_dkim(dns: &dyn Resolver, domain: &str, given: &[String], mx_hosts: &[String], spf_text: &str) -> Vec<Finding> {
    let guessing = given.is_empty();
    let candidates: Vec<(String, String)> =
        if guessing { guess_selectors(mx_hosts, spf_text) } else { given.iter().map(|s| (s.clone(), "given".to_string())).collect() };
    let lookups = candidates.iter().map(|(s, _)| {
        let name = format!("{s}._domainkey.{domain}");
        async move { (name.clone(), dns.txt(&name).await) }
    });
    let answers = netjes_dns::join_all(lookups).await;
    let mut out = Vec::new();
    let mut found = 0;
    for ((sel, why), (name, res)) in candidates.iter().zip(answers) {
        let guess = if guessing { format!(" (guessed: {why})") } else { String::new() };
        let id = format!("dkim.{sel}");
        let txts = match res {
            Ok(t) => t,
            Err(e) if e.is_temporary() => {
                out.push(Finding::new(C, &id, Status::Error, format!("{name} could not be checked: {e}")));
                continue;
            }
            Err(_) => {
                if !guessing {
                    out.push(Finding::new(C, &id, Status::Fail, format!("no key at {name}: mail signed with selector {sel} fails DKIM")).advice("publish the record that `netjes dkim record` prints for the key"));
                }
                continue;
            }
        };
        let Some(raw) = netjes_auth::dkim::key_records(&txts).first().copied() else {
            if !guessing {
                out.push(Finding::new(C, &id, Status::Fail, format!("{name} has TXT records, but no DKIM key")));
            }
            continue;
        };
        found += 1;
        match parse_key_record(raw) {
            Ok(k) => {
                let what = format!("{} {}-bit key at {name}{guess}", k.algorithm.k_tag(), k.bits);
                let f = if k.algorithm == KeyAlgorithm::Rsa && k.bits < MIN_RSA_BITS {
                    Finding::new(C, &id, Status::Fail, format!("{what}: under {MIN_RSA_BITS} bits receivers must ignore it (RFC 8301)")).advice("generate a 2048-bit key with `netjes dkim keygen`")
                } else if k.algorithm == KeyAlgorithm::Rsa && k.bits < RECOMMENDED_RSA_BITS {
                    Finding::new(C, &id, Status::Warn, format!("{what}: 1024 bits is weak; use 2048")).advice("generate a 2048-bit key with `netjes dkim keygen` under a new selector and rotate")
                } else {
                    Finding::new(C, &id, Status::Pass, what)
                };
                out.push(f);
                for w in &k.warnings {
                    out.push(Finding::new(C, &format!("{id}.format"), Status::Warn, format!("{name}: {w}")));
                }
                if k.testing {
                    out.push(Finding::new(C, &format!("{id}.testing"), Status::Warn, format!("{name} has t=y: receivers treat its signatures as a test")));
                }
            }
            Err(KeyRecordError::Revoked) => out.push(Finding::new(C, &id, Status::Info, format!("{name} is revoked (empty p=){guess}"))),
            Err(e) => out.push(Finding::new(C, &id, Status::Fail, format!("{name}: {e}{guess}"))),
        }
    }
    if found == 0 && guessing && !out.iter().any(|f| f.status == Status::Error) {
        out.push(Finding::new(C, "dkim.none-found", Status::Warn, format!("no DKIM key found at {} common selectors", candidates.len())).advice("give the selector your mail server signs with: --selector NAME"));
    }
    out
}
