//! `netjes serve` over real HTTP and SMTP on 127.0.0.1, with the real
//! test DNS server: the login and CSRF rules, the test inbox and its
//! open-relay battery, the limits, the signing domains, and the milter
//! signing with a domain activated in the UI.

mod common;

use common::{start, wait_done, Client, Smtp, TEST_DOMAIN};
use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};
use std::time::Duration;

const MESSAGE: &str = "From: Alice <alice@sender.example>\r\nTo: test\r\nSubject: Our November newsletter\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, this is the newsletter.\r\n.leading dot stays one dot\r\n";

fn zone(extra: &str) -> String {
    format!("sender.example. TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc.sender.example. TXT \"v=DMARC1; p=reject\"\n{extra}")
}

#[test]
fn admin_pages_need_a_login_and_every_form_a_csrf_token() {
    let s = start(&zone(""), |_| {});
    let mut c = Client::new(s.http);

    let home = c.get("/");
    assert_eq!(home.status, 200);
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(home.header(h), Some(v), "{h}");
    }
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && csp.contains("img-src 'self' data:"),
        "{csp}"
    );
    let anon_csrf = home.csrf();
    assert_eq!(c.cookies.get("netjes_csrf"), Some(&anon_csrf));

    // Admin pages send to the login; admin APIs answer 401.
    for path in ["/domains", "/domains/x.example"] {
        let r = c.get(path);
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/login")),
            "{path}"
        );
    }
    assert_eq!(c.get("/api/domains").status, 401);
    assert_eq!(
        c.post_json(
            "/api/domains",
            &serde_json::json!({"domain": "x.example", "selector": "s1"})
        )
        .status,
        401
    );
    assert_eq!(
        c.post_form(
            "/domains",
            &[
                ("csrf", &anon_csrf),
                ("domain", "x.example"),
                ("selector", "s1")
            ]
        )
        .status,
        303,
        "to the login"
    );

    // Forms without the token, or with another visitor's, are refused.
    assert_eq!(c.post_form("/tests", &[]).status, 403);
    assert_eq!(c.post_form("/tests", &[("csrf", "forged")]).status, 403);
    let mut other = Client::new(s.http);
    other.get("/");
    assert_eq!(
        other.post_form("/tests", &[("csrf", &anon_csrf)]).status,
        403,
        "a token from another visitor's cookie"
    );
    let r = c.post_form("/tests", &[("csrf", &anon_csrf)]);
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/tests/"));

    // A wrong password, then the right one.
    let page = c.get("/login");
    let r = c.post_form(
        "/login",
        &[
            ("csrf", &page.csrf()),
            ("user", "admin"),
            ("password", "wrong password"),
            ("next", "/domains"),
        ],
    );
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong user or password"));
    let r = c.post_form(
        "/login",
        &[
            ("csrf", &page.csrf()),
            ("user", "admin"),
            ("password", common::PASSWORD),
            ("next", "//evil.example/"),
        ],
    );
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/domains")),
        "no open redirect"
    );
    let session = c.cookies.get("netjes_session").cloned().unwrap();
    assert!(r.headers["set-cookie"]
        .iter()
        .any(|h| h.contains("HttpOnly") && h.contains("SameSite=Lax")));

    let domains = c.get("/domains");
    assert_eq!(domains.status, 200);
    let token = domains.csrf();
    assert_ne!(token, anon_csrf, "a session has its own token");
    assert_eq!(
        c.post_form(
            "/domains",
            &[
                ("csrf", &anon_csrf),
                ("domain", "x.example"),
                ("selector", "s1"),
                ("algorithm", "ed25519")
            ]
        )
        .status,
        403
    );
    let r = c.post_form(
        "/domains",
        &[
            ("csrf", &token),
            ("domain", "x.example"),
            ("selector", "s1"),
            ("algorithm", "ed25519"),
        ],
    );
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/domains/x.example")),
        "{}",
        r.body
    );

    // The API with the session cookie needs the token in a header; with an
    // API token it needs none.
    let body = serde_json::json!({"domain": "y.example", "selector": "s1", "algorithm": "ed25519"});
    assert_eq!(c.post_json("/api/domains", &body).status, 403);
    c.headers.push(("X-CSRF-Token".into(), token.clone()));
    assert_eq!(c.post_json("/api/domains", &body).status, 201);
    let api_token = s.parts.store.add_api_token("admin", "deploy").unwrap();
    let mut api = Client::new(s.http);
    api.headers
        .push(("Authorization".into(), format!("Bearer {api_token}")));
    let r = api.post_json(
        "/api/domains",
        &serde_json::json!({"domain": "z.example", "selector": "s1", "algorithm": "both"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let names: Vec<String> = r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "s1-rsa._domainkey.z.example",
            "s1-ed25519._domainkey.z.example"
        ]
    );
    let list = api.get("/api/domains").json();
    assert_eq!(list.as_array().unwrap().len(), 3);

    // Routes: direct until set; a relay shown without its password; bad
    // input refused with every reason; an unknown domain is 404.
    assert_eq!(api.get("/api/domains/z.example/route").json()["kind"], "direct");
    let relay = serde_json::json!({"kind": "relay", "host": "smtp.customer.example", "port": 587, "tls": "starttls", "user": "app", "password": "s3cret-value"});
    let r = api.put_json("/api/domains/z.example/route", &relay);
    assert_eq!(r.status, 200, "{}", r.body);
    let shown = api.get("/api/domains/z.example/route");
    assert_eq!((shown.json()["host"].as_str(), shown.json()["has_password"].as_bool()), (Some("smtp.customer.example"), Some(true)));
    assert!(!shown.body.contains("s3cret-value"), "the password is never shown: {}", shown.body);
    let bad = api.put_json("/api/domains/z.example/route", &serde_json::json!({"kind": "relay", "host": "no such host", "port": 0, "tls": "sometimes"}));
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("host") && bad.body.contains("port") && bad.body.contains("tls"), "{}", bad.body);
    assert_eq!(api.put_json("/api/domains/nothere.example/route", &serde_json::json!({"kind": "direct"})).status, 404);
    assert_eq!(c.put_json("/api/domains/z.example/route", &serde_json::json!({"kind": "direct"})).status, 200, "the session with its CSRF header");
    // No private key leaves the store.
    assert!(!list.to_string().contains("PRIVATE") && !list.to_string().contains("sealed"));
    let mut bad = Client::new(s.http);
    bad.headers
        .push(("Authorization".into(), "Bearer nj_guessed".into()));
    assert_eq!(bad.get("/api/domains").status, 401);

    // Logging out ends the session on the server, not only in the browser.
    let page = c.get("/domains");
    assert_eq!(
        c.post_form("/logout", &[("csrf", &page.csrf())]).status,
        303
    );
    c.cookies.insert("netjes_session".into(), session);
    assert_eq!(c.get("/domains").status, 303);
}

/// At most 10 attempts per address in 15 minutes, whichever accounts they
/// try; then even the right password waits (tests/abuse.rs has the
/// parallel and per-account cases).
#[test]
fn failed_logins_are_limited_per_address() {
    let s = start(&zone(""), |_| {});
    let mut c = Client::new(s.http);
    let csrf = c.get("/login").csrf();
    for i in 0..10 {
        let user = format!("user{i}");
        assert_eq!(
            c.post_form(
                "/login",
                &[("csrf", &csrf), ("user", &user), ("password", "guess guess")]
            )
            .status,
            401
        );
    }
    assert_eq!(
        c.post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("user", "admin"),
                ("password", common::PASSWORD)
            ]
        )
        .status,
        429
    );
}

#[test]
fn the_inbox_takes_mail_only_for_open_tests_and_the_report_appears() {
    let s = start(&zone(""), |r| r.max_message_bytes = 64 * 1024);
    let mut c = Client::new(s.http);
    let t = c.post_raw("/api/tests", "application/json", b"").json();
    let (id, address) = (
        t["id"].as_str().unwrap().to_string(),
        t["address"].as_str().unwrap().to_string(),
    );
    assert_eq!(address, format!("{id}@{TEST_DOMAIN}"));
    assert_eq!(
        c.get(&format!("/api/tests/{id}")).json()["status"],
        "waiting"
    );

    // The open-relay battery: nothing but an open test address is taken.
    let mut m = Smtp::connect(s.smtp);
    assert!(
        m.greeting.starts_with("220 mx.test.example"),
        "{}",
        m.greeting
    );
    let ehlo = m.cmd("EHLO client.example");
    assert!(
        ehlo.contains("STARTTLS") && ehlo.contains("SIZE 65536"),
        "{ehlo}"
    );
    assert!(
        m.cmd("RCPT TO:<x@y>").starts_with("503"),
        "RCPT before MAIL"
    );
    assert!(m.cmd("MAIL FROM:<alice@sender.example>").starts_with("250"));
    for rcpt in [
        "victim@other.example".to_string(),
        format!("victim%other.example@{TEST_DOMAIN}"),
        format!("@{TEST_DOMAIN}:victim@other.example"),
        format!("@relay.example,@{TEST_DOMAIN}:victim@other.example"),
        format!("other.example!victim@{TEST_DOMAIN}"),
        format!("\"victim@other.example\"@{TEST_DOMAIN}"),
        format!("{id}@other.example"),
        format!("{id}@{TEST_DOMAIN}@other.example"),
        "postmaster".to_string(),
    ] {
        let r = m.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("550 5.7.1"), "{rcpt}: {r}");
    }
    for rcpt in [
        format!("nosuchtest@{TEST_DOMAIN}"),
        format!("a.b@{TEST_DOMAIN}"),
    ] {
        let r = m.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("550 5.1.1"), "{rcpt}: {r}");
    }
    assert!(
        m.cmd("DATA").starts_with("503"),
        "no valid recipient, no data"
    );
    assert!(m.cmd("VRFY admin").starts_with("252"));
    assert!(m.cmd("RSET").starts_with("250"));

    // SIZE= over the limit is refused before the data; data over it after.
    assert!(m
        .cmd("MAIL FROM:<alice@sender.example> SIZE=10000000")
        .starts_with("552"));
    assert!(m.cmd("MAIL FROM:<alice@sender.example>").starts_with("250"));
    assert!(m.cmd(&format!("RCPT TO:<{address}>")).starts_with("250"));
    assert!(m.cmd("DATA").starts_with("354"));
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..70 {
        m.raw(line.as_bytes()).unwrap();
    }
    assert!(m.cmd(".").starts_with("552 5.3.4"));
    assert_eq!(
        c.get(&format!("/api/tests/{id}")).json()["status"],
        "waiting",
        "the oversized message was not taken"
    );

    // The real message, in the same session.
    let r = m.mail(
        "alice@sender.example",
        &address
            .to_uppercase()
            .replace(TEST_DOMAIN.to_uppercase().as_str(), TEST_DOMAIN),
        MESSAGE,
    );
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert!(m.cmd("QUIT").starts_with("221"));

    let t = wait_done(&mut c, &id);
    assert_eq!(t["facts"]["ip"], "127.0.0.1");
    assert_eq!(t["facts"]["helo"], "client.example");
    assert_eq!(t["facts"]["mail_from"], "alice@sender.example");
    assert!(t["facts"]["tls_version"].is_null());
    let report = &t["report"];
    assert_eq!(report["subject"], "Our November newsletter");
    let score = report["score"].as_f64().unwrap();
    assert!((0.0..=10.0).contains(&score));
    // SPF passes for 127.0.0.1 and is aligned: not capped.
    assert!(
        report["auth"]["authentication_results"]
            .as_str()
            .unwrap()
            .contains("spf=pass"),
        "{}",
        report["auth"]
    );
    assert_eq!(report["capped"], false);
    // Our hop is first in the Received chain, without TLS.
    let hops = report["hops"].as_array().unwrap();
    assert_eq!(hops.last().unwrap()["by"], "mx.test.example");
    // The raw message keeps its lines, with the dot unstuffed.
    let raw = s.parts.store.test(&id).unwrap().unwrap().raw.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.starts_with("Received: from client.example ([127.0.0.1])"),
        "{raw}"
    );
    assert!(raw.contains("\r\n.leading dot stays one dot\r\n"));

    // The page shows the mark and the message.
    let page = c.get(&format!("/tests/{id}"));
    assert!(
        page.body.contains(&format!("{score:.1}")),
        "the mark on the page"
    );
    assert!(page.body.contains("The SMTP session") && page.body.contains("iframe sandbox"));
    assert_eq!(report["envelope"]["source"], "the SMTP session");

    // The test took its message: the address is closed now.
    let mut m = Smtp::connect(s.smtp);
    m.cmd("EHLO client.example");
    m.cmd("MAIL FROM:<alice@sender.example>");
    assert!(m
        .cmd(&format!("RCPT TO:<{address}>"))
        .starts_with("550 5.1.1"));
    assert_eq!(c.get("/api/tests/nosuchid").status, 404);
}

#[test]
fn starttls_is_offered_and_the_session_is_recorded() {
    let s = start(&zone(""), |_| {});
    let mut c = Client::new(s.http);
    let t = c.post_raw("/api/tests", "application/json", b"").json();
    let id = t["id"].as_str().unwrap().to_string();
    let out = std::process::Command::new("swaks")
        .args([
            "--server",
            &s.smtp.to_string(),
            "--to",
            t["address"].as_str().unwrap(),
            "--from",
            "alice@sender.example",
            "--helo",
            "client.example",
            "--tls",
            "--data",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            use std::io::Write;
            p.stdin.take().unwrap().write_all(MESSAGE.as_bytes())?;
            p.wait_with_output()
        })
        .expect("swaks (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_done(&mut c, &id);
    assert_eq!(t["facts"]["tls_version"], "TLSv1.3");
    assert!(t["facts"]["tls_cipher"]
        .as_str()
        .unwrap()
        .starts_with("TLS13_"));
    let hops = t["report"]["hops"].as_array().unwrap();
    assert!(
        hops.last().unwrap()["tls"]
            .as_str()
            .unwrap()
            .contains("TLS13_AES"),
        "{hops:?}"
    );

    // Commands sent after STARTTLS before the handshake are not taken as
    // if they came over TLS (CVE-2011-0411).
    let mut m = Smtp::connect(s.smtp);
    m.cmd("EHLO client.example");
    m.raw(b"STARTTLS\r\nRSET\r\n").unwrap();
    let r = m.reply();
    assert!(r.starts_with("554 5.5.1"), "{r}");
    assert_eq!(m.reply(), "", "and the session ends");
}

#[test]
fn slow_greedy_and_oversized_clients_are_cut_off_without_harming_others() {
    let s = start(&zone(""), |r| {
        r.smtp_idle_seconds = 1;
        r.smtp_session_seconds = 3;
        r.max_connections_per_client = 3;
    });
    // A client that says nothing is cut off after the idle time.
    let mut idle = Smtp::connect(s.smtp);
    // Two more connections from the same address; a fourth is refused.
    let mut second = Smtp::connect(s.smtp);
    let third = Smtp::connect(s.smtp);
    let fourth = Smtp::connect(s.smtp);
    assert!(
        fourth.greeting.starts_with("421 4.7.0"),
        "{}",
        fourth.greeting
    );
    // The others work meanwhile.
    assert!(second.cmd("EHLO client.example").starts_with("250"));
    let r = idle.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    // Clients that hang up free their slots.
    drop((second, third));
    std::thread::sleep(Duration::from_millis(200));
    // A client that keeps talking, slowly, meets the session deadline.
    let mut chatty = Smtp::connect(s.smtp);
    assert!(chatty.greeting.starts_with("220"), "{}", chatty.greeting);
    let mut last = String::new();
    for _ in 0..8 {
        if chatty.send("NOOP").is_err() {
            break;
        }
        last = chatty.reply();
        if last.starts_with("421") || last.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(last.starts_with("421 4.4.2") || last.is_empty(), "{last}");
    // A line without end is cut at the limit.
    drop(chatty);
    std::thread::sleep(Duration::from_millis(200));
    let mut long = Smtp::connect(s.smtp);
    assert!(long.greeting.starts_with("220"), "{}", long.greeting);
    long.raw(&vec![b'A'; 10_000]).unwrap();
    let r = long.reply();
    assert!(r.starts_with("500 5.5.2"), "{r:?}");
    // And the inbox still answers.
    let fresh = Smtp::connect(s.smtp);
    assert!(fresh.greeting.starts_with("220"));
}

#[test]
fn check_and_analyze_answer_the_json_of_the_cli() {
    let s = start(
        &zone("sender.example. MX 10 mx.sender.example.\nmx.sender.example. A 127.0.0.1\n"),
        |_| {},
    );
    let mut c = Client::new(s.http);
    let r = c.post_json(
        "/api/check",
        &serde_json::json!({"domain": "sender.example"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["domain"], "sender.example");
    assert!(j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"].as_str().unwrap().starts_with("spf.")));
    assert_eq!(
        c.post_json("/api/check", &serde_json::json!({"domain": "not a domain"}))
            .status,
        400
    );
    let page = c.get("/check?domain=sender.example");
    assert!(page.body.contains("check-report") && page.body.contains("sender.example"));

    let a = c.post_raw("/api/analyze", "message/rfc822", MESSAGE.as_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["subject"], "Our November newsletter");
    let a = c.post_json(
        "/api/analyze",
        &serde_json::json!({"message": MESSAGE.replace("\r\n", "\n")}),
    );
    assert_eq!(a.json()["from"].as_str().unwrap(), "alice@sender.example");
    let bad = c.post_raw("/api/analyze", "message/rfc822", b"\x00\x01 not a message");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().is_some());
}

#[test]
fn public_tests_can_be_turned_off() {
    let s = start(&zone(""), |r| r.public_tests = false);
    let mut c = Client::new(s.http);
    assert_eq!(c.get("/").status, 303);
    assert_eq!(
        c.post_raw("/api/tests", "application/json", b"").status,
        401
    );
    assert_eq!(
        c.post_json(
            "/api/check",
            &serde_json::json!({"domain": "sender.example"})
        )
        .status,
        401
    );
    c.login();
    assert_eq!(c.get("/").status, 200);
}

#[test]
fn signing_domains_are_checked_rotated_and_sign_through_the_milter_without_a_restart() {
    let imported = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).unwrap();
    let z = zone(&format!("s1._domainkey.shop.example. TXT {}\nshop.example. TXT \"v=spf1 -all\"\n_dmarc.shop.example. TXT \"v=DMARC1; p=reject\"\n", netjes_dns::master::txt_strings(&imported.dns_value())));
    let s = start(&z, |_| {});
    let mut c = Client::new(s.http);
    c.login();

    // Import the published key (an encrypted PKCS#8 PEM), and generate one that is not published.
    let encrypted = {
        use pkcs8::der::Decode;
        let info = pkcs8::PrivateKeyInfo::from_der(imported.pkcs8_der()).unwrap();
        info.encrypt(rand_core_os(), b"import password")
            .unwrap()
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    };
    let csrf = c.get("/domains").csrf();
    let r = c.post_form(
        "/domains",
        &[
            ("csrf", &csrf),
            ("domain", "shop.example"),
            ("selector", "s1"),
            ("pem", &encrypted),
            ("password", "wrong password"),
        ],
    );
    assert_eq!(r.status, 400);
    let r = c.post_form(
        "/domains",
        &[
            ("csrf", &csrf),
            ("domain", "shop.example"),
            ("selector", "s1"),
            ("pem", &encrypted),
            ("password", "import password"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = c.post_form(
        "/domains",
        &[
            ("csrf", &csrf),
            ("domain", "new.example"),
            ("selector", "s1"),
            ("algorithm", "rsa"),
        ],
    );
    assert_eq!(r.status, 303);
    let r = c.post_form(
        "/domains",
        &[
            ("csrf", &csrf),
            ("domain", "shop.example"),
            ("selector", "s2"),
        ],
    );
    assert_eq!(r.status, 400, "a domain is added once");

    // The record to publish is derived from the private key.
    let page = c.get("/domains/shop.example");
    assert!(page
        .body
        .contains(&format!("v=DKIM1; k=rsa; p={}", imported.public_key_b64())));
    // The zone-file line in strings of at most 255 octets, which joined give the value.
    let zone_line = s.parts.store.domain("shop.example").unwrap().unwrap().keys[0].zone_line();
    let strings: Vec<&str> = zone_line.split('"').skip(1).step_by(2).collect();
    assert!(strings.len() > 1 && strings.iter().all(|x| x.len() <= 255));
    assert_eq!(
        strings.concat(),
        format!("v=DKIM1; k=rsa; p={}", imported.public_key_b64())
    );
    // Check DNS: key OK for the published one, not published for the other.
    let csrf = page.csrf();
    let r = c.post_form("/domains/shop.example/check", &[("csrf", &csrf)]);
    assert!(r.body.contains("key OK"), "{}", r.body);
    let r = c.post_form("/domains/new.example/check", &[("csrf", &csrf)]);
    assert!(
        r.body
            .contains("no key is published at s1._domainkey.new.example"),
        "{}",
        r.body
    );

    // Active but unpublished: the list warns.
    assert_eq!(
        c.post_form(
            "/domains/new.example/active",
            &[("csrf", &csrf), ("active", "true")]
        )
        .status,
        303
    );
    let list = c.get("/domains");
    assert!(
        list.body
            .contains("active, but: no key is published at s1._domainkey.new.example"),
        "{}",
        list.body
    );

    // The milter, started before the domain is active, over the same store.
    let master = netjes_serve::crypto::MasterKey::load(None, &s.data, false).unwrap();
    let keys =
        std::sync::Arc::new(netjes_serve::keystore::StoreKeys::open(&s.data, master).unwrap());
    let resolver = netjes_dns::HickoryResolver::new(&netjes_dns::DnsConfig {
        nameservers: vec![s.dns.addr()],
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let settings = netjes_milter::work::Settings {
        authserv_id: "mx.test".into(),
        time_budget: Duration::from_secs(5),
        ..Default::default()
    };
    let shared = netjes_milter::server::Shared::new(netjes_milter::server::Milter {
        settings,
        keys,
        dns: std::sync::Arc::new(resolver),
        verdicts: None,
        failures: None,
    });
    let (milter_addr, _stop) = s.rt.block_on(async {
        let l =
            netjes_net::Listener::bind(&netjes_net::ListenAddr::parse("inet:0@127.0.0.1").unwrap())
                .await
                .unwrap();
        let a = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(netjes_milter::server::run(l, shared, rx));
        (a, tx)
    });
    let msg = "From: Shop <orders@shop.example>\r\nTo: bob@example.org\r\nSubject: your order\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@shop.example>\r\n\r\nThanks for your order.\r\n";
    let sign = |m: &str| {
        s.rt.block_on(async {
            let mut client = netjes_milter::client::Client::connect(milter_addr, "127.0.0.1").await;
            let replies = client.message("orders@shop.example", m, None).await;
            netjes_milter::client::apply(m, &replies)
        })
    };
    assert!(
        !sign(msg).contains("DKIM-Signature"),
        "not active yet: not signed"
    );
    let csrf = c.get("/domains/shop.example").csrf();
    assert_eq!(
        c.post_form(
            "/domains/shop.example/active",
            &[("csrf", &csrf), ("active", "true")]
        )
        .status,
        303
    );
    let signed = sign(msg);
    assert!(
        signed.contains("DKIM-Signature") && signed.contains("s=s1"),
        "{signed}"
    );
    let verdict = s.rt.block_on(async {
        let r = netjes_dns::HickoryResolver::new(&netjes_dns::DnsConfig {
            nameservers: vec![s.dns.addr()],
            timeout: Duration::from_millis(500),
        })
        .unwrap();
        let parsed = netjes_auth::message::parse(signed.as_bytes()).unwrap();
        netjes_auth::dkim::verify_dkim(&r, &parsed).await
    });
    assert_eq!(
        verdict[0].result,
        netjes_auth::dkim::DkimResult::Pass,
        "{verdict:?}"
    );

    // An application's login writes only in its domains' names: the
    // milter checks the header From against the logins set in the UI.
    let r = c.post_form("/domains/shop.example/logins", &[("csrf", &csrf), ("logins", "app")]);
    assert!(r.body.contains("Applications that may send: app."), "{}", r.body);
    let as_login = |m: &str, login: &str| {
        s.rt.block_on(async {
            let mut client = netjes_milter::client::Client::connect(milter_addr, "127.0.0.1").await;
            client.message("orders@shop.example", m, Some(login)).await
        })
    };
    let refused = |replies: &[netjes_milter::protocol::Response]| {
        replies.iter().find_map(|r| match r {
            netjes_milter::protocol::Response::ReplyCode(c) => Some(c.clone()),
            _ => None,
        })
    };
    assert_eq!(refused(&as_login(msg, "app")), None, "its own domain");
    assert!(netjes_milter::client::apply(msg, &as_login(msg, "app")).contains("DKIM-Signature"));
    let spoof = msg.replace("From: Shop <orders@shop.example>", "From: CEO <ceo@bank.example>");
    assert_eq!(refused(&as_login(&spoof, "app")).as_deref(), Some("550 5.7.1 From: bank.example is not a domain app sends for"));
    let two = msg.replace("From: Shop <orders@shop.example>", "From: orders@shop.example, ceo@bank.example");
    assert!(refused(&as_login(&two, "app")).is_some(), "every author domain is checked");
    assert_eq!(refused(&as_login(&spoof, "alice")), None, "a login named nowhere is not restricted");

    // Rotation: a pending key under a new selector; switching to it is
    // refused while DNS does not show it.
    let r = c.post_form(
        "/domains/shop.example/rotate",
        &[("csrf", &csrf), ("selector", "s2")],
    );
    assert_eq!(r.status, 303);
    let d = c.get("/api/domains/shop.example").json();
    let keys = d["domain"]["keys"].as_array().unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (
                k["selector"].as_str().unwrap(),
                k["state"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("s1", "active"), ("s2", "pending")]
    );
    assert_eq!(
        d["records"].as_array().unwrap().len(),
        2,
        "both records show"
    );
    let s2 = keys[1]["id"].as_i64().unwrap();
    let r = c.post_form(&format!("/keys/{s2}/switch"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 409);
    assert!(r.body.contains("Not switched"));
    assert!(sign(msg).contains("s=s1"));
    assert_eq!(
        c.post_form(
            &format!("/keys/{s2}/switch"),
            &[("csrf", &csrf), ("force", "true")]
        )
        .status,
        303
    );
    assert!(sign(msg).contains("s=s2"), "the milter follows the switch");

    // Deactivated: the milter stops signing for it.
    assert_eq!(
        c.post_form(
            "/domains/shop.example/active",
            &[("csrf", &csrf), ("active", "false")]
        )
        .status,
        303
    );
    assert!(!sign(msg).contains("DKIM-Signature"));
}

/// The OS random source for pkcs8's encryption.
fn rand_core_os() -> impl rand_core::CryptoRngCore {
    rand_core::OsRng
}

#[test]
fn users_keys_and_results_survive_a_restart() {
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let (id, session) = {
        let s = common::start_in(
            tempfile::tempdir().unwrap(),
            data.clone(),
            &zone(""),
            |_| {},
        );
        let mut c = Client::new(s.http);
        c.login();
        let csrf = c.get("/domains").csrf();
        assert_eq!(
            c.post_form(
                "/domains",
                &[
                    ("csrf", &csrf),
                    ("domain", "kept.example"),
                    ("selector", "s1"),
                    ("algorithm", "ed25519")
                ]
            )
            .status,
            303
        );
        // A logged-in browser's API call needs the CSRF header; an
        // anonymous one (the public test API) does not.
        assert_eq!(
            c.post_raw("/api/tests", "application/json", b"").status,
            403
        );
        let t = Client::new(s.http)
            .post_raw("/api/tests", "application/json", b"")
            .json();
        let id = t["id"].as_str().unwrap().to_string();
        let mut m = Smtp::connect(s.smtp);
        assert!(m
            .mail(
                "alice@sender.example",
                t["address"].as_str().unwrap(),
                MESSAGE
            )
            .starts_with("250"));
        wait_done(&mut c, &id);
        (id, c.cookies.get("netjes_session").cloned().unwrap())
    };
    let s = common::start_in(tempfile::tempdir().unwrap(), data, &zone(""), |_| {});
    let mut c = Client::new(s.http);
    c.cookies.insert("netjes_session".into(), session);
    assert_eq!(c.get("/domains").status, 200, "the session is still valid");
    let domains = c.get("/api/domains").json();
    assert_eq!(domains[0]["domain"], "kept.example");
    assert_eq!(c.get(&format!("/api/tests/{id}")).json()["status"], "done");
    let key_id = domains[0]["keys"][0]["id"].as_i64().unwrap();
    assert_eq!(
        s.parts.store.private_key(key_id).unwrap().algorithm,
        KeyAlgorithm::Ed25519,
        "the key opens after the restart"
    );
}

/// A check the user starts asks the name servers afresh: a record fixed a
/// moment ago shows at once, and a "not published" answer is not kept for
/// its negative TTL (before: the shared cache kept both for their TTL).
/// What users type (a URL, an address, a trailing dot) is read for its
/// domain, and the report says so.
#[test]
fn a_recheck_sees_a_changed_record_at_once_and_input_is_read_as_typed() {
    let before = "fresh.example. MX 10 mx.fresh.example.\nmx.fresh.example. A 192.0.2.30\nfresh.example. TXT \"v=spf1 mx -all\"\n";
    let s = start(before, |_| {});
    let mut c = Client::new(s.http);
    let check = |c: &mut Client, what: &str| {
        let r = c.post_json("/api/check", &serde_json::json!({ "domain": what }));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let has = |r: &serde_json::Value, id: &str| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == id)
    };
    let r = check(&mut c, "fresh.example");
    assert!(has(&r, "dmarc.missing"));
    s.dns.set_zone(
        netjes_dns::zone::Zone::parse(&format!(
            "{before}_dmarc.fresh.example. TXT \"v=DMARC1; p=reject; rua=mailto:d@fresh.example\"\n"
        ))
        .unwrap(),
    );
    let r = check(&mut c, "https://fresh.example/contact");
    assert!(!has(&r, "dmarc.missing"), "the new record is seen at once: {r}");
    assert!(r["input_note"].as_str().unwrap().contains("the host of the URL"));
    let r = check(&mut c, "alice@Fresh.Example.");
    assert_eq!(r["domain"], "fresh.example");
    assert!(r["input_note"].as_str().unwrap().contains("address"));
    let r = c.post_json("/api/check", &serde_json::json!({ "domain": "not a domain" }));
    assert_eq!(r.status, 400);
    let r = check(&mut c, "nowhere.example");
    assert!(r["score"].is_null());
    assert!(r["headline"].as_str().unwrap().contains("does not exist"));
}

/// With `spamd` in serve.toml, the test inbox's report has the SpamAssassin
/// section mail-tester users look at first (Debian's spamd, network tests
/// off); without it, the section says "not checked".
#[test]
fn the_inbox_report_has_spamassassin_when_spamd_is_set() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(spamd) = rt.block_on(netjes_testdns::spamd::start()) else {
        return;
    };
    let s = start(&zone(""), |r| r.spamd = Some(spamd.addr.clone()));
    let mut c = Client::new(s.http);
    let t = c.post_raw("/api/tests", "application/json", b"").json();
    let id = t["id"].as_str().unwrap().to_string();
    let r = Smtp::connect(s.smtp).mail("alice@sender.example", &format!("{id}@{TEST_DOMAIN}"), MESSAGE);
    assert!(r.starts_with("250"), "{r}");
    let done = wait_done(&mut c, &id);
    let sa = &done["report"]["spamassassin"];
    assert!(sa["score"].is_number(), "{}", done["report"]);
    assert!(sa["rules"].as_array().is_some_and(|r| !r.is_empty()), "{sa}");

    let plain = start(&zone(""), |_| {});
    let mut c = Client::new(plain.http);
    let t = c.post_raw("/api/tests", "application/json", b"").json();
    let id = t["id"].as_str().unwrap().to_string();
    Smtp::connect(plain.smtp).mail("alice@sender.example", &format!("{id}@{TEST_DOMAIN}"), MESSAGE);
    let done = wait_done(&mut c, &id);
    let sections = done["report"]["sections"].as_array().unwrap();
    let sa = sections.iter().find(|s| s["section"] == "spamassassin").unwrap();
    assert!(sa["not_checked"][0].as_str().unwrap().contains("not asked"), "{sa}");
}

/// A route set in the web UI, shown with its warning, and the relay's
/// connection tested from the page (connect, STARTTLS, AUTH; no mail);
/// a relay on a private address is not probed unless
/// allow_private_targets is on.
#[test]
fn a_route_is_set_in_the_ui_and_its_relay_tested() {
    use netjes_testdns::smtp::{SinkOptions, SinkTls, SmtpSink};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(SmtpSink::start(SinkOptions { tls: SinkTls::Starttls, login: Some(("app".into(), "pw".into())), ..Default::default() }));
    let plain = rt.block_on(SmtpSink::start(SinkOptions { tls: SinkTls::None, login: Some(("app".into(), "pw".into())), ..Default::default() }));
    for allow in [true, false] {
        let s = start(&zone(""), |c| c.allow_private_targets = allow);
        s.parts.store.add_domain("shop.example").unwrap();
        let mut c = Client::new(s.http);
        c.login();
        let page = c.get("/domains/shop.example");
        assert!(page.body.contains("Direct: Postfix delivers"), "{}", page.body);
        let port = sink.port.to_string();
        let r = c.post_form(
            "/domains/shop.example/route",
            &[("csrf", &page.csrf()), ("kind", "relay"), ("host", "localhost"), ("port", &port), ("tls", "starttls"), ("user", "app"), ("password", "pw")],
        );
        assert!(r.body.contains("Route saved") && r.body.contains("logged in as") && !r.body.contains("value=\"pw\""), "{}", r.body);
        let t = c.post_form("/domains/shop.example/route/test", &[("csrf", &r.csrf())]);
        if allow {
            // The relay's certificate is of a CA nobody trusts: the test
            // says so at the step where it failed.
            assert!(t.body.contains("✓ <strong>EHLO</strong>") && t.body.contains("✗ <strong>STARTTLS</strong>: invalid peer certificate"), "{}", t.body);
            // A relay on loopback without TLS: the login is tried, and works.
            let plain_port = plain.port.to_string();
            let r = c.post_form(
                "/domains/shop.example/route",
                &[("csrf", &t.csrf()), ("kind", "relay"), ("host", "127.0.0.1"), ("port", &plain_port), ("tls", "none"), ("user", "app"), ("password", "pw")],
            );
            let t = c.post_form("/domains/shop.example/route/test", &[("csrf", &r.csrf())]);
            assert!(t.body.contains("✓ <strong>AUTH</strong>: logged in as app"), "{}", t.body);
        } else {
            assert!(t.body.contains("is not a public address"), "{}", t.body);
        }
        // Plain text to a host off loopback is saved, with a warning; a
        // form that is not valid is refused with its reasons.
        let r = c.post_form("/domains/shop.example/route", &[("csrf", &t.csrf()), ("kind", "relay"), ("host", "relay.customer.example"), ("port", "25"), ("tls", "none")]);
        assert!(r.body.contains("plain text"), "{}", r.body);
        let r = c.post_form("/domains/shop.example/route", &[("csrf", &r.csrf()), ("kind", "relay"), ("host", "bad host"), ("port", "x"), ("tls", "none")]);
        assert!(r.body.contains("Not saved") && r.body.contains("port 0"), "{}", r.body);
        // No CSRF token, no change.
        assert_eq!(c.post_form("/domains/shop.example/route", &[("kind", "direct")]).status, 403);
    }
    assert!(sink.messages().is_empty() && plain.messages().is_empty(), "a connection test sends no mail");
}

/// The suppression list by the API and the web UI: a manual entry, once;
/// searched, exported as CSV, removed; unknown domains and entries 404.
#[test]
fn suppressions_are_listed_searched_exported_and_removed() {
    let s = start(&zone(""), |_| {});
    s.parts.store.add_domain("shop.example").unwrap();
    let token = s.parts.store.add_api_token("admin", "deploy").unwrap();
    let mut api = Client::new(s.http);
    api.headers.push(("Authorization".into(), format!("Bearer {token}")));
    let entry = serde_json::json!({"address": "Gone@Example.org", "reason": "asked \"not\" to be mailed"});
    assert_eq!(api.post_json("/api/domains/shop.example/suppressions", &entry).status, 201);
    assert_eq!(api.post_json("/api/domains/shop.example/suppressions", &entry).json()["added"], false);
    s.parts.store.suppress("shop.example", "left@example.net", "hard", "550 5.1.1 user unknown").unwrap();
    assert_eq!(api.post_json("/api/domains/nothere.example/suppressions", &entry).status, 404);
    let list = api.get("/api/domains/shop.example/suppressions?q=example.org").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!((list[0]["address"].as_str(), list[0]["class"].as_str()), (Some("gone@example.org"), Some("manual")));

    let mut c = Client::new(s.http);
    c.login();
    let page = c.get("/domains/shop.example/suppressions?q=left");
    assert!(page.body.contains("left@example.net") && !page.body.contains("gone@example.org"), "{}", page.body);
    let csv = c.get("/domains/shop.example/suppressions.csv");
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(csv.body.contains("\"gone@example.org\",\"manual\",\"asked \"\"not\"\" to be mailed\""), "{}", csv.body);
    let r = c.post_form("/domains/shop.example/suppressions/remove", &[("csrf", &page.csrf()), ("address", "left@example.net")]);
    assert!(r.body.contains("left@example.net removed"), "{}", r.body);
    assert_eq!(c.post_form("/domains/shop.example/suppressions/remove", &[("address", "gone@example.org")]).status, 403, "no CSRF token, no change");
    assert_eq!(api.get("/api/domains/shop.example/suppressions").json().as_array().unwrap().len(), 1);
    assert_eq!(api.delete("/api/domains/shop.example/suppressions/gone@example.org").status, 204);
    assert_eq!(api.delete("/api/domains/shop.example/suppressions/gone@example.org").status, 404);
    assert!(api.get("/api/domains/shop.example/suppressions").json().as_array().unwrap().is_empty());
}

/// A customer's webhook: set by the API (its secret shown once, never
/// again), an event queued as `netjes events --store` queues it, posted
/// signed; a receiver that fails gets the event again later, and a
/// webhook on a private address is not called unless allowed.
#[test]
fn delivery_events_reach_the_customers_webhook_signed() {
    use std::io::Write;
    // A receiver that answers 500 to its first request, then 200.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            g.lock().unwrap().push(common::read_http_request(&mut conn));
            let status = if n == 0 { "500 Busy" } else { "200 OK" };
            let _ = conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    for allow in [false, true] {
        let s = start(&zone(""), |c| c.allow_private_targets = allow);
        s.parts.store.add_domain("shop.example").unwrap();
        let token = s.parts.store.add_api_token("admin", "deploy").unwrap();
        let mut api = Client::new(s.http);
        api.headers.push(("Authorization".into(), format!("Bearer {token}")));
        let r = api.put_json("/api/domains/shop.example/webhook", &serde_json::json!({"url": format!("http://127.0.0.1:{port}/hooks/netjes")}));
        assert_eq!(r.status, 200, "{}", r.body);
        let secret = r.json()["secret"].as_str().unwrap().to_string();
        assert_eq!(secret.len(), 64);
        let shown = api.get("/api/domains/shop.example/webhook");
        assert!(!shown.body.contains(&secret), "the secret is shown once: {}", shown.body);
        assert_eq!(api.put_json("/api/domains/shop.example/webhook", &serde_json::json!({"url": "ftp://x"})).status, 400);

        let db = netjes_serve::store::open_connection(&s.data).unwrap();
        let body = r#"{"event":"bounced","recipient":"bob@example.org","customer_domain":"shop.example"}"#;
        assert!(netjes_serve::webhooks::queue(&db, "shop.example", body).unwrap());
        assert!(!netjes_serve::webhooks::queue(&db, "other.example", body).unwrap(), "no webhook, nothing queued");
        if !allow {
            std::thread::sleep(Duration::from_secs(3));
            assert!(got.lock().unwrap().is_empty(), "a private address is not called");
            let waiting: i64 = db.query_row("SELECT attempts FROM webhook_outbox", [], |r| r.get(0)).unwrap();
            assert!(waiting >= 1, "kept for later");
            continue;
        }
        // The first try fails (500): the event waits. Made due again, it
        // goes, signed with the secret.
        for _ in 0..50 {
            if !got.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(got.lock().unwrap().len(), 1);
        db.execute("UPDATE webhook_outbox SET next_try = 0", []).unwrap();
        for _ in 0..50 {
            if got.lock().unwrap().len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let reqs = got.lock().unwrap().clone();
        assert_eq!(reqs.len(), 2, "tried again after a failure");
        let req = &reqs[1];
        assert!(req.starts_with("POST /hooks/netjes HTTP/1.1"), "{req}");
        let header = |n: &str| req.lines().find_map(|l| l.strip_prefix(&format!("{n}: "))).unwrap().to_string();
        let ts: i64 = header("X-Netjes-Timestamp").parse().unwrap();
        // Checked as a receiver would, with its own HMAC.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, format!("{ts}.{body}").as_bytes());
        let want: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(header("X-Netjes-Signature"), format!("sha256={want}"));
        assert!((netjes_serve::store::now() - ts).abs() < 60, "a fresh time stamp");
        assert!(req.ends_with(body));
        // Gone from the outbox once the answer is read (the receiver
        // records the request before it answers).
        let mut left = -1;
        for _ in 0..50 {
            left = db.query_row("SELECT count(*) FROM webhook_outbox", [], |r| r.get(0)).unwrap();
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(left, 0, "delivered, gone from the outbox");
    }
}

/// The reputation page: counts from the events, the bounce rate, the
/// receivers that block, warnings before the thresholds, and complaints
/// said to be not measured rather than shown as zero.
#[test]
fn the_reputation_page_warns_before_the_thresholds() {
    let s = start(&zone(""), |_| {});
    s.parts.store.add_domain("shop.example").unwrap();
    let db = netjes_serve::store::open_connection(&s.data).unwrap();
    for _ in 0..94 {
        netjes_serve::reputation::record(&db, "shop.example", "delivered", None, "a@example.org", "250 ok").unwrap();
    }
    for _ in 0..3 {
        netjes_serve::reputation::record(&db, "shop.example", "bounced", Some("hard"), "b@example.org", "550 5.1.1").unwrap();
        netjes_serve::reputation::record(&db, "shop.example", "bounced", Some("block"), "c@gmail.com", "550 5.7.26 <c@gmail.com>: unauthenticated mail").unwrap();
    }
    let mut c = Client::new(s.http);
    c.login();
    let page = c.get("/domains/shop.example/reputation");
    assert!(page.body.contains("6.00 %") && page.body.contains("over 5 %"), "{}", page.body);
    assert!(page.body.contains("gmail.com refused 3 messages") && page.body.contains("5.7.26"), "{}", page.body);
    assert!(page.body.contains("not measured (no complaint has been read"), "{}", page.body);
    let j = c.get("/api/domains/shop.example/reputation").json();
    assert_eq!((j["delivered"].as_i64(), j["hard"].as_i64(), j["block"].as_i64()), (Some(94), Some(3), Some(3)));
    assert!(j["complaint_rate"].is_null());
}

/// Bounces of the customers' mail come back to the bounce domain, over
/// SMTP to serve's inbox: one that names a message we delivered
/// suppresses its recipient; a made-up one changes nothing; and the inbox
/// still relays nothing.
#[test]
fn bounces_mailed_to_the_bounce_domain_are_matched_and_suppress() {
    let s = start(&zone(""), |c| c.bounce_domain = Some("Bounces.Test".into()));
    s.parts.store.add_domain("shop.example").unwrap();
    let db = netjes_serve::store::open_connection(&s.data).unwrap();
    netjes_serve::reputation::remember_sent(&db, "m1@shop.example", "dave@isp.example", "shop.example").unwrap();
    let dsn = |mid: &str| {
        format!(
            "From: MAILER-DAEMON@smarthost.customer.example\r\nTo: bounces+shop.example@bounces.test\r\nSubject: Undelivered Mail Returned to Sender\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; smarthost.customer.example\r\n\r\n\
Final-Recipient: rfc822; dave@isp.example\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <dave@isp.example>: User unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@shop.example\r\nMessage-ID: <{mid}>\r\n\r\n--B--\r\n"
        )
    };
    let mut c = Smtp::connect(s.smtp);
    let r = c.mail("", "bounces+shop.example@bounces.test", &dsn("made-up@shop.example"));
    assert!(r.starts_with("250") && r.contains("bounce read"), "{r}");
    assert!(s.parts.store.suppressions("shop.example", "").unwrap().is_empty(), "a made-up bounce changes nothing");
    let mut c = Smtp::connect(s.smtp);
    let r = c.mail("", "bounces+shop.example@bounces.test", &dsn("m1@shop.example"));
    assert!(r.starts_with("250"), "{r}");
    let list = s.parts.store.suppressions("shop.example", "").unwrap();
    assert_eq!((list.len(), list.first().map(|x| x.address.as_str())), (1, Some("dave@isp.example")));
    let mut c = Smtp::connect(s.smtp);
    assert!(c.cmd("EHLO x.example").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@b.example>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<someone@elsewhere.example>").starts_with("550 5.7.1 relay access denied"), "no open relay");
}
