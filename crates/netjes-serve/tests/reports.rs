//! DMARC and TLS reports mailed to `[reports] addresses` over the serve
//! listener: believed only when the mail is authenticated as the
//! reporter's, kept apart (never dropped) otherwise; bombs refused with
//! their reason; a flood from one sender cut off; the queue survives a
//! crash; and still no relay.

mod common;

use base64::Engine;
use common::*;
use netjes_auth::dkim::keys::record_value;
use netjes_auth::dkim::{sign_message, KeyAlgorithm, PrivateKey, SignOptions};
use std::io::Write;
use std::time::Duration;

const REPORTS: &str = "dmarc@reports.test.example";

/// An aggregate report about `domain` from `email`.
fn aggregate(id: &str, email: &str, domain: &str, ip: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>Reporter</org_name><email>{email}</email><report_id>{id}</report_id>
    <date_range><begin>1764374400</begin><end>1764460799</end></date_range></report_metadata>
  <policy_published><domain>{domain}</domain><p>none</p></policy_published>
  <record><row><source_ip>{ip}</source_ip><count>7</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><spf><domain>{domain}</domain><result>fail</result></spf></auth_results></record>
</feedback>
"#
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A report mail with one attachment, DKIM-signed when a key is given.
fn mail(from: &str, name: &str, attachment: &[u8], key: Option<(&PrivateKey, &str)>) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(attachment);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let msg = format!(
        "From: {from}\r\nTo: {REPORTS}\r\nSubject: Report Domain: example.com Submitter: reporter\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{name}@reporter>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n--b\r\nContent-Type: application/gzip; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    );
    match key {
        Some((k, domain)) => {
            let sig = sign_message(msg.as_bytes(), k, &SignOptions::new(domain, "s1")).unwrap();
            format!("{sig}{msg}")
        }
        None => msg,
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(t) = f() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn send(s: &Server, mail_from: &str, msg: &str) -> String {
    let mut m = Smtp::connect(s.smtp);
    let r = m.mail(mail_from, REPORTS, msg);
    m.cmd("QUIT");
    r
}

#[test]
fn report_mail_is_believed_only_when_authenticated_as_the_reporter() {
    let reporter = PrivateKey::generate(KeyAlgorithm::Ed25519, 0).unwrap();
    let attacker = PrivateKey::generate(KeyAlgorithm::Ed25519, 0).unwrap();
    let zone = format!(
        "s1._domainkey.reporter.example. TXT \"{}\"\n_dmarc.reporter.example. TXT \"v=DMARC1; p=reject\"\ns1._domainkey.attacker.example. TXT \"{}\"\n_dmarc.attacker.example. TXT \"v=DMARC1; p=reject\"\n",
        record_value(KeyAlgorithm::Ed25519, &reporter.public_key_b64()),
        record_value(KeyAlgorithm::Ed25519, &attacker.public_key_b64()),
    );
    let s = start(&zone, |r| {
        r.reports.addresses = vec![REPORTS.into()];
        r.reports.domains = vec!["example.com".into()];
        r.reports.max_report_mib = 1;
    });
    let contact = "noreply-dmarc@reporter.example";

    // Signed by the reporter (SPF does not align: DKIM alone vouches).
    let good = aggregate("good-1", contact, "example.com", "192.0.2.10");
    let r = send(&s, "bounce@elsewhere.example", &mail(contact, "good.xml.gz", &gzip(good.as_bytes()), Some((&reporter, "reporter.example"))));
    assert!(r.starts_with("250"), "{r}");
    // The same again: a duplicate, counted once.
    send(&s, "bounce@elsewhere.example", &mail(contact, "good.xml.gz", &gzip(good.as_bytes()), Some((&reporter, "reporter.example"))));
    // Unsigned, claiming to be the reporter.
    let forged = aggregate("forged-1", contact, "example.com", "198.51.100.66");
    send(&s, "x@attacker.example", &mail(contact, "forged.xml.gz", &gzip(forged.as_bytes()), None));
    // Signed and DMARC-passing, but for the attacker's own domain.
    let other_signer = aggregate("forged-2", contact, "example.com", "198.51.100.67");
    send(&s, "x@attacker.example", &mail("a@attacker.example", "f2.xml.gz", &gzip(other_signer.as_bytes()), Some((&attacker, "attacker.example"))));
    // Authentic, but about a domain this host does not serve.
    let foreign = aggregate("foreign-1", contact, "not-ours.example", "192.0.2.11");
    send(&s, "bounce@elsewhere.example", &mail(contact, "foreign.xml", foreign.as_bytes(), Some((&reporter, "reporter.example"))));
    // A zip bomb (30 MiB of zeros in 30 KiB) and billion laughs.
    let bomb = gzip(&vec![0u8; 30 * 1024 * 1024]);
    assert!(bomb.len() < 100 * 1024);
    send(&s, "bounce@elsewhere.example", &mail(contact, "bomb.xml.gz", &bomb, Some((&reporter, "reporter.example"))));
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]><feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>";
    send(&s, "bounce@elsewhere.example", &mail(contact, "laughs.xml", laughs.as_bytes(), Some((&reporter, "reporter.example"))));

    let store = &s.parts.store;
    let rejected = wait_for("two rejected inputs", || {
        let r = store.rejected_reports().unwrap();
        (r.len() == 2).then_some(r)
    });
    let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("over the limit of 1048576 octets")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("DOCTYPE")), "{reasons:?}");
    let held = wait_for("three held reports", || {
        let h = store.held_reports().unwrap();
        (h.len() == 3).then_some(h)
    });
    let why = |id: &str| held.iter().find(|h| h.report_id == id).and_then(|h| h.held.clone()).unwrap_or_else(|| panic!("{id} not held: {held:?}"));
    assert!(why("forged-1").contains("not authenticated"), "{}", why("forged-1"));
    assert!(why("forged-2").contains("authenticated for attacker.example"), "{}", why("forged-2"));
    assert!(why("foreign-1").contains("not-ours.example"), "{}", why("foreign-1"));

    // Only the authentic report is in view: one source, counted once.
    wait_for("the queue to empty", || store.queued_report_mails().unwrap().is_empty().then_some(()));
    let rows = store.report_rows("example.com", 0).unwrap();
    let ips: Vec<String> = rows.iter().map(|r| r.source_ip.to_string()).collect();
    assert_eq!(ips, ["192.0.2.10"], "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), 7);
    let listed = store.reports_for("example.com").unwrap();
    assert!(listed.iter().any(|r| r.report_id == "good-1" && r.trusted && r.held.is_none()));

    // A held report the user vouches for comes into view.
    let id = held.iter().find(|h| h.report_id == "forged-1").unwrap().id;
    assert!(store.release_report(id).unwrap());
    assert_eq!(store.report_rows("example.com", 0).unwrap().len(), 2);

    // The metrics count them by result.
    let m = &s.parts.metrics;
    assert_eq!(m.get("netjes_reports_total", &[("kind", "aggregate"), ("result", "held")]), 3);
    assert_eq!(m.get("netjes_reports_total", &[("kind", "aggregate"), ("result", "duplicate")]), 1);
    assert_eq!(m.get("netjes_reports_total", &[("kind", "unknown"), ("result", "rejected")]), 2);
}

#[test]
fn the_report_address_relays_nothing_and_a_flood_is_cut_off() {
    let s = start("", |r| {
        r.reports.addresses = vec![REPORTS.into()];
        r.reports.mails_per_sender_per_day = 3;
    });
    let mut m = Smtp::connect(s.smtp);
    assert!(m.cmd("EHLO flood.example").starts_with("250"));
    assert!(m.cmd("MAIL FROM:<a@flood.example>").starts_with("250"));
    for rcpt in ["dmarc@other.example", "dmarc%other.example@reports.test.example", "dmarc@reports.test.example@other.example", "dmarc@test.example"] {
        let r = m.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("550"), "{rcpt}: {r}");
    }
    // The address is matched without case, as report senders expect.
    assert!(m.cmd("RCPT TO:<DMARC@Reports.Test.Example>").starts_with("250"));
    m.cmd("QUIT");

    let mut answers = vec![];
    for i in 0..5 {
        // The sender varies its MAIL FROM: its network is counted too.
        let msg = mail("r@flood.example", &format!("{i}.xml"), aggregate(&format!("f{i}"), "r@flood.example", "example.com", "192.0.2.1").as_bytes(), None);
        answers.push(send(&s, &format!("a@flood{i}.example"), &msg));
    }
    assert!(answers[..3].iter().all(|a| a.starts_with("250")), "{answers:?}");
    assert!(answers[3..].iter().all(|a| a.starts_with("452 4.7.1")), "{answers:?}");
    // What was taken is kept, held (nothing authenticates it).
    let held = wait_for("three held", || {
        let h = s.parts.store.held_reports().unwrap();
        (h.len() == 3).then_some(h)
    });
    assert!(held.iter().all(|h| h.held.as_deref().unwrap().starts_with("unverified")));
}

#[test]
fn report_mail_queued_before_a_crash_is_read_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        // As the SMTP session does before its 250; the process then dies
        // before it reads the mail.
        std::fs::create_dir_all(&data).unwrap();
        let master = netjes_serve::crypto::MasterKey::load(None, &data, true).unwrap();
        let store = netjes_serve::store::Store::open(&data, master).unwrap();
        let msg = mail("r@reporter.example", "q.xml", aggregate("queued-1", "r@reporter.example", "example.com", "192.0.2.5").as_bytes(), None);
        let facts = r#"{"ip":"127.0.0.1","helo":"x","mail_from":""}"#;
        store.queue_report_mail(msg.as_bytes(), facts, 1 << 20).unwrap().unwrap();
    }
    let s = start_in(dir, data, "", |_| {});
    let held = wait_for("the queued report", || {
        let h = s.parts.store.held_reports().unwrap();
        (!h.is_empty()).then_some(h)
    });
    assert_eq!(held[0].report_id, "queued-1");
    assert!(s.parts.store.queued_report_mails().unwrap().is_empty());
}
