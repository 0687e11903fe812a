//! SPF (RFC 7208).
//!
//! Records are parsed by mail-auth ([`record`]); evaluation ([`eval`]) is
//! ours, because mail-auth's `check_host` does not count void lookups
//! (§4.6.4), takes the first of several SPF records instead of failing with
//! permerror (§4.5), validates no `%{p}` name before using it (§7.3) and does
//! not say which mechanism matched or how many lookups were spent, which is
//! what a postmaster asks first.

pub mod eval;
pub mod header;
pub mod record;

pub use eval::{check_host, evaluate, SpfRequest};
pub use header::received_spf;
pub use record::{parse_record, SpfRecord, SpfSyntaxError};

use serde::Serialize;
use std::fmt;

/// The limit on DNS-querying terms (include, a, mx, ptr, exists, redirect), §4.6.4.
pub const MAX_DNS_LOOKUPS: u32 = 10;
/// The limit on lookups that return NXDOMAIN or no records, §4.6.4.
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// The limit on MX names and PTR names looked at per mechanism, §4.6.4.
pub const MAX_NAMES_PER_MECHANISM: usize = 10;

/// The results of §2.6, with their RFC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    Pass,
    Fail,
    Softfail,
    Neutral,
    None,
    Temperror,
    Permerror,
}

impl SpfResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::Softfail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::Temperror => "temperror",
            SpfResult::Permerror => "permerror",
        }
    }

    pub fn parse(s: &str) -> Option<SpfResult> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pass" => SpfResult::Pass,
            "fail" => SpfResult::Fail,
            "softfail" => SpfResult::Softfail,
            "neutral" => SpfResult::Neutral,
            "none" => SpfResult::None,
            "temperror" => SpfResult::Temperror,
            "permerror" => SpfResult::Permerror,
            _ => return None,
        })
    }

    /// mail-auth's result type, for its DMARC and Authentication-Results code.
    pub fn to_mail_auth(self) -> mail_auth::SpfResult {
        match self {
            SpfResult::Pass => mail_auth::SpfResult::Pass,
            SpfResult::Fail => mail_auth::SpfResult::Fail,
            SpfResult::Softfail => mail_auth::SpfResult::SoftFail,
            SpfResult::Neutral => mail_auth::SpfResult::Neutral,
            SpfResult::None => mail_auth::SpfResult::None,
            SpfResult::Temperror => mail_auth::SpfResult::TempError,
            SpfResult::Permerror => mail_auth::SpfResult::PermError,
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which identity was checked (RFC 7208 §2.3, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    Helo,
    Mailfrom,
}

/// What `check_host` found, with the facts a postmaster needs to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfOutcome {
    pub result: SpfResult,
    pub identity: Identity,
    /// The domain whose policy was evaluated (the MAIL FROM or HELO domain).
    pub domain: String,
    /// The `<sender>` as evaluated (postmaster@HELO for the null sender).
    pub sender: String,
    /// The top-level SPF record, as published.
    pub record: Option<String>,
    /// The mechanism that decided the result, as written in its record.
    pub mechanism: Option<String>,
    /// The domain whose record holds that mechanism (differs inside includes and redirects).
    pub mechanism_domain: Option<String>,
    /// The explanation from `exp=` on fail (§6.2).
    pub explanation: Option<String>,
    /// DNS-querying terms counted against the limit of 10.
    pub dns_lookups: u32,
    /// Lookups with no answer counted against the limit of 2.
    pub void_lookups: u32,
    /// Why the result is permerror or temperror, or what else went wrong.
    pub problem: Option<String>,
}

impl SpfOutcome {
    /// An outcome before evaluation: result none, nothing counted yet.
    pub fn new(identity: Identity, domain: &str, sender: &str) -> Self {
        SpfOutcome {
            result: SpfResult::None,
            identity,
            domain: domain.to_string(),
            sender: sender.to_string(),
            record: None,
            mechanism: None,
            mechanism_domain: None,
            explanation: None,
            dns_lookups: 0,
            void_lookups: 0,
            problem: None,
        }
    }
}
