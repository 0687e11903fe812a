//! `netjes serve`: the web UI and JSON API, the SMTP test inbox (a
//! self-hosted mail-tester), and the store of signing domains whose keys
//! the milter signs with.
//!
//! [`run`] takes bound listeners, so that tests drive the daemon over
//! real HTTP and SMTP on ports the system picked.

pub mod analysis;
pub mod bounce_intake;
pub mod config;
pub mod crypto;
pub mod db;
pub mod guard;
pub mod jobs;
pub mod keystore;
pub mod pages;
pub mod report_alerts;
pub mod report_imap;
pub mod report_intake;
pub mod report_pages;
pub mod report_store;
pub mod report_view;
pub mod reputation;
pub mod route_store;
pub mod routes;
pub mod routes_map;
pub mod smtp;
pub mod store;
pub mod suppress_store;
pub mod web;
pub mod webhooks;

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(#[from] std::io::Error),
}

/// Everything `run` serves, made from the configuration.
#[derive(Debug)]
pub struct Parts {
    pub store: store::Store,
    pub app: Arc<web::App>,
    pub inbox: Arc<smtp::Inbox>,
    pub metrics: Arc<netjes_net::metrics::Metrics>,
    /// Alerts from the reports, when `[reports.alerts]` is set.
    pub alerter: Option<Arc<report_alerts::Alerter>>,
}

/// Connections of one serve instance to a shared PostgreSQL.
const PG_CONNECTIONS: usize = 4;

pub fn build(
    cfg: &config::Config,
    dns: Arc<dyn netjes_dns::Resolver>,
) -> Result<Parts, ServeError> {
    // The store and the master key: for netjes alone.
    netjes_net::private_dir(&cfg.data_dir).map_err(|e| {
        store::StoreError::Dir(cfg.data_dir.display().to_string(), e)
    })?;
    let master = crypto::MasterKey::load(cfg.master_key_file.as_deref(), &cfg.data_dir, true)?;
    let csrf_key = master.csrf_key();
    let store = match &cfg.postgres {
        Some(pg) => store::Store::postgres(pg.clone(), master, PG_CONNECTIONS)?,
        None => store::Store::open(&cfg.data_dir, master)?,
    };
    store.check_master()?;
    let metrics = Arc::new(netjes_net::metrics::Metrics::default());
    let tools = Arc::new(analysis::Tools {
        allow_private_targets: cfg.allow_private_targets,
        spamd: cfg.spamd.clone(),
        ..analysis::Tools::new(
            dns,
            cfg.ip_lists.clone(),
            cfg.domain_lists.clone(),
            cfg.hostname.clone(),
        )
    });
    let tls = match &cfg.tls {
        Some((c, k)) => smtp::from_files(c, k),
        None => smtp::self_signed(&cfg.hostname),
    }
    .map_err(ServeError::Tls)?;
    let limits = smtp::Limits {
        max_message_bytes: cfg.max_message_bytes,
        max_recipients: cfg.max_recipients,
        max_stored_bytes: cfg.inbox_max_bytes,
        session: cfg.smtp_session,
        idle: cfg.smtp_idle,
        max_connections: cfg.max_connections,
        max_connections_per_client: cfg.max_connections_per_client,
    };
    let reports = Arc::new(report_intake::Intake::new(
        store.clone(),
        tools.live.clone(),
        cfg.reports.clone(),
        cfg.hostname.clone(),
        metrics.clone(),
    ));
    let mut inbox = smtp::Inbox::new(
        store.clone(),
        tools.clone(),
        smtp::Settings {
            hostname: cfg.hostname.clone(),
            test_domain: cfg.test_domain.clone(),
            limits,
            tls: Some(tls),
        },
        metrics.clone(),
        reports.clone(),
    );
    inbox.bounce_domain = cfg.bounce_domain.clone();
    let inbox = Arc::new(inbox);
    let app = Arc::new(web::App::new(
        store.clone(),
        tools,
        cfg,
        metrics.clone(),
        csrf_key,
        reports,
    ));
    let alerter = cfg.reports.alerts.clone().map(|a| {
        Arc::new(report_alerts::Alerter {
            store: store.clone(),
            dns: inbox.tools.live.clone(),
            cfg: a,
            domains: cfg.reports.domains.clone(),
            metrics: metrics.clone(),
            hostname: cfg.hostname.clone(),
        })
    });
    Ok(Parts {
        store,
        app,
        inbox,
        metrics,
        alerter,
    })
}

/// When there is no user yet: makes `admin` with a random password and
/// returns it, to be shown once.
pub fn first_admin(store: &store::Store) -> Result<Option<(String, String)>, store::StoreError> {
    if store.user_count()? > 0 {
        return Ok(None);
    }
    let password = crypto::password();
    store.add_user("admin", &password)?;
    Ok(Some(("admin".into(), password)))
}

/// Serves HTTP and SMTP until `shutdown` turns true; deletes old tests
/// every hour, and first analyses messages a crash left unanalysed.
pub async fn run(
    http: tokio::net::TcpListener,
    smtp_listener: tokio::net::TcpListener,
    parts: &Parts,
    retention: std::time::Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let inbox = parts.inbox.clone();
    tokio::spawn(async move {
        inbox.resume().await;
        inbox.reports.resume().await;
    });
    let store = parts.store.clone();
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match store.purge_tests(store::now() - retention.as_secs() as i64) {
                Ok(0) => {}
                Ok(n) => tracing::info!(tests = n, "deleted old test results"),
                Err(e) => tracing::error!(error = %e, "cannot delete old test results"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            }
        }
    });
    if let Some(a) = &parts.alerter {
        tokio::spawn(report_alerts::run(a.clone(), shutdown.clone()));
    }
    tokio::spawn(webhooks::run(parts.store.clone(), parts.app.tools.allow_private_targets, parts.app.metrics.clone(), std::time::Duration::from_secs(2), shutdown.clone()));
    for account in parts.inbox.reports.cfg.imap.clone() {
        tokio::spawn(report_imap::run(account, parts.inbox.reports.clone(), shutdown.clone()));
    }
    tokio::spawn(smtp::run(
        smtp_listener,
        parts.inbox.clone(),
        shutdown.clone(),
    ));
    web::run(http, parts.app.clone(), shutdown).await?;
    Ok(())
}
