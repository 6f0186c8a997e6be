//! The operator's and regulator's dashboard page, `/console/dashboard`: the platform's figures ([`super::platform`])
//! for a period of the operator's local days, each beside the previous period's with the change, as tables with
//! captions and server-drawn charts, and every table as CSV or JSON.
//!
//! Who may call it: `GET /console/dashboard` — [`ConsoleReader`] (operator staff, operator administrators and the
//! regulator); read-only for everyone (it has no form that changes anything). Participants' users are refused,
//! anonymous callers sent to sign in.
//!
//! Parameters: `period=this_month` (the default, in the operator's zone), `previous_month`, or `custom` with
//! `from` and `to` (local dates, both included, at most [`MAX_DAYS`] days); `format=csv&table=NAME` downloads one
//! table, `format=json` (with or without `table`) the whole dashboard or one table.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{Map, json};

use super::ReportsError;
use super::dashboard::{Comparison, Period};
use super::export::{self, Cell, Format, Interval, Table};
use super::platform::{self, AvailabilityFigure, PlatformFigures};
use crate::availability;
use crate::store::calendar::local_date;
use crate::web::AppState;
use crate::web::chart;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ConsoleReader;

pub fn router() -> Router<AppState> {
    Router::new().route("/console/dashboard", get(page))
}

/// The longest custom period (a leap year).
pub const MAX_DAYS: i64 = 366;

/// The report name exports carry.
const REPORT: &str = "dashboard";

crate::text_enum! {
    /// The period presets of the page.
    pub enum Preset {
        ThisMonth = "this_month",
        PreviousMonth = "previous_month",
        Custom = "custom",
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    pub period: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
    pub table: Option<String>,
}

fn bad(key: &'static str) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, key)
}

fn word(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The period asked for, on `today` (the operator's local date).
pub fn parse_period(params: &Params, today: Date) -> Result<(Preset, Period), &'static str> {
    let preset = match word(&params.period) {
        None => Preset::ThisMonth,
        Some(p) => p.parse::<Preset>().map_err(|_| "reports.error.value")?,
    };
    let this_month = Period::month(today.year(), today.month()).ok_or("reports.error.date")?;
    let period = match preset {
        Preset::ThisMonth => this_month,
        Preset::PreviousMonth => this_month.previous(),
        Preset::Custom => {
            let date = |v: &Option<String>| -> Result<Date, &'static str> {
                word(v)
                    .and_then(|d| d.parse::<Date>().ok())
                    .filter(|d| (1970..=2199).contains(&d.year()))
                    .ok_or("reports.error.date")
            };
            let (from, to) = (date(&params.from)?, date(&params.to)?);
            let period = Period::days_between(from, to).ok_or("reports.error.order")?;
            if period.days() > MAX_DAYS {
                return Err("reports.error.too_long");
            }
            period
        }
    };
    Ok((preset, period))
}

// ---------------------------------------------------------------------------------------------------------------
// Tables: the dashboard's figures as exportable tables (stable names and columns; codes, not translated labels).

fn comparison_cells(c: Comparison) -> Vec<Cell> {
    vec![
        Cell::Integer(c.current),
        Cell::Integer(c.previous),
        Cell::Integer(c.delta()),
        c.percent().map_or(Cell::Empty, Cell::Text),
    ]
}

const COMPARED: [&str; 4] = ["current", "previous", "change", "change_percent"];

fn compared_table(name: &'static str, label: &'static str, rows: &[(String, Comparison)]) -> Table {
    let mut columns = vec![label];
    columns.extend(COMPARED);
    let mut table = Table::new(name, &columns);
    for (code, c) in rows {
        let mut row = vec![Cell::text(code.clone())];
        row.extend(comparison_cells(*c));
        table.push(row);
    }
    table
}

fn hundredths(value: Option<i64>) -> Cell {
    value.map_or(Cell::Empty, |h| Cell::Text(availability::percent(h)))
}

fn availability_cells(a: &AvailabilityFigure, before: &AvailabilityFigure) -> Vec<Cell> {
    vec![
        hundredths(a.hundredths),
        hundredths(before.hundredths),
        Cell::Integer((a.unplanned_seconds + 59) / 60),
        Cell::Integer((a.planned_seconds + 59) / 60),
    ]
}

/// Every table of the dashboard, in the page's order.
pub fn tables(f: &PlatformFigures) -> Vec<Table> {
    let c = &f.consents;
    let r = &f.requests;
    let summary: Vec<(String, Comparison)> = [
        ("participants", f.participants.total),
        ("participants_registered", f.participants.registered),
        ("accreditations_issued", f.participants.accreditations_issued),
        ("customers_with_live_consents", f.customers_with_live_consents),
        ("consents_requested", c.requested),
        ("consents_granted", c.granted),
        ("consents_rejected", c.rejected),
        ("consents_revoked", c.revoked),
        ("consents_expired", c.expired),
        ("bank_revocations", c.bank_revocations),
        ("requests", r.total),
        ("errors", r.errors),
        ("server_errors", r.server_errors),
        ("sandbox_requests", f.sandbox_requests),
        ("sandbox_runs", f.sandbox.runs),
        ("sandbox_passes", f.sandbox.passes),
        ("publication_checks", f.sandbox.publication_checks),
        ("publication_passed", f.sandbox.publication_passed),
        ("sla_breaches_started", f.sla_breaches.started),
        ("service_requests_raised", f.request_sla_breaches.raised),
        ("request_first_response_breaches", f.request_sla_breaches.first_response),
        ("request_resolution_breaches", f.request_sla_breaches.resolution),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut rates = Table::new("rates", &["figure", "current", "previous"]);
    rates.push(vec![
        Cell::text("error_share_percent"),
        hundredths(r.error_share_current),
        hundredths(r.error_share_previous),
    ]);
    rates.push(vec![Cell::text("p95_ms"), Cell::ms(r.p95_ms_current), Cell::ms(r.p95_ms_previous)]);
    rates.push(vec![
        Cell::text("sandbox_pass_rate_percent"),
        hundredths(f.sandbox.pass_rate_current),
        hundredths(f.sandbox.pass_rate_previous),
    ]);
    let labelled = |items: &[platform::Labelled]| -> Vec<(String, Comparison)> {
        items.iter().map(|l| (l.label.clone(), l.count)).collect()
    };
    let mut per_day =
        Table::new("requests_per_day", &["date", "requests", "errors", "previous_date", "previous_requests"]);
    for (i, d) in r.per_day.iter().enumerate() {
        let before = r.previous_per_day.get(i);
        per_day.push(vec![
            Cell::text(d.period.clone()),
            Cell::count(d.requests),
            Cell::count(d.errors),
            before.map_or(Cell::Empty, |b| Cell::text(b.period.clone())),
            before.map_or(Cell::Empty, |b| Cell::count(b.requests)),
        ]);
    }
    let mut per_month = Table::new("requests_per_month", &["month", "requests", "errors"]);
    for m in &r.per_month {
        per_month.push(vec![Cell::text(m.period.clone()), Cell::count(m.requests), Cell::count(m.errors)]);
    }
    let bank_columns = [
        "bank",
        "bin",
        "requests",
        "requests_previous",
        "change_percent",
        "server_errors",
        "availability_percent",
        "availability_previous_percent",
        "unplanned_minutes",
        "planned_minutes",
        "p95_ms",
        "p95_previous_ms",
        "sla_ms",
    ];
    let mut banks = Table::new("banks", &bank_columns);
    let api_columns = [
        "bank",
        "api",
        "version",
        "status",
        "requests",
        "requests_previous",
        "change_percent",
        "server_errors",
        "availability_percent",
        "availability_previous_percent",
        "unplanned_minutes",
        "planned_minutes",
        "p95_ms",
        "p95_previous_ms",
        "sla_ms",
        "p95_within_sla",
    ];
    let mut apis = Table::new("apis", &api_columns);
    for b in &f.banks {
        let mut row = vec![
            Cell::text(b.name.clone()),
            Cell::text(b.bin.clone()),
            Cell::Integer(b.requests.current),
            Cell::Integer(b.requests.previous),
            b.requests.percent().map_or(Cell::Empty, Cell::Text),
            Cell::Integer(b.server_errors.current),
        ];
        row.extend(availability_cells(&b.availability, &b.availability_previous));
        row.extend([
            Cell::ms(b.p95_ms_current),
            Cell::ms(b.p95_ms_previous),
            b.sla_ms.map_or(Cell::Empty, Cell::Integer),
        ]);
        banks.push(row);
        for a in &b.apis {
            let mut row = vec![
                Cell::text(b.name.clone()),
                Cell::text(a.name.clone()),
                Cell::text(a.version.clone()),
                Cell::text(a.status.clone()),
                Cell::Integer(a.requests.current),
                Cell::Integer(a.requests.previous),
                a.requests.percent().map_or(Cell::Empty, Cell::Text),
                Cell::Integer(a.server_errors.current),
            ];
            row.extend(availability_cells(&a.availability, &a.availability_previous));
            row.extend([
                Cell::ms(a.p95_ms_current),
                Cell::ms(a.p95_ms_previous),
                Cell::Integer(a.sla_ms),
                match a.p95_ms_current {
                    None => Cell::Empty,
                    Some(_) => Cell::text(if a.over_sla { "no" } else { "yes" }),
                },
            ]);
            apis.push(row);
        }
    }
    let errors: Vec<(String, Comparison)> = f.top_errors.iter().map(|e| (e.code.clone(), e.requests)).collect();
    let mut sandbox = Table::new(
        "sandbox",
        &["bank", "api", "runs", "passes", "pass_rate_percent", "runs_previous", "pass_rate_previous_percent"],
    );
    for s in &f.sandbox.apis {
        sandbox.push(vec![
            Cell::text(s.bank_name.clone()),
            Cell::text(s.api_name.clone()),
            Cell::Integer(s.runs.current),
            Cell::Integer(s.passes.current),
            hundredths(s.pass_rate_current),
            Cell::Integer(s.runs.previous),
            hundredths(s.pass_rate_previous),
        ]);
    }
    let mut breaches =
        Table::new("sla_breaches", &["bank", "api", "started_at", "ended_at", "sla_ms", "worst_p95_ms", "calls"]);
    for b in &f.sla_breaches.breaches {
        breaches.push(vec![
            Cell::text(b.bank_name.clone()),
            Cell::text(b.api_name.clone()),
            Cell::text(b.started_at.clone()),
            b.ended_at.clone().map_or(Cell::Empty, Cell::Text),
            Cell::Integer(b.sla_ms),
            Cell::Integer(b.worst_p95_ms),
            Cell::Integer(b.calls),
        ]);
    }
    let mut request_breaches = Table::new(
        "request_sla_breaches",
        &["category", "priority", "first_response", "first_response_previous", "resolution", "resolution_previous"],
    );
    for c in &f.request_sla_breaches.by_category {
        request_breaches.push(vec![
            Cell::text(c.category.clone()),
            Cell::text(c.priority.clone()),
            Cell::Integer(c.first_response.current),
            Cell::Integer(c.first_response.previous),
            Cell::Integer(c.resolution.current),
            Cell::Integer(c.resolution.previous),
        ]);
    }
    vec![
        compared_table("summary", "figure", &summary),
        rates,
        compared_table("participants_by_role", "role", &labelled(&f.participants.by_role)),
        compared_table("participants_by_status", "status", &labelled(&f.participants.by_status)),
        compared_table("consents_by_status", "status", &labelled(&c.by_status)),
        per_day,
        per_month,
        banks,
        apis,
        compared_table("top_errors", "error_code", &errors),
        sandbox,
        breaches,
        request_breaches,
    ]
}

// ---------------------------------------------------------------------------------------------------------------
// The page.

fn table_title(name: &str) -> &'static str {
    match name {
        "summary" => "dashboard.table.summary",
        "rates" => "dashboard.table.rates",
        "participants_by_role" => "dashboard.table.participants_by_role",
        "participants_by_status" => "dashboard.table.participants_by_status",
        "consents_by_status" => "dashboard.table.consents_by_status",
        "requests_per_day" => "dashboard.table.requests_per_day",
        "requests_per_month" => "dashboard.table.requests_per_month",
        "banks" => "dashboard.table.banks",
        "apis" => "dashboard.table.apis",
        "top_errors" => "dashboard.table.top_errors",
        "sandbox" => "dashboard.table.sandbox",
        "sla_breaches" => "dashboard.table.sla_breaches",
        "request_sla_breaches" => "dashboard.request_sla.table",
        _ => "dashboard.title",
    }
}

fn column_title(column: &str) -> &'static str {
    match column {
        "figure" => "dashboard.col.figure",
        "current" => "dashboard.col.current",
        "previous" => "dashboard.col.previous",
        "change" => "dashboard.col.change",
        "change_percent" => "dashboard.col.change_percent",
        "role" => "dashboard.col.role",
        "status" => "reports.col.status",
        "date" => "reports.col.date",
        "month" => "dashboard.col.month",
        "requests" => "reports.col.requests",
        "errors" => "dashboard.col.errors",
        "previous_date" => "dashboard.col.previous_date",
        "previous_requests" => "dashboard.col.previous_requests",
        "bank" => "reports.col.bank",
        "bin" => "dashboard.col.bin",
        "api" => "reports.col.api",
        "version" => "dashboard.col.version",
        "requests_previous" => "dashboard.col.requests_previous",
        "server_errors" => "reports.col.server_errors",
        "availability_percent" => "reports.col.availability_percent",
        "availability_previous_percent" => "dashboard.col.availability_previous_percent",
        "unplanned_minutes" => "reports.col.unplanned_minutes",
        "planned_minutes" => "reports.col.planned_minutes",
        "p95_ms" => "reports.col.p95_ms",
        "p95_previous_ms" => "dashboard.col.p95_previous_ms",
        "sla_ms" => "reports.col.sla_ms",
        "p95_within_sla" => "reports.col.p95_within_sla",
        "error_code" => "reports.col.error_code",
        "runs" => "dashboard.col.runs",
        "passes" => "dashboard.col.passes",
        "pass_rate_percent" => "dashboard.col.pass_rate_percent",
        "runs_previous" => "dashboard.col.runs_previous",
        "pass_rate_previous_percent" => "dashboard.col.pass_rate_previous_percent",
        "started_at" => "dashboard.col.started_at",
        "ended_at" => "dashboard.col.ended_at",
        "worst_p95_ms" => "dashboard.col.worst_p95_ms",
        "calls" => "dashboard.col.calls",
        "category" => "dashboard.request_sla.category",
        "priority" => "dashboard.request_sla.priority",
        "first_response" => "dashboard.request_sla.first_response",
        "first_response_previous" => "dashboard.request_sla.first_response_previous",
        "resolution" => "dashboard.request_sla.resolution",
        "resolution_previous" => "dashboard.request_sla.resolution_previous",
        _ => "dashboard.title",
    }
}

/// The label shown for a code in the first column (a figure, role or status); other values as they are.
fn label_key(code: &str) -> Option<&'static str> {
    Some(match code {
        "participants" => "dashboard.fig.participants",
        "participants_registered" => "dashboard.fig.participants_registered",
        "accreditations_issued" => "dashboard.fig.accreditations_issued",
        "customers_with_live_consents" => "dashboard.fig.customers_with_live_consents",
        "consents_requested" => "dashboard.fig.consents_requested",
        "consents_granted" => "dashboard.fig.consents_granted",
        "consents_rejected" => "dashboard.fig.consents_rejected",
        "consents_revoked" => "dashboard.fig.consents_revoked",
        "consents_expired" => "dashboard.fig.consents_expired",
        "bank_revocations" => "dashboard.fig.bank_revocations",
        "requests" => "dashboard.fig.requests",
        "errors" => "dashboard.fig.errors",
        "server_errors" => "dashboard.fig.server_errors",
        "sandbox_requests" => "dashboard.fig.sandbox_requests",
        "sandbox_runs" => "dashboard.fig.sandbox_runs",
        "sandbox_passes" => "dashboard.fig.sandbox_passes",
        "publication_checks" => "dashboard.fig.publication_checks",
        "publication_passed" => "dashboard.fig.publication_passed",
        "sla_breaches_started" => "dashboard.fig.sla_breaches_started",
        "service_requests_raised" => "dashboard.request_sla.raised",
        "request_first_response_breaches" => "dashboard.request_sla.first_response_breaches",
        "request_resolution_breaches" => "dashboard.request_sla.resolution_breaches",
        "error_share_percent" => "dashboard.fig.error_share_percent",
        "p95_ms" => "dashboard.fig.p95_ms",
        "sandbox_pass_rate_percent" => "dashboard.fig.sandbox_pass_rate_percent",
        "provider" => "dashboard.role.provider",
        "user" => "dashboard.role.user",
        "both" => "dashboard.role.both",
        "none" => "dashboard.role.none",
        "registered" => "status.registered",
        "accredited" => "status.accredited",
        "suspended" => "status.suspended",
        "revoked" => "status.revoked",
        "AwaitingAuthorisation" => "consent.status_awaiting",
        "Authorised" => "consent.status_authorised",
        "Rejected" => "consent.status_rejected",
        "Revoked" => "consent.status_revoked",
        "Expired" => "consent.status_expired",
        "Modified" => "consent.status_modified",
        _ => return None,
    })
}

/// A table as the page shows it.
struct TableView {
    name: &'static str,
    title: &'static str,
    headers: Vec<&'static str>,
    /// Cells as shown, whether each holds a number (aligned right), and the code behind a translated label.
    rows: Vec<Vec<(String, bool, String)>>,
}

fn view_of(t: &Texts, table: &Table) -> TableView {
    let labelled = matches!(table.columns.first(), Some(&"figure" | &"role" | &"status"));
    TableView {
        name: table.name,
        title: table_title(table.name),
        headers: table.columns.iter().map(|c| column_title(c)).collect(),
        rows: table
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let shown = c.shown();
                        let label = match c {
                            Cell::Text(code) if i == 0 && labelled => label_key(code).map(|k| t.get(k).to_string()),
                            _ => None,
                        };
                        let numeric = matches!(c, Cell::Integer(_) | Cell::Decimal { .. })
                            || (i > 0
                                && matches!(c, Cell::Text(s) if s.starts_with(['+', '-']) || s.parse::<f64>().is_ok()));
                        (label.unwrap_or_else(|| shown.clone()), numeric, shown)
                    })
                    .collect()
            })
            .collect(),
    }
}

/// A headline figure: its label, this period's value, the previous one, the change and the change in per cent.
struct Headline {
    id: &'static str,
    label: &'static str,
    current: String,
    previous: String,
    change: String,
    percent: String,
}

fn headline(id: &'static str, label: &'static str, c: Comparison) -> Headline {
    let delta = c.delta();
    Headline {
        id,
        label,
        current: c.current.to_string(),
        previous: c.previous.to_string(),
        change: if delta > 0 { format!("+{delta}") } else { delta.to_string() },
        percent: c.percent().map_or_else(|| "—".to_string(), |p| format!("{p} %")),
    }
}

#[derive(Template)]
#[template(path = "reports/dashboard.html")]
struct DashboardPage {
    t: Texts,
    preset: Preset,
    from: String,
    to: String,
    previous_from: String,
    previous_to: String,
    time_zone: String,
    headlines: Vec<Headline>,
    requests_chart: String,
    availability_chart: String,
    latency_chart: String,
    tables: Vec<TableView>,
    query: String,
}

impl From<ReportsError> for PageError {
    fn from(error: ReportsError) -> PageError {
        match error {
            ReportsError::EmptyInterval => bad("reports.error.order"),
            ReportsError::IntervalTooLong { .. } => bad("reports.error.too_long"),
            e => PageError::internal(&e),
        }
    }
}

/// Console readers: the platform's figures for a period, compared with the previous one.
async fn page(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let zone = state.config.time_zone.zone().clone();
    let now = state.clock.now();
    let today = local_date(&zone, now.unix_timestamp()).map_err(ReportsError::from)?;
    let (preset, period) = parse_period(&params, today).map_err(bad)?;
    let format = match word(&params.format) {
        None => None,
        Some(f) => Some(f.parse::<Format>().map_err(|_| bad("reports.error.value"))?),
    };
    let figures = {
        let zone = zone.clone();
        state.db.read(move |conn| platform::figures(conn, &zone, period, now)).await?
    };
    let tables = tables(&figures);
    let interval = Interval { from: figures.from.clone(), to: figures.to.clone() };
    match (format, word(&params.table)) {
        (Some(format), Some(name)) => {
            let table = tables.iter().find(|t| t.name == name).ok_or_else(PageError::not_found)?;
            return Ok(export::table_download(REPORT, &interval, table, format));
        }
        (Some(Format::Json), None) => {
            let mut extra = Map::new();
            extra.insert("previous_from".into(), json!(figures.previous_from));
            extra.insert("previous_to".into(), json!(figures.previous_to));
            extra.insert("time_zone".into(), json!(figures.time_zone));
            extra.insert("figures".into(), serde_json::to_value(&figures).unwrap_or_default());
            let document = export::json_document(REPORT, &interval, &tables, extra);
            let name = export::filename(REPORT, None, &interval, Format::Json);
            return Ok(export::download(Format::Json, &name, document.to_string()));
        }
        (Some(Format::Csv), None) => return Err(bad("reports.error.table")),
        (None, _) => {}
    }
    let t = Texts::current();
    let r = &figures.requests;
    let headlines = vec![
        headline("participants", "dashboard.fig.participants", figures.participants.total),
        headline("customers", "dashboard.fig.customers_with_live_consents", figures.customers_with_live_consents),
        headline("requests", "dashboard.fig.requests", r.total),
        headline("errors", "dashboard.fig.errors", r.errors),
        headline("granted", "dashboard.fig.consents_granted", figures.consents.granted),
        headline("revoked", "dashboard.fig.consents_revoked", figures.consents.revoked),
        headline("sla-breaches", "dashboard.fig.sla_breaches_started", figures.sla_breaches.started),
        headline(
            "request-first-response-breaches",
            "dashboard.request_sla.first_response_breaches",
            figures.request_sla_breaches.first_response,
        ),
        headline(
            "request-resolution-breaches",
            "dashboard.request_sla.resolution_breaches",
            figures.request_sla_breaches.resolution,
        ),
        headline("sandbox-requests", "dashboard.fig.sandbox_requests", figures.sandbox_requests),
    ];
    let requests_chart = chart::requests_chart(
        &t,
        "dashboard-requests",
        &r.per_day.iter().map(|d| (d.period.clone(), d.requests, d.errors)).collect::<Vec<_>>(),
    );
    let availability_chart = chart::bars_chart(
        &t,
        "dashboard-availability",
        t.get("dashboard.chart.availability"),
        "%",
        &figures
            .banks
            .iter()
            .map(|b| (b.name.clone(), b.availability.hundredths.map(|h| h as f64 / 100.0), None))
            .collect::<Vec<_>>(),
    );
    let latency_chart = chart::bars_chart(
        &t,
        "dashboard-latency",
        t.get("dashboard.chart.latency"),
        "ms",
        &figures
            .banks
            .iter()
            .map(|b| (b.name.clone(), b.p95_ms_current, b.sla_ms.map(|s| s as f64)))
            .collect::<Vec<_>>(),
    );
    let query = match preset {
        Preset::Custom => format!("period=custom&from={}&to={}", figures.from, figures.to),
        other => format!("period={}", other.as_str()),
    };
    let page = DashboardPage {
        preset,
        from: figures.from.clone(),
        to: figures.to.clone(),
        previous_from: figures.previous_from.clone(),
        previous_to: figures.previous_to.clone(),
        time_zone: state.config.time_zone.name().to_string(),
        headlines,
        requests_chart,
        availability_chart,
        latency_chart,
        tables: tables.iter().map(|table| view_of(&t, table)).collect(),
        query,
        t,
    };
    Ok(render(&page).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn params(period: &str, from: &str, to: &str) -> Params {
        Params { period: Some(period.into()), from: Some(from.into()), to: Some(to.into()), format: None, table: None }
    }

    #[test]
    fn presets_and_custom_periods() {
        let today: Date = "2026-12-03".parse().unwrap();
        let (preset, month) = parse_period(&Params::default(), today).unwrap();
        assert_eq!((preset, month), (Preset::ThisMonth, Period::month(2026, 12).unwrap()));
        let (_, previous) = parse_period(&params("previous_month", "", ""), today).unwrap();
        assert_eq!(previous, Period::month(2026, 11).unwrap());
        let (_, custom) = parse_period(&params("custom", "2026-11-10", "2026-11-20"), today).unwrap();
        assert_eq!(custom.days(), 11);
        assert_eq!(parse_period(&params("custom", "2026-11-20", "2026-11-10"), today), Err("reports.error.order"));
        assert_eq!(parse_period(&params("custom", "2024-01-01", "2026-01-01"), today), Err("reports.error.too_long"));
        assert_eq!(parse_period(&params("custom", "10.11.2026", "2026-11-20"), today), Err("reports.error.date"));
        assert_eq!(parse_period(&params("fortnight", "", ""), today), Err("reports.error.value"));
    }
}
