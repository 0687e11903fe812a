//! One suite for the verdict store on both backends: SQLite (one host)
//! and PostgreSQL (a real server, started per test with initdb). Then what
//! only the shared store has to show: two MX hosts' verdicts make one
//! report, one `report send` at a time across the cluster, and an outage
//! of PostgreSQL that loses no verdict.

use netjes_milter::report::{owed, Reporter};
use netjes_milter::verdicts::{Row, SendLock, VerdictStore};
use netjes_testdns::postgres::PostgresServer;
use std::time::{Duration, Instant};

const DAY: i64 = 20_786;

fn row(time: i64, ip: &str, pass: bool) -> Row {
    Row::sample(time, ip, pass, &["rua@a.example"])
}

fn pg_store(pg: &PostgresServer) -> VerdictStore {
    VerdictStore::open_postgres(netjes_milter::verdicts_pg::config(&pg.url(), None, None).unwrap(), None).unwrap()
}

/// Waits until the writer has `n` rows in the day.
async fn settle(s: &VerdictStore, n: usize) -> Vec<Row> {
    let mut rows = vec![];
    for _ in 0..200 {
        rows = s.rows_between(DAY * 86_400, (DAY + 1) * 86_400).unwrap_or_default();
        if rows.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    rows
}

async fn suite(s: &VerdictStore) {
    for i in 0..5 {
        s.record(row(DAY * 86_400 + 10 + i, "192.0.2.1", i < 3)).unwrap();
    }
    s.record(row((DAY + 1) * 86_400 + 5, "192.0.2.1", true)).unwrap();
    let rows = settle(s, 5).await;
    assert_eq!(rows.len(), 5, "the next day's row is not in this day");
    assert_eq!(rows[0], row(DAY * 86_400 + 10, "192.0.2.1", true), "a row comes back as it went in, published policy and all");
    assert_eq!(s.rows("a.example", DAY * 86_400, (DAY + 1) * 86_400).unwrap().len(), 5);
    assert!(s.rows("b.example", 0, i64::MAX).unwrap().is_empty());
    assert!(s.delivered_from("a.example", 0).unwrap());
    assert!(!s.delivered_from("a.example", (DAY + 2) * 86_400).unwrap());
    assert!(!s.was_sent("a.example", DAY, "rua@a.example r1").unwrap());
    s.mark_sent("a.example", DAY, "rua@a.example r1", "m1@mx", 1).unwrap();
    s.mark_sent("a.example", DAY, "rua@a.example r1", "m2@mx", 2).unwrap();
    assert!(s.was_sent("a.example", DAY, "rua@a.example r1").unwrap());
    assert_eq!(s.sent_as("m1@mx").unwrap(), Some(("a.example".to_string(), "rua@a.example r1".to_string())), "the first mark stands");
    assert_eq!(s.sent_as("m2@mx").unwrap(), None);
    s.mark_dead("RUA@gone.example", 1000, "550 5.1.1").unwrap();
    assert_eq!(s.dead_until("rua@gone.example", 999).unwrap(), Some((1000, "550 5.1.1".to_string())));
    assert_eq!(s.dead_until("rua@gone.example", 1000).unwrap(), None, "over at `until`");
    assert!(s.send_lock().unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&VerdictStore::open(dir.path(), None).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_suite_and_keeps_it_across_a_reopen() {
    let pg = PostgresServer::start_new();
    suite(&pg_store(&pg)).await;
    // Opened again (a restart): migrations do nothing twice, rows stay.
    let again = pg_store(&pg);
    assert_eq!(settle(&again, 5).await.len(), 5);
}

/// Two MX hosts record into one PostgreSQL: the day's report has both
/// hosts' messages; and `report send` runs on one host at a time.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_make_one_report_and_send_one_at_a_time() {
    let pg = PostgresServer::start_new();
    let (mx1, mx2) = (pg_store(&pg), pg_store(&pg));
    for i in 0..7 {
        mx1.record(row(DAY * 86_400 + 100 + i, "192.0.2.1", true)).unwrap();
    }
    for i in 0..5 {
        mx2.record(row(DAY * 86_400 + 200 + i, "198.51.100.7", false)).unwrap();
    }
    let rows = settle(&mx1, 12).await;
    let who = Reporter { org_name: "mx.example.org".into(), email: "noreply-dmarc@mx.example.org".into() };
    let reports = owed(&rows, DAY, &who, &|_| true);
    assert_eq!(reports.len(), 1, "one report for the domain, not one per host");
    assert_eq!(reports[0].report.messages(), 12);
    assert_eq!(reports[0].report.records.len(), 2);

    let held = mx1.send_lock().unwrap();
    assert!(matches!(held, Some(SendLock::Cluster(_))));
    assert!(mx2.send_lock().unwrap().is_none(), "the other host waits its turn");
    drop(held);
    let mut got = None;
    for _ in 0..50 {
        got = mx2.send_lock().unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got.is_some(), "free once the first is done");
}

/// PostgreSQL goes away for a while: recording never waits and loses no
/// row (they are written once it is back), and reads fail within their
/// time budget instead of hanging.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_of_postgres_loses_no_verdict() {
    let mut pg = PostgresServer::start_new();
    let s = pg_store(&pg);
    s.record(row(DAY * 86_400 + 1, "192.0.2.1", true)).unwrap();
    assert_eq!(settle(&s, 1).await.len(), 1);
    pg.stop();
    for i in 0..20 {
        let t = Instant::now();
        s.record(row(DAY * 86_400 + 10 + i, "192.0.2.1", true)).unwrap();
        assert!(t.elapsed() < Duration::from_millis(50), "recording never waits");
    }
    let t = Instant::now();
    assert!(s.was_sent("a.example", DAY, "x").is_err());
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    pg.start();
    assert_eq!(settle(&s, 21).await.len(), 21, "every row written once PostgreSQL is back");
}

/// To PostgreSQL over TLS: with the server's CA the store works and the
/// session is encrypted; with only the system's CAs (the test CA is not
/// among them) it does not connect at all.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_over_tls() {
    let pg = PostgresServer::start_new_tls();
    let url = pg.tls_url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pg.tls.as_ref().unwrap().1).unwrap();
    let s = VerdictStore::open_postgres(netjes_milter::verdicts_pg::config(&url, None, Some(&ca)).unwrap(), None).unwrap();
    s.record(row(DAY * 86_400 + 1, "192.0.2.1", true)).unwrap();
    assert_eq!(settle(&s, 1).await.len(), 1);
    let no_ca = netjes_milter::verdicts_pg::config(&url, None, None).unwrap();
    assert!(VerdictStore::open_postgres(no_ca, None).is_err(), "an unknown CA is refused");
    // The server says the session is encrypted.
    let out = std::process::Command::new("psql")
        .args(["-h", pg.dir.path().to_str().unwrap(), "-p", &pg.tls.as_ref().unwrap().0.to_string(), "-U", "postgres", "-d", "netjes", "-At", "-c", "SELECT count(*) FROM pg_stat_ssl WHERE ssl"])
        .output()
        .unwrap();
    let n: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert!(n >= 1, "an encrypted session: {}", String::from_utf8_lossy(&out.stderr));
}
