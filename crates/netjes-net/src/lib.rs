//! Where the daemons listen, in the notations Postfix admins already write:
//! `inet:HOST:PORT` (Postfix's check_policy_service), `inet:PORT@HOST`
//! (OpenDKIM's Socket), and `unix:PATH`. One listener type for TCP and
//! unix sockets, so each daemon's accept loop is written once.

pub mod metrics;

use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// "HOST:PORT", ready for bind ("[::1]:10040" for IPv6).
    Inet(String),
    Unix(PathBuf),
}

impl ListenAddr {
    pub fn parse(s: &str) -> Result<ListenAddr, String> {
        if let Some(rest) = s.strip_prefix("inet:").or_else(|| s.strip_prefix("inet6:")) {
            // OpenDKIM: inet:8891@127.0.0.1 (or inet:8891 for all addresses).
            let (host, port) = match rest.split_once('@') {
                Some((port, host)) => (host.trim_matches(['[', ']']).to_string(), port.to_string()),
                None => {
                    let r = rest.replace(['[', ']'], "");
                    match r.rsplit_once(':') {
                        Some((h, p)) => (h.to_string(), p.to_string()),
                        None => ("0.0.0.0".to_string(), r),
                    }
                }
            };
            port.parse::<u16>().map_err(|_| format!("{s}: bad port"))?;
            if host.is_empty() {
                return Err(format!("{s}: no host"));
            }
            Ok(ListenAddr::Inet(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }))
        } else if let Some(p) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
            if p.is_empty() {
                return Err(format!("{s}: no path"));
            }
            Ok(ListenAddr::Unix(PathBuf::from(p)))
        } else {
            Err(format!("{s}: use inet:HOST:PORT, inet:PORT@HOST or unix:PATH"))
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Inet(a) => write!(f, "inet:{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connection of either kind.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

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

    pub async fn accept(&self) -> std::io::Result<Box<dyn Stream>> {
        match self {
            Listener::Tcp(t) => {
                let (s, _) = t.accept().await?;
                s.set_nodelay(true)?;
                Ok(Box::new(s))
            }
            Listener::Unix(u) => Ok(Box::new(u.accept().await?.0)),
        }
    }

    /// The TCP address bound, for tests that bind port 0.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listener::Tcp(t) => t.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations() {
        assert_eq!(ListenAddr::parse("inet:127.0.0.1:10040"), Ok(ListenAddr::Inet("127.0.0.1:10040".into())));
        assert_eq!(ListenAddr::parse("inet:[::1]:10040"), Ok(ListenAddr::Inet("[::1]:10040".into())));
        assert_eq!(ListenAddr::parse("inet:8891@127.0.0.1"), Ok(ListenAddr::Inet("127.0.0.1:8891".into())));
        assert_eq!(ListenAddr::parse("inet:8891@[::1]"), Ok(ListenAddr::Inet("[::1]:8891".into())));
        assert_eq!(ListenAddr::parse("unix:/run/x.sock"), Ok(ListenAddr::Unix("/run/x.sock".into())));
        assert_eq!(ListenAddr::parse("local:/run/x.sock"), Ok(ListenAddr::Unix("/run/x.sock".into())));
        for bad in ["127.0.0.1:1", "inet:host:x", "inet::1", "unix:", "inet:h:99999", "inet:99999@h"] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
