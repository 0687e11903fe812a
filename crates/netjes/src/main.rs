//! `netjes`: make email arrive.
//!
//! Errors inside the libraries are typed (thiserror); here they become
//! anyhow errors with their chain printed, and an exit code from [`exit`].

mod cmd_analyze;
mod cmd_arc;
mod cmd_bounce;
mod cmd_check;
mod cmd_dkim;
mod cmd_dmarc;
mod cmd_events;
mod cmd_milter;
mod cmd_policy;
mod cmd_report;
mod cmd_report_send;
mod cmd_routes;
mod cmd_serve;
mod cmd_spf;
mod cmd_tlspolicy;
mod cmd_verify;
mod daemon;
mod exit;
mod output;

use clap::{Parser, Subcommand};
use netjes_dns::{CachingResolver, DnsConfig, HickoryResolver, Resolver};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const VERIFY_HELP: &str = concat!(
    "EXAMPLES:\n    netjes verify --ip 192.0.2.25 --helo mail.example.com --mail-from alice@example.com message.eml\n    netjes verify --json - < message.eml    # DKIM, ARC and DMARC; SPF needs --ip\n\n",
    "EXIT CODES:\n    0   DMARC passes (or, without a policy, DKIM or SPF passes)\n    1   it does not pass, or the message was refused as malformed (no usable From)\n    2   usage error\n    3   a DNS timeout or SERVFAIL left the verdict open\n    4   not a message, or over the limits (1000 header fields, 1 MiB of header)\n"
);

const EXIT_CODES: &str = "\
EXIT CODES:
    0   success: the check passed, the key matches, the output was written
    1   the check ran and did not pass (fail, softfail, neutral, none, permerror, policy)
    2   usage error: a flag or argument is wrong
    3   temporary failure: a DNS timeout or SERVFAIL (temperror); try again later
    4   input error: a file cannot be read, or is not a message or a key
    5   dkim testkey: no key is published at the selector
    6   dkim testkey: a different key is published
    7   dkim testkey: the published record is malformed";

#[derive(Parser, Debug)]
#[command(
    name = "netjes",
    version,
    about = "Make email arrive: SPF, DKIM, DMARC and ARC, checked and signed as the RFCs say",
    long_about = "netjes checks and signs mail the way receivers judge it: SPF (RFC 7208), \
DKIM (RFC 6376, 8301, 8463), DMARC (RFC 9989) and ARC (RFC 8617), over real DNS.\n\n\
Every command prints a readable report, or JSON with --json. DNS failures are \
reported as temperror and never as a missing record.",
    after_long_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Ask this name server (HOST:PORT) instead of the system's resolvers.
    /// May be repeated, or given as a comma-separated list in NETJES_NAMESERVER.
    #[arg(
        long = "nameserver",
        global = true,
        value_name = "HOST:PORT",
        env = "NETJES_NAMESERVER",
        value_delimiter = ','
    )]
    pub nameservers: Vec<SocketAddr>,
    /// The time one DNS lookup may take, retries included.
    #[arg(
        long = "dns-timeout",
        global = true,
        value_name = "SECONDS",
        default_value_t = 5.0
    )]
    pub dns_timeout: f64,
    /// Print JSON instead of the terminal report.
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour the output.
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    pub color: output::ColorChoice,
}

impl GlobalOpts {
    pub fn resolver(&self) -> anyhow::Result<Arc<dyn Resolver>> {
        Ok(Arc::new(CachingResolver::new(self.live_resolver()?)))
    }

    /// The name servers without a cache: for `netjes serve`, which keeps
    /// its own (and asks afresh for every check a user starts).
    pub fn live_resolver(&self) -> anyhow::Result<Arc<dyn Resolver>> {
        if !(self.dns_timeout > 0.0 && self.dns_timeout <= 300.0) {
            anyhow::bail!(exit::Usage(
                "--dns-timeout must be between 0 and 300 seconds".into()
            ));
        }
        let config = DnsConfig {
            nameservers: self.nameservers.clone(),
            timeout: Duration::from_secs_f64(self.dns_timeout),
        };
        let r = HickoryResolver::new(&config).map_err(|e| anyhow::anyhow!(exit::Input(e)))?;
        Ok(Arc::new(r))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Audit a domain: MX, reverse DNS, SPF, DKIM and DMARC, with the record
    /// to publish for every fix.
    Check(cmd_check::CheckArgs),
    /// SPF (RFC 7208): evaluate a sender's policy for a client address.
    #[command(subcommand)]
    Spf(cmd_spf::SpfCommand),
    /// DKIM (RFC 6376): generate keys, publish them, test them, sign and verify.
    #[command(subcommand)]
    Dkim(cmd_dkim::DkimCommand),
    /// ARC (RFC 8617): validate a chain, or seal a message you forward.
    #[command(subcommand)]
    Arc(cmd_arc::ArcCommand),
    /// DMARC (RFC 9989): find the policy that applies to a domain.
    #[command(subcommand)]
    Dmarc(cmd_dmarc::DmarcCommand),
    /// Test a message as receivers judge it, scored out of 10, with what to fix.
    Analyze(cmd_analyze::AnalyzeArgs),
    /// Run the milter: DKIM signing and SPF, DKIM, ARC and DMARC
    /// verification inside Postfix.
    Milter(cmd_milter::MilterArgs),
    /// Run the Postfix policy service: SPF, greylisting, blocklist scores,
    /// rate limits and own-domain spoofing.
    Policy(cmd_policy::PolicyArgs),
    /// Run the MTA-STS policy server for Postfix's outbound mail
    /// (smtp_tls_policy_maps over socketmap).
    Tlspolicy(cmd_tlspolicy::TlsPolicyArgs),
    /// Run the routes server for Postfix: each signing domain's relay host,
    /// SASL login and TLS policy, from serve's store (socketmap).
    Routes(cmd_routes::RoutesArgs),
    /// Verify a message: SPF, DKIM, ARC and DMARC in one verdict, with the
    /// Authentication-Results header field that records it.
    #[command(after_long_help = VERIFY_HELP)]
    Verify(cmd_verify::VerifyArgs),
    /// Run the web UI and JSON API, the SMTP test inbox and the store of
    /// signing domains.
    Serve(cmd_serve::ServeArgs),
    /// Users of the web UI, and their API tokens.
    #[command(subcommand)]
    User(cmd_serve::UserCommand),
    /// DMARC aggregate and failure reports and TLS reports: import them,
    /// and see who sends as a domain.
    #[command(subcommand)]
    Report(cmd_report::ReportCommand),
    /// Why a message bounced: hard, soft, block or complaint, with the
    /// recipient, the status code, the remote reply and the reporting MTA.
    Bounce(cmd_bounce::BounceArgs),
    /// What happened to each message, from Postfix's log: delivered,
    /// deferred, bounced or expired, per recipient and customer domain.
    Events(cmd_events::EventsArgs),
}

/// Logs of the daemons go to standard error (journald takes them from
/// there); RUST_LOG chooses the level, "info" by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    exit::quiet_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Usage errors in JSON too when --json was asked for.
            let json = std::env::args().any(|a| a == "--json");
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            if json && e.use_stderr() {
                println!(
                    "{}",
                    serde_json::json!({ "error": e.to_string().trim(), "exit": code })
                );
            }
            let _ = e.print();
            std::process::exit(code);
        }
    };
    output::init_color(cli.global.color);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        let res = match cli.command {
            Command::Check(a) => cmd_check::run(a, &cli.global).await,
            Command::Spf(c) => cmd_spf::run(c, &cli.global).await,
            Command::Dkim(c) => cmd_dkim::run(c, &cli.global).await,
            Command::Arc(c) => cmd_arc::run(c, &cli.global).await,
            Command::Dmarc(c) => cmd_dmarc::run(c, &cli.global).await,
            Command::Verify(a) => cmd_verify::run(a, &cli.global).await,
            Command::Analyze(a) => cmd_analyze::run(a, &cli.global).await,
            Command::Policy(a) => cmd_policy::run_policy(a, &cli.global).await,
            Command::Tlspolicy(a) => cmd_tlspolicy::run(a, &cli.global).await,
            Command::Routes(a) => cmd_routes::run(a, &cli.global).await,
            Command::Milter(a) => cmd_milter::run_milter(a, &cli.global).await,
            Command::Serve(a) => cmd_serve::run_serve(a, &cli.global).await,
            Command::User(c) => cmd_serve::run_user(c, &cli.global).await,
            Command::Report(c) => cmd_report::run(c, &cli.global).await,
            Command::Bounce(a) => cmd_bounce::run(a, &cli.global),
            Command::Events(a) => cmd_events::run(a, &cli.global),
        };
        match res {
            Ok(code) => code,
            Err(e) => exit::report(&e, cli.global.json),
        }
    });
    std::process::exit(code);
}
