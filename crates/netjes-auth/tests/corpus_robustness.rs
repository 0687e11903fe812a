//! Every message in testdata/ (real spam and ham, malformed mail, DKIM and
//! ARC vectors), whole, truncated and with bytes flipped, goes through the
//! full verdict. Each gives a verdict or a clear error, never a panic, and
//! within a time budget. DNS is the real test server with an empty zone
//! (every lookup NXDOMAIN); timeouts are tested in the CLI and suite tests.

use netjes_auth::verdict::{verify_message, Envelope};
use netjes_dns::{CachingResolver, DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let skip = [
                ".json", ".md", ".yml", ".snap", ".abnf", ".key", ".pem", ".pub", ".dns", ".txt",
                ".private", ".source",
            ];
            if !skip.iter().any(|s| name.ends_with(s))
                && !name.starts_with("LICENSE")
                && !name.starts_with("COPYING")
            {
                out.push(p);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_gives_a_verdict_or_a_clear_error() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"));
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    assert!(
        all.len() > 150,
        "expected the corpora, found {} files",
        all.len()
    );

    let dns = TestDns::start_str("").await;
    let r = CachingResolver::new(
        HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_millis(300),
        })
        .unwrap(),
    );
    let env = Envelope {
        ip: Some("192.0.2.1".parse().unwrap()),
        helo: Some("mail.example.com".into()),
        mail_from: Some("a@example.com".into()),
    };

    let (mut verdicts, mut errors) = (0, 0);
    for path in &all {
        let raw = std::fs::read(path).unwrap();
        let mut variants = vec![raw.clone()];
        for cut in [raw.len() / 3, raw.len() / 2, raw.len().saturating_sub(1)] {
            variants.push(raw[..cut].to_vec());
        }
        let mut flipped = raw.clone();
        for i in (0..flipped.len()).step_by(97) {
            flipped[i] ^= 0x5a;
        }
        variants.push(flipped);
        for v in variants {
            let res = tokio::time::timeout(
                Duration::from_secs(20),
                verify_message(&r, &v, &env, "mx.test"),
            )
            .await;
            match res {
                Err(_) => panic!("{}: verification hung", path.display()),
                Ok(Ok(verdict)) => {
                    verdicts += 1;
                    assert!(verdict.authentication_results.starts_with("mx.test"));
                }
                Ok(Err(e)) => {
                    errors += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    eprintln!(
        "{} files: {verdicts} verdicts, {errors} clear errors",
        all.len()
    );
    assert!(verdicts > all.len(), "most messages must give a verdict");
}

#[tokio::test]
async fn binary_and_empty_input_is_an_error() {
    let dns = TestDns::start_str("").await;
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let env = Envelope::default();
    for input in [
        &b""[..],
        b"\x00\xff\xfe\x01",
        b"\r\n\r\nbody only",
        &[0u8; 4096],
    ] {
        let e = verify_message(&r, input, &env, "mx.test")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("message"), "{e}");
    }
    let many: Vec<u8> = (0..5000)
        .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
        .chain(b"\r\nbody".iter().copied())
        .collect();
    let e = verify_message(&r, &many, &env, "mx.test")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("header fields"), "{e}");
}
