//! The domain check and the message analysis, as the web UI, the API and
//! the test inbox run them: the same engines and the same JSON as
//! `netjes check --json` and `netjes analyze --json`.

use netjes_dns::Resolver;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

/// The facts of the SMTP session a test message came in by.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Facts {
    pub ip: IpAddr,
    pub helo: String,
    pub mail_from: String,
    pub rcpt: String,
    /// "TLSv1.3", or none for plain SMTP.
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
    pub received_at: i64,
}

/// The most a check or an analysis may take; the DNS timeouts bound each
/// lookup, this bounds them all (a web request, a test result).
pub const TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

fn over_budget(what: &str) -> String {
    format!(
        "the {what} took longer than {} s and was stopped; try again later",
        TIME_BUDGET.as_secs()
    )
}

/// What a user asks the domain check for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub domain: String,
    /// DKIM selectors to look at; the usual ones are guessed without.
    #[serde(default)]
    pub selectors: Vec<String>,
    /// Addresses the domain sends from: PTR and SPF for each.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// Connect to every MX on port 25 (public addresses only).
    #[serde(default)]
    pub smtp: bool,
}

pub struct Tools {
    /// Cached across requests: the inbox's analyses and the like.
    pub dns: Arc<dyn Resolver>,
    /// The name servers themselves, without the shared cache: a check the
    /// user starts (Check, Check DNS) asks them afresh, so a record fixed a
    /// moment ago is seen at once (before, for up to its TTL, and a "not
    /// published" for the negative TTL).
    pub live: Arc<dyn Resolver>,
    pub ip_lists: Vec<String>,
    pub domain_lists: Vec<String>,
    pub authserv_id: String,
    /// Let checks connect to non-public addresses (allow_private_targets).
    pub allow_private_targets: bool,
    /// spamd for the analyses (serve.toml's spamd).
    pub spamd: Option<String>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools")
            .field("ip_lists", &self.ip_lists)
            .field("domain_lists", &self.domain_lists)
            .finish_non_exhaustive()
    }
}

impl Tools {
    pub fn new(
        dns: Arc<dyn Resolver>,
        ip_lists: Option<Vec<String>>,
        domain_lists: Option<Vec<String>>,
        authserv_id: String,
    ) -> Tools {
        let d = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Tools {
            live: dns.clone(),
            dns: Arc::new(netjes_dns::CachingResolver::new(dns)),
            ip_lists: ip_lists.unwrap_or_else(|| d(netjes_check::blocklist::DEFAULT_IP_LISTS)),
            domain_lists: domain_lists
                .unwrap_or_else(|| d(netjes_check::blocklist::DEFAULT_DOMAIN_LISTS)),
            authserv_id,
            allow_private_targets: false,
            spamd: None,
        }
    }

    /// The analyze report as JSON and rendered. Without facts, the
    /// envelope is read from the message's Received chain, as the CLI does.
    pub async fn analyze(
        &self,
        raw: &[u8],
        facts: Option<&Facts>,
    ) -> Result<(serde_json::Value, String), String> {
        let o = netjes_analyze::Options {
            ip: facts.map(|f| f.ip),
            helo: facts.map(|f| f.helo.clone()),
            mail_from: facts.map(|f| f.mail_from.clone()),
            authserv_id: self.authserv_id.clone(),
            ip_lists: self.ip_lists.clone(),
            domain_lists: self.domain_lists.clone(),
            envelope_given_by: "the SMTP session",
            spamd: self
                .spamd
                .clone()
                .map(|s| (s, std::time::Duration::from_secs(20))),
            ..Default::default()
        };
        let report = tokio::time::timeout(
            TIME_BUDGET,
            netjes_analyze::analyze(self.dns.as_ref(), raw, &o),
        )
        .await
        .map_err(|_| over_budget("analysis"))?
        .map_err(|e| e.to_string())?;
        Ok((
            serde_json::to_value(&report).map_err(|e| e.to_string())?,
            netjes_analyze::html_report::render_fragment(&report),
        ))
    }

    /// A resolver for one user-started check: the lookups inside it are
    /// cached, none from before it.
    pub fn fresh(&self) -> netjes_dns::CachingResolver<Arc<dyn Resolver>> {
        netjes_dns::CachingResolver::new(self.live.clone())
    }

    pub async fn check(&self, domain: &str) -> Result<serde_json::Value, String> {
        self.check_with(&CheckRequest {
            domain: domain.to_string(),
            ..Default::default()
        }, None)
        .await
    }

    /// The domain check with the form's or the API's options: DKIM
    /// selectors, sending addresses, and the SMTP test of every MX.
    /// `reports` is what the store's aggregate reports say of the domain,
    /// given only to logged-in users (it names their senders).
    pub async fn check_with(&self, q: &CheckRequest, reports: Option<netjes_check::dmarc::ReportEvidence>) -> Result<serde_json::Value, String> {
        let (d, note) = netjes_check::input::domain_of(&q.domain)?;
        if q.selectors.len() > 10 || q.ips.len() > 10 {
            return Err("at most 10 selectors and 10 addresses".into());
        }
        for s in &q.selectors {
            if !s.split('.').all(crate::store::valid_selector) {
                return Err(format!("{s:?} is not a selector"));
            }
        }
        let o = netjes_check::CheckOptions {
            ip_lists: Some(self.ip_lists.clone()),
            domain_lists: Some(self.domain_lists.clone()),
            selectors: q.selectors.clone(),
            ips: q.ips.clone(),
            smtp: q.smtp,
            reports,
            net: netjes_check::tls::NetOptions {
                public_only: !self.allow_private_targets,
                ..Default::default()
            },
        };
        let dns = self.fresh();
        let report = tokio::time::timeout(TIME_BUDGET, netjes_check::check_domain(&dns, &d, &o))
        .await
        .map_err(|_| over_budget("domain check"))
        .map(|mut r| {
            r.input_note = note;
            r
        })?;
        serde_json::to_value(&report).map_err(|e| e.to_string())
    }
}
