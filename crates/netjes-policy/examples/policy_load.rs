//! A policy-request load generator, the same for netjes and the classic
//! tools (scripts/bench-policy.sh): N connections, each sending requests one
//! after another as an smtpd process does, and the throughput and the 99th
//! percentile latency, as JSON.
//!
//! `policy_load ADDR CONNECTIONS REQUESTS MODE`, MODE being
//! - `spf`: a sender whose SPF passes for the client (the DNS answers stay
//!   the same, so a resolver cache is warm after the first);
//! - `greylist`: a new triplet every request, the worst case for the store.

use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: policy_load ADDR CONNECTIONS REQUESTS spf|greylist");
        std::process::exit(2);
    }
    let addr = a[1].clone();
    let conns: usize = a[2].parse().expect("connections");
    let total: usize = a[3].parse().expect("requests");
    let mode = a[4].clone();
    let per = total / conns;
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.clone();
            let mode = mode.clone();
            tokio::spawn(async move {
                let s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
                s.set_nodelay(true).ok();
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut lat = Vec::with_capacity(per);
                let mut line = String::new();
                for i in 0..per {
                    let (sender, rcpt) = match mode.as_str() {
                        "spf" => ("alice@bench.example".to_string(), format!("user{}@example.org", i % 10)),
                        _ => (format!("s{c}@sender{}.example", i % 50), format!("r{c}-{i}@example.org")),
                    };
                    let req = format!(
                        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.10\nclient_name=mail.bench.example\nhelo_name=mail.bench.example\nsender={sender}\nrecipient={rcpt}\nrecipient_count=0\nqueue_id=\ninstance={c}.{i}\nsize=0\nsasl_method=\nsasl_username=\n\n"
                    );
                    let t = Instant::now();
                    w.write_all(req.as_bytes()).await.expect("write");
                    line.clear();
                    r.read_line(&mut line).await.expect("read");
                    assert!(line.starts_with("action="), "not a policy answer: {line:?}");
                    let mut blank = String::new();
                    r.read_line(&mut blank).await.expect("read");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    println!(
        "{{\"requests\": {}, \"seconds\": {secs:.3}, \"rps\": {:.1}, \"p99_ms\": {:.3}}}",
        all.len(),
        all.len() as f64 / secs,
        p99.as_secs_f64() * 1000.0
    );
}
