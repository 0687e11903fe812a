//! A milter client load, the same for netjes milter and for OpenDKIM
//! (+ OpenDMARC): N connections, each sending whole SMTP transactions one
//! after another, as Postfix's smtpd processes do, through one or more
//! milters in a row (as smtpd_milters chains them). Prints throughput and
//! the 99th percentile latency per message as JSON.
//!
//! `milter_load CONNECTIONS MESSAGES CLIENT_IP MESSAGE_FILE MILTER [MILTER...]`
//! where MILTER is HOST:PORT.

use netjes_milter::protocol::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read(s: &mut TcpStream) -> Response {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.expect("read");
    let mut p = vec![0u8; frame_len(len).expect("frame")];
    s.read_exact(&mut p).await.expect("read");
    Response::decode(&p).expect("reply")
}

/// Sends a command (unless the milter opted out of it) and reads the reply
/// (unless it answers none). `p`: the negotiated protocol flags.
async fn ask(s: &mut TcpStream, c: Command, p: u32) -> Vec<Response> {
    let (send, reply) = exchange(&c, p);
    if !send {
        return vec![];
    }
    s.write_all(&encode_command(&c)).await.expect("write");
    let mut out = Vec::new();
    if reply {
        loop {
            let r = read(s).await;
            let last = r.ends_command();
            out.push(r);
            if last {
                break;
            }
        }
    }
    out
}

struct Parsed {
    from: String,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn parse(raw: &str) -> Parsed {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").expect("a message");
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("field");
            last.1.extend_from_slice(b"\n");
            last.1.extend_from_slice(line.as_bytes());
        } else {
            let (n, v) = line.split_once(':').expect("field");
            fields.push((n.to_string(), v.as_bytes().to_vec()));
        }
    }
    let from = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("From"))
        .map(|(_, v)| {
            String::from_utf8_lossy(v)
                .rsplit('<')
                .next()
                .unwrap_or("")
                .trim_end_matches(['>', ' '])
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    Parsed {
        from,
        fields,
        body: body.replace('\n', "\r\n").into_bytes(),
    }
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        eprintln!(
            "usage: milter_load CONNECTIONS MESSAGES CLIENT_IP MESSAGE_FILE MILTER [MILTER...]"
        );
        std::process::exit(2);
    }
    let conns: usize = a[1].parse().expect("connections");
    let total: usize = a[2].parse().expect("messages");
    let ip = a[3].clone();
    let msg = std::sync::Arc::new(parse(
        &std::fs::read_to_string(&a[4]).expect("message file"),
    ));
    let milters: Vec<String> = a[5..].to_vec();
    let per = total / conns;
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (ip, msg, milters) = (ip.clone(), msg.clone(), milters.clone());
            tokio::spawn(async move {
                let mut socks = Vec::new();
                for m in &milters {
                    let mut s = TcpStream::connect(m).await.expect("connect");
                    s.set_nodelay(true).ok();
                    // Offer what Postfix offers: every step may be skipped or
                    // left unanswered.
                    let p = match ask(
                        &mut s,
                        Command::OptNeg {
                            version: 6,
                            actions: 0x1ff,
                            protocol: 0x1fffff,
                        },
                        0,
                    )
                    .await
                    .first()
                    {
                        Some(Response::OptNeg { protocol, .. }) => *protocol,
                        other => panic!("no negotiation: {other:?}"),
                    };
                    ask(
                        &mut s,
                        Command::Macros {
                            stage: b'C',
                            pairs: vec![
                                ("j".into(), "mx.bench".into()),
                                ("{daemon_name}".into(), "smtpd".into()),
                            ],
                        },
                        p,
                    )
                    .await;
                    ask(
                        &mut s,
                        Command::Connect {
                            hostname: "client.bench".into(),
                            family: Family::Inet,
                            port: 4000,
                            address: ip.clone(),
                        },
                        p,
                    )
                    .await;
                    ask(&mut s, Command::Helo("client.bench".into()), p).await;
                    socks.push((s, p));
                }
                let mut lat = Vec::with_capacity(per);
                let mut outcomes: Vec<&'static str> = Vec::with_capacity(per);
                for i in 0..per {
                    let t = Instant::now();
                    let mut outcome = "continue";
                    'milters: for (s, p) in socks.iter_mut() {
                        let p = *p;
                        // A terminal reply before the end ends the message
                        // there, as Postfix does: abort it on this milter.
                        let terminal = |r: &[Response]| {
                            r.iter().find_map(|x| match x {
                                Response::Reject | Response::ReplyCode(_) => Some("reject"),
                                Response::Tempfail => Some("tempfail"),
                                Response::Discard => Some("discard"),
                                Response::Accept => Some("accept"),
                                _ => None,
                            })
                        };
                        let mut steps = vec![
                            Command::Macros {
                                stage: b'M',
                                pairs: vec![("i".into(), format!("Q{i}"))],
                            },
                            Command::Mail(vec![format!("<{}>", msg.from)]),
                            Command::Rcpt(vec!["<bob@example.org>".into()]),
                            Command::Data,
                        ];
                        steps.extend(msg.fields.iter().map(|(n, v)| Command::Header {
                            name: n.clone(),
                            value: v.clone(),
                        }));
                        steps.push(Command::EndOfHeaders);
                        for c in steps {
                            if let Some(t) = terminal(&ask(s, c, p).await) {
                                outcome = t;
                                ask(s, Command::Abort, p).await;
                                continue 'milters;
                            }
                        }
                        for chunk in msg.body.chunks(65535) {
                            let r = ask(s, Command::Body(chunk.to_vec()), p).await;
                            if let Some(t) = terminal(&r) {
                                outcome = t;
                                ask(s, Command::Abort, p).await;
                                continue 'milters;
                            }
                            if r.contains(&Response::Skip) {
                                break;
                            }
                        }
                        let r = ask(s, Command::EndOfMessage, p).await;
                        assert!(!r.is_empty(), "no answer at end of message");
                        if let Some(t) = terminal(&r) {
                            outcome = t;
                        }
                        // Counted apart, so that a milter that answers
                        // without signing cannot pass for a fast signer.
                        let signed = r.iter().any(|x| {
                            matches!(x, Response::InsertHeader { name, .. } | Response::AddHeader { name, .. } if name.eq_ignore_ascii_case("DKIM-Signature"))
                        });
                        if signed && matches!(outcome, "continue" | "accept") {
                            outcome = "signed";
                        }
                    }
                    outcomes.push(outcome);
                    lat.push(t.elapsed());
                }
                for (s, p) in socks.iter_mut() {
                    ask(s, Command::Quit, *p).await;
                }
                (lat, outcomes)
            })
        })
        .collect();
    let mut all: Vec<Duration> = Vec::with_capacity(total);
    let mut tally: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in tasks {
        let (l, o) = t.await.expect("task");
        all.extend(l);
        for x in o {
            *tally.entry(x).or_default() += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    let tally: Vec<String> = tally.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    println!(
        "{{\"messages\": {}, \"seconds\": {secs:.3}, \"rate\": {:.1}, \"p99_ms\": {:.3}, \"outcomes\": {{{}}}}}",
        all.len(),
        all.len() as f64 / secs,
        p99.as_secs_f64() * 1000.0,
        tally.join(", ")
    );
}
