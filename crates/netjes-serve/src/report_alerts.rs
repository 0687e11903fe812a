//! Alerts from the reports (`[reports.alerts]`): every interval the rules
//! of `netjes_reports::alerts` are applied to each domain, and what is new
//! goes out by mail (through the relay) and by webhook (a JSON POST); on
//! the digest's weekday, the weekly digest goes out too, alerts or not.
//!
//! Each channel's copy of an alert is recorded once it went out, so an
//! alert is sent once per channel, and a channel that failed is tried
//! again at the next round.

use crate::config::Alerts;
use crate::store::{now, Store};
use netjes_dns::Resolver;
use netjes_net::metrics::Metrics;
use netjes_reports::alerts::{alerts, digest_text, DigestLine};
use std::sync::Arc;
use std::time::Duration;

pub struct Alerter {
    pub store: Store,
    pub dns: Arc<dyn Resolver>,
    pub cfg: Alerts,
    /// `[reports] domains`; empty: every domain with reports.
    pub domains: Vec<String>,
    pub metrics: Arc<Metrics>,
    pub hostname: String,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter").field("mail_to", &self.cfg.mail_to).finish_non_exhaustive()
    }
}

/// One thing to tell.
struct Notice {
    key: String,
    kind: &'static str,
    domain: String,
    subject: String,
    text: String,
    json: serde_json::Value,
}

/// Monday is 0; 1970-01-01 was a Thursday.
pub fn weekday(day: i64) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

impl Alerter {
    fn domains(&self) -> Vec<String> {
        if !self.domains.is_empty() {
            return self.domains.clone();
        }
        match self.store.report_domains() {
            Ok(d) => d.into_iter().map(|(d, _, _)| d).collect(),
            Err(e) => {
                tracing::error!(error = %e, "alerts: cannot list the domains");
                vec![]
            }
        }
    }

    /// One round at time `at` (seconds): the keys of what went out.
    pub async fn round(&self, at: i64) -> Vec<String> {
        let today = at.div_euclid(86_400);
        let mut sent = Vec::new();
        for d in self.domains() {
            let rows = self.store.report_rows(&d, today - 37).unwrap_or_default();
            let newest = self.store.newest_report_end(&d).ok().flatten();
            for a in alerts(&d, &rows, newest, today, &self.cfg.rules) {
                let n = Notice {
                    subject: format!("netjes: {} ({})", a.kind.replace('-', " "), a.domain),
                    text: format!("{}\r\n\r\nnetjes, reading the DMARC reports of {}.\r\n", a.summary, a.domain),
                    json: serde_json::to_value(&a).unwrap_or_default(),
                    key: a.key,
                    kind: a.kind,
                    domain: a.domain,
                };
                sent.extend(self.deliver(&n).await);
            }
        }
        if weekday(today) == self.cfg.digest_weekday {
            let n = self.digest(today).await;
            sent.extend(self.deliver(&n).await);
        }
        sent
    }

    async fn digest(&self, today: i64) -> Notice {
        let mut lines = Vec::new();
        for d in self.domains() {
            if let Ok(v) = crate::report_view::domain_view(&self.store, self.dns.as_ref(), &d, today - 7).await {
                let r = &v.overview.readiness;
                if r.messages > 0 {
                    lines.push(DigestLine {
                        domain: d,
                        messages: r.messages,
                        passing: r.passing,
                        sources: v.overview.sources.len(),
                        readiness: r.sentence.clone(),
                    });
                }
            }
        }
        let week = self.store.alerts_since(now() - 7 * 86_400).map(|a| a.len()).unwrap_or(0);
        Notice {
            key: format!("digest:{today}"),
            kind: "digest",
            domain: String::new(),
            subject: format!("netjes: DMARC digest of the week to {}", crate::report_pages::day_text(today)),
            text: digest_text(&lines, week),
            json: serde_json::json!({ "kind": "digest", "day": crate::report_pages::day_text(today), "domains": lines, "alerts": week }),
        }
    }

    /// Sends a notice on each channel that has not had it; the keys sent.
    async fn deliver(&self, n: &Notice) -> Vec<String> {
        let mut sent = Vec::new();
        let channels: [(&str, bool); 2] = [("mail", !self.cfg.mail_to.is_empty()), ("webhook", self.cfg.webhook.is_some())];
        for (channel, on) in channels {
            let key = format!("{channel}:{}", n.key);
            if !on || self.store.alert_sent(&key).unwrap_or(true) {
                continue;
            }
            let result = match channel {
                "mail" => self.mail(n).await,
                _ => self.post(n).await,
            };
            let word = if result.is_ok() { "sent" } else { "failed" };
            self.metrics.inc("netjes_report_alerts_total", &[("kind", n.kind), ("channel", channel), ("result", word)]);
            match result {
                Ok(()) => {
                    if let Err(e) = self.store.record_alert(&key, n.kind, &n.domain, &n.subject) {
                        tracing::error!(error = %e, "alerts: cannot record a sent alert");
                    }
                    sent.push(key);
                }
                Err(e) => tracing::warn!(alert = %n.key, channel, error = %e, "alert not sent; tried again next round"),
            }
        }
        sent
    }

    async fn mail(&self, n: &Notice) -> Result<(), String> {
        let from = self.cfg.mail_from.clone().unwrap_or_else(|| format!("netjes@{}", self.hostname));
        let id = crate::crypto::token();
        let message = format!(
            "From: netjes <{from}>\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}@{}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
            self.cfg.mail_to.join(", "),
            n.subject,
            mail_parser::DateTime::from_timestamp(now()).to_rfc822(),
            self.hostname,
            n.text
        );
        // RFC 3834 §3.3: an automatic message goes out with the null
        // reverse path, so that a bounce does not start a loop.
        netjes_check::relay::send(&self.cfg.relay, "", &self.cfg.mail_to, message.as_bytes()).await.map_err(|e| e.to_string())
    }

    async fn post(&self, n: &Notice) -> Result<(), String> {
        let Some(uri) = &self.cfg.webhook else { return Ok(()) };
        let body = serde_json::to_vec(&n.json).map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(30), post_json(uri, &body, &[]))
            .await
            .map_err(|_| format!("{uri}: no answer within 30 s"))?
    }
}

/// An HTTP/1.1 POST of a JSON body, with `headers` besides; a 2xx status
/// is success.
pub async fn post_json(uri: &axum::http::Uri, body: &[u8], headers: &[(&str, String)]) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = uri.host().ok_or("the webhook has no host")?.trim_matches(['[', ']']);
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("{host}:{port}: {e}"))?;
    let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: netjes\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let mut answer = Vec::new();
    async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S, head: &str, body: &[u8], answer: &mut Vec<u8>) -> std::io::Result<()> {
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        s.flush().await?;
        // The status line is all we need.
        (&mut s).take(4096).read_to_end(answer).await.map(|_| ())
    }
    if https {
        let cfg = netjes_check::tls::client_config(None)?;
        let s = netjes_check::tls::handshake(cfg, host, tcp).await?;
        exchange(s, &head, body, &mut answer).await
    } else {
        exchange(tcp, &head, body, &mut answer).await
    }
    .map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&answer);
    let line = status.lines().next().unwrap_or("");
    match line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()) {
        Some(c) if (200..300).contains(&c) => Ok(()),
        _ => Err(format!("the webhook answered {line:?}")),
    }
}

/// Applies the rules every interval until `stop` turns true.
pub async fn run(a: Arc<Alerter>, mut stop: tokio::sync::watch::Receiver<bool>) {
    a.metrics.describe("netjes_report_alerts_total", "Alerts and digests from the DMARC reports, by kind, channel and result.");
    while !*stop.borrow() {
        // One instance of several sends the alerts (jobs.rs).
        match a.store.job_lock("report-alerts") {
            Ok(Some(_lead)) => {
                a.round(now()).await;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "report alerts"),
        }
        tokio::select! {
            _ = tokio::time::sleep(a.cfg.interval) => {}
            _ = stop.wait_for(|v| *v) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn weekdays() {
        assert_eq!(super::weekday(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(super::weekday(20_787), 0, "2026-11-30 is a Monday");
    }
}
