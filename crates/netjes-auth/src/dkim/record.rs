//! DKIM key records (RFC 6376 §3.6.1), read for what a postmaster needs to
//! know about them: algorithm, key size, testing and revocation, and the
//! damage that copy-and-paste does to them.

use super::keys::KeyAlgorithm;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRecord {
    pub algorithm: KeyAlgorithm,
    /// The decoded public key (SubjectPublicKeyInfo or PKCS#1 for RSA, raw for Ed25519).
    pub public_key: Vec<u8>,
    pub bits: usize,
    /// t=y: the domain is testing DKIM (§3.6.1); verifiers may ignore failures.
    pub testing: bool,
    /// t=s: the i= domain must equal d=.
    pub strict: bool,
    /// h= hash algorithms, when restricted.
    pub hashes: Option<Vec<String>>,
    /// s= service types, when restricted ("email", "*").
    pub services: Option<Vec<String>>,
    /// Problems that do not stop verification but that a postmaster should fix.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRecordError {
    #[error("the key is revoked (empty p=)")]
    Revoked,
    #[error("malformed key record: {0}")]
    Malformed(String),
    #[error("unsupported key type k={0}")]
    UnknownKeyType(String),
}

/// The TXT records at a selector that are meant as DKIM keys (they carry a
/// p= tag), in order; a selector can also hold unrelated TXT records.
pub fn key_records(txts: &[Vec<u8>]) -> Vec<&Vec<u8>> {
    txts.iter()
        .filter(|t| String::from_utf8_lossy(t).contains("p="))
        .collect()
}

/// Parses the tag list of a key record.
pub fn parse_key_record(txt: &[u8]) -> Result<KeyRecord, KeyRecordError> {
    let text = String::from_utf8_lossy(txt);
    let mut k = None;
    let mut p = None;
    let mut t = String::new();
    let mut h = None;
    let mut services = None;
    let mut warnings = Vec::new();
    for (i, tag) in text.split(';').enumerate() {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        let Some((name, value)) = tag.split_once('=') else {
            return Err(KeyRecordError::Malformed(format!(
                "{tag:?} is not a tag=value pair"
            )));
        };
        let name = name.trim();
        let value = value.trim();
        match name {
            "v" if i != 0 => {
                return Err(KeyRecordError::Malformed("v= must be the first tag".into()))
            }
            "v" if value != "DKIM1" => {
                return Err(KeyRecordError::Malformed(format!("v={value} is not DKIM1")))
            }
            "k" => k = Some(value.to_string()),
            "p" => p = Some(value.to_string()),
            "t" => t = value.to_string(),
            "h" => h = Some(value.split(':').map(|s| s.trim().to_string()).collect()),
            "s" => services = Some(value.split(':').map(|s| s.trim().to_string()).collect()),
            "g" => warnings.push("g= is obsolete (RFC 6376 removed it); remove it".into()),
            _ => {}
        }
    }
    let algorithm = match k.as_deref().unwrap_or("rsa") {
        "rsa" => KeyAlgorithm::Rsa,
        "ed25519" => KeyAlgorithm::Ed25519,
        other => return Err(KeyRecordError::UnknownKeyType(other.to_string())),
    };
    let Some(p) = p else {
        return Err(KeyRecordError::Malformed("there is no p= tag".into()));
    };
    if p.is_empty() {
        return Err(KeyRecordError::Revoked);
    }
    if p.contains('"') || p.contains('\'') {
        return Err(KeyRecordError::Malformed(
            "p= contains quote characters: the record was pasted with the quotes of a zone file"
                .into(),
        ));
    }
    if p.chars().any(char::is_whitespace) {
        warnings.push(
            "p= contains white space: it was pasted across lines; publish it as one string".into(),
        );
    }
    let compact: String = p.chars().filter(|c| !c.is_whitespace()).collect();
    let public_key = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| KeyRecordError::Malformed(format!("p= is not valid base64: {e}")))?;
    let bits = match algorithm {
        KeyAlgorithm::Rsa => rsa::RsaPublicKey::from_public_key_der(&public_key)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&public_key))
            .map(|k| k.n().bits())
            .map_err(|_| KeyRecordError::Malformed("p= does not hold an RSA public key".into()))?,
        KeyAlgorithm::Ed25519 => {
            if public_key.len() != 32 {
                return Err(KeyRecordError::Malformed(format!(
                    "an Ed25519 p= must hold 32 bytes (RFC 8463 §4.2), this one holds {}",
                    public_key.len()
                )));
            }
            256
        }
    };
    let flags: Vec<&str> = t.split(':').map(str::trim).collect();
    Ok(KeyRecord {
        algorithm,
        public_key,
        bits,
        testing: flags.contains(&"y"),
        strict: flags.contains(&"s"),
        hashes: h,
        services,
        warnings,
    })
}

/// The same key, whether p= holds SPKI or PKCS#1 (both are seen in the wild).
pub fn same_public_key(a: &[u8], b: &[u8], algorithm: KeyAlgorithm) -> bool {
    if a == b {
        return true;
    }
    match algorithm {
        KeyAlgorithm::Ed25519 => false,
        KeyAlgorithm::Rsa => {
            let read = |d: &[u8]| {
                rsa::RsaPublicKey::from_public_key_der(d)
                    .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(d))
                    .ok()
            };
            matches!((read(a), read(b)), (Some(x), Some(y)) if x == y)
        }
    }
}
