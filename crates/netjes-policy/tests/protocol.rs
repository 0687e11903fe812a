//! The policy service over its real wire protocol on 127.0.0.1, with the
//! real test DNS server and the SQLite store in a temporary directory.

use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_policy::config::{Mode, RateKey, RateLimit, RawConfig};
use netjes_policy::server::{run, ListenAddr, Listener};
use netjes_policy::store::{RedisStore, SqliteStore, Store};
use netjes_policy::{Config, Policy};
use netjes_testdns::TestDns;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ZONE: &str = r#"
example.com.            TXT "v=spf1 ip4:192.0.2.0/24 -all"
pool.example.net.       TXT "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"
mail.example.com.       A   192.0.2.10
slow.example.org.       TIMEOUT
; the blocklist: 203.0.113.66 is listed, .67 makes the list refuse
66.113.0.203.bl.test.   A   127.0.0.2
67.113.0.203.bl.test.   A   127.255.255.254
"#;

struct Service {
    addr: SocketAddr,
    policy: Arc<Policy>,
    _shutdown: tokio::sync::watch::Sender<bool>,
    _dns: TestDns,
}

async fn start(dir: &std::path::Path, tweak: impl FnOnce(&mut RawConfig)) -> Service {
    start_on(Arc::new(SqliteStore::open(dir).unwrap()), tweak).await
}

async fn start_on(store: Arc<dyn Store>, tweak: impl FnOnce(&mut RawConfig)) -> Service {
    let dns = TestDns::start_str(ZONE).await;
    let mut raw = RawConfig {
        hostname: Some("mx.test".into()),
        ..Default::default()
    };
    raw.greylist.enabled = false;
    tweak(&mut raw);
    let config = Arc::new(Config::validate(raw).unwrap());
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    let policy = Arc::new(Policy::new(config, store, Arc::new(r)));
    let listener = Listener::bind(&ListenAddr::Inet("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(run(listener, policy.clone(), rx));
    Service {
        addr,
        policy,
        _shutdown: tx,
        _dns: dns,
    }
}

struct Client {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            r: BufReader::new(r),
            w,
        }
    }

    /// Sends one request and returns the action, or None if the server
    /// closed the connection.
    async fn ask(&mut self, attrs: &[(&str, &str)]) -> Option<String> {
        let mut req =
            String::from("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n");
        for (k, v) in attrs {
            req.push_str(&format!("{k}={v}\n"));
        }
        req.push('\n');
        self.w.write_all(req.as_bytes()).await.ok()?;
        let mut line = String::new();
        if self.r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let mut blank = String::new();
        self.r.read_line(&mut blank).await.ok()?;
        assert_eq!(blank, "\n", "a reply ends with an empty line");
        Some(line.trim_end().strip_prefix("action=").unwrap().to_string())
    }
}

fn msg<'a>(
    ip: &'a str,
    helo: &'a str,
    sender: &'a str,
    rcpt: &'a str,
    instance: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_address", ip),
        ("client_name", "unknown"),
        ("helo_name", helo),
        ("sender", sender),
        ("recipient", rcpt),
        ("instance", instance),
    ]
}

#[tokio::test]
async fn spf_fail_is_rejected_and_received_spf_is_prepended_once_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&msg(
            "203.0.113.5",
            "mail.example.com",
            "alice@example.com",
            "bob@example.org",
            "A1",
        ))
        .await
        .unwrap();
    assert!(a.starts_with("550 5.7.23 "), "{a}");
    // The HELO is checked first, as policyd-spf does: mail.example.com has
    // no SPF record, so the MAIL FROM decides here.
    assert!(a.contains("example.com does not allow 203.0.113.5"), "{a}");
    // Two recipients of one message: one Received-SPF.
    let a = c
        .ask(&msg(
            "192.0.2.10",
            "mail.example.com",
            "alice@example.com",
            "bob@example.org",
            "B1",
        ))
        .await
        .unwrap();
    assert!(a.starts_with("PREPEND Received-SPF: pass (mx.test: domain of alice@example.com designates 192.0.2.10"), "{a}");
    assert!(a.contains("receiver=mx.test; identity=mailfrom;"), "{a}");
    let a = c
        .ask(&msg(
            "192.0.2.10",
            "mail.example.com",
            "alice@example.com",
            "carol@example.org",
            "B1",
        ))
        .await
        .unwrap();
    assert_eq!(a, "DUNNO");
    // A DNS timeout defers, never rejects.
    let a = c
        .ask(&msg(
            "203.0.113.5",
            "x",
            "a@slow.example.org",
            "bob@example.org",
            "C1",
        ))
        .await
        .unwrap();
    assert!(a.starts_with("451 4.7.24 "), "{a}");
    // Our own users are not checked.
    let mut sasl = msg(
        "203.0.113.5",
        "x",
        "alice@example.com",
        "bob@example.org",
        "D1",
    );
    sasl.push(("sasl_username", "alice"));
    assert_eq!(c.ask(&sasl).await.unwrap(), "DUNNO");
    // Other protocol states are not judged.
    let mut w = c.w;
    w.write_all(b"request=smtpd_access_policy\nprotocol_state=DATA\nclient_address=203.0.113.5\nsender=alice@example.com\n\n").await.unwrap();
    let mut line = String::new();
    c.r.read_line(&mut line).await.unwrap();
    assert_eq!(line, "action=DUNNO\n");
    let m = s.policy.metrics.render();
    assert!(
        m.contains("netjes_policy_requests_total{action=\"reject\",check=\"spf\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn log_only_mode_answers_dunno() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.spf.mode = Mode::Log;
        c.spf.header = false;
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(
        c.ask(&msg(
            "203.0.113.5",
            "x",
            "alice@example.com",
            "bob@example.org",
            "A"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
}

#[tokio::test]
async fn greylisting_defers_then_accepts_and_keys_on_the_spf_domain() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.greylist.enabled = true;
        c.greylist.delay_seconds = 1;
        c.greylist.auto_whitelist_clients = 1;
        c.spf.header = false;
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    // No SPF record for the sender: keyed on the client's /24.
    let m = msg(
        "203.0.113.5",
        "x",
        "news@nospf.example",
        "bob@example.org",
        "G1",
    );
    let a = c.ask(&m).await.unwrap();
    assert!(a.starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted"), "{a}");
    assert!(
        c.ask(&m).await.unwrap().starts_with("DEFER_IF_PERMIT"),
        "too early"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Another address of the same /24 retries: the same triplet.
    assert_eq!(
        c.ask(&msg(
            "203.0.113.99",
            "x",
            "news@nospf.example",
            "bob@example.org",
            "G2"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
    // SPF passes for pool.example.net: the first attempt comes from one
    // network, the retry from another the pool also uses.
    assert!(c
        .ask(&msg(
            "192.0.2.50",
            "x",
            "bounce@pool.example.net",
            "bob@example.org",
            "P1"
        ))
        .await
        .unwrap()
        .starts_with("DEFER_IF_PERMIT"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        c.ask(&msg(
            "198.51.100.7",
            "x",
            "bounce@pool.example.net",
            "bob@example.org",
            "P2"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
    // The /24 has delivered (auto_whitelist_clients = 1): new triplets from
    // it are not delayed.
    assert_eq!(
        c.ask(&msg(
            "203.0.113.5",
            "x",
            "other@nospf.example",
            "dave@example.org",
            "G3"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
}

#[tokio::test]
async fn greylist_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tweak = |c: &mut RawConfig| {
        c.greylist.enabled = true;
        c.greylist.delay_seconds = 1;
        c.spf.enabled = false;
    };
    let m = msg(
        "203.0.113.5",
        "x",
        "news@nospf.example",
        "bob@example.org",
        "R1",
    );
    {
        let s = start(dir.path(), tweak).await;
        let mut c = Client::connect(s.addr).await;
        assert!(c.ask(&m).await.unwrap().starts_with("DEFER_IF_PERMIT"));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A new service on the same data directory remembers the first attempt.
    let s = start(dir.path(), tweak).await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.ask(&m).await.unwrap(), "DUNNO");
}

#[tokio::test]
async fn blocklist_scores_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.spf.enabled = false;
        c.dnsbl.enabled = true;
        c.dnsbl.sites = vec!["bl.test=127.0.0.[2..11]*3".into()];
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&msg(
            "203.0.113.66",
            "x",
            "a@nospf.example",
            "bob@example.org",
            "L1",
        ))
        .await
        .unwrap();
    assert!(
        a.starts_with("550 5.7.1 203.0.113.66 is listed (bl.test=127.0.0.[2..11]*3); score 3"),
        "{a}"
    );
    // The list refused the query: an error, not a listing.
    assert_eq!(
        c.ask(&msg(
            "203.0.113.67",
            "x",
            "a@nospf.example",
            "bob@example.org",
            "L2"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
    assert_eq!(
        c.ask(&msg(
            "203.0.113.68",
            "x",
            "a@nospf.example",
            "bob@example.org",
            "L3"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
}

#[tokio::test]
async fn rate_limits_count_messages_and_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.spf.enabled = false;
        c.rate_limit = vec![RateLimit {
            key: RateKey::SaslUsername,
            period: netjes_policy::config::Period::Hour,
            messages: Some(2),
            recipients: Some(4),
            mode: Mode::Enforce,
        }];
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    let ask = |inst: &'static str, rcpt: &'static str| {
        let mut m = msg("192.0.2.10", "x", "alice@example.com", rcpt, inst);
        m.push(("sasl_username", "alice"));
        m
    };
    // Message 1 with three recipients, message 2 with one: within limits.
    for r in ["a@x.example", "b@x.example", "c@x.example"] {
        assert_eq!(c.ask(&ask("M1", r)).await.unwrap(), "DUNNO");
    }
    assert_eq!(c.ask(&ask("M2", "d@x.example")).await.unwrap(), "DUNNO");
    // A fifth recipient is over the recipient limit; a third message over both.
    let a = c.ask(&ask("M2", "e@x.example")).await.unwrap();
    assert!(
        a.starts_with("450 4.7.1 Rate limit: alice sent 5 recipients"),
        "{a}"
    );
    let a = c.ask(&ask("M3", "f@x.example")).await.unwrap();
    assert!(
        a.starts_with("450 4.7.1 Rate limit: alice sent 3 messages in an hour"),
        "{a}"
    );
}

#[tokio::test]
async fn own_domain_spoofing_is_rejected_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.spf.enabled = false;
        c.own_domains = vec!["ours.example".into()];
        c.spoofing.allowed_senders = vec!["news@ours.example".into()];
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&msg(
            "203.0.113.5",
            "x",
            "ceo@ours.example",
            "bob@ours.example",
            "S1",
        ))
        .await
        .unwrap();
    assert!(a.starts_with("550 5.7.1 <ceo@ours.example>"), "{a}");
    assert_eq!(
        c.ask(&msg(
            "203.0.113.5",
            "x",
            "news@ours.example",
            "bob@ours.example",
            "S2"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
    assert_eq!(
        c.ask(&msg(
            "127.0.0.1",
            "x",
            "ceo@ours.example",
            "bob@ours.example",
            "S3"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
}

#[tokio::test]
async fn malformed_and_huge_requests_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| c.spf.enabled = false).await;
    let mut good = Client::connect(s.addr).await;
    // Not an attribute line.
    let mut bad = TcpStream::connect(s.addr).await.unwrap();
    bad.write_all(b"GET / HTTP/1.1\n\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut bad, &mut buf)
        .await
        .unwrap();
    assert!(buf.is_empty());
    // A line of 100 KB, and a request of 10,000 short attributes.
    let mut huge = TcpStream::connect(s.addr).await.unwrap();
    let _ = huge.write_all(&vec![b'a'; 100_000]).await;
    let mut buf = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut huge, &mut buf).await;
    assert!(buf.is_empty());
    let mut many = TcpStream::connect(s.addr).await.unwrap();
    let attrs: String = (0..10_000).map(|i| format!("x{i}=y\n")).collect();
    let _ = many.write_all(attrs.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut many, &mut buf).await;
    assert!(buf.is_empty());
    // The service goes on.
    assert_eq!(
        good.ask(&msg(
            "192.0.2.10",
            "x",
            "a@example.com",
            "b@example.org",
            "Z"
        ))
        .await
        .unwrap(),
        "DUNNO"
    );
    assert!(s
        .policy
        .metrics
        .render()
        .contains("netjes_policy_errors_total{kind=\"protocol\"} 3"));
}

#[tokio::test]
async fn many_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.greylist.enabled = true;
        c.spf.header = false;
    })
    .await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let addr = s.addr;
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let mut answers = Vec::new();
                for j in 0..5 {
                    let rcpt = format!("u{i}-{j}@example.org");
                    let inst = format!("I{i}-{j}");
                    answers.push(
                        c.ask(&msg(
                            "192.0.2.10",
                            "mail.example.com",
                            "alice@example.com",
                            &rcpt,
                            &inst,
                        ))
                        .await
                        .unwrap(),
                    );
                }
                answers
            })
        })
        .collect();
    for t in tasks {
        for a in t.await.unwrap() {
            assert!(a.starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted"), "{a}");
        }
    }
}

/// The unix socket listener, as Postfix's `check_policy_service
/// unix:private/netjes-policy` reaches it; a stale socket file left by a
/// killed process does not block the bind.
#[tokio::test]
async fn unix_socket() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str(ZONE).await;
    let mut raw = RawConfig {
        hostname: Some("mx.test".into()),
        ..Default::default()
    };
    raw.greylist.enabled = false;
    let config = Arc::new(Config::validate(raw).unwrap());
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(400),
    })
    .unwrap();
    let policy = Arc::new(Policy::new(config, store, Arc::new(r)));
    let path = dir.path().join("policy.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // the stale file
    let listener = Listener::bind(&ListenAddr::parse(&format!("unix:{}", path.display())).unwrap())
        .await
        .unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(run(listener, policy, rx));
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=203.0.113.5\nhelo_name=x\nsender=alice@example.com\nrecipient=b@example.org\ninstance=U\n\n").await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    let a = String::from_utf8_lossy(&buf[..n]);
    assert!(
        a.starts_with("action=550 5.7.23 ") && a.ends_with("\n\n"),
        "{a}"
    );
}

/// Idle connections from `from`: opened, then never a byte.
async fn idle_flood(addr: SocketAddr, from: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        if let Ok(s) = sock.connect(addr).await {
            held.push(s);
        }
    }
    held
}

/// How many of these connections the server has closed.
async fn closed(conns: &mut [tokio::net::TcpStream]) -> usize {
    use tokio::io::AsyncReadExt;
    let mut n = 0;
    for c in conns.iter_mut() {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), c.read(&mut b)).await {
            n += 1;
        }
    }
    n
}

/// 1,000 idle connections used to leave Postfix without an answer for up
/// to 330 s. A stranger gets at most `per_client` connections, strangers
/// together leave the reserved slots to the MTA's addresses, and the MTA
/// is answered within a second.
#[tokio::test]
async fn an_idle_flood_does_not_lock_the_mta_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), |c| {
        c.connections = netjes_net::RawConnLimits {
            max: 60,
            per_client: 20,
            reserved: 10,
            mta_addresses: vec!["127.0.0.1".into()],
        };
    })
    .await;
    let mut flood = idle_flood(s.addr, "127.0.0.2", 1000).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shut = closed(&mut flood).await;
    assert_eq!(flood.len() - shut, 20, "one stranger holds per_client connections");
    // Strangers from many addresses fill what is not reserved.
    let mut more = Vec::new();
    for i in 3..10 {
        more.extend(idle_flood(s.addr, &format!("127.0.0.{i}"), 20).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let held = more.len() - closed(&mut more).await;
    assert_eq!(held, 30, "strangers together stop at max - reserved");
    // The MTA: answered at once.
    let started = std::time::Instant::now();
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&msg("192.0.2.10", "mail.example.com", "alice@example.com", "bob@example.org", "F1"))
        .await;
    assert!(a.is_some(), "the MTA got no answer");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

/// The store fails (Redis is down): each request gets the configured
/// `store_failure` answer, DUNNO by default or a 451, within the time
/// budget, never a reject; the failures are counted; and once Redis is
/// back, greylisting works again without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_store_gets_the_configured_answer_and_never_a_reject() {
    let mut redis = netjes_testdns::redis::RedisServer::start();
    redis.kill();
    let store = || Arc::new(RedisStore::new(&redis.url(), None, "netjes:", Duration::from_millis(200)).unwrap());
    let tweak = |failure: netjes_policy::config::StoreFailure| {
        move |c: &mut RawConfig| {
            c.greylist.enabled = true;
            c.spf.header = false;
            c.store.store_failure = failure;
        }
    };
    let dunno = start_on(store(), tweak(netjes_policy::config::StoreFailure::Dunno)).await;
    let defer = start_on(store(), tweak(netjes_policy::config::StoreFailure::Defer)).await;
    let m = msg("203.0.113.5", "x", "news@nospf.example", "bob@example.org", "S1");
    for (s, want) in [(&dunno, "DUNNO"), (&defer, "451 4.3.0 Policy state unavailable, try again later")] {
        let mut c = Client::connect(s.addr).await;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            assert_eq!(c.ask(&m).await.unwrap(), want);
            assert!(t.elapsed() < Duration::from_secs(2), "answered within the budget: {:?}", t.elapsed());
        }
        assert!(s.policy.metrics.get("netjes_policy_errors_total", &[("kind", "store")]) >= 3);
    }
    redis.restart();
    let mut c = Client::connect(dunno.addr).await;
    let mut answer = String::new();
    for _ in 0..40 {
        answer = c.ask(&m).await.unwrap();
        if answer != "DUNNO" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted"), "{answer}");
}

/// Redis killed under load: eight clients keep asking while Redis dies
/// and comes back. Every request is answered (greylisting while Redis is
/// there, DUNNO while it is not; never a reject, never a dropped
/// connection), and a triplet seen before the kill is remembered after.
#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_under_load() {
    let mut redis = netjes_testdns::redis::RedisServer::start_persistent();
    let store = Arc::new(RedisStore::new(&redis.url(), None, "netjes:", Duration::from_millis(200)).unwrap());
    let s = start_on(store, |c| {
        c.greylist.enabled = true;
        c.greylist.delay_seconds = 3600;
        c.spf.header = false;
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    let before = msg("203.0.113.5", "x", "early@nospf.example", "bob@example.org", "B1");
    assert!(c.ask(&before).await.unwrap().starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..8 {
        let (addr, stop) = (s.addr, stop.clone());
        clients.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let sender = format!("load{i}-{n}@nospf.example");
                let inst = format!("L{i}-{n}");
                let a = c.ask(&msg("203.0.113.9", "x", &sender, "bob@example.org", &inst)).await.expect("the connection stays");
                answers.push(a);
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut kinds = std::collections::BTreeMap::new();
    for t in clients {
        for a in t.await.unwrap() {
            let kind = if a.starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted") { "greylisted" } else if a == "DUNNO" { "dunno" } else { panic!("{a}") };
            *kinds.entry(kind).or_insert(0) += 1;
        }
    }
    assert!(kinds.get("dunno").copied().unwrap_or(0) > 0 && kinds.get("greylisted").copied().unwrap_or(0) > 0, "{kinds:?}");
    // After the restart: greylisting again, and the triplet from before
    // the kill is still too early (not new).
    let mut c = Client::connect(s.addr).await;
    let mut a = String::new();
    for _ in 0..40 {
        a = c.ask(&before).await.unwrap();
        if a != "DUNNO" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.starts_with("DEFER_IF_PERMIT 4.7.1 Greylisted"), "{a}");
    assert_ne!(a, "DEFER_IF_PERMIT 4.7.1 Greylisted: please try again in 3600 seconds", "seen before the kill: too early, not new");
    assert!(s.policy.metrics.get("netjes_policy_errors_total", &[("kind", "store")]) >= 1);
}
