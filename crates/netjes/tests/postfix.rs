//! End to end with Debian's Postfix and swaks (scripts/test.sh installs
//! both): a private Postfix instance on 127.0.0.1 asks `netjes policy` (the
//! real binary, as a daemon) at RCPT time and relays what it accepts to a
//! small SMTP sink in this test, which keeps the delivered messages.
//!
//! Postfix's client address is 127.0.0.1, so the policy runs with no
//! trusted networks, and the fixture's SPF records name 127.0.0.1.

mod common;

use netjes_testdns::TestDns;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use netjes_testdns::free_port;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
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
        assert!(
            std::env::var_os("NETJES_TEST").is_none(),
            "postfix or swaks is missing; scripts/test.sh should have installed them"
        );
        eprintln!("postfix or swaks not installed: skipped");
    }
    ok
}

/// An SMTP server that accepts everything and keeps each message.
async fn sink(port: u16) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
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
    /// `extra`: main.cf lines of the test (restrictions, milters).
    fn start(dir: &Path, smtp: u16, sink: u16, extra: &str) -> Postfix {
        Postfix::start_with(dir, smtp, sink, extra, None)
    }

    /// With `resolv_conf`, Postfix runs in a private mount namespace whose
    /// /etc/resolv.conf is that file (naming the test's DNS server), so its
    /// MX lookups reach the test zone; the machine's file is untouched.
    fn start_with(dir: &Path, smtp: u16, sink: u16, extra: &str, resolv_conf: Option<&Path>) -> Postfix {
        let etc = dir.join("etc");
        for d in ["etc", "queue", "data"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        assert!(Command::new("chown")
            .args(["postfix"])
            .arg(dir.join("data"))
            .status()
            .unwrap()
            .success());
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
{extra}
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
            // The TLS session cache and entropy; without it the smtp
            // client has no TLS at all.
            ("tlsmgr", "unix - - n 1000? 1 tlsmgr"),
            ("postlog", "unix-dgram n - n - 1 postlogd"),
        ];
        let mut master = format!("127.0.0.1:{smtp} inet n - n - - smtpd\n");
        for (n, rest) in services {
            master.push_str(&format!("{n} {rest}\n"));
        }
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let out = match resolv_conf {
            None => Command::new("/usr/sbin/postfix").arg("-c").arg(&etc).arg("start").output().unwrap(),
            Some(r) => Command::new("unshare")
                .args(["-m", "sh", "-c", "mount --bind \"$1\" /etc/resolv.conf && exec /usr/sbin/postfix -c \"$2\" start", "sh"])
                .arg(r)
                .arg(&etc)
                .output()
                .unwrap(),
        };
        assert!(
            out.status.success(),
            "postfix start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Postfix { etc }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.etc)
            .arg("stop")
            .output();
    }
}

/// Waits up to 5 s for something to listen on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A netjes daemon of the test; killed (SIGKILL) when dropped, so that a
/// failing test leaves none running.
struct Daemon(Child);

impl Daemon {
    fn start(args: &[&str], port: u16) -> Daemon {
        let d = Daemon(
            Command::new(env!("CARGO_BIN_EXE_netjes"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        assert!(
            listening(port),
            "netjes {} did not listen on {port}",
            args[0]
        );
        d
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn policy_daemon(dir: &Path, port: u16, dns: &TestDns) -> Daemon {
    policy_daemon_with(dir, port, dns, "", "")
}

/// `top`: more top-level policy.toml keys; `extra`: more, after [greylist].
fn policy_daemon_with(dir: &Path, port: u16, dns: &TestDns, top: &str, extra: &str) -> Daemon {
    let cfg = dir.join("policy.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"inet:127.0.0.1:{port}\"\nhostname = \"mx.test\"\ntrusted_networks = []\ndata_dir = \"{}\"\n{top}[greylist]\ndelay_seconds = 2\n{extra}", dir.join("state").display()),
    )
    .unwrap();
    Daemon::start(
        &[
            "policy",
            "--config",
            cfg.to_str().unwrap(),
            "--nameserver",
            &dns.addr().to_string(),
        ],
        port,
    )
}

/// swaks's transcript of one attempt.
async fn swaks(port: u16, from: &str, to: &str) -> String {
    let (from, to) = (from.to_string(), to.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/swaks")
            .args([
                "--server",
                &format!("127.0.0.1:{port}"),
                "--helo",
                "client.test",
                "--from",
                &from,
                "--to",
                &to,
                "--timeout",
                "20",
            ])
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
    let restrictions = format!(
        "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service inet:127.0.0.1:{policy}\nsmtpd_policy_service_default_action = DUNNO"
    );
    let _postfix = Postfix::start(dir.path(), smtp, sink_port, &restrictions);
    assert!(listening(smtp), "postfix did not listen");

    // A greylisted first attempt gets a 450 for each recipient...
    let t = swaks(
        smtp,
        "alice@example.com",
        "bob@example.org,carol@example.org",
    )
    .await;
    assert!(
        t.contains("<** 450 4.7.1") && t.contains("Greylisted"),
        "{t}"
    );
    // ...and the retry after the delay is accepted and delivered, with
    // Received-SPF once for its two recipients.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = swaks(
        smtp,
        "alice@example.com",
        "bob@example.org,carol@example.org",
    )
    .await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "{t}");
    let msgs = wait_for(&got, 1).await;
    assert_eq!(msgs.len(), 1, "delivered once, to both recipients");
    assert_eq!(msgs[0].matches("Received-SPF:").count(), 1, "{}", msgs[0]);
    assert!(
        msgs[0].contains(
            "Received-SPF: pass (mx.test: domain of alice@example.com designates 127.0.0.1"
        ),
        "{}",
        msgs[0]
    );

    // An SPF fail gets a 550.
    let t = swaks(smtp, "ceo@forged.example", "bob@example.org").await;
    assert!(t.contains("<** 550 5.7.23"), "{t}");

    // Greylist state survives a kill -9: first attempt, kill, restart, retry.
    let t = swaks(smtp, "alice@example.com", "dave@example.org").await;
    assert!(t.contains("<** 450 4.7.1"), "{t}");
    daemon.kill();
    let _daemon = policy_daemon(dir.path(), policy, &dns);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = swaks(smtp, "alice@example.com", "dave@example.org").await;
    assert!(
        t.contains("<-  250 2.0.0 Ok: queued"),
        "after kill -9 and restart: {t}"
    );
}

fn milter_daemon(dir: &Path, port: u16, dns: &TestDns, key_dir: &Path) -> Daemon {
    let cfg = dir.join("milter.toml");
    // Postfix presents its own non-SMTP mail (sendmail, pickup) as a client
    // at 127.0.0.1, as OpenDKIM's default InternalHosts expects: that is
    // ours and signed. The test's SMTP clients connect from 127.0.0.2 and
    // are outside mail, verified.
    std::fs::write(
        &cfg,
        format!(
            "listen = \"inet:{port}@127.0.0.1\"\nauthserv_id = \"mx.test\"\ninternal_hosts = [\"127.0.0.1\"]\nkey_table = \"{0}/KeyTable\"\nsigning_table = \"refile:{0}/SigningTable\"\ntime_budget_seconds = 3\ndata_dir = \"{1}\"\n",
            key_dir.display(),
            dir.join("milter-data").display()
        ),
    )
    .unwrap();
    Daemon::start(
        &[
            "milter",
            "--config",
            cfg.to_str().unwrap(),
            "--nameserver",
            &dns.addr().to_string(),
            "--dns-timeout",
            "1",
        ],
        port,
    )
}

/// A private Postfix with `netjes milter` as its smtpd and non-smtpd
/// milter, signing example.com (p=reject) with an RSA key, and a sink.
/// Fields drop in this order: Postfix is stopped (it needs its
/// configuration) before the folder holding it goes.
struct MilterLab {
    pf: Postfix,
    daemon: Daemon,
    dns: TestDns,
    key: netjes_auth::dkim::PrivateKey,
    got: Arc<Mutex<Vec<String>>>,
    smtp: u16,
    dir: tempfile::TempDir,
}

/// `extra`: more main.cf lines.
async fn milter_lab(extra: &str) -> MilterLab {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = netjes_auth::dkim::PrivateKey::generate(netjes_auth::dkim::KeyAlgorithm::Rsa, 2048)
        .unwrap();
    let kpath = keys.join("s1.private");
    std::fs::write(&kpath, key.to_pkcs8_pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kpath, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        keys.join("KeyTable"),
        format!("s1 example.com:s1:{}\n", kpath.display()),
    )
    .unwrap();
    std::fs::write(keys.join("SigningTable"), "*@example.com s1\n").unwrap();
    let zone = format!(
        "example.com. TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc.example.com. TXT \"v=DMARC1; p=reject\"\ns1._domainkey.example.com. TXT {}\n_dmarc.slow.example. TIMEOUT\nslow.example. TIMEOUT\n",
        netjes_dns::master::txt_strings(&key.dns_value())
    );
    let dns = TestDns::start_str(&zone).await;
    let (smtp, milter, sink_port) = (free_port(), free_port(), free_port());
    let got = sink(sink_port).await;
    let daemon = milter_daemon(dir.path(), milter, &dns, &keys);
    let extra = format!("smtpd_milters = inet:127.0.0.1:{milter}\nnon_smtpd_milters = inet:127.0.0.1:{milter}\nmilter_default_action = tempfail\nmilter_protocol = 6\n{extra}");
    let pf = Postfix::start(dir.path(), smtp, sink_port, &extra);
    assert!(listening(smtp), "postfix did not listen");
    MilterLab {
        dir,
        dns,
        key,
        got,
        smtp,
        pf,
        daemon,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_with_the_milter_signs_verifies_and_rejects() {
    if !have_postfix() {
        return;
    }
    let MilterLab {
        dir,
        dns,
        key,
        got,
        smtp,
        pf,
        mut daemon,
    } = milter_lab("").await;

    // Ours: submitted with Postfix's sendmail, signed on the way out.
    let msg = "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: signed by netjes\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <e2e-1@example.com>\n\nHello Bob.\n";
    let mut sm = Command::new("/usr/sbin/sendmail")
        .arg("-C")
        .arg(&pf.etc)
        .args(["-f", "alice@example.com", "bob@example.org"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        sm.stdin.take().unwrap().write_all(msg.as_bytes()).unwrap();
    }
    assert!(sm.wait().unwrap().success());
    let delivered = wait_for(&got, 1).await;
    assert_eq!(delivered.len(), 1, "the signed message was not delivered");
    let signed = delivered[0].clone();
    assert!(
        signed.contains("DKIM-Signature: v=1; a=rsa-sha256;")
            && signed.contains("d=example.com")
            && signed.contains("s=s1"),
        "{signed}"
    );
    // netjes dkim verify passes it through the test DNS server.
    let path = dir.path().join("signed.eml");
    // The sink saw the message as SMTP carried it: dot-stuffing undone is
    // not needed for these lines.
    std::fs::write(&path, &signed).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args([
            "dkim",
            "verify",
            path.to_str().unwrap(),
            "--json",
            "--nameserver",
            &dns.addr().to_string(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v[0]["result"], "pass", "{v}");
    // dkimpy (Debian's python3-dkim, installed by scripts/test.sh), an
    // independent verifier.
    let py = Command::new("/usr/bin/python3")
        .args(["-c", "import dkim"])
        .status();
    assert!(
        py.as_ref().is_ok_and(|s| s.success()) || std::env::var_os("NETJES_TEST").is_none(),
        "python3-dkim is missing"
    );
    if py.is_ok_and(|s| s.success()) {
        let script = "import dkim,sys\nkey=open(sys.argv[2]).read().encode()\ndef dns(name, timeout=5):\n    return key if name.decode().rstrip('.') == 's1._domainkey.example.com' else None\nprint(dkim.verify(open(sys.argv[1],'rb').read(), dnsfunc=dns))";
        let rec = dir.path().join("record.txt");
        std::fs::write(&rec, key.dns_value()).unwrap();
        let out = Command::new("/usr/bin/python3")
            .args(["-c", script, path.to_str().unwrap(), rec.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "True",
            "dkimpy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("dkimpy not installed: the independent check was skipped");
    }

    // Outside mail: the signed message, relayed again, verifies (SPF does
    // not allow 127.0.0.1, DKIM carries DMARC).
    let t = swaks_data(smtp, "alice@example.com", "bob@example.org", Some(&signed)).await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "{t}");
    let delivered = wait_for(&got, 2).await;
    let verified = &delivered[1];
    assert!(
        verified.contains("Authentication-Results: mx.test;")
            && verified.contains("dkim=pass")
            && verified.contains("dmarc=pass"),
        "{verified}"
    );

    // A spoofed From of a p=reject domain: 550 at SMTP time.
    let t = swaks_data(smtp, "alice@example.com", "bob@example.org", None).await;
    assert!(
        t.contains("<** 550 5.7.1 DMARC policy of example.com rejects"),
        "{t}"
    );
    // A DNS timeout: a 4xx.
    let t = swaks_data(smtp, "x@slow.example", "bob@example.org", None).await;
    assert!(t.contains("<** 451 4.7.5"), "{t}");

    // Killed under load, no mail is lost: every message is either queued
    // and delivered, or refused with a 4xx that keeps it with the client
    // (milter_default_action = tempfail).
    let before = got.lock().unwrap().len();
    // Sends start 40 ms apart; the milter dies while they are in flight.
    let mut sends = Vec::new();
    for i in 0..16 {
        let signed = signed.clone();
        sends.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(40 * i)).await;
            swaks_data(smtp, "alice@example.com", "bob@example.org", Some(&signed)).await
        }));
    }
    // Kill once a message has gone through, so the kill is under load.
    for _ in 0..100 {
        if got.lock().unwrap().len() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.kill();
    let (mut queued, mut deferred) = (0, 0);
    for s in sends {
        let t = s.await.unwrap();
        if t.contains("<-  250 2.0.0 Ok: queued") {
            queued += 1;
        } else if t.contains("<** 4") {
            deferred += 1;
        } else {
            panic!("neither queued nor deferred: {t}");
        }
    }
    assert_eq!(queued + deferred, 16);
    assert!(
        queued > 0 && deferred > 0,
        "the kill came before or after every message ({queued} queued): the test proves nothing"
    );
    let delivered = wait_for(&got, before + queued).await;
    assert_eq!(
        delivered.len(),
        before + queued,
        "every queued message is delivered"
    );
}

/// swaks from 127.0.0.2 (an outside client to the milter), with a whole
/// message as DATA or swaks's own.
async fn swaks_data(port: u16, from: &str, to: &str, data: Option<&str>) -> String {
    let (from, to, data) = (from.to_string(), to.to_string(), data.map(String::from));
    let out = tokio::task::spawn_blocking(move || {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("/usr/bin/swaks");
        cmd.args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--local-interface",
            "127.0.0.2",
            "--helo",
            "client.test",
            "--from",
            &from,
            "--to",
            &to,
            "--timeout",
            "20",
        ]);
        if let Some(d) = data {
            std::fs::write(f.path(), d).unwrap();
            cmd.arg("--data").arg(f.path());
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The spoofs of issue "No way around DMARC", through the real Postfix:
/// forged Authentication-Results in every RFC 8601 form, two and three at
/// once, never reach the mailbox; author spoofs of a p=reject domain and a
/// spoof padded to 1,001 fields get 550; a client whose address Postfix
/// does not know (XCLIENT ADDR=[UNAVAILABLE]) is verified, not signed.
#[tokio::test(flavor = "multi_thread")]
async fn postfix_with_the_milter_refuses_every_way_around_dmarc() {
    if !have_postfix() {
        return;
    }
    let lab = milter_lab("smtpd_authorized_xclient_hosts = 127.0.0.0/8").await;
    let body = "To: bob@example.org\nSubject: x\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <spoof@nopolicy.example>\n\nHello.\n";
    // A From domain without a policy: DMARC none, so the message is
    // delivered, and what reaches the mailbox can be read.
    let forged_sets: [&[&str]; 3] = [
        &["mx.test; dmarc=pass", "mx.test; dkim=pass"],
        &["mx.test; dmarc=pass", "(x) mx.test; dmarc=pass", "\"mx.test\"; dmarc=pass"],
        &["\n\tmx.test\n\t; dmarc=pass", "MX.test.; dmarc=pass", "mx.test; spf=pass"],
    ];
    let mut delivered = 0;
    for forged in forged_sets {
        let head: String = forged
            .iter()
            .map(|f| format!("Authentication-Results: {f}\n"))
            .collect();
        let msg = format!("{head}From: x@nopolicy.example\n{body}");
        let t = swaks_data(lab.smtp, "x@nopolicy.example", "bob@example.org", Some(&msg)).await;
        assert!(t.contains("<-  250 2.0.0 Ok: queued"), "{t}");
        delivered += 1;
        let got = wait_for(&lab.got, delivered).await;
        let m = got.last().unwrap();
        let head = m.split("\r\n\r\n").next().unwrap().replace("\r\n\t", " ").replace("\r\n ", " ");
        let ours: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("authentication-results:"))
            .collect();
        assert_eq!(ours.len(), 1, "{forged:?}: {m}");
        assert!(ours[0].contains("dmarc=none"), "{m}");
    }

    let spoofs = [
        ("From: <alice@ example.com>\n".to_string(), "550 5.7.1 DMARC policy of example.com"),
        ("From: x@nopolicy.example\nFrom: alice@example.com\n".to_string(), "550 5.7.1 the message has 2 From fields"),
        (
            (0..1001).map(|i| format!("X-Pad-{i}: x\n")).collect::<String>()
                + "Authentication-Results: mx.test; dmarc=pass\nFrom: alice@example.com\n",
            "550 5.7.0 the message cannot be checked",
        ),
    ];
    for (head, want) in spoofs {
        let msg = format!("{head}{body}");
        let t = swaks_data(lab.smtp, "x@nopolicy.example", "bob@example.org", Some(&msg)).await;
        assert!(t.contains(&format!("<** {want}")), "{want}: {t}");
    }

    // XCLIENT ADDR=[UNAVAILABLE]: Postfix gives the milter an unknown
    // client. Before, that was taken for our own pickup and signed.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/swaks")
            .args([
                "--server",
                &format!("127.0.0.1:{}", lab.smtp),
                "--local-interface",
                "127.0.0.2",
                "--xclient-addr",
                "[UNAVAILABLE]",
                "--xclient-name",
                "[UNAVAILABLE]",
                "--from",
                "alice@example.com",
                "--to",
                "bob@example.org",
                "--timeout",
                "20",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let t = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(t.contains("XCLIENT"), "{t}");
    assert!(
        t.contains("<** 550 5.7.1 DMARC policy of example.com") && t.contains("SPF not checked"),
        "an unknown client must be verified (and this spoof rejected), not signed: {t}"
    );
}

/// Issue "DMARC reports, sent", end to end: twenty messages from outside
/// through Postfix and the milter for two domains that ask for reports;
/// `netjes report send --dry-run` writes one report per domain, and
/// netjes's own reader counts the twenty messages in them.
#[tokio::test(flavor = "multi_thread")]
async fn postfix_verdicts_become_the_reports_owed() {
    if !have_postfix() {
        return;
    }
    // 127.0.0.1 (where `netjes report send` connects from) may relay, as
    // the MTA's own host does; the test's outside clients use 127.0.0.2.
    let lab = milter_lab("mynetworks = 127.0.0.1/32").await;
    lab.dns.with_zone(|z| {
        z.merge(
            netjes_dns::zone::Zone::parse(
                "one.example. TXT \"v=spf1 ip4:127.0.0.2 -all\"\n_dmarc.one.example. TXT \"v=DMARC1; p=none; rua=mailto:dmarc@one.example\"\n\
                 two.example. TXT \"v=spf1 ip4:127.0.0.2 -all\"\n_dmarc.two.example. TXT \"v=DMARC1; p=quarantine; rua=mailto:rua@two.example; fo=1\"\n",
            )
            .unwrap(),
        )
    });
    for i in 0..20 {
        let domain = if i < 12 { "one.example" } else { "two.example" };
        let data = format!("From: <a@{domain}>\nTo: bob@example.org\nSubject: {i}\nDate: Mon, 30 Nov 2026 09:00:00 +0000\nMessage-ID: <{i}@{domain}>\n\nHello.\n");
        let out = swaks_data(lab.smtp, &format!("a@{domain}"), "bob@example.org", Some(&data)).await;
        assert!(out.contains("250 2.0.0 Ok: queued"), "{out}");
    }
    assert_eq!(wait_for(&lab.got, 20).await.len(), 20);
    let today = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 86_400;
    let day = netjes_reports::write::day_text(today);
    let out = lab.dir.path().join("reports");
    let data = lab.dir.path().join("milter-data");
    let ns = lab.dns.addr().to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_netjes")).args(&args).env("NETJES_MASTER_KEY", "0".repeat(64)).output().unwrap())
    };
    // The verdicts are written beside the answers: wait for all twenty.
    for _ in 0..100 {
        let store = netjes_milter::verdicts::VerdictStore::open(&data, None).unwrap();
        if store.rows_between(today * 86_400, (today + 1) * 86_400).unwrap().len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a: Vec<String> = ["report", "send", "--json", "--data-dir", data.to_str().unwrap(), "--day", &day, "--org-name", "mx.test", "--dry-run", "--out", out.to_str().unwrap(), "--nameserver", &ns].map(String::from).to_vec();
    let o = run(a).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sent: Vec<(String, u64)> = j.as_array().unwrap().iter().map(|r| (r["destination"].as_str().unwrap().to_string(), r["messages"].as_u64().unwrap())).collect();
    assert_eq!(sent, [("dmarc@one.example".to_string(), 12), ("rua@two.example".to_string(), 8)]);
    // netjes reads what netjes wrote: two reports, twenty messages, the
    // published policy as it was. (Today's reports end tonight: the
    // reader holds them as ending in the future, as it should.)
    let serve = lab.dir.path().join("serve");
    let a: Vec<String> = ["report", "import", "--json", "--data-dir", serve.to_str().unwrap(), out.to_str().unwrap()].map(String::from).to_vec();
    let j: serde_json::Value = serde_json::from_slice(&run(a).await.unwrap().stdout).unwrap();
    let accepted: Vec<&serde_json::Value> = j.as_array().unwrap().iter().filter(|r| r["result"] == "accepted" || r["result"] == "held").collect();
    assert_eq!(accepted.len(), 2, "{j}");
    assert_eq!(accepted.iter().map(|r| r["messages"].as_u64().unwrap()).sum::<u64>(), 20);
    let gz = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().contains("two.example") && p.to_string_lossy().ends_with(".xml.gz")).unwrap();
    let report = netjes_reports::read(&gz.to_string_lossy(), &std::fs::read(&gz).unwrap(), &Default::default()).remove(0).unwrap();
    let netjes_reports::Report::Aggregate(r) = report else { panic!("not an aggregate report") };
    assert_eq!((r.policy.p.as_deref(), r.policy.fo.as_deref(), r.format), (Some("quarantine"), Some("1"), "rfc9990"));
    assert!(r.records.iter().all(|x| x.spf == "pass" && x.envelope_to.as_deref() == Some("example.org")), "{:?}", r.records);

    // Each report is valid by RFC 9990's schema and read by parsedmarc,
    // whose row counts add up to the twenty messages.
    let reports: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".xml.gz")).collect();
    assert_eq!(reports.len(), 2);
    for gz in &reports {
        schema_valid(gz);
    }
    let counts = parsedmarc_counts(&reports);
    assert_eq!(counts, [("one.example".to_string(), 12), ("two.example".to_string(), 8)], "parsedmarc's reading");

    // Sent for real: through Postfix, where the milter signs it like any
    // mail of ours, to the destinations (the lab's next hop), and on to a
    // netjes serve taking reports for them: DKIM passes, and it imports.
    // A receiver holds a report whose day is not over, so the verdicts
    // are moved a day back, as if the mail had come yesterday.
    let db = rusqlite::Connection::open(data.join("verdicts.sqlite")).unwrap();
    db.execute("UPDATE verdicts SET time = time - 86400", []).unwrap();
    drop(db);
    let day = netjes_reports::write::day_text(today - 1);
    let before = lab.got.lock().unwrap().len();
    let a: Vec<String> = ["report", "send", "--json", "--data-dir", data.to_str().unwrap(), "--day", &day, "--org-name", "example.com", "--from", "noreply-dmarc@example.com", "--relay", &format!("127.0.0.1:{}", lab.smtp), "--nameserver", &ns].map(String::from).to_vec();
    let o = run(a).await.unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j.as_array().unwrap().iter().all(|r| r["result"] == "sent"), "{j}");
    let mails: Vec<String> = wait_for(&lab.got, before + 2).await[before..].to_vec();
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().all(|m| m.contains("d=example.com") && m.contains("Auto-Submitted: auto-generated")), "signed on the way out");
    std::env::set_var("NETJES_MASTER_KEY", "0".repeat(64));
    let receiver = common::report_receiver(lab.dir.path(), lab.dns.addr(), &["dmarc@one.example", "rua@two.example"]).await;
    let hop = netjes_check::relay::Relay { addr: receiver.smtp.clone(), tls: netjes_check::relay::RelayTls::None, ca_file: None, helo: "mx.test".into(), timeout: Duration::from_secs(10), auth: None };
    for (m, to) in mails.iter().zip(["dmarc@one.example", "rua@two.example"]) {
        let to = if m.contains("Report Domain: one.example") { "dmarc@one.example" } else { to };
        netjes_check::relay::send(&hop, "noreply-dmarc@example.com", &[to.to_string()], m.as_bytes()).await.unwrap();
    }
    // Trusted (DKIM pass for example.com) and not held: its rows count.
    let counted = |d: &str| receiver.store.report_rows(d, 0).unwrap().iter().map(|r| r.count).sum::<u64>();
    for _ in 0..100 {
        if counted("one.example") + counted("two.example") >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((counted("one.example"), counted("two.example")), (12, 8), "held: {:?}", receiver.store.held_reports());
    let r = &receiver.store.reports_for("one.example").unwrap()[0];
    assert!(r.trusted && r.held.is_none(), "{r:?}");
}

/// xmllint (Debian's libxml2-utils) validates a gzipped report against
/// the schema of RFC 9990 Appendix A.
fn schema_valid(gz: &Path) {
    let xml = Command::new("gzip").arg("-dc").arg(gz).output().unwrap().stdout;
    let file = gz.with_extension("");
    std::fs::write(&file, xml).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../netjes-reports/schema/rfc9990.xsd");
    let o = Command::new("xmllint").args(["--noout", "--nonet", "--schema"]).arg(&schema).arg(&file).output().expect("xmllint (libxml2-utils)");
    assert!(o.status.success(), "{}: {}", gz.display(), String::from_utf8_lossy(&o.stderr));
}

/// parsedmarc's reading of each report: policy domain and message count,
/// sorted. NETJES_PARSEDMARC names the python of its virtualenv
/// (scripts/test.sh makes it).
fn parsedmarc_counts(reports: &[PathBuf]) -> Vec<(String, u64)> {
    let python = std::env::var("NETJES_PARSEDMARC").expect("NETJES_PARSEDMARC: parsedmarc's python (scripts/test.sh sets it)");
    let script = "import sys, json, logging, parsedmarc\nlogging.disable(logging.CRITICAL)\nfor f in sys.argv[1:]:\n    r = parsedmarc.parse_aggregate_report_file(open(f, 'rb').read(), offline=True, always_use_local_files=True)\n    print(json.dumps([r['policy_published']['domain'], sum(x['count'] for x in r['records'])]))\n";
    let o = Command::new(python).arg("-c").arg(script).args(reports).output().unwrap();
    assert!(o.status.success(), "parsedmarc: {}", String::from_utf8_lossy(&o.stderr));
    let mut out: Vec<(String, u64)> = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    out.sort();
    out
}

/// MTA-STS for Postfix's own outbound mail: Postfix asks `netjes
/// tlspolicy` (socketmap) for each destination and delivers by MX from the
/// test zone. An enforce policy with a matching certificate: delivered
/// over TLS. An enforce policy whose MX shows a certificate for another
/// name: deferred, nothing delivered. A testing policy with the same
/// wrong certificate: delivered. `postmap -q` shows the answers.
#[tokio::test(flavor = "multi_thread")]
async fn postfix_follows_mta_sts_through_netjes_tlspolicy() {
    use netjes_testdns::smtp::{SinkOptions, SinkTls, SmtpSink};
    if !have_postfix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Three MX hosts, each on a loopback address of its own, one port.
    let mx = |ip: &str, port: u16, name: &str| SinkOptions { tls: SinkTls::Starttls, cert_names: vec![name.into()], listen: Some(format!("{ip}:{port}").parse().unwrap()), ..Default::default() };
    let good = SmtpSink::start(mx("127.0.0.155", 0, "mx.enforce.test")).await;
    let port = good.port;
    let wrong = SmtpSink::start(mx("127.0.0.156", port, "mx.elsewhere.test")).await;
    let testing = SmtpSink::start(mx("127.0.0.157", port, "mx.elsewhere.test")).await;
    let policy = |mode: &str, mx: &str| format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n");
    let (p1, p2, p3) = (policy("enforce", "mx.enforce.test"), policy("enforce", "mx.wrongcert.test"), policy("testing", "mx.testing.test"));
    let https = netjes_testdns::https::StaticHttps::start(&[("mta-sts.enforce.test", &p1), ("mta-sts.wrongcert.test", &p2), ("mta-sts.testing.test", &p3)]).await;
    let mut zone = String::new();
    for (d, ip) in [("enforce", "127.0.0.155"), ("wrongcert", "127.0.0.156"), ("testing", "127.0.0.157")] {
        zone.push_str(&format!("{d}.test. MX 10 mx.{d}.test.\nmx.{d}.test. A {ip}\n_mta-sts.{d}.test. TXT \"v=STSv1; id=1\"\nmta-sts.{d}.test. A 127.0.0.1\n"));
    }
    // Postfix's resolver asks port 53: the server gets an address of its own.
    let dns = TestDns::start_on(netjes_dns::zone::Zone::parse(&zone).unwrap(), "127.0.0.154:53".parse().unwrap()).await.unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.154\noptions timeout:1 attempts:2\n").unwrap();

    // netjes tlspolicy, trusting the policy hosts' test CA.
    let https_ca = dir.path().join("https-ca.pem");
    std::fs::write(&https_ca, &https.ca_pem).unwrap();
    let tp = free_port();
    let (state, ca, hp) = (dir.path().join("tlspolicy"), https_ca.display().to_string(), https.port.to_string());
    let listen = format!("inet:127.0.0.1:{tp}");
    let _daemon = Daemon::start(
        &["tlspolicy", "--listen", &listen, "--data-dir", state.to_str().unwrap(), "--ca-file", &ca, "--https-port", &hp, "--nameserver", "127.0.0.154:53"],
        tp,
    );

    // Postfix delivers by MX (transport_maps name the sinks' port, so the
    // policy lookup key is "domain:port"), trusting the MX hosts' CAs.
    let smtp_ca = dir.path().join("smtp-ca.pem");
    std::fs::write(&smtp_ca, [&good.ca_pem, &wrong.ca_pem, &testing.ca_pem].map(|s| s.as_str()).concat()).unwrap();
    let extra = format!(
        "smtp_dns_support_level = enabled\ntransport_maps = inline:{{enforce.test=smtp:enforce.test:{port}, wrongcert.test=smtp:wrongcert.test:{port}, testing.test=smtp:testing.test:{port}}}\n\
         smtp_tls_security_level = may\nsmtp_tls_CAfile = {}\nsmtp_tls_policy_maps = socketmap:inet:127.0.0.1:{tp}:postfix\nsmtp_tls_loglevel = 1\n",
        smtp_ca.display()
    );
    let smtp = free_port();
    let pf = Postfix::start_with(dir.path(), smtp, free_port(), &extra, Some(&resolv));

    // What Postfix is told, asked as Postfix asks.
    let ask = |key: &str| {
        let o = Command::new("/usr/sbin/postmap").arg("-c").arg(&pf.etc).arg("-q").arg(key).arg(format!("socketmap:inet:127.0.0.1:{tp}:postfix")).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(ask(&format!("enforce.test:{port}")), "secure match=mx.enforce.test servername=hostname");
    assert_eq!(ask("testing.test"), "", "testing: Postfix's default");

    for to in ["a@enforce.test", "b@wrongcert.test", "c@testing.test"] {
        let mut sm = Command::new("/usr/sbin/sendmail").arg("-C").arg(&pf.etc).args(["-f", "alice@example.com", to]).stdin(Stdio::piped()).spawn().unwrap();
        {
            use std::io::Write;
            sm.stdin.take().unwrap().write_all(format!("From: alice@example.com\nTo: {to}\nSubject: MTA-STS\n\nHello.\n").as_bytes()).unwrap();
        }
        assert!(sm.wait().unwrap().success());
    }
    let arrived = |s: &SmtpSink| s.messages().len();
    for _ in 0..150 {
        if arrived(&good) >= 1 && arrived(&testing) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("maillog")).unwrap_or_default();
    assert_eq!(arrived(&good), 1, "enforce, right certificate: delivered\n{log}");
    assert!(good.messages()[0].tls, "over TLS");
    assert_eq!(arrived(&testing), 1, "testing policy: delivered\n{log}");
    assert_eq!(arrived(&wrong), 0, "enforce, wrong certificate: never delivered\n{log}");
    // It waits in the queue, deferred for the certificate.
    let q = Command::new("/usr/sbin/postqueue").arg("-c").arg(&pf.etc).arg("-p").output().unwrap();
    let q = String::from_utf8_lossy(&q.stdout);
    assert!(q.contains("b@wrongcert.test"), "deferred, still queued: {q}\n{log}");
    assert!(log.contains("Verified TLS connection established to mx.enforce.test"), "{log}");
    assert!(log.lines().any(|l| l.contains("to=<b@wrongcert.test>") && l.contains("status=deferred (Server certificate not verified)")), "{log}");
    drop(dns);
}

/// Two MX hosts: two Postfix instances, each with its own `netjes policy`
/// and data directory, sharing one Redis. A sender greylisted on the first
/// is accepted on the second after the delay, and a rate limit of three
/// messages an hour holds across both together.
#[tokio::test(flavor = "multi_thread")]
async fn two_mx_hosts_share_greylisting_and_rate_limits_through_redis() {
    if !have_postfix() {
        return;
    }
    let redis = netjes_testdns::redis::RedisServer::start();
    let dns = TestDns::start_str("example.com. TXT \"v=spf1 ip4:127.0.0.1 -all\"\n").await;
    let sink_port = free_port();
    let got = sink(sink_port).await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = format!("[store]\nurl = \"{}\"\n[[rate_limit]]\nkey = \"sender\"\nperiod = \"hour\"\nmessages = 3\n", redis.url());
    let (p1, p2, s1, s2) = (free_port(), free_port(), free_port(), free_port());
    let _a = policy_daemon_with(d1.path(), p1, &dns, "", &extra);
    let _b = policy_daemon_with(d2.path(), p2, &dns, "", &extra);
    let restrictions = |p: u16| format!("smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service inet:127.0.0.1:{p}\nsmtpd_policy_service_default_action = DUNNO");
    let _mx1 = Postfix::start(d1.path(), s1, sink_port, &restrictions(p1));
    let _mx2 = Postfix::start(d2.path(), s2, sink_port, &restrictions(p2));
    assert!(listening(s1) && listening(s2), "postfix did not listen");

    let t = swaks(s1, "alice@example.com", "bob@example.org").await;
    assert!(t.contains("<** 450 4.7.1") && t.contains("Greylisted"), "mx1, first attempt: {t}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t = swaks(s2, "alice@example.com", "bob@example.org").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "mx2 knows the triplet mx1 saw: {t}");
    // Two messages counted so far (the greylisted one too); the third goes
    // through mx1, the fourth is over the limit on mx2.
    let t = swaks(s1, "alice@example.com", "bob@example.org").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "the third: {t}");
    let t = swaks(s2, "alice@example.com", "bob@example.org").await;
    assert!(t.contains("<** 450 4.7.1 ") && t.contains("Rate limit: alice@example.com sent 4 messages in an hour (limit 3)"), "the fourth, on the other host: {t}");
    assert_eq!(wait_for(&got, 2).await.len(), 2);
}

/// Sending for customers' domains with Postfix as the queue: `netjes
/// routes` answers Postfix's sender-dependent maps from serve's store. A
/// relay-route domain's mail goes through the customer's smarthost, over
/// STARTTLS with its login; a direct domain's goes the usual way (here the
/// lab's next hop); and a route changed in the store applies to the next
/// message without a reload.
#[tokio::test(flavor = "multi_thread")]
async fn postfix_sends_each_customer_domain_by_its_route() {
    use netjes_serve::routes::RouteInput;
    use netjes_testdns::smtp::{SinkOptions, SinkTls, SmtpSink};
    if !have_postfix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = "0".repeat(64);
    std::env::set_var("NETJES_MASTER_KEY", &key);
    let data = dir.path().join("serve");
    let store = netjes_serve::store::Store::open(&data, netjes_serve::crypto::MasterKey::from_hex(&key).unwrap()).unwrap();
    for d in ["relay.example", "direct.example"] {
        store.add_domain(d).unwrap();
    }
    let smarthost = SmtpSink::start(SinkOptions {
        tls: SinkTls::Starttls,
        login: Some(("app".into(), "s3cret pass".into())),
        refuse: vec![("nobody@example.org".into(), "550 5.1.1 <nobody@example.org>: no such user".into())],
        defer_once: vec!["later@example.org".into()],
        ..Default::default()
    })
    .await;
    let relay = RouteInput::Relay { host: "localhost".into(), port: smarthost.port, tls: "starttls".into(), user: Some("app".into()), password: Some("s3cret pass".into()) };
    store.set_route("relay.example", &relay).unwrap();

    // Both domains signed by the milter from serve's store, and the
    // application "app" may send for both (the policy checks it).
    for d in ["relay.example", "direct.example"] {
        let k = netjes_auth::dkim::PrivateKey::generate(netjes_auth::dkim::KeyAlgorithm::Ed25519, 0).unwrap();
        store.add_key(d, "s1", &k).unwrap();
        store.set_active(d, true).unwrap();
        store.set_logins(d, &["app".into()]).unwrap();
    }
    let dns = TestDns::start_str("").await;
    let mp = free_port();
    let milter_cfg = dir.path().join("milter.toml");
    std::fs::write(
        &milter_cfg,
        format!("listen = \"inet:{mp}@127.0.0.1\"\nauthserv_id = \"mx.test\"\ninternal_hosts = [\"127.0.0.1\"]\nkey_store = \"{}\"\ndata_dir = \"{}\"\n", data.display(), dir.path().join("milter-data").display()),
    )
    .unwrap();
    let _milter = Daemon::start(&["milter", "--config", milter_cfg.to_str().unwrap(), "--nameserver", &dns.addr().to_string()], mp);
    let pp = free_port();
    let _policy = policy_daemon_with(dir.path(), pp, &dns, &format!("sending_domains_dir = \"{}\"\n", data.display()), "");

    let rp = free_port();
    let listen = format!("inet:127.0.0.1:{rp}");
    let _routes = Daemon::start(&["routes", "--listen", &listen, "--data-dir", data.to_str().unwrap(), "--bounce-domain", "bounces.test"], rp);
    let (smtp, sink_port) = (free_port(), free_port());
    let got = sink(sink_port).await;
    let maps = |m: &str| format!("socketmap:inet:127.0.0.1:{rp}:{m}");
    let extra = format!(
        "relayhost = [127.0.0.1]:{sink_port}\ndefault_transport = smtp\nrelay_transport = smtp\nsender_dependent_relayhost_maps = {}\n\
         smtp_sender_dependent_authentication = yes\nsmtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = {}\nsmtp_sasl_security_options = noanonymous\n\
         smtp_sasl_tls_security_options = noanonymous\nsmtp_tls_security_level = may\nsmtp_tls_policy_maps = {}\nsmtp_tls_loglevel = 1\n\
         sender_canonical_maps = {}\nsender_canonical_classes = envelope_sender\n\
         queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n\
         smtpd_milters = inet:127.0.0.1:{mp}\nnon_smtpd_milters = inet:127.0.0.1:{mp}\nmilter_default_action = tempfail\nmilter_protocol = 6\n\
         smtpd_authorized_xclient_hosts = 127.0.0.0/8\nsmtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{pp}, permit_sasl_authenticated, reject_unauth_destination\nsmtpd_policy_service_default_action = DUNNO\n",
        maps("relayhost"),
        maps("sasl"),
        maps("tls"),
        maps("verp")
    );
    let pf = Postfix::start(dir.path(), smtp, sink_port, &extra);
    let ask = |key: &str, map: &str| {
        let o = Command::new("/usr/sbin/postmap").arg("-c").arg(&pf.etc).arg("-q").arg(key).arg(maps(map)).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(ask("app@relay.example", "relayhost"), format!("[localhost]:{}", smarthost.port));
    assert_eq!(ask(&format!("[localhost]:{}", smarthost.port), "tls"), "encrypt");
    assert_eq!(ask("app@direct.example", "relayhost"), "");

    let send_to = |from: &str, to: &str| {
        let mut sm = Command::new("/usr/sbin/sendmail").arg("-C").arg(&pf.etc).args(["-f", from, to]).stdin(Stdio::piped()).spawn().unwrap();
        {
            use std::io::Write;
            sm.stdin.take().unwrap().write_all(format!("From: {from}\nTo: {to}\nSubject: routed\n\nHello.\n").as_bytes()).unwrap();
        }
        assert!(sm.wait().unwrap().success());
    };
    let send = |from: &str| send_to(from, "bob@example.org");
    let arrived = |n: usize| {
        let sink = &smarthost;
        async move {
            for _ in 0..150 {
                if sink.messages().len() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            sink.messages()
        }
    };
    send("app@relay.example");
    send("app@direct.example");
    let at_smarthost = arrived(1).await;
    let log = || std::fs::read_to_string(dir.path().join("maillog")).unwrap_or_default();
    assert_eq!(at_smarthost.len(), 1, "{}", log());
    assert!(at_smarthost[0].tls && at_smarthost[0].login.as_deref() == Some("app"), "over STARTTLS, logged in: {:?}", at_smarthost[0]);
    // The return path is the customer's VERP address at the bounce domain,
    // so its bounces come back to netjes; the route still applies to it.
    assert_eq!(at_smarthost[0].from, "bounces+relay.example@bounces.test");
    let direct = wait_for(&got, 1).await;
    assert!(direct.len() == 1 && direct[0].contains("From: app@direct.example"), "the direct domain went its own way: {}", log());
    assert!(direct[0].contains("DKIM-Signature:") && direct[0].contains("d=direct.example"), "signed by the milter from serve's store: {}", direct[0]);
    assert!(at_smarthost[0].data.windows(14).any(|w| w == b"d=relay.exampl"), "the relayed mail is signed too");

    // The customer of direct.example now wants its own server too: the
    // next message takes it, with no reload of Postfix or netjes. (Postfix's
    // address resolver keeps its last answer for the same sender and
    // recipient in each process, so the next message here goes to
    // another recipient, as the next real one would.)
    store.set_route("direct.example", &relay).unwrap();
    send_to("app@direct.example", "carol@example.org");
    let at_smarthost = arrived(2).await;
    assert_eq!(at_smarthost.len(), 2, "{}", log());
    assert_eq!(at_smarthost[1].from, "bounces+direct.example@bounces.test");
    assert_eq!(wait_for(&got, 1).await.len(), 1);

    // What happened, from Postfix's log: each delivery with its customer
    // domain and Message-ID, and a recipient the smarthost refuses as a
    // hard bounce.
    send_to("app@relay.example", "nobody@example.org");
    // A 451 is tried again and then delivered (a short back-off here;
    // maximal_queue_lifetime = 1d gives the 24 hours in production).
    send_to("app@relay.example", "later@example.org");
    let maillog = dir.path().join("maillog");
    let events = |domain: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_netjes")).args(["events", "--json", "--domain", domain]).arg(&maillog).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let mut relay_events = serde_json::Value::Null;
    for _ in 0..150 {
        relay_events = events("relay.example");
        if relay_events.as_array().is_some_and(|a| a.len() >= 4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = relay_events.as_array().unwrap();
    assert_eq!(a.len(), 4, "{relay_events}");
    let later: Vec<(&str, &str)> = a.iter().filter(|e| e["recipient"] == "later@example.org").map(|e| (e["event"].as_str().unwrap(), e["class"].as_str().unwrap_or("-"))).collect();
    assert_eq!(later, [("deferred", "soft"), ("delivered", "-")], "{relay_events}");
    assert!(smarthost.messages().iter().any(|m| m.to == ["later@example.org"]), "delivered on the retry");
    let a: Vec<serde_json::Value> = a.iter().filter(|e| e["recipient"] != "later@example.org").cloned().collect();
    assert_eq!((a[0]["event"].as_str(), a[0]["recipient"].as_str()), (Some("delivered"), Some("bob@example.org")));
    assert!(a[0]["message_id"].as_str().is_some_and(|m| m.contains('@')) && a[0]["relay"].as_str().unwrap().starts_with("localhost["), "{relay_events}");
    assert_eq!((a[1]["event"].as_str(), a[1]["class"].as_str(), a[1]["dsn"].as_str()), (Some("bounced"), Some("hard"), Some("5.1.1")), "{relay_events}");
    assert!(a[1]["reply"].as_str().unwrap().contains("no such user"));
    let d = events("direct.example");
    assert_eq!(d.as_array().unwrap().len(), 2, "one direct, one through the smarthost after the change: {d}");

    // The 550 in the log suppresses nobody@example.org for relay.example:
    // the application's next message to it is refused at RCPT.
    let o = Command::new(env!("CARGO_BIN_EXE_netjes")).args(["events", "--store"]).arg(&data).arg(&maillog).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("suppressed nobody@example.org for relay.example"), "{}", String::from_utf8_lossy(&o.stderr));
    let t = tokio::task::spawn_blocking(move || {
        let o = Command::new("/usr/bin/swaks")
            .args(["--server", &format!("127.0.0.1:{smtp}"), "--helo", "app.test", "--from", "app@relay.example", "--to", "nobody@example.org", "--timeout", "20", "--xclient", "LOGIN=app"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(t.contains("<** 550 5.1.1") && t.contains("relay.example no longer sends to this address"), "{t}");
}

/// An application's login (here given by XCLIENT LOGIN, as SASL would)
/// sends only for the signing domains assigned to it in serve's store, and
/// each only once it is active: anything else is refused at RCPT with a
/// 5xx that names the domain. A login named nowhere is not restricted.
#[tokio::test(flavor = "multi_thread")]
async fn postfix_refuses_an_application_a_domain_not_its_own() {
    if !have_postfix() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = "0".repeat(64);
    let data = dir.path().join("serve");
    let store = netjes_serve::store::Store::open(&data, netjes_serve::crypto::MasterKey::from_hex(&key).unwrap()).unwrap();
    for d in ["shop.example", "other.example", "new.example"] {
        store.add_domain(d).unwrap();
    }
    store.set_active("shop.example", true).unwrap();
    store.set_active("other.example", true).unwrap();
    store.set_logins("shop.example", &["app".into()]).unwrap();
    store.set_logins("new.example", &["app".into()]).unwrap();
    let dns = TestDns::start_str("").await;
    let (smtp, policy, sink_port) = (free_port(), free_port(), free_port());
    let _got = sink(sink_port).await;
    let _daemon = policy_daemon_with(dir.path(), policy, &dns, &format!("sending_domains_dir = \"{}\"\n", data.display()), "");
    let extra = format!(
        "smtpd_authorized_xclient_hosts = 127.0.0.0/8\nsmtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{policy}, permit_sasl_authenticated, reject_unauth_destination\nsmtpd_policy_service_default_action = DUNNO\n"
    );
    let _pf = Postfix::start(dir.path(), smtp, sink_port, &extra);
    assert!(listening(smtp), "postfix did not listen");
    let try_from = |login: &'static str, from: &'static str| async move {
        let out = tokio::task::spawn_blocking(move || {
            Command::new("/usr/bin/swaks")
                .args(["--server", &format!("127.0.0.1:{smtp}"), "--helo", "app.test", "--from", from, "--to", "bob@example.org", "--timeout", "20"])
                .args(["--xclient", &format!("LOGIN={login}")])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let t = try_from("app", "news@shop.example").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "its own active domain: {t}");
    let t = try_from("app", "ceo@other.example").await;
    assert!(t.contains("<** 553 5.7.1") && t.contains("app may not send for other.example"), "another customer's domain: {t}");
    let t = try_from("app", "news@new.example").await;
    assert!(t.contains("<** 553 5.7.1") && t.contains("new.example is not switched on"), "not active yet: {t}");
    let t = try_from("app", "x@elsewhere.example").await;
    assert!(t.contains("<** 553 5.7.1") && t.contains("elsewhere.example is not a domain app sends for"), "{t}");
    let t = try_from("alice", "alice@other.example").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "a mailbox user is not an application: {t}");

    // A hard bounce in Postfix's log puts its recipient on shop.example's
    // suppression list (a soft one does not); the next message to it is
    // refused at RCPT, before it can bounce again.
    let log = dir.path().join("sent.log");
    std::fs::write(
        &log,
        "Nov 30 06:15:15 mx postfix/qmgr[1]: 1A2B3C4D5E: from=<news@shop.example>, size=300, nrcpt=2 (queue active)\n\
         Nov 30 06:15:16 mx postfix/smtp[2]: 1A2B3C4D5E: to=<bob@example.org>, relay=mx.example.org[192.0.2.9]:25, delay=1, delays=0/0/0.5/0.5, dsn=5.1.1, status=bounced (host mx.example.org[192.0.2.9] said: 550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown (in reply to RCPT TO command))\n\
         Nov 30 06:15:16 mx postfix/smtp[2]: 1A2B3C4D5E: to=<carol@example.org>, relay=mx.example.org[192.0.2.9]:25, delay=1, delays=0/0/0.5/0.5, dsn=4.2.2, status=deferred (host mx.example.org[192.0.2.9] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command))\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_netjes")).args(["events", "--store"]).arg(&data).arg(&log).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("suppressed bob@example.org for shop.example"), "{}", String::from_utf8_lossy(&o.stderr));
    let t = try_from("app", "news@shop.example").await;
    assert!(t.contains("<** 550 5.1.1") && t.contains("shop.example no longer sends to this address"), "suppressed: {t}");
    assert_eq!(store.suppressions("shop.example", "").unwrap().len(), 1, "the deferral suppressed nobody");
    let rep = store.reputation("shop.example", 7).unwrap();
    assert_eq!((rep.hard, rep.deferred, rep.delivered), (1, 1, 0), "counted for the reputation view: {rep:?}");
    store.unsuppress("shop.example", "bob@example.org").unwrap();
    let t = try_from("app", "news@shop.example").await;
    assert!(t.contains("<-  250 2.0.0 Ok: queued"), "removed from the list: {t}");
}
