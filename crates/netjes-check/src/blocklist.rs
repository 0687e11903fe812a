//! DNS blocklists: addresses against IP lists, the domain against domain
//! lists. An answer in 127.255.255.0/24 (or 127.0.1.255 at Spamhaus' DBL) is
//! the list refusing the query, not a listing; an answer outside 127/8 is a
//! resolver that rewrites NXDOMAIN. Both are errors, never "listed".

use crate::report::{Category, Finding, Status};
use netjes_dns::{Resolver, ResolverExt};
use std::net::{IpAddr, Ipv4Addr};

const C: Category = Category::Blocklists;

/// Lists that most receivers consult and that answer for free at low volume.
pub const DEFAULT_IP_LISTS: &[&str] = &[
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "psbl.surriel.com",
];
pub const DEFAULT_DOMAIN_LISTS: &[&str] = &["dbl.spamhaus.org", "multi.surbl.org"];

fn query_name(ip: IpAddr, list: &str) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{list}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(_) => {
            let rev = netjes_dns::reverse_name(ip);
            format!("{}.{list}", rev.trim_end_matches(".ip6.arpa"))
        }
    }
}

/// What an A answer of a list means.
enum Answer {
    Listed(Vec<Ipv4Addr>),
    ListError(Ipv4Addr),
}

fn classify(addrs: &[Ipv4Addr]) -> Answer {
    for a in addrs {
        let o = a.octets();
        let refusal = o[0] == 127 && o[1] == 255 && o[2] == 255;
        let dbl_error = o == [127, 0, 1, 255];
        if refusal || dbl_error || o[0] != 127 {
            return Answer::ListError(*a);
        }
    }
    Answer::Listed(addrs.to_vec())
}

/// What a return code means, for the lists that publish their codes
/// (Spamhaus ZEN and DBL): "listed" alone does not say what to do.
pub fn meaning(list: &str, code: Ipv4Addr) -> Option<&'static str> {
    let o = code.octets();
    let list = list.to_ascii_lowercase();
    if list.ends_with("zen.spamhaus.org") || list.ends_with("sbl.spamhaus.org") || list.ends_with("xbl.spamhaus.org") || list.ends_with("pbl.spamhaus.org") {
        return match o {
            [127, 0, 0, 2] => Some("SBL, a known spam source or spam operation: ask Spamhaus to delist once it is cleaned up"),
            [127, 0, 0, 3] => Some("CSS, a snowshoe spam source: the address sent spam spread thin over many addresses"),
            [127, 0, 0, 4..=7] => Some("XBL, an infected or hijacked machine: clean it, then delist"),
            [127, 0, 0, 9] => Some("SBL DROP, a hijacked network"),
            [127, 0, 0, 10] => Some("PBL, an address its owner says should not send mail directly (a dynamic range): send through your provider's relay, or have the range's owner lift it"),
            [127, 0, 0, 11] => Some("PBL, an address Spamhaus sees as a non-mail-server range: send through a relay, or delist it as a static mail server"),
            _ => None,
        };
    }
    if list.ends_with("dbl.spamhaus.org") {
        return match o {
            [127, 0, 1, 2] => Some("DBL, a spam domain"),
            [127, 0, 1, 4] => Some("DBL, a phishing domain"),
            [127, 0, 1, 5] => Some("DBL, a malware domain"),
            [127, 0, 1, 6] => Some("DBL, a botnet command-and-control domain"),
            [127, 0, 1, 102..=106] => Some("DBL, an abused legitimate domain (a compromised site)"),
            _ => None,
        };
    }
    None
}

async fn ask(dns: &dyn Resolver, name: String, what: String, list: String) -> Finding {
    let id = format!("blocklist.{list}.{what}");
    match dns.a(&name).await {
        Err(e) if e.is_void() => Finding::new(C, &id, Status::Pass, format!("{what} is not on {list}")),
        Err(e) => Finding::new(C, &id, Status::Error, format!("{list} could not be asked about {what}: {e}")),
        Ok(addrs) => match classify(&addrs) {
            Answer::ListError(a) => Finding::new(C, &id, Status::Error, format!("{list} answered {a} for {what}: the list refused the query (rate limit or a public resolver), so this says nothing")),
            Answer::Listed(codes) => {
                let reason = dns.txt(&name).await.ok().and_then(|t| t.first().map(|r| String::from_utf8_lossy(r).into_owned()));
                let codes: Vec<String> = codes
                    .iter()
                    .map(|c| match meaning(&list, *c) {
                        Some(m) => format!("{c}: {m}"),
                        None => c.to_string(),
                    })
                    .collect();
                let mut f = Finding::new(C, &id, Status::Fail, format!("{what} is listed on {list} ({})", codes.join("; ")));
                f = f.advice(match reason {
                    Some(r) => format!("the list says: {r}"),
                    None => format!("see the delisting page of {list}"),
                });
                f
            }
        },
    }
}

pub async fn check_blocklists(
    dns: &dyn Resolver,
    domain: &str,
    ips: &[IpAddr],
    ip_lists: &[String],
    domain_lists: &[String],
) -> Vec<Finding> {
    let mut queries = Vec::new();
    for ip in ips {
        for l in ip_lists {
            queries.push((query_name(*ip, l), ip.to_string(), l.clone()));
        }
    }
    for l in domain_lists {
        queries.push((format!("{domain}.{l}"), domain.to_string(), l.clone()));
    }
    netjes_dns::join_all(queries.into_iter().map(|(n, w, l)| ask(dns, n, w, l))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spamhaus_codes_are_named() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(meaning("zen.spamhaus.org", ip("127.0.0.2")).unwrap().starts_with("SBL"));
        assert!(meaning("zen.spamhaus.org", ip("127.0.0.3")).unwrap().starts_with("CSS"));
        assert!(meaning("zen.spamhaus.org", ip("127.0.0.4")).unwrap().starts_with("XBL"));
        assert!(meaning("ZEN.spamhaus.org", ip("127.0.0.11")).unwrap().starts_with("PBL"));
        assert!(meaning("dbl.spamhaus.org", ip("127.0.1.4")).unwrap().contains("phishing"));
        assert_eq!(meaning("bl.test", ip("127.0.0.2")), None);
    }

    #[test]
    fn names_and_answers() {
        assert_eq!(
            query_name("192.0.2.1".parse().unwrap(), "zen.spamhaus.org"),
            "1.2.0.192.zen.spamhaus.org"
        );
        assert!(matches!(
            classify(&["127.0.0.2".parse().unwrap()]),
            Answer::Listed(_)
        ));
        assert!(matches!(
            classify(&["127.255.255.254".parse().unwrap()]),
            Answer::ListError(_)
        ));
        assert!(matches!(
            classify(&["127.0.1.255".parse().unwrap()]),
            Answer::ListError(_)
        ));
        assert!(matches!(
            classify(&["198.51.100.1".parse().unwrap()]),
            Answer::ListError(_)
        ));
    }
}
