//! What more than one test file of this crate needs.

use std::time::Duration;

/// A running netjes serve that takes reports over SMTP for `addresses`,
/// looking DNS up at `dns` (which it uses to verify the reporters).
pub struct Receiver {
    /// HOST:PORT of its SMTP listener.
    pub smtp: String,
    pub store: netjes_serve::store::Store,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// Starts it with its data under `dir`/receiver. NETJES_MASTER_KEY must be
/// set (serve seals its keys).
pub async fn report_receiver(dir: &std::path::Path, dns: std::net::SocketAddr, addresses: &[&str]) -> Receiver {
    let raw = netjes_serve::config::RawConfig {
        data_dir: dir.join("receiver"),
        test_domain: "test.example".into(),
        hostname: Some("reports.test.example".into()),
        ip_lists: Some(vec![]),
        domain_lists: Some(vec![]),
        reports: netjes_serve::config::RawReports { addresses: addresses.iter().map(|a| a.to_string()).collect(), ..Default::default() },
        ..Default::default()
    };
    let cfg = netjes_serve::config::Config::validate(raw).unwrap();
    let resolver = netjes_dns::HickoryResolver::new(&netjes_dns::DnsConfig { nameservers: vec![dns], timeout: Duration::from_millis(500) }).unwrap();
    let parts = netjes_serve::build(&cfg, std::sync::Arc::new(resolver)).unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = smtp.local_addr().unwrap().to_string();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let store = parts.store.clone();
    tokio::spawn(async move { netjes_serve::run(http, smtp, &parts, cfg.retention, rx).await });
    Receiver { smtp: addr, store, _stop: stop }
}
