//! `netjes serve`'s configuration: TOML, strict (unknown keys are errors),
//! validated into a model with every error reported at once. It runs with
//! no file at all: the web UI on 127.0.0.1:8025, the test inbox on
//! 127.0.0.1:2525, the store in ./netjes-data. `samples/serve.toml` is the
//! commented example, parsed by a test.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub data_dir: PathBuf,
    pub http: String,
    pub smtp: String,
    /// The domain of test addresses; its MX must point at this host.
    pub test_domain: String,
    /// The host name in the SMTP greeting and our Received field.
    pub hostname: Option<String>,
    /// Whether anyone may create tests and run the check and analyze
    /// forms (as mail-tester.com). With false, they need a login too.
    pub public_tests: bool,
    /// Test results are deleted after this many days.
    pub retention_days: u32,
    /// How long an address waits for its message.
    pub test_expiry_hours: u32,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    /// A whole SMTP session may last this long; a command this long idle.
    pub smtp_session_seconds: u64,
    pub smtp_idle_seconds: u64,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// PEM certificate chain and key for STARTTLS; a self-signed
    /// certificate for `hostname` when absent.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The master key that encrypts the private keys: 32 octets, as 64
    /// hex digits, in a file (mode 0600) or in NETJES_MASTER_KEY. Without
    /// either, one is made at first start in `data_dir/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Blocklists the analyzer and the domain check ask; empty for none.
    pub ip_lists: Option<Vec<String>>,
    pub domain_lists: Option<Vec<String>>,
    /// Prometheus: GET /metrics on this address (not on the public port).
    pub metrics: Option<String>,
    /// Behind a TLS-terminating proxy: mark cookies Secure, send HSTS.
    pub secure_cookies: bool,
    /// Proxies whose X-Forwarded-For is believed for the client address.
    pub trusted_proxies: Vec<String>,
    /// Password hashes at once (argon2, ~19 MiB each); 429 beyond.
    pub max_login_hashes: usize,
    /// New tests a visitor (not logged in) may start per address and hour.
    pub tests_per_client_per_hour: u32,
    /// The inbox's stored messages in all, in MiB: the oldest results are
    /// deleted to make room, and new mail gets 452 while it is full.
    pub inbox_max_mib: u64,
    /// The web UI: a request's header must arrive within this.
    pub http_header_seconds: u64,
    /// The web UI: connections at once, and per client address.
    pub http_max_connections: usize,
    pub http_max_connections_per_client: usize,
    /// Let the domain check connect to loopback, private, link-local and
    /// other non-public addresses (tests, a private deployment).
    pub allow_private_targets: bool,
    /// SpamAssassin's spamd (HOST:PORT) for the test inbox's reports: the
    /// section mail-tester users look at first. Off when absent.
    pub spamd: Option<String>,
    /// Bounces and complaints of the customers' mail come back to any
    /// address of this domain (its MX points here): they are matched to
    /// what was sent, suppress and count. Off when absent.
    pub bounce_domain: Option<String>,
    /// DMARC and TLS reports: where they arrive and how much is kept.
    pub reports: RawReports,
    /// `[store] url = "postgres://..."`: users, sessions, tokens, signing
    /// domains, tests and reports in a PostgreSQL that several serve
    /// instances (and the milters' keys) share; SQLite in data_dir when
    /// absent. password_file and ca_file as in milter.toml.
    pub store: netjes_milter::config::RawStore,
}

/// `[reports]`: the addresses reports are mailed to (served by the test
/// inbox's listener), the domains they may be about, and the bounds that
/// keep a flood from filling the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReports {
    /// The rua=/ruf= addresses this host takes mail for, e.g.
    /// `dmarc@reports.example.com`.
    pub addresses: Vec<String>,
    /// The policy domains reports may be about (and their subdomains);
    /// reports about others are kept apart. Empty: any domain.
    pub domains: Vec<String>,
    /// Decompressed size of one report, in MiB.
    pub max_report_mib: u64,
    /// Files read from one zip.
    pub max_zip_entries: usize,
    /// Raw copies of reports and rejected inputs in all, in MiB; the oldest
    /// raw copies are dropped first, parsed rows are kept.
    pub max_raw_mib: u64,
    /// Report mails one sender (MAIL FROM's organisational domain, or the
    /// client's address without one) may deliver a day; 452 beyond.
    pub mails_per_sender_per_day: u32,
    /// Rejected inputs and held reports kept; the oldest go first.
    pub max_kept_apart: u32,
    /// Mailboxes where reports arrive, read over IMAP.
    pub imap: Vec<RawImap>,
    /// Alerts and the weekly digest.
    pub alerts: Option<RawAlerts>,
}

/// `[reports.alerts]`: what is worth telling, and where: mail through a
/// relay, a webhook (a JSON POST), or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    pub mail_to: Vec<String>,
    /// The sender of alert mail; netjes@HOSTNAME by default.
    pub mail_from: Option<String>,
    /// HOST:PORT of the SMTP relay.
    pub relay: String,
    /// none, opportunistic, starttls or implicit (required off loopback).
    pub relay_tls: Option<String>,
    /// The old switch for relay_tls = "starttls".
    pub relay_starttls: bool,
    /// A login at the relay, its password on a file's first line (0600).
    pub relay_user: Option<String>,
    pub relay_password_file: Option<PathBuf>,
    pub relay_ca_file: Option<PathBuf>,
    /// An http:// or https:// URL that gets each alert as a JSON POST.
    pub webhook: Option<String>,
    pub new_source_min_messages: u64,
    pub pass_rate_drop_points: f64,
    pub silence_days: u32,
    /// The weekly digest goes out on this day (monday ... sunday).
    pub digest_weekday: String,
    /// How often the rules are looked at.
    pub interval_seconds: u64,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            mail_to: vec![],
            mail_from: None,
            relay: "127.0.0.1:25".into(),
            relay_tls: None,
            relay_starttls: false,
            relay_user: None,
            relay_password_file: None,
            relay_ca_file: None,
            webhook: None,
            new_source_min_messages: 10,
            pass_rate_drop_points: 10.0,
            silence_days: 3,
            digest_weekday: "monday".into(),
            interval_seconds: 3600,
        }
    }
}

/// The validated `[reports.alerts]`.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub mail_to: Vec<String>,
    pub mail_from: Option<String>,
    pub relay: netjes_check::relay::Relay,
    pub webhook: Option<axum::http::Uri>,
    pub rules: netjes_reports::alerts::Rules,
    /// 0 for Monday ... 6 for Sunday.
    pub digest_weekday: u32,
    pub interval: Duration,
}

fn validate_alerts(a: &RawAlerts, hostname: &str, errors: &mut Vec<String>) -> Alerts {
    let at = "reports.alerts";
    for to in &a.mail_to {
        if to.rsplit_once('@').is_none_or(|(l, d)| l.is_empty() || !d.contains('.')) || to.contains(['<', '>', '\r', '\n', ' ']) {
            errors.push(format!("{at}.mail_to: {to:?} is not an address"));
        }
    }
    let settings = netjes_check::relay::RelaySettings {
        addr: &a.relay,
        tls: a.relay_tls.as_deref(),
        legacy_starttls: a.relay_starttls,
        user: a.relay_user.as_deref(),
        password_file: a.relay_password_file.as_deref(),
        ca_file: a.relay_ca_file.as_deref(),
    };
    // The relay matters only when there is mail to send.
    let mut relay_errors = Vec::new();
    let relay = settings.relay(at, hostname, &mut relay_errors);
    if !a.mail_to.is_empty() {
        errors.extend(relay_errors);
    }
    let webhook = a.webhook.as_deref().and_then(|w| match w.parse::<axum::http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => Some(u),
        _ => {
            errors.push(format!("{at}.webhook: {w:?} is not an http:// or https:// URL"));
            None
        }
    });
    if a.mail_to.is_empty() && webhook.is_none() {
        errors.push(format!("{at}: set mail_to, webhook, or both"));
    }
    const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let digest_weekday = DAYS.iter().position(|d| a.digest_weekday.eq_ignore_ascii_case(d)).unwrap_or_else(|| {
        errors.push(format!("{at}.digest_weekday: {:?} is not a day of the week", a.digest_weekday));
        0
    }) as u32;
    if !(60..=86_400).contains(&a.interval_seconds) || a.silence_days == 0 || !(1.0..=100.0).contains(&a.pass_rate_drop_points) {
        errors.push(format!("{at}: interval_seconds 60 to 86400, silence_days at least 1, pass_rate_drop_points 1 to 100"));
    }
    Alerts {
        mail_to: a.mail_to.clone(),
        mail_from: a.mail_from.clone().or_else(|| Some(format!("netjes@{hostname}"))),
        relay: relay.unwrap_or_else(|| netjes_check::relay::Relay {
            addr: a.relay.clone(),
            tls: netjes_check::relay::RelayTls::None,
            ca_file: None,
            helo: hostname.to_string(),
            timeout: Duration::from_secs(60),
            auth: None,
        }),
        webhook,
        rules: netjes_reports::alerts::Rules {
            new_source_min_messages: a.new_source_min_messages.max(1),
            pass_rate_drop_points: a.pass_rate_drop_points,
            min_daily_messages: 20,
            silence_days: i64::from(a.silence_days),
        },
        digest_weekday,
        interval: Duration::from_secs(a.interval_seconds),
    }
}

/// `[[reports.imap]]`: a mailbox polled for reports (IDLE where the
/// server has it); each mail is read once, then moved or deleted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImap {
    /// A name for logs, metrics and the reports' source; the user@server
    /// by default.
    pub name: Option<String>,
    pub server: String,
    /// 993 for implicit TLS, 143 otherwise, by default.
    pub port: Option<u16>,
    /// implicit (IMAPS), starttls, or none (loopback only).
    pub tls: String,
    pub user: String,
    /// The password, on the file's first line; readable by netjes alone.
    pub password_file: PathBuf,
    #[serde(default = "inbox")]
    pub folder: String,
    /// move (to `move_to`) or delete.
    #[serde(default = "move_word")]
    pub after: String,
    #[serde(default = "processed")]
    pub move_to: String,
    #[serde(default = "five_minutes")]
    pub interval_seconds: u64,
    /// Extra CA certificates (PEM) for the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// The mailbox gets reports only through a filter you run: take them
    /// as vouched for, without checking each mail's authentication.
    #[serde(default)]
    pub trusted: bool,
}

fn inbox() -> String {
    "INBOX".into()
}
fn move_word() -> String {
    "move".into()
}
fn processed() -> String {
    "netjes-processed".into()
}
fn five_minutes() -> u64 {
    300
}

/// How an IMAP session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    Implicit,
    StartTls,
    None,
}

/// A validated `[[reports.imap]]`.
#[derive(Debug, Clone)]
pub struct ImapAccount {
    pub name: String,
    pub server: String,
    pub port: u16,
    pub tls: ImapTls,
    pub user: String,
    pub password_file: PathBuf,
    pub folder: String,
    /// `Some(folder)` to move processed mail there, `None` to delete it.
    pub move_to: Option<String>,
    pub interval: Duration,
    pub ca_file: Option<PathBuf>,
    pub trusted: bool,
}

fn validate_imap(i: &RawImap, errors: &mut Vec<String>) -> Option<ImapAccount> {
    let at = format!("reports.imap {:?}", i.name.clone().unwrap_or_else(|| i.server.clone()));
    let before = errors.len();
    let tls = match i.tls.as_str() {
        "implicit" => ImapTls::Implicit,
        "starttls" => ImapTls::StartTls,
        "none" => ImapTls::None,
        other => {
            errors.push(format!("{at}: tls {other:?}: implicit, starttls or none"));
            ImapTls::None
        }
    };
    let loopback = i.server == "localhost" || i.server.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
    if tls == ImapTls::None && !loopback {
        errors.push(format!("{at}: tls = \"none\" would send the password in the clear; only for a server on loopback"));
    }
    if i.server.is_empty() || i.user.is_empty() || i.folder.is_empty() {
        errors.push(format!("{at}: server, user and folder must not be empty"));
    }
    let move_to = match i.after.as_str() {
        "move" if i.move_to.is_empty() || i.move_to == i.folder => {
            errors.push(format!("{at}: move_to must name another folder"));
            None
        }
        "move" => Some(i.move_to.clone()),
        "delete" => None,
        other => {
            errors.push(format!("{at}: after {other:?}: move or delete"));
            None
        }
    };
    // IMAP folder names go into commands: no control characters.
    if [&i.folder, &i.move_to, &i.user].iter().any(|s| s.chars().any(|c| c.is_control())) {
        errors.push(format!("{at}: folder, move_to and user must not hold control characters"));
    }
    if !(10..=86_400).contains(&i.interval_seconds) {
        errors.push(format!("{at}: interval_seconds between 10 and 86400"));
    }
    (errors.len() == before).then(|| ImapAccount {
        name: i.name.clone().unwrap_or_else(|| format!("{}@{}", i.user, i.server)),
        server: i.server.clone(),
        port: i.port.unwrap_or(if tls == ImapTls::Implicit { 993 } else { 143 }),
        tls,
        user: i.user.clone(),
        password_file: i.password_file.clone(),
        folder: i.folder.clone(),
        move_to,
        interval: Duration::from_secs(i.interval_seconds),
        ca_file: i.ca_file.clone(),
        trusted: i.trusted,
    })
}

impl Default for RawReports {
    fn default() -> Self {
        RawReports {
            addresses: vec![],
            domains: vec![],
            max_report_mib: 20,
            max_zip_entries: 1,
            max_raw_mib: 512,
            mails_per_sender_per_day: 200,
            max_kept_apart: 10_000,
            imap: vec![],
            alerts: None,
        }
    }
}

/// The validated `[reports]`.
#[derive(Debug, Clone)]
pub struct Reports {
    /// Lower-case addresses.
    pub addresses: Vec<String>,
    /// Lower-case domains.
    pub domains: Vec<String>,
    pub limits: netjes_reports::Limits,
    pub max_raw_bytes: u64,
    pub mails_per_sender_per_day: u32,
    pub max_kept_apart: u32,
    pub imap: Vec<ImapAccount>,
    pub alerts: Option<Alerts>,
}

impl Default for Reports {
    fn default() -> Self {
        validate_reports(RawReports::default(), "localhost", &mut vec![])
    }
}

fn validate_reports(raw: RawReports, hostname: &str, errors: &mut Vec<String>) -> Reports {
    let mut addresses = Vec::new();
    for a in &raw.addresses {
        let ok = a.rsplit_once('@').filter(|(l, d)| {
            !l.is_empty()
                && l.len() <= 64
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-=".contains(&b))
                && netjes_dns::is_valid_query_name(d)
                && d.contains('.')
        });
        match ok {
            Some(_) => addresses.push(a.to_ascii_lowercase()),
            None => errors.push(format!("reports.addresses: {a:?} is not a plain address (local@domain)")),
        }
    }
    let mut domains = Vec::new();
    for d in &raw.domains {
        let d2 = d.trim_end_matches('.').to_ascii_lowercase();
        if netjes_dns::is_valid_query_name(&d2) && d2.contains('.') {
            domains.push(d2);
        } else {
            errors.push(format!("reports.domains: {d:?} is not a domain name"));
        }
    }
    if !(1..=1024).contains(&raw.max_report_mib) {
        errors.push("reports.max_report_mib: between 1 and 1024".into());
    }
    if !(1..=100).contains(&raw.max_zip_entries) {
        errors.push("reports.max_zip_entries: between 1 and 100".into());
    }
    if raw.max_raw_mib == 0 || raw.mails_per_sender_per_day == 0 || raw.max_kept_apart == 0 {
        errors.push("reports.max_raw_mib, mails_per_sender_per_day and max_kept_apart: at least 1".into());
    }
    Reports {
        addresses,
        domains,
        limits: netjes_reports::Limits {
            max_report_bytes: raw.max_report_mib * 1024 * 1024,
            max_zip_entries: raw.max_zip_entries,
            ..Default::default()
        },
        max_raw_bytes: raw.max_raw_mib * 1024 * 1024,
        mails_per_sender_per_day: raw.mails_per_sender_per_day,
        max_kept_apart: raw.max_kept_apart,
        imap: raw.imap.iter().filter_map(|i| validate_imap(i, errors)).collect(),
        alerts: raw.alerts.as_ref().map(|a| validate_alerts(a, hostname, errors)),
    }
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: PathBuf::from("./netjes-data"),
            http: "127.0.0.1:8025".into(),
            smtp: "127.0.0.1:2525".into(),
            test_domain: "test.localhost".into(),
            hostname: None,
            public_tests: true,
            retention_days: 7,
            test_expiry_hours: 24,
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 10,
            smtp_session_seconds: 300,
            smtp_idle_seconds: 60,
            max_connections: 200,
            max_connections_per_client: 10,
            tls_cert: None,
            tls_key: None,
            master_key_file: None,
            ip_lists: None,
            domain_lists: None,
            metrics: None,
            secure_cookies: false,
            trusted_proxies: vec![],
            max_login_hashes: 4,
            tests_per_client_per_hour: 30,
            inbox_max_mib: 1024,
            http_header_seconds: 10,
            http_max_connections: 512,
            http_max_connections_per_client: 32,
            allow_private_targets: false,
            spamd: None,
            bounce_domain: None,
            reports: RawReports::default(),
            store: Default::default(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub smtp: SocketAddr,
    pub test_domain: String,
    pub hostname: String,
    pub public_tests: bool,
    pub retention: Duration,
    pub test_expiry: Duration,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub smtp_session: Duration,
    pub smtp_idle: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub master_key_file: Option<PathBuf>,
    pub ip_lists: Option<Vec<String>>,
    pub domain_lists: Option<Vec<String>>,
    pub metrics: Option<SocketAddr>,
    pub secure_cookies: bool,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_login_hashes: usize,
    pub tests_per_client_per_hour: u32,
    pub inbox_max_bytes: u64,
    pub http_header_timeout: Duration,
    pub http_limits: netjes_net::ConnLimits,
    pub allow_private_targets: bool,
    pub spamd: Option<String>,
    pub bounce_domain: Option<String>,
    pub reports: Reports,
    /// Where the store is when not in data_dir's SQLite.
    pub postgres: Option<crate::db::PgSettings>,
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        Config::validate(raw)
    }

    pub fn validate(raw: RawConfig) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        if let Some(d) = &raw.bounce_domain {
            if !netjes_dns::is_host_name(&d.trim_end_matches('.').to_ascii_lowercase()) {
                errors.push(format!("bounce_domain {d:?} is not a domain name"));
            }
        }
        let http = netjes_net::parse_socket_addr("http", &raw.http, &mut errors);
        let smtp = netjes_net::parse_socket_addr("smtp", &raw.smtp, &mut errors);
        let metrics = raw
            .metrics
            .as_deref()
            .and_then(|m| netjes_net::parse_socket_addr("metrics", m, &mut errors));
        let test_domain = raw.test_domain.trim_end_matches('.').to_ascii_lowercase();
        if !netjes_dns::is_valid_query_name(&test_domain) || !test_domain.contains('.') {
            errors.push(format!(
                "test_domain: {:?} is not a domain name",
                raw.test_domain
            ));
        }
        if raw.retention_days == 0 {
            errors.push("retention_days: must be at least 1".into());
        }
        if raw.test_expiry_hours == 0 {
            errors.push("test_expiry_hours: must be at least 1".into());
        }
        if !(1024..=100 * 1024 * 1024).contains(&raw.max_message_bytes) {
            errors.push("max_message_bytes: must be between 1024 and 104857600".into());
        }
        if !(1..=1000).contains(&raw.max_recipients) {
            errors.push("max_recipients: must be between 1 and 1000".into());
        }
        if raw.smtp_idle_seconds == 0 || raw.smtp_session_seconds < raw.smtp_idle_seconds {
            errors.push("smtp_session_seconds and smtp_idle_seconds: both above 0, the session at least the idle time".into());
        }
        if raw.max_connections == 0 || raw.max_connections_per_client == 0 {
            errors.push("max_connections and max_connections_per_client: at least 1".into());
        }
        let trusted_proxies =
            netjes_net::parse_nets("trusted_proxies", &raw.trusted_proxies, &mut errors);
        let spamd = raw.spamd.clone().filter(|s| {
            netjes_net::parse_socket_addr("spamd", s, &mut errors).is_some()
        });
        if raw.max_login_hashes == 0 || raw.tests_per_client_per_hour == 0 {
            errors.push("max_login_hashes and tests_per_client_per_hour: at least 1".into());
        }
        if raw.inbox_max_mib == 0 || raw.http_header_seconds == 0 {
            errors.push("inbox_max_mib and http_header_seconds: at least 1".into());
        }
        if raw.http_max_connections == 0 || raw.http_max_connections_per_client == 0 {
            errors.push("http_max_connections and http_max_connections_per_client: at least 1".into());
        }
        let hostname = raw.hostname.clone().unwrap_or_else(netjes_net::default_hostname);
        let reports = validate_reports(raw.reports, &hostname, &mut errors);
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                errors.push("tls_cert and tls_key go together".into());
                None
            }
        };
        let postgres = netjes_milter::config::validate_store(&raw.store, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            postgres,
            data_dir: raw.data_dir,
            http: http.expect("checked"),
            smtp: smtp.expect("checked"),
            test_domain,
            hostname,
            public_tests: raw.public_tests,
            retention: Duration::from_secs(u64::from(raw.retention_days) * 86400),
            test_expiry: Duration::from_secs(u64::from(raw.test_expiry_hours) * 3600),
            max_message_bytes: raw.max_message_bytes,
            max_recipients: raw.max_recipients,
            smtp_session: Duration::from_secs(raw.smtp_session_seconds),
            smtp_idle: Duration::from_secs(raw.smtp_idle_seconds),
            max_connections: raw.max_connections,
            max_connections_per_client: raw.max_connections_per_client,
            tls,
            master_key_file: raw.master_key_file,
            ip_lists: raw.ip_lists,
            domain_lists: raw.domain_lists,
            metrics,
            secure_cookies: raw.secure_cookies,
            trusted_proxies: trusted_proxies.clone(),
            max_login_hashes: raw.max_login_hashes,
            tests_per_client_per_hour: raw.tests_per_client_per_hour,
            inbox_max_bytes: raw.inbox_max_mib * 1024 * 1024,
            http_header_timeout: Duration::from_secs(raw.http_header_seconds),
            // A trusted proxy carries every visitor: no per-client cap.
            http_limits: netjes_net::ConnLimits::for_mta(
                raw.http_max_connections,
                raw.http_max_connections_per_client,
                0,
                trusted_proxies.clone(),
            ),
            allow_private_targets: raw.allow_private_targets,
            bounce_domain: raw.bounce_domain.as_ref().map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
            spamd,
            reports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_the_sample_and_every_error_at_once() {
        let c = Config::validate(RawConfig::default()).unwrap();
        assert_eq!(c.http.to_string(), "127.0.0.1:8025");
        assert_eq!(c.smtp.to_string(), "127.0.0.1:2525");
        assert!(c.public_tests);

        let sample = Config::parse(include_str!("../../../samples/serve.toml")).unwrap();
        assert_eq!(sample.test_domain, "test.example.com");
        assert_eq!(sample.smtp.port(), 25);
        assert_eq!(sample.retention, Duration::from_secs(7 * 86400));
        assert_eq!(sample.reports.addresses, ["dmarc@reports.example.com"]);
        assert_eq!(sample.reports.limits.max_report_bytes, 20 * 1024 * 1024);
        let bad = Config::parse("[reports]\naddresses = [\"no-at\", \"a@b@c.example\"]\nmax_report_mib = 0\ncolour = 1\n").unwrap_err();
        assert!(bad[0].contains("unknown field `colour`"), "{bad:?}");
        let bad = Config::parse("[reports]\naddresses = [\"no-at\", \"a@b@c.example\"]\nmax_report_mib = 0\n").unwrap_err();
        assert_eq!(bad.len(), 3, "{bad:?}");
        let imap = &sample.reports.imap[0];
        assert_eq!((imap.port, imap.tls, imap.move_to.as_deref()), (993, ImapTls::Implicit, Some("DMARC/processed")));
        let bad = Config::parse("[[reports.imap]]\nserver = \"imap.example.com\"\ntls = \"none\"\nuser = \"u\"\npassword_file = \"/p\"\nafter = \"archive\"\ninterval_seconds = 1\n").unwrap_err();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].contains("in the clear"), "{bad:?}");
        let alerts = sample.reports.alerts.as_ref().unwrap();
        assert_eq!((alerts.digest_weekday, alerts.mail_to.len()), (0, 1));
        let bad = Config::parse("[reports.alerts]\nmail_to = [\"x\"]\nrelay = \"smtp.example.com:25\"\nwebhook = \"ftp://x\"\ndigest_weekday = \"someday\"\n").unwrap_err();
        assert_eq!(bad.len(), 4, "{bad:?}");

        let errors = Config::parse(
            "http = \"nowhere\"\ntest_domain = \"x\"\nmax_recipients = 0\ntls_cert = \"/c.pem\"\n",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        let unknown = Config::parse("htpp = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(unknown[0].contains("unknown field `htpp`"), "{unknown:?}");
    }
}
