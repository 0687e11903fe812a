//! The Received-SPF header field (RFC 7208 §9.1), as a receiver that
//! checked SPF prepends it; the policy service and the milter both write it.

use super::{Identity, SpfOutcome, SpfResult};
use std::net::IpAddr;

/// A value for a key-value pair: a dot-atom as is, anything else quoted
/// (RFC 5322 quoted-string), so that a hostile HELO cannot add pairs.
fn kv_value(s: &str) -> String {
    let atom = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c));
    if atom {
        s.to_string()
    } else {
        let clean: String = s.chars().filter(|c| !c.is_control()).collect();
        format!("\"{}\"", clean.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The comment's words, per result (the examples of §9.1).
fn comment(o: &SpfOutcome, ip: IpAddr, receiver: &str) -> String {
    let who = match o.identity {
        Identity::Mailfrom => format!("domain of {}", o.sender),
        Identity::Helo => format!("domain of {}", o.domain),
    };
    let text = match o.result {
        SpfResult::Pass => format!("{who} designates {ip} as permitted sender"),
        SpfResult::Fail => format!("{who} does not designate {ip} as permitted sender"),
        SpfResult::Softfail => {
            format!("transitioning {who} does not designate {ip} as permitted sender")
        }
        SpfResult::Neutral => format!("{ip} is neither permitted nor denied by {who}"),
        SpfResult::None => format!("{} does not designate permitted sender hosts", o.domain),
        SpfResult::Permerror => format!(
            "permanent error in processing {who}: {}",
            o.problem.clone().unwrap_or_default()
        ),
        SpfResult::Temperror => format!(
            "temporary error in processing {who}: {}",
            o.problem.clone().unwrap_or_default()
        ),
    };
    // Parentheses and backslashes would end or escape the comment.
    let safe: String = format!("{receiver}: {text}")
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '(' | ')' | '\\'))
        .collect();
    format!("({safe})")
}

/// The field's value, without "Received-SPF: ". `mail_from` is the
/// envelope sender as given (empty for the null sender).
pub fn received_spf(
    o: &SpfOutcome,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    receiver: &str,
) -> String {
    let identity = match o.identity {
        Identity::Mailfrom => "mailfrom",
        Identity::Helo => "helo",
    };
    let mut v = format!(
        "{} {} client-ip={ip};",
        o.result.as_str(),
        comment(o, ip, receiver)
    );
    v.push_str(&format!(
        " envelope-from={};",
        kv_value(if mail_from.is_empty() {
            "<>"
        } else {
            mail_from
        })
    ));
    if !helo.is_empty() {
        v.push_str(&format!(" helo={};", kv_value(helo)));
    }
    v.push_str(&format!(
        " receiver={}; identity={identity};",
        kv_value(receiver)
    ));
    if let Some(m) = &o.mechanism {
        v.push_str(&format!(" mechanism={};", kv_value(m)));
    }
    if let Some(p) = &o.problem {
        if matches!(o.result, SpfResult::Permerror | SpfResult::Temperror) {
            v.push_str(&format!(" problem={};", kv_value(p)));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_quoting() {
        let mut o = SpfOutcome::new(Identity::Mailfrom, "example.com", "alice@example.com");
        o.result = SpfResult::Pass;
        o.mechanism = Some("ip4:192.0.2.0/24".into());
        let v = received_spf(
            &o,
            "192.0.2.1".parse().unwrap(),
            "mail.example.com",
            "alice@example.com",
            "mx.example.org",
        );
        assert_eq!(
            v,
            "pass (mx.example.org: domain of alice@example.com designates 192.0.2.1 as permitted sender) client-ip=192.0.2.1; envelope-from=alice@example.com; helo=mail.example.com; receiver=mx.example.org; identity=mailfrom; mechanism=\"ip4:192.0.2.0/24\";"
        );
        let v = received_spf(&o, "192.0.2.1".parse().unwrap(), "evil; x=y (a)", "", "mx");
        assert!(
            v.contains("envelope-from=\"<>\";") && v.contains("helo=\"evil; x=y (a)\";"),
            "{v}"
        );
    }
}
