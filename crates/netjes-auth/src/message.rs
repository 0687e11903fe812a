//! Reading a message with limits, before any protocol looks at it.

use mail_auth::common::crypto::{HashAlgorithm, HashContext, HashImpl, Sha1, Sha256};
use mail_auth::dkim::canonicalize::BodyHasher;
use mail_auth::dkim::Canonicalization;
use mail_auth::AuthenticatedMessage;

/// At most this many header fields are read; more is a sign of abuse.
pub const MAX_HEADERS: usize = 1000;
/// At most this many octets of header block.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// At most this many octets of message in all.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// At most this many DKIM signatures are verified per message.
pub const MAX_DKIM_SIGNATURES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {0} octets, over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("the message has over {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("the header block is over {MAX_HEADER_BYTES} octets")]
    HeaderTooLarge,
    #[error("this is not an RFC 5322 message: {0}")]
    NotAMessage(&'static str),
}

/// Checks the limits and that there is a header block at all.
pub fn check_limits(raw: &[u8]) -> Result<(), MessageError> {
    if raw.is_empty() {
        return Err(MessageError::Empty);
    }
    if raw.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge(raw.len()));
    }
    let mut count = 0;
    let mut pos = 0;
    let mut saw_field = false;
    for line in raw.split(|b| *b == b'\n') {
        pos += line.len() + 1;
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if l.is_empty() {
            break;
        }
        if pos > MAX_HEADER_BYTES {
            return Err(MessageError::HeaderTooLarge);
        }
        if l[0] != b' ' && l[0] != b'\t' {
            if !l.contains(&b':') {
                if !saw_field {
                    return Err(MessageError::NotAMessage(
                        "the first line is not a header field",
                    ));
                }
                continue;
            }
            saw_field = true;
            count += 1;
            if count > MAX_HEADERS {
                return Err(MessageError::TooManyHeaders);
            }
        }
    }
    if !saw_field {
        return Err(MessageError::NotAMessage("there are no header fields"));
    }
    Ok(())
}

/// The header fields as (name, raw value) pairs, unfolded (RFC 5322
/// §2.2.3: a continuation line is joined without its line break), in order.
/// The one reader of raw header fields for every module that needs them.
pub fn header_fields(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in raw.split(|b| *b == b'\n').take(MAX_HEADERS * 4) {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.extend_from_slice(l);
            }
            continue;
        }
        if let Some(c) = l.iter().position(|b| *b == b':') {
            out.push((
                String::from_utf8_lossy(&l[..c]).trim().to_string(),
                l[c + 1..].to_vec(),
            ));
        }
    }
    out
}

/// Parses for authentication, within the limits.
pub fn parse(raw: &[u8]) -> Result<AuthenticatedMessage<'_>, MessageError> {
    check_limits(raw)?;
    // Not strict: mail-auth's strict mode drops signatures with l=, which
    // RFC 6376 §3.5 allows. netjes verifies them and warns (dkim::verify).
    parse_unchecked(raw).ok_or(MessageError::NotAMessage("no header block could be read"))
}

/// mail-auth's parse (not strict) with netjes's readings applied: the one
/// parse that verification, sealing and [`BodyHashes`] share, so that the
/// hashes computed are the ones looked up.
fn parse_unchecked(raw: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    let mut msg = AuthenticatedMessage::parse_with_opts(raw, None, false)?;
    arc_canonicalization_default(&mut msg);
    Some(msg)
}

/// An ARC-Message-Signature without c= is read as relaxed/relaxed, as
/// RFC 8617's reference implementation (dkimpy, with which the ValiMail
/// suite was made: ams_fields_c_na) reads it; mail-auth reads DKIM's
/// simple/simple, and the signature fails. The body hash it then needs is
/// added (computed here from the body, or supplied by `parse_prehashed`).
fn arc_canonicalization_default(msg: &mut AuthenticatedMessage<'_>) {
    let body = msg
        .raw_message
        .get(msg.body_offset as usize..)
        .unwrap_or_default();
    for h in &mut msg.ams_headers {
        if crate::dkim::precheck::tag_value(h.value, "c").is_some() {
            continue;
        }
        h.header.ch = Canonicalization::Relaxed;
        h.header.cb = Canonicalization::Relaxed;
        let ha = HashAlgorithm::from(h.header.a);
        let l = h.header.l;
        let have = msg
            .body_hashes
            .iter()
            .any(|(c, a, n, _)| *c == Canonicalization::Relaxed && *a == ha && *n == l);
        if !have {
            let digest = ha.hash(Canonicalization::Relaxed.canonical_body(body, l));
            msg.body_hashes
                .push((Canonicalization::Relaxed, ha, l, digest.as_ref().to_vec()));
        }
    }
}

/// One body hash as mail-auth keeps it: canonicalization, hash, the l=
/// length (0 for the whole body) and the digest.
pub type BodyHash = (Canonicalization, HashAlgorithm, u64, Vec<u8>);

enum Hasher {
    Sha1(BodyHasher<<Sha1 as HashImpl>::Context>),
    Sha256(BodyHasher<<Sha256 as HashImpl>::Context>),
}

/// The body hashes a message needs, computed as the body streams past, so
/// that a daemon never holds a body in memory (a milter gets it in 64 KB
/// chunks). Which hashes: one per distinct (c=, a=, l=) of the DKIM-Signature
/// and ARC-Message-Signature fields of the header block, and relaxed/sha256
/// always, which is what signing and ARC sealing use.
pub struct BodyHashes {
    hashers: Vec<(Canonicalization, HashAlgorithm, u64, Hasher)>,
    octets: u64,
}

impl std::fmt::Debug for BodyHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyHashes")
            .field("hashes", &self.hashers.len())
            .field("octets", &self.octets)
            .finish()
    }
}

impl BodyHashes {
    /// The hashes that the signatures in `header_block` (the header fields,
    /// with or without the blank line) will ask for.
    pub fn for_headers(header_block: &[u8]) -> BodyHashes {
        let mut wanted: Vec<(Canonicalization, HashAlgorithm, u64)> =
            vec![(Canonicalization::Relaxed, HashAlgorithm::Sha256, 0)];
        // The same parse as `parse_prehashed` (not strict), so the set is
        // exactly the one the verifiers will look up.
        let mut block = header_block.to_vec();
        if !block.ends_with(b"\r\n\r\n") {
            block.extend_from_slice(b"\r\n");
        }
        if check_limits(&block).is_ok() {
            if let Some(m) = parse_unchecked(&block) {
                for (c, h, l, _) in &m.body_hashes {
                    if !wanted.contains(&(*c, *h, *l)) {
                        wanted.push((*c, *h, *l));
                    }
                }
            }
        }
        BodyHashes {
            hashers: wanted
                .into_iter()
                .map(|(c, h, l)| {
                    let hasher = match h {
                        HashAlgorithm::Sha1 => {
                            Hasher::Sha1(BodyHasher::new(<Sha1 as HashImpl>::hasher(), c, l))
                        }
                        HashAlgorithm::Sha256 => {
                            Hasher::Sha256(BodyHasher::new(<Sha256 as HashImpl>::hasher(), c, l))
                        }
                    };
                    (c, h, l, hasher)
                })
                .collect(),
            octets: 0,
        }
    }

    /// The next piece of the body, with CRLF line ends.
    pub fn write(&mut self, chunk: &[u8]) {
        self.octets += chunk.len() as u64;
        for (_, _, _, h) in &mut self.hashers {
            match h {
                Hasher::Sha1(b) => b.write(chunk),
                Hasher::Sha256(b) => b.write(chunk),
            }
        }
    }

    /// The octets of body seen.
    pub fn octets(&self) -> u64 {
        self.octets
    }

    pub fn finish(self) -> Vec<BodyHash> {
        self.hashers
            .into_iter()
            .map(|(c, a, l, h)| {
                let digest = match h {
                    Hasher::Sha1(b) => b.finish().0.complete(),
                    Hasher::Sha256(b) => b.finish().0.complete(),
                };
                (c, a, l, digest.as_ref().to_vec())
            })
            .collect()
    }
}

/// Parses a header block (ending in the blank line) whose body was hashed
/// as it streamed past ([`BodyHashes`]): the result verifies, and seals, as
/// [`parse`] of the whole message would.
pub fn parse_prehashed<'x>(
    header_block: &'x [u8],
    hashes: &[BodyHash],
) -> Result<AuthenticatedMessage<'x>, MessageError> {
    if !header_block.ends_with(b"\r\n\r\n") {
        return Err(MessageError::NotAMessage(
            "the header block does not end in a blank line",
        ));
    }
    let mut msg = parse(header_block)?;
    for (c, h, l, digest) in &mut msg.body_hashes {
        match hashes
            .iter()
            .find(|(c2, h2, l2, _)| c2 == c && h2 == h && l2 == l)
        {
            Some((_, _, _, d)) => *digest = d.clone(),
            // Never left as the hash of an empty body: that would fail a
            // good signature.
            None => return Err(MessageError::NotAMessage("a body hash was not computed")),
        }
    }
    // The others too: a sealer looks up relaxed/sha256 for its own AMS.
    for entry in hashes {
        if !msg
            .body_hashes
            .iter()
            .any(|(c, h, l, _)| (c, h, l) == (&entry.0, &entry.1, &entry.2))
        {
            msg.body_hashes.push(entry.clone());
        }
    }
    Ok(msg)
}

/// Splits a message at its blank line: the header block (with the blank
/// line) and the body.
pub fn split_at_body(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(raw.len());
        let line = &raw[pos..end];
        if line == b"\r\n" || line == b"\n" {
            return (&raw[..end], &raw[end..]);
        }
        pos = end;
    }
    (raw, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(check_limits(b""), Err(MessageError::Empty));
        assert!(check_limits(b"\x00\x01binary").is_err());
        assert!(check_limits(b"From: a@b.example\r\n\r\nbody").is_ok());
        let many: Vec<u8> = (0..=MAX_HEADERS)
            .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
            .collect();
        assert_eq!(check_limits(&many), Err(MessageError::TooManyHeaders));
    }

    /// Hashed in pieces of every size as the body streams past, each hash
    /// equals mail-auth's over the whole message: simple and relaxed, sha1
    /// and sha256, with l=.
    #[test]
    fn streamed_body_hashes_equal_the_whole_message_ones() {
        let headers = "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=a.example; s=s; h=from; bh=AAAA; b=AAAA\r\nDKIM-Signature: v=1; a=rsa-sha1; c=relaxed/relaxed; d=a.example; s=s; l=7; h=from; bh=AAAA; b=AAAA\r\nFrom: a@a.example\r\n\r\n";
        let body = "Hello  \t world \r\n\r\n  two\r\n\r\n\r\n";
        let whole = format!("{headers}{body}");
        let expect = parse(whole.as_bytes()).unwrap().body_hashes;
        assert_eq!(expect.len(), 2);
        for size in [1, 2, 3, 5, 64] {
            let mut h = BodyHashes::for_headers(headers.as_bytes());
            for piece in body.as_bytes().chunks(size) {
                h.write(piece);
            }
            assert_eq!(h.octets(), body.len() as u64);
            let got = h.finish();
            assert_eq!(got.len(), 3, "relaxed/sha256 besides the two");
            let msg = parse_prehashed(headers.as_bytes(), &got).unwrap();
            for e in &expect {
                assert!(msg.body_hashes.contains(e), "size {size}: {e:?}");
            }
        }
        assert!(parse_prehashed(b"From: a@a.example\r\n", &[]).is_err());
        assert!(
            parse_prehashed(headers.as_bytes(), &[]).is_err(),
            "a hash missing is an error"
        );
        assert_eq!(
            split_at_body(whole.as_bytes()),
            (headers.as_bytes(), body.as_bytes())
        );
    }
}
