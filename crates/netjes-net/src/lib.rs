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

/// How many connections a daemon holds, and from whom. A stranger must not
/// be able to take them all: before, 1,000 idle local connections left
/// Postfix without an answer from the milter and the policy service for
/// minutes.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Connections at once, in all.
    pub max: usize,
    /// From one address, unless it is one of `mta`.
    pub per_client: usize,
    /// Slots that only `mta` addresses (and unix-socket clients, whom the
    /// socket's file mode admits) may take.
    pub reserved: usize,
    /// The MTA's own addresses.
    pub mta: Vec<ipnet::IpNet>,
}

impl ConnLimits {
    /// `max` at once, no other rule (the metrics endpoint).
    pub fn total(max: usize) -> ConnLimits {
        ConnLimits {
            max,
            per_client: max,
            reserved: 0,
            mta: Vec::new(),
        }
    }

    /// Loopback is the MTA's by default: Postfix on the same host.
    pub fn for_mta(max: usize, per_client: usize, reserved: usize, mta: Vec<ipnet::IpNet>) -> ConnLimits {
        ConnLimits {
            max,
            per_client,
            reserved: reserved.min(max),
            mta,
        }
    }
}

/// The `[connections]` table of the milter's and the policy service's
/// configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConnLimits {
    pub max: usize,
    pub per_client: usize,
    pub reserved: usize,
    pub mta_addresses: Vec<String>,
}

impl Default for RawConnLimits {
    /// Postfix runs at most 100 smtpd processes (default_process_limit),
    /// each with one connection; loopback is Postfix on this host.
    fn default() -> Self {
        RawConnLimits {
            max: 1000,
            per_client: 100,
            reserved: 100,
            mta_addresses: vec!["127.0.0.1".into(), "::1".into()],
        }
    }
}

impl RawConnLimits {
    pub fn validate(&self, errors: &mut Vec<String>) -> ConnLimits {
        if self.max == 0 || self.per_client == 0 || self.reserved >= self.max {
            errors.push("connections: max and per_client at least 1, reserved under max".into());
        }
        let mta = parse_nets("connections.mta_addresses", &self.mta_addresses, errors);
        ConnLimits::for_mta(self.max.max(1), self.per_client, self.reserved, mta)
    }
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_addr: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// The connections a daemon holds, within its [`ConnLimits`]; shared by
/// every accept loop (the milter, the policy service, the web UI).
#[derive(Debug)]
pub struct Slots {
    limits: ConnLimits,
    held: std::sync::Mutex<Held>,
}

/// One connection held; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct Slot {
    slots: std::sync::Arc<Slots>,
    peer: Option<std::net::IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut h = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        h.total = h.total.saturating_sub(1);
        if let Some(ip) = self.peer {
            if let Some(n) = h.by_addr.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    h.by_addr.remove(&ip);
                }
            }
        }
    }
}

impl Slots {
    pub fn new(limits: ConnLimits) -> std::sync::Arc<Slots> {
        std::sync::Arc::new(Slots {
            limits,
            held: std::sync::Mutex::default(),
        })
    }

    /// A slot for one more connection from `peer` (none: a unix socket),
    /// or None when the limits say no.
    pub fn hold(self: &std::sync::Arc<Self>, peer: Option<std::net::IpAddr>) -> Option<Slot> {
        let peer = peer.map(canonical_ip);
        let l = &self.limits;
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mta = peer.is_none_or(|ip| in_nets(&l.mta, ip));
        let room = if mta { l.max } else { l.max - l.reserved };
        if h.total >= room {
            return None;
        }
        if let (Some(ip), false) = (peer, mta) {
            if h.by_addr.get(&ip).copied().unwrap_or(0) >= l.per_client {
                return None;
            }
        }
        h.total += 1;
        if let Some(ip) = peer {
            *h.by_addr.entry(ip).or_default() += 1;
        }
        Some(Slot {
            slots: self.clone(),
            peer,
        })
    }
}

/// Accepts connections until `shutdown` turns true, each served by `serve`
/// in its own task, within `limits`: a connection over them is closed at
/// once (the MTA falls back to its default action rather than waiting in
/// the kernel's queue). Connections in progress finish on their own.
pub async fn serve<F, Fut>(
    listener: Listener,
    limits: ConnLimits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Box<dyn Stream>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Slots::new(limits);
    loop {
        tokio::select! {
            r = listener.accept_from() => match r {
                Ok((s, peer)) => {
                    let Some(slot) = slots.hold(peer.map(|p| p.ip())) else {
                        tracing::debug!(peer = ?peer, "connection limit reached: closed");
                        continue;
                    };
                    let work = serve(s);
                    tokio::spawn(async move {
                        work.await;
                        drop(slot);
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

/// Whether an address is a public one that netjes may connect to for a
/// visitor: not loopback, private (RFC 1918, unique-local), link-local,
/// shared (CGNAT), multicast, broadcast, unspecified or reserved, in IPv4,
/// IPv6, IPv4-mapped and NAT64 (64:ff9b::/96) form. What netjes fetches
/// for a stranger must never reach the host's or the LAN's own services.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    fn v4(a: Ipv4Addr) -> bool {
        let o = a.octets();
        !(a.is_loopback()
            || a.is_private()
            || a.is_link_local()
            || a.is_multicast()
            || a.is_broadcast()
            || a.is_unspecified()
            || o[0] == 0
            || (o[0] == 100 && (64..128).contains(&o[1]))
            || (o[0] == 192 && o[1] == 0 && o[2] == 0)
            || o[0] >= 240)
    }
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            if let Some(m) = a.to_ipv4_mapped() {
                return v4(m);
            }
            let seg = a.segments();
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = a.octets();
                return v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                // ::/96, the deprecated IPv4-compatible form.
                || seg[..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// A state directory for one daemon: made 0700 whatever the umask, and
/// refused when everyone may write to it (anyone could swap its files).
pub fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let show = |e: std::io::Error| format!("{}: {e}", dir.display());
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(show)?;
        // DirBuilder's mode is masked by the umask, never widened: set it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(show)?;
    }
    let mode = std::fs::metadata(dir).map_err(show)?.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(format!(
            "{}: everyone may write to this directory; chmod 700 it",
            dir.display()
        ));
    }
    Ok(())
}

/// A state file made (empty) with mode 0600 before anything opens it, so
/// that SQLite, which gives its -wal and -shm files the database's mode,
/// makes them 0600 too; an existing one is brought to 0600.
pub fn private_file(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let show = |e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(show)?;
    let mode = std::fs::metadata(path).map_err(show)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(show)?;
    }
    Ok(())
}

/// A secret (a password) on a file's first line. A file others may read
/// is refused, as ssh refuses such a key, and so is an empty one.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let show = |e: std::io::Error| format!("{}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(show)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!("{}: others may read it; chmod 600 it", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(show)?;
    let secret = text.lines().next().unwrap_or("").to_string();
    if secret.is_empty() {
        return Err(format!("{}: it is empty", path.display()));
    }
    Ok(secret)
}

/// IPv4-mapped IPv6 as the IPv4 address it is, so one client is one key.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(ip),
        v4 => v4,
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
        Ok(self.accept_from().await?.0)
    }

    /// A connection and the peer's address (none on a unix socket).
    pub async fn accept_from(
        &self,
    ) -> std::io::Result<(Box<dyn Stream>, Option<std::net::SocketAddr>)> {
        match self {
            Listener::Tcp(t) => {
                let (s, peer) = t.accept().await?;
                s.set_nodelay(true)?;
                Ok((Box::new(s), Some(peer)))
            }
            Listener::Unix(u) => Ok((Box::new(u.accept().await?.0), None)),
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
    fn connection_limits_keep_room_for_the_mta() {
        let slots = Slots::new(ConnLimits::for_mta(10, 3, 4, vec![parse_net("127.0.0.1").unwrap()]));
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        let kept = std::cell::RefCell::new(Vec::new());
        let take = |peer, n: usize| {
            let got: Vec<Slot> = (0..n).filter_map(|_| slots.hold(peer)).collect();
            let c = got.len();
            kept.borrow_mut().extend(got);
            c
        };
        // One stranger: three.
        assert_eq!(take(ip("192.0.2.1"), 5), 3);
        // Strangers together: up to max - reserved (6).
        assert_eq!((0..9).map(|i| take(ip(&format!("192.0.2.{}", 10 + i)), 1)).sum::<usize>(), 3);
        assert_eq!(take(ip("::ffff:192.0.2.99"), 1), 0);
        // The MTA: the reserve, and no per-client cap.
        assert_eq!(take(ip("127.0.0.1"), 9), 4);
        kept.borrow_mut().remove(0);
        assert_eq!(take(None, 2), 1, "a unix-socket client is the MTA's");
    }

    #[test]
    fn public_addresses() {
        for ip in ["8.8.8.8", "2a00:1450::1", "192.0.2.1", "64:ff9b::808:808"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
            "100.64.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "255.255.255.255", "240.0.0.1",
            "::1", "::", "fc00::1", "fd12::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1",
            "::ffff:10.1.1.1", "64:ff9b::7f00:1", "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
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
