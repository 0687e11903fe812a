//! The test inbox: an SMTP receiver (RFC 5321) that takes mail only for
//! open test addresses, answers 550 to everything else and never relays.
//! It offers STARTTLS, records the session's facts (client, HELO, MAIL
//! FROM, TLS), stores the message and runs the analyzer on it.
//!
//! Limits: message size (SIZE= is checked before the data), recipients,
//! line length, one idle timeout per command, one deadline per session,
//! connections in all and per client. A client over a limit is cut off
//! without harming other sessions.

pub mod command;

use crate::analysis::{Facts, Tools};
use crate::store::Store;
use command::{Command, Refusal};
use netjes_net::metrics::Metrics;
use netjes_net::Stream;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Command lines longer than this close the session (RFC 5321 §4.5.3.1.4
/// says 512; we allow more for long parameters).
const MAX_COMMAND_LINE: usize = 4096;
/// Message lines may be longer than the RFC's 1000 octets, as real mail is.
const MAX_DATA_LINE: usize = 256 * 1024;
/// Bad commands before we hang up.
const MAX_ERRORS: usize = 10;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    /// Octets of stored test messages in all (inbox_max_mib).
    pub max_stored_bytes: u64,
    pub session: Duration,
    pub idle: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

pub struct Inbox {
    pub store: Store,
    pub tools: Arc<Tools>,
    pub hostname: String,
    pub test_domain: String,
    pub limits: Limits,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub metrics: Arc<Metrics>,
    /// DMARC and TLS reports mailed to `[reports] addresses`.
    pub reports: Arc<crate::report_intake::Intake>,
    /// Bounces and complaints come back to any address of this domain
    /// (the VERP return path `netjes routes` gives the customers' mail).
    pub bounce_domain: Option<String>,
    clients: Mutex<HashMap<IpAddr, usize>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("hostname", &self.hostname)
            .field("test_domain", &self.test_domain)
            .finish_non_exhaustive()
    }
}

/// A self-signed certificate for `hostname`, as Postfix's default
/// snakeoil: enough for opportunistic STARTTLS, which does not check names.
pub fn self_signed(hostname: &str) -> Result<rustls::ServerConfig, String> {
    let cert = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| e.to_string())?;
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    server_config(vec![cert.cert.der().clone()], key)
}

/// The configured certificate chain and key (PEM files).
pub fn from_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    server_config(certs, key)
}

fn server_config(
    certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, String> {
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())
}

/// What the inbox is told of itself.
#[derive(Debug)]
pub struct Settings {
    pub hostname: String,
    pub test_domain: String,
    pub limits: Limits,
    pub tls: Option<rustls::ServerConfig>,
}

impl Inbox {
    pub fn new(
        store: Store,
        tools: Arc<Tools>,
        settings: Settings,
        metrics: Arc<Metrics>,
        reports: Arc<crate::report_intake::Intake>,
    ) -> Inbox {
        let Settings { hostname, test_domain, limits, tls } = settings;
        metrics.describe(
            "netjes_smtp_sessions_total",
            "SMTP sessions by how they began (accepted, or refused by a connection limit).",
        );
        metrics.describe(
            "netjes_smtp_messages_total",
            "Messages the test inbox took, by result.",
        );
        metrics.describe(
            "netjes_smtp_recipients_refused_total",
            "Recipients answered 550, by reason.",
        );
        Inbox {
            store,
            tools,
            hostname,
            test_domain,
            slots: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
            limits,
            tls: tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c))),
            metrics,
            reports,
            bounce_domain: None,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Analyses a stored message and records the report. A failure to
    /// read the message is a report too (`{"error": ...}`), so that the
    /// result page does not wait for ever.
    pub async fn analyze(&self, id: &str) {
        let t = match self.store.test(id) {
            Ok(Some(t)) => t,
            // Purged meanwhile: nothing to analyse.
            Ok(None) => return,
            Err(e) => {
                // Left as "analyzing": analysed again at the next start.
                tracing::error!(test = id, error = %e, "cannot read a received message");
                return;
            }
        };
        let raw = t.raw.unwrap_or_default();
        let facts: Option<Facts> = t.facts.and_then(|f| serde_json::from_value(f).ok());
        let (report, html) = match self.tools.analyze(&raw, facts.as_ref()).await {
            Ok(r) => r,
            Err(e) => (
                serde_json::json!({ "error": e }),
                format!(
                    "<p class=\"error\">The message could not be analysed: {}</p>",
                    crate::pages::escape(&e)
                ),
            ),
        };
        if let Err(e) = self.store.finish(id, &report, &html) {
            tracing::error!(test = id, error = %e, "cannot store the report");
        }
    }

    /// Messages that were received but whose analysis did not finish (the
    /// process stopped): analysed now.
    pub async fn resume(&self) {
        let ids = self.store.unfinished().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot list the messages left unanalysed");
            vec![]
        });
        for id in ids {
            tracing::info!(test = %id, "analysing a message received before a restart");
            self.analyze(&id).await;
        }
    }
}

/// Takes a connection slot for the client, or says why not.
struct Admission {
    inbox: Arc<Inbox>,
    ip: IpAddr,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut c = self.inbox.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.ip);
            }
        }
    }
}

fn admit(inbox: &Arc<Inbox>, ip: IpAddr) -> Result<Admission, &'static str> {
    let slot = inbox
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| "421 4.3.2 too many connections; try again later\r\n")?;
    let mut c = inbox.clients.lock().unwrap_or_else(|p| p.into_inner());
    let n = c.entry(ip).or_insert(0);
    if *n >= inbox.limits.max_connections_per_client {
        return Err("421 4.7.0 too many connections from your address\r\n");
    }
    *n += 1;
    Ok(Admission {
        inbox: inbox.clone(),
        ip,
        _slot: slot,
    })
}

/// Accepts SMTP sessions until `shutdown` turns true.
pub async fn run(
    listener: tokio::net::TcpListener,
    inbox: Arc<Inbox>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let admission = match admit(&inbox, peer.ip()) {
                Ok(a) => a,
                Err(reply) => {
                    inbox
                        .metrics
                        .inc("netjes_smtp_sessions_total", &[("result", "refused")]);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.write_all(reply.as_bytes()),
                    )
                    .await;
                    return;
                }
            };
            inbox
                .metrics
                .inc("netjes_smtp_sessions_total", &[("result", "accepted")]);
            let limit = inbox.limits.session;
            let mut s = Session::new(inbox.clone(), Box::new(stream), peer);
            match tokio::time::timeout(limit, s.serve()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(client = %peer, error = %e, "SMTP session ended"),
                Err(_) => {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        s.reply("421 4.4.2 session time limit reached; closing"),
                    )
                    .await;
                }
            }
            s.close().await;
            drop(admission);
        });
    }
}

struct Session {
    inbox: Arc<Inbox>,
    io: Option<BufReader<Box<dyn Stream>>>,
    peer: SocketAddr,
    helo: Option<String>,
    tls: Option<(String, String)>,
    mail_from: Option<String>,
    /// (test id, the address as given).
    rcpts: Vec<(String, String)>,
    /// A report address is among the recipients.
    for_reports: bool,
    /// An address of the bounce domain is among the recipients.
    for_bounces: bool,
    errors: usize,
}

#[derive(Debug)]
enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

impl Session {
    fn new(inbox: Arc<Inbox>, io: Box<dyn Stream>, peer: SocketAddr) -> Session {
        Session {
            inbox,
            io: Some(BufReader::new(io)),
            peer,
            helo: None,
            tls: None,
            mail_from: None,
            rcpts: vec![],
            for_reports: false,
            for_bounces: false,
            errors: 0,
        }
    }

    fn io(&mut self) -> std::io::Result<&mut BufReader<Box<dyn Stream>>> {
        self.io
            .as_mut()
            .ok_or_else(|| std::io::Error::other("connection gone"))
    }

    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let io = self.io()?;
        io.get_mut().write_all(text.as_bytes()).await?;
        io.get_mut().write_all(b"\r\n").await?;
        io.get_mut().flush().await
    }

    /// One line, within the idle timeout and the length limit.
    async fn line(&mut self, max: usize) -> std::io::Result<Line> {
        let idle = self.inbox.limits.idle;
        let io = self.io()?;
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            idle,
            (&mut *io).take(max as u64 + 1).read_until(b'\n', &mut buf),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        Ok(if buf.len() > max {
            Line::TooLong
        } else if n == 0 || !buf.ends_with(b"\n") {
            // The input ended, at most in the middle of a line.
            Line::Eof
        } else {
            Line::Text(buf)
        })
    }

    /// Ends the connection so that the last reply arrives: closing a
    /// socket with unread input sends a reset, which can overtake it.
    async fn close(&mut self) {
        let Some(mut io) = self.io.take() else { return };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            io.get_mut().shutdown().await?;
            let mut sink = [0u8; 8192];
            let mut left = 1 << 20;
            while left > 0 {
                let n = io.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left -= n.min(left);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpts.clear();
        self.for_reports = false;
        self.for_bounces = false;
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        let banner = format!("220 {} ESMTP netjes test inbox", self.inbox.hostname);
        self.reply(&banner).await?;
        loop {
            let line = match self.line(MAX_COMMAND_LINE).await {
                Ok(Line::Text(l)) => l,
                Ok(Line::TooLong) => {
                    return self.reply("500 5.5.2 line too long; closing").await;
                }
                Ok(Line::Eof) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return self.reply("421 4.4.2 idle too long; closing").await
                }
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&line).into_owned();
            match command::parse(&text) {
                Command::Ehlo(name) => {
                    self.helo = Some(name);
                    self.reset();
                    let mut lines = vec![
                        self.inbox.hostname.clone(),
                        format!("SIZE {}", self.inbox.limits.max_message_bytes),
                        "8BITMIME".into(),
                        "ENHANCEDSTATUSCODES".into(),
                    ];
                    if self.inbox.tls.is_some() && self.tls.is_none() {
                        lines.push("STARTTLS".into());
                    }
                    let last = lines.len() - 1;
                    let text: Vec<String> = lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                        .collect();
                    self.reply(&text.join("\r\n")).await?;
                }
                Command::Helo(name) => {
                    self.helo = Some(name);
                    self.reset();
                    let t = format!("250 {}", self.inbox.hostname);
                    self.reply(&t).await?;
                }
                Command::StartTls => {
                    let Some(acceptor) = self.inbox.tls.clone().filter(|_| self.tls.is_none())
                    else {
                        self.reply("503 5.5.1 TLS is not available now").await?;
                        continue;
                    };
                    // RFC 3207 §4.2 and CVE-2011-0411: anything the client
                    // sent after STARTTLS in the clear must not be read as
                    // if it came over TLS.
                    if !self.io()?.buffer().is_empty() {
                        return self
                            .reply(
                                "554 5.5.1 commands after STARTTLS before the handshake; closing",
                            )
                            .await;
                    }
                    self.reply("220 2.0.0 ready to start TLS").await?;
                    let plain = self.io.take().expect("checked above").into_inner();
                    let tls = tokio::time::timeout(self.inbox.limits.idle, acceptor.accept(plain))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake")
                        })??;
                    let (_, conn) = tls.get_ref();
                    let version = conn.protocol_version().map(|v| match v {
                        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                        other => format!("{other:?}"),
                    });
                    let cipher = conn
                        .negotiated_cipher_suite()
                        .map(|c| c.suite().as_str().unwrap_or("unknown").to_string());
                    self.tls = Some((version.unwrap_or_default(), cipher.unwrap_or_default()));
                    self.io = Some(BufReader::new(Box::new(tls)));
                    // RFC 3207 §4.2: the client starts again with EHLO.
                    self.helo = None;
                    self.reset();
                }
                Command::Mail { from, size } => {
                    if self.helo.is_none() {
                        self.reply("503 5.5.1 say EHLO first").await?;
                    } else if self.mail_from.is_some() {
                        self.reply("503 5.5.1 nested MAIL command").await?;
                    } else if size.is_some_and(|s| s > self.inbox.limits.max_message_bytes as u64) {
                        self.reply("552 5.3.4 message too large for the test inbox")
                            .await?;
                    } else {
                        self.mail_from = Some(from);
                        self.reply("250 2.1.0 ok").await?;
                    }
                }
                Command::Rcpt(to) => {
                    if self.mail_from.is_none() {
                        self.reply("503 5.5.1 MAIL first").await?;
                        continue;
                    }
                    if self.rcpts.len() + usize::from(self.for_reports) >= self.inbox.limits.max_recipients {
                        self.reply("452 4.5.3 too many recipients").await?;
                        continue;
                    }
                    if self.inbox.reports.takes(&to) {
                        self.for_reports = true;
                        self.reply("250 2.1.5 ok").await?;
                        continue;
                    }
                    let bounce = self.inbox.bounce_domain.as_deref().is_some_and(|b| to.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && d.trim_end_matches('.').eq_ignore_ascii_case(b)));
                    if bounce {
                        self.for_bounces = true;
                        self.reply("250 2.1.5 ok").await?;
                        continue;
                    }
                    let answer = match command::test_id(&to, &self.inbox.test_domain) {
                        Err(Refusal::Relay) => Err(("relay", "550 5.7.1 relay access denied: this host takes mail only for its test addresses")),
                        Err(Refusal::NoSuchTest) => Err(("unknown", "550 5.1.1 no open test has this address")),
                        Ok(id) => match self.inbox.store.test_is_open(&id) {
                            Ok(true) => Ok(id),
                            Ok(false) => Err(("unknown", "550 5.1.1 no open test has this address")),
                            Err(e) => {
                                tracing::error!(error = %e, "store");
                                Err(("error", "451 4.3.0 temporary failure; try again later"))
                            }
                        },
                    };
                    match answer {
                        Ok(id) => {
                            self.rcpts.push((id, to));
                            self.reply("250 2.1.5 ok").await?;
                        }
                        Err((reason, reply)) => {
                            self.inbox.metrics.inc(
                                "netjes_smtp_recipients_refused_total",
                                &[("reason", reason)],
                            );
                            self.reply(reply).await?;
                        }
                    }
                }
                Command::Data => {
                    if self.rcpts.is_empty() && !self.for_reports && !self.for_bounces {
                        self.reply("503 5.5.1 no valid recipients").await?;
                        continue;
                    }
                    self.reply("354 end data with <CR><LF>.<CR><LF>").await?;
                    match self.data().await? {
                        Some(body) => {
                            let answer = self.deliver(body).await;
                            self.reply(&answer).await?;
                        }
                        None => {
                            self.inbox
                                .metrics
                                .inc("netjes_smtp_messages_total", &[("result", "too_large")]);
                            self.reply("552 5.3.4 message too large for the test inbox")
                                .await?;
                        }
                    }
                    self.reset();
                }
                Command::Rset => {
                    self.reset();
                    self.reply("250 2.0.0 ok").await?;
                }
                Command::Noop => self.reply("250 2.0.0 ok").await?,
                Command::Vrfy => {
                    self.reply("252 2.1.5 cannot verify; send mail and see")
                        .await?
                }
                Command::Quit => {
                    self.reply("221 2.0.0 bye").await?;
                    return Ok(());
                }
                bad @ (Command::Unknown(_) | Command::Syntax(_)) => {
                    self.errors += 1;
                    if self.errors >= MAX_ERRORS {
                        return self.reply("421 4.7.0 too many errors; closing").await;
                    }
                    let t = match bad {
                        Command::Syntax(t) => t,
                        _ => "502 5.5.2 command not recognized",
                    };
                    self.reply(t).await?;
                }
            }
        }
    }

    /// The message, dot-unstuffed; `None` when it went over the size limit
    /// (the rest is read and dropped, within the session's deadline).
    async fn data(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let max = self.inbox.limits.max_message_bytes;
        let mut body = Vec::new();
        let mut over = false;
        loop {
            let line = match self.line(MAX_DATA_LINE).await? {
                Line::Text(l) => l,
                Line::TooLong => {
                    over = true;
                    continue;
                }
                Line::Eof => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "end of input in DATA",
                    ))
                }
            };
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            if over {
                continue;
            }
            let content = if line.starts_with(b".") {
                &line[1..]
            } else {
                &line[..]
            };
            if body.len() + content.len() > max {
                over = true;
                body = Vec::new();
                continue;
            }
            // Bare LF line ends become CRLF, as the message is stored.
            if content.ends_with(b"\r\n") {
                body.extend_from_slice(content);
            } else {
                body.extend_from_slice(&content[..content.len() - 1]);
                body.extend_from_slice(b"\r\n");
            }
        }
        Ok(if over { None } else { Some(body) })
    }

    /// Queues a report mail (before the reply, so that nothing is lost)
    /// and starts reading it; the reply when it cannot be taken.
    fn deliver_reports(&mut self, body: &[u8]) -> Option<String> {
        use crate::report_intake::{MailFacts, Refused};
        let facts = MailFacts {
            ip: Some(self.peer.ip()),
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: self.mail_from.clone().unwrap_or_default(),
        };
        match self.inbox.reports.queue(body, &facts) {
            Ok(id) => {
                let intake = self.inbox.reports.clone();
                tokio::spawn(async move { intake.process(id).await });
                None
            }
            Err(Refused::Flood) => Some("452 4.7.1 too many report mails from you today; try again tomorrow".into()),
            Err(Refused::Full) => Some("452 4.3.1 the report queue is full; try again later".into()),
            Err(Refused::Store) => Some("451 4.3.0 cannot store the report now; try again later".into()),
        }
    }

    /// Stores the message for each test it was sent to, and starts the
    /// analysis; a report mail goes to the report intake.
    async fn deliver(&mut self, body: Vec<u8>) -> String {
        if self.for_bounces {
            let store = self.inbox.store.clone();
            let raw = body.clone();
            let done = tokio::task::spawn_blocking(move || crate::bounce_intake::take_mail(&store.db(), &raw).1).await.unwrap_or_default();
            for d in &done {
                tracing::info!(from = self.mail_from.as_deref().unwrap_or(""), "bounce: {d}");
            }
            if self.rcpts.is_empty() && !self.for_reports {
                return "250 2.0.0 ok: bounce read".into();
            }
        }
        if self.for_reports {
            if let Some(refusal) = self.deliver_reports(&body) {
                return refusal;
            }
            if self.rcpts.is_empty() {
                return "250 2.0.0 ok: report queued".into();
            }
        }
        let now = crate::store::now();
        let helo = self.helo.clone().unwrap_or_default();
        let from = self.mail_from.clone().unwrap_or_default();
        let ip = self.peer.ip();
        let mut taken = Vec::new();
        // Room for one copy per recipient, the oldest results going first.
        let need = (body.len() as u64 + 512) * self.rcpts.len() as u64;
        match self.inbox.store.make_room(self.inbox.limits.max_stored_bytes, need) {
            Ok(true) => {}
            Ok(false) => {
                self.inbox
                    .metrics
                    .inc("netjes_smtp_messages_total", &[("result", "full")]);
                return "452 4.3.1 the test inbox is full; try again later".into();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot measure the inbox");
                return "451 4.3.0 cannot store the message now; try again later".into();
            }
        }
        for (id, to) in self.rcpts.clone() {
            let facts = Facts {
                ip,
                helo: helo.clone(),
                mail_from: from.clone(),
                rcpt: to.clone(),
                tls_version: self.tls.as_ref().map(|t| t.0.clone()),
                tls_cipher: self.tls.as_ref().map(|t| t.1.clone()),
                received_at: now,
            };
            let raw = [
                received_field(&self.inbox.hostname, &facts, &id).as_bytes(),
                &body,
            ]
            .concat();
            match self.inbox.store.receive(
                &id,
                &raw,
                &serde_json::to_value(&facts).unwrap_or_default(),
            ) {
                Ok(true) => taken.push(id),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a test message");
                    return "451 4.3.0 cannot store the message now; try again later".into();
                }
            }
        }
        if taken.is_empty() {
            self.inbox
                .metrics
                .inc("netjes_smtp_messages_total", &[("result", "closed")]);
            return "554 5.7.1 the test is closed (it took a message already, or expired)".into();
        }
        self.inbox
            .metrics
            .inc("netjes_smtp_messages_total", &[("result", "accepted")]);
        let first = taken[0].clone();
        for id in taken {
            let inbox = self.inbox.clone();
            tokio::spawn(async move { inbox.analyze(&id).await });
        }
        format!("250 2.0.0 ok: queued as {first}")
    }
}

/// Our Received field, in Postfix's form, which the analyzer (and
/// mail-parser) read for the TLS of the hop.
fn received_field(hostname: &str, f: &Facts, id: &str) -> String {
    let literal = match f.ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("IPv6:{a}"),
    };
    let tls = match (&f.tls_version, &f.tls_cipher) {
        (Some(v), Some(c)) => format!("\r\n\t(using {v} with cipher {c})"),
        _ => String::new(),
    };
    let with = if f.tls_version.is_some() {
        "ESMTPS"
    } else {
        "ESMTP"
    };
    // The HELO is the client's word: only printable ASCII without the
    // characters that would end the comment or the field.
    let helo: String = f
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()<>;\\".contains(*c))
        .take(255)
        .collect();
    let rcpt: String = f
        .rcpt
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"<>;".contains(*c))
        .collect();
    format!("Received: from {helo} ([{literal}]){tls}\r\n\tby {hostname} (netjes) with {with} id {id}\r\n\tfor <{rcpt}>; {}\r\n", mail_parser::DateTime::from_timestamp(f.received_at).to_rfc822())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_received_field() {
        let f = Facts {
            ip: "192.0.2.1".parse().unwrap(),
            helo: "evil)\r\nX-Injected: 1".into(),
            mail_from: "a@b".into(),
            rcpt: "id@t.example".into(),
            tls_version: Some("TLSv1.3".into()),
            tls_cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
            received_at: 1795510800,
        };
        let r = received_field("mx.t.example", &f, "id");
        assert!(r.starts_with("Received: from evilX-Injected:1 ([192.0.2.1])\r\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\tby mx.t.example (netjes) with ESMTPS id id"), "{r}");
        let text = format!("{r}Subject: x\r\n\r\nx\r\n");
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        let rec = parsed.received().unwrap();
        assert_eq!(rec.from_ip(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(rec.date().map(|d| d.to_timestamp()), Some(1795510800));
        assert!(r.ends_with("; Tue, 24 Nov 2026 09:00:00 +0000\r\n"), "{r}");
    }
}
