//! The memory that parallel logins can take, measured in a process of its
//! own (other tests' hashes would blur the peak): before, 60 parallel
//! logins grew the process by 780 MiB.

mod common;

use common::{login_as, sender_zone, start, Client};


fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Logins from 60 addresses at once (behind a trusted proxy): at most
/// `max_login_hashes` argon2 hashes run at once, the rest get 429, and the
/// memory stays bounded (before: the process grew by 780 MiB).
#[test]
fn password_hashes_in_flight_are_bounded() {
    let s = start(&sender_zone(), |c| {
        c.max_login_hashes = 2;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    });
    // (A trusted proxy has no per-client connection cap.)
    let mut c = Client::new(s.http);
    let csrf = c.get("/login").csrf();
    let cookies = c.cookies.clone();
    let before = peak_rss_kib();
    let http = s.http;
    let threads: Vec<_> = (0..60)
        .map(|i| {
            let (csrf, cookies) = (csrf.clone(), cookies.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(http);
                c.cookies = cookies;
                login_as(&mut c, &csrf, &format!("198.51.100.{i}"), &format!("user{i}"), "x")
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let busy = codes.iter().filter(|c| **c == 429).count();
    assert!(busy > 0, "with 2 hashing slots some of 60 must be turned away: {codes:?}");
    assert!(codes.iter().all(|c| *c == 401 || *c == 429), "{codes:?}");
    let grew = peak_rss_kib().saturating_sub(before) / 1024;
    eprintln!("60 parallel logins: {busy} turned away, the peak grew by {grew} MiB");
    assert!(grew < 200, "the process grew by {grew} MiB");
}

