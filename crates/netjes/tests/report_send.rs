//! `netjes report send`: the reports owed from the milter's verdicts,
//! written with --dry-run and read back by `netjes report import`, then
//! sent through a real SMTP relay (a netjes serve's report address) once.

mod common;

use netjes_milter::verdicts::{Row, VerdictStore};
use netjes_testdns::TestDns;
use std::process::Output;
use std::time::Duration;

fn netjes(args: &[&str], key: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args(args)
        .env("NETJES_MASTER_KEY", key)
        .env_remove("NETJES_NAMESERVER")
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn verdict(time: i64, ip: &str, pass: bool) -> Row {
    Row::sample(time, ip, pass, &["dmarc@reports.test.example", "rua@vendor.example", "rua@nobody.example"])
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_owed_are_written_read_back_and_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let milter_data = dir.path().join("milter");
    let day = 20_786; // 2026-11-29
    {
        let store = VerdictStore::open(&milter_data, None).unwrap();
        for i in 0..20 {
            let pass = i < 17;
            store.record(verdict(day * 86_400 + 100 + i, if pass { "192.0.2.1" } else { "198.51.100.66" }, pass)).unwrap();
        }
        // A verdict of the next day is not in this day's report.
        store.record(verdict((day + 1) * 86_400 + 5, "192.0.2.1", true)).unwrap();
        for _ in 0..100 {
            if store.rows_between(0, i64::MAX).unwrap().len() == 21 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The vendor says yes; a report address in another organisation
    // than a.example needs that too (reports.test.example is asked).
    let dns = TestDns::start_str(
        "a.example._report._dmarc.vendor.example. TXT \"v=DMARC1\"\na.example._report._dmarc.reports.test.example. TXT \"v=DMARC1\"\n",
    )
    .await;
    let ns = dns.addr().to_string();
    let out = dir.path().join("out");
    let m = milter_data.to_str().unwrap().to_string();
    let key = "0".repeat(64);
    let (o_dir, ns2, key2) = (out.to_str().unwrap().to_string(), ns.clone(), key.clone());
    let o = tokio::task::spawn_blocking(move || {
        netjes(&["report", "send", "--json", "--data-dir", &m, "--day", "2026-11-29", "--org-name", "mx.example.org", "--dry-run", "--out", &o_dir, "--nameserver", &ns2], &key2)
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "one destination is not authorised: {}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    let result = |dest: &str| j.as_array().unwrap().iter().find(|r| r["destination"] == dest).unwrap()["result"].as_str().unwrap().to_string();
    assert_eq!(result("dmarc@reports.test.example"), "written");
    assert_eq!(result("rua@vendor.example"), "written");
    assert_eq!(result("rua@nobody.example"), "unauthorised");
    assert_eq!(j[0]["messages"], 20);
    let mut files: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(
        files,
        [
            "mx.example.org!a.example!1795910400!1795996799.dmarc@reports.test.example.eml",
            "mx.example.org!a.example!1795910400!1795996799.rua@vendor.example.eml",
            "mx.example.org!a.example!1795910400!1795996799.xml.gz",
        ]
    );

    // netjes reads what netjes wrote: the file and the mails are one report.
    let serve_data = dir.path().join("serve").to_str().unwrap().to_string();
    let (sd, o_dir, key2) = (serve_data.clone(), out.to_str().unwrap().to_string(), key.clone());
    let o = tokio::task::spawn_blocking(move || netjes(&["report", "import", "--json", "--data-dir", &sd, &o_dir], &key2)).await.unwrap();
    let j = json(&o);
    let results: Vec<&str> = j.as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| **r == "accepted").count(), 1, "{j}");
    assert_eq!(results.iter().filter(|r| **r == "duplicate").count(), 2, "{j}");
    let acc = j.as_array().unwrap().iter().find(|r| r["result"] == "accepted").unwrap();
    assert_eq!((acc["messages"].clone(), acc["rows"].clone(), acc["reporter"].clone()), (20.into(), 2.into(), "mx.example.org".into()));

    // Sent for real through a relay: a netjes serve that takes reports
    // for dmarc@reports.test.example.
    std::env::set_var("NETJES_MASTER_KEY", &key);
    let receiver = common::report_receiver(dir.path(), dns.addr(), &["dmarc@reports.test.example"]).await;
    let (relay, store) = (receiver.smtp.clone(), receiver.store.clone());
    let send = |relay: String| {
        let (m, ns, key) = (milter_data.to_str().unwrap().to_string(), ns.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            netjes(&["report", "send", "--json", "--data-dir", &m, "--day", "2026-11-29", "--org-name", "mx.example.org", "--from", "noreply-dmarc@mx.example.org", "--relay", &relay, "--nameserver", &ns], &key)
        })
    };
    let j = json(&send(relay.clone()).await.unwrap());
    let result = |j: &serde_json::Value, dest: &str| j.as_array().unwrap().iter().find(|r| r["destination"] == dest).unwrap()["result"].as_str().unwrap().to_string();
    assert_eq!(result(&j, "dmarc@reports.test.example"), "sent", "{j}");
    // The relay takes only its report address: the vendor's is refused.
    assert_eq!(result(&j, "rua@vendor.example"), "failed", "{j}");
    // It arrived and was read (unsigned here, so held as unverified: the
    // milter signs it on its way out in a real deployment).
    let mut held = vec![];
    for _ in 0..100 {
        held = store.held_reports().unwrap();
        if !held.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].reporter.as_str(), held[0].policy_domain.as_str()), ("mx.example.org", "a.example"));
    assert!(held[0].held.as_deref().unwrap().starts_with("unverified"), "{:?}", held[0].held);
    // A second run sends nothing twice, and leaves the destination that
    // refused for good alone.
    let j = json(&send(relay).await.unwrap());
    assert_eq!(result(&j, "dmarc@reports.test.example"), "already-sent", "{j}");
    assert_eq!(result(&j, "rua@vendor.example"), "suppressed", "{j}");
}

/// The milter sends the reports owed on its own when [reports.send] is
/// on: at start it makes up yesterday's.
#[tokio::test(flavor = "multi_thread")]
async fn the_milter_sends_yesterdays_reports_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("milter");
    let yesterday = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 86_400 - 1;
    {
        let store = VerdictStore::open(&data, None).unwrap();
        for i in 0..4 {
            store.record(verdict(yesterday * 86_400 + 60 + i, "192.0.2.1", true)).unwrap();
        }
        for _ in 0..100 {
            if store.rows_between(0, i64::MAX).unwrap().len() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let dns = TestDns::start_str("a.example._report._dmarc.reports.test.example. TXT \"v=DMARC1\"\n").await;
    let key = "0".repeat(64);
    std::env::set_var("NETJES_MASTER_KEY", &key);
    let receiver = common::report_receiver(dir.path(), dns.addr(), &["dmarc@reports.test.example"]).await;
    let (relay, store) = (receiver.smtp.clone(), receiver.store.clone());
    let port = netjes_testdns::free_port();
    let cfg = dir.path().join("milter.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"inet:{port}@127.0.0.1\"\nauthserv_id = \"mx.example.org\"\ndata_dir = \"{}\"\n[reports.send]\nenabled = true\nrelay = \"{relay}\"\n", data.display()),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args(["milter", "--config", cfg.to_str().unwrap(), "--nameserver", &dns.addr().to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut got = vec![];
    for _ in 0..200 {
        got = store.held_reports().unwrap();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.len(), 1, "the report did not arrive");
    assert_eq!((got[0].reporter.as_str(), got[0].report_id.as_str()), ("mx.example.org", format!("a.example!{yesterday}@mx.example.org").as_str()));
}

/// Failure reports (ruf=), when turned on: headers only, sent off the
/// message's path, at most failure_reports_per_hour to one destination.
#[tokio::test(flavor = "multi_thread")]
async fn the_milter_sends_failure_reports_within_their_rate() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str(
        "_dmarc.a.example. TXT \"v=DMARC1; p=reject; ruf=mailto:dmarc@reports.test.example; fo=1\"\n\
         a.example. TXT \"v=spf1 -all\"\n\
         a.example._report._dmarc.reports.test.example. TXT \"v=DMARC1\"\n",
    )
    .await;
    std::env::set_var("NETJES_MASTER_KEY", "0".repeat(64));
    let receiver = common::report_receiver(dir.path(), dns.addr(), &["dmarc@reports.test.example"]).await;
    let (relay, store) = (receiver.smtp.clone(), receiver.store.clone());
    let port = netjes_testdns::free_port();
    let cfg = dir.path().join("milter.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"inet:{port}@127.0.0.1\"\nauthserv_id = \"mx.example.org\"\ndata_dir = \"{}\"\n[reports.send]\nenabled = true\nrelay = \"{relay}\"\nfailure_reports = true\nfailure_reports_per_hour = 3\n",
            dir.path().join("milter").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args(["milter", "--config", cfg.to_str().unwrap(), "--nameserver", &dns.addr().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Five spoofs of a.example from outside: each rejected, each worth a
    // failure report, but only three go to one destination in the hour.
    for i in 0..5 {
        let mut c = netjes_milter::client::Client::connect(addr, "203.0.113.66").await;
        let msg = format!("From: <ceo@a.example>\r\nTo: bob@example.org\r\nSubject: wire the money {i}\r\nMessage-ID: <{i}@evil.example>\r\n\r\nSecret body {i}.\r\n");
        let r = c.message("x@evil.example", &msg, None).await;
        assert!(matches!(r.last(), Some(netjes_milter::protocol::Response::ReplyCode(t)) if t.starts_with("550")), "{r:?}");
    }
    let mut got = vec![];
    for _ in 0..100 {
        got = store.held_reports().unwrap();
        if got.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    got = store.held_reports().unwrap();
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(got.len(), 3, "{got:?}\nrejected: {:?}\n{}", store.rejected_reports().unwrap(), String::from_utf8_lossy(&out.stderr));
    assert!(got.iter().all(|r| r.kind == "failure" && r.policy_domain == "a.example"));
    let (_, parsed) = store.report(got[0].id).unwrap().unwrap();
    let headers = parsed["headers"].as_str().unwrap();
    assert!(headers.contains("Subject: wire the money"), "{headers}");
    let raw = serde_json::to_string(&parsed).unwrap();
    assert!(!raw.contains("Secret body"), "the body never leaves: {raw}");
    assert_eq!(parsed["delivery_result"], "reject");
    assert_eq!(parsed["source_ip"], "203.0.113.66");
}

/// A bounce as Postfix writes it, returning the headers of `message_id`.
fn dsn(recipient: &str, message_id: &str) -> String {
    format!(
        "From: MAILER-DAEMON@relay.example.org (Mail Delivery System)\r\nTo: noreply-dmarc@mx.example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.example.org\r\n\r\n\
Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <{recipient}>: User unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: noreply-dmarc@mx.example.org\r\nMessage-ID: <{message_id}>\r\n\r\n--B--\r\n"
    )
}

/// Sent through a relay that wants implicit TLS and a login; then a bounce
/// of one report, read by `netjes report bounce`, silences that
/// destination on the next day, and a made-up bounce silences nobody.
#[tokio::test(flavor = "multi_thread")]
async fn a_bounce_of_a_report_silences_its_destination_and_a_made_up_one_does_not() {
    use netjes_testdns::smtp::{SinkOptions, SinkTls, SmtpSink};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let milter_data = dir.path().join("milter");
    let day = 20_786; // 2026-11-29
    {
        let store = VerdictStore::open(&milter_data, None).unwrap();
        for d in [day, day + 1] {
            store.record(verdict(d * 86_400 + 100, "192.0.2.1", true)).unwrap();
        }
        for _ in 0..100 {
            if store.rows_between(0, i64::MAX).unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let dns = TestDns::start_str("a.example._report._dmarc.vendor.example. TXT \"v=DMARC1\"\na.example._report._dmarc.reports.test.example. TXT \"v=DMARC1\"\n").await;
    let sink = SmtpSink::start(SinkOptions { tls: SinkTls::Implicit, login: Some(("reports".into(), "correct horse".into())), ..Default::default() }).await;
    let (ca, pw) = (dir.path().join("ca.pem"), dir.path().join("relay-password"));
    std::fs::write(&ca, &sink.ca_pem).unwrap();
    std::fs::write(&pw, "correct horse\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let m = milter_data.to_str().unwrap().to_string();
    let key = "0".repeat(64);
    let send = |day: &'static str| {
        let (relay, ns, m, key, ca, pw) = (format!("localhost:{}", sink.port), dns.addr().to_string(), m.clone(), key.clone(), ca.clone(), pw.clone());
        tokio::task::spawn_blocking(move || {
            let a = ["report", "send", "--json", "--data-dir", &m, "--day", day, "--org-name", "mx.example.org", "--from", "noreply-dmarc@mx.example.org", "--relay", &relay, "--relay-tls", "implicit"];
            let b = ["--relay-user", "reports", "--relay-password-file", pw.to_str().unwrap(), "--relay-ca-file", ca.to_str().unwrap(), "--nameserver", &ns];
            json(&netjes(&[&a[..], &b[..]].concat(), &key))
        })
    };
    let result = |j: &serde_json::Value, dest: &str| j.as_array().unwrap().iter().find(|r| r["destination"] == dest).unwrap()["result"].as_str().unwrap().to_string();
    let j = send("2026-11-29").await.unwrap();
    assert_eq!((result(&j, "rua@vendor.example"), result(&j, "dmarc@reports.test.example")), ("sent".into(), "sent".into()), "{j}");
    let got = sink.messages();
    assert!(got.iter().all(|m| m.tls && m.login.as_deref() == Some("reports")), "over TLS, logged in");
    let vendor_mail = got.iter().find(|m| m.to == ["rua@vendor.example"]).unwrap();
    let text = String::from_utf8_lossy(&vendor_mail.data);
    let id = text.lines().find_map(|l| l.strip_prefix("Message-ID: <")).unwrap().trim_end_matches('>').to_string();

    // The vendor's mailbox is gone: its bounce comes back. Someone also
    // mails a made-up bounce about the other destination.
    std::fs::write(dir.path().join("real.eml"), dsn("rua@vendor.example", &id)).unwrap();
    std::fs::write(dir.path().join("forged.eml"), dsn("dmarc@reports.test.example", "made-up@mx.example.org")).unwrap();
    let (d, m2, key2) = (dir.path().to_path_buf(), m.clone(), key.clone());
    let o = tokio::task::spawn_blocking(move || {
        netjes(&["report", "bounce", "--json", "--data-dir", &m2, d.join("forged.eml").to_str().unwrap(), d.join("real.eml").to_str().unwrap()], &key2)
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    assert_eq!(j[0]["result"], "not-ours", "{j}");
    assert_eq!((j[1]["result"].as_str(), j[1]["destination"].as_str()), (Some("suppressed"), Some("rua@vendor.example")), "{j}");
    assert!(j[1]["detail"].as_str().unwrap().contains("550 5.1.1"), "{j}");

    // The next day: the vendor is left alone, the other goes out.
    let j = send("2026-11-30").await.unwrap();
    assert_eq!(result(&j, "rua@vendor.example"), "suppressed", "{j}");
    assert_eq!(result(&j, "dmarc@reports.test.example"), "sent", "{j}");

    // What is no bounce is read and left; an unopenable store is
    // EX_TEMPFAIL, so Postfix keeps the bounce.
    let (d, key2) = (dir.path().to_path_buf(), key.clone());
    let o = tokio::task::spawn_blocking(move || {
        std::fs::write(d.join("hello.eml"), "From: a@b.example\r\n\r\nhi\r\n").unwrap();
        std::fs::write(d.join("not-a-dir"), "").unwrap();
        (netjes(&["report", "bounce", "--json", "--data-dir", d.to_str().unwrap(), d.join("hello.eml").to_str().unwrap()], &key2), netjes(&["report", "bounce", "--data-dir", d.join("not-a-dir").to_str().unwrap(), d.join("real.eml").to_str().unwrap()], &key2))
    })
    .await
    .unwrap();
    assert_eq!((o.0.status.code(), json(&o.0)[0]["result"].as_str()), (Some(0), Some("not-a-bounce")));
    assert_eq!(o.1.status.code(), Some(75), "{}", String::from_utf8_lossy(&o.1.stderr));
}

/// A destination whose authorisation cannot be looked up (DNS times out)
/// keeps the day's report: not sent unchecked, not dropped, and sent by
/// the next run once DNS answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_dns_timeout_keeps_the_report_for_the_next_run() {
    use netjes_testdns::smtp::{SinkOptions, SmtpSink};
    let dir = tempfile::tempdir().unwrap();
    let milter_data = dir.path().join("milter");
    let day = 20_786; // 2026-11-29
    {
        let store = VerdictStore::open(&milter_data, None).unwrap();
        let mut row = verdict(day * 86_400 + 100, "192.0.2.1", true);
        row.published.as_mut().unwrap().rua = vec!["rua@slow.example".into()];
        store.record(row).unwrap();
        for _ in 0..100 {
            if store.rows_between(0, i64::MAX).unwrap().len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let dns = TestDns::start_str("a.example._report._dmarc.slow.example. TIMEOUT\n").await;
    let sink = SmtpSink::start(SinkOptions::default()).await;
    let send = || {
        let (m, ns, relay) = (milter_data.to_str().unwrap().to_string(), dns.addr().to_string(), sink.addr());
        tokio::task::spawn_blocking(move || netjes(&["report", "send", "--json", "--data-dir", &m, "--day", "2026-11-29", "--org-name", "mx.example.org", "--relay", &relay, "--nameserver", &ns], &"0".repeat(64)))
    };
    let o = send().await.unwrap();
    assert_eq!(o.status.code(), Some(1), "a report that could not go is a failure to see");
    let j = json(&o);
    assert_eq!((j[0]["result"].as_str(), j[0]["destination"].as_str()), (Some("deferred"), Some("rua@slow.example")), "{j}");
    assert!(sink.messages().is_empty(), "not sent unchecked");
    // DNS answers now: the next run sends it, once.
    dns.set_zone(netjes_dns::zone::Zone::parse("a.example._report._dmarc.slow.example. TXT \"v=DMARC1\"\n").unwrap());
    let j = json(&send().await.unwrap());
    assert_eq!(j[0]["result"], "sent", "{j}");
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(json(&send().await.unwrap())[0]["result"], "already-sent");
}

/// Two MX hosts' milters keep their verdicts in one PostgreSQL; `netjes
/// report send --postgres` makes one report of both hosts' mail.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_verdicts_in_postgres_make_one_report() {
    let pg = netjes_testdns::postgres::PostgresServer::start_new();
    let db = netjes_milter::verdicts_pg::config(&pg.url(), None, None).unwrap();
    let (mx1, mx2) = (VerdictStore::open_postgres(db.clone(), None).unwrap(), VerdictStore::open_postgres(db, None).unwrap());
    let day = 20_786; // 2026-11-29
    for i in 0..7 {
        mx1.record(verdict(day * 86_400 + 100 + i, "192.0.2.1", true)).unwrap();
    }
    for i in 0..5 {
        mx2.record(verdict(day * 86_400 + 200 + i, "198.51.100.66", false)).unwrap();
    }
    for _ in 0..200 {
        if mx1.rows_between(0, i64::MAX).unwrap().len() == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dns = TestDns::start_str("a.example._report._dmarc.vendor.example. TXT \"v=DMARC1\"\na.example._report._dmarc.reports.test.example. TXT \"v=DMARC1\"\n").await;
    let dir = tempfile::tempdir().unwrap();
    let (out, url, ns) = (dir.path().join("out"), pg.url(), dns.addr().to_string());
    let o = tokio::task::spawn_blocking(move || {
        netjes(&["report", "send", "--json", "--postgres", &url, "--day", "2026-11-29", "--org-name", "mx.example.org", "--dry-run", "--out", out.to_str().unwrap(), "--nameserver", &ns], &"0".repeat(64))
    })
    .await
    .unwrap();
    let j = json(&o);
    let written: Vec<&serde_json::Value> = j.as_array().unwrap().iter().filter(|r| r["result"] == "written").collect();
    assert_eq!(written.len(), 2, "one report, to the two authorised destinations: {j}");
    assert!(written.iter().all(|r| r["messages"] == 12 && r["records"] == 2), "both hosts' verdicts: {j}");
}
