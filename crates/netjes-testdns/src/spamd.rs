//! Debian's SpamAssassin daemon (spamd), started for a test on 127.0.0.1
//! with network tests off: the analyzer's --spamd test and the serve test
//! inbox's use the same one. scripts/test.sh installs spamd.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Spamd {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Spamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}


pub async fn start() -> Option<Spamd> {
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
    let port = crate::free_port();
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
                dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("spamd did not start listening on {addr}");
}

