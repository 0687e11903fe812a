//! What is worth telling a domain owner before they look: a new source
//! failing DMARC in their name, a drop in the share of their mail that
//! passes, and reports that stopped coming; and the weekly digest, sent
//! even when all is well (its arrival says the reports still come in).
//! Free of IO: rows in, alerts out, each with a key that says when it is
//! the same alert again.

use crate::sources::{daily, Row};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// A source not seen in the 30 days before is worth an alert when it
    /// sends at least this many failing messages in the last two days.
    pub new_source_min_messages: u64,
    /// The last day's pass rate this many points under the week before.
    pub pass_rate_drop_points: f64,
    /// The last day needs this many messages for its rate to mean much.
    pub min_daily_messages: u64,
    /// No report for this many days.
    pub silence_days: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            new_source_min_messages: 10,
            pass_rate_drop_points: 10.0,
            min_daily_messages: 20,
            silence_days: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// "new-failing-source", "pass-rate-drop" or "no-reports".
    pub kind: &'static str,
    pub domain: String,
    /// The same key is the same alert: sent once.
    pub key: String,
    pub summary: String,
}

fn rate(passing: u64, messages: u64) -> f64 {
    100.0 * passing as f64 / messages.max(1) as f64
}

/// The alerts for one domain on `today` (days since the epoch), from its
/// rows of the last 37 days and the end of its newest report.
pub fn alerts(domain: &str, rows: &[Row], newest_end: Option<i64>, today: i64, rules: &Rules) -> Vec<Alert> {
    let mut out = Vec::new();
    out.extend(new_failing_sources(domain, rows, today, rules));
    out.extend(pass_rate_drop(domain, rows, rules));
    if let Some(end) = newest_end {
        let quiet = today - end.div_euclid(86_400);
        if quiet >= rules.silence_days {
            out.push(Alert {
                kind: "no-reports",
                domain: domain.to_string(),
                key: format!("no-reports:{domain}:{}", end.div_euclid(86_400)),
                summary: format!("no DMARC report about {domain} for {quiet} days: check that the rua= address still takes mail"),
            });
        }
    }
    out
}

fn new_failing_sources(domain: &str, rows: &[Row], today: i64, rules: &Rules) -> Vec<Alert> {
    let recent = today - 2;
    let mut seen_before: std::collections::BTreeSet<IpAddr> = Default::default();
    let mut failing: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for r in rows {
        if r.day < recent && r.day >= recent - 30 {
            seen_before.insert(r.source_ip);
        } else if r.day >= recent && !(r.spf_aligned || r.dkim_aligned) {
            *failing.entry(r.source_ip).or_default() += r.count;
        }
    }
    failing
        .into_iter()
        .filter(|(ip, n)| *n >= rules.new_source_min_messages && !seen_before.contains(ip))
        .map(|(ip, n)| Alert {
            kind: "new-failing-source",
            domain: domain.to_string(),
            key: format!("new-failing-source:{domain}:{ip}"),
            summary: format!("a new source, {ip}, sent {n} messages as {domain} that fail DMARC: if it sends for you, authenticate it; if not, it is spoofing"),
        })
        .collect()
}

fn pass_rate_drop(domain: &str, rows: &[Row], rules: &Rules) -> Option<Alert> {
    let days = daily(rows);
    let (last, before) = days.split_last()?;
    if last.messages < rules.min_daily_messages {
        return None;
    }
    let week: Vec<_> = before.iter().filter(|d| d.day >= last.day - 7).collect();
    let (p, m) = week.iter().fold((0, 0), |(p, m), d| (p + d.passing, m + d.messages));
    if m < rules.min_daily_messages {
        return None;
    }
    let (now, then) = (rate(last.passing, last.messages), rate(p, m));
    (then - now >= rules.pass_rate_drop_points).then(|| Alert {
        kind: "pass-rate-drop",
        domain: domain.to_string(),
        key: format!("pass-rate-drop:{domain}:{}", last.day),
        summary: format!(
            "the share of mail as {domain} that passes DMARC fell to {now:.0} % on the last reported day, from {then:.0} % the week before"
        ),
    })
}

/// One domain's line in the weekly digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestLine {
    pub domain: String,
    pub messages: u64,
    pub passing: u64,
    pub sources: usize,
    pub readiness: String,
}

/// The weekly digest's text: a line per domain, and a word when there is
/// nothing, so that its arrival alone says netjes is alive.
pub fn digest_text(lines: &[DigestLine], alerts_this_week: usize) -> String {
    let mut t = String::from("DMARC reports of the last 7 days, read by netjes.\r\n\r\n");
    if lines.is_empty() {
        t.push_str("No reports arrived this week. If you publish rua= for your domains, check that the address still takes mail.\r\n");
    }
    for l in lines {
        t.push_str(&format!(
            "{}: {} messages from {} sources, {:.1} % passing DMARC.\r\n  {}\r\n",
            l.domain,
            l.messages,
            l.sources,
            rate(l.passing, l.messages),
            l.readiness
        ));
    }
    t.push_str(&format!("\r\nAlerts sent this week: {alerts_this_week}.\r\n"));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: &str, day: i64, count: u64, pass: bool) -> Row {
        Row {
            source_ip: ip.parse().unwrap(),
            count,
            day,
            disposition: "none".into(),
            dkim_aligned: pass,
            spf_aligned: false,
            forwarded: false,
            dkim_other_pass: false,
            spf_other_pass: false,
        }
    }

    #[test]
    fn a_new_failing_source_is_told_once_and_an_old_one_never() {
        let today = 20_000;
        let mut rows: Vec<Row> = (1..10).map(|d| row("192.0.2.1", today - d, 100, true)).collect();
        rows.push(row("198.51.100.5", today - 20, 50, false));
        rows.push(row("198.51.100.5", today - 1, 50, false));
        rows.push(row("203.0.113.9", today - 1, 30, false));
        rows.push(row("203.0.113.10", today - 1, 3, false));
        let a = alerts("example.com", &rows, Some(today * 86_400 - 3600), today, &Rules::default());
        let kinds: Vec<&str> = a.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(kinds, ["new-failing-source:example.com:203.0.113.9", "pass-rate-drop:example.com:19999"], "{a:#?}");
        assert!(a[0].summary.contains("203.0.113.9, sent 30 messages"));
    }

    #[test]
    fn a_drop_in_the_pass_rate_and_silence() {
        let today = 20_000;
        let mut rows: Vec<Row> = (2..9).map(|d| row("192.0.2.1", today - d, 100, true)).collect();
        rows.push(row("192.0.2.1", today - 1, 70, true));
        let quiet = alerts("example.com", &rows, Some((today - 1) * 86_400), today, &Rules::default());
        assert!(quiet.is_empty(), "{quiet:#?}");
        rows.push(row("192.0.2.1", today - 1, 30, false));
        let a = alerts("example.com", &rows, Some((today - 5) * 86_400), today, &Rules::default());
        assert_eq!(a.iter().map(|a| a.kind).collect::<Vec<_>>(), ["pass-rate-drop", "no-reports"]);
        assert!(a[0].summary.contains("fell to 70 % on the last reported day, from 100 %"), "{}", a[0].summary);
        assert!(a[1].summary.contains("for 5 days"));
    }

    #[test]
    fn the_digest_speaks_even_when_there_is_nothing() {
        assert!(digest_text(&[], 0).contains("No reports arrived this week"));
        let l = DigestLine { domain: "example.com".into(), messages: 1000, passing: 995, sources: 3, readiness: "ready for p=quarantine".into() };
        let t = digest_text(&[l], 2);
        assert!(t.contains("example.com: 1000 messages from 3 sources, 99.5 % passing DMARC.") && t.contains("Alerts sent this week: 2."), "{t}");
    }
}
