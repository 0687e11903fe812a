//! Which keys sign which mail: native `[[signing_keys]]` tables in the
//! milter's TOML, and OpenDKIM's KeyTable and SigningTable files as they
//! are (so an OpenDKIM user switches by pointing at their files), both
//! behind the `KeySource` trait that the web UI's store of signing domains
//! also implements.
//!
//! KeyTable (opendkim.conf(5)): `name domain:selector:/path/to/key`.
//! SigningTable with `refile:`: `pattern name`, where `*` in the pattern
//! matches anything (`*@example.com`, `*.example.com`). Without `refile:`
//! the first column is an address or a domain, matched exactly, the
//! address first. Every matching line signs (OpenDKIM's -S multiple
//! signatures), so one domain can have an RSA and an Ed25519 key.

use netjes_auth::dkim::{MessageSigner, PrivateKey};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A key ready to sign with.
#[derive(Clone)]
pub struct SigningKey {
    pub domain: String,
    pub selector: String,
    pub signer: Arc<MessageSigner>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} s={})", self.domain, self.selector)
    }
}

/// The keys for a message, by its From address.
#[derive(Debug)]
pub enum Keys {
    /// Nothing says this sender is signed here.
    NotOurs,
    Sign(Vec<SigningKey>),
    /// A table says to sign, but a key is missing or unreadable: the
    /// message must not go out unsigned by accident.
    Broken(String),
}

pub trait KeySource: Send + Sync {
    fn keys_for(&self, from_address: &str) -> Keys;
    /// Why the SASL `login` may not send as `domain` (an application's
    /// login sends only for its own active domains; serve's store knows),
    /// or None. Err: the source cannot say now.
    fn sender_refusal(&self, _login: &str, _domain: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TableEntry {
    domain: String,
    selector: String,
    path: PathBuf,
}

/// Key files larger than this are not keys.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// One native key table entry (`[[signing_keys]]` in the TOML).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Patterns of From addresses; `*` matches anything. A pattern with an
    /// `@` is matched against the address (`*@example.com`), one without
    /// against its domain (`example.com`, `*.example.com`).
    pub from: Vec<String>,
    /// d= of the signature.
    pub domain: String,
    /// s= of the signature.
    pub selector: String,
    /// The private key (PEM, PKCS#8 or PKCS#1), mode 0600 or stricter.
    pub key: PathBuf,
}

/// Key tables, from either notation, with every key loaded and checked at
/// start (and on reload), so that a bad key is an error then, not at the
/// first message.
pub struct KeyTables {
    /// (pattern, key name), in file order.
    signing: Vec<(Pattern, String)>,
    keys: HashMap<String, Result<SigningKey, String>>,
}

impl std::fmt::Debug for KeyTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTables")
            .field("signing", &self.signing.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
enum Pattern {
    /// An address or a domain, as OpenDKIM's plain SigningTable has them.
    Exact(String),
    /// Matched against the address.
    Glob(regex::Regex),
    /// Matched against the domain (a native pattern without `@`).
    DomainGlob(regex::Regex),
}

/// `*` matches anything; the rest literally, without regard to case.
fn glob(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!(
        "^(?i){}$",
        regex::escape(pattern).replace("\\*", ".*")
    ))
}

fn table_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            None
        } else {
            Some((i + 1, l.split_whitespace().collect()))
        }
    })
}

/// "refile:/etc/opendkim/SigningTable" or a plain path.
fn strip_kind(spec: &str) -> (bool, &str) {
    match spec.strip_prefix("refile:") {
        Some(p) => (true, p),
        None => (false, spec.strip_prefix("file:").unwrap_or(spec)),
    }
}

/// Reads a private key file: bounded in size, and refused when others can
/// read it.
pub fn read_private_key(path: &Path) -> Result<PrivateKey, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "{}: {} octets is not a key file",
            path.display(),
            meta.len()
        ));
    }
    // As OpenDKIM's RequireSafeKeys: a private key others can read is
    // refused, not used.
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(format!(
                "{}: readable by everyone; chmod 600 it",
                path.display()
            ));
        }
        // Writable by others: anyone could swap in their own key.
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(format!(
                "{}: others may write to it; chmod 600 it",
                path.display()
            ));
        }
    }
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    PrivateKey::from_pem(&pem, None).map_err(|e| format!("{}: {e}", path.display()))
}

fn load_key(path: &Path) -> Result<MessageSigner, String> {
    let key = read_private_key(path)?;
    MessageSigner::new(&key).map_err(|e| format!("{}: {e}", path.display()))
}

impl KeyTables {
    /// Native entries: each signs the From addresses its patterns match.
    /// Every error in them at once; a key that cannot be read is kept as
    /// an error of its own, as in [`KeyTables::load`].
    pub fn from_entries(entries: &[KeyEntry]) -> Result<KeyTables, Vec<String>> {
        let mut errors = Vec::new();
        let mut signing = Vec::new();
        let mut keys = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let at = format!("signing_keys[{i}]");
            let domain = e.domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if domain.is_empty() || !domain.contains('.') || domain.contains(['@', ' ', '*']) {
                errors.push(format!("{at}.domain: {:?} is not a domain", e.domain));
            }
            if e.selector.is_empty()
                || !e.selector.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
            {
                errors.push(format!(
                    "{at}.selector: {:?} is not a selector (RFC 6376 §3.1)",
                    e.selector
                ));
            }
            if e.from.is_empty() {
                errors.push(format!("{at}.from: no patterns, so it would sign nothing"));
            }
            let name = format!("{}._domainkey.{domain}", e.selector);
            for p in &e.from {
                let p = p.trim();
                let made = if p.contains('@') {
                    glob(p).map(Pattern::Glob)
                } else {
                    glob(p.trim_end_matches('.')).map(Pattern::DomainGlob)
                };
                match made {
                    Ok(pat) if !p.is_empty() => signing.push((pat, name.clone())),
                    Ok(_) => errors.push(format!("{at}.from: an empty pattern")),
                    Err(err) => errors.push(format!("{at}.from: {p:?}: {err}")),
                }
            }
            if keys.contains_key(&name) {
                errors.push(format!("{at}: {name} is named twice"));
                continue;
            }
            let k = load_key(&e.key).map(|s| SigningKey {
                domain: domain.clone(),
                selector: e.selector.clone(),
                signer: Arc::new(s),
            });
            keys.insert(name, k);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KeyTables { signing, keys })
    }

    /// Both notations in one table: these entries are asked after ours.
    pub fn extend(&mut self, other: KeyTables) -> Result<(), String> {
        for name in other.keys.keys() {
            if self.keys.contains_key(name) {
                return Err(format!(
                    "key {name} is in the OpenDKIM KeyTable and in signing_keys"
                ));
            }
        }
        self.signing.extend(other.signing);
        self.keys.extend(other.keys);
        Ok(())
    }

    /// OpenDKIM's KeyTable and SigningTable. Reads both tables; a syntax error in either is returned, each with
    /// its line. A key that cannot be read is kept as an error of its own,
    /// so that mail for the other domains is still signed.
    pub fn load(key_table: &str, signing_table: &str) -> Result<KeyTables, Vec<String>> {
        let mut errors = Vec::new();
        let (_, kpath) = strip_kind(key_table);
        let (regex_table, spath) = strip_kind(signing_table);
        let read =
            |p: &str, errors: &mut Vec<String>| match netjes_net::read_config_file(Path::new(p)) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(e);
                    String::new()
                }
            };
        let ktext = read(kpath, &mut errors);
        let stext = read(spath, &mut errors);
        let mut entries = HashMap::new();
        for (n, cols) in table_lines(&ktext) {
            let parts: Vec<&str> = cols
                .get(1)
                .map(|v| v.splitn(3, ':').collect())
                .unwrap_or_default();
            if cols.len() != 2 || parts.len() != 3 {
                errors.push(format!(
                    "{kpath}:{n}: expected \"name domain:selector:/path/to/key\""
                ));
                continue;
            }
            entries.insert(
                cols[0].to_string(),
                TableEntry {
                    domain: parts[0].to_ascii_lowercase(),
                    selector: parts[1].to_string(),
                    path: PathBuf::from(parts[2]),
                },
            );
        }
        let mut signing = Vec::new();
        for (n, cols) in table_lines(&stext) {
            if cols.len() != 2 {
                errors.push(format!("{spath}:{n}: expected \"pattern keyname\""));
                continue;
            }
            if !entries.contains_key(cols[1]) {
                errors.push(format!(
                    "{spath}:{n}: key {:?} is not in the KeyTable",
                    cols[1]
                ));
                continue;
            }
            let pat = if regex_table {
                match glob(cols[0]) {
                    Ok(r) => Pattern::Glob(r),
                    Err(e) => {
                        errors.push(format!("{spath}:{n}: {e}"));
                        continue;
                    }
                }
            } else {
                Pattern::Exact(cols[0].to_ascii_lowercase())
            };
            signing.push((pat, cols[1].to_string()));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let keys = entries
            .into_iter()
            .map(|(name, e)| {
                let k = load_key(&e.path).map(|s| SigningKey {
                    domain: e.domain,
                    selector: e.selector,
                    signer: Arc::new(s),
                });
                (name, k)
            })
            .collect();
        Ok(KeyTables { signing, keys })
    }

    /// The keys that could not be loaded, for the start-up log.
    pub fn key_errors(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|(n, k)| k.as_ref().err().map(|e| format!("key {n}: {e}")))
            .collect()
    }
}

impl KeySource for KeyTables {
    fn keys_for(&self, from_address: &str) -> Keys {
        let addr = from_address
            .trim()
            .trim_matches(['<', '>'])
            .to_ascii_lowercase();
        let domain = addr
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        let mut names: Vec<&str> = Vec::new();
        for (p, name) in &self.signing {
            let hit = match p {
                Pattern::Glob(r) => r.is_match(&addr),
                Pattern::DomainGlob(r) => r.is_match(&domain),
                Pattern::Exact(e) => *e == addr || *e == domain,
            };
            if hit && !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Keys::NotOurs;
        }
        let mut out = Vec::new();
        for n in names {
            match self.keys.get(n) {
                Some(Ok(k)) => out.push(k.clone()),
                Some(Err(e)) => return Keys::Broken(format!("key {n}: {e}")),
                None => return Keys::Broken(format!("key {n} is not in the KeyTable")),
            }
        }
        Keys::Sign(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netjes_auth::dkim::KeyAlgorithm;

    #[test]
    fn opendkim_tables_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rsa = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).unwrap();
        let ed = PrivateKey::generate(KeyAlgorithm::Ed25519, 256).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let private = |name: &str, text: &str, mode: u32| {
            std::fs::write(d.join(name), text).unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        private("rsa.private", &rsa.to_pkcs8_pem(), 0o600);
        private("ed.private", &ed.to_pkcs8_pem(), 0o600);
        private("bad.private", "not a key", 0o600);
        private("open.private", &rsa.to_pkcs8_pem(), 0o644);
        private("writable.private", &rsa.to_pkcs8_pem(), 0o620);
        std::fs::write(
            d.join("KeyTable"),
            format!(
                "# OpenDKIM KeyTable\nrsa._domainkey.example.com example.com:rsa:{0}/rsa.private\ned._domainkey.example.com example.com:ed:{0}/ed.private\nbroken example.net:s1:{0}/bad.private\nopen example.org:s1:{0}/open.private\nwritable example.biz:s1:{0}/writable.private\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(d.join("SigningTable"), "*@example.com rsa._domainkey.example.com\n*@example.com ed._domainkey.example.com\n*@*.example.com rsa._domainkey.example.com\n*@example.net broken\n*@example.org open\n*@example.biz writable\n").unwrap();
        let kt = d.join("KeyTable").display().to_string();
        let st = format!("refile:{}", d.join("SigningTable").display());
        let t = KeyTables::load(&kt, &st).unwrap();
        assert_eq!(t.key_errors().len(), 3);
        assert!(
            matches!(t.keys_for("eve@example.biz"), Keys::Broken(e) if e.contains("others may write to it"))
        );
        match t.keys_for("<Alice@Example.com>") {
            Keys::Sign(k) => assert_eq!(
                k.iter().map(|k| k.selector.as_str()).collect::<Vec<_>>(),
                vec!["rsa", "ed"]
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.keys_for("bob@news.example.com"), Keys::Sign(k) if k.len() == 1));
        assert!(
            matches!(t.keys_for("eve@example.org"), Keys::Broken(e) if e.contains("readable by everyone"))
        );
        assert!(matches!(t.keys_for("eve@example.info"), Keys::NotOurs));
        assert!(
            matches!(t.keys_for("x@example.net"), Keys::Broken(e) if e.contains("bad.private"))
        );
        // Without refile: exact addresses and domains.
        std::fs::write(d.join("Plain"), "example.com rsa._domainkey.example.com\n").unwrap();
        let t = KeyTables::load(&kt, &d.join("Plain").display().to_string()).unwrap();
        assert!(matches!(t.keys_for("a@example.com"), Keys::Sign(_)));
        assert!(matches!(t.keys_for("a@sub.example.com"), Keys::NotOurs));
        // Every table error at once.
        std::fs::write(d.join("BadSigning"), "*@example.com\n*@x.example nokey\n").unwrap();
        let e = KeyTables::load(&kt, &format!("refile:{}", d.join("BadSigning").display()))
            .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn native_tables_and_both_notations_together() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        let private = |name: &str, key: &PrivateKey, mode: u32| {
            std::fs::write(d.join(name), key.to_pkcs8_pem()).unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
            d.join(name)
        };
        let rsa = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).unwrap();
        let ed = PrivateKey::generate(KeyAlgorithm::Ed25519, 256).unwrap();
        let entry = |from: &[&str], domain: &str, selector: &str, key: PathBuf| KeyEntry {
            from: from.iter().map(|s| s.to_string()).collect(),
            domain: domain.into(),
            selector: selector.into(),
            key,
        };
        let entries = vec![
            entry(
                &["*@example.com", "*.example.com"],
                "example.com",
                "rsa",
                private("rsa.pem", &rsa, 0o600),
            ),
            entry(
                &["example.com"],
                "Example.COM.",
                "ed",
                private("ed.pem", &ed, 0o400),
            ),
            entry(
                &["*@example.org"],
                "example.org",
                "open",
                private("open.pem", &rsa, 0o644),
            ),
        ];
        let t = KeyTables::from_entries(&entries).unwrap();
        assert_eq!(t.key_errors().len(), 1, "{:?}", t.key_errors());
        match t.keys_for("<Alice@EXAMPLE.com>") {
            Keys::Sign(k) => assert_eq!(
                k.iter()
                    .map(|k| (k.domain.as_str(), k.selector.as_str()))
                    .collect::<Vec<_>>(),
                vec![("example.com", "rsa"), ("example.com", "ed")]
            ),
            other => panic!("{other:?}"),
        }
        // A domain pattern: the subdomain's mail, with the parent's key.
        assert!(
            matches!(t.keys_for("news@lists.example.com"), Keys::Sign(k) if k.len() == 1 && k[0].selector == "rsa")
        );
        assert!(matches!(
            t.keys_for("x@example.com.evil.example"),
            Keys::NotOurs
        ));
        assert!(
            matches!(t.keys_for("eve@example.org"), Keys::Broken(e) if e.contains("readable by everyone"))
        );
        // Every error at once.
        let bad = vec![
            entry(&[], "example", "a b", d.join("missing")),
            entry(&["*@x.example"], "x.example", "s", d.join("missing")),
            entry(&["*@y.example"], "x.example", "s", d.join("missing")),
        ];
        let e = KeyTables::from_entries(&bad).unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        // With OpenDKIM's tables: theirs first, then ours; one name twice
        // is an error.
        std::fs::write(
            d.join("KeyTable"),
            format!("k1 example.net:s1:{}\n", d.join("rsa.pem").display()),
        )
        .unwrap();
        std::fs::write(d.join("SigningTable"), "*@example.net k1\n").unwrap();
        let kt = d.join("KeyTable").display().to_string();
        let st = format!("refile:{}", d.join("SigningTable").display());
        let mut both = KeyTables::load(&kt, &st).unwrap();
        both.extend(KeyTables::from_entries(&entries).unwrap())
            .unwrap();
        assert!(matches!(both.keys_for("a@example.net"), Keys::Sign(k) if k[0].selector == "s1"));
        assert!(matches!(both.keys_for("a@example.com"), Keys::Sign(k) if k.len() == 2));
        std::fs::write(
            d.join("KeyTable"),
            format!(
                "rsa._domainkey.example.com example.com:rsa:{}\n",
                d.join("rsa.pem").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("SigningTable"),
            "*@example.com rsa._domainkey.example.com\n",
        )
        .unwrap();
        let mut clash = KeyTables::load(&kt, &st).unwrap();
        assert!(clash
            .extend(KeyTables::from_entries(&entries).unwrap())
            .is_err());
    }
}
