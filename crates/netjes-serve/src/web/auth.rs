//! Logging in and out.

use super::*;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
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
    // The account's failures as every instance counted them.
    let shared = app.store.login_failures(&f.user)?;
    let attempt = app.login.admit_shared(who.client, &f.user, now, shared).map_err(|r| {
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
    if matches!(&checked, Ok(Ok(_))) {
        app.store.record_login(&f.user, ok, crate::store::now(), app.login.forget_after())?;
    }
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


#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(safe_next("/domains/x"), "/domains/x");
        assert_eq!(safe_next("//evil.example/"), "/domains");
        assert_eq!(safe_next("https://evil.example/"), "/domains");
        assert_eq!(safe_next("/\\evil.example"), "/domains");
    }
}
