//! The domain score: one table of what each finding costs, and why.
//!
//! It ranks configurations the way receivers treat them. The anchors are
//! the sender requirements of Gmail and Yahoo (February 2024) and Microsoft
//! (May 2025): SPF and DKIM for every sender, DMARC with alignment for bulk
//! senders, a forward-confirmed PTR, TLS; and internet.nl's scoring, where
//! the requirements weigh most and the optional standards add.
//!
//! - A configuration that meets every requirement scores 9; MTA-STS,
//!   TLS-RPT and BIMI add up to 1 more. Their absence costs nothing and
//!   pads nothing.
//! - Each finding costs what its failure means to a receiver ([`WEIGHTS`]);
//!   the first matching row counts. A few failures cap the score whatever
//!   else is right ([`CAPS`]): no SPF and no DMARC is a domain anyone can
//!   send as.
//! - A check that could not run (a DNS timeout) never raises the score: a
//!   requirement that could not be checked costs what missing it costs,
//!   and the score says it is incomplete.
//! - A domain that does not exist, or one where nothing could be checked,
//!   gets no score at all, and one headline that says why.

use crate::report::{Category, Finding, Status};
use serde::Serialize;

/// One row of the model: findings whose id matches (exactly, or by prefix
/// when it ends in `*`) and whose status is `status` cost `points`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Weight {
    pub id: &'static str,
    pub status: Status,
    pub points: f32,
    pub why: &'static str,
}

const fn w(id: &'static str, status: Status, points: f32, why: &'static str) -> Weight {
    Weight {
        id,
        status,
        points,
        why,
    }
}

use Status::{Error, Fail, Info, Pass, Warn};

/// The model, most specific rows first.
pub const WEIGHTS: &[Weight] = &[
    // Requirements: SPF for every sender.
    w("spf.missing", Fail, 3.0, "SPF is required of every sender (Gmail, Yahoo, Microsoft)"),
    w("spf.pasted", Fail, 3.0, "a record receivers cannot read as SPF is no SPF"),
    w("spf.syntax", Fail, 3.0, "a record that does not parse is permerror: receivers treat it as no SPF"),
    w("spf.multiple", Fail, 3.0, "two SPF records are permerror (RFC 7208 §4.5)"),
    w("spf.lookup-limit", Fail, 3.0, "over 10 DNS lookups is permerror (RFC 7208 §4.6.4)"),
    w("spf.void-limit", Fail, 2.0, "over 2 void lookups is permerror for the receivers that count them"),
    w("spf.include-error", Fail, 2.0, "an include that does not resolve is permerror"),
    w("spf.all", Fail, 2.5, "+all lets anyone pass SPF"),
    w("spf.ip", Fail, 2.0, "a sending address that SPF does not allow fails at every receiver"),
    w("spf.*", Warn, 0.25, "a weakness receivers forgive"),
    // DKIM for every sender.
    w("dkim.none-found", Warn, 1.5, "no DKIM key was found at the usual selectors: the requirement could not be confirmed"),
    w("dkim.*", Fail, 3.0, "a selector you sign with has no usable key: every signature fails (DKIM is required of every sender)"),
    w("dkim.*", Warn, 0.5, "a weak key or a testing flag"),
    // DMARC for bulk senders, with the policy that protects the domain.
    w("dmarc.missing", Fail, 2.5, "DMARC is required of bulk senders (Gmail, Yahoo 2024; Microsoft 2025)"),
    w("dmarc.pasted", Fail, 2.5, "a record receivers cannot read as DMARC applies no policy"),
    w("dmarc.syntax", Fail, 2.5, "a DMARC record that does not parse applies no policy"),
    w("dmarc.multiple", Fail, 2.5, "two DMARC records apply no policy (RFC 9989)"),
    w("dmarc.policy", Warn, 1.0, "p=none protects nothing: forged mail is still delivered"),
    w("dmarc.policy", Info, 0.25, "p=quarantine: one step from reject"),
    w("dmarc.*", Fail, 0.5, "reports are not sent, or a tag is wrong"),
    w("dmarc.*", Warn, 0.25, "a weakness receivers forgive"),
    // Forward-confirmed reverse DNS of the sending addresses.
    w("ptr.*", Fail, 2.0, "an address without forward-confirmed PTR is refused by Gmail and many others"),
    w("ptr.*", Warn, 0.5, "a generic PTR name looks like a dynamic address to filters"),
    // Receiving: MX.
    w("mx.missing", Warn, 1.0, "without MX, replies and bounces have nowhere to go but the A record"),
    w("mx.*", Fail, 1.5, "an MX host that cannot take mail"),
    w("mx.*", Warn, 0.25, "a weakness of the MX set"),
    // Reputation.
    w("blocklist.*", Fail, 3.0, "a listed address or domain is refused or filtered by the receivers that use the list"),
    // TLS (Gmail requires it; checked with --smtp).
    w("smtp.*", Fail, 1.5, "mail to you without working STARTTLS travels in clear text"),
    w("smtp.*", Warn, 0.25, "the SMTP greeting does not match the PTR name"),
    // Optional standards: broken ones cost a little, absent ones nothing.
    w("mta-sts.*", Fail, 1.0, "a broken MTA-STS policy can make senders refuse to deliver"),
    w("mta-sts.*", Warn, 0.25, "an MTA-STS detail"),
    w("tls-rpt.*", Fail, 0.25, "TLS reports do not arrive"),
    w("bimi.*", Warn, 0.1, "BIMI is not shown"),
];

/// The optional standards that add to the 9 of a compliant domain.
pub const BONUSES: &[Weight] = &[
    w("mta-sts.policy", Pass, 0.4, "MTA-STS: senders must deliver to you over valid TLS"),
    w("tls-rpt.record", Pass, 0.3, "TLS-RPT: you hear of TLS failures"),
    w("bimi.record", Pass, 0.3, "BIMI: your logo beside your mail"),
];

/// The best a domain can score with one of these wrong, whatever else is
/// right.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cap {
    pub max: f32,
    pub why: &'static str,
    #[serde(skip)]
    applies: fn(&Facts) -> bool,
}

/// What the caps look at, derived from the findings once.
#[derive(Debug, Default)]
pub struct Facts {
    spf_broken: bool,
    dmarc_missing: bool,
    dmarc_none: bool,
    dkim_selector_broken: bool,
    listed: bool,
}

pub const CAPS: &[Cap] = &[
    Cap { max: 2.0, why: "no working SPF and no DMARC: anyone can send as this domain, and receivers treat its mail as unauthenticated", applies: |f| f.spf_broken && f.dmarc_missing },
    Cap { max: 4.0, why: "listed on a blocklist: receivers that use it refuse the mail", applies: |f| f.listed },
    Cap { max: 5.0, why: "no working SPF: every receiver requires it", applies: |f| f.spf_broken },
    Cap { max: 6.0, why: "no DMARC: Gmail, Yahoo and Microsoft require it of bulk senders", applies: |f| f.dmarc_missing },
    Cap { max: 6.0, why: "a DKIM selector you sign with has no usable key", applies: |f| f.dkim_selector_broken },
    Cap { max: 8.0, why: "p=none: forged mail in your name is still delivered", applies: |f| f.dmarc_none },
];

/// A requirement that could not be checked costs what missing it costs.
fn unchecked_cost(c: Category) -> f32 {
    match c {
        Category::Spf => 3.0,
        Category::Dmarc => 2.5,
        Category::Dkim => 1.5,
        Category::Ptr => 2.0,
        Category::Mx => 1.0,
        Category::Smtp => 1.5,
        _ => 0.0,
    }
}

fn matches(rule: &Weight, f: &Finding) -> bool {
    rule.status == f.status
        && match rule.id.strip_suffix('*') {
            Some(prefix) => f.id.starts_with(prefix),
            None => f.id == rule.id,
        }
}

/// What one finding costs, with the row that says why.
pub fn cost(f: &Finding) -> Option<&'static Weight> {
    WEIGHTS.iter().find(|w| matches(w, f))
}

/// The score of a set of findings.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// 0 to 10, one decimal; None when there is nothing to score.
    pub score: Option<f32>,
    /// Some check could not run: the score is at most this good.
    pub complete: bool,
    /// "Excellent", "Good", "Needs work" or "Poor".
    pub verdict: Option<&'static str>,
    /// The caps that held the score down.
    pub capped_by: Vec<String>,
    /// The categories that could not be checked.
    pub not_checked: Vec<Category>,
}

pub fn verdict(score: f32) -> &'static str {
    match score {
        s if s >= 9.0 => "Excellent",
        s if s >= 7.0 => "Good",
        s if s >= 4.0 => "Needs work",
        _ => "Poor",
    }
}

fn facts(findings: &[Finding], not_checked: &[Category]) -> Facts {
    let has = |id: &str, s: Status| findings.iter().any(|f| f.status == s && f.id == id);
    let spf_fail = ["spf.missing", "spf.pasted", "spf.syntax", "spf.multiple", "spf.lookup-limit", "spf.void-limit"];
    Facts {
        spf_broken: spf_fail.iter().any(|id| has(id, Fail)) || not_checked.contains(&Category::Spf),
        dmarc_missing: ["dmarc.missing", "dmarc.pasted", "dmarc.syntax", "dmarc.multiple"]
            .iter()
            .any(|id| has(id, Fail))
            || not_checked.contains(&Category::Dmarc),
        dmarc_none: has("dmarc.policy", Warn),
        dkim_selector_broken: findings.iter().any(|f| {
            f.category == Category::Dkim && f.status == Fail && f.id != "dkim.none-found"
        }),
        listed: findings
            .iter()
            .any(|f| f.category == Category::Blocklists && f.status == Fail),
    }
}

/// Scores the findings of one audit.
pub fn score(findings: &[Finding]) -> Scored {
    if findings.is_empty() || findings.iter().all(|f| f.status == Error) {
        return Scored {
            score: None,
            complete: false,
            verdict: None,
            capped_by: vec![],
            not_checked: Category::ALL.to_vec(),
        };
    }
    // A category is unchecked when something in it errored and nothing in
    // it passed: the error may hide the very record it is about.
    let not_checked: Vec<Category> = Category::ALL
        .into_iter()
        .filter(|c| {
            let fs = findings.iter().filter(|f| f.category == *c);
            let mut errored = false;
            for f in fs {
                match f.status {
                    Error => errored = true,
                    Pass => return false,
                    _ => {}
                }
            }
            errored
        })
        .collect();
    // MX, SPF and DMARC all unanswered: the domain's DNS is down, and a
    // number made of the rest would only mislead.
    if [Category::Mx, Category::Spf, Category::Dmarc]
        .iter()
        .all(|c| not_checked.contains(c))
    {
        return Scored {
            score: None,
            complete: false,
            verdict: None,
            capped_by: vec![],
            not_checked,
        };
    }
    let lost: f32 = findings.iter().filter_map(cost).map(|w| w.points).sum::<f32>()
        + not_checked.iter().map(|c| unchecked_cost(*c)).sum::<f32>();
    let bonus: f32 = BONUSES
        .iter()
        .filter(|b| findings.iter().any(|f| matches(b, f)))
        .map(|b| b.points)
        .sum::<f32>()
        .min(1.0);
    let mut s = 9.0 - lost + bonus;
    let fx = facts(findings, &not_checked);
    let mut capped_by = Vec::new();
    for cap in CAPS.iter().filter(|c| (c.applies)(&fx)) {
        if s > cap.max {
            s = cap.max;
            capped_by.push(cap.why.to_string());
        }
    }
    let s = (s.clamp(0.0, 10.0) * 10.0).round() / 10.0;
    let complete = not_checked.is_empty() && !findings.iter().any(|f| f.status == Error);
    Scored {
        score: Some(s),
        complete,
        verdict: Some(verdict(s)),
        capped_by,
        not_checked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(c: Category, id: &str, s: Status) -> Finding {
        Finding::new(c, id, s, "")
    }

    #[test]
    fn the_table_is_reachable_and_explained() {
        for (i, w) in WEIGHTS.iter().enumerate() {
            assert!(!w.why.is_empty() && w.points > 0.0, "{}", w.id);
            // No row hides behind an earlier, broader one.
            let probe = Finding::new(Category::Mx, &w.id.replace('*', "x"), w.status, "");
            let first = WEIGHTS.iter().position(|r| matches(r, &probe));
            assert_eq!(first, Some(i), "row {i} ({}, {:?}) is shadowed", w.id, w.status);
        }
    }

    /// The README's table is this table.
    #[test]
    fn the_readme_lists_every_row() {
        let readme = include_str!("../../../README.md");
        for w in WEIGHTS {
            let row = format!(
                "| `{}` | {} | {:?} |",
                w.id,
                format!("{:?}", w.status).to_lowercase(),
                w.points
            );
            assert!(readme.contains(&row), "README lacks {row}");
        }
        for b in BONUSES {
            assert!(readme.contains(&format!("| `{}` pass | {:?} |", b.id, b.points)), "{}", b.id);
        }
        for c in CAPS {
            assert!(readme.contains(&format!("| {} | {:?} |", c.why, c.max)), "{}", c.why);
        }
    }

    #[test]
    fn unchecked_never_raises_the_score() {
        let missing = score(&[
            f(Category::Spf, "spf.present", Pass),
            f(Category::Dmarc, "dmarc.missing", Fail),
        ]);
        let timeout = score(&[
            f(Category::Spf, "spf.present", Pass),
            f(Category::Dmarc, "dmarc.dns-error", Error),
        ]);
        assert!(timeout.score <= missing.score, "{timeout:?} vs {missing:?}");
        assert!(!timeout.complete);
        assert_eq!(timeout.not_checked, vec![Category::Dmarc]);
        let all_errors = score(&[f(Category::Spf, "spf.dns-error", Error)]);
        assert_eq!(all_errors.score, None);
    }

    #[test]
    fn no_spf_and_no_dmarc_is_low_whatever_else() {
        let s = score(&[
            f(Category::Mx, "mx.host.a", Pass),
            f(Category::Spf, "spf.missing", Fail),
            f(Category::Dmarc, "dmarc.missing", Fail),
            f(Category::Dkim, "dkim.s1", Pass),
            f(Category::TlsRpt, "tls-rpt.record", Pass),
        ]);
        assert!(s.score.unwrap() <= 2.0, "{s:?}");
        assert_eq!(s.verdict, Some("Poor"));
    }
}
