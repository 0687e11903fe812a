use crate::exit;
use crate::GlobalOpts;
use netjes_policy::config::RawConfig;
use netjes_policy::server::{run, ListenAddr, Listener};
use netjes_policy::store::SqliteStore;
use netjes_policy::{Config, Policy};
use std::path::PathBuf;
use std::sync::Arc;

pub const POLICY_AFTER_HELP: &str = "\
POSTFIX (main.cf):
    smtpd_recipient_restrictions =
        permit_mynetworks,
        permit_sasl_authenticated,
        reject_unauth_destination,
        check_policy_service inet:127.0.0.1:10040
    smtpd_policy_service_default_action = DUNNO

    The policy service comes after reject_unauth_destination, so that it
    never decides for relaying. To apply rate limits to your own users,
    put check_policy_service before permit_sasl_authenticated.

SIGNALS:
    SIGHUP      reload --config; a bad file keeps the old one and logs every error
    SIGTERM     stop accepting and exit

EXIT CODES:
    0   stopped by a signal
    2   usage error, or a bad configuration (every error is listed)
    4   the state store or the socket cannot be opened";

/// Run the Postfix policy service: SPF (as policyd-spf), greylisting (as
/// postgrey), weighted DNS blocklists (as postscreen), rate limits and
/// own-domain spoofing, with one persistent state.
///
/// With no --config it runs SPF and greylisting on postgrey's and
/// policyd-spf's defaults. Flags override the file.
#[derive(clap::Args, Debug)]
#[command(after_long_help = POLICY_AFTER_HELP)]
pub struct PolicyArgs {
    /// A TOML configuration file (see samples/policy.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to listen: inet:HOST:PORT or unix:PATH.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Greylisting delay in seconds (postgrey's --delay; 300 by default).
    #[arg(long = "greylist-delay", value_name = "SECONDS")]
    pub greylist_delay: Option<u64>,
    /// The directory of the state (greylist, auto-whitelist, rate windows).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on HOST:PORT (/metrics).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
}

fn load(a: &PolicyArgs) -> Result<Config, Vec<String>> {
    let mut raw: RawConfig = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| vec![format!("cannot read {}: {e}", p.display())])?;
            toml::from_str(&text).map_err(|e| vec![format!("{}: {e}", p.display())])?
        }
        None => RawConfig::default(),
    };
    if let Some(l) = &a.listen {
        raw.listen = l.clone();
    }
    if let Some(d) = a.greylist_delay {
        raw.greylist.delay_seconds = d;
    }
    if let Some(d) = &a.data_dir {
        raw.data_dir = d.clone();
    }
    if let Some(m) = &a.metrics {
        raw.metrics = Some(m.clone());
    }
    Config::validate(raw)
}

pub async fn run_policy(a: PolicyArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    crate::init_logging();
    let config = load(&a).map_err(|e| anyhow::anyhow!(exit::Usage(format!("bad configuration:\n  {}", e.join("\n  ")))))?;
    let store = SqliteStore::open(&config.raw.data_dir).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    let dns = g.resolver()?;
    let listen = ListenAddr::parse(&config.raw.listen).map_err(|e| anyhow::anyhow!(exit::Usage(e)))?;
    let listener = Listener::bind(&listen).await.map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot listen on {}: {e}", config.raw.listen))))?;
    let metrics_addr = config.raw.metrics.clone();
    tracing::info!(listen = %config.raw.listen, data_dir = %config.raw.data_dir.display(), "netjes policy started");
    let policy = Arc::new(Policy::new(Arc::new(config), Arc::new(store), dns));
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(m) = metrics_addr {
        let l = tokio::net::TcpListener::bind(&m).await.map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot listen on {m}: {e}"))))?;
        tokio::spawn(netjes_policy::metrics::serve(l, policy.metrics.clone(), rx.clone()));
    }
    let server = tokio::spawn(run(listener, policy.clone(), rx));
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match load(&a) {
                Ok(c) => {
                    tracing::info!("configuration reloaded");
                    policy.reload(c);
                }
                Err(errors) => {
                    for e in errors {
                        tracing::error!("reload refused, the old configuration stays: {e}");
                    }
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = tx.send(true);
    let _ = server.await;
    Ok(exit::OK)
}
