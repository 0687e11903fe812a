//! End to end with Debian's Postfix and swaks (scripts/test.sh installs
//! both): a private Postfix instance on 127.0.0.1 asks `netjes policy` (the
//! real binary, as a daemon) at RCPT time and relays what it accepts to a
//! small SMTP sink in this test, which keeps the delivered messages.
//!
//! Postfix's client address is 127.0.0.1, so the policy runs with no
//! trusted networks, and the fixture's SPF records name 127.0.0.1.

use netjes_testdns::TestDns;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn have_postfix() -> bool {
    // A private Postfix instance is started by root (it drops to the
    // postfix user itself); CI and the test script run as root.
    if !is_root() {
        eprintln!("not root: the Postfix instance cannot be started; skipped");
        return false;
    }
    let ok = Path::new("/usr/sbin/postfix").exists() && Path::new("/usr/bin/swaks").exists();
    if !ok {
        // scripts/test.sh installs them; only a bare `cargo test` may lack them.
        assert!(std::env::var_os("NETJES_TEST").is_none(), "postfix or swaks is missing; scripts/test.sh should have installed them");
        eprintln!("postfix or swaks not installed: skipped");
    }
    ok
}

/// An SMTP server that accepts everything and keeps each message.
async fn sink(port: u16) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        let _ = w.write_all(b"250-sink.test\r\n250 8BITMIME\r\n").await;
                    } else if cmd.starts_with("DATA") {
                        let _ = w.write_all(b"354 go ahead\r\n").await;
                        let mut msg = String::new();
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                                break;
                            }
                            msg.push_str(&l);
                        }
                        store.lock().unwrap().push(msg);
                        let _ = w.write_all(b"250 kept\r\n").await;
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        let _ = w.write_all(b"250 ok\r\n").await;
                    }
                }
            });
        }
    });
    got
}

struct Postfix {
    etc: PathBuf,
}

impl Postfix {
    fn start(dir: &Path, smtp: u16, policy: u16, sink: u16) -> Postfix {
        let etc = dir.join("etc");
        for d in ["etc", "queue", "data"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        assert!(Command::new("chown").args(["postfix"]).arg(dir.join("data")).status().unwrap().success());
        let d = dir.display();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test
mydomain = test
mydestination =
mynetworks = 192.0.2.0/24
relay_domains = example.org
relay_transport = smtp:[127.0.0.1]:{sink}
default_transport = smtp:[127.0.0.1]:{sink}
smtp_dns_support_level = disabled
smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service inet:127.0.0.1:{policy}
smtpd_policy_service_default_action = DUNNO
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = no
"
            ),
        )
        .unwrap();
        let services = [
            ("pickup", "unix  n - n 60 1 pickup"),
            ("cleanup", "unix n - n - 0 cleanup"),
            ("qmgr", "unix n - n 1 1 qmgr"),
            ("rewrite", "unix - - n - - trivial-rewrite"),
            ("bounce", "unix - - n - 0 bounce"),
            ("defer", "unix - - n - 0 bounce"),
            ("trace", "unix - - n - 0 bounce"),
            ("verify", "unix - - n - 1 verify"),
            ("flush", "unix n - n 1000? 0 flush"),
            ("proxymap", "unix - - n - - proxymap"),
            ("smtp", "unix - - n - - smtp"),
            ("relay", "unix - - n - - smtp"),
            ("showq", "unix n - n - - showq"),
            ("error", "unix - - n - - error"),
            ("retry", "unix - - n - - error"),
            ("discard", "unix - - n - - discard"),
            ("anvil", "unix - - n - 1 anvil"),
            ("scache", "unix - - n - 1 scache"),
            ("postlog", "unix-dgram n - n - 1 postlogd"),
        ];
        let mut master = format!("127.0.0.1:{smtp} inet n - n - - smtpd\n");
        for (n, rest) in services {
            master.push_str(&format!("{n} {rest}\n"));
        }
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let out = Command::new("/usr/sbin/postfix").arg("-c").arg(&etc).arg("start").output().unwrap();
        assert!(out.status.success(), "postfix start: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Postfix { etc }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix").arg("-c").arg(&self.etc).arg("stop").output();
    }
}

fn policy_daemon(dir: &Path, port: u16, dns: &TestDns) -> Child {
    let cfg = dir.join("policy.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"inet:127.0.0.1:{port}\"\nhostname = \"mx.test\"\ntrusted_networks = []\ndata_dir = \"{}\"\n[greylist]\ndelay_seconds = 2\n", dir.join("state").display()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args(["policy", "--config", cfg.to_str().unwrap(), "--nameserver", &dns.addr().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("netjes policy did not listen");
}

/// swaks's transcript of one attempt.
async fn swaks(port: u16, from: &str, to: &str) -> String {
    let (from, to) = (from.to_string(), to.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/swaks")
            .args(["--server", &format!("127.0.0.1:{port}"), "--helo", "client.test", "--from", &from, "--to", &to, "--timeout", "20"])
            .args(["--header", "Subject: netjes policy e2e", "--body", "hello"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

async fn wait_for(got: &Arc<Mutex<Vec<String>>>, n: usize) -> Vec<String> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_greylists_rejects_spf_fail_and_prepends_received_spf_once() {
    if !have_postfix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str("example.com. TXT \"v=spf1 ip4:127.0.0.1 -all\"\nforged.example. TXT \"v=spf1 ip4:192.0.2.1 -all\"\n").await;
    let (smtp, policy, sink_port) = (free_port(), free_port(), free_port());
    let got = sink(sink_port).await;
    let mut daemon = policy_daemon(dir.path(), policy, &dns);
    let _postfix = Postfix::start(dir.path(), smtp, policy, sink_port);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", smtp)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // A greylisted first attempt gets a 450 for each recipient...
    let t = swaks(smtp, "alice@example.com", "bob@example.org,carol@example.org").await;
    assert!(t.contains("<** 450 4.7.1") && t.contains("Greylisted"), "{t}");
    // ...and the retry after the delay is accepted and delivered, with
    // Received-SPF once for its two recipients.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = swaks(smtp, "alice@example.com", "bob@example.org,carol@example.org").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "{t}");
    let msgs = wait_for(&got, 1).await;
    assert_eq!(msgs.len(), 1, "delivered once, to both recipients");
    assert_eq!(msgs[0].matches("Received-SPF:").count(), 1, "{}", msgs[0]);
    assert!(msgs[0].contains("Received-SPF: pass (mx.test: domain of alice@example.com designates 127.0.0.1"), "{}", msgs[0]);

    // An SPF fail gets a 550.
    let t = swaks(smtp, "ceo@forged.example", "bob@example.org").await;
    assert!(t.contains("<** 550 5.7.23"), "{t}");

    // Greylist state survives a kill -9: first attempt, kill, restart, retry.
    let t = swaks(smtp, "alice@example.com", "dave@example.org").await;
    assert!(t.contains("<** 450 4.7.1"), "{t}");
    daemon.kill().unwrap(); // SIGKILL
    daemon.wait().unwrap();
    let mut daemon = policy_daemon(dir.path(), policy, &dns);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = swaks(smtp, "alice@example.com", "dave@example.org").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "after kill -9 and restart: {t}");
    let _ = daemon.kill();
    let _ = daemon.wait();
}
