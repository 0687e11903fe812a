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
