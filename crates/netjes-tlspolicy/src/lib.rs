//! `netjes tlspolicy`: MTA-STS (RFC 8461) for Postfix's own outbound
//! mail. Postfix asks, through `smtp_tls_policy_maps =
//! socketmap:inet:127.0.0.1:PORT:postfix`, what TLS a destination domain
//! needs; for a domain whose policy says `mode: enforce`, the answer is
//! `secure` with the policy's MX names, so that Postfix refuses to deliver
//! to an MX without a valid certificate for a name the policy lists. DANE
//! is left to Postfix's own `dane` level.
//!
//! A policy is fetched when its `_mta-sts` record's id changes or half its
//! max_age has passed, and kept (in SQLite, across restarts) until its
//! max_age ends; while a refresh fails, the policy in hand is used (RFC
//! 8461 §3.3). With no policy at all, or DNS failing and nothing cached,
//! the answer is "not found": Postfix's default, as for a domain without
//! MTA-STS (§5), never a deferral of all mail.

pub mod cache;
pub mod policy;
pub mod socketmap;

use cache::{Cache, Cached};
use netjes_check::mta_sts::{fetch_policy, parse_policy};
use netjes_dns::{DnsError, Resolver, ResolverExt};
use netjes_net::metrics::Metrics;
use socketmap::Reply;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Domains (and their subdomains) never given a policy.
    pub exempt: Vec<String>,
    /// Add the attributes Postfix 3.10's TLSRPT support reads.
    pub tlsrpt: bool,
    /// How policies are fetched (a CA file for tests, the time budget).
    pub net: netjes_check::tls::NetOptions,
}

pub struct Service {
    pub dns: Arc<dyn Resolver>,
    pub cache: Cache,
    pub cfg: Config,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// The id of the domain's one `_mta-sts` record (RFC 8461 §3.1), `None`
/// when there is none (or several, or no id); a DNS failure is an error.
async fn record_id(dns: &dyn Resolver, domain: &str) -> Result<Option<String>, DnsError> {
    let records = match dns.txt(&format!("_mta-sts.{domain}")).await {
        Ok(r) => r,
        Err(e) if e.is_temporary() => return Err(e),
        Err(_) => return Ok(None),
    };
    let sts: Vec<String> = records
        .iter()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .filter(|t| t.trim_start().to_ascii_lowercase().starts_with("v=stsv1"))
        .collect();
    let [one] = sts.as_slice() else { return Ok(None) };
    Ok(one.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        let v = v.trim();
        (k.trim() == "id" && !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| v.to_string())
    }))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A destination as Postfix names it, or `None` for what is not a domain.
/// Postfix's key is the next-hop as the transport gives it (TLS_README,
/// "TLS policy table"): the recipient domain, or `domain:port` for a
/// transport that names a port, whose MX hosts are still looked up, so its
/// policy applies. A bracketed `[host]` (no MX lookup: RFC 8461 §4 is
/// about MX hosts) and a parent-domain ".example.com" probe get none.
fn domain_of(key: &str) -> Option<String> {
    let key = key.trim();
    let key = match key.rsplit_once(':') {
        Some((d, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => d,
        Some(_) => return None,
        None => key,
    };
    let d = key.trim_end_matches('.').to_ascii_lowercase();
    netjes_dns::is_host_name(&d).then_some(d)
}


impl Service {
    pub fn new(dns: Arc<dyn Resolver>, cache: Cache, cfg: Config, metrics: Arc<Metrics>) -> Service {
        metrics.describe("netjes_tlspolicy_lookups_total", "MTA-STS lookups by Postfix, by answer (secure, none).");
        metrics.describe("netjes_tlspolicy_fetches_total", "MTA-STS policy fetches, by result.");
        Service { dns, cache, cfg, metrics }
    }

    fn exempt(&self, d: &str) -> bool {
        self.cfg.exempt.iter().any(|e| d == e || d.ends_with(&format!(".{e}")))
    }

    /// The policy to apply to `domain` at `at`: the cached one while its
    /// record id is unchanged and it is fresh, else fetched anew, else the
    /// cached one while it lasts.
    async fn policy(&self, domain: &str, at: i64) -> Option<Cached> {
        let cached = self.cache.get(domain).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "MTA-STS cache");
            None
        });
        let valid = cached.clone().filter(|c| c.expires > at);
        let id = match record_id(self.dns.as_ref(), domain).await {
            Ok(Some(id)) => id,
            // No record, or DNS failing: the policy in hand, if any.
            Ok(None) | Err(_) => return valid,
        };
        if let Some(c) = valid.as_ref().filter(|c| c.id == id && at < c.fetched + (c.expires - c.fetched) / 2) {
            return Some(c.clone());
        }
        match fetch_policy(self.dns.as_ref(), domain, &self.cfg.net).await {
            Ok(f) => {
                self.metrics.inc("netjes_tlspolicy_fetches_total", &[("result", "ok")]);
                let c = Cached { id, text: f.text, fetched: at, expires: at + f.policy.max_age as i64 };
                if let Err(e) = self.cache.put(domain, &c) {
                    tracing::warn!(error = %e, "MTA-STS cache");
                }
                Some(c)
            }
            Err(e) => {
                self.metrics.inc("netjes_tlspolicy_fetches_total", &[("result", "failed")]);
                tracing::info!(domain, error = e.message(), "MTA-STS policy not fetched; the cached one is used while it lasts");
                valid
            }
        }
    }

    /// The answer for one key.
    pub async fn lookup(&self, key: &str) -> Reply {
        let Some(domain) = domain_of(key).filter(|d| !self.exempt(d)) else {
            return Reply::NotFound;
        };
        let answer = self
            .policy(&domain, now())
            .await
            .and_then(|c| parse_policy(&c.text).ok().map(|p| (p, c.text)))
            .and_then(|(p, text)| policy::answer(&domain, &p, &text, self.cfg.tlsrpt));
        let word = if answer.is_some() { "secure" } else { "none" };
        self.metrics.inc("netjes_tlspolicy_lookups_total", &[("answer", word)]);
        answer.map(Reply::Ok).unwrap_or(Reply::NotFound)
    }
}

/// A connection idle this long is closed; Postfix opens a new one.
const IDLE: Duration = Duration::from_secs(120);
/// Connections at once.
const MAX_CONNECTIONS: usize = 256;

/// What a socketmap server answers: MTA-STS policies here, the routes of
/// the signing domains in netjes-serve. `name` is the map name Postfix
/// gives (`socketmap:inet:HOST:PORT:NAME`).
#[async_trait::async_trait]
pub trait Maps: Send + Sync + 'static {
    async fn lookup(&self, name: &str, key: &str) -> Reply;
    /// How long one lookup may take before Postfix gets TEMP.
    fn budget(&self) -> Duration;
}

#[async_trait::async_trait]
impl Maps for Service {
    /// Every map name gets the MTA-STS answer (Postfix's examples name it
    /// "postfix").
    async fn lookup(&self, _name: &str, key: &str) -> Reply {
        Service::lookup(self, key).await
    }
    fn budget(&self) -> Duration {
        self.cfg.net.timeout * 3
    }
}

/// Answers one connection's requests, in order, until it closes, idles
/// or sends what is not a netstring.
async fn serve(svc: &dyn Maps, mut io: Box<dyn netjes_net::Stream>) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((req, used)) = socketmap::parse(&buf).map_err(std::io::Error::other)? {
            buf.drain(..used);
            let reply = match tokio::time::timeout(svc.budget(), svc.lookup(&req.name, &req.key)).await {
                Ok(r) => r,
                // Out of time: Postfix tries again later.
                Err(_) => Reply::Temp("the lookup timed out".into()),
            };
            io.write_all(&socketmap::encode(&reply)).await?;
        }
        let n = tokio::time::timeout(IDLE, io.read(&mut chunk)).await.map_err(|_| std::io::Error::other("idle"))??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves MTA-STS policies until `shutdown` turns true.
pub async fn run(listener: netjes_net::Listener, svc: Arc<Service>, shutdown: tokio::sync::watch::Receiver<bool>) {
    serve_maps(listener, svc, shutdown).await
}

/// Serves any [`Maps`] until `shutdown` turns true.
pub async fn serve_maps(listener: netjes_net::Listener, svc: Arc<dyn Maps>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let io = tokio::select! {
            // A dropped sender means no one can stop us gracefully: stop.
            r = shutdown.changed() => if r.is_err() { return } else { continue },
            r = listener.accept() => match r {
                Ok(io) => io,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the limit: closed at once; Postfix tries again.
            continue;
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(svc.as_ref(), io).await {
                tracing::debug!(error = %e, "socketmap connection ended");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod key_tests {
    use super::domain_of;

    #[test]
    fn postfix_next_hops_are_read_as_postfix_writes_them() {
        assert_eq!(domain_of("Example.COM.").as_deref(), Some("example.com"));
        assert_eq!(domain_of("example.com:2525").as_deref(), Some("example.com"));
        for none in ["[mx.example.com]", "[mx.example.com]:25", ".example.com", "example.com:", "example.com:smtp", "example.com:25:25", "[192.0.2.1]", "inet:example.com"] {
            assert_eq!(domain_of(none), None, "{none}");
        }
    }
}
