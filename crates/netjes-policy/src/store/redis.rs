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

pub struct RedisStore {
    client: redis::Client,
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
        let mut info = url.into_connection_info().map_err(err)?;
        if let Some(p) = password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let client = match ca_pem {
            Some(ca) => redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(ca) }),
            None => redis::Client::open(info),
        };
        Ok(RedisStore {
            client: client.map_err(err)?,
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
        match redis::aio::ConnectionManager::new_with_config(self.client.clone(), config).await {
            Ok(c) => {
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *self.last_failed_connect.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                Err(err(e))
            }
        }
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
        tokio::time::timeout(self.timeout, work).await.map_err(|_| StoreError::Redis(format!("no answer within {:?}", self.timeout)))?
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
