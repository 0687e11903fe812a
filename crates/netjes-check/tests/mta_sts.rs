//! MTA-STS policies fetched from a local HTTPS server whose CA the check is
//! told to trust (--ca-file), with DNS from the real test DNS server.

use netjes_check::mta_sts::check_mta_sts_policy;
use netjes_check::tls::NetOptions;
use netjes_check::Status;
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use netjes_testdns::smtp::Pki;

fn pki(name: &str) -> Pki {
    Pki::new(&[name])
}

/// Serves one fixed HTTP answer to every connection, over TLS.
async fn https_server(p: &Pki, answer: String) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(p.server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn run(cert_name: &str, answer: String, mx: &[&str]) -> Vec<netjes_check::Finding> {
    let p = pki(cert_name);
    let port = https_server(&p, answer).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let dns = TestDns::start_str("mta-sts.sts.example. A 127.0.0.1\n").await;
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    let net = NetOptions {
        ca_file: Some(ca),
        https_port: port,
        smtp_port: 25,
        timeout: Duration::from_secs(5),
        public_only: false,
    };
    let mx: Vec<String> = mx.iter().map(|s| s.to_string()).collect();
    check_mta_sts_policy(&r, "sts.example", &mx, &net).await
}

const POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.sts.example\r\nmx: *.backup.sts.example\r\nmax_age: 604800\r\n";

#[tokio::test]
async fn a_valid_policy_covering_every_mx_passes() {
    let f = run(
        "mta-sts.sts.example",
        ok(POLICY),
        &["mail.sts.example", "mx2.backup.sts.example"],
    )
    .await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].status, Status::Pass);
    assert!(f[0].message.contains("enforce"));
}

#[tokio::test]
async fn chunked_answers_are_read() {
    let chunked = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{POLICY}\r\n0\r\n\r\n", POLICY.len());
    let f = run("mta-sts.sts.example", chunked, &["mail.sts.example"]).await;
    assert_eq!(f[0].status, Status::Pass, "{f:#?}");
}

#[tokio::test]
async fn an_uncovered_mx_fails() {
    let f = run(
        "mta-sts.sts.example",
        ok(POLICY),
        &["mail.sts.example", "other.example.net"],
    )
    .await;
    let mx: Vec<_> = f.iter().filter(|x| x.id == "mta-sts.mx").collect();
    assert_eq!(mx.len(), 1, "{f:#?}");
    assert!(mx[0].message.contains("other.example.net"));
}

#[tokio::test]
async fn a_certificate_for_another_name_fails() {
    let f = run("www.sts.example", ok(POLICY), &["mail.sts.example"]).await;
    assert_eq!(f[0].status, Status::Fail, "{f:#?}");
    assert!(f[0].message.contains("TLS"), "{}", f[0].message);
}

#[tokio::test]
async fn redirects_and_bad_policies_fail() {
    let redirect =
        "HTTP/1.1 301 Moved\r\nLocation: https://elsewhere/\r\nContent-Length: 0\r\n\r\n"
            .to_string();
    let f = run("mta-sts.sts.example", redirect, &[]).await;
    assert!(f[0].message.contains("redirect"), "{f:#?}");
    let f = run(
        "mta-sts.sts.example",
        ok("version: STSv1\r\nmode: strict\r\nmx: a\r\nmax_age: 1\r\n"),
        &[],
    )
    .await;
    assert_eq!(f[0].status, Status::Fail);
    assert!(f[0].message.contains("strict"));
    let html =
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n<p>hi".to_string();
    let f = run("mta-sts.sts.example", html, &[]).await;
    assert!(f.iter().any(|x| x.id == "mta-sts.content-type"), "{f:#?}");
}

/// For a visitor of the web UI (public_only), an mta-sts name that points
/// at loopback, the LAN or link-local is not connected to, and the report
/// says so instead of what answered there (before, the visitor learned
/// whether something listened on 127.0.0.1:443).
#[tokio::test]
async fn a_private_address_is_never_connected_to_for_a_visitor() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    for (name, zone) in [
        ("loopback", "mta-sts.sts.example. A 127.0.0.1\n"),
        ("mapped", "mta-sts.sts.example. AAAA ::ffff:127.0.0.1\n"),
        ("private", "mta-sts.sts.example. A 10.1.2.3\n"),
        ("metadata", "mta-sts.sts.example. A 169.254.169.254\n"),
        ("ipv6 loopback", "mta-sts.sts.example. AAAA ::1\n"),
    ] {
        let dns = TestDns::start_str(zone).await;
        let r = HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        let net = NetOptions {
            https_port: port,
            public_only: true,
            timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let f = check_mta_sts_policy(&r, "sts.example", &["mail.sts.example".into()], &net).await;
        assert_eq!(f.len(), 1, "{name}: {f:?}");
        assert_eq!(f[0].status, Status::Error, "{name}");
        assert!(f[0].message.starts_with("not checked: mta-sts.sts.example resolves to"), "{name}: {}", f[0].message);
        assert!(f[0].message.contains("not a public address"), "{name}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0, "the listener saw a connection");
}
