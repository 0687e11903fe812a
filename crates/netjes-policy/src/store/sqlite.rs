//! The embedded store: `policy.sqlite` (SQLite in WAL mode) and
//! `policy.journal` in front of it.
//!
//! One writer thread owns the state. It takes every operation that is
//! waiting, decides each against the newest state (changes not yet in the
//! database first, then SQLite), appends the changes of all of them to the
//! journal in one write(2), and only then answers them. A request is thus
//! answered after its change is in the file system: it survives a kill -9
//! as a SQLite commit does with synchronous=NORMAL (written, not fsynced).
//! Every second (or every 10,000 changes) the changes go into SQLite in one
//! transaction, sorted by key, and the journal is emptied. A start replays
//! what a crash left in the journal before anything else.
//!
//! Why not a commit per batch, as before: keys are random, so a commit of
//! twenty new triplets rewrote some forty 4 KB B-tree pages into the WAL,
//! and that writing was the service's bottleneck (15,500 requests a second
//! against 35,000 now). A journal record is the change itself, some 60
//! octets.
//!
//! Why the flush runs on the writer, holding up requests for its 20 to 200
//! ms: a flusher thread of its own was measured too, and on the 2-core
//! bench machine its competition for the CPU cost more (p99 2.9 to 4.2 ms
//! against 1.5 to 2.9 ms) than the pause; a Postfix policy client waits
//! 100 s (smtpd_policy_service_timeout).

use super::journal::{decode_all, encode, Change};
use super::{clamp_u32, GreyAttempt, GreyOutcome, Store, StoreError, TripletRow};
use crate::greylist::{self, Verdict};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

enum Op {
    Greylist(
        GreyAttempt,
        oneshot::Sender<Result<GreyOutcome, StoreError>>,
    ),
    Rate(String, i64, u32, oneshot::Sender<Result<u32, StoreError>>),
    Expire(i64, i64, oneshot::Sender<Result<usize, StoreError>>),
}

/// The most operations one journal write takes.
const MAX_BATCH: usize = 512;
/// How often the journal's changes go into SQLite.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// ...or sooner, when this many rows wait.
const FLUSH_AT: usize = 10_000;
/// While SQLite fails (a full disk), changes wait in memory and in the
/// journal. Past this many, operations are refused (answered DUNNO) rather
/// than let memory grow without bound.
const MAX_PENDING: usize = 200_000;
/// SQLite's page cache, in KiB: a table of a million triplets is some
/// 100 MB, and the default (2 MB) made a flush read most of its pages from
/// the kernel.
const CACHE_KIB: i64 = 32 * 1024;
/// The WAL is copied into the database by a checkpointer thread on its own
/// connection, not by the writer: a checkpoint syncs the files.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The writer still checkpoints by itself past this many WAL pages (about
/// 40 MB), should the checkpointer fall behind.
const WAL_BACKSTOP_PAGES: i64 = 10_000;

/// The schema's version, in SQLite's user_version.
///
/// 1: the tables are WITHOUT ROWID. Keyed by text, a rowid table keeps
/// each row twice (the table and its primary-key index).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS greylist (key TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, passed INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS greylist_last_seen ON greylist(last_seen);
CREATE TABLE IF NOT EXISTS awl (client TEXT PRIMARY KEY, count INTEGER NOT NULL, last_seen INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate (key TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (key, window_start)) WITHOUT ROWID;
";

/// Version 0 to 1: the same tables, rebuilt WITHOUT ROWID, rows kept.
const TO_V1: &str = "
ALTER TABLE greylist RENAME TO greylist_v0;
ALTER TABLE awl RENAME TO awl_v0;
ALTER TABLE rate RENAME TO rate_v0;
DROP INDEX IF EXISTS greylist_last_seen;
";

fn migrate(conn: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let old: bool = tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'greylist'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if old {
        tx.execute_batch(TO_V1)?;
    }
    tx.execute_batch(SCHEMA)?;
    if old {
        tx.execute_batch(
            "INSERT INTO greylist SELECT key, first_seen, last_seen, passed FROM greylist_v0;
             INSERT INTO awl SELECT client, count, last_seen FROM awl_v0;
             INSERT INTO rate SELECT key, window_start, count FROM rate_v0;
             DROP TABLE greylist_v0; DROP TABLE awl_v0; DROP TABLE rate_v0;",
        )?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// Copies committed WAL frames into the database file until told to stop.
/// PASSIVE never waits for the writer; the writer restarts the WAL from its
/// beginning once a checkpoint has copied all of it.
fn checkpointer(path: PathBuf, stop: mpsc::Receiver<()>) {
    let conn = match rusqlite::Connection::open(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "policy store: no checkpointer; the writer checkpoints by itself");
            return;
        }
    };
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "policy store: checkpoint");
        }
    }
}

/// Changes decided and journalled, not yet in SQLite: the newest value of
/// each row.
#[derive(Debug, Default)]
struct Pending {
    grey: HashMap<String, TripletRow>,
    awl: HashMap<String, (i64, i64)>,
    rate: HashMap<(String, i64), i64>,
}

impl Pending {
    fn len(&self) -> usize {
        self.grey.len() + self.awl.len() + self.rate.len()
    }

    fn put(&mut self, c: Change) {
        match c {
            Change::Grey(k, row) => drop(self.grey.insert(k, row)),
            Change::Awl(k, count, last) => drop(self.awl.insert(k, (count, last))),
            Change::Rate(k, w, count) => drop(self.rate.insert((k, w), count)),
        }
    }

    /// Writes every row (upserts of whole values) in one transaction, in
    /// key order: a B-tree takes sorted keys leaf after leaf.
    fn commit_to(&self, conn: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
        let tx = conn.transaction()?;
        let mut grey: Vec<_> = self.grey.iter().collect();
        grey.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut g = tx.prepare_cached("INSERT INTO greylist (key, first_seen, last_seen, passed) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET first_seen = ?2, last_seen = ?3, passed = ?4")?;
        for (k, r) in grey {
            g.execute(rusqlite::params![
                k,
                r.first_seen,
                r.last_seen,
                r.passed as i64
            ])?;
        }
        drop(g);
        let mut awl: Vec<_> = self.awl.iter().collect();
        awl.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut a = tx.prepare_cached("INSERT INTO awl (client, count, last_seen) VALUES (?1, ?2, ?3) ON CONFLICT(client) DO UPDATE SET count = ?2, last_seen = ?3")?;
        for (k, (count, last)) in awl {
            a.execute(rusqlite::params![k, count, last])?;
        }
        drop(a);
        let mut rate: Vec<_> = self.rate.iter().collect();
        rate.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut r = tx.prepare_cached("INSERT INTO rate (key, window_start, count) VALUES (?1, ?2, ?3) ON CONFLICT(key, window_start) DO UPDATE SET count = ?3")?;
        for ((k, w), count) in rate {
            r.execute(rusqlite::params![k, w, count])?;
        }
        drop(r);
        tx.commit()
    }
}

/// The writer thread's state.
struct Engine {
    conn: rusqlite::Connection,
    /// Locked for the store's life: one process per data directory, or two
    /// writers would undo each other's changes.
    journal: File,
    journal_name: String,
    pending: Pending,
    /// The journal records of the batch being decided.
    buf: Vec<u8>,
    last_flush: Instant,
}

impl Engine {
    /// Takes the journal's lock, opens the database, migrates its schema
    /// and replays what a crash left in the journal.
    fn open(db: &Path) -> Result<Engine, StoreError> {
        let journal_path = db.with_extension("journal");
        let journal_name = journal_path.display().to_string();
        let jerr = |e: std::io::Error| StoreError::Journal(journal_name.clone(), e.to_string());
        // Both files 0600 whatever the umask (the greylist holds who mails
        // whom); SQLite gives its -wal and -shm the database's mode.
        for f in [&journal_path, &db.to_path_buf()] {
            netjes_net::private_file(f)
                .map_err(|e| StoreError::Journal(journal_name.clone(), e))?;
        }
        let mut journal = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(jerr)?;
        journal
            .try_lock()
            .map_err(|_| StoreError::Locked(journal_name.clone()))?;

        let mut conn = rusqlite::Connection::open(db)?;
        // WAL: a commit is in the file (through the OS) before it returns.
        // synchronous=NORMAL gives up only the last commits on a power
        // loss, which greylisting forgives.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrate(&mut conn)?;

        journal.seek(std::io::SeekFrom::Start(0)).map_err(jerr)?;
        let (changes, damage) = decode_all(&mut journal).map_err(jerr)?;
        if let Some(at) = damage {
            tracing::warn!(journal = %journal_name, offset = at, "policy store: the journal ends in a damaged record (a write cut off by a power loss); replaying what precedes it");
        }
        if !changes.is_empty() {
            tracing::info!(
                changes = changes.len(),
                "policy store: replaying the journal of a run that ended without writing it out"
            );
            let mut p = Pending::default();
            for c in changes {
                p.put(c);
            }
            p.commit_to(&mut conn)?;
        }
        journal.set_len(0).map_err(jerr)?;
        Ok(Engine {
            conn,
            journal,
            journal_name,
            pending: Pending::default(),
            buf: Vec::new(),
            last_flush: Instant::now(),
        })
    }

    fn change(&mut self, c: Change) {
        encode(&c, &mut self.buf);
        self.pending.put(c);
    }

    fn triplet(&self, key: &str) -> Result<Option<TripletRow>, rusqlite::Error> {
        if let Some(row) = self.pending.grey.get(key) {
            return Ok(Some(*row));
        }
        self.conn
            .prepare_cached("SELECT first_seen, last_seen, passed FROM greylist WHERE key = ?1")?
            .query_row([key], |r| {
                Ok(TripletRow {
                    first_seen: r.get(0)?,
                    last_seen: r.get(1)?,
                    passed: r.get::<_, i64>(2)? != 0,
                })
            })
            .optional()
    }

    fn awl_count(&self, client: &str) -> Result<i64, rusqlite::Error> {
        if let Some((count, _)) = self.pending.awl.get(client) {
            return Ok(*count);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT count FROM awl WHERE client = ?1")?
            .query_row([client], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn rate_count(&self, key: &str, window: i64) -> Result<i64, rusqlite::Error> {
        if let Some(n) = self.pending.rate.get(&(key.to_string(), window)) {
            return Ok(*n);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT count FROM rate WHERE key = ?1 AND window_start = ?2")?
            .query_row(rusqlite::params![key, window], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn greylist(&mut self, a: &GreyAttempt) -> Result<GreyOutcome, rusqlite::Error> {
        if !a.force && a.awl_after > 0 && clamp_u32(self.awl_count(&a.client_net)?) >= a.awl_after {
            return Ok(GreyOutcome::AutoWhitelisted);
        }
        let (row, verdict) = greylist::decide(self.triplet(&a.key)?, a.now, &a.params);
        self.change(Change::Grey(a.key.clone(), row));
        if matches!(verdict, Verdict::FirstPass | Verdict::Known) && a.awl_after > 0 {
            let count = self.awl_count(&a.client_net)?.saturating_add(1);
            self.change(Change::Awl(a.client_net.clone(), count, a.now));
        }
        Ok(GreyOutcome::Triplet(verdict))
    }

    fn rate_add(&mut self, key: &str, window: i64, by: u32) -> Result<i64, rusqlite::Error> {
        let n = self.rate_count(key, window)?.saturating_add(by as i64);
        self.change(Change::Rate(key.to_string(), window, n));
        Ok(n)
    }

    fn expire(&mut self, before: i64, rate_before: i64) -> Result<usize, rusqlite::Error> {
        // The rows waiting in memory go first, so that the deletes see them.
        self.flush()?;
        let tx = self.conn.transaction()?;
        let mut n = tx.execute("DELETE FROM greylist WHERE last_seen < ?1", [before])?;
        n += tx.execute("DELETE FROM awl WHERE last_seen < ?1", [before])?;
        n += tx.execute("DELETE FROM rate WHERE window_start < ?1", [rate_before])?;
        tx.commit()?;
        Ok(n)
    }

    /// Appends the batch's records to the journal: after this, and only
    /// after this, its operations may be answered.
    fn write_journal(&mut self) -> Result<(), StoreError> {
        let r = self.journal.write_all(&self.buf);
        self.buf.clear();
        r.map_err(|e| StoreError::Journal(self.journal_name.clone(), e.to_string()))
    }

    /// Puts the waiting changes into SQLite, then empties the journal.
    fn flush(&mut self) -> Result<(), rusqlite::Error> {
        self.last_flush = Instant::now();
        if self.pending.len() == 0 {
            return Ok(());
        }
        self.pending.commit_to(&mut self.conn)?;
        tracing::debug!(
            rows = self.pending.len(),
            ms = self.last_flush.elapsed().as_secs_f64() * 1000.0,
            "policy store: written to SQLite"
        );
        self.pending = Pending::default();
        // Every journalled change is in the database now. Should emptying
        // fail, the next start replays values the database already holds.
        if let Err(e) = self.journal.set_len(0) {
            tracing::warn!(journal = %self.journal_name, error = %e, "policy store: cannot empty the journal");
        }
        Ok(())
    }

    fn flush_logged(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, waiting = self.pending.len(), "policy store: writing to SQLite failed; the changes wait in memory and in the journal");
        }
    }

    fn run_batch(&mut self, batch: Vec<Op>) {
        if self.pending.len() >= MAX_PENDING {
            let e = StoreError::Backlog(self.pending.len());
            for op in batch {
                op.fail(e.clone());
            }
            self.flush_logged();
            return;
        }
        // Expiry writes (a flush, then deletes), so it runs apart from the
        // decisions and needs no journal record.
        let (expiries, batch): (Vec<Op>, Vec<Op>) = batch
            .into_iter()
            .partition(|op| matches!(op, Op::Expire(..)));
        // The batch's lookups share one read transaction: in autocommit
        // each SELECT took and released SQLite's file locks (fcntl) anew.
        let read = self.conn.execute_batch("BEGIN");
        let results: Vec<Result<Done, StoreError>> = batch
            .iter()
            .map(|op| match (op, &read) {
                (_, Err(e)) => Err(StoreError::Sqlite(e.to_string())),
                (Op::Greylist(a, _), Ok(())) => {
                    self.greylist(a).map(Done::Grey).map_err(StoreError::from)
                }
                (Op::Rate(k, w, by, _), Ok(())) => self
                    .rate_add(k, *w, *by)
                    .map(Done::Count)
                    .map_err(StoreError::from),
                // Set apart above; never reached, and never a panic in the writer.
                (Op::Expire(..), Ok(())) => Err(StoreError::Sqlite(
                    "internal: an expiry among the decisions".into(),
                )),
            })
            .collect();
        if read.is_ok() {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                tracing::warn!(error = %e, "policy store: ending a read transaction");
                // Never stay inside it: every later BEGIN would fail.
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        let journal = self.write_journal();
        for (op, r) in batch.into_iter().zip(results) {
            match (&journal, r) {
                (Err(e), _) => op.fail(e.clone()),
                (Ok(()), Err(e)) => op.fail(e),
                (Ok(()), Ok(done)) => op.answer(done),
            }
        }
        for op in expiries {
            if let Op::Expire(before, rate_before, reply) = op {
                let _ = reply.send(self.expire(before, rate_before).map_err(StoreError::from));
            }
        }
        if self.pending.len() >= FLUSH_AT || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush_logged();
        }
    }
}

/// What an operation came to.
enum Done {
    Grey(GreyOutcome),
    Count(i64),
}

impl Op {
    fn fail(self, e: StoreError) {
        match self {
            Op::Greylist(_, r) => drop(r.send(Err(e))),
            Op::Rate(_, _, _, r) => drop(r.send(Err(e))),
            Op::Expire(_, _, r) => drop(r.send(Err(e))),
        }
    }

    fn answer(self, done: Done) {
        match (self, done) {
            (Op::Greylist(_, r), Done::Grey(g)) => drop(r.send(Ok(g))),
            (Op::Rate(_, _, _, r), Done::Count(n)) => drop(r.send(Ok(clamp_u32(n)))),
            (op, _) => op.fail(StoreError::Sqlite(
                "internal: an answer of the wrong kind".into(),
            )),
        }
    }
}

/// The writer thread: takes what waits, decides it, journals it, answers,
/// and writes to SQLite every FLUSH_EVERY. Ends, flushing, when the store
/// is dropped.
fn writer(mut engine: Engine, rx: mpsc::Receiver<Op>) {
    loop {
        let wait = FLUSH_EVERY
            .saturating_sub(engine.last_flush.elapsed())
            .max(Duration::from_millis(10));
        let first = match rx.recv_timeout(wait) {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                engine.flush_logged();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        engine.run_batch(batch);
    }
    engine.flush_logged();
}

/// The embedded store. See the module's documentation.
#[derive(Debug)]
pub struct SqliteStore {
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Dropped with the store: stops the checkpointer.
    _checkpointer: mpsc::Sender<()>,
}

impl SqliteStore {
    /// Opens (and creates) `dir/policy.sqlite` and `dir/policy.journal`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        netjes_net::private_dir(dir).map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
        Self::open_file(&dir.join("policy.sqlite"))
    }

    /// Opens the database `path`, with its journal beside it (the same name
    /// ending in `.journal`).
    pub fn open_file(path: &Path) -> Result<SqliteStore, StoreError> {
        let engine = Engine::open(path)?;
        let (stop_tx, stop_rx) = mpsc::channel();
        let file = path.to_path_buf();
        std::thread::Builder::new()
            .name("netjes-policy-checkpoint".into())
            .spawn(move || checkpointer(file, stop_rx))
            .map_err(|e| StoreError::Sqlite(format!("cannot start the checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("netjes-policy-store".into())
            .spawn(move || writer(engine, rx))
            .map_err(|e| StoreError::Sqlite(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            ops: Some(tx),
            writer: Some(writer),
            _checkpointer: stop_tx,
        })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .as_ref()
            .ok_or(StoreError::Gone)?
            .send(make(tx))
            .map_err(|_| StoreError::Gone)?;
        rx.await.map_err(|_| StoreError::Gone)?
    }
}

impl Drop for SqliteStore {
    /// Writes the waiting changes into SQLite and lets the files go, so that
    /// the store can be opened again at once.
    fn drop(&mut self) {
        drop(self.ops.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn greylist(&self, a: GreyAttempt) -> Result<GreyOutcome, StoreError> {
        self.call(|r| Op::Greylist(a, r)).await
    }

    async fn rate_add(&self, key: &str, window_start: i64, by: u32) -> Result<u32, StoreError> {
        let key = key.to_string();
        self.call(|r| Op::Rate(key, window_start, by, r)).await
    }

    async fn expire(&self, before: i64, rate_before: i64) -> Result<usize, StoreError> {
        self.call(|r| Op::Expire(before, rate_before, r)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greylist::Params;

    const P: Params = Params {
        delay: 300,
        retry_window: 2 * 86400,
        max_age: 35 * 86400,
    };

    fn attempt(key: &str, now: i64) -> GreyAttempt {
        GreyAttempt {
            key: key.into(),
            client_net: "192.0.2".into(),
            now,
            params: P,
            awl_after: 2,
            force: false,
        }
    }

    #[tokio::test]
    async fn state_survives_reopening_and_concurrent_attempts_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            assert_eq!(
                s.greylist(attempt("k", 100)).await.unwrap(),
                GreyOutcome::Triplet(Verdict::New)
            );
            assert_eq!(s.rate_add("r", 60, 3).await.unwrap(), 3);
            assert_eq!(s.rate_add("r", 60, 2).await.unwrap(), 5);
        }
        let s = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
        assert_eq!(
            s.greylist(attempt("k", 150)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::TooEarly { remaining: 250 })
        );
        assert_eq!(
            s.greylist(attempt("k", 400)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::FirstPass)
        );
        assert_eq!(
            s.greylist(attempt("k", 500)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::Known)
        );
        // Two deliveries from 192.0.2: whitelisted for new triplets, unless forced.
        assert_eq!(
            s.greylist(attempt("other", 600)).await.unwrap(),
            GreyOutcome::AutoWhitelisted
        );
        assert_eq!(
            s.greylist(GreyAttempt {
                force: true,
                ..attempt("other", 600)
            })
            .await
            .unwrap(),
            GreyOutcome::Triplet(Verdict::New)
        );
        // 200 attempts at once: each answered, each recorded.
        let all = futures_join(s.clone()).await;
        assert!(all.iter().all(|o| *o == GreyOutcome::Triplet(Verdict::New)));
        // Closed (everything written to SQLite) and opened again: expiry
        // sees every row.
        drop(std::sync::Arc::try_unwrap(s).unwrap());
        assert_eq!(journal_bytes(dir.path()), 0);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.expire(601, 61).await.unwrap(), 1 + 1 + 1 + 1 + 200);
        assert_eq!(
            s.greylist(attempt("k", 700)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::New)
        );
    }

    #[tokio::test]
    async fn a_version_0_store_is_rebuilt_without_rowid_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.sqlite");
        {
            // The schema as netjes wrote it before version 1.
            let c = rusqlite::Connection::open(&file).unwrap();
            c.execute_batch(
                "CREATE TABLE greylist (key TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, passed INTEGER NOT NULL);
                 CREATE INDEX greylist_last_seen ON greylist(last_seen);
                 CREATE TABLE awl (client TEXT PRIMARY KEY, count INTEGER NOT NULL, last_seen INTEGER NOT NULL);
                 CREATE TABLE rate (key TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (key, window_start));
                 INSERT INTO greylist VALUES ('k', 100, 100, 0);
                 INSERT INTO awl VALUES ('198.51.100', 9, 100);
                 INSERT INTO rate VALUES ('r', 60, 4);",
            )
            .unwrap();
        }
        let s = SqliteStore::open_file(&file).unwrap();
        // The triplet seen at 100 passes at 400; the rate window goes on.
        assert_eq!(
            s.greylist(attempt("k", 400)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::FirstPass)
        );
        assert_eq!(s.rate_add("r", 60, 1).await.unwrap(), 5);
        assert_eq!(
            s.greylist(GreyAttempt {
                client_net: "198.51.100".into(),
                ..attempt("new", 400)
            })
            .await
            .unwrap(),
            GreyOutcome::AutoWhitelisted
        );
        drop(s);
        let c = rusqlite::Connection::open(&file).unwrap();
        let sql: Vec<String> = c
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(sql.len(), 3, "{sql:?}");
        assert!(sql.iter().all(|t| t.ends_with("WITHOUT ROWID")), "{sql:?}");
        assert_eq!(
            c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
                .unwrap(),
            SCHEMA_VERSION
        );
        let indexed: i64 = c.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'greylist_last_seen'", [], |r| r.get(0)).unwrap();
        assert_eq!(indexed, 1);
    }

    fn journal_bytes(dir: &Path) -> u64 {
        std::fs::metadata(dir.join("policy.journal")).unwrap().len()
    }

    #[tokio::test]
    async fn a_crash_before_the_flush_loses_nothing_the_journal_holds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.sqlite");
        {
            let mut e = Engine::open(&file).unwrap();
            assert_eq!(
                e.greylist(&attempt("k", 100)).unwrap(),
                GreyOutcome::Triplet(Verdict::New)
            );
            // Read from the waiting changes: the triplet is known.
            assert_eq!(
                e.greylist(&attempt("k", 400)).unwrap(),
                GreyOutcome::Triplet(Verdict::FirstPass)
            );
            assert_eq!(e.rate_add("r", 60, 7).unwrap(), 7);
            // A key as odd as Postfix may send: tabs, newlines, non-ASCII.
            e.greylist(&attempt("x\t\n\u{e9}/y", 100)).unwrap();
            e.write_journal().unwrap();
            // Decided and journalled, as when the requests were answered;
            // then the process dies: no flush, no Drop of the store.
        }
        let rows: i64 = rusqlite::Connection::open(&file)
            .unwrap()
            .query_row("SELECT count(*) FROM greylist", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "nothing reached SQLite");
        assert!(journal_bytes(dir.path()) > 0);
        let s = SqliteStore::open_file(&file).unwrap();
        // The journal was replayed into SQLite and emptied.
        assert_eq!(journal_bytes(dir.path()), 0);
        assert_eq!(
            s.greylist(attempt("x\t\n\u{e9}/y", 150)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::TooEarly { remaining: 250 })
        );
        assert_eq!(
            s.greylist(attempt("k", 500)).await.unwrap(),
            GreyOutcome::Triplet(Verdict::Known)
        );
        assert_eq!(s.rate_add("r", 60, 1).await.unwrap(), 8);
        // One delivery counted for 192.0.2 (FirstPass), one more (Known)
        // makes two: whitelisted.
        assert_eq!(
            s.greylist(attempt("new", 600)).await.unwrap(),
            GreyOutcome::AutoWhitelisted
        );
    }

    #[tokio::test]
    async fn a_torn_journal_replays_up_to_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = Vec::new();
        encode(&Change::Awl("198.51.100".into(), 5, 9), &mut buf);
        encode(&Change::Rate("m:0:x".into(), 60, 3), &mut buf);
        std::fs::write(dir.path().join("policy.journal"), &buf[..buf.len() - 3]).unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        // The whole record counts five deliveries: whitelisted.
        assert_eq!(
            s.greylist(GreyAttempt {
                client_net: "198.51.100".into(),
                awl_after: 5,
                ..attempt("t", 1)
            })
            .await
            .unwrap(),
            GreyOutcome::AutoWhitelisted
        );
        // The torn one is not there.
        assert_eq!(s.rate_add("m:0:x", 60, 1).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_writer_flushes_to_sqlite_and_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.sqlite");
        let s = SqliteStore::open_file(&file).unwrap();
        for i in 0..50 {
            s.greylist(attempt(&format!("k{i}"), 100)).await.unwrap();
        }
        assert!(journal_bytes(dir.path()) > 0);
        // Within FLUSH_EVERY and a little, with no further request, the
        // rows are in SQLite (read by another connection) and the journal
        // is empty.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows: i64 = rusqlite::Connection::open(&file)
                .unwrap()
                .query_row("SELECT count(*) FROM greylist", [], |r| r.get(0))
                .unwrap();
            let bytes = journal_bytes(dir.path());
            if rows == 50 && bytes == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{rows} rows in SQLite, {bytes} octets in the journal"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn a_second_store_on_the_same_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteStore::open(dir.path()).unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
    }

    async fn futures_join(s: std::sync::Arc<SqliteStore>) -> Vec<GreyOutcome> {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.greylist(GreyAttempt {
                        client_net: format!("n{i}"),
                        ..attempt(&format!("c{i}"), 100)
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}
