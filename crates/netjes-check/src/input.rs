//! The domain in what a user types: a name, a name with a trailing dot, a
//! URL, an e-mail address, an IDN. The command line, the web form and the
//! API all read it here, and say what they checked.

/// The domain to check, and a note when it was taken out of something
/// else ("the host of the URL https://www.example.com/x"). An IDN is
/// converted by UTS 46 to its A-labels; what is not a domain is refused.
pub fn domain_of(input: &str) -> Result<(String, Option<String>), String> {
    let raw = input.trim();
    if raw.is_empty() {
        return Err("give a domain name, such as example.com".into());
    }
    let (candidate, from) = if raw.contains("://") {
        let host = url::Url::parse(raw)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .ok_or_else(|| format!("{raw:?} is a URL without a host name"))?;
        (host, Some(format!("the host of the URL {raw}")))
    } else if let Some(at) = raw.rfind('@') {
        let domain = raw[at + 1..].trim_end_matches('>').to_string();
        (domain, Some(format!("the domain of the address {raw}")))
    } else {
        // "example.com/path" or "example.com:443": the name before them.
        let name = raw.split(['/', ':']).next().unwrap_or(raw).to_string();
        let note = (name != raw.trim_end_matches('.')).then(|| format!("the name in {raw}"));
        (name, note)
    };
    let domain = netjes_auth::dmarc::author::author_domain(&candidate)
        .map_err(|_| format!("{raw:?} is not a domain name"))?;
    if !domain.contains('.') {
        return Err(format!(
            "{raw:?} is a single label, not a domain: did you mean {domain}.com?"
        ));
    }
    Ok((domain, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_users_type() {
        for (typed, want) in [
            ("example.com", "example.com"),
            ("  Example.COM.  ", "example.com"),
            ("https://www.example.com/contact?x=1", "www.example.com"),
            ("http://EXAMPLE.com:8080", "example.com"),
            ("alice@example.com", "example.com"),
            ("<alice@example.com>", "example.com"),
            ("mailto:alice@example.com", "example.com"),
            ("example.com/path", "example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"),
        ] {
            assert_eq!(domain_of(typed).map(|d| d.0), Ok(want.to_string()), "{typed}");
        }
        assert_eq!(domain_of("example.com").unwrap().1, None);
        assert!(domain_of("alice@example.com").unwrap().1.unwrap().contains("address"));
        for bad in ["", "localhost", "not a domain", "exa_mple.com", "-x.example", "http://", "a@"] {
            assert!(domain_of(bad).is_err(), "{bad:?}");
        }
    }
}
