//! The policy server: any number of connections, any number of requests on
//! each. A malformed or oversized request closes its own connection only;
//! idle connections are closed; the number of connections is bounded.

use crate::policy::Policy;
use crate::protocol::{reply, RequestBuilder, MAX_LINE_BYTES};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// Postfix closes an idle policy connection after 300 s
/// (smtpd_policy_service_max_idle); a little more than that here.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(330);
/// Postfix runs at most default_process_limit (100) smtpd processes, each
/// with one connection; many MX hosts may share one service.
pub const MAX_CONNECTIONS: usize = 1000;

/// Where to listen, in Postfix's and OpenDKIM's notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Inet(String),
    Unix(PathBuf),
}

impl ListenAddr {
    /// "inet:127.0.0.1:10040", "inet:[::1]:10040", "unix:/run/netjes/policy.sock".
    pub fn parse(s: &str) -> Result<ListenAddr, String> {
        if let Some(rest) = s.strip_prefix("inet:") {
            let addr = rest.replace(['[', ']'], "");
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{s}: no port"))?;
            port.parse::<u16>().map_err(|_| format!("{s}: bad port"))?;
            if host.is_empty() {
                return Err(format!("{s}: no host"));
            }
            Ok(ListenAddr::Inet(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }))
        } else if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(format!("{s}: no path"));
            }
            Ok(ListenAddr::Unix(PathBuf::from(p)))
        } else {
            Err(format!("{s}: use inet:HOST:PORT or unix:PATH"))
        }
    }
}

/// A bound listener of either kind.
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    pub async fn bind(a: &ListenAddr) -> std::io::Result<Listener> {
        match a {
            ListenAddr::Inet(s) => Ok(Listener::Tcp(tokio::net::TcpListener::bind(s).await?)),
            ListenAddr::Unix(p) => {
                // A socket left by a killed process would block the bind.
                if std::fs::symlink_metadata(p).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(p);
                }
                Ok(Listener::Unix(tokio::net::UnixListener::bind(p)?))
            }
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Serves one connection until the client closes it, it idles out, or it
/// sends something that is not a policy request.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, policy: Arc<Policy>) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut builder = RequestBuilder::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Read at most one line plus one byte: a longer one is an error,
        // and never a buffer that grows without end.
        let read = tokio::time::timeout(IDLE_TIMEOUT, (&mut r).take(MAX_LINE_BYTES as u64 + 2).read_until(b'\n', &mut line)).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if line.last() != Some(&b'\n') {
            tracing::warn!("policy request line over {MAX_LINE_BYTES} octets or cut off: closing the connection");
            policy.metrics.inc("netjes_policy_errors_total", &[("kind", "protocol")]);
            return;
        }
        line.pop();
        match builder.line(&line) {
            Ok(None) => {}
            Ok(Some(req)) => {
                let d = policy.decide(&req, now()).await;
                tracing::debug!(action = %d.action, check = d.check, "answered");
                if w.write_all(reply(&d.action).as_bytes()).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("malformed policy request: {e}; closing the connection");
                policy.metrics.inc("netjes_policy_errors_total", &[("kind", "protocol")]);
                return;
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true, then stops accepting
/// (connections in progress finish on their own).
pub async fn run(listener: Listener, policy: Arc<Policy>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    // State expires by itself: every ten minutes, and once at start.
    let expirer = {
        let policy = policy.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                policy.expire(now()).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        })
    };
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let policy = policy.clone();
        tokio::select! {
            r = accept(&listener) => match r {
                Ok(Conn::Tcp(s)) => { tokio::spawn(async move { serve_connection(s, policy).await; drop(permit); }); }
                Ok(Conn::Unix(s)) => { tokio::spawn(async move { serve_connection(s, policy).await; drop(permit); }); }
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    expirer.abort();
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Tcp(t) => t.accept().await.map(|(s, _)| Conn::Tcp(s)),
        Listener::Unix(u) => u.accept().await.map(|(s, _)| Conn::Unix(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_syntax() {
        assert_eq!(ListenAddr::parse("inet:127.0.0.1:10040"), Ok(ListenAddr::Inet("127.0.0.1:10040".into())));
        assert_eq!(ListenAddr::parse("inet:[::1]:10040"), Ok(ListenAddr::Inet("[::1]:10040".into())));
        assert_eq!(ListenAddr::parse("unix:/run/x.sock"), Ok(ListenAddr::Unix("/run/x.sock".into())));
        for bad in ["127.0.0.1:1", "inet:host", "inet::1", "unix:", "inet:h:99999"] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
