//! The milter's view of the signing domains that the web UI keeps: a
//! [`KeySource`] over the same SQLite file. Each lookup asks the store's
//! key generation (one indexed row) and loads the keys again only when it
//! changed, so a domain activated in the UI signs the next message, with
//! no restart and no reload signal.

use crate::crypto::MasterKey;
use crate::store::{self, StoreError};
use netjes_auth::dkim::MessageSigner;
use netjes_milter::keys::{KeySource, Keys, SigningKey};
use crate::db::Conn;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// domain → its keys, or why they cannot sign.
type Loaded = HashMap<String, Result<Vec<SigningKey>, String>>;

pub struct StoreKeys {
    store: store::Store,
    /// How often the key generation is asked at most: every lookup for
    /// the local SQLite, once a second for a PostgreSQL over the network.
    poll: Duration,
    /// (generation, keys, when last asked) as last loaded.
    cache: Mutex<(i64, Arc<Loaded>, Instant)>,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKeys(..)")
    }
}

impl StoreKeys {
    /// Opens the store in `data_dir` (as `netjes serve` keeps it) with its
    /// master key, and loads the keys once, so that a wrong master key is
    /// an error at start.
    pub fn open(data_dir: &Path, master: MasterKey) -> Result<StoreKeys, StoreError> {
        if !data_dir.join("netjes.sqlite").exists() {
            return Err(StoreError::NotFound(format!(
                "{}: no netjes.sqlite (start `netjes serve --data-dir` there first)",
                data_dir.display()
            )));
        }
        StoreKeys::with(store::Store::open(data_dir, master)?, Duration::ZERO)
    }

    /// The signing domains of serve's store in a PostgreSQL that the
    /// milters of several MX hosts share: a key added in any serve's web
    /// UI signs on every MX within a second, with no restart.
    pub fn open_postgres(settings: crate::db::PgSettings, master: MasterKey) -> Result<StoreKeys, StoreError> {
        let s = store::Store::with(store::open_postgres(settings)?, master);
        s.check_master()?;
        StoreKeys::with(s, Duration::from_secs(1))
    }

    fn with(store: store::Store, poll: Duration) -> Result<StoreKeys, StoreError> {
        let keys = StoreKeys { store, poll, cache: Mutex::new((-1, Arc::new(HashMap::new()), Instant::now())) };
        let loaded = keys.current()?;
        if let Some(e) = loaded.values().find_map(|r| r.as_ref().err()) {
            return Err(StoreError::Invalid(e.clone()));
        }
        Ok(keys)
    }

    fn load(&self, db: &Conn) -> Result<Loaded, StoreError> {
        let mut out: Loaded = HashMap::new();
        for (domain, selector, key) in store::signing_keys(db, &self.store.master)? {
            let key = key.and_then(|k| {
                MessageSigner::new(&k).map_err(|e| format!("{selector}._domainkey.{domain}: {e}"))
            });
            let entry = out.entry(domain.clone()).or_insert_with(|| Ok(vec![]));
            match (entry, key) {
                (Ok(list), Ok(signer)) => list.push(SigningKey {
                    domain,
                    selector,
                    signer: Arc::new(signer),
                }),
                (e @ Ok(_), Err(reason)) => *e = Err(reason),
                (Err(_), _) => {}
            }
        }
        Ok(out)
    }

    fn current(&self) -> Result<Arc<Loaded>, StoreError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 >= 0 && cache.2.elapsed() < self.poll {
            return Ok(cache.1.clone());
        }
        cache.2 = Instant::now();
        let db = self.store.db();
        let generation = store::key_generation(&db)?;
        if cache.0 != generation {
            let loaded = Arc::new(self.load(&db)?);
            tracing::info!(
                domains = loaded.len(),
                generation,
                "signing domains loaded from the store"
            );
            *cache = (generation, loaded, Instant::now());
        }
        Ok(cache.1.clone())
    }
}

impl KeySource for StoreKeys {
    fn sender_refusal(&self, login: &str, domain: &str) -> Result<Option<String>, String> {
        let db = self.store.db();
        Ok(crate::route_store::send_right(&db, login, domain).map_err(|e| e.to_string())?.refusal(login, domain))
    }

    fn keys_for(&self, from_address: &str) -> Keys {
        let Some((_, domain)) = from_address.rsplit_once('@') else {
            return Keys::NotOurs;
        };
        let domain = domain
            .trim_end_matches('>')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let loaded = match self.current() {
            Ok(l) => l,
            Err(e) => {
                // The store cannot be read now: keep signing with what was
                // loaded, but a domain not seen before cannot be decided.
                tracing::error!(error = %e, "cannot read the signing domains; using the keys loaded before");
                let cached = self
                    .cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .1
                    .clone();
                if cached.is_empty() {
                    return Keys::Broken(format!("the signing-domain store cannot be read: {e}"));
                }
                cached
            }
        };
        match loaded.get(&domain) {
            None => Keys::NotOurs,
            Some(Ok(keys)) if keys.is_empty() => Keys::NotOurs,
            Some(Ok(keys)) => Keys::Sign(keys.clone()),
            Some(Err(e)) => Keys::Broken(e.clone()),
        }
    }
}

/// Several key sources, asked in order; the first that knows the sender
/// answers (the store first, then OpenDKIM's tables).
pub struct Chain(pub Vec<Arc<dyn KeySource>>);

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({})", self.0.len())
    }
}

impl KeySource for Chain {
    /// The first source that refuses, or that cannot say, decides.
    fn sender_refusal(&self, login: &str, domain: &str) -> Result<Option<String>, String> {
        for s in &self.0 {
            if let Some(why) = s.sender_refusal(login, domain)? {
                return Ok(Some(why));
            }
        }
        Ok(None)
    }

    fn keys_for(&self, from_address: &str) -> Keys {
        for s in &self.0 {
            match s.keys_for(from_address) {
                Keys::NotOurs => continue,
                k => return k,
            }
        }
        Keys::NotOurs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};

    #[test]
    fn a_domain_activated_in_the_store_signs_the_next_message() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "42".repeat(32);
        let s = store::Store::open(dir.path(), MasterKey::from_hex(&hex).unwrap()).unwrap();
        let keys = StoreKeys::open(dir.path(), MasterKey::from_hex(&hex).unwrap()).unwrap();
        assert!(matches!(keys.keys_for("a@example.com"), Keys::NotOurs));
        s.add_domain("example.com").unwrap();
        s.add_key(
            "example.com",
            "rsa1",
            &PrivateKey::generate(KeyAlgorithm::Rsa, 1024).unwrap(),
        )
        .unwrap();
        s.add_key(
            "example.com",
            "ed1",
            &PrivateKey::generate(KeyAlgorithm::Ed25519, 256).unwrap(),
        )
        .unwrap();
        assert!(
            matches!(keys.keys_for("a@example.com"), Keys::NotOurs),
            "not active yet"
        );
        s.set_active("example.com", true).unwrap();
        match keys.keys_for("A@Example.com") {
            Keys::Sign(k) => assert_eq!(
                k.iter().map(|k| k.selector.as_str()).collect::<Vec<_>>(),
                ["rsa1", "ed1"]
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(keys.keys_for("a@other.example"), Keys::NotOurs));
        s.set_active("example.com", false).unwrap();
        assert!(matches!(keys.keys_for("a@example.com"), Keys::NotOurs));

        // A wrong master key is an error at start, not at the first message.
        s.set_active("example.com", true).unwrap();
        let e = StoreKeys::open(dir.path(), MasterKey::from_hex(&"43".repeat(32)).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("does not open"), "{e}");
    }
}
