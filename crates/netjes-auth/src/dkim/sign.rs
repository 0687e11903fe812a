//! Signing: the header fields as mail-auth canonicalizes them, over a body
//! hash that was computed beforehand, so that a daemon can hash the body
//! as it streams past ([`crate::message::BodyHashes`]) and never hold it.

use super::keys::PrivateKey;
use super::signer::MessageSigner;
use crate::message::{self, BodyHash};
use mail_auth::common::crypto::{HashAlgorithm, HashContext, HashImpl, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderStream, HeaderWriter, Writable, Writer};
use mail_auth::dkim::canonicalize::{BodyHasher, CanonicalHeaders};
use mail_auth::dkim::{Canonicalization, Signature};

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

/// The headers of the list that the message has (`present`, in order),
/// with the over-signed ones repeated once more than they occur.
pub(crate) fn headers_to_sign(present: &[String], wanted: &[String]) -> Vec<String> {
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

/// The names of mail-auth's parsed header fields, in order.
pub(crate) fn field_names(fields: &[(&[u8], &[u8])]) -> Vec<String> {
    fields
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).trim().to_string())
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
    let (headers, body) = message::split_at_body(message);
    let mut hasher = BodyHasher::new(
        <Sha256 as HashImpl>::hasher(),
        opts.body_canonicalization,
        0,
    );
    hasher.write(body);
    let bh = hasher.finish().0.complete();
    sign_prehashed(headers, bh.as_ref(), signer, opts)
}

/// Signs a header block whose body was hashed as it streamed past: the
/// hash for the body canonicalization of `opts` (sha256, the hash of both
/// rsa-sha256 and ed25519-sha256) is taken from `hashes`.
pub fn sign_with_hashes(
    header_block: &[u8],
    hashes: &[BodyHash],
    signer: &MessageSigner,
    opts: &SignOptions,
) -> Result<String, SignError> {
    let bh = hashes
        .iter()
        .find(|(c, h, l, _)| {
            *c == opts.body_canonicalization && *h == HashAlgorithm::Sha256 && *l == 0
        })
        .ok_or_else(|| SignError::Failed("the body hash was not computed".into()))?;
    sign_prehashed(header_block, &bh.3, signer, opts)
}

/// What the signature signs (RFC 6376 §3.7): the canonical header fields,
/// then the DKIM-Signature field itself with an empty b=.
struct Signable<'a> {
    headers: CanonicalHeaders<'a>,
    signature: &'a Signature,
}

impl Writable for Signable<'_> {
    fn write(self, writer: &mut impl Writer) {
        self.headers.write(writer);
        self.signature.write(writer, false);
    }
}

/// The header fields as mail-auth's parser splits them (name, and raw value
/// through its CRLF), for its canonicalization.
struct Fields<'x>(std::vec::IntoIter<(&'x [u8], &'x [u8])>);

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        self.0.next()
    }
    fn body(&mut self) -> &'x [u8] {
        b""
    }
}

/// The one signing path: mail-auth's canonicalization and signature
/// format, with the body hash given.
fn sign_prehashed(
    header_block: &[u8],
    body_hash: &[u8],
    signer: &MessageSigner,
    opts: &SignOptions,
) -> Result<String, SignError> {
    let wanted: Vec<String> = opts.headers.clone().unwrap_or_else(|| {
        DEFAULT_SIGNED_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    // One parse of the fields, as mail-auth splits them: for the names to
    // sign and for its canonicalization.
    let fields = mail_auth::AuthenticatedMessage::parse_with_opts(header_block, None, false)
        .map(|m| m.headers)
        .ok_or(SignError::NoHeaders)?;
    let headers = headers_to_sign(&field_names(&fields), &wanted);
    if headers.is_empty() {
        return Err(SignError::NoHeaders);
    }
    let template = Signature {
        v: 1,
        a: signer.algorithm(),
        d: opts.domain.clone(),
        s: opts.selector.clone(),
        h: headers,
        ch: opts.header_canonicalization,
        cb: opts.body_canonicalization,
        ..Default::default()
    };
    let (_, canonical_headers, signed_headers, _) =
        template.canonicalize(Fields(fields.into_iter()));
    let mut signature = template.clone();
    signature.bh = body_hash.to_vec();
    signature.t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    signature.h = signed_headers;
    signature.b = signer
        .sign(Signable {
            headers: canonical_headers,
            signature: &signature,
        })
        .map_err(|e| SignError::Failed(e.to_string()))?;
    Ok(signature.to_header())
}
