//! What `netjes policy` and `netjes milter` share as daemons: reading the
//! TOML file, the metrics endpoint, and the signal loop (SIGHUP reloads,
//! SIGTERM and SIGINT stop).

use crate::exit;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

/// The raw configuration from `path`, or the defaults without one.
pub fn read_config<T: serde::de::DeserializeOwned + Default>(
    path: Option<&Path>,
) -> Result<T, Vec<String>> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = netjes_net::read_config_file(p).map_err(|e| vec![e])?;
    toml::from_str(&text).map_err(|e| vec![format!("{}: {e}", p.display())])
}

/// A configuration refused at start: a usage error listing every problem.
pub fn bad_config(errors: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!(exit::Usage(format!(
        "bad configuration:\n  {}",
        errors.join("\n  ")
    )))
}

/// Serves GET /metrics on `addr`, when given, until shutdown.
pub async fn serve_metrics(
    addr: Option<SocketAddr>,
    metrics: Arc<netjes_net::metrics::Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(m) = addr {
        let l = tokio::net::TcpListener::bind(m)
            .await
            .map_err(|e| anyhow::anyhow!(exit::Input(format!("cannot listen on {m}: {e}"))))?;
        tokio::spawn(netjes_net::metrics::serve(l, metrics, shutdown));
    }
    Ok(())
}

/// Runs until SIGTERM or SIGINT, calling `reload` on SIGHUP; a refused
/// reload logs every error and keeps what runs. Then stops the server.
pub async fn until_stopped(
    server: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    mut reload: impl FnMut() -> Result<(), Vec<String>>,
) -> anyhow::Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match reload() {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(errors) => {
                    for e in errors {
                        tracing::error!("reload refused, the old configuration stays: {e}");
                    }
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = stop.send(true);
    let _ = server.await;
    Ok(exit::OK)
}
