//! An authoritative DNS server for tests: it binds 127.0.0.1 on one port for
//! both UDP and TCP and answers from a [`Zone`].
//!
//! It behaves like a small authoritative server, which is what netjes meets in
//! the field: NXDOMAIN against NODATA (empty non-terminals exist), an SOA in
//! negative answers so that negative caching has a TTL, CNAME chasing inside
//! the zone, and truncation of UDP answers over 512 octets so that clients
//! must retry over TCP. Names marked TIMEOUT are never answered and names
//! marked SERVFAIL get SERVFAIL. An optional delay per answer stands in for
//! network latency in benchmarks. It counts the queries it receives so that
//! tests can prove what a cache did.

pub mod corpus;
pub mod dovecot;
pub mod https;
pub mod postgres;
pub mod redis;
pub mod smtp;
pub mod spamd;

/// A TCP port on 127.0.0.1 that was free a moment ago, for a daemon a
/// test starts (the tests' one copy).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use netjes_dns::normalize_name;
use netjes_dns::zone::{Zone, ZoneRecord};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// The negative TTL (SOA minimum) of every zone served.
pub const NEGATIVE_TTL: u32 = 60;
/// UDP answers larger than this are truncated, whatever EDNS0 offered.
pub const UDP_LIMIT: usize = 512;

#[derive(Default)]
struct State {
    zone: RwLock<Zone>,
    delay: RwLock<Duration>,
    queries: Mutex<HashMap<(String, RecordType), u64>>,
    tcp_queries: Mutex<u64>,
}

/// A running server. It stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TestDns {
    /// Starts a server on 127.0.0.1 on a free port. Needs a Tokio runtime.
    pub async fn start(zone: Zone) -> std::io::Result<TestDns> {
        // Find a port that is free for both UDP and TCP.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(tcp) => break (udp, tcp),
                Err(_) => continue,
            }
        };
        Self::serve(zone, udp, tcp)
    }

    /// Starts a server on a given address (UDP and TCP), for benchmarks
    /// that point a classic tool's resolver at it.
    pub async fn start_on(zone: Zone, addr: std::net::SocketAddr) -> std::io::Result<TestDns> {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        Self::serve(zone, udp, tcp)
    }

    fn serve(zone: Zone, udp: UdpSocket, tcp: TcpListener) -> std::io::Result<TestDns> {
        let state = Arc::new(State {
            zone: RwLock::new(zone),
            ..Default::default()
        });
        let addr = udp.local_addr()?;
        let udp = Arc::new(udp);
        let mut tasks = Vec::new();
        {
            let state = state.clone();
            let udp = udp.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                        continue;
                    };
                    let query = buf[..n].to_vec();
                    let state = state.clone();
                    let udp = udp.clone();
                    tokio::spawn(async move {
                        if let Some(resp) = answer(&state, &query, false).await {
                            let _ = udp.send_to(&resp, peer).await;
                        }
                    });
                }
            }));
        }
        {
            let state = state.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = tcp.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        loop {
                            let mut len = [0u8; 2];
                            if sock.read_exact(&mut len).await.is_err() {
                                return;
                            }
                            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                            if sock.read_exact(&mut q).await.is_err() {
                                return;
                            }
                            *state.tcp_queries.lock().unwrap() += 1;
                            match answer(&state, &q, true).await {
                                Some(resp) => {
                                    let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                                    out.extend_from_slice(&resp);
                                    if sock.write_all(&out).await.is_err() {
                                        return;
                                    }
                                }
                                // A TIMEOUT name: this query is never answered,
                                // but later ones on the connection are.
                                None => continue,
                            }
                        }
                    });
                }
            }));
        }
        Ok(TestDns { addr, state, tasks })
    }

    /// Parses a fixture in [`Zone::parse`]'s format and starts a server for it.
    pub async fn start_str(text: &str) -> TestDns {
        TestDns::start(Zone::parse(text).expect("fixture zone"))
            .await
            .expect("bind test DNS server")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the zone while the server runs.
    pub fn set_zone(&self, zone: Zone) {
        *self.state.zone.write().unwrap() = zone;
    }

    pub fn with_zone<T>(&self, f: impl FnOnce(&mut Zone) -> T) -> T {
        f(&mut self.state.zone.write().unwrap())
    }

    /// Delays every answer (latency of a real network).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.write().unwrap() = delay;
    }

    /// How many queries for (name, type) arrived, over UDP and TCP.
    pub fn query_count(&self, name: &str, rtype: RecordType) -> u64 {
        self.state
            .queries
            .lock()
            .unwrap()
            .get(&(normalize_name(name), rtype))
            .copied()
            .unwrap_or(0)
    }

    pub fn total_queries(&self) -> u64 {
        self.state.queries.lock().unwrap().values().sum()
    }

    pub fn tcp_queries(&self) -> u64 {
        *self.state.tcp_queries.lock().unwrap()
    }

    pub fn reset_counts(&self) {
        self.state.queries.lock().unwrap().clear();
        *self.state.tcp_queries.lock().unwrap() = 0;
    }
}

fn serves(r: &ZoneRecord, t: RecordType) -> bool {
    matches!(
        (r, t),
        (ZoneRecord::A(_), RecordType::A)
            | (ZoneRecord::Aaaa(_), RecordType::AAAA)
            | (ZoneRecord::Mx(..), RecordType::MX)
            | (ZoneRecord::Txt(_), RecordType::TXT)
            | (ZoneRecord::Ptr(_), RecordType::PTR)
            | (ZoneRecord::Cname(_), _)
    )
}

fn soa(zone_apex: &Name) -> Record {
    Record::from_rdata(
        zone_apex.clone(),
        NEGATIVE_TTL,
        RData::SOA(SOA::new(
            Name::from_ascii("ns.test.").unwrap(),
            Name::from_ascii("hostmaster.test.").unwrap(),
            1,
            3600,
            600,
            86400,
            NEGATIVE_TTL,
        )),
    )
}

/// A name as its raw labels joined with dots (no \DDD escapes), as zones store it.
fn label_string(n: &Name) -> String {
    n.iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// A name from raw labels, so that owners like "foo:bar/baz.example.com" or
/// labels with spaces (legal in DNS, used by the SPF suite) survive.
fn name(s: &str) -> Name {
    let s = s.trim_end_matches('.');
    if s.is_empty() {
        return Name::root();
    }
    let mut n = Name::from_labels(s.split('.').map(str::as_bytes)).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n
}

async fn answer(state: &State, query: &[u8], over_tcp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    let q = req.queries.first()?.clone();
    let qname = normalize_name(&label_string(q.name()));
    let qtype = q.query_type();
    *state
        .queries
        .lock()
        .unwrap()
        .entry((qname.clone(), qtype))
        .or_default() += 1;
    let delay = *state.delay.read().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.authoritative = true;
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.add_query(q.clone());
    {
        let zone = state.zone.read().unwrap();
        let mut current = qname.clone();
        let mut hops = 0;
        loop {
            let data = zone.lookup(&current);
            if let Some(d) = data {
                if d.timeout && !d.records.iter().any(|r| serves(r, qtype)) {
                    return None;
                }
                if d.servfail {
                    resp.metadata.response_code = ResponseCode::ServFail;
                    break;
                }
            }
            let Some(d) = data else {
                if zone.name_exists(&current) {
                    resp.add_authority(soa(&Name::root()));
                } else {
                    resp.metadata.response_code = ResponseCode::NXDomain;
                    resp.add_authority(soa(&Name::root()));
                }
                break;
            };
            let owner = name(&current);
            let cname = d.records.iter().find_map(|r| {
                if let ZoneRecord::Cname(c) = r {
                    Some(c.clone())
                } else {
                    None
                }
            });
            if let (Some(target), true) = (cname, qtype != RecordType::CNAME) {
                resp.add_answer(Record::from_rdata(
                    owner,
                    d.ttl,
                    RData::CNAME(CNAME(name(&target))),
                ));
                hops += 1;
                if hops > 8 {
                    break;
                }
                current = target;
                continue;
            }
            let mut any = false;
            for r in &d.records {
                let rdata = match (r, qtype) {
                    (ZoneRecord::A(a), RecordType::A) => RData::A(A(*a)),
                    (ZoneRecord::Aaaa(a), RecordType::AAAA) => RData::AAAA(AAAA(*a)),
                    (ZoneRecord::Mx(p, x), RecordType::MX) => RData::MX(MX::new(*p, name(x))),
                    (ZoneRecord::Txt(parts), RecordType::TXT) => RData::TXT(TXT::from_bytes(
                        parts.iter().map(|p| p.as_slice()).collect(),
                    )),
                    (ZoneRecord::Ptr(p), RecordType::PTR) => RData::PTR(PTR(name(p))),
                    (ZoneRecord::Cname(c), RecordType::CNAME) => RData::CNAME(CNAME(name(c))),
                    _ => continue,
                };
                any = true;
                resp.add_answer(Record::from_rdata(owner.clone(), d.ttl, rdata));
            }
            if !any {
                resp.add_authority(soa(&Name::root()));
            }
            break;
        }
    }
    let bytes = resp.to_vec().ok()?;
    if !over_tcp && bytes.len() > UDP_LIMIT {
        let mut t = resp.truncate();
        t.metadata.message_type = MessageType::Response;
        t.metadata.id = req.metadata.id;
        t.edns = None;
        return t.to_vec().ok();
    }
    Some(bytes)
}
