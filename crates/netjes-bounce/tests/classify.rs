//! The classifier against the bounce corpus (tests/corpus): for each
//! message, the class and the failed recipient a person reads in it, kept
//! in tests/corpus/EXPECTED.tsv (each line checked by hand against the
//! message; the curator's reading in INDEX.tsv is its first column's
//! source). `BLESS=1` rewrites the file from what the classifier says, for
//! a reviewer to read in the diff; without it, a difference fails with a
//! list of every message that changed.

use netjes_bounce::classify::{classify, Reading};
use std::path::Path;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// (class, recipient) of a message: "none" when it is no bounce; the
/// first bounce's otherwise.
fn reading(raw: &[u8]) -> (String, String) {
    match classify(raw) {
        Reading::NotABounce { .. } => ("none".into(), "-".into()),
        Reading::Bounces { bounces } => {
            let b = &bounces[0];
            (b.class.name().into(), b.recipient.clone().unwrap_or_else(|| "-".into()).to_ascii_lowercase())
        }
    }
}

#[test]
fn the_corpus_is_classified_as_a_person_reads_it() {
    let index = std::fs::read_to_string(corpus().join("INDEX.tsv")).unwrap();
    let mut got = String::from("file\tclass\trecipient\tcurator's reading\n");
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let raw = std::fs::read(corpus().join(cols[0])).unwrap();
        let (class, rcpt) = reading(&raw);
        got.push_str(&format!("{}\t{class}\t{rcpt}\t{}\n", cols[0], cols[6]));
    }
    let path = corpus().join("EXPECTED.tsv");
    if std::env::var("BLESS").is_ok() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    let diff: Vec<String> = want
        .lines()
        .zip(got.lines())
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("  want {w}\n  got  {g}"))
        .collect();
    assert!(diff.is_empty() && want.lines().count() == got.lines().count(), "{} messages differ:\n{}", diff.len(), diff.join("\n"));
}

#[test]
fn each_class_from_its_evidence() {
    let dsn = |status: &str, diag: &str| {
        format!(
            "From: MAILER-DAEMON@mx.example.com\r\nTo: app@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diag}\r\n\r\n--B--\r\n"
        )
    };
    let class = |m: String| match classify(m.as_bytes()) {
        Reading::Bounces { bounces } => bounces[0].class.name().to_string(),
        Reading::NotABounce { why } => format!("none: {why}"),
    };
    assert_eq!(class(dsn("5.1.1", "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown")), "hard");
    assert_eq!(class(dsn("5.2.2", "552 5.2.2 Mailbox full")), "soft");
    assert_eq!(class(dsn("5.7.1", "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org")), "block");
    assert_eq!(class(dsn("5.0.0", "550 Requested action not taken: mailbox unavailable")), "hard", "a generic code read by its words");
    assert_eq!(class(dsn("5.0.0", "554 Message rejected as spam by Content Filtering")), "block", "blocks before addresses");
    assert_eq!(class(dsn("4.4.7", "Delivery time expired")), "soft");
    assert_eq!(class(dsn("5.0.0", "550 computer says no")), "hard", "a permanent failure with nothing else");
    // An auto-reply is no bounce, and neither is a DMARC failure report.
    assert!(class("From: bob@example.net\r\nSubject: Out of Office: hello\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n".into()).starts_with("none"));
    let arf = |kind: &str| format!("From: fbl@isp.example\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nA report.\r\n--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: {kind}\r\nVersion: 1\r\nOriginal-Rcpt-To: <carol@isp.example>\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: app@example.com\r\nTo: carol@isp.example\r\nMessage-ID: <m1@example.com>\r\n\r\n--B--\r\n");
    assert_eq!(class(arf("abuse")), "complaint");
    assert!(class(arf("auth-failure")).starts_with("none"));
    match classify(arf("abuse").as_bytes()) {
        Reading::Bounces { bounces } => {
            assert_eq!((bounces[0].recipient.as_deref(), bounces[0].original_message_id.as_deref()), (Some("carol@isp.example"), Some("m1@example.com")));
        }
        other => panic!("{other:?}"),
    }
    // A plain-text bounce whose reason cannot be read is soft, not hard.
    assert_eq!(class("From: MAILER-DAEMON@mx.example.com\r\nSubject: failure notice\r\n\r\nSomething went wrong with <bob@example.net>.\r\n".into()), "soft");
    // qmail: the code at the end of the line.
    assert_eq!(class("From: MAILER-DAEMON@mx.example.com\r\nTo: app@example.com\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program.\r\n<bob@example.net>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n".into()), "hard");
}
