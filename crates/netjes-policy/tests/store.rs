//! One suite for every store backend: the embedded SQLite and Redis (a
//! real redis-server on a unix socket, started per test). Each backend is
//! checked against `greylist::decide`, the one statement of the rules, on
//! long random sequences of attempts; then what only a shared store has
//! to show: two MX hosts deciding at once, Redis gone and back, and state
//! that survives a kill -9 of Redis.

use netjes_policy::greylist::{decide, Params, Verdict};
use netjes_policy::store::{GreyAttempt, GreyOutcome, RedisStore, SqliteStore, Store, TripletRow};
use netjes_testdns::redis::RedisServer;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const P: Params = Params { delay: 300, retry_window: 2 * 86400, max_age: 35 * 86400 };

fn attempt(key: &str, net: &str, now: i64, awl_after: u32, force: bool) -> GreyAttempt {
    GreyAttempt { key: key.into(), client_net: net.into(), now, params: P, awl_after, force }
}

fn redis_store(r: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::new(&r.url(), None, prefix, Duration::from_millis(500)).unwrap()
}

/// The rules as `decide` states them, with the auto-whitelist beside.
#[derive(Default)]
struct Model {
    triplets: HashMap<String, TripletRow>,
    awl: HashMap<String, u32>,
}

impl Model {
    fn greylist(&mut self, a: &GreyAttempt) -> GreyOutcome {
        if !a.force && a.awl_after > 0 && self.awl.get(&a.client_net).copied().unwrap_or(0) >= a.awl_after {
            return GreyOutcome::AutoWhitelisted;
        }
        let (row, v) = decide(self.triplets.get(&a.key).copied(), a.now, &a.params);
        self.triplets.insert(a.key.clone(), row);
        if matches!(v, Verdict::FirstPass | Verdict::Known) && a.awl_after > 0 {
            *self.awl.entry(a.client_net.clone()).or_default() += 1;
        }
        GreyOutcome::Triplet(v)
    }
}

/// A small deterministic generator (no dependency): xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 2,000 attempts over 6 triplets from 3 networks, with time steps from
/// seconds to weeks, so every branch of the rules comes up: new, too
/// early, first pass, known, a retry window missed, max_age passed, the
/// auto-whitelist reached, a forced greylisting.
async fn agrees_with_the_rules(store: &dyn Store) {
    let mut model = Model::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = 1_800_000_000;
    let mut seen: HashMap<&'static str, u32> = HashMap::new();
    for i in 0..2000 {
        now += [1, 30, 200, 400, 3600, 3 * 86400, 40 * 86400][rng.next(7) as usize] * i64::from(rng.next(10) < 9 || i % 50 == 0);
        let k = rng.next(6);
        let a = attempt(&format!("net{}/s{k}@example.com/r@example.org", k % 3), &format!("192.0.{}", k % 3), now, 3, rng.next(20) == 0);
        let want = model.greylist(&a);
        let got = store.greylist(a).await.unwrap();
        assert_eq!(got, want, "attempt {i} at {now}");
        let name = match want {
            GreyOutcome::AutoWhitelisted => "awl",
            GreyOutcome::Triplet(Verdict::New) => "new",
            GreyOutcome::Triplet(Verdict::TooEarly { .. }) => "early",
            GreyOutcome::Triplet(Verdict::FirstPass) => "first",
            GreyOutcome::Triplet(Verdict::Known) => "known",
        };
        *seen.entry(name).or_default() += 1;
    }
    assert_eq!(seen.len(), 5, "every outcome came up: {seen:?}");
    // Rate windows count per key and window.
    assert_eq!(store.rate_add("m:0:a", 60, 1).await.unwrap(), 1);
    assert_eq!(store.rate_add("m:0:a", 60, 4).await.unwrap(), 5);
    assert_eq!(store.rate_add("m:0:a", 120, 1).await.unwrap(), 1);
    assert_eq!(store.rate_add("m:0:b", 60, 0).await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_follows_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    agrees_with_the_rules(&SqliteStore::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn redis_follows_the_rules_and_sets_a_ttl_on_every_key() {
    let r = RedisServer::start();
    agrees_with_the_rules(&redis_store(&r, "netjes:")).await;
    // Nothing without a TTL: Redis never grows without bound.
    let out = std::process::Command::new("redis-cli").arg("-s").arg(&r.socket).args(["--scan", "--pattern", "netjes:*"]).output().unwrap();
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert!(keys.len() >= 6, "{keys:?}");
    for k in &keys {
        let ttl = std::process::Command::new("redis-cli").arg("-s").arg(&r.socket).args(["TTL", k]).output().unwrap();
        let ttl: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
        assert!(ttl > 0 && ttl <= 35 * 86400, "{k}: TTL {ttl}");
    }
}

/// Two MX hosts (two stores on one Redis) decide the same triplet at the
/// same moment 60 times: one sees it new, the others too early; and 200
/// rate steps from both count 200.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_at_once_agree() {
    let r = RedisServer::start();
    let (a, b) = (Arc::new(redis_store(&r, "netjes:")), Arc::new(redis_store(&r, "netjes:")));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.greylist(attempt("t", "192.0.2", 1_800_000_000, 0, false)).await.unwrap() }));
    }
    let mut new = 0;
    for t in tasks {
        match t.await.unwrap() {
            GreyOutcome::Triplet(Verdict::New) => new += 1,
            GreyOutcome::Triplet(Verdict::TooEarly { remaining: 300 }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(new, 1);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.rate_add("m:0:x", 60, 1).await.unwrap() }));
    }
    let mut totals: Vec<u32> = Vec::new();
    for t in tasks {
        totals.push(t.await.unwrap());
    }
    totals.sort_unstable();
    assert_eq!(totals, (1..=200).collect::<Vec<u32>>(), "every step saw its own total");
}

/// Redis down at start, gone under load, and back: each call fails within
/// its budget (never hangs), the store reconnects by itself, and with an
/// append-only file the state from before a kill -9 is still there.
#[tokio::test(flavor = "multi_thread")]
async fn redis_gone_and_back() {
    let mut r = RedisServer::start_persistent();
    r.kill();
    let s = redis_store(&r, "netjes:");
    let t = Instant::now();
    assert!(s.greylist(attempt("k", "192.0.2", 100, 0, false)).await.is_err(), "down at start");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    r.restart();
    let mut up = None;
    for _ in 0..40 {
        if let Ok(v) = s.greylist(attempt("k", "192.0.2", 100, 0, false)).await {
            up = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up, Some(GreyOutcome::Triplet(Verdict::New)), "reconnected by itself");
    assert_eq!(s.rate_add("m:0:k", 60, 7).await.unwrap(), 7);

    // Killed (no shutdown save): calls fail fast, no hang.
    r.kill();
    for _ in 0..5 {
        let t = Instant::now();
        assert!(s.greylist(attempt("k", "192.0.2", 150, 0, false)).await.is_err());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    // Back: the triplet seen at 100 is remembered (too early at 200, 200 s
    // left), and so is the rate window.
    r.restart();
    let mut back = None;
    for _ in 0..40 {
        if let Ok(v) = s.greylist(attempt("k", "192.0.2", 200, 0, false)).await {
            back = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back, Some(GreyOutcome::Triplet(Verdict::TooEarly { remaining: 200 })));
    assert_eq!(s.rate_add("m:0:k", 60, 1).await.unwrap(), 8);
}

/// Two deployments on one Redis keep apart by key prefix.
#[tokio::test]
async fn prefixes_keep_deployments_apart() {
    let r = RedisServer::start();
    let (a, b) = (redis_store(&r, "a:"), redis_store(&r, "b:"));
    assert_eq!(a.greylist(attempt("k", "n", 100, 0, false)).await.unwrap(), GreyOutcome::Triplet(Verdict::New));
    assert_eq!(b.greylist(attempt("k", "n", 500, 0, false)).await.unwrap(), GreyOutcome::Triplet(Verdict::New));
    assert_eq!(a.greylist(attempt("k", "n", 500, 0, false)).await.unwrap(), GreyOutcome::Triplet(Verdict::FirstPass));
}

/// rediss:// with a password: with the server's CA and the right password
/// the store works; with the system's CAs (the test CA is not among them),
/// or the wrong password, every call fails; it never goes unencrypted.
#[tokio::test]
async fn redis_over_tls_with_a_password() {
    let r = RedisServer::start_tls("s3cret");
    let (port, ca) = r.tls.clone().unwrap();
    let url = format!("rediss://localhost:{port}/0");
    let store = |password: &str, ca: Option<Vec<u8>>| RedisStore::with_ca(&url, Some(password.into()), "netjes:", Duration::from_millis(1500), ca).unwrap();
    let ok = store("s3cret", Some(ca.clone().into_bytes()));
    assert_eq!(ok.greylist(attempt("k", "n", 100, 0, false)).await.unwrap(), GreyOutcome::Triplet(Verdict::New));
    assert_eq!(ok.rate_add("m:0:x", 60, 2).await.unwrap(), 2);
    assert!(store("s3cret", None).greylist(attempt("k", "n", 100, 0, false)).await.is_err(), "an unknown CA is refused");
    assert!(store("wrong", Some(ca.into_bytes())).greylist(attempt("k", "n", 100, 0, false)).await.is_err(), "a wrong password is refused");
}

/// Redis Sentinel: the store asks the sentinel for the master, and after
/// the master is killed and the replica promoted, finds the new one by
/// itself, with what was written before the failover.
#[tokio::test(flavor = "multi_thread")]
async fn sentinel_finds_the_new_master_after_a_failover() {
    let mut lab = netjes_testdns::redis::SentinelLab::start();
    let s = RedisStore::new(&lab.url(), None, "netjes:", Duration::from_millis(500)).unwrap();
    assert_eq!(s.greylist(attempt("k", "192.0.2", 100, 0, false)).await.unwrap(), GreyOutcome::Triplet(Verdict::New));
    assert_eq!(s.rate_add("m:0:k", 60, 3).await.unwrap(), 3);
    // Written on the master, not somewhere else.
    let on_master = netjes_testdns::redis::resp(lab.master_port, &["EXISTS", "netjes:grey:k"]);
    assert_eq!(on_master.as_deref(), Some("1"));
    lab.sync_replica();
    let on_replica = netjes_testdns::redis::resp(lab.replica_port, &["HGET", "netjes:grey:k", "l"]);
    assert_eq!(on_replica.as_deref(), Some("100"), "replicated");
    lab.fail_over();
    let on_replica = netjes_testdns::redis::resp(lab.replica_port, &["HGET", "netjes:grey:k", "l"]);
    assert_eq!(on_replica.as_deref(), Some("100"), "promoted with it");
    // Calls fail (the store_failure action) until the new master is
    // found, never hang, and then answer from it.
    let mut back = None;
    for _ in 0..50 {
        let t = Instant::now();
        match s.greylist(attempt("k", "192.0.2", 200, 0, false)).await {
            Ok(v) => {
                back = Some(v);
                break;
            }
            Err(_) => assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(back, Some(GreyOutcome::Triplet(Verdict::TooEarly { remaining: 200 })), "the triplet from before the failover");
    assert_eq!(s.rate_add("m:0:k", 60, 1).await.unwrap(), 4);
    let on_new = netjes_testdns::redis::resp(lab.replica_port, &["HGET", "netjes:grey:k", "l"]);
    assert_eq!(on_new.as_deref(), Some("200"), "written on the promoted replica");
}

/// A sentinel that does not know the master, or none answering: an error
/// (the store_failure action), quickly.
#[tokio::test]
async fn sentinel_without_a_master_is_an_error() {
    let lab = netjes_testdns::redis::SentinelLab::start();
    let unknown = RedisStore::new(&format!("redis-sentinel://127.0.0.1:{}/other", lab.sentinel_port), None, "netjes:", Duration::from_millis(500)).unwrap();
    let e = unknown.greylist(attempt("k", "192.0.2", 100, 0, false)).await.unwrap_err();
    assert!(e.to_string().contains("does not know master"), "{e}");
    let none = RedisStore::new(&format!("redis-sentinel://127.0.0.1:{}/netjes", netjes_testdns::free_port()), None, "netjes:", Duration::from_millis(500)).unwrap();
    let t = Instant::now();
    assert!(none.greylist(attempt("k", "192.0.2", 100, 0, false)).await.is_err());
    assert!(t.elapsed() < Duration::from_secs(2));
}
