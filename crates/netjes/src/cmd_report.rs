//! `netjes report import` and `netjes report show`: DMARC and TLS reports
//! read from files, folders, mails, mbox and Maildir into serve's store,
//! and who sends as a domain, from them.

use crate::cmd_serve::StoreArgs;
use crate::exit;
use crate::output::{dim, heading, mark, print_json, Tone};
use crate::GlobalOpts;
use clap::Subcommand;
use netjes_reports::sources::Class;
use netjes_reports::{Limits, Report};
use netjes_serve::report_store::{Added, Provenance};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Import reports: files and folders of .xml, .xml.gz, .zip, .json,
    /// .json.gz, .eml, mbox files and Maildir folders. Each input is
    /// accepted (kind, reporter, report id, policy domain, dates, rows and
    /// messages), a duplicate (the same reporter's report id, stored
    /// once), held (it ends in the future: kept apart until taken in on
    /// the web UI's Held page), or rejected with the reason, which is kept
    /// in the store.
    #[command(after_long_help = "EXAMPLES:
    netjes report import --data-dir /var/lib/netjes ~/Maildir/.DMARC
    netjes report import google.com!example.com!1700000000!1700086399.xml.gz
    netjes report import --json reports/ | jq '.[] | select(.result == \"rejected\")'

EXIT CODES:
    0   every input was a report (new or a duplicate)
    1   some input was rejected (see the reasons)
    4   a path cannot be read")]
    Import {
        /// Files or folders (read recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Decompressed octets one report may have.
        #[arg(long, default_value_t = 20 * 1024 * 1024)]
        max_report_bytes: u64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Send the DMARC aggregate reports this receiver owes (RFC 9990):
    /// from the milter's verdicts of a UTC day, one report per policy
    /// domain that asks for them (rua=) and destination, identical rows
    /// counted together, gzipped, with the RFC's file name and subject. A
    /// destination outside the domain's organisation gets it only when it
    /// publishes <domain>._report._dmarc.<its domain>; a DNS failure keeps
    /// the report for the next run. Each report goes to each destination
    /// once.
    #[command(after_long_help = "EXAMPLES:
    netjes report send --data-dir /var/lib/netjes --dry-run --out /tmp/reports
    netjes report send --config /etc/netjes/milter.toml --relay 127.0.0.1:25 --from noreply-dmarc@mx.example.org
    netjes report send --day 2026-11-29 --relay 127.0.0.1:25 --json

EXIT CODES:
    0   every report owed went out (or was written), or none was owed
    1   some report could not go: refused, unauthorised, or waiting for DNS
    2   usage error
    4   the verdict store cannot be read")]
    Send(crate::cmd_report_send::SendArgs),
    /// Read bounces of report mail (RFC 3464 delivery status
    /// notifications), from files or standard input: a destination whose
    /// report failed for good is left alone for --suppress-days. Only a
    /// bounce that returns the Message-ID of a report netjes sent counts,
    /// so a made-up bounce silences nobody. Made to be Postfix's pipe for
    /// the reports' sender address (see the README).
    #[command(after_long_help = "EXAMPLES:
    netjes report bounce --config /etc/netjes/milter.toml bounce.eml
    netjes report bounce --data-dir /var/lib/netjes --json < bounce.eml

    In Postfix's master.cf, with transport_maps sending the reports'
    address to it:
    netjes-bounce unix - n n - - pipe
      user=netjes argv=/usr/local/bin/netjes report bounce --config /etc/netjes/milter.toml

EXIT CODES:
    0   read (a mail that is no bounce, or not of our mail, is read and left)
    2   usage error
    75  the verdict store cannot be opened (EX_TEMPFAIL: Postfix keeps the
        bounce and tries again)")]
    Bounce(crate::cmd_report_send::BounceArgs),
    /// Who sends as DOMAIN, from its aggregate reports: every source
    /// address with its forward-confirmed PTR, organisation, volume, aligned
    /// pass rates and dispositions, classified as passing, authorised but
    /// failing (with what to fix), forwarder or unauthorised; and whether
    /// the domain is ready for a stricter policy.
    #[command(after_long_help = "EXAMPLES:
    netjes report show example.com
    netjes report show example.com --since 2026-11-01 --json")]
    Show {
        /// The policy domain.
        domain: String,
        /// From this UTC day (YYYY-MM-DD); the last 30 days by default.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(c: ReportCommand, g: &GlobalOpts) -> anyhow::Result<i32> {
    match c {
        ReportCommand::Import {
            paths,
            max_report_bytes,
            store,
        } => import(&paths, max_report_bytes, &store, g),
        ReportCommand::Send(a) => crate::cmd_report_send::run(a, g).await,
        ReportCommand::Bounce(a) => crate::cmd_report_send::bounce(a, g),
        ReportCommand::Show {
            domain,
            since,
            store,
        } => show(&domain, since.as_deref(), &store, g).await,
    }
}

/// Every file under the paths, folders walked (Maildir's cur/ and new/
/// are folders like any other), in a stable order.
fn files_under(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = todo.pop() {
        let meta = std::fs::metadata(&p)
            .map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot read {}: {e}", p.display()))))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            todo.extend(entries.into_iter().rev());
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// The messages of an mbox file (lines "From " after a blank line start
/// one), or the file itself.
fn messages_of(bytes: &[u8]) -> Vec<&[u8]> {
    if !bytes.starts_with(b"From ") {
        return vec![bytes];
    }
    let mut starts = vec![0];
    let mut i = 0;
    while let Some(n) = bytes[i..].windows(7).position(|w| w == b"\n\nFrom ") {
        starts.push(i + n + 2);
        i += n + 2;
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let end = starts.get(k + 1).copied().unwrap_or(bytes.len());
            let m = &bytes[*s..end];
            // Without its "From " line.
            m.iter().position(|b| *b == b'\n').map(|nl| &m[nl + 1..]).unwrap_or(m)
        })
        .collect()
}

fn describe(r: &Report) -> serde_json::Value {
    match r {
        Report::Aggregate(a) => serde_json::json!({
            "kind": "aggregate", "reporter": a.org_name, "report_id": a.report_id,
            "policy_domain": a.policy.domain, "begin": a.begin, "end": a.end,
            "rows": a.records.len(), "messages": a.messages(), "format": a.format,
        }),
        Report::Tls(t) => serde_json::json!({
            "kind": "tls", "reporter": t.organization, "report_id": t.report_id,
            "policy_domain": t.policies.first().map(|p| p.policy_domain.clone()),
            "begin": t.start, "end": t.end,
            "sessions": t.policies.iter().map(|p| p.successful_sessions + p.failed_sessions).sum::<u64>(),
            "failed": t.policies.iter().map(|p| p.failed_sessions).sum::<u64>(),
        }),
        Report::Failure(f) => serde_json::json!({
            "kind": "failure", "reporter": f.reporter, "report_id": f.message_id,
            "policy_domain": f.reported_domain, "source_ip": f.source_ip, "format": f.format,
        }),
    }
}

fn import(paths: &[PathBuf], max_bytes: u64, store: &StoreArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let s = store.open()?;
    let limits = Limits {
        max_report_bytes: max_bytes,
        ..Default::default()
    };
    let mut results = Vec::new();
    let mut rejected = 0;
    for path in files_under(paths)? {
        let bytes = exit::read_input(Some(&path))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let source = path.display().to_string();
        for msg in messages_of(&bytes) {
            for r in netjes_reports::read(&name, msg, &limits) {
                let (result, mut v) = match r {
                    Ok(rep) => {
                        // Vouched for by the user, but a report from the
                        // future is still kept apart.
                        let held = netjes_serve::report_intake::out_of_place(&Default::default(), &rep, netjes_serve::store::now());
                        let how = Provenance { trusted: true, held: held.clone(), source: source.clone(), raw: None };
                        let added = s.add_report(&rep, &how).map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
                        let word = match (added, &held) {
                            (Added::Duplicate, _) => "duplicate",
                            (Added::Stored, Some(_)) => "held",
                            (Added::Stored, None) => "accepted",
                        };
                        let mut v = describe(&rep);
                        if let Some(h) = held {
                            v["reason"] = h.into();
                        }
                        (word, v)
                    }
                    Err(e) => {
                        rejected += 1;
                        s.add_rejected(&source, &e.to_string(), msg)
                            .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
                        ("rejected", serde_json::json!({ "reason": e.to_string() }))
                    }
                };
                v["result"] = result.into();
                v["input"] = source.clone().into();
                if !g.json {
                    print_import_line(&v);
                }
                results.push(v);
            }
        }
    }
    if g.json {
        print_json(&results);
    }
    Ok(if rejected > 0 { exit::NOT_PASSED } else { exit::OK })
}

fn print_import_line(v: &serde_json::Value) {
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => "unknown".into(),
        other => other.to_string(),
    };
    match v["result"].as_str() {
        Some("rejected") => println!("{} rejected  {}: {}", mark(Tone::Bad), s("input"), s("reason")),
        Some("held") => println!("{} held      {} from {} ({}): {}", mark(Tone::Warn), s("kind"), s("reporter"), s("report_id"), s("reason")),
        Some(word) => println!(
            "{} {word:<9} {} from {} ({}) about {}: {}",
            mark(if word == "accepted" { Tone::Good } else { Tone::Neutral }),
            s("kind"),
            s("reporter"),
            s("report_id"),
            s("policy_domain"),
            match v["kind"].as_str() {
                Some("aggregate") => format!("{} rows, {} messages", s("rows"), s("messages")),
                Some("tls") => format!("{} sessions, {} failed", s("sessions"), s("failed")),
                _ => format!("from {}", s("source_ip")),
            }
        ),
        None => {}
    }
}

/// Days since the epoch of YYYY-MM-DD.
fn day_of(date: &str) -> Option<i64> {
    let mut it = date.split('-').map(|x| x.parse::<i64>().ok());
    netjes_reports::days_from_civil(it.next()??, it.next()??, it.next()??)
}

async fn show(domain: &str, since: Option<&str>, store: &StoreArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let (domain, _) = netjes_check::input::domain_of(domain).map_err(|e| anyhow::anyhow!(exit::Usage(e)))?;
    let today = netjes_serve::store::now().div_euclid(86_400);
    let since_day = match since {
        Some(d) => day_of(d).ok_or_else(|| anyhow::anyhow!(exit::Usage(format!("--since {d:?} is not YYYY-MM-DD"))))?,
        None => today - 30,
    };
    let s = store.open()?;
    let dns = g.resolver()?;
    let view = netjes_serve::report_view::domain_view(&s, dns.as_ref(), &domain, since_day)
        .await
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    if g.json {
        print_json(&view);
        return Ok(exit::OK);
    }
    let o = &view.overview;
    println!("{} {}", heading("Who sends as"), heading(&domain));
    for src in &o.sources {
        let pct = |n: u64| format!("{:.0} %", 100.0 * n as f64 / src.messages.max(1) as f64);
        let tone = match src.class {
            Class::Passing => Tone::Good,
            Class::Forwarder => Tone::Neutral,
            Class::AuthorisedFailing => Tone::Warn,
            Class::Unauthorised => Tone::Bad,
        };
        println!(
            "  {} {:<39} {:>7} msgs  SPF {:>5}  DKIM {:>5}  DMARC {:>5}  {}",
            mark(tone),
            src.ip,
            src.messages,
            pct(src.spf_aligned_pass),
            pct(src.dkim_aligned_pass),
            pct(src.dmarc_pass),
            serde_json::to_value(src.class).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        );
        let who = [src.ptr.clone(), src.organization.clone()].into_iter().flatten().collect::<Vec<_>>().join(", ");
        if !who.is_empty() {
            println!("      {}", dim(&who));
        }
        if let Some(a) = &src.advice {
            println!("      {a}");
        }
    }
    println!();
    println!("{} {}", heading("Readiness:"), o.readiness.sentence);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_and_mbox() {
        assert_eq!(super::day_of("1970-01-01"), Some(0));
        assert_eq!(super::day_of("2026-11-30"), Some(20_787));
        assert_eq!(super::day_of("2026-13-01"), None);
        let mbox = b"From a@b Mon\nSubject: 1\n\nx\n\nFrom c@d Tue\nSubject: 2\n\ny\n";
        let m = super::messages_of(mbox);
        assert_eq!(m.len(), 2);
        assert!(m[1].starts_with(b"Subject: 2"));
        assert_eq!(super::messages_of(b"Subject: x\n\ny").len(), 1);
    }
}
