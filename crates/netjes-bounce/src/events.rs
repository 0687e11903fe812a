//! What happened to each message, from Postfix's log. Postfix has no
//! delivery-status hook that works without a patch (its `notify_classes`
//! and DSN requests notify the sender by mail, not a program), but every
//! delivery attempt is one log line from the smtp, lmtp, local or virtual
//! agent, with the queue id, the recipient, the DSN code and the remote
//! reply. Those lines are joined here with the ones that name the
//! message: cleanup's `message-id=` and qmgr's `from=`.
//!
//! Free of IO: [`Tracker::feed`] takes one line and returns the event it
//! completes. Memory is bounded: a message is forgotten when qmgr logs
//! `removed`, and beyond [`MAX_TRACKED`] messages the oldest go first.

use crate::dsn::Status;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Messages whose sender and Message-ID are kept at once.
pub const MAX_TRACKED: usize = 100_000;

/// One delivery attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The log line's own time stamp, as written.
    pub time: String,
    pub queue_id: String,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    /// The sender's domain: the customer the mail was sent for.
    pub customer_domain: Option<String>,
    pub recipient: String,
    /// delivered, deferred, bounced or expired.
    pub event: &'static str,
    pub dsn: Option<String>,
    pub relay: Option<String>,
    /// The text in parentheses after the status: the remote reply.
    pub reply: String,
    /// For a bounce or a deferral: hard, soft or block, as `netjes bounce`
    /// reads the code and the reply.
    pub class: Option<crate::classify::Class>,
}

#[derive(Debug, Clone, Default)]
struct Message {
    sender: Option<String>,
    message_id: Option<String>,
}

/// Joins the lines of each message.
#[derive(Debug, Default)]
pub struct Tracker {
    messages: HashMap<String, Message>,
    order: VecDeque<String>,
}

/// A Postfix queue id: hexadecimal (short ids) or the long form's
/// letters and digits.
fn is_queue_id(s: &str) -> bool {
    s != "NOQUEUE" && (5..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `time host postfix[/instance]/program[pid]: rest`, split into the time
/// stamp, the program and the rest.
fn split_line(line: &str) -> Option<(&str, &str, &str)> {
    let (head, rest) = line.split_once("]: ")?;
    let (head, _pid) = head.rsplit_once('[')?;
    let program = head.rsplit_once(' ').map(|(_, p)| p)?;
    if !program.starts_with("postfix") {
        return None;
    }
    let program = program.rsplit('/').next()?;
    // The time stamp: everything before the host name, which is the word
    // before the program.
    let before = head.rsplit_once(' ').map(|(b, _)| b)?;
    let time = before.rsplit_once(' ').map(|(t, _)| t).unwrap_or(before);
    Some((time, program, rest))
}

/// `key=value` pairs of a log line's middle part, separated by ", ".
fn pairs(s: &str) -> Vec<(&str, &str)> {
    s.split(", ").filter_map(|p| p.split_once('=')).collect()
}

fn unbracket(s: &str) -> String {
    s.trim().trim_start_matches('<').trim_end_matches('>').to_string()
}

/// The customer a sender stands for: its domain, or in a return path of
/// netjes routes' `verp` map (`bounces+DOMAIN@...`) the DOMAIN in it.
fn customer_of(sender: &str) -> Option<String> {
    let (local, domain) = sender.rsplit_once('@')?;
    if let Some(inner) = local.strip_prefix("bounces+") {
        if inner.contains('.') && inner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return Some(inner.to_ascii_lowercase());
        }
    }
    Some(domain.to_ascii_lowercase())
}

impl Tracker {
    fn note(&mut self, id: &str) -> &mut Message {
        if !self.messages.contains_key(id) {
            if self.messages.len() >= MAX_TRACKED {
                if let Some(old) = self.order.pop_front() {
                    self.messages.remove(&old);
                }
            }
            self.order.push_back(id.to_string());
        }
        self.messages.entry(id.to_string()).or_default()
    }

    /// Reads one log line; the event it completes, if any.
    pub fn feed(&mut self, line: &str) -> Option<Event> {
        let (time, program, rest) = split_line(line.trim_end())?;
        let (id, what) = rest.split_once(": ")?;
        if !is_queue_id(id) {
            return None;
        }
        match program {
            "cleanup" => {
                if let Some(mid) = what.strip_prefix("message-id=") {
                    self.note(id).message_id = Some(unbracket(mid)).filter(|m| !m.is_empty());
                }
                None
            }
            "qmgr" => {
                if what == "removed" {
                    self.messages.remove(id);
                    self.order.retain(|q| q != id);
                } else if let Some(from) = what.strip_prefix("from=") {
                    let sender = unbracket(from.split(", ").next().unwrap_or(""));
                    self.note(id).sender = Some(sender).filter(|s| !s.is_empty());
                }
                None
            }
            "smtp" | "lmtp" | "local" | "virtual" | "pipe" | "error" | "discard" => self.delivery(time, id, what),
            _ => None,
        }
    }

    fn delivery(&mut self, time: &str, id: &str, what: &str) -> Option<Event> {
        let (fields, status) = what.split_once(", status=")?;
        let (word, reply) = match status.split_once(' ') {
            Some((w, r)) => (w, r.trim()),
            None => (status, ""),
        };
        let event = match word {
            "sent" => "delivered",
            "deferred" => "deferred",
            "bounced" => "bounced",
            "expired" => "expired",
            _ => return None,
        };
        let f = pairs(fields);
        let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let recipient = unbracket(get("to")?);
        let m = self.messages.get(id).cloned().unwrap_or_default();
        let customer_domain = m.sender.as_deref().and_then(customer_of);
        let reply = reply.trim_start_matches('(').trim_end_matches(')').to_string();
        let dsn = get("dsn").and_then(Status::parse);
        let class = match event {
            "delivered" => None,
            "bounced" => Some(crate::classify::by_status(dsn, &crate::dsn::Action::Failed, &reply).0),
            _ => Some(crate::classify::Class::Soft),
        };
        Some(Event {
            time: time.to_string(),
            queue_id: id.to_string(),
            message_id: m.message_id,
            sender: m.sender,
            customer_domain,
            recipient,
            event,
            dsn: dsn.map(|d| d.to_string()),
            relay: get("relay").map(String::from),
            reply,
            class,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
Nov 30 06:15:15 mx postfix/pickup[12574]: ADEF9A640B0: uid=0 from=<app@relay.example>
Nov 30 06:15:15 mx postfix/cleanup[12582]: ADEF9A640B0: message-id=<20261130.1@relay.example>
Nov 30 06:15:15 mx postfix/qmgr[12575]: ADEF9A640B0: from=<app@Relay.Example>, size=271, nrcpt=2 (queue active)
Nov 30 06:15:15 mx postfix/smtp[12770]: ADEF9A640B0: to=<bob@example.org>, relay=localhost[127.0.0.1]:45377, delay=0.07, delays=0.01/0.01/0/0.04, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)
Nov 30 06:15:16 mx postfix/smtp[12770]: ADEF9A640B0: to=<carol@example.net>, relay=mx.example.net[192.0.2.25]:25, delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced (host mx.example.net[192.0.2.25] said: 550 5.1.1 <carol@example.net>: Recipient address rejected: User unknown (in reply to RCPT TO command))
Nov 30 06:15:16 mx postfix/bounce[12800]: ADEF9A640B0: sender non-delivery notification: 1B2C3A640B1
Nov 30 06:15:16 mx postfix/qmgr[12575]: ADEF9A640B0: removed
Nov 30 06:20:00 mx postfix/smtp[12771]: 9F8E7A640AA: to=<dave@slow.example>, relay=none, delay=300, delays=0/0/300/0, dsn=4.4.1, status=deferred (connect to mx.slow.example[198.51.100.9]:25: Connection timed out)
Nov 30 06:20:00 mx postfix/postfix-script[1]: starting the Postfix mail system
not a postfix line at all
Nov 30 06:20:01 mx postfix/smtp[1]: NOQUEUE: to=<x@y>, status=sent (no)
";

    #[test]
    fn the_lines_of_a_message_make_its_events() {
        let mut t = Tracker::default();
        let events: Vec<Event> = LOG.lines().filter_map(|l| t.feed(l)).collect();
        assert_eq!(events.len(), 3, "{events:#?}");
        let e = &events[0];
        assert_eq!((e.event, e.recipient.as_str(), e.customer_domain.as_deref(), e.message_id.as_deref()), ("delivered", "bob@example.org", Some("relay.example"), Some("20261130.1@relay.example")));
        assert_eq!((e.dsn.as_deref(), e.relay.as_deref(), e.reply.as_str()), (Some("2.0.0"), Some("localhost[127.0.0.1]:45377"), "250 2.0.0 Ok: queued"));
        let b = &events[1];
        assert_eq!((b.event, b.dsn.as_deref(), b.class), ("bounced", Some("5.1.1"), Some(crate::classify::Class::Hard)));
        assert!(b.reply.contains("550 5.1.1") && b.reply.ends_with("(in reply to RCPT TO command"), "{}", b.reply);
        let d = &events[2];
        assert_eq!((d.event, d.sender.as_deref(), d.customer_domain.as_deref()), ("deferred", None, None), "a message whose first lines were not seen");
        assert!(t.messages.is_empty() || !t.messages.contains_key("ADEF9A640B0"), "forgotten once removed");
    }

    #[test]
    fn a_verp_return_path_names_its_customer() {
        assert_eq!(customer_of("bounces+Shop.Example@bounces.netjes.example").as_deref(), Some("shop.example"));
        assert_eq!(customer_of("app@shop.example").as_deref(), Some("shop.example"));
        assert_eq!(customer_of("bounces+x@y.example").as_deref(), Some("y.example"), "not a domain inside: the sender's own");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = Tracker::default();
        for i in 0..(MAX_TRACKED + 10) {
            t.feed(&format!("Nov 30 06:15:15 mx postfix/cleanup[1]: Q{i:08X}: message-id=<{i}@x>"));
        }
        assert_eq!(t.messages.len(), MAX_TRACKED);
        assert!(!t.messages.contains_key("Q00000000"), "the oldest went first");
    }
}
