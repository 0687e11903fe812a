//! The TXT records of MTA-STS (RFC 8461 §3.1), TLS-RPT (RFC 8460 §3) and
//! BIMI, read for their syntax.

use crate::report::{Category, Finding, Fix, Status};
use netjes_dns::{Resolver, ResolverExt};

/// The tags of a `k=v; k=v` record, or why it is not one.
fn tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in text.split(';') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("{p:?} is not a tag=value pair"))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// The one record at `name` that starts with `prefix`, or a finding that
/// says why there is none.
async fn single(
    dns: &dyn Resolver,
    c: Category,
    id: &str,
    name: &str,
    prefix: &str,
) -> Result<Option<String>, Finding> {
    match dns.txt(name).await {
        Err(e) if e.is_temporary() => Err(Finding::new(
            c,
            id,
            Status::Error,
            format!("{name} could not be checked: {e}"),
        )),
        Err(_) => Ok(None),
        Ok(t) => {
            let recs: Vec<String> = t
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .filter(|r| r.starts_with(prefix))
                .collect();
            match recs.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(one.clone())),
                many => Err(Finding::new(
                    c,
                    id,
                    Status::Fail,
                    format!(
                        "{name} has {} {prefix} records; there must be one",
                        many.len()
                    ),
                )),
            }
        }
    }
}

/// An MTA-STS id for a policy published now: the UTC time, as
/// YYYYMMDDhhmmss (RFC 8461 §3.1 wants it to change with the policy; a
/// fixed id pasted twice would hide the second change from senders).
pub fn sts_id_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let t = mail_parser::DateTime::from_timestamp(now);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

pub async fn check_mta_sts_record(dns: &dyn Resolver, domain: &str) -> Vec<Finding> {
    const C: Category = Category::MtaSts;
    let name = format!("_mta-sts.{domain}");
    match single(dns, C, "mta-sts.record", &name, "v=STSv1").await {
        Err(f) => vec![f],
        Ok(None) => vec![Finding::new(C, "mta-sts.record", Status::Info, format!("no MTA-STS ({name}): senders may deliver to you without TLS if an attacker strips STARTTLS"))
            .advice(format!("publish a policy at https://mta-sts.{domain}/.well-known/mta-sts.txt, then this record"))
            .fix(Fix::txt(&name, &format!("v=STSv1; id={}", sts_id_now())))],
        Ok(Some(rec)) => match tags(&rec) {
            Err(e) => vec![Finding::new(C, "mta-sts.record", Status::Fail, format!("{name}: {e}"))],
            Ok(t) => {
                let id = t.iter().find(|(k, _)| k == "id").map(|(_, v)| v.clone());
                match id {
                    Some(v) if !v.is_empty() && v.len() <= 32 && v.chars().all(|c| c.is_ascii_alphanumeric()) => {
                        vec![Finding::new(C, "mta-sts.record", Status::Pass, format!("MTA-STS record: {rec}"))]
                    }
                    _ => vec![Finding::new(C, "mta-sts.record", Status::Fail, format!("{name}: id= must be 1 to 32 letters and digits (RFC 8461 §3.1): {rec}"))],
                }
            }
        },
    }
}

pub async fn check_tls_rpt(dns: &dyn Resolver, domain: &str) -> Vec<Finding> {
    const C: Category = Category::TlsRpt;
    let name = format!("_smtp._tls.{domain}");
    match single(dns, C, "tls-rpt.record", &name, "v=TLSRPTv1").await {
        Err(f) => vec![f],
        Ok(None) => vec![Finding::new(
            C,
            "tls-rpt.record",
            Status::Info,
            format!(
                "no TLS-RPT ({name}): you will not hear when senders fail to reach you over TLS"
            ),
        )
        .fix(Fix::txt(
            &name,
            &format!("v=TLSRPTv1; rua=mailto:tls-reports@{domain}"),
        ))],
        Ok(Some(rec)) => {
            let rua = tags(&rec)
                .ok()
                .and_then(|t| t.into_iter().find(|(k, _)| k == "rua").map(|(_, v)| v));
            match rua {
                Some(r)
                    if r.split(',').all(|u| {
                        u.trim().starts_with("mailto:") || u.trim().starts_with("https:")
                    }) =>
                {
                    vec![Finding::new(
                        C,
                        "tls-rpt.record",
                        Status::Pass,
                        format!("TLS-RPT record: {rec}"),
                    )]
                }
                _ => vec![Finding::new(
                    C,
                    "tls-rpt.record",
                    Status::Fail,
                    format!("{name}: rua= must list mailto: or https: URIs (RFC 8460 §3): {rec}"),
                )],
            }
        }
    }
}

pub async fn check_bimi(dns: &dyn Resolver, domain: &str) -> Vec<Finding> {
    const C: Category = Category::Bimi;
    let name = format!("default._bimi.{domain}");
    match single(dns, C, "bimi.record", &name, "v=BIMI1").await {
        Err(f) => vec![f],
        Ok(None) => vec![Finding::new(C, "bimi.record", Status::Info, format!("no BIMI record ({name}): no logo is shown next to your mail; it needs DMARC at quarantine or reject first"))],
        Ok(Some(rec)) => match tags(&rec) {
            Err(e) => vec![Finding::new(C, "bimi.record", Status::Warn, format!("{name}: {e}"))],
            Ok(t) => {
                let l = t.iter().find(|(k, _)| k == "l").map(|(_, v)| v.clone()).unwrap_or_default();
                if l.is_empty() || l.starts_with("https://") {
                    vec![Finding::new(C, "bimi.record", Status::Info, format!("BIMI record: {rec}"))]
                } else {
                    vec![Finding::new(C, "bimi.record", Status::Warn, format!("{name}: l= must be an https URL of an SVG logo: {rec}"))]
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    /// The id offered in a fix is today's time, in the form RFC 8461
    /// allows (1 to 32 letters and digits).
    #[test]
    fn the_mta_sts_id_is_now() {
        let id = super::sts_id_now();
        assert_eq!(id.len(), 14);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
        let year: u32 = id[..4].parse().unwrap();
        assert!(year >= 2026, "{id}");
    }
}
