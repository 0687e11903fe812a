//! DMARC and TLS reports: the domains, one domain's sources and trend,
//! the held and rejected inputs, one report, the upload, and the API.
//! Every page needs a login: reports name the user's senders, and failure
//! reports carry other people's mail headers.

use super::*;
use crate::report_intake::Trust;
use crate::report_pages;

pub(super) fn routes(upload_limit: usize) -> Router<Arc<App>> {
    Router::new()
        .route("/reports", get(index))
        .route(
            "/reports/upload",
            post(upload).layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route("/reports/held", get(held))
        .route("/reports/rejected", get(rejected))
        .route("/reports/view/{id}", get(view))
        .route("/reports/{id}/release", post(release))
        .route("/reports/{domain}", get(domain_page))
        .route("/api/reports", get(api_index))
        .route("/api/reports/{domain}", get(api_domain))
}

/// The query of a domain's page: `since` (YYYY-MM-DD; 30 days back by
/// default) and `failures=1` for the failing sources only.
#[derive(Debug, Deserialize)]
struct Span {
    since: Option<String>,
    failures: Option<String>,
}

fn since_day(s: &Span) -> Result<i64, AppError> {
    let today = crate::store::now().div_euclid(86_400);
    match s.since.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(today - 30),
        Some(d) => {
            let mut it = d.split('-').map(|x| x.parse::<i64>().ok());
            let day = (|| netjes_reports::days_from_civil(it.next()??, it.next()??, it.next()??))();
            day.ok_or_else(|| AppError::BadRequest(format!("since {d:?} is not YYYY-MM-DD")))
        }
    }
}

fn domain_of(raw: &str) -> Result<String, AppError> {
    netjes_check::input::domain_of(raw)
        .map(|(d, _)| d)
        .map_err(AppError::BadRequest)
}

async fn render_index(app: &App, who: &Who, outcomes: Option<&[crate::report_intake::Outcome]>) -> Result<String, AppError> {
    let domains = app.store.report_domains()?;
    let alerts = app.store.alerts_since(crate::store::now() - 30 * 86_400)?;
    let extras = report_pages::IndexExtras {
        held: app.store.held_reports()?.len(),
        rejected: app.store.rejected_reports()?.len(),
        addresses: &app.reports.cfg.addresses,
        alerts: &alerts,
    };
    Ok(report_pages::index(&who.viewer(), &domains, &extras, outcomes))
}

async fn index(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    who.require_user()?;
    Ok(Html(render_index(&app, &who, None).await?))
}

async fn upload(State(app): State<Arc<App>>, who: Who, mut form: Multipart) -> Result<Html<String>, AppError> {
    let user = who.require_user()?.to_string();
    let (mut csrf, mut files) = (String::new(), Vec::new());
    while let Some(field) = form.next_field().await.map_err(|e| AppError::BadRequest(e.to_string()))? {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().unwrap_or("upload").to_string();
        let data = field.bytes().await.map_err(|e| AppError::BadRequest(e.to_string()))?;
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&data).into_owned(),
            "file" if !data.is_empty() => files.push((file_name, data)),
            _ => {}
        }
    }
    who.check_form(&csrf)?;
    if files.is_empty() {
        return Err(AppError::BadRequest("choose a report file".into()));
    }
    let mut outcomes = Vec::new();
    for (name, data) in files {
        let source = format!("upload by {user}: {name}");
        outcomes.extend(app.reports.take_file(&name, &data, Trust::User, &source).await?);
    }
    Ok(Html(render_index(&app, &who, Some(&outcomes)).await?))
}

async fn held(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    who.require_user()?;
    Ok(Html(report_pages::held(&who.viewer(), &app.store.held_reports()?)))
}

async fn rejected(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    who.require_user()?;
    Ok(Html(report_pages::rejected(&who.viewer(), &app.store.rejected_reports()?)))
}

async fn view(State(app): State<Arc<App>>, who: Who, Path(id): Path<i64>) -> Result<Html<String>, AppError> {
    who.require_user()?;
    let (row, parsed) = app.store.report(id)?.ok_or(AppError::NotFound)?;
    Ok(Html(report_pages::report(&who.viewer(), &row, &parsed)))
}

async fn release(State(app): State<Arc<App>>, who: Who, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Result<Response, AppError> {
    let user = who.require_user()?.to_string();
    who.check_form(&f.csrf)?;
    if !app.store.release_report(id)? {
        return Err(AppError::NotFound);
    }
    tracing::info!(report = id, user = %user, "held report taken in");
    Ok(Redirect::to("/reports/held").into_response())
}

async fn domain_page(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Query(span): Query<Span>) -> Result<Html<String>, AppError> {
    who.require_user()?;
    let domain = domain_of(&domain)?;
    let since = since_day(&span)?;
    let view = crate::report_view::domain_view(&app.store, &app.tools.fresh(), &domain, since).await?;
    let tls = crate::report_view::tls_summary(&app.store, &domain)?;
    let reports = app.store.reports_for(&domain)?;
    let failures_only = span.failures.as_deref() == Some("1");
    Ok(Html(report_pages::domain(&who.viewer(), &view, &tls, &reports, since, failures_only)))
}

async fn api_index(State(app): State<Arc<App>>, who: Who) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    let domains: Vec<serde_json::Value> = app
        .store
        .report_domains()?
        .into_iter()
        .map(|(d, n, newest)| serde_json::json!({ "domain": d, "reports": n, "newest": newest }))
        .collect();
    Ok(Json(serde_json::json!({
        "domains": domains,
        "held": app.store.held_reports()?,
        "rejected": app.store.rejected_reports()?,
    })))
}

/// The JSON of `netjes report show --json`, with the TLS summary.
async fn api_domain(State(app): State<Arc<App>>, who: Who, Path(domain): Path<String>, Query(span): Query<Span>) -> ApiResult<serde_json::Value> {
    who.require_user()?;
    let domain = domain_of(&domain)?;
    let view = crate::report_view::domain_view(&app.store, &app.tools.fresh(), &domain, since_day(&span)?).await?;
    let mut v = serde_json::to_value(&view).map_err(|e| AppError::Internal(e.to_string()))?;
    v["tls"] = serde_json::to_value(crate::report_view::tls_summary(&app.store, &domain)?).unwrap_or_default();
    Ok(Json(v))
}
