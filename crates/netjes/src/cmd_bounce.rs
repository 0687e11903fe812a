//! `netjes bounce FILE...`: why a message bounced. Each file is read as a
//! returned message and classified (hard, soft, block or complaint) with
//! the failed recipient, the status code, the remote server's reply and
//! the MTA that reported it.

use crate::exit;
use crate::output::{mark, print_json, Tone};
use crate::GlobalOpts;
use netjes_bounce::classify::{classify, Class, Reading};
use std::path::PathBuf;

pub const AFTER_HELP: &str = "\
CLASSES:
    hard        the address or its domain does not exist: stop sending to it
    soft        mailbox full, greylisted, delayed: it may work later
    block       refused for policy or reputation (the reply says why):
                the address is fine, the sending is not
    complaint   an ARF feedback report (RFC 5965) or Hotmail's JMRP: the
                recipient called the mail spam

    A bounce is read from its RFC 3464 status part when it has one (each
    failed or delayed recipient), and otherwise from the text that qmail,
    Exim, old Exchange and Yahoo write. Only evidence makes a bounce hard:
    a failure whose reason cannot be read is soft.

EXAMPLES:
    netjes bounce returned.eml
    netjes bounce --json ~/Maildir/.Bounces/cur/*
    netjes bounce < returned.eml

EXIT CODES:
    0   every file was read (bounces or not)
    2   usage error
    4   a file cannot be read";

/// Classify bounce messages: hard, soft, block or complaint, with the
/// failed recipient, the status code, the remote reply and the reporting
/// MTA.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct BounceArgs {
    /// netjes serve's data directory: a complaint or a hard bounce about a
    /// message we delivered (matched by its Message-ID against what
    /// `netjes events --store` saw) puts the recipient on the customer
    /// domain's suppression list, and a complaint counts for the domain's
    /// complaint rate. What names no message of ours is left alone.
    /// (A data directory, or serve's PostgreSQL: postgres://... or
    /// "host=... dbname=...", its password from the file
    /// NETJES_POSTGRES_PASSWORD_FILE names.)
    #[arg(long, value_name = "DIR|URL")]
    pub store: Option<PathBuf>,
    /// Returned messages; standard input when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(a: BounceArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let db = match &a.store {
        Some(dir) => Some(netjes_serve::store::open_spec(dir.as_os_str()).map_err(|e| anyhow::anyhow!(exit::Input(format!("--store {}: {e}", dir.display()))))?),
        None => None,
    };
    let inputs: Vec<Option<&std::path::Path>> = if a.files.is_empty() { vec![None] } else { a.files.iter().map(|p| Some(p.as_path())).collect() };
    let mut out = Vec::new();
    for input in inputs {
        let name = input.map_or("standard input".to_string(), |p| p.display().to_string());
        let raw = exit::read_input(input)?;
        let reading = classify(&raw);
        if let (Some(db), Reading::Bounces { bounces }) = (&db, &reading) {
            for b in bounces {
                eprintln!("{name}: {}", netjes_serve::bounce_intake::take(db, b));
            }
        }
        out.push((name, reading));
    }
    if g.json {
        let rows: Vec<serde_json::Value> = out
            .iter()
            .map(|(input, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["input"] = input.clone().into();
                v
            })
            .collect();
        print_json(&rows);
        return Ok(exit::OK);
    }
    for (input, r) in &out {
        match r {
            Reading::NotABounce { why } => println!("{} {input}: not a bounce ({why})", mark(Tone::Good)),
            Reading::Bounces { bounces } => {
                for b in bounces {
                    let tone = match b.class {
                        Class::Soft => Tone::Warn,
                        _ => Tone::Bad,
                    };
                    println!("{} {:<9} {input}: {}", mark(tone), b.class.name(), b.recipient.as_deref().unwrap_or("(recipient not named)"));
                    let code = [b.status.clone(), b.remote_code.map(|c| c.to_string())].into_iter().flatten().collect::<Vec<_>>().join(" / ");
                    if !code.is_empty() {
                        println!("    status:   {code}");
                    }
                    if let Some(reply) = &b.reply {
                        println!("    reply:    {reply}");
                    }
                    if let Some(mta) = &b.reporting_mta {
                        println!("    reported: by {mta} ({})", b.source);
                    }
                    println!("    why:      {}", b.reason);
                }
            }
        }
    }
    Ok(exit::OK)
}
