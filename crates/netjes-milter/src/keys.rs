//! Which keys sign which mail: OpenDKIM's KeyTable and SigningTable files
//! as they are (so an OpenDKIM user switches by pointing at their files),
//! behind a `KeySource` trait that the web UI's store of signing domains
//! will also implement.
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TableEntry {
    domain: String,
    selector: String,
    path: PathBuf,
}

/// Key files larger than this are not keys.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// OpenDKIM's tables, with every key loaded and checked at start (and on
/// reload), so that a bad key is an error then, not at the first message.
pub struct OpenDkimTables {
    /// (pattern, key name), in file order.
    signing: Vec<(Pattern, String)>,
    keys: HashMap<String, Result<SigningKey, String>>,
}

impl std::fmt::Debug for OpenDkimTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenDkimTables")
            .field("signing", &self.signing.len())
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
enum Pattern {
    Exact(String),
    Glob(regex::Regex),
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
    }
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    PrivateKey::from_pem(&pem, None).map_err(|e| format!("{}: {e}", path.display()))
}

fn load_key(path: &Path) -> Result<MessageSigner, String> {
    let key = read_private_key(path)?;
    MessageSigner::new(&key).map_err(|e| format!("{}: {e}", path.display()))
}

impl OpenDkimTables {
    /// Reads both tables; a syntax error in either is returned, each with
    /// its line. A key that cannot be read is kept as an error of its own,
    /// so that mail for the other domains is still signed.
    pub fn load(key_table: &str, signing_table: &str) -> Result<OpenDkimTables, Vec<String>> {
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
                let re = format!("^(?i){}$", regex::escape(cols[0]).replace("\\*", ".*"));
                match regex::Regex::new(&re) {
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
        Ok(OpenDkimTables { signing, keys })
    }

    /// The keys that could not be loaded, for the start-up log.
    pub fn key_errors(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter_map(|(n, k)| k.as_ref().err().map(|e| format!("key {n}: {e}")))
            .collect()
    }
}

impl KeySource for OpenDkimTables {
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
        std::fs::write(
            d.join("KeyTable"),
            format!(
                "# OpenDKIM KeyTable\nrsa._domainkey.example.com example.com:rsa:{0}/rsa.private\ned._domainkey.example.com example.com:ed:{0}/ed.private\nbroken example.net:s1:{0}/bad.private\nopen example.org:s1:{0}/open.private\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(d.join("SigningTable"), "*@example.com rsa._domainkey.example.com\n*@example.com ed._domainkey.example.com\n*@*.example.com rsa._domainkey.example.com\n*@example.net broken\n*@example.org open\n").unwrap();
        let kt = d.join("KeyTable").display().to_string();
        let st = format!("refile:{}", d.join("SigningTable").display());
        let t = OpenDkimTables::load(&kt, &st).unwrap();
        assert_eq!(t.key_errors().len(), 2);
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
        let t = OpenDkimTables::load(&kt, &d.join("Plain").display().to_string()).unwrap();
        assert!(matches!(t.keys_for("a@example.com"), Keys::Sign(_)));
        assert!(matches!(t.keys_for("a@sub.example.com"), Keys::NotOurs));
        // Every table error at once.
        std::fs::write(d.join("BadSigning"), "*@example.com\n*@x.example nokey\n").unwrap();
        let e = OpenDkimTables::load(&kt, &format!("refile:{}", d.join("BadSigning").display()))
            .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }
}
