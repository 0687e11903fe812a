//! Where a day's report may go (RFC 9990 §3), asked of the real test DNS
//! server: the domain's own organisation, or a destination that says yes.

use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_milter::report::authorised;
use netjes_testdns::TestDns;
use std::time::Duration;

#[tokio::test]
async fn external_destinations_must_say_yes_and_a_dns_failure_waits() {
    let dns = TestDns::start_str(
        "example.com._report._dmarc.vendor.example. TXT \"v=DMARC1\"\n\
         example.com._report._dmarc.other.example. TXT \"v=spf1 -all\"\n\
         *._report._dmarc.anyone.example. TXT \"v=DMARC1;\"\n\
         example.com._report._dmarc.slow.example. TIMEOUT\n\
         example.com._report._dmarc.moved.example. TXT \"v=DMARC1; rua=mailto:new@moved.example\"\n\
         example.com._report._dmarc.elsewhere.example. TXT \"v=DMARC1; rua=mailto:x@third.example\"\n",
    )
    .await;
    let r = HickoryResolver::new(&DnsConfig { nameservers: vec![dns.addr()], timeout: Duration::from_millis(300) }).unwrap();
    assert!(authorised(&r, "example.com", "dmarc@example.com").await.unwrap());
    assert!(authorised(&r, "mail.example.com", "d@reports.example.com").await.unwrap(), "same organisation");
    assert!(authorised(&r, "example.com", "rua@vendor.example").await.unwrap());
    assert!(authorised(&r, "example.com", "rua@anyone.example").await.unwrap(), "a wildcard says yes to all");
    assert!(!authorised(&r, "example.com", "rua@other.example").await.unwrap(), "not a DMARC record");
    assert!(!authorised(&r, "example.com", "rua@nobody.example").await.unwrap(), "no record");
    assert!(authorised(&r, "example.com", "rua@slow.example").await.is_err(), "a timeout is not a no");
    // The destination's own rua= overrides the address on its own host,
    // and may not send the reports to a third party.
    use netjes_milter::report::destination_for;
    assert_eq!(destination_for(&r, "example.com", "old@moved.example").await.unwrap().as_deref(), Some("new@moved.example"));
    assert_eq!(destination_for(&r, "example.com", "rua@elsewhere.example").await.unwrap(), None);
    assert_eq!(destination_for(&r, "example.com", "rua@vendor.example").await.unwrap().as_deref(), Some("rua@vendor.example"));
}
