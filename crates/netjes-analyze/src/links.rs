//! Link targets: the host of a URL, its registrable domain (by the Public
//! Suffix List, so that mail.example.co.uk and www.example.co.uk are one
//! sender), and the domain a link's text shows the reader.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkHost {
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: LinkHost,
}

/// The scheme and host of an http(s) URL; other schemes (mailto:, tel:,
/// cid:) and relative links are not targets.
pub fn target(href: &str) -> Option<Target> {
    let u = url::Url::parse(href.trim()).ok()?;
    let https = match u.scheme() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let host = match u.host()? {
        url::Host::Domain(d) => LinkHost::Name(d.trim_end_matches('.').to_ascii_lowercase()),
        url::Host::Ipv4(a) => LinkHost::Ip(IpAddr::V4(a)),
        url::Host::Ipv6(a) => LinkHost::Ip(IpAddr::V6(a)),
    };
    Some(Target { https, host })
}

/// The registrable domain ("organizational domain") of a host name: the
/// public suffix and one label more. A name that is itself a suffix, or
/// not under a known one, stands for itself.
pub fn org_domain(host: &str) -> String {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match psl::domain_str(&h) {
        Some(d) => d.to_string(),
        None => h,
    }
}

/// Whether two names belong to one organization (DMARC's relaxed alignment).
pub fn same_org(a: &str, b: &str) -> bool {
    org_domain(a) == org_domain(b)
}

/// The domain a link's text shows, when the text is a URL or a bare domain
/// ("www.bank.example", "https://bank.example/login"); phishing relies on
/// the reader trusting it. Text that merely contains a dot is not a domain:
/// the last label must be a known public suffix.
pub fn shown_domain(text: &str) -> Option<String> {
    let t = text
        .trim()
        .trim_end_matches(['.', ',', ')'])
        .to_ascii_lowercase();
    if t.contains(char::is_whitespace) || !t.contains('.') {
        return None;
    }
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(&t);
    let host = t.split(['/', '?', '#', ':']).next()?;
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return None;
    }
    // Only names under a real suffix; "v1.2" or "e.g." are not domains.
    let suffix = psl::suffix_str(host)?;
    if suffix == host || !psl::suffix(host.as_bytes()).is_some_and(|s| s.is_known()) {
        return None;
    }
    Some(host.to_string())
}

/// Public URL shorteners: the reader cannot see where the link goes, and
/// spammers rotate them to dodge domain blocklists.
pub const SHORTENERS: &[&str] = &[
    "bit.ly",
    "bitly.com",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
    "t.ly",
    "s.id",
    "v.gd",
    "bl.ink",
    "shorte.st",
    "adf.ly",
    "lnkd.in",
    "tr.im",
    "x.co",
    "qr.ae",
    "soo.gd",
    "clck.ru",
    "urlz.fr",
    "tiny.one",
];

pub fn is_shortener(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    SHORTENERS
        .iter()
        .any(|s| h == *s || h.strip_suffix(s).is_some_and(|p| p.ends_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_domains() {
        assert_eq!(
            target("https://Mail.Example.co.uk./x"),
            Some(Target {
                https: true,
                host: LinkHost::Name("mail.example.co.uk".into())
            })
        );
        assert_eq!(
            target("http://192.0.2.1/login"),
            Some(Target {
                https: false,
                host: LinkHost::Ip("192.0.2.1".parse().unwrap())
            })
        );
        assert_eq!(target("mailto:a@example.com"), None);
        assert_eq!(target("/relative"), None);
        assert_eq!(org_domain("a.b.example.co.uk"), "example.co.uk");
        assert!(same_org("news.example.com", "www.example.com"));
        assert!(!same_org("example.com", "example.net"));
        assert_eq!(
            shown_domain("www.PayPal.com"),
            Some("www.paypal.com".into())
        );
        assert_eq!(
            shown_domain("https://bank.example.com/login"),
            Some("bank.example.com".into())
        );
        assert_eq!(shown_domain("click here"), None);
        assert_eq!(shown_domain("version 1.2"), None);
        assert_eq!(shown_domain("e.g."), None);
        assert_eq!(shown_domain("file.zzzz"), None);
        assert!(is_shortener("bit.ly") && is_shortener("www.bit.ly") && !is_shortener("abit.ly"));
    }
}
