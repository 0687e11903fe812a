//! The socketmap server over real TCP, with policies fetched over HTTPS
//! from a local server whose CA it trusts and DNS from the test server;
//! then Postfix's own `postmap -q` asks it.

use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::https::StaticHttps;
use netjes_testdns::TestDns;
use netjes_tlspolicy::{cache::Cache, Config, Service};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENFORCE: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx.enforce.example\r\nmx: *.enforce.example\r\nmax_age: 86400\r\n";
const TESTING: &str = "version: STSv1\r\nmode: testing\r\nmx: mx.testing.example\r\nmax_age: 86400\r\n";

/// The policy hosts: a policy by Host over HTTPS; `up` false answers 500.
async fn https() -> StaticHttps {
    StaticHttps::start(&[("mta-sts.enforce.example", ENFORCE), ("mta-sts.testing.example", TESTING), ("mta-sts.exempt.example", ENFORCE)]).await
}

const ZONE: &str = "_mta-sts.enforce.example. TXT \"v=STSv1; id=20261130\"\nmta-sts.enforce.example. A 127.0.0.1\n\
_mta-sts.testing.example. TXT \"v=STSv1; id=1\"\nmta-sts.testing.example. A 127.0.0.1\n\
_mta-sts.exempt.example. TXT \"v=STSv1; id=1\"\nmta-sts.exempt.example. A 127.0.0.1\n";

async fn start(dns: &TestDns, h: &StaticHttps, dir: &std::path::Path) -> (std::net::SocketAddr, Arc<Service>, tokio::sync::watch::Sender<bool>) {
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
