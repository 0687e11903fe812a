//! DMARC policy records.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Alignment, Dmarc, Psd};
use serde::Serialize;

/// Ordered from the mildest: `max` is the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    fn from_ma(p: mail_auth::dmarc::Policy) -> Option<Policy> {
        match p {
            mail_auth::dmarc::Policy::None => Some(Policy::None),
            mail_auth::dmarc::Policy::Quarantine => Some(Policy::Quarantine),
            mail_auth::dmarc::Policy::Reject => Some(Policy::Reject),
            mail_auth::dmarc::Policy::Unspecified => None,
        }
    }

    /// One level less strict, for t=y (RFC 9989 §4.7).
    pub fn relaxed(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

/// A DMARC record as found at one name.
#[derive(Debug, Clone, Serialize)]
pub struct DmarcRecord {
    pub text: String,
    /// p=; `None` when absent (only acceptable with rua=, then read as none).
    pub p: Option<Policy>,
    pub sp: Option<Policy>,
    pub np: Option<Policy>,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    /// psd=y / psd=n / absent.
    pub psd: Option<bool>,
    pub testing: bool,
    pub rua: Vec<String>,
    pub ruf: Vec<String>,
    /// fo= as written (failure reporting options), for aggregate reports'
    /// policy_published.
    pub fo: Option<String>,
    /// Tags that RFC 9989 removed (pct, rf, ri), with their values.
    pub obsolete: Vec<String>,
    /// Tags that no DMARC version defines.
    pub unknown: Vec<String>,
}

const KNOWN: &[&str] = &[
    "v", "p", "sp", "np", "adkim", "aspf", "psd", "t", "rua", "ruf", "fo",
];
const REMOVED: &[&str] = &["pct", "rf", "ri"];

pub fn is_dmarc_record(txt: &[u8]) -> bool {
    let t = String::from_utf8_lossy(txt);
    let t = t.trim_start();
    t.len() >= 8
        && t[..2].eq_ignore_ascii_case("v=")
        && t[2..]
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("DMARC1")
}

/// Parses a record; the error says what is wrong in words.
pub fn parse_dmarc_record(txt: &[u8]) -> Result<DmarcRecord, String> {
    let text = String::from_utf8_lossy(txt).into_owned();
    let d: Dmarc = Dmarc::parse(txt).map_err(|e| format!("invalid DMARC record: {e}"))?;
    let mut obsolete = Vec::new();
    let mut unknown = Vec::new();
    for tag in text.split(';') {
        let Some((k, v)) = tag.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        if REMOVED.contains(&k.as_str()) {
            obsolete.push(format!("{k}={}", v.trim()));
        } else if !KNOWN.contains(&k.as_str()) && !k.is_empty() {
            unknown.push(k);
        }
    }
    let value = |name: &str| {
        text.split(';').find_map(|t| {
            t.split_once('=')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let present = |name: &str| value(name).is_some();
    Ok(DmarcRecord {
        p: Policy::from_ma(d.p),
        sp: if present("sp") {
            Policy::from_ma(d.sp)
        } else {
            None
        },
        np: if present("np") {
            Policy::from_ma(d.np)
        } else {
            None
        },
        adkim_strict: d.adkim == Alignment::Strict,
        aspf_strict: d.aspf == Alignment::Strict,
        psd: match d.psd {
            Psd::Yes => Some(true),
            Psd::No => Some(false),
            Psd::Default => None,
        },
        testing: d.t,
        rua: d.rua.iter().map(|u| u.uri.clone()).collect(),
        ruf: d.ruf.iter().map(|u| u.uri.clone()).collect(),
        fo: value("fo").filter(|v| !v.is_empty()),
        obsolete,
        unknown,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tags_and_removed_ones() {
        let r = parse_dmarc_record(b"v=DMARC1; p=reject; sp=quarantine; pct=50; rf=afrf; ri=3600; adkim=s; rua=mailto:d@example.com; foo=bar").unwrap();
        assert_eq!(r.p, Some(Policy::Reject));
        assert_eq!(r.sp, Some(Policy::Quarantine));
        assert_eq!(r.np, None);
        assert!(r.adkim_strict && !r.aspf_strict);
        assert_eq!(r.obsolete, vec!["pct=50", "rf=afrf", "ri=3600"]);
        assert_eq!(r.unknown, vec!["foo"]);
        // mail-auth keeps the address of a mailto: URI.
        assert_eq!(r.rua, vec!["d@example.com"]);
        assert_eq!(r.fo, None);
        assert_eq!(parse_dmarc_record(b"v=DMARC1; p=none; fo = 1:d").unwrap().fo.as_deref(), Some("1:d"));
        assert!(parse_dmarc_record(b"v=spf1 -all").is_err());
        assert!(is_dmarc_record(b"v=DMARC1; p=none") && !is_dmarc_record(b"v=spf1"));
    }
}
