//! The one table of findings: id, section, default penalty and what the
//! finding means. The README prints it (`netjes analyze --penalties`), and
//! a configuration file may change any penalty by id.
//!
//! The weights follow what receivers weigh: authentication most (Gmail and
//! Yahoo reject unauthenticated bulk mail since February 2024), then
//! blocklists and deceptive content, then form, then style.

use crate::finding::Section;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub section: Section,
    pub penalty: f32,
    pub title: &'static str,
}

const fn r(id: &'static str, section: Section, penalty: f32, title: &'static str) -> Rule {
    Rule {
        id,
        section,
        penalty,
        title,
    }
}

use Section::{
    Authentication as A, BulkSender as B, Content as C, Format as F, Received as R,
    Reputation as P, Spamassassin as S,
};

pub const RULES: &[Rule] = &[
    r(
        "auth.spf-fail",
        A,
        2.0,
        "SPF fails: the sending address is not allowed by the MAIL FROM domain",
    ),
    r("auth.spf-softfail", A, 1.0, "SPF softfails (~all matched)"),
    r("auth.spf-neutral", A, 0.5, "SPF is neutral (?all matched)"),
    r(
        "auth.spf-none",
        A,
        1.0,
        "the MAIL FROM domain publishes no SPF record",
    ),
    r(
        "auth.spf-permerror",
        A,
        1.0,
        "the SPF record is broken (permerror)",
    ),
    r(
        "auth.spf-temperror",
        A,
        0.0,
        "SPF could not be checked: DNS timeout or SERVFAIL",
    ),
    r(
        "auth.spf-not-checked",
        A,
        0.0,
        "no client address is known, so SPF was not checked",
    ),
    r("auth.dkim-none", A, 2.0, "the message is not DKIM-signed"),
    r("auth.dkim-fail", A, 2.0, "a DKIM signature does not verify"),
    r(
        "auth.dkim-policy",
        A,
        1.5,
        "a DKIM signature uses a weak key or rsa-sha1 (RFC 8301)",
    ),
    r(
        "auth.dkim-temperror",
        A,
        0.0,
        "a DKIM key could not be fetched: DNS timeout or SERVFAIL",
    ),
    r(
        "auth.dkim-not-aligned",
        A,
        1.0,
        "no passing DKIM signature is aligned with the From domain",
    ),
    r(
        "auth.dkim-short-key",
        A,
        0.3,
        "the DKIM key is shorter than 2048 bits",
    ),
    r(
        "auth.dkim-testing",
        A,
        0.2,
        "the DKIM key record says t=y (testing)",
    ),
    r(
        "auth.dkim-body-length",
        A,
        0.5,
        "the DKIM signature covers only part of the body (l=)",
    ),
    r(
        "auth.dmarc-none",
        A,
        1.5,
        "the From domain publishes no DMARC record",
    ),
    r(
        "auth.dmarc-fail",
        A,
        2.5,
        "DMARC fails: neither SPF nor DKIM passes aligned with From",
    ),
    r("auth.dmarc-permerror", A, 1.0, "the DMARC record is broken"),
    r(
        "auth.author-refused",
        A,
        3.0,
        "the From field has no usable author, so receivers refuse the message",
    ),
    r(
        "auth.dmarc-temperror",
        A,
        0.0,
        "DMARC could not be checked: DNS timeout or SERVFAIL",
    ),
    r(
        "auth.dmarc-monitor-only",
        A,
        0.2,
        "the DMARC policy is p=none: it protects nobody yet",
    ),
    r("auth.arc-fail", A, 0.5, "the ARC chain is broken"),
    r(
        "auth.no-ptr",
        A,
        1.5,
        "the sending address has no reverse DNS (PTR)",
    ),
    r(
        "auth.ptr-not-confirmed",
        A,
        1.0,
        "the PTR name does not resolve back to the sending address",
    ),
    r(
        "auth.ptr-generic",
        A,
        0.5,
        "the PTR name looks like a dynamic or generic address",
    ),
    r(
        "auth.ptr-temperror",
        A,
        0.0,
        "reverse DNS could not be checked: DNS timeout or SERVFAIL",
    ),
    r(
        "auth.helo-mismatch",
        A,
        0.3,
        "the HELO name does not resolve to the sending address",
    ),
    r(
        "auth.unaligned",
        A,
        0.0,
        "neither DKIM nor SPF passes aligned with From: the mark is capped at 6",
    ),
    r(
        "reputation.ip-listed",
        P,
        3.0,
        "the sending address is on an IP blocklist",
    ),
    r(
        "reputation.domain-listed",
        P,
        2.5,
        "a link domain is on a domain blocklist",
    ),
    r(
        "reputation.list-error",
        P,
        0.0,
        "a blocklist could not be asked or refused the query",
    ),
    r("format.no-from", F, 3.0, "there is no From field"),
    r(
        "format.display-name-address",
        F,
        2.5,
        "the display name shows an address at another domain than the sender's",
    ),
    r(
        "format.many-from",
        F,
        3.0,
        "there is more than one From field",
    ),
    r(
        "format.duplicate-field",
        F,
        1.0,
        "a field that may appear once appears more often",
    ),
    r("format.no-date", F, 1.0, "there is no Date field"),
    r("format.bad-date", F, 1.0, "the Date field cannot be read"),
    r("format.future-date", F, 1.0, "the Date is in the future"),
    r("format.no-message-id", F, 1.0, "there is no Message-ID"),
    r(
        "format.bad-message-id",
        F,
        0.5,
        "the Message-ID is not <id@domain>",
    ),
    r("format.no-subject", F, 0.5, "there is no Subject"),
    r("format.long-lines", F, 1.0, "a line is over 998 octets"),
    r(
        "format.bare-line-ends",
        F,
        0.5,
        "a line ends in a bare CR or LF",
    ),
    r(
        "format.8bit-header",
        F,
        1.0,
        "a header field holds raw 8-bit bytes",
    ),
    r(
        "bulk.no-list-unsubscribe",
        B,
        0.3,
        "there is no List-Unsubscribe",
    ),
    r(
        "bulk.list-unsubscribe-uri",
        B,
        1.0,
        "List-Unsubscribe holds no https: or mailto: URI",
    ),
    r(
        "bulk.no-one-click",
        B,
        0.5,
        "there is no List-Unsubscribe-Post (RFC 8058 one-click)",
    ),
    r(
        "bulk.bad-unsubscribe-post",
        B,
        0.5,
        "List-Unsubscribe-Post is not List-Unsubscribe=One-Click",
    ),
    r(
        "bulk.one-click-without-https",
        B,
        0.5,
        "one-click unsubscribe without an https: URI",
    ),
    r(
        "bulk.unsigned-unsubscribe",
        B,
        0.5,
        "List-Unsubscribe fields are not covered by DKIM (RFC 8058 §4)",
    ),
    r(
        "bulk.unaligned",
        B,
        0.0,
        "From is not aligned with a passing DKIM or SPF (counted under authentication)",
    ),
    r(
        "bulk.no-dmarc",
        B,
        0.0,
        "the From domain publishes no DMARC record (counted under authentication)",
    ),
    r(
        "bulk.no-tls",
        B,
        0.5,
        "the hop into the receiving server did not use TLS",
    ),
    r("content.no-body", C, 1.0, "the message has no text at all"),
    r(
        "content.no-text-part",
        C,
        0.5,
        "HTML without a text/plain alternative",
    ),
    r(
        "content.text-html-mismatch",
        C,
        0.5,
        "the text/plain part says something else than the HTML",
    ),
    r(
        "content.image-only",
        C,
        1.5,
        "the HTML is images with next to no text",
    ),
    r(
        "content.image-heavy",
        C,
        0.5,
        "the HTML has many images for its text",
    ),
    r(
        "content.too-large",
        C,
        0.3,
        "the HTML is over 102 KB, where Gmail clips it",
    ),
    r("content.script", C, 1.5, "the HTML has scripts"),
    r("content.form", C, 1.0, "the HTML has a form"),
    r(
        "content.embedded-object",
        C,
        1.0,
        "the HTML has an iframe, object or embed",
    ),
    r(
        "content.link-text-mismatch",
        C,
        2.0,
        "a link's text shows another domain than it goes to",
    ),
    r(
        "content.shortener",
        C,
        1.0,
        "a link goes through a URL shortener",
    ),
    r(
        "content.http-link",
        C,
        0.3,
        "a link uses http: instead of https:",
    ),
    r(
        "content.ip-link",
        C,
        1.0,
        "a link goes to a bare IP address",
    ),
    r(
        "content.unrelated-links",
        C,
        0.3,
        "links go to domains unrelated to the sender",
    ),
    r(
        "content.risky-attachment",
        C,
        3.0,
        "an attachment type that carries malware",
    ),
    r(
        "received.clock-skew",
        R,
        0.2,
        "a hop is timed before the one before it",
    ),
    r("received.slow-hop", R, 0.0, "a hop took more than an hour"),
    r(
        "received.none",
        R,
        0.0,
        "the message has no Received fields",
    ),
    r(
        "spamassassin.score",
        S,
        5.0,
        "SpamAssassin's score, as a penalty up to this value",
    ),
];

/// The rule of an id. Unknown ids are a bug in this crate; the test below
/// checks every id the crate uses is in the table.
pub fn rule(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("finding id {id:?} is not in the penalty table"))
}

/// The penalties in force: the table, with the configuration's overrides.
#[derive(Debug, Clone, Default)]
pub struct Penalties {
    overrides: BTreeMap<&'static str, f32>,
}

impl Penalties {
    /// Checks every override at once and reports every bad one.
    pub fn with_overrides(given: &BTreeMap<String, f32>) -> Result<Penalties, Vec<String>> {
        let mut errors = Vec::new();
        let mut overrides = BTreeMap::new();
        for (id, p) in given {
            match RULES.iter().find(|r| r.id == id) {
                None => errors.push(format!(
                    "penalties: {id:?} is not a finding id (see `netjes analyze --penalties`)"
                )),
                Some(_) if !(p.is_finite() && (0.0..=10.0).contains(p)) => {
                    errors.push(format!("penalties: {id} = {p} must be between 0 and 10"))
                }
                Some(r) => {
                    overrides.insert(r.id, *p);
                }
            }
        }
        if errors.is_empty() {
            Ok(Penalties { overrides })
        } else {
            Err(errors)
        }
    }

    pub fn penalty(&self, id: &str) -> f32 {
        self.overrides
            .get(id)
            .copied()
            .unwrap_or_else(|| rule(id).penalty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_used_id_is_in_the_table() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "{} twice", r.id);
            assert!(r.id.starts_with(match r.section {
                Section::Authentication => "auth.",
                Section::Reputation => "reputation.",
                Section::Format => "format.",
                Section::BulkSender => "bulk.",
                Section::Content => "content.",
                Section::Received => "received.",
                Section::Spamassassin => "spamassassin.",
            }));
        }
        // Every id written in the source must be in the table.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        for e in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            for part in text.split("Finding::new(\"").skip(1) {
                let id = &part[..part.find('"').unwrap()];
                assert!(seen.contains(id), "{id} is used but not in RULES");
            }
        }
    }

    #[test]
    fn overrides_are_checked_all_at_once() {
        let mut m = BTreeMap::new();
        m.insert("content.http-link".to_string(), 0.0);
        let p = Penalties::with_overrides(&m).unwrap();
        assert_eq!(p.penalty("content.http-link"), 0.0);
        assert_eq!(p.penalty("content.shortener"), 1.0);
        m.insert("content.nope".to_string(), 1.0);
        m.insert("format.no-date".to_string(), -1.0);
        let e = Penalties::with_overrides(&m).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }
}
