//! Server-rendered pages: the page response (with its own strict CSP), the page error every page handler answers
//! with, and the embedded static assets. Texts and languages are [`crate::i18n`]'s.

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use super::AppState;

#[derive(RustEmbed)]
#[folder = "assets/"]
#[include = "css/*"]
#[include = "img/*"]
struct Assets;

pub use crate::i18n::{LANG_COOKIE, Lang, Texts};

/// Reads one cookie from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    axum_extra::extract::CookieJar::from_headers(headers).get(name).map(|c| c.value().to_string())
}

/// A typed value as a form shows it again after a refusal: as typed when it could be valid in any field (at most
/// 256 characters), empty otherwise — a page never reflects unbounded input.
pub fn redisplay(value: &str) -> String {
    if value.chars().count() <= 256 { value.to_string() } else { String::new() }
}

/// Pages embed no scripts and load everything from the platform itself.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                            frame-ancestors 'none'; base-uri 'none'";

/// Renders a template into an HTML response with the page security policy.
pub fn render(template: &impl Template) -> Response {
    render_status(StatusCode::OK, template)
}

pub fn render_status(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
            // Not `no-referrer`: with it browsers send `Origin: null` on form posts, and the same-origin check of
            // forms needs the real origin. `same-origin` still sends nothing to other sites.
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
            response
        }
        Err(error) => {
            tracing::error!(%error, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page could not be rendered").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: Texts,
    title: &'a str,
    message: &'a str,
    request_id: String,
}

/// What a page handler answers when it does not show its page: an error page with a fixed message (in the
/// request's language) and the request id to quote, or the way to the sign-in page. Every domain error converts into
/// it (`From`), so handlers return `Result<impl IntoResponse, PageError>` and use `?`.
#[derive(Debug)]
pub enum PageError {
    /// An error page: the status and the text key of its message.
    Shown { status: StatusCode, message_key: &'static str },
    /// Not signed in, or the session ended: the sign-in page.
    SignIn,
    /// Somewhere else to go instead (a page that does not apply to this visitor).
    Redirect(&'static str),
}

impl PageError {
    pub fn new(status: StatusCode, message_key: &'static str) -> PageError {
        PageError::Shown { status, message_key }
    }

    /// An internal failure: the cause is logged under the request id; the person sees only that id.
    pub fn internal(cause: &dyn std::fmt::Display) -> PageError {
        tracing::error!(error = %cause, "page failed");
        PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "error.internal")
    }

    pub fn forbidden() -> PageError {
        PageError::new(StatusCode::FORBIDDEN, "error.forbidden")
    }

    pub fn not_found() -> PageError {
        PageError::new(StatusCode::NOT_FOUND, "error.not_found")
    }

    /// The status the page answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::Shown { status, .. } => *status,
            PageError::SignIn | PageError::Redirect(_) => StatusCode::SEE_OTHER,
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(error: crate::store::StoreError) -> PageError {
        PageError::internal(&error)
    }
}

impl From<rusqlite::Error> for PageError {
    fn from(error: rusqlite::Error) -> PageError {
        PageError::internal(&error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message_key) = match self {
            PageError::Shown { status, message_key } => (status, message_key),
            PageError::SignIn => return axum::response::Redirect::to("/login").into_response(),
            PageError::Redirect(to) => return axum::response::Redirect::to(to).into_response(),
        };
        let t = Texts::current();
        let title_key = match status.as_u16() {
            400 | 405 => "error.title_400",
            403 => "error.title_403",
            404 => "error.title_404",
            409 => "error.title_409",
            410 => "error.title_410",
            413 => "error.title_413",
            415 => "error.title_415",
            422 => "error.title_422",
            429 => "error.title_429",
            _ => "error.title_500",
        };
        let page = ErrorPage {
            t,
            title: t.get(title_key),
            message: t.get(message_key),
            request_id: super::request_id::current().unwrap_or_default(),
        };
        render_status(status, &page)
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{*path}", get(asset)).route("/lang/{code}", get(set_language))
}

/// Public: embedded static files, with ETags from their hashes.
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Assets::get(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = file.metadata.mimetype().to_string();
    let mut response = file.data.into_owned().into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// Public: remembers the chosen language in a cookie and returns to the page the visitor came from.
async fn set_language(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    // Only a same-site path is followed back; anything else goes home (no open redirect).
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".to_string());
    // Lax, not Strict: the choice should hold when the visitor comes back from another site's link.
    let cookie = axum_extra::extract::cookie::Cookie::build((LANG_COOKIE, lang.code()))
        .path("/")
        .max_age(time::Duration::days(365))
        .secure(true)
        .same_site(axum_extra::extract::cookie::SameSite::Lax);
    (axum_extra::extract::CookieJar::new().add(cookie), axum::response::Redirect::to(&back)).into_response()
}
