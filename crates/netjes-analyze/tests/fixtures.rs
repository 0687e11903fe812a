//! Every fixture in tests/fixtures is one readable file: the envelope, the
//! DNS records the test DNS server serves, and the message. The message is
//! signed at test time when the fixture says so, analysed over real DNS on
//! loopback, and its mark and findings are compared with the .golden file
//! beside it. `BLESS=1 cargo test -p netjes-analyze --test fixtures`
//! rewrites the golden files; a mismatch prints a diff.
//!
//! Fixture format:
//!
//! ```text
//! # what the fixture shows
//! --- envelope
//! ip: 192.0.2.10            (the SMTP client; leave out to read it from Received)
//! helo: mail.example.com
//! mail-from: bounce@example.com
//! sign: example.com s1 rsa2048|rsa1024|rsa512 [h=From:Subject] [testing] [unpublished] [body-length]
//!                           (the key record is added to the zone, with t=y
//!                            when testing, not at all when unpublished)
//! tamper                    (append a line to the body after signing)
//! --- zone
//! example.com. TXT "v=spf1 ip4:192.0.2.10 -all"
//! --- message
//! From: ...
//! ```
//!
//! In the message, lines end in CRLF, and `{LF}` (a bare LF), `{CR}` (a
//! bare CR), `{E9}` (the byte 0xE9) and `{REPEAT n text}` (where `\n` in
//! the text is a line end) write what a text editor cannot.

use netjes_analyze::penalties::RULES;
use netjes_analyze::{analyze, Options, Report};
use netjes_auth::dkim::{sign_message, PrivateKey, SignOptions};
use netjes_dns::zone::Zone;
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// 2026-11-23 09:30 UTC, half an hour after the fixtures' Date.
const NOW: i64 = 1_795_512_600;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn testdata(p: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(p)
}

fn key(kind: &str) -> PrivateKey {
    let file = match kind {
        // dkimpy's test keys (testdata/SOURCES.md).
        "rsa2048" => "dkimpy-testdata/2048_testkey.key",
        "rsa1024" => "dkimpy-testdata/1024_testkey.key",
        // Under RFC 8301's 1024-bit floor: netjes will not make one, so the
        // rsa crate does.
        "rsa512" => {
            use pkcs8::EncodePrivateKey;
            let k = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 512).unwrap();
            return PrivateKey::from_pkcs8_der(k.to_pkcs8_der().unwrap().as_bytes()).unwrap();
        }
        other => panic!("unknown key {other}"),
    };
    PrivateKey::from_pem(&std::fs::read_to_string(testdata(file)).unwrap(), None).unwrap()
}

fn expand(line: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let end = rest[i..].find('}').map(|e| i + e).expect("unclosed {");
        let code = &rest[i + 1..end];
        match code {
            "LF" => out.push(b'\n'),
            "CR" => out.push(b'\r'),
            "E9" => out.push(0xE9),
            c if c.starts_with("REPEAT ") => {
                let (n, text) = c["REPEAT ".len()..].split_once(' ').unwrap();
                let text = text.replace("\\n", "\r\n");
                for _ in 0..n.parse::<usize>().unwrap() {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            other => out.extend_from_slice(format!("{{{other}}}").as_bytes()),
        }
        rest = &rest[end + 1..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

struct Fixture {
    options: Options,
    zone: String,
    message: Vec<u8>,
}

fn load(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = "";
    let (mut env, mut zone, mut msg) = (Vec::new(), String::new(), Vec::new());
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("--- ") {
            section = match s.trim() {
                "envelope" => "envelope",
                "zone" => "zone",
                "message" => "message",
                other => panic!("{}: unknown section {other}", path.display()),
            };
            continue;
        }
        match section {
            "envelope" => env.push(line.to_string()),
            "zone" => {
                zone.push_str(line);
                zone.push('\n');
            }
            "message" => {
                msg.extend(expand(line));
                msg.extend_from_slice(b"\r\n");
            }
            _ => assert!(
                line.starts_with('#') || line.trim().is_empty(),
                "{}: text before the first section",
                path.display()
            ),
        }
    }
    let mut o = Options {
        now: NOW,
        authserv_id: "mx.test".into(),
        ip_lists: vec!["bl.test".into()],
        domain_lists: vec!["dbl.test".into()],
        ..Default::default()
    };
    let mut sign = Vec::new();
    let mut tamper = false;
    for l in env
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, v) = l
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((l, ""));
        match k {
            "ip" => o.ip = Some(v.parse().unwrap()),
            "helo" => o.helo = Some(v.into()),
            "mail-from" => o.mail_from = Some(v.into()),
            "sign" => sign.push(v.to_string()),
            "tamper" => tamper = true,
            other => panic!("{}: unknown envelope key {other}", path.display()),
        }
    }
    for s in sign.iter().rev() {
        let w: Vec<&str> = s.split_whitespace().collect();
        let k = key(w[2]);
        let mut so = SignOptions::new(w[0], w[1]);
        if let Some(h) = w.iter().find_map(|h| h.strip_prefix("h=")) {
            so.headers = Some(h.split(':').map(String::from).collect());
        }
        let sig = if w.contains(&"body-length") {
            // netjes never signs with l=; mail-auth's signer can.
            use mail_auth::common::crypto::{RsaKey, Sha256};
            use mail_auth::common::headers::HeaderWriter;
            #[allow(deprecated)]
            let key = RsaKey::<Sha256>::from_pkcs8_der(k.pkcs8_der()).unwrap();
            mail_auth::dkim::DkimSigner::from_key(key)
                .domain(w[0])
                .selector(w[1])
                .headers(["From", "Subject", "Date"])
                .body_length(true)
                .sign(&msg)
                .unwrap()
                .to_header()
        } else {
            sign_message(&msg, &k, &so).unwrap()
        };
        msg = [sig.into_bytes(), msg].concat();
        // "unpublished": the fixture's zone says what the key name answers.
        if !w.contains(&"unpublished") {
            let value = if w.contains(&"testing") {
                k.dns_value().replace("v=DKIM1; ", "v=DKIM1; t=y; ")
            } else {
                k.dns_value()
            };
            let strings: Vec<String> = value
                .as_bytes()
                .chunks(250)
                .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                .collect();
            zone.push_str(&format!(
                "{}._domainkey.{}. TXT {}\n",
                w[1],
                w[0],
                strings.join(" ")
            ));
        }
    }
    if tamper {
        msg.extend_from_slice(b"P.S. added by a mailing list\r\n");
    }
    Fixture {
        options: o,
        zone,
        message: msg,
    }
}

fn summary(r: &Report) -> String {
    let mut s = format!(
        "score {:.1}{}{}\n",
        r.score,
        if r.capped { " (capped)" } else { "" },
        if r.incomplete { " (incomplete)" } else { "" }
    );
    for f in r.findings() {
        s.push_str(&format!(
            "{:>5} {}\n",
            if f.penalty > 0.0 {
                format!("-{:.1}", f.penalty)
            } else {
                "0".into()
            },
            f.id
        ));
    }
    s
}

fn diff(want: &str, got: &str) -> String {
    let w: BTreeSet<&str> = want.lines().collect();
    let g: BTreeSet<&str> = got.lines().collect();
    let mut d = String::new();
    for l in want.lines().filter(|l| !g.contains(l)) {
        d.push_str(&format!("- {l}\n"));
    }
    for l in got.lines().filter(|l| !w.contains(l)) {
        d.push_str(&format!("+ {l}\n"));
    }
    d
}

async fn run(path: &Path) -> Report {
    let f = load(path);
    let zone = Zone::parse(&f.zone).unwrap_or_else(|e| panic!("{}: zone: {e:?}", path.display()));
    let dns = TestDns::start(zone).await.unwrap();
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    analyze(&r, &f.message, &f.options)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn fixtures_match_their_golden_files_and_cover_every_finding() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "msg"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10);
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for p in &paths {
        let r = run(p).await;
        // The findings add up to the mark.
        let total: f32 = r.findings().map(|f| f.penalty).sum();
        assert!(
            ((10.0 - total).max(0.0) - r.score).abs() < 0.06,
            "{}: {} vs {total}",
            p.display(),
            r.score
        );
        for f in r.findings() {
            seen.insert(f.id);
            // Every point taken off comes with what to do about it.
            if f.penalty > 0.0 && f.fix.is_none() {
                failures.push(format!(
                    "{}: {} has a penalty and no fix",
                    p.display(),
                    f.id
                ));
            }
        }
        let got = summary(&r);
        let golden = p.with_extension("golden");
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != got {
            failures.push(format!(
                "{}:\n{}",
                p.file_name().unwrap().to_string_lossy(),
                diff(&want, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatch (BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
    // Findings no fixture can produce, and why.
    let elsewhere = [
        (
            "auth.dmarc-permerror",
            "the DMARC evaluator treats a broken record as none (RFC 9989 §4.10.1)",
        ),
        ("spamassassin.score", "tests/spamd.rs, against a real spamd"),
    ];
    let missing: Vec<&str> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !seen.contains(id) && !elsewhere.iter().any(|(e, _)| e == id))
        .collect();
    assert!(missing.is_empty(), "no fixture produces {missing:?}");
}

#[tokio::test]
async fn the_good_message_scores_ten_and_a_forged_one_is_capped() {
    let good = run(&dir().join("good.msg")).await;
    assert_eq!(good.score, 10.0, "{}", summary(&good));
    assert!(good.why_spam.is_empty());
    assert_eq!(good.envelope.source, "command line");
    let bad = run(&dir().join("unauthenticated.msg")).await;
    assert!(
        bad.has("auth.unaligned") && bad.score <= 6.0,
        "{}",
        summary(&bad)
    );
    // Right in every other respect, yet unauthenticated: capped at 6.
    let down = run(&dir().join("dns-down.msg")).await;
    assert!(
        down.capped && down.incomplete && down.score == 6.0,
        "{}",
        summary(&down)
    );
    assert_eq!(bad.why_spam.len(), 3);
    assert!(bad
        .why_spam
        .windows(2)
        .all(|w| w[0].penalty >= w[1].penalty));
}

/// An SPF fail with the client's address known is fixed by the domain's
/// own record with that address added, as `netjes check --ip` gives it.
#[tokio::test]
async fn an_spf_fail_is_fixed_by_the_merged_record() {
    let r = run(&dir().join("esp-spf-fail.msg")).await;
    let f = r.findings().find(|f| f.id == "auth.spf-fail").unwrap();
    assert_eq!(
        f.fix.as_deref(),
        Some("example.com. IN TXT \"v=spf1 ip4:192.0.2.10 ip4:198.51.100.20 -all\"")
    );
}

/// What passed is shown with its details, and what did not run is "not
/// checked", never a tick: SpamAssassin without spamd, blocklists with none
/// configured.
#[tokio::test]
async fn passes_have_details_and_unrun_checks_say_not_checked() {
    use netjes_analyze::finding::Section;
    let good = run(&dir().join("good.msg")).await;
    let section = |s: Section| good.sections.iter().find(|x| x.section == s).unwrap();
    let auth = &section(Section::Authentication).checked.passed;
    assert!(auth.iter().any(|p| p.starts_with("SPF pass for example.com by ip4:192.0.2.10")), "{auth:?}");
    assert!(auth.iter().any(|p| p == "DKIM pass: d=example.com s=s1 (rsa-sha256, 2048-bit key)"), "{auth:?}");
    assert!(auth.iter().any(|p| p.starts_with("DMARC pass for example.com: p=reject at _dmarc.example.com, aligned by SPF and DKIM")), "{auth:?}");
    let sa = &section(Section::Spamassassin).checked;
    assert!(sa.passed.is_empty() && sa.not_checked[0].starts_with("SpamAssassin was not asked"));
    let html = netjes_analyze::html_report::render_fragment(&good);
    assert!(html.contains("Not checked: SpamAssassin was not asked"), "{html}");
    assert!(html.contains("not checked</span></h2>"));
    // The verdict word comes first; findings have human titles with the
    // id in small print, and prose fixes read as prose.
    assert!(html.find("id=\"verdict\"").unwrap() < html.find("<h1").unwrap());
    assert!(html.contains(">Excellent<"), "{html}");
    let bad = run(&dir().join("esp-spf-fail.msg")).await;
    let html = netjes_analyze::html_report::render_fragment(&bad);
    assert!(html.contains("<strong>DMARC fails"), "{html}");
    assert!(html.contains("<small><code>auth.dmarc-fail</code></small>"));
    assert!(html.contains("Publish: <span class=\"fix\">example.com. IN TXT"), "{html}");
    assert!(html.contains("What to do: "), "{html}");
}

#[tokio::test]
async fn the_envelope_is_read_from_the_receivers_received_header() {
    let r = run(&dir().join("envelope-from-received.msg")).await;
    assert_eq!(r.envelope.ip, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(
        r.envelope.source,
        "Received header 1 of 2 (added by mx.test)"
    );
    assert_eq!(r.auth.spf.as_ref().unwrap().result.as_str(), "pass");
    assert_eq!(r.hops.len(), 2);
}

#[tokio::test]
async fn json_and_html_carry_the_report() {
    let r = run(&dir().join("content-bad.msg")).await;
    let v = serde_json::to_value(&r).unwrap();
    for k in ["score", "sections", "why_spam", "hops", "auth", "envelope"] {
        assert!(v.get(k).is_some(), "{k}");
    }
    let html = netjes_analyze::html_report::render(&r);
    assert!(html.contains("Why this is spam") && html.contains("content.script"));
    // The message's own markup is escaped, never rendered.
    assert!(!html.contains("<script") && !html.contains("<form"));
}
