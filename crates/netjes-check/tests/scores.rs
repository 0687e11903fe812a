//! The score ranks domain configurations the way receivers treat them:
//! the scenarios in tests/scores/scenarios.zone, worst first, are audited
//! over the real test DNS server; each scores no better than the next, and
//! the whole ranking matches tests/scores/scenarios.golden (BLESS=1 to
//! rewrite it; a mismatch prints both).

use netjes_check::{check_domain, CheckOptions, Report};
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::time::Duration;

struct Scenario {
    domain: String,
    selectors: Vec<String>,
    ip_lists: Vec<String>,
}

fn scenarios(text: &str) -> (Vec<Scenario>, String) {
    let mut out: Vec<Scenario> = Vec::new();
    let mut zone = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            out.push(Scenario {
                domain: name.trim().into(),
                selectors: vec![],
                ip_lists: vec![],
            });
        } else if let Some(v) = line.strip_prefix("# selectors:") {
            out.last_mut().unwrap().selectors = v.split_whitespace().map(String::from).collect();
        } else if let Some(v) = line.strip_prefix("# ip_lists:") {
            out.last_mut().unwrap().ip_lists = v.split_whitespace().map(String::from).collect();
        } else if !line.starts_with(';') && !line.trim().is_empty() {
            zone.push_str(line);
            zone.push('\n');
        }
    }
    (out, zone)
}

fn line(r: &Report) -> String {
    let score = r.score.map(|s| format!("{s:4.1}")).unwrap_or_else(|| "   -".into());
    let mut l = format!("{score}  {:<24}", r.domain);
    match (&r.headline, r.verdict) {
        (Some(h), _) => l.push_str(h),
        (None, Some(v)) => l.push_str(v),
        _ => {}
    }
    if !r.complete {
        l.push_str(" (incomplete)");
    }
    for c in &r.capped_by {
        l.push_str(&format!("; held down by: {c}"));
    }
    l
}

#[tokio::test]
async fn the_score_ranks_configurations_as_receivers_do() {
    let dir = format!("{}/tests/scores", env!("CARGO_MANIFEST_DIR"));
    let (list, zone) = scenarios(&std::fs::read_to_string(format!("{dir}/scenarios.zone")).unwrap());
    assert!(list.len() >= 15, "{} scenarios", list.len());
    let dns = TestDns::start_str(&zone).await;
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    let mut lines = Vec::new();
    let mut previous: Option<(String, Option<f32>)> = None;
    for s in &list {
        let report = check_domain(
            &r,
            &s.domain,
            &CheckOptions {
                selectors: s.selectors.clone(),
                ip_lists: Some(s.ip_lists.clone()),
                domain_lists: Some(vec![]),
                ..Default::default()
            },
        )
        .await;
        // Worst first: no score (None) sorts lowest.
        if let Some((name, before)) = &previous {
            assert!(
                *before <= report.score,
                "{name} ({before:?}) ranks above {} ({:?})",
                s.domain,
                report.score
            );
        }
        previous = Some((s.domain.clone(), report.score));
        lines.push(line(&report));
    }
    let got = lines.join("\n") + "\n";
    let golden = format!("{dir}/scenarios.golden");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        got == want,
        "the ranking changed (BLESS=1 to accept):\n--- golden\n{want}\n--- now\n{got}"
    );
}

/// Every fix the audit prints is a valid record that removes the finding
/// it was printed for: each is written into the scenario's zone as its
/// zone-file line (replacing the records of that name and type), read
/// back by the zone parser, and the domain is audited again.
#[tokio::test]
async fn every_fix_parses_back_and_removes_its_finding() {
    let dir = format!("{}/tests/scores", env!("CARGO_MANIFEST_DIR"));
    let (list, zone) = scenarios(&std::fs::read_to_string(format!("{dir}/scenarios.zone")).unwrap());
    let audit = |zone: String, s: &Scenario| {
        let opts = CheckOptions {
            selectors: s.selectors.clone(),
            ip_lists: Some(s.ip_lists.clone()),
            domain_lists: Some(vec![]),
            ..Default::default()
        };
        let domain = s.domain.clone();
        async move {
            let dns = TestDns::start_str(&zone).await;
            let r = HickoryResolver::new(&DnsConfig {
                nameservers: vec![dns.addr()],
                timeout: Duration::from_millis(400),
            })
            .unwrap();
            check_domain(&r, &domain, &opts).await
        }
    };
    let mut fixes = 0;
    for s in &list {
        let before = audit(zone.clone(), s).await;
        for f in before.findings.iter().filter(|f| f.fix.is_some()) {
            let fix = f.fix.as_ref().unwrap();
            let owner = format!("{}.", fix.name.trim_end_matches('.'));
            let kept: String = zone
                .lines()
                .filter(|l| {
                    let mut w = l.split_whitespace();
                    !(w.next() == Some(owner.as_str()) && w.next() == Some(fix.rtype.as_str()))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let fixed = format!("{kept}{}\n", fix.zone_line());
            let after = audit(fixed, s).await;
            assert!(
                !after.findings.iter().any(|g| g.id == f.id && g.status == f.status),
                "{}: the fix {} leaves {} {:?}",
                s.domain,
                fix.zone_line(),
                f.id,
                f.status
            );
            fixes += 1;
        }
    }
    assert!(fixes >= 10, "only {fixes} fixes were tried");
}
