//! The aggregate reports this receiver owes (RFC 9990), made from the
//! verdicts of one UTC day: one report per policy domain that asks for
//! them (rua=), each verdict a record, identical records counted
//! together. Free of IO; sending is the caller's.

use crate::verdicts::{Published, Row};
use netjes_reports::aggregate::{AggregateReport, DkimAuth, PolicyPublished, Reason, Record, SpfAuth};
use std::collections::BTreeMap;

/// Who we are in the reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// org_name, and the receiver part of the file name: our host name.
    pub org_name: String,
    /// The contact address (`reports_from`).
    pub email: String,
}

/// A report owed, with where it goes.
#[derive(Debug, Clone)]
pub struct Owed {
    pub report: AggregateReport,
    /// The rua= addresses of the policy, as published.
    pub rua: Vec<String>,
}

fn domain_of(addr: &str) -> Option<String> {
    let d = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or(addr);
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty()).then_some(d)
}

fn pass_fail(b: Option<bool>) -> String {
    if b == Some(true) { "pass" } else { "fail" }.into()
}

/// One verdict as a report record.
fn record(r: &Row) -> Option<Record> {
    let source_ip = r.source_ip.as_deref()?.parse().ok()?;
    let header_from = r.header_from.clone()?;
    let dkim_results = r
        .dkim
        .split_whitespace()
        .filter_map(|s| {
            let mut it = s.splitn(3, ':');
            let (domain, selector, result) = (it.next()?, it.next()?, it.next()?);
            Some(DkimAuth { domain: domain.to_string(), selector: Some(selector.to_string()), result: result.to_string() })
        })
        .collect();
    let envelope_from = domain_of(&r.envelope_from).or_else(|| r.spf_domain.clone());
    // RFC 9990: there is always an SPF result; without one, none.
    let spf_results = vec![SpfAuth {
        domain: r.spf_domain.clone().or_else(|| envelope_from.clone()).unwrap_or_default(),
        scope: r.spf_scope.clone(),
        result: r.spf.clone().unwrap_or_else(|| "none".into()),
    }];
    let reasons = r
        .override_reason
        .as_ref()
        .map(|k| vec![Reason { kind: k.clone(), comment: r.override_comment.clone() }])
        .unwrap_or_default();
    Some(Record {
        source_ip,
        count: 1,
        disposition: r.disposition.clone(),
        dkim: pass_fail(r.dkim_aligned),
        spf: pass_fail(r.spf_aligned),
        reasons,
        header_from,
        envelope_from,
        envelope_to: r.envelope_to.clone(),
        dkim_results,
        spf_results,
    })
}

fn published(domain: &str, p: &Published) -> PolicyPublished {
    PolicyPublished {
        domain: domain.to_string(),
        adkim: Some(p.adkim.clone()),
        aspf: Some(p.aspf.clone()),
        p: Some(p.p.clone().unwrap_or_else(|| "none".into())),
        sp: p.sp.clone(),
        np: p.np.clone(),
        pct: None,
        fo: p.fo.clone(),
        testing: Some(p.testing.clone()),
        discovery_method: Some(p.discovery_method.clone()),
    }
}

/// The reports owed for `day` (days since the epoch) from its verdicts.
/// Verdicts without a policy, without rua=, or without a client address
/// make none, nor does mail to or from our report addresses (a report
/// about report mail invites a loop); the policy of a domain is the one
/// last seen that day. `known` says whether we ever delivered mail from
/// a domain: one whose only mail was rejected spoofs gets no report, so
/// that forged mail cannot make us mail a third party's rua= (as mox).
pub fn owed(rows: &[Row], day: i64, who: &Reporter, known: &dyn Fn(&str) -> bool) -> Vec<Owed> {
    let mut by: BTreeMap<String, (Published, Vec<Record>)> = BTreeMap::new();
    for r in rows {
        if r.about_reports == Some(true) {
            continue;
        }
        let (Some(domain), Some(p)) = (&r.policy_domain, &r.published) else { continue };
        if p.rua.is_empty() {
            continue;
        }
        let Some(rec) = record(r) else { continue };
        let e = by.entry(domain.clone()).or_insert_with(|| (p.clone(), Vec::new()));
        e.0 = p.clone();
        e.1.push(rec);
    }
    by.into_iter()
        .filter(|(domain, (_, records))| records.iter().any(|r| r.disposition != "reject") || known(domain))
        .map(|(domain, (p, records))| Owed {
            rua: p.rua.clone(),
            report: AggregateReport {
                format: "rfc9990",
                version: Some("1.0".into()),
                org_name: who.org_name.clone(),
                email: Some(who.email.clone()),
                // Unique per reporter, domain and day: a report sent again
                // after a failure is the same report to its reader.
                report_id: format!("{domain}!{day}@{}", who.org_name),
                begin: day * 86_400,
                end: day * 86_400 + 86_399,
                errors: vec![],
                policy: published(&domain, &p),
                records: netjes_reports::write::merge(records),
            },
        })
        .collect()
}

/// Whether a destination may get a domain's reports (RFC 9990 §3).
pub async fn authorised(dns: &dyn netjes_dns::Resolver, policy_domain: &str, destination: &str) -> Result<bool, netjes_dns::DnsError> {
    Ok(destination_for(dns, policy_domain, destination).await?.is_some())
}

/// Where a domain's reports for `destination` go (RFC 9990 §3), or
/// `None` when they may not go there. One in the domain's own
/// organisation may; another only when it publishes
/// `<domain>._report._dmarc.<its domain>` with a v=DMARC1 record. That
/// record's own rua= replaces the address when it names the same host;
/// when it names another host, the reports go nowhere (no redirecting
/// them to a third party). A DNS failure is an error, so that the report
/// waits for the next round rather than going out unchecked or being
/// dropped.
pub async fn destination_for(dns: &dyn netjes_dns::Resolver, policy_domain: &str, destination: &str) -> Result<Option<String>, netjes_dns::DnsError> {
    let Some(dest) = domain_of(destination) else { return Ok(None) };
    let org = |d: &str| psl::domain_str(d).map(str::to_string).unwrap_or_else(|| d.to_string());
    if org(&dest) == org(policy_domain) {
        return Ok(Some(destination.to_string()));
    }
    let name = format!("{policy_domain}._report._dmarc.{dest}");
    if !netjes_dns::is_valid_query_name(&name) {
        return Ok(None);
    }
    let records = match netjes_dns::ResolverExt::txt(dns, &name).await {
        Ok(r) => r,
        Err(e) if e.is_temporary() => return Err(e),
        Err(_) => return Ok(None),
    };
    let confirming: Vec<String> = records
        .iter()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .filter(|t| t.split(';').next().unwrap_or("").replace(' ', "").eq_ignore_ascii_case("v=DMARC1"))
        .collect();
    let Some(record) = confirming.first() else { return Ok(None) };
    let overrides: Vec<String> = record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("rua"))
        .flat_map(|(_, v)| v.split(',').map(|u| u.trim().trim_start_matches("mailto:").split('!').next().unwrap_or("").to_string()).collect::<Vec<_>>())
        .filter(|u| !u.is_empty())
        .collect();
    if overrides.is_empty() {
        return Ok(Some(destination.to_string()));
    }
    if overrides.iter().any(|u| domain_of(u).as_deref() != Some(dest.as_str())) {
        return Ok(None);
    }
    Ok(overrides.first().cloned())
}

/// Whether fo= (RFC 7489 §6.3, kept by DMARCbis) asks for a failure
/// report: "0" (the default) when nothing aligned passed, "1" when
/// either did not, "d" when a DKIM signature failed, "s" when SPF failed;
/// options joined with ':'.
pub fn fo_wants(fo: Option<&str>, dkim_aligned: bool, spf_aligned: bool, dkim_failed: bool, spf_failed: bool) -> bool {
    let fo = fo.unwrap_or("0");
    fo.split(':').map(str::trim).any(|o| match o {
        "0" => !dkim_aligned && !spf_aligned,
        "1" => !dkim_aligned || !spf_aligned,
        "d" => dkim_failed,
        "s" => spf_failed,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fo_options() {
        use super::fo_wants as w;
        assert!(w(None, false, false, false, true) && !w(None, true, false, false, true));
        assert!(w(Some("1"), true, false, false, true) && !w(Some("1"), true, true, false, false));
        assert!(w(Some("d"), true, true, true, false) && !w(Some("d"), false, false, false, true));
        assert!(w(Some("0:s"), true, false, false, true));
    }
}

#[cfg(test)]
mod owed_tests {
    use super::*;

    fn row(ip: &str, domain: &str, rua: &[&str], dkim_ok: bool) -> Row {
        Row {
            time: 86_400 * 20_000 + 60,
            source_ip: Some(ip.into()),
            header_from: Some(domain.into()),
            envelope_from: format!("bounce@{domain}"),
            policy_domain: Some(domain.into()),
            policy: Some("reject".into()),
            disposition: if dkim_ok { "none" } else { "reject" }.into(),
            dmarc: if dkim_ok { "pass" } else { "fail" }.into(),
            spf_domain: Some(domain.into()),
            spf: Some("softfail".into()),
            dkim: format!("{domain}:s1:{}", if dkim_ok { "pass" } else { "fail" }),
            published: Some(Published { p: Some("reject".into()), adkim: "r".into(), aspf: "r".into(), testing: "n".into(), discovery_method: "treewalk".into(), rua: rua.iter().map(|s| s.to_string()).collect(), ..Default::default() }),
            spf_scope: Some("mfrom".into()),
            envelope_to: Some("example.org".into()),
            override_reason: None,
            override_comment: None,
            dkim_aligned: Some(dkim_ok),
            spf_aligned: Some(false),
            about_reports: Some(false),
        }
    }

    #[test]
    fn a_report_per_domain_that_asks_with_identical_rows_merged() {
        let who = Reporter { org_name: "mx.example.org".into(), email: "noreply-dmarc@mx.example.org".into() };
        let mut rows: Vec<Row> = (0..5).map(|_| row("192.0.2.1", "a.example", &["d@a.example"], true)).collect();
        rows.push(row("198.51.100.7", "a.example", &["d@a.example"], false));
        rows.push(row("192.0.2.9", "b.example", &["r@b.example", "x@vendor.example"], true));
        rows.push(row("192.0.2.9", "c.example", &[], true));
        rows.push(Row { source_ip: None, ..row("192.0.2.9", "b.example", &["r@b.example"], true) });
        // Report mail makes no report.
        rows.push(Row { about_reports: Some(true), ..row("203.0.113.1", "reporter.example", &["r@reporter.example"], true) });
        // A domain whose only mail was rejected spoofs gets none, unless
        // we took mail from it before.
        rows.push(row("203.0.113.2", "stranger.example", &["r@stranger.example"], false));
        rows.push(row("203.0.113.3", "friend.example", &["r@friend.example"], false));
        let o = owed(&rows, 20_000, &who, &|d: &str| d == "friend.example");
        assert_eq!(o.iter().map(|o| o.report.policy.domain.as_str()).collect::<Vec<_>>(), ["a.example", "b.example", "friend.example"]);
        let a = &o[0].report;
        assert_eq!(a.records.iter().map(|r| (r.source_ip.to_string(), r.count, r.dkim.clone())).collect::<Vec<_>>(), [("192.0.2.1".to_string(), 5, "pass".to_string()), ("198.51.100.7".to_string(), 1, "fail".to_string())]);
        assert_eq!(a.records[1].disposition, "reject");
        assert_eq!(a.records[0].dkim_results[0].selector.as_deref(), Some("s1"));
        assert_eq!((a.begin, a.end, a.report_id.as_str()), (1_728_000_000, 1_728_086_399, "a.example!20000@mx.example.org"));
        assert_eq!(o[1].rua, ["r@b.example", "x@vendor.example"]);
        // What the report says, the reader reads back.
        let xml = netjes_reports::write::to_xml(a, "netjes");
        let back = netjes_reports::aggregate::parse(xml.as_bytes(), &Default::default()).unwrap();
        assert_eq!(back.messages(), 6);
    }
}
