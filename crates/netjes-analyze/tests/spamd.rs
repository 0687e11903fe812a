//! `--spamd`: a real SpamAssassin (Debian's spamd, which scripts/test.sh
//! installs) on 127.0.0.1, with network tests off, asked about a spammy
//! message; its score and rules are folded into the report.

use netjes_analyze::{analyze, Options};
use netjes_dns::{DnsConfig, HickoryResolver};
use netjes_testdns::TestDns;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Spamd {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Spamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use netjes_testdns::free_port;

async fn start_spamd() -> Option<Spamd> {
    let bin = ["/usr/sbin/spamd", "/usr/bin/spamd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(bin) = bin else {
        // scripts/test.sh installs spamd; only a bare `cargo test` may lack it.
        assert!(
            std::env::var_os("NETJES_TEST").is_none(),
            "spamd is missing; scripts/test.sh should have installed it"
        );
        eprintln!("spamd not installed: skipped");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    // spamd drops to "nobody", which must read the configuration.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The site configuration: Debian's plugin loads, and nothing that asks
    // the network (DNS blocklists, Razor, Pyzor), as tests never leave
    // the machine.
    for e in std::fs::read_dir("/etc/spamassassin").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pre") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("local.cf"),
        "dns_available no\nskip_rbl_checks 1\nuse_bayes 0\nuse_razor2 0\nuse_pyzor 0\n",
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // spamd refuses to run as root without -u; as anyone else it runs as itself.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut child = Command::new(bin)
        .args(if root { &["-u", "nobody"][..] } else { &[][..] })
        .args([
            "-L",
            "--listen",
            &addr,
            "--max-children",
            "1",
            "--nouser-config",
            "--syslog",
            "stderr",
            "--siteconfigpath",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("spamd.log")).unwrap())
        .spawn()
        .unwrap();
    // spamd compiles its rules before it listens: a few seconds.
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Some(Spamd {
                child,
                addr,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("spamd did not start listening on {addr}");
}

const SPAM: &[u8] = b"From: Deals <deals@example.com>\r\nTo: bob@example.org\r\nSubject: BUY VIAGRA NOW!!!\r\n\r\nCheap viagra, buy now, 100% free, click here.\r\n";

#[tokio::test]
async fn spamassassin_score_and_rules_are_folded_in() {
    let Some(spamd) = start_spamd().await else {
        return;
    };
    let dns = TestDns::start_str("").await;
    let r = HickoryResolver::new(&DnsConfig {
        nameservers: vec![dns.addr()],
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let o = Options {
        spamd: Some((spamd.addr.clone(), Duration::from_secs(60))),
        ..Default::default()
    };
    let rep = analyze(&r, SPAM, &o).await.unwrap();
    let sa = rep.spamassassin.as_ref().unwrap_or_else(|| {
        panic!(
            "{:?}\nspamd's log:\n{}",
            rep.spamassassin_error,
            std::fs::read_to_string(spamd._dir.path().join("spamd.log")).unwrap_or_default()
        )
    });
    assert!(sa.spam && sa.score >= sa.threshold, "{sa:?}");
    let names: Vec<&str> = sa.rules.iter().map(|r| r.name.as_str()).collect();
    assert!(
        names.contains(&"MISSING_DATE") && names.contains(&"MISSING_MID"),
        "{names:?}"
    );
    let f = rep
        .findings()
        .find(|f| f.id == "spamassassin.score")
        .unwrap();
    // The table caps what SpamAssassin may take off.
    assert_eq!(f.penalty, sa.score.min(5.0));
    assert!(
        f.explanation.contains("MISSING_DATE") || f.explanation.contains("DRUG"),
        "{}",
        f.explanation
    );

    // No spamd there: the report says so, and the rest of the mark stands.
    // (A port nobody listens on: a killed spamd's children linger a while.)
    drop(spamd);
    let o = Options {
        spamd: Some((format!("127.0.0.1:{}", free_port()), Duration::from_secs(5))),
        ..Default::default()
    };
    let rep2 = analyze(&r, SPAM, &o).await.unwrap();
    assert!(rep2.spamassassin.is_none());
    assert!(
        rep2.spamassassin_error
            .as_deref()
            .unwrap()
            .contains("cannot connect"),
        "{:?}",
        rep2.spamassassin_error
    );
    assert!(!rep2.has("spamassassin.score"));
    assert!(
        rep2.score > rep.score && rep2.score - rep.score <= f.penalty + 0.06,
        "{} vs {}",
        rep2.score,
        rep.score
    );
}
