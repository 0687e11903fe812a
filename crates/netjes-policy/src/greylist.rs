//! Greylisting as postgrey does it (its defaults, key and file formats),
//! plus one thing postgrey lacks: when SPF passes, the key is the
//! SPF-authenticated domain, not the client's network, so that pools that
//! retry from another address each time are delayed once, not for hours.

use crate::store::TripletRow;
use std::net::IpAddr;
use std::path::PathBuf;

/// The client's network as postgrey keys it (--lookup-by-subnet): the /24
/// of an IPv4 address, the /64 of an IPv6 one.
pub fn client_net(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => client_net(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// postgrey's sender substitutions: the +extension goes, and numbers that
/// stand alone in the local part become '#', so that VERP and SRS bounce
/// addresses (bounce-12345@...) make one key, not one per message.
pub fn normalize_sender(sender: &str) -> String {
    let s = sender.to_ascii_lowercase();
    let Some((user, domain)) = s.rsplit_once('@') else {
        return s;
    };
    let user = user.split('+').next().unwrap_or("");
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in user.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    format!("{out}@{domain}")
}

/// The triplet key. `spf_domain`: the domain SPF passed for, when it did
/// and the configuration keys on it.
pub fn triplet_key(ip: IpAddr, sender: &str, recipient: &str, spf_domain: Option<&str>) -> String {
    let rcpt = recipient.to_ascii_lowercase();
    match spf_domain {
        Some(d) => format!("spf:{}/{rcpt}", d.to_ascii_lowercase()),
        None => format!("{}/{}/{rcpt}", client_net(ip), normalize_sender(sender)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First attempt: defer.
    New,
    /// Retried before the delay ran out: defer for the rest.
    TooEarly { remaining: i64 },
    /// Retried after the delay: accepted, and from now on known.
    FirstPass,
    /// Known triplet: accepted.
    Known,
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub delay: i64,
    pub retry_window: i64,
    pub max_age: i64,
}

/// What a triplet becomes on an attempt at `now`.
pub fn decide(old: Option<TripletRow>, now: i64, p: &Params) -> (TripletRow, Verdict) {
    let fresh = TripletRow {
        first_seen: now,
        last_seen: now,
        passed: false,
    };
    match old {
        None => (fresh, Verdict::New),
        // Forgotten: unseen for max_age, or never retried within the window.
        Some(t) if now - t.last_seen > p.max_age => (fresh, Verdict::New),
        Some(t) if !t.passed && now - t.first_seen > p.retry_window => (fresh, Verdict::New),
        Some(t) if t.passed => (
            TripletRow {
                last_seen: now,
                ..t
            },
            Verdict::Known,
        ),
        Some(t) if now - t.first_seen >= p.delay => (
            TripletRow {
                last_seen: now,
                passed: true,
                ..t
            },
            Verdict::FirstPass,
        ),
        Some(t) => (
            TripletRow {
                last_seen: now,
                ..t
            },
            Verdict::TooEarly {
                remaining: p.delay - (now - t.first_seen),
            },
        ),
    }
}

/// postgrey's whitelist_clients and whitelist_recipients files.
#[derive(Debug, Clone, Default)]
pub struct Whitelist {
    client_names: Vec<String>,
    client_regex: Vec<regex::Regex>,
    client_nets: Vec<ipnet::IpNet>,
    /// "1.2.3" style prefixes.
    client_prefixes: Vec<String>,
    rcpt_users: Vec<String>,
    rcpt_domains: Vec<String>,
    rcpt_addresses: Vec<String>,
    rcpt_regex: Vec<regex::Regex>,
}

fn read_lines(path: &std::path::Path, errors: &mut Vec<String>) -> Vec<(usize, String)> {
    match netjes_net::read_config_file(path) {
        Ok(t) => t
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim().to_string()))
            .filter(|(_, l)| !l.is_empty())
            .collect(),
        Err(e) => {
            errors.push(e);
            vec![]
        }
    }
}

fn regex(body: &str, where_: String, errors: &mut Vec<String>) -> Option<regex::Regex> {
    // postgrey's regexes are Perl's, matched case-insensitively.
    match regex::RegexBuilder::new(body)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(format!("{where_}: {e}"));
            None
        }
    }
}

impl Whitelist {
    pub fn load(clients: &[PathBuf], recipients: &[PathBuf]) -> Result<Whitelist, Vec<String>> {
        let mut w = Whitelist::default();
        let mut errors = Vec::new();
        for p in clients {
            for (n, l) in read_lines(p, &mut errors) {
                w.add_client(&l, || format!("{}:{n}", p.display()), &mut errors);
            }
        }
        for p in recipients {
            for (n, l) in read_lines(p, &mut errors) {
                w.add_recipient(&l, || format!("{}:{n}", p.display()), &mut errors);
            }
        }
        if errors.is_empty() {
            Ok(w)
        } else {
            Err(errors)
        }
    }

    fn add_client(&mut self, l: &str, at: impl Fn() -> String, errors: &mut Vec<String>) {
        if let Some(body) = l.strip_prefix('/').and_then(|x| x.strip_suffix('/')) {
            if let Some(r) = regex(body, at(), errors) {
                self.client_regex.push(r);
            }
        } else if let Ok(n) = crate::config::parse_net(l) {
            self.client_nets.push(n);
        } else if l.chars().all(|c| c.is_ascii_digit() || c == '.') {
            self.client_prefixes
                .push(format!("{}.", l.trim_end_matches('.')));
        } else {
            self.client_names.push(l.to_ascii_lowercase());
        }
    }

    fn add_recipient(&mut self, l: &str, at: impl Fn() -> String, errors: &mut Vec<String>) {
        let l = l.to_ascii_lowercase();
        if let Some(body) = l.strip_prefix('/').and_then(|x| x.strip_suffix('/')) {
            if let Some(r) = regex(body, at(), errors) {
                self.rcpt_regex.push(r);
            }
        } else if let Some(user) = l.strip_suffix('@') {
            self.rcpt_users.push(user.to_string());
        } else if l.contains('@') {
            self.rcpt_addresses.push(l);
        } else {
            self.rcpt_domains.push(l);
        }
    }

    /// A client whitelisted by name (the name or a parent domain), regex
    /// on the name, network or address prefix.
    pub fn client(&self, ip: IpAddr, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        // Postfix says "unknown" when the name was not verified.
        let named = !name.is_empty() && name != "unknown";
        let ip_s = ip.to_string();
        (named
            && (self
                .client_names
                .iter()
                .any(|d| name == *d || name.ends_with(&format!(".{d}")))
                || self.client_regex.iter().any(|r| r.is_match(&name))))
            || crate::config::in_nets(&self.client_nets, ip)
            || self.client_prefixes.iter().any(|p| ip_s.starts_with(p))
    }

    pub fn recipient(&self, rcpt: &str) -> bool {
        let r = rcpt.to_ascii_lowercase();
        let (user, domain) = r.rsplit_once('@').unwrap_or((r.as_str(), ""));
        self.rcpt_addresses.contains(&r)
            || self.rcpt_users.iter().any(|u| u == user)
            || self
                .rcpt_domains
                .iter()
                .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
            || self.rcpt_regex.iter().any(|x| x.is_match(&r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params {
        delay: 300,
        retry_window: 2 * 86400,
        max_age: 35 * 86400,
    };

    #[test]
    fn postgrey_timeline() {
        let (t, v) = decide(None, 1000, &P);
        assert_eq!(v, Verdict::New);
        let (t, v) = decide(Some(t), 1100, &P);
        assert_eq!(v, Verdict::TooEarly { remaining: 200 });
        let (t, v) = decide(Some(t), 1300, &P);
        assert_eq!(v, Verdict::FirstPass);
        let (t, v) = decide(Some(t), 5000, &P);
        assert_eq!(v, Verdict::Known);
        // Unseen for 35 days: forgotten.
        assert_eq!(decide(Some(t), 5000 + 36 * 86400, &P).1, Verdict::New);
        // Never retried within two days: starts over.
        let (t, _) = decide(None, 0, &P);
        assert_eq!(
            decide(
                Some(TripletRow {
                    last_seen: 100,
                    ..t
                }),
                3 * 86400,
                &P
            )
            .1,
            Verdict::New
        );
    }

    #[test]
    fn keys() {
        assert_eq!(client_net("192.0.2.77".parse().unwrap()), "192.0.2");
        assert_eq!(
            client_net("2001:db8:1:2:3::4".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            normalize_sender("Bounce-12345-x+tag@Lists.Example"),
            "bounce-#-x@lists.example"
        );
        assert_eq!(normalize_sender("a1b2@x"), "a1b2@x");
        assert_eq!(
            triplet_key("192.0.2.1".parse().unwrap(), "a@x", "B@Y", None),
            "192.0.2/a@x/b@y"
        );
        assert_eq!(
            triplet_key("192.0.2.1".parse().unwrap(), "a@x", "b@y", Some("X")),
            "spf:x/b@y"
        );
    }

    #[test]
    fn postgrey_whitelist_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("clients");
        std::fs::write(&c, "# postgrey_whitelist_clients\ngoogle.com\n/^mail[0-9]+\\.example\\.net$/\n198.51.100\n203.0.113.0/24\n").unwrap();
        let r = dir.path().join("recipients");
        std::fs::write(
            &r,
            "postmaster@\nabuse@example.org\nexample.com\n/^list-.*@/\n",
        )
        .unwrap();
        let w = Whitelist::load(&[c], &[r]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(w.client(ip("192.0.2.1"), "mail-ot1.google.com"));
        assert!(w.client(ip("192.0.2.1"), "MAIL12.example.net"));
        assert!(w.client(ip("198.51.100.9"), "unknown"));
        assert!(w.client(ip("203.0.113.200"), ""));
        assert!(!w.client(ip("192.0.2.1"), "notgoogle.com"));
        assert!(!w.client(ip("192.0.2.1"), "unknown"));
        assert!(
            w.recipient("postmaster@anything.example")
                && w.recipient("Abuse@example.org")
                && w.recipient("x@sub.example.com")
                && w.recipient("list-dev@x.y")
        );
        assert!(!w.recipient("bob@example.org"));
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "/(unclosed/\n").unwrap();
        assert_eq!(
            Whitelist::load(&[bad, dir.path().join("missing")], &[])
                .unwrap_err()
                .len(),
            2
        );
    }
}
