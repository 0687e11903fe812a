//! `--smtp`: connect to each MX on port 25 as a sender would: the banner,
//! EHLO, STARTTLS offered, the certificate valid for the MX name, and the
//! banner's host name against the address's PTR.

use crate::report::{Category, Finding, Status};
use crate::tls::{client_config, handshake, NetOptions};
use netjes_dns::{Resolver, ResolverExt};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

const C: Category = Category::Smtp;

/// Reads one SMTP reply (RFC 5321 §4.2): its code and its lines' text.
pub(crate) async fn reply<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        // RFC 5321 §4.5.3.1.5: reply lines are at most 512 octets; reading
        // stops well past that, so a server cannot make us buffer forever.
        let n = (&mut *r)
            .take(2048)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if !line.ends_with('\n') || lines.len() > 100 {
            return Err("the reply is too long".into());
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not an SMTP reply: {:?}", line.trim_end()))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
        if !more {
            return Ok((code, lines));
        }
    }
}

pub(crate) async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    r: &mut BufReader<S>,
    cmd: &str,
) -> Result<(u16, Vec<String>), String> {
    r.get_mut()
        .write_all(format!("{cmd}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    reply(r).await
}

struct Probe {
    banner_host: String,
    starttls: bool,
    tls: Option<Result<String, String>>,
}

async fn probe(
    host: &str,
    ip: IpAddr,
    net: &NetOptions,
    cfg: std::sync::Arc<rustls::ClientConfig>,
) -> Result<Probe, String> {
    let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, net.smtp_port))
        .await
        .map_err(|e| {
            format!(
                "cannot connect to {host} ({ip}) on port {}: {e}",
                net.smtp_port
            )
        })?;
    let mut r = BufReader::new(tcp);
    let (code, banner) = reply(&mut r).await?;
    if code != 220 {
        return Err(format!("{host} greets with {code} {}", banner.join(" ")));
    }
    let banner_host = banner
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_string();
    let (code, ehlo) = command(&mut r, "EHLO check.netjes.invalid").await?;
    if code != 250 {
        return Err(format!("{host} refuses EHLO: {code} {}", ehlo.join(" ")));
    }
    let starttls = ehlo.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
    });
    let mut p = Probe {
        banner_host,
        starttls,
        tls: None,
    };
    if starttls {
        let (code, text) = command(&mut r, "STARTTLS").await?;
        if code != 220 {
            p.tls = Some(Err(format!("STARTTLS answered {code} {}", text.join(" "))));
            return Ok(p);
        }
        let tcp = r.into_inner();
        match handshake(cfg, host, tcp).await {
            Ok(tls) => {
                let (_, conn) = tls.get_ref();
                let version = conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                let suite = conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default();
                let mut r = BufReader::new(tls);
                let _ = command(&mut r, "QUIT").await;
                p.tls = Some(Ok(format!("{version} {suite}")));
            }
            Err(e) => p.tls = Some(Err(e)),
        }
    } else {
        let _ = command(&mut r, "QUIT").await;
    }
    Ok(p)
}

pub async fn check_smtp(dns: &dyn Resolver, mx_hosts: &[String], net: &NetOptions) -> Vec<Finding> {
    let cfg = match client_config(net.ca_file.as_deref()) {
        Ok(c) => c,
        Err(e) => return vec![Finding::new(C, "smtp.tls-config", Status::Error, e)],
    };
    let checks = mx_hosts.iter().map(|host| {
        let cfg = cfg.clone();
        async move {
            let (a, aaaa) = tokio::join!(dns.a(host), dns.aaaa(host));
            let ip = match (&a, &aaaa) {
                (Ok(v), _) if !v.is_empty() => IpAddr::V4(v[0]),
                (_, Ok(v)) if !v.is_empty() => IpAddr::V6(v[0]),
                (Err(e), _) | (_, Err(e)) if e.is_temporary() => {
                    return vec![Finding::new(C, &format!("smtp.{host}"), Status::Error, format!("{host} could not be resolved: {e}"))]
                }
                // The MX check reports the missing address; nothing to connect to.
                _ => return vec![],
            };
            let id = format!("smtp.{host}");
            if net.public_only && !netjes_net::is_public(ip) {
                return vec![Finding::new(C, &id, Status::Error, format!("not checked: {host} resolves to {ip}, which is not a public address"))];
            }
            let res = tokio::time::timeout(net.timeout, probe(host, ip, net, cfg)).await;
            let mut out = Vec::new();
            match res {
                Err(_) => out.push(Finding::new(C, &id, Status::Error, format!("{host} ({ip}) did not answer within {:?}", net.timeout))),
                Ok(Err(e)) => out.push(Finding::new(C, &id, Status::Fail, e)),
                Ok(Ok(p)) => {
                    match (&p.starttls, &p.tls) {
                        (false, _) => out.push(
                            Finding::new(C, &format!("{id}.starttls"), Status::Fail, format!("{host} does not offer STARTTLS: mail to you travels in clear text"))
                                .advice("configure a certificate (smtpd_tls_cert_file, smtpd_tls_security_level = may in Postfix)"),
                        ),
                        (true, Some(Ok(what))) => out.push(Finding::new(C, &format!("{id}.starttls"), Status::Pass, format!("{host} offers STARTTLS with a valid certificate ({what})"))),
                        (true, Some(Err(e))) => out.push(
                            Finding::new(C, &format!("{id}.starttls"), Status::Fail, format!("{host} offers STARTTLS, but TLS fails: {e}"))
                                .advice(format!("the certificate must be valid for {host} and signed by a public CA (Let's Encrypt will do)")),
                        ),
                        (true, None) => {}
                    }
                    let ptr = match dns.ptr(ip).await {
                        Ok(p) => p,
                        Err(e) if e.is_temporary() => {
                            out.push(Finding::new(C, &format!("{id}.banner"), Status::Error, format!("the PTR of {ip} could not be checked against the banner: {e}")));
                            return out;
                        }
                        Err(_) => Vec::new(),
                    };
                    if ptr.iter().any(|n| n.eq_ignore_ascii_case(&p.banner_host)) {
                        out.push(Finding::new(C, &format!("{id}.banner"), Status::Pass, format!("{host} greets as {}, its PTR name", p.banner_host)));
                    } else {
                        out.push(Finding::new(
                            C,
                            &format!("{id}.banner"),
                            Status::Warn,
                            format!("{host} greets as {:?}, but the PTR of {ip} is {}", p.banner_host, if ptr.is_empty() { "missing".into() } else { ptr.join(", ") }),
                        ).advice("set myhostname (Postfix) to the name the PTR gives"));
                    }
                }
            }
            out
        }
    });
    netjes_dns::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}
