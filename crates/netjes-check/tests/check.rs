//! The domain audit against fixture zones on the real test DNS server.

use netjes_check::{check_domain, CheckOptions, Report, Status};
use netjes_dns::{CachingResolver, DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::time::Duration;

async fn audit(zone: &str, domain: &str, opts: CheckOptions) -> Report {
    let dns = TestDns::start_str(zone).await;
    let r = CachingResolver::new(
        HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_millis(600),
        })
        .unwrap(),
    );
    check_domain(&r, domain, &opts).await
}

fn find<'a>(r: &'a Report, id: &str) -> Vec<&'a netjes_check::Finding> {
    r.findings.iter().filter(|f| f.id == id).collect()
}

fn one<'a>(r: &'a Report, id: &str) -> &'a netjes_check::Finding {
    let v = find(r, id);
    assert_eq!(v.len(), 1, "{id}: {:#?}", r.findings);
    v[0]
}

const GOOD: &str = r#"
good.example.        MX   10 mx1.good.example.
shop.good.example.   A    192.0.2.20
good.example.        MX   20 mx2.good.example.
mx1.good.example.    A    192.0.2.10
mx2.good.example.    A    192.0.2.11
10.2.0.192.in-addr.arpa. PTR mx1.good.example.
11.2.0.192.in-addr.arpa. PTR 192-0-2-11.dynamic.isp.example.
192-0-2-11.dynamic.isp.example. A 192.0.2.11
7.100.51.198.in-addr.arpa. PTR out.good.example.
out.good.example.    A    198.51.100.7
good.example.        TXT  "v=spf1 mx include:_spf.good.example -all"
_spf.good.example.   TXT  "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.good.example. TXT  "v=DMARC1; p=reject; rua=mailto:d@reports.example.net; ruf=mailto:f@good.example"
good.example._report._dmarc.reports.example.net. TXT "v=DMARC1"
selector1._domainkey.good.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
"#;

#[tokio::test]
async fn a_good_domain_passes_and_explains() {
    let r = audit(
        GOOD,
        "good.example",
        CheckOptions {
            ips: vec!["198.51.100.7".parse().unwrap()],
            ..Default::default()
        },
    )
    .await;
    assert!(!r.has(Status::Fail), "{:#?}", r.findings);
    assert_eq!(one(&r, "mx.host.mx1.good.example").status, Status::Pass);
    assert_eq!(one(&r, "ptr.192.0.2.10").status, Status::Pass);
    assert_eq!(
        one(&r, "ptr.192.0.2.11").status,
        Status::Warn,
        "a dynamic-looking PTR"
    );
    assert_eq!(one(&r, "spf.lookup-limit").message, "2 of 10 DNS lookups");
    assert_eq!(one(&r, "spf.ip").status, Status::Pass);
    assert_eq!(one(&r, "ptr.198.51.100.7").status, Status::Pass);
    assert_eq!(one(&r, "dmarc.rua-external").status, Status::Pass);
    assert_eq!(one(&r, "dmarc.ruf").status, Status::Info);
    let d = one(&r, "dkim.selector1");
    assert_eq!(d.status, Status::Pass);
    assert!(
        d.message.contains("guessed") && d.message.contains("ed25519"),
        "{}",
        d.message
    );
    let tree = r.spf_tree.as_ref().unwrap();
    assert_eq!(tree.children[0].node.domain, "_spf.good.example");
    assert!(r.score.unwrap() > 8.0, "{:?}", r.score);
}

const BAD: &str = r#"
bad.example.         MX   10 192.0.2.99
bad.example.         MX   20 nohost.bad.example.
bad.example.         MX   30 alias.bad.example.
alias.bad.example.   CNAME real.bad.example.
real.bad.example.    A    192.0.2.77
bad.example.         TXT  "v=spf1 include:a.bad.example include:b.bad.example include:c.bad.example a:x1.bad.example a:x2.bad.example ptr +all"
a.bad.example.       TXT  "v=spf1 include:d.bad.example include:e.bad.example include:f.bad.example ~all"
b.bad.example.       TXT  "v=spf1 include:g.bad.example include:h.bad.example ~all"
c.bad.example.       TXT  "v=spf1 ip4:203.0.113.0/24 ~all"
d.bad.example.       TXT  "v=spf1 ~all"
e.bad.example.       TXT  "v=spf1 ~all"
f.bad.example.       TXT  "v=spf1 ~all"
g.bad.example.       TXT  "v=spf1 ~all"
h.bad.example.       TXT  "v=spf1 ~all"
_dmarc.bad.example.  TXT  "v=DMARC1; p=none; rua=mailto:d@elsewhere.example; pct=10; ri=86400; foo=bar"
default._domainkey.bad.example. TXT "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
old._domainkey.bad.example. TXT "v=DKIM1; k=rsa; p="
"#;

#[tokio::test]
async fn a_bad_domain_gets_the_fixes() {
    let r = audit(
        BAD,
        "bad.example",
        CheckOptions {
            ips: vec!["192.0.2.200".parse().unwrap()],
            selectors: vec!["default".into(), "old".into(), "missing".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        one(&r, "mx.host.192.0.2.99").status,
        Status::Fail,
        "an IP literal MX"
    );
    assert_eq!(one(&r, "mx.host.nohost.bad.example").status, Status::Fail);
    let alias = one(&r, "mx.host.alias.bad.example.cname");
    assert_eq!(alias.status, Status::Fail);
    assert_eq!(alias.fix.as_ref().unwrap().value, "30 real.bad.example.");
    assert_eq!(
        one(&r, "mx.host.alias.bad.example").status,
        Status::Pass,
        "it does resolve"
    );
    let lim = one(&r, "spf.lookup-limit");
    assert_eq!(lim.status, Status::Fail);
    assert!(
        lim.message
            .contains("crossed at \"ptr\" in the record of bad.example"),
        "{}",
        lim.message
    );
    assert!(lim.message.contains("costs 11"), "{}", lim.message);
    assert_eq!(
        one(&r, "spf.void-limit").status,
        Status::Warn,
        "{:#?}",
        find(&r, "spf.void-limit")
    );
    let all = one(&r, "spf.all");
    assert_eq!(all.status, Status::Fail);
    assert!(
        all.fix.as_ref().unwrap().value.ends_with(" -all"),
        "{:?}",
        all.fix
    );
    assert_eq!(one(&r, "spf.ptr").status, Status::Warn);
    // +all lets the stranger pass, so it is listed as passing; the fix is the -all.
    assert_eq!(one(&r, "ptr.192.0.2.200").status, Status::Fail);
    let p = one(&r, "dmarc.policy");
    assert_eq!(p.status, Status::Warn);
    assert!(p.fix.as_ref().unwrap().value.contains("p=quarantine"));
    assert_eq!(find(&r, "dmarc.removed-tag").len(), 2);
    assert_eq!(one(&r, "dmarc.unknown-tag").status, Status::Warn);
    let ext = one(&r, "dmarc.rua-external");
    assert_eq!(ext.status, Status::Fail);
    assert_eq!(
        ext.fix.as_ref().unwrap().name,
        "bad.example._report._dmarc.elsewhere.example"
    );
    assert_eq!(one(&r, "dkim.default").status, Status::Warn, "1024 bits");
    assert_eq!(one(&r, "dkim.old").status, Status::Info, "revoked");
    assert_eq!(one(&r, "dkim.missing").status, Status::Fail);
}

#[tokio::test]
async fn missing_records_get_a_record_to_publish() {
    let r = audit(
        "bare.example. A 192.0.2.1\n",
        "bare.example",
        CheckOptions::default(),
    )
    .await;
    let spf = one(&r, "spf.missing");
    assert_eq!(spf.status, Status::Fail);
    assert_eq!(spf.fix.as_ref().unwrap().value, "v=spf1 -all");
    let d = one(&r, "dmarc.missing");
    assert_eq!(d.fix.as_ref().unwrap().name, "_dmarc.bare.example");
    assert!(d
        .fix
        .as_ref()
        .unwrap()
        .zone_line()
        .starts_with("_dmarc.bare.example. IN TXT \"v=DMARC1; p=none"));
    assert_eq!(one(&r, "mx.missing").status, Status::Warn);
    assert_eq!(one(&r, "dkim.none-found").status, Status::Warn);
}

#[tokio::test]
async fn null_mx_means_no_mail() {
    let r = audit(
        "nomail.example. MX 0 .\nnomail.example. TXT \"v=spf1 -all\"\n",
        "nomail.example",
        CheckOptions::default(),
    )
    .await;
    assert_eq!(one(&r, "mx.null").status, Status::Info);
}

/// A timeout or SERVFAIL is "could not be checked", never "missing": for
/// SPF, DKIM, DMARC and MX.
#[tokio::test]
async fn dns_failures_are_errors_not_absence() {
    let zone = "broken.example. SERVFAIL\n_dmarc.broken.example. SERVFAIL\nsel._domainkey.broken.example. SERVFAIL\n";
    let r = audit(
        zone,
        "broken.example",
        CheckOptions {
            selectors: vec!["sel".into()],
            ..Default::default()
        },
    )
    .await;
    for id in [
        "mx.dns-error",
        "spf.dns-error",
        "dmarc.dns-error",
        "dkim.sel",
    ] {
        assert_eq!(one(&r, id).status, Status::Error, "{id}: {:#?}", r.findings);
    }
    assert!(
        find(&r, "spf.missing").is_empty()
            && find(&r, "dmarc.missing").is_empty()
            && find(&r, "mx.missing").is_empty()
    );

    let zone = "slow.example. TIMEOUT\n_dmarc.slow.example. TIMEOUT\nsel._domainkey.slow.example. TIMEOUT\n";
    let r = audit(
        zone,
        "slow.example",
        CheckOptions {
            selectors: vec!["sel".into()],
            ..Default::default()
        },
    )
    .await;
    for id in [
        "mx.dns-error",
        "spf.dns-error",
        "dmarc.dns-error",
        "dkim.sel",
    ] {
        assert_eq!(one(&r, id).status, Status::Error, "{id}: {:#?}", r.findings);
    }
}

#[tokio::test]
async fn json_has_stable_ids_and_scores() {
    let r = audit(GOOD, "good.example", CheckOptions::default()).await;
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["domain"], "good.example");
    assert!(j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["id"].is_string() && f["status"].is_string() && f["category"].is_string()));
    assert!(j["scores"].as_array().unwrap().len() >= 4);
    assert!(j["score"].as_f64().unwrap() > 0.0);
}

const LISTS: &str = r#"
listed.example.        MX   10 mx.listed.example.
mx.listed.example.     A    192.0.2.66
66.2.0.192.zen.spamhaus.org. A   127.0.0.2
66.2.0.192.zen.spamhaus.org. TXT "https://check.spamhaus.org/listed?ip=192.0.2.66"
66.2.0.192.bl.spamcop.net.   A   127.255.255.254
listed.example.dbl.spamhaus.org. A 127.0.1.2
_mta-sts.listed.example. TXT "v=STSv1; id=2026-11-23"
_smtp._tls.listed.example. TXT "v=TLSRPTv1; rua=mailto:tls@listed.example"
default._bimi.listed.example. TXT "v=BIMI1; l=http://listed.example/logo.svg"
"#;

#[tokio::test]
async fn blocklists_and_policy_records() {
    let r = audit(LISTS, "listed.example", CheckOptions::default()).await;
    let z = one(&r, "blocklist.zen.spamhaus.org.192.0.2.66");
    assert_eq!(z.status, Status::Fail);
    assert!(z.advice.as_ref().unwrap().contains("check.spamhaus.org"));
    let s = one(&r, "blocklist.bl.spamcop.net.192.0.2.66");
    assert_eq!(
        s.status,
        Status::Error,
        "127.255.255.254 is the list refusing, not a listing"
    );
    assert_eq!(
        one(&r, "blocklist.b.barracudacentral.org.192.0.2.66").status,
        Status::Pass
    );
    assert_eq!(
        one(&r, "blocklist.dbl.spamhaus.org.listed.example").status,
        Status::Fail
    );
    assert_eq!(
        one(&r, "blocklist.multi.surbl.org.listed.example").status,
        Status::Pass
    );
    assert_eq!(
        one(&r, "mta-sts.record").status,
        Status::Fail,
        "id= may not hold '-'"
    );
    assert_eq!(one(&r, "tls-rpt.record").status, Status::Pass);
    assert_eq!(one(&r, "bimi.record").status, Status::Warn, "an http: logo");

    let r = audit(
        GOOD,
        "good.example",
        CheckOptions {
            ip_lists: Some(vec![]),
            domain_lists: Some(vec![]),
            ..Default::default()
        },
    )
    .await;
    assert!(
        find(&r, "blocklist.dbl.spamhaus.org.good.example").is_empty(),
        "no lists asked"
    );
    let sts = one(&r, "mta-sts.record");
    assert_eq!(sts.status, Status::Info);
    assert_eq!(sts.fix.as_ref().unwrap().name, "_mta-sts.good.example");
}

const MORE: &str = r#"
more.example.          MX   0 .
more.example.          MX   10 mail.more.example.
mail.more.example.     A    192.0.2.5
more.example.          TXT  "v=spf1 include:gone.more.example ip4:192.0.2.0/24 ip4:192.0.3.0/24 ip4:192.0.4.0/24 ip4:192.0.5.0/24 ip4:192.0.6.0/24 ip4:192.0.7.0/24 ip4:192.0.8.0/24 ip4:192.0.9.0/24 ip4:192.0.10.0/24 " "ip4:192.0.11.0/24 ip4:192.0.12.0/24 ip4:192.0.13.0/24 ip4:192.0.14.0/24 ip4:192.0.15.0/24 ip4:192.0.16.0/24 ip4:192.0.17.0/24 ip4:192.0.18.0/24 " "ip4:192.0.19.0/24 ip4:192.0.20.0/24 ip4:192.0.21.0/24 ip4:192.0.22.0/24 ip4:192.0.23.0/24 ip4:192.0.24.0/24 ip4:192.0.25.0/24 ip4:192.0.26.0/24 ~all"
twice.example.         TXT  "v=spf1 -all"
twice.example.         TXT  "v=spf1 mx -all"
_dmarc.twice.example.  TXT  "v=DMARC1; p=reject"
_dmarc.twice.example.  TXT  "v=DMARC1; p=none"
typo.example.          TXT  "v=spf1 ip4:192.0.2.0/33 -all"
_dmarc.typo.example.   TXT  "v=DMARC1; p=never"
_smtp._tls.typo.example. TXT "v=TLSRPTv1; rua=ftp://reports.example"
default._bimi.more.example. TXT "v=BIMI1; l=https://more.example/logo.svg"
weak._domainkey.more.example. TXT "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAJ2V17c1FIAVrxrL66DF9OctijZAN5UpjnVecSnJ6tDQ1cA/xcKARvSmJBKDXnDr1jHhwjin/eFr+XyU0Vlc8M8CAwEAAQ=="
spaced._domainkey.more.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPa piMlrwIaaPcHURo="
quoted._domainkey.more.example. TXT "v=DKIM1; k=ed25519; p=\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\""
"#;

#[tokio::test]
async fn every_other_finding_pass_and_fail() {
    let opts = CheckOptions {
        selectors: vec!["weak".into(), "spaced".into(), "quoted".into()],
        ..Default::default()
    };
    let r = audit(MORE, "more.example", opts).await;
    assert_eq!(one(&r, "mx.null-mixed").status, Status::Fail);
    assert_eq!(
        one(&r, "spf.include-error").status,
        Status::Fail,
        "include of a name without SPF"
    );
    assert_eq!(one(&r, "spf.size").status, Status::Warn);
    assert_eq!(one(&r, "bimi.record").status, Status::Info);
    let weak = one(&r, "dkim.weak");
    assert_eq!(weak.status, Status::Fail, "a 512-bit key: {}", weak.message);
    assert!(weak.message.contains("512-bit"));
    assert_eq!(one(&r, "dkim.spaced").status, Status::Pass);
    assert_eq!(
        one(&r, "dkim.spaced.format").status,
        Status::Warn,
        "white space pasted into p="
    );
    let q = one(&r, "dkim.quoted");
    assert_eq!(q.status, Status::Fail);
    assert!(q.message.contains("quote"), "{}", q.message);

    let r = audit(MORE, "twice.example", CheckOptions::default()).await;
    assert_eq!(one(&r, "spf.multiple").status, Status::Fail);
    assert_eq!(one(&r, "dmarc.multiple").status, Status::Fail);

    let r = audit(MORE, "typo.example", CheckOptions::default()).await;
    let s = one(&r, "spf.syntax");
    assert_eq!(s.status, Status::Fail);
    assert!(
        s.message.contains("at character 8"),
        "the position of the bad term: {}",
        s.message
    );
    assert_eq!(one(&r, "dmarc.syntax").status, Status::Fail);
    assert_eq!(one(&r, "tls-rpt.record").status, Status::Fail);
}

const LIMITS: &str = r#"
voids.example.           TXT "v=spf1 a:n1.voids.example a:n2.voids.example a:n3.voids.example -all"
_mta-sts.voids.example.  TXT "v=STSv1; id=20260101000000"
warn.example.            TXT "v=spf1 a:h.warn.example a:h.warn.example a:h.warn.example a:h.warn.example a:h.warn.example a:h.warn.example a:h.warn.example a:h.warn.example -all"
h.warn.example.          A   192.0.2.8
wide.example. TXT "v=spf1 include:w0.wide.example include:w1.wide.example include:w2.wide.example include:w3.wide.example include:w4.wide.example include:w5.wide.example include:w6.wide.example include:w7.wide.example -all"
w0.wide.example. TXT "v=spf1 include:x0.w0.wide.example include:x1.w0.wide.example include:x2.w0.wide.example include:x3.w0.wide.example include:x4.w0.wide.example include:x5.w0.wide.example include:x6.w0.wide.example include:x7.w0.wide.example ~all"
w1.wide.example. TXT "v=spf1 include:x0.w1.wide.example include:x1.w1.wide.example include:x2.w1.wide.example include:x3.w1.wide.example include:x4.w1.wide.example include:x5.w1.wide.example include:x6.w1.wide.example include:x7.w1.wide.example ~all"
w2.wide.example. TXT "v=spf1 include:x0.w2.wide.example include:x1.w2.wide.example include:x2.w2.wide.example include:x3.w2.wide.example include:x4.w2.wide.example include:x5.w2.wide.example include:x6.w2.wide.example include:x7.w2.wide.example ~all"
w3.wide.example. TXT "v=spf1 include:x0.w3.wide.example include:x1.w3.wide.example include:x2.w3.wide.example include:x3.w3.wide.example include:x4.w3.wide.example include:x5.w3.wide.example include:x6.w3.wide.example include:x7.w3.wide.example ~all"
w4.wide.example. TXT "v=spf1 include:x0.w4.wide.example include:x1.w4.wide.example include:x2.w4.wide.example include:x3.w4.wide.example include:x4.w4.wide.example include:x5.w4.wide.example include:x6.w4.wide.example include:x7.w4.wide.example ~all"
w5.wide.example. TXT "v=spf1 include:x0.w5.wide.example include:x1.w5.wide.example include:x2.w5.wide.example include:x3.w5.wide.example include:x4.w5.wide.example include:x5.w5.wide.example include:x6.w5.wide.example include:x7.w5.wide.example ~all"
w6.wide.example. TXT "v=spf1 include:x0.w6.wide.example include:x1.w6.wide.example include:x2.w6.wide.example include:x3.w6.wide.example include:x4.w6.wide.example include:x5.w6.wide.example include:x6.w6.wide.example include:x7.w6.wide.example ~all"
w7.wide.example. TXT "v=spf1 include:x0.w7.wide.example include:x1.w7.wide.example include:x2.w7.wide.example include:x3.w7.wide.example include:x4.w7.wide.example include:x5.w7.wide.example include:x6.w7.wide.example include:x7.w7.wide.example ~all"
x0.w0.wide.example. TXT "v=spf1 ~all"
x1.w0.wide.example. TXT "v=spf1 ~all"
x2.w0.wide.example. TXT "v=spf1 ~all"
x3.w0.wide.example. TXT "v=spf1 ~all"
x4.w0.wide.example. TXT "v=spf1 ~all"
x5.w0.wide.example. TXT "v=spf1 ~all"
x6.w0.wide.example. TXT "v=spf1 ~all"
x7.w0.wide.example. TXT "v=spf1 ~all"
x0.w1.wide.example. TXT "v=spf1 ~all"
x1.w1.wide.example. TXT "v=spf1 ~all"
x2.w1.wide.example. TXT "v=spf1 ~all"
x3.w1.wide.example. TXT "v=spf1 ~all"
x4.w1.wide.example. TXT "v=spf1 ~all"
x5.w1.wide.example. TXT "v=spf1 ~all"
x6.w1.wide.example. TXT "v=spf1 ~all"
x7.w1.wide.example. TXT "v=spf1 ~all"
x0.w2.wide.example. TXT "v=spf1 ~all"
x1.w2.wide.example. TXT "v=spf1 ~all"
x2.w2.wide.example. TXT "v=spf1 ~all"
x3.w2.wide.example. TXT "v=spf1 ~all"
x4.w2.wide.example. TXT "v=spf1 ~all"
x5.w2.wide.example. TXT "v=spf1 ~all"
x6.w2.wide.example. TXT "v=spf1 ~all"
x7.w2.wide.example. TXT "v=spf1 ~all"
x0.w3.wide.example. TXT "v=spf1 ~all"
x1.w3.wide.example. TXT "v=spf1 ~all"
x2.w3.wide.example. TXT "v=spf1 ~all"
x3.w3.wide.example. TXT "v=spf1 ~all"
x4.w3.wide.example. TXT "v=spf1 ~all"
x5.w3.wide.example. TXT "v=spf1 ~all"
x6.w3.wide.example. TXT "v=spf1 ~all"
x7.w3.wide.example. TXT "v=spf1 ~all"
x0.w4.wide.example. TXT "v=spf1 ~all"
x1.w4.wide.example. TXT "v=spf1 ~all"
x2.w4.wide.example. TXT "v=spf1 ~all"
x3.w4.wide.example. TXT "v=spf1 ~all"
x4.w4.wide.example. TXT "v=spf1 ~all"
x5.w4.wide.example. TXT "v=spf1 ~all"
x6.w4.wide.example. TXT "v=spf1 ~all"
x7.w4.wide.example. TXT "v=spf1 ~all"
x0.w5.wide.example. TXT "v=spf1 ~all"
x1.w5.wide.example. TXT "v=spf1 ~all"
x2.w5.wide.example. TXT "v=spf1 ~all"
x3.w5.wide.example. TXT "v=spf1 ~all"
x4.w5.wide.example. TXT "v=spf1 ~all"
x5.w5.wide.example. TXT "v=spf1 ~all"
x6.w5.wide.example. TXT "v=spf1 ~all"
x7.w5.wide.example. TXT "v=spf1 ~all"
x0.w6.wide.example. TXT "v=spf1 ~all"
x1.w6.wide.example. TXT "v=spf1 ~all"
x2.w6.wide.example. TXT "v=spf1 ~all"
x3.w6.wide.example. TXT "v=spf1 ~all"
x4.w6.wide.example. TXT "v=spf1 ~all"
x5.w6.wide.example. TXT "v=spf1 ~all"
x6.w6.wide.example. TXT "v=spf1 ~all"
x7.w6.wide.example. TXT "v=spf1 ~all"
x0.w7.wide.example. TXT "v=spf1 ~all"
x1.w7.wide.example. TXT "v=spf1 ~all"
x2.w7.wide.example. TXT "v=spf1 ~all"
x3.w7.wide.example. TXT "v=spf1 ~all"
x4.w7.wide.example. TXT "v=spf1 ~all"
x5.w7.wide.example. TXT "v=spf1 ~all"
x6.w7.wide.example. TXT "v=spf1 ~all"
x7.w7.wide.example. TXT "v=spf1 ~all"
"#;

#[tokio::test]
async fn limits_inherited_policies_and_the_mta_sts_record() {
    let r = audit(
        LIMITS,
        "voids.example",
        CheckOptions {
            ip_lists: Some(vec![]),
            domain_lists: Some(vec![]),
            ..Default::default()
        },
    )
    .await;
    let v = one(&r, "spf.void-limit");
    assert_eq!(v.status, Status::Fail);
    assert!(v.message.contains("a:n3.voids.example"), "{}", v.message);
    assert_eq!(one(&r, "mta-sts.record").status, Status::Pass);
    let p = one(&r, "mta-sts.policy");
    assert_eq!(
        p.status,
        Status::Fail,
        "mta-sts.voids.example has no address"
    );

    let r = audit(LIMITS, "warn.example", CheckOptions::default()).await;
    assert_eq!(one(&r, "spf.lookup-limit").status, Status::Warn, "8 of 10");

    // 8 includes of 8 includes: the limit is crossed, and the walk stops
    // following the tree at 50 records instead of asking for all 73.
    let r = audit(LIMITS, "wide.example", CheckOptions::default()).await;
    assert_eq!(one(&r, "spf.lookup-limit").status, Status::Fail);
    fn fetched(n: &netjes_check::spf::SpfNode) -> usize {
        usize::from(n.record.is_some()) + n.children.iter().map(|c| fetched(&c.node)).sum::<usize>()
    }
    fn capped(n: &netjes_check::spf::SpfNode) -> bool {
        n.problem
            .as_deref()
            .is_some_and(|p| p.contains("not followed"))
            || n.children.iter().any(|c| capped(&c.node))
    }
    let tree = r.spf_tree.as_ref().unwrap();
    assert!(capped(tree));
    assert_eq!(fetched(tree), 50, "records fetched");
    assert!(
        find(&r, "spf.include-error").is_empty(),
        "records not followed are not errors"
    );

    let r = audit(GOOD, "shop.good.example", CheckOptions::default()).await;
    let d = one(&r, "dmarc.inherited");
    assert_eq!(d.status, Status::Info);
    assert!(d.message.contains("_dmarc.good.example"), "{}", d.message);
}
