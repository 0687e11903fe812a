//! Weighted DNS blocklists in postscreen's dnsbl_sites syntax
//! (postconf(5) postscreen_dnsbl_sites):
//!
//! ```text
//! zen.spamhaus.org=127.0.0.[2..11]*3   listed with 127.0.0.2 to .11: 3 points
//! bl.spamcop.net*2                     any answer: 2 points
//! list.dnswl.org=127.0.[0..255].[2;3]*-2   a negative weight allowlists
//! ```
//!
//! An answer in 127.255.255.0/24 is the list refusing the query (Spamhaus
//! answers public resolvers so), and one outside 127/8 a resolver that
//! rewrites NXDOMAIN: both are errors that score nothing.

use netjes_dns::{Resolver, ResolverExt};
use std::net::{IpAddr, Ipv4Addr};

/// The values one octet of the filter accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OctetSet(Vec<(u8, u8)>);

impl OctetSet {
    fn parse(s: &str) -> Result<OctetSet, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u8>()
                .map_err(|_| format!("{t:?} is not an octet"))
        };
        if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            let mut ranges = Vec::new();
            for part in inner.split(';') {
                match part.split_once("..") {
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if a > b {
                            return Err(format!("[{a}..{b}] is an empty range"));
                        }
                        ranges.push((a, b));
                    }
                    None => {
                        let v = num(part)?;
                        ranges.push((v, v));
                    }
                }
            }
            Ok(OctetSet(ranges))
        } else {
            let v = num(s)?;
            Ok(OctetSet(vec![(v, v)]))
        }
    }

    fn contains(&self, v: u8) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsblSite {
    pub domain: String,
    filter: Option<[OctetSet; 4]>,
    pub weight: i32,
    /// As written, for logs.
    pub text: String,
}

impl DnsblSite {
    pub fn parse(s: &str) -> Result<DnsblSite, String> {
        let text = s.trim().to_string();
        let (rest, weight) = match text.rsplit_once('*') {
            Some((r, w)) => (
                r,
                w.trim()
                    .parse::<i32>()
                    .map_err(|_| format!("{text}: weight {w:?} is not a number"))?,
            ),
            None => (text.as_str(), 1),
        };
        let (domain, filter) = match rest.split_once('=') {
            Some((d, f)) => {
                let parts: Vec<&str> = split_octets(f);
                if parts.len() != 4 {
                    return Err(format!("{text}: the filter must have four octets"));
                }
                let mut sets = Vec::new();
                for p in parts {
                    sets.push(OctetSet::parse(p).map_err(|e| format!("{text}: {e}"))?);
                }
                let arr: [OctetSet; 4] =
                    sets.try_into().map_err(|_| format!("{text}: bad filter"))?;
                (d.trim(), Some(arr))
            }
            None => (rest.trim(), None),
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !domain.contains('.') || !netjes_dns::is_valid_query_name(&domain) {
            return Err(format!("{text}: {domain:?} is not a list's domain"));
        }
        Ok(DnsblSite {
            domain,
            filter,
            weight,
            text,
        })
    }

    fn matches(&self, a: Ipv4Addr) -> bool {
        match &self.filter {
            None => true,
            Some(f) => a.octets().iter().zip(f.iter()).all(|(o, s)| s.contains(*o)),
        }
    }
}

/// Splits "127.0.[0..255].[2;3]" on the dots outside brackets.
fn split_octets(f: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in f.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&f[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&f[start..]);
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsblScore {
    pub score: i32,
    /// The sites that matched, as written.
    pub hits: Vec<String>,
    /// Lists that could not be asked or refused to answer.
    pub errors: Vec<String>,
}

fn query_name(ip: IpAddr, list: &str) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{list}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(_) => format!(
            "{}.{list}",
            netjes_dns::reverse_name(ip).trim_end_matches(".ip6.arpa")
        ),
    }
}

/// Asks every list once (sites sharing a list share the query) and sums
/// the weights of the sites whose filters match.
pub async fn score(dns: &dyn Resolver, sites: &[DnsblSite], ip: IpAddr) -> DnsblScore {
    let mut lists: Vec<&str> = sites.iter().map(|s| s.domain.as_str()).collect();
    lists.sort();
    lists.dedup();
    let answers = netjes_dns::join_all(
        lists
            .iter()
            .map(|l| async move { (*l, dns.a(&query_name(ip, l)).await) }),
    )
    .await;
    let mut out = DnsblScore::default();
    for (list, answer) in answers {
        let addrs = match answer {
            Err(e) if e.is_void() => continue,
            Err(e) => {
                out.errors.push(format!("{list}: {e}"));
                continue;
            }
            Ok(a) => a,
        };
        if let Some(bad) = addrs.iter().find(|a| {
            let o = a.octets();
            o[0] != 127 || (o[1] == 255 && o[2] == 255)
        }) {
            out.errors.push(format!(
                "{list} answered {bad}: the list refused the query or a resolver rewrote it"
            ));
            continue;
        }
        for s in sites.iter().filter(|s| s.domain == list) {
            if addrs.iter().any(|a| s.matches(*a)) {
                out.score += s.weight;
                out.hits.push(s.text.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postscreen_syntax() {
        let s = DnsblSite::parse("zen.spamhaus.org=127.0.0.[2..11]*3").unwrap();
        assert_eq!((s.domain.as_str(), s.weight), ("zen.spamhaus.org", 3));
        assert!(
            s.matches("127.0.0.2".parse().unwrap()) && s.matches("127.0.0.11".parse().unwrap())
        );
        assert!(!s.matches("127.0.0.12".parse().unwrap()));
        let s = DnsblSite::parse("list.dnswl.org=127.0.[0..255].[2;3]*-2").unwrap();
        assert_eq!(s.weight, -2);
        assert!(
            s.matches("127.0.9.3".parse().unwrap()) && !s.matches("127.0.9.1".parse().unwrap())
        );
        let s = DnsblSite::parse("bl.spamcop.net").unwrap();
        assert_eq!(s.weight, 1);
        assert!(s.matches("127.0.0.2".parse().unwrap()));
        for bad in [
            "x",
            "a.example=127.0.0",
            "a.example=127.0.0.[5..2]",
            "a.example*x",
            "a.example=127.0.0.300",
        ] {
            assert!(DnsblSite::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            query_name("192.0.2.1".parse().unwrap(), "bl.test"),
            "1.2.0.192.bl.test"
        );
    }
}
