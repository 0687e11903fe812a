//! `netjes serve` under abuse, over real HTTP and SMTP on 127.0.0.1: each
//! test is one finding of the issue "Hardened daemons", which failed on the
//! code before it (the figures before are in each test's comment).

mod common;

use common::{login_as, sender_zone, start, wait_done, Client, Smtp, ADMIN, PASSWORD, TEST_DOMAIN};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};


/// 60 parallel wrong logins from one address: 10 are tried, the rest get
/// 429 before any hash (before: 42 of 60 were tried against a limit of
/// 10, because the count was read before the hash and written after it).
#[test]
fn parallel_logins_are_counted_before_the_hash() {
    let s = start(&sender_zone(), |c| {
        c.max_login_hashes = 64;
        // 60 connections at once from one address: all of them reach the
        // login (the per-address connection cap is the slowloris test's).
        c.http_max_connections_per_client = 100;
    });
    let mut c = Client::new(s.http);
    let csrf = c.get("/login").csrf();
    let cookies = c.cookies.clone();
    let http = s.http;
    let threads: Vec<_> = (0..60)
        .map(|_| {
            let (csrf, cookies) = (csrf.clone(), cookies.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(http);
                c.cookies = cookies;
                c.post_form(
                    "/login",
                    &[("csrf", &csrf), ("user", "admin"), ("password", "wrong guess")],
                )
                .status
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let tried = codes.iter().filter(|c| **c == 401).count();
    let refused = codes.iter().filter(|c| **c == 429).count();
    assert_eq!((tried, refused), (10, 50), "{codes:?}");
    // The right password from that address waits too.
    let r = c.post_form(
        "/login",
        &[("csrf", &csrf), ("user", ADMIN), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 429);
}

/// After 5 failures an account waits before each next attempt, wherever
/// the attempts come from; the owner gets in once the delay has passed
/// (a delay, not a lock-out).
#[test]
fn an_account_under_attack_slows_down_but_its_owner_gets_in() {
    let s = start(&sender_zone(), |c| c.trusted_proxies = vec!["127.0.0.1".into()]);
    let mut c = Client::new(s.http);
    let csrf = c.get("/login").csrf();
    for i in 0..5 {
        assert_eq!(login_as(&mut c, &csrf, &format!("203.0.113.{i}"), ADMIN, "guess"), 401);
    }
    // Even the right password, from a fresh address, waits now.
    assert_eq!(login_as(&mut c, &csrf, "192.0.2.50", ADMIN, PASSWORD), 429);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(login_as(&mut c, &csrf, "192.0.2.51", ADMIN, PASSWORD), 303);
    // X-Forwarded-For from a peer that is not a trusted proxy is ignored:
    // without trusted_proxies every attempt counts against 127.0.0.1.
    let t = start(&sender_zone(), |_| {});
    let mut c = Client::new(t.http);
    let csrf = c.get("/login").csrf();
    for i in 0..10 {
        let code = login_as(&mut c, &csrf, &format!("203.0.113.{i}"), &format!("u{i}"), "x");
        assert_eq!(code, 401);
    }
    assert_eq!(login_as(&mut c, &csrf, "192.0.2.99", "u99", "x"), 429);
}

/// A visitor token the server did not sign is refused, and replaced
/// (before: any 43 characters were accepted as cookie and form token, so
/// a cross-site form needed no page visit).
#[test]
fn a_forged_visitor_token_is_refused() {
    let s = start(&sender_zone(), |_| {});
    let mut c = Client::new(s.http);
    let forged = "A".repeat(43);
    c.cookies.insert("netjes_csrf".into(), forged.clone());
    let r = c.post_form("/tests", &[("csrf", &forged)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_ne!(c.cookies.get("netjes_csrf"), Some(&forged), "a new token is set");
    // The server's own token works.
    let page = c.get("/");
    assert_eq!(c.post_form("/tests", &[("csrf", &page.csrf())]).status, 303);
}

/// A raw HTTP connection from `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        sock.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// GET /healthz from `from`; the status line.
fn health_from(from: &str, to: SocketAddr) -> String {
    let mut s = connect_from(from, to);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or("").to_string()
}

/// Whether the server has closed (or answered and ended) the connection
/// within `wait`; a read that times out means it is still open.
fn is_closed(s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 512];
    let mut r = s;
    match r.read(&mut b) {
        // End of stream, or an answer the server ends the connection with.
        Ok(_n) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Slowloris: half-sent requests. Before, 400 stayed open for more than
/// 41 s and 1,040 made the UI and the inbox unreachable, and SIGTERM did
/// not finish. Now one address holds at most its share, each is cut at
/// the header timeout, other clients are answered all along, and a stop
/// ends the server within its deadline.
#[test]
fn slowloris_is_cut_off_and_others_are_served() {
    let s = start(&sender_zone(), |c| {
        c.http_max_connections_per_client = 8;
        c.http_header_seconds = 1;
    });
    let slow: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut t = connect_from("127.0.0.2", s.http);
            let _ = t.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = slow
        .iter()
        .filter(|t| is_closed(t, Duration::from_millis(30)))
        .count();
    assert_eq!(refused, 32, "one address holds 8 connections");
    // Another client is served at once.
    let started = Instant::now();
    assert_eq!(health_from("127.0.0.3", s.http), "HTTP/1.1 200 OK");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The 8 held are cut at the header timeout.
    std::thread::sleep(Duration::from_millis(1500));
    let cut = slow
        .iter()
        .filter(|t| is_closed(t, Duration::from_millis(30)))
        .count();
    assert_eq!(cut, 40);
    assert_eq!(health_from("127.0.0.2", s.http), "HTTP/1.1 200 OK");
    // A stop ends the server even with connections half open.
    let _hold: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut t = connect_from("127.0.0.4", s.http);
            let _ = t.write_all(b"GET / HTTP/1.1\r\n");
            t
        })
        .collect();
    s.stop();
    let started = Instant::now();
    while TcpStream::connect(s.http).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(8), "the server did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One client made 2,010 tests in 3 s before; now tests_per_client_per_hour.
/// X-Forwarded-For from an untrusted peer changes nothing; a logged-in
/// user is not limited.
#[test]
fn anonymous_tests_are_limited_per_address() {
    let s = start(&sender_zone(), |c| c.tests_per_client_per_hour = 3);
    let mut c = Client::new(s.http);
    for _ in 0..3 {
        assert_eq!(c.post_json("/api/tests", &serde_json::json!({})).status, 200);
    }
    assert_eq!(c.post_json("/api/tests", &serde_json::json!({})).status, 429);
    c.headers = vec![("X-Forwarded-For".into(), "192.0.2.1".into())];
    assert_eq!(c.post_json("/api/tests", &serde_json::json!({})).status, 429);
    let mut admin = Client::new(s.http);
    admin.login();
    let page = admin.get("/");
    assert_eq!(admin.post_form("/tests", &[("csrf", &page.csrf())]).status, 303);
}

/// The inbox's storage is capped: the oldest results make room, and when
/// nothing can, new mail gets 452 (before: 5 × 9 MB stored in 1.9 s,
/// kept for 7 days).
#[test]
fn the_inbox_storage_is_capped() {
    let s = start(&sender_zone(), |c| c.inbox_max_mib = 1);
    let mut c = Client::new(s.http);
    let body = "x".repeat(76);
    let big: String = (0..8000).map(|_| format!("{body}\r\n")).collect(); // ~600 KB
    let msg = format!("From: a@sender.example\r\nTo: t\r\nSubject: big\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <b@sender.example>\r\n\r\n{big}");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let t = c.post_json("/api/tests", &serde_json::json!({})).json();
        let id = t["id"].as_str().unwrap().to_string();
        let r = Smtp::connect(s.smtp).mail("a@sender.example", &format!("{id}@{TEST_DOMAIN}"), &msg);
        assert!(r.starts_with("250"), "{r}");
        wait_done(&mut c, &id);
        ids.push(id);
    }
    // The second made room by deleting the first.
    assert_eq!(c.get(&format!("/api/tests/{}", ids[0])).status, 404);
    assert_eq!(c.get(&format!("/api/tests/{}", ids[1])).status, 200);
    // Over the cap even with everything else gone: 452.
    let huge: String = (0..16000).map(|_| format!("{body}\r\n")).collect();
    let t = c.post_json("/api/tests", &serde_json::json!({})).json();
    let id = t["id"].as_str().unwrap();
    let r = Smtp::connect(s.smtp).mail(
        "a@sender.example",
        &format!("{id}@{TEST_DOMAIN}"),
        &format!("From: a@sender.example\r\nSubject: huge\r\n\r\n{huge}"),
    );
    assert!(r.starts_with("452 4.3.1"), "{r}");
}

/// Behind a TLS proxy (secure_cookies): cookies are Secure and answers
/// carry HSTS.
#[test]
fn secure_cookies_and_hsts() {
    let s = start(&sender_zone(), |c| c.secure_cookies = true);
    let mut c = Client::new(s.http);
    let r = c.get("/");
    assert!(r.header("strict-transport-security").is_some_and(|h| h.contains("max-age=")));
    let cookie = r.headers["set-cookie"].join("\n");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let plain = start(&sender_zone(), |_| {});
    let r = Client::new(plain.http).get("/");
    assert!(r.header("strict-transport-security").is_none());
}

/// The public domain check never connects to an internal address: an
/// mta-sts name on 127.0.0.1 is reported as not checked (before, the
/// anonymous check opened TLS there and told the visitor what answered).
#[test]
fn the_public_check_does_not_reach_internal_hosts() {
    let z = "victim.example. MX 10 mail.victim.example.\nmail.victim.example. A 192.0.2.25\n_mta-sts.victim.example. TXT \"v=STSv1; id=20261130\"\nmta-sts.victim.example. A 127.0.0.1\n";
    let s = start(z, |_| {});
    let mut c = Client::new(s.http);
    let r = c.post_json("/api/check", &serde_json::json!({"domain": "victim.example"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body;
    assert!(
        text.contains("not checked: mta-sts.victim.example resolves to 127.0.0.1, which is not a public address"),
        "{text}"
    );
}
