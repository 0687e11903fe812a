//! The decision for one policy request: rate limits, own-domain spoofing,
//! SPF, the blocklist score and greylisting, in that order, and one
//! action out of them. Every check can run in log-only mode.
//!
//! Failure rules: a DNS problem never becomes a reject (it is DUNNO or a
//! defer, as configured), and an internal error (the store) answers DUNNO,
//! is logged and counted.

use crate::config::{in_nets, Config, Mode, RateKey, SpfAction};
use crate::greylist::{self, Params, Verdict};
use crate::metrics::Metrics;
use crate::protocol::Request;
use crate::store::{GreyAttempt, GreyOutcome, Store};
use netjes_auth::spf::{check_host, received_spf, Identity, SpfOutcome, SpfRequest, SpfResult};
use netjes_dns::Resolver;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// What is remembered per message (Postfix's `instance`), across its
/// recipients: the checks that depend only on the client and the sender
/// (made once, not once per recipient), one Received-SPF, and the rate
/// limits (by index) that have counted the message.
#[derive(Debug, Default, Clone)]
struct InstanceState {
    prepended: bool,
    counted: Vec<usize>,
    checks: Option<Arc<MessageChecks>>,
}

/// The results that hold for every recipient of one message.
#[derive(Debug, Default)]
struct MessageChecks {
    /// SPF of the HELO identity, when the HELO is a name.
    spf_helo: Option<SpfOutcome>,
    /// SPF of MAIL FROM, or of the HELO for the null sender (RFC 7208 §2.4).
    spf: Option<SpfOutcome>,
    dnsbl: Option<crate::dnsbl::DnsblScore>,
}

/// Messages in flight are few; this bounds memory against a flood.
const MAX_INSTANCES: usize = 50_000;

#[derive(Debug, Default)]
struct Instances {
    map: HashMap<String, InstanceState>,
    order: VecDeque<String>,
}

impl Instances {
    fn with<T>(&mut self, id: &str, f: impl FnOnce(&mut InstanceState) -> T) -> T {
        if !self.map.contains_key(id) {
            if self.order.len() >= MAX_INSTANCES {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
            self.order.push_back(id.to_string());
        }
        f(self.map.entry(id.to_string()).or_default())
    }
}

/// The action and the check that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: String,
    pub check: &'static str,
}

impl Decision {
    fn dunno() -> Decision {
        Decision {
            action: "DUNNO".into(),
            check: "none",
        }
    }
}

pub struct Policy {
    /// Swapped whole on reload (SIGHUP); a request keeps the one it started with.
    config: std::sync::RwLock<Arc<Config>>,
    store: Arc<dyn Store>,
    dns: Arc<dyn Resolver>,
    instances: Mutex<Instances>,
    pub metrics: Arc<Metrics>,
    /// Which domains each application login may send for, when set.
    senders: Option<Arc<dyn crate::senders::SenderRights>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").finish_non_exhaustive()
    }
}

enum Step {
    /// Stop here with this action.
    Final(Decision),
    Continue,
}

impl Policy {
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, dns: Arc<dyn Resolver>) -> Policy {
        let metrics = Arc::new(Metrics::default());
        metrics.describe(
            "netjes_policy_requests_total",
            "Policy requests answered, by the action's kind and the check that chose it.",
        );
        metrics.describe(
            "netjes_policy_check_total",
            "Check results, by check and result.",
        );
        metrics.describe(
            "netjes_policy_errors_total",
            "Internal errors answered with DUNNO, and malformed requests.",
        );
        metrics.describe(
            "netjes_policy_log_only_total",
            "Actions a check in log-only mode would have taken.",
        );
        Policy {
            config: std::sync::RwLock::new(config),
            store,
            dns,
            instances: Mutex::new(Instances::default()),
            metrics,
            senders: None,
        }
    }

    /// With the sending rights of application logins (netjes serve's
    /// assignments of logins to signing domains).
    pub fn with_sender_rights(mut self, rights: Arc<dyn crate::senders::SenderRights>) -> Policy {
        self.senders = Some(rights);
        self
    }

    /// Forgets state unseen for greylisting's max age, and rate windows
    /// older than the longest period. Errors are logged and counted.
    pub async fn expire(&self, now: i64) {
        let max_age = self.config().raw.greylist.max_age_days as i64 * 86400;
        match self.store.expire(now - max_age, now - 2 * 3600).await {
            Ok(n) if n > 0 => tracing::info!("expired {n} greylist, whitelist and rate entries"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "expiring state");
                self.metrics
                    .inc("netjes_policy_errors_total", &[("kind", "store")]);
            }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new configuration in force for the requests that follow.
    pub fn reload(&self, c: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
    }

    fn instances(&self) -> std::sync::MutexGuard<'_, Instances> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a check's mode: in log mode, what would have been done is
    /// logged and the request goes on.
    fn act(&self, mode: Mode, check: &'static str, action: String, req: &Request) -> Step {
        match mode {
            Mode::Enforce => Step::Final(Decision { action, check }),
            Mode::Log => {
                self.metrics
                    .inc("netjes_policy_log_only_total", &[("check", check)]);
                tracing::info!(check, would = %action, client = req.get("client_address"), sender = req.sender(), recipient = req.recipient(), "log-only: not enforced");
                Step::Continue
            }
        }
    }

    /// Decides one request at Unix time `now`.
    pub async fn decide(&self, req: &Request, now: i64) -> Decision {
        let d = match self.decide_inner(req, now).await {
            Ok(d) => d,
            // The store failed or was too slow: the configured answer,
            // never a reject made up from missing state.
            Err(e) => {
                self.metrics
                    .inc("netjes_policy_errors_total", &[("kind", "store")]);
                match self.config().raw.store.store_failure {
                    crate::config::StoreFailure::Dunno => {
                        tracing::error!(error = %e, "state store failed: answering DUNNO");
                        Decision::dunno()
                    }
                    crate::config::StoreFailure::Defer => {
                        tracing::error!(error = %e, "state store failed: deferring");
                        Decision { action: "451 4.3.0 Policy state unavailable, try again later".into(), check: "store" }
                    }
                }
            }
        };
        let kind = d
            .action
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let kind = if kind.starts_with('4') {
            "defer".to_string()
        } else if kind.starts_with('5') {
            "reject".to_string()
        } else {
            kind.to_ascii_lowercase()
        };
        self.metrics.inc(
            "netjes_policy_requests_total",
            &[("action", &kind), ("check", d.check)],
        );
        d
    }

    async fn decide_inner(
        &self,
        req: &Request,
        now: i64,
    ) -> Result<Decision, crate::store::StoreError> {
        let c = self.config();
        // Only recipients are judged: at RCPT the whole envelope is known
        // and a reject does not cost the client a retransmitted message.
        if !req.is_policy_request() || !req.state().eq_ignore_ascii_case("RCPT") {
            return Ok(Decision::dunno());
        }
        let Some(ip) = req.client_ip() else {
            return Ok(Decision::dunno());
        };
        let sasl = !req.sasl_username().is_empty();
        let trusted = in_nets(&c.trusted, ip);

        // Our own mail to a recipient its domain no longer sends to (a
        // hard bounce before): refused here, not bounced again later.
        if sasl || trusted {
            if let Some(rights) = &self.senders {
                let sender = req.sender().to_ascii_lowercase();
                if let Some((_, domain)) = sender.rsplit_once('@') {
                    let rcpt = req.recipient().to_ascii_lowercase();
                    if let Some(why) = rights.suppressed(domain.trim_end_matches('.'), &rcpt).map_err(crate::store::StoreError::Rights)? {
                        return Ok(Decision { action: format!("550 5.1.1 <{rcpt}>: {why}"), check: "suppressed" });
                    }
                }
            }
        }
        // An application's login sends only for its own active domains.
        if sasl {
            if let Some(rights) = &self.senders {
                let sender = req.sender().to_ascii_lowercase();
                if let Some((_, domain)) = sender.rsplit_once('@') {
                    let domain = domain.trim_end_matches('.');
                    let login = req.sasl_username();
                    if let Some(why) = rights.refusal(login, domain).map_err(crate::store::StoreError::Rights)? {
                        return Ok(Decision { action: crate::senders::reply(&sender, &why), check: "sender_rights" });
                    }
                }
            }
        }

        // Rate limits apply to our own users too: a stolen password is what
        // they are for.
        if let Step::Final(d) = self.rate_limits(req, now).await? {
            return Ok(d);
        }
        if sasl || trusted {
            return Ok(Decision::dunno());
        }

        let sender = req.sender().to_ascii_lowercase();
        let sender_domain = sender
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_string());
        if c.raw.spoofing.enabled {
            if let Some(d) = &sender_domain {
                let ours = c
                    .own_domains
                    .iter()
                    .any(|o| d == o || d.ends_with(&format!(".{o}")));
                let allowed = c
                    .raw
                    .spoofing
                    .allowed_senders
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&sender));
                if ours && !allowed {
                    let action = format!("550 5.7.1 <{sender}>: {d} is our own domain; its mail comes through our servers, not from {ip}");
                    if let Step::Final(d) = self.act(c.raw.spoofing.mode, "spoofing", action, req) {
                        return Ok(d);
                    }
                }
            }
        }

        let checks = self.message_checks(req, ip, &c).await;
        let helo = req.helo().trim_end_matches('.');

        // SPF, as policyd-spf: HELO first, then MAIL FROM.
        let mut prepend = None;
        let mut spf_pass_domain = None;
        if let Some(h) = &checks.spf_helo {
            if h.result == SpfResult::Fail && c.raw.spf.helo_fail != SpfAction::Dunno {
                if let Step::Final(d) = self.act(
                    c.raw.spf.mode,
                    "spf",
                    spf_reply(c.raw.spf.helo_fail, h, ip),
                    req,
                ) {
                    return Ok(d);
                }
            }
        }
        if let Some(o) = &checks.spf {
            let configured = match o.result {
                SpfResult::Fail => c.raw.spf.fail,
                SpfResult::Softfail => c.raw.spf.softfail,
                SpfResult::Permerror => c.raw.spf.permerror,
                // A DNS problem is never a reject.
                SpfResult::Temperror => match c.raw.spf.temperror {
                    SpfAction::Reject => SpfAction::Defer,
                    a => a,
                },
                _ => SpfAction::Dunno,
            };
            if configured != SpfAction::Dunno {
                if let Step::Final(d) =
                    self.act(c.raw.spf.mode, "spf", spf_reply(configured, o, ip), req)
                {
                    return Ok(d);
                }
            }
            if o.result == SpfResult::Pass && o.identity == Identity::Mailfrom {
                spf_pass_domain = Some(o.domain.clone());
            }
            if c.raw.spf.header {
                prepend = Some(format!(
                    "Received-SPF: {}",
                    received_spf(o, ip, helo, req.sender(), &c.hostname)
                ));
            }
        }

        // The blocklist score: a reject, or greylisting even for known triplets.
        let mut force_greylist = false;
        if let Some(s) = &checks.dnsbl {
            if s.score >= c.raw.dnsbl.reject_threshold {
                let action = format!(
                    "550 5.7.1 {ip} is listed ({}); score {}",
                    s.hits.join(", "),
                    s.score
                );
                if let Step::Final(d) = self.act(c.raw.dnsbl.mode, "dnsbl", action, req) {
                    return Ok(d);
                }
            } else if s.score >= c.raw.dnsbl.greylist_threshold {
                force_greylist = true;
            }
        }

        if c.raw.greylist.enabled {
            if let Step::Final(d) = self
                .greylist(req, ip, spf_pass_domain.as_deref(), force_greylist, now)
                .await?
            {
                return Ok(d);
            }
        }

        if let Some(p) = prepend {
            // Once per message, whatever the number of recipients.
            let first = self.instances().with(req.instance(), |s| {
                !std::mem::replace(&mut s.prepended, true)
            });
            if first || req.instance().is_empty() {
                return Ok(Decision {
                    action: format!("PREPEND {p}"),
                    check: "spf",
                });
            }
        }
        Ok(Decision::dunno())
    }

    /// SPF and the blocklist score of the message's client and sender,
    /// made for its first recipient and reused for the others.
    async fn message_checks(
        &self,
        req: &Request,
        ip: std::net::IpAddr,
        c: &Config,
    ) -> Arc<MessageChecks> {
        if !c.raw.spf.enabled && !c.raw.dnsbl.enabled {
            return Arc::new(MessageChecks::default());
        }
        let instance = req.instance();
        if !instance.is_empty() {
            if let Some(done) = self.instances().with(instance, |s| s.checks.clone()) {
                return done;
            }
        }
        let mut m = MessageChecks::default();
        if c.raw.spf.enabled && !in_nets(&c.spf_skip, ip) {
            let helo = req.helo().trim_end_matches('.');
            let sreq = SpfRequest {
                ip,
                sender: req.sender(),
                helo,
                receiver: &c.hostname,
            };
            let helo_checkable = helo.contains('.')
                && !helo.starts_with('[')
                && helo.parse::<std::net::IpAddr>().is_err();
            if helo_checkable {
                let h = check_host(self.dns.as_ref(), &sreq, Identity::Helo).await;
                self.metrics.inc(
                    "netjes_policy_check_total",
                    &[("check", "spf_helo"), ("result", h.result.as_str())],
                );
                m.spf_helo = Some(h);
            }
            m.spf = if req.sender().is_empty() {
                // The null sender: the HELO identity is the one (RFC 7208 §2.4).
                m.spf_helo.clone()
            } else {
                Some(check_host(self.dns.as_ref(), &sreq, Identity::Mailfrom).await)
            };
            if let Some(o) = &m.spf {
                self.metrics.inc(
                    "netjes_policy_check_total",
                    &[("check", "spf"), ("result", o.result.as_str())],
                );
            }
        }
        if c.raw.dnsbl.enabled {
            let s = crate::dnsbl::score(self.dns.as_ref(), &c.dnsbl_sites, ip).await;
            for e in &s.errors {
                tracing::warn!(client = %ip, "blocklist error: {e}");
            }
            m.dnsbl = Some(s);
        }
        let m = Arc::new(m);
        if !instance.is_empty() {
            self.instances()
                .with(instance, |s| s.checks = Some(m.clone()));
        }
        m
    }

    async fn greylist(
        &self,
        req: &Request,
        ip: std::net::IpAddr,
        spf_domain: Option<&str>,
        force: bool,
        now: i64,
    ) -> Result<Step, crate::store::StoreError> {
        let c = self.config();
        let g = &c.raw.greylist;
        if !force
            && (c.whitelist.client(ip, req.client_name()) || c.whitelist.recipient(req.recipient()))
        {
            return Ok(Step::Continue);
        }
        let key = greylist::triplet_key(
            ip,
            req.sender(),
            req.recipient(),
            if g.spf_domain_key { spf_domain } else { None },
        );
        let p = Params {
            delay: g.delay_seconds as i64,
            retry_window: g.retry_window_seconds as i64,
            max_age: g.max_age_days as i64 * 86400,
        };
        let attempt = GreyAttempt {
            key,
            client_net: greylist::client_net(ip),
            now,
            params: p,
            awl_after: g.auto_whitelist_clients,
            force,
        };
        let verdict = match self.store.greylist(attempt).await? {
            GreyOutcome::AutoWhitelisted => {
                self.metrics.inc(
                    "netjes_policy_check_total",
                    &[("check", "greylist"), ("result", "auto-whitelisted")],
                );
                return Ok(Step::Continue);
            }
            GreyOutcome::Triplet(v) => v,
        };
        self.metrics.inc(
            "netjes_policy_check_total",
            &[("check", "greylist"), ("result", verdict_name(verdict))],
        );
        match verdict {
            Verdict::New | Verdict::TooEarly { .. } => {
                let wait = match verdict {
                    Verdict::TooEarly { remaining } => remaining,
                    _ => p.delay,
                };
                // DEFER_IF_PERMIT: if a later restriction rejects, the
                // client gets that reject, not a pointless retry.
                let action =
                    format!("DEFER_IF_PERMIT 4.7.1 Greylisted: please try again in {wait} seconds");
                Ok(self.act(g.mode, "greylist", action, req))
            }
            Verdict::FirstPass | Verdict::Known => Ok(Step::Continue),
        }
    }

    async fn rate_limits(&self, req: &Request, now: i64) -> Result<Step, crate::store::StoreError> {
        let c = self.config();
        for (i, r) in c.raw.rate_limit.iter().enumerate() {
            let who = match r.key {
                RateKey::ClientAddress => req.get("client_address").to_string(),
                RateKey::SaslUsername => req.sasl_username().to_string(),
                RateKey::Sender => req.sender().to_ascii_lowercase(),
            };
            if who.is_empty() {
                continue;
            }
            let secs = r.period.seconds();
            let window = now - now.rem_euclid(secs);
            let base = format!("{i}:{who}");
            let new_message = self.instances().with(req.instance(), |s| {
                let new = !s.counted.contains(&i);
                if new {
                    s.counted.push(i);
                }
                new
            });
            let mut over = None;
            if let Some(max) = r.messages {
                let by = u32::from(new_message || req.instance().is_empty());
                let n = self
                    .store
                    .rate_add(&format!("m:{base}"), window, by)
                    .await?;
                if n > max {
                    over = Some(
                        format!("{n} messages in {} (limit {max})", r.period.phrase()),
                    );
                }
            }
            if let Some(max) = r.recipients {
                let n = self.store.rate_add(&format!("r:{base}"), window, 1).await?;
                if n > max && over.is_none() {
                    over = Some(
                        format!("{n} recipients in {} (limit {max})", r.period.phrase()),
                    );
                }
            }
            if let Some(what) = over {
                let action = format!("450 4.7.1 Rate limit: {who} sent {what}; try again later");
                if let Step::Final(d) = self.act(r.mode, "rate_limit", action, req) {
                    return Ok(Step::Final(d));
                }
            }
        }
        Ok(Step::Continue)
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::New => "new",
        Verdict::TooEarly { .. } => "early",
        Verdict::FirstPass => "passed",
        Verdict::Known => "known",
    }
}

/// The reply for an SPF result that is acted on.
fn spf_reply(a: SpfAction, o: &SpfOutcome, ip: std::net::IpAddr) -> String {
    let what = match o.identity {
        Identity::Helo => format!("HELO {}", o.domain),
        Identity::Mailfrom => format!("<{}>", o.sender),
    };
    let why = match o.result {
        SpfResult::Fail => format!(
            "SPF fail: {} does not allow {ip} to send its mail",
            o.domain
        ),
        SpfResult::Softfail => format!(
            "SPF softfail: {} does not allow {ip} to send its mail",
            o.domain
        ),
        SpfResult::Permerror => format!(
            "SPF permerror: the SPF record of {} is broken ({})",
            o.domain,
            o.problem.clone().unwrap_or_default()
        ),
        SpfResult::Temperror => format!(
            "SPF temperror: the SPF record of {} could not be read; try again later",
            o.domain
        ),
        r => format!("SPF {}", r.as_str()),
    };
    let exp = o
        .explanation
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    match a {
        // RFC 7372 §3.2: 5.7.23 is "SPF validation failed", 4.7.24 its
        // temporary twin.
        SpfAction::Reject => format!("550 5.7.23 {what}: {why}{exp}"),
        SpfAction::Defer => format!("451 4.7.24 {what}: {why}"),
        SpfAction::Dunno => "DUNNO".into(),
    }
}
