//! `netjes report send`: the DMARC aggregate reports this receiver owes
//! (RFC 9990), made from the milter's verdicts of one UTC day, one per
//! policy domain with rua= and destination; written to a folder
//! (`--dry-run --out DIR`) or mailed through a relay.

use crate::exit;
use crate::output::{mark, print_json, Tone};
use crate::GlobalOpts;
use netjes_milter::report::{authorised, owed, Reporter};
use netjes_milter::verdicts::VerdictStore;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// milter.toml: its data_dir holds the verdicts, its authserv_id names
    /// us in the reports.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The milter's data directory (verdicts.sqlite); overrides the config.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
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
    /// The SMTP relay (HOST:PORT) the mails go through; needed without
    /// --dry-run. STARTTLS with --relay-starttls (required off loopback).
    #[arg(long, value_name = "HOST:PORT")]
    pub relay: Option<String>,
    #[arg(long = "relay-starttls")]
    pub relay_starttls: bool,
    /// Days a destination that refused a report for good (a 5xx to RCPT)
    /// is left alone.
    #[arg(long = "suppress-days", value_name = "DAYS", default_value_t = 7)]
    pub suppress_days: u32,
    /// The largest gzipped report file; a bigger report goes in parts.
    #[arg(long = "max-size", value_name = "OCTETS", default_value_t = 5 * 1024 * 1024)]
    pub max_size: usize,
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

/// Where the verdicts are and who we are, from the flags and the config.
fn setting(a: &SendArgs) -> anyhow::Result<(PathBuf, String)> {
    let cfg = match &a.config {
        Some(p) => {
            let text = exit::read_input(Some(p))?;
            let text = String::from_utf8_lossy(&text);
            Some(netjes_milter::config::Config::parse(&text).map_err(|e| anyhow::anyhow!(exit::Usage(e.join("; "))))?)
        }
        None => None,
    };
    let dir = a
        .data_dir
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.data_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("./netjes-data"));
    let name = a
        .org_name
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.settings.authserv_id.clone()))
        .unwrap_or_else(netjes_net::default_hostname);
    Ok((dir, name))
}

pub async fn run(a: SendArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let (dir, org_name) = setting(&a)?;
    let today = now().div_euclid(86_400);
    let days: Vec<i64> = match &a.day {
        Some(d) => vec![day_of(d).ok_or_else(|| anyhow::anyhow!(exit::Usage(format!("--day {d:?} is not YYYY-MM-DD"))))?],
        // A run that was missed (the host was down) is made up; what went
        // out already is not sent again.
        None => (today - 7..today).collect(),
    };
    if !a.dry_run && a.relay.is_none() {
        anyhow::bail!(exit::Usage("give --relay HOST:PORT to send, or --dry-run --out DIR".into()));
    }
    if let Some(r) = a.relay.as_deref() {
        let loopback = r.parse::<std::net::SocketAddr>().is_ok_and(|s| s.ip().is_loopback()) || r.starts_with("localhost:");
        if !loopback && !a.relay_starttls {
            anyhow::bail!(exit::Usage(format!("--relay {r} is not on loopback: add --relay-starttls")));
        }
    }
    if !dir.join("verdicts.sqlite").exists() {
        anyhow::bail!(exit::Input(format!("no verdicts in {} (the milter's data_dir)", dir.display())));
    }
    let store = VerdictStore::open(&dir, None).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    let from = a.from.clone().unwrap_or_else(|| format!("noreply-dmarc@{org_name}"));
    let who = Reporter { org_name: org_name.clone(), email: from.clone() };
    let dns = g.resolver()?;
    let mut results = Vec::new();
    let mut trouble = false;
    for day in days {
        let rows = store
            .rows_between(day * 86_400, (day + 1) * 86_400)
            .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
        trouble |= send_day(&a, &store, dns.as_ref(), &rows, day, &who, &mut results).await?;
    }
    if g.json {
        print_json(&results);
    } else if results.is_empty() {
        println!("No report is owed for that day: no verdict of a domain that asks for reports.");
    } else {
        for r in &results {
            let ok = matches!(r["result"].as_str(), Some("sent" | "written" | "already-sent"));
            println!(
                "{} {:<12} {} -> {}: {} records, {} messages{}",
                mark(if ok { Tone::Good } else { Tone::Warn }),
                r["result"].as_str().unwrap_or(""),
                r["policy_domain"].as_str().unwrap_or(""),
                r["destination"].as_str().unwrap_or(""),
                r["records"],
                r["messages"],
                r["detail"].as_str().map(|d| format!(" ({d})")).unwrap_or_default()
            );
        }
    }
    Ok(if trouble { exit::NOT_PASSED } else { exit::OK })
}

/// The reports of one day; whether any could not go.
async fn send_day(
    a: &SendArgs,
    store: &VerdictStore,
    dns: &dyn netjes_dns::Resolver,
    rows: &[netjes_milter::verdicts::Row],
    day: i64,
    who: &Reporter,
    results: &mut Vec<serde_json::Value>,
) -> anyhow::Result<bool> {
    let mut trouble = false;
    let org_name = &who.org_name;
    // "Known": mail from the domain was delivered in the 30 days before.
    let known = |d: &str| store.delivered_from(d, (day - 30) * 86_400).unwrap_or(false);
    for o in owed(rows, day, who, &known) {
        let generator = concat!("netjes ", env!("CARGO_PKG_VERSION"));
        let parts = netjes_reports::write::fit(&o.report, generator, a.max_size);
        if parts.is_empty() {
            trouble = true;
            results.push(serde_json::json!({
                "policy_domain": o.report.policy.domain, "result": "too-large", "day": netjes_reports::write::day_text(day),
                "detail": format!("one record alone is over --max-size {}", a.max_size),
            }));
        }
        for (report, gz) in parts {
            let domain = report.policy.domain.clone();
            // Parts of one report have names of their own.
            let name = netjes_reports::write::report_file_name(&report, org_name);
            if let Some(out) = a.out.as_ref().filter(|_| a.dry_run) {
                std::fs::create_dir_all(out)?;
                std::fs::write(out.join(&name), &gz)?;
            }
            for dest in &o.rua {
                let (result, detail) = deliver(a, store, dns, (&report, &name), &gz, dest, who, day).await;
                trouble |= !matches!(result, "sent" | "written" | "already-sent");
                results.push(serde_json::json!({
                    "policy_domain": domain, "destination": dest, "result": result, "detail": detail, "report_id": report.report_id,
                    "records": report.records.len(), "messages": report.messages(), "day": netjes_reports::write::day_text(day),
                }));
            }
        }
    }
    Ok(trouble)
}

/// One report to one destination: authorised, then written or sent once.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    a: &SendArgs,
    store: &VerdictStore,
    dns: &dyn netjes_dns::Resolver,
    (r, file): (&netjes_reports::aggregate::AggregateReport, &str),
    gz: &[u8],
    dest: &str,
    who: &Reporter,
    day: i64,
) -> (&'static str, Option<String>) {
    let domain = &r.policy.domain;
    match authorised(dns, domain, dest).await {
        Ok(true) => {}
        Ok(false) => return ("unauthorised", Some(format!("{dest} does not publish {domain}._report._dmarc for reports about {domain}"))),
        // Kept for the next run: neither dropped nor sent unchecked.
        Err(e) => return ("deferred", Some(format!("DNS: {e}"))),
    }
    if !a.dry_run {
        if let Ok(Some((until, why))) = store.dead_until(dest, now()) {
            return ("suppressed", Some(format!("until {}: {why}", netjes_reports::write::day_text(until.div_euclid(86_400)))));
        }
    }
    // Each part of a report to each destination once.
    let ledger = format!("{dest} {}", r.report_id);
    if !a.dry_run && store.was_sent(domain, day, &ledger).unwrap_or(false) {
        return ("already-sent", None);
    }
    let id = format!("{}.{}@{}", r.report_id.replace(['!', '@'], "."), dest.replace('@', "."), who.org_name);
    let date = mail_parser::DateTime::from_timestamp(now()).to_rfc822();
    let parts = netjes_reports::write::MailParts { from: &who.email, to: dest, date: &date, message_id: &id };
    let mail = netjes_reports::write::mail(r, &who.org_name, &parts, gz);
    if let Some(out) = a.out.as_ref().filter(|_| a.dry_run) {
        let name = format!("{}.{dest}.eml", file.trim_end_matches(".xml.gz"));
        return match std::fs::write(out.join(name), &mail) {
            Ok(()) => ("written", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
    }
    let relay = netjes_check::smtp::Relay {
        addr: a.relay.clone().unwrap_or_default(),
        starttls: a.relay_starttls,
        ca_file: None,
        helo: who.org_name.clone(),
        timeout: std::time::Duration::from_secs(60),
    };
    // RFC 9990 §2.5: the null sender would lose bounces that say a
    // destination is dead; the report's own address takes them.
    match netjes_check::smtp::send(&relay, &who.email, &[dest.to_string()], &mail).await {
        Ok(()) => {
            let _ = store.mark_sent(domain, day, &ledger, now());
            ("sent", None)
        }
        Err(e) => {
            // A permanent refusal of the recipient: the destination is dead
            // for a while (RFC 9990 §2.5 lets a receiver stop reporting).
            if e.starts_with("RCPT TO: 5") {
                let until = now() + i64::from(a.suppress_days) * 86_400;
                let _ = store.mark_dead(dest, until, &e);
            }
            ("failed", Some(e))
        }
    }
}
