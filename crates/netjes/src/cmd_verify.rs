use crate::exit;
use crate::output::{field, heading, mark, print_json, result_word, tone_of};
use crate::GlobalOpts;
use netjes_auth::dkim::DkimResult;
use netjes_auth::dmarc::DmarcResult;
use netjes_auth::spf::SpfResult;
use netjes_auth::verdict::{verify_message, Envelope};
use std::net::IpAddr;
use std::path::PathBuf;

/// The SMTP facts of a message, shared by verify and analyze.
#[derive(clap::Args, Debug)]
pub struct EnvelopeArgs {
    /// The SMTP client's address; SPF is checked only when it is known.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// The HELO/EHLO name.
    #[arg(long)]
    pub helo: Option<String>,
    /// The MAIL FROM address ("" for the null sender).
    #[arg(long = "mail-from")]
    pub mail_from: Option<String>,
    /// The authserv-id that starts the Authentication-Results field.
    #[arg(long = "authserv-id", default_value = "netjes")]
    pub authserv_id: String,
}

/// Verify a message: SPF (when --ip is given), every DKIM signature, the ARC
/// chain and DMARC, as a receiving server would.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub envelope: EnvelopeArgs,
    /// The message file; "-" or nothing reads standard input.
    pub message: Option<PathBuf>,
}

pub async fn run(a: VerifyArgs, g: &GlobalOpts) -> anyhow::Result<i32> {
    let raw = exit::read_input(a.message.as_deref())?;
    let dns = g.resolver()?;
    let e = &a.envelope;
    let env = Envelope {
        ip: e.ip,
        helo: e.helo.clone(),
        mail_from: e.mail_from.clone(),
    };
    let v = verify_message(dns.as_ref(), &raw, &env, &e.authserv_id)
        .await
        .map_err(|e| anyhow::anyhow!(exit::Input(e.to_string())))?;
    if g.json {
        print_json(&v);
    } else {
        println!("{}", heading("Authentication"));
        if let Some(s) = &v.spf {
            let m = s
                .mechanism
                .as_deref()
                .map(|m| format!(" by {m}"))
                .unwrap_or_default();
            println!(
                "  {} spf    {} for {}{m}",
                mark(tone_of(s.result.as_str())),
                result_word(s.result.as_str()),
                s.domain
            );
        } else {
            println!(
                "  {} spf    not checked (give --ip, --helo and --mail-from)",
                mark(tone_of("none"))
            );
        }
        if v.dkim.is_empty() {
            println!(
                "  {} dkim   none: the message is not signed",
                mark(tone_of("none"))
            );
        }
        for d in &v.dkim {
            crate::output::print_dkim(d, "  ");
        }
        println!(
            "  {} arc    {}{}",
            mark(tone_of(v.arc.result.as_str())),
            result_word(v.arc.result.as_str()),
            if v.arc.instances > 0 {
                format!(
                    " ({} sets, sealed last by {})",
                    v.arc.instances,
                    v.arc.last_sealer.clone().unwrap_or_default()
                )
            } else {
                String::new()
            }
        );
        let dm = &v.dmarc;
        let pol = dm
            .policy
            .map(|p| format!(", policy {} → {}", p.as_str(), dm.disposition.as_str()))
            .unwrap_or_default();
        if let Some(err) = &dm.author_error {
            // No author to judge: refused, as the milter refuses it.
            println!(
                "  {} dmarc  refused as malformed: {err}",
                mark(tone_of("fail"))
            );
        } else {
            println!(
                "  {} dmarc  {} for {}{pol}",
                mark(tone_of(dm.result.as_str())),
                result_word(dm.result.as_str()),
                dm.from_domain.clone().unwrap_or_default()
            );
            if let Some(r) = &dm.reason {
                field("   why", r);
            }
        }
        for o in &dm.others {
            println!(
                "  {} dmarc  {} for {} (also judged)",
                mark(tone_of(o.result.as_str())),
                result_word(o.result.as_str()),
                o.from_domain.clone().unwrap_or_default()
            );
        }
        println!();
        println!("{}", heading("Authentication-Results:"));
        println!("  {}", v.authentication_results.replace("\r\n\t", "\n    "));
    }
    let temp = v.dmarc.result == DmarcResult::Temperror
        || v.spf
            .as_ref()
            .is_some_and(|s| s.result == SpfResult::Temperror)
        || v.dkim.iter().any(|d| d.result == DkimResult::Temperror);
    let passed = v.dmarc.result == DmarcResult::Pass
        || (v.dmarc.result == DmarcResult::None
            && (v.dkim.iter().any(|d| d.result == DkimResult::Pass)
                || v.spf.as_ref().is_some_and(|s| s.result == SpfResult::Pass)));
    Ok(if passed {
        exit::OK
    } else if temp {
        exit::TEMPORARY
    } else {
        exit::NOT_PASSED
    })
}
