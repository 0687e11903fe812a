//! The relay client against a real SMTP server on loopback: implicit TLS
//! and STARTTLS, AUTH PLAIN and LOGIN, and each way it must refuse.

use netjes_check::relay::{send, Credentials, Relay, RelayTls};
use netjes_testdns::smtp::{SinkOptions, SinkTls, SmtpSink};
use std::time::Duration;

const MESSAGE: &[u8] = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: t\r\n\r\n.a line that starts with a dot\r\nend\r\n";

fn relay(sink: &SmtpSink, dir: &std::path::Path, tls: RelayTls, password: Option<&str>) -> Relay {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &sink.ca_pem).unwrap();
    Relay {
        // The certificate is for "localhost", which is where the sink is.
        addr: format!("localhost:{}", sink.port),
        tls,
        ca_file: Some(ca),
        helo: "mx.example.com".into(),
        timeout: Duration::from_secs(10),
        auth: password.map(|p| Credentials { user: "app".into(), password: p.into() }),
    }
}

fn login_sink(tls: SinkTls, mechanisms: &[&str]) -> SinkOptions {
    SinkOptions { tls, login: Some(("app".into(), "s3cret pass".into())), mechanisms: mechanisms.iter().map(|m| m.to_string()).collect(), ..Default::default() }
}

#[tokio::test]
async fn implicit_tls_and_auth_plain() {
    let sink = SmtpSink::start(login_sink(SinkTls::Implicit, &["PLAIN", "LOGIN"])).await;
    let dir = tempfile::tempdir().unwrap();
    send(&relay(&sink, dir.path(), RelayTls::Implicit, Some("s3cret pass")), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap();
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls, "the mail went over TLS");
    assert_eq!(got[0].login.as_deref(), Some("app"));
    assert_eq!((got[0].from.as_str(), got[0].to.as_slice()), ("r@example.com", &["d@example.net".to_string()][..]));
    assert_eq!(got[0].data, MESSAGE, "dot-stuffed on the way, the same on arrival");
}

#[tokio::test]
async fn starttls_and_auth_login_when_plain_is_not_offered() {
    let sink = SmtpSink::start(login_sink(SinkTls::Starttls, &["LOGIN"])).await;
    let dir = tempfile::tempdir().unwrap();
    send(&relay(&sink, dir.path(), RelayTls::Starttls, Some("s3cret pass")), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap();
    let got = sink.messages();
    assert!(got[0].tls && got[0].login.as_deref() == Some("app"), "{got:?}");
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_it() {
    let sink = SmtpSink::start(login_sink(SinkTls::Starttls, &["PLAIN"])).await;
    let dir = tempfile::tempdir().unwrap();
    let err = send(&relay(&sink, dir.path(), RelayTls::Starttls, Some("wrong horse")), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap_err().to_string();
    assert!(err.starts_with("AUTH PLAIN: 535"), "{err}");
    assert!(!err.contains("wrong horse") && !err.contains("d3Jvbmcg"), "{err}");
    assert_eq!(sink.failed_logins.lock().unwrap().as_slice(), ["app"]);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn what_the_relay_lacks_stops_the_mail() {
    let dir = tempfile::tempdir().unwrap();
    // STARTTLS required, not offered.
    let plain = SmtpSink::start(SinkOptions::default()).await;
    let err = send(&relay(&plain, dir.path(), RelayTls::Starttls, None), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap_err().to_string();
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    // A login is set, the relay offers no AUTH.
    let err = send(&relay(&plain, dir.path(), RelayTls::None, Some("x")), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap_err().to_string();
    assert!(err.contains("offers no AUTH"), "{err}");
    // Only a mechanism netjes does not speak.
    let cram = SmtpSink::start(login_sink(SinkTls::Starttls, &["CRAM-MD5"])).await;
    let err = send(&relay(&cram, dir.path(), RelayTls::Starttls, Some("s3cret pass")), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap_err().to_string();
    assert!(err.contains("CRAM-MD5"), "{err}");
    // A certificate for another name: nothing is sent.
    let other = SmtpSink::start(SinkOptions { tls: SinkTls::Implicit, cert_names: vec!["relay.elsewhere.test".into()], ..Default::default() }).await;
    assert!(send(&relay(&other, dir.path(), RelayTls::Implicit, None), "r@example.com", &["d@example.net".into()], MESSAGE).await.is_err());
    let other = SmtpSink::start(SinkOptions { tls: SinkTls::Starttls, cert_names: vec!["relay.elsewhere.test".into()], ..Default::default() }).await;
    assert!(send(&relay(&other, dir.path(), RelayTls::Opportunistic, None), "r@example.com", &["d@example.net".into()], MESSAGE).await.is_err(), "a failed check is no fall back to plain text");
    assert!(plain.messages().is_empty() && cram.messages().is_empty() && other.messages().is_empty());
    // Opportunistic without an offer: plain text, on loopback.
    send(&relay(&plain, dir.path(), RelayTls::Opportunistic, None), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap();
    assert!(!plain.messages()[0].tls);
    // A refused recipient is named in the error.
    let refusing = SmtpSink::start(SinkOptions { refuse: vec![("d@example.net".into(), "550 5.1.1 no such user".into())], ..Default::default() }).await;
    let err = send(&relay(&refusing, dir.path(), RelayTls::None, None), "r@example.com", &["d@example.net".into()], MESSAGE).await.unwrap_err();
    assert_eq!(err.to_string(), "RCPT: 550 5.1.1 no such user");
    assert!(err.recipient_refused_for_good());
}

/// The connection test: every step listed; the failing one named, with
/// the relay's reply and never the password; no mail sent.
#[tokio::test]
async fn the_connection_test_says_what_worked() {
    use netjes_check::relay::probe;
    let sink = SmtpSink::start(login_sink(SinkTls::Starttls, &["PLAIN"])).await;
    let dir = tempfile::tempdir().unwrap();
    let steps = probe(&relay(&sink, dir.path(), RelayTls::Starttls, Some("s3cret pass"))).await;
    let names: Vec<(&str, bool)> = steps.iter().map(|s| (s.step, s.ok)).collect();
    assert_eq!(names, [("connect", true), ("greeting", true), ("EHLO", true), ("STARTTLS", true), ("AUTH", true)], "{steps:?}");
    let steps = probe(&relay(&sink, dir.path(), RelayTls::Starttls, Some("nope"))).await;
    let last = steps.last().unwrap();
    assert_eq!((last.step, last.ok), ("AUTH", false), "{steps:?}");
    assert!(last.detail.contains("535") && !last.detail.contains("nope"), "{last:?}");
    let other = SmtpSink::start(SinkOptions { tls: SinkTls::Implicit, cert_names: vec!["relay.elsewhere.test".into()], ..Default::default() }).await;
    let steps = probe(&relay(&other, dir.path(), RelayTls::Implicit, None)).await;
    assert_eq!((steps.last().unwrap().step, steps.last().unwrap().ok), ("TLS", false), "{steps:?}");
    let closed = netjes_testdns::free_port();
    let mut r = relay(&sink, dir.path(), RelayTls::None, None);
    r.addr = format!("127.0.0.1:{closed}");
    assert_eq!(probe(&r).await[0].step, "connect");
    assert!(sink.messages().is_empty() && other.messages().is_empty(), "no mail is sent");
}
