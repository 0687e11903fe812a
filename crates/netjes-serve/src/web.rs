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
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => AppError::BadRequest(m),
            StoreError::Exists(m) => AppError::BadRequest(format!("{m} already exists")),
            StoreError::NotFound(_) => AppError::NotFound,
            e => AppError::Internal(e.to_string()),
        }
    }
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            AppError::Unauthorized => "log in first, or give an API token".into(),
            AppError::Forbidden(m) => (*m).into(),
            AppError::NotFound => "not found".into(),
            AppError::BadRequest(m) => m.clone(),
            AppError::TooManyRequests => {
                "too many failed logins from your address; wait 15 minutes".into()
            }
            // The detail goes to the log, not to the client.
            AppError::Internal(_) => "internal error; see the server's log".into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
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
        if let AppError::Internal(e) = &self.0 {
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
    Router::new()
        .route("/", get(home))
        .route("/tests", post(new_test))
        .route("/tests/{id}", get(test_page))
        .route("/check", get(check_page))
        .route(
            "/analyze",
            get(analyze_form)
                .post(analyze_page)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/domains", get(domains_page).post(add_domain_form))
        .route("/domains/{domain}", get(domain_page))
        .route("/domains/{domain}/active", post(set_active))
        .route("/domains/{domain}/check", post(check_dns))
        .route("/domains/{domain}/rotate", post(rotate))
        .route("/domains/{domain}/delete", post(delete_domain))
        .route("/keys/{id}/switch", post(switch_key))
        .route("/keys/{id}/delete", post(delete_key))
        .route("/static/netjes.css", get(css))
        .route("/static/netjes.js", get(js))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/tests", post(api_new_test))
        .route("/api/tests/{id}", get(api_test))
        .route("/api/check", post(api_check))
        .route(
            "/api/analyze",
            post(api_analyze).layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/domains", get(api_domains).post(api_add_domain))
        .route("/api/domains/{domain}", get(api_domain))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(app.clone(), frame))
        .with_state(app)
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

async fn home(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    public_or_user(&app, &who)?;
    Ok(Html(pages::home(&who.viewer(), &app.test_domain)))
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A test id: 16 letters and digits, about 82 bits: unguessable, and a
/// plain local part that every mail system accepts.
fn test_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    crate::crypto::random_bytes::<16>()
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A new test; visitors get at most `tests_per_client_per_hour`.
fn create_test(app: &App, who: &Who) -> Result<crate::store::TestRow, AppError> {
    if who.user.is_none() && !app.new_tests.allow(who.client, crate::store::now()) {
        return Err(AppError::TooManyRequests);
    }
    let id = test_id();
    let address = format!("{id}@{}", app.test_domain);
    Ok(app.store.create_test(&id, &address, app.test_expiry)?)
}

async fn new_test(
    State(app): State<Arc<App>>,
    who: Who,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    public_or_user(&app, &who)?;
    who.check_form(&f.csrf)?;
    let t = create_test(&app, &who)?;
    Ok(Redirect::to(&format!("/tests/{}", t.id)).into_response())
}

async fn test_page(
    State(app): State<Arc<App>>,
    who: Who,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let t = app.store.test(&id)?.ok_or(AppError::NotFound)?;
    // The inbox on loopback: show the command that reaches it from here.
    let local = app.smtp.ip().is_loopback().then(|| app.smtp.to_string());
    Ok(Html(pages::test_page(&who.viewer(), &t, local.as_deref())))
}

#[derive(Debug, Deserialize)]
struct CheckQuery {
    #[serde(default)]
    domain: String,
    /// Selectors, separated by spaces or commas.
    #[serde(default)]
    selectors: String,
    /// Sending addresses, separated by spaces or commas.
    #[serde(default)]
    ips: String,
    #[serde(default)]
    smtp: Option<String>,
}

impl CheckQuery {
    fn request(&self) -> Result<crate::analysis::CheckRequest, AppError> {
        let words = |s: &str| -> Vec<String> {
            s.split([' ', ',', '\n', '\t'])
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect()
        };
        let ips = words(&self.ips)
            .into_iter()
            .map(|w| {
                w.parse()
                    .map_err(|_| AppError::BadRequest(format!("{w:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::analysis::CheckRequest {
            domain: self.domain.clone(),
            selectors: words(&self.selectors),
            ips,
            smtp: self.smtp.is_some(),
        })
    }
}

async fn check_page(
    State(app): State<Arc<App>>,
    who: Who,
    Query(q): Query<CheckQuery>,
) -> Result<Html<String>, AppError> {
    public_or_user(&app, &who)?;
    let v = who.viewer();
    let fields = pages::CheckFields {
        domain: q.domain.clone(),
        selectors: q.selectors.clone(),
        ips: q.ips.clone(),
        smtp: q.smtp.is_some(),
    };
    if q.domain.trim().is_empty() {
        return Ok(Html(pages::check_page(&v, &fields)));
    }
    let report = app
        .tools
        .check_with(&q.request()?)
        .await
        .map_err(AppError::BadRequest)?;
    Ok(Html(pages::check_report(&v, &fields, &report)))
}

async fn analyze_form(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    public_or_user(&app, &who)?;
    Ok(Html(pages::analyze_form(&who.viewer())))
}

async fn analyze_page(
    State(app): State<Arc<App>>,
    who: Who,
    mut form: Multipart,
) -> Result<Html<String>, AppError> {
    public_or_user(&app, &who)?;
    let (mut csrf, mut pasted, mut file) = (String::new(), Vec::new(), Vec::new());
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(e.to_string()))?
    {
        let name = field.name().unwrap_or("").to_string();
        let data = field
            .bytes()
            .await
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&data).into_owned(),
            "message" => pasted = data.to_vec(),
            "file" => file = data.to_vec(),
            _ => {}
        }
    }
    who.check_form(&csrf)?;
    let raw = if file.is_empty() { pasted } else { file };
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(AppError::BadRequest(
            "paste a message or choose a file".into(),
        ));
    }
    // A pasted message has the browser's line ends; the analyzer wants CRLF.
    let raw = crlf(&raw);
    let (_, html) = app
        .tools
        .analyze(&raw, None)
        .await
        .map_err(AppError::BadRequest)?;
    Ok(Html(pages::analyze_report(&who.viewer(), &html)))
}

fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

async fn login_form(who: Who, Query(q): Query<LoginQuery>) -> Html<String> {
    Html(pages::login(&who.viewer(), &q.next, None))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    user: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Only a path on this site: no `//host` or `https://host` (an open redirect).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/domains"
    }
}

async fn login(
    State(app): State<Arc<App>>,
    who: Who,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    who.check_form(&f.csrf)?;
    let now = crate::store::now();
    // A hashing slot first, then the attempt is counted, both before the
    // hash: parallel guesses cannot outrun the count or the memory.
    let Ok(permit) = app.hashing.clone().try_acquire_owned() else {
        return Err(AppError::TooManyRequests);
    };
    let attempt = app.login.admit(who.client, &f.user, now).map_err(|r| {
        tracing::warn!(client = %who.client, user = %f.user, retry_after = r.retry_after(), "login refused: {r:?}");
        AppError::TooManyRequests
    })?;
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let store = app.store.clone();
    let (user, password) = (f.user.clone(), f.password.clone());
    let checked = tokio::task::spawn_blocking(move || {
        let r = store.check_login(&user, &password);
        drop(permit);
        r
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()));
    let ok = matches!(&checked, Ok(Ok(Some(_))));
    app.login.finish(attempt, ok, crate::store::now());
    let id = checked??;
    let Some(id) = id else {
        tracing::warn!(client = %who.client, user = %f.user, "failed login");
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(pages::login(
                &who.viewer(),
                &f.next,
                Some("Wrong user or password."),
            )),
        )
            .into_response());
    };
    let (token, _) = app.store.create_session(id)?;
    let mut res = Redirect::to(safe_next(&f.next)).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        app.cookie(SESSION_COOKIE, &token, crate::store::SESSION_SECONDS, "Lax"),
    );
    Ok(res)
}

async fn logout(
    State(app): State<Arc<App>>,
    who: Who,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    who.check_form(&f.csrf)?;
    if let Some(s) = &who.session {
        app.store.end_session(s)?;
    }
    let mut res = Redirect::to("/").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, app.cookie(SESSION_COOKIE, "", 0, "Lax"));
    Ok(res)
}

// ---- signing domains ----

#[derive(Debug, Deserialize)]
pub struct NewDomain {
    pub domain: String,
    pub selector: String,
    /// rsa (default), ed25519 or both.
    #[serde(default)]
    pub algorithm: String,
    /// A private key to import instead of generating one.
    #[serde(default)]
    pub pem: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub csrf: String,
}

fn algorithms(choice: &str) -> Result<Vec<KeyAlgorithm>, AppError> {
    match choice {
        "" | "rsa" => Ok(vec![KeyAlgorithm::Rsa]),
        "ed25519" => Ok(vec![KeyAlgorithm::Ed25519]),
        "both" => Ok(vec![KeyAlgorithm::Rsa, KeyAlgorithm::Ed25519]),
        other => Err(AppError::BadRequest(format!(
            "algorithm {other:?}: rsa, ed25519 or both"
        ))),
    }
}

/// Keys for `selector`: one per algorithm; with two, each selector says
/// its algorithm (`s1-rsa`, `s1-ed25519`).
async fn make_keys(
    selector: &str,
    algs: Vec<KeyAlgorithm>,
) -> Result<Vec<(String, PrivateKey)>, AppError> {
    let two = algs.len() > 1;
    let mut out = Vec::new();
    for a in algs {
        let sel = if two {
            format!("{selector}-{}", a.k_tag())
        } else {
            selector.to_string()
        };
        if !crate::store::valid_selector(&sel) {
            return Err(AppError::BadRequest(format!(
                "{sel:?} is not a selector: letters, digits and hyphens, at most 63"
            )));
        }
        let bits = if a == KeyAlgorithm::Rsa {
            netjes_auth::dkim::keys::RECOMMENDED_RSA_BITS
        } else {
            256
        };
        // RSA key generation takes up to a second of CPU.
        let key = tokio::task::spawn_blocking(move || PrivateKey::generate(a, bits))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Internal(e.to_string()))?;
        out.push((sel, key));
    }
    Ok(out)
}

async fn add_signing_domain(app: &App, n: &NewDomain) -> Result<Vec<KeyRow>, AppError> {
    let domain = n.domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let selector = n.selector.trim().to_ascii_lowercase();
    if !crate::store::valid_domain(&domain) {
        return Err(AppError::BadRequest(format!(
            "{:?} is not a domain name",
            n.domain
        )));
    }
    if !crate::store::valid_selector(&selector) {
        return Err(AppError::BadRequest(format!(
            "{:?} is not a selector: letters, digits and hyphens, at most 63",
            n.selector
        )));
    }
    if app.store.domain(&domain)?.is_some() {
        return Err(AppError::BadRequest(format!(
            "{domain} is a signing domain already; rotate its key on its page"
        )));
    }
    let keys = if n.pem.trim().is_empty() {
        make_keys(&selector, algorithms(&n.algorithm)?).await?
    } else {
        let password = (!n.password.is_empty()).then_some(n.password.as_bytes());
        let key = PrivateKey::from_pem(&n.pem, password)
            .map_err(|e| AppError::BadRequest(format!("the private key: {e}")))?;
        vec![(selector, key)]
    };
    app.store.add_domain(&domain)?;
    let mut rows = Vec::new();
    for (sel, key) in &keys {
        rows.push(app.store.add_key(&domain, sel, key)?);
    }
    if n.active {
        app.store.set_active(&domain, true)?;
    }
    tracing::info!(domain = %domain, keys = rows.len(), "signing domain added");
    Ok(rows)
}

/// testkey for each key, all at once.
async fn test_keys(app: &App, keys: &[KeyRow]) -> Vec<(i64, netjes_check::dkim::KeyTest)> {
    let futs = keys.iter().map(|k| async move {
        let key = app.store.private_key(k.id);
        let t = match key {
            Ok(key) => {
                netjes_check::dkim::testkey(&app.tools.fresh(), &k.dns_name(), &key).await
            }
            Err(e) => netjes_check::dkim::KeyTest {
                status: netjes_check::dkim::KeyStatus::Malformed,
                message: e.to_string(),
                warnings: vec![],
            },
        };
        (k.id, t)
    });
    netjes_dns::join_all(futs).await
}

async fn domains_page(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    who.require_user()?;
    Ok(Html(render_domains(&app, &who, None).await?))
}

async fn render_domains(app: &App, who: &Who, error: Option<&str>) -> Result<String, AppError> {
    let mut list = Vec::new();
    for d in app.store.domains()? {
        let mut warnings = Vec::new();
        if d.active {
            let active: Vec<KeyRow> = d
                .keys
                .iter()
                .filter(|k| k.state == "active")
                .cloned()
                .collect();
            for (_, t) in test_keys(app, &active).await {
                if t.status != netjes_check::dkim::KeyStatus::Ok {
                    warnings.push(format!("active, but: {}", t.message));
                }
            }
        }
        list.push((d, warnings));
    }
    Ok(pages::domains(&who.viewer(), &list, error))
}

async fn add_domain_form(
    State(app): State<Arc<App>>,
    who: Who,
    Form(n): Form<NewDomain>,
) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&n.csrf)?;
    match add_signing_domain(&app, &n).await {
        Ok(rows) => Ok(Redirect::to(&format!("/domains/{}", rows[0].domain)).into_response()),
        Err(AppError::BadRequest(m)) => Ok((
            StatusCode::BAD_REQUEST,
            Html(render_domains(&app, &who, Some(&m)).await?),
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

async fn domain_page(
    State(app): State<Arc<App>>,
    who: Who,
    Path(domain): Path<String>,
) -> Result<Html<String>, AppError> {
    who.require_user()?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    Ok(Html(pages::domain(&who.viewer(), &d, &[], None)))
}

#[derive(Debug, Deserialize)]
struct ActiveForm {
    #[serde(default)]
    csrf: String,
    active: bool,
}

async fn set_active(
    State(app): State<Arc<App>>,
    who: Who,
    Path(domain): Path<String>,
    Form(f): Form<ActiveForm>,
) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    app.store.set_active(&domain, f.active)?;
    tracing::info!(domain = %domain, active = f.active, user = ?who.user, "signing domain switched");
    Ok(Redirect::to(&format!("/domains/{domain}")).into_response())
}

async fn check_dns(
    State(app): State<Arc<App>>,
    who: Who,
    Path(domain): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Html<String>, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let checks = test_keys(&app, &d.keys).await;
    Ok(Html(pages::domain(&who.viewer(), &d, &checks, None)))
}

#[derive(Debug, Deserialize)]
struct RotateForm {
    #[serde(default)]
    csrf: String,
    selector: String,
}

async fn rotate(
    State(app): State<Arc<App>>,
    who: Who,
    Path(domain): Path<String>,
    Form(f): Form<RotateForm>,
) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let mut algs: Vec<KeyAlgorithm> = d
        .keys
        .iter()
        .filter(|k| k.state == "active")
        .map(|k| k.algorithm)
        .collect();
    algs.dedup();
    if algs.is_empty() {
        algs.push(KeyAlgorithm::Rsa);
    }
    let selector = f.selector.trim().to_ascii_lowercase();
    let keys = match make_keys(&selector, algs).await {
        Ok(k) => k,
        Err(AppError::BadRequest(m)) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                Html(pages::domain(&who.viewer(), &d, &[], Some(&m))),
            )
                .into_response())
        }
        Err(e) => return Err(e),
    };
    for (sel, key) in &keys {
        if let Err(e) = app.store.add_key(&domain, sel, key) {
            let m = AppError::from(e).message();
            return Ok((
                StatusCode::BAD_REQUEST,
                Html(pages::domain(&who.viewer(), &d, &[], Some(&m))),
            )
                .into_response());
        }
    }
    Ok(Redirect::to(&format!("/domains/{domain}")).into_response())
}

#[derive(Debug, Deserialize)]
struct SwitchForm {
    #[serde(default)]
    csrf: String,
    /// Switch even when DNS does not show the new key yet.
    #[serde(default)]
    force: bool,
}

async fn switch_key(
    State(app): State<Arc<App>>,
    who: Who,
    Path(id): Path<i64>,
    Form(f): Form<SwitchForm>,
) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let k = app.store.key(id)?.ok_or(AppError::NotFound)?;
    let checks = test_keys(&app, std::slice::from_ref(&k)).await;
    let published = checks
        .first()
        .is_some_and(|(_, t)| t.status == netjes_check::dkim::KeyStatus::Ok);
    if !published && !f.force {
        let d = app.store.domain(&k.domain)?.ok_or(AppError::NotFound)?;
        let m = format!("Not switched: receivers could not verify mail signed with {} yet. Publish its record first.", k.selector);
        return Ok((
            StatusCode::CONFLICT,
            Html(pages::domain(&who.viewer(), &d, &checks, Some(&m))),
        )
            .into_response());
    }
    app.store.switch_to(id)?;
    tracing::info!(domain = %k.domain, selector = %k.selector, "switched to a new key");
    Ok(Redirect::to(&format!("/domains/{}", k.domain)).into_response())
}

async fn delete_key(
    State(app): State<Arc<App>>,
    who: Who,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let k = app.store.key(id)?.ok_or(AppError::NotFound)?;
    app.store.delete_key(id)?;
    Ok(Redirect::to(&format!("/domains/{}", k.domain)).into_response())
}

async fn delete_domain(
    State(app): State<Arc<App>>,
    who: Who,
    Path(domain): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    app.store.delete_domain(&domain)?;
    tracing::info!(domain = %domain, user = ?who.user, "signing domain deleted");
    Ok(Redirect::to("/domains").into_response())
}

// ---- the JSON API ----

async fn api_new_test(
    State(app): State<Arc<App>>,
    who: Who,
    headers: HeaderMap,
) -> ApiResult<serde_json::Value> {
    public_or_user(&app, &who)?;
    who.check_api(&headers)?;
    let t = create_test(&app, &who)?;
    Ok(Json(
        serde_json::json!({ "id": t.id, "address": t.address, "expires": t.expires }),
    ))
}

async fn api_test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    let t = app.store.test(&id)?.ok_or(AppError::NotFound)?;
    // "analyzing" is still waiting, for a client.
    let status = if t.status == "analyzing" {
        "waiting"
    } else {
        t.status.as_str()
    };
    Ok(Json(
        serde_json::json!({ "id": t.id, "address": t.address, "status": status, "facts": t.facts, "report": t.report }),
    ))
}

async fn api_check(
    State(app): State<Arc<App>>,
    who: Who,
    headers: HeaderMap,
    Json(q): Json<crate::analysis::CheckRequest>,
) -> ApiResult<serde_json::Value> {
    public_or_user(&app, &who)?;
    who.check_api(&headers)?;
    Ok(Json(
        app.tools
            .check_with(&q)
            .await
            .map_err(AppError::BadRequest)?,
    ))
}

/// The message as the body (message/rfc822 or anything but JSON), or
/// `{"message": "..."}`.
async fn api_analyze(
    State(app): State<Arc<App>>,
    who: Who,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<serde_json::Value> {
    public_or_user(&app, &who)?;
    who.check_api(&headers)?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let raw = if json {
        #[derive(Deserialize)]
        struct Req {
            message: String,
        }
        let r: Req = serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("the JSON body: {e}")))?;
        crlf(r.message.as_bytes())
    } else {
        crlf(&body)
    };
    let (report, _) = app
        .tools
        .analyze(&raw, None)
        .await
        .map_err(AppError::BadRequest)?;
    Ok(Json(report))
}

async fn api_domains(
    State(app): State<Arc<App>>,
    who: Who,
) -> ApiResult<Vec<crate::store::DomainRow>> {
    who.require_user()?;
    Ok(Json(app.store.domains()?))
}

async fn api_domain(
    State(app): State<Arc<App>>,
    who: Who,
    Path(domain): Path<String>,
) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let records: Vec<serde_json::Value> = d.keys.iter().map(|k| serde_json::json!({"selector": k.selector, "state": k.state, "name": k.dns_name(), "type": "TXT", "value": k.dns_value()})).collect();
    Ok(Json(serde_json::json!({ "domain": d, "records": records })))
}

async fn api_add_domain(
    State(app): State<Arc<App>>,
    who: Who,
    headers: HeaderMap,
    Json(n): Json<NewDomain>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    who.require_user()?;
    who.check_api(&headers)?;
    let rows = add_signing_domain(&app, &n).await?;
    let records: Vec<serde_json::Value> = rows.iter().map(|k| serde_json::json!({"selector": k.selector, "name": k.dns_name(), "type": "TXT", "value": k.dns_value()})).collect();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "domain": rows[0].domain, "records": records })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_site_and_pasted_mail_gets_crlf() {
        assert_eq!(safe_next("/domains/x"), "/domains/x");
        assert_eq!(safe_next("//evil.example/"), "/domains");
        assert_eq!(safe_next("https://evil.example/"), "/domains");
        assert_eq!(safe_next("/\\evil.example"), "/domains");
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        let id = test_id();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
