//! Debian's redis-server, started for a test: a throwaway instance on a
//! unix socket in a temporary folder, no TCP port. Without persistence by
//! default; [`RedisServer::start_persistent`] writes an append-only file
//! synced on every write, so that state survives a kill -9 and a restart
//! (the crash tests). scripts/test.sh installs redis-server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    persistent: bool,
    /// TLS on 127.0.0.1 at this port too, with a certificate for
    /// "localhost" from `ca_pem`, and a password (`requirepass`).
    pub tls: Option<(u16, String)>,
    password: Option<String>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::launch(false)
    }

    pub fn start_persistent() -> RedisServer {
        RedisServer::launch(true)
    }

    fn launch(persistent: bool) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let mut r = RedisServer { child: None, dir, socket, persistent, tls: None, password: None };
        r.restart();
        r
    }

    /// A server that also takes TLS on 127.0.0.1 (rediss://localhost:PORT)
    /// and wants `password`.
    pub fn start_tls(password: &str) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::smtp::Pki::new(&["localhost"]);
        for (name, pem) in [("cert.pem", &pki.cert_pem), ("key.pem", &pki.key_pem), ("ca.pem", &pki.ca_pem)] {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        let socket = dir.path().join("redis.sock");
        let port = crate::free_port();
        let mut r = RedisServer { child: None, dir, socket, persistent: false, tls: Some((port, pki.ca_pem)), password: Some(password.into()) };
        r.restart();
        r
    }

    /// `redis+unix:///PATH`, as netjes's [store] url takes it.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Stops it at once (SIGKILL: no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts it (again) on the same folder and socket, and waits until it
    /// answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(self.dir.path())
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"]);
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if let Some((port, _)) = &self.tls {
            let d = self.dir.path();
            cmd.args(["--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--tls-auth-clients", "no"]);
            cmd.arg("--tls-cert-file").arg(d.join("cert.pem")).arg("--tls-key-file").arg(d.join("key.pem")).arg("--tls-ca-cert-file").arg(d.join("ca.pem"));
        }
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server (Debian's redis-server; scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..200 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer on {}", self.socket.display());
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        // With a password, PING is refused (-NOAUTH): any answer will do.
        let mut buf = [0u8; 1];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && (buf[0] == b'+' || buf[0] == b'-')
    }
}

/// A master, a replica and one sentinel watching them, on 127.0.0.1
/// ports (Sentinel names masters by address, so no unix sockets here).
/// The sentinel declares the master down after half a second, so a
/// failover takes a few seconds.
pub struct SentinelLab {
    pub dir: tempfile::TempDir,
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    children: Vec<(u16, Child)>,
}

impl Drop for SentinelLab {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One command over RESP to 127.0.0.1:port; the reply's text (bulk and
/// simple strings, integers and errors alike, one per line), or None
/// when nothing answers.
pub fn resp(port: u16, args: &[&str]) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"\r\n") && n < buf.len() {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$')).map(|l| l.trim_start_matches(['+', ':'])).collect();
    (!out.is_empty()).then(|| lines.join("\n"))
}

impl SentinelLab {
    pub fn start() -> SentinelLab {
        let dir = tempfile::tempdir().unwrap();
        let (m, r, s) = (crate::free_port(), crate::free_port(), crate::free_port());
        let mut lab = SentinelLab { dir, master_port: m, replica_port: r, sentinel_port: s, children: Vec::new() };
        lab.server(m, None);
        lab.server(r, Some(m));
        let sdir = lab.dir.path().join("sentinel");
        std::fs::create_dir(&sdir).unwrap();
        let conf = sdir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {s}\nbind 127.0.0.1\ndir {}\nsentinel monitor netjes 127.0.0.1 {m} 1\nsentinel down-after-milliseconds netjes 500\nsentinel failover-timeout netjes 2000\n",
                sdir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server").arg(&conf).args(["--sentinel", "--loglevel", "warning"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server --sentinel");
        lab.children.push((s, child));
        // Ready when the replica has synced and the sentinel has found it.
        lab.wait("the replica in sync and known to the sentinel", || {
            resp(r, &["INFO", "replication"]).is_some_and(|i| i.contains("master_link_status:up"))
                && resp(s, &["SENTINEL", "replicas", "netjes"]).is_some_and(|i| i.contains(&r.to_string()))
        });
        lab
    }

    fn server(&mut self, port: u16, replica_of: Option<u16>) {
        let d = self.dir.path().join(port.to_string());
        std::fs::create_dir(&d).unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning", "--dir"]).arg(&d);
        if let Some(m) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server");
        self.children.push((port, child));
        self.wait("redis-server to answer", || resp(port, &["PING"]).is_some_and(|p| p == "PONG"));
    }

    fn wait(&self, what: &str, mut ok: impl FnMut() -> bool) {
        for _ in 0..400 {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no {what} within 10 s");
    }

    /// `redis-sentinel://127.0.0.1:PORT/netjes`.
    pub fn url(&self) -> String {
        format!("redis-sentinel://127.0.0.1:{}/netjes", self.sentinel_port)
    }

    /// Waits until the replica has every write the master took.
    pub fn sync_replica(&self) {
        let n = resp(self.master_port, &["WAIT", "1", "5000"]);
        assert_eq!(n.as_deref(), Some("1"), "the replica did not acknowledge");
    }

    /// Kills the master (SIGKILL) and waits until the sentinel names the
    /// replica as the new master.
    pub fn fail_over(&mut self) {
        let i = self.children.iter().position(|(p, _)| *p == self.master_port).unwrap();
        let (_, mut c) = self.children.remove(i);
        let _ = c.kill();
        let _ = c.wait();
        let (s, r) = (self.sentinel_port, self.replica_port);
        self.wait("failover", || {
            resp(s, &["SENTINEL", "get-master-addr-by-name", "netjes"]).is_some_and(|a| a.ends_with(&r.to_string())) && resp(r, &["ROLE"]).is_some_and(|x| x.starts_with("master"))
        });
    }
}
