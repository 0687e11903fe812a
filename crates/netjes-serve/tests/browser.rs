//! The web UI in a real headless Chromium, driven over WebDriver by
//! Debian's chromedriver (scripts/test.sh installs chromium and
//! chromium-driver). The WebDriver client is the few JSON calls below.
//!
//! Set NETJES_SCREENSHOTS=DIR to keep a screenshot of each page checked.

mod common;

use common::{start, Smtp};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use netjes_testdns::free_port;

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/test.sh installs Debian's chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        // The flags keep Chromium off the network: this machine has none,
        // and a test must not reach any host but 127.0.0.1.
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1200,900",
                     format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let v: Value = agent
            .post(&format!("{base}/session"))
            .send_json(caps)
            .expect("a Chromium session")
            .into_json()
            .unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Driver {
            child,
            base,
            session,
            agent,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.agent.request(method, &url);
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => panic!(
                "WebDriver {method} {path}: {code} {}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string()
    }

    /// Waits for an element to appear (a page load or a reload by script).
    fn wait_for(&self, css: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            if let Ok(r) = self
                .agent
                .post(&url)
                .send_json(json!({"using": "css selector", "value": css}))
            {
                return r.into_json::<Value>().unwrap()["value"][ELEMENT]
                    .as_str()
                    .unwrap()
                    .to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not appear; the page: {}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until an element shows `want` (the page after a form post may
    /// still be loading when the old one's element is found).
    fn wait_text(&self, css: &str, want: &str, within: Duration) {
        self.wait_text_where(css, |t| t == want, want, within)
    }

    /// Waits until an element's text contains `needle` (a page that a
    /// form post replaces: the old one's element is found first).
    fn wait_contains(&self, css: &str, needle: &str, within: Duration) {
        self.wait_text_where(css, |t| t.contains(needle), needle, within)
    }

    fn wait_text_where(&self, css: &str, ok: impl Fn(&str) -> bool, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let got = self
                .agent
                .post(&url)
                .send_json(json!({"using": "css selector", "value": css}))
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .and_then(|v| v["value"][ELEMENT].as_str().map(String::from))
                .and_then(|e| {
                    let u = format!("{}/session/{}/element/{e}/text", self.base, self.session);
                    self.agent.get(&u).call().ok()?.into_json::<Value>().ok()
                })
                .and_then(|v| v["value"].as_str().map(String::from));
            if got.as_deref().is_some_and(&ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not show {want:?} (last: {got:?}); the page: {}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An input's current value.
    fn value(&self, css: &str) -> String {
        self.attribute(css, "value")
    }

    fn attribute(&self, css: &str, name: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/property/{name}"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn exists(&self, css: &str) -> bool {
        let url = format!("{}/session/{}/element", self.base, self.session);
        self.agent
            .post(&url)
            .send_json(json!({"using": "css selector", "value": css}))
            .is_ok()
    }

    fn wait_gone(&self, css: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.exists(css) {
            assert!(Instant::now() < deadline, "{css} is still there");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text of the confirm dialog that is open.
    fn alert_text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/session/{}/alert/text", self.base, self.session);
            if let Ok(r) = self.agent.get(&url).call() {
                return r.into_json::<Value>().unwrap()["value"].as_str().unwrap_or("").to_string();
            }
            assert!(Instant::now() < deadline, "no dialog opened");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Accepts or dismisses the open dialog.
    fn alert(&self, accept: bool) {
        let what = if accept { "accept" } else { "dismiss" };
        self.call("POST", &format!("/alert/{what}"), Some(json!({})));
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("NETJES_SCREENSHOTS") {
            use base64::Engine;
            let png = self.call("GET", "/screenshot", None);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().unwrap())
                .unwrap();
            std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.png")),
                bytes,
            )
            .unwrap();
        }
    }
}

const ZONE: &str = "sender.example. TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc.sender.example. TXT \"v=DMARC1; p=none; rua=mailto:dmarc@sender.example\"\nsender.example. MX 10 mx.sender.example.\nmx.sender.example. A 127.0.0.1\n";

#[test]
fn a_test_in_the_browser_shows_the_mark_when_the_mail_arrives() {
    let s = start(ZONE, |_| {});
    let d = Driver::start();
    d.go(&format!("http://{}/", s.http));
    d.click("#new-test");
    d.wait_for("#waiting", Duration::from_secs(10));
    let address = d.text("#address");
    assert!(address.ends_with("@test.example"), "{address}");
    d.screenshot("test-waiting");

    let mut m = Smtp::connect(s.smtp);
    let msg = "From: Alice <alice@sender.example>\r\nTo: test\r\nSubject: Browser test\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <b1@sender.example>\r\n\r\nHello from the browser test.\r\n";
    assert!(m
        .mail("alice@sender.example", &address, msg)
        .starts_with("250"));

    // The page polls and reloads itself: no click needed.
    d.wait_for("#report svg", Duration::from_secs(20));
    let report = d.text("#report");
    assert!(report.contains("out of 10"), "{report}");
    assert!(report.contains("Browser test"));
    assert!(d.text(".facts").contains("alice@sender.example"));
    d.screenshot("test-result");
}

#[test]
fn log_in_add_a_signing_domain_and_read_its_dns_record() {
    let s = start(ZONE, |_| {});
    let d = Driver::start();
    d.go(&format!("http://{}/domains", s.http));
    // Sent to the login first.
    d.wait_for("#login", Duration::from_secs(10));
    d.type_into("#user", common::ADMIN);
    d.type_into("#password", common::PASSWORD);
    d.click("#login");
    d.wait_for("#new-domain", Duration::from_secs(10));
    d.type_into("#new-domain", "shop.example");
    d.type_into("#new-selector", "s2026");
    d.click("#add-domain");
    d.wait_for("#check-dns", Duration::from_secs(30));
    assert_eq!(d.text(".record code"), "s2026._domainkey.shop.example");
    let record = d.text(".record code.value");
    // The record is the public half of the stored key.
    let stored = s.parts.store.domain("shop.example").unwrap().unwrap();
    assert_eq!(
        record,
        format!("v=DKIM1; k=rsa; p={}", stored.keys[0].public_key)
    );
    let zone = d.text(".record code.zone");
    assert!(
        zone.starts_with("s2026._domainkey.shop.example. IN TXT ( \"v=DKIM1; k=rsa; p=MII"),
        "{zone}"
    );
    d.screenshot("domain");
    d.click("#check-dns");
    d.wait_for(".dns-check", Duration::from_secs(10));
    assert!(
        d.text(".dns-check").contains("no key is published"),
        "{}",
        d.text(".dns-check")
    );
    d.click("#toggle-active");
    d.wait_text("#domain-state", "active", Duration::from_secs(10));

    // Rotation offers a selector no key of the domain uses.
    let offered = d.value("#rotate-selector");
    assert!(offered.starts_with('s') && offered != "s2026", "{offered}");
    d.click("#rotate");
    d.wait_for(".key.pending", Duration::from_secs(30));
    // Deleting the pending key asks first: dismissed, nothing happens;
    // accepted, the key is gone.
    let pending = d.attribute(".key.pending", "id");
    let button = format!("#{} button.danger", pending);
    d.click(&button);
    let text = d.alert_text();
    assert!(text.starts_with("Delete the key"), "{text}");
    d.alert(false);
    assert!(d.exists(&format!("#{pending}")), "dismissed: the key stays");
    d.click(&button);
    d.alert(true);
    d.wait_gone(&format!("#{pending}"), Duration::from_secs(10));
}

#[test]
fn a_domain_check_against_the_test_dns_server() {
    let s = start(ZONE, |_| {});
    let d = Driver::start();
    d.go(&format!("http://{}/check", s.http));
    d.type_into("#domain", "sender.example");
    d.type_into("#selectors", "s1");
    d.type_into("#ips", "192.0.2.99");
    d.click("#check");
    d.wait_for("#check-report", Duration::from_secs(30));
    let report = d.text("#check-report");
    assert!(report.contains("sender.example"));
    assert!(!d.text("#verdict").is_empty(), "the verdict word comes first");
    // Grouped per category, with human titles and the ids in small print.
    assert!(d.exists("table.findings[data-category=\"spf\"]"), "{report}");
    assert!(d.exists("table.findings[data-category=\"dmarc\"]"), "{report}");
    assert!(report.contains("DMARC policy") && report.contains("dmarc.policy"), "{report}");
    // The fields were used: the selector and the address were checked.
    assert!(report.contains("DKIM key s1"), "{report}");
    assert!(report.contains("192.0.2.99"), "{report}");
    // Advice on the web names no command-line flag.
    assert!(!report.contains("--selector") && !report.contains("netjes dkim"), "{report}");
    d.screenshot("check");

    // A re-check right after a change sees it at once.
    s.dns.set_zone(
        netjes_dns::zone::Zone::parse(&ZONE.replace("p=none", "p=reject")).unwrap(),
    );
    d.click("#check");
    d.wait_contains("#check-report", "p=reject: forged mail is refused", Duration::from_secs(30));
}

/// An aggregate report about example.com from yesterday: SendGrid passing,
/// a source the SPF record names failing, and a spoof.
fn report_xml() -> String {
    let day = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 86_400 - 1;
    let rec = |ip: &str, n: u32, r: &str| format!("<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition><dkim>{r}</dkim><spf>{r}</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><spf><domain>example.com</domain><result>{r}</result></spf></auth_results></record>");
    format!(
        "<feedback><report_metadata><org_name>Receiver</org_name><report_id>browser-1</report_id><date_range><begin>{}</begin><end>{}</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>{}{}{}</feedback>",
        day * 86_400,
        day * 86_400 + 86_399,
        rec("192.0.2.20", 900, "pass"),
        rec("192.0.2.30", 80, "fail"),
        rec("203.0.113.66", 20, "fail"),
    )
}

#[test]
fn upload_a_report_and_read_who_sends_and_whether_to_tighten() {
    let zone = "example.com. TXT \"v=spf1 ip4:192.0.2.20 ip4:192.0.2.30 -all\"\n20.2.0.192.in-addr.arpa. PTR o1.sendgrid.net.\no1.sendgrid.net. A 192.0.2.20\n";
    let s = start(zone, |r| r.allow_private_targets = true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receiver!example.com!1!2.xml");
    std::fs::write(&file, report_xml()).unwrap();

    let d = Driver::start();
    d.go(&format!("http://{}/reports", s.http));
    d.wait_for("#login", Duration::from_secs(10));
    d.type_into("#user", common::ADMIN);
    d.type_into("#password", common::PASSWORD);
    d.click("#login");
    d.wait_for("#reports-link", Duration::from_secs(10));
    d.click("#reports-link");
    d.wait_for("#no-reports", Duration::from_secs(10));
    // Chromedriver hands the file to the file input.
    d.type_into("#report-file", file.to_str().unwrap());
    d.click("#upload-report");
    d.wait_for("#upload-results", Duration::from_secs(10));
    assert!(d.text("#upload-results").contains("stored"), "{}", d.text("#upload-results"));
    d.click("#report-domains a");
    d.wait_for("#readiness", Duration::from_secs(20));
    let readiness = d.text("#readiness");
    assert!(readiness.starts_with("not ready: 1 source that sends for you fails DMARC and would be rejected: 192.0.2.30"), "{readiness}");
    let sources = d.text("#sources");
    assert!(sources.contains("SendGrid") && sources.contains("o1.sendgrid.net"), "{sources}");
    assert!(sources.contains("authorised, failing") && sources.contains("unauthorised"), "{sources}");
    assert!(d.exists("svg#trend rect"), "the trend chart");
    d.screenshot("report-sources");
    // Failures only: SendGrid's passing line goes.
    d.click("input[name=failures]");
    d.click("form.grid button");
    d.wait_gone("tr[data-ip='192.0.2.20']", Duration::from_secs(10));
    assert!(d.exists("tr[data-ip='192.0.2.30']"));
}
