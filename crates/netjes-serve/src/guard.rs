//! What one client may take from everyone else, decided free of IO: the
//! client's address behind a proxy, login attempts, and per-client rates.
//!
//! Logins: an attempt is counted when it is admitted, before the password
//! is hashed, under one lock, so 60 parallel guesses from one address
//! admit 10 and refuse 50 (before, the count was read before the hash and
//! written after it, and 42 of 60 were tried). Each admitted attempt also
//! needs one of a few hashing slots (argon2 costs some 19 MiB each), so
//! memory stays bounded whatever the number of clients. Per account,
//! failures bring a growing delay before the next attempt is admitted,
//! not a lock-out: the owner with the right password gets in once it has
//! passed, an attacker with many addresses gets a few guesses an hour.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The client's address: the peer, or, when the peer is one of the
/// `trusted` proxies, the nearest address in X-Forwarded-For that is not
/// a trusted proxy (the last hop a proxy of ours vouches for). A header
/// from anyone else is ignored: it is the client's own word.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&canonical(ip)));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    return client;
                }
            }
            // A hop we cannot read ends what we can vouch for.
            Err(_) => return client,
        }
    }
    client
}

/// IPv4-mapped IPv6 as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Attempts per address and window; failures per account before delays.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_addr: u32,
    pub window: i64,
    /// Failures of one account before each further attempt waits.
    pub free_failures: u32,
    /// The longest wait between attempts on one account.
    pub max_delay: i64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_addr: 10,
            window: 15 * 60,
            free_failures: 5,
            max_delay: 15 * 60,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    attempts: u32,
    failures: u32,
    since: i64,
    last_failure: i64,
    in_flight: u32,
}

/// Why an attempt was not admitted; the seconds to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Address(i64),
    Account(i64),
}

impl Refused {
    pub fn retry_after(self) -> i64 {
        match self {
            Refused::Address(s) | Refused::Account(s) => s.max(1),
        }
    }
}

#[derive(Debug, Default)]
pub struct LoginGuard {
    limits: LoginLimits,
    state: Mutex<(HashMap<IpAddr, Tally>, HashMap<String, Tally>)>,
}

/// An admitted attempt; report its outcome with [`LoginGuard::finish`].
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    addr: IpAddr,
    user: String,
}

impl LoginGuard {
    pub fn new(limits: LoginLimits) -> LoginGuard {
        LoginGuard {
            limits,
            state: Mutex::default(),
        }
    }

    /// Admits an attempt and counts it, or says why not.
    pub fn admit(&self, addr: IpAddr, user: &str, now: i64) -> Result<Attempt, Refused> {
        self.admit_shared(addr, user, now, (0, 0))
    }

    /// As `admit`, with the account's failures as the other instances of
    /// a cluster counted them (failures, last failure; from the store):
    /// the larger count and the later failure hold.
    pub fn admit_shared(&self, addr: IpAddr, user: &str, now: i64, shared: (u32, i64)) -> Result<Attempt, Refused> {
        let l = self.limits;
        let user = user.trim().to_ascii_lowercase();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (addrs, users) = &mut *st;
        if shared.0 > 0 {
            let u = users.entry(user.clone()).or_default();
            u.failures = u.failures.max(shared.0);
            u.last_failure = u.last_failure.max(shared.1);
        }
        // Forget what is older than the window (when nothing is running).
        addrs.retain(|_, t| t.in_flight > 0 || now - t.since < l.window);
        users.retain(|_, t| t.in_flight > 0 || now - t.last_failure < l.window.max(l.max_delay));
        let a = addrs.entry(addr).or_insert(Tally {
            since: now,
            ..Default::default()
        });
        if a.attempts >= l.per_addr {
            return Err(Refused::Address(a.since + l.window - now));
        }
        let u = users.get(&user).copied().unwrap_or_default();
        if u.failures >= l.free_failures {
            let exp = (u.failures - l.free_failures).min(20);
            let delay = (1i64 << exp).min(l.max_delay);
            let wait = u.last_failure + delay - now;
            if wait > 0 || u.in_flight > 0 {
                return Err(Refused::Account(wait.max(1)));
            }
        }
        a.attempts += 1;
        a.in_flight += 1;
        users.entry(user.clone()).or_default().in_flight += 1;
        Ok(Attempt { addr, user })
    }

    /// How long an account's failures are remembered.
    pub fn forget_after(&self) -> i64 {
        self.limits.window.max(self.limits.max_delay)
    }

    /// The outcome of an admitted attempt: a success clears the account's
    /// failures (the address keeps its count for the window).
    pub fn finish(&self, attempt: Attempt, ok: bool, now: i64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (addrs, users) = &mut *st;
        if let Some(a) = addrs.get_mut(&attempt.addr) {
            a.in_flight = a.in_flight.saturating_sub(1);
        }
        let u = users.entry(attempt.user).or_default();
        u.in_flight = u.in_flight.saturating_sub(1);
        if ok {
            u.failures = 0;
        } else {
            u.failures += 1;
            u.last_failure = now;
        }
    }
}

/// At most `limit` events per key in a sliding hour-long (or `window`)
/// window: new tests per client address.
#[derive(Debug)]
pub struct RateWindow {
    limit: u32,
    window: i64,
    seen: Mutex<HashMap<IpAddr, (u32, i64)>>,
}

impl RateWindow {
    pub fn new(limit: u32, window: i64) -> RateWindow {
        RateWindow {
            limit,
            window,
            seen: Mutex::default(),
        }
    }

    /// Counts one event; false when the client is over its limit.
    pub fn allow(&self, key: IpAddr, now: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, (_, since)| now - *since < self.window);
        }
        let e = seen.entry(key).or_insert((0, now));
        if now - e.1 >= self.window {
            *e = (0, now);
        }
        if e.0 >= self.limit {
            return false;
        }
        e.0 += 1;
        true
    }
}

/// The visitor's CSRF token, bound to this server: a random nonce and its
/// HMAC under a key derived from the master key. A value an attacker makes
/// up (before, any 43 characters were taken) does not verify, so a
/// cross-site form cannot bring its own cookie and token.
pub fn visitor_token(key: &aws_lc_rs::hmac::Key) -> String {
    use base64::Engine;
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::crypto::random_bytes::<18>());
    let tag = aws_lc_rs::hmac::sign(key, nonce.as_bytes());
    format!(
        "{nonce}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..24])
    )
}

pub fn visitor_token_valid(key: &aws_lc_rs::hmac::Key, token: &str) -> bool {
    use base64::Engine;
    let Some((nonce, mac)) = token.split_once('.') else {
        return false;
    };
    if nonce.len() != 24 {
        return false;
    }
    let tag = aws_lc_rs::hmac::sign(key, nonce.as_bytes());
    crate::crypto::same(
        mac,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..24]),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn another_instances_failures_count_here() {
        let g = super::LoginGuard::new(super::LoginLimits::default());
        let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        // Five failures elsewhere, the last just now: this instance waits too.
        assert_eq!(g.admit_shared(ip, "Admin", 1000, (5, 1000)).unwrap_err(), super::Refused::Account(1));
        // Long enough after: admitted.
        let a = g.admit_shared(ip, "admin", 1002, (5, 1000)).unwrap();
        g.finish(a, true, 1002);
        // Nothing elsewhere: as before.
        assert!(g.admit_shared(ip, "admin", 1003, (0, 0)).is_ok());
    }

    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_addr(ip("192.0.2.7"), Some("198.51.100.1"), &proxies), ip("192.0.2.7"));
        assert_eq!(client_addr(ip("127.0.0.1"), Some("198.51.100.1"), &proxies), ip("198.51.100.1"));
        // The client's own forged first entry is not believed.
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("1.2.3.4, 198.51.100.1, 10.1.1.1"), &proxies),
            ip("198.51.100.1")
        );
        assert_eq!(client_addr(ip("127.0.0.1"), None, &proxies), ip("127.0.0.1"));
        assert_eq!(client_addr(ip("127.0.0.1"), Some("garbage"), &proxies), ip("127.0.0.1"));
        assert_eq!(client_addr(ip("::ffff:127.0.0.1"), Some("198.51.100.1"), &proxies), ip("198.51.100.1"));
    }

    #[test]
    fn attempts_are_counted_before_the_hash() {
        let g = LoginGuard::new(LoginLimits::default());
        let a = "192.0.2.1".parse().unwrap();
        // 60 at once (none finished): 10 admitted.
        let admitted: Vec<Attempt> = (0..60).filter_map(|_| g.admit(a, "admin", 0).ok()).collect();
        assert_eq!(admitted.len(), 10);
        assert_eq!(g.admit(a, "other", 0).unwrap_err(), Refused::Address(900));
        for x in admitted {
            g.finish(x, false, 1);
        }
        // After the window the address may try again.
        assert!(g.admit(a, "x", 901).is_ok());
    }

    #[test]
    fn an_account_gets_a_growing_delay_not_a_lock_out() {
        let g = LoginGuard::new(LoginLimits::default());
        let mut t = 0;
        // Failures from many addresses.
        for i in 0..5u8 {
            let x = g.admit(IpAddr::from([192, 0, 2, i]), "Admin", t).unwrap();
            g.finish(x, false, t);
        }
        // The sixth must wait 1 s, then 2 s, then 4 s.
        for delay in [1, 2, 4] {
            assert!(matches!(g.admit("198.51.100.1".parse().unwrap(), "admin", t), Err(Refused::Account(_))));
            t += delay;
            let x = g.admit(IpAddr::from([198, 51, 100, delay as u8]), "admin", t).unwrap();
            g.finish(x, false, t);
        }
        // The owner, after the delay, gets in; the failures are cleared.
        t += 8;
        let x = g.admit("203.0.113.5".parse().unwrap(), "admin", t).unwrap();
        g.finish(x, true, t);
        assert!(g.admit("203.0.113.6".parse().unwrap(), "admin", t).is_ok());
    }

    #[test]
    fn visitor_tokens_are_bound_to_the_server() {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret");
        let other = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"other");
        let t = visitor_token(&k);
        assert!(visitor_token_valid(&k, &t));
        assert!(!visitor_token_valid(&other, &t));
        assert!(!visitor_token_valid(&k, &"A".repeat(43)));
        assert!(!visitor_token_valid(&k, &format!("{}x", t)));
    }

    #[test]
    fn rate_windows() {
        let r = RateWindow::new(3, 3600);
        let a = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| r.allow(a, 0)));
        assert!(!r.allow(a, 10));
        assert!(r.allow("192.0.2.2".parse().unwrap(), 10));
        assert!(r.allow(a, 3600));
    }
}
