//! Sealing (RFC 8617 §5.1): a forwarder adds an ARC set that records the
//! authentication results it saw and vouches for the chain so far.

use super::verify::{report_of, verify_chain};
use super::ArcResult;
use crate::dkim::signer::MessageSigner;
use crate::dkim::PrivateKey;
use crate::glue::Prefetched;
use crate::message;
use mail_auth::arc::ArcSealer;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::AuthenticationResults;
use netjes_dns::Resolver;

#[derive(Debug, Clone)]
pub struct SealOptions {
    pub domain: String,
    pub selector: String,
    /// Our authserv-id: the Authentication-Results fields with this id are
    /// copied into ARC-Authentication-Results.
    pub authserv_id: String,
    /// Headers for the ARC-Message-Signature; `None` for the DKIM defaults.
    pub headers: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Sealed {
    /// ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results, each
    /// ending in CRLF, to prepend to the message.
    pub headers: String,
    /// The cv= of the new seal.
    pub cv: ArcResult,
    pub instance: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Message(#[from] message::MessageError),
    #[error("the chain has failed (cv=fail) and must not be sealed again (RFC 8617 §5.1.2)")]
    ChainFailed,
    #[error("the chain is already 50 sets long (RFC 8617 §4.2.1)")]
    TooLong,
    #[error("sealing failed: {0}")]
    Failed(String),
}

/// The results of our own Authentication-Results fields, one line, as the
/// ARC test suite's consolidation asks: every result in order, with the
/// authserv-id once at the front.
pub fn consolidate_results(raw: &[u8], authserv_id: &str) -> String {
    let mut results = Vec::new();
    let fields: Vec<String> = message::header_fields(raw)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Authentication-Results"))
        .map(|(_, v)| String::from_utf8_lossy(&v).trim().to_string())
        .collect();
    for f in fields {
        let mut parts = f
            .split(';')
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "));
        let id = parts.next().unwrap_or_default();
        let id = id.split_whitespace().next().unwrap_or("");
        if !id.eq_ignore_ascii_case(authserv_id) {
            continue;
        }
        results.extend(parts.filter(|p| !p.is_empty() && p != "none"));
    }
    let mut out = authserv_id.to_string();
    for r in &results {
        out.push_str("; ");
        out.push_str(r);
    }
    if results.is_empty() {
        out.push_str("; none");
    }
    out
}

/// Validates the existing chain and returns the new ARC set.
pub async fn seal_message(
    dns: &dyn Resolver,
    raw: &[u8],
    key: &PrivateKey,
    opts: &SealOptions,
) -> Result<Sealed, SealError> {
    seal_inner(dns, raw, key, opts, None).await
}

/// Seals a message that this forwarder changed after it validated the chain
/// (a mailing list that tags the Subject, say): `validated` is the chain
/// status found on arrival, and becomes the new seal's cv= (RFC 8617 §5.1.1).
pub async fn seal_modified(
    dns: &dyn Resolver,
    raw: &[u8],
    key: &PrivateKey,
    opts: &SealOptions,
    validated: ArcResult,
) -> Result<Sealed, SealError> {
    seal_inner(dns, raw, key, opts, Some(validated)).await
}

async fn seal_inner(
    dns: &dyn Resolver,
    raw: &[u8],
    key: &PrivateKey,
    opts: &SealOptions,
    validated: Option<ArcResult>,
) -> Result<Sealed, SealError> {
    let msg = message::parse(raw)?;
    seal_parsed(dns, &msg, key, opts, validated).await
}

/// Seals a message that is already parsed: by [`message::parse`], or by
/// [`message::parse_prehashed`] from a body hashed as it streamed past.
/// `validated` as for [`seal_modified`]; `None` validates the chain here.
pub async fn seal_parsed(
    dns: &dyn Resolver,
    msg: &mail_auth::AuthenticatedMessage<'_>,
    key: &PrivateKey,
    opts: &SealOptions,
    validated: Option<ArcResult>,
) -> Result<Sealed, SealError> {
    let raw = msg.raw_message;
    let cache = Prefetched::default();
    let mut chain = verify_chain(dns, msg, &cache).await;
    let mut report = report_of(msg, &chain);
    if let Some(v) = validated {
        let r = match v {
            ArcResult::Pass => mail_auth::DkimResult::Pass,
            ArcResult::None => mail_auth::DkimResult::None,
            _ => mail_auth::DkimResult::Fail(mail_auth::Error::Arc(
                mail_auth::arc::ArcError::BrokenChain,
            )),
        };
        chain = chain.with_result(r);
        report.result = v;
    }
    if !chain.can_be_sealed() {
        return Err(SealError::ChainFailed);
    }
    if report.instances >= 50 {
        return Err(SealError::TooLong);
    }
    // mail-auth writes the authserv-id string as it is; the whole
    // consolidated value goes there, on one line, so that it reads the same
    // under relaxed canonicalization as when it was sealed.
    let consolidated = consolidate_results(raw, &opts.authserv_id);
    let results = AuthenticationResults::new(&consolidated);
    let headers: Vec<String> = opts.headers.clone().unwrap_or_else(|| {
        let present = crate::dkim::sign::field_names(&msg.headers);
        crate::dkim::DEFAULT_SIGNED_HEADERS
            .iter()
            .filter(|h| present.iter().any(|p| p.eq_ignore_ascii_case(h)))
            .map(|h| h.to_string())
            .collect()
    });
    let signer = MessageSigner::new(key).map_err(SealError::Failed)?;
    let set = ArcSealer::from_key(&signer)
        .domain(&opts.domain)
        .selector(&opts.selector)
        .headers(headers)
        .seal(msg, &results, &chain)
        .map_err(|e| SealError::Failed(e.to_string()))?;
    let cv = match report.result {
        ArcResult::Pass => ArcResult::Pass,
        ArcResult::None if report.instances == 0 => ArcResult::None,
        _ => ArcResult::Fail,
    };
    Ok(Sealed {
        headers: set.to_header(),
        cv,
        instance: report.instances + 1,
    })
}
