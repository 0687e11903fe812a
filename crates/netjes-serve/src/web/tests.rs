//! Tests of the inbox: the home page, a new test, its page, and the API.

use super::*;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(home))
        .route("/tests", post(new_test))
        .route("/tests/{id}", get(test_page))
        .route("/api/tests", post(api_new_test))
        .route("/api/tests/{id}", get(api_test))
}

async fn home(State(app): State<Arc<App>>, who: Who) -> Result<Html<String>, AppError> {
    public_or_user(&app, &who)?;
    Ok(Html(pages::home(&who.viewer(), &app.test_domain)))
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


#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn test_ids_are_plain_local_parts() {
        let id = test_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
