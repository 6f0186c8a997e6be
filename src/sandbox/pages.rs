//! The health pages of the scheduled checks, with charts drawn by the server as inline SVG (each with a title, a
//! description and a data table beside it):
//!
//! - `GET /org/apis/{id}/health` — members of the API's provider: its runs over time, the failing cases with their
//!   evidence, availability over 24 h / 7 d / 30 d, latency and availability charts. Another organisation's API is
//!   "not found".
//! - `GET /console/apis/health` — console readers (operator staff and administrators, the regulator read-only):
//!   every API on the schedule at a glance (status, last run, availability, p95 latency, consecutive failures, a
//!   sparkline).
//! - `GET /console/apis/{id}/health` — console readers: one API's health page, with the override form for staff.
//! - `POST /console/apis/{id}/override` — operator staff and administrators only: delist now / relist now / return
//!   to automatic, with a mandatory reason (audited).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::health::{self, Health, HealthError, HourPoint, Override, Overview, RunRow};
use crate::catalog::{self, Api, CheckRun};
use crate::identity::Role;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, OperatorStaff, ParticipantMember, SignedIn};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/apis/{id}/health", get(provider_health))
        .route("/console/apis/health", get(console_overview))
        .route("/console/apis/{id}/health", get(console_health))
        .route("/console/apis/{id}/override", post(override_form))
}

/// Runs listed on the health page.
const RECENT: u32 = 40;
/// Hours the charts cover.
const CHART_HOURS: i64 = 7 * 24;

#[derive(Template)]
#[template(path = "health_api.html")]
struct HealthPage<'a> {
    t: Texts,
    csrf: &'a str,
    console: bool,
    can_override: bool,
    api: Api,
    provider_name: String,
    health: Health,
    availability: [(&'static str, Option<String>); 3],
    p95: Option<i64>,
    failures: Vec<CheckRun>,
    runs: Vec<RunRow>,
    last_check: Option<catalog::LastCheck>,
    /// Each hour with its start in the operator's zone.
    hours: Vec<(String, HourPoint)>,
    latency_svg: String,
    availability_svg: String,
    errors: Vec<&'a str>,
    notice: Option<&'a str>,
}

struct Loaded {
    api: Api,
    provider_name: String,
    health: Health,
    availability: [Option<f64>; 3],
    p95: Option<i64>,
    failures: Vec<CheckRun>,
    runs: Vec<RunRow>,
    hours: Vec<HourPoint>,
    last_check: Option<catalog::LastCheck>,
}

fn load(conn: &rusqlite::Connection, api: Api, now: time::OffsetDateTime) -> rusqlite::Result<Loaded> {
    let id = api.id;
    let provider_name = crate::participants::organisation(conn, api.organisation_id)?
        .map(|org| org.name)
        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    let since = now.unix_timestamp().div_euclid(3600) * 3600 - (CHART_HOURS - 1) * 3600;
    Ok(Loaded {
        provider_name,
        health: health::health(conn, id)?,
        availability: [
            health::availability(conn, id, 24, now)?,
            health::availability(conn, id, 7 * 24, now)?,
            health::availability(conn, id, 30 * 24, now)?,
        ],
        p95: health::p95_24h(conn, id, now)?,
        failures: health::latest_failures(conn, id)?,
        runs: health::recent_runs(conn, id, RECENT)?,
        hours: health::hourly(conn, id, since)?,
        last_check: health::last_check(conn, id)?,
        api,
    })
}

fn percent(v: Option<f64>) -> Option<String> {
    v.map(|v| format!("{v:.2} %"))
}

struct Shown<'a> {
    console: bool,
    can_override: bool,
    errors: Vec<&'a str>,
    notice: Option<&'a str>,
    status: StatusCode,
}

fn page(who: &SignedIn, zone: &TimeZone, loaded: Loaded, shown: Shown) -> Response {
    let t = Texts::current();
    let latency_svg = latency_chart(&t, zone, &loaded.hours);
    let availability_svg = availability_chart(&t, zone, &loaded.hours);
    let hours = loaded.hours.into_iter().map(|h| (local_tick(zone, h.hour, true), h)).collect();
    let [day, week, month] = loaded.availability;
    let mut failures = loaded.failures;
    catalog::check::label(&mut failures, super::check::text_key);
    render_status(
        shown.status,
        &HealthPage {
            t,
            csrf: who.csrf(),
            console: shown.console,
            can_override: shown.can_override,
            api: loaded.api,
            provider_name: loaded.provider_name,
            health: loaded.health,
            availability: [
                ("health.availability_24h", percent(day)),
                ("health.availability_7d", percent(week)),
                ("health.availability_30d", percent(month)),
            ],
            p95: loaded.p95,
            failures,
            runs: loaded.runs,
            last_check: loaded.last_check,
            hours,
            latency_svg,
            availability_svg,
            errors: shown.errors,
            notice: shown.notice,
        },
    )
}

/// Members of the provider: the health of one of its APIs.
async fn provider_health(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let org_id = who.org.id;
    let now = state.clock.now();
    let loaded = state
        .db
        .read(move |c| -> Result<Option<Loaded>, StoreError> {
            match catalog::by_id_for_organisation(c, org_id, id)? {
                Some(api) => Ok(Some(load(c, api, now)?)),
                None => Ok(None),
            }
        })
        .await?
        .ok_or_else(PageError::not_found)?;
    let shown = Shown { console: false, can_override: false, errors: vec![], notice: None, status: StatusCode::OK };
    Ok(page(&who, state.config.time_zone.zone(), loaded, shown))
}

fn may_override(who: &SignedIn) -> bool {
    matches!(who.user.role, Role::OperatorAdmin | Role::OperatorStaff)
}

async fn console_page(
    state: &AppState,
    who: &SignedIn,
    id: i64,
    errors: Vec<&str>,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let loaded = state
        .db
        .read(move |c| -> Result<Option<Loaded>, StoreError> {
            match catalog::api(c, id)? {
                Some(api) => Ok(Some(load(c, api, now)?)),
                None => Ok(None),
            }
        })
        .await?
        .ok_or_else(PageError::not_found)?;
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(page(
        who,
        state.config.time_zone.zone(),
        loaded,
        Shown { console: true, can_override: may_override(who), errors, notice, status },
    ))
}

/// Console readers: one API's health; staff also see the override form.
async fn console_health(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    console_page(&state, &who, id, vec![], None).await
}

#[derive(Debug, Deserialize)]
struct OverrideForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    reason: String,
}

/// Operator staff and administrators: pins an API delisted or listed, or returns it to the checks.
async fn override_form(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<OverrideForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let Some(mode) = form.mode.parse::<Override>().ok() else {
        return console_page(&state, &who, id, vec![t.get("health.error.mode")], None).await;
    };
    match health::set_override(&state.db, id, mode, form.reason, who.audit_actor(), state.clock.now()).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/apis/{id}/health")).into_response()),
        Err(HealthError::Refused(key)) => console_page(&state, &who, id, vec![t.get(key)], None).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "health_console.html")]
struct OverviewPage {
    t: Texts,
    rows: Vec<(Overview, String)>,
}

/// Console readers: every API on the schedule at a glance.
async fn console_overview(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
) -> Result<Response, PageError> {
    let now = state.clock.now();
    let rows = state.db.read(move |c| health::overview(c, now).map_err(StoreError::from)).await?;
    let t = Texts::current();
    let rows = rows
        .into_iter()
        .map(|o| {
            let spark = sparkline(&t, &o.spark, &format!("spark-{}", o.api.id));
            (o, spark)
        })
        .collect();
    Ok(render_status(StatusCode::OK, &OverviewPage { t, rows }))
}

/// Refusals re-render the health page (the handler matches them); what reaches here is not found or a failure.
impl From<HealthError> for PageError {
    fn from(error: HealthError) -> PageError {
        match error {
            HealthError::NotFound => PageError::not_found(),
            HealthError::Refused(key) => PageError::new(StatusCode::UNPROCESSABLE_ENTITY, key),
            HealthError::Store(e) => PageError::from(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Charts: inline SVG, drawn here. Every text in them is escaped; numbers are formatted by us.

use crate::web::chart::{escape, local_tick, svg_open, time_ticks};
use jiff::tz::TimeZone;

const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// The x of hour `i` of `n` in the plot area.
fn x_of(i: usize, n: usize) -> f64 {
    let span = W - LEFT - 8.0;
    if n <= 1 { LEFT + span / 2.0 } else { LEFT + span * i as f64 / (n - 1) as f64 }
}

/// The axes, the value label at the top, and the time axis in the operator's zone (ticks at most every few hours,
/// the day written where it changes). With a single hour there is no line to draw: the chart says so.
fn axes(out: &mut String, top_label: &str, t: &Texts, zone: &TimeZone, hours: &[HourPoint]) {
    let base = H - BOTTOM;
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"currentColor\" stroke-opacity=\".4\"/>\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"currentColor\" stroke-opacity=\".4\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        W - 8.0,
        LEFT - 4.0,
        TOP + 10.0,
        escape(top_label),
        LEFT - 4.0,
    ));
    if hours.is_empty() {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            W / 2.0,
            H / 2.0,
            escape(t.get("health.no_data")),
        ));
        return;
    }
    let starts: Vec<i64> = hours.iter().map(|h| h.hour).collect();
    let n = hours.len();
    for (i, label) in time_ticks(zone, &starts, 7) {
        let x = x_of(i, n);
        let anchor = match i {
            0 if n > 1 => "start",
            i if i + 1 == n && n > 1 => "end",
            _ => "middle",
        };
        out.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{base}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"currentColor\" stroke-opacity=\".4\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{}</text>",
            base + 4.0,
            H - 6.0,
            escape(&label),
        ));
    }
    if n == 1 {
        out.push_str(&format!(
            "<text class=\"few\" x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>",
            W / 2.0,
            TOP + 14.0,
            escape(t.get("chart.one_hour")),
        ));
    }
}

fn polyline(points: &[(f64, f64)], class: &str, dash: bool) -> String {
    let coords: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    format!(
        "<polyline class=\"{class}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\"{} points=\"{}\"/>",
        if dash { " stroke-dasharray=\"4 3\"" } else { "" },
        coords.join(" ")
    )
}

/// Mean and p95 latency per hour, each hour also a dot (so one hour of data shows).
pub fn latency_chart(t: &Texts, zone: &TimeZone, hours: &[HourPoint]) -> String {
    let max = hours.iter().map(|h| h.p95_ms.max(h.mean_ms)).max().unwrap_or(0).max(10);
    let top = (max as f64 * 1.1).ceil();
    let y = |v: i64| (H - BOTTOM) - (H - BOTTOM - TOP) * v as f64 / top;
    let desc = match (hours.iter().map(|h| h.p95_ms).max(), hours.len()) {
        (Some(worst), n) => format!("{} {n} h; p95 max {worst} ms", t.get("health.latency_desc")),
        (None, _) => t.get("health.no_data").to_string(),
    };
    let mut out = svg_open("latency-chart", t.get("health.latency_title"), &desc, W, H, "chart");
    axes(&mut out, &format!("{top} ms"), t, zone, hours);
    let n = hours.len();
    let p95: Vec<(f64, f64)> = hours.iter().enumerate().map(|(i, h)| (x_of(i, n), y(h.p95_ms))).collect();
    let mean: Vec<(f64, f64)> = hours.iter().enumerate().map(|(i, h)| (x_of(i, n), y(h.mean_ms))).collect();
    if !hours.is_empty() {
        out.push_str(&polyline(&p95, "p95", false));
        out.push_str(&polyline(&mean, "mean", true));
        for (i, ((x, y95), (_, ymean))) in p95.iter().zip(&mean).enumerate() {
            let at = hours.get(i).map(|h| local_tick(zone, h.hour, true)).unwrap_or_default();
            out.push_str(&format!(
                "<circle cx=\"{x:.1}\" cy=\"{y95:.1}\" r=\"3\" fill=\"currentColor\"><title>{} p95</title></circle>\
                 <circle cx=\"{x:.1}\" cy=\"{ymean:.1}\" r=\"2.5\" fill=\"none\" stroke=\"currentColor\"/>",
                escape(&at)
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// Availability (% of passing checks) per hour, as bars.
pub fn availability_chart(t: &Texts, zone: &TimeZone, hours: &[HourPoint]) -> String {
    let desc = match hours.len() {
        0 => t.get("health.no_data").to_string(),
        n => {
            let worst = hours.iter().map(HourPoint::availability).fold(100.0_f64, f64::min);
            format!("{} {n} h; min {worst:.1} %", t.get("health.availability_desc"))
        }
    };
    let mut out = svg_open("availability-chart", t.get("health.availability_title"), &desc, W, H, "chart");
    axes(&mut out, "100 %", t, zone, hours);
    let n = hours.len().max(1);
    let width = ((W - LEFT - 8.0) / n as f64 * 0.8).clamp(1.0, 48.0);
    for (i, h) in hours.iter().enumerate() {
        let a = h.availability();
        let height = (H - BOTTOM - TOP) * a / 100.0;
        let x = x_of(i, hours.len()) - width / 2.0;
        let class = if a >= 99.0 {
            "ok"
        } else if a >= 90.0 {
            "warn"
        } else {
            "bad"
        };
        out.push_str(&format!(
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{height:.1}\"/>",
            H - BOTTOM - height
        ));
    }
    out.push_str("</svg>");
    out
}

/// A small availability line for the console's overview (last 24 hours).
pub fn sparkline(t: &Texts, hours: &[HourPoint], id: &str) -> String {
    let (w, h) = (120.0, 24.0);
    let desc = if hours.is_empty() {
        t.get("health.no_data").to_string()
    } else {
        let values: Vec<String> = hours.iter().map(|p| format!("{:.0}", p.availability())).collect();
        format!("{} {}", t.get("health.spark_desc"), values.join(", "))
    };
    let mut out = svg_open(id, t.get("health.spark_title"), &desc, w, h, "spark");
    let n = hours.len();
    let points: Vec<String> = hours
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = if n <= 1 { w / 2.0 } else { 2.0 + (w - 4.0) * i as f64 / (n - 1) as f64 };
            let y = 2.0 + (h - 4.0) * (1.0 - p.availability() / 100.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    if !points.is_empty() {
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::web::pages::Lang;

    fn hour(i: i64, runs: i64, passes: i64, p95: i64) -> HourPoint {
        HourPoint { hour: 1_700_000_000 / 3600 * 3600 + i * 3600, runs, passes, mean_ms: p95 / 2, p95_ms: p95 }
    }

    #[test]
    fn charts_are_accessible_svg_with_escaped_text() {
        let t = Texts { lang: Lang::En };
        let hours = vec![hour(0, 80, 80, 40), hour(1, 80, 40, 900), hour(2, 80, 0, 0)];
        let utc = TimeZone::UTC;
        for svg in [latency_chart(&t, &utc, &hours), availability_chart(&t, &utc, &hours), sparkline(&t, &hours, "s1")]
        {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
            assert!(svg.contains("role=\"img\"") && svg.contains("<title id=") && svg.contains("<desc id="), "{svg}");
        }
        assert!(latency_chart(&t, &utc, &hours).contains("p95 max 900 ms"));
        assert!(availability_chart(&t, &utc, &hours).contains("class=\"bad\""));
        // One hour of data: a dot and a bar of sensible width, and the chart says it is one hour.
        let one = latency_chart(&t, &utc, &hours[..1]);
        assert!(one.contains("<circle") && one.contains(t.get("chart.one_hour")), "{one}");
        assert!(availability_chart(&t, &utc, &hours[..1]).contains("width=\"48.0\""));
        assert_eq!(escape("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
        assert!(latency_chart(&t, &utc, &[]).contains(t.get("health.no_data")));
    }
}
