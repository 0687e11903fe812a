//! Debian's PostgreSQL, started for a test: initdb in a temporary folder
//! (as the postgres user when we are root, since PostgreSQL refuses root),
//! listening on a unix socket in that folder only, no TCP. Stopped when
//! dropped; [`PostgresServer::stop`] and [`PostgresServer::start`] restart
//! it on the same data for the outage tests. scripts/test.sh installs
//! postgresql.

use std::path::PathBuf;
use std::process::Command;

pub struct PostgresServer {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
    /// TLS on 127.0.0.1 at this port too, with a certificate for
    /// "localhost" from `ca_pem`.
    pub tls: Option<(u16, String)>,
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian's postgresql; scripts/test.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PostgresServer {
    pub fn start_new() -> PostgresServer {
        PostgresServer::launch(false)
    }

    /// Also listening on 127.0.0.1 with TLS (ssl = on).
    pub fn start_new_tls() -> PostgresServer {
        PostgresServer::launch(true)
    }

    fn launch(tls: bool) -> PostgresServer {
        let dir = tempfile::tempdir().unwrap();
        let bin = bin_dir();
        if root() {
            assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap().success());
        }
        let data = dir.path().join("data");
        let out = PostgresServer::as_owner(&bin.join("initdb"))
            .args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let tls = tls.then(|| {
            let pki = crate::smtp::Pki::new(&["localhost"]);
            for (name, pem) in [("server.crt", &pki.cert_pem), ("server.key", &pki.key_pem)] {
                let path = dir.path().join(name);
                std::fs::write(&path, pem).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
                if root() {
                    assert!(Command::new("chown").args(["postgres:postgres"]).arg(&path).status().unwrap().success());
                }
            }
            (crate::free_port(), pki.ca_pem)
        });
        let mut s = PostgresServer { dir, bin, running: false, tls };
        s.start();
        let port = s.tls.as_ref().map_or(5432, |(p, _)| *p).to_string();
        let out = PostgresServer::as_owner(&s.bin.join("createdb")).args(["-h", s.socket_dir().to_str().unwrap(), "-p", &port, "-U", "postgres", "netjes"]).output().unwrap();
        assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
        s
    }

    fn as_owner(program: &std::path::Path) -> Command {
        if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A libpq connection string for the `netjes` database.
    pub fn url(&self) -> String {
        match &self.tls {
            Some((port, _)) => format!("host={} port={port} user=postgres dbname=netjes", self.socket_dir().display()),
            None => format!("host={} user=postgres dbname=netjes", self.socket_dir().display()),
        }
    }

    /// Over TCP to localhost with TLS required.
    pub fn tls_url(&self) -> Option<String> {
        self.tls.as_ref().map(|(port, _)| format!("postgres://postgres@localhost:{port}/netjes?sslmode=require"))
    }

    pub fn start(&mut self) {
        let data = self.dir.path().join("data");
        let mut opts = format!("-k {} -c listen_addresses= -c fsync=off", self.socket_dir().display());
        if let Some((port, _)) = &self.tls {
            let d = self.dir.path().display();
            opts = format!("-k {d} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key");
        }
        let out = PostgresServer::as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}{}", String::from_utf8_lossy(&out.stdout), std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default());
        self.running = true;
    }

    /// Stops it at once (immediate mode: as a crash, no checkpoint).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let data = self.dir.path().join("data");
        let _ = PostgresServer::as_owner(&self.bin.join("pg_ctl")).args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]).output();
        self.running = false;
    }
}
