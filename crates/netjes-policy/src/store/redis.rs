//! The policy state in Redis, shared by the policy services of several MX
//! hosts (rspamd keeps the same kind of state there). Each greylisting
//! attempt is one Lua script (EVALSHA): Redis runs it alone, so two MX
//! hosts deciding the same triplet at once see one another's change. Each
//! rate-limit step is one MULTI/EXEC (INCRBY and EXPIRE). Every key has a
//! TTL from the configured ages, so Redis never grows without bound.
//!
//! Keys (the prefix is `[store] key_prefix`, "netjes:" by default):
//! - `PREFIXgrey:TRIPLET`: hash f (first seen), l (last seen), p (passed);
//!   TTL max_age once passed, retry_window before;
//! - `PREFIXawl:NETWORK`: hash c (deliveries), l (last seen); TTL max_age;
//! - `PREFIXrate:KEY:WINDOW`: a counter; TTL two hours (the longest
//!   period is an hour, and the window before must still be readable).
//!
//! Failure contract (the trait's): every call has `timeout` in all, and
//! an error or a timeout is an `Err`, which the policy answers with its
//! `store_failure` action. The connection is made again by itself: at
//! start Redis may be down, and later it may go away and come back.
//!
//! Redis Sentinel (`redis-sentinel://H:P[,H:P...]/MASTER[/DB]`): the
//! master's address is asked of the sentinels in turn, and the server
//! found must say it is a master (ROLE), as the Sentinel client guidelines
//! (redis.io, "Sentinel client spec") ask. Any error drops the connection,
//! and the next call asks the sentinels again: after a failover the old
//! master is gone or answers READONLY as a replica, and a connection that
//! only reconnected to it would never find the new one.

use super::{GreyAttempt, GreyOutcome, Store, StoreError};
use crate::greylist::Verdict;
use redis::aio::ConnectionManager;
use std::time::{Duration, Instant};

/// The greylisting step of `greylist::decide`, in Lua so that it runs in
/// Redis atomically. The two must agree: tests/store.rs runs both over the
/// same attempts.
const GREYLIST: &str = r#"
local now, delay, window, max_age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local awl_after, force = tonumber(ARGV[5]), ARGV[6] == '1'
if not force and awl_after > 0 then
  local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
  if c >= awl_after then return {'awl', 0} end
end
local t = redis.call('HMGET', KEYS[2], 'f', 'l', 'p')
local f, l, p, verdict = now, now, 0, 'new'
if t[1] then
  local of, ol, op = tonumber(t[1]), tonumber(t[2]), tonumber(t[3])
  if now - ol > max_age or (op == 0 and now - of > window) then
    verdict = 'new'
  elseif op == 1 then
    f, p, verdict = of, 1, 'known'
  elseif now - of >= delay then
    f, p, verdict = of, 1, 'firstpass'
  else
    f, verdict = of, 'tooearly'
  end
end
redis.call('HSET', KEYS[2], 'f', f, 'l', l, 'p', p)
if p == 1 then redis.call('EXPIRE', KEYS[2], max_age) else redis.call('EXPIRE', KEYS[2], window + 1) end
if p == 1 and awl_after > 0 then
  redis.call('HINCRBY', KEYS[1], 'c', 1)
  redis.call('HSET', KEYS[1], 'l', now)
  redis.call('EXPIRE', KEYS[1], max_age)
end
return {verdict, delay - (now - f)}
"#;

/// How long a rate window's counter is kept.
const RATE_TTL: i64 = 2 * 3600;

/// After a failed connect, requests fail at once for this long rather
/// than each waiting for its own attempt.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// Where the server is: one address, or whatever master the sentinels
/// name.
enum Target {
    Direct(redis::Client),
    Sentinel(SentinelTarget),
}

/// A parsed `redis-sentinel://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelTarget {
    pub sentinels: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
}

/// `redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]`. Credentials in
/// the URL are refused: the master's password comes from a file, as for
/// the other schemes, and sentinels are asked without one.
pub fn parse_sentinel(url: &str) -> Result<SentinelTarget, StoreError> {
    let bad = |why: &str| StoreError::Redis(format!("{url:?}: {why} (redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB])"));
    let rest = url.get(..17).filter(|p| p.eq_ignore_ascii_case("redis-sentinel://")).map(|_| &url[17..]).ok_or_else(|| bad("not redis-sentinel://"))?;
    let (hosts, path) = rest.split_once('/').ok_or_else(|| bad("no master name"))?;
    if hosts.contains('@') {
        return Err(bad("no credentials in the URL; the master's password goes in store.password_file"));
    }
    let mut sentinels = Vec::new();
    for h in hosts.split(',') {
        let (host, port) = h.rsplit_once(':').ok_or_else(|| bad("a sentinel without :PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| bad("a sentinel's port is not 1 to 65535"))?;
        if host.is_empty() {
            return Err(bad("a sentinel without a host"));
        }
        sentinels.push((host.to_string(), port));
    }
    let (master, db) = match path.split_once('/') {
        Some((m, d)) => (m, d.parse::<i64>().ok().filter(|d| (0..=15).contains(d)).ok_or_else(|| bad("the database is not 0 to 15"))?),
        None => (path, 0),
    };
    if master.is_empty() || !master.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) {
        return Err(bad("the master name is empty or has odd characters"));
    }
    Ok(SentinelTarget { sentinels, master: master.to_string(), db })
}

pub struct RedisStore {
    target: Target,
    password: Option<String>,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    conn: tokio::sync::RwLock<Option<ConnectionManager>>,
    last_failed_connect: std::sync::Mutex<Option<Instant>>,
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError::Redis(e.to_string())
}

impl RedisStore {
    /// A store at `url` (redis://, rediss://, redis+unix://), with the
    /// password from `password` when given (a file's, not the URL's), and
    /// for rediss:// the CA certificates `ca_pem` (PEM) instead of the
    /// system's. It does not connect yet.
    pub fn new(url: &str, password: Option<String>, prefix: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        RedisStore::with_ca(url, password, prefix, timeout, None)
    }

    pub fn with_ca(url: &str, password: Option<String>, prefix: &str, timeout: Duration, ca_pem: Option<Vec<u8>>) -> Result<RedisStore, StoreError> {
        use redis::IntoConnectionInfo;
        let target = if url.get(..17).is_some_and(|p| p.eq_ignore_ascii_case("redis-sentinel://")) {
            Target::Sentinel(parse_sentinel(url)?)
        } else {
            let mut info = url.into_connection_info().map_err(err)?;
            if let Some(p) = password.clone() {
                let settings = info.redis_settings().clone().set_password(p);
                info = info.set_redis_settings(settings);
            }
            let client = match ca_pem {
                Some(ca) => redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(ca) }),
                None => redis::Client::open(info),
            };
            Target::Direct(client.map_err(err)?)
        };
        Ok(RedisStore {
            target,
            password,
            prefix: prefix.to_string(),
            timeout,
            script: redis::Script::new(GREYLIST),
            conn: tokio::sync::RwLock::new(None),
            last_failed_connect: std::sync::Mutex::new(None),
        })
    }

    /// The connection, made when there is none; a failed attempt makes
    /// the next half second fail at once.
    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.conn.read().await.as_ref() {
            return Ok(c.clone());
        }
        let mut slot = self.conn.write().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let paused = self.last_failed_connect.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t.elapsed() < RECONNECT_PAUSE);
        if paused {
            return Err(StoreError::Redis("Redis is unreachable (retrying)".into()));
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let client = match &self.target {
            Target::Direct(c) => Ok(c.clone()),
            Target::Sentinel(t) => self.master_of(t).await,
        };
        match async { redis::aio::ConnectionManager::new_with_config(client?, config).await.map_err(err) }.await {
            Ok(c) => {
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *self.last_failed_connect.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// The master the sentinels name, asked in turn; the first that names
    /// one whose ROLE is master wins.
    async fn master_of(&self, t: &SentinelTarget) -> Result<redis::Client, StoreError> {
        use redis::IntoConnectionInfo;
        let mut why = String::from("no sentinel answered");
        for (host, port) in &t.sentinels {
            let asked = async {
                let s = redis::Client::open(redis::ConnectionAddr::Tcp(host.clone(), *port).into_connection_info().map_err(err)?).map_err(err)?;
                let mut c = s.get_multiplexed_async_connection().await.map_err(err)?;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(&t.master).query_async(&mut c).await.map_err(err)?;
                let (mh, mp) = addr.ok_or_else(|| StoreError::Redis(format!("sentinel {host}:{port} does not know master {:?}", t.master)))?;
                let mut settings = redis::RedisConnectionInfo::default().set_db(t.db);
                if let Some(p) = &self.password {
                    settings = settings.set_password(p.clone());
                }
                let info = redis::ConnectionAddr::Tcp(mh.clone(), mp).into_connection_info().map_err(err)?.set_redis_settings(settings);
                let m = redis::Client::open(info).map_err(err)?;
                let mut mc = m.get_multiplexed_async_connection().await.map_err(err)?;
                let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut mc).await.map_err(err)?;
                match role.first() {
                    Some(redis::Value::BulkString(r)) if r == b"master" => Ok(m),
                    _ => Err(StoreError::Redis(format!("{mh}:{mp}, named by sentinel {host}:{port}, is not a master (yet)"))),
                }
            };
            match tokio::time::timeout(self.timeout, asked).await {
                Ok(Ok(m)) => return Ok(m),
                Ok(Err(e)) => why = e.to_string(),
                Err(_) => why = format!("sentinel {host}:{port}: no answer within {:?}", self.timeout),
            }
        }
        Err(StoreError::Redis(why))
    }

    /// `f` with a connection, within the time budget.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        let work = async {
            let c = self.connection().await?;
            f(c).await.map_err(err)
        };
        let r = tokio::time::timeout(self.timeout, work).await.map_err(|_| StoreError::Redis(format!("no answer within {:?}", self.timeout))).and_then(|r| r);
        if r.is_err() && matches!(self.target, Target::Sentinel(_)) {
            // Ask the sentinels again next time (see the module's notes).
            *self.conn.write().await = None;
        }
        r
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn greylist(&self, a: GreyAttempt) -> Result<GreyOutcome, StoreError> {
        let (awl, grey) = (format!("{}awl:{}", self.prefix, a.client_net), format!("{}grey:{}", self.prefix, a.key));
        let p = a.params;
        let (verdict, remaining): (String, i64) = self
            .with(|mut c| async move {
                self.script
                    .key(awl)
                    .key(grey)
                    .arg(a.now)
                    .arg(p.delay)
                    .arg(p.retry_window)
                    .arg(p.max_age)
                    .arg(a.awl_after)
                    .arg(if a.force { "1" } else { "0" })
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(match verdict.as_str() {
            "awl" => GreyOutcome::AutoWhitelisted,
            "new" => GreyOutcome::Triplet(Verdict::New),
            "tooearly" => GreyOutcome::Triplet(Verdict::TooEarly { remaining }),
            "firstpass" => GreyOutcome::Triplet(Verdict::FirstPass),
            "known" => GreyOutcome::Triplet(Verdict::Known),
            other => return Err(StoreError::Redis(format!("the greylist script answered {other:?}"))),
        })
    }

    async fn rate_add(&self, key: &str, window_start: i64, by: u32) -> Result<u32, StoreError> {
        let k = format!("{}rate:{key}:{window_start}", self.prefix);
        let (n,): (i64,) = self
            .with(|mut c| async move { redis::pipe().atomic().incr(&k, by).expire(&k, RATE_TTL).ignore().query_async(&mut c).await })
            .await?;
        Ok(super::clamp_u32(n))
    }

    /// Redis forgets by itself: every key has its TTL.
    async fn expire(&self, _before: i64, _rate_before: i64) -> Result<usize, StoreError> {
        Ok(0)
    }
}
