//! Routes in the store: one row per signing domain that does not go
//! direct, its password sealed with the master key (bound to the domain
//! and user, as the private keys are bound to theirs).

use crate::routes::{validate, warning, Route, RouteInput};
use crate::store::{now, Store, StoreError};
use netjes_check::relay::RelayTls;
use crate::db::OptionalExtension;
use crate::params;

fn aad(domain: &str, user: &str) -> String {
    format!("netjes-route:{domain}/{user}")
}

fn tls_of(s: Option<String>) -> Option<RelayTls> {
    s.as_deref().and_then(RelayTls::parse)
}

fn tls_name(t: RelayTls) -> &'static str {
    match t {
        RelayTls::None => "none",
        RelayTls::Opportunistic => "opportunistic",
        RelayTls::Starttls => "starttls",
        RelayTls::Implicit => "implicit",
    }
}

impl Store {
    /// Sets a domain's route. A relay with a user and no password keeps
    /// the stored password of the same user (it is never shown, so an
    /// update cannot resend it).
    pub fn set_route(&self, domain: &str, input: &RouteInput) -> Result<Route, StoreError> {
        let (kind, host, port, tls, user, password) = validate(input).map_err(|e| StoreError::Invalid(e.join("; ")))?;
        let db = self.db();
        let tx = db.transaction()?;
        if tx.query_row("SELECT count(*) FROM domains WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? == 0 {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        let old: Option<(Option<String>, Option<Vec<u8>>)> =
            tx.query_row("SELECT \"user\", sealed_password FROM routes WHERE domain = ?1", params![domain], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let sealed = match (&user, password) {
            (Some(u), Some(p)) => Some(self.master.seal(p.as_bytes(), &aad(domain, u))),
            (Some(u), None) => match old {
                Some((Some(ou), Some(s))) if &ou == u => Some(s),
                _ => return Err(StoreError::Invalid(format!("a password is needed for user {u}"))),
            },
            (None, _) => None,
        };
        tx.execute(
            "INSERT INTO routes (domain, kind, host, port, tls, \"user\", sealed_password, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (domain) DO UPDATE SET kind = ?2, host = ?3, port = ?4, tls = ?5, \"user\" = ?6, sealed_password = ?7, updated = ?8",
            params![domain, kind, host, port, tls.map(tls_name), user, sealed, now()],
        )?;
        tx.commit()?;
        drop(db);
        self.route(domain)?.ok_or_else(|| StoreError::NotFound(format!("domain {domain}")))
    }

    /// A domain's route; "direct" when none was set. None for a domain we
    /// do not have.
    pub fn route(&self, domain: &str) -> Result<Option<Route>, StoreError> {
        let db = self.db();
        if db.query_row("SELECT count(*) FROM domains WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? == 0 {
            return Ok(None);
        }
        let row = db
            .query_row("SELECT kind, host, port, tls, \"user\", sealed_password IS NOT NULL, updated FROM routes WHERE domain = ?1", params![domain], |r| {
                Ok((r.get::<String>(0)?, r.get::<Option<String>>(1)?, r.get::<Option<u16>>(2)?, r.get::<Option<String>>(3)?, r.get::<Option<String>>(4)?, r.get::<bool>(5)?, r.get::<i64>(6)?))
            })
            .optional()?;
        Ok(Some(match row {
            None => Route { domain: domain.into(), kind: "direct".into(), host: None, port: None, tls: None, user: None, has_password: false, warning: None, updated: 0 },
            Some((kind, host, port, tls, user, has_password, updated)) => {
                let tls = tls_of(tls);
                Route { domain: domain.into(), kind, warning: warning(tls, host.as_deref()), host, port, tls, user, has_password, updated }
            }
        }))
    }

    /// The login of a domain's relay, opened: for Postfix's
    /// smtp_sasl_password_maps and the connection test only.
    pub fn relay_login(&self, domain: &str) -> Result<Option<(String, String)>, StoreError> {
        let row: Option<(Option<String>, Option<Vec<u8>>)> = self
            .db()
            .query_row("SELECT \"user\", sealed_password FROM routes WHERE domain = ?1 AND kind = 'relay'", params![domain], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((Some(user), Some(sealed))) = row else { return Ok(None) };
        let plain = self.master.open(&sealed, &aad(domain, &user))?;
        let password = String::from_utf8(plain).map_err(|_| StoreError::Invalid(format!("the stored password of {domain}'s relay is not text")))?;
        Ok(Some((user, password)))
    }

    /// The TLS mode Postfix must use to a relay host: the strictest of the
    /// routes that name it (two customers may share a smarthost).
    pub fn relay_tls(&self, host: &str, port: u16) -> Result<Option<RelayTls>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT tls FROM routes WHERE kind = 'relay' AND host = ?1 AND port = ?2")?;
        let modes: Vec<RelayTls> = st.query_map(params![host.to_ascii_lowercase(), port], |r| r.get::<Option<String>>(0))?.filter_map(|t| tls_of(t.ok().flatten())).collect();
        let rank = |t: &RelayTls| match t {
            RelayTls::None => 0,
            RelayTls::Opportunistic => 1,
            RelayTls::Starttls => 2,
            RelayTls::Implicit => 3,
        };
        Ok(modes.into_iter().max_by_key(rank))
    }
}

/// Whether a login may send for a domain (the policy service asks at
/// MAIL FROM and RCPT for mail submitted with SASL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SendRight {
    Allowed,
    /// A login assigned to no domain: not an application's, so not
    /// restricted here (a mailbox user of the MTA).
    NotAnApplication,
    /// A signing domain that is not assigned to this login.
    NotAssigned,
    /// Assigned, but not switched on (its key is not published yet).
    Inactive,
    /// Not one of our signing domains.
    UnknownDomain,
}

impl SendRight {
    /// Why `login` may not send as `domain`, or None when it may: the
    /// words of the policy service's 553 and the milter's 550 alike.
    pub fn refusal(self, login: &str, domain: &str) -> Option<String> {
        match self {
            SendRight::Allowed | SendRight::NotAnApplication => None,
            SendRight::NotAssigned => Some(format!("{login} may not send for {domain}")),
            SendRight::Inactive => Some(format!("{domain} is not switched on for sending yet (publish its DKIM record and activate it)")),
            SendRight::UnknownDomain => Some(format!("{domain} is not a domain {login} sends for")),
        }
    }
}

impl Store {
    /// Sets the logins that may send for a domain (replacing the list).
    pub fn set_logins(&self, domain: &str, logins: &[String]) -> Result<Vec<String>, StoreError> {
        for l in logins {
            if l.is_empty() || l.len() > 256 || l.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(StoreError::Invalid(format!("{l:?} is not a login: printable, no spaces, at most 256 characters")));
            }
        }
        let db = self.db();
        let tx = db.transaction()?;
        if tx.query_row("SELECT count(*) FROM domains WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? == 0 {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        tx.execute("DELETE FROM domain_logins WHERE domain = ?1", params![domain])?;
        for l in logins {
            tx.execute("INSERT INTO domain_logins (domain, login) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![domain, l])?;
        }
        tx.commit()?;
        drop(db);
        self.logins(domain)
    }

    pub fn logins(&self, domain: &str) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut st = db.prepare("SELECT login FROM domain_logins WHERE domain = ?1 ORDER BY login")?;
        let rows = st.query_map(params![domain], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    /// May `login` send as `domain`?
    pub fn send_right(&self, login: &str, domain: &str) -> Result<SendRight, StoreError> {
        send_right(&self.db(), login, domain)
    }
}

/// May `login` send as `domain`, on a connection of its own (the policy
/// service reads serve's store without its master key: no secret is
/// involved).
pub fn send_right(db: &crate::db::Conn, login: &str, domain: &str) -> Result<SendRight, StoreError> {
    if db.query_row("SELECT count(*) FROM domain_logins WHERE login = ?1", params![login], |r| r.get::<i64>(0))? == 0 {
        return Ok(SendRight::NotAnApplication);
    }
    let active: Option<bool> = db.query_row("SELECT active != 0 FROM domains WHERE domain = ?1", params![domain], |r| r.get(0)).optional()?;
    let Some(active) = active else { return Ok(SendRight::UnknownDomain) };
    let assigned = db.query_row("SELECT count(*) FROM domain_logins WHERE domain = ?1 AND login = ?2", params![domain, login], |r| r.get::<i64>(0))? > 0;
    Ok(match (assigned, active) {
        (false, _) => SendRight::NotAssigned,
        (true, false) => SendRight::Inactive,
        (true, true) => SendRight::Allowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_sends_only_for_its_active_domains() {
        for b in crate::store::testing::each(&"07".repeat(32)) {
        let s = &b.store;
        
        for d in ["shop.example", "other.example", "new.example"] {
            s.add_domain(d).unwrap();
        }
        s.set_active("shop.example", true).unwrap();
        s.set_active("other.example", true).unwrap();
        assert_eq!(s.set_logins("shop.example", &["app".into(), "app".into()]).unwrap(), ["app"]);
        s.set_logins("new.example", &["app".into()]).unwrap();
        assert_eq!(s.send_right("app", "shop.example").unwrap(), SendRight::Allowed);
        assert_eq!(s.send_right("app", "other.example").unwrap(), SendRight::NotAssigned);
        assert_eq!(s.send_right("app", "new.example").unwrap(), SendRight::Inactive);
        assert_eq!(s.send_right("app", "elsewhere.example").unwrap(), SendRight::UnknownDomain);
        assert_eq!(s.send_right("alice", "other.example").unwrap(), SendRight::NotAnApplication);
        assert!(s.set_logins("shop.example", &["two words".into()]).is_err());
        assert!(s.set_logins("nothere.example", &[]).is_err());
        assert_eq!(s.domain("shop.example").unwrap().unwrap().logins, ["app"]);
        // Unassigned from everything: no longer an application.
        s.set_logins("shop.example", &[]).unwrap();
        s.set_logins("new.example", &[]).unwrap();
        assert_eq!(s.send_right("app", "other.example").unwrap(), SendRight::NotAnApplication);
        }
    }
}
