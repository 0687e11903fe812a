//! One verdict for one message: SPF, DKIM, ARC and DMARC together, and the
//! Authentication-Results header field (RFC 8601) that records it.

use crate::arc::{verify_arc, ArcReport};
use crate::dkim::{verify_dkim, DkimSignatureReport};
use crate::dmarc::{authors_of, evaluate, refused, DmarcInput, DmarcReport};
use crate::message::{self, MessageError};
use crate::spf::{check_host, Identity, SpfOutcome, SpfRequest};
use netjes_dns::Resolver;
use serde::Serialize;
use std::net::IpAddr;

/// The SMTP facts of a message, when known.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub ip: Option<IpAddr>,
    pub helo: Option<String>,
    pub mail_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// SPF of the MAIL FROM identity (or HELO for the null sender); absent
    /// when no client address was given.
    pub spf: Option<SpfOutcome>,
    /// SPF of the HELO identity, when MAIL FROM was not null.
    pub spf_helo: Option<SpfOutcome>,
    pub dkim: Vec<DkimSignatureReport>,
    pub arc: ArcReport,
    pub dmarc: DmarcReport,
    /// The value of an Authentication-Results header field.
    pub authentication_results: String,
}

/// Verifies one message.
pub async fn verify_message(
    dns: &dyn Resolver,
    raw: &[u8],
    env: &Envelope,
    authserv_id: &str,
) -> Result<Verdict, MessageError> {
    let msg = message::parse(raw)?;
    Ok(verify_parsed(dns, &msg, env, authserv_id).await)
}

/// Verifies a message that is already parsed: by [`message::parse`], or by
/// [`message::parse_prehashed`] from a body hashed as it streamed past.
pub async fn verify_parsed(
    dns: &dyn Resolver,
    msg: &mail_auth::AuthenticatedMessage<'_>,
    env: &Envelope,
    authserv_id: &str,
) -> Verdict {
    // The author, read as the MTA and the reader's client see the header
    // block (dmarc::author); a message without a usable one is refused.
    let authors = authors_of(msg.raw_message);

    let (spf, spf_helo) = match env.ip {
        Some(ip) => {
            let helo = env.helo.clone().unwrap_or_default();
            let mail_from = env.mail_from.clone().unwrap_or_default();
            let req = SpfRequest {
                ip,
                sender: &mail_from,
                helo: &helo,
                receiver: authserv_id,
            };
            if mail_from.is_empty() {
                (Some(check_host(dns, &req, Identity::Helo).await), None)
            } else {
                let (m, h) = tokio::join!(check_host(dns, &req, Identity::Mailfrom), async {
                    if helo.is_empty() {
                        None
                    } else {
                        Some(check_host(dns, &req, Identity::Helo).await)
                    }
                });
                (Some(m), h)
            }
        }
        None => (None, None),
    };
    let (dkim, arc) = tokio::join!(verify_dkim(dns, msg), verify_arc(dns, msg));
    let dmarc = match &authors {
        Ok(a) => {
            let shown: Vec<String> = a.shown.iter().map(|s| s.domain.clone()).collect();
            evaluate(
                dns,
                &DmarcInput {
                    from_domains: &a.domains,
                    shown_domains: &shown,
                    spf: spf.as_ref(),
                    dkim: &dkim,
                },
            )
            .await
        }
        Err(e) => refused(e),
    };
    let authentication_results = authentication_results(
        authserv_id,
        spf.as_ref(),
        spf_helo.as_ref(),
        &dkim,
        &arc,
        &dmarc,
    );
    Verdict {
        spf,
        spf_helo,
        dkim,
        arc,
        dmarc,
        authentication_results,
    }
}

/// A comment for RFC 8601: parentheses would end it early.
fn comment(s: &str) -> String {
    s.replace('(', "[")
        .replace(')', "]")
        .replace('\\', "/")
        .replace(['\r', '\n'], " ")
}

/// A property value (RFC 8601 §2.2 pvalue): an address or domain as it is,
/// anything else (a base64 b= prefix with '/', say) as a quoted-string.
fn value(s: &str) -> String {
    let bare = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@' | b'+'))
        && s.matches('@').count() <= 1
        && !s.starts_with('@');
    if bare {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

pub fn authentication_results(
    authserv_id: &str,
    spf: Option<&SpfOutcome>,
    spf_helo: Option<&SpfOutcome>,
    dkim: &[DkimSignatureReport],
    arc: &ArcReport,
    dmarc: &DmarcReport,
) -> String {
    let mut parts = vec![authserv_id.to_string()];
    if let Some(s) = spf {
        let mut p = format!("spf={}", s.result);
        if let Some(why) = &s.problem {
            if !matches!(s.result, crate::spf::SpfResult::Pass) {
                p.push_str(&format!(" ({})", comment(why)));
            }
        }
        match s.identity {
            Identity::Mailfrom => p.push_str(&format!(" smtp.mailfrom={}", value(&s.sender))),
            Identity::Helo => p.push_str(&format!(" smtp.helo={}", value(&s.domain))),
        }
        parts.push(p);
    }
    if let Some(h) = spf_helo {
        parts.push(format!("spf={} smtp.helo={}", h.result, value(&h.domain)));
    }
    if dkim.is_empty() {
        parts.push("dkim=none".into());
    }
    for d in dkim {
        let mut p = format!("dkim={}", d.result.as_str());
        if let Some(why) = &d.reason {
            p.push_str(&format!(" ({})", comment(why)));
        }
        if !d.domain.is_empty() {
            p.push_str(&format!(
                " header.d={} header.s={}",
                value(&d.domain),
                value(&d.selector)
            ));
            p.push_str(&format!(" header.a={}", value(&d.algorithm)));
            if !d.b.is_empty() {
                p.push_str(&format!(" header.b={}", value(&d.b)));
            }
        }
        parts.push(p);
    }
    let mut a = format!("arc={}", arc.result.as_str());
    if let Some(why) = &arc.reason {
        a.push_str(&format!(" ({})", comment(why)));
    }
    if let Some(op) = arc.oldest_pass {
        // RFC 8617 §8.2 registers header.oldest-pass for the arc method.
        a.push_str(&format!(" header.oldest-pass={op}"));
    }
    parts.push(a);
    let mut m = format!("dmarc={}", dmarc.result.as_str());
    if let Some(p) = dmarc.policy {
        m.push_str(&format!(
            " (p={} dis={})",
            p.as_str(),
            dmarc.disposition.as_str().to_ascii_uppercase()
        ));
    }
    if let Some(f) = &dmarc.from_domain {
        m.push_str(&format!(" header.from={}", value(f)));
    }
    parts.push(m);
    parts.join(";\r\n\t")
}
