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
        let mut s = PostgresServer { dir, bin, running: false };
        s.start();
        let out = PostgresServer::as_owner(&s.bin.join("createdb")).args(["-h", s.socket_dir().to_str().unwrap(), "-U", "postgres", "netjes"]).output().unwrap();
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
        format!("host={} user=postgres dbname=netjes", self.socket_dir().display())
    }

    pub fn start(&mut self) {
        let data = self.dir.path().join("data");
        let opts = format!("-k {} -c listen_addresses= -c fsync=off", self.socket_dir().display());
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
