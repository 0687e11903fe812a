//! The policy service's configuration: TOML, strict (unknown keys are
//! errors), validated into a model, every error reported at once. It runs
//! with no file at all: SPF and greylisting on, with postgrey's and
//! policyd-spf's defaults. `samples/policy.toml` is the commented example.

use crate::dnsbl::DnsblSite;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Act on the result.
    #[default]
    Enforce,
    /// Log what would have been done and answer DUNNO (Postfix's warn_if_reject).
    Log,
}

/// What to answer for an SPF result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfAction {
    Reject,
    Defer,
    Dunno,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpfConfig {
    pub enabled: bool,
    pub mode: Mode,
    /// The HELO identity's fail (checked first, as policyd-spf does).
    pub helo_fail: SpfAction,
    pub fail: SpfAction,
    pub softfail: SpfAction,
    pub permerror: SpfAction,
    pub temperror: SpfAction,
    /// Prepend Received-SPF (once per message).
    pub header: bool,
    /// Forwarders and backup MX hosts whose mail SPF would wrongly fail.
    pub skip_clients: Vec<String>,
}

impl Default for SpfConfig {
    fn default() -> Self {
        SpfConfig {
            enabled: true,
            mode: Mode::Enforce,
            helo_fail: SpfAction::Reject,
            fail: SpfAction::Reject,
            softfail: SpfAction::Dunno,
            permerror: SpfAction::Dunno,
            temperror: SpfAction::Defer,
            header: true,
            skip_clients: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    pub enabled: bool,
    pub mode: Mode,
    /// postgrey --delay: 300 s.
    pub delay_seconds: u64,
    /// postgrey --retry-window: 2 days for a retry to count.
    pub retry_window_seconds: u64,
    /// postgrey --max-age: entries unseen for 35 days are forgotten.
    pub max_age_days: u64,
    /// postgrey --auto-whitelist-clients: 5 deliveries; 0 turns it off.
    pub auto_whitelist_clients: u32,
    /// postgrey's whitelist_clients files (names, domains, IPs, /regex/).
    pub whitelist_clients: Vec<PathBuf>,
    /// postgrey's whitelist_recipients files (user@, domain, address, /regex/).
    pub whitelist_recipients: Vec<PathBuf>,
    /// Key on the SPF-authenticated domain instead of the sender address and
    /// client subnet when SPF passes: pools that retry from other addresses
    /// (Microsoft 365, SES, SendGrid) are let through after one delay.
    pub spf_domain_key: bool,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: true,
            mode: Mode::Enforce,
            delay_seconds: 300,
            retry_window_seconds: 2 * 86400,
            max_age_days: 35,
            auto_whitelist_clients: 5,
            whitelist_clients: vec![],
            whitelist_recipients: vec![],
            spf_domain_key: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsblConfig {
    pub enabled: bool,
    pub mode: Mode,
    /// postscreen_dnsbl_sites syntax: "zen.spamhaus.org=127.0.0.[2..11]*3".
    pub sites: Vec<String>,
    /// A score at or above this is rejected.
    pub reject_threshold: i32,
    /// A score at or above this (and under the reject threshold) is
    /// greylisted even when the triplet is known.
    pub greylist_threshold: i32,
}

impl Default for DnsblConfig {
    fn default() -> Self {
        DnsblConfig {
            enabled: false,
            mode: Mode::Enforce,
            sites: vec![],
            reject_threshold: 3,
            greylist_threshold: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKey {
    ClientAddress,
    SaslUsername,
    Sender,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Minute,
    Hour,
}

impl Period {
    pub fn seconds(self) -> i64 {
        match self {
            Period::Minute => 60,
            Period::Hour => 3600,
        }
    }

    /// As the refusal says it: "in a minute", "in an hour".
    pub fn phrase(self) -> &'static str {
        match self {
            Period::Minute => "a minute",
            Period::Hour => "an hour",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub key: RateKey,
    pub period: Period,
    pub messages: Option<u32>,
    pub recipients: Option<u32>,
    #[serde(default)]
    pub mode: Mode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoofingConfig {
    pub enabled: bool,
    pub mode: Mode,
    /// Senders in our own domains that may come from outside (a newsletter
    /// service, say).
    pub allowed_senders: Vec<String>,
}

impl Default for SpoofingConfig {
    fn default() -> Self {
        SpoofingConfig {
            enabled: true,
            mode: Mode::Enforce,
            allowed_senders: vec![],
        }
    }
}

/// What a request gets when the state store fails or is too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailure {
    /// DUNNO: the mail goes on to Postfix's next restriction, unchecked
    /// by greylisting and rate limits (postgrey's behaviour without its
    /// database is worse: it stops answering).
    #[default]
    Dunno,
    /// 451 4.3.0: the sender tries again later, when the store is back.
    Defer,
}

/// `[store]`: where the greylist, auto-whitelist and rate windows live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Unset: SQLite in data_dir. `redis://HOST:PORT/DB`, `rediss://` (TLS),
    /// `redis+unix:///PATH`, or `redis-sentinel://H:P[,H:P...]/MASTER[/DB]`
    /// (the master the sentinels name): Redis, shared by several MX hosts.
    pub url: Option<String>,
    /// The Redis password, on the first line of a file others may not read
    /// (rather than in the URL, which ends up in logs and `ps`).
    pub password_file: Option<PathBuf>,
    /// For rediss://: a private CA (PEM) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Put before every Redis key.
    pub key_prefix: String,
    /// The time budget of one store call; well under Postfix's
    /// smtpd_policy_service_timeout, so Postfix never gives up first.
    pub timeout_ms: u64,
    pub store_failure: StoreFailure,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: None, password_file: None, ca_file: None, key_prefix: "netjes:".into(), timeout_ms: 250, store_failure: StoreFailure::Dunno }
    }
}

/// The validated `[store]`.
#[derive(Debug, Clone)]
pub enum StoreSetting {
    Sqlite,
    Redis { url: String, password: Option<String>, ca_pem: Option<Vec<u8>>, prefix: String, timeout: Duration },
}

fn validate_store(s: &StoreConfig, errors: &mut Vec<String>) -> StoreSetting {
    if !(10..=10_000).contains(&s.timeout_ms) {
        errors.push(format!("store.timeout_ms: {} is not 10 to 10000", s.timeout_ms));
    }
    let Some(url) = &s.url else {
        if s.password_file.is_some() || s.ca_file.is_some() {
            errors.push("store.password_file and store.ca_file: only with a Redis url".into());
        }
        return StoreSetting::Sqlite;
    };
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    match scheme.as_str() {
        "redis" | "rediss" | "redis+unix" | "unix" => {}
        "redis-sentinel" => {
            if let Err(e) = crate::store::redis::parse_sentinel(url) {
                errors.push(format!("store.url: {e}"));
            }
        }
        _ => errors.push(format!("store.url: {url:?} is not redis://, rediss://, redis+unix:// or redis-sentinel://")),
    }
    let password = s.password_file.as_deref().and_then(|f| netjes_net::read_secret_file(f).map_err(|e| errors.push(format!("store.password_file: {e}"))).ok());
    if s.ca_file.is_some() && scheme != "rediss" {
        errors.push("store.ca_file: only for rediss://".into());
    }
    let ca_pem = s.ca_file.as_deref().and_then(|f| std::fs::read(f).map_err(|e| errors.push(format!("store.ca_file: {}: {e}", f.display()))).ok());
    StoreSetting::Redis { url: url.clone(), password, ca_pem, prefix: s.key_prefix.clone(), timeout: Duration::from_millis(s.timeout_ms) }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// inet:HOST:PORT or unix:PATH.
    pub listen: String,
    /// Where the state (SQLite) lives.
    pub data_dir: PathBuf,
    /// Our name in Received-SPF; the host name by default.
    pub hostname: Option<String>,
    /// Clients that are ours (besides SASL): no SPF, greylisting or spoofing checks.
    pub trusted_networks: Vec<String>,
    /// Our own domains, for the spoofing check.
    pub own_domains: Vec<String>,
    /// Prometheus metrics on HOST:PORT (/metrics); off when absent.
    pub metrics: Option<String>,
    pub spf: SpfConfig,
    pub greylist: GreylistConfig,
    pub dnsbl: DnsblConfig,
    pub rate_limit: Vec<RateLimit>,
    pub spoofing: SpoofingConfig,
    /// How many connections, from whom: `[connections]`.
    pub connections: netjes_net::RawConnLimits,
    /// Where the state lives: `[store]`.
    pub store: StoreConfig,
    /// netjes serve's data directory, or the PostgreSQL it keeps its store
    /// in (postgres://... or "host=... dbname=..."): a SASL login that
    /// serve assigns to signing domains may send only for those, and only
    /// once active.
    pub sending_domains_dir: Option<PathBuf>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "inet:127.0.0.1:10040".into(),
            data_dir: PathBuf::from("./netjes-data"),
            hostname: None,
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            own_domains: vec![],
            metrics: None,
            spf: SpfConfig::default(),
            greylist: GreylistConfig::default(),
            dnsbl: DnsblConfig::default(),
            rate_limit: vec![],
            spoofing: SpoofingConfig::default(),
            connections: netjes_net::RawConnLimits::default(),
            store: StoreConfig::default(),
            sending_domains_dir: None,
        }
    }
}

/// The validated model the service runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub listen: netjes_net::ListenAddr,
    pub metrics: Option<std::net::SocketAddr>,
    pub hostname: String,
    pub trusted: Vec<IpNet>,
    pub spf_skip: Vec<IpNet>,
    pub own_domains: Vec<String>,
    pub dnsbl_sites: Vec<DnsblSite>,
    pub whitelist: crate::greylist::Whitelist,
    pub greylist_delay: Duration,
    pub conn: netjes_net::ConnLimits,
    pub store: StoreSetting,
}

pub use netjes_net::{in_nets, parse_net};

impl Config {
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        Config::validate(raw)
    }

    pub fn validate(raw: RawConfig) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let trusted =
            netjes_net::parse_nets("trusted_networks", &raw.trusted_networks, &mut errors);
        let spf_skip =
            netjes_net::parse_nets("spf.skip_clients", &raw.spf.skip_clients, &mut errors);
        let listen = netjes_net::ListenAddr::parse(&raw.listen)
            .map_err(|e| errors.push(format!("listen: {e}")))
            .ok();
        let metrics = raw
            .metrics
            .as_deref()
            .and_then(|m| netjes_net::parse_socket_addr("metrics", m, &mut errors));
        let conn = raw.connections.validate(&mut errors);
        let store = validate_store(&raw.store, &mut errors);
        let mut dnsbl_sites = Vec::new();
        for s in &raw.dnsbl.sites {
            match DnsblSite::parse(s) {
                Ok(site) => dnsbl_sites.push(site),
                Err(e) => errors.push(format!("dnsbl.sites: {e}")),
            }
        }
        if raw.dnsbl.enabled && dnsbl_sites.is_empty() {
            errors.push("dnsbl: enabled with no sites".into());
        }
        if raw.dnsbl.greylist_threshold > raw.dnsbl.reject_threshold {
            errors.push("dnsbl: greylist_threshold is above reject_threshold".into());
        }
        let g = &raw.greylist;
        if g.delay_seconds >= g.retry_window_seconds {
            errors.push("greylist: delay_seconds must be shorter than retry_window_seconds".into());
        }
        if g.max_age_days == 0 {
            errors.push("greylist: max_age_days must be at least 1".into());
        }
        for (i, r) in raw.rate_limit.iter().enumerate() {
            if r.messages.is_none() && r.recipients.is_none() {
                errors.push(format!(
                    "rate_limit[{i}]: give messages, recipients or both"
                ));
            }
        }
        let whitelist =
            match crate::greylist::Whitelist::load(&g.whitelist_clients, &g.whitelist_recipients) {
                Ok(w) => w,
                Err(e) => {
                    errors.extend(e);
                    crate::greylist::Whitelist::default()
                }
            };
        let own_domains: Vec<String> = raw
            .own_domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        for d in &own_domains {
            if !netjes_dns::is_valid_query_name(d) {
                errors.push(format!("own_domains: {d:?} is not a domain name"));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            listen: listen.expect("checked above"),
            metrics,
            hostname: raw
                .hostname
                .clone()
                .unwrap_or_else(netjes_net::default_hostname),
            greylist_delay: Duration::from_secs(raw.greylist.delay_seconds),
            conn,
            store,
            trusted,
            spf_skip,
            own_domains,
            dnsbl_sites,
            whitelist,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_sample() {
        let c = Config::validate(RawConfig::default()).unwrap();
        assert!(c.raw.spf.enabled && c.raw.greylist.enabled && !c.raw.dnsbl.enabled);
        assert_eq!(c.raw.greylist.delay_seconds, 300);
        assert!(in_nets(&c.trusted, "127.0.0.1".parse().unwrap()));
        assert!(in_nets(&c.trusted, "::ffff:127.0.0.1".parse().unwrap()));
        let sample = include_str!("../../../samples/policy.toml");
        let c = Config::parse(sample).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.dnsbl_sites.len(), 2);
        assert_eq!(c.raw.rate_limit.len(), 2);
    }

    #[test]
    fn store_settings() {
        let c = Config::parse("[store]\nurl = \"redis+unix:///run/redis.sock\"\nstore_failure = \"defer\"\n").unwrap();
        assert!(matches!(c.store, StoreSetting::Redis { ref url, .. } if url == "redis+unix:///run/redis.sock"));
        assert_eq!(c.raw.store.store_failure, StoreFailure::Defer);
        assert!(matches!(Config::parse("").unwrap().store, StoreSetting::Sqlite));
        let c = Config::parse("[store]\nurl = \"redis-sentinel://a:26379,[::1]:26380/mymaster/2\"\n").unwrap();
        assert!(matches!(c.store, StoreSetting::Redis { .. }));
        let t = crate::store::redis::parse_sentinel("redis-sentinel://a:26379,[::1]:26380/mymaster/2").unwrap();
        assert_eq!(t.sentinels, vec![("a".to_string(), 26379), ("::1".to_string(), 26380)]);
        assert_eq!((t.master.as_str(), t.db), ("mymaster", 2));
        for bad in ["redis-sentinel://a:26379", "redis-sentinel://a/m", "redis-sentinel://:pw@a:1/m", "redis-sentinel://a:0/m", "redis-sentinel://a:1/", "redis-sentinel://a:1/m/16", "redis-sentinel://a:1/m x"] {
            let e = Config::parse(&format!("[store]\nurl = {bad:?}\ntimeout_ms = 0\n")).unwrap_err();
            assert_eq!(e.len(), 2, "{bad}: {e:?}");
            assert!(e.iter().any(|x| x.contains("redis-sentinel://HOST:PORT")), "{bad}: {e:?}");
        }
        let e = Config::parse("[store]\nurl = \"http://redis\"\n").unwrap_err();
        assert!(e[0].contains("is not redis://"), "{e:?}");
        assert!(Config::parse("[store]\npassword_file = \"/x\"\n").is_err(), "a password without Redis");
        let e = Config::parse("[store]\nurl = \"redis://h:6379\"\nca_file = \"/nonexistent.pem\"\n").unwrap_err();
        assert_eq!(e.len(), 2, "a CA only for rediss://, and one that can be read: {e:?}");
        assert!(Config::parse("[store]\nstore_failure = \"reject\"\n").is_err(), "a store failure is never a reject");
    }

    #[test]
    fn every_error_at_once() {
        let e = Config::parse(
            "listen = \"tcp:1\"\ntrusted_networks = [\"10.0.0.0/33\"]\n[greylist]\ndelay_seconds = 999999\n[dnsbl]\nenabled = true\nsites = [\"x=127.0.0.[9..2]\"]\n[[rate_limit]]\nkey = \"sender\"\nperiod = \"hour\"\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(Config::parse("colour = 1\n").is_err());
    }
}
