//! How the mail of each signing domain leaves: "direct" (Postfix delivers
//! to the recipient's MX, MTA-STS through `netjes tlspolicy`), or relayed
//! through the customer's own server with a TLS mode and a login. Postfix
//! stays the queue; netjes answers its per-sender questions over socketmap
//! (see [`answer`]), from the store, so a change takes effect on the next
//! message without a reload.
//!
//! The password is sealed like the private keys and never shown again: a
//! route read back says only whether it has one.

use netjes_check::relay::RelayTls;
use serde::{Deserialize, Serialize};

/// A route as the API takes it (`PUT /api/domains/{domain}/route`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RouteInput {
    Direct,
    Relay {
        host: String,
        port: u16,
        tls: String,
        user: Option<String>,
        /// Absent on an update that keeps the stored password.
        password: Option<String>,
    },
}

/// A route as stored and shown (no password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub domain: String,
    /// "direct" or "relay".
    pub kind: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<RelayTls>,
    pub user: Option<String>,
    pub has_password: bool,
    /// Plain text to a relay off loopback: the UI warns.
    pub warning: Option<String>,
    pub updated: i64,
}

/// A relay host: a DNS name (a single label too: "localhost", a name the
/// local resolver completes) or an IP address, as Postfix takes it in
/// brackets.
fn valid_host(h: &str) -> bool {
    let label = |l: &str| (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-') && !l.ends_with('-');
    h.parse::<std::net::IpAddr>().is_ok() || netjes_dns::is_host_name(&h.to_ascii_lowercase()) || label(h)
}

/// A SASL user name and password go into a socketmap answer `user:pass`:
/// Postfix splits at the first colon, so the user may not hold one, and
/// neither may hold a line break or NUL.
fn valid_secret_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && !s.chars().any(|c| c.is_control())
}

/// The checked route, ready to store: (kind, host, port, tls, user,
/// password), every problem at once.
#[allow(clippy::type_complexity)]
pub fn validate(input: &RouteInput) -> Result<(&'static str, Option<String>, Option<u16>, Option<RelayTls>, Option<String>, Option<String>), Vec<String>> {
    match input {
        RouteInput::Direct => Ok(("direct", None, None, None, None, None)),
        RouteInput::Relay { host, port, tls, user, password } => {
            let mut errors = Vec::new();
            let host = host.trim().trim_matches(['[', ']']).to_ascii_lowercase();
            if !valid_host(&host) {
                errors.push(format!("host {host:?} is not a host name or an IP address"));
            }
            if *port == 0 {
                errors.push("port 0 is not a port".into());
            }
            let tls_mode = RelayTls::parse(tls);
            if tls_mode.is_none() {
                errors.push(format!("tls {tls:?} is implicit, starttls, opportunistic or none"));
            }
            if let Some(u) = user {
                if !valid_secret_text(u) || u.contains(':') {
                    errors.push("user: printable, without a colon, at most 512 characters".into());
                }
            }
            if let Some(p) = password {
                if !valid_secret_text(p) {
                    errors.push("password: printable, at most 512 characters".into());
                }
                if user.is_none() {
                    errors.push("a password without a user".into());
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            Ok(("relay", Some(host), Some(*port), tls_mode, user.clone(), password.clone()))
        }
    }
}

/// The warning the UI shows for a route that sends in plain text.
pub fn warning(tls: Option<RelayTls>, host: Option<&str>) -> Option<String> {
    let loopback = host.is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()));
    match tls {
        Some(RelayTls::None) if !loopback => Some("mail and the password cross the network in plain text".into()),
        Some(RelayTls::Opportunistic) => Some("STARTTLS only when offered: an attacker on the path can remove the offer".into()),
        _ => None,
    }
}

/// The domain part of a sender-dependent lookup key: `user@domain` or
/// `@domain` (Postfix tries the address, then `@domain`).
pub fn sender_domain(key: &str) -> Option<String> {
    let d = key.rsplit_once('@').map(|(_, d)| d)?.trim_end_matches('.').to_ascii_lowercase();
    netjes_dns::is_host_name(&d).then_some(d)
}

/// The customer domain of a sender-dependent lookup key: the sender's
/// domain, or for a return path the `verp` map wrote
/// (`bounces+DOMAIN@BOUNCE-DOMAIN`, which Postfix's later lookups see) the
/// DOMAIN in it.
pub fn customer_domain(key: &str, bounce_domain: Option<&str>) -> Option<String> {
    let d = sender_domain(key)?;
    if Some(d.as_str()) == bounce_domain {
        let local = key.rsplit_once('@').map(|(l, _)| l)?;
        let inner = local.strip_prefix("bounces+")?.to_ascii_lowercase();
        return netjes_dns::is_host_name(&inner).then_some(inner);
    }
    Some(d)
}

/// The next-hop of a relay route, as Postfix writes it: `[host]:port`.
pub fn next_hop(host: &str, port: u16) -> String {
    format!("[{host}]:{port}")
}

/// Postfix's TLS policy for a relay's next-hop.
pub fn tls_policy(tls: RelayTls) -> &'static str {
    match tls {
        // Implicit TLS goes through the netjes-smtps transport, whose
        // smtp_tls_wrappermode needs "encrypt".
        RelayTls::Implicit | RelayTls::Starttls => "encrypt",
        RelayTls::Opportunistic => "may",
        RelayTls::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(host: &str, port: u16, tls: &str, user: Option<&str>, password: Option<&str>) -> RouteInput {
        RouteInput::Relay { host: host.into(), port, tls: tls.into(), user: user.map(String::from), password: password.map(String::from) }
    }

    #[test]
    fn routes_are_checked_whole() {
        assert!(validate(&RouteInput::Direct).is_ok());
        let (kind, host, ..) = validate(&relay("[Smtp.Customer.Example]", 587, "starttls", Some("app"), Some("pw"))).unwrap();
        assert_eq!((kind, host.as_deref()), ("relay", Some("smtp.customer.example")));
        assert!(validate(&relay("localhost", 25, "none", None, None)).is_ok(), "a single label");
        let e = validate(&relay("bad host", 0, "tls", Some("a:b"), Some("x\ny"))).unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(validate(&relay("192.0.2.25", 25, "none", None, Some("pw"))).is_err(), "a password without a user");
        let input: RouteInput = serde_json::from_str(r#"{"kind":"relay","host":"h.example","port":465,"tls":"implicit"}"#).unwrap();
        assert!(validate(&input).is_ok());
        assert!(serde_json::from_str::<RouteInput>(r#"{"kind":"relay","host":"h","port":1,"tls":"none","colour":1}"#).is_err(), "unknown keys are errors");
    }

    #[test]
    fn lookup_keys_and_answers() {
        assert_eq!(sender_domain("App@Customer.Example").as_deref(), Some("customer.example"));
        assert_eq!(sender_domain("@customer.example").as_deref(), Some("customer.example"));
        assert_eq!(sender_domain("customer.example"), None);
        assert_eq!(sender_domain("a@[192.0.2.1]"), None);
        assert_eq!(next_hop("smtp.customer.example", 587), "[smtp.customer.example]:587");
        assert!(warning(Some(RelayTls::None), Some("smtp.customer.example")).is_some());
        assert!(warning(Some(RelayTls::None), Some("127.0.0.1")).is_none());
        assert!(warning(Some(RelayTls::Starttls), Some("smtp.customer.example")).is_none());
    }
}
