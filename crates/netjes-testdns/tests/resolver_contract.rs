//! The DNS error contract of netjes-dns, checked against a real server on
//! loopback (UDP and TCP).

use hickory_proto::rr::RecordType as H;
use netjes_dns::zone::Zone;
use netjes_dns::{
    CachingResolver, DnsConfig, DnsError, HickoryResolver, RecordType, Resolver, ResolverExt,
};
use netjes_testdns::TestDns;
use std::time::{Duration, Instant};

const ZONE: &str = r#"
example.com.          TXT   "v=spf1 -all"
example.com.          MX    10 mail.example.com.
mail.example.com.     A     192.0.2.25
alias.example.com.    CNAME mail.example.com.
a.b.example.com.      A     192.0.2.1
slow.example.com.     TIMEOUT
broken.example.com.   SERVFAIL
1.2.0.192.in-addr.arpa. PTR mail.example.com.
"#;

fn resolver(dns: &TestDns, timeout_ms: u64) -> HickoryResolver {
    HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(timeout_ms),
    })
    .unwrap()
}

#[tokio::test]
async fn answers_absence_and_failure_are_told_apart() {
    let dns = TestDns::start_str(ZONE).await;
    let r = resolver(&dns, 700);
    assert_eq!(
        r.txt("example.com").await.unwrap(),
        vec![b"v=spf1 -all".to_vec()]
    );
    assert_eq!(
        r.mx("EXAMPLE.COM.").await.unwrap(),
        vec![(10, "mail.example.com".to_string())]
    );
    assert_eq!(
        r.a("alias.example.com").await.unwrap(),
        vec!["192.0.2.25".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        r.ptr("192.0.2.1".parse().unwrap()).await.unwrap(),
        vec!["mail.example.com".to_string()]
    );

    let e = r.txt("nothing.example.com").await.unwrap_err();
    assert!(
        matches!(
            e,
            DnsError::NxDomain {
                negative_ttl: Some(60),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_void() && !e.is_temporary());
    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let e = r.a("b.example.com").await.unwrap_err();
    assert!(matches!(e, DnsError::NoData { .. }), "{e:?}");
    let e = r.txt("mail.example.com").await.unwrap_err();
    assert!(matches!(e, DnsError::NoData { .. }), "{e:?}");

    let e = r.txt("broken.example.com").await.unwrap_err();
    assert!(e.is_temporary(), "SERVFAIL must be temporary, got {e:?}");
    let started = Instant::now();
    let e = r.txt("slow.example.com").await.unwrap_err();
    assert!(e.is_temporary(), "a timeout must be temporary, got {e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout budget was not kept: {:?}",
        started.elapsed()
    );

    let e = r.txt("a..b").await.unwrap_err();
    assert!(matches!(e, DnsError::InvalidName { .. }));
}

#[tokio::test]
async fn truncated_udp_answers_are_retried_over_tcp() {
    let big: String = (0..6)
        .map(|i| format!("\"{}\" ", format!("{i}").repeat(200)))
        .collect();
    let dns = TestDns::start_str(&format!("big.example.com. TXT {big}\n")).await;
    let r = resolver(&dns, 2000);
    let txt = r.txt_parts("big.example.com").await.unwrap();
    assert_eq!(txt.len(), 1);
    assert_eq!(txt[0].len(), 6);
    assert_eq!(txt[0][5], b"5".repeat(200));
    assert!(dns.tcp_queries() >= 1, "the answer did not come over TCP");
}

#[tokio::test]
async fn cache_keeps_answers_and_absence_but_never_failures() {
    let dns = TestDns::start_str(ZONE).await;
    let r = CachingResolver::new(resolver(&dns, 700));
    for _ in 0..3 {
        r.txt("example.com").await.unwrap();
        r.txt("nothing.example.com").await.unwrap_err();
    }
    assert_eq!(dns.query_count("example.com", H::TXT), 1);
    assert_eq!(
        dns.query_count("nothing.example.com", H::TXT),
        1,
        "NXDOMAIN is cached for the SOA's negative TTL"
    );

    // SERVFAIL, then the zone is repaired: the next lookup must ask again.
    assert!(r
        .lookup("broken.example.com", RecordType::Txt)
        .await
        .unwrap_err()
        .is_temporary());
    dns.reset_counts();
    dns.with_zone(|z| {
        *z = Zone::parse("broken.example.com. TXT \"repaired\"\n").unwrap();
    });
    assert_eq!(
        r.txt("broken.example.com").await.unwrap(),
        vec![b"repaired".to_vec()]
    );
    assert_eq!(
        dns.query_count("broken.example.com", H::TXT),
        1,
        "the SERVFAIL was cached"
    );
    assert!(
        r.stats
            .temporary_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn concurrent_lookups_of_one_name_share_one_query() {
    let dns = TestDns::start_str(ZONE).await;
    dns.set_delay(Duration::from_millis(50));
    let r = CachingResolver::new(resolver(&dns, 1000));
    let answers = netjes_dns::join_all((0..8).map(|_| r.mx("example.com"))).await;
    assert!(answers
        .iter()
        .all(|a| a.as_ref().unwrap()[0].1 == "mail.example.com"));
    assert_eq!(dns.query_count("example.com", H::MX), 1);
    // A temporary failure is shared by those who waited, then forgotten.
    let fails = netjes_dns::join_all((0..4).map(|_| r.txt("broken.example.com"))).await;
    assert!(fails.iter().all(|f| f.as_ref().unwrap_err().is_temporary()));
    r.txt("broken.example.com").await.unwrap_err();
    assert!(
        dns.query_count("broken.example.com", H::TXT) >= 2,
        "the failure was cached"
    );
}
