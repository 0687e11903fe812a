use crate::daemon;
use crate::exit;
use crate::GlobalOpts;
use netjes_milter::config::{Config, RawConfig};
use netjes_milter::server::{run, Shared};
use std::path::PathBuf;

pub const MILTER_AFTER_HELP: &str = "\
EXAMPLES:
    netjes milter --config /etc/netjes/milter.toml
    netjes milter --listen inet:8891@127.0.0.1 --key-table /etc/opendkim/KeyTable --signing-table refile:/etc/opendkim/SigningTable
    kill -HUP $(pidof netjes)    # reload the configuration and the keys

POSTFIX (main.cf):
    smtpd_milters = inet:127.0.0.1:8891
    non_smtpd_milters = $smtpd_milters
    milter_default_action = tempfail
    milter_protocol = 6

    milter_default_action = tempfail keeps mail queued, not lost, while the
    milter is down. Internal clients and SASL users are signed; everything
    else is verified and DMARC is enforced.

SIGNALS:
    SIGHUP      reload --config and the key tables; a bad file keeps the old ones
    SIGTERM     stop accepting and exit

EXIT CODES:
    0   stopped by a signal
    2   usage error, or a bad configuration (every error is listed)
    4   the socket cannot be opened";

/// Run the milter: sign mail from internal hosts and SASL users with DKIM
/// (OpenDKIM's KeyTable and SigningTable work as they are), and verify
/// everything else (SPF, DKIM, ARC, DMARC), adding Authentication-Results
/// and enforcing DMARC policy at SMTP time.
#[derive(clap::Args, Debug)]
#[command(after_long_help = MILTER_AFTER_HELP)]
pub struct MilterArgs {
    /// A TOML configuration file (see samples/milter.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to listen: inet:PORT@HOST (as OpenDKIM), inet:HOST:PORT or unix:PATH.
    #[arg(long, value_name = "SOCKET")]
    pub listen: Option<String>,
    /// OpenDKIM's KeyTable.
    #[arg(long = "key-table", value_name = "FILE")]
    pub key_table: Option<String>,
    /// OpenDKIM's SigningTable ("refile:FILE" for patterns).
    #[arg(long = "signing-table", value_name = "FILE")]
    pub signing_table: Option<String>,
    /// Clients whose mail is signed, comma-separated addresses or networks.
    #[arg(long = "internal-hosts", value_name = "LIST", value_delimiter = ',')]
    pub internal_hosts: Vec<String>,
    /// The authserv-id in Authentication-Results (default: the host name).
    #[arg(long = "authserv-id", value_name = "ID")]
    pub authserv_id: Option<String>,
    /// Serve Prometheus metrics on HOST:PORT (/metrics).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// Sign with the active signing domains of `netjes serve`'s data
    /// directory too (asked before the tables; changes apply at once).
    #[arg(long = "key-store", value_name = "DIR")]
    pub key_store: Option<PathBuf>,
    /// The master key of --key-store or --keys-from-store, when not
    /// DIR/master.key (the data directory's for --keys-from-store) or
    /// NETJES_MASTER_KEY.
    #[arg(long = "master-key-file", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Keep the verdicts in PostgreSQL (postgres://USER@HOST/DB, or libpq's
    /// key=value form), shared with the milters of other MX hosts: the same
    /// as [store] url.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Sign with the active signing domains that `netjes serve` keeps in
    /// that PostgreSQL (--postgres or [store] url), with serve's master
    /// key: the same as keys_from_store = true.
    #[arg(long = "keys-from-store")]
    pub keys_from_store: bool,
}

fn load(a: &MilterArgs) -> Result<Config, Vec<String>> {
    let mut raw: RawConfig = daemon::read_config(a.config.as_deref())?;
    if let Some(l) = &a.listen {
        raw.listen = l.clone();
    }
    if a.key_table.is_some() {
        raw.key_table = a.key_table.clone();
    }
    if a.signing_table.is_some() {
        raw.signing_table = a.signing_table.clone();
    }
    if !a.internal_hosts.is_empty() {
        raw.internal_hosts = a.internal_hosts.clone();
    }
    if a.authserv_id.is_some() {
        raw.authserv_id = a.authserv_id.clone();
    }
    if a.metrics.is_some() {
        raw.metrics = a.metrics.clone();
    }
    if a.key_store.is_some() {
        raw.key_store = a.key_store.clone();
    }
    if a.master_key_file.is_some() {
        raw.master_key_file = a.master_key_file.clone();
    }
    if a.postgres.is_some() {
        raw.store.url = a.postgres.clone();
    }
    if a.keys_from_store {
        raw.keys_from_store = true;
    }
    let mut c = Config::validate(raw)?;
    if let Some((dir, master_file)) = &c.key_store {
        let store = netjes_serve::crypto::MasterKey::load(master_file.as_deref(), dir, false)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                netjes_serve::keystore::StoreKeys::open(dir, m).map_err(|e| e.to_string())
            })
            .map_err(|e| vec![format!("key_store: {e}")])?;
        c.keys = std::sync::Arc::new(netjes_serve::keystore::Chain(vec![
            std::sync::Arc::new(store),
            c.keys.clone(),
        ]));
    }
    if let Some((pg, master_file)) = &c.key_store_pg {
        let store = netjes_serve::crypto::MasterKey::load(master_file.as_deref(), &c.data_dir, false)
            .map_err(|e| e.to_string())
            .and_then(|m| netjes_serve::keystore::StoreKeys::open_postgres(pg.clone(), m).map_err(|e| e.to_string()))
            .map_err(|e| vec![format!("keys_from_store: {e}")])?;
        c.keys = std::sync::Arc::new(netjes_serve::keystore::Chain(vec![std::sync::Arc::new(store), c.keys.clone()]));
    }
    Ok(c)
}

fn log_key_errors(c: &Config) {
    for e in &c.key_errors {
        tracing::error!("cannot sign with {e}: mail that needs it will be tempfailed");
    }
}

pub async fn run_milter(a: MilterArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    crate::init_logging();
    let config = load(&a).map_err(daemon::bad_config)?;
    log_key_errors(&config);
    let dns = g.resolver()?;
    let listener = netjes_net::Listener::bind(&config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(exit::Input(format!(
                "cannot listen on {}: {e}",
                config.listen
            )))
        })?;
    tracing::info!(listen = %config.listen, authserv_id = %config.settings.authserv_id, "netjes milter started");
    let metrics = std::sync::Arc::new(netjes_net::metrics::Metrics::default());
    let verdicts = netjes_milter::verdicts::VerdictStore::open_either(config.verdict_db.as_ref(), &config.data_dir, Some(metrics.clone()))
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    // Failure reports (ruf=), when [reports.send] turns them on: one
    // sender for the life of the process, so a reload keeps its counts.
    let failures = config.send.as_ref().filter(|s| s.enabled && s.failure_reports).map(|s| {
        std::sync::Arc::new(netjes_milter::report_send::FailureSender::new(
            s.relay.clone(),
            s.from.clone(),
            s.failure_reports_per_hour,
            dns.clone(),
            Some(metrics.clone()),
        ))
    });
    let shared = Shared::with_metrics(config.milter(dns.clone(), Some(verdicts.clone()), failures.clone()), metrics);
    let (tx, rx) = tokio::sync::watch::channel(false);
    daemon::serve_metrics(config.metrics, shared.metrics.clone(), rx.clone()).await?;
    if let Some(send) = config.send.as_ref().filter(|s| s.enabled) {
        let opts = netjes_milter::report_send::SendOptions {
            out: None,
            relay: Some(send.relay.clone()),
            max_size: send.max_size,
            suppress_days: send.suppress_days,
            reporter: netjes_milter::report::Reporter { org_name: config.settings.authserv_id.clone(), email: send.from.clone() },
        };
        tracing::info!(relay = %send.relay.addr, "DMARC reports are sent daily");
        tokio::spawn(netjes_milter::report_send::daily(verdicts.clone(), dns.clone(), opts, rx.clone()));
    }
    let server = tokio::spawn(run(listener, shared.clone(), rx));
    daemon::until_stopped(server, tx, || {
        let c = load(&a)?;
        log_key_errors(&c);
        shared.replace(c.milter(dns.clone(), Some(verdicts.clone()), failures.clone()));
        Ok(())
    })
    .await
}
