//! The live resolver, on hickory.

use crate::{is_valid_query_name, DnsError, DnsResult, Lookup, Rdata, RecordType, Resolver};
use async_trait::async_trait;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType as HType};
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where and how long to ask.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Name servers to ask; empty means the system configuration (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    /// The budget for one lookup, retries included.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// A [`Resolver`] that asks real name servers over UDP, retrying over TCP
/// when an answer comes back truncated.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
    timeout: Duration,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HickoryResolver")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HickoryResolver {
    pub fn new(config: &DnsConfig) -> Result<Self, String> {
        // scripts/test.sh sets NETJES_TEST: a test that forgot its test DNS
        // server fails here instead of asking the machine's resolvers.
        if config.nameservers.is_empty() && std::env::var_os("NETJES_TEST").is_some() {
            return Err("NETJES_TEST is set and no --nameserver was given: tests must use their own DNS server".into());
        }
        let (rconf, mut opts) = if config.nameservers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system resolver configuration: {e}"))?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = config.timeout;
        // One attempt per server: the overall budget is enforced below, and
        // retries would multiply it.
        opts.attempts = 1;
        // netjes caches in CachingResolver, where the error contract decides
        // what may be cached; hickory's own cache would keep answers we must not.
        opts.cache_size = 0;
        opts.edns0 = true;
        opts.ndots = 0;
        opts.preserve_intermediates = false;
        // What the world sees is DNS, not this machine's /etc/hosts (which
        // would answer 127.0.0.1's PTR with "localhost").
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let inner = TokioResolver::builder_with_config(rconf, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| format!("cannot build the resolver: {e}"))?;
        Ok(HickoryResolver {
            inner,
            timeout: config.timeout,
        })
    }
}

fn htype(t: RecordType) -> HType {
    match t {
        RecordType::A => HType::A,
        RecordType::Aaaa => HType::AAAA,
        RecordType::Mx => HType::MX,
        RecordType::Txt => HType::TXT,
        RecordType::Ptr => HType::PTR,
        RecordType::Cname => HType::CNAME,
    }
}

/// A name as its raw labels joined by dots: hickory's `to_ascii` would write
/// "foo:bar" as "foo\\058bar", which no later lookup could use.
fn name_str(n: &Name) -> String {
    n.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

#[async_trait]
impl Resolver for HickoryResolver {
    async fn lookup(&self, name: &str, rtype: RecordType) -> DnsResult<Lookup> {
        if !is_valid_query_name(name) {
            return Err(DnsError::InvalidName {
                name: name.to_string(),
            });
        }
        // Built from raw labels: SPF macros can expand to labels with spaces
        // or '%' (RFC 7208 §7.3), which are legal in DNS but not in host names.
        let qname = Name::from_labels(name.trim_end_matches('.').split('.').map(|l| l.as_bytes()))
            .map_err(|_| DnsError::InvalidName {
                name: name.to_string(),
            })?;
        let started = Instant::now();
        // The hard budget: hickory's per-request timeout does not bound a
        // UDP attempt followed by a TCP retry.
        let res = tokio::time::timeout(
            self.timeout + Duration::from_millis(50),
            self.inner.lookup(qname, htype(rtype)),
        )
        .await;
        let res = match res {
            Err(_) => {
                return Err(DnsError::temporary(
                    name,
                    format!("timed out after {:?}", started.elapsed()),
                ))
            }
            Ok(r) => r,
        };
        match res {
            Ok(lookup) => {
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(Instant::now())
                    .as_secs() as u32;
                let want = htype(rtype);
                let records: Vec<Rdata> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == want)
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(Rdata::A(a.0)),
                        RData::AAAA(a) => Some(Rdata::Aaaa(a.0)),
                        RData::MX(mx) => Some(Rdata::Mx {
                            preference: mx.preference,
                            exchange: name_str(&mx.exchange),
                        }),
                        RData::TXT(txt) => Some(Rdata::Txt(
                            txt.txt_data.iter().map(|b| b.to_vec()).collect(),
                        )),
                        RData::PTR(p) => Some(Rdata::Ptr(name_str(&p.0))),
                        RData::CNAME(c) => Some(Rdata::Cname(name_str(&c.0))),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    return Err(DnsError::NoData {
                        name: name.to_string(),
                        rtype,
                        negative_ttl: None,
                    });
                }
                Ok(Lookup {
                    records: records.into(),
                    ttl,
                })
            }
            Err(e) => Err(map_error(name, rtype, e)),
        }
    }
}

/// hickory's errors in terms of the contract (see the crate docs).
fn map_error(name: &str, rtype: RecordType, e: NetError) -> DnsError {
    match &e {
        NetError::Dns(HDnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => DnsError::NxDomain {
                name: name.to_string(),
                negative_ttl: nr.negative_ttl,
            },
            ResponseCode::NoError => DnsError::NoData {
                name: name.to_string(),
                rtype,
                negative_ttl: nr.negative_ttl,
            },
            // hickory reports a SERVFAIL without records the same way; it is
            // a failure of the server, not an absence.
            other => DnsError::temporary(name, format!("server answered {other}")),
        },
        NetError::Dns(HDnsError::ResponseCode(code)) => {
            DnsError::temporary(name, format!("server answered {code}"))
        }
        NetError::Timeout => DnsError::temporary(name, "timed out"),
        _ => DnsError::temporary(name, e.to_string()),
    }
}
