//! The verdict store in PostgreSQL, shared by the milters of several MX
//! hosts: every host's verdicts in one table, so that a domain gets one
//! report with all of them, and one ledger of what was sent and to whom.
//!
//! The milter's store API is synchronous and called from async code, so
//! the database is used from threads of its own (the sync `postgres`
//! client runs its own runtime): one for reads and ledger writes, one
//! writer for verdict rows. A call waits at most CALL_TIMEOUT. The writer
//! keeps a batch it could not write and tries again every second; rows
//! meanwhile wait in the bounded queue, and past it the caller drops and
//! counts them. Connections are made again after a failure.

use crate::verdicts::{Row, VerdictError};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, step by step (netjes_schema holds how far a database is).
/// Run under an advisory lock, so that milters starting together migrate
/// once.
const MIGRATIONS: &[&str] = &["
CREATE TABLE verdicts (
    id BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    source_ip TEXT, header_from TEXT, envelope_from TEXT, policy_domain TEXT, policy TEXT,
    disposition TEXT NOT NULL, dmarc TEXT NOT NULL, spf_domain TEXT, spf TEXT, dkim TEXT NOT NULL,
    published TEXT, spf_scope TEXT, envelope_to TEXT, override_reason TEXT, override_comment TEXT,
    dkim_aligned BOOLEAN, spf_aligned BOOLEAN, about_reports BOOLEAN
);
CREATE INDEX verdicts_time ON verdicts(time);
CREATE INDEX verdicts_domain_time ON verdicts(header_from, time);
CREATE TABLE reports_sent (policy_domain TEXT NOT NULL, day BIGINT NOT NULL, destination TEXT NOT NULL, sent BIGINT NOT NULL, message_id TEXT, PRIMARY KEY (policy_domain, day, destination));
CREATE INDEX reports_sent_message_id ON reports_sent(message_id);
CREATE TABLE dead_destinations (destination TEXT PRIMARY KEY, until BIGINT NOT NULL, why TEXT NOT NULL);
"];

/// Advisory lock keys (pg_advisory_lock takes a bigint): "netjes" and a
/// purpose, so that they do not meet another application's.
const LOCK_MIGRATE: i64 = 0x6e65_746a_6573_0001;
const LOCK_SEND: i64 = 0x6e65_746a_6573_0002;

type Job = Box<dyn FnOnce(&mut postgres::Client) + Send>;

fn err(e: postgres::Error) -> VerdictError {
    VerdictError::new(format!("PostgreSQL: {e}"))
}

/// How to reach the database: the connection settings, and the TLS
/// client used when the URL's sslmode asks for it (prefer, the default,
/// uses TLS when the server offers it; require insists). The server's
/// certificate is checked against the system's CAs and `ca_file`'s.
#[derive(Clone)]
pub struct PgSettings {
    pub config: postgres::Config,
    pub tls: std::sync::Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgSettings({:?}, {:?})", self.config.get_hosts(), self.config.get_dbname())
    }
}

pub fn connect(s: &PgSettings) -> Result<postgres::Client, VerdictError> {
    s.config.connect(tokio_postgres_rustls::MakeRustlsConnect::new((*s.tls).clone())).map_err(err)
}

/// A connection string (a URL or key=value pairs) with a password from a
/// file, a private CA for TLS, and a connect timeout.
pub fn config(url: &str, password: Option<&str>, ca_file: Option<&std::path::Path>) -> Result<PgSettings, VerdictError> {
    let mut c: postgres::Config = url.parse().map_err(|e: postgres::Error| VerdictError::new(format!("store.url: {e}")))?;
    if let Some(p) = password {
        c.password(p);
    }
    c.connect_timeout(Duration::from_secs(5));
    let tls = netjes_check::tls::client_config(ca_file).map_err(|e| VerdictError::new(format!("store.ca_file: {e}")))?;
    Ok(PgSettings { config: c, tls })
}

/// Brings `component`'s tables up to `steps` (netjes_schema holds how
/// far each component of a shared database is), under the advisory lock
/// `lock`, so that processes starting together migrate once. Serve's
/// store uses it too.
pub fn migrate(c: &mut postgres::Client, component: &str, lock: i64, steps: &[&str]) -> Result<(), VerdictError> {
    let mut t = c.transaction().map_err(err)?;
    t.execute("SELECT pg_advisory_xact_lock($1)", &[&lock]).map_err(err)?;
    t.batch_execute("CREATE TABLE IF NOT EXISTS netjes_schema (component TEXT PRIMARY KEY, version INT NOT NULL)").map_err(err)?;
    let version: i32 = t.query_opt("SELECT version FROM netjes_schema WHERE component = $1", &[&component]).map_err(err)?.map_or(0, |r| r.get(0));
    if version as usize > steps.len() {
        return Err(VerdictError::new(format!("the {component} tables are of version {version}, newer than this netjes ({}); upgrade netjes", steps.len())));
    }
    for (i, m) in steps.iter().enumerate().skip(version as usize) {
        t.batch_execute(m).map_err(err)?;
        let v = i as i32 + 1;
        t.execute("INSERT INTO netjes_schema (component, version) VALUES ($1, $2) ON CONFLICT (component) DO UPDATE SET version = $2", &[&component, &v]).map_err(err)?;
    }
    t.commit().map_err(err)
}

/// The reading side: one thread with one connection, made again when lost.
pub struct Pg {
    jobs: Mutex<Sender<Job>>,
    config: PgSettings,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pg")
    }
}

impl Pg {
    /// Connects, brings the schema up to date, and starts the threads:
    /// the reader, and the writer that takes rows from `rows`.
    pub fn open(config: PgSettings, rows: Receiver<Row>, metrics: Option<std::sync::Arc<netjes_net::metrics::Metrics>>) -> Result<Pg, VerdictError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (ready, opened) = std::sync::mpsc::channel::<Result<(), VerdictError>>();
        let c2 = config.clone();
        // The sync client runs a runtime of its own, which may not start on
        // a thread of the caller's: everything happens on this thread.
        std::thread::Builder::new()
            .name("netjes-verdicts-pg".into())
            .spawn(move || {
                let mut client = match connect(&c2).and_then(|mut c| migrate(&mut c, "verdicts", LOCK_MIGRATE, MIGRATIONS).map(|()| c)) {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        Some(c)
                    }
                    Err(e) => return drop(ready.send(Err(e))),
                };
                while let Ok(job) = rx.recv() {
                    if client.as_ref().is_none_or(|c| c.is_closed()) {
                        client = connect(&c2).ok();
                    }
                    // A job whose connection could not be made is dropped:
                    // its caller gets the error from its closed channel.
                    if let Some(c) = client.as_mut() {
                        job(c);
                    }
                }
            })
            .map_err(|e| VerdictError::new(format!("cannot start the reader: {e}")))?;
        opened.recv_timeout(CALL_TIMEOUT).map_err(|_| VerdictError::new("PostgreSQL: no answer at start".into()))??;
        let c3 = config.clone();
        std::thread::Builder::new()
            .name("netjes-verdicts-pg-writer".into())
            .spawn(move || writer(c3, rows, metrics))
            .map_err(|e| VerdictError::new(format!("cannot start the writer: {e}")))?;
        Ok(Pg { jobs: Mutex::new(tx), config })
    }

    /// Runs `f` on the reader's connection and waits for its answer.
    fn call<T: Send + 'static>(&self, f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send + 'static) -> Result<T, VerdictError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).send(job).map_err(|_| VerdictError::new("the reader has stopped".into()))?;
        match rx.recv_timeout(CALL_TIMEOUT) {
            Ok(r) => r.map_err(err),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(VerdictError::new(format!("PostgreSQL: no answer within {CALL_TIMEOUT:?}"))),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(VerdictError::new("PostgreSQL: no connection".into())),
        }
    }

    pub fn was_sent(&self, domain: &str, day: i64, destination: &str) -> Result<bool, VerdictError> {
        let (d, dest) = (domain.to_string(), destination.to_string());
        self.call(move |c| Ok(c.query_opt("SELECT 1 FROM reports_sent WHERE policy_domain = $1 AND day = $2 AND destination = $3", &[&d, &day, &dest])?.is_some()))
    }

    pub fn mark_sent(&self, domain: &str, day: i64, destination: &str, message_id: &str, now: i64) -> Result<(), VerdictError> {
        let (d, dest, id) = (domain.to_string(), destination.to_string(), message_id.to_string());
        self.call(move |c| {
            c.execute("INSERT INTO reports_sent (policy_domain, day, destination, sent, message_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", &[&d, &day, &dest, &now, &id])?;
            Ok(())
        })
    }

    pub fn sent_as(&self, message_id: &str) -> Result<Option<(String, String)>, VerdictError> {
        let id = message_id.to_string();
        self.call(move |c| Ok(c.query_opt("SELECT policy_domain, destination FROM reports_sent WHERE message_id = $1", &[&id])?.map(|r| (r.get(0), r.get(1)))))
    }

    pub fn dead_until(&self, destination: &str, now: i64) -> Result<Option<(i64, String)>, VerdictError> {
        let dest = destination.to_ascii_lowercase();
        self.call(move |c| Ok(c.query_opt("SELECT until, why FROM dead_destinations WHERE destination = $1 AND until > $2", &[&dest, &now])?.map(|r| (r.get(0), r.get(1)))))
    }

    pub fn mark_dead(&self, destination: &str, until: i64, why: &str) -> Result<(), VerdictError> {
        let (dest, why) = (destination.to_ascii_lowercase(), why.to_string());
        self.call(move |c| {
            c.execute("INSERT INTO dead_destinations (destination, until, why) VALUES ($1, $2, $3) ON CONFLICT (destination) DO UPDATE SET until = $2, why = $3", &[&dest, &until, &why])?;
            Ok(())
        })
    }

    pub fn delivered_from(&self, domain: &str, since: i64) -> Result<bool, VerdictError> {
        let d = domain.to_string();
        self.call(move |c| Ok(c.query_opt("SELECT 1 FROM verdicts WHERE policy_domain = $1 AND time >= $2 AND disposition != 'reject' LIMIT 1", &[&d, &since])?.is_some()))
    }

    pub fn rows(&self, domain: Option<&str>, from: i64, to: i64) -> Result<Vec<Row>, VerdictError> {
        let d = domain.map(String::from);
        self.call(move |c| {
            let sql = format!("SELECT {COLUMNS} FROM verdicts WHERE ($1::TEXT IS NULL OR header_from = $1) AND time >= $2 AND time < $3 ORDER BY id");
            Ok(c.query(&sql, &[&d, &from, &to])?.iter().map(row_of).collect())
        })
    }

    /// The cluster-wide lock of `report send`: Some while this process
    /// holds it (until the guard is dropped), None when another holds it.
    pub fn send_lock(&self) -> Result<Option<SendLock>, VerdictError> {
        SendLock::take(&self.config)
    }
}

const COLUMNS: &str = "time, source_ip, header_from, envelope_from, policy_domain, policy, disposition, dmarc, spf_domain, spf, dkim, published, spf_scope, envelope_to, override_reason, override_comment, dkim_aligned, spf_aligned, about_reports";

fn row_of(r: &postgres::Row) -> Row {
    Row {
        time: r.get(0),
        source_ip: r.get(1),
        header_from: r.get(2),
        envelope_from: r.get::<_, Option<String>>(3).unwrap_or_default(),
        policy_domain: r.get(4),
        policy: r.get(5),
        disposition: r.get(6),
        dmarc: r.get(7),
        spf_domain: r.get(8),
        spf: r.get(9),
        dkim: r.get(10),
        published: r.get::<_, Option<String>>(11).and_then(|j| serde_json::from_str(&j).ok()),
        spf_scope: r.get(12),
        envelope_to: r.get(13),
        override_reason: r.get(14),
        override_comment: r.get(15),
        dkim_aligned: r.get(16),
        spf_aligned: r.get(17),
        about_reports: r.get(18),
    }
}

fn write_batch(c: &mut postgres::Client, rows: &[Row]) -> Result<(), postgres::Error> {
    let mut t = c.transaction()?;
    let st = t.prepare(&format!("INSERT INTO verdicts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"))?;
    for r in rows {
        let published = r.published.as_ref().and_then(|p| serde_json::to_string(p).ok());
        t.execute(
            &st,
            &[
                &r.time, &r.source_ip, &r.header_from, &r.envelope_from, &r.policy_domain, &r.policy, &r.disposition, &r.dmarc, &r.spf_domain, &r.spf, &r.dkim, &published,
                &r.spf_scope, &r.envelope_to, &r.override_reason, &r.override_comment, &r.dkim_aligned, &r.spf_aligned, &r.about_reports,
            ],
        )?;
    }
    t.commit()
}

/// The writer: batches of rows, each in one transaction. A batch that
/// cannot be written is kept and tried again every second (PostgreSQL is
/// restarting); rows go on waiting in the bounded queue meanwhile.
fn writer(config: PgSettings, rows: Receiver<Row>, metrics: Option<std::sync::Arc<netjes_net::metrics::Metrics>>) {
    let mut client: Option<postgres::Client> = None;
    while let Ok(first) = rows.recv() {
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rows.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        loop {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = connect(&config).ok();
            }
            let done = client.as_mut().map(|c| write_batch(c, &batch));
            match done {
                Some(Ok(())) => break,
                failed => {
                    if let Some(Err(e)) = failed {
                        tracing::warn!("{} verdicts wait for PostgreSQL: {e}", batch.len());
                    }
                    if let Some(m) = &metrics {
                        m.inc("netjes_milter_store_retries_total", &[]);
                    }
                    client = None;
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// `report send`'s lock, held by a connection of its own (a session-level
/// advisory lock ends with its session, so a process that dies frees it).
pub struct SendLock {
    release: Option<Sender<()>>,
}

impl SendLock {
    fn take(config: &PgSettings) -> Result<Option<SendLock>, VerdictError> {
        let config = config.clone();
        let (answer, got) = std::sync::mpsc::channel::<Result<bool, VerdictError>>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let mut c = match connect(&config) {
                Ok(c) => c,
                Err(e) => return drop(answer.send(Err(e))),
            };
            let held = c.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_SEND]).map(|r| r.get::<_, bool>(0)).map_err(err);
            let ok = matches!(held, Ok(true));
            let _ = answer.send(held);
            if ok {
                // Held until the guard goes; then the session ends with it.
                let _ = released.recv();
            }
        });
        match got.recv_timeout(CALL_TIMEOUT) {
            Ok(Ok(true)) => Ok(Some(SendLock { release: Some(release) })),
            Ok(Ok(false)) => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(VerdictError::new("PostgreSQL: the lock was not answered".into())),
        }
    }
}

impl Drop for SendLock {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            let _ = r.send(());
        }
    }
}
