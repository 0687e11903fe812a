//! More than one machine on one PostgreSQL (a real one, initdb per test):
//! two `netjes serve` instances behind a load balancer share logins and
//! signing domains; the milters of two MX hosts read their keys from the
//! same database and pick up a change without a restart; PostgreSQL
//! stopped while they run: serve answers 503 and the milters go on
//! signing with the keys they have; started again, all recover by
//! themselves.

mod common;

use common::{start, Client};
use netjes_testdns::postgres::PostgresServer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MASTER: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn master_file(dir: &std::path::Path, hex: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("master-{}.key", &hex[..4]));
    std::fs::write(&p, format!("{hex}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A serve instance of the cluster: the store in `pg`, the shared master
/// key in `key`.
fn member(pg: &PostgresServer, key: &std::path::Path, private_targets: bool) -> common::Server {
    start(ZONE, |r| {
        r.store.url = Some(pg.url());
        r.master_key_file = Some(key.to_path_buf());
        r.allow_private_targets = private_targets;
    })
}

fn settings(pg: &PostgresServer) -> netjes_serve::db::PgSettings {
    netjes_milter::verdicts_pg::config(&pg.url(), None, None).unwrap()
}

/// A sender whose DMARC record asks for aggregate reports, and whose SPF
/// allows the two outside clients below.
const ZONE: &str = "sender.example. TXT \"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all\"\n_dmarc.sender.example. TXT \"v=DMARC1; p=none; rua=mailto:rua@sender.example\"\n";

/// A milter on 127.0.0.1 signing with the keys in `pg`, and recording its
/// verdicts there.
fn milter(rt: &tokio::runtime::Runtime, pg: &PostgresServer, dns: SocketAddr) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let master = netjes_serve::crypto::MasterKey::from_hex(MASTER).unwrap();
    let keys = std::sync::Arc::new(netjes_serve::keystore::StoreKeys::open_postgres(settings(pg), master).unwrap());
    let resolver = netjes_dns::HickoryResolver::new(&netjes_dns::DnsConfig { nameservers: vec![dns], timeout: Duration::from_millis(500) }).unwrap();
    let settings = netjes_milter::work::Settings { authserv_id: "mx.test".into(), time_budget: Duration::from_secs(5), ..Default::default() };
    let verdicts = Some(netjes_milter::verdicts::VerdictStore::open_postgres(self::settings(pg), None).unwrap());
    let shared = netjes_milter::server::Shared::new(netjes_milter::server::Milter { settings, keys, dns: std::sync::Arc::new(resolver), verdicts, failures: None });
    rt.block_on(async {
        let l = netjes_net::Listener::bind(&netjes_net::ListenAddr::parse("inet:0@127.0.0.1").unwrap()).await.unwrap();
        let a = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(netjes_milter::server::run(l, shared, rx));
        (a, tx)
    })
}

const MSG: &str = "From: Shop <orders@shop.example>\r\nTo: bob@example.org\r\nSubject: your order\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@shop.example>\r\n\r\nThanks.\r\n";

/// The message as the milter at `addr` leaves it.
fn through(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> String {
    rt.block_on(async {
        let mut client = netjes_milter::client::Client::connect(addr, "127.0.0.1").await;
        let replies = client.message("orders@shop.example", MSG, None).await;
        netjes_milter::client::apply(MSG, &replies)
    })
}

/// Waits (at most 5 s) until the milter at `addr` signs, or not.
fn signs_soon(rt: &tokio::runtime::Runtime, addr: SocketAddr, want: bool) -> String {
    let t = Instant::now();
    loop {
        let m = through(rt, addr);
        if m.contains("DKIM-Signature") == want || t.elapsed() > Duration::from_secs(5) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_serves_and_two_milters_share_one_postgres() {
    let mut pg = PostgresServer::start_new();
    let keydir = tempfile::tempdir().unwrap();
    let key = master_file(keydir.path(), MASTER);
    let (a, b) = (member(&pg, &key, false), member(&pg, &key, false));
    assert_eq!(b.parts.store.user_count().unwrap(), 1, "the admin made through the first is the second's too");
    assert!(!a.data.join("netjes.sqlite").exists(), "nothing in the local SQLite");

    // Both milters start before the domain exists.
    let (mx1, _s1) = milter(&a.rt, &pg, a.dns.addr());
    let (mx2, _s2) = milter(&b.rt, &pg, b.dns.addr());
    assert!(!through(&a.rt, mx1).contains("DKIM-Signature"));

    // Failed logins on A hold on B: the delays are per account, in the
    // database. Seven failures (the last two each after the delay of the
    // one before) make the next attempt wait four seconds, wherever it
    // comes, so that a loaded machine cannot outrun the check.
    a.parts.store.add_user("victim", "the victim's password").unwrap();
    let mut guesser = Client::new(a.http);
    let mut guess = |pause: u64| {
        std::thread::sleep(Duration::from_millis(pause));
        let page = guesser.get("/login");
        guesser.post_form("/login", &[("csrf", &page.csrf()), ("user", "victim"), ("password", "wrong password!")]).status
    };
    for _ in 0..5 {
        assert_eq!(guess(0), 401);
    }
    assert_eq!(guess(1100), 401);
    assert_eq!(guess(2100), 401);
    let mut other = Client::new(b.http);
    let page = other.get("/login");
    let r = other.post_form("/login", &[("csrf", &page.csrf()), ("user", "victim"), ("password", "the victim's password")]);
    assert_eq!(r.status, 429, "the failures on A count on B: {}", r.body);

    // Logged in on A; the same session works on B (the load balancer
    // sends the next request there).
    let mut ca = Client::new(a.http);
    ca.login();
    let mut cb = Client::new(b.http);
    cb.cookies = ca.cookies.clone();
    let page = cb.get("/domains");
    assert_eq!(page.status, 200, "{}", page.body);
    let r = cb.post_form("/domains", &[("csrf", &page.csrf()), ("domain", "shop.example"), ("selector", "s1"), ("algorithm", "ed25519")]);
    assert_eq!(r.status, 303, "{}", r.body);
    // Made on B, seen on A, and activated there.
    let shown = ca.get("/domains/shop.example");
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("s1._domainkey.shop.example"), "{}", shown.body);
    let r = ca.post_form("/domains/shop.example/active", &[("csrf", &shown.csrf()), ("active", "true")]);
    assert_eq!(r.status, 303, "{}", r.body);

    // Both MX hosts sign with it, without a restart.
    for (rt, mx) in [(&a.rt, mx1), (&b.rt, mx2)] {
        let signed = signs_soon(rt, mx, true);
        assert!(signed.contains("DKIM-Signature") && signed.contains("d=shop.example") && signed.contains("s=s1"), "{signed}");
    }

    // Mail from outside through both MX hosts: one DMARC report with the
    // verdicts of both, not one per host.
    let inbound = "From: News <news@sender.example>\r\nTo: bob@shop.example\r\nSubject: hi\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <n@sender.example>\r\n\r\nHello.\r\n";
    for (rt, mx, ip, n) in [(&a.rt, mx1, "192.0.2.10", 3), (&b.rt, mx2, "198.51.100.7", 2)] {
        for _ in 0..n {
            rt.block_on(async {
                let mut client = netjes_milter::client::Client::connect(mx, ip).await;
                client.message("news@sender.example", inbound, None).await
            });
        }
    }
    let store = netjes_milter::verdicts::VerdictStore::open_postgres(settings(&pg), None).unwrap();
    let day = netjes_serve::store::now().div_euclid(86_400);
    let t = Instant::now();
    let mut rows = vec![];
    while t.elapsed() < Duration::from_secs(10) && rows.len() < 5 {
        rows = store.rows_between(day * 86_400, (day + 1) * 86_400).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let who = netjes_milter::report::Reporter { org_name: "mx.shop.example".into(), email: "noreply-dmarc@mx.shop.example".into() };
    let reports = netjes_milter::report::owed(&rows, day, &who, &|_| true);
    assert_eq!(reports.len(), 1, "one report for sender.example: {rows:?}");
    assert_eq!((reports[0].report.messages(), reports[0].report.records.len()), (5, 2), "both hosts' mail");

    // PostgreSQL goes away: pages that need it are 503 (the session
    // cannot be read), the health check says so, and the milters sign
    // with the keys they have.
    assert_eq!(ca.get("/readyz").status, 200);
    pg.stop();
    let r = ca.get("/readyz");
    assert_eq!(r.status, 503, "the load balancer's check: {}", r.body);
    assert_eq!(ca.get("/healthz").status, 200, "the process itself runs");
    let r = ca.get("/domains");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("database is unavailable"), "{}", r.body);
    let r = cb.get("/api/domains");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("unavailable"));
    std::thread::sleep(Duration::from_millis(1200));
    for (rt, mx) in [(&a.rt, mx1), (&b.rt, mx2)] {
        let t = Instant::now();
        let m = through(rt, mx);
        assert!(m.contains("DKIM-Signature"), "signed with the cached key: {m}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    // Back: both serves answer again by themselves, the session intact.
    pg.start();
    for (c, path) in [(&mut ca, "/domains"), (&mut cb, "/domains/shop.example")] {
        let t = Instant::now();
        let mut status = 0;
        while t.elapsed() < Duration::from_secs(10) {
            status = c.get(path).status;
            if status == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(status, 200, "{path}");
    }

    // Deactivated on B: both milters stop signing.
    let csrf = cb.get("/domains/shop.example").csrf();
    assert_eq!(cb.post_form("/domains/shop.example/active", &[("csrf", &csrf), ("active", "false")]).status, 303);
    for (rt, mx) in [(&a.rt, mx1), (&b.rt, mx2)] {
        assert!(!signs_soon(rt, mx, false).contains("DKIM-Signature"));
    }
}

/// A serve with another master key than the one the shared database's
/// keys are sealed with is refused at start, not left failing on every
/// key; so is a milter.
#[test]
fn another_master_key_is_refused_at_start() {
    let pg = PostgresServer::start_new();
    let keydir = tempfile::tempdir().unwrap();
    let (good, bad) = (master_file(keydir.path(), MASTER), master_file(keydir.path(), &"7a".repeat(32)));
    let url = pg.url();
    let a = member(&pg, &good, false);
    let k = netjes_auth::dkim::PrivateKey::generate(netjes_auth::dkim::KeyAlgorithm::Ed25519, 256).unwrap();
    a.parts.store.add_domain("shop.example").unwrap();
    a.parts.store.add_key("shop.example", "s1", &k).unwrap();
    let mut raw = netjes_serve::config::RawConfig { data_dir: keydir.path().join("b"), master_key_file: Some(bad), ..Default::default() };
    raw.store.url = Some(url);
    let cfg = netjes_serve::config::Config::validate(raw).unwrap();
    let resolver = netjes_dns::HickoryResolver::new(&netjes_dns::DnsConfig { nameservers: vec![a.dns.addr()], timeout: Duration::from_millis(500) }).unwrap();
    let Err(e) = netjes_serve::build(&cfg, std::sync::Arc::new(resolver)) else { panic!("started") };
    assert!(e.to_string().contains("master key is not the one"), "{e}");
    let wrong = netjes_serve::crypto::MasterKey::from_hex(&"7a".repeat(32)).unwrap();
    let e = netjes_serve::keystore::StoreKeys::open_postgres(settings(&pg), wrong).expect_err("refused");
    assert!(e.to_string().contains("master key is not the one"), "{e}");
}

/// The webhook outbox of two serve instances on one database: every
/// event is posted once, not once per instance (jobs.rs). And the job
/// lock itself: held by one store, refused to the other, free again when
/// dropped.
#[test]
fn two_serves_post_each_webhook_event_once() {
    use std::io::Write;
    let pg = PostgresServer::start_new();
    let keydir = tempfile::tempdir().unwrap();
    let key = master_file(keydir.path(), MASTER);
    let (a, b) = (member(&pg, &key, true), member(&pg, &key, true));
    let one = a.parts.store.job_lock("test-job").unwrap().expect("free");
    assert!(b.parts.store.job_lock("test-job").unwrap().is_none(), "held by the other instance");
    drop(one);
    assert!(b.parts.store.job_lock("test-job").unwrap().is_some(), "free again");

    // A receiver that counts what it is given, slowly (so that both
    // instances' rounds overlap).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let text = common::read_http_request(&mut conn);
            std::thread::sleep(Duration::from_millis(30));
            g.lock().unwrap().push(text.rsplit("\r\n\r\n").next().unwrap_or("").to_string());
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    a.parts.store.add_domain("shop.example").unwrap();
    a.parts.store.set_webhook("shop.example", &format!("http://127.0.0.1:{port}/hook")).unwrap();
    let db = netjes_serve::store::open_postgres(settings(&pg)).unwrap();
    for i in 0..20 {
        let body = format!("{{\"event\":\"delivered\",\"n\":{i}}}");
        assert!(netjes_serve::webhooks::queue(&db, "shop.example", &body).unwrap());
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let left: i64 = db.query_row("SELECT count(*) FROM webhook_outbox", [], |r| r.get(0)).unwrap();
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut bodies = got.lock().unwrap().clone();
    bodies.sort();
    let before = bodies.len();
    bodies.dedup();
    assert_eq!((before, bodies.len()), (20, 20), "each event once: {bodies:?}");
}

