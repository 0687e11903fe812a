//! Every message of the bounce corpus (tests/corpus, see its SOURCES.md)
//! against the curator's reading in INDEX.tsv: a standard notification of
//! a failure or a delay is read with a recipient of that action; mail that
//! is no bounce (auto-replies, challenges, spam, a read receipt) is not
//! taken for one.

use netjes_bounce::{parse, Action, DsnError};
use std::path::Path;

fn index() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let text = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_string(), cols[6].to_string())
        })
        .collect()
}

fn raw(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(file)).unwrap()
}

/// Whether the message carries a standard status part at all (many real
/// bounces are plain text: issue 19's classifier reads those).
fn standard(raw: &[u8]) -> bool {
    let t = String::from_utf8_lossy(raw).to_ascii_lowercase();
    t.contains("message/delivery-status") || t.contains("message/global-delivery-status")
}

#[test]
fn the_corpus_is_read_as_the_curator_reads_it() {
    let (mut read, mut plain, mut wrong) = (0, 0, Vec::new());
    for (file, kind) in index() {
        let raw = raw(&file);
        let got = parse(&raw);
        let want = if kind.starts_with("failed") {
            Some(Action::Failed)
        } else if kind.starts_with("delayed") {
            Some(Action::Delayed)
        } else {
            None
        };
        match want {
            Some(action) if standard(&raw) => {
                let class = if action == Action::Failed { [4u8, 5] } else { [4, 4] };
                match got {
                    Ok(d) if d.recipients.iter().any(|r| r.action == action) && d.recipients.iter().filter(|r| r.action == action).all(|r| class.contains(&r.status.class)) => read += 1,
                    other => wrong.push(format!("{file} ({kind}): {other:?}")),
                }
            }
            Some(_) => plain += 1,
            None if (kind.contains("not a bounce") || kind.starts_with("MDN"))
                && !(matches!(got, Err(DsnError::NotADsn)) || got.as_ref().is_ok_and(|d| d.recipients.iter().all(|r| r.action != Action::Failed))) =>
            {
                wrong.push(format!("{file} ({kind}): {got:?}"));
            }
            None => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    eprintln!("{read} standard notifications read, {plain} plain-text bounces left to the classifier");
    // What the corpus holds today: a shrinking count means a parse lost.
    assert!(read >= 35, "{read} standard notifications read, {plain} plain-text bounces");
}
