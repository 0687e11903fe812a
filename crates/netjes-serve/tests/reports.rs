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

fn testdata(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../testdata/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A multipart/form-data body with the CSRF token and files.
fn multipart(csrf: &str, files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let b = "netjes-test-boundary";
    let mut body = format!("--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n").into_bytes();
    for (name, data) in files {
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

/// A report with a source the domain's SPF allows that fails DMARC (a
/// fix for the user), one that passes, and a spoof.
fn mixed_report() -> String {
    let rec = |ip: &str, n: u32, dkim: &str, spf: &str, disp: &str| {
        format!("<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>{disp}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><spf><domain>example.com</domain><result>{spf}</result></spf></auth_results></record>")
    };
    format!(
        "<feedback><report_metadata><org_name>Receiver</org_name><email>r@receiver.example</email><report_id>mixed-1</report_id><date_range><begin>{}</begin><end>{}</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>{}{}{}</feedback>",
        (now_day() - 2) * 86_400,
        (now_day() - 1) * 86_400 - 1,
        rec("192.0.2.20", 900, "pass", "pass", "none"),
        rec("192.0.2.30", 80, "fail", "fail", "none"),
        rec("203.0.113.66", 20, "fail", "fail", "none"),
    )
}

fn now_day() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 86_400
}

const WEB_ZONE: &str = "example.com. TXT \"v=spf1 ip4:192.0.2.20 ip4:192.0.2.30 -all\"
20.2.0.192.in-addr.arpa. PTR o1.sendgrid.net.
o1.sendgrid.net. A 192.0.2.20
";

#[test]
fn the_reports_pages_need_a_login_and_show_who_sends() {
    let s = start(WEB_ZONE, |r| {
        r.reports.addresses = vec![REPORTS.into()];
        r.allow_private_targets = true;
    });
    let mut anon = Client::new(s.http);
    assert_eq!(anon.get("/reports").status, 303);
    assert_eq!(anon.get("/reports/example.com").status, 303);
    assert_eq!(anon.get("/api/reports/example.com").status, 401);
    let page = anon.get("/");
    let (ct, body) = multipart(&page.csrf(), &[("r.xml", mixed_report().as_bytes())]);
    assert!(matches!(anon.post_raw("/reports/upload", &ct, &body).status, 303 | 401 | 403));

    let mut c = Client::new(s.http);
    c.login();
    let index = c.get("/reports");
    assert!(index.body.contains("id=\"no-reports\""), "{}", index.body);
    // The upload needs the form's token.
    let (ct, body) = multipart("forged", &[("r.xml", mixed_report().as_bytes())]);
    assert_eq!(c.post_raw("/reports/upload", &ct, &body).status, 403);
    let failure = testdata("parsedmarc-samples/failure/dmarc_ruf_report_linkedin.eml");
    let tls = testdata("mail-auth-resources/tlsrpt/rpt01.json");
    let gz = gzip(mixed_report().as_bytes());
    let (ct, body) = multipart(&index.csrf(), &[("mixed.xml.gz", &gz), ("ruf.eml", &failure), ("tls.json", &tls), ("junk.xml", b"<html>not a report</html>")]);
    let up = c.post_raw("/reports/upload", &ct, &body);
    assert_eq!(up.status, 200, "{}", up.body);
    let results = &up.body[up.body.find("id=\"upload-results\"").expect("results")..];
    assert_eq!(results.matches("<td>stored</td>").count(), 3, "{results}");
    assert_eq!(results.matches("<td>rejected</td>").count(), 1, "{results}");

    let d = c.get("/reports/example.com");
    assert_eq!(d.status, 200);
    let readiness = &d.body[d.body.find("id=\"readiness\"").unwrap()..];
    assert!(readiness.contains("not ready: 1 source that sends for you fails DMARC and would be rejected: 192.0.2.30; fix it first"), "{readiness}");
    assert!(d.body.contains("<svg") && d.body.contains("id=\"trend\"") && d.body.contains("<rect"), "{}", d.body);
    let row = |body: &str, ip: &str| {
        let at = body.find(&format!("data-ip=\"{ip}\"")).unwrap_or_else(|| panic!("{ip} missing"));
        body[at..at + body[at..].find("</tr>").unwrap()].to_string()
    };
    let sg = row(&d.body, "192.0.2.20");
    assert!(sg.contains("o1.sendgrid.net") && sg.contains("SendGrid") && sg.contains("passing"), "{sg}");
    let failing = row(&d.body, "192.0.2.30");
    assert!(failing.contains("authorised, failing") && failing.contains("have it sign with d= your domain"), "{failing}");
    assert!(row(&d.body, "203.0.113.66").contains("unauthorised"));
    // Failures only.
    let f = c.get("/reports/example.com?failures=1");
    assert!(!f.body.contains("data-ip=\"192.0.2.20\"") && f.body.contains("data-ip=\"192.0.2.30\""));
    assert_eq!(c.get("/reports/example.com?since=yesterday").status, 400);

    // The domain check follows the reports for a logged-in user, and tells
    // a visitor nothing of them.
    let checked = c.get("/check?domain=example.com");
    assert!(checked.body.contains("the aggregate reports of the last 30 days (1000 messages): not ready"), "{}", checked.body);
    let visitor = anon.get("/check?domain=example.com");
    assert_eq!(visitor.status, 200);
    assert!(!visitor.body.contains("aggregate reports of the last") && !visitor.body.contains("not ready"), "{}", visitor.body);

    // The JSON has the fields `report show --json` documents.
    let j = c.get("/api/reports/example.com").json();
    let src = j["sources"].as_array().unwrap();
    assert_eq!(src.len(), 3);
    for k in ["ip", "ptr", "organization", "messages", "spf_aligned_pass", "dkim_aligned_pass", "dmarc_pass", "dispositions", "first_seen", "last_seen", "class"] {
        assert!(src[0].get(k).is_some(), "{k} missing: {}", src[0]);
    }
    assert_eq!(j["readiness"]["messages"], 1000);
    assert_eq!(j["days"].as_array().unwrap().iter().map(|d| d["messages"].as_u64().unwrap()).sum::<u64>(), 1000);

    // The TLS report's domain shows its sessions and failures by type.
    let t = c.get("/reports/company-y.example");
    let tls_part = &t.body[t.body.find("id=\"tls\"").expect("the TLS section")..];
    assert!(tls_part.contains("5326 sessions over TLS, 303 failed, in 1 reports from Company-X"), "{tls_part}");
    assert!(tls_part.contains("Failed sessions by kind: certificate 100, other 3, starttls 200."), "{tls_part}");
    let tj = c.get("/api/reports/company-y.example").json();
    assert_eq!(tj["tls"]["failed_sessions"], 303);

    // The failure report: the failed message's headers, never its body.
    let list = &d.body[d.body.find("id=\"report-list\"").unwrap()..];
    let at = list.find("/reports/view/").unwrap();
    let ids: Vec<&str> = list.match_indices("/reports/view/").map(|(i, _)| &list[i + 14..i + 14 + list[i + 14..].find('"').unwrap()]).collect();
    assert!(at > 0 && ids.len() == 2, "{ids:?}");
    let views: Vec<String> = ids.iter().map(|id| c.get(&format!("/reports/view/{id}")).body).collect();
    let fr = views.iter().find(|v| v.contains("id=\"failure-headers\"")).expect("a failure report page");
    assert!(fr.contains("Subject line, could be UTF8 encoded"), "{fr}");
    assert!(!fr.contains("HTML Text") && !fr.contains("Alternative"), "the body is shown: {fr}");
    assert_eq!(anon.get(&format!("/reports/view/{}", ids[0])).status, 303);

    // A held report comes into view when the user takes it in.
    let held = aggregate("held-1", "r@receiver.example", "example.com", "198.51.100.9");
    send(&s, "x@receiver.example", &mail("r@receiver.example", "h.xml", held.as_bytes(), None));
    let page = wait_for("the held report", || {
        let p = c.get("/reports/held");
        p.body.contains("held-1").then_some(p)
    });
    assert!(page.body.contains("unverified"), "{}", page.body);
    let at = page.body.find("/release\"").unwrap();
    let start = page.body[..at].rfind("/reports/").unwrap();
    let action = page.body[start..at + 8].to_string();
    assert_eq!(c.post_form(&action, &[("csrf", "forged")]).status, 403);
    assert_eq!(c.post_form(&action, &[("csrf", &page.csrf())]).status, 303);
    let all = c.get("/api/reports/example.com?since=2025-01-01").json();
    assert!(all["sources"].as_array().unwrap().iter().any(|s| s["ip"] == "198.51.100.9"), "{all}");
    let rejected = c.get("/reports/rejected");
    let junk = &rejected.body[rejected.body.find("junk.xml").expect("the junk upload")..];
    assert!(junk[..junk.find("</tr>").unwrap()].contains("there is no &lt;feedback&gt; element"), "{junk}");
}

#[test]
fn reports_in_an_imap_mailbox_are_imported_once_and_moved() {
    use netjes_testdns::dovecot::Dovecot;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let Some(imap) = Dovecot::start("dmarc", "imap-password-1", Some((&cert_pem, &key_pem))) else { return };
    let reporter = PrivateKey::generate(KeyAlgorithm::Ed25519, 0).unwrap();
    let zone = format!("s1._domainkey.reporter.example. TXT \"{}\"\n", record_value(KeyAlgorithm::Ed25519, &reporter.public_key_b64()));
    let contact = "noreply-dmarc@reporter.example";
    let signed = |id: &str, ip: &str| {
        let xml = aggregate(id, contact, "example.com", ip);
        mail(contact, &format!("{id}.xml.gz"), &gzip(xml.as_bytes()), Some((&reporter, "reporter.example")))
    };
    // Years of reports pile up in a mailbox: two authentic, one forged,
    // one mail that is no report.
    imap.deliver("dmarc", "INBOX", "1", signed("imap-1", "192.0.2.1").as_bytes());
    imap.deliver("dmarc", "INBOX", "2", signed("imap-2", "192.0.2.2").as_bytes());
    let forged = mail(contact, "f.xml", aggregate("imap-forged", contact, "example.com", "198.51.100.1").as_bytes(), None);
    imap.deliver("dmarc", "INBOX", "3", forged.as_bytes());
    imap.deliver("dmarc", "INBOX", "4", b"From: someone@example.net\r\nSubject: hello\r\n\r\nNot a report.\r\n");

    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("imap.password");
    std::fs::write(&pass, "imap-password-1\n").unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let port = imap.port;
    let s = start(&zone, |r| {
        r.reports.domains = vec!["example.com".into()];
        r.reports.imap = vec![netjes_serve::config::RawImap {
            name: Some("reports".into()),
            server: "localhost".into(),
            port: Some(port),
            tls: "starttls".into(),
            user: "dmarc".into(),
            password_file: pass.clone(),
            folder: "INBOX".into(),
            after: "move".into(),
            move_to: "Processed".into(),
            // Longer than the test: a mail that arrives later is seen at
            // once only because the server has IDLE.
            interval_seconds: 3600,
            ca_file: Some(ca.clone()),
            trusted: false,
        }];
    });
    for _ in 0..200 {
        if imap.count("dmarc", "Processed") == 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(imap.count("dmarc", "Processed"), 4, "{}\n{}", imap.log(), s.parts.metrics.render());
    assert_eq!(imap.count("dmarc", "INBOX"), 0, "{}", imap.log());
    let store = &s.parts.store;
    let rows = store.report_rows("example.com", 0).unwrap();
    let mut ips: Vec<String> = rows.iter().map(|r| r.source_ip.to_string()).collect();
    ips.sort();
    assert_eq!(ips, ["192.0.2.1", "192.0.2.2"]);
    let held = store.held_reports().unwrap();
    assert_eq!(held.iter().map(|h| h.report_id.as_str()).collect::<Vec<_>>(), ["imap-forged"]);
    assert!(store.rejected_reports().unwrap().iter().any(|r| r.source == "imap reports" && r.reason.contains("no report file")));

    // A new report, and a copy of one already read: IDLE brings both in
    // long before the interval; the copy is a duplicate, stored once.
    imap.deliver("dmarc", "INBOX", "5", signed("imap-3", "192.0.2.3").as_bytes());
    imap.deliver("dmarc", "INBOX", "6", signed("imap-1", "192.0.2.1").as_bytes());
    wait_for("the new mails", || (imap.count("dmarc", "Processed") == 6).then_some(()));
    wait_for("the new report", || (store.report_rows("example.com", 0).unwrap().len() == 3).then_some(()));
    let m = &s.parts.metrics;
    assert_eq!(m.get("netjes_reports_total", &[("kind", "aggregate"), ("result", "duplicate")]), 1);
    assert_eq!(m.get("netjes_report_imap_mails_total", &[("mailbox", "reports")]), 6);
}

#[test]
fn a_trusted_mailbox_without_tls_on_loopback_has_its_mail_deleted() {
    use netjes_testdns::dovecot::Dovecot;
    let Some(imap) = Dovecot::start("rua", "imap-password-2", None) else { return };
    // Unsigned: the mailbox is vouched for (trusted = true).
    let xml = aggregate("plain-1", "r@receiver.example", "example.com", "192.0.2.7");
    imap.deliver("rua", "INBOX", "1", mail("r@receiver.example", "p.xml", xml.as_bytes(), None).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pw");
    std::fs::write(&pass, "imap-password-2\n").unwrap();
    let port = imap.port;
    let raw = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // A password file others may read is refused, and nothing is read.
    raw(0o644);
    let account = netjes_serve::config::RawImap {
        name: None,
        server: "127.0.0.1".into(),
        port: Some(port),
        tls: "none".into(),
        user: "rua".into(),
        password_file: pass.clone(),
        folder: "INBOX".into(),
        after: "delete".into(),
        move_to: String::new(),
        interval_seconds: 10,
        ca_file: None,
        trusted: true,
    };
    let s = start("", |r| r.reports.imap = vec![account.clone()]);
    wait_for("a failed round", || {
        (s.parts.metrics.get("netjes_report_imap_rounds_total", &[("mailbox", "rua@127.0.0.1"), ("result", "error")]) > 0).then_some(())
    });
    assert_eq!(imap.count("rua", "INBOX"), 1);
    drop(s);
    raw(0o600);
    let s = start("", |r| r.reports.imap = vec![account.clone()]);
    wait_for("the mail to be deleted", || (imap.count("rua", "INBOX") == 0).then_some(()));
    let rows = s.parts.store.report_rows("example.com", 0).unwrap();
    assert_eq!(rows.len(), 1, "{}", imap.log());
    assert!(s.parts.store.held_reports().unwrap().is_empty());
}

/// A webhook that answers 204 and hands each JSON body over.
fn webhook() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{BufRead, Read};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/netjes?x=1", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let (mut line, mut len, mut first) = (String::new(), 0usize, String::new());
            r.read_line(&mut first).unwrap();
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            assert!(first.starts_with("POST /hooks/netjes?x=1 HTTP/1.1"), "{first}");
            std::io::Write::write_all(&mut s, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap();
            let _ = tx.send(serde_json::from_slice(&body).unwrap());
        }
    });
    (url, rx)
}

#[test]
fn alerts_and_the_digest_go_out_by_mail_and_webhook_once() {
    // The relay: another netjes's test inbox, a real SMTP server.
    let relay = start("", |_| {});
    let mut rc = Client::new(relay.http);
    let t1 = rc.post_raw("/api/tests", "application/json", b"").json();
    let t2 = rc.post_raw("/api/tests", "application/json", b"").json();
    let (hook, bodies) = webhook();

    // Ten days of one source passing, then a new one failing yesterday.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let today = now_day();
    {
        let master = netjes_serve::crypto::MasterKey::load(None, &data, true).unwrap();
        let store = netjes_serve::store::Store::open(&data, master).unwrap();
        for d in 1..=10 {
            let mut xml = aggregate(&format!("day-{d}"), "r@receiver.example", "example.com", "192.0.2.1");
            xml = xml.replace("1764374400", &((today - d) * 86_400).to_string()).replace("1764460799", &((today - d) * 86_400 + 86_399).to_string());
            xml = xml.replace("<count>7</count>", "<count>500</count>").replace("<dkim>fail</dkim>", "<dkim>pass</dkim>");
            if d == 1 {
                xml = xml.replace("</feedback>", "<record><row><source_ip>203.0.113.77</source_ip><count>15</count><policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record></feedback>");
            }
            let r = netjes_reports::read("r.xml", xml.as_bytes(), &Default::default()).remove(0).unwrap();
            let how = netjes_serve::report_store::Provenance { trusted: true, source: "test".into(), ..Default::default() };
            store.add_report(&r, &how).unwrap();
        }
    }
    let relay_addr = relay.smtp.to_string();
    let (to1, hook1) = (t1["address"].as_str().unwrap().to_string(), hook.clone());
    let not_today = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][((netjes_serve::report_alerts::weekday(today) + 1) % 7) as usize];
    let s = start_in(dir, data, "", move |r| {
        r.reports.domains = vec!["example.com".into()];
        r.reports.alerts = Some(netjes_serve::config::RawAlerts {
            mail_to: vec![to1],
            relay: relay_addr,
            webhook: Some(hook1),
            digest_weekday: not_today.into(),
            ..Default::default()
        });
    });
    // The first round runs at the start: one alert, on both channels.
    let got = bodies.recv_timeout(Duration::from_secs(20)).expect("the webhook was called");
    assert_eq!(got["kind"], "new-failing-source", "{got}");
    assert!(got["summary"].as_str().unwrap().contains("203.0.113.77, sent 15 messages as example.com"), "{got}");
    let id1 = t1["id"].as_str().unwrap();
    let mail = wait_for("the alert mail", || relay.parts.store.test(id1).unwrap().and_then(|t| t.raw));
    let text = String::from_utf8_lossy(&mail);
    assert!(text.contains("Subject: netjes: new failing source (example.com)") && text.contains("Auto-Submitted: auto-generated"), "{text}");
    let facts = relay.parts.store.test(id1).unwrap().unwrap().facts.unwrap();
    assert_eq!(facts["mail_from"], "", "alerts go out with the null sender");

    // Once is enough: another round sends nothing (once the first round
    // has recorded both channels: the webhook's body reaches us before
    // its answer reaches the alerter).
    let db = netjes_serve::store::open_connection(&s.data).unwrap();
    wait_for("both channels recorded", || (db.query_row("SELECT count(*) FROM report_alerts", [], |r| r.get::<i64>(0)).unwrap() == 2).then_some(()));
    let alerter = s.parts.alerter.clone().unwrap();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(s.rt.block_on(alerter.round(now())).is_empty());
    assert!(bodies.recv_timeout(Duration::from_millis(300)).is_err());

    // On the digest's day the digest goes out, with no alert again.
    let mut cfg = alerter.cfg.clone();
    cfg.digest_weekday = netjes_serve::report_alerts::weekday(today);
    cfg.mail_to = vec![t2["address"].as_str().unwrap().to_string()];
    let digest = netjes_serve::report_alerts::Alerter { store: s.parts.store.clone(), dns: alerter.dns.clone(), cfg, domains: vec!["example.com".into()], metrics: s.parts.metrics.clone(), hostname: "mx.test.example".into() };
    let sent = s.rt.block_on(digest.round(now()));
    assert_eq!(sent, [format!("mail:digest:{today}"), format!("webhook:digest:{today}")]);
    let d = bodies.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(d["kind"], "digest");
    assert_eq!(d["domains"][0]["domain"], "example.com");
    assert_eq!(d["alerts"], 1);
    let id2 = t2["id"].as_str().unwrap();
    let mail = wait_for("the digest mail", || relay.parts.store.test(id2).unwrap().and_then(|t| t.raw));
    let text = String::from_utf8_lossy(&mail);
    assert!(text.contains("example.com: 3515 messages from 2 sources") && text.contains("Alerts sent this week: 1."), "{text}");
    assert!(s.rt.block_on(digest.round(now())).is_empty());
    // The reports page lists the alert.
    let mut c = Client::new(s.http);
    c.login();
    let page = c.get("/reports");
    let alerts = &page.body[page.body.find("id=\"alerts\"").expect("the alerts")..];
    assert!(alerts.contains("netjes: new failing source (example.com)"), "{alerts}");
}
