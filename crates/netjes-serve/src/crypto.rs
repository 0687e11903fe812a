//! Private keys at rest: AES-256-GCM under a master key, with the key's
//! domain and selector as associated data, so that a sealed key copied to
//! another row does not open. Random tokens and their hashes for sessions,
//! CSRF and API tokens.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be 64 hex digits (32 octets)")]
    BadMasterKey,
    #[error("master key file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("a stored key does not open with this master key (a different master key, or the data was changed)")]
    Open,
}

pub struct MasterKey {
    aead: LessSafeKey,
    /// HMAC-SHA256(master key, "netjes csrf v1"): binds visitors' CSRF
    /// tokens to this installation, without a second secret to keep.
    csrf: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("the system's random source");
    b
}

/// A random token, URL-safe base64 of 32 octets.
pub fn token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A password to show once: 20 characters of a token (about 119 bits).
pub fn password() -> String {
    token()[..20].to_string()
}

/// What the store keeps of a token: its SHA-256, so a copy of the
/// database does not hold live sessions or API tokens.
pub fn token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    hex(d.as_ref())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl MasterKey {
    pub fn from_hex(s: &str) -> Result<MasterKey, CryptoError> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(CryptoError::BadMasterKey);
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("checked"))
            .collect();
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CryptoError::BadMasterKey)?;
        let mac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes);
        let mut csrf = [0u8; 32];
        csrf.copy_from_slice(aws_lc_rs::hmac::sign(&mac, b"netjes csrf v1").as_ref());
        Ok(MasterKey {
            aead: LessSafeKey::new(key),
            csrf,
        })
    }

    /// The key that signs visitors' CSRF tokens (web::frame).
    pub fn csrf_key(&self) -> aws_lc_rs::hmac::Key {
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.csrf)
    }

    /// NETJES_MASTER_KEY, else the named file, else `data_dir/master.key`,
    /// made (mode 0600) when it does not exist and `create` says so (only
    /// `netjes serve` makes one; the milter must find the same). A file
    /// others can read is refused, as a private key file is.
    pub fn load(
        file: Option<&Path>,
        data_dir: &Path,
        create: bool,
    ) -> Result<MasterKey, CryptoError> {
        if let Ok(v) = std::env::var("NETJES_MASTER_KEY") {
            return MasterKey::from_hex(&v);
        }
        let default = data_dir.join("master.key");
        let path = file.unwrap_or(&default);
        let err = |reason: String| CryptoError::File {
            path: path.display().to_string(),
            reason,
        };
        if create && file.is_none() && !path.exists() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(e.to_string()))?;
            f.write_all(format!("{}\n", hex(&random_bytes::<32>())).as_bytes())
                .map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
            tracing::warn!(path = %path.display(), "made a new master key; back it up: without it the stored private keys cannot be opened");
        }
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(err("readable by others; chmod 600 it".into()));
            }
        }
        if meta.len() > 1024 {
            return Err(err("too large for a master key".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        MasterKey::from_hex(&text).map_err(|e| err(e.to_string()))
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8], aad: &str) -> Vec<u8> {
        let nonce = random_bytes::<NONCE_LEN>();
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seals any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &str) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Open);
        }
        let (n, c) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| CryptoError::Open)?;
        let mut buf = c.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_key_and_row() {
        let k = MasterKey::from_hex(&"ab".repeat(32)).unwrap();
        let sealed = k.seal(b"secret key", "example.com/s1");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open(&sealed, "example.com/s1").unwrap(), b"secret key");
        assert!(k.open(&sealed, "example.com/s2").is_err());
        let other = MasterKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(other.open(&sealed, "example.com/s1").is_err());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(k.open(&bad, "example.com/s1").is_err());
        assert!(MasterKey::from_hex("abc").is_err());
    }

    #[test]
    fn the_master_key_file_is_made_private_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = MasterKey::load(None, dir.path(), true).unwrap();
        let sealed = k.seal(b"x", "a");
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("master.key");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The same key on the next start.
        assert_eq!(
            MasterKey::load(None, dir.path(), true)
                .unwrap()
                .open(&sealed, "a")
                .unwrap(),
            b"x"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::load(None, dir.path(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert!(same(&a, &a.clone()) && !same(&a, &b));
    }
}
