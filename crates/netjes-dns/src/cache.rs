//! A TTL cache in front of any resolver.

use crate::{normalize_name, DnsError, DnsResult, Lookup, RecordType, Resolver};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Counters, for metrics and for tests that prove what was (not) cached.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub temporary_failures: AtomicU64,
}

/// One cached outcome: when it expires, and the answer or the absence.
type Entry = (Instant, DnsResult<Lookup>);

type Key = (String, RecordType);

/// Caches answers for their TTL and NXDOMAIN/NODATA for the SOA's negative
/// TTL (RFC 2308). Temporary failures pass through and are never cached: a
/// timeout must not turn into an answer for the next message.
///
/// Concurrent lookups of the same name and type share one query: the audit
/// runs independent branches that ask for the same MX or TXT at once.
pub struct CachingResolver<R> {
    inner: R,
    entries: Mutex<HashMap<Key, Entry>>,
    in_flight: Mutex<HashMap<Key, Arc<OnceCell<DnsResult<Lookup>>>>>,
    capacity: usize,
    min_ttl: Duration,
    max_ttl: Duration,
    default_negative_ttl: Duration,
    pub stats: CacheStats,
}

impl<R> std::fmt::Debug for CachingResolver<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingResolver")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<R: Resolver> CachingResolver<R> {
    pub fn new(inner: R) -> Self {
        CachingResolver {
            inner,
            entries: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            capacity: 100_000,
            min_ttl: Duration::from_secs(0),
            max_ttl: Duration::from_secs(86_400),
            default_negative_ttl: Duration::from_secs(300),
            stats: CacheStats::default(),
        }
    }

    /// At most this many entries are kept; when full, expired entries are
    /// dropped first and then the cache is cleared (simple and bounded).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap().clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ttl_of(&self, res: &DnsResult<Lookup>) -> Option<Duration> {
        let d = match res {
            Ok(l) => Duration::from_secs(l.ttl as u64),
            Err(DnsError::NxDomain { negative_ttl, .. })
            | Err(DnsError::NoData { negative_ttl, .. }) => negative_ttl
                .map(|t| Duration::from_secs(t as u64))
                .unwrap_or(self.default_negative_ttl),
            Err(DnsError::InvalidName { .. }) => self.max_ttl,
            Err(DnsError::Temporary { .. }) => return None,
        };
        Some(d.clamp(self.min_ttl, self.max_ttl))
    }
}

#[async_trait]
impl<R: Resolver> Resolver for CachingResolver<R> {
    async fn lookup(&self, name: &str, rtype: RecordType) -> DnsResult<Lookup> {
        let key = (normalize_name(name), rtype);
        let now = Instant::now();
        if let Some((expires, res)) = self.entries.lock().unwrap().get(&key) {
            if *expires > now {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return match res {
                    Ok(l) => Ok(Lookup {
                        records: l.records.clone(),
                        ttl: expires.saturating_duration_since(now).as_secs() as u32,
                    }),
                    Err(e) => Err(e.clone()),
                };
            }
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let cell = self
            .in_flight
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone();
        let mut asked = false;
        let res = cell
            .get_or_init(|| {
                asked = true;
                self.inner.lookup(name, rtype)
            })
            .await
            .clone();
        if !asked {
            // Another task asked and stored the outcome.
            return res;
        }
        match self.ttl_of(&res) {
            Some(ttl) if !ttl.is_zero() => {
                let mut map = self.entries.lock().unwrap();
                if map.len() >= self.capacity {
                    map.retain(|_, (exp, _)| *exp > now);
                    if map.len() >= self.capacity {
                        map.clear();
                    }
                }
                map.insert(key.clone(), (now + ttl, res.clone()));
            }
            Some(_) => {}
            None => {
                self.stats
                    .temporary_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        // Only now, with the answer cached, may the next lookup ask again.
        self.in_flight.lock().unwrap().remove(&key);
        res
    }
}
