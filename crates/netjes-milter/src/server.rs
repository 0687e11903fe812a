//! The milter server: one task per MTA connection, a thin loop of frames
//! around a [`Session`]. A malformed frame closes that connection only; an
//! internal error at the end of a message answers tempfail.

use crate::keys::KeySource;
use crate::protocol::{frame_len, Command, Response};
use crate::session::{Session, Step};
use crate::work::{process, Settings};
use netjes_dns::Resolver;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Postfix's milter_command_timeout is 30 s, milter_content_timeout 300 s;
/// a connection quiet for longer than the longest is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(330);
/// Postfix negotiates as soon as it connects; a connection that says
/// nothing is a stranger holding a slot.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a connection needs; swapped whole on reload.
pub struct Milter {
    pub settings: Settings,
    pub keys: Arc<dyn KeySource>,
    pub dns: Arc<dyn Resolver>,
    /// Where verdicts go for DMARC reports; none in some tests.
    pub verdicts: Option<crate::verdicts::VerdictStore>,
    /// Sends failure reports (ruf=), when they are on.
    pub failures: Option<Arc<crate::report_send::FailureSender>>,
}

impl std::fmt::Debug for Milter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Milter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The milter in force, swapped whole on reload (SIGHUP); a message keeps
/// the one it started its end-of-message work with.
/// The metrics outlive reloads.
#[derive(Debug)]
pub struct Shared {
    milter: std::sync::RwLock<Arc<Milter>>,
    pub metrics: Arc<netjes_net::metrics::Metrics>,
}

impl Shared {
    pub fn new(m: Milter) -> Arc<Shared> {
        Shared::with_metrics(m, Arc::default())
    }

    /// With metrics made beforehand, which the verdict store's writer
    /// counts its failures in too.
    pub fn with_metrics(m: Milter, metrics: Arc<netjes_net::metrics::Metrics>) -> Arc<Shared> {
        metrics.describe("netjes_milter_messages_total", "Messages at end of data, by what was done: signed, unsigned, key-error, and the DMARC result or action of verified mail.");
        metrics.describe(
            "netjes_milter_message_seconds",
            "Time from end of data to the answer.",
        );
        metrics.describe(
            "netjes_milter_errors_total",
            "Protocol errors and internal errors.",
        );
        metrics.describe(
            "netjes_milter_store_retries_total",
            "Batches of verdicts the PostgreSQL writer tried again (the database was away).",
        );
        metrics.describe(
            "netjes_milter_dns_errors_total",
            "Verified messages whose check met a DNS timeout or SERVFAIL, by check (spf, dkim, arc, dmarc; budget when the time budget ran out).",
        );
        metrics.describe(
            "netjes_milter_dmarc_total",
            "Verified messages by DMARC result and the disposition the policy asked for.",
        );
        Arc::new(Shared {
            milter: std::sync::RwLock::new(Arc::new(m)),
            metrics,
        })
    }

    pub fn current(&self) -> Arc<Milter> {
        self.milter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, m: Milter) {
        *self.milter.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(m);
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, replies: &[Response]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for r in replies {
        buf.extend(r.encode());
    }
    w.write_all(&buf).await
}

/// Serves one MTA connection until it quits or breaks the protocol.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    milter: Arc<Shared>,
) {
    let mut session = Session::new();
    let mut idle = FIRST_FRAME_TIMEOUT;
    loop {
        let mut len = [0u8; 4];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = match frame_len(len) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("milter protocol: {e}; closing the connection");
                milter
                    .metrics
                    .inc("netjes_milter_errors_total", &[("kind", "protocol")]);
                return;
            }
        };
        let mut payload = vec![0u8; n];
        if tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut payload))
            .await
            .map(|r| r.is_err())
            .unwrap_or(true)
        {
            return;
        }
        idle = IDLE_TIMEOUT;
        let cmd = match Command::decode(&payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("milter protocol: {e}; closing the connection");
                milter
                    .metrics
                    .inc("netjes_milter_errors_total", &[("kind", "protocol")]);
                return;
            }
        };
        let replies = match session.handle(cmd) {
            Step::Reply(r) => r,
            Step::Close => return,
            Step::EndOfMessage(job) => {
                let m = milter.current();
                let started = std::time::Instant::now();
                let queue_id = job.queue_id.clone().unwrap_or_default();
                let body_octets = job.body_octets;
                // The work runs in its own task: a panic in it is an
                // internal error for this message, answered with tempfail.
                let store = m.verdicts.clone();
                let failures = m.failures.clone();
                // Signing is CPU-bound: on the blocking pool, where the OS
                // shares the cores fairly between connections (as
                // OpenDKIM's thread per connection does); verification
                // waits on DNS and stays async.
                let work = if crate::work::is_internal(&job, &m.settings) {
                    tokio::task::spawn_blocking(move || {
                        crate::work::sign(&job, &m.settings, m.keys.as_ref())
                    })
                } else {
                    tokio::spawn(async move {
                        process(&job, &m.settings, m.keys.as_ref(), m.dns.as_ref()).await
                    })
                };
                let replies = match work.await {
                    Ok(o) => {
                        if let (Some(store), Some(row)) = (store, o.record.clone()) {
                            // Queued for the writer thread, never waited
                            // for: the MTA does not wait for a statistic.
                            // A row that cannot be queued is logged and
                            // counted.
                            if let Err(e) = store.record(row) {
                                tracing::error!(queue_id = %queue_id, "{e}");
                                milter
                                    .metrics
                                    .inc("netjes_milter_errors_total", &[("kind", "store")]);
                            }
                        }
                        if let (Some(f), Some(job)) = (&failures, o.failure.clone()) {
                            f.submit(job);
                        }
                        tracing::info!(queue_id = %queue_id, result = o.result, body_octets, "message done");
                        milter
                            .metrics
                            .inc("netjes_milter_messages_total", &[("result", o.result)]);
                        for check in &o.dns_errors {
                            milter
                                .metrics
                                .inc("netjes_milter_dns_errors_total", &[("check", check)]);
                        }
                        if let Some((result, disposition)) = o.dmarc {
                            milter.metrics.inc(
                                "netjes_milter_dmarc_total",
                                &[("result", result), ("disposition", disposition)],
                            );
                        }
                        o.replies
                    }
                    Err(e) => {
                        tracing::error!(queue_id = %queue_id, "internal error: {e}; answering tempfail");
                        milter
                            .metrics
                            .inc("netjes_milter_errors_total", &[("kind", "internal")]);
                        vec![Response::ReplyCode(
                            "451 4.3.0 internal error in the milter; try again later".into(),
                        )]
                    }
                };
                milter.metrics.observe(
                    "netjes_milter_message_seconds",
                    &[],
                    started.elapsed().as_secs_f64(),
                );
                replies
            }
        };
        if !replies.is_empty() && send(&mut stream, &replies).await.is_err() {
            return;
        }
    }
}

/// Accepts connections until `shutdown` turns true, within the
/// configured connection limits.
pub async fn run(
    listener: netjes_net::Listener,
    milter: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = milter.current().settings.conn.clone();
    netjes_net::serve(listener, limits, shutdown, |s| {
        serve_connection(s, milter.clone())
    })
    .await;
}
