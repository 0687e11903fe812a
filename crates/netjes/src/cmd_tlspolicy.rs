//! `netjes tlspolicy`: MTA-STS for Postfix's outbound mail, as a socketmap
//! server for smtp_tls_policy_maps.

use crate::daemon;
use crate::exit;
use crate::GlobalOpts;
use std::path::PathBuf;
use std::sync::Arc;

pub const AFTER_HELP: &str = "\
EXAMPLES:
    netjes tlspolicy --listen inet:127.0.0.1:8461 --data-dir /var/lib/netjes
    netjes tlspolicy --listen unix:/run/netjes/tlspolicy.sock --exempt partner.example
    postmap -q example.com socketmap:inet:127.0.0.1:8461:postfix

POSTFIX (main.cf):
    smtp_tls_security_level = may
    smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix

    For a destination whose MTA-STS policy says mode: enforce, Postfix is
    told 'secure match=<the policy's mx names> servername=hostname': it
    delivers only over TLS to an MX with a valid certificate for a name the
    policy lists, and defers the mail otherwise. Testing and none policies,
    and domains without one, keep Postfix's default. For DANE, set
    smtp_dns_support_level = dnssec and smtp_tls_security_level = dane:
    Postfix does it itself.

SIGNALS:
    SIGTERM     stop accepting and exit

EXIT CODES:
    0   stopped by a signal
    2   usage error
    4   the cache or the socket cannot be opened";

/// Serve MTA-STS (RFC 8461) policies to Postfix's smtp_tls_policy_maps
/// over the socketmap protocol. Policies are fetched over HTTPS (a valid
/// certificate, no redirects, 64 KB), cached until their max_age ends (in
/// DIR/tlspolicy.sqlite, across restarts), fetched again when the
/// _mta-sts record's id changes or half max_age has passed, and used while
/// a refresh fails.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct TlsPolicyArgs {
    /// Where to listen: inet:HOST:PORT or unix:PATH.
    #[arg(long, value_name = "ADDR", default_value = "inet:127.0.0.1:8461")]
    pub listen: String,
    /// Where the policy cache is kept.
    #[arg(long = "data-dir", value_name = "DIR", default_value = "./netjes-data")]
    pub data_dir: PathBuf,
    /// A domain (and its subdomains) never given a policy; may be repeated.
    #[arg(long, value_name = "DOMAIN")]
    pub exempt: Vec<String>,
    /// Add policy_type, policy_domain, policy_string and mx_host_pattern,
    /// which Postfix 3.10 and later read for TLSRPT.
    #[arg(long)]
    pub tlsrpt: bool,
    /// Also trust the CA certificates in this PEM file for policy hosts.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Serve Prometheus metrics on HOST:PORT (/metrics).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// The HTTPS port of policy hosts (for test setups; senders use 443).
    #[arg(long = "https-port", default_value_t = 443, hide = true)]
    pub https_port: u16,
}

pub async fn run(a: TlsPolicyArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    crate::init_logging();
    let listen = netjes_net::ListenAddr::parse(&a.listen).map_err(|e| anyhow::anyhow!(exit::Usage(format!("--listen {}: {e}", a.listen))))?;
    let mut exempt = Vec::new();
    for d in &a.exempt {
        let d2 = d.trim_end_matches('.').to_ascii_lowercase();
        if !netjes_dns::is_host_name(&d2) {
            anyhow::bail!(exit::Usage(format!("--exempt {d:?} is not a domain name")));
        }
        exempt.push(d2);
    }
    let metrics_addr = match &a.metrics {
        Some(m) => Some(m.parse().map_err(|_| anyhow::anyhow!(exit::Usage(format!("--metrics {m:?} is not HOST:PORT"))))?),
        None => None,
    };
    let cache = netjes_tlspolicy::cache::Cache::open(&a.data_dir).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    let cfg = netjes_tlspolicy::Config {
        exempt,
        tlsrpt: a.tlsrpt,
        net: netjes_check::tls::NetOptions { ca_file: a.ca_file.clone(), https_port: a.https_port, ..Default::default() },
    };
    let metrics = Arc::new(netjes_net::metrics::Metrics::default());
    let svc = Arc::new(netjes_tlspolicy::Service::new(g.resolver()?, cache, cfg, metrics.clone()));
    let listener = netjes_net::Listener::bind(&listen).await.map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot listen on {}: {e}", a.listen))))?;
    tracing::info!(listen = %a.listen, "netjes tlspolicy started");
    let (tx, rx) = tokio::sync::watch::channel(false);
    daemon::serve_metrics(metrics_addr, metrics, rx.clone()).await?;
    let server = tokio::spawn(netjes_tlspolicy::run(listener, svc, rx));
    daemon::until_stopped(server, tx, || Ok(())).await
}
