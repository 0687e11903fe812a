use crate::exit;
use crate::output::{field, mark, print_json, result_word, tone_of};
use crate::GlobalOpts;
use clap::Subcommand;
use netjes_auth::spf::{evaluate, SpfRequest, SpfResult, MAX_DNS_LOOKUPS, MAX_VOID_LOOKUPS};
use std::net::IpAddr;

#[derive(Subcommand, Debug)]
pub enum SpfCommand {
    /// Evaluate SPF for a client address, as a receiving server would.
    ///
    /// Runs check_host() (RFC 7208 §4) for the MAIL FROM identity, or for
    /// postmaster@HELO when the sender is empty (the null sender of bounces).
    /// The report names the mechanism that decided, the record it is in, and
    /// the DNS lookups spent against the limits of 10 lookups and 2 void
    /// lookups.
    #[command(after_long_help = "EXAMPLES:
    netjes spf check --ip 192.0.2.25 --sender alice@example.com --helo mail.example.com
    netjes spf check --ip 192.0.2.25 --sender '' --helo mail.example.com    # a bounce: HELO identity
    netjes spf check --ip 2001:db8::25 --sender a@example.com --helo mx.example.com --json")]
    Check {
        /// The SMTP client's address.
        #[arg(long)]
        ip: IpAddr,
        /// The MAIL FROM address; "" for the null sender.
        #[arg(long, default_value = "")]
        sender: String,
        /// The HELO/EHLO name the client gave.
        #[arg(long)]
        helo: String,
        /// Our host name, for %{r} in explanations.
        #[arg(long, default_value = "unknown")]
        receiver: String,
    },
}

pub async fn run(cmd: SpfCommand, g: &GlobalOpts) -> anyhow::Result<i32> {
    match cmd {
        SpfCommand::Check {
            ip,
            sender,
            helo,
            receiver,
        } => {
            let dns = g.resolver()?;
            let out = evaluate(
                dns.as_ref(),
                &SpfRequest {
                    ip,
                    sender: &sender,
                    helo: &helo,
                    receiver: &receiver,
                },
            )
            .await;
            if g.json {
                print_json(&out);
            } else {
                println!(
                    "{} SPF {} for {} from {ip}",
                    mark(tone_of(out.result.as_str())),
                    result_word(out.result.as_str()),
                    out.domain
                );
                if let Some(r) = &out.record {
                    field("record", r);
                }
                if let Some(m) = &out.mechanism {
                    let at = out
                        .mechanism_domain
                        .as_deref()
                        .filter(|d| *d != out.domain)
                        .map(|d| format!(" (in the record of {d})"))
                        .unwrap_or_default();
                    field("matched", format!("{m}{at}"));
                }
                field("lookups", format!("{} of {MAX_DNS_LOOKUPS} DNS lookups, {} of {MAX_VOID_LOOKUPS} void lookups", out.dns_lookups, out.void_lookups));
                if let Some(e) = &out.explanation {
                    field("explanation", e);
                }
                if let Some(p) = &out.problem {
                    field(
                        if matches!(out.result, SpfResult::Pass) {
                            "note"
                        } else {
                            "why"
                        },
                        p,
                    );
                }
            }
            Ok(match out.result {
                SpfResult::Pass => exit::OK,
                SpfResult::Temperror => exit::TEMPORARY,
                _ => exit::NOT_PASSED,
            })
        }
    }
}
