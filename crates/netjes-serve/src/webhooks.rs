//! Delivery events to each customer's webhook: a JSON POST signed with the
//! customer's secret (`X-Netjes-Signature: sha256=HEX` of HMAC-SHA256 over
//! `TIMESTAMP.BODY`, with `X-Netjes-Timestamp`), so the receiver can tell
//! it is ours and fresh. Events wait in the store's outbox, so a restart
//! loses none; a failed POST is tried again after 1, 2, 4 ... minutes (an
//! hour at most) and given up after a day, counted. The secret is sealed
//! like the private keys and shown once, when it is made.

use crate::store::{now, Store, StoreError};
use crate::db::OptionalExtension;
use crate::params;
use std::sync::Arc;
use std::time::Duration;

/// Events older than this are given up.
pub const GIVE_UP: i64 = 24 * 3600;
/// Waiting events per domain at most: a dead endpoint must not fill the disk.
pub const MAX_WAITING: i64 = 100_000;

fn aad(domain: &str) -> String {
    format!("netjes-webhook:{domain}")
}

/// An http:// or https:// URL with a host, as the webhook.
pub fn valid_url(u: &str) -> Result<axum::http::Uri, String> {
    match u.parse::<axum::http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => Ok(uri),
        _ => Err(format!("{u:?} is not an http:// or https:// URL")),
    }
}

impl Store {
    /// Sets a domain's webhook and makes its secret: returned here, once.
    pub fn set_webhook(&self, domain: &str, url: &str) -> Result<String, StoreError> {
        valid_url(url).map_err(StoreError::Invalid)?;
        let secret = hex(&crate::crypto::random_bytes::<32>());
        let sealed = self.master.seal(secret.as_bytes(), &aad(domain));
        let db = self.db();
        if db.query_row("SELECT count(*) FROM domains WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? == 0 {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        db.execute(
            "INSERT INTO webhooks (domain, url, sealed_secret, created) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (domain) DO UPDATE SET url = ?2, sealed_secret = ?3, created = ?4",
            params![domain, url, sealed, now()],
        )?;
        Ok(secret)
    }

    /// The webhook's URL (no secret).
    pub fn webhook_url(&self, domain: &str) -> Result<Option<String>, StoreError> {
        Ok(self.db().query_row("SELECT url FROM webhooks WHERE domain = ?1", params![domain], |r| r.get(0)).optional()?)
    }

    pub fn delete_webhook(&self, domain: &str) -> Result<bool, StoreError> {
        Ok(self.db().execute("DELETE FROM webhooks WHERE domain = ?1", params![domain])? > 0)
    }

    fn webhook(&self, domain: &str) -> Result<Option<(String, String)>, StoreError> {
        let row: Option<(String, Vec<u8>)> = self.db().query_row("SELECT url, sealed_secret FROM webhooks WHERE domain = ?1", params![domain], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let Some((url, sealed)) = row else { return Ok(None) };
        let secret = String::from_utf8(self.master.open(&sealed, &aad(domain))?).map_err(|_| StoreError::Invalid("a webhook secret that is not text".into()))?;
        Ok(Some((url, secret)))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Queues an event for `domain`'s webhook, on a connection of its own
/// (`netjes events` writes without the master key); false when the
/// domain has none (or too many wait already: counted by the caller).
pub fn queue(db: &crate::db::Conn, domain: &str, body: &str) -> Result<bool, StoreError> {
    if db.query_row("SELECT count(*) FROM webhooks WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? == 0 {
        return Ok(false);
    }
    if db.query_row("SELECT count(*) FROM webhook_outbox WHERE domain = ?1", params![domain], |r| r.get::<i64>(0))? >= MAX_WAITING {
        return Ok(false);
    }
    let t = now();
    db.execute("INSERT INTO webhook_outbox (domain, body, attempts, next_try, created) VALUES (?1, ?2, 0, ?3, ?3)", params![domain, body, t])?;
    Ok(true)
}

/// The signature header's value for a body sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex(tag.as_ref()))
}

/// Sends what is due; returns how many went.
async fn round(store: &Store, allow_private: bool, metrics: &netjes_net::metrics::Metrics) -> Result<usize, StoreError> {
    let t = now();
    let due: Vec<(i64, String, String, i64, i64)> = {
        let db = store.db();
        db.execute("DELETE FROM webhook_outbox WHERE created < ?1", params![t - GIVE_UP]).map(|n| {
            for _ in 0..n {
                metrics.inc("netjes_webhooks_total", &[("result", "given-up")]);
            }
        })?;
        db.query_map("SELECT id, domain, body, attempts, created FROM webhook_outbox WHERE next_try <= ?1 ORDER BY id LIMIT 200", params![t], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
    };
    let mut sent = 0;
    for (id, domain, body, attempts, _created) in due {
        let result = match store.webhook(&domain)? {
            None => Ok(()), // The webhook was removed: nothing to send to.
            Some((url, secret)) => post(&url, &secret, &body, allow_private).await,
        };
        let db = store.db();
        match result {
            Ok(()) => {
                db.execute("DELETE FROM webhook_outbox WHERE id = ?1", params![id])?;
                metrics.inc("netjes_webhooks_total", &[("result", "sent")]);
                sent += 1;
            }
            Err(e) => {
                let wait = (60i64 << attempts.min(6)).min(3600);
                tracing::warn!(domain = %domain, error = %e, attempts = attempts + 1, "webhook not delivered; trying again in {wait} s");
                db.execute("UPDATE webhook_outbox SET attempts = attempts + 1, next_try = ?2 WHERE id = ?1", params![id, now() + wait])?;
                metrics.inc("netjes_webhooks_total", &[("result", "failed")]);
            }
        }
    }
    Ok(sent)
}

/// One signed POST, to a public address unless `allow_private`.
async fn post(url: &str, secret: &str, body: &str, allow_private: bool) -> Result<(), String> {
    let uri = valid_url(url)?;
    let host = uri.host().unwrap_or("").trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    if !allow_private {
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("{host}: {e}"))?.collect();
        if addrs.iter().any(|a| !netjes_net::is_public(a.ip())) {
            return Err(format!("{host} is not a public address (allow_private_targets is off)"));
        }
    }
    let ts = now();
    let headers = [("X-Netjes-Timestamp", ts.to_string()), ("X-Netjes-Signature", signature(secret, ts, body))];
    tokio::time::timeout(Duration::from_secs(30), crate::report_alerts::post_json(&uri, body.as_bytes(), &headers))
        .await
        .map_err(|_| format!("{url}: no answer within 30 s"))?
}

/// Delivers the outbox every few seconds until `stop` turns true.
pub async fn run(store: Store, allow_private: bool, metrics: Arc<netjes_net::metrics::Metrics>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    metrics.describe("netjes_webhooks_total", "Delivery events posted to customers' webhooks, by result (sent, failed, given-up).");
    while !*stop.borrow() {
        // One instance of several posts the outbox (jobs.rs).
        match store.job_lock("webhooks") {
            Ok(Some(_lead)) => {
                if let Err(e) = round(&store, allow_private, &metrics).await {
                    tracing::error!(error = %e, "webhook outbox");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "webhook outbox"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|v| *v) => {}
        }
    }
}
