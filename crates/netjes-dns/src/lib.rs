//! DNS for netjes.
//!
//! Everything in netjes that needs DNS asks a [`Resolver`]. The live
//! implementation ([`HickoryResolver`]) speaks UDP with a TCP retry on
//! truncation to the system's or the configured name servers; tests point the
//! very same implementation at an authoritative test server on 127.0.0.1, so the
//! choice between live and test DNS is made at run time, never with `cfg(test)`.
//! [`CachingResolver`] wraps any resolver with a TTL cache.
//!
//! # The error contract
//!
//! This table is the one place where DNS outcomes get their meaning. Every
//! protocol module maps [`DnsError`] through [`DnsError::is_temporary`] and
//! [`DnsError::is_void`] and nowhere else.
//!
//! | what the server said                 | `lookup` returns                   | SPF / DKIM / DMARC meaning            |
//! |--------------------------------------|------------------------------------|---------------------------------------|
//! | an answer with records of that type  | `Ok(Lookup)` (never empty)         | the records                           |
//! | NXDOMAIN                             | `Err(DnsError::NxDomain)`          | "none"; an RFC 7208 void lookup       |
//! | NOERROR without records (NODATA)     | `Err(DnsError::NoData)`            | "none"; an RFC 7208 void lookup       |
//! | timeout, SERVFAIL, REFUSED, network  | `Err(DnsError::Temporary)`         | temperror / tempfail, **never** "none" |
//! | a name that is not a valid DNS name  | `Err(DnsError::InvalidName)`       | "none" (nothing can exist there)      |
//!
//! A DNS failure is therefore never reported as a pass and never as "no
//! record". NXDOMAIN and NODATA are cached for the negative TTL of the zone's
//! SOA (RFC 2308); temporary failures are never cached.

mod cache;
mod hickory;
pub mod master;
pub mod offline;
pub mod zone;

pub use cache::{CacheStats, CachingResolver};
pub use hickory::{DnsConfig, HickoryResolver};

use async_trait::async_trait;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The record types netjes asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    A,
    Aaaa,
    Mx,
    Txt,
    Ptr,
    /// Asked only to find out whether a name is an alias (MX targets must
    /// not be, RFC 2181 §10.3); every other type follows CNAMEs.
    Cname,
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Ptr => "PTR",
            RecordType::Cname => "CNAME",
        })
    }
}

/// One resource record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx {
        preference: u16,
        exchange: String,
    },
    /// The character-strings of one TXT record, kept apart so that callers
    /// can both join them (RFC 7208 §3.3) and lint how they were split.
    Txt(Vec<Vec<u8>>),
    Ptr(String),
    Cname(String),
}

/// The answer to one query: at least one record, and the TTL it may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub records: Arc<[Rdata]>,
    pub ttl: u32,
}

/// Why a lookup gave no records. See the crate documentation for the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{name}: no such domain (NXDOMAIN)")]
    NxDomain {
        name: String,
        negative_ttl: Option<u32>,
    },
    #[error("{name}: no {rtype} record (NODATA)")]
    NoData {
        name: String,
        rtype: RecordType,
        negative_ttl: Option<u32>,
    },
    #[error("{name}: temporary DNS failure: {reason}")]
    Temporary { name: String, reason: String },
    #[error("{name:?} is not a valid domain name")]
    InvalidName { name: String },
}

impl DnsError {
    /// Timeout, SERVFAIL and the like: the answer is unknown, try again later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::Temporary { .. })
    }

    /// The name or the record does not exist (RFC 7208 §4.6.4 "void lookup").
    pub fn is_void(&self) -> bool {
        matches!(self, DnsError::NxDomain { .. } | DnsError::NoData { .. })
    }

    pub fn is_nxdomain(&self) -> bool {
        matches!(self, DnsError::NxDomain { .. })
    }

    pub fn temporary(name: &str, reason: impl Into<String>) -> Self {
        DnsError::Temporary {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

pub type DnsResult<T> = Result<T, DnsError>;

/// A DNS resolver. Implementations must follow the error contract above and
/// must return within the time budget they were configured with.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Looks up `name` (with or without the trailing dot, any case).
    async fn lookup(&self, name: &str, rtype: RecordType) -> DnsResult<Lookup>;
}

#[async_trait]
impl<R: Resolver + ?Sized> Resolver for Arc<R> {
    async fn lookup(&self, name: &str, rtype: RecordType) -> DnsResult<Lookup> {
        (**self).lookup(name, rtype).await
    }
}

/// Typed helpers over [`Resolver::lookup`].
#[async_trait]
pub trait ResolverExt: Resolver {
    /// Every TXT record at `name`, each with its strings joined.
    async fn txt(&self, name: &str) -> DnsResult<Vec<Vec<u8>>> {
        let l = self.lookup(name, RecordType::Txt).await?;
        Ok(l.records
            .iter()
            .filter_map(|r| match r {
                Rdata::Txt(parts) => Some(parts.concat()),
                _ => None,
            })
            .collect())
    }

    /// Every TXT record at `name`, with its strings kept apart.
    async fn txt_parts(&self, name: &str) -> DnsResult<Vec<Vec<Vec<u8>>>> {
        let l = self.lookup(name, RecordType::Txt).await?;
        Ok(l.records
            .iter()
            .filter_map(|r| match r {
                Rdata::Txt(parts) => Some(parts.clone()),
                _ => None,
            })
            .collect())
    }

    async fn a(&self, name: &str) -> DnsResult<Vec<Ipv4Addr>> {
        let l = self.lookup(name, RecordType::A).await?;
        Ok(l.records
            .iter()
            .filter_map(|r| if let Rdata::A(a) = r { Some(*a) } else { None })
            .collect())
    }

    async fn aaaa(&self, name: &str) -> DnsResult<Vec<Ipv6Addr>> {
        let l = self.lookup(name, RecordType::Aaaa).await?;
        Ok(l.records
            .iter()
            .filter_map(|r| {
                if let Rdata::Aaaa(a) = r {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect())
    }

    /// The addresses of `name` in the family of `like`.
    async fn addrs_like(&self, name: &str, like: IpAddr) -> DnsResult<Vec<IpAddr>> {
        Ok(match like {
            IpAddr::V4(_) => self.a(name).await?.into_iter().map(IpAddr::V4).collect(),
            IpAddr::V6(_) => self.aaaa(name).await?.into_iter().map(IpAddr::V6).collect(),
        })
    }

    /// MX records sorted by preference.
    async fn mx(&self, name: &str) -> DnsResult<Vec<(u16, String)>> {
        let l = self.lookup(name, RecordType::Mx).await?;
        let mut v: Vec<(u16, String)> = l
            .records
            .iter()
            .filter_map(|r| match r {
                Rdata::Mx {
                    preference,
                    exchange,
                } => Some((*preference, exchange.clone())),
                _ => None,
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// The target of `name` if it is an alias.
    async fn cname(&self, name: &str) -> DnsResult<String> {
        let l = self.lookup(name, RecordType::Cname).await?;
        l.records
            .iter()
            .find_map(|r| {
                if let Rdata::Cname(c) = r {
                    Some(c.clone())
                } else {
                    None
                }
            })
            .ok_or_else(|| DnsError::NoData {
                name: name.to_string(),
                rtype: RecordType::Cname,
                negative_ttl: None,
            })
    }

    /// PTR names of `ip`, without the trailing dot.
    async fn ptr(&self, ip: IpAddr) -> DnsResult<Vec<String>> {
        let l = self.lookup(&reverse_name(ip), RecordType::Ptr).await?;
        Ok(l.records
            .iter()
            .filter_map(|r| {
                if let Rdata::Ptr(p) = r {
                    Some(p.clone())
                } else {
                    None
                }
            })
            .collect())
    }
}

impl<R: Resolver + ?Sized> ResolverExt for R {}

/// Runs futures concurrently on the current task and returns their outputs
/// in order: independent lookups should not wait on each other.
pub async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future completed"))
        .collect()
}

/// The in-addr.arpa / ip6.arpa name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push(char::from_digit((b & 0xf) as u32, 16).unwrap());
                s.push('.');
                s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
                s.push('.');
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// Lower-cases a name and strips the trailing dot: the key for caches and zones.
pub fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` can be sent as a query: labels of 1..=63 octets, at most 253
/// octets in all (RFC 1035 §2.3.4). Characters are not restricted, because
/// SPF macros and DKIM selectors may legitimately produce underscores.
/// A host name (RFC 1123 §2.1): at least two labels of letters, digits
/// and hyphens, each 1 to 63 octets, 253 in all; no trailing dot.
pub fn is_host_name(d: &str) -> bool {
    d.contains('.')
        && d.len() <= 253
        && d.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
}

pub fn is_valid_query_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty() && n.len() <= 253 && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn query_names() {
        assert!(is_valid_query_name("example.com."));
        assert!(is_valid_query_name("_dmarc.example.com"));
        assert!(!is_valid_query_name("a..b"));
        assert!(!is_valid_query_name(&format!("{}.com", "a".repeat(64))));
        assert!(!is_valid_query_name(""));
    }
}
