//! The web UI and the JSON API (axum). One [`AppError`] for the whole
//! layer: HTML pages render it, the API answers it as `{"error": ...}`.
//!
//! Security:
//! - Admin pages and APIs need a session (cookie) or an API token
//!   (`Authorization: Bearer nj_...`).
//! - Every form carries a CSRF token: the session's, or for visitors
//!   without one, a random cookie it must match (double submit). API
//!   calls authenticated by the cookie need it in `X-CSRF-Token`.
//! - Headers: a CSP with scripts only from us and no remote images (so a
//!   rendered test message cannot call home), no framing, no sniffing, no
//!   referrer.
//! - Logins: argon2; at most 10 attempts per client address in 15
//!   minutes, counted before the hash; a growing delay per account after
//!   5 failures; at most `max_login_hashes` hashes at once (429 beyond).
//! - Visitors' CSRF tokens are signed by the server (guard.rs).
//! - The client address is the peer's, or X-Forwarded-For's behind a
//!   proxy listed in `trusted_proxies`; anonymous tests are limited per
//!   address and hour.

mod analyze;
mod auth;
mod check;
mod domains;
mod reports;
mod tests;

use crate::analysis::Tools;
use crate::pages::{self, Viewer};
use crate::store::{KeyRow, Store, StoreError};
use axum::extract::{ConnectInfo, FromRequestParts, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};
use netjes_net::metrics::Metrics;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

const SESSION_COOKIE: &str = "netjes_session";
const CSRF_COOKIE: &str = "netjes_csrf";
/// Forms other than message uploads.
const MAX_FORM_BYTES: usize = 256 * 1024;

pub struct App {
    pub store: Store,
    pub tools: Arc<Tools>,
    pub test_domain: String,
    pub public_tests: bool,
    pub test_expiry: Duration,
    pub secure_cookies: bool,
    pub max_message_bytes: usize,
    pub metrics: Arc<Metrics>,
    /// Where uploaded reports go, by the rules of mailed ones.
    pub reports: Arc<crate::report_intake::Intake>,
    login: crate::guard::LoginGuard,
    /// Password hashes at once: argon2 takes some 19 MiB each.
    hashing: Arc<tokio::sync::Semaphore>,
    new_tests: crate::guard::RateWindow,
    trusted_proxies: Vec<ipnet::IpNet>,
    http_limits: netjes_net::ConnLimits,
    http_header_timeout: Duration,
    /// The inbox's address, for the waiting page's local command.
    smtp: SocketAddr,
    csrf_key: aws_lc_rs::hmac::Key,
    /// HSTS on answers: the site is reached over HTTPS (secure_cookies).
    hsts: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("test_domain", &self.test_domain)
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn new(
        store: Store,
        tools: Arc<Tools>,
        cfg: &crate::config::Config,
        metrics: Arc<Metrics>,
        csrf_key: aws_lc_rs::hmac::Key,
        reports: Arc<crate::report_intake::Intake>,
    ) -> App {
        metrics.describe(
            "netjes_http_requests_total",
            "HTTP requests by status class.",
        );
        metrics.describe(
            "netjes_http_refused_total",
            "HTTP connections closed at once: over the connection limits.",
        );
        App {
            store,
            tools,
            test_domain: cfg.test_domain.clone(),
            public_tests: cfg.public_tests,
            test_expiry: cfg.test_expiry,
            secure_cookies: cfg.secure_cookies,
            max_message_bytes: cfg.max_message_bytes,
            metrics,
            reports,
            login: crate::guard::LoginGuard::new(crate::guard::LoginLimits::default()),
            hashing: Arc::new(tokio::sync::Semaphore::new(cfg.max_login_hashes)),
            new_tests: crate::guard::RateWindow::new(cfg.tests_per_client_per_hour, 3600),
            trusted_proxies: cfg.trusted_proxies.clone(),
            http_limits: cfg.http_limits.clone(),
            http_header_timeout: cfg.http_header_timeout,
            smtp: cfg.smtp,
            csrf_key,
            hsts: cfg.secure_cookies,
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64, same_site: &str) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
        ))
        .expect("tokens are header-safe")
    }
}

#[derive(Debug)]
pub enum AppError {
    /// No login: pages redirect to /login, the API answers 401.
    Unauthorized,
    Forbidden(&'static str),
    NotFound,
    BadRequest(String),
    TooManyRequests,
    /// The database cannot be reached (PostgreSQL restarting): 503, and
    /// the next request tries again.
    Unavailable(String),
    Internal(String),
    /// An error met before an API handler ran (reading the login): the
    /// API's JSON, not a page.
    InApi(Box<AppError>),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => AppError::BadRequest(m),
            StoreError::Exists(m) => AppError::BadRequest(format!("{m} already exists")),
            StoreError::NotFound(_) => AppError::NotFound,
            StoreError::Db(crate::db::DbError::Unavailable(m)) => AppError::Unavailable(m),
            e => AppError::Internal(e.to_string()),
        }
    }
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::InApi(e) => e.status(),
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            AppError::InApi(e) => e.message(),
            AppError::Unauthorized => "log in first, or give an API token".into(),
            AppError::Forbidden(m) => (*m).into(),
            AppError::NotFound => "not found".into(),
            AppError::BadRequest(m) => m.clone(),
            AppError::TooManyRequests => {
                "too many failed logins from your address; wait 15 minutes".into()
            }
            AppError::Unavailable(_) => "the database is unavailable; try again in a moment".into(),
            // The detail goes to the log, not to the client.
            AppError::Internal(_) => "internal error; see the server's log".into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::InApi(e) = self {
            return ApiError(*e).into_response();
        }
        if let AppError::Internal(e) | AppError::Unavailable(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        if matches!(self, AppError::Unauthorized) {
            return Redirect::to("/login").into_response();
        }
        let v = Viewer {
            user: None,
            csrf: String::new(),
        };
        (
            self.status(),
            Html(pages::error(&v, self.status().as_u16(), &self.message())),
        )
            .into_response()
    }
}

/// The same errors, answered as JSON.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) | AppError::Unavailable(e) = &self.0 {
            tracing::error!(error = %e, "API request failed");
        }
        (
            self.0.status(),
            Json(serde_json::json!({ "error": self.0.message() })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| {
            p.trim()
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The visitor's anonymous CSRF token (set by [`frame`]).
#[derive(Debug, Clone)]
struct AnonCsrf(String);

/// Who sends a request.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: Option<String>,
    /// The token forms must carry.
    pub csrf: String,
    /// Authenticated by an API token, not a cookie: no CSRF applies.
    pub bearer: bool,
    session: Option<String>,
    /// The client's address (guard::client_addr).
    pub client: IpAddr,
}

impl Who {
    fn viewer(&self) -> Viewer {
        Viewer {
            user: self.user.clone().filter(|_| !self.bearer),
            csrf: self.csrf.clone(),
        }
    }

    fn require_user(&self) -> Result<&str, AppError> {
        self.user.as_deref().ok_or(AppError::Unauthorized)
    }

    fn check_form(&self, token: &str) -> Result<(), AppError> {
        if self.bearer || (!self.csrf.is_empty() && crate::crypto::same(token, &self.csrf)) {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "the form's security token is missing or old; reload the page and try again",
            ))
        }
    }

    /// API calls: a token, or a cookie with the CSRF header.
    fn check_api(&self, headers: &HeaderMap) -> Result<(), AppError> {
        if self.user.is_none() || self.bearer {
            return Ok(());
        }
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.check_form(given)
    }
}

impl FromRequestParts<Arc<App>> for Who {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let api = parts.uri.path().starts_with("/api/");
        Who::read(parts, app).await.map_err(|e| if api { AppError::InApi(Box::new(e)) } else { e })
    }
}

impl Who {
    async fn read(parts: &mut axum::http::request::Parts, app: &Arc<App>) -> Result<Who, AppError> {
        let anon = parts
            .extensions
            .get::<AnonCsrf>()
            .map(|a| a.0.clone())
            .unwrap_or_default();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let client = crate::guard::client_addr(
            crate::guard::canonical(peer),
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            &app.trusted_proxies,
        );
        if let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let user = app.store.api_token_user(token.trim())?;
            return Ok(Who {
                bearer: user.is_some(),
                user,
                csrf: anon,
                session: None,
                client,
            });
        }
        let c = cookies(&parts.headers);
        if let Some(s) = c.get(SESSION_COOKIE) {
            if let Some((user, csrf)) = app.store.session(s)? {
                return Ok(Who {
                    user: Some(user),
                    csrf,
                    bearer: false,
                    session: Some(s.clone()),
                    client,
                });
            }
        }
        Ok(Who {
            user: None,
            csrf: anon,
            bearer: false,
            session: None,
            client,
        })
    }
}

/// Security headers on every answer, the anonymous CSRF cookie for
/// visitors who have none, and the request counter.
async fn frame(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    // Only a token this server signed: a made-up cookie gets a new one.
    let existing = cookies(req.headers())
        .get(CSRF_COOKIE)
        .filter(|v| crate::guard::visitor_token_valid(&app.csrf_key, v))
        .cloned();
    let (token, new) = match existing {
        Some(t) => (t, false),
        None => (crate::guard::visitor_token(&app.csrf_key), true),
    };
    req.extensions_mut().insert(AnonCsrf(token.clone()));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if new {
        h.append(
            header::SET_COOKIE,
            app.cookie(CSRF_COOKIE, &token, 30 * 86400, "Strict"),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if app.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let class = format!("{}xx", res.status().as_u16() / 100);
    app.metrics
        .inc("netjes_http_requests_total", &[("status", &class)]);
    res
}

pub fn router(app: Arc<App>) -> Router {
    let upload_limit = app.max_message_bytes + 64 * 1024;
    // Several compressed report files in one upload.
    let report_upload_limit = (app.reports.cfg.limits.max_report_bytes as usize).max(upload_limit);
    // A router per feature, as axum's examples have it.
    Router::new()
        .merge(tests::routes())
        .merge(check::routes())
        .merge(analyze::routes(upload_limit))
        .merge(auth::routes())
        .merge(domains::routes())
        .merge(reports::routes(report_upload_limit))
        .route("/static/netjes.css", get(css))
        .route("/static/netjes.js", get(js))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(app.clone(), frame))
        .with_state(app)
}

/// For a load balancer: 200 while the store answers, 503 while it does
/// not (PostgreSQL away), so that requests go where they can be served.
/// /healthz says only that the process runs.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.ping() {
        Ok(()) => "ok".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")).into_response(),
    }
}

/// How long a connection may last in all (a slow upload included).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// At shutdown, connections get this long to finish their requests.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Serves the web UI until `shutdown` turns true. Its own accept loop,
/// because a stranger must not take the server: a request's header must
/// arrive within `http_header_seconds` (before, 400 half-sent requests
/// stayed open for good), connections are capped in all and per client
/// address (1,040 of them made the UI and the inbox unreachable), and at
/// shutdown connections get a deadline, after which they are dropped.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let router = router(app.clone());
    let slots = netjes_net::Slots::new(app.http_limits.clone());
    let (closing, close) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
        };
        // Finished connections leave the set as they go.
        while conns.try_join_next().is_some() {}
        let Some(slot) = slots.hold(Some(peer.ip())) else {
            app.metrics.inc("netjes_http_refused_total", &[]);
            continue;
        };
        conns.spawn(connection(stream, peer, router.clone(), app.http_header_timeout, close.clone(), slot));
    }
    let _ = closing.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    Ok(())
}

/// One HTTP/1 connection, with the client's address for the handlers.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut close: tokio::sync::watch::Receiver<bool>,
    slot: netjes_net::Slot,
) {
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut r = router.clone();
        tower_service::Service::call(&mut r, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = &mut lifetime => {}
        // Only ever set to true: any change is the shutdown.
        _ = close.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_DEADLINE, conn).await;
        }
    }
    drop(slot);
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        pages::style(),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        pages::SCRIPT,
    )
        .into_response()
}

fn public_or_user(app: &App, who: &Who) -> Result<(), AppError> {
    if app.public_tests || who.user.is_some() {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}
