//! The key that signs DKIM signatures and ARC sets.
//!
//! aws-lc-rs (mail-auth's fast backend) refuses to sign with RSA keys under
//! 2048 bits, but RFC 8301 §3.2 still allows 1024, and many domains, the ARC
//! test suite among them, publish 1024-bit keys. Those keys sign through the
//! pure-Rust `rsa` crate instead; 2048 bits and up, and Ed25519, through aws-lc.

use super::keys::{KeyAlgorithm, PrivateKey};
use mail_auth::common::crypto::{Algorithm, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::Writable;
use pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};

pub enum SignerKind {
    Rsa(RsaKey<Sha256>),
    RsaSmall(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    Ed25519(Ed25519Key),
}

/// A signing key, parsed once and reused for every message.
pub struct MessageSigner(SignerKind);

impl std::fmt::Debug for MessageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            SignerKind::Rsa(_) => "MessageSigner(rsa)",
            SignerKind::RsaSmall(_) => "MessageSigner(rsa, small)",
            SignerKind::Ed25519(_) => "MessageSigner(ed25519)",
        })
    }
}

impl MessageSigner {
    // from_pkcs8_der is deprecated in favour of from_key_der, which would
    // pull in rustls-pki-types for the same PKCS#8 bytes.
    #[allow(deprecated)]
    pub fn new(key: &PrivateKey) -> Result<Self, String> {
        Ok(MessageSigner(match key.algorithm {
            KeyAlgorithm::Rsa if key.bits < 2048 => {
                let k = rsa::RsaPrivateKey::from_pkcs8_der(key.pkcs8_der())
                    .map_err(|e| e.to_string())?;
                SignerKind::RsaSmall(Box::new(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k)))
            }
            KeyAlgorithm::Rsa => SignerKind::Rsa(
                RsaKey::<Sha256>::from_pkcs8_der(key.pkcs8_der()).map_err(|e| e.to_string())?,
            ),
            KeyAlgorithm::Ed25519 => SignerKind::Ed25519(
                Ed25519Key::from_pkcs8_maybe_unchecked_der(key.pkcs8_der())
                    .map_err(|e| e.to_string())?,
            ),
        }))
    }
}

impl SigningKey for MessageSigner {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        match &self.0 {
            SignerKind::Rsa(k) => k.sign(input),
            SignerKind::Ed25519(k) => k.sign(input),
            SignerKind::RsaSmall(k) => {
                let mut data = Vec::with_capacity(1024);
                input.write(&mut data);
                let sig = k.try_sign(&data).map_err(|e| {
                    mail_auth::Error::Crypto(mail_auth::common::crypto::CryptoError::Library(
                        e.to_string(),
                    ))
                })?;
                Ok(sig.to_vec())
            }
        }
    }

    fn algorithm(&self) -> Algorithm {
        match &self.0 {
            SignerKind::Rsa(_) | SignerKind::RsaSmall(_) => Algorithm::RsaSha256,
            SignerKind::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }
}

/// Signing borrows the key, so one parsed key serves every message.
impl SigningKey for &MessageSigner {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        (*self).sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        (*self).algorithm()
    }
}
