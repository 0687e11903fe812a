//! The Received chain of every real message in testdata/mail: no panic, and
//! the chains of real mail come out in travel order with their delays.

use netjes_analyze::received::{envelope_from_headers, hops};
use std::path::{Path, PathBuf};

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
