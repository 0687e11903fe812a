//! What Postfix is told for a destination with an MTA-STS policy: for
//! `mode: enforce`, `secure` with the policy's MX patterns as `match=`
//! (RFC 8461 §4.1: a certificate valid for an MX the policy names), and
//! `servername=hostname` so that the certificate is checked against the
//! MX host's own name. `testing` and `none` get nothing: Postfix keeps
//! its default TLS policy (RFC 8461 §5: testing must not stop delivery).
//! Free of IO.

use netjes_check::mta_sts::StsPolicy;

/// Postfix's form of an MX pattern: "*.example.com" (one label, RFC 8461
/// §4.1) becomes ".example.com" (any subdomain): Postfix has no
/// one-label wildcard, so this is the nearest, and a little wider.
fn postfix_pattern(p: &str) -> String {
    match p.strip_prefix("*.") {
        Some(rest) => format!(".{rest}"),
        None => p.to_string(),
    }
}

/// The policy table answer for `domain`, or `None` for Postfix's default.
/// `tlsrpt` adds the attributes Postfix 3.10's TLSRPT support reads.
pub fn answer(domain: &str, p: &StsPolicy, text: &str, tlsrpt: bool) -> Option<String> {
    if p.mode != "enforce" {
        return None;
    }
    // Only names Postfix can take as a match pattern.
    let patterns: Vec<String> = p
        .mx
        .iter()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b)))
        .map(|m| postfix_pattern(m))
        .collect();
    if patterns.is_empty() {
        return None;
    }
    let mut a = format!("secure match={} servername=hostname", patterns.join(":"));
    if tlsrpt {
        a.push_str(&format!(" policy_type=sts policy_domain={domain}"));
        for m in &p.mx {
            a.push_str(&format!(" mx_host_pattern={m}"));
        }
        // Values with spaces go in braces (postconf(5), "{ name = value }").
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.contains(['{', '}'])) {
            a.push_str(&format!(" {{ policy_string = {line} }}"));
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netjes_check::mta_sts::parse_policy;

    #[test]
    fn enforce_is_secure_and_testing_is_left_alone() {
        let text = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n";
        let p = parse_policy(text).unwrap();
        assert_eq!(answer("example.com", &p, text, false).as_deref(), Some("secure match=mail.example.com:.example.net servername=hostname"));
        let rpt = answer("example.com", &p, text, true).unwrap();
        assert!(rpt.contains("policy_type=sts policy_domain=example.com mx_host_pattern=mail.example.com mx_host_pattern=*.example.net { policy_string = version: STSv1 }"), "{rpt}");
        let testing = parse_policy(&text.replace("enforce", "testing")).unwrap();
        assert_eq!(answer("example.com", &testing, text, false), None);
        // A pattern Postfix could misread (a space, a colon) is left out.
        let odd = StsPolicy { mode: "enforce".into(), mx: vec!["a b".into(), "x:y".into()], max_age: 1 };
        assert_eq!(answer("example.com", &odd, "", false), None);
    }
}
