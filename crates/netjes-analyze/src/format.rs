//! RFC 5322 form: the header fields a message must have once, well formed,
//! and the lines it must not have.

use crate::finding::Finding;
use mail_parser::MessageParser;
use netjes_auth::message::header_fields as fields;

/// Fields RFC 5322 §3.6 allows at most once.
const SINGLE: &[&str] = &[
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
];

/// A display name that shows an address at another domain than the real
/// one ("ceo@victim.example" <x@attacker.example>): mail clients that show
/// only the name show the victim ("Composition Kills", USENIX Security
/// 2020). Subdomains of each other are the same sender.
fn display_name_spoofs(raw: &[u8]) -> Vec<Finding> {
    let Ok(authors) = netjes_auth::dmarc::authors_of(raw) else {
        return Vec::new();
    };
    let related = |a: &str, b: &str| a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"));
    let mut out = Vec::new();
    for m in &authors.mailboxes {
        for shown in m.display_domains.iter().filter(|d| !related(d, &m.domain)) {
            out.push(
                Finding::new(
                    "format.display-name-address",
                    format!(
                        "the display name {:?} shows an address at {shown}, but the mail is from {}{}",
                        m.display_name.clone().unwrap_or_default(),
                        m.address(),
                        if m.display_encoded { " (hidden in an encoded word)" } else { "" }
                    ),
                )
                .fix("put a plain name in the display name, not an address"),
            );
        }
    }
    out
}

/// Checks the form of a message; `now` is Unix time, for Date in the future.
pub fn check_format(raw: &[u8], now: i64) -> Vec<Finding> {
    check_format_of(
        raw,
        &fields(raw),
        MessageParser::default().parse_headers(raw).as_ref(),
        now,
    )
}

/// The same, over the header fields and the parse the caller already has.
pub fn check_format_of(
    raw: &[u8],
    f: &[(String, Vec<u8>)],
    parsed: Option<&mail_parser::Message<'_>>,
    now: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let count = |n: &str| f.iter().filter(|(k, _)| k.eq_ignore_ascii_case(n)).count();
    match count("From") {
        0 => out.push(Finding::new("format.no-from", "there is no From field (RFC 5322 §3.6 requires exactly one)").fix("add a From: header with your address")),
        1 => {}
        n => out.push(Finding::new("format.many-from", format!("there are {n} From fields; exactly one is allowed, and DMARC cannot judge the message")).fix("write one From field; put other authors in the body or in Reply-To")),
    }
    out.extend(display_name_spoofs(raw));
    for name in SINGLE.iter().filter(|n| **n != "From") {
        let n = count(name);
        if n > 1 {
            out.push(
                Finding::new(
                    "format.duplicate-field",
                    format!("{name} appears {n} times; RFC 5322 §3.6 allows it once"),
                )
                .fix(format!("write {name} once")),
            );
        }
    }
    match count("Date") {
        0 => out.push(
            Finding::new("format.no-date", "there is no Date field (RFC 5322 §3.6.1)")
                .fix("let the sending software add Date"),
        ),
        _ => match parsed.and_then(|m| m.date()) {
            None => out.push(
                Finding::new(
                    "format.bad-date",
                    "the Date field cannot be read as an RFC 5322 date",
                )
                .fix("Date: Mon, 23 Nov 2026 09:00:00 +0000 (let the mail library write it)"),
            ),
            Some(d) if d.to_timestamp() > now + 15 * 60 => out.push(
                Finding::new(
                    "format.future-date",
                    format!(
                        "the Date is {} minutes in the future: the sender's clock is wrong",
                        (d.to_timestamp() - now) / 60
                    ),
                )
                .fix("run NTP (chrony) on the sending machine"),
            ),
            Some(_) => {}
        },
    }
    match count("Message-ID") {
        0 => out.push(
            Finding::new(
                "format.no-message-id",
                "there is no Message-ID (RFC 5322 §3.6.4); spam filters score its absence",
            )
            .fix("let the sending software add <unique@your-domain>"),
        ),
        _ => {
            let v = f
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Message-ID"))
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
                .unwrap_or_default();
            let ok = v.starts_with('<')
                && v.ends_with('>')
                && v[1..v.len() - 1].contains('@')
                && !v.contains(' ');
            if !ok {
                out.push(
                    Finding::new(
                        "format.bad-message-id",
                        format!("the Message-ID {v:?} is not of the form <id@domain>"),
                    )
                    .fix("Message-ID: <unique-part@your-domain>"),
                );
            }
        }
    }
    if count("Subject") == 0 {
        out.push(
            Finding::new("format.no-subject", "there is no Subject")
                .fix("give the message a Subject that says what it is about"),
        );
    }
    // §2.1.1: lines of at most 998 octets; §2.3: CR and LF only together.
    let mut long = 0;
    let mut bare = 0;
    let lines = raw.split(|b| *b == b'\n').count();
    for (i, line) in raw.split(|b| *b == b'\n').enumerate() {
        if line.len() > 999 {
            long += 1;
        }
        let crlf_end = line.ends_with(b"\r");
        let inner_cr = line[..line.len().saturating_sub(usize::from(crlf_end))].contains(&b'\r');
        let last = i + 1 == lines;
        if inner_cr || (!crlf_end && !last) {
            bare += 1;
        }
    }
    if long > 0 {
        out.push(Finding::new("format.long-lines", format!("{long} line(s) are over 998 octets (RFC 5322 §2.1.1): servers may break them, and signatures with them")).fix("send long content quoted-printable or base64 encoded, or break the HTML into lines"));
    }
    if bare > 0 {
        out.push(
            Finding::new(
                "format.bare-line-ends",
                format!("{bare} line(s) end in a bare CR or LF; SMTP wants CRLF (RFC 5322 §2.3)"),
            )
            .fix("end every line with CRLF"),
        );
    }
    if f.iter().any(|(_, v)| v.iter().any(|b| *b >= 0x80)) {
        out.push(
            Finding::new("format.8bit-header", "a header field holds raw 8-bit bytes")
                .fix("encode non-ASCII header text as RFC 2047 encoded words (=?utf-8?q?...?=)"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_478_400; // 2026-11-23

    fn ids(raw: &[u8]) -> Vec<&'static str> {
        check_format(raw, NOW).into_iter().map(|f| f.id).collect()
    }

    #[test]
    fn a_proper_message_has_no_findings() {
        let m = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nbody\r\n";
        assert!(ids(m).is_empty(), "{:?}", ids(m));
    }

    #[test]
    fn each_defect_is_found() {
        assert_eq!(
            ids(b"To: b@example.org\r\n\r\nx\r\n"),
            vec![
                "format.no-from",
                "format.no-date",
                "format.no-message-id",
                "format.no-subject"
            ]
        );
        let m = b"From: a@example.com\r\nFrom: c@example.com\r\nSubject: a\r\nSubject: b\r\nDate: Fri, 1 Jan 2100 00:00:00 +0000\r\nMessage-ID: no-brackets\r\n\r\nx\r\n";
        let i = ids(m);
        for want in [
            "format.many-from",
            "format.duplicate-field",
            "format.future-date",
            "format.bad-message-id",
        ] {
            assert!(i.contains(&want), "{want}: {i:?}");
        }
        let spoof = b"From: \"ceo@victim.example\" <x@attacker.example>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@e.x>\r\nSubject: a\r\n\r\nx\r\n";
        assert!(ids(spoof).contains(&"format.display-name-address"));
        let own = b"From: \"news@mail.example.com\" <news@example.com>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@e.x>\r\nSubject: a\r\n\r\nx\r\n";
        assert!(!ids(own).contains(&"format.display-name-address"));
        let mut long = b"From: a@example.com\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@e.x>\r\nSubject: \xe9t\xe9\r\n\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', 1200));
        long.extend_from_slice(b"\r\nbare\nline\r\n");
        let i = ids(&long);
        for want in [
            "format.long-lines",
            "format.bare-line-ends",
            "format.8bit-header",
        ] {
            assert!(i.contains(&want), "{want}: {i:?}");
        }
        assert!(ids(b"From: a@example.com\r\nDate: yesterday\r\n\r\n").contains(&"format.bad-date"));
    }
}
