//! The policy server: any number of connections, any number of requests on
//! each. A malformed or oversized request closes its own connection only;
//! idle connections are closed; the number of connections is bounded.

use crate::policy::Policy;
use crate::protocol::{reply, RequestBuilder, MAX_LINE_BYTES};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// Postfix closes an idle policy connection after 300 s
/// (smtpd_policy_service_max_idle); a little more than that here.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(330);
/// Postfix sends its request as soon as it connects. Before the first
/// request a connection gets this long, not Postfix's 300 s: a stranger's
/// idle connection must not hold a slot for minutes.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub use netjes_net::{ListenAddr, Listener};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Serves one connection until the client closes it, it idles out, or it
/// sends something that is not a policy request.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, policy: Arc<Policy>) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut builder = RequestBuilder::default();
    let mut line = Vec::with_capacity(256);
    let mut idle = FIRST_REQUEST_TIMEOUT;
    loop {
        line.clear();
        // Read at most one line plus one byte: a longer one is an error,
        // and never a buffer that grows without end.
        let read = tokio::time::timeout(
            idle,
            (&mut r)
                .take(MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut line),
        )
        .await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if line.last() != Some(&b'\n') {
            tracing::warn!("policy request line over {MAX_LINE_BYTES} octets or cut off: closing the connection");
            policy
                .metrics
                .inc("netjes_policy_errors_total", &[("kind", "protocol")]);
            return;
        }
        line.pop();
        match builder.line(&line) {
            Ok(None) => {}
            Ok(Some(req)) => {
                idle = IDLE_TIMEOUT;
                let d = policy.decide(&req, now()).await;
                tracing::debug!(action = %d.action, check = d.check, "answered");
                if w.write_all(reply(&d.action).as_bytes()).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("malformed policy request: {e}; closing the connection");
                policy
                    .metrics
                    .inc("netjes_policy_errors_total", &[("kind", "protocol")]);
                return;
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true, then stops accepting
/// (connections in progress finish on their own).
pub async fn run(listener: Listener, policy: Arc<Policy>, shutdown: watch::Receiver<bool>) {
    // State expires by itself: every ten minutes, and once at start.
    let expirer = {
        let policy = policy.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                policy.expire(now()).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        })
    };
    let limits = policy.config().conn.clone();
    netjes_net::serve(listener, limits, shutdown, |s| {
        serve_connection(s, policy.clone())
    })
    .await;
    expirer.abort();
}
