//! `netjes routes`: the signing domains' routes as socketmap tables for
//! Postfix (sender-dependent relay host, transport, SASL login and TLS
//! policy), answered from serve's store on every lookup.

use crate::daemon;
use crate::exit;
use crate::GlobalOpts;
use std::path::PathBuf;
use std::sync::Arc;

pub const AFTER_HELP: &str = "\
POSTFIX (main.cf):
    sender_dependent_relayhost_maps = socketmap:inet:127.0.0.1:8462:relayhost
    sender_dependent_default_transport_maps = socketmap:inet:127.0.0.1:8462:transport
    smtp_sender_dependent_authentication = yes
    smtp_sasl_auth_enable = yes
    smtp_sasl_password_maps = socketmap:inet:127.0.0.1:8462:sasl
    smtp_sasl_security_options = noanonymous
    smtp_sasl_tls_security_options = noanonymous
    smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8462:tls, socketmap:inet:127.0.0.1:8461:postfix
    sender_canonical_maps = socketmap:inet:127.0.0.1:8462:verp
    sender_canonical_classes = envelope_sender
    maximal_queue_lifetime = 1d
    bounce_queue_lifetime = 1d

POSTFIX (master.cf), for relays with implicit TLS (port 465):
    netjes-smtps unix - - n - - smtp
      -o smtp_tls_wrappermode=yes -o smtp_tls_security_level=encrypt

    A domain whose route is direct gets no answer: Postfix delivers to the
    recipient's MX (with MTA-STS from netjes tlspolicy, the second TLS map).

EXAMPLES:
    netjes routes --listen inet:127.0.0.1:8462 --data-dir /var/lib/netjes
    postmap -q app@customer.example socketmap:inet:127.0.0.1:8462:relayhost

EXIT CODES:
    0   stopped by a signal
    2   usage error
    4   the store or the socket cannot be opened";

/// Serve the signing domains' routes to Postfix over socketmap: relay host,
/// transport, SASL login and TLS policy per sender domain, from the store
/// of `netjes serve`, so that a change takes effect on the next message.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct RoutesArgs {
    /// Where to listen: inet:HOST:PORT or unix:PATH.
    #[arg(long, value_name = "ADDR", default_value = "inet:127.0.0.1:8462")]
    pub listen: String,
    /// netjes serve's data directory (its store), or the PostgreSQL it
    /// keeps its store in (postgres://... or "host=... dbname=...").
    #[arg(long = "data-dir", value_name = "DIR|URL", default_value = "./netjes-data")]
    pub data_dir: PathBuf,
    /// The master key that seals the passwords (as netjes serve's); or
    /// NETJES_MASTER_KEY.
    #[arg(long = "master-key-file", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// serve's bounce_domain: the `verp` map gives a signing domain's mail
    /// the return path bounces+DOMAIN@this.
    #[arg(long = "bounce-domain", value_name = "DOMAIN")]
    pub bounce_domain: Option<String>,
}

pub async fn run(a: RoutesArgs, _g: &GlobalOpts) -> anyhow::Result<i32> {
    crate::init_logging();
    let listen = netjes_net::ListenAddr::parse(&a.listen).map_err(|e| anyhow::anyhow!(exit::Usage(format!("--listen {}: {e}", a.listen))))?;
    let master = netjes_serve::crypto::MasterKey::load(a.master_key_file.as_deref(), &a.data_dir, false).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    let store = netjes_serve::store::open_spec(a.data_dir.as_os_str()).map(|c| netjes_serve::store::Store::with(c, master)).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    let maps = Arc::new(netjes_serve::routes_map::RouteMaps { store, bounce_domain: a.bounce_domain.as_ref().map(|d| d.trim_end_matches('.').to_ascii_lowercase()) });
    let listener = netjes_net::Listener::bind(&listen).await.map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot listen on {}: {e}", a.listen))))?;
    tracing::info!(listen = %a.listen, "netjes routes started");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(netjes_tlspolicy::serve_maps(listener, maps, rx));
    daemon::until_stopped(server, tx, || Ok(())).await
}
