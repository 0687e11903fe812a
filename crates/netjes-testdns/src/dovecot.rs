//! Debian's Dovecot IMAP server, started for a test on 127.0.0.1 with a
//! throwaway configuration: one user with a password, Maildir under a
//! temporary folder, STARTTLS with the test's certificate when one is
//! given. scripts/test.sh installs dovecot-imapd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Dovecot {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The owner of the mail: ourselves, or nobody when we are root
    /// (Dovecot will not touch mail as uid 0).
    owner: (u32, u32),
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn me() -> (String, u32, u32) {
    let out = |args: &[&str]| {
        let o = Command::new("id").args(args).output().expect("id");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    (out(&["-un"]), out(&["-u"]).parse().unwrap(), out(&["-g"]).parse().unwrap())
}

impl Dovecot {
    /// Starts Dovecot with `user`/`password`; `tls` is a PEM certificate
    /// chain and key for STARTTLS (required then) or none (plain text
    /// allowed, as on loopback). `None` when Dovecot is not installed and
    /// the run is not scripts/test.sh's.
    pub fn start(user: &str, password: &str, tls: Option<(&str, &str)>) -> Option<Dovecot> {
        if !Path::new("/usr/sbin/dovecot").exists() {
            assert!(
                std::env::var_os("NETJES_TEST").is_none(),
                "dovecot is missing; scripts/test.sh should have installed it"
            );
            eprintln!("dovecot not installed: skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        {
            use std::os::unix::fs::PermissionsExt;
            // Dovecot's login processes (dovenull) must reach the run folder.
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let (name, uid, gid) = me();
        let (uid, gid) = if uid == 0 { (65534, 65534) } else { (uid, gid) };
        let port = crate::free_port();
        let ssl = match tls {
            Some((cert, key)) => {
                std::fs::write(d.join("cert.pem"), cert).unwrap();
                std::fs::write(d.join("key.pem"), key).unwrap();
                format!(
                    "ssl = required\nssl_cert = <{0}/cert.pem\nssl_key = <{0}/key.pem\ndisable_plaintext_auth = yes\n",
                    d.display()
                )
            }
            None => "ssl = no\ndisable_plaintext_auth = no\n".to_string(),
        };
        // As root, Dovecot runs its login processes as dovenull; as anyone
        // else, every process runs as that user.
        let users = if me().1 == 0 {
            String::new()
        } else {
            format!("default_login_user = {name}\ndefault_internal_user = {name}\n")
        };
        let conf = format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\ninfo_log_path = {d}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\n{ssl}{users}\
             first_valid_uid = 0\nfirst_valid_gid = 0\n\
             mail_location = maildir:~/Maildir\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/home/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service stats {{\n  unix_listener stats-writer {{\n    mode = 0666\n  }}\n}}\n\
             protocol imap {{\n  mail_max_userip_connections = 50\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        std::fs::write(d.join("passwd"), format!("{user}:{{PLAIN}}{password}\n")).unwrap();
        let child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c"])
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot");
        let dc = Dovecot { child, port, dir, owner: (uid, gid) };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(dc);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(dc.dir.path().join("dovecot.log")).unwrap_or_default();
        panic!("dovecot did not start: {log}");
    }

    /// The Maildir of `user`'s `folder` ("INBOX", or a folder name).
    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let root = self.dir.path().join("home").join(user).join("Maildir");
        if folder == "INBOX" {
            root
        } else {
            root.join(format!(".{folder}"))
        }
    }

    /// Delivers a mail into a folder, as an LDA does (tmp, then new).
    pub fn deliver(&self, user: &str, folder: &str, name: &str, raw: &[u8]) {
        let m = self.maildir(user, folder);
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(m.join(sub)).unwrap();
        }
        let file = format!("{name}.netjes-test");
        std::fs::write(m.join("tmp").join(&file), raw).unwrap();
        self.own(&self.dir.path().join("home"));
        std::fs::rename(m.join("tmp").join(&file), m.join("new").join(&file)).unwrap();
    }

    /// Gives a tree to the mail's owner.
    fn own(&self, p: &Path) {
        let (uid, gid) = self.owner;
        let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                self.own(&e.path());
            }
        }
    }

    /// The mails in a folder (new and cur).
    pub fn count(&self, user: &str, folder: &str) -> usize {
        let m = self.maildir(user, folder);
        ["new", "cur"]
            .iter()
            .map(|s| std::fs::read_dir(m.join(s)).map(|r| r.count()).unwrap_or(0))
            .sum()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}
