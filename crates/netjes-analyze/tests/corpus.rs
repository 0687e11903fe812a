//! The Received chain of every real message in testdata/mail: no panic, and
//! the chains of real mail come out in travel order with their delays.

use netjes_analyze::received::{envelope_from_headers, hops};
use std::time::Duration;

#[test]
fn real_received_chains() {
    let all = netjes_testdns::corpus::mail_corpus();
    assert!(all.len() > 100);
    let (mut with_chain, mut with_envelope) = (0, 0);
    for p in &all {
        let raw = std::fs::read(p).unwrap();
        let h = hops(&raw);
        for (i, hop) in h.iter().enumerate() {
            assert_eq!(hop.index, i + 1, "{}", p.display());
        }
        if h.len() >= 2 {
            with_chain += 1;
        }
        if envelope_from_headers(&raw).is_some_and(|e| e.ip.is_some()) {
            with_envelope += 1;
        }
        // Truncated anywhere, still no panic.
        let _ = hops(&raw[..raw.len() / 2]);
    }
    assert!(with_chain > 50, "only {with_chain} messages had a chain");
    assert!(
        with_envelope > 50,
        "only {with_envelope} messages gave an envelope"
    );
}

/// Every message of the corpora, and every .eml in testdata (DMARC and
/// TLS-RPT report mails, ARF, DKIM vectors), analysed over the test DNS
/// server: a mark out of 10 or a clear error, never a panic or a hang.
#[tokio::test]
async fn every_corpus_message_gets_a_mark_or_a_clear_error() {
    use netjes_analyze::{analyze, Options};
    use netjes_dns::{DnsConfig, HickoryResolver};
    let all = netjes_testdns::corpus::all_messages();
    assert!(all.len() > 250, "{}", all.len());
    let dns = netjes_testdns::TestDns::start_str("").await;
    let r = netjes_dns::CachingResolver::new(
        HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_millis(300),
        })
        .unwrap(),
    );
    let o = Options {
        ip_lists: vec!["bl.test".into()],
        domain_lists: vec!["dbl.test".into()],
        ..Default::default()
    };
    let (mut marked, mut refused) = (0, Vec::new());
    for p in &all {
        let raw = std::fs::read(p).unwrap();
        // A guard against hangs, not a speed test.
        match tokio::time::timeout(Duration::from_secs(20), analyze(&r, &raw, &o))
            .await
            .unwrap_or_else(|_| panic!("{} hangs", p.display()))
        {
            Ok(rep) => {
                assert!(
                    (0.0..=10.0).contains(&rep.score),
                    "{}: {}",
                    p.display(),
                    rep.score
                );
                let total: f32 = rep.findings().map(|f| f.penalty).sum();
                assert!(
                    ((10.0 - total).max(0.0) - rep.score).abs() < 0.06,
                    "{}",
                    p.display()
                );
                marked += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused.push(format!("{}: {e}", p.display()));
            }
        }
    }
    // Only messages that break a hard limit or have no header are refused.
    assert!(
        marked * 10 >= all.len() * 9,
        "{marked} of {} marked; refused:\n{}",
        all.len(),
        refused.join("\n")
    );
}
