//! Zone data that a reader can check by eye: the fixtures of the test DNS
//! server, and (later) offline linting of a zone before it is published.
//!
//! One record per line, names absolute (the trailing dot is optional):
//!
//! ```text
//! ; comment
//! example.com.           TXT   "v=spf1 ip4:192.0.2.0/24 -all"
//! example.com.      600  MX    10 mail.example.com.
//! mail.example.com.      A     192.0.2.1
//! long.example.com.      TXT   "first string" "second string"
//! www.example.com.       CNAME example.com.
//! slow.example.com.      TIMEOUT          ; the server never answers
//! broken.example.com.    SERVFAIL         ; the server answers SERVFAIL
//! ```
//!
//! TIMEOUT and SERVFAIL are not record types: they tell the test server how
//! to fail. SERVFAIL applies to every query at that name; TIMEOUT to the
//! queries for types the name has no records of (as in the OpenSPF suite,
//! where a name can answer TXT and time out on everything else).

use crate::master::{logical_lines, record_from, ttl_class_type};
use crate::normalize_name;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneRecord {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Txt(Vec<Vec<u8>>),
    /// The obsolete SPF RR type (99), kept so that the RFC 4408 suite can be
    /// served as written; netjes never queries it.
    Spf(Vec<Vec<u8>>),
    Ptr(String),
    Cname(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameData {
    pub ttl: u32,
    pub records: Vec<ZoneRecord>,
    pub timeout: bool,
    pub servfail: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub names: BTreeMap<String, NameData>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ZoneError {
    pub line: usize,
    pub message: String,
}

impl Zone {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: &str, rec: ZoneRecord) -> &mut Self {
        self.entry(name).records.push(rec);
        self
    }

    pub fn set_timeout(&mut self, name: &str) -> &mut Self {
        self.entry(name).timeout = true;
        self
    }

    pub fn set_servfail(&mut self, name: &str) -> &mut Self {
        self.entry(name).servfail = true;
        self
    }

    pub fn entry(&mut self, name: &str) -> &mut NameData {
        self.names
            .entry(normalize_name(name))
            .or_insert_with(|| NameData {
                ttl: 300,
                ..Default::default()
            })
    }

    pub fn get(&self, name: &str) -> Option<&NameData> {
        self.names.get(&normalize_name(name))
    }

    /// The data a query for `name` gets: the name's own, or where the name
    /// does not exist, that of the wildcard `*.<closest encloser>` (RFC
    /// 4592 §3.3.1: the nearest ancestor that exists).
    pub fn lookup(&self, name: &str) -> Option<&NameData> {
        let n = normalize_name(name);
        if let Some(d) = self.names.get(&n) {
            return Some(d);
        }
        if self.name_exists(&n) {
            return None;
        }
        let mut rest = n.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if self.name_exists(parent) {
                return self.names.get(&format!("*.{parent}"));
            }
            rest = parent;
        }
        None
    }

    /// Whether the name owns data or has descendants that do (an empty
    /// non-terminal exists: NODATA, not NXDOMAIN; RFC 8020).
    pub fn name_exists(&self, name: &str) -> bool {
        let n = normalize_name(name);
        if self.names.contains_key(&n) {
            return true;
        }
        let suffix = format!(".{n}");
        self.names.keys().any(|k| k.ends_with(&suffix))
    }

    pub fn merge(&mut self, other: Zone) {
        for (k, v) in other.names {
            let e = self.entry(&k);
            e.records.extend(v.records);
            e.timeout |= v.timeout;
            e.servfail |= v.servfail;
            e.ttl = v.ttl;
        }
    }

    /// Parses the line format described in the module documentation: the
    /// tokens and records of RFC 1035 master files (crate::master), with
    /// absolute names and the TIMEOUT and SERVFAIL pseudo-types.
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        let mut zone = Zone::new();
        for (line, entry) in logical_lines(text)? {
            let Some((first, rest)) = entry.tokens.split_first() else {
                continue;
            };
            let err = |m: String| ZoneError { line, message: m };
            let name = first.text();
            let (ttl, rtype, rdata) =
                ttl_class_type(rest).ok_or_else(|| err("a record type is missing".into()))?;
            match rtype.as_str() {
                "TIMEOUT" => {
                    zone.set_timeout(&name);
                    continue;
                }
                "SERVFAIL" => {
                    zone.set_servfail(&name);
                    continue;
                }
                _ => {}
            }
            let rec = record_from(&rtype, rdata, "")
                .map_err(|m| err(format!("{rtype}: {m}")))?
                .ok_or_else(|| err(format!("unknown record type {rtype}")))?;
            let e = zone.entry(&name);
            if let Some(t) = ttl {
                e.ttl = t;
            }
            e.records.push(rec);
        }
        Ok(zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_answer_names_that_do_not_exist() {
        let z = Zone::parse("*.example.com. TXT \"wild\"\nhost.example.com. A 192.0.2.1\nx.sub.example.com. A 192.0.2.2\n").unwrap();
        assert!(z.lookup("nothing.example.com").is_some());
        assert!(z.lookup("a.b.example.com").is_some(), "below a name that does not exist");
        assert_eq!(z.lookup("host.example.com").unwrap().records.len(), 1, "an existing name keeps its own data");
        assert!(z.lookup("sub.example.com").is_none(), "an empty non-terminal exists: no wildcard");
        assert!(z.lookup("y.sub.example.com").is_none(), "the closest encloser is sub.example.com, which has no wildcard");
        assert!(z.lookup("example.org").is_none());
    }

    #[test]
    fn parses_the_documented_format() {
        let z = Zone::parse(
            "; c\nexample.com. TXT \"v=spf1 \\\"x\\\" -all\" \"b\"\nexample.com. 600 IN MX 10 Mail.Example.com.\nslow.example.com TIMEOUT\nb.example.com SERVFAIL\nx.example.com A 192.0.2.1 ; trailing\n",
        )
        .unwrap();
        let e = z.get("EXAMPLE.com").unwrap();
        assert_eq!(e.ttl, 600);
        assert_eq!(
            e.records[0],
            ZoneRecord::Txt(vec![b"v=spf1 \"x\" -all".to_vec(), b"b".to_vec()])
        );
        assert_eq!(e.records[1], ZoneRecord::Mx(10, "mail.example.com".into()));
        assert!(z.get("slow.example.com").unwrap().timeout);
        assert!(z.get("b.example.com").unwrap().servfail);
        assert!(z.name_exists("com"));
        assert!(!z.name_exists("nope.example.com"));
    }

    #[test]
    fn reports_the_line_of_an_error() {
        let e = Zone::parse("a.example A 192.0.2.1\nb.example A not-an-ip\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Zone::parse("a.example TXT \"open\n").is_err());
        assert!(Zone::parse("a.example BOGUS x\n").is_err());
    }
}
