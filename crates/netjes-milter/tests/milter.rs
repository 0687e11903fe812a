//! The milter over its wire protocol on 127.0.0.1, driven by a milter
//! client as Postfix drives it, with the real test DNS server.

use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_milter::client::{apply, Client};
use netjes_milter::keys::OpenDkimTables;
use netjes_milter::protocol::{Command, Response};
use netjes_milter::server::{run, Milter, Shared};
use netjes_milter::work::Settings;
use netjes_testdns::TestDns;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Setup {
    addr: SocketAddr,
    verdicts: netjes_milter::verdicts::VerdictStore,
    shared: Arc<Shared>,
    dns: TestDns,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn setup() -> Setup {
    setup_with(false).await
}

/// `arc`: seal verified mail as example.com, s1 (the signing key).
async fn setup_with(arc: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).unwrap();
    let path = dir.path().join("s1.private");
    std::fs::write(&path, key.to_pkcs8_pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        dir.path().join("KeyTable"),
        format!("s1 example.com:s1:{}\n", path.display()),
    )
    .unwrap();
    std::fs::write(dir.path().join("SigningTable"), "*@example.com s1\n").unwrap();
    let strings: Vec<String> = key
        .dns_value()
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let zone = format!(
        "example.com. TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc.example.com. TXT \"v=DMARC1; p=reject\"\ns1._domainkey.example.com. TXT {}\nquar.example. TXT \"v=spf1 -all\"\n_dmarc.quar.example. TXT \"v=DMARC1; p=quarantine\"\n_dmarc.slow.example. TIMEOUT\nslow.example. TIMEOUT\n",
        strings.join(" ")
    );
    let dns = TestDns::start_str(&zone).await;
    let tables = OpenDkimTables::load(
        &dir.path().join("KeyTable").display().to_string(),
        &format!("refile:{}", dir.path().join("SigningTable").display()),
    )
    .unwrap();
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    let arc_seal = arc.then(|| netjes_milter::work::ArcSealer {
        domain: "example.com".into(),
        selector: "s1".into(),
        key: Arc::new(key.clone()),
    });
    let settings = Settings {
        authserv_id: "mx.test".into(),
        time_budget: Duration::from_secs(5),
        arc_seal,
        ..Default::default()
    };
    let verdicts = netjes_milter::verdicts::VerdictStore::open(&dir.path().join("data")).unwrap();
    let milter = Shared::new(Milter {
        settings,
        keys: Arc::new(tables),
        dns: Arc::new(r),
        verdicts: Some(verdicts.clone()),
    });
    let l = netjes_net::Listener::bind(&netjes_net::ListenAddr::parse("inet:0@127.0.0.1").unwrap())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(run(l, milter.clone(), rx));
    Setup {
        addr,
        verdicts,
        shared: milter,
        dns,
        _dir: dir,
        _stop: tx,
    }
}

const MSG: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello Bob.\r\n";

#[tokio::test]
async fn internal_mail_is_signed_and_the_signature_verifies_outside() {
    let s = setup().await;
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    let r = c.message("alice@example.com", MSG, None).await;
    assert!(matches!(r.last(), Some(Response::Continue)), "{r:?}");
    assert!(
        matches!(&r[0], Response::InsertHeader { name, .. } if name == "DKIM-Signature"),
        "{r:?}"
    );
    let signed = apply(MSG, &r);

    // The signed message arrives at another server (from an address SPF
    // allows): the milter there verifies it, and DMARC passes.
    let mut c = Client::connect(s.addr, "192.0.2.7").await;
    let r = c.message("alice@example.com", &signed, None).await;
    let ar = r.iter().find_map(|x| match x {
        Response::InsertHeader { name, value, .. } if name == "Authentication-Results" => {
            Some(value.clone())
        }
        _ => None,
    });
    let ar = ar.unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        ar.contains("mx.test;")
            && ar.contains("dkim=pass")
            && ar.contains("dmarc=pass")
            && ar.contains("spf=pass"),
        "{ar}"
    );
    assert!(matches!(r.last(), Some(Response::Continue)));
    // The verdict is kept for the DMARC report of example.com.
    // Written beside the answer: wait for it.
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = s.verdicts.rows("example.com", 0, i64::MAX).unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].dmarc.as_str(),
            rows[0].spf.as_deref(),
            rows[0].source_ip.as_deref()
        ),
        ("pass", Some("pass"), Some("192.0.2.7"))
    );
    assert!(
        rows[0].dkim.starts_with("example.com:s1:pass"),
        "{}",
        rows[0].dkim
    );
}

#[tokio::test]
async fn sasl_users_are_signed_wherever_they_connect_from() {
    let s = setup().await;
    let mut c = Client::connect(s.addr, "203.0.113.9").await;
    let r = c.message("alice@example.com", MSG, Some("alice")).await;
    assert!(
        matches!(&r[0], Response::InsertHeader { name, .. } if name == "DKIM-Signature"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_spoofed_p_reject_domain_is_rejected_and_forged_results_are_removed() {
    let s = setup().await;
    let mut c = Client::connect(s.addr, "203.0.113.9").await;
    let r = c.message("alice@example.com", MSG, None).await;
    match r.last() {
        Some(Response::ReplyCode(t)) => assert!(
            t.starts_with("550 5.7.1 DMARC policy of example.com rejects")
                && t.contains("SPF fail"),
            "{t}"
        ),
        other => panic!("{other:?}"),
    }
    // A forged Authentication-Results with our authserv-id is deleted.
    let forged = format!("Authentication-Results: mx.test; dkim=pass header.d=quar.example\r\nFrom: q@quar.example\r\n{}", MSG.split_once("\r\n").unwrap().1);
    let r = c.message("q@quar.example", &forged, None).await;
    assert!(
        r.contains(&Response::ChangeHeader {
            index: 1,
            name: "Authentication-Results".into(),
            value: String::new()
        }),
        "{r:?}"
    );
    // p=quarantine: held.
    assert!(
        r.iter().any(|x| matches!(x, Response::Quarantine(_))),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_dns_timeout_tempfails() {
    let s = setup().await;
    let mut c = Client::connect(s.addr, "203.0.113.9").await;
    let m = MSG.replace("alice@example.com", "x@slow.example");
    let r = c.message("x@slow.example", &m, None).await;
    match r.last() {
        Some(Response::ReplyCode(t)) => assert!(t.starts_with("451 4.7.5"), "{t}"),
        other => panic!("{other:?}"),
    }
    drop(s.dns);
}

#[tokio::test]
async fn abort_mid_message_then_a_second_message_and_a_bad_frame() {
    let s = setup().await;
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    c.ask(Command::Mail(vec!["<alice@example.com>".into()]))
        .await;
    c.ask(Command::Header {
        name: "From".into(),
        value: b" mallory@example.com".to_vec(),
    })
    .await;
    c.ask(Command::Abort).await;
    let r = c.message("alice@example.com", MSG, None).await;
    assert!(
        matches!(&r[0], Response::InsertHeader { name, .. } if name == "DKIM-Signature"),
        "{r:?}"
    );
    let r = c.message("alice@example.com", MSG, None).await;
    assert!(
        matches!(&r[0], Response::InsertHeader { name, .. } if name == "DKIM-Signature"),
        "two messages on one connection: {r:?}"
    );
    // A frame claiming 16 MB: that connection is closed, others go on.
    let mut bad = TcpStream::connect(s.addr).await.unwrap();
    bad.write_all(&[1, 0, 0, 0, b'O']).await.unwrap();
    let mut buf = Vec::new();
    // Closed with the frame unread: an end of file or a reset, never a reply.
    let r = bad.read_to_end(&mut buf).await;
    assert!(r.is_err() || buf.is_empty());
    let mut c2 = Client::connect(s.addr, "127.0.0.1").await;
    let r = c2.message("alice@example.com", MSG, None).await;
    assert!(matches!(&r[0], Response::InsertHeader { .. }), "{r:?}");
    let m = s.shared.metrics.render();
    assert!(
        m.contains("netjes_milter_messages_total{result=\"signed\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("netjes_milter_errors_total{kind=\"protocol\"} 1")
            && m.contains("netjes_milter_message_seconds_count 3"),
        "{m}"
    );
}

/// A forwarding host seals what it verified: the new ARC set validates.
#[tokio::test]
async fn verified_mail_is_arc_sealed_on_a_forwarding_host() {
    let s = setup_with(true).await;
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    let signed = apply(MSG, &c.message("alice@example.com", MSG, None).await);
    let mut c = Client::connect(s.addr, "192.0.2.7").await;
    let r = c.message("alice@example.com", &signed, None).await;
    let names: Vec<&str> = r
        .iter()
        .filter_map(|x| match x {
            Response::InsertHeader { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    for n in [
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
        "Authentication-Results",
    ] {
        assert!(names.contains(&n), "{n}: {names:?}");
    }
    // The message as the next hop sees it: its ARC chain passes.
    let forwarded = apply(&signed, &r);
    let dns = HickoryResolver::new(&DnsConfig {
        nameservers: vec![s.dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    let msg = netjes_auth::message::parse(forwarded.as_bytes()).unwrap();
    let arc = netjes_auth::arc::verify_arc(&dns, &msg).await;
    assert_eq!(
        arc.result,
        netjes_auth::arc::ArcResult::Pass,
        "{arc:?}\n{forwarded}"
    );
    assert_eq!(arc.instances, 1);
}
