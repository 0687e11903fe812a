//! Answers from zones in memory: `netjes check --zone` shows what the world
//! will see of a zone before it is published.
//!
//! Names at or under a zone's origin are answered from that zone, with the
//! same contract as the live resolver (NXDOMAIN against NODATA, CNAMEs
//! followed). Other names go to the fallback resolver, because a domain's
//! records point at names elsewhere (include:_spf.google.com); without a
//! fallback they are a temporary failure, never an invented absence.

use crate::zone::{Zone, ZoneRecord};
use crate::{normalize_name, DnsError, DnsResult, Lookup, Rdata, RecordType, Resolver};
use async_trait::async_trait;
use std::sync::Arc;

pub struct ZoneResolver {
    zones: Vec<(String, Zone)>,
    fallback: Option<Arc<dyn Resolver>>,
}

impl std::fmt::Debug for ZoneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneResolver")
            .field(
                "origins",
                &self.zones.iter().map(|z| &z.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ZoneResolver {
    pub fn new() -> Self {
        ZoneResolver {
            zones: Vec::new(),
            fallback: None,
        }
    }

    /// Adds a zone whose apex is `origin`.
    pub fn add_zone(&mut self, origin: &str, zone: Zone) {
        self.zones.push((normalize_name(origin), zone));
    }

    pub fn with_fallback(mut self, r: Arc<dyn Resolver>) -> Self {
        self.fallback = Some(r);
        self
    }

    /// The zone that answers for `name`: one that holds the name (a file
    /// may carry several $ORIGINs, a reverse zone among them), else the one
    /// whose origin is the longest suffix of it.
    fn zone_for(&self, name: &str) -> Option<&Zone> {
        if let Some((_, z)) = self.zones.iter().find(|(_, z)| z.name_exists(name)) {
            return Some(z);
        }
        self.zones
            .iter()
            .filter(|(o, _)| name == o || name.ends_with(&format!(".{o}")))
            .max_by_key(|(o, _)| o.len())
            .map(|(_, z)| z)
    }
}

impl ZoneResolver {
    /// Whether `name` is, or is a label under, a known public suffix that
    /// stands above one of the zones (`_dmarc.com` over example.com).
    fn public_suffix_above(&self, name: &str) -> bool {
        let base = name.strip_prefix("_dmarc.").unwrap_or(name);
        let is_suffix = psl::suffix(base.as_bytes())
            .is_some_and(|s| s.is_known() && s.as_bytes() == base.as_bytes());
        is_suffix
            && self
                .zones
                .iter()
                .any(|(o, _)| o.ends_with(&format!(".{base}")))
    }
}

impl Default for ZoneResolver {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Resolver for ZoneResolver {
    async fn lookup(&self, name: &str, rtype: RecordType) -> DnsResult<Lookup> {
        if !crate::is_valid_query_name(name) {
            return Err(DnsError::InvalidName {
                name: name.to_string(),
            });
        }
        let mut current = normalize_name(name);
        if self.public_suffix_above(&current) {
            // The DMARC tree walk climbs from the zone to the public
            // suffix above it (_dmarc.com); an offline check must not ask
            // the network for that. Public suffixes publish no DMARC record
            // that a zone's check could use here.
            return Err(DnsError::NxDomain {
                name: current,
                negative_ttl: Some(0),
            });
        }
        for _ in 0..8 {
            let Some(zone) = self.zone_for(&current) else {
                return match &self.fallback {
                    Some(f) => f.lookup(&current, rtype).await,
                    None => Err(DnsError::temporary(
                        &current,
                        "outside the zones given with --zone, and no network",
                    )),
                };
            };
            let Some(data) = zone.lookup(&current) else {
                return Err(if zone.name_exists(&current) {
                    DnsError::NoData {
                        name: current,
                        rtype,
                        negative_ttl: Some(0),
                    }
                } else {
                    DnsError::NxDomain {
                        name: current,
                        negative_ttl: Some(0),
                    }
                });
            };
            if data.servfail {
                return Err(DnsError::temporary(&current, "SERVFAIL (fixture)"));
            }
            if let Some(target) = data.records.iter().find_map(|r| {
                if let ZoneRecord::Cname(t) = r {
                    Some(t.clone())
                } else {
                    None
                }
            }) {
                if rtype == RecordType::Cname {
                    return Ok(Lookup {
                        records: vec![Rdata::Cname(target)].into(),
                        ttl: data.ttl,
                    });
                }
                current = target;
                continue;
            }
            let records: Vec<Rdata> = data
                .records
                .iter()
                .filter_map(|r| match (r, rtype) {
                    (ZoneRecord::A(a), RecordType::A) => Some(Rdata::A(*a)),
                    (ZoneRecord::Aaaa(a), RecordType::Aaaa) => Some(Rdata::Aaaa(*a)),
                    (ZoneRecord::Mx(p, x), RecordType::Mx) => Some(Rdata::Mx {
                        preference: *p,
                        exchange: x.clone(),
                    }),
                    (ZoneRecord::Txt(t), RecordType::Txt) => Some(Rdata::Txt(t.clone())),
                    (ZoneRecord::Ptr(p), RecordType::Ptr) => Some(Rdata::Ptr(p.clone())),
                    _ => None,
                })
                .collect();
            if records.is_empty() {
                if data.timeout {
                    return Err(DnsError::temporary(&current, "timed out (fixture)"));
                }
                return Err(DnsError::NoData {
                    name: current,
                    rtype,
                    negative_ttl: Some(0),
                });
            }
            return Ok(Lookup {
                records: records.into(),
                ttl: data.ttl,
            });
        }
        Err(DnsError::temporary(name, "CNAME chain longer than 8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::parse_master_file;
    use crate::ResolverExt;

    #[tokio::test]
    async fn answers_from_the_zone_with_the_contract() {
        let z = parse_master_file(
            "@ MX 10 mail\nmail A 192.0.2.1\nwww CNAME mail\na.b A 192.0.2.2\n$ORIGIN 2.0.192.in-addr.arpa.\n1 PTR mail.example.com.\n",
            "example.com",
        )
        .unwrap();
        let mut r = ZoneResolver::new();
        r.add_zone("example.com", z);
        assert_eq!(
            r.mx("example.com").await.unwrap(),
            vec![(10, "mail.example.com".into())]
        );
        assert_eq!(
            r.a("WWW.example.com.").await.unwrap(),
            vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert!(r.txt("nope.example.com").await.unwrap_err().is_nxdomain());
        assert!(matches!(
            r.a("b.example.com").await.unwrap_err(),
            DnsError::NoData { .. }
        ));
        assert!(matches!(
            r.txt("mail.example.com").await.unwrap_err(),
            DnsError::NoData { .. }
        ));
        // A second $ORIGIN in the same file is served too.
        assert_eq!(
            r.ptr("192.0.2.1".parse().unwrap()).await.unwrap(),
            vec!["mail.example.com".to_string()]
        );
        // Outside the zone and no network: a temporary failure, not "none".
        assert!(r.txt("example.net").await.unwrap_err().is_temporary());
        // The DMARC walk's last step, the public suffix above the zone, is
        // answered offline (before, it went to the network).
        assert!(r.txt("_dmarc.com").await.unwrap_err().is_nxdomain());
        assert!(r.txt("_dmarc.net").await.unwrap_err().is_temporary(), "not above a zone");
    }
}
