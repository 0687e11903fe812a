//! What the daemons share: where they listen, in the notations Postfix
//! admins already write (`inet:HOST:PORT` as Postfix's
//! check_policy_service, `inet:PORT@HOST` as OpenDKIM's Socket, and
//! `unix:PATH`), one listener type for TCP and unix sockets, one accept
//! loop with a connection limit, address lists, and metrics.

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
            Ok(ListenAddr::Inet(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }))
        } else if let Some(p) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
            if p.is_empty() {
                return Err(format!("{s}: no path"));
            }
            Ok(ListenAddr::Unix(PathBuf::from(p)))
        } else {
            Err(format!(
                "{s}: use inet:HOST:PORT, inet:PORT@HOST or unix:PATH"
            ))
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

/// A network ("192.0.2.0/24") or one address ("192.0.2.1"), as the
/// configuration files write them.
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or network"))
}

/// Parses a list of networks, every bad entry reported as "what: error".
pub fn parse_nets(what: &str, list: &[String], errors: &mut Vec<String>) -> Vec<ipnet::IpNet> {
    list.iter()
        .filter_map(|s| match parse_net(s) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                None
            }
        })
        .collect()
}

/// Parses `HOST:PORT` for the setting `what`, an error reported as "what: ...".
pub fn parse_socket_addr(
    what: &str,
    value: &str,
    errors: &mut Vec<String>,
) -> Option<std::net::SocketAddr> {
    value
        .parse()
        .map_err(|_| errors.push(format!("{what}: {value:?} is not HOST:PORT")))
        .ok()
}

/// Whether `ip` is in one of `nets`; an IPv4-mapped IPv6 address counts
/// as the IPv4 address it maps (Postfix on a dual-stack socket).
pub fn in_nets(nets: &[ipnet::IpNet], ip: std::net::IpAddr) -> bool {
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

/// Configuration files, tables and lists are read whole; a file larger
/// than this is a mistake (a log, a mailbox), not a configuration. OpenDKIM
/// tables of a hosting provider with ten thousand domains are about 1 MB.
pub const MAX_CONFIG_FILE: u64 = 16 * 1024 * 1024;

/// Reads a configuration file, table or list, refusing one over
/// [`MAX_CONFIG_FILE`] before reading it. Errors name the file.
pub fn read_config_file(path: &std::path::Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_CONFIG_FILE {
        return Err(format!(
            "{}: {} octets, over the limit of {MAX_CONFIG_FILE} for a configuration file",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// This host's name, for Received-SPF and Authentication-Results when the
/// configuration does not name one.
pub fn default_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Accepts connections until `shutdown` turns true, at most `max` at a
/// time (the next waits for a free slot), each served by `serve` in its own
/// task. Connections in progress finish on their own.
pub async fn serve<F, Fut>(
    listener: Listener,
    max: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Box<dyn Stream>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => {
                    let work = serve(s);
                    tokio::spawn(async move {
                        work.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: wait a little rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
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
        assert_eq!(
            ListenAddr::parse("inet:127.0.0.1:10040"),
            Ok(ListenAddr::Inet("127.0.0.1:10040".into()))
        );
        assert_eq!(
            ListenAddr::parse("inet:[::1]:10040"),
            Ok(ListenAddr::Inet("[::1]:10040".into()))
        );
        assert_eq!(
            ListenAddr::parse("inet:8891@127.0.0.1"),
            Ok(ListenAddr::Inet("127.0.0.1:8891".into()))
        );
        assert_eq!(
            ListenAddr::parse("inet:8891@[::1]"),
            Ok(ListenAddr::Inet("[::1]:8891".into()))
        );
        assert_eq!(
            ListenAddr::parse("unix:/run/x.sock"),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            ListenAddr::parse("local:/run/x.sock"),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        for bad in [
            "127.0.0.1:1",
            "inet:host:x",
            "inet::1",
            "unix:",
            "inet:h:99999",
            "inet:99999@h",
        ] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn networks() {
        let mut errors = Vec::new();
        let nets = parse_nets(
            "trusted",
            &["127.0.0.0/8".into(), "::1".into(), "10.0.0.0/33".into()],
            &mut errors,
        );
        assert_eq!(nets.len(), 2);
        assert_eq!(
            errors,
            vec!["trusted: \"10.0.0.0/33\" is not an address or network"]
        );
        assert!(
            in_nets(&nets, "127.0.0.1".parse().unwrap())
                && in_nets(&nets, "::ffff:127.0.0.1".parse().unwrap())
        );
        assert!(!in_nets(&nets, "192.0.2.1".parse().unwrap()));
    }
}
