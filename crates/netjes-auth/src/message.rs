//! Reading a message with limits, before any protocol looks at it.

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
    AuthenticatedMessage::parse_with_opts(raw, None, false)
        .ok_or(MessageError::NotAMessage("no header block could be read"))
}

/// The domains of the RFC 5322 From addresses, lower-cased.
pub fn from_domains(msg: &AuthenticatedMessage<'_>) -> Vec<String> {
    let mut v: Vec<String> = msg
        .from
        .iter()
        .filter_map(|a| {
            a.rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        })
        .collect();
    v.dedup();
    v
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
}
