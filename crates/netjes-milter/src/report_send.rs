//! Sending the reports owed (RFC 9990): for each day, each report (in
//! parts when it is over the size limit) to each authorised destination,
//! once; or written to a folder. Shared by `netjes report send` and the
//! milter's daily schedule (`[reports_send]`).

use crate::report::{destination_for, owed, Reporter};
use crate::verdicts::VerdictStore;
use netjes_reports::aggregate::AggregateReport;
use std::path::PathBuf;

/// How reports go out.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Write each report and mail here instead of sending (a dry run).
    pub out: Option<PathBuf>,
    /// The relay the mails go through (needed without `out`).
    pub relay: Option<netjes_check::relay::Relay>,
    /// The largest gzipped report file; a bigger report goes in parts.
    pub max_size: usize,
    /// Days a destination that refused for good is left alone.
    pub suppress_days: u32,
    pub reporter: Reporter,
}

/// What became of one report part for one destination.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sent {
    pub policy_domain: String,
    pub destination: Option<String>,
    /// sent, written, already-sent, unauthorised, deferred, suppressed,
    /// failed, too-large, or elsewhere (another host of the cluster is
    /// sending now).
    pub result: &'static str,
    pub detail: Option<String>,
    pub report_id: Option<String>,
    pub records: usize,
    pub messages: u64,
    pub day: String,
}

impl Sent {
    /// Went out (or is written), now or before.
    pub fn ok(&self) -> bool {
        matches!(self.result, "sent" | "written" | "already-sent" | "elsewhere")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The reports of the given days.
pub async fn send_days(store: &VerdictStore, dns: &dyn netjes_dns::Resolver, days: &[i64], o: &SendOptions) -> Result<Vec<Sent>, String> {
    // One sender at a time across the cluster (the milters of several MX
    // hosts sharing PostgreSQL): the other finds the ledger filled after.
    let _lock = match store.send_lock().map_err(|e| e.to_string())? {
        Some(l) => l,
        None => {
            return Ok(vec![Sent {
                policy_domain: "*".into(),
                destination: None,
                result: "elsewhere",
                detail: Some("another host of the cluster is sending the reports now".into()),
                report_id: None,
                records: 0,
                messages: 0,
                day: days.first().map(|d| netjes_reports::write::day_text(*d)).unwrap_or_default(),
            }])
        }
    };
    let mut results = Vec::new();
    for day in days {
        let rows = store.rows_between(day * 86_400, (day + 1) * 86_400).map_err(|e| e.to_string())?;
        send_day(o, store, dns, &rows, *day, &mut results).await?;
    }
    Ok(results)
}

/// The reports of one day; whether any could not go.
async fn send_day(
    a: &SendOptions,
    store: &VerdictStore,
    dns: &dyn netjes_dns::Resolver,
    rows: &[crate::verdicts::Row],
    day: i64,
    results: &mut Vec<Sent>,
) -> Result<(), String> {
    let who = &a.reporter;
    let org_name = &who.org_name;
    let day_text = netjes_reports::write::day_text(day);
    // "Known": mail from the domain was delivered in the 30 days before.
    let known = |d: &str| store.delivered_from(d, (day - 30) * 86_400).unwrap_or(false);
    for o in owed(rows, day, who, &known) {
        let generator = concat!("netjes ", env!("CARGO_PKG_VERSION"));
        let parts = netjes_reports::write::fit(&o.report, generator, a.max_size);
        if parts.is_empty() {
            results.push(Sent {
                policy_domain: o.report.policy.domain.clone(),
                destination: None,
                result: "too-large",
                detail: Some(format!("one record alone is over the size limit of {} octets", a.max_size)),
                report_id: Some(o.report.report_id.clone()),
                records: o.report.records.len(),
                messages: o.report.messages(),
                day: day_text.clone(),
            });
        }
        for (report, gz) in parts {
            let domain = report.policy.domain.clone();
            // Parts of one report have names of their own.
            let name = netjes_reports::write::report_file_name(&report, org_name);
            if let Some(out) = &a.out {
                std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
                std::fs::write(out.join(&name), &gz).map_err(|e| format!("{name}: {e}"))?;
            }
            for dest in &o.rua {
                let (result, detail) = deliver(a, store, dns, (&report, &name), &gz, dest, day).await;
                results.push(Sent {
                    policy_domain: domain.clone(),
                    destination: Some(dest.clone()),
                    result,
                    detail,
                    report_id: Some(report.report_id.clone()),
                    records: report.records.len(),
                    messages: report.messages(),
                    day: day_text.clone(),
                });
            }
        }
    }
    Ok(())
}

/// One report to one destination: authorised, then written or sent once.
async fn deliver(
    a: &SendOptions,
    store: &VerdictStore,
    dns: &dyn netjes_dns::Resolver,
    (r, file): (&AggregateReport, &str),
    gz: &[u8],
    dest: &str,
    day: i64,
) -> (&'static str, Option<String>) {
    let who = &a.reporter;
    let domain = &r.policy.domain;
    // The address the destination says to use (its own override).
    let to = match destination_for(dns, domain, dest).await {
        Ok(Some(to)) => to,
        Ok(None) => return ("unauthorised", Some(format!("{dest} does not accept reports about {domain} ({domain}._report._dmarc)"))),
        // Kept for the next run: neither dropped nor sent unchecked.
        Err(e) => return ("deferred", Some(format!("DNS: {e}"))),
    };
    let dest = to.as_str();
    if a.out.is_none() {
        if let Ok(Some((until, why))) = store.dead_until(dest, now()) {
            return ("suppressed", Some(format!("until {}: {why}", netjes_reports::write::day_text(until.div_euclid(86_400)))));
        }
    }
    // Each part of a report to each destination once.
    let ledger = format!("{dest} {}", r.report_id);
    if a.out.is_none() && store.was_sent(domain, day, &ledger).unwrap_or(false) {
        return ("already-sent", None);
    }
    let id = format!("{}.{}@{}", r.report_id.replace(['!', '@'], "."), dest.replace('@', "."), who.org_name);
    let date = mail_parser::DateTime::from_timestamp(now()).to_rfc822();
    let parts = netjes_reports::write::MailParts { from: &who.email, to: dest, date: &date, message_id: &id };
    let mail = netjes_reports::write::mail(r, &who.org_name, &parts, gz);
    if let Some(out) = &a.out {
        let name = format!("{}.{dest}.eml", file.trim_end_matches(".xml.gz"));
        return match std::fs::write(out.join(name), &mail) {
            Ok(()) => ("written", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
    }
    let Some(relay) = &a.relay else { return ("failed", Some("no relay to send through".into())) };
    // RFC 9990 §2.5: the null sender would lose bounces that say a
    // destination is dead; the report's own address takes them.
    match netjes_check::relay::send(relay, &who.email, &[dest.to_string()], &mail).await {
        Ok(()) => {
            let _ = store.mark_sent(domain, day, &ledger, &id, now());
            ("sent", None)
        }
        Err(e) => {
            // A permanent refusal of the recipient: the destination is dead
            // for a while (RFC 9990 §2.5 lets a receiver stop reporting).
            if e.recipient_refused_for_good() {
                let until = now() + i64::from(a.suppress_days) * 86_400;
                let _ = store.mark_dead(dest, until, &e.to_string());
            }
            ("failed", Some(e.to_string()))
        }
    }
}

/// What a bounce that came back to the reports' address did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BounceOutcome {
    pub destination: Option<String>,
    /// suppressed, delayed, delivered or not-ours.
    pub result: &'static str,
    pub detail: String,
}

/// Reads a bounce of a report mail: a destination that failed for good is
/// left alone for `suppress_days`. Only a bounce that returns the
/// Message-ID of a report we sent counts (RFC 3464 §2's returned
/// headers): anyone can mail the reports' address a made-up bounce, and it
/// must not silence reports to somebody else.
pub fn read_bounce(store: &VerdictStore, dsn: &netjes_bounce::Dsn, now: i64, suppress_days: u32) -> Vec<BounceOutcome> {
    let not_ours = |detail: String| vec![BounceOutcome { destination: None, result: "not-ours", detail }];
    let Some(id) = dsn.original_message_id.as_deref() else {
        return not_ours("the bounce does not return the report's headers (no Message-ID): nothing done".into());
    };
    let (domain, ledger) = match store.sent_as(id) {
        Ok(Some(x)) => x,
        Ok(None) => return not_ours(format!("<{id}> is no report mail of ours: nothing done")),
        Err(e) => return not_ours(format!("the verdict store: {e}")),
    };
    // Each report mail went to one destination: the ledger names it.
    let dest = ledger.split_once(' ').map_or(ledger.as_str(), |(d, _)| d).to_string();
    let mut out = Vec::new();
    for r in &dsn.recipients {
        let reply = r.diagnostic.as_deref().unwrap_or("");
        let (result, detail) = match r.action {
            netjes_bounce::Action::Failed => {
                let why = format!("bounced ({} {}) by {}: {reply}", r.status, r.final_recipient, dsn.reporting_mta.as_deref().unwrap_or("an MTA"));
                let _ = store.mark_dead(&dest, now + i64::from(suppress_days) * 86_400, why.trim_end_matches([':', ' ']));
                ("suppressed", format!("reports about {domain} to {dest} stop for {suppress_days} days: {}", why.trim_end_matches([':', ' '])))
            }
            netjes_bounce::Action::Delayed => ("delayed", format!("{} {reply}: the relay is still trying", r.status)),
            _ => ("delivered", format!("{} {reply}", r.status)),
        };
        out.push(BounceOutcome { destination: Some(dest.clone()), result, detail: detail.trim().to_string() });
    }
    out
}

/// Sends the reports owed at start (making up the missed days of the last
/// week) and then daily, twenty minutes after midnight UTC, when a day's
/// verdicts are complete; until `stop`. What went out is logged; what did
/// not is tried again the next day (the ledger keeps each to one send).
pub async fn daily(store: VerdictStore, dns: std::sync::Arc<dyn netjes_dns::Resolver>, o: SendOptions, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let today = now().div_euclid(86_400);
        let days: Vec<i64> = (today - 7..today).collect();
        match send_days(&store, dns.as_ref(), &days, &o).await {
            Ok(results) => {
                for r in results.iter().filter(|r| r.result != "already-sent") {
                    tracing::info!(domain = %r.policy_domain, destination = ?r.destination, day = %r.day, result = r.result, detail = ?r.detail, "DMARC report");
                }
            }
            Err(e) => tracing::error!(error = %e, "DMARC reports not sent; tried again tomorrow"),
        }
        let next = (today + 1) * 86_400 + 20 * 60;
        let wait = std::time::Duration::from_secs((next - now()).max(60) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

/// A failure report to send (ruf=), made at the end of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureJob {
    pub reported_domain: String,
    pub ruf: Vec<String>,
    pub source_ip: String,
    pub mail_from: String,
    pub arrival_date: String,
    pub authentication_results: String,
    pub identity_alignment: &'static str,
    pub delivery_result: &'static str,
    /// The failed message's header block. The milter never keeps a
    /// body, so failure reports carry headers only.
    pub headers: Vec<u8>,
}

/// Sends failure reports, off the milter's path, at most `per_hour` to
/// one destination an hour (a spoofing run must not make us flood
/// anyone's ruf= address), each destination authorised as for rua=.
pub struct FailureSender {
    pub relay: netjes_check::relay::Relay,
    pub from: String,
    pub per_hour: u32,
    pub dns: std::sync::Arc<dyn netjes_dns::Resolver>,
    pub metrics: Option<std::sync::Arc<netjes_net::metrics::Metrics>>,
    sent: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
    /// Makes each report's Message-ID unique within a second.
    serial: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for FailureSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureSender").field("relay", &self.relay.addr).finish_non_exhaustive()
    }
}

impl FailureSender {
    pub fn new(relay: netjes_check::relay::Relay, from: String, per_hour: u32, dns: std::sync::Arc<dyn netjes_dns::Resolver>, metrics: Option<std::sync::Arc<netjes_net::metrics::Metrics>>) -> FailureSender {
        if let Some(m) = &metrics {
            m.describe("netjes_milter_failure_reports_total", "DMARC failure reports (ruf=), by result.");
        }
        FailureSender { relay, from, per_hour, dns, metrics, sent: Default::default(), serial: Default::default() }
    }

    /// Takes one more for `dest` within the hour, or says no.
    fn allow(&self, dest: &str, at: i64) -> bool {
        let mut m = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            m.retain(|_, (start, _)| at - *start < 3600);
        }
        let e = m.entry(dest.to_ascii_lowercase()).or_insert((at, 0));
        if at - e.0 >= 3600 {
            *e = (at, 0);
        }
        e.1 += 1;
        e.1 <= self.per_hour
    }

    fn count(&self, result: &str) {
        if let Some(m) = &self.metrics {
            m.inc("netjes_milter_failure_reports_total", &[("result", result)]);
        }
    }

    /// Sends in the background; the message's answer does not wait.
    pub fn submit(self: &std::sync::Arc<Self>, job: FailureJob) {
        let me = self.clone();
        tokio::spawn(async move { me.send(&job).await });
    }

    async fn send(&self, job: &FailureJob) {
        for dest in &job.ruf {
            if !self.allow(dest, now()) {
                self.count("rate-limited");
                continue;
            }
            let dest = match destination_for(self.dns.as_ref(), &job.reported_domain, dest).await {
                Ok(Some(to)) => to,
                Ok(None) => {
                    self.count("unauthorised");
                    continue;
                }
                Err(_) => {
                    // Failure reports are not kept for later: one lost to
                    // a DNS failure is not worth a queue.
                    self.count("deferred");
                    continue;
                }
            };
            let dest = &dest;
            let facts = netjes_reports::write::FailureFacts {
                reported_domain: &job.reported_domain,
                source_ip: &job.source_ip,
                original_mail_from: &job.mail_from,
                arrival_date: &job.arrival_date,
                authentication_results: &job.authentication_results,
                identity_alignment: job.identity_alignment,
                delivery_result: job.delivery_result,
                headers: &job.headers,
                body: None,
            };
            let date = mail_parser::DateTime::from_timestamp(now()).to_rfc822();
            // Unique: the reader counts reports by their Message-ID.
            let serial = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let id = format!("{}.{}.{}.{serial}@{}", now(), std::process::id(), dest.replace('@', "."), self.relay.helo);
            let parts = netjes_reports::write::MailParts { from: &self.from, to: dest, date: &date, message_id: &id };
            let mail = netjes_reports::write::failure_mail(&facts, &parts, concat!("netjes ", env!("CARGO_PKG_VERSION")));
            match netjes_check::relay::send(&self.relay, &self.from, std::slice::from_ref(dest), &mail).await {
                Ok(()) => self.count("sent"),
                Err(e) => {
                    tracing::warn!(destination = %dest, error = %e, "failure report not sent");
                    self.count("failed");
                }
            }
        }
    }
}
