//! Server-rendered pages: languages and their texts, the page response (with its own strict CSP), HTML error
//! pages, and the embedded static assets.
//!
//! Texts live in `assets/i18n/<lang>.toml`, one file per language, English first; a key missing in a language falls
//! back to English, and a unit test keeps the files complete.

use std::collections::HashMap;
use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
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

/// Languages the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
    Kk,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ru, Lang::Kk];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
            Lang::Kk => "kk",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.get(..2)?.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            "kk" | "kz" => Some(Lang::Kk),
            _ => None,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../../assets/i18n/en.toml"),
            Lang::Ru => include_str!("../../assets/i18n/ru.toml"),
            Lang::Kk => include_str!("../../assets/i18n/kk.toml"),
        }
    }

    /// The language of a request: the `kopir_lang` cookie, else the first known language in Accept-Language.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(|code| Lang::parse(&code)) {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(|part| Lang::parse(part.trim())))
            .unwrap_or(Lang::En)
    }
}

pub const LANG_COOKIE: &str = "kopir_lang";

/// Reads one cookie from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

type Catalogue = HashMap<String, String>;

fn flatten(prefix: &str, table: &toml::Table, out: &mut Catalogue) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            toml::Value::String(s) => {
                out.insert(path, s.clone());
            }
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

fn catalogue(lang: Lang) -> &'static Catalogue {
    static CATALOGUES: OnceLock<[Catalogue; 3]> = OnceLock::new();
    let all = CATALOGUES.get_or_init(|| {
        Lang::ALL.map(|l| {
            let mut out = Catalogue::new();
            if let Ok(table) = toml::from_str::<toml::Table>(l.source()) {
                flatten("", &table, &mut out);
            }
            out
        })
    });
    match lang {
        Lang::En => &all[0],
        Lang::Ru => &all[1],
        Lang::Kk => &all[2],
    }
}

/// The texts of one language, handed to every template as `t`.
#[derive(Debug, Clone, Copy)]
pub struct Texts {
    pub lang: Lang,
}

impl Texts {
    pub fn get<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        catalogue(self.lang).get(key).or_else(|| catalogue(Lang::En).get(key)).map(String::as_str).unwrap_or(key)
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Texts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Texts { lang: Lang::of(&parts.headers) })
    }
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

/// An error shown to a person: a page with a fixed message and the request id to quote.
#[derive(Debug)]
pub struct HtmlError {
    pub status: StatusCode,
    pub lang: Lang,
    /// Text key of the message.
    pub message_key: &'static str,
}

impl HtmlError {
    pub fn new(status: StatusCode, lang: Lang, message_key: &'static str) -> HtmlError {
        HtmlError { status, lang, message_key }
    }

    pub fn internal(lang: Lang, cause: &dyn std::fmt::Display) -> HtmlError {
        tracing::error!(error = %cause, "page failed");
        HtmlError::new(StatusCode::INTERNAL_SERVER_ERROR, lang, "error.internal")
    }

    pub fn forbidden(lang: Lang) -> HtmlError {
        HtmlError::new(StatusCode::FORBIDDEN, lang, "error.forbidden")
    }

    pub fn not_found(lang: Lang) -> HtmlError {
        HtmlError::new(StatusCode::NOT_FOUND, lang, "error.not_found")
    }
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        let t = Texts { lang: self.lang };
        let title_key = match self.status.as_u16() {
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
            message: t.get(self.message_key),
            request_id: super::request_id::current().unwrap_or_default(),
        };
        render_status(self.status, &page)
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
    let mut response = axum::response::Redirect::to(&back).into_response();
    if let Ok(v) =
        HeaderValue::from_str(&format!("{LANG_COOKIE}={}; Path=/; Max-Age=31536000; Secure; SameSite=Lax", lang.code()))
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_english_key() {
        let english = catalogue(Lang::En);
        assert!(english.len() > 20);
        for lang in [Lang::Ru, Lang::Kk] {
            let other = catalogue(lang);
            let missing: Vec<&String> = english.keys().filter(|k| !other.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{lang:?} lacks {missing:?}");
            let extra: Vec<&String> = other.keys().filter(|k| !english.contains_key(*k)).collect();
            assert!(extra.is_empty(), "{lang:?} has keys English lacks: {extra:?}");
        }
    }

    /// Every text key the templates and the code ask for exists in English (a typo would show the bare key).
    #[test]
    fn every_text_key_in_use_exists() {
        let english = catalogue(Lang::En);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["assets/templates", "src", "src/web", "src/identity", "src/participants", "src/apps", "src/pki"] {
            if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
                files.extend(entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
        let mut missing = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (i, _) in text.match_indices("t.get(\"") {
                let rest = &text[i + 7..];
                if let Some(end) = rest.find('"') {
                    let key = &rest[..end];
                    if !english.contains_key(key) {
                        missing.push(format!("{}: {key}", file.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "text keys without an English text: {missing:?}");
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("kk-KZ,ru;q=0.8"));
        assert_eq!(Lang::of(&headers), Lang::Kk);
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; kopir_lang=ru"));
        assert_eq!(Lang::of(&headers), Lang::Ru);
        assert_eq!(Texts { lang: Lang::Ru }.get("no.such.key"), "no.such.key");
    }
}
