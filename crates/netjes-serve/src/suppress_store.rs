//! The suppression list: per customer (signing) domain, the recipients it
//! no longer sends to, because their mail bounced hard. Filled from
//! Postfix's own delivery log (`netjes events --store`), which a
//! stranger cannot write to, unlike a bounce address; the policy service
//! refuses later mail to them at RCPT. The UI and the API list, search,
//! export and remove entries.

use crate::store::{now, Store, StoreError};
use crate::db::OptionalExtension;
use crate::params;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub domain: String,
    pub address: String,
    /// hard (a bounce), or manual.
    pub class: String,
    pub reason: String,
    pub created: i64,
}

/// The most entries a listing returns.
pub const MAX_LISTED: usize = 10_000;

fn address_ok(a: &str) -> bool {
    a.len() <= 320 && a.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()) && !a.chars().any(|c| c.is_control() || c.is_whitespace())
}

impl Store {
    /// Suppresses `address` for `domain`; false when the domain is not ours
    /// (the event was of another sender) or it was suppressed already.
    pub fn suppress(&self, domain: &str, address: &str, class: &str, reason: &str) -> Result<bool, StoreError> {
        suppress(&self.db(), domain, address, class, reason)
    }

    /// A domain's entries whose address contains `search` (all with an
    /// empty one), newest first.
    pub fn suppressions(&self, domain: &str, search: &str) -> Result<Vec<Suppression>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT domain, address, class, reason, created FROM suppressions WHERE domain = ?1 AND instr(address, ?2) > 0 ORDER BY created DESC, address LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![domain, search.trim().to_ascii_lowercase(), MAX_LISTED as i64], |r| {
                Ok(Suppression { domain: r.get(0)?, address: r.get(1)?, class: r.get(2)?, reason: r.get(3)?, created: r.get(4)? })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Removes an entry; false when there was none.
    pub fn unsuppress(&self, domain: &str, address: &str) -> Result<bool, StoreError> {
        Ok(self.db().execute("DELETE FROM suppressions WHERE domain = ?1 AND address = ?2", params![domain, address.trim().to_ascii_lowercase()])? > 0)
    }
}

/// [`Store::suppress`] on a connection of its own (`netjes events
/// --store` writes without the master key: no secret is involved).
pub fn suppress(db: &crate::db::Conn, domain: &str, address: &str, class: &str, reason: &str) -> Result<bool, StoreError> {
    let (domain, address) = (domain.to_ascii_lowercase(), address.trim().to_ascii_lowercase());
    if !address_ok(&address) {
        return Err(StoreError::Invalid(format!("{address:?} is not an address")));
    }
    let reason: String = reason.chars().take(500).collect();
    if db.query_row("SELECT count(*) FROM domains WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? == 0 {
        return Ok(false);
    }
    let n = db.execute(
        "INSERT INTO suppressions (domain, address, class, reason, created) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![domain, address, class, reason, now()],
    )?;
    Ok(n > 0)
}

/// The entry for `address` in `domain`'s list, on a connection of its own
/// (the policy service reads serve's store without its master key).
pub fn suppressed(db: &crate::db::Conn, domain: &str, address: &str) -> Result<Option<Suppression>, StoreError> {
    Ok(db
        .query_row(
            "SELECT domain, address, class, reason, created FROM suppressions WHERE domain = ?1 AND address = ?2",
            params![domain.to_ascii_lowercase(), address.to_ascii_lowercase()],
            |r| Ok(Suppression { domain: r.get(0)?, address: r.get(1)?, class: r.get(2)?, reason: r.get(3)?, created: r.get(4)? }),
        )
        .optional()?)
}

/// A domain's list as CSV (address,class,reason,created), the fields
/// quoted as RFC 4180 says.
pub fn to_csv(rows: &[Suppression]) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("address,class,reason,created\r\n");
    for r in rows {
        out.push_str(&format!("{},{},{},{}\r\n", q(&r.address), q(&r.class), q(&r.reason), r.created));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_added_once_searched_exported_and_removed() {
        for b in crate::store::testing::each(&"07".repeat(32)) {
        let s = &b.store;
        
        s.add_domain("shop.example").unwrap();
        assert!(s.suppress("shop.example", "Gone@Example.org", "hard", "550 5.1.1 \"no\" such user").unwrap());
        assert!(!s.suppress("shop.example", "gone@example.org", "hard", "again").unwrap(), "once");
        assert!(!s.suppress("other.example", "gone@example.org", "hard", "x").unwrap(), "not our domain");
        assert!(s.suppress("shop.example", "a b@example.org", "hard", "x").is_err());
        s.suppress("shop.example", "left@example.net", "hard", "5.1.10").unwrap();
        assert_eq!(s.suppressions("shop.example", "").unwrap().len(), 2);
        assert_eq!(s.suppressions("shop.example", "EXAMPLE.NET").unwrap().len(), 1);
        let csv = to_csv(&s.suppressions("shop.example", "gone").unwrap());
        assert!(csv.contains("\"gone@example.org\",\"hard\",\"550 5.1.1 \"\"no\"\" such user\""), "{csv}");
        let db = b.conn();
        assert!(suppressed(&db, "Shop.Example", "GONE@example.org").unwrap().is_some());
        assert!(s.unsuppress("shop.example", "gone@example.org").unwrap());
        assert!(suppressed(&db, "shop.example", "gone@example.org").unwrap().is_none());
        }
    }
}
