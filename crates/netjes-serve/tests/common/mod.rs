//! A `netjes serve` on 127.0.0.1 (ports the system picks) with the real
//! test DNS server, and clients that speak HTTP and SMTP to it.

#![allow(dead_code)]

use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_serve::config::{Config, RawConfig};
use netjes_testdns::TestDns;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery";
pub const TEST_DOMAIN: &str = "test.example";

pub struct Server {
    pub rt: tokio::runtime::Runtime,
    pub http: SocketAddr,
    pub smtp: SocketAddr,
    pub dns: TestDns,
    pub parts: netjes_serve::Parts,
    pub dir: tempfile::TempDir,
    pub data: std::path::PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Asks the server to stop, as SIGTERM does.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub fn start(zone: &str, tweak: impl FnOnce(&mut RawConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    start_in(dir, data, zone, tweak)
}

/// A server on the store in `data` (which may outlive it).
pub fn start_in(
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    zone: &str,
    tweak: impl FnOnce(&mut RawConfig),
) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dns = rt.block_on(TestDns::start_str(zone));
    let resolver = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let mut raw = RawConfig {
        data_dir: data.clone(),
        test_domain: TEST_DOMAIN.into(),
        hostname: Some("mx.test.example".into()),
        ip_lists: Some(vec![]),
        domain_lists: Some(vec![]),
        ..RawConfig::default()
    };
    tweak(&mut raw);
    let cfg = Config::validate(raw).unwrap();
    let parts = netjes_serve::build(&cfg, Arc::new(resolver)).unwrap();
    if parts.store.user_count().unwrap() == 0 {
        parts.store.add_user(ADMIN, PASSWORD).unwrap();
    }
    let (http_l, smtp_l) = rt.block_on(async {
        (
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
    });
    let (http, smtp) = (http_l.local_addr().unwrap(), smtp_l.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let p = netjes_serve::Parts {
        store: parts.store.clone(),
        app: parts.app.clone(),
        inbox: parts.inbox.clone(),
        metrics: parts.metrics.clone(),
        alerter: parts.alerter.clone(),
    };
    rt.spawn(async move {
        netjes_serve::run(http_l, smtp_l, &p, cfg.retention, rx)
            .await
            .unwrap()
    });
    Server {
        rt,
        http,
        smtp,
        dns,
        parts,
        dir,
        data,
        stop,
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, Vec<String>>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(|s| s.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no form on the page: {}", self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A client that keeps cookies, as a browser, and follows no redirects.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    pub cookies: HashMap<String, String>,
    pub headers: Vec<(String, String)>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            base: format!("http://{addr}"),
            // No kept-alive connections: the server closes idle ones at
            // its header timeout, and a POST is not retried on a dead one.
            agent: ureq::AgentBuilder::new()
                .max_idle_connections(0)
                .redirects(0)
                .timeout(Duration::from_secs(30))
                .build(),
            cookies: HashMap::new(),
            headers: vec![],
        }
    }

    fn send(&mut self, req: ureq::Request, body: Option<(&str, Vec<u8>)>) -> Resp {
        let mut req = req;
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.set("Cookie", &c.join("; "));
        }
        for (k, v) in &self.headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some((ct, b)) => req.set("Content-Type", ct).send_bytes(&b),
            None => req.call(),
        };
        let res = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("HTTP: {e}"),
        };
        let mut headers: HashMap<String, Vec<String>> = HashMap::new();
        for name in res.headers_names() {
            headers.insert(
                name.clone(),
                res.all(&name).iter().map(|s| s.to_string()).collect(),
            );
        }
        for c in headers.get("set-cookie").cloned().unwrap_or_default() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.into(), v.into());
            }
        }
        let status = res.status();
        let body = res.into_string().unwrap_or_default();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Resp {
        let r = self.agent.get(&format!("{}{path}", self.base));
        self.send(r, None)
    }

    pub fn post_form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let body: String = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let r = self.agent.post(&format!("{}{path}", self.base));
        self.send(
            r,
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
    }

    pub fn post_json(&mut self, path: &str, v: &serde_json::Value) -> Resp {
        let r = self.agent.post(&format!("{}{path}", self.base));
        self.send(r, Some(("application/json", v.to_string().into_bytes())))
    }

    pub fn delete(&mut self, path: &str) -> Resp {
        let r = self.agent.delete(&format!("{}{path}", self.base));
        self.send(r, None)
    }

    pub fn put_json(&mut self, path: &str, v: &serde_json::Value) -> Resp {
        let r = self.agent.put(&format!("{}{path}", self.base));
        self.send(r, Some(("application/json", v.to_string().into_bytes())))
    }

    pub fn post_raw(&mut self, path: &str, content_type: &str, body: &[u8]) -> Resp {
        let r = self.agent.post(&format!("{}{path}", self.base));
        self.send(r, Some((content_type, body.to_vec())))
    }

    /// Logs in as the admin through the login form.
    pub fn login(&mut self) {
        let page = self.get("/login");
        let r = self.post_form(
            "/login",
            &[
                ("csrf", &page.csrf()),
                ("user", ADMIN),
                ("password", PASSWORD),
                ("next", "/domains"),
            ],
        );
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.header("location"), Some("/domains"));
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain SMTP client.
pub struct Smtp {
    r: BufReader<TcpStream>,
    pub greeting: String,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Smtp {
            r: BufReader::new(s),
            greeting: String::new(),
        };
        c.greeting = c.reply();
        c
    }

    /// One reply, all its lines.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.r.get_mut().write_all(format!("{line}\r\n").as_bytes())
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line).unwrap();
        self.reply()
    }

    pub fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.r.get_mut().write_all(bytes)
    }

    /// EHLO, MAIL, RCPT, DATA and the message; the reply to its end.
    pub fn mail(&mut self, from: &str, to: &str, message: &str) -> String {
        assert!(self.cmd("EHLO client.example").starts_with("250"));
        assert!(self.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        let r = self.cmd(&format!("RCPT TO:<{to}>"));
        assert!(r.starts_with("250"), "{r}");
        assert!(self.cmd("DATA").starts_with("354"));
        // CRLF line ends, and dot-stuffed (RFC 5321 §4.5.2).
        let text: String = message
            .replace("\r\n", "\n")
            .lines()
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}\r\n")
                } else {
                    format!("{l}\r\n")
                }
            })
            .collect();
        self.raw(text.as_bytes()).unwrap();
        self.cmd(".")
    }
}

/// Waits for a test to be analysed; its JSON.
pub fn wait_done(c: &mut Client, id: &str) -> serde_json::Value {
    for _ in 0..200 {
        let t = c.get(&format!("/api/tests/{id}")).json();
        if t["status"] == "done" {
            return t;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("test {id} was not analysed");
}

/// A zone with a sender domain whose SPF allows 127.0.0.1.
pub fn sender_zone() -> String {
    "sender.example. TXT \"v=spf1 ip4:127.0.0.1 -all\"\n".into()
}

/// A login from a client whose address a trusted proxy vouches for
/// (X-Forwarded-For); the status.
pub fn login_as(c: &mut Client, csrf: &str, from: &str, user: &str, password: &str) -> u16 {
    c.headers = vec![("X-Forwarded-For".into(), from.into())];
    c.post_form(
        "/login",
        &[("csrf", csrf), ("user", user), ("password", password)],
    )
    .status
}

/// One HTTP request as a webhook receiver reads it: the header, and the
/// body to its Content-Length (or until the client stops sending).
pub fn read_http_request(conn: &mut TcpStream) -> String {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(k) = conn.read(&mut buf) {
        if k == 0 {
            break;
        }
        req.extend_from_slice(&buf[..k]);
        let text = String::from_utf8_lossy(&req);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).and_then(|v| v.parse().ok()).unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&req).into_owned()
}
