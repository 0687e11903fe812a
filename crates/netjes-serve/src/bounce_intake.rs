//! Complaints and bounces that come back by mail, to the bounce domain's
//! addresses (serve's inbox) or through `netjes bounce --store`: each is
//! matched to a message we delivered by the Message-ID it returns, and
//! only then suppresses its recipient and counts. What names no message of
//! ours is left alone: anyone can mail a made-up bounce or complaint.

use netjes_bounce::classify::{classify, Bounce, Class, Reading};

/// What became of one bounce or complaint, in words.
pub fn take(db: &crate::db::Conn, b: &Bounce) -> String {
    let Some(mid) = &b.original_message_id else { return "not matched: it names no Message-ID".into() };
    let matched = match crate::reputation::match_sent(db, mid, b.recipient.as_deref()) {
        Ok(Some(m)) => m,
        Ok(None) => return format!("not matched: <{mid}> is no message of ours"),
        Err(e) => return format!("the store: {e}"),
    };
    let (class, counted) = match b.class {
        Class::Complaint => ("complaint", crate::reputation::record_complaint(db, &matched.domain)),
        Class::Hard => ("hard", crate::reputation::record(db, &matched.domain, "bounced", Some("hard"), &matched.recipient, b.reply.as_deref().unwrap_or(""))),
        _ => return format!("matched to {}, {}: {} changes nothing", matched.domain, matched.recipient, b.class.name()),
    };
    if let Err(e) = counted {
        return format!("the store: {e}");
    }
    match crate::suppress_store::suppress(db, &matched.domain, &matched.recipient, class, &b.reason) {
        Ok(added) => {
            if added {
                // The customer hears of it as of any other event.
                let body = serde_json::json!({"event": "suppressed", "customer_domain": matched.domain, "recipient": matched.recipient, "class": class, "message_id": mid, "reason": b.reason});
                let _ = crate::webhooks::queue(db, &matched.domain, &body.to_string());
            }
            format!("suppressed {} for {} ({class})", matched.recipient, matched.domain)
        }
        Err(e) => format!("the store: {e}"),
    }
}

/// A whole mail: its reading, and what became of each bounce in it.
pub fn take_mail(db: &crate::db::Conn, raw: &[u8]) -> (Reading, Vec<String>) {
    let reading = classify(raw);
    let done = match &reading {
        Reading::Bounces { bounces } => bounces.iter().map(|b| take(db, b)).collect(),
        Reading::NotABounce { why } => vec![format!("not a bounce: {why}")],
    };
    (reading, done)
}
