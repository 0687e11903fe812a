//! The Received chain of every real message in testdata/mail: no panic, and
//! the chains of real mail come out in travel order with their delays.

use netjes_analyze::received::{envelope_from_headers, hops};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if !p.extension().is_some_and(|x| x == "json" || x == "md") && !p.file_name().unwrap().to_string_lossy().starts_with("LICENSE") {
            out.push(p);
        }
    }
}

#[test]
fn real_received_chains() {
    let mut all = Vec::new();
    files(&PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/mail")), &mut all);
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
    assert!(with_envelope > 50, "only {with_envelope} messages gave an envelope");
}

/// Every message of the corpora, and every .eml in testdata (DMARC and
/// TLS-RPT report mails, ARF, DKIM vectors), analysed over the test DNS
/// server: a mark out of 10 or a clear error, never a panic or a hang.
#[tokio::test]
async fn every_corpus_message_gets_a_mark_or_a_clear_error() {
    use netjes_analyze::{analyze, Options};
    use netjes_dns::{DnsConfig, HickoryResolver};
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"));
    let mut all = Vec::new();
    files(&root.join("mail"), &mut all);
    let mut eml = Vec::new();
    files(&root, &mut eml);
    all.extend(eml.into_iter().filter(|p| p.extension().is_some_and(|x| x == "eml") && !p.starts_with(root.join("mail"))));
    assert!(all.len() > 250, "{}", all.len());
    let dns = netjes_testdns::TestDns::start_str("").await;
    let r = netjes_dns::CachingResolver::new(HickoryResolver::new(&DnsConfig { nameservers: vec![dns.addr()], timeout: Duration::from_millis(300) }).unwrap());
    let o = Options { ip_lists: vec!["bl.test".into()], domain_lists: vec!["dbl.test".into()], ..Default::default() };
    let (mut marked, mut refused) = (0, Vec::new());
    for p in &all {
        let raw = std::fs::read(p).unwrap();
        // A guard against hangs, not a speed test.
        match tokio::time::timeout(Duration::from_secs(20), analyze(&r, &raw, &o)).await.unwrap_or_else(|_| panic!("{} hangs", p.display())) {
            Ok(rep) => {
                assert!((0.0..=10.0).contains(&rep.score), "{}: {}", p.display(), rep.score);
                let total: f32 = rep.findings().map(|f| f.penalty).sum();
                assert!(((10.0 - total).max(0.0) - rep.score).abs() < 0.06, "{}", p.display());
                marked += 1;
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refused.push(format!("{}: {e}", p.display()));
            }
        }
    }
    // Only messages that break a hard limit or have no header are refused.
    assert!(marked * 10 >= all.len() * 9, "{marked} of {} marked; refused:\n{}", all.len(), refused.join("\n"));
}
