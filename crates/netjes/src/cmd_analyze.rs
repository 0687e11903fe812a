use crate::cmd_check::BlocklistArgs;
use crate::cmd_verify::EnvelopeArgs;
use crate::exit;
use crate::output::{dim, heading, mark, print_json, Tone};
use crate::GlobalOpts;
use netjes_analyze::config::{AnalyzeConfig, DEFAULT_SPAMD_TIMEOUT};
use netjes_analyze::penalties::RULES;
use netjes_analyze::{analyze, Options, Report};
use netjes_check::blocklist::{DEFAULT_DOMAIN_LISTS, DEFAULT_IP_LISTS};
use std::path::PathBuf;

pub const ANALYZE_EXIT_CODES: &str = "\
EXAMPLES:
    netjes analyze message.eml
    netjes analyze --ip 192.0.2.25 --helo mail.example.com --mail-from bounce@example.com message.eml
    netjes analyze --spamd 127.0.0.1:783 --html report.html message.eml
    netjes analyze --min-score 8 message.eml || echo 'not good enough'

EXIT CODES:
    0   the message was analysed (and scored at least --min-score)
    1   the mark is below --min-score
    2   usage error, or a bad --config file
    3   the analysis is incomplete: a DNS timeout or SERVFAIL
    4   input error: the file cannot be read or is not a message";

/// Test a message the way receivers judge it, scored out of 10 as
/// mail-tester scores it: authentication (SPF, DKIM, DMARC, ARC, reverse
/// DNS), blocklists, RFC 5322 form, the Gmail/Yahoo/Outlook bulk-sender
/// rules, content and links, and the Received chain. Every point taken off
/// is explained, with the fix.
///
/// The envelope (--ip, --helo, --mail-from) is read from the Received field
/// your receiving server added when it is not given. Without aligned DKIM
/// or SPF the mark cannot be above 6. --spamd folds in a running
/// SpamAssassin's score and rules.
#[derive(clap::Args, Debug)]
#[command(after_long_help = ANALYZE_EXIT_CODES)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub envelope: EnvelopeArgs,
    #[command(flatten)]
    pub blocklists: BlocklistArgs,
    /// Ask the SpamAssassin daemon at HOST:PORT (spamd) and fold its score in.
    #[arg(long, value_name = "HOST:PORT")]
    pub spamd: Option<String>,
    /// Also write the report as a self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// A TOML file with penalties, blocklists and spamd (see samples/analyze.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Exit 1 when the mark is below this (for CI pipelines that send mail).
    #[arg(long = "min-score", value_name = "MARK")]
    pub min_score: Option<f32>,
    /// Print the table of findings and their penalties, and exit.
    #[arg(long)]
    pub penalties: bool,
    /// The message file; "-" or nothing reads standard input.
    pub message: Option<PathBuf>,
}

fn load_config(path: &Option<PathBuf>) -> anyhow::Result<AnalyzeConfig> {
    let Some(p) = path else {
        return Ok(AnalyzeConfig::default());
    };
    let text = netjes_net::read_config_file(p).map_err(|e| anyhow::anyhow!(exit::Usage(e)))?;
    AnalyzeConfig::parse(&text).map_err(|errs| {
        anyhow::anyhow!(exit::Usage(format!(
            "{}:\n  {}",
            p.display(),
            errs.join("\n  ")
        )))
    })
}

pub async fn run(a: AnalyzeArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    if a.penalties {
        if g.json {
            print_json(&RULES);
        } else {
            for r in RULES {
                println!("{:>4.1}  {:<32} {}", r.penalty, r.id, dim(r.title));
            }
        }
        return Ok(exit::OK);
    }
    let cfg = load_config(&a.config)?;
    let raw = exit::read_input(a.message.as_deref())?;
    let dns = g.resolver()?;
    let defaults = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ip_lists = a
        .blocklists
        .ip_lists()
        .or(cfg.ip_lists.clone())
        .unwrap_or_else(|| defaults(DEFAULT_IP_LISTS));
    let domain_lists = a
        .blocklists
        .domain_lists()
        .or(cfg.domain_lists.clone())
        .unwrap_or_else(|| defaults(DEFAULT_DOMAIN_LISTS));
    let spamd = match &a.spamd {
        Some(addr) => Some((
            addr.clone(),
            cfg.spamd
                .as_ref()
                .map(|s| s.1)
                .unwrap_or(DEFAULT_SPAMD_TIMEOUT),
        )),
        None => cfg.spamd.clone(),
    };
    let e = &a.envelope;
    let o = Options {
        ip: e.ip,
        helo: e.helo.clone(),
        mail_from: e.mail_from.clone(),
        authserv_id: e.authserv_id.clone(),
        ip_lists,
        domain_lists,
        penalties: cfg.penalties.clone(),
        spamd,
        ..Default::default()
    };
    let report = analyze(dns.as_ref(), &raw, &o)
        .await
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    if let Some(path) = &a.html {
        std::fs::write(path, netjes_analyze::html_report::render(&report)).map_err(|e| {
            anyhow::anyhow!(exit::Input(format!("cannot write {}: {e}", path.display())))
        })?;
    }
    if g.json {
        print_json(&report);
    } else {
        print_report(&report);
        if let Some(path) = &a.html {
            println!();
            println!("{} {}", dim("HTML report written to"), path.display());
        }
    }
    Ok(if a.min_score.is_some_and(|m| report.score < m) {
        exit::NOT_PASSED
    } else if report.incomplete {
        exit::TEMPORARY
    } else {
        exit::OK
    })
}

fn score_text(score: f32) -> String {
    let s = format!("{score:.1}/10");
    if !crate::output::colour_enabled() {
        return s;
    }
    use owo_colors::OwoColorize;
    if score >= 8.0 {
        s.green().bold().to_string()
    } else if score >= 5.0 {
        s.yellow().bold().to_string()
    } else {
        s.red().bold().to_string()
    }
}

fn print_report(r: &Report) {
    println!("{}   {}  {}", heading("Message test"), score_text(r.score), r.verdict);
    if let Some(s) = &r.subject {
        println!("  {:<10} {s}", dim("subject"));
    }
    if let Some(f) = &r.from {
        println!("  {:<10} {f}", dim("from"));
    }
    let env = &r.envelope;
    let ip = env
        .ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into());
    println!(
        "  {:<10} {ip}, HELO {}, MAIL FROM <{}>  {}",
        dim("envelope"),
        env.helo.as_deref().unwrap_or("unknown"),
        env.mail_from.as_deref().unwrap_or(""),
        dim(&format!("({})", env.source))
    );
    if let Some(why) = &r.cap_reason {
        println!("  {} held down: {why}", mark(Tone::Bad));
    }
    if r.incomplete {
        println!(
            "  {} incomplete: a DNS lookup timed out or failed; try again",
            mark(Tone::Warn)
        );
    }
    if !r.why_spam.is_empty() {
        println!();
        println!("{}", heading("Why this is spam"));
        for (i, f) in r.why_spam.iter().enumerate() {
            println!("  {}. -{:.1}  {}", i + 1, f.penalty, f.explanation);
        }
    }
    for s in &r.sections {
        println!();
        let lost = if s.penalty > 0.0 {
            format!("-{:.1}", s.penalty)
        } else {
            "ok".into()
        };
        println!("{}  {}", heading(s.title), dim(&lost));
        for p in &s.checked.passed {
            println!("  {} {p}", mark(Tone::Good));
        }
        for n in &s.checked.not_checked {
            println!("  {} not checked: {n}", mark(Tone::Neutral));
        }
        let ran = !s.checked.passed.is_empty() || s.checked.not_checked.is_empty();
        if s.findings.is_empty() && ran && s.checked.passed.is_empty() {
            println!("  {} nothing to fix", mark(Tone::Good));
        }
        for f in &s.findings {
            let (tone, pen) = if f.penalty > 0.0 {
                (Tone::Bad, format!("-{:.1}", f.penalty))
            } else {
                (Tone::Neutral, "    ".into())
            };
            println!(
                "  {} {pen:>4}  {}  {}",
                mark(tone),
                f.explanation,
                dim(&format!("[{}]", f.id))
            );
            if let Some(fix) = &f.fix {
                println!("           {} {fix}", dim("fix:"));
            }
        }
        if s.section == netjes_analyze::finding::Section::Received {
            for h in &r.hops {
                let from = h
                    .from
                    .clone()
                    .or(h.from_ip.map(|i| i.to_string()))
                    .unwrap_or_else(|| "?".into());
                let delay = h.delay.map(|d| format!("+{d}s")).unwrap_or_default();
                let tls = h.tls.clone().unwrap_or_else(|| "no TLS".into());
                let time = h.time.clone().unwrap_or_else(|| "no time".into());
                println!(
                    "  {:>2}. {from} → {}  {}",
                    h.index,
                    h.by.as_deref().unwrap_or("?"),
                    dim(&format!("{time} {delay} {tls}"))
                );
            }
        }
        if s.section == netjes_analyze::finding::Section::Spamassassin {
            match (&r.spamassassin, &r.spamassassin_error) {
                (Some(sa), _) => {
                    for rule in sa.rules.iter().filter(|r| r.points != 0.0) {
                        println!(
                            "       {:>5.1} {:<24} {}",
                            rule.points,
                            rule.name,
                            dim(&rule.description)
                        );
                    }
                }
                (None, Some(e)) => println!(
                    "  {} SpamAssassin could not be asked: {e}",
                    mark(Tone::Warn)
                ),
                (None, None) => println!("  {}", dim("not asked (give --spamd HOST:PORT)")),
            }
        }
    }
    println!();
    println!("{}", heading("Authentication-Results:"));
    println!(
        "  {}",
        r.auth.authentication_results.replace("\r\n\t", "\n    ")
    );
}
