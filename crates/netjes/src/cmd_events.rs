//! `netjes events [FILE...]`: what happened to each message, read from
//! Postfix's log: delivered, deferred, bounced or expired, per recipient,
//! with the queue id, the Message-ID, the customer domain (the sender's)
//! and the remote reply.

use crate::exit;
use crate::output::{mark, print_json, Tone};
use crate::GlobalOpts;
use std::io::BufRead;
use std::path::PathBuf;

pub const AFTER_HELP: &str = "\
WHY THE LOG:
    Postfix has no delivery-status hook that works without a patch: its
    notifications go to the sender by mail. Every delivery attempt is one
    log line of its delivery agent, with the queue id, the recipient, the
    DSN code and the remote reply; netjes joins them with the lines that
    name the message (cleanup's message-id, qmgr's from).

EXAMPLES:
    netjes events /var/log/mail.log
    netjes events --domain shop.example --json /var/log/mail.log
    journalctl -u postfix -o cat --since today | netjes events

EXIT CODES:
    0   read
    2   usage error
    4   a file cannot be read";

/// Delivery events from Postfix's log: per recipient, delivered, deferred,
/// bounced or expired, with the customer domain and the remote reply.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct EventsArgs {
    /// Only the events of this customer (sender) domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Log files; standard input when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(a: EventsArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let mut tracker = netjes_bounce::events::Tracker::default();
    let mut events = Vec::new();
    let domain = a.domain.as_deref().map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    let mut read = |r: &mut dyn BufRead| -> std::io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            // Lines are read as octets: a log may hold a stray non-UTF-8
            // byte from a remote reply.
            if r.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            if let Some(e) = tracker.feed(&String::from_utf8_lossy(&line)) {
                if domain.is_none() || e.customer_domain == domain {
                    events.push(e);
                }
            }
        }
    };
    if a.files.is_empty() {
        read(&mut std::io::stdin().lock()).map_err(|e| anyhow::anyhow!(exit::Input(format!("standard input: {e}"))))?;
    }
    for f in &a.files {
        let file = std::fs::File::open(f).map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot read {}: {e}", f.display()))))?;
        read(&mut std::io::BufReader::new(file)).map_err(|e| anyhow::anyhow!(exit::Input(format!("{}: {e}", f.display()))))?;
    }
    if g.json {
        print_json(&events);
        return Ok(exit::OK);
    }
    for e in &events {
        let tone = match e.event {
            "delivered" => Tone::Good,
            "deferred" => Tone::Warn,
            _ => Tone::Bad,
        };
        let class = e.class.map(|c| format!(" [{}]", c.name())).unwrap_or_default();
        println!(
            "{} {} {:<9}{class} {} -> {} ({}) {}",
            mark(tone),
            e.time,
            e.event,
            e.sender.as_deref().unwrap_or("?"),
            e.recipient,
            e.queue_id,
            e.reply
        );
    }
    Ok(exit::OK)
}
