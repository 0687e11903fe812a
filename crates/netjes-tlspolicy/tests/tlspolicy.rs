//! The socketmap server over real TCP, with policies fetched over HTTPS
//! from a local server whose CA it trusts and DNS from the test server;
//! then Postfix's own `postmap -q` asks it.

use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use netjes_tlspolicy::{cache::Cache, Config, Service};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.enforce.example\r\nmx: *.enforce.example\r\nmax_age: 86400\r\n";
const TESTING: &str = "version: STSv1\r\nmode: testing\r\nmx: mx.testing.example\r\nmax_age: 86400\r\n";

struct Https {
    port: u16,
    ca_pem: String,
    up: Arc<AtomicBool>,
}

/// An HTTPS server for mta-sts.* names that answers by Host; when `up`
/// is false it answers 500, as a broken policy host does.
async fn https() -> Https {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let names = ["mta-sts.enforce.example", "mta-sts.testing.example", "mta-sts.exempt.example"].map(String::from).to_vec();
    let leaf = rcgen::CertificateParams::new(names).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(true));
    let up2 = up.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, up) = (acceptor.clone(), up2.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let body = if req.contains("host: mta-sts.testing.example") { TESTING } else { ENFORCE };
                let answer = if up.load(Ordering::SeqCst) {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.1 500 Broken\r\nContent-Length: 0\r\n\r\n".to_string()
                };
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Https { port, ca_pem: ca.pem(), up }
}

const ZONE: &str = "_mta-sts.enforce.example. TXT \"v=STSv1; id=20261130\"\nmta-sts.enforce.example. A 127.0.0.1\n\
_mta-sts.testing.example. TXT \"v=STSv1; id=1\"\nmta-sts.testing.example. A 127.0.0.1\n\
_mta-sts.exempt.example. TXT \"v=STSv1; id=1\"\nmta-sts.exempt.example. A 127.0.0.1\n";

async fn start(dns: &TestDns, h: &Https, dir: &std::path::Path) -> (std::net::SocketAddr, Arc<Service>, tokio::sync::watch::Sender<bool>) {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &h.ca_pem).unwrap();
    let r = HickoryResolver::new(&DnsConfig { nameservers: vec![dns.addr()], timeout: Duration::from_millis(300) }).unwrap();
    let cfg = Config {
        exempt: vec!["exempt.example".into()],
        tlsrpt: false,
        net: netjes_check::tls::NetOptions { ca_file: Some(ca), https_port: h.port, timeout: Duration::from_secs(3), ..Default::default() },
    };
    let svc = Arc::new(Service::new(Arc::new(r), Cache::open(&dir.join("data")).unwrap(), cfg, Arc::new(Default::default())));
    let l = netjes_net::Listener::bind(&netjes_net::ListenAddr::parse("inet:0@127.0.0.1").unwrap()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(netjes_tlspolicy::run(l, svc.clone(), rx));
    (addr, svc, tx)
}

/// One socketmap exchange per key on one connection.
async fn ask(addr: std::net::SocketAddr, keys: &[&str]) -> Vec<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    for k in keys {
        let data = format!("postfix {k}");
        s.write_all(format!("{}:{data},", data.len()).as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        loop {
            s.read_exact(&mut b).await.unwrap();
            buf.push(b[0]);
            if let Some(colon) = buf.iter().position(|c| *c == b':') {
                let len: usize = std::str::from_utf8(&buf[..colon]).unwrap().parse().unwrap();
                if buf.len() == colon + len + 2 {
                    break;
                }
            }
        }
        let text = String::from_utf8(buf).unwrap();
        out.push(text[text.find(':').unwrap() + 1..text.len() - 1].to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_is_secure_the_rest_is_left_alone_and_the_cache_holds() {
    let dns = TestDns::start_str(ZONE).await;
    let h = https().await;
    let dir = tempfile::tempdir().unwrap();
    let (addr, svc, _stop) = start(&dns, &h, dir.path()).await;
    let got = ask(addr, &["enforce.example", "Enforce.Example.", "testing.example", "nothing.example", "exempt.example", "[mx.enforce.example]:25", ".enforce.example"]).await;
    assert_eq!(got[0], "OK secure match=mx.enforce.example:.enforce.example servername=hostname");
    assert_eq!(got[1], got[0], "names are read without case and trailing dot");
    assert!(got[2..].iter().all(|g| g == "NOTFOUND "), "{got:?}");
    let fetches = |svc: &Service| svc.metrics.get("netjes_tlspolicy_fetches_total", &[("result", "ok")]);
    // Cached: the record id is the same, no new fetch.
    let before = fetches(&svc);
    assert_eq!(ask(addr, &["enforce.example"]).await[0], got[0]);
    assert_eq!(fetches(&svc), before);

    // The policy host breaks and the record changes: the policy in hand
    // is kept while it lasts (RFC 8461 §3.3).
    h.up.store(false, Ordering::SeqCst);
    dns.set_zone(netjes_dns::zone::Zone::parse(&ZONE.replace("id=20261130", "id=20261201")).unwrap());
    assert_eq!(ask(addr, &["enforce.example"]).await[0], got[0]);
    assert!(svc.metrics.get("netjes_tlspolicy_fetches_total", &[("result", "failed")]) >= 1);

    // A restart keeps the cache; with DNS gone too, the policy holds.
    dns.set_zone(netjes_dns::zone::Zone::parse("_mta-sts.enforce.example. TIMEOUT\n").unwrap());
    let (addr2, _svc2, _stop2) = start(&dns, &h, dir.path()).await;
    assert_eq!(ask(addr2, &["enforce.example"]).await[0], got[0]);

    // What is not a netstring ends the connection, and the server goes on.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut b = [0u8; 16];
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.unwrap().unwrap_or(0), 0);
    assert_eq!(ask(addr, &["nothing.example"]).await[0], "NOTFOUND ");

    // Postfix's own client: postmap -q over the socketmap.
    let postmap = ["/usr/sbin/postmap", "/usr/bin/postmap"].into_iter().find(|p| std::path::Path::new(p).exists());
    if let Some(postmap) = postmap {
        let table = format!("socketmap:inet:127.0.0.1:{}:postfix", addr.port());
        let o = tokio::task::spawn_blocking(move || std::process::Command::new(postmap).args(["-q", "enforce.example", &table]).output().unwrap()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "secure match=mx.enforce.example:.enforce.example servername=hostname", "{}", String::from_utf8_lossy(&o.stderr));
    } else {
        assert!(std::env::var_os("NETJES_TEST").is_none(), "postmap is missing; scripts/test.sh installs Postfix");
    }
}
