//! Reports from an IMAP mailbox (`[[reports.imap]]`): each round logs in,
//! reads every mail in the folder once, stores its reports by the intake's
//! rules, then moves the mail (or deletes it); between rounds it waits in
//! IDLE where the server has it (RFC 2177), so new reports come in at
//! once, or sleeps the interval.
//!
//! A mail is moved or deleted only after its reports (or its rejection)
//! are stored; a store failure ends the round with the mail left in place.
//! A mail over the size limit is recorded as rejected and moved along, so
//! that one bad mail cannot stop the mailbox.

use crate::config::{ImapAccount, ImapTls};
use crate::report_intake::{Intake, Trust};
use futures_util::TryStreamExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Mails read per round: a mailbox with years of reports is worked
/// through over several rounds, each short.
const PER_ROUND: usize = 500;
/// Connecting, TLS, login, and each command.
const STEP: Duration = Duration::from_secs(60);

/// The connection, in the clear or over TLS.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Session = async_imap::Session<Conn>;

/// Why a round ended early.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connecting to {0}: {1}")]
    Connect(String, String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the password file {0}")]
    Password(String),
    #[error("the server refused the login: {0}")]
    Login(String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("the server took longer than {0:?}")]
    Timeout(Duration),
    #[error("the store: {0}")]
    Store(#[from] crate::store::StoreError),
}

async fn step<T, E: Into<ImapError>>(f: impl std::future::Future<Output = Result<T, E>>) -> Result<T, ImapError> {
    tokio::time::timeout(STEP, f).await.map_err(|_| ImapError::Timeout(STEP))?.map_err(Into::into)
}

/// The password on the file's first line (netjes_net::read_secret_file).
fn password(path: &std::path::Path) -> Result<String, ImapError> {
    netjes_net::read_secret_file(path).map_err(ImapError::Password)
}

/// Connects, protects and logs in; then selects the folder.
async fn open(a: &ImapAccount) -> Result<Session, ImapError> {
    let pass = password(&a.password_file)?;
    let addr = format!("{}:{}", a.server, a.port);
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(&addr))
        .await
        .map_err(|_| ImapError::Timeout(STEP))?
        .map_err(|e| ImapError::Connect(addr.clone(), e.to_string()))?;
    let tls_cfg = || netjes_check::tls::client_config(a.ca_file.as_deref()).map_err(ImapError::Tls);
    let conn = match a.tls {
        ImapTls::Implicit => {
            let s = step(async { netjes_check::tls::handshake(tls_cfg()?, &a.server, tcp).await.map_err(ImapError::Tls) }).await?;
            Conn::Tls(Box::new(s))
        }
        ImapTls::StartTls => {
            let mut c = async_imap::Client::new(Conn::Plain(tcp));
            greeting(&mut c).await?;
            step(c.run_command_and_check_ok("STARTTLS", None)).await?;
            let Conn::Plain(tcp) = c.into_inner() else { unreachable!("a plain connection was made") };
            // RFC 3501 §6.2.1: no greeting follows the handshake.
            let s = step(async { netjes_check::tls::handshake(tls_cfg()?, &a.server, tcp).await.map_err(ImapError::Tls) }).await?;
            return login(async_imap::Client::new(Conn::Tls(Box::new(s))), a, &pass).await;
        }
        ImapTls::None => Conn::Plain(tcp),
    };
    let mut c = async_imap::Client::new(conn);
    greeting(&mut c).await?;
    login(c, a, &pass).await
}

async fn greeting(c: &mut async_imap::Client<Conn>) -> Result<(), ImapError> {
    match step(async { c.read_response().await.map_err(async_imap::error::Error::from) }).await? {
        Some(_) => Ok(()),
        None => Err(ImapError::Connect(String::new(), "the server closed the connection before its greeting".into())),
    }
}

async fn login(c: async_imap::Client<Conn>, a: &ImapAccount, pass: &str) -> Result<Session, ImapError> {
    let mut s = tokio::time::timeout(STEP, c.login(&a.user, pass))
        .await
        .map_err(|_| ImapError::Timeout(STEP))?
        .map_err(|(e, _)| ImapError::Login(e.to_string()))?;
    step(s.select(&a.folder)).await?;
    Ok(s)
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub mails: usize,
    pub reports: usize,
    pub rejected: usize,
}

/// Reads up to PER_ROUND mails of the selected folder; each is moved or
/// deleted once its reports are stored.
async fn round(s: &mut Session, a: &ImapAccount, intake: &Intake) -> Result<Round, ImapError> {
    let mut uids: Vec<u32> = step(s.uid_search("UNDELETED")).await?.into_iter().collect();
    uids.sort_unstable();
    uids.truncate(PER_ROUND);
    let caps = step(s.capabilities()).await?;
    let (has_move, has_uidplus) = (caps.has_str("MOVE"), caps.has_str("UIDPLUS"));
    if let Some(folder) = &a.move_to {
        // Made once; "already exists" is the usual answer.
        let _ = step(s.create(folder)).await;
    }
    let trust = if a.trusted { Trust::User } else { Trust::Authenticate };
    let source = format!("imap {}", a.name);
    let max = u32::try_from(intake.cfg.limits.max_report_bytes).unwrap_or(u32::MAX);
    let mut done = Round::default();
    for uid in uids {
        let set = uid.to_string();
        let size = {
            let f: Vec<_> = step(async { s.uid_fetch(&set, "RFC822.SIZE").await?.try_collect::<Vec<_>>().await }).await?;
            f.first().and_then(|f| f.size).unwrap_or(0)
        };
        if size > max {
            intake.store.add_rejected(&source, &format!("the mail has {size} octets; at most {max} are read"), &[])?;
            done.rejected += 1;
        } else {
            let f: Vec<_> = step(async { s.uid_fetch(&set, "BODY.PEEK[]").await?.try_collect::<Vec<_>>().await }).await?;
            let Some(raw) = f.first().and_then(|f| f.body()) else { continue };
            let outcomes = intake.take_mail(raw, None, trust, &source).await?;
            done.reports += outcomes.iter().filter(|o| o.result != "rejected").count();
            done.rejected += outcomes.iter().filter(|o| o.result == "rejected").count();
        }
        done.mails += 1;
        match &a.move_to {
            Some(folder) if has_move => step(s.uid_mv(&set, folder)).await?,
            Some(folder) => {
                step(s.uid_copy(&set, folder)).await?;
                delete(s, &set, has_uidplus).await?;
            }
            None => delete(s, &set, has_uidplus).await?,
        }
    }
    Ok(done)
}

/// Marks a mail deleted and expunges it: by UID where the server has
/// UIDPLUS (RFC 4315), so that no other mail marked deleted goes with it.
async fn delete(s: &mut Session, set: &str, uidplus: bool) -> Result<(), ImapError> {
    step(async { s.uid_store(set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await }).await?;
    if uidplus {
        step(async { s.uid_expunge(set).await?.try_collect::<Vec<_>>().await }).await?;
    } else {
        step(async { s.expunge().await?.try_collect::<Vec<_>>().await }).await?;
    }
    Ok(())
}

/// Waits for new mail: in IDLE up to the interval where the server has
/// it (re-issued within RFC 2177's 29 minutes), else sleeping it. `None`
/// when the session was lost or netjes is stopping.
async fn wait(mut s: Session, idle: bool, interval: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> Option<Session> {
    if !idle {
        tokio::select! {
            _ = tokio::time::sleep(interval) => return Some(s),
            _ = stop.wait_for(|v| *v) => return None,
        }
    }
    // A server that hears nothing in IDLE for 30 minutes may hang up.
    let interval = interval.min(Duration::from_secs(29 * 60));
    s.noop().await.ok()?;
    let mut h = s.idle();
    step(h.init()).await.ok()?;
    {
        let (news, _interrupt) = h.wait_with_timeout(interval);
        tokio::select! {
            r = news => { r.ok()?; }
            _ = stop.wait_for(|v| *v) => return None,
        }
    }
    step(h.done()).await.ok()
}

/// Polls one mailbox until `stop` turns true. Errors are logged and
/// counted, and the next round comes an interval later with a fresh login.
pub async fn run(a: ImapAccount, intake: Arc<Intake>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let m = intake.metrics.clone();
    m.describe("netjes_report_imap_rounds_total", "Rounds of reading an IMAP mailbox for reports, by mailbox and result.");
    m.describe("netjes_report_imap_mails_total", "Mails read from IMAP mailboxes, by mailbox.");
    let mut session: Option<(Session, bool)> = None;
    // One instance of several reads the mailbox, for as long as its
    // session lasts (jobs.rs).
    let mut lead: Option<crate::jobs::JobLock>;
    while !*stop.borrow() {
        if session.is_none() {
            lead = intake.store.job_lock(&format!("imap:{}", a.name)).unwrap_or_else(|e| {
                tracing::warn!(mailbox = %a.name, error = %e, "cannot tell whether another instance reads the mailbox");
                None
            });
            if lead.is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(a.interval) => {}
                    _ = stop.wait_for(|v| *v) => {}
                }
                continue;
            }
        }
        let opened = match session.take() {
            Some(s) => Ok(s),
            None => match open(&a).await {
                Ok(mut s) => match step(s.capabilities()).await {
                    Ok(c) => Ok((s, c.has_str("IDLE"))),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        let failure = match opened {
            Ok((mut s, idle)) => match round(&mut s, &a, &intake).await {
                Ok(r) => {
                    m.inc("netjes_report_imap_rounds_total", &[("mailbox", &a.name), ("result", "ok")]);
                    for _ in 0..r.mails {
                        m.inc("netjes_report_imap_mails_total", &[("mailbox", &a.name)]);
                    }
                    if r.mails > 0 {
                        tracing::info!(mailbox = %a.name, mails = r.mails, reports = r.reports, rejected = r.rejected, "reports read from IMAP");
                    }
                    session = wait(s, idle, a.interval, &mut stop).await.map(|s| (s, idle));
                    None
                }
                Err(e) => Some(e),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = failure {
            m.inc("netjes_report_imap_rounds_total", &[("mailbox", &a.name), ("result", "error")]);
            tracing::warn!(mailbox = %a.name, error = %e, "reading reports over IMAP failed; trying again after the interval");
            tokio::select! {
                _ = tokio::time::sleep(a.interval) => {}
                _ = stop.wait_for(|v| *v) => {}
            }
        }
    }
}
