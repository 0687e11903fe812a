//! Message analysis: the paste-or-upload form, its report, and the API.

use super::*;

pub(super) fn routes(upload_limit: usize) -> Router<Arc<App>> {
    Router::new()
        .route(
            "/analyze",
            get(analyze_form)
                .post(analyze_page)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/analyze",
            post(api_analyze).layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
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


#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn pasted_mail_gets_crlf() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
