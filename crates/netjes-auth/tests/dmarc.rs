//! DMARC (RFC 9989) policy discovery and evaluation over the real test DNS
//! server: the tree walk, psd=, np=, t=, alignment, and DNS failures.

use netjes_auth::dkim::{DkimResult, DkimSignatureReport};
use netjes_auth::dmarc::{evaluate, DmarcInput, DmarcResult, Policy};
use netjes_auth::spf::{Identity, SpfOutcome, SpfResult};
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::time::Duration;

const ZONE: &str = r#"
_dmarc.example.com.        TXT "v=DMARC1; p=reject; sp=quarantine; np=reject; rua=mailto:agg@example.com; pct=50; ri=3600"
example.com.               A   192.0.2.1
shop.example.com.          A   192.0.2.2
_dmarc.strict.example.     TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.test.example.       TXT "v=DMARC1; p=reject; t=y"
_dmarc.bank.                TXT "v=DMARC1; p=reject; psd=y"
_dmarc.twice.example.      TXT "v=DMARC1; p=reject"
_dmarc.twice.example.      TXT "v=DMARC1; p=none"
_dmarc.norua.example.      TXT "v=DMARC1; adkim=s"
_dmarc.broken.example.     SERVFAIL
"#;

fn spf(domain: &str, result: SpfResult) -> SpfOutcome {
    SpfOutcome {
        result,
        ..SpfOutcome::new(Identity::Mailfrom, domain, &format!("bounce@{domain}"))
    }
}

fn dkim(d: &str, result: DkimResult) -> DkimSignatureReport {
    DkimSignatureReport {
        result,
        domain: d.into(),
        selector: "s".into(),
        algorithm: "rsa-sha256".into(),
        key_bits: Some(2048),
        identity: format!("@{d}"),
        reason: None,
        warnings: vec![],
        testing: false,
        b: String::new(),
        signed_headers: vec!["from".into()],
    }
}

async fn eval(
    dns: &TestDns,
    from: &str,
    spf_out: Option<SpfOutcome>,
    sigs: Vec<DkimSignatureReport>,
) -> netjes_auth::dmarc::DmarcReport {
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let from = [from.to_string()];
    evaluate(
        &r,
        &DmarcInput {
            from_domains: &from,
            shown_domains: &[],
            spf: spf_out.as_ref(),
            dkim: &sigs,
        },
    )
    .await
}

#[tokio::test]
async fn relaxed_alignment_through_the_organizational_domain() {
    let dns = TestDns::start_str(ZONE).await;
    // DKIM d=mail.example.com aligns (relaxed) with From example.com.
    let r = eval(
        &dns,
        "example.com",
        None,
        vec![dkim("mail.example.com", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Pass);
    assert!(r.dkim_aligned && !r.spf_aligned);
    assert_eq!(r.dkim_domain.as_deref(), Some("mail.example.com"));
    assert_eq!(r.policy, Some(Policy::Reject));
    assert_eq!(r.disposition, Policy::None);
    let rec = r.record.unwrap();
    assert_eq!(rec.obsolete, vec!["pct=50", "ri=3600"]);

    // SPF for a subdomain aligns too.
    let r = eval(
        &dns,
        "example.com",
        Some(spf("bounces.example.com", SpfResult::Pass)),
        vec![],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Pass);
    assert!(r.spf_aligned);
}

#[tokio::test]
async fn unaligned_passes_fail_with_the_policy() {
    let dns = TestDns::start_str(ZONE).await;
    let r = eval(
        &dns,
        "example.com",
        Some(spf("esp.example.net", SpfResult::Pass)),
        vec![dkim("esp.example.net", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Fail);
    assert_eq!(r.disposition, Policy::Reject);
    let why = r.reason.unwrap();
    assert!(
        why.contains("esp.example.net") && why.contains("not aligned"),
        "{why}"
    );
}

#[tokio::test]
async fn subdomains_get_sp_and_nonexistent_ones_np() {
    let dns = TestDns::start_str(ZONE).await;
    let r = eval(&dns, "shop.example.com", None, vec![]).await;
    assert_eq!(
        r.policy_domain.as_deref(),
        Some("example.com"),
        "found by the tree walk"
    );
    assert_eq!(r.organizational_domain.as_deref(), Some("example.com"));
    assert_eq!(
        r.policy,
        Some(Policy::Quarantine),
        "sp= for an existing subdomain"
    );
    assert_eq!(r.disposition, Policy::Quarantine);
    let r = eval(&dns, "ghost.example.com", None, vec![]).await;
    assert_eq!(
        r.policy,
        Some(Policy::Reject),
        "np= for a subdomain that does not exist"
    );
}

#[tokio::test]
async fn strict_alignment_wants_the_exact_domain() {
    let dns = TestDns::start_str(ZONE).await;
    let r = eval(
        &dns,
        "strict.example",
        None,
        vec![dkim("mail.strict.example", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Fail);
    let r = eval(
        &dns,
        "strict.example",
        None,
        vec![dkim("strict.example", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Pass);
}

#[tokio::test]
async fn testing_mode_softens_the_policy_one_level() {
    let dns = TestDns::start_str(ZONE).await;
    let r = eval(&dns, "test.example", None, vec![]).await;
    assert_eq!(r.result, DmarcResult::Fail);
    assert_eq!(r.policy, Some(Policy::Quarantine));
}

#[tokio::test]
async fn psd_marks_the_public_suffix() {
    let dns = TestDns::start_str(ZONE).await;
    // The PSD record of "bank" applies to customer.bank, whose organizational
    // domain is one label below the PSD.
    let r = eval(
        &dns,
        "mail.customer.bank",
        None,
        vec![dkim("customer.bank", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.organizational_domain.as_deref(), Some("customer.bank"));
    assert_eq!(r.result, DmarcResult::Pass);
    let r = eval(
        &dns,
        "mail.customer.bank",
        None,
        vec![dkim("other.bank", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Fail);
    assert_eq!(r.policy_domain.as_deref(), Some("bank"));
}

#[tokio::test]
async fn no_record_several_records_and_no_policy_mean_none() {
    let dns = TestDns::start_str(ZONE).await;
    assert_eq!(
        eval(&dns, "unknown.example", None, vec![]).await.result,
        DmarcResult::None
    );
    let r = eval(&dns, "twice.example", None, vec![]).await;
    assert_eq!(r.result, DmarcResult::None);
    assert!(r.reason.unwrap().contains("2 DMARC records"));
    let r = eval(&dns, "norua.example", None, vec![]).await;
    assert_eq!(
        r.result,
        DmarcResult::None,
        "no p= and no rua=: DMARC does not apply"
    );
}

#[tokio::test]
async fn dns_failure_is_temperror() {
    let dns = TestDns::start_str(ZONE).await;
    let r = eval(
        &dns,
        "broken.example",
        None,
        vec![dkim("broken.example", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Temperror);
    assert_eq!(r.disposition, Policy::None, "a DNS failure never rejects");
    // A DKIM key that could not be fetched for an aligned domain: temperror, not fail.
    let r = eval(
        &dns,
        "example.com",
        None,
        vec![dkim("example.com", DkimResult::Temperror)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::Temperror);
}

/// Several author domains (RFC 7489 §6.6.1): each is judged, and the
/// strictest failing policy decides. Before, two authors gave dmarc=none,
/// so a second address turned p=reject off.
#[tokio::test]
async fn several_author_domains_take_the_strictest_failing_policy() {
    let dns = TestDns::start_str(ZONE).await;
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let run = |from: Vec<&'static str>, shown: Vec<&'static str>, sigs: Vec<DkimSignatureReport>| {
        let r = &r;
        async move {
            let from: Vec<String> = from.into_iter().map(String::from).collect();
            let shown: Vec<String> = shown.into_iter().map(String::from).collect();
            evaluate(
                r,
                &DmarcInput {
                    from_domains: &from,
                    shown_domains: &shown,
                    spf: None,
                    dkim: &sigs,
                },
            )
            .await
        }
    };
    // No policy beside p=reject: reject.
    let rep = run(vec!["nopolicy.example", "example.com"], vec![], vec![]).await;
    assert_eq!(rep.result, DmarcResult::Fail);
    assert_eq!(rep.disposition, Policy::Reject);
    assert_eq!(rep.from_domain.as_deref(), Some("example.com"));
    assert_eq!(rep.others.len(), 1);
    // The attacker's own passing domain does not cover the victim.
    let rep = run(
        vec!["attacker.example", "example.com"],
        vec![],
        vec![dkim("attacker.example", DkimResult::Pass)],
    )
    .await;
    assert_eq!(rep.result, DmarcResult::Fail);
    assert_eq!(rep.disposition, Policy::Reject);
    // Both pass: pass.
    let rep = run(
        vec!["example.com", "strict.example"],
        vec![],
        vec![
            dkim("example.com", DkimResult::Pass),
            dkim("strict.example", DkimResult::Pass),
        ],
    )
    .await;
    assert_eq!(rep.result, DmarcResult::Pass);
    // A temporary error beside a pass is a temporary error.
    let rep = run(
        vec!["example.com", "broken.example"],
        vec![],
        vec![dkim("example.com", DkimResult::Pass)],
    )
    .await;
    assert_eq!(rep.result, DmarcResult::Temperror);
    // A domain shown as the author (Sender, say) that fails its p=reject.
    let rep = run(vec!["nopolicy.example"], vec!["example.com"], vec![]).await;
    assert_eq!(rep.result, DmarcResult::Fail);
    assert_eq!(rep.disposition, Policy::Reject);
    assert!(rep.reason.unwrap().contains("shown to the reader"));
    // A shown domain that passes leaves the author's own result.
    let rep = run(
        vec!["nopolicy.example"],
        vec!["example.com"],
        vec![dkim("example.com", DkimResult::Pass)],
    )
    .await;
    assert_eq!(rep.result, DmarcResult::None);
    assert_eq!(rep.from_domain.as_deref(), Some("nopolicy.example"));
}

/// A record that does not apply (no p=, no rua=) still gives the
/// alignment modes: what speaks for the From domain is judged in them.
#[tokio::test]
async fn alignment_is_judged_when_the_record_does_not_apply() {
    let dns = TestDns::start_str(ZONE).await;
    let r = eval(
        &dns,
        "norua.example",
        None,
        vec![dkim("norua.example", DkimResult::Pass)],
    )
    .await;
    assert_eq!(r.result, DmarcResult::None);
    assert!(r.dkim_aligned);
    assert_eq!(r.dkim_domain.as_deref(), Some("norua.example"));
    let r = eval(
        &dns,
        "norua.example",
        None,
        vec![dkim("mail.norua.example", DkimResult::Pass)],
    )
    .await;
    assert!(!r.dkim_aligned, "adkim=s: a subdomain does not align");
}
