//! A small SMTP server on 127.0.0.1 for tests that send mail: a relay
//! with STARTTLS or implicit TLS and a login, or a destination MX that
//! refuses chosen recipients. It keeps what it received, with whether TLS
//! was on and who logged in, so a test can assert how the mail came.
//! Its certificate comes from a throwaway CA ([`Pki`]).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// A throwaway CA and one leaf certificate for `names`.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl Pki {
    pub fn new(names: &[&str]) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "netjes test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().cloned().unwrap_or_default());
        let leaf = params.signed_by(&key, &ca, &ca_key).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        Pki { ca_pem: ca.pem(), cert_pem: leaf.pem(), key_pem: key.serialize_pem(), server: Arc::new(server) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    None,
    Starttls,
    Implicit,
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub tls: SinkTls,
    /// The names on its certificate.
    pub cert_names: Vec<String>,
    /// A login it requires before MAIL (offered only once TLS is on, as
    /// Postfix's smtpd_tls_auth_only does), and the mechanisms it offers.
    pub login: Option<(String, String)>,
    pub mechanisms: Vec<String>,
    /// Recipients it refuses, with the reply (`550 5.1.1 no such user`).
    pub refuse: Vec<(String, String)>,
    /// Recipients it answers 451 the first time, and takes after.
    pub defer_once: Vec<String>,
    /// Where it listens; 127.0.0.1 on a free port when unset.
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions { tls: SinkTls::None, cert_names: vec!["localhost".into()], login: None, mechanisms: vec!["PLAIN".into(), "LOGIN".into()], refuse: vec![], defer_once: vec![], listen: None }
    }
}

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
    pub login: Option<String>,
}

/// A running server; it stops when dropped.
pub struct SmtpSink {
    pub bound: std::net::SocketAddr,
    pub port: u16,
    pub ca_pem: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Failed logins, in order.
    pub failed_logins: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start(opts: SinkOptions) -> SmtpSink {
        let names: Vec<&str> = opts.cert_names.iter().map(String::as_str).collect();
        let pki = Pki::new(&names);
        let at = opts.listen.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let listener = tokio::net::TcpListener::bind(at).await.unwrap();
        let bound = listener.local_addr().unwrap();
        let port = bound.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let failed_logins = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server.clone());
        let shared = Arc::new(Shared { deferred: Mutex::new(Vec::new()), opts, received: received.clone(), failed_logins: failed_logins.clone() });
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move { connection(tcp, acceptor, shared).await });
            }
        });
        SmtpSink { bound, port, ca_pem: pki.ca_pem, received, failed_logins, task }
    }

    pub fn addr(&self) -> String {
        self.bound.to_string()
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

struct Shared {
    deferred: Mutex<Vec<String>>,
    opts: SinkOptions,
    received: Arc<Mutex<Vec<Received>>>,
    failed_logins: Arc<Mutex<Vec<String>>>,
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: tokio_rustls::TlsAcceptor, shared: Arc<Shared>) {
    if shared.opts.tls == SinkTls::Implicit {
        let Ok(tls) = acceptor.accept(tcp).await else { return };
        let mut r = BufReader::new(tls);
        let _ = r.get_mut().write_all(b"220 sink.test ESMTP\r\n").await;
        session(&mut r, &shared, true).await;
        return;
    }
    let mut r = BufReader::new(tcp);
    let _ = r.get_mut().write_all(b"220 sink.test ESMTP\r\n").await;
    if session(&mut r, &shared, false).await == End::StartTls {
        let Ok(tls) = acceptor.accept(r.into_inner()).await else { return };
        session(&mut BufReader::new(tls), &shared, true).await;
    }
}

#[derive(PartialEq)]
enum End {
    Closed,
    StartTls,
}

async fn line<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Option<String> {
    let mut l = String::new();
    match (&mut *r).take(100_000).read_line(&mut l).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
    }
}

fn b64(s: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()?;
    String::from_utf8(raw).ok()
}

/// One SMTP session until QUIT, a closed connection, or STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(r: &mut BufReader<S>, shared: &Shared, tls: bool) -> End {
    let o = &shared.opts;
    let (mut login, mut from, mut to) = (None::<String>, None::<String>, Vec::<String>::new());
    while let Some(cmd) = line(r).await {
        let up = cmd.to_ascii_uppercase();
        let reply: String = if up.starts_with("EHLO") || up.starts_with("HELO") {
            let mut caps = vec!["250-sink.test".to_string(), "250-PIPELINING".into()];
            if o.tls == SinkTls::Starttls && !tls {
                caps.push("250-STARTTLS".into());
            }
            if o.login.is_some() && (tls || o.tls == SinkTls::None) {
                caps.push(format!("250-AUTH {}", o.mechanisms.join(" ")));
            }
            caps.push("250 8BITMIME".into());
            caps.join("\r\n")
        } else if up == "STARTTLS" && o.tls == SinkTls::Starttls && !tls {
            let _ = r.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await;
            return End::StartTls;
        } else if up.starts_with("AUTH ") {
            match auth(r, &cmd, o).await {
                Some(Ok(user)) => {
                    login = Some(user);
                    "235 2.7.0 Authentication successful".into()
                }
                Some(Err(user)) => {
                    shared.failed_logins.lock().unwrap().push(user);
                    "535 5.7.8 Authentication credentials invalid".into()
                }
                None => "504 5.5.4 unrecognized authentication type".into(),
            }
        } else if up.starts_with("MAIL FROM:") {
            if o.login.is_some() && login.is_none() {
                "530 5.7.0 Authentication required".into()
            } else {
                from = Some(cmd[10..].trim().trim_matches(['<', '>']).to_string());
                "250 2.1.0 Ok".into()
            }
        } else if up.starts_with("RCPT TO:") {
            let rcpt = cmd[8..].trim().trim_matches(['<', '>']).to_string();
            let first_time = o.defer_once.iter().any(|a| a.eq_ignore_ascii_case(&rcpt)) && {
                let mut d = shared.deferred.lock().unwrap();
                let new = !d.contains(&rcpt);
                if new {
                    d.push(rcpt.clone());
                }
                new
            };
            match o.refuse.iter().find(|(a, _)| a.eq_ignore_ascii_case(&rcpt)) {
                _ if first_time => "451 4.3.0 try again later".into(),
                Some((_, reply)) => reply.clone(),
                None if from.is_some() => {
                    to.push(rcpt);
                    "250 2.1.5 Ok".into()
                }
                None => "503 5.5.1 MAIL first".into(),
            }
        } else if up == "DATA" {
            if to.is_empty() {
                "554 5.5.1 no valid recipients".into()
            } else {
                let _ = r.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await;
                let mut data = Vec::new();
                while let Some(l) = line(r).await {
                    if l == "." {
                        break;
                    }
                    data.extend_from_slice(l.strip_prefix('.').unwrap_or(&l).as_bytes());
                    data.extend_from_slice(b"\r\n");
                }
                let m = Received { from: from.take().unwrap_or_default(), to: std::mem::take(&mut to), data, tls, login: login.clone() };
                shared.received.lock().unwrap().push(m);
                "250 2.0.0 Ok: queued".into()
            }
        } else if up == "QUIT" {
            let _ = r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
            return End::Closed;
        } else if up == "RSET" || up == "NOOP" {
            "250 2.0.0 Ok".into()
        } else {
            "502 5.5.2 Error: command not recognized".into()
        };
        if r.get_mut().write_all(format!("{reply}\r\n").as_bytes()).await.is_err() {
            break;
        }
    }
    End::Closed
}

/// AUTH PLAIN (initial response or not) and AUTH LOGIN. Some(Ok(user)) on
/// success, Some(Err(user)) on wrong credentials, None for a mechanism not
/// offered.
async fn auth<S: AsyncRead + AsyncWrite + Unpin>(r: &mut BufReader<S>, cmd: &str, o: &SinkOptions) -> Option<Result<String, String>> {
    let mut words = cmd.split_whitespace().skip(1);
    let mech = words.next()?.to_ascii_uppercase();
    if !o.mechanisms.contains(&mech) {
        return None;
    }
    let (user, pass) = match mech.as_str() {
        "PLAIN" => {
            let token = match words.next() {
                Some(t) => t.to_string(),
                None => {
                    r.get_mut().write_all(b"334 \r\n").await.ok()?;
                    line(r).await?
                }
            };
            let text = b64(&token).unwrap_or_default();
            let mut parts = text.split('\0').skip(1);
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
        }
        "LOGIN" => {
            r.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await.ok()?;
            let user = b64(&line(r).await?).unwrap_or_default();
            r.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await.ok()?;
            (user, b64(&line(r).await?).unwrap_or_default())
        }
        _ => return None,
    };
    let (want_user, want_pass) = o.login.as_ref()?;
    Some(if &user == want_user && &pass == want_pass { Ok(user) } else { Err(user) })
}
