//! Every report of the corpora (parsedmarc, mox, dmarc-report-viewer,
//! OpenDMARC, mail-auth; testdata/SOURCES.md) is read: accepted as its
//! kind, or rejected with its reason, as listed here. For aggregate XML the
//! message total is checked against a second count of the <count>
//! elements in the file.

use netjes_reports::{read, Limits, Report};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"))
}

fn files() -> Vec<PathBuf> {
    let dirs = [
        "parsedmarc-samples/aggregate",
        "parsedmarc-samples/aggregate_invalid",
        "parsedmarc-samples/extract_report",
        "parsedmarc-samples/failure",
        "parsedmarc-samples/smtp_tls",
        "parsedmarc-samples",
        "mox-testdata/dmarc-reports",
        "mox-testdata/tlsreports",
        "dmarc-report-viewer/dmarc-reports",
        "dmarc-report-viewer/smtp-tls-reports",
        "opendmarc-aggregate-reports",
        "mail-auth-resources/dmarc-feedback",
        "mail-auth-resources/tlsrpt",
        "mail-auth-resources/arf",
    ];
    let mut out = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(root().join(d)).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            let ext_ok = [".xml", ".gz", ".zip", ".json", ".eml"].iter().any(|x| n.ends_with(x));
            // mail-auth's .json files beside its .xml and .eml are its
            // expected parses, not reports.
            let expected_parse = d.starts_with("mail-auth-resources") && n.ends_with(".json") && !d.ends_with("tlsrpt");
            if p.is_file() && ext_ok && !expected_parse && !n.starts_with("LICENSE") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A second count: the <count> elements of the file, by text.
fn counts_in(xml: &str) -> u64 {
    xml.split("<count>")
        .skip(1)
        .filter_map(|s| s.split('<').next()?.trim().parse::<u64>().ok())
        .sum()
}

#[test]
fn every_corpus_report_is_read_or_refused_with_its_reason() {
    let mut lines = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for p in files() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&p).unwrap();
        for r in read(&name, &bytes, &Limits::default()) {
            match r {
                Ok(rep) => {
                    accepted += 1;
                    if let Report::Aggregate(a) = &rep {
                        if name.ends_with(".xml") {
                            let text = String::from_utf8_lossy(&bytes);
                            assert_eq!(a.messages(), counts_in(&text), "{name}");
                        }
                        assert!(a.end >= a.begin, "{name}");
                    }
                    lines.push(format!("accepted {} {name}", rep.kind()));
                }
                Err(e) => {
                    rejected += 1;
                    lines.push(format!("rejected {name}: {e}"));
                }
            }
        }
    }
    let text = lines.join("\n");
    println!("{text}");
    println!("{accepted} accepted, {rejected} rejected");
    // Exactly these are refused, each for its reason; everything else,
    // quirks and all, is read.
    let refused: Vec<&String> = lines.iter().filter(|l| l.starts_with("rejected")).collect();
    let want = [
        ("bad.com!example.com", "the source address \"108r.166.27.220\""),
        ("invalid_xml.xml", "not well formed"),
        ("empty.xml", "it is empty"),
    ];
    assert_eq!(refused.len(), want.len(), "{text}");
    for (file, why) in want {
        assert!(refused.iter().any(|l| l.contains(file) && l.contains(why)), "{file}: {text}");
    }
    assert_eq!(accepted, 78, "{text}");
    // The plain-text failure report (Exim) is read for its fields.
    let exim = std::fs::read(root().join("parsedmarc-samples/failure/exim_plain_text_only_no_arf_part.eml")).unwrap();
    match &read("x.eml", &exim, &Limits::default())[0] {
        Ok(Report::Failure(f)) => {
            assert_eq!(f.reported_domain.as_deref(), Some("example.com"));
            assert_eq!(f.source_ip.as_deref(), Some("203.0.113.68"));
            assert_eq!(f.format, "plain-text");
            assert!(f.headers.as_deref().unwrap().contains("Subject: Payment from your account."));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rejected, 3);
}
