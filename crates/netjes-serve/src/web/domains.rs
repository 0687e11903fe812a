//! Signing domains: the list, one domain with its keys, activation, the
//! DNS check, rotation, deletion, and the API.

use super::*;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/domains", get(domains_page).post(add_domain_form))
        .route("/domains/{domain}", get(domain_page))
        .route("/domains/{domain}/active", post(set_active))
        .route("/domains/{domain}/check", post(check_dns))
        .route("/domains/{domain}/rotate", post(rotate))
        .route("/domains/{domain}/delete", post(delete_domain))
        .route("/keys/{id}/switch", post(switch_key))
        .route("/keys/{id}/delete", post(delete_key))
        .route("/api/domains", get(api_domains).post(api_add_domain))
        .route("/api/domains/{domain}", get(api_domain))
        .route("/api/domains/{domain}/route", get(api_route).put(api_set_route))
        .route("/api/domains/{domain}/route/test", post(api_test_route))
        .route("/api/domains/{domain}/logins", get(api_logins).put(api_set_logins))
        .route("/domains/{domain}/logins", post(set_logins_form))
        .route("/domains/{domain}/route", post(set_route_form))
        .route("/domains/{domain}/suppressions", get(suppressions_page))
        .route("/domains/{domain}/reputation", get(reputation_page))
        .route("/api/domains/{domain}/reputation", get(api_reputation))
        .route("/domains/{domain}/suppressions.csv", get(suppressions_csv))
        .route("/domains/{domain}/suppressions/remove", post(unsuppress_form))
        .route("/api/domains/{domain}/suppressions", get(api_suppressions).post(api_suppress))
        .route("/api/domains/{domain}/webhook", get(api_webhook).put(api_set_webhook).delete(api_delete_webhook))
        .route("/api/domains/{domain}/suppressions/{address}", axum::routing::delete(api_unsuppress))
        .route("/domains/{domain}/route/test", post(test_route_form))
}


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
    let route = app.store.route(&d.domain)?;
    Ok(Html(pages::domain_with_route(&who.viewer(), &d, &[], None, route.as_ref(), None)))
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
    Ok(Html(pages::domain_with_route(&who.viewer(), &d, &checks, None, app.store.route(&d.domain)?.as_ref(), None)))
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
                Html(pages::domain_with_route(&who.viewer(), &d, &[], Some(&m), app.store.route(&d.domain)?.as_ref(), None)),
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
                Html(pages::domain_with_route(&who.viewer(), &d, &[], Some(&m), app.store.route(&d.domain)?.as_ref(), None)),
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
            Html(pages::domain_with_route(&who.viewer(), &d, &checks, Some(&m), app.store.route(&d.domain)?.as_ref(), None)),
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


/// `GET /api/domains/{domain}/route`: how the domain's mail leaves; the
/// password is never shown, only whether there is one.
async fn api_route(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>) -> ApiResult<crate::routes::Route> {
    who.require_user()?;
    Ok(Json(app.store.route(&domain.to_ascii_lowercase())?.ok_or(AppError::NotFound)?))
}

/// `PUT /api/domains/{domain}/route` with `{"kind": "direct"}` or `{"kind":
/// "relay", "host", "port", "tls", "user", "password"}`. Postfix sees the
/// change on the next message (netjes routes answers from the store).
async fn api_set_route(
    State(app): State<Arc<App>>,
    who: Who,
    headers: HeaderMap,
    Path(domain): Path<String>,
    Json(input): Json<crate::routes::RouteInput>,
) -> ApiResult<crate::routes::Route> {
    who.require_user()?;
    who.check_api(&headers)?;
    Ok(Json(app.store.set_route(&domain.to_ascii_lowercase(), &input)?))
}

/// The connection test of a domain's relay: connect, TLS, EHLO and AUTH,
/// no mail. A relay on an address that is not public is refused unless
/// allow_private_targets is on (serve never probes the LAN for a user).
async fn probe_route(app: &App, domain: &str) -> Result<Vec<netjes_check::relay::ProbeStep>, AppError> {
    let route = app.store.route(domain)?.ok_or(AppError::NotFound)?;
    if route.kind != "relay" {
        return Err(AppError::BadRequest("the route is direct: there is no relay to test".into()));
    }
    let (host, port) = (route.host.clone().unwrap_or_default(), route.port.unwrap_or(25));
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| AppError::BadRequest(format!("{host}: {e}")))?.collect();
    if !app.tools.allow_private_targets && addrs.iter().any(|a| !netjes_net::is_public(a.ip())) {
        return Err(AppError::BadRequest(format!("{host} is not a public address (allow_private_targets is off)")));
    }
    let auth = app.store.relay_login(domain)?.map(|(user, password)| netjes_check::relay::Credentials { user, password });
    let relay = netjes_check::relay::Relay {
        addr: format!("{host}:{port}"),
        tls: route.tls.unwrap_or(netjes_check::relay::RelayTls::None),
        ca_file: None,
        helo: app.tools.authserv_id.clone(),
        timeout: std::time::Duration::from_secs(15),
        auth,
    };
    Ok(netjes_check::relay::probe(&relay).await)
}

/// `POST /api/domains/{domain}/route/test`: the steps of the test.
async fn api_test_route(State(app): State<Arc<App>>, who: Who, headers: HeaderMap, Path(domain): Path<String>) -> ApiResult<Vec<netjes_check::relay::ProbeStep>> {
    who.require_user()?;
    who.check_api(&headers)?;
    Ok(Json(probe_route(&app, &domain.to_ascii_lowercase()).await?))
}

#[derive(Debug, Deserialize)]
struct RouteForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

async fn set_route_form(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Form(f): Form<RouteForm>) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let input = match f.kind.as_str() {
        "direct" => crate::routes::RouteInput::Direct,
        _ => crate::routes::RouteInput::Relay { host: f.host.clone(), port: f.port.trim().parse().unwrap_or(0), tls: f.tls.clone(), user: some(&f.user), password: Some(f.password.clone()).filter(|p| !p.is_empty()) },
    };
    let (route, message) = match app.store.set_route(&d.domain, &input) {
        Ok(r) => {
            tracing::info!(domain = %d.domain, kind = %r.kind, user = ?who.user, "route set");
            (Some(r), "Route saved. Postfix uses it from the next message on.".to_string())
        }
        Err(crate::store::StoreError::Invalid(m)) => (app.store.route(&d.domain)?, format!("Not saved: {m}")),
        Err(e) => return Err(e.into()),
    };
    Ok(Html(pages::domain_with_route(&who.viewer(), &d, &[], Some(&message), route.as_ref(), None)).into_response())
}

async fn test_route_form(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Form(f): Form<ActiveFormCsrf>) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let route = app.store.route(&d.domain)?;
    let (steps, message) = match probe_route(&app, &d.domain).await {
        Ok(steps) => (Some(steps), None),
        Err(AppError::BadRequest(m)) => (None, Some(m)),
        Err(e) => return Err(e),
    };
    Ok(Html(pages::domain_with_route(&who.viewer(), &d, &[], message.as_deref(), route.as_ref(), steps.as_deref())).into_response())
}

#[derive(Debug, Deserialize)]
struct ActiveFormCsrf {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Logins {
    logins: Vec<String>,
}

/// `GET /api/domains/{domain}/logins`: the applications (SASL logins)
/// that may send for the domain.
async fn api_logins(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    let d = app.store.domain(&domain.to_ascii_lowercase())?.ok_or(AppError::NotFound)?;
    Ok(Json(serde_json::json!({ "logins": app.store.logins(&d.domain)? })))
}

/// `PUT /api/domains/{domain}/logins` with `{"logins": [...]}`: replaces
/// the list; the policy service refuses these logins any other domain.
async fn api_set_logins(State(app): State<Arc<App>>, who: Who, headers: HeaderMap, Path(domain): Path<String>, Json(l): Json<Logins>) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    who.check_api(&headers)?;
    let logins = app.store.set_logins(&domain.to_ascii_lowercase(), &l.logins)?;
    Ok(Json(serde_json::json!({ "logins": logins })))
}

#[derive(Debug, Deserialize)]
struct LoginsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    logins: String,
}

async fn set_logins_form(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Form(f): Form<LoginsForm>) -> Result<Response, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let list: Vec<String> = f.logins.split([',', ' ', '\n']).map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    let message = match app.store.set_logins(&d.domain, &list) {
        Ok(l) => format!("Applications that may send: {}.", if l.is_empty() { "none named (any login)".to_string() } else { l.join(", ") }),
        Err(crate::store::StoreError::Invalid(m)) => format!("Not saved: {m}"),
        Err(e) => return Err(e.into()),
    };
    Ok(Html(pages::domain_with_route(&who.viewer(), &d, &[], Some(&message), app.store.route(&d.domain)?.as_ref(), None)).into_response())
}

#[derive(Debug, Deserialize, Default)]
struct Search {
    #[serde(default)]
    q: String,
}

/// The suppression list of a domain, searched.
async fn suppressions_page(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Query(q): Query<Search>) -> Result<Html<String>, AppError> {
    who.require_user()?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let rows = app.store.suppressions(&d.domain, &q.q)?;
    Ok(Html(pages::suppressions(&who.viewer(), &d.domain, &q.q, &rows, None)))
}

/// The list as CSV, for a spreadsheet or another system.
async fn suppressions_csv(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Query(q): Query<Search>) -> Result<Response, AppError> {
    who.require_user()?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let csv = crate::suppress_store::to_csv(&app.store.suppressions(&d.domain, &q.q)?);
    let disposition = format!("attachment; filename=\"{}-suppressions.csv\"", d.domain);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], csv).into_response())
}

#[derive(Debug, Deserialize)]
struct UnsuppressForm {
    #[serde(default)]
    csrf: String,
    address: String,
}

async fn unsuppress_form(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Form(f): Form<UnsuppressForm>) -> Result<Html<String>, AppError> {
    who.require_user()?;
    who.check_form(&f.csrf)?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let removed = app.store.unsuppress(&d.domain, &f.address)?;
    tracing::info!(domain = %d.domain, address = %f.address, removed, user = ?who.user, "suppression removed");
    let message = if removed { format!("{} removed: {} sends to it again.", f.address, d.domain) } else { format!("{} was not on the list.", f.address) };
    let rows = app.store.suppressions(&d.domain, "")?;
    Ok(Html(pages::suppressions(&who.viewer(), &d.domain, "", &rows, Some(&message))))
}

async fn api_suppressions(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Query(q): Query<Search>) -> ApiResult<Vec<crate::suppress_store::Suppression>> {
    who.require_user()?;
    let d = app.store.domain(&domain.to_ascii_lowercase())?.ok_or(AppError::NotFound)?;
    Ok(Json(app.store.suppressions(&d.domain, &q.q)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSuppression {
    address: String,
    #[serde(default)]
    reason: String,
}

/// `POST /api/domains/{domain}/suppressions`: a manual entry (an address
/// the customer was asked to stop mailing).
async fn api_suppress(State(app): State<Arc<App>>, who: Who, headers: HeaderMap, Path(domain): Path<String>, Json(n): Json<NewSuppression>) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    who.require_user()?;
    who.check_api(&headers)?;
    let d = app.store.domain(&domain.to_ascii_lowercase())?.ok_or(AppError::NotFound)?;
    let added = app.store.suppress(&d.domain, &n.address, "manual", &n.reason)?;
    Ok((if added { StatusCode::CREATED } else { StatusCode::OK }, Json(serde_json::json!({ "added": added }))))
}

async fn api_unsuppress(State(app): State<Arc<App>>, who: Who, headers: HeaderMap, Path((domain, address)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    who.require_user()?;
    who.check_api(&headers)?;
    if app.store.unsuppress(&domain.to_ascii_lowercase(), &address)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound.into())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
}

/// `PUT /api/domains/{domain}/webhook` with `{"url": ...}`: the delivery
/// events of the domain are posted there, signed with the secret this
/// answer gives, once.
async fn api_set_webhook(State(app): State<Arc<App>>, who: Who, headers: HeaderMap, Path(domain): Path<String>, Json(n): Json<NewWebhook>) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    who.check_api(&headers)?;
    let domain = domain.to_ascii_lowercase();
    let secret = app.store.set_webhook(&domain, &n.url)?;
    Ok(Json(serde_json::json!({ "url": n.url, "secret": secret, "signature": "X-Netjes-Signature: sha256=HEX(HMAC-SHA256(secret, X-Netjes-Timestamp + \".\" + body))" })))
}

async fn api_webhook(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    let url = app.store.webhook_url(&domain.to_ascii_lowercase())?.ok_or(AppError::NotFound)?;
    Ok(Json(serde_json::json!({ "url": url })))
}

async fn api_delete_webhook(State(app): State<Arc<App>>, who: Who, headers: HeaderMap, Path(domain): Path<String>) -> Result<StatusCode, ApiError> {
    who.require_user()?;
    who.check_api(&headers)?;
    if app.store.delete_webhook(&domain.to_ascii_lowercase())? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound.into())
    }
}

/// The last week of a domain's traffic, with the warnings.
async fn reputation_page(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>) -> Result<Html<String>, AppError> {
    who.require_user()?;
    let d = app.store.domain(&domain)?.ok_or(AppError::NotFound)?;
    let r = app.store.reputation(&d.domain, 7)?;
    Ok(Html(pages::reputation(&who.viewer(), &d.domain, &r)))
}

async fn api_reputation(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>) -> ApiResult<crate::reputation::Reputation> {
    who.require_user()?;
    let d = app.store.domain(&domain.to_ascii_lowercase())?.ok_or(AppError::NotFound)?;
    Ok(Json(app.store.reputation(&d.domain, 7)?))
}
