//! `--spamd`: a real SpamAssassin (Debian's spamd, which scripts/test.sh
//! installs) on 127.0.0.1, with network tests off, asked about a spammy
//! message; its score and rules are folded into the report.

use netjes_analyze::{analyze, Options};
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::time::Duration;

const SPAM: &[u8] = b"From: Deals <deals@example.com>\r\nTo: bob@example.org\r\nSubject: BUY VIAGRA NOW!!!\r\n\r\nCheap viagra, buy now, 100% free, click here.\r\n";

#[tokio::test]
async fn spamassassin_score_and_rules_are_folded_in() {
    let Some(spamd) = netjes_testdns::spamd::start().await else {
        return;
    };
    let dns = TestDns::start_str("").await;
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let o = Options {
        spamd: Some((spamd.addr.clone(), Duration::from_secs(60))),
        ..Default::default()
    };
    let rep = analyze(&r, SPAM, &o).await.unwrap();
    let sa = rep.spamassassin.as_ref().unwrap_or_else(|| {
        panic!(
            "{:?}\nspamd's log:\n{}",
            rep.spamassassin_error,
            std::fs::read_to_string(spamd.dir.path().join("spamd.log")).unwrap_or_default()
        )
    });
    assert!(sa.spam && sa.score >= sa.threshold, "{sa:?}");
    let names: Vec<&str> = sa.rules.iter().map(|r| r.name.as_str()).collect();
    assert!(
        names.contains(&"MISSING_DATE") && names.contains(&"MISSING_MID"),
        "{names:?}"
    );
    let f = rep
        .findings()
        .find(|f| f.id == "spamassassin.score")
        .unwrap();
    // The table caps what SpamAssassin may take off.
    assert_eq!(f.penalty, sa.score.min(5.0));
    assert!(
        f.explanation.contains("MISSING_DATE") || f.explanation.contains("DRUG"),
        "{}",
        f.explanation
    );

    // No spamd there: the report says so, and the rest of the mark stands.
    // (A port nobody listens on: a killed spamd's children linger a while.)
    drop(spamd);
    let o = Options {
        spamd: Some((format!("127.0.0.1:{}", netjes_testdns::free_port()), Duration::from_secs(5))),
        ..Default::default()
    };
    let rep2 = analyze(&r, SPAM, &o).await.unwrap();
    assert!(rep2.spamassassin.is_none());
    assert!(
        rep2.spamassassin_error
            .as_deref()
            .unwrap()
            .contains("cannot connect"),
        "{:?}",
        rep2.spamassassin_error
    );
    assert!(!rep2.has("spamassassin.score"));
    assert!(
        rep2.score > rep.score && rep2.score - rep.score <= f.penalty + 0.06,
        "{} vs {}",
        rep2.score,
        rep.score
    );
}
