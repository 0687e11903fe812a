//! `--smtp` against local SMTP servers: with STARTTLS and a valid
//! certificate, without STARTTLS, and with a certificate for another name.

use netjes_check::smtp::check_smtp;
use netjes_check::tls::NetOptions;
use netjes_check::Status;
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn pki(name: &str) -> (String, rustls::ServerConfig) {
    let p = netjes_testdns::smtp::Pki::new(&[name]);
    (p.ca_pem, (*p.server).clone())
}

/// A small SMTP server: greets as `greeting`, offers STARTTLS when it has a
/// TLS config, and answers QUIT.
async fn smtp_server(greeting: &'static str, tls: Option<rustls::ServerConfig>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(tcp);
                r.get_mut()
                    .write_all(format!("220 {greeting} ESMTP test\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    if cmd.starts_with("EHLO") {
                        let tls_line = if acceptor.is_some() {
                            "250-STARTTLS\r\n"
                        } else {
                            ""
                        };
                        r.get_mut().write_all(format!("250-{greeting}\r\n250-PIPELINING\r\n{tls_line}250 8BITMIME\r\n").as_bytes()).await.unwrap();
                    } else if cmd == "STARTTLS" {
                        r.get_mut()
                            .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                            .await
                            .unwrap();
                        let tcp = r.into_inner();
                        if let Ok(tls) = acceptor.clone().unwrap().accept(tcp).await {
                            let mut t = BufReader::new(tls);
                            let mut l = String::new();
                            let _ = t.read_line(&mut l).await;
                            let _ = t.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                        }
                        return;
                    } else if cmd == "QUIT" {
                        let _ = r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        r.get_mut()
                            .write_all(b"502 5.5.2 Error: command not recognized\r\n")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    port
}

async fn run(greeting: &'static str, cert_name: Option<&str>) -> Vec<netjes_check::Finding> {
    let (ca, cfg) = match cert_name {
        Some(n) => {
            let (ca, cfg) = pki(n);
            (Some(ca), Some(cfg))
        }
        None => (None, None),
    };
    let port = smtp_server(greeting, cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.map(|pem| {
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, pem).unwrap();
        p
    });
    // The MX's name comes from the real test DNS server; the PTR of
    // 127.0.0.1 cannot, because resolvers answer 127.in-addr.arpa themselves
    // (RFC 6761 §6.3: "localhost"), so it comes from an in-memory zone.
    let dns = TestDns::start_str("mail.smtp.example. A 127.0.0.1\n").await;
    let live: Arc<dyn netjes_dns::Resolver> = Arc::new(
        HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_secs(1),
        })
        .unwrap(),
    );
    let mut r = netjes_dns::offline::ZoneResolver::new();
    r.add_zone(
        "127.in-addr.arpa",
        netjes_dns::zone::Zone::parse("1.0.0.127.in-addr.arpa. PTR mail.smtp.example.\n").unwrap(),
    );
    let r = r.with_fallback(live);
    let net = NetOptions {
        ca_file,
        https_port: 443,
        smtp_port: port,
        timeout: Duration::from_secs(5),
        public_only: false,
    };
    check_smtp(&r, &["mail.smtp.example".to_string()], &net).await
}

fn status(f: &[netjes_check::Finding], id: &str) -> Status {
    f.iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("{id}: {f:#?}"))
        .status
}

#[tokio::test]
async fn starttls_with_a_valid_certificate_passes() {
    let f = run("mail.smtp.example", Some("mail.smtp.example")).await;
    assert_eq!(
        status(&f, "smtp.mail.smtp.example.starttls"),
        Status::Pass,
        "{f:#?}"
    );
    assert_eq!(status(&f, "smtp.mail.smtp.example.banner"), Status::Pass);
}

#[tokio::test]
async fn no_starttls_fails() {
    let f = run("mail.smtp.example", None).await;
    assert_eq!(
        status(&f, "smtp.mail.smtp.example.starttls"),
        Status::Fail,
        "{f:#?}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_and_the_banner_is_compared() {
    let f = run("localhost.localdomain", Some("other.example")).await;
    let tls = f
        .iter()
        .find(|x| x.id == "smtp.mail.smtp.example.starttls")
        .unwrap();
    assert_eq!(tls.status, Status::Fail, "{f:#?}");
    assert!(tls.message.contains("TLS fails"));
    assert_eq!(status(&f, "smtp.mail.smtp.example.banner"), Status::Warn);
}
