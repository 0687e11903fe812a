//! Criterion benchmarks of the engine. DNS is the real test server on
//! loopback; the cache is warmed before measuring, so the figures are the
//! engine's own cost per message (README "Speed").

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netjes_auth::dkim::{
    sign_with, verify_dkim, KeyAlgorithm, MessageSigner, PrivateKey, SignOptions,
};
use netjes_auth::message;
use netjes_auth::spf::{evaluate, SpfRequest};
use netjes_auth::verdict::{verify_message, Envelope};
use netjes_dns::{CachingResolver, DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::time::Duration;

fn message(size: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Your order\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
    );
    let line = "The quick brown fox jumps over the lazy dog, and then sends an invoice.\r\n";
    while m.len() < size {
        m.push_str(line);
    }
    m.into_bytes()
}

fn signed(msg: &[u8], key: &PrivateKey, selector: &str) -> Vec<u8> {
    let signer = MessageSigner::new(key).unwrap();
    let mut out = sign_with(msg, &signer, &SignOptions::new("example.com", selector))
        .unwrap()
        .into_bytes();
    out.extend_from_slice(msg);
    out
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rsa = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).unwrap();
    let ed = PrivateKey::generate(KeyAlgorithm::Ed25519, 0).unwrap();
    let zone = format!(
        "rsa._domainkey.example.com. TXT {}\ned._domainkey.example.com. TXT {}\n\
         example.com. TXT \"v=spf1 include:_spf1.example.com include:_spf2.example.com mx -all\"\n\
         _spf1.example.com. TXT \"v=spf1 ip4:198.51.100.0/24 include:_spf3.example.com ~all\"\n\
         _spf2.example.com. TXT \"v=spf1 a:out.example.com ~all\"\n\
         _spf3.example.com. TXT \"v=spf1 ip6:2001:db8::/32 ~all\"\n\
         out.example.com. A 203.0.113.9\n\
         example.com. MX 10 mx.example.com.\n\
         mx.example.com. A 192.0.2.25\n\
         _dmarc.example.com. TXT \"v=DMARC1; p=reject\"\n",
        netjes_dns::master::txt_strings(&rsa.dns_value()),
        netjes_dns::master::txt_strings(&ed.dns_value())
    );
    let dns = rt.block_on(TestDns::start_str(&zone));
    let resolver = CachingResolver::new(
        HickoryResolver::new(&DnsConfig {
            nameservers: vec![dns.addr()],
            timeout: Duration::from_secs(2),
        })
        .unwrap(),
    );

    let m4k = message(4 * 1024);
    let mut g = c.benchmark_group("dkim_sign_4k");
    g.throughput(Throughput::Elements(1));
    for (name, key) in [("rsa2048", &rsa), ("ed25519", &ed)] {
        let signer = MessageSigner::new(key).unwrap();
        let opts = SignOptions::new("example.com", name);
        g.bench_function(name, |b| {
            b.iter(|| sign_with(&m4k, &signer, &opts).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("dkim_verify_4k");
    g.throughput(Throughput::Elements(1));
    for (name, key, sel) in [("rsa2048", &rsa, "rsa"), ("ed25519", &ed, "ed")] {
        let s = signed(&m4k, key, sel);
        rt.block_on(async {
            let m = message::parse(&s).unwrap();
            assert_eq!(verify_dkim(&resolver, &m).await[0].result.as_str(), "pass");
        });
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let m = message::parse(&s).unwrap();
                    verify_dkim(&resolver, &m).await
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("spf");
    g.throughput(Throughput::Elements(1));
    let req = SpfRequest {
        ip: "192.0.2.25".parse().unwrap(),
        sender: "alice@example.com",
        helo: "mx.example.com",
        receiver: "mx.test",
    };
    rt.block_on(async { assert_eq!(evaluate(&resolver, &req).await.result.as_str(), "pass") });
    g.bench_function("include_tree_warm_cache", |b| {
        b.iter(|| rt.block_on(evaluate(&resolver, &req)))
    });
    g.finish();

    let mut g = c.benchmark_group("verify_10k");
    g.throughput(Throughput::Elements(1));
    let s = signed(&message(10 * 1024), &rsa, "rsa");
    let env = Envelope {
        ip: Some("192.0.2.25".parse().unwrap()),
        helo: Some("mx.example.com".into()),
        mail_from: Some("alice@example.com".into()),
    };
    rt.block_on(async {
        let v = verify_message(&resolver, &s, &env, "mx.test")
            .await
            .unwrap();
        assert_eq!(v.dmarc.result.as_str(), "pass");
    });
    g.bench_function("spf_dkim_arc_dmarc_warm_cache", |b| {
        b.iter(|| {
            rt.block_on(verify_message(&resolver, &s, &env, "mx.test"))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = auth;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(auth);
