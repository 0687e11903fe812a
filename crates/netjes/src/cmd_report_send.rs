//! `netjes report send`: the DMARC aggregate reports this receiver owes
//! (RFC 9990), made from the milter's verdicts of one UTC day, one per
//! policy domain with rua= and destination; written to a folder
//! (`--dry-run --out DIR`) or mailed through a relay.

use crate::exit;
use crate::output::{mark, print_json, Tone};
use crate::GlobalOpts;
use netjes_milter::report::Reporter;
use netjes_milter::report_send::{send_days, SendOptions};
use netjes_milter::verdicts::VerdictStore;
use std::path::PathBuf;

/// Where the milter's verdicts and report ledger are: `report send` and
/// `report bounce` alike.
#[derive(clap::Args, Debug)]
pub struct VerdictArgs {
    /// milter.toml: its data_dir or [store] holds the verdicts, its
    /// authserv_id names us in the reports, its [reports.send] gives the
    /// relay, the sender and suppress_days.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The milter's data directory (verdicts.sqlite); overrides the config.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The verdicts in PostgreSQL (the milters' [store] url); overrides
    /// the config. With it, one run at a time sends across the cluster.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub verdicts: VerdictArgs,
    /// The UTC day (YYYY-MM-DD); by default every finished day of the
    /// last week whose reports have not all gone out.
    #[arg(long)]
    pub day: Option<String>,
    /// Our name in the reports (org_name, and the file name's receiver);
    /// the config's authserv_id, or this host's name.
    #[arg(long = "org-name")]
    pub org_name: Option<String>,
    /// The sender and contact address of the reports.
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// Write each report (.xml.gz) and each mail (.eml) to --out instead
    /// of sending.
    #[arg(long = "dry-run", requires = "out")]
    pub dry_run: bool,
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The SMTP relay (HOST:PORT) the mails go through; without it, the
    /// config's [reports.send] relay. Needed unless --dry-run.
    #[arg(long, value_name = "HOST:PORT")]
    pub relay: Option<String>,
    /// How the relay connection is protected: none (loopback only),
    /// opportunistic, starttls or implicit (port 465).
    #[arg(long = "relay-tls", value_name = "MODE")]
    pub relay_tls: Option<String>,
    /// The same as --relay-tls starttls.
    #[arg(long = "relay-starttls", conflicts_with = "relay_tls")]
    pub relay_starttls: bool,
    /// Log in at the relay (AUTH PLAIN or LOGIN) as this user, with the
    /// password on the first line of --relay-password-file (mode 0600).
    #[arg(long = "relay-user", value_name = "USER", requires = "relay_password_file")]
    pub relay_user: Option<String>,
    #[arg(long = "relay-password-file", value_name = "FILE", requires = "relay_user")]
    pub relay_password_file: Option<PathBuf>,
    /// A private CA to trust for the relay's certificate.
    #[arg(long = "relay-ca-file", value_name = "FILE")]
    pub relay_ca_file: Option<PathBuf>,
    /// Days a destination that refused a report for good (a 5xx to RCPT)
    /// is left alone.
    #[arg(long = "suppress-days", value_name = "DAYS", default_value_t = 7)]
    pub suppress_days: u32,
    /// The largest gzipped report file; a bigger report goes in parts.
    #[arg(long = "max-size", value_name = "OCTETS", default_value_t = 5 * 1024 * 1024)]
    pub max_size: usize,
}

#[derive(clap::Args, Debug)]
pub struct BounceArgs {
    #[command(flatten)]
    pub verdicts: VerdictArgs,
    /// Days a destination whose report bounced is left alone (default:
    /// the config's suppress_days, or 7).
    #[arg(long = "suppress-days", value_name = "DAYS")]
    pub suppress_days: Option<u32>,
    /// Bounce messages; standard input when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn day_of(s: &str) -> Option<i64> {
    let mut it = s.split('-').map(|x| x.parse::<i64>().ok());
    netjes_reports::days_from_civil(it.next()??, it.next()??, it.next()??)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Where the verdicts are, who we are, and the config's [reports.send],
/// from the flags and the config.
fn setting(a: &SendArgs) -> anyhow::Result<Place> {
    place(&a.verdicts, a.org_name.as_ref())
}

/// Where the verdicts are (a directory, or PostgreSQL), who we are, and
/// the config's [reports.send].
struct Place {
    dir: PathBuf,
    db: Option<netjes_milter::verdicts_pg::PgSettings>,
    org_name: String,
    send: Option<netjes_milter::config::SendConfig>,
}

impl Place {
    fn open(&self) -> Result<VerdictStore, netjes_milter::verdicts::VerdictError> {
        VerdictStore::open_either(self.db.as_ref(), &self.dir, None)
    }
}

fn place(v: &VerdictArgs, org_name: Option<&String>) -> anyhow::Result<Place> {
    let (config, data_dir, pg) = (v.config.as_deref(), v.data_dir.as_ref(), v.postgres.as_deref());
    let cfg = match config {
        Some(p) => {
            let text = exit::read_input(Some(p))?;
            let text = String::from_utf8_lossy(&text);
            Some(netjes_milter::config::Config::parse(&text).map_err(|e| anyhow::anyhow!(exit::Usage(e.join("; "))))?)
        }
        None => None,
    };
    let dir = data_dir
        .cloned()
        .or_else(|| cfg.as_ref().map(|c| c.data_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("./netjes-data"));
    let name = org_name
        .cloned()
        .or_else(|| cfg.as_ref().map(|c| c.settings.authserv_id.clone()))
        .unwrap_or_else(netjes_net::default_hostname);
    let db = match pg {
        Some(url) => {
            let mut errors = Vec::new();
            let db = netjes_milter::config::validate_store(&netjes_milter::config::RawStore { url: Some(url.to_string()), password_file: None, ca_file: None }, &mut errors);
            if !errors.is_empty() {
                anyhow::bail!(exit::Usage(format!("--postgres: {}", errors.join("; "))));
            }
            db
        }
        None => cfg.as_ref().and_then(|c| c.verdict_db.clone()),
    };
    Ok(Place { dir, db, org_name: name, send: cfg.and_then(|c| c.send) })
}

/// The relay from the flags, or else from the config's [reports.send].
fn relay(a: &SendArgs, org_name: &str, section: Option<&netjes_milter::config::SendConfig>) -> anyhow::Result<Option<netjes_check::relay::Relay>> {
    let Some(addr) = a.relay.as_deref() else {
        return Ok(section.map(|s| s.relay.clone()));
    };
    let mut errors = Vec::new();
    let settings = netjes_check::relay::RelaySettings {
        addr,
        tls: a.relay_tls.as_deref(),
        legacy_starttls: a.relay_starttls,
        user: a.relay_user.as_deref(),
        password_file: a.relay_password_file.as_deref(),
        ca_file: a.relay_ca_file.as_deref(),
    };
    match settings.relay("--relay", org_name, &mut errors) {
        Some(r) => Ok(Some(r)),
        None => anyhow::bail!(exit::Usage(errors.join("; "))),
    }
}

pub async fn run(a: SendArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let place = setting(&a)?;
    let (org_name, section) = (place.org_name.clone(), place.send.clone());
    let today = now().div_euclid(86_400);
    let days: Vec<i64> = match &a.day {
        Some(d) => vec![day_of(d).ok_or_else(|| anyhow::anyhow!(exit::Usage(format!("--day {d:?} is not YYYY-MM-DD"))))?],
        // A run that was missed (the host was down) is made up; what went
        // out already is not sent again.
        None => (today - 7..today).collect(),
    };
    let relay = relay(&a, &org_name, section.as_ref())?;
    if !a.dry_run && relay.is_none() {
        anyhow::bail!(exit::Usage("give --relay HOST:PORT (or [reports.send] in --config) to send, or --dry-run --out DIR".into()));
    }
    if place.db.is_none() && !place.dir.join("verdicts.sqlite").exists() {
        anyhow::bail!(exit::Input(format!("no verdicts in {} (the milter's data_dir)", place.dir.display())));
    }
    let store = place.open().map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    let from = a.from.clone().or_else(|| section.as_ref().map(|s| s.from.clone())).unwrap_or_else(|| format!("noreply-dmarc@{org_name}"));
    let opts = SendOptions {
        out: a.out.clone().filter(|_| a.dry_run),
        relay,
        max_size: a.max_size,
        suppress_days: a.suppress_days,
        reporter: Reporter { org_name: org_name.clone(), email: from },
    };
    let dns = g.resolver()?;
    let results = send_days(&store, dns.as_ref(), &days, &opts).await.map_err(|e| anyhow::anyhow!(exit::Input(e)))?;
    let trouble = results.iter().any(|r| !r.ok());
    if g.json {
        print_json(&results);
    } else if results.is_empty() {
        println!("No report is owed: no verdict of a domain that asks for reports.");
    } else {
        for r in &results {
            println!(
                "{} {:<12} {} -> {}: {} records, {} messages{}",
                mark(if r.ok() { Tone::Good } else { Tone::Warn }),
                r.result,
                r.policy_domain,
                r.destination.as_deref().unwrap_or("-"),
                r.records,
                r.messages,
                r.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
            );
        }
    }
    Ok(if trouble { exit::NOT_PASSED } else { exit::OK })
}


/// `netjes report bounce`: bounces of report mail, read.
pub fn bounce(a: BounceArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let place = place(&a.verdicts, None)?;
    let suppress_days = a.suppress_days.or(place.send.as_ref().map(|s| s.suppress_days)).unwrap_or(7);
    let inputs: Vec<Option<&std::path::Path>> = if a.files.is_empty() { vec![None] } else { a.files.iter().map(|p| Some(p.as_path())).collect() };
    // Read before the store is opened: a bad file is a usage problem,
    // a store that cannot be opened is one to try again (EX_TEMPFAIL).
    let mut mails = Vec::new();
    for input in inputs {
        let name = input.map_or("standard input".to_string(), |p| p.display().to_string());
        mails.push((name, exit::read_input(input)?));
    }
    let store = match place.open() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("netjes: error: the verdict store ({}): {e}", place.dir.display());
            return Ok(exit::EX_TEMPFAIL);
        }
    };
    let mut all = Vec::new();
    for (name, raw) in mails {
        let outcomes = match netjes_bounce::parse(&raw) {
            Ok(dsn) => netjes_milter::report_send::read_bounce(&store, &dsn, now(), suppress_days),
            Err(e) => vec![netjes_milter::report_send::BounceOutcome { destination: None, result: "not-a-bounce", detail: e.to_string() }],
        };
        all.extend(outcomes.into_iter().map(|o| (name.clone(), o)));
    }
    if g.json {
        let rows: Vec<serde_json::Value> = all.iter().map(|(input, o)| serde_json::json!({"input": input, "destination": o.destination, "result": o.result, "detail": o.detail})).collect();
        print_json(&rows);
    } else {
        for (input, o) in &all {
            let tone = if o.result == "suppressed" { Tone::Warn } else { Tone::Good };
            println!("{} {:<12} {input}: {}", mark(tone), o.result, o.detail);
        }
    }
    Ok(exit::OK)
}
