use crate::exit;
use crate::output::{field, mark, print_json, result_word, Tone};
use crate::GlobalOpts;
use clap::Subcommand;
use netjes_auth::dmarc::{evaluate, DmarcInput, DmarcResult};

#[derive(Subcommand, Debug)]
pub enum DmarcCommand {
    /// Find the DMARC policy that applies to mail from DOMAIN.
    ///
    /// Walks the DNS tree as RFC 9989 §4.10 says, from DOMAIN towards the
    /// root, and shows where the record was found, the organizational
    /// domain, the policy that applies (p, sp or np) and the tags that RFC
    /// 9989 removed (pct, rf, ri), which receivers now ignore.
    #[command(after_long_help = "EXAMPLES:
    netjes dmarc lookup example.com
    netjes dmarc lookup mail.shop.example.com --json    # the tree walk finds the organizational policy")]
    Lookup {
        /// The From domain.
        domain: String,
    },
}

pub async fn run(cmd: DmarcCommand, g: &GlobalOpts) -> anyhow::Result<i32> {
    match cmd {
        DmarcCommand::Lookup { domain } => {
            let dns = g.resolver()?;
            let domains = [domain.trim_end_matches('.').to_ascii_lowercase()];
            let r = evaluate(
                dns.as_ref(),
                &DmarcInput {
                    from_domains: &domains,
                    shown_domains: &[],
                    spf: None,
                    dkim: &[],
                },
            )
            .await;
            let found = r.record.is_some();
            if g.json {
                print_json(&r);
            } else if r.result == DmarcResult::Temperror {
                println!(
                    "{} DMARC for {} could not be checked: {}",
                    mark(Tone::Warn),
                    domains[0],
                    r.reason.clone().unwrap_or_default()
                );
            } else if let Some(rec) = &r.record {
                let p = r.policy.map(|p| p.as_str()).unwrap_or("none");
                let tone = if p == "none" { Tone::Warn } else { Tone::Good };
                println!(
                    "{} DMARC policy for {}: {}",
                    mark(tone),
                    domains[0],
                    result_word(p)
                );
                field("record", &rec.text);
                field(
                    "found at",
                    format!("_dmarc.{}", r.policy_domain.clone().unwrap_or_default()),
                );
                field(
                    "org. domain",
                    r.organizational_domain.clone().unwrap_or_default(),
                );
                field(
                    "alignment",
                    format!(
                        "dkim {}, spf {}",
                        if rec.adkim_strict {
                            "strict"
                        } else {
                            "relaxed"
                        },
                        if rec.aspf_strict { "strict" } else { "relaxed" }
                    ),
                );
                if !rec.rua.is_empty() {
                    field("rua", rec.rua.join(", "));
                }
                if rec.testing {
                    field("t=y", "testing: the policy is applied one level softer");
                }
                for o in &rec.obsolete {
                    field(
                        "obsolete",
                        format!("{o} (removed by RFC 9989; receivers ignore it)"),
                    );
                }
                if p == "none" {
                    field("next step", "p=none only monitors: move to p=quarantine, then p=reject, once reports show all your mail aligned");
                }
            } else {
                println!("{} no DMARC record for {}", mark(Tone::Bad), domains[0]);
                if let Some(why) = &r.reason {
                    field("why", why);
                }
                field(
                    "publish",
                    format!(
                        "_dmarc.{} TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{}\"",
                        domains[0], domains[0]
                    ),
                );
            }
            Ok(match (r.result, found) {
                (DmarcResult::Temperror, _) => exit::TEMPORARY,
                (_, true) => exit::OK,
                _ => exit::NOT_PASSED,
            })
        }
    }
}
