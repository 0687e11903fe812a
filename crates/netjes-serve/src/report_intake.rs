//! Reports that arrive as mail (at the `[reports] addresses`, over the
//! SMTP listener; from an IMAP mailbox; uploaded): read, judged and
//! stored.
//!
//! Anyone can mail a report address, so a report is believed only when
//! its mail is authenticated as the reporter's: DMARC passes for the
//! mail's From domain, or a DKIM signature passes, for the organisational
//! domain the report gives as its own (its contact address), as mox does.
//! Others are stored but held, with the reason, never dropped silently;
//! so are reports about a domain we do not serve and reports that end in
//! the future.

use crate::config::Reports;
use crate::report_store::{Added, Provenance};
use crate::store::{now, Store, StoreError};
use netjes_auth::dkim::DkimResult;
use netjes_auth::dmarc::DmarcResult;
use netjes_auth::verdict::{verify_message, Envelope, Verdict};
use netjes_dns::Resolver;
use netjes_net::metrics::Metrics;
use netjes_reports::Report;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

/// The SMTP facts of a report mail, queued with it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MailFacts {
    pub ip: Option<IpAddr>,
    pub helo: String,
    pub mail_from: String,
}

/// What became of one report (or one input that was not a report).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// "stored", "duplicate", "held" or "rejected".
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_id: Option<String>,
    /// Why it was held or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a mail's reports are to be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Check the mail's authentication (SMTP, IMAP).
    Authenticate,
    /// The user handed it over (an upload, a mailbox marked trusted).
    User,
}

/// The organisational domains a mail is authenticated for: its From
/// domain when DMARC passes, and the d= of every passing DKIM signature.
fn authenticated(v: &Verdict) -> Vec<String> {
    let mut out: Vec<String> = v
        .dkim
        .iter()
        .filter(|d| d.result == DkimResult::Pass)
        .map(|d| org(&d.domain))
        .collect();
    if v.dmarc.result == DmarcResult::Pass {
        if let Some(f) = &v.dmarc.from_domain {
            out.push(org(f));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn org(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&d).map(str::to_string).unwrap_or(d)
}

/// Why a report from a mail authenticated for `auth` is not believed, or
/// `None` when it is. A report that names no domain of its own is
/// believed when the mail passes DMARC.
pub fn distrust(auth: &[String], dmarc_pass: bool, r: &Report) -> Option<String> {
    match r.contact_domain() {
        Some(claimed) if auth.contains(&org(&claimed)) => None,
        Some(claimed) if auth.is_empty() => Some(format!(
            "unverified: the mail is not authenticated (no DMARC pass, no DKIM pass); the report says it is from {claimed}"
        )),
        Some(claimed) => Some(format!(
            "unverified: the mail is authenticated for {}, but the report says it is from {claimed}",
            auth.join(", ")
        )),
        None if dmarc_pass => None,
        None => Some("unverified: the mail is not authenticated and the report names no domain of its own".into()),
    }
}

/// Why a believed report is still kept apart: about a domain we do not
/// serve, or ending in the future.
pub fn out_of_place(cfg: &Reports, r: &Report, now: i64) -> Option<String> {
    let (_, id) = r.key();
    let domain = match r {
        Report::Aggregate(a) => Some(a.policy.domain.clone()),
        Report::Tls(t) => t.policies.first().map(|p| p.policy_domain.clone()),
        Report::Failure(f) => f.reported_domain.clone(),
    }
    .map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    if !cfg.domains.is_empty() {
        let served = domain.as_deref().is_some_and(|d| {
            cfg.domains
                .iter()
                .any(|s| d == s || d.ends_with(&format!(".{s}")))
        });
        if !served {
            return Some(format!(
                "about {}, which is not one of reports.domains",
                domain.as_deref().unwrap_or("no domain")
            ));
        }
    }
    // An hour of clock skew is forgiven.
    match r.end_time() {
        Some(end) if end > now + 3600 => Some(format!("report {id} ends in the future")),
        _ => None,
    }
}

/// The intake: the store, DNS for checking report mail, and the bounds.
pub struct Intake {
    pub store: Store,
    pub dns: Arc<dyn Resolver>,
    pub cfg: Reports,
    pub authserv_id: String,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake").field("addresses", &self.cfg.addresses).finish_non_exhaustive()
    }
}

/// Why a report mail is refused at the end of DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The sender sent its share for today.
    Flood,
    /// The queue is full.
    Full,
    Store,
}

impl Intake {
    pub fn new(store: Store, dns: Arc<dyn Resolver>, cfg: Reports, authserv_id: String, metrics: Arc<Metrics>) -> Intake {
        metrics.describe("netjes_reports_total", "Reports read, by kind and result (stored, duplicate, held, rejected).");
        metrics.describe("netjes_report_mails_total", "Report mails offered over SMTP, by result.");
        Intake { store, dns, cfg, authserv_id, metrics }
    }

    /// Whether an SMTP recipient is one of the report addresses. The local
    /// part is compared without case, as every real report sender expects.
    pub fn takes(&self, rcpt: &str) -> bool {
        let a = rcpt.trim_end_matches('.').to_ascii_lowercase();
        self.cfg.addresses.contains(&a)
    }

    /// Who a mail counts against for the daily limit: the organisational
    /// domain of MAIL FROM and the client's network (its /24 or /48); a
    /// flood that varies one is caught by the other.
    fn sender_keys(facts: &MailFacts) -> Vec<String> {
        let mut keys = vec![Self::network(facts.ip)];
        if let Some((_, d)) = facts.mail_from.rsplit_once('@') {
            keys.push(org(d));
        }
        keys
    }

    fn network(ip: Option<IpAddr>) -> String {
        match ip {
            Some(IpAddr::V4(a)) => {
                let o = a.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            Some(IpAddr::V6(a)) => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
            None => "unknown".into(),
        }
    }

    /// Queues a report mail before the SMTP 250, so that a crash loses
    /// none; returns its queue id.
    pub fn queue(&self, raw: &[u8], facts: &MailFacts) -> Result<i64, Refused> {
        let fail = |e: StoreError| {
            tracing::error!(error = %e, "cannot queue a report mail");
            Refused::Store
        };
        let mut n = 0;
        for key in Self::sender_keys(facts) {
            n = n.max(self.store.count_report_sender(&key).map_err(fail)?);
        }
        let result = if n > self.cfg.mails_per_sender_per_day {
            Err(Refused::Flood)
        } else {
            let json = serde_json::to_string(facts).unwrap_or_default();
            self.store
                .queue_report_mail(raw, &json, self.cfg.max_raw_bytes)
                .map_err(fail)?
                .ok_or(Refused::Full)
        };
        let word = match &result {
            Ok(_) => "queued",
            Err(Refused::Flood) => "flood",
            Err(Refused::Full) => "full",
            Err(Refused::Store) => "error",
        };
        self.metrics.inc("netjes_report_mails_total", &[("result", word)]);
        result
    }

    /// Reads a queued mail, stores its reports and takes it off the queue.
    pub async fn process(&self, id: i64) {
        let (facts, raw) = match self.store.report_mail(id) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                // Left queued: tried again at the next start.
                tracing::error!(error = %e, mail = id, "cannot read a queued report mail");
                return;
            }
        };
        let facts: MailFacts = serde_json::from_str(&facts).unwrap_or_default();
        let source = format!("smtp from <{}>", facts.mail_from);
        let env = Envelope {
            ip: facts.ip,
            helo: Some(facts.helo.clone()),
            mail_from: Some(facts.mail_from.clone()),
        };
        match self.take_mail(&raw, Some(&env), Trust::Authenticate, &source).await {
            Ok(outcomes) => {
                for o in &outcomes {
                    tracing::info!(mail = id, result = o.result, reporter = ?o.reporter, reason = ?o.reason, "report");
                }
                if let Err(e) = self.store.report_mail_done(id) {
                    tracing::error!(error = %e, mail = id, "cannot take a report mail off the queue");
                }
            }
            Err(e) => tracing::error!(error = %e, mail = id, "cannot store a report; it stays queued"),
        }
    }

    /// The mails a crash or a stop left queued.
    pub async fn resume(&self) {
        match self.store.queued_report_mails() {
            Ok(ids) => {
                for id in ids {
                    self.process(id).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list the queued report mails"),
        }
    }

    /// Reads every report in a mail and stores each: believed, held with
    /// the reason, or rejected with it. `env` is the SMTP envelope, when
    /// the mail came over SMTP.
    pub async fn take_mail(
        &self,
        raw: &[u8],
        env: Option<&Envelope>,
        trust: Trust,
        source: &str,
    ) -> Result<Vec<Outcome>, StoreError> {
        self.take("mail.eml", raw, env, trust, source).await
    }

    /// Reads a file (a report file, or a mail) by the same rules.
    pub async fn take_file(&self, name: &str, raw: &[u8], trust: Trust, source: &str) -> Result<Vec<Outcome>, StoreError> {
        self.take(name, raw, None, trust, source).await
    }

    async fn take(
        &self,
        name: &str,
        raw: &[u8],
        env: Option<&Envelope>,
        trust: Trust,
        source: &str,
    ) -> Result<Vec<Outcome>, StoreError> {
        let limits = self.cfg.limits;
        let (name, data) = (name.to_string(), raw.to_vec());
        // Parsing is CPU work within a time budget: off the async threads.
        let reports = tokio::task::spawn_blocking(move || netjes_reports::read(&name, &data, &limits))
            .await
            .unwrap_or_else(|_| vec![Err(netjes_reports::ReportError::NotAReport("reading it failed".into()))]);
        let verdict = match (trust, reports.iter().any(|r| r.is_ok())) {
            (Trust::Authenticate, true) => {
                let env = env.cloned().unwrap_or_default();
                match verify_message(self.dns.as_ref(), raw, &env, &self.authserv_id).await {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::debug!(error = %e, "report mail cannot be authenticated");
                        None
                    }
                }
            }
            _ => None,
        };
        let auth = verdict.as_ref().map(authenticated).unwrap_or_default();
        let dmarc_pass = verdict.as_ref().is_some_and(|v| v.dmarc.result == DmarcResult::Pass);
        let mut out = Vec::new();
        for r in reports {
            out.push(match r {
                Ok(rep) => {
                    let held = match trust {
                        Trust::User => None,
                        Trust::Authenticate => distrust(&auth, dmarc_pass, &rep),
                    }
                    .or_else(|| out_of_place(&self.cfg, &rep, now()));
                    self.store_one(&rep, held, source, raw)?
                }
                Err(e) => {
                    self.store.add_rejected(source, &e.to_string(), raw)?;
                    self.metrics.inc("netjes_reports_total", &[("kind", "unknown"), ("result", "rejected")]);
                    Outcome { result: "rejected", kind: None, reporter: None, report_id: None, reason: Some(e.to_string()) }
                }
            });
        }
        self.store.trim_reports(self.cfg.max_raw_bytes, self.cfg.max_kept_apart)?;
        Ok(out)
    }

    fn store_one(&self, rep: &Report, held: Option<String>, source: &str, raw: &[u8]) -> Result<Outcome, StoreError> {
        let how = Provenance {
            trusted: held.is_none(),
            held: held.clone(),
            source: source.to_string(),
            raw: Some(raw.to_vec()),
        };
        let added = self.store.add_report(rep, &how)?;
        let result = match (&added, &held) {
            (Added::Duplicate, _) => "duplicate",
            (Added::Stored, Some(_)) => "held",
            (Added::Stored, None) => "stored",
        };
        self.metrics.inc("netjes_reports_total", &[("kind", rep.kind()), ("result", result)]);
        let (reporter, id) = rep.key();
        Ok(Outcome {
            result,
            kind: Some(rep.kind()),
            reporter: Some(reporter),
            report_id: Some(id),
            reason: held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregate(email: Option<&str>, domain: &str, end: i64) -> Report {
        let xml = format!(
            "<feedback><report_metadata><org_name>r</org_name>{}<report_id>1</report_id><date_range><begin>{}</begin><end>{end}</end></date_range></report_metadata><policy_published><domain>{domain}</domain><p>none</p></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>{domain}</header_from></identifiers><auth_results><spf><domain>{domain}</domain><result>pass</result></spf></auth_results></record></feedback>",
            email.map(|e| format!("<email>{e}</email>")).unwrap_or_default(),
            end - 86_400
        );
        Report::Aggregate(netjes_reports::aggregate::parse(xml.as_bytes(), &Default::default()).unwrap())
    }

    #[test]
    fn a_report_is_believed_only_for_the_domain_its_mail_is_authenticated_for() {
        let r = aggregate(Some("dmarc-reports@mail.reporter.example"), "example.com", 1_700_000_000);
        assert_eq!(distrust(&["reporter.example".into()], false, &r), None);
        let why = distrust(&["attacker.example".into()], true, &r).unwrap();
        assert!(why.contains("authenticated for attacker.example"), "{why}");
        assert!(distrust(&[], false, &r).unwrap().contains("not authenticated"));
        let anonymous = aggregate(None, "example.com", 1_700_000_000);
        assert_eq!(distrust(&[], true, &anonymous), None);
        assert!(distrust(&["x.example".into()], false, &anonymous).is_some());
    }

    #[test]
    fn reports_about_other_domains_or_the_future_are_kept_apart() {
        let cfg = Reports { domains: vec!["example.com".into()], ..Default::default() };
        let now = 1_700_000_000;
        assert_eq!(out_of_place(&cfg, &aggregate(None, "example.com", now), now), None);
        assert_eq!(out_of_place(&cfg, &aggregate(None, "Mail.Example.com.", now), now), None);
        let other = out_of_place(&cfg, &aggregate(None, "badexample.com", now), now).unwrap();
        assert!(other.contains("badexample.com"), "{other}");
        assert!(out_of_place(&cfg, &aggregate(None, "example.com", now + 86_400), now).unwrap().contains("future"));
        let any = Reports::default();
        assert_eq!(out_of_place(&any, &aggregate(None, "elsewhere.example", now), now), None);
    }

    #[test]
    fn senders_are_counted_by_organisation_or_network() {
        let f = |from: &str, ip: &str| MailFacts { ip: Some(ip.parse().unwrap()), helo: String::new(), mail_from: from.into() };
        assert_eq!(Intake::sender_keys(&f("a@bounce.mail.google.com", "192.0.2.7")), ["192.0.2.0/24", "google.com"]);
        assert_eq!(Intake::sender_keys(&f("", "192.0.2.7")), ["192.0.2.0/24"]);
        assert_eq!(Intake::sender_keys(&f("", "2001:db8:1:2::1")), ["2001:db8:1::/48"]);
    }
}
