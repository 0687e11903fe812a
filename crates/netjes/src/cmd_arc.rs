use crate::exit;
use crate::output::{field, mark, print_json, result_word, tone_of};
use crate::GlobalOpts;
use clap::Subcommand;
use netjes_auth::arc::{seal_message, verify_arc, ArcResult, SealOptions};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ArcCommand {
    /// Validate the ARC chain of a message (RFC 8617 §5.2).
    ///
    /// Prints the chain validation status (cv), the number of sets, the
    /// sealers, and the oldest instance whose message signature still
    /// validates ("oldest-pass", 0 when all do).
    #[command(after_long_help = "EXAMPLES:
    netjes arc verify forwarded.eml
    netjes arc verify --json - < forwarded.eml")]
    Verify {
        /// The message; "-" or nothing reads standard input.
        message: Option<PathBuf>,
    },
    /// Add an ARC set to a message, as a forwarder or mailing list does, and
    /// print the message with it.
    ///
    /// The chain is validated first; the new ARC-Authentication-Results
    /// copies the Authentication-Results fields that carry --authserv-id.
    #[command(after_long_help = "EXAMPLES:
    netjes arc seal --domain lists.example.org --selector arc --key arc.private --authserv-id mx.example.org message.eml")]
    Seal {
        #[command(flatten)]
        k: crate::cmd_dkim::SigningKeyArgs,
        /// Our authserv-id, as in our Authentication-Results fields.
        #[arg(long = "authserv-id")]
        authserv_id: String,
        message: Option<PathBuf>,
    },
}

pub async fn run(cmd: ArcCommand, g: &GlobalOpts) -> anyhow::Result<i32> {
    match cmd {
        ArcCommand::Verify { message } => {
            let raw = exit::read_input(message.as_deref())?;
            let msg = netjes_auth::message::parse(&raw)
                .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
            let dns = g.resolver()?;
            let r = verify_arc(dns.as_ref(), &msg).await;
            if g.json {
                print_json(&r);
            } else {
                println!(
                    "{} arc={} ({} sets)",
                    mark(tone_of(r.result.as_str())),
                    result_word(r.result.as_str()),
                    r.instances
                );
                if !r.sealers.is_empty() {
                    field("sealers", r.sealers.join(" → "));
                }
                if let Some(op) = r.oldest_pass {
                    field(
                        "oldest-pass",
                        if op == 0 {
                            "0 (every message signature still validates)".to_string()
                        } else {
                            format!("{op} (the message was changed before set {op})")
                        },
                    );
                }
                if let Some(why) = &r.reason {
                    field("why", why);
                }
            }
            Ok(match r.result {
                ArcResult::Pass => exit::OK,
                ArcResult::Temperror => exit::TEMPORARY,
                _ => exit::NOT_PASSED,
            })
        }
        ArcCommand::Seal {
            k,
            authserv_id,
            message,
        } => {
            let key = k.load()?;
            let (domain, selector) = (k.domain, k.selector);
            let raw = exit::read_input(message.as_deref())?;
            let dns = g.resolver()?;
            let opts = SealOptions {
                domain,
                selector,
                authserv_id,
                headers: None,
            };
            let sealed = seal_message(dns.as_ref(), &raw, &key, &opts)
                .await
                .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(sealed.headers.as_bytes())?;
            out.write_all(&raw)?;
            Ok(exit::OK)
        }
    }
}
