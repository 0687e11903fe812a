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
        self.names.entry(normalize_name(name)).or_insert_with(|| NameData { ttl: 300, ..Default::default() })
    }

    pub fn get(&self, name: &str) -> Option<&NameData> {
        self.names.get(&normalize_name(name))
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

    /// Parses the line format described in the module documentation.
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        let mut zone = Zone::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let toks = tokenize(raw).map_err(|message| ZoneError { line, message })?;
            if toks.is_empty() {
                continue;
            }
            let err = |m: &str| ZoneError { line, message: m.to_string() };
            let name = toks[0].as_str_lossy();
            let mut idx = 1;
            let mut ttl = None;
            if let Some(t) = toks.get(idx).and_then(|t| t.as_str_lossy().parse::<u32>().ok()) {
                ttl = Some(t);
                idx += 1;
            }
            if toks.get(idx).is_some_and(|t| t.as_str_lossy().eq_ignore_ascii_case("IN")) {
                idx += 1;
            }
            let rtype = toks.get(idx).ok_or_else(|| err("a record type is missing"))?.as_str_lossy().to_ascii_uppercase();
            let rest = &toks[idx + 1..];
            let one = |what: &str| -> Result<String, ZoneError> {
                match rest {
                    [t] => Ok(t.as_str_lossy()),
                    _ => Err(err(&format!("{rtype} takes one {what}"))),
                }
            };
            let rec = match rtype.as_str() {
                "TIMEOUT" => {
                    zone.set_timeout(&name);
                    continue;
                }
                "SERVFAIL" => {
                    zone.set_servfail(&name);
                    continue;
                }
                "A" => ZoneRecord::A(one("address")?.parse().map_err(|_| err("not an IPv4 address"))?),
                "AAAA" => ZoneRecord::Aaaa(one("address")?.parse().map_err(|_| err("not an IPv6 address"))?),
                "MX" => match rest {
                    [p, x] => ZoneRecord::Mx(
                        p.as_str_lossy().parse().map_err(|_| err("MX preference is not a number"))?,
                        normalize_name(&x.as_str_lossy()),
                    ),
                    _ => return Err(err("MX takes a preference and an exchange")),
                },
                "PTR" => ZoneRecord::Ptr(normalize_name(&one("name")?)),
                "CNAME" => ZoneRecord::Cname(normalize_name(&one("name")?)),
                "TXT" | "SPF" => {
                    if rest.is_empty() {
                        return Err(err("TXT needs at least one string"));
                    }
                    if let Some(long) = rest.iter().find(|t| t.bytes.len() > 255) {
                        return Err(err(&format!(
                            "a TXT string is {} octets; at most 255 fit in one (RFC 1035 §3.3): split it into several \"...\" strings",
                            long.bytes.len()
                        )));
                    }
                    let parts = rest.iter().map(|t| t.bytes.clone()).collect();
                    if rtype == "TXT" {
                        ZoneRecord::Txt(parts)
                    } else {
                        ZoneRecord::Spf(parts)
                    }
                }
                other => return Err(err(&format!("unknown record type {other}"))),
            };
            let e = zone.entry(&name);
            if let Some(t) = ttl {
                e.ttl = t;
            }
            e.records.push(rec);
        }
        Ok(zone)
    }
}

#[derive(Debug, Clone)]
struct Token {
    bytes: Vec<u8>,
}

impl Token {
    fn as_str_lossy(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Splits a line into tokens: bare words and "quoted strings" with \" and
/// \DDD escapes (RFC 1035 §5.1); `;` starts a comment outside quotes.
fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => break,
            b'"' => {
                i += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let (c, n) = unescape(&b[i + 1..])?;
                            s.push(c);
                            i += 1 + n;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Token { bytes: s });
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b';') {
                    i += 1;
                }
                out.push(Token { bytes: b[start..i].to_vec() });
            }
        }
    }
    Ok(out)
}

fn unescape(b: &[u8]) -> Result<(u8, usize), String> {
    match b {
        [d1, d2, d3, ..] if d1.is_ascii_digit() && d2.is_ascii_digit() && d3.is_ascii_digit() => {
            let v = (d1 - b'0') as u32 * 100 + (d2 - b'0') as u32 * 10 + (d3 - b'0') as u32;
            u8::try_from(v).map(|v| (v, 3)).map_err(|_| format!("escape \\{v} is over 255"))
        }
        [c, ..] => Ok((*c, 1)),
        [] => Err("a lone backslash ends the line".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let z = Zone::parse(
            "; c\nexample.com. TXT \"v=spf1 \\\"x\\\" -all\" \"b\"\nexample.com. 600 IN MX 10 Mail.Example.com.\nslow.example.com TIMEOUT\nb.example.com SERVFAIL\nx.example.com A 192.0.2.1 ; trailing\n",
        )
        .unwrap();
        let e = z.get("EXAMPLE.com").unwrap();
        assert_eq!(e.ttl, 600);
        assert_eq!(e.records[0], ZoneRecord::Txt(vec![b"v=spf1 \"x\" -all".to_vec(), b"b".to_vec()]));
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
