//! Parsing SPF records: mail-auth's parser, plus the §4.6 and §12 syntax rules
//! it lets through, plus the terms as written so they can be quoted back.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Directive, Macro, Mechanism, Qualifier, Spf, Variable};

/// A parsed record and the text of each mechanism, in order.
#[derive(Debug, Clone)]
pub struct SpfRecord {
    pub text: String,
    pub spf: Spf,
    /// The mechanism terms as written, one per `spf.directives` entry.
    pub terms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position}: {term:?})")]
pub struct SpfSyntaxError {
    pub message: String,
    /// 1-based character position of the offending term.
    pub position: usize,
    pub term: String,
}

/// Whether a TXT record is an SPF record at all (§4.5): "v=spf1" followed by
/// a space or the end, case-insensitively.
pub fn is_spf_record(txt: &[u8]) -> bool {
    txt.len() >= 6 && txt[..6].eq_ignore_ascii_case(b"v=spf1") && (txt.len() == 6 || txt[6] == b' ')
}

const MECHANISMS: [&str; 8] = ["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"];

fn mechanism_name(term: &str) -> Option<&str> {
    let t = term.trim_start_matches(['+', '-', '~', '?']);
    let end = t.find([':', '/']).unwrap_or(t.len());
    let name = &t[..end];
    MECHANISMS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(name))
        .copied()
}

fn modifier_name(term: &str) -> Option<&str> {
    let eq = term.find('=')?;
    let name = &term[..eq];
    let mut chars = name.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some(name)
}

/// Parses one SPF record. Errors carry the position of the offending term.
///
/// mail-auth's parser does the work; before it, the record is checked for
/// what that parser lets through (control characters, CIDR lengths over 32
/// or 128 or with leading zeros, domain-specs without a valid top label,
/// duplicate redirect=/exp=) and unknown modifiers are removed, which §6
/// says have no effect but which mail-auth cannot parse when their value
/// holds ':' or '/'.
pub fn parse_record(txt: &[u8]) -> Result<SpfRecord, SpfSyntaxError> {
    let err = |message: &str, position: usize, term: &str| SpfSyntaxError {
        message: message.to_string(),
        position,
        term: term.to_string(),
    };
    // §3.1: records are US-ASCII; §12: terms are separated by SP only.
    if let Some(p) = txt.iter().position(|b| !(b' '..=b'~').contains(b)) {
        let what = if txt[p].is_ascii() {
            "a control character"
        } else {
            "a non-ASCII byte"
        };
        return Err(err(
            &format!(
                "the record contains {what} (0x{:02x}); SPF records are printable 7-bit ASCII",
                txt[p]
            ),
            p + 1,
            &String::from_utf8_lossy(txt),
        ));
    }
    let text = String::from_utf8_lossy(txt).into_owned();
    let mut terms = Vec::new();
    let mut directives = Vec::new();
    let mut redirect = None;
    let mut exp = None;
    let mut redirects = 0;
    let mut exps = 0;
    let mut offset = 0;
    for (i, term) in text.split(' ').enumerate() {
        let position = offset + 1;
        offset += term.len() + 1;
        if i == 0 || term.is_empty() {
            continue;
        }
        if let Some(m) = modifier_name(term).filter(|_| mechanism_name(term).is_none()) {
            let value = &term[m.len() + 1..];
            let known = m.eq_ignore_ascii_case("redirect") || m.eq_ignore_ascii_case("exp");
            if m.eq_ignore_ascii_case("redirect") {
                redirects += 1;
            } else if m.eq_ignore_ascii_case("exp") {
                exps += 1;
            }
            if redirects > 1 || exps > 1 {
                return Err(err(
                    &format!("{m}= appears more than once (RFC 7208 §6)"),
                    position,
                    term,
                ));
            }
            if known {
                check_domain_spec(value).map_err(|msg| err(&msg, position, term))?;
                let m_ = domain_macro(value).map_err(|msg| err(&msg, position, term))?;
                if m.eq_ignore_ascii_case("redirect") {
                    redirect = Some(m_);
                } else {
                    exp = Some(m_);
                }
            } else if value.contains('%') && Macro::parse(value.as_bytes()).is_err() {
                return Err(err(
                    &format!("the value of {m}= is not a valid macro-string"),
                    position,
                    term,
                ));
            }
            continue;
        }
        let Some(name) = mechanism_name(term) else {
            return Err(err("unknown mechanism", position, term));
        };
        let body = term.trim_start_matches(['+', '-', '~', '?']);
        if body.len() + 1 < term.len() {
            return Err(err("more than one qualifier", position, term));
        }
        let qualifier = match term.as_bytes()[0] {
            b'-' => Qualifier::Fail,
            b'~' => Qualifier::SoftFail,
            b'?' => Qualifier::Neutral,
            _ => Qualifier::Pass,
        };
        let rest = &body[name.len()..];
        let spec_macro = |spec: &str| -> Result<Macro, SpfSyntaxError> {
            check_domain_spec(spec).map_err(|m| err(&m, position, term))?;
            domain_macro(spec).map_err(|m| err(&m, position, term))
        };
        let mechanism = match name {
            "all" if !rest.is_empty() => {
                return Err(err("\"all\" takes no argument", position, term))
            }
            "all" => Mechanism::All,
            "a" | "mx" => {
                let (spec, v4, v6) = split_dual_cidr(rest);
                check_cidr(v4, 32)
                    .and(check_cidr(v6, 128))
                    .map_err(|m| err(&m, position, term))?;
                let macro_string = match spec.strip_prefix(':') {
                    Some(spec) => spec_macro(spec)?,
                    None if spec.is_empty() => Macro::None,
                    None => {
                        return Err(err(
                            "expected ':' or '/' after the mechanism",
                            position,
                            term,
                        ))
                    }
                };
                let ip4_mask = mask4(v4.map_or(32, |v| v.parse().unwrap_or(32)));
                let ip6_mask = mask6(v6.map_or(128, |v| v.parse().unwrap_or(128)));
                if name == "a" {
                    Mechanism::A {
                        macro_string,
                        ip4_mask,
                        ip6_mask,
                    }
                } else {
                    Mechanism::Mx {
                        macro_string,
                        ip4_mask,
                        ip6_mask,
                    }
                }
            }
            "ptr" | "include" | "exists" => {
                let macro_string = match rest.strip_prefix(':') {
                    Some(spec) => spec_macro(spec)?,
                    None if rest.is_empty() && name == "ptr" => Macro::None,
                    None => {
                        return Err(err(
                            &format!("\"{name}\" needs ':' and a domain"),
                            position,
                            term,
                        ))
                    }
                };
                match name {
                    "ptr" => Mechanism::Ptr { macro_string },
                    "include" => Mechanism::Include { macro_string },
                    _ => Mechanism::Exists { macro_string },
                }
            }
            "ip4" | "ip6" => {
                let Some(addr) = rest.strip_prefix(':') else {
                    return Err(err(
                        &format!("\"{name}\" needs ':' and an address"),
                        position,
                        term,
                    ));
                };
                let (addr, len) = match addr.split_once('/') {
                    Some((a, l)) => (a, Some(l)),
                    None => (addr, None),
                };
                let max = if name == "ip4" { 32 } else { 128 };
                let ok = if name == "ip4" {
                    addr.parse::<std::net::Ipv4Addr>().is_ok()
                } else {
                    addr.parse::<std::net::Ipv6Addr>().is_ok()
                };
                if !ok {
                    return Err(err(
                        &format!(
                            "{addr:?} is not an {} address",
                            if name == "ip4" { "IPv4" } else { "IPv6" }
                        ),
                        position,
                        term,
                    ));
                }
                check_cidr(len, max).map_err(|m| err(&m, position, term))?;
                let len: Option<u32> = len.map(|l| l.parse().unwrap_or(max));
                if name == "ip4" {
                    Mechanism::Ip4 {
                        addr: addr.parse().unwrap(),
                        mask: mask4(len.unwrap_or(32)),
                    }
                } else {
                    Mechanism::Ip6 {
                        addr: addr.parse().unwrap(),
                        mask: mask6(len.unwrap_or(128)),
                    }
                }
            }
            _ => unreachable!("mechanism_name returns one of MECHANISMS"),
        };
        directives.push(Directive::new(qualifier, mechanism));
        terms.push(term.to_string());
    }
    let spf = Spf {
        version: mail_auth::Version::V1,
        directives: directives.into_boxed_slice(),
        exp,
        redirect,
        ra: None,
        rp: 100,
        rr: u8::MAX,
    };
    Ok(SpfRecord { text, spf, terms })
}

fn mask4(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32))
    }
}

fn mask6(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128))
    }
}

/// A domain-spec as a macro-string. mail-auth's macro parser is used in its
/// explanation mode, which reads ':' and '/' as literals; the letters that
/// only explanations may use (c, r, t; §7.2) are refused here.
fn domain_macro(spec: &str) -> Result<Macro, String> {
    let m = Macro::parse(spec.as_bytes())
        .map_err(|_| format!("{spec:?} is not a valid macro-string (RFC 7208 §7.1)"))?;
    let exp_only = |v: &Macro| {
        matches!(
            v,
            Macro::Variable {
                letter: Variable::SmtpIp | Variable::HostDomain | Variable::CurrentTime,
                ..
            }
        )
    };
    let bad = match &m {
        Macro::List(items) => items.iter().any(exp_only),
        other => exp_only(other),
    };
    if bad {
        return Err(format!(
            "{spec:?} uses a macro letter (c, r or t) that only exp= texts may use (RFC 7208 §7.2)"
        ));
    }
    Ok(m)
}

/// Splits `[":" domain-spec] [dual-cidr-length]` from the right.
fn split_dual_cidr(rest: &str) -> (&str, Option<&str>, Option<&str>) {
    fn digits_suffix<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
        let idx = s.rfind(sep)?;
        let d = &s[idx + sep.len()..];
        (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).then(|| (&s[..idx], d))
    }
    let mut s = rest;
    let mut v6 = None;
    let mut v4 = None;
    if let Some((head, d)) = digits_suffix(s, "//") {
        v6 = Some(d);
        s = head;
    }
    if let Some((head, d)) = digits_suffix(s, "/") {
        if !head.ends_with('/') {
            v4 = Some(d);
            s = head;
        }
    }
    (s, v4, v6)
}

/// §12: "0" or a number without leading zeros, at most `max`.
fn check_cidr(len: Option<&str>, max: u32) -> Result<(), String> {
    let Some(l) = len else { return Ok(()) };
    let valid = !l.is_empty()
        && l.bytes().all(|b| b.is_ascii_digit())
        && (l == "0" || !l.starts_with('0'))
        && l.parse::<u32>().is_ok_and(|n| n <= max);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "/{l} is not a valid prefix length (0 to {max}, no leading zeros)"
        ))
    }
}

/// §7.1 `domain-end`: a domain-spec ends either in a macro-expand or in a
/// toplabel that is not all digits and does not start or end with '-'.
fn check_domain_spec(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("the mechanism needs a domain after ':'".into());
    }
    let s = spec.strip_suffix('.').unwrap_or(spec);
    if s.ends_with('}') {
        return Ok(());
    }
    let top = s.rsplit('.').next().unwrap_or("");
    if s.contains('.')
        && !top.is_empty()
        && top.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !top.chars().all(|c| c.is_ascii_digit())
        && !top.starts_with('-')
        && !top.ends_with('-')
    {
        Ok(())
    } else {
        Err(format!(
            "{spec:?} is not a valid domain (RFC 7208 §7.1 toplabel)"
        ))
    }
}

/// The text of a directive's mechanism without qualifier, for lint output.
pub fn mechanism_kind(m: &Mechanism) -> &'static str {
    match m {
        Mechanism::All => "all",
        Mechanism::Include { .. } => "include",
        Mechanism::A { .. } => "a",
        Mechanism::Mx { .. } => "mx",
        Mechanism::Ptr { .. } => "ptr",
        Mechanism::Ip4 { .. } => "ip4",
        Mechanism::Ip6 { .. } => "ip6",
        Mechanism::Exists { .. } => "exists",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_terms_and_positions() {
        let r = parse_record(b"v=spf1 ip4:192.0.2.0/24 include:_spf.example.com ~all").unwrap();
        assert_eq!(
            r.terms,
            vec!["ip4:192.0.2.0/24", "include:_spf.example.com", "~all"]
        );
        let e = parse_record(b"v=spf1 ip4:192.0.2.0/24 bogus -all").unwrap_err();
        assert_eq!(e.position, 25);
        assert_eq!(e.term, "bogus");
        assert!(parse_record(b"v=spf1 a:foo.1 -all").is_err());
        assert!(parse_record(b"v=spf1 redirect=a.example redirect=b.example").is_err());
        assert!(
            is_spf_record(b"V=SPF1 -all") && is_spf_record(b"v=spf1") && !is_spf_record(b"v=spf10")
        );
    }
}
