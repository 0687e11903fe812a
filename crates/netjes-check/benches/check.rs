//! How long a whole audit takes when every DNS answer costs 20 ms, against
//! the critical path: the longest chain of lookups that wait on each other.
//!
//! The fixture: 2 MX hosts, a 3-level SPF include tree, DMARC with an
//! external report address, 4 DKIM selectors and one blocklist. Its longest
//! chains are four answers deep (TXT of the domain → include → include →
//! include, and MX → A → PTR → A for reverse DNS), so the critical path is
//! 4 × 20 ms = 80 ms. Every run starts with an empty cache.

use criterion::{criterion_group, criterion_main, Criterion};
use netjes_check::{check_domain, CheckOptions};
use netjes_dns::{CachingResolver, DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::time::Duration;

const LATENCY: Duration = Duration::from_millis(20);
const CRITICAL_PATH_ANSWERS: u32 = 4;

const ZONE: &str = r#"
bench.example.            MX  10 mx1.bench.example.
bench.example.            MX  20 mx2.bench.example.
mx1.bench.example.        A   192.0.2.1
mx2.bench.example.        A   192.0.2.2
1.2.0.192.in-addr.arpa.   PTR mx1.bench.example.
2.2.0.192.in-addr.arpa.   PTR mx2.bench.example.
bench.example.            TXT "v=spf1 include:l1.bench.example -all"
l1.bench.example.         TXT "v=spf1 include:l2.bench.example ~all"
l2.bench.example.         TXT "v=spf1 include:l3.bench.example ~all"
l3.bench.example.         TXT "v=spf1 ip4:198.51.100.0/24 ~all"
_dmarc.bench.example.     TXT "v=DMARC1; p=reject; rua=mailto:d@reports.example.net"
bench.example._report._dmarc.reports.example.net. TXT "v=DMARC1"
s1._domainkey.bench.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
s2._domainkey.bench.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
s3._domainkey.bench.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
s4._domainkey.bench.example. TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dns = rt.block_on(TestDns::start_str(ZONE));
    dns.set_delay(LATENCY);
    let addr = dns.addr();
    let opts = CheckOptions {
        selectors: ["s1", "s2", "s3", "s4"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ip_lists: Some(vec!["bl.bench.example".into()]),
        domain_lists: Some(vec![]),
        ..Default::default()
    };
    let audit = || async {
        let r = CachingResolver::new(
            HickoryResolver::new(&DnsConfig {
                nameservers: vec![addr],
                timeout: Duration::from_secs(2),
            })
            .unwrap(),
        );
        check_domain(&r, "bench.example", &opts).await
    };
    let report = rt.block_on(audit());
    assert!(
        !report.has(netjes_check::Status::Error),
        "{:#?}",
        report.findings
    );
    let mut g = c.benchmark_group("check");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("audit_20ms_per_answer", |b| b.iter(|| rt.block_on(audit())));
    g.finish();
    eprintln!(
        "critical path: {CRITICAL_PATH_ANSWERS} answers x {LATENCY:?} = {:?}",
        LATENCY * CRITICAL_PATH_ANSWERS
    );
}

criterion_group!(checks, bench);
criterion_main!(checks);
