//! The reputation view of a customer domain, from its own traffic (what
//! Google Postmaster Tools shows of Gmail's side): delivered, deferred and
//! bounced by day from Postfix's log, the bounce rate, and the receivers
//! that block it with their words. Warnings come before a threshold is
//! crossed: Gmail's and Yahoo's bulk-sender rules ask for a spam
//! complaint rate under 0.3 % (0.1 % to be safe); for bounces no receiver
//! publishes a number, and the 2 % and 5 % used here are what the large
//! sending services suspend accounts at.

use crate::store::{now, Store, StoreError};
use crate::params;
use serde::Serialize;

pub const BOUNCE_WARN: f64 = 0.02;
pub const BOUNCE_ALARM: f64 = 0.05;
/// Gmail's and Yahoo's line is 0.3 %; Google asks to stay under 0.1 %.
pub const COMPLAINT_WARN: f64 = 0.001;
pub const COMPLAINT_ALARM: f64 = 0.003;

/// Counts one event, on a connection of its own (`netjes events --store`),
/// on today's UTC day: the view is built as the log is read.
pub fn record(db: &crate::db::Conn, domain: &str, event: &str, class: Option<&str>, recipient: &str, reply: &str) -> Result<(), StoreError> {
    let column = match (event, class) {
        ("delivered", _) => "delivered",
        ("deferred", _) => "deferred",
        (_, Some("hard")) => "hard",
        (_, Some("block")) => "block",
        _ => "soft",
    };
    let day = now().div_euclid(86_400);
    db.execute(&format!("INSERT INTO domain_stats (domain, day, {column}) VALUES (?1, ?2, 1) ON CONFLICT (domain, day) DO UPDATE SET {column} = domain_stats.{column} + 1"), params![domain, day])?;
    if column == "block" {
        let receiver = recipient.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
        let reply: String = reply.chars().take(300).collect();
        db.execute(
            "INSERT INTO domain_blocks (domain, day, receiver, count, last_reply) VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT (domain, day, receiver) DO UPDATE SET count = domain_blocks.count + 1, last_reply = ?4",
            params![domain, day, receiver, reply],
        )?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reputation {
    pub days: i64,
    pub delivered: i64,
    pub deferred: i64,
    pub hard: i64,
    pub soft: i64,
    pub block: i64,
    pub complaints: i64,
    /// (hard + block) / messages that reached an end (delivered or bounced).
    pub bounce_rate: Option<f64>,
    /// complaints / delivered, once complaints are read at all (before
    /// that, None: never a number made up).
    pub complaint_rate: Option<f64>,
    /// Receiving domain, blocks, the last reply.
    pub blocks: Vec<(String, i64, String)>,
    pub warnings: Vec<String>,
}

/// The warnings for a day span's counts.
pub fn judge(r: &mut Reputation) {
    let ended = r.delivered + r.hard + r.soft + r.block;
    if ended > 0 {
        let rate = (r.hard + r.block) as f64 / ended as f64;
        r.bounce_rate = Some(rate);
        if rate >= BOUNCE_ALARM {
            r.warnings.push(format!("{:.1} % of the mail bounced for good: over 5 %, where sending services suspend a sender; clean the list (the suppression list holds the hard bounces)", rate * 100.0));
        } else if rate >= BOUNCE_WARN {
            r.warnings.push(format!("{:.1} % of the mail bounced for good: over 2 %, close to where receivers and sending services act", rate * 100.0));
        }
    }
    if let Some(rate) = r.complaint_rate {
        if rate >= COMPLAINT_ALARM {
            r.warnings.push(format!("{:.2} % of the delivered mail was reported as spam: over Gmail's and Yahoo's 0.3 %", rate * 100.0));
        } else if rate >= COMPLAINT_WARN {
            r.warnings.push(format!("{:.2} % of the delivered mail was reported as spam: over the 0.1 % Google asks senders to stay under", rate * 100.0));
        }
    }
    if let Some((receiver, n, reply)) = r.blocks.first() {
        r.warnings.push(format!("{receiver} refused {n} messages for policy or reputation: {reply}"));
    }
}

impl Store {
    /// The last `days` UTC days of a domain.
    pub fn reputation(&self, domain: &str, days: i64) -> Result<Reputation, StoreError> {
        let since = now().div_euclid(86_400) - days + 1;
        let db = self.db();
        let mut r = db.query_row(
            "SELECT CAST(coalesce(sum(delivered),0) AS BIGINT), CAST(coalesce(sum(deferred),0) AS BIGINT), CAST(coalesce(sum(hard),0) AS BIGINT), CAST(coalesce(sum(soft),0) AS BIGINT), CAST(coalesce(sum(block),0) AS BIGINT), CAST(coalesce(sum(complaints),0) AS BIGINT) FROM domain_stats WHERE domain = ?1 AND day >= ?2",
            params![domain, since],
            |x| Ok(Reputation { days, delivered: x.get(0)?, deferred: x.get(1)?, hard: x.get(2)?, soft: x.get(3)?, block: x.get(4)?, complaints: x.get(5)?, ..Default::default() }),
        )?;
        let read: bool = db.query_row("SELECT count(*) FROM meta WHERE name = 'complaints_read'", [], |x| x.get::<i64>(0))? > 0;
        if read && r.delivered > 0 {
            r.complaint_rate = Some(r.complaints as f64 / r.delivered as f64);
        }
        let mut st = db.prepare("SELECT receiver, CAST(sum(count) AS BIGINT), max(last_reply) FROM domain_blocks WHERE domain = ?1 AND day >= ?2 GROUP BY receiver ORDER BY sum(count) DESC LIMIT 20")?;
        r.blocks = st.query_map(params![domain, since], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)))?.collect::<Result<_, _>>()?;
        drop(st);
        drop(db);
        judge(&mut r);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_come_before_the_thresholds() {
        let mut r = Reputation { delivered: 990, hard: 10, ..Default::default() };
        judge(&mut r);
        assert_eq!(r.bounce_rate, Some(0.01));
        assert!(r.warnings.is_empty());
        let mut r = Reputation { delivered: 97, hard: 3, ..Default::default() };
        judge(&mut r);
        assert!(r.warnings[0].contains("over 2 %"), "{:?}", r.warnings);
        let mut r = Reputation { delivered: 90, hard: 5, block: 5, blocks: vec![("gmail.com".into(), 5, "550 5.7.26 unauthenticated".into())], ..Default::default() };
        judge(&mut r);
        assert!(r.warnings[0].contains("over 5 %") && r.warnings[1].contains("gmail.com refused 5"), "{:?}", r.warnings);
        let mut r = Reputation::default();
        judge(&mut r);
        assert_eq!((r.bounce_rate, r.complaint_rate), (None, None), "no mail, no rate");
    }

    #[test]
    fn events_are_counted_by_day_and_blocks_by_receiver() {
        for b in crate::store::testing::each(&"07".repeat(32)) {
        let s = &b.store;
        
        let db = b.conn();
        for _ in 0..8 {
            record(&db, "shop.example", "delivered", None, "a@example.org", "250 ok").unwrap();
        }
        record(&db, "shop.example", "bounced", Some("hard"), "b@example.org", "550 5.1.1").unwrap();
        record(&db, "shop.example", "bounced", Some("block"), "c@Gmail.com", "550 5.7.26 unauthenticated").unwrap();
        record(&db, "shop.example", "deferred", Some("soft"), "d@example.org", "451").unwrap();
        let r = s.reputation("shop.example", 7).unwrap();
        assert_eq!((r.delivered, r.hard, r.block, r.deferred), (8, 1, 1, 1));
        assert_eq!(r.bounce_rate, Some(0.2));
        assert_eq!(r.blocks, [("gmail.com".to_string(), 1, "550 5.7.26 unauthenticated".to_string())]);
        assert!(r.warnings.len() == 2, "{:?}", r.warnings);
        assert_eq!(s.reputation("other.example", 7).unwrap().bounce_rate, None);
        }
    }
}

/// How long delivered messages are remembered for complaints.
pub const SENT_KEPT: i64 = 30 * 86_400;

/// Remembers a delivered message (its Message-ID and recipient), so that a
/// complaint about it can be believed; forgets what is older than a month.
pub fn remember_sent(db: &crate::db::Conn, message_id: &str, recipient: &str, domain: &str) -> Result<(), StoreError> {
    let t = now();
    db.execute(
        "INSERT INTO sent_messages (message_id, recipient, domain, time) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        params![message_id, recipient.to_ascii_lowercase(), domain, t],
    )?;
    // A cheap trim: now and then, by the index.
    if t % 97 == 0 {
        db.execute("DELETE FROM sent_messages WHERE time < ?1", params![t - SENT_KEPT])?;
    }
    Ok(())
}

/// What came back by mail about one of our messages (a complaint or a
/// bounce), once it is matched to what was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub domain: String,
    pub recipient: String,
}

/// The sent message a returned one names: its domain and the recipient
/// (the one named, when it was among the message's recipients; the only
/// one otherwise). None: not ours, and not believed.
pub fn match_sent(db: &crate::db::Conn, message_id: &str, named: Option<&str>) -> Result<Option<Matched>, StoreError> {
    let mut st = db.prepare("SELECT recipient, domain FROM sent_messages WHERE message_id = ?1")?;
    let rows: Vec<(String, String)> = st.query_map(params![message_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let named = named.map(|n| n.to_ascii_lowercase());
    let pick = match (&named, rows.as_slice()) {
        (Some(n), rows) if rows.iter().any(|(r, _)| r == n) => rows.iter().find(|(r, _)| r == n),
        (_, [only]) => Some(only),
        _ => None,
    };
    Ok(pick.map(|(recipient, domain)| Matched { domain: domain.clone(), recipient: recipient.clone() }))
}

/// A complaint, counted for its domain; the complaint rate is measured
/// from the first one on.
pub fn record_complaint(db: &crate::db::Conn, domain: &str) -> Result<(), StoreError> {
    let day = now().div_euclid(86_400);
    db.execute("INSERT INTO domain_stats (domain, day, complaints) VALUES (?1, ?2, 1) ON CONFLICT (domain, day) DO UPDATE SET complaints = domain_stats.complaints + 1", params![domain, day])?;
    db.execute("INSERT INTO meta (name, value) VALUES ('complaints_read', 1) ON CONFLICT DO NOTHING", [])?;
    Ok(())
}
