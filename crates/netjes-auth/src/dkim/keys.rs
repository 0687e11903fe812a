//! DKIM key pairs: generation, loading (PKCS#8, PKCS#1, encrypted PKCS#8),
//! and the DNS record that publishes the public half.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;

/// Below this RFC 8301 §3.2 says keys must not be used for signing.
pub const MIN_RSA_BITS: usize = 1024;
/// RFC 8301 recommends at least this; smaller keys get a warning.
pub const RECOMMENDED_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

impl KeyAlgorithm {
    /// The `k=` tag value.
    pub fn k_tag(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA keys below {MIN_RSA_BITS} bits are refused (RFC 8301 §3.2); {0} bits asked")]
    TooSmall(usize),
    #[error("RSA keys above {MAX_RSA_BITS} bits are refused: many verifiers cannot use them; {0} bits asked")]
    TooLarge(usize),
    #[error("cannot generate the key: {0}")]
    Generate(String),
    #[error("this is an encrypted private key; give its password (--password-file)")]
    NeedsPassword,
    #[error("cannot decrypt the private key: wrong password or unsupported cipher")]
    Decrypt,
    #[error("not a private key this tool can read (PKCS#8 or PKCS#1 PEM, RSA or Ed25519): {0}")]
    Unreadable(String),
}

/// The TXT record value of a public key (`p=`, base64).
pub fn record_value(algorithm: KeyAlgorithm, public_b64: &str) -> String {
    format!("v=DKIM1; k={}; p={public_b64}", algorithm.k_tag())
}

/// A private key in PKCS#8 DER, with what is known about it.
#[derive(Clone)]
pub struct PrivateKey {
    pub algorithm: KeyAlgorithm,
    pkcs8: Vec<u8>,
    /// RSA modulus size; 256 for Ed25519.
    pub bits: usize,
    /// What goes into `p=`: SubjectPublicKeyInfo DER for RSA (as
    /// opendkim-genkey publishes), the raw 32-byte key for Ed25519 (RFC 8463 §4.2).
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    pub fn generate(algorithm: KeyAlgorithm, bits: usize) -> Result<Self, KeyError> {
        match algorithm {
            KeyAlgorithm::Rsa => {
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::TooSmall(bits));
                }
                if bits > MAX_RSA_BITS {
                    return Err(KeyError::TooLarge(bits));
                }
                let size = match bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    // 1024 and odd sizes: the pure-Rust generator.
                    _ => {
                        let mut rng = rsa::rand_core::OsRng;
                        let k = rsa::RsaPrivateKey::new(&mut rng, bits)
                            .map_err(|e| KeyError::Generate(e.to_string()))?;
                        let der = k
                            .to_pkcs8_der()
                            .map_err(|e| KeyError::Generate(e.to_string()))?;
                        return Self::from_pkcs8_der(der.as_bytes());
                    }
                };
                let kp = aws_lc_rs::rsa::KeyPair::generate(size)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                let der = kp.as_der().map_err(|e| KeyError::Generate(e.to_string()))?;
                Self::from_pkcs8_der(der.as_ref())
            }
            KeyAlgorithm::Ed25519 => {
                let kp = aws_lc_rs::signature::Ed25519KeyPair::generate()
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                let der = kp
                    .to_pkcs8v1()
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                Self::from_pkcs8_der(der.as_ref())
            }
        }
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
            let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&k.to_public_key())
                .map_err(|e| KeyError::Unreadable(e.to_string()))?;
            return Ok(PrivateKey {
                algorithm: KeyAlgorithm::Rsa,
                pkcs8: der.to_vec(),
                bits: k.n().bits(),
                public_key: spki.as_bytes().to_vec(),
            });
        }
        match aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            Ok(kp) => Ok(PrivateKey {
                algorithm: KeyAlgorithm::Ed25519,
                pkcs8: der.to_vec(),
                bits: 256,
                public_key: kp.public_key().as_ref().to_vec(),
            }),
            Err(e) => Err(KeyError::Unreadable(e.to_string())),
        }
    }

    /// Reads a PEM file: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY",
    /// what opendkim-genkey writes) or encrypted PKCS#8 ("ENCRYPTED PRIVATE KEY").
    pub fn from_pem(pem: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let pem = pem.trim();
        if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            let pw = password.ok_or(KeyError::NeedsPassword)?;
            let (_, doc) = pkcs8::SecretDocument::from_pem(pem)
                .map_err(|e| KeyError::Unreadable(e.to_string()))?;
            let enc = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
                .map_err(|e| KeyError::Unreadable(e.to_string()))?;
            let plain = enc.decrypt(pw).map_err(|_| KeyError::Decrypt)?;
            return Self::from_pkcs8_der(plain.as_bytes());
        }
        if pem.contains("BEGIN RSA PRIVATE KEY") {
            let k = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| KeyError::Unreadable(e.to_string()))?;
            let der = k
                .to_pkcs8_der()
                .map_err(|e| KeyError::Unreadable(e.to_string()))?;
            return Self::from_pkcs8_der(der.as_bytes());
        }
        if pem.contains("BEGIN PRIVATE KEY") {
            let (_, doc) = pkcs8::SecretDocument::from_pem(pem)
                .map_err(|e| KeyError::Unreadable(e.to_string()))?;
            return Self::from_pkcs8_der(doc.as_bytes());
        }
        Err(KeyError::Unreadable(
            "no PEM private key block found".into(),
        ))
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn to_pkcs8_pem(&self) -> String {
        let doc = pkcs8::SecretDocument::try_from(self.pkcs8.as_slice()).expect("valid DER");
        doc.to_pem("PRIVATE KEY", LineEnding::LF)
            .expect("PEM encoding")
            .to_string()
    }

    /// The `p=` value.
    pub fn public_key_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.public_key)
    }

    /// The TXT record value, e.g. `v=DKIM1; k=rsa; p=MIIB...`.
    pub fn dns_value(&self) -> String {
        record_value(self.algorithm, &self.public_key_b64())
    }

    /// The record as a zone-file line in opendkim-genkey's form, every
    /// character-string at most 255 octets (RFC 1035 §3.3).
    pub fn zone_line(&self, selector: &str, domain: &str) -> String {
        let head = format!("v=DKIM1; k={}; ", self.algorithm.k_tag());
        let mut strings = vec![head];
        let p = format!("p={}", self.public_key_b64());
        for chunk in p.as_bytes().chunks(250) {
            strings.push(String::from_utf8_lossy(chunk).into_owned());
        }
        let body = strings
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join("\n\t  ");
        format!("{selector}._domainkey\tIN\tTXT\t( {body} )  ; ----- DKIM key {selector} for {domain}\n")
    }
}
