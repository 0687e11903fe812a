//! RFC 1035 §5 master files ("zone files"), for answering from a zone that is
//! not published yet (`netjes check --zone`).
//!
//! Supported: `$ORIGIN`, `$TTL`, `@`, relative names, an owner left out
//! (the previous one), TTL and class in either order, TTLs with BIND's units
//! (1h, 2d), parentheses across lines, `;` comments, quoted strings with
//! `\"` and `\DDD` escapes. `$INCLUDE` is refused: a zone given to a checker
//! must not make it read other files. Record types other than A, AAAA, MX,
//! TXT, SPF, PTR and CNAME are accepted and kept only as proof that the name
//! exists (NS, SOA, CAA, SRV, ...).

use crate::normalize_name;
use crate::zone::{Zone, ZoneError, ZoneRecord};

/// Parses a master file. `origin` is the zone's name, used until `$ORIGIN`.
/// Stops at the first error, which names its line.
/// A TXT value as zone-file character-strings: a DKIM key's value is longer
/// than the 255 octets one string holds (RFC 1035 §3.3), so it is split
/// into several, which verifiers join (RFC 6376 §3.6.2.2). Quotes and
/// backslashes are escaped.
pub fn txt_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| {
            let s = String::from_utf8_lossy(c);
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn parse_master_file(text: &str, origin: &str) -> Result<Zone, ZoneError> {
    let mut zone = Zone::new();
    let mut origin = normalize_name(origin);
    let mut default_ttl: u32 = 3600;
    let mut last_owner: Option<String> = None;

    for (line_no, entry) in logical_lines(text)? {
        let err = |m: String| ZoneError {
            line: line_no,
            message: m,
        };
        let toks = &entry.tokens;
        if toks.is_empty() {
            continue;
        }
        let first = toks[0].text();
        if !entry.starts_blank && first.starts_with('$') {
            match first.to_ascii_uppercase().as_str() {
                "$ORIGIN" => match toks.get(1) {
                    Some(t) => origin = absolute(&t.text(), &origin),
                    None => return Err(err("$ORIGIN needs a name".into())),
                },
                "$TTL" => match toks.get(1).and_then(|t| parse_ttl(&t.text())) {
                    Some(t) => default_ttl = t,
                    None => return Err(err("$TTL needs a time (3600, 1h, 2d)".into())),
                },
                "$INCLUDE" => {
                    return Err(err(
                        "$INCLUDE is not supported: give every file with --zone".into(),
                    ))
                }
                other => return Err(err(format!("unknown directive {other}"))),
            }
            continue;
        }
        let (owner, rest) = if entry.starts_blank {
            match &last_owner {
                Some(o) => (o.clone(), &toks[..]),
                None => return Err(err("the first record has no owner name".into())),
            }
        } else {
            (absolute(&toks[0].text(), &origin), &toks[1..])
        };
        last_owner = Some(owner.clone());
        let (ttl, rtype, rdata) = ttl_class_type(rest)
            .ok_or_else(|| err(format!("{owner}: the record type is missing")))?;
        if rtype.starts_with(|c: char| c.is_ascii_digit()) {
            // A number that did not read as a TTL (too large, bad unit).
            return Err(err(format!(
                "{owner}: {rtype:?} is neither a TTL nor a record type"
            )));
        }
        match record_from(&rtype, rdata, &origin)
            .map_err(|m| err(format!("{owner} {rtype}: {m}")))?
        {
            Some(r) => {
                let e = zone.entry(&owner);
                e.ttl = ttl.unwrap_or(default_ttl);
                e.records.push(r);
            }
            // Another type (NS, SOA, CAA...): the name exists, nothing is served from it.
            None => {
                zone.entry(&owner);
            }
        }
    }
    Ok(zone)
}

/// After the owner: an optional TTL and class in either order (RFC 1035
/// §5.1), then the type and its data.
pub(crate) fn ttl_class_type(toks: &[Tok]) -> Option<(Option<u32>, String, &[Tok])> {
    let mut i = 0;
    let mut ttl = None;
    for _ in 0..2 {
        match toks.get(i).map(|t| t.text()) {
            Some(t) if ["IN", "CH", "HS"].iter().any(|c| t.eq_ignore_ascii_case(c)) => i += 1,
            Some(t)
                if !toks[i].quoted
                    && t.starts_with(|c: char| c.is_ascii_digit())
                    && parse_ttl(&t).is_some() =>
            {
                ttl = parse_ttl(&t);
                i += 1;
            }
            _ => break,
        }
    }
    let rtype = toks.get(i)?.text().to_ascii_uppercase();
    Some((ttl, rtype, &toks[i + 1..]))
}

/// The record a type and its data make. `Ok(None)` for a type netjes does
/// not serve; names are made absolute with `origin`.
pub(crate) fn record_from(
    rtype: &str,
    rdata: &[Tok],
    origin: &str,
) -> Result<Option<ZoneRecord>, String> {
    let one = |what: &str| -> Result<String, String> {
        match rdata {
            [t] => Ok(t.text()),
            _ => Err(format!("expected one {what}")),
        }
    };
    Ok(Some(match rtype {
        "A" => {
            let a = one("address")?;
            ZoneRecord::A(
                a.parse()
                    .map_err(|_| format!("{a:?} is not an IPv4 address"))?,
            )
        }
        "AAAA" => {
            let a = one("address")?;
            ZoneRecord::Aaaa(
                a.parse()
                    .map_err(|_| format!("{a:?} is not an IPv6 address"))?,
            )
        }
        "MX" => match rdata {
            [p, x] => ZoneRecord::Mx(
                p.text()
                    .parse()
                    .map_err(|_| format!("the preference {:?} is not a number", p.text()))?,
                absolute(&x.text(), origin),
            ),
            _ => return Err("expected a preference and a host".into()),
        },
        "CNAME" => ZoneRecord::Cname(absolute(&one("name")?, origin)),
        "PTR" => ZoneRecord::Ptr(absolute(&one("name")?, origin)),
        "TXT" | "SPF" => {
            if rdata.is_empty() {
                return Err("no text".into());
            }
            if let Some(long) = rdata.iter().find(|t| t.bytes.len() > 255) {
                return Err(format!(
                    "a string of {} octets; one string holds at most 255 (RFC 1035 §3.3.14), so split it into several quoted strings",
                    long.bytes.len()
                ));
            }
            let parts = rdata.iter().map(|t| t.bytes.clone()).collect();
            if rtype == "TXT" {
                ZoneRecord::Txt(parts)
            } else {
                ZoneRecord::Spf(parts)
            }
        }
        _ => return Ok(None),
    }))
}

fn absolute(name: &str, origin: &str) -> String {
    if name == "@" {
        normalize_name(origin)
    } else if name.ends_with('.') || origin.is_empty() {
        normalize_name(name)
    } else {
        normalize_name(&format!("{name}.{origin}"))
    }
}

/// Seconds, or BIND's 1w2d3h4m5s.
fn parse_ttl(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            let unit: u64 = match c.to_ascii_lowercase() {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return None,
            };
            // Checked: "99999999999999999999m" must be an error, not a panic (found by fuzzing).
            total = total.checked_add(n.checked_mul(unit)?)?;
        }
    }
    if !num.is_empty() {
        return None;
    }
    u32::try_from(total).ok()
}

#[derive(Debug, Clone)]
pub(crate) struct Tok {
    pub(crate) bytes: Vec<u8>,
    pub(crate) quoted: bool,
}

impl Tok {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

pub(crate) struct Entry {
    pub(crate) starts_blank: bool,
    pub(crate) tokens: Vec<Tok>,
}

/// Joins parenthesised lines into one entry each, with the line it began on.
pub(crate) fn logical_lines(text: &str) -> Result<Vec<(usize, Entry)>, ZoneError> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<(usize, Entry)> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let b = line.as_bytes();
        if current.is_none() {
            current = Some((
                line_no,
                Entry {
                    starts_blank: b.first().is_some_and(|c| *c == b' ' || *c == b'\t'),
                    tokens: Vec::new(),
                },
            ));
        }
        let entry = &mut current.as_mut().unwrap().1;
        let mut j = 0;
        while j < b.len() {
            match b[j] {
                b' ' | b'\t' | b'\r' => j += 1,
                b';' => break,
                b'(' => {
                    depth += 1;
                    j += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err(ZoneError {
                            line: line_no,
                            message: "')' without '('".into(),
                        });
                    }
                    depth -= 1;
                    j += 1;
                }
                b'"' => {
                    j += 1;
                    let mut s = Vec::new();
                    loop {
                        match b.get(j) {
                            None => {
                                return Err(ZoneError {
                                    line: line_no,
                                    message: "a quoted string is not closed".into(),
                                })
                            }
                            Some(b'"') => {
                                j += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let (c, n) = unescape(&b[j + 1..]).map_err(|m| ZoneError {
                                    line: line_no,
                                    message: m,
                                })?;
                                s.push(c);
                                j += 1 + n;
                            }
                            Some(&c) => {
                                s.push(c);
                                j += 1;
                            }
                        }
                    }
                    entry.tokens.push(Tok {
                        bytes: s,
                        quoted: true,
                    });
                }
                _ => {
                    let mut s = Vec::new();
                    while j < b.len()
                        && !matches!(b[j], b' ' | b'\t' | b'\r' | b';' | b'(' | b')' | b'"')
                    {
                        if b[j] == b'\\' {
                            let (c, n) = unescape(&b[j + 1..]).map_err(|m| ZoneError {
                                line: line_no,
                                message: m,
                            })?;
                            s.push(c);
                            j += 1 + n;
                        } else {
                            s.push(b[j]);
                            j += 1;
                        }
                    }
                    entry.tokens.push(Tok {
                        bytes: s,
                        quoted: false,
                    });
                }
            }
        }
        if depth == 0 {
            out.push(current.take().unwrap());
        }
    }
    if depth > 0 {
        let line = current.map(|c| c.0).unwrap_or(0);
        return Err(ZoneError {
            line,
            message: "'(' is never closed".into(),
        });
    }
    Ok(out)
}

fn unescape(b: &[u8]) -> Result<(u8, usize), String> {
    match b {
        [d1, d2, d3, ..] if d1.is_ascii_digit() && d2.is_ascii_digit() && d3.is_ascii_digit() => {
            let v = (d1 - b'0') as u32 * 100 + (d2 - b'0') as u32 * 10 + (d3 - b'0') as u32;
            u8::try_from(v)
                .map(|v| (v, 3))
                .map_err(|_| format!("the escape \\{v} is over 255"))
        }
        [c, ..] => Ok((*c, 1)),
        [] => Err("a backslash ends the line".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = r#"
$ORIGIN example.com.
$TTL 1h
@           IN  SOA ns1 hostmaster (
                    2026112301 ; serial
                    3600 600 604800 300 )
            IN  NS  ns1
            IN  MX  10 mail
            IN  TXT "v=spf1 mx -all"
mail    300 IN  A   192.0.2.25
        IN 300  AAAA 2001:db8::25
s1._domainkey   TXT ( "v=DKIM1; k=rsa; "
                      "p=MIIBIjAN" )   ; split like opendkim-genkey
www     CNAME   @
$ORIGIN sub.example.com.
x       A       192.0.2.9
abs.example.org. 2d TXT "say \"hi\"\059 ok"
"#;

    #[test]
    fn reads_a_real_zone() {
        let z = parse_master_file(ZONE, "example.com").unwrap();
        let apex = z.get("example.com").unwrap();
        assert!(apex
            .records
            .contains(&ZoneRecord::Mx(10, "mail.example.com".into())));
        assert!(apex
            .records
            .contains(&ZoneRecord::Txt(vec![b"v=spf1 mx -all".to_vec()])));
        let mail = z.get("mail.example.com").unwrap();
        assert_eq!(
            mail.records.len(),
            2,
            "an owner left out is the previous one"
        );
        assert_eq!(mail.ttl, 300);
        assert_eq!(
            z.get("s1._domainkey.example.com").unwrap().records[0],
            ZoneRecord::Txt(vec![b"v=DKIM1; k=rsa; ".to_vec(), b"p=MIIBIjAN".to_vec()])
        );
        assert_eq!(
            z.get("www.example.com").unwrap().records[0],
            ZoneRecord::Cname("example.com".into())
        );
        assert!(z.get("x.sub.example.com").is_some());
        let abs = z.get("abs.example.org").unwrap();
        assert_eq!(abs.ttl, 172_800);
        assert_eq!(
            abs.records[0],
            ZoneRecord::Txt(vec![b"say \"hi\"; ok".to_vec()])
        );
        assert!(z.name_exists("ns1.example.com") || z.get("example.com").is_some());
    }

    /// What `txt_strings` writes reads back as the same value: split at 255
    /// octets, with quotes and backslashes escaped.
    #[test]
    fn txt_strings_read_back() {
        let value = format!("v=DKIM1; k=rsa; p={}\\\"end", "A".repeat(600));
        let z = parse_master_file(
            &format!("s1._domainkey TXT {}\n", txt_strings(&value)),
            "example.com",
        )
        .unwrap();
        let rec = &z.get("s1._domainkey.example.com").unwrap().records;
        match &rec[..] {
            [ZoneRecord::Txt(strings)] => {
                assert_eq!(strings.len(), 3);
                assert!(strings.iter().all(|s| s.len() <= 255));
                assert_eq!(strings.concat(), value.as_bytes());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse_master_file("@ A 192.0.2.1\nwww A 300.1.1.1\n", "example.com")
                .unwrap_err()
                .line,
            2
        );
        assert!(parse_master_file("@ TXT ( \"x\"\n", "example.com").is_err());
        assert!(parse_master_file("$INCLUDE /etc/passwd\n", "example.com")
            .unwrap_err()
            .message
            .contains("$INCLUDE"));
        let long = format!("@ TXT \"{}\"\n", "a".repeat(300));
        assert!(parse_master_file(&long, "example.com")
            .unwrap_err()
            .message
            .contains("255"));
        assert_eq!(
            parse_ttl("1w2d3h4m5s"),
            Some(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
        assert_eq!(parse_ttl("1x"), None);
        assert_eq!(parse_ttl("0000378309091476131538 5m"), None);
        assert_eq!(parse_ttl("3783090914761315385m"), None);
        assert!(parse_master_file("x 3783090914761315385m A 192.0.2.1\n", "example.com").is_err());
    }
}
