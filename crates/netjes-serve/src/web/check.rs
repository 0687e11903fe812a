//! The domain check: the form and its report, and the API.

use super::*;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/check", get(check_page))
        .route("/api/check", post(api_check))
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

/// What the store's aggregate reports say of the domain, for a logged-in
/// user only: a visitor must not learn who sends for a domain.
async fn report_evidence(app: &App, who: &Who, domain: &str) -> Option<netjes_check::dmarc::ReportEvidence> {
    who.user.as_ref()?;
    let (d, _) = netjes_check::input::domain_of(domain).ok()?;
    match crate::report_view::evidence(&app.store, &app.tools.fresh(), &d, 30).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the reports for the domain check");
            None
        }
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
    let req = q.request()?;
    let evidence = report_evidence(&app, &who, &req.domain).await;
    let report = app
        .tools
        .check_with(&req, evidence)
        .await
        .map_err(AppError::BadRequest)?;
    Ok(Html(pages::check_report(&v, &fields, &report)))
}

async fn api_check(
    State(app): State<Arc<App>>,
    who: Who,
    headers: HeaderMap,
    Json(q): Json<crate::analysis::CheckRequest>,
) -> ApiResult<serde_json::Value> {
    public_or_user(&app, &who)?;
    who.check_api(&headers)?;
    let evidence = report_evidence(&app, &who, &q.domain).await;
    Ok(Json(
        app.tools
            .check_with(&q, evidence)
            .await
            .map_err(AppError::BadRequest)?,
    ))
}

