use crate::exit;
use crate::output::{mark, print_json, tone_of, Tone};
use crate::GlobalOpts;
use anyhow::Context;
use clap::Subcommand;
use netjes_auth::dkim::keys::{KeyAlgorithm, PrivateKey};
use netjes_auth::dkim::sign::parse_canonicalization;
use netjes_auth::dkim::{sign_message, verify_dkim, DkimResult, SignOptions};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Alg {
    Rsa,
    Ed25519,
}

/// The domain, selector and private key that sign (DKIM) or seal (ARC).
#[derive(clap::Args, Debug)]
pub struct SigningKeyArgs {
    /// The signing domain (d=).
    #[arg(long)]
    pub domain: String,
    /// The selector (s=): the key is published at SELECTOR._domainkey.DOMAIN.
    #[arg(long)]
    pub selector: String,
    /// The private key: PKCS#8, PKCS#1 or encrypted PKCS#8 PEM.
    #[arg(long)]
    pub key: PathBuf,
    /// A file holding the password of an encrypted key.
    #[arg(long = "password-file")]
    pub password_file: Option<PathBuf>,
}

impl SigningKeyArgs {
    pub fn load(&self) -> anyhow::Result<PrivateKey> {
        load_key(&self.key, self.password_file.as_deref())
    }
}

#[derive(Subcommand, Debug)]
pub enum DkimCommand {
    /// Generate a key pair: SELECTOR.private (PKCS#8 PEM, mode 0600) and
    /// SELECTOR.txt, the DNS record as a zone-file line (as opendkim-genkey writes it).
    #[command(after_long_help = "EXAMPLES:
    netjes dkim keygen --domain example.com --selector s2026 --out-dir /etc/netjes/keys
    netjes dkim keygen --domain example.com --selector ed2026 --algorithm ed25519
    cat s2026.txt    # the zone-file line to publish")]
    Keygen {
        /// The signing domain (d=); an IDN is converted to its A-labels.
        #[arg(long)]
        domain: String,
        /// The selector (s=): the record goes to SELECTOR._domainkey.DOMAIN
        /// and the key to SELECTOR.private. DNS labels only.
        #[arg(long)]
        selector: String,
        /// rsa (every receiver verifies it) or ed25519 (RFC 8463; sign
        /// with both, as not every receiver verifies Ed25519 yet).
        #[arg(long, value_enum, default_value_t = Alg::Rsa)]
        algorithm: Alg,
        /// RSA key size; under 1024 is refused, 2048 is the default and the advice.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Where to write the files.
        #[arg(long = "out-dir", default_value = ".")]
        out_dir: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print the DNS record that publishes an existing private key.
    #[command(after_long_help = "EXAMPLES:
    netjes dkim record --domain example.com --selector s2026 --key s2026.private
    netjes dkim record --json --domain example.com --selector s2 --key enc.pem --password-file pw")]
    Record {
        #[command(flatten)]
        k: SigningKeyArgs,
    },
    /// Check that SELECTOR._domainkey.DOMAIN publishes the public half of a key.
    ///
    /// Prints "key OK" and exits 0 when it does. Otherwise it says what is
    /// wrong: nothing published (exit 5), another key (6), a malformed record
    /// such as quotes pasted into p= (7), or a DNS error (3).
    #[command(after_long_help = "EXAMPLES:
    netjes dkim testkey --domain example.com --selector s2026 --key s2026.private
    netjes dkim testkey --domain example.com --selector s2026 --key s2026.private --json; echo $?")]
    Testkey {
        #[command(flatten)]
        k: SigningKeyArgs,
    },
    /// Sign a message and print it with a DKIM-Signature added.
    ///
    /// relaxed/relaxed by default; rsa-sha256 or ed25519-sha256 according to
    /// the key; the usual headers are signed and From is over-signed.
    #[command(after_long_help = "EXAMPLES:
    netjes dkim sign --domain example.com --selector s2026 --key s2026.private message.eml > signed.eml
    netjes dkim sign --domain example.com --selector s2026 --key k.pem - < message.eml | sendmail -t")]
    Sign {
        #[command(flatten)]
        k: SigningKeyArgs,
        /// header/body canonicalization: relaxed/relaxed, relaxed/simple, simple/simple, ...
        #[arg(long, default_value = "relaxed/relaxed")]
        canonicalization: String,
        /// The message; "-" or nothing reads standard input.
        message: Option<PathBuf>,
    },
    /// Verify every DKIM signature of a message.
    #[command(after_long_help = "EXAMPLES:
    netjes dkim verify message.eml
    netjes dkim verify --json - < message.eml")]
    Verify {
        /// The message; "-" or nothing reads standard input.
        message: Option<PathBuf>,
    },
}

pub fn load_key(path: &Path, password_file: Option<&Path>) -> anyhow::Result<PrivateKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(exit::Input(format!("cannot read {}: {e}", path.display())))
    })?;
    let password = match password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| {
                    anyhow::anyhow!(exit::Input(format!("cannot read {}: {e}", p.display())))
                })?
                .trim_end_matches(['\r', '\n'])
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    PrivateKey::from_pem(&pem, password.as_deref())
        .map_err(|e| anyhow::anyhow!(exit::Input(format!("{}: {e}", path.display()))))
}

fn write_private(path: &Path, contents: &str, force: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).with_context(|| {
        format!(
            "cannot create {} (use --force to replace it)",
            path.display()
        )
    })?;
    // The mode only applies at creation; make sure a replaced file is private too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

pub async fn run(cmd: DkimCommand, g: &GlobalOpts) -> anyhow::Result<i32> {
    match cmd {
        DkimCommand::Keygen {
            domain,
            selector,
            algorithm,
            bits,
            out_dir,
            force,
        } => {
            // The record is published at SELECTOR._domainkey.DOMAIN and the
            // key written to SELECTOR.private: both must be DNS labels.
            let domain = netjes_auth::dmarc::author::author_domain(&domain)
                .ok()
                .filter(|d| d.contains('.'))
                .ok_or_else(|| anyhow::anyhow!(exit::Usage(format!("--domain {domain:?} is not a domain name"))))?;
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if !selector.split('.').all(label_ok) {
                anyhow::bail!(exit::Usage(format!(
                    "--selector {selector:?} is not a DNS label (letters, digits and '-', at most 63 each, dots between)"
                )));
            }
            let alg = match algorithm {
                Alg::Rsa => KeyAlgorithm::Rsa,
                Alg::Ed25519 => KeyAlgorithm::Ed25519,
            };
            let key = PrivateKey::generate(alg, bits)
                .map_err(|e| anyhow::anyhow!(exit::Usage(e.to_string())))?;
            std::fs::create_dir_all(&out_dir)
                .with_context(|| format!("cannot create {}", out_dir.display()))?;
            let private = out_dir.join(format!("{selector}.private"));
            let txt = out_dir.join(format!("{selector}.txt"));
            write_private(&private, &key.to_pkcs8_pem(), force)?;
            let line = key.zone_line(&selector, &domain);
            if !force && txt.exists() {
                anyhow::bail!(exit::Input(format!(
                    "{} exists (use --force to replace it)",
                    txt.display()
                )));
            }
            std::fs::write(&txt, &line)?;
            if g.json {
                print_json(&serde_json::json!({
                    "private_key": private, "record_file": txt,
                    "name": format!("{selector}._domainkey.{domain}"), "value": key.dns_value(),
                    "algorithm": alg, "bits": key.bits,
                }));
            } else {
                println!(
                    "{} wrote {} (mode 0600) and {}",
                    mark(Tone::Good),
                    private.display(),
                    txt.display()
                );
                println!("Publish this TXT record at {selector}._domainkey.{domain}:");
                print!("{line}");
            }
            Ok(exit::OK)
        }
        DkimCommand::Record { k } => {
            let (domain, selector) = (&k.domain, &k.selector);
            let key = k.load()?;
            if g.json {
                print_json(
                    &serde_json::json!({"name": format!("{selector}._domainkey.{domain}"), "value": key.dns_value(), "algorithm": key.algorithm, "bits": key.bits}),
                );
            } else {
                print!("{}", key.zone_line(selector, domain));
            }
            Ok(exit::OK)
        }
        DkimCommand::Testkey { k } => {
            let (domain, selector) = (&k.domain, &k.selector);
            let key = k.load()?;
            let dns = g.resolver()?;
            let name = format!("{selector}._domainkey.{domain}");
            let (status, message, code, warnings) = testkey(dns.as_ref(), &name, &key).await;
            if g.json {
                print_json(
                    &serde_json::json!({"name": name, "status": status, "message": message, "warnings": warnings}),
                );
            } else {
                let tone = if code == exit::OK {
                    Tone::Good
                } else if code == exit::TEMPORARY {
                    Tone::Warn
                } else {
                    Tone::Bad
                };
                println!("{} {message}", mark(tone));
                for w in &warnings {
                    println!("{} warning: {w}", mark(Tone::Warn));
                }
            }
            Ok(code)
        }
        DkimCommand::Sign {
            k,
            canonicalization,
            message,
        } => {
            let (domain, selector) = (&k.domain, &k.selector);
            let key = k.load()?;
            let (h, b) = parse_canonicalization(&canonicalization)
                .ok_or_else(|| anyhow::anyhow!(exit::Usage(format!("--canonicalization {canonicalization:?}: use relaxed/relaxed, relaxed/simple, simple/relaxed or simple/simple"))))?;
            let raw = exit::read_input(message.as_deref())?;
            netjes_auth::message::check_limits(&raw)
                .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
            let mut opts = SignOptions::new(domain, selector);
            opts.header_canonicalization = h;
            opts.body_canonicalization = b;
            let header = sign_message(&raw, &key, &opts)
                .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(header.as_bytes())?;
            out.write_all(&raw)?;
            Ok(exit::OK)
        }
        DkimCommand::Verify { message } => {
            let raw = exit::read_input(message.as_deref())?;
            let msg = netjes_auth::message::parse(&raw)
                .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
            let dns = g.resolver()?;
            let reports = verify_dkim(dns.as_ref(), &msg).await;
            if g.json {
                print_json(&reports);
            } else if reports.is_empty() {
                println!(
                    "{} the message has no DKIM-Signature",
                    mark(tone_of("none"))
                );
            } else {
                for d in &reports {
                    crate::output::print_dkim(d, "");
                }
            }
            Ok(if reports.iter().any(|d| d.result == DkimResult::Pass) {
                exit::OK
            } else if reports.iter().any(|d| d.result == DkimResult::Temperror) {
                exit::TEMPORARY
            } else {
                exit::NOT_PASSED
            })
        }
    }
}

/// (status, message, exit code, warnings)
async fn testkey(
    dns: &dyn netjes_dns::Resolver,
    name: &str,
    key: &PrivateKey,
) -> (&'static str, String, i32, Vec<String>) {
    use netjes_check::dkim::KeyStatus;
    let t = netjes_check::dkim::testkey(dns, name, key).await;
    let code = match t.status {
        KeyStatus::Ok => exit::OK,
        KeyStatus::DnsError => exit::TEMPORARY,
        KeyStatus::NotPublished => exit::KEY_NOT_PUBLISHED,
        KeyStatus::DifferentKey => exit::KEY_DIFFERENT,
        KeyStatus::Malformed => exit::KEY_MALFORMED,
    };
    (t.status.as_str(), t.message, code, t.warnings)
}
