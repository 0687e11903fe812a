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
    netjes events --follow --store /var/lib/netjes /var/log/mail.log

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
    /// netjes serve's data directory: put every hard bounce's recipient on
    /// its customer domain's suppression list (the policy service then
    /// refuses mail to it at RCPT), and queue every event for the domain's
    /// webhook (serve posts it, signed).
    /// (A data directory, or serve's PostgreSQL: postgres://... or
    /// "host=... dbname=...", its password from the file
    /// NETJES_POSTGRES_PASSWORD_FILE names.)
    #[arg(long, value_name = "DIR|URL")]
    pub store: Option<PathBuf>,
    /// Keep reading the (one) file as Postfix writes it, across rotation.
    #[arg(long, requires = "files")]
    pub follow: bool,
    /// Log files; standard input when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// An event into serve's store: queued for its customer's webhook, and a
/// hard bounce's recipient onto the suppression list (said on standard
/// error).
fn suppress(db: &netjes_serve::db::Conn, e: &netjes_bounce::events::Event) {
    let Some(domain) = &e.customer_domain else { return };
    // Counted only for our own signing domains (a row per other sender
    // would grow without bound).
    let ours = db.query_row("SELECT count(*) FROM domains WHERE domain = ?1", netjes_serve::params![domain], |r| r.get::<i64>(0)).unwrap_or(0) > 0;
    if ours {
        if let Err(err) = netjes_serve::reputation::record(db, domain, e.event, e.class.map(|c| c.name()), &e.recipient, &e.reply) {
            eprintln!("netjes: cannot count the event for {domain}: {err}");
        }
        // Delivered mail is remembered, so that a complaint about it can
        // be believed.
        if let (Some(mid), "delivered") = (&e.message_id, e.event) {
            if let Err(err) = netjes_serve::reputation::remember_sent(db, mid, &e.recipient, domain) {
                eprintln!("netjes: cannot remember {mid}: {err}");
            }
        }
    }
    if let Err(err) = netjes_serve::webhooks::queue(db, domain, &serde_json::to_string(e).unwrap_or_default()) {
        eprintln!("netjes: cannot queue the event for {domain}'s webhook: {err}");
    }
    if e.class != Some(netjes_bounce::classify::Class::Hard) {
        return;
    }
    match netjes_serve::suppress_store::suppress(db, domain, &e.recipient, "hard", &e.reply) {
        Ok(true) => {
            eprintln!("suppressed {} for {domain}: {}", e.recipient, e.reply);
            let body = serde_json::json!({"event": "suppressed", "customer_domain": domain, "recipient": e.recipient, "queue_id": e.queue_id, "message_id": e.message_id, "reply": e.reply});
            let _ = netjes_serve::webhooks::queue(db, domain, &body.to_string());
        }
        Ok(false) => {}
        Err(err) => eprintln!("netjes: cannot suppress {} for {domain}: {err}", e.recipient),
    }
}

/// Reads `path` as Postfix appends to it: from where it was, again every
/// second; from the start when it was truncated or replaced (rotation).
fn follow(path: &std::path::Path, mut each: impl FnMut(&str)) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(path)?;
    let mut inode = file.metadata()?.ino();
    let mut pos = 0u64;
    let mut pending = Vec::new();
    loop {
        let mut chunk = Vec::new();
        file.seek(SeekFrom::Start(pos))?;
        pos += file.read_to_end(&mut chunk)? as u64;
        pending.extend_from_slice(&chunk);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            each(&String::from_utf8_lossy(&line));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        match std::fs::metadata(path) {
            Ok(m) if m.ino() != inode || m.len() < pos => {
                file = std::fs::File::open(path)?;
                inode = m.ino();
                pos = 0;
                pending.clear();
            }
            _ => {}
        }
    }
}

pub fn run(a: EventsArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let db = match &a.store {
        Some(dir) => Some(netjes_serve::store::open_spec(dir.as_os_str()).map_err(|e| anyhow::anyhow!(exit::Input(format!("--store {}: {e}", dir.display()))))?),
        None => None,
    };
    let mut tracker = netjes_bounce::events::Tracker::default();
    if a.follow {
        let path = a.files[0].clone();
        follow(&path, |line| {
            if let Some(e) = tracker.feed(line) {
                if let Some(db) = &db {
                    suppress(db, &e);
                }
                if g.json {
                    println!("{}", serde_json::to_string(&e).unwrap_or_default());
                } else {
                    print_text(&e);
                }
            }
        })
        .map_err(|e| anyhow::anyhow!(exit::Input(format!("{}: {e}", path.display()))))?;
        return Ok(exit::OK);
    }
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
                if let Some(db) = &db {
                    suppress(db, &e);
                }
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
        print_text(e);
    }
    Ok(exit::OK)
}

fn print_text(e: &netjes_bounce::events::Event) {
    let tone = match e.event {
        "delivered" => Tone::Good,
        "deferred" => Tone::Warn,
        _ => Tone::Bad,
    };
    let class = e.class.map(|c| format!(" [{}]", c.name())).unwrap_or_default();
    println!("{} {} {:<9}{class} {} -> {} ({}) {}", mark(tone), e.time, e.event, e.sender.as_deref().unwrap_or("?"), e.recipient, e.queue_id, e.reply);
}
