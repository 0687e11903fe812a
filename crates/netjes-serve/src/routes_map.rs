//! The routes as Postfix's socketmap tables (`netjes routes`), answered
//! from the store on every lookup, so a change in the UI or the API takes
//! effect on the next message without a reload:
//!
//! - `relayhost` for sender_dependent_relayhost_maps: `user@domain` or
//!   `@domain` gives `[host]:port` of a relay route (STARTTLS or none);
//! - `transport` for sender_dependent_default_transport_maps: a relay
//!   with implicit TLS goes through the `netjes-smtps` transport
//!   (smtp_tls_wrappermode), `netjes-smtps:[host]:port`;
//! - `sasl` for smtp_sasl_password_maps (with
//!   smtp_sender_dependent_authentication): `user:password`;
//! - `tls` for smtp_tls_policy_maps: `[host]:port` of a relay gives
//!   encrypt, may or none (before `netjes tlspolicy` in the list);
//! - `verp` for sender_canonical_maps (envelope_sender only): a signing
//!   domain's sender becomes `bounces+DOMAIN@BOUNCE-DOMAIN`, so that its
//!   bounces and complaints come back to serve's inbox.
//!
//! A store error is TEMP: Postfix defers the message rather than send it
//! the wrong way.

use crate::routes::{customer_domain, next_hop, sender_domain, tls_policy};
use crate::store::Store;
use netjes_check::relay::RelayTls;
use netjes_tlspolicy::socketmap::Reply;
use std::time::Duration;

pub struct RouteMaps {
    pub store: Store,
    /// serve's bounce_domain, for the `verp` map.
    pub bounce_domain: Option<String>,
}

fn temp(e: impl std::fmt::Display) -> Reply {
    Reply::Temp(format!("route store: {e}"))
}

impl RouteMaps {
    fn relay(&self, key: &str) -> Result<Option<crate::routes::Route>, Reply> {
        let Some(domain) = customer_domain(key, self.bounce_domain.as_deref()) else { return Ok(None) };
        Ok(self.store.route(&domain).map_err(temp)?.filter(|r| r.kind == "relay"))
    }

    /// One lookup in one map.
    pub fn answer(&self, name: &str, key: &str) -> Reply {
        let r = match name {
            "relayhost" => self.relay(key).map(|r| match r {
                Some(r) if r.tls != Some(RelayTls::Implicit) => Reply::Ok(next_hop(r.host.as_deref().unwrap_or(""), r.port.unwrap_or(25))),
                _ => Reply::NotFound,
            }),
            "transport" => self.relay(key).map(|r| match r {
                Some(r) if r.tls == Some(RelayTls::Implicit) => Reply::Ok(format!("netjes-smtps:{}", next_hop(r.host.as_deref().unwrap_or(""), r.port.unwrap_or(465)))),
                _ => Reply::NotFound,
            }),
            "sasl" => match customer_domain(key, self.bounce_domain.as_deref()) {
                Some(d) => self.store.relay_login(&d).map_err(temp).map(|l| l.map_or(Reply::NotFound, |(u, p)| Reply::Ok(format!("{u}:{p}")))),
                None => Ok(Reply::NotFound),
            },
            "tls" => match parse_next_hop(key) {
                Some((host, port)) => self.store.relay_tls(&host, port).map_err(temp).map(|t| t.map_or(Reply::NotFound, |t| Reply::Ok(tls_policy(t).into()))),
                None => Ok(Reply::NotFound),
            },
            "verp" => match (sender_domain(key), &self.bounce_domain) {
                (Some(d), Some(b)) => self.store.domain(&d).map_err(temp).map(|row| match row {
                    Some(_) => Reply::Ok(format!("bounces+{d}@{b}")),
                    None => Reply::NotFound,
                }),
                _ => Ok(Reply::NotFound),
            },
            other => Ok(Reply::Perm(format!("no map named {other:?}: relayhost, transport, sasl, tls or verp"))),
        };
        r.unwrap_or_else(|e| e)
    }
}

/// `[host]:port` as Postfix writes a next-hop.
fn parse_next_hop(key: &str) -> Option<(String, u16)> {
    let (host, port) = key.strip_prefix('[')?.split_once("]:")?;
    Some((host.to_ascii_lowercase(), port.parse().ok()?))
}

#[async_trait::async_trait]
impl netjes_tlspolicy::Maps for RouteMaps {
    async fn lookup(&self, name: &str, key: &str) -> Reply {
        self.answer(name, key)
    }
    fn budget(&self) -> Duration {
        Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::RouteInput;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let master = crate::crypto::MasterKey::from_hex(&"07".repeat(32)).unwrap();
        let s = Store::open(dir.path(), master).unwrap();
        (dir, s)
    }

    #[test]
    fn every_map_answers_from_the_store_at_once() {
        let (_dir, s) = store();
        s.add_domain("direct.example").unwrap();
        s.add_domain("relay.example").unwrap();
        s.add_domain("smtps.example").unwrap();
        let relay = RouteInput::Relay { host: "SMTP.Customer.Example".into(), port: 587, tls: "starttls".into(), user: Some("app".into()), password: Some("pw:with colon".into()) };
        s.set_route("relay.example", &relay).unwrap();
        s.set_route("smtps.example", &RouteInput::Relay { host: "smtp.customer.example".into(), port: 465, tls: "implicit".into(), user: None, password: None }).unwrap();
        let m = RouteMaps { store: s.clone(), bounce_domain: Some("bounces.netjes.example".into()) };
        assert_eq!(m.answer("relayhost", "a@relay.example"), Reply::Ok("[smtp.customer.example]:587".into()));
        assert_eq!(m.answer("relayhost", "@RELAY.example"), Reply::Ok("[smtp.customer.example]:587".into()));
        assert_eq!(m.answer("relayhost", "a@direct.example"), Reply::NotFound);
        assert_eq!(m.answer("relayhost", "a@unknown.example"), Reply::NotFound);
        assert_eq!(m.answer("relayhost", "a@smtps.example"), Reply::NotFound, "implicit TLS goes by transport");
        assert_eq!(m.answer("transport", "a@smtps.example"), Reply::Ok("netjes-smtps:[smtp.customer.example]:465".into()));
        assert_eq!(m.answer("sasl", "a@relay.example"), Reply::Ok("app:pw:with colon".into()), "Postfix splits at the first colon");
        assert_eq!(m.answer("sasl", "a@smtps.example"), Reply::NotFound);
        assert_eq!(m.answer("tls", "[smtp.customer.example]:587"), Reply::Ok("encrypt".into()));
        assert_eq!(m.answer("tls", "[smtp.customer.example]:25"), Reply::NotFound);
        assert!(matches!(m.answer("colour", "x"), Reply::Perm(_)));
        assert_eq!(m.answer("verp", "app@relay.example"), Reply::Ok("bounces+relay.example@bounces.netjes.example".into()));
        assert_eq!(m.answer("verp", "someone@elsewhere.example"), Reply::NotFound, "only our signing domains");
        // Postfix's later lookups see the rewritten return path.
        assert_eq!(m.answer("relayhost", "bounces+relay.example@bounces.netjes.example"), m.answer("relayhost", "app@relay.example"));
        assert_eq!(m.answer("relayhost", "bounces+nothere.example@bounces.netjes.example"), Reply::NotFound);
        // A change is seen by the next lookup; the password stays when the
        // user does, and is never shown.
        let r = s.set_route("relay.example", &RouteInput::Relay { host: "smtp2.customer.example".into(), port: 2525, tls: "opportunistic".into(), user: Some("app".into()), password: None }).unwrap();
        assert!(r.has_password && r.warning.is_some());
        assert!(!serde_json::to_string(&r).unwrap().contains("pw:with"));
        assert_eq!(m.answer("relayhost", "a@relay.example"), Reply::Ok("[smtp2.customer.example]:2525".into()));
        assert_eq!(m.answer("sasl", "a@relay.example"), Reply::Ok("app:pw:with colon".into()));
        assert!(s.set_route("relay.example", &RouteInput::Relay { host: "h.example".into(), port: 25, tls: "none".into(), user: Some("other".into()), password: None }).is_err(), "another user needs its password");
        s.set_route("relay.example", &RouteInput::Direct).unwrap();
        assert_eq!(m.answer("relayhost", "a@relay.example"), Reply::NotFound);
        assert_eq!(m.answer("sasl", "a@relay.example"), Reply::NotFound);
        // The sealed password is bound to its domain: not readable in the
        // database.
        assert!(s.route("nothere.example").unwrap().is_none());
    }
}
