//! The Received chain (RFC 5321 §4.4): every hop with its time, its delay
//! and whether it used TLS, in the order the mail travelled. mail-parser
//! reads the fields; this module orders them and derives what they mean.

use mail_parser::{Host, MessageParser, Protocol, Received};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// 1 for the first server the message passed, counting as it travelled.
    pub index: usize,
    /// The name the sending side gave (HELO) or that the receiver looked up.
    pub from: Option<String>,
    pub from_ip: Option<IpAddr>,
    /// The reverse DNS name the receiving server found, when it says so.
    pub from_iprev: Option<String>,
    pub helo: Option<String>,
    pub by: Option<String>,
    /// SMTP, ESMTPS, LMTP, HTTP...
    pub with: Option<String>,
    /// TLS version and cipher, when the hop names them or says ESMTPS.
    pub tls: Option<String>,
    /// Unix time of the hop.
    pub timestamp: Option<i64>,
    /// The hop's time as written, in RFC 3339 with its own offset.
    pub time: Option<String>,
    /// Seconds since the previous hop; negative means a clock is wrong.
    pub delay: Option<i64>,
}

fn host(h: &Option<Host<'_>>) -> Option<String> {
    match h {
        Some(Host::Name(n)) => Some(n.to_string()),
        Some(Host::IpAddr(ip)) => Some(ip.to_string()),
        None => None,
    }
}

fn protocol(p: Protocol) -> String {
    format!("{p:?}")
}

fn hop_of(index: usize, r: &Received<'_>) -> Hop {
    let with = r.with.map(protocol);
    let secure_protocol = matches!(
        r.with,
        Some(
            Protocol::ESMTPS
                | Protocol::ESMTPSA
                | Protocol::LMTPS
                | Protocol::LMTPSA
                | Protocol::HTTPS
        )
    );
    let tls = match (r.tls_version, &r.tls_cipher) {
        (Some(v), Some(c)) => Some(format!("{v:?} {c}")),
        (Some(v), None) => Some(format!("{v:?}")),
        (None, Some(c)) => Some(c.to_string()),
        (None, None) if secure_protocol => with.clone(),
        _ => None,
    };
    Hop {
        index,
        from: host(&r.from),
        from_ip: r.from_ip,
        from_iprev: r.from_iprev.as_ref().map(|s| s.to_string()),
        helo: host(&r.helo),
        by: host(&r.by),
        with,
        tls,
        timestamp: r.date.as_ref().map(|d| d.to_timestamp()),
        time: r.date.as_ref().map(|d| d.to_rfc3339()),
        delay: None,
    }
}

/// The hops of a message, oldest first, with delays between them.
pub fn hops(raw: &[u8]) -> Vec<Hop> {
    MessageParser::default()
        .parse_headers(raw)
        .map(|m| hops_of(&m))
        .unwrap_or_default()
}

/// The hops of a message already parsed.
pub fn hops_of(msg: &mail_parser::Message<'_>) -> Vec<Hop> {
    // Each server prepends its Received field, so the header order is the
    // reverse of the travel order.
    let mut all: Vec<Hop> = msg
        .received_all()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
        .map(|(i, r)| hop_of(i + 1, r))
        .collect();
    let mut prev: Option<i64> = None;
    for h in all.iter_mut() {
        if let (Some(t), Some(p)) = (h.timestamp, prev) {
            h.delay = Some(t - p);
        }
        if h.timestamp.is_some() {
            prev = h.timestamp;
        }
    }
    all
}

/// The envelope as the receiving server saw it, read from its Received
/// field, for a message analysed without --ip/--helo/--mail-from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeGuess {
    pub ip: Option<IpAddr>,
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    /// Which header the facts came from, to say so in the report.
    pub source: String,
}

/// The newest Received field that names a client address is the one the
/// receiving side added; Return-Path holds MAIL FROM (RFC 5321 §4.4).
pub fn envelope_from_headers(raw: &[u8]) -> Option<EnvelopeGuess> {
    let msg = MessageParser::default().parse_headers(raw)?;
    envelope_of(&msg, &hops_of(&msg))
}

/// The envelope of a message already parsed, with its hops.
pub fn envelope_of(msg: &mail_parser::Message<'_>, all: &[Hop]) -> Option<EnvelopeGuess> {
    let mail_from = msg
        .return_address()
        .map(|a| a.trim_matches(['<', '>']).to_string());
    let newest = all.iter().rev().find(|h| h.from_ip.is_some())?;
    Some(EnvelopeGuess {
        ip: newest.from_ip,
        helo: newest.helo.clone().or(newest.from.clone()),
        mail_from,
        source: format!(
            "Received header {} of {} (added by {})",
            all.len() - newest.index + 1,
            all.len(),
            newest
                .by
                .clone()
                .unwrap_or_else(|| "an unnamed server".into())
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Return-Path: <bounce@news.example.com>\r\n\
Received: from mail.news.example.com (mail.news.example.com [198.51.100.7])\r\n\
\tby mx.example.org (Postfix) with ESMTPS id 4AbC\r\n\
\tfor <bob@example.org>; Mon, 23 Nov 2026 10:00:09 +0000 (UTC)\r\n\
Received: from app01.internal ([10.0.0.5])\r\n\
\tby mail.news.example.com with ESMTP id x1; Mon, 23 Nov 2026 10:00:04 +0000\r\n\
Received: by app01.internal with HTTP; Mon, 23 Nov 2026 10:00:00 +0000\r\n\
From: News <news@news.example.com>\r\n\
Subject: hi\r\n\r\nbody\r\n";

    #[test]
    fn hops_in_travel_order_with_delays_and_tls() {
        let h = hops(MSG);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].by.as_deref(), Some("app01.internal"));
        assert_eq!(h[1].from_ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(h[1].delay, Some(4));
        assert_eq!(h[2].by.as_deref(), Some("mx.example.org"));
        assert_eq!(h[2].delay, Some(5));
        assert_eq!(h[2].tls.as_deref(), Some("ESMTPS"));
        assert_eq!(h[1].tls, None);
    }

    #[test]
    fn the_envelope_comes_from_the_receivers_own_header() {
        let e = envelope_from_headers(MSG).unwrap();
        assert_eq!(e.ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(e.helo.as_deref(), Some("mail.news.example.com"));
        assert_eq!(e.mail_from.as_deref(), Some("bounce@news.example.com"));
        assert_eq!(e.source, "Received header 1 of 3 (added by mx.example.org)");
        assert!(envelope_from_headers(b"From: a@b.example\r\n\r\nx").is_none());
    }
}
