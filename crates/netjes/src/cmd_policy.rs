use crate::daemon;
use crate::exit;
use crate::GlobalOpts;
use netjes_policy::config::RawConfig;
use netjes_policy::server::{run, Listener};
use netjes_policy::config::StoreSetting;
use netjes_policy::store::{RedisStore, SqliteStore, Store};
use netjes_policy::{Config, Policy};
use std::path::PathBuf;
use std::sync::Arc;

pub const POLICY_AFTER_HELP: &str = "\
EXAMPLES:
    netjes policy --config /etc/netjes/policy.toml
    netjes policy --listen inet:127.0.0.1:10040 --data-dir /var/lib/netjes --metrics 127.0.0.1:9125

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
    /// Keep the state in Redis (redis://HOST:PORT/DB, rediss://...,
    /// redis+unix:///PATH, redis-sentinel://H:P[,H:P...]/MASTER), shared with the policy services of other MX
    /// hosts; the same as [store] url.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

fn load(a: &PolicyArgs) -> Result<Config, Vec<String>> {
    let mut raw: RawConfig = daemon::read_config(a.config.as_deref())?;
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
    if let Some(r) = &a.redis {
        raw.store.url = Some(r.clone());
    }
    Config::validate(raw)
}

pub async fn run_policy(a: PolicyArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    crate::init_logging();
    let config = load(&a).map_err(daemon::bad_config)?;
    // A change of [store] takes a restart: SIGHUP keeps the store it has.
    let store: Arc<dyn Store> = match &config.store {
        StoreSetting::Sqlite => Arc::new(SqliteStore::open(&config.raw.data_dir).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?),
        StoreSetting::Redis { url, password, ca_pem, prefix, timeout } => {
            Arc::new(RedisStore::with_ca(url, password.clone(), prefix, *timeout, ca_pem.clone()).map_err(|e| anyhow::anyhow!(exit::Usage(e.to_string())))?)
        }
    };
    let dns = g.resolver()?;
    let listener = Listener::bind(&config.listen).await.map_err(|e| {
        anyhow::anyhow!(exit::Input(format!(
            "cannot listen on {}: {e}",
            config.listen
        )))
    })?;
    let metrics = config.metrics;
    tracing::info!(listen = %config.listen, data_dir = %config.raw.data_dir.display(), "netjes policy started");
    let rights = match &config.raw.sending_domains_dir {
        Some(dir) => Some(ServeRights::open(dir).map_err(|e| anyhow::anyhow!(exit::Input(format!("sending_domains_dir {}: {e}", dir.display()))))?),
        None => None,
    };
    let mut policy = Policy::new(Arc::new(config), store, dns);
    if let Some(r) = rights {
        policy = policy.with_sender_rights(Arc::new(r));
    }
    let policy = Arc::new(policy);
    let (tx, rx) = tokio::sync::watch::channel(false);
    daemon::serve_metrics(metrics, policy.metrics.clone(), rx.clone()).await?;
    let server = tokio::spawn(run(listener, policy.clone(), rx));
    daemon::until_stopped(server, tx, || load(&a).map(|c| policy.reload(c))).await
}

/// Application logins' sending rights from netjes serve's store, read
/// without its master key (no secret is involved).
struct ServeRights(std::sync::Mutex<netjes_serve::db::Conn>);

impl ServeRights {
    fn open(dir: &std::path::Path) -> Result<ServeRights, String> {
        netjes_serve::store::open_spec(dir.as_os_str()).map(|c| ServeRights(std::sync::Mutex::new(c))).map_err(|e| e.to_string())
    }
}

impl netjes_policy::senders::SenderRights for ServeRights {
    fn refusal(&self, login: &str, domain: &str) -> Result<Option<String>, String> {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(netjes_serve::route_store::send_right(&c, login, domain).map_err(|e| e.to_string())?.refusal(login, domain))
    }

    fn suppressed(&self, domain: &str, recipient: &str) -> Result<Option<String>, String> {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(netjes_serve::suppress_store::suppressed(&c, domain, recipient)
            .map_err(|e| e.to_string())?
            .map(|s| format!("{domain} no longer sends to this address ({}: {})", s.class, s.reason)))
    }
}
