//! Who sends as a domain, from its aggregate reports: one line per
//! source address with its volume, aligned pass rates and dispositions,
//! classified, and the readiness of the domain for a stricter policy.
//! Free of IO: the caller gives the rows and what DNS said of each source.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One stored row (a record of a report, or its share of one day).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub source_ip: IpAddr,
    pub count: u64,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    /// The receiver said it overrode the policy for a forwarder, a
    /// mailing list or its own local policy.
    pub forwarded: bool,
    /// DKIM passed, but for another domain than From's.
    pub dkim_other_pass: bool,
    /// SPF passed, but for another domain than From's.
    pub spf_other_pass: bool,
}

/// What DNS says of a source, looked up by the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceFacts {
    /// The forward-confirmed PTR name.
    pub ptr: Option<String>,
    /// The organisation it belongs to (from the PTR's base domain).
    pub organization: Option<String>,
    /// The domain's own SPF record lets it send.
    pub spf_allowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Authorised, and DMARC passes.
    Passing,
    /// The domain lets it send (SPF), or it authenticates as another
    /// domain, but not aligned: the user's to fix.
    AuthorisedFailing,
    /// It passes DKIM but not SPF, or the receiver says it forwarded: a
    /// forwarder or list, not a spoof.
    Forwarder,
    /// Nothing speaks for it: spoofing.
    Unauthorised,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub ip: IpAddr,
    pub ptr: Option<String>,
    pub organization: Option<String>,
    pub messages: u64,
    pub spf_aligned_pass: u64,
    pub dkim_aligned_pass: u64,
    pub dmarc_pass: u64,
    pub dispositions: BTreeMap<String, u64>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub class: Class,
    /// What to do about it, in words.
    pub advice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub messages: u64,
    pub passing: u64,
    /// Sources that a stricter policy would reject: authorised but failing
    /// ones (forwarders and spoofs are what the policy is for).
    pub would_fail: Vec<IpAddr>,
    pub sentence: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub domain: String,
    pub sources: Vec<Source>,
    pub readiness: Readiness,
}

fn classify(s: &Source, facts: &SourceFacts, any_forwarded: bool, dkim_other: bool) -> (Class, Option<String>) {
    let failing = s.messages - s.dmarc_pass;
    if failing * 50 <= s.messages {
        return (Class::Passing, None);
    }
    if any_forwarded || (s.dkim_aligned_pass > 0 && s.spf_aligned_pass == 0 && !facts.spf_allowed) {
        return (Class::Forwarder, None);
    }
    // Authorised means the domain's own SPF lets it send: a spoofer can
    // sign with its own domain too, so a DKIM pass elsewhere is no warrant.
    if facts.spf_allowed {
        let who = facts.organization.clone().or(facts.ptr.clone()).unwrap_or_else(|| s.ip.to_string());
        let advice = if dkim_other {
            format!("{who} sends for you but signs with its own domain: have it sign with d= your domain (a custom DKIM domain)")
        } else {
            format!("{who} sends for you but nothing aligns with your From domain: have it sign with d= your domain, or use a MAIL FROM in your domain")
        };
        return (Class::AuthorisedFailing, Some(advice));
    }
    (Class::Unauthorised, None)
}

/// The overview of one domain from its rows and what DNS said of each
/// source (missing facts count as nothing known).
pub fn overview(domain: &str, rows: &[Row], facts: &BTreeMap<IpAddr, SourceFacts>) -> Overview {
    let mut by_ip: BTreeMap<IpAddr, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_ip.entry(r.source_ip).or_default().push(r);
    }
    let mut sources = Vec::new();
    for (ip, rs) in by_ip {
        let mut s = Source {
            ip,
            ptr: None,
            organization: None,
            messages: 0,
            spf_aligned_pass: 0,
            dkim_aligned_pass: 0,
            dmarc_pass: 0,
            dispositions: BTreeMap::new(),
            first_seen: i64::MAX,
            last_seen: i64::MIN,
            class: Class::Unauthorised,
            advice: None,
        };
        for r in &rs {
            s.messages += r.count;
            s.spf_aligned_pass += if r.spf_aligned { r.count } else { 0 };
            s.dkim_aligned_pass += if r.dkim_aligned { r.count } else { 0 };
            s.dmarc_pass += if r.spf_aligned || r.dkim_aligned { r.count } else { 0 };
            *s.dispositions.entry(r.disposition.clone()).or_default() += r.count;
            s.first_seen = s.first_seen.min(r.day);
            s.last_seen = s.last_seen.max(r.day);
        }
        let f = facts.get(&ip).cloned().unwrap_or_default();
        let (class, advice) = classify(
            &s,
            &f,
            rs.iter().any(|r| r.forwarded),
            rs.iter().any(|r| r.dkim_other_pass),
        );
        s.class = class;
        s.advice = advice;
        s.ptr = f.ptr;
        s.organization = f.organization;
        sources.push(s);
    }
    sources.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.ip.cmp(&b.ip)));
    let readiness = readiness(&sources);
    Overview {
        domain: domain.to_string(),
        sources,
        readiness,
    }
}

/// Whether the domain can move on: its own mail (passing or authorised
/// sources) must pass before a stricter policy stops spoofs without
/// stopping it.
fn readiness(sources: &[Source]) -> Readiness {
    let messages: u64 = sources.iter().map(|s| s.messages).sum();
    let passing: u64 = sources.iter().map(|s| s.dmarc_pass).sum();
    let would_fail: Vec<IpAddr> = sources
        .iter()
        .filter(|s| s.class == Class::AuthorisedFailing)
        .map(|s| s.ip)
        .collect();
    let sentence = if messages == 0 {
        "no reports yet: publish rua= and wait a day or two".to_string()
    } else if would_fail.is_empty() {
        format!(
            "ready for p=quarantine, then p=reject: every source that sends for you passes ({:.1} % of {messages} messages pass aligned; the rest are forwarders or spoofs)",
            100.0 * passing as f64 / messages as f64
        )
    } else {
        let named: Vec<String> = sources
            .iter()
            .filter(|s| s.class == Class::AuthorisedFailing)
            .take(5)
            .map(|s| match &s.organization {
                Some(o) => format!("{} ({o})", s.ip),
                None => s.ip.to_string(),
            })
            .collect();
        let more = if would_fail.len() > named.len() { ", ..." } else { "" };
        let (noun, sends, fails, pronoun) = if would_fail.len() == 1 {
            ("source", "sends", "fails", "it")
        } else {
            ("sources", "send", "fail", "them")
        };
        format!(
            "not ready: {} {noun} that {sends} for you {fails} DMARC and would be rejected: {}{more}; fix {pronoun} first",
            would_fail.len(),
            named.join(", ")
        )
    };
    Readiness {
        messages,
        passing,
        would_fail,
        sentence,
    }
}

/// One UTC day of a domain's mail, for the trend chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// Days since the Unix epoch.
    pub day: i64,
    pub messages: u64,
    /// Passing DMARC (SPF or DKIM aligned).
    pub passing: u64,
    pub dispositions: BTreeMap<String, u64>,
}

/// The rows summed per day, oldest first, days without mail left out.
pub fn daily(rows: &[Row]) -> Vec<Day> {
    let mut days: BTreeMap<i64, Day> = BTreeMap::new();
    for r in rows {
        let d = days.entry(r.day).or_insert_with(|| Day {
            day: r.day,
            messages: 0,
            passing: 0,
            dispositions: BTreeMap::new(),
        });
        d.messages += r.count;
        if r.spf_aligned || r.dkim_aligned {
            d.passing += r.count;
        }
        *d.dispositions.entry(r.disposition.clone()).or_default() += r.count;
    }
    days.into_values().collect()
}

/// The rows of an aggregate report, each record's count spread over the
/// UTC days its report covers by the share of each day in the span (a
/// report over 24 hours, as some reporters send, does not pile on one day).
pub fn rows_of(a: &crate::aggregate::AggregateReport) -> Vec<Row> {
    const DAY: i64 = 86_400;
    let (begin, end) = (a.begin, a.end.max(a.begin));
    let first = begin.div_euclid(DAY);
    let last = (end - 1).max(begin).div_euclid(DAY);
    // A broken range (years long) is not spread over thousands of days.
    let days: Vec<i64> = if last - first > 31 { vec![first] } else { (first..=last).collect() };
    let span = (end - begin).max(1) as u128;
    let related = |d: &str, from: &str| d == from || d.ends_with(&format!(".{from}")) || from.ends_with(&format!(".{d}"));
    let mut out = Vec::new();
    for r in &a.records {
        let forwarded = r.reasons.iter().any(|x| {
            matches!(x.kind.as_str(), "forwarded" | "mailing_list" | "local_policy" | "trusted_forwarder")
        });
        let dkim_aligned = r.dkim == "pass";
        let spf_aligned = r.spf == "pass";
        let dkim_other_pass = r
            .dkim_results
            .iter()
            .any(|d| d.result == "pass" && !related(&d.domain, &r.header_from));
        let spf_other_pass = r
            .spf_results
            .iter()
            .any(|s| s.result == "pass" && !related(&s.domain, &r.header_from));
        let mut left = r.count;
        for (i, day) in days.iter().enumerate() {
            let share = if i + 1 == days.len() {
                left
            } else {
                let lo = (day * DAY).max(begin);
                let hi = ((day + 1) * DAY).min(end);
                let part = (r.count as u128 * (hi - lo).max(0) as u128 / span) as u64;
                part.min(left)
            };
            left -= share;
            if share == 0 {
                continue;
            }
            out.push(Row {
                source_ip: r.source_ip,
                count: share,
                day: *day,
                disposition: r.disposition.clone(),
                dkim_aligned,
                spf_aligned,
                forwarded,
                dkim_other_pass,
                spf_other_pass,
            });
        }
    }
    out
}

/// The organisation behind a PTR base domain, for the senders a domain
/// owner is likely to meet (netjes's own list).
pub fn organization(base_domain: &str) -> Option<&'static str> {
    const KNOWN: &[(&str, &str)] = &[
        ("google.com", "Google"),
        ("googlemail.com", "Google"),
        ("outlook.com", "Microsoft 365"),
        ("protection.outlook.com", "Microsoft 365"),
        ("hotmail.com", "Microsoft"),
        ("amazonses.com", "Amazon SES"),
        ("sendgrid.net", "SendGrid"),
        ("mcsv.net", "Mailchimp"),
        ("mcdlv.net", "Mailchimp"),
        ("mandrillapp.com", "Mandrill (Mailchimp)"),
        ("mailgun.net", "Mailgun"),
        ("mailgun.org", "Mailgun"),
        ("sparkpostmail.com", "SparkPost"),
        ("postmarkapp.com", "Postmark"),
        ("mtasv.net", "Postmark"),
        ("messagingengine.com", "Fastmail"),
        ("zoho.com", "Zoho"),
        ("zohomail.eu", "Zoho"),
        ("yahoo.com", "Yahoo"),
        ("yahoodns.net", "Yahoo"),
        ("mimecast.com", "Mimecast"),
        ("pphosted.com", "Proofpoint"),
        ("brevo.com", "Brevo"),
        ("sendinblue.com", "Brevo"),
        ("hubspotemail.net", "HubSpot"),
        ("salesforce.com", "Salesforce"),
        ("exacttarget.com", "Salesforce Marketing Cloud"),
    ];
    KNOWN
        .iter()
        .find(|(d, _)| base_domain.eq_ignore_ascii_case(d))
        .map(|(_, o)| *o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: &str, count: u64, dkim: bool, spf: bool) -> Row {
        Row {
            source_ip: ip.parse().unwrap(),
            count,
            day: 20000,
            disposition: if dkim || spf { "none".into() } else { "reject".into() },
            dkim_aligned: dkim,
            spf_aligned: spf,
            forwarded: false,
            dkim_other_pass: false,
            spf_other_pass: false,
        }
    }

    #[test]
    fn sources_are_classified_and_readiness_said() {
        let rows = vec![
            row("192.0.2.1", 900, true, true),
            row("192.0.2.2", 50, false, false),
            Row { dkim_other_pass: true, ..row("198.51.100.7", 40, false, false) },
            row("203.0.113.9", 10, true, false),
        ];
        let mut facts = BTreeMap::new();
        facts.insert("198.51.100.7".parse().unwrap(), SourceFacts { organization: Some("SendGrid".into()), spf_allowed: true, ..Default::default() });
        let o = overview("example.com", &rows, &facts);
        let class = |ip: &str| o.sources.iter().find(|s| s.ip.to_string() == ip).unwrap().class;
        assert_eq!(class("192.0.2.1"), Class::Passing);
        assert_eq!(class("192.0.2.2"), Class::Unauthorised);
        assert_eq!(class("198.51.100.7"), Class::AuthorisedFailing);
        assert_eq!(class("203.0.113.9"), Class::Passing);
        let sg = o.sources.iter().find(|s| s.ip.to_string() == "198.51.100.7").unwrap();
        assert!(sg.advice.as_deref().unwrap().starts_with("SendGrid sends for you but signs with its own domain"));
        assert!(o.readiness.sentence.starts_with("not ready: 1 source"), "{}", o.readiness.sentence);
        let clean = overview("example.com", &rows[..2], &BTreeMap::new());
        // A two-day report spreads its counts by the share of each day.
        let xml = b"<feedback><report_metadata><org_name>r</org_name><report_id>1</report_id><date_range><begin>86400</begin><end>259200</end></date_range></report_metadata><policy_published><domain>example.com</domain></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>11</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers></record></feedback>";
        let a = crate::aggregate::parse(xml, &crate::Limits::default()).unwrap();
        let spread = rows_of(&a);
        assert_eq!(spread.iter().map(|r| (r.day, r.count)).collect::<Vec<_>>(), vec![(1, 5), (2, 6)]);
        assert!(clean.readiness.sentence.starts_with("ready for p=quarantine"), "{}", clean.readiness.sentence);
        assert_eq!(clean.readiness.messages, 950);
    }

    #[test]
    fn days_are_summed_in_order() {
        let rows = vec![
            Row { day: 20001, ..row("192.0.2.1", 5, true, false) },
            row("192.0.2.1", 3, false, false),
            row("192.0.2.2", 2, false, true),
        ];
        let d = daily(&rows);
        assert_eq!(d.iter().map(|d| (d.day, d.messages, d.passing)).collect::<Vec<_>>(), vec![(20000, 5, 2), (20001, 5, 5)]);
        assert_eq!(d[0].dispositions.get("reject"), Some(&3));
    }
}
