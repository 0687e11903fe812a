//! Messages analysed per second over the corpora (testdata/mail and every
//! .eml in testdata), with a warm DNS cache and no blocklists: the cost of
//! the analyser itself, not of round trips to the lists.
//!
//! The DNS answers come from the test DNS server on 127.0.0.1 through the
//! same TTL cache the command uses; one pass before measuring fills it.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netjes_analyze::{analyze, Options};
use netjes_dns::{CachingResolver, DnsConfig, HickoryResolver};
use std::time::Duration;

fn corpus() -> Vec<Vec<u8>> {
    netjes_testdns::corpus::all_messages()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let messages = corpus();
    let dns = rt.block_on(netjes_testdns::TestDns::start_str(""));
    let r = CachingResolver::new(
        HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_secs(2),
        })
        .unwrap(),
    );
    let o = Options {
        now: 1_795_512_600,
        ..Default::default()
    };
    // Warm the cache.
    rt.block_on(async {
        for m in &messages {
            let _ = analyze(&r, m, &o).await;
        }
    });
    let mut g = c.benchmark_group("analyze");
    g.throughput(Throughput::Elements(messages.len() as u64));
    g.sample_size(10);
    g.bench_function(
        format!("corpus_{}_messages_warm_cache", messages.len()),
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    for m in &messages {
                        let _ = analyze(&r, m, &o).await;
                    }
                })
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
