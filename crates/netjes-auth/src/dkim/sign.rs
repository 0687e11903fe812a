//! Signing with mail-auth's DkimSigner.

use super::keys::PrivateKey;
use super::signer::MessageSigner;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};

/// The headers signed by default, when present. From is signed once more
/// than it occurs ("over-signed", RFC 6376 §8.15) so that no From can be
/// added without breaking the signature; so are Subject and the
/// one-click unsubscribe headers that bulk-sender rules want signed.
pub const DEFAULT_SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Sender",
];
const OVERSIGNED: &[&str] = &[
    "From",
    "Subject",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

#[derive(Debug, Clone)]
pub struct SignOptions {
    pub domain: String,
    pub selector: String,
    pub header_canonicalization: Canonicalization,
    pub body_canonicalization: Canonicalization,
    /// Headers to sign; `None` for [`DEFAULT_SIGNED_HEADERS`].
    pub headers: Option<Vec<String>>,
}

impl SignOptions {
    pub fn new(domain: &str, selector: &str) -> Self {
        SignOptions {
            domain: domain.to_string(),
            selector: selector.to_string(),
            header_canonicalization: Canonicalization::Relaxed,
            body_canonicalization: Canonicalization::Relaxed,
            headers: None,
        }
    }
}

/// Parses "relaxed/simple" and friends (RFC 6376 §3.5 c=).
pub fn parse_canonicalization(s: &str) -> Option<(Canonicalization, Canonicalization)> {
    let one = |x: &str| match x.trim() {
        "relaxed" => Some(Canonicalization::Relaxed),
        "simple" => Some(Canonicalization::Simple),
        _ => None,
    };
    match s.split_once('/') {
        Some((h, b)) => Some((one(h)?, one(b)?)),
        // §3.5: a lone value names the header algorithm; the body's is simple.
        None => Some((one(s)?, Canonicalization::Simple)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the key cannot sign: {0}")]
    Key(String),
    #[error("the message has none of the headers to sign (is it a message?)")]
    NoHeaders,
    #[error("signing failed: {0}")]
    Failed(String),
}

/// The headers of the list that the message has, with the over-signed ones
/// repeated once more than they occur.
fn headers_to_sign(message: &[u8], wanted: &[String]) -> Vec<String> {
    let present = header_names(message);
    let mut out = Vec::new();
    for w in wanted {
        let n = present.iter().filter(|p| p.eq_ignore_ascii_case(w)).count();
        let extra = usize::from(OVERSIGNED.iter().any(|o| o.eq_ignore_ascii_case(w)) && n > 0);
        for _ in 0..n + extra {
            out.push(w.clone());
        }
    }
    out
}

/// The names of the header fields, in order.
pub fn header_names(message: &[u8]) -> Vec<String> {
    crate::message::header_fields(message)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Returns the DKIM-Signature header field (with its CRLF) to prepend.
pub fn sign_message(
    message: &[u8],
    key: &PrivateKey,
    opts: &SignOptions,
) -> Result<String, SignError> {
    let signer = MessageSigner::new(key).map_err(SignError::Key)?;
    sign_with(message, &signer, opts)
}

/// Signs with a key parsed once ([`MessageSigner`]), for daemons and benchmarks.
pub fn sign_with(
    message: &[u8],
    signer: &MessageSigner,
    opts: &SignOptions,
) -> Result<String, SignError> {
    let wanted: Vec<String> = opts.headers.clone().unwrap_or_else(|| {
        DEFAULT_SIGNED_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    let headers = headers_to_sign(message, &wanted);
    if headers.is_empty() {
        return Err(SignError::NoHeaders);
    }
    let sig = DkimSigner::from_key(signer)
        .domain(&opts.domain)
        .selector(&opts.selector)
        .headers(headers)
        .header_canonicalization(opts.header_canonicalization)
        .body_canonicalization(opts.body_canonicalization)
        .sign(message);
    match sig {
        Ok(s) => Ok(s.to_header()),
        Err(mail_auth::Error::NoHeadersFound) => Err(SignError::NoHeaders),
        Err(e) => Err(SignError::Failed(e.to_string())),
    }
}
