//! The monthly platform report in the operator's console.
//!
//! Who may call each route — console readers only ([`ConsoleReader`]: operator staff and the regulator; every
//! route only reads):
//! - `GET /console/reports/monthly?month=YYYY-MM` — choose a month (the last ended one by default), view the report,
//!   download its signed files.
//! - `GET /console/reports/monthly/view?month=YYYY-MM` — the report itself in the page's language, rendered live by
//!   the renderer of `kopir report monthly`.
//! - `GET /console/reports/monthly/download?month=…&lang=…&at=…&part=html|json|jws` — one file of the published
//!   report of a month that has ended, generated at `at` (the time the console page was shown). The HTML and JSON
//!   are a pure function of the month, language and generation time, so the three downloads verify together with
//!   `kopir report verify`.
//!
//! Participants are refused (403), anonymous callers sent to sign in.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use time::OffsetDateTime;

use super::monthly::{self, Month, MonthlyError, Part};
use crate::i18n::Lang;
use crate::store::calendar;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/reports/monthly", get(page))
        .route("/console/reports/monthly/view", get(view))
        .route("/console/reports/monthly/download", get(download))
}

/// The report's own policy: its styles are inline (it must stand alone when saved), nothing else loads.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Deserialize, Default)]
struct MonthQuery {
    #[serde(default)]
    month: String,
}

#[derive(Deserialize)]
struct DownloadQuery {
    month: String,
    lang: String,
    at: String,
    part: String,
}

impl From<MonthlyError> for PageError {
    fn from(error: MonthlyError) -> PageError {
        match error {
            MonthlyError::Month(_) => PageError::new(StatusCode::BAD_REQUEST, "monthly.bad_month"),
            MonthlyError::Future(_) => PageError::new(StatusCode::NOT_FOUND, "monthly.not_begun"),
            other => PageError::internal(&other),
        }
    }
}

/// The month of the query, or the last month that has ended.
fn chosen(state: &AppState, text: &str, now: OffsetDateTime) -> Result<Month, PageError> {
    if !text.is_empty() {
        return Ok(Month::parse(text)?);
    }
    let today = calendar::local_date(state.config.time_zone.zone(), now.unix_timestamp())
        .map_err(|e| PageError::internal(&e))?;
    Ok(Month::of(today).previous())
}

/// Whether `month` has ended at `at` (in the operator's zone).
fn ended(state: &AppState, month: Month, at: OffsetDateTime) -> Result<bool, PageError> {
    let (_, end) = month.period.bounds(state.config.time_zone.zone()).map_err(|e| PageError::internal(&e))?;
    Ok(at.unix_timestamp() >= end)
}

#[derive(Template)]
#[template(path = "console_monthly_report.html")]
struct MonthlyPage {
    t: Texts,
    month: String,
    /// The query of the download links (month, language, generation time), when the month has ended.
    download: Option<String>,
    filenames: [String; 3],
}

async fn page(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let month = chosen(&state, &q.month, now)?;
    let t = Texts::current();
    let label = month.label();
    let download = ended(&state, month, now)?.then(|| {
        let at = crate::clock::rfc3339(now);
        form_urlencoded::Serializer::new(String::new())
            .append_pair("month", &label)
            .append_pair("lang", t.code())
            .append_pair("at", &at)
            .finish()
    });
    let filenames = [Part::Html.filename(&label), Part::Json.filename(&label), Part::Jws.filename(&label)];
    Ok(render(&MonthlyPage { t, month: label, download, filenames }))
}

/// The headers of a standalone printable document (also a billing statement's, `billing::statements`).
pub(crate) fn with_report_policy(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(REPORT_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// The report, live, in the page's language.
async fn view(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(q): Query<MonthQuery>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let month = chosen(&state, &q.month, now)?;
    let report = monthly::read(&state.config, &state.db, month, now).await?;
    let html = monthly::render(&report, Texts::current().lang)?;
    let mut response = html.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Ok(with_report_policy(response))
}

/// One file of the report of an ended month as generated at `at`.
async fn download(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, PageError> {
    let bad = || PageError::new(StatusCode::BAD_REQUEST, "monthly.bad_download");
    let month = Month::parse(&q.month)?;
    let part = Part::parse(&q.part).ok_or_else(bad)?;
    let lang = Lang::parse(&q.lang).filter(|l| l.code() == q.lang).ok_or_else(bad)?;
    let at = crate::clock::parse(&q.at).map_err(|_| bad())?;
    if at > state.clock.now() || !ended(&state, month, at)? {
        return Err(bad());
    }
    let body = match part {
        Part::Jws => monthly::publish(&state.config, &state.db, &state.signer, month, lang, at).await?.jws,
        Part::Html | Part::Json => {
            let report = monthly::read(&state.config, &state.db, month, at).await?;
            if part == Part::Html { monthly::render(&report, lang)? } else { monthly::json(&report)? }
        }
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(part.content_type()));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", part.filename(&month.label())))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    Ok(with_report_policy(response))
}
