//! The milter over its wire protocol on 127.0.0.1, driven by a milter
//! client as Postfix drives it, with the real test DNS server.

use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_milter::client::{apply, Client};
use netjes_milter::keys::KeyTables;
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
    setup_custom(arc, false, |_| {}).await
}

fn private_key_file(path: &std::path::Path, key: &PrivateKey, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, key.to_pkcs8_pem()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `native`: besides OpenDKIM's tables, native entries with an Ed25519 key
/// (ed1) for example.com and a world-readable key for broken.example.
/// `tweak` changes the settings.
async fn setup_custom(arc: bool, native: bool, tweak: impl FnOnce(&mut Settings)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).unwrap();
    let ed = PrivateKey::generate(KeyAlgorithm::Ed25519, 256).unwrap();
    let path = dir.path().join("s1.private");
    private_key_file(&path, &key, 0o600);
    std::fs::write(
        dir.path().join("KeyTable"),
        format!("s1 example.com:s1:{}\n", path.display()),
    )
    .unwrap();
    std::fs::write(dir.path().join("SigningTable"), "*@example.com s1\n").unwrap();
    let zone = format!(
        "example.com. TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc.example.com. TXT \"v=DMARC1; p=reject\"\ns1._domainkey.example.com. TXT {}\ned1._domainkey.example.com. TXT {}\nquar.example. TXT \"v=spf1 -all\"\n_dmarc.quar.example. TXT \"v=DMARC1; p=quarantine\"\n_dmarc.slow.example. TIMEOUT\nslow.example. TIMEOUT\n",
        netjes_dns::master::txt_strings(&key.dns_value()),
        netjes_dns::master::txt_strings(&ed.dns_value()),
    );
    let dns = TestDns::start_str(&zone).await;
    let mut tables = KeyTables::load(
        &dir.path().join("KeyTable").display().to_string(),
        &format!("refile:{}", dir.path().join("SigningTable").display()),
    )
    .unwrap();
    if native {
        private_key_file(&dir.path().join("ed1.private"), &ed, 0o600);
        private_key_file(&dir.path().join("open.private"), &key, 0o644);
        let entry =
            |from: &str, domain: &str, selector: &str, file: &str| netjes_milter::keys::KeyEntry {
                from: vec![from.into()],
                domain: domain.into(),
                selector: selector.into(),
                key: dir.path().join(file),
            };
        tables
            .extend(
                KeyTables::from_entries(&[
                    entry("example.com", "example.com", "ed1", "ed1.private"),
                    entry("*@broken.example", "broken.example", "s1", "open.private"),
                ])
                .unwrap(),
            )
            .unwrap();
    }
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
    let mut settings = Settings {
        authserv_id: "mx.test".into(),
        time_budget: Duration::from_secs(5),
        arc_seal,
        ..Default::default()
    };
    tweak(&mut settings);
    let verdicts =
        netjes_milter::verdicts::VerdictStore::open(&dir.path().join("data"), None).unwrap();
    let milter = Shared::new(Milter {
        settings,
        keys: Arc::new(tables),
        dns: Arc::new(r),
        verdicts: Some(verdicts.clone()),
        failures: None,
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
    // What RFC 9990's policy_published and policy_evaluated need.
    let p = rows[0].published.clone().expect("the policy as published");
    assert_eq!((p.p.as_deref(), p.adkim.as_str(), p.testing.as_str(), p.discovery_method.as_str()), (Some("reject"), "r", "n", "treewalk"));
    assert_eq!((rows[0].spf_scope.as_deref(), rows[0].envelope_to.as_deref()), (Some("mfrom"), Some("example.org")));
    assert_eq!(rows[0].override_reason, None);
    assert_eq!((rows[0].dkim_aligned, rows[0].spf_aligned), (Some(true), Some(true)));
}

/// The rows of `domain` once `n` are written.
async fn rows_of(s: &Setup, domain: &str, n: usize) -> Vec<netjes_milter::verdicts::Row> {
    for _ in 0..100 {
        let rows = s.verdicts.rows(domain, 0, i64::MAX).unwrap();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {n} verdicts for {domain}");
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
    let m = s.shared.metrics.render();
    assert!(
        m.contains("netjes_milter_dmarc_total{result=\"fail\",disposition=\"reject\"} 1"),
        "{m}"
    );
    assert!(!m.contains("netjes_milter_dns_errors_total{"), "{m}");
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
    let m = s.shared.metrics.render();
    for check in ["spf", "dmarc"] {
        assert!(
            m.contains(&format!(
                "netjes_milter_dns_errors_total{{check=\"{check}\"}} 1"
            )),
            "{check}: {m}"
        );
    }
    assert!(
        m.contains("netjes_milter_messages_total{result=\"tempfail\"} 1"),
        "{m}"
    );
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

fn inserted<'a>(r: &'a [Response], field: &str) -> Vec<&'a str> {
    r.iter()
        .filter_map(|x| match x {
            Response::InsertHeader { name, value, .. } if name == field => Some(value.as_str()),
            _ => None,
        })
        .collect()
}

/// One domain with an RSA key in OpenDKIM's tables and an Ed25519 key in
/// the native ones: two signatures, over a 200 KB body that crossed the
/// wire in four pieces; both verify at the next server.
#[tokio::test]
async fn rsa_and_ed25519_signatures_over_a_streamed_body() {
    let s = setup_custom(false, true, |_| {}).await;
    let line = "A line of a long body, with  two spaces and a tab\tbefore its end \r\n";
    let body = line.repeat(200 * 1024 / line.len());
    let msg = format!("{}{body}", MSG.split_once("Hello Bob.").unwrap().0);
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    let r = c.message("alice@example.com", &msg, None).await;
    let sigs = inserted(&r, "DKIM-Signature");
    assert_eq!(sigs.len(), 2, "{r:?}");
    assert!(
        sigs[0].contains("a=rsa-sha256") && sigs[0].contains("s=s1"),
        "{}",
        sigs[0]
    );
    assert!(
        sigs[1].contains("a=ed25519-sha256") && sigs[1].contains("s=ed1"),
        "{}",
        sigs[1]
    );
    // From is over-signed; relaxed/relaxed.
    let h = sigs[0].replace(['\n', '\t', ' '], "");
    assert!(
        sigs[0].contains("c=relaxed/relaxed") && h.contains(":From:From:"),
        "{h}"
    );
    let signed = apply(&msg, &r);
    let mut c = Client::connect(s.addr, "192.0.2.7").await;
    let r = c.message("alice@example.com", &signed, None).await;
    let ar = inserted(&r, "Authentication-Results").join("");
    assert_eq!(ar.matches("dkim=pass").count(), 2, "{ar}");
    assert!(
        ar.contains("header.a=ed25519-sha256") && ar.contains("dmarc=pass"),
        "{ar}"
    );
    // And a body changed on the way fails both, and DMARC rejects.
    let tampered = signed.replace("two spaces", "2 spaces");
    let mut c = Client::connect(s.addr, "203.0.113.9").await;
    let r = c.message("alice@example.com", &tampered, None).await;
    assert!(
        matches!(r.last(), Some(Response::ReplyCode(t)) if t.starts_with("550 5.7.1")),
        "{r:?}"
    );
}

/// A table says to sign but the key is unusable (readable by everyone):
/// 451 by default, never unsigned mail; with on_key_error = accept the
/// message goes unsigned, and either way it is counted.
#[tokio::test]
async fn a_broken_key_tempfails_unless_configured_to_accept() {
    let s = setup_custom(false, true, |_| {}).await;
    let m = MSG.replace("alice@example.com", "alice@broken.example");
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    let r = c.message("alice@broken.example", &m, None).await;
    match r.last() {
        Some(Response::ReplyCode(t)) => assert!(t.starts_with("451 4.7.5"), "{t}"),
        other => panic!("{other:?}"),
    }
    assert!(inserted(&r, "DKIM-Signature").is_empty());
    let metrics = s.shared.metrics.render();
    assert!(
        metrics.contains("netjes_milter_messages_total{result=\"key-error\"} 1"),
        "{metrics}"
    );

    let s = setup_custom(false, true, |st| {
        st.on_key_error = netjes_milter::work::Failure::Accept
    })
    .await;
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    let r = c.message("alice@broken.example", &m, None).await;
    assert_eq!(r, vec![Response::Continue]);
}

/// A spoofed-looking message of a p=reject domain from a trusted forwarder
/// is let through, with the failure in Authentication-Results.
#[tokio::test]
async fn a_trusted_forwarder_is_not_held_to_dmarc() {
    let s = setup_custom(false, false, |st| {
        st.trusted_forwarders = vec!["198.51.100.0/24".parse().unwrap()]
    })
    .await;
    let mut c = Client::connect(s.addr, "198.51.100.5").await;
    let r = c.message("alice@example.com", MSG, None).await;
    assert_eq!(r.last(), Some(&Response::Continue), "{r:?}");
    let ar = inserted(&r, "Authentication-Results").join("");
    assert!(ar.contains("dmarc=fail"), "{ar}");
    let mut c = Client::connect(s.addr, "198.51.101.5").await;
    let r = c.message("alice@example.com", MSG, None).await;
    assert!(
        matches!(r.last(), Some(Response::ReplyCode(t)) if t.starts_with("550")),
        "{r:?}"
    );
    // The report will say which was let through, and why.
    let rows = rows_of(&s, "example.com", 2).await;
    let how = |ip: &str| rows.iter().find(|r| r.source_ip.as_deref() == Some(ip)).map(|r| (r.disposition.clone(), r.override_reason.clone())).unwrap();
    assert_eq!(how("198.51.100.5"), ("none".to_string(), Some("trusted_forwarder".to_string())));
    assert_eq!(how("198.51.101.5"), ("reject".to_string(), None));
}

/// A list changes a signed message (DKIM breaks) and seals it with ARC,
/// vouching that DKIM passed when it arrived. From an address SPF does not
/// allow, DMARC fails: a trusted sealer's valid chain lets it through,
/// any other sealer's does not.
#[tokio::test]
async fn a_trusted_arc_sealer_overrides_a_dmarc_failure() {
    let s = setup_custom(false, false, |st| {
        st.trusted_arc_sealers = vec!["example.com".into()]
    })
    .await;
    let mut c = Client::connect(s.addr, "127.0.0.1").await;
    let signed = apply(MSG, &c.message("alice@example.com", MSG, None).await);
    // The list: tags the Subject, adds its own results, and seals as
    // example.com (whose key is in DNS) with cv from what it validated.
    let listed = format!(
        "Authentication-Results: lists.example.com; dkim=pass header.d=example.com; dmarc=pass\r\n{}",
        signed.replace("Subject: hello", "Subject: [list] hello")
    );
    let dns = HickoryResolver::new(&DnsConfig {
        nameservers: vec![s.dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    let key_pem = std::fs::read_to_string(s._dir.path().join("s1.private")).unwrap();
    let key = PrivateKey::from_pem(&key_pem, None).unwrap();
    let opts = netjes_auth::arc::SealOptions {
        domain: "example.com".into(),
        selector: "s1".into(),
        authserv_id: "lists.example.com".into(),
        headers: None,
    };
    let sealed = netjes_auth::arc::seal_modified(
        &dns,
        listed.as_bytes(),
        &key,
        &opts,
        netjes_auth::arc::ArcResult::None,
    )
    .await
    .unwrap();
    let forwarded = format!("{}{listed}", sealed.headers);
    let mut c = Client::connect(s.addr, "203.0.113.9").await;
    let r = c
        .message("list-bounces@lists.example.com", &forwarded, None)
        .await;
    let ar = inserted(&r, "Authentication-Results").join("");
    assert!(ar.contains("arc=pass") && ar.contains("dmarc=fail"), "{ar}");
    assert_eq!(r.last(), Some(&Response::Continue), "{r:?}");

    // Changed after sealing, the chain fails: rejected.
    let spoof = forwarded.replace("[list] hello", "[list] hello again");
    let r = c
        .message("list-bounces@lists.example.com", &spoof, None)
        .await;
    assert!(
        matches!(r.last(), Some(Response::ReplyCode(t)) if t.starts_with("550")),
        "a chain broken after sealing: {r:?}"
    );

    // The same valid chain when only another sealer is trusted (swapped
    // in as a reload does): rejected.
    let now = s.shared.current();
    let mut settings = now.settings.clone();
    settings.trusted_arc_sealers = vec!["other.example".into()];
    s.shared.replace(Milter {
        settings,
        keys: now.keys.clone(),
        dns: now.dns.clone(),
        verdicts: None,
        failures: None,
    });
    // (The chain is the one that passed above, on the same DNS.)
    let r = c
        .message("list-bounces@lists.example.com", &forwarded, None)
        .await;
    assert!(
        matches!(r.last(), Some(Response::ReplyCode(t)) if t.starts_with("550")),
        "{r:?}"
    );
}

fn reply_code(r: &[Response]) -> String {
    match r.last() {
        Some(Response::ReplyCode(t)) => t.clone(),
        other => panic!("expected a reply code, got {other:?} in {r:?}"),
    }
}

/// The rest of MSG after its From line.
fn after_from() -> &'static str {
    MSG.split_once("\r\n").unwrap().1
}

/// Forged Authentication-Results claiming our authserv-id, in every form
/// RFC 8601 allows, two and three at once: none survives once the replies
/// are applied as Postfix applies them (renumbering after each deletion).
/// Before, deletions went by ascending index, so the second of two (and
/// the middle of three) reached the mailbox; a comment before the id, a
/// fold or quotes hid a forgery altogether.
#[tokio::test]
async fn no_forged_authentication_results_survive_in_any_form() {
    let s = setup().await;
    let forms = [
        "mx.test; dmarc=pass header.from=example.com",
        "(trust me) mx.test; dmarc=pass",
        "\r\n\tmx.test\r\n\t; dmarc=pass",
        "\"mx.test\"; dmarc=pass",
        "MX.TEST.; dkim=pass",
    ];
    let mut cases: Vec<Vec<&str>> = forms.iter().map(|f| vec![*f]).collect();
    cases.push(vec![forms[0], forms[0]]);
    cases.push(vec![forms[0], forms[1], forms[2]]);
    cases.push(forms.to_vec());
    for forged in cases {
        // A genuine result of another server between the forgeries stays.
        let mut head = String::new();
        for (i, f) in forged.iter().enumerate() {
            head += &format!("Authentication-Results: {f}\r\n");
            if i == 0 {
                head += "Authentication-Results: other.example; spf=pass\r\n";
            }
        }
        let msg = format!("{head}{MSG}");
        // From an address SPF allows: DMARC passes and the message goes on.
        let mut c = Client::connect(s.addr, "192.0.2.10").await;
        let r = c.message("alice@example.com", &msg, None).await;
        assert_eq!(r.last(), Some(&Response::Continue), "{r:?}");
        let out = apply(&msg, &r);
        let head = out.split_once("\r\n\r\n").unwrap().0.replace("\r\n\t", " ").replace("\r\n ", " ");
        let ours: Vec<&str> = head
            .split("\r\n")
            .filter(|l| l.to_ascii_lowercase().starts_with("authentication-results:"))
            .collect();
        assert_eq!(ours.len(), 2, "{forged:?}: {out}");
        assert!(ours[0].starts_with("Authentication-Results: mx.test;"), "{out}");
        assert!(ours[0].contains("dmarc=pass"), "{out}");
        assert!(ours[1].contains("other.example"), "{out}");
    }
}

/// Spoofs of a p=reject domain that got through before: each is refused.
#[tokio::test]
async fn author_spoofs_of_a_p_reject_domain_are_refused() {
    let s = setup().await;
    let body = after_from();
    let cases: Vec<(&str, String, &str)> = vec![
        // White space after the '@' (obsolete but legal): the domain is
        // example.com, whose p=reject applies.
        ("space after @", format!("From: <alice@ example.com>\r\n{body}"), "550 5.7.1 DMARC policy of example.com"),
        ("folded domain", format!("From: alice@\r\n example . com\r\n{body}"), "550 5.7.1 DMARC policy of example.com"),
        ("full-width", format!("From: alice@ｅｘａｍｐｌｅ．ｃｏｍ\r\n{body}"), "550 5.7.1 DMARC policy of example.com"),
        ("second author", format!("From: x@nopolicy.example, alice@example.com\r\n{body}"), "550 5.7.1 DMARC policy of example.com"),
        ("second From field", format!("From: x@nopolicy.example\r\nFrom: alice@example.com\r\n{body}"), "550 5.7.1 the message has 2 From fields"),
        ("same victim twice", format!("From: alice@example.com\r\nFrom: alice@example.com\r\n{body}"), "550 5.7.1 the message has 2 From fields"),
        ("no From", body.to_string(), "550 5.7.1 the message has no From field"),
        ("empty group", format!("From: undisclosed:;\r\n{body}"), "550 5.7.1 the From field holds no mailbox"),
        ("encoded address", format!("From: =?utf-8?q?alice=40example.com?=\r\n{body}"), "550 5.7.1 an encoded word"),
        ("two @", format!("From: x@attacker.example@example.com\r\n{body}"), "550 5.7.1 the From field does not parse"),
        ("zero-width", format!("From: alice@exam\u{200B}ple.com\r\n{body}"), "550 5.7.1 the From domain"),
        ("encoded display name", format!("From: =?utf-8?q?alice=40example.com?= <x@nopolicy.example>\r\n{body}"), "550 5.7.1 DMARC policy of example.com"),
        ("Sender", format!("From: x@nopolicy.example\r\nSender: alice@example.com\r\n{body}"), "550 5.7.1 DMARC policy of example.com"),
    ];
    for (name, msg, want) in cases {
        let mut c = Client::connect(s.addr, "203.0.113.9").await;
        let r = c.message("bounce@nopolicy.example", &msg, None).await;
        let code = reply_code(&r);
        assert!(code.starts_with(want), "{name}: {code}");
    }
}

/// A spoof padded past the limits is refused, never passed unchecked with
/// its forged results: 1,001 header fields (about 14 KB, well under
/// Postfix's header_size_limit), or a header block over 1 MiB. Tempfail
/// when so configured.
#[tokio::test]
async fn a_spoof_over_the_limits_is_refused() {
    let s = setup().await;
    let pad: String = (0..1001).map(|i| format!("X-Pad-{i}: x\r\n")).collect();
    let spoof = format!("Authentication-Results: mx.test; dmarc=pass\r\n{pad}{MSG}");
    let mut c = Client::connect(s.addr, "203.0.113.9").await;
    let r = c.message("alice@example.com", &spoof, None).await;
    let code = reply_code(&r);
    assert!(code.starts_with("550 5.7.0 the message cannot be checked"), "{code}");
    assert!(code.contains("1000 header fields"), "{code}");
    let big: String = (0..1100)
        .map(|i| format!("X-Big-{i}: {}\r\n", "y".repeat(1000)))
        .collect();
    let r = c
        .message("alice@example.com", &format!("{big}{MSG}"), None)
        .await;
    assert!(reply_code(&r).starts_with("550 5.7.0 the header block is over"), "{r:?}");
    // Our own mail over the limit goes out unsigned, not refused.
    let mut own = Client::connect(s.addr, "127.0.0.1").await;
    let r = own
        .message("alice@example.com", &format!("{big}{MSG}"), None)
        .await;
    assert_eq!(r, vec![Response::Continue]);

    let t = setup_custom(false, false, |st| {
        st.on_malformed = netjes_milter::work::Malformed::Tempfail
    })
    .await;
    let mut c = Client::connect(t.addr, "203.0.113.9").await;
    let r = c.message("alice@example.com", &spoof, None).await;
    assert!(reply_code(&r).starts_with("451 4.7.0"), "{r:?}");
    let r = c
        .message("bounce@nopolicy.example", after_from(), None)
        .await;
    assert!(reply_code(&r).starts_with("451 4.7.0 the message has no From field"), "{r:?}");
}

/// A connect whose address cannot be read is a stranger: verified (here,
/// a p=reject spoof, rejected), never signed as if it were ours.
#[tokio::test]
async fn an_unreadable_client_address_is_an_outside_client() {
    use netjes_milter::protocol::Family;
    let s = setup().await;
    for (family, address) in [
        (Family::Unknown, ""),
        (Family::Inet, "not-an-ip"),
        (Family::Inet6, "fe80::1%eth0"),
    ] {
        let mut c = Client::connect_as(s.addr, family, address).await;
        let r = c.message("alice@example.com", MSG, None).await;
        assert!(inserted(&r, "DKIM-Signature").is_empty(), "{address}: {r:?}");
        let code = reply_code(&r);
        assert!(code.starts_with("550 5.7.1 DMARC policy of example.com"), "{address:?}: {code}");
        assert!(code.contains("SPF not checked"), "{code}");
    }
}

/// 1,000 idle connections to the milter used to leave Postfix waiting up
/// to 330 s. A stranger gets per_client connections, strangers together
/// leave the reserve to the MTA's address, and Postfix's message is
/// answered within a second.
#[tokio::test]
async fn an_idle_flood_does_not_lock_the_mta_out() {
    let s = setup_custom(false, false, |st| {
        st.conn = netjes_net::ConnLimits::for_mta(
            60,
            20,
            10,
            vec![netjes_net::parse_net("127.0.0.1").unwrap()],
        );
    })
    .await;
    let flood = |from: String, n: usize| async move {
        let mut held = Vec::new();
        for _ in 0..n {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
            if let Ok(c) = sock.connect(s.addr).await {
                held.push(c);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut open = 0;
        for c in held.iter_mut() {
            let mut b = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(20), c.read(&mut b)).await {
                Ok(Ok(0)) => {}
                _ => open += 1,
            }
        }
        (held, open)
    };
    let (_a, open) = flood("127.0.0.2".into(), 1000).await;
    assert_eq!(open, 20, "one stranger holds per_client connections");
    let mut others = Vec::new();
    let mut total = 0;
    for i in 3..10 {
        let (h, open) = flood(format!("127.0.0.{i}"), 20).await;
        total += open;
        others.push(h);
    }
    assert_eq!(total, 30, "strangers together stop at max - reserved");
    let started = std::time::Instant::now();
    let mut c = Client::connect(s.addr, "192.0.2.10").await;
    let r = c.message("alice@example.com", MSG, None).await;
    assert_eq!(r.last(), Some(&Response::Continue), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

/// Mail to a report address makes no DMARC report: its verdict says so.
#[tokio::test]
async fn mail_to_a_report_address_is_marked() {
    let s = setup_custom(false, false, |st| st.report_addresses = vec!["bob@example.org".into()]).await;
    let mut c = Client::connect(s.addr, "192.0.2.7").await;
    c.message("alice@example.com", MSG, None).await;
    let rows = rows_of(&s, "example.com", 1).await;
    assert_eq!(rows[0].about_reports, Some(true));
}
