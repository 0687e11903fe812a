use crate::exit;
use crate::output::{dim, heading, mark, print_json, Tone};
use crate::GlobalOpts;
use netjes_check::{check_domain, CheckOptions, Status};
use netjes_dns::master::parse_master_file;
use netjes_dns::offline::ZoneResolver;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Zone files larger than this are refused (the largest real zones of a
/// mail domain are a few hundred records).
const MAX_ZONE_FILE: u64 = 16 * 1024 * 1024;

pub const CHECK_EXIT_CODES: &str = "\
EXAMPLES:
    netjes check example.com
    netjes check https://www.example.com/contact        # the domain of a URL, said in the report
    netjes check alice@example.com --ip 192.0.2.25 --selector s2026
    netjes check example.com --zone example.com.zone --no-blocklists    # before you publish
    netjes check example.com --smtp                     # every MX on port 25: STARTTLS and certificate
    netjes check example.com --reports /var/lib/netjes  # DMARC advice from the domain's aggregate reports
    netjes check example.com --json | jq '.score, .verdict'

EXIT CODES:
    0   nothing fails (warnings may remain)
    1   at least one check fails: see the fixes
    2   usage error
    3   the domain could not be checked completely: a DNS timeout or SERVFAIL";

/// Audit a domain's mail setup: MX, reverse DNS, SPF, DKIM, DMARC, MTA-STS,
/// TLS-RPT and BIMI records, and blocklists, with the record to publish for
/// every fix.
///
/// A DNS timeout or SERVFAIL shows as "could not be checked", never as a
/// missing record. With --zone, names in the given zone files are answered
/// from them instead of the network, so you can see what the world will see
/// before you publish.
#[derive(clap::Args, Debug)]
#[command(after_long_help = CHECK_EXIT_CODES)]
pub struct CheckArgs {
    /// The domain to audit.
    pub domain: String,
    /// A sending address: its reverse DNS is checked, and whether SPF lets
    /// it send. May be repeated.
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
    /// A DKIM selector to check; may be repeated. Without it, common
    /// selectors and those of providers seen in MX and SPF are tried.
    #[arg(long = "selector")]
    pub selectors: Vec<String>,
    /// An RFC 1035 zone file to answer from instead of the network; its
    /// origin is the audited domain unless the file sets $ORIGIN. May be repeated.
    #[arg(long = "zone")]
    pub zones: Vec<PathBuf>,
    #[command(flatten)]
    pub blocklists: BlocklistArgs,
    /// Also trust the CA certificates in this PEM file when fetching the
    /// MTA-STS policy (a private CA, or a test's own).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Connect to each MX on port 25: the banner, STARTTLS, a certificate
    /// valid for the MX name, and the banner name against the PTR.
    #[arg(long)]
    pub smtp: bool,
    /// `netjes serve`'s data directory: the domain's DMARC aggregate
    /// reports of the last 30 days decide the DMARC advice (tighten the
    /// policy only when every source that sends for it passes).
    #[arg(long = "reports", value_name = "DIR")]
    pub reports: Option<PathBuf>,
    /// The SMTP port of the MX hosts (for test setups; senders use 25).
    #[arg(long = "smtp-port", default_value_t = 25, hide = true)]
    pub smtp_port: u16,
    /// The HTTPS port of mta-sts.DOMAIN (for test setups; senders use 443).
    #[arg(long = "https-port", default_value_t = 443, hide = true)]
    pub https_port: u16,
}

/// Which blocklists to ask; shared by check and analyze.
#[derive(clap::Args, Debug)]
pub struct BlocklistArgs {
    /// An IP blocklist to ask instead of the defaults (zen.spamhaus.org,
    /// bl.spamcop.net, b.barracudacentral.org, psbl.surriel.com). May be repeated.
    #[arg(long = "dnsbl", value_name = "LIST")]
    pub dnsbl: Vec<String>,
    /// A domain blocklist to ask instead of the defaults (dbl.spamhaus.org,
    /// multi.surbl.org). May be repeated.
    #[arg(long = "dbl", value_name = "LIST")]
    pub dbl: Vec<String>,
    /// Ask no blocklists.
    #[arg(long = "no-blocklists")]
    pub no_blocklists: bool,
}

impl BlocklistArgs {
    /// `None`: the defaults; `Some(empty)`: none at all.
    fn pick(&self, given: &[String]) -> Option<Vec<String>> {
        if self.no_blocklists {
            Some(vec![])
        } else if given.is_empty() {
            None
        } else {
            Some(given.to_vec())
        }
    }

    pub fn ip_lists(&self) -> Option<Vec<String>> {
        self.pick(&self.dnsbl)
    }

    pub fn domain_lists(&self) -> Option<Vec<String>> {
        self.pick(&self.dbl)
    }
}

fn tone(s: Status) -> Tone {
    match s {
        Status::Pass => Tone::Good,
        Status::Info => Tone::Neutral,
        Status::Warn | Status::Error => Tone::Warn,
        Status::Fail => Tone::Bad,
    }
}

pub async fn run(a: CheckArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    // A URL, an address, a trailing dot or an IDN: the domain in it, said.
    let (domain, note) =
        netjes_check::input::domain_of(&a.domain).map_err(|e| anyhow::anyhow!(exit::Usage(e)))?;
    // Zone files first: a bad file is an input error, whatever DNS says.
    let mut zones = Vec::new();
    for path in &a.zones {
        let size = std::fs::metadata(path)
            .map_err(|e| {
                anyhow::anyhow!(exit::Input(format!("cannot read {}: {e}", path.display())))
            })?
            .len();
        if size > MAX_ZONE_FILE {
            anyhow::bail!(exit::Input(format!(
                "{} is {size} octets; zone files over {MAX_ZONE_FILE} are refused",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(exit::Input(format!("cannot read {}: {e}", path.display())))
        })?;
        // Relative names before any $ORIGIN are relative to the audited domain.
        let zone = parse_master_file(&text, &domain)
            .map_err(|e| anyhow::anyhow!(exit::Input(format!("{}: {e}", path.display()))))?;
        zones.push(zone);
    }
    let live = g.resolver()?;
    let dns: Arc<dyn netjes_dns::Resolver> = if zones.is_empty() {
        live
    } else {
        let mut zr = ZoneResolver::new();
        for zone in zones {
            zr.add_zone(&domain, zone);
        }
        Arc::new(zr.with_fallback(live))
    };
    let net = netjes_check::tls::NetOptions {
        ca_file: a.ca_file.clone(),
        https_port: a.https_port,
        smtp_port: a.smtp_port,
        ..Default::default()
    };
    let reports = match &a.reports {
        Some(dir) => report_evidence(dir, dns.as_ref(), &domain).await?,
        None => None,
    };
    let opts = CheckOptions {
        ips: a.ips.clone(),
        selectors: a.selectors.clone(),
        ip_lists: a.blocklists.ip_lists(),
        domain_lists: a.blocklists.domain_lists(),
        net,
        smtp: a.smtp,
        reports,
    };
    let mut report = check_domain(dns.as_ref(), &domain, &opts).await;
    report.input_note = note;
    if g.json {
        print_json(&report);
    } else {
        let score = match (report.score, report.verdict) {
            (Some(v), Some(word)) if report.complete => format!("{v:.1}/10  {word}"),
            (Some(v), Some(word)) => format!("{v:.1}/10  {word} (incomplete: some checks could not run)"),
            _ => "no score".to_string(),
        };
        println!(
            "{} {}   {score}",
            heading("Mail audit of"),
            heading(&report.domain),
        );
        if let Some(n) = &report.input_note {
            println!("{}", dim(&format!("checked {}: {n}", report.domain)));
        }
        if let Some(h) = &report.headline {
            println!("{}", h);
        }
        for why in &report.capped_by {
            println!("  {} {}", dim("held down by:"), why);
        }
        for s in &report.scores {
            println!();
            let score = match s.score {
                Some(v) => format!("{v:.1}/10"),
                None => "could not be checked".to_string(),
            };
            println!("{} {}", heading(s.category.title()), dim(&score));
            for f in report.findings.iter().filter(|f| f.category == s.category) {
                println!("  {} {}", mark(tone(f.status)), f.message);
                if let Some(adv) = &f.advice {
                    println!("      {}", dim(adv));
                }
                if let Some(fix) = &f.fix {
                    println!("      {} {}", dim("publish:"), fix.zone_line());
                }
            }
        }
        if let Some(tree) = &report.spf_tree {
            if !tree.children.is_empty() {
                println!();
                println!("{}", heading("SPF tree"));
                print_tree(tree, 1);
            }
        }
    }
    Ok(if report.has(Status::Fail) {
        exit::NOT_PASSED
    } else if report.has(Status::Error) {
        exit::TEMPORARY
    } else {
        exit::OK
    })
}

fn print_tree(n: &netjes_check::spf::SpfNode, depth: usize) {
    let pad = "  ".repeat(depth);
    let what = n.record.clone().or(n.problem.clone()).unwrap_or_default();
    println!(
        "{pad}{} {} {}",
        n.domain,
        dim(&format!("({} lookups)", n.lookups)),
        dim(&what)
    );
    for c in &n.children {
        print_tree(&c.node, depth + 1);
    }
}

/// What serve's store in `dir` holds of the domain's aggregate reports.
async fn report_evidence(
    dir: &std::path::Path,
    dns: &dyn netjes_dns::Resolver,
    domain: &str,
) -> anyhow::Result<Option<netjes_check::dmarc::ReportEvidence>> {
    if !dir.join("netjes.sqlite").exists() {
        anyhow::bail!(exit::Usage(format!("--reports {}: no netjes store there", dir.display())));
    }
    let store = crate::cmd_serve::StoreArgs { data_dir: dir.to_path_buf(), master_key_file: None, postgres: None, postgres_password_file: None }.open()?;
    netjes_serve::report_view::evidence(&store, dns, domain, 30)
        .await
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))
}
