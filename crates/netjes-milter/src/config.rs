//! The milter's configuration: TOML, strict, every error at once. It runs
//! with no file on sensible defaults, and the common settings are flags
//! named as OpenDKIM users know them. `samples/milter.toml` is the
//! commented example, parsed by a test.

use crate::keys::{KeySource, KeyTables, Keys};
use crate::server::Milter;
use crate::work::{Failure, Malformed, QuarantineAction, Settings};
use netjes_dns::Resolver;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// inet:PORT@HOST (OpenDKIM's Socket), inet:HOST:PORT or unix:PATH.
    pub listen: String,
    /// The authserv-id of Authentication-Results; the host name by default.
    pub authserv_id: Option<String>,
    /// Clients whose mail is signed (SASL-authenticated clients always are).
    pub internal_hosts: Vec<String>,
    /// OpenDKIM's KeyTable, as it is.
    pub key_table: Option<String>,
    /// OpenDKIM's SigningTable; "refile:PATH" for patterns.
    pub signing_table: Option<String>,
    /// Native key tables: `[[signing_keys]]` with from, domain, selector
    /// and key. Asked after OpenDKIM's tables when both are given.
    pub signing_keys: Vec<crate::keys::KeyEntry>,
    /// The data directory of `netjes serve`: its active signing domains
    /// sign too (asked before the tables), with no restart when they change.
    pub key_store: Option<std::path::PathBuf>,
    /// The signing domains of `netjes serve` in [store]'s PostgreSQL sign
    /// too (asked first), as key_store does for serve's SQLite: the MX
    /// hosts of a cluster sign with the keys of any serve's web UI.
    pub keys_from_store: bool,
    /// The master key that opens the store's private keys; NETJES_MASTER_KEY
    /// or `key_store/master.key` when absent.
    pub master_key_file: Option<std::path::PathBuf>,
    pub on_key_error: Failure,
    pub on_dns_error: Failure,
    /// Over a limit, unreadable, or no usable author: reject | tempfail.
    pub on_malformed: Malformed,
    pub enforce_dmarc: bool,
    pub quarantine: QuarantineAction,
    pub trusted_forwarders: Vec<String>,
    pub trusted_arc_sealers: Vec<String>,
    pub time_budget_seconds: f64,
    /// Prometheus metrics on HOST:PORT (/metrics); off when absent.
    pub metrics: Option<String>,
    /// Where the verdicts for DMARC reports are kept (verdicts.sqlite).
    pub data_dir: std::path::PathBuf,
    /// Seal verified mail with ARC, on a host that forwards it.
    pub arc_seal: Option<RawArcSeal>,
    /// How many connections, from whom: `[connections]`.
    pub connections: netjes_net::RawConnLimits,
    /// DMARC reports: the addresses they use, and sending them.
    pub reports: RawReports,
    /// `[store]`: the verdicts in PostgreSQL, shared by several MX hosts.
    pub store: RawStore,
}

/// `[store]` in milter.toml: without a url, the verdicts are kept in
/// SQLite in data_dir.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `postgres://USER@HOST/DB` or libpq's `host=... dbname=...`.
    pub url: Option<String>,
    /// The password, on a file's first line (mode 0600).
    pub password_file: Option<std::path::PathBuf>,
    /// A private CA (PEM) for the server's certificate, besides the
    /// system's; TLS follows the URL's sslmode (prefer, require).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Checks `[store]`; the PostgreSQL settings when a url is given.
pub fn validate_store(s: &RawStore, errors: &mut Vec<String>) -> Option<crate::verdicts_pg::PgSettings> {
    let url = s.url.as_deref()?;
    let password = s.password_file.as_deref().and_then(|f| netjes_net::read_secret_file(f).map_err(|e| errors.push(format!("store.password_file: {e}"))).ok());
    crate::verdicts_pg::config(url, password.as_deref(), s.ca_file.as_deref()).map_err(|e| errors.push(e.to_string())).ok()
}

/// `[reports]` in milter.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReports {
    /// The addresses DMARC and TLS reports arrive at and go out from:
    /// mail to or from them makes no DMARC report (no report loops).
    pub addresses: Vec<String>,
    /// `[reports.send]`: send the reports owed once a day.
    pub send: Option<RawSend>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSend {
    pub enabled: bool,
    /// HOST:PORT of the relay (your Postfix, which signs the mail).
    pub relay: String,
    /// none, opportunistic, starttls or implicit (required off loopback).
    pub relay_tls: Option<String>,
    /// The old switch for relay_tls = "starttls".
    pub relay_starttls: bool,
    /// A login at the relay (AUTH PLAIN or LOGIN), with its password on
    /// the first line of a file others may not read.
    pub relay_user: Option<String>,
    pub relay_password_file: Option<std::path::PathBuf>,
    /// A private CA to trust for the relay's certificate.
    pub relay_ca_file: Option<std::path::PathBuf>,
    /// The reports' sender and contact address; noreply-dmarc@authserv_id.
    pub from: Option<String>,
    /// The largest gzipped report, in MiB; bigger ones go in parts.
    pub max_size_mib: u32,
    /// Days a destination that refused for good is left alone.
    pub suppress_days: u32,
    /// Failure reports (ruf=): off unless turned on; headers only.
    pub failure_reports: bool,
    /// Failure reports to one destination in an hour at most.
    pub failure_reports_per_hour: u32,
}

impl Default for RawSend {
    fn default() -> Self {
        RawSend { enabled: false, relay: "127.0.0.1:25".into(), relay_tls: None, relay_starttls: false, relay_user: None, relay_password_file: None, relay_ca_file: None, from: None, max_size_mib: 5, suppress_days: 7, failure_reports: false, failure_reports_per_hour: 10 }
    }
}

/// The validated `[reports.send]`.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// The milter sends on its own schedule (and failure reports); without
    /// it `netjes report send --config` (a systemd timer) still uses the
    /// section's relay and sender.
    pub enabled: bool,
    pub relay: netjes_check::relay::Relay,
    pub from: String,
    pub max_size: usize,
    pub suppress_days: u32,
    pub failure_reports: bool,
    pub failure_reports_per_hour: u32,
}

fn validate_send(s: &RawSend, authserv_id: &str, errors: &mut Vec<String>) -> Option<SendConfig> {
    let relay = netjes_check::relay::RelaySettings {
        addr: &s.relay,
        tls: s.relay_tls.as_deref(),
        legacy_starttls: s.relay_starttls,
        user: s.relay_user.as_deref(),
        password_file: s.relay_password_file.as_deref(),
        ca_file: s.relay_ca_file.as_deref(),
    }
    .relay("reports.send", authserv_id, errors);
    if s.max_size_mib == 0 {
        errors.push("reports.send.max_size_mib: at least 1".into());
    }
    Some(SendConfig {
        enabled: s.enabled,
        relay: relay?,
        from: s.from.clone().unwrap_or_else(|| format!("noreply-dmarc@{authserv_id}")),
        max_size: s.max_size_mib as usize * 1024 * 1024,
        suppress_days: s.suppress_days,
        failure_reports: s.failure_reports,
        failure_reports_per_hour: s.failure_reports_per_hour.max(1),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArcSeal {
    pub domain: String,
    pub selector: String,
    /// A PEM private key, mode 0600.
    pub key: std::path::PathBuf,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "inet:8891@127.0.0.1".into(),
            authserv_id: None,
            internal_hosts: vec!["127.0.0.1".into(), "::1".into()],
            key_table: None,
            signing_table: None,
            signing_keys: vec![],
            key_store: None,
            keys_from_store: false,
            master_key_file: None,
            on_key_error: Failure::Tempfail,
            on_dns_error: Failure::Tempfail,
            on_malformed: Malformed::Reject,
            enforce_dmarc: true,
            quarantine: QuarantineAction::Hold,
            trusted_forwarders: vec![],
            trusted_arc_sealers: vec![],
            time_budget_seconds: 10.0,
            metrics: None,
            data_dir: std::path::PathBuf::from("./netjes-data"),
            arc_seal: None,
            connections: netjes_net::RawConnLimits::default(),
            reports: RawReports::default(),
            store: RawStore::default(),
        }
    }
}

/// No key tables: nothing is signed.
#[derive(Debug)]
struct NoKeys;

impl KeySource for NoKeys {
    fn keys_for(&self, _: &str) -> Keys {
        Keys::NotOurs
    }
}

/// The validated configuration.
pub struct Config {
    pub listen: netjes_net::ListenAddr,
    pub settings: Settings,
    pub keys: Arc<dyn KeySource>,
    /// Keys named in the KeyTable that could not be loaded.
    pub key_errors: Vec<String>,
    pub metrics: Option<std::net::SocketAddr>,
    pub data_dir: std::path::PathBuf,
    /// The verdicts in PostgreSQL (`[store] url`), or None for SQLite.
    pub verdict_db: Option<crate::verdicts_pg::PgSettings>,
    /// (store directory, master key file): opened by the binary, which
    /// puts the store before the tables in `keys`.
    pub key_store: Option<(std::path::PathBuf, Option<std::path::PathBuf>)>,
    /// keys_from_store: serve's keys in this PostgreSQL, opened with this
    /// master key file (NETJES_MASTER_KEY or data_dir/master.key when None).
    pub key_store_pg: Option<(crate::verdicts_pg::PgSettings, Option<std::path::PathBuf>)>,
    /// `[reports.send]`, when the section is there.
    pub send: Option<SendConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        Config::validate(raw)
    }

    pub fn validate(raw: RawConfig) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let listen = netjes_net::ListenAddr::parse(&raw.listen)
            .map_err(|e| errors.push(format!("listen: {e}")))
            .ok();
        let internal_hosts =
            netjes_net::parse_nets("internal_hosts", &raw.internal_hosts, &mut errors);
        let trusted_forwarders =
            netjes_net::parse_nets("trusted_forwarders", &raw.trusted_forwarders, &mut errors);
        let metrics = raw
            .metrics
            .as_deref()
            .and_then(|m| netjes_net::parse_socket_addr("metrics", m, &mut errors));

        let conn = raw.connections.validate(&mut errors);
        if !(raw.time_budget_seconds > 0.0 && raw.time_budget_seconds <= 25.0) {
            errors.push("time_budget_seconds: must be above 0 and at most 25, under Postfix's 30 s milter timeouts".into());
        }
        let opendkim = match (&raw.key_table, &raw.signing_table) {
            (Some(k), Some(s)) => KeyTables::load(k, s).map_err(|e| errors.extend(e)).ok(),
            (None, None) => None,
            _ => {
                errors.push("key_table and signing_table go together".into());
                None
            }
        };
        let native = if raw.signing_keys.is_empty() {
            None
        } else {
            KeyTables::from_entries(&raw.signing_keys)
                .map_err(|e| errors.extend(e))
                .ok()
        };
        let tables = match (opendkim, native) {
            (Some(mut a), Some(b)) => match a.extend(b) {
                Ok(()) => Some(a),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            (a, b) => a.or(b),
        };
        let (keys, key_errors): (Arc<dyn KeySource>, Vec<String>) = match tables {
            Some(t) => {
                let e = t.key_errors();
                (Arc::new(t), e)
            }
            None => (Arc::new(NoKeys), vec![]),
        };
        let arc_seal = match &raw.arc_seal {
            None => None,
            Some(a) => match crate::keys::read_private_key(&a.key) {
                Ok(k) => Some(crate::work::ArcSealer {
                    domain: a.domain.to_ascii_lowercase(),
                    selector: a.selector.clone(),
                    key: Arc::new(k),
                }),
                Err(e) => {
                    errors.push(format!("arc_seal.key: {e}"));
                    None
                }
            },
        };
        let authserv_id = raw.authserv_id.clone().unwrap_or_else(netjes_net::default_hostname);
        let send = raw.reports.send.as_ref().and_then(|s| validate_send(s, &authserv_id, &mut errors));
        let verdict_db = validate_store(&raw.store, &mut errors);
        if raw.keys_from_store && raw.store.url.is_none() {
            errors.push("keys_from_store: needs [store] url (serve's PostgreSQL)".into());
        }
        if raw.keys_from_store && raw.key_store.is_some() {
            errors.push("keys_from_store and key_store: one store of signing domains, not two".into());
        }
        let key_store_pg = verdict_db.clone().filter(|_| raw.keys_from_store).map(|pg| (pg, raw.master_key_file.clone()));
        if !errors.is_empty() {
            return Err(errors);
        }
        let settings = Settings {
            arc_seal,
            authserv_id,
            internal_hosts,
            on_key_error: raw.on_key_error,
            on_dns_error: raw.on_dns_error,
            on_malformed: raw.on_malformed,
            enforce_dmarc: raw.enforce_dmarc,
            quarantine: raw.quarantine,
            trusted_forwarders,
            trusted_arc_sealers: raw
                .trusted_arc_sealers
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            time_budget: Duration::from_secs_f64(raw.time_budget_seconds),
            conn,
            report_addresses: raw.reports.addresses.iter().map(|a| a.trim().to_ascii_lowercase()).collect(),
            failure_reports: send.as_ref().is_some_and(|x| x.enabled && x.failure_reports),
        };
        let key_store = raw.key_store.map(|d| (d, raw.master_key_file));
        Ok(Config {
            listen: listen.expect("checked above"),
            settings,
            keys,
            key_errors,
            metrics,
            data_dir: raw.data_dir,
            verdict_db,
            key_store_pg,
            key_store,
            send,
        })
    }

    pub fn milter(
        &self,
        dns: Arc<dyn Resolver>,
        verdicts: Option<crate::verdicts::VerdictStore>,
        failures: Option<Arc<crate::report_send::FailureSender>>,
    ) -> Milter {
        Milter {
            settings: self.settings.clone(),
            keys: self.keys.clone(),
            dns,
            verdicts,
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_store_needs_the_store_and_is_the_only_key_store() {
        let c = Config::parse("keys_from_store = true\n[store]\nurl = \"postgres://netjes@db.internal/netjes\"\n").unwrap();
        assert!(c.key_store_pg.is_some() && c.key_store.is_none());
        assert!(Config::parse("[store]\nurl = \"postgres://netjes@db.internal/netjes\"\n").unwrap().key_store_pg.is_none());
        let e = Config::parse("keys_from_store = true\nkey_store = \"/var/lib/netjes\"\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().any(|x| x.contains("needs [store] url")) && e.iter().any(|x| x.contains("not two")), "{e:?}");
    }

    #[test]
    fn defaults_the_sample_and_every_error() {
        let c = Config::validate(RawConfig::default()).unwrap();
        assert_eq!(
            c.listen,
            netjes_net::ListenAddr::Inet("127.0.0.1:8891".into())
        );
        assert_eq!(c.settings.on_dns_error, Failure::Tempfail);
        let sample = include_str!("../../../samples/milter.toml");
        // The sample names OpenDKIM's usual paths, which a test machine
        // lacks: only those errors are expected.
        match Config::parse(sample) {
            Ok(_) => {}
            Err(e) => assert!(e.iter().all(|x| x.contains("/etc/opendkim")), "{e:?}"),
        }
        let no_tables = sample
            .lines()
            .filter(|l| !l.starts_with("key_table") && !l.starts_with("signing_table"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&no_tables).unwrap();
        assert_eq!(c.settings.report_addresses, ["dmarc@reports.example.com", "noreply-dmarc@mx.example.com"]);
        let send = c.send.as_ref().expect("the sample sends reports");
        assert_eq!((send.relay.addr.as_str(), send.from.as_str(), send.max_size), ("127.0.0.1:25", "noreply-dmarc@mx.example.com", 5 * 1024 * 1024));
        let bad = Config::parse("[reports.send]\nenabled = true\nrelay = \"smtp.example.net:25\"\nmax_size_mib = 0\nbogus = 1\n").unwrap_err();
        assert!(bad[0].contains("unknown field `bogus`"), "{bad:?}");
        let bad = Config::parse("[reports.send]\nenabled = true\nrelay = \"smtp.example.net:25\"\nmax_size_mib = 0\n").unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(c.settings.authserv_id, "mx.example.com");
        // The native entries parse; their keys are not on this machine,
        // which is an error of each key (logged at start), not of the file.
        assert_eq!(c.key_errors.len(), 2, "{:?}", c.key_errors);
        assert!(c
            .key_errors
            .iter()
            .all(|e| e.contains("/etc/netjes/keys/example.com.")));
        assert!(matches!(c.keys.keys_for("a@example.com"), Keys::Broken(_)));
        let e = Config::parse("listen = \"tcp:1\"\ninternal_hosts = [\"x\"]\ntime_budget_seconds = 40\nkey_table = \"/k\"\nmetrics = \"x\"\n").unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(Config::parse("bogus = 1\n").is_err());
    }
}
