//! Participants' reports: an organisation's own usage, as an API provider (per API, per API user) and as an API
//! user (per bank, per application), over an interval of the operator's local days, with latency against each API's
//! SLA, consents' changes concerning it and its APIs' daily availability. The page in the personal account, its
//! CSV/JSON exports and the mTLS API ([`super::api`]) all build the same [`Report`].
//!
//! Who may call each route:
//! - `GET /org/reports` — any member of a participant (administrator, developer, analyst): the report of their own
//!   organisation only. `?format=csv|json&table=NAME` downloads one table, `?format=json` without a table the whole
//!   report. Operator roles are refused (they use the dashboard), anonymous callers sent to sign in.
//!
//! **Scope.** Every query names the organisation as the provider or the API user of the exchanges it counts, so no
//! parameter can reach another organisation's traffic; a filter naming an API or application that is not the
//! organisation's own is refused as not found.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Map, json};
use time::OffsetDateTime;

use super::ReportsError;
use super::export::{self, Cell, Format, Interval, Table};
use super::usage::{self, Granularity, Group, GroupBy, MAX_HOURLY_DAYS, UsageFilter, UsageRow};
use crate::apps::AppMode;
use crate::catalog::Environment;
use crate::participants::Organisation;
use crate::store::StoreError;
use crate::store::calendar::{day_start, local_date};
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::ParticipantMember;

pub fn router() -> Router<AppState> {
    Router::new().route("/org/reports", get(page))
}

/// The longest interval a report covers (a year and a day: a leap year).
pub const MAX_DAYS: i64 = 366;

crate::text_enum! {
    /// Which side of its exchanges an organisation reads.
    pub enum View {
        Provider = "provider",
        User = "user",
    }
}

crate::text_enum! {
    /// The interval presets of the page.
    pub enum Period {
        Day = "day",
        Week = "week",
        Month = "month",
        Custom = "custom",
    }
}

/// The parameters of a report, as the page's form and the API send them (all optional; `from` and `to` are local
/// dates, `to` not included).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    pub view: Option<String>,
    pub period: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub granularity: Option<String>,
    pub group_by: Option<String>,
    pub environment: Option<String>,
    pub api: Option<String>,
    pub application: Option<String>,
    pub format: Option<String>,
    pub table: Option<String>,
}

/// Why parameters were refused: which parameter, and a text key saying why (the API answers the English text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub parameter: &'static str,
    pub key: &'static str,
}

/// A report asked for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub view: View,
    pub period: Period,
    /// Local dates, `to` not included.
    pub from: Date,
    pub to: Date,
    pub granularity: Granularity,
    /// Set when hours were asked for an interval too long for them, and days given instead.
    pub granularity_lowered: bool,
    pub environment: AppMode,
    pub api: Option<i64>,
    pub application: Option<i64>,
}

fn refuse<T>(parameter: &'static str, key: &'static str) -> Result<T, Refusal> {
    Err(Refusal { parameter, key })
}

fn parse_word<T: std::str::FromStr>(value: &Option<String>, parameter: &'static str) -> Result<Option<T>, Refusal> {
    match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(word) => word.parse().map(Some).or_else(|_| refuse(parameter, "reports.error.value")),
    }
}

/// The days a report may name: from the Unix epoch to the end of 2199 (every clock and calendar conversion holds).
fn plausible(date: Date) -> bool {
    (1970..=2199).contains(&date.year())
}

fn parse_date(value: &Option<String>, parameter: &'static str) -> Result<Option<Date>, Refusal> {
    match parse_word::<Date>(value, parameter) {
        Ok(date) if date.is_none_or(plausible) => Ok(date),
        _ => refuse(parameter, "reports.error.date"),
    }
}

impl Request {
    /// Checks `params` for `org` on local date `today`. `strict` (the API) refuses empty parameters and hours over a
    /// long interval; otherwise (the page) empty means none, and days are given instead of hours and the page says so.
    pub fn parse(params: &Params, org: &Organisation, today: Date, strict: bool) -> Result<Request, Refusal> {
        // The API takes exact parameters: one given empty is refused (a page's form sends "all" as empty).
        if strict {
            for (parameter, value) in [
                ("view", &params.view),
                ("period", &params.period),
                ("from", &params.from),
                ("to", &params.to),
                ("granularity", &params.granularity),
                ("group_by", &params.group_by),
                ("environment", &params.environment),
                ("api", &params.api),
                ("application", &params.application),
            ] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    return refuse(parameter, "reports.error.value");
                }
            }
        }
        let view = match parse_word::<View>(&params.view, "view")? {
            Some(view) => view,
            None if org.is_provider => View::Provider,
            None => View::User,
        };
        let allowed = match view {
            View::Provider => org.is_provider,
            View::User => org.is_user,
        };
        if !allowed {
            return refuse("view", "reports.error.view");
        }
        let period = parse_word::<Period>(&params.period, "period")?;
        let (from, to) = (parse_date(&params.from, "from")?, parse_date(&params.to, "to")?);
        let (period, from, to) = match (period, from, to) {
            (Some(Period::Custom) | None, Some(from), Some(to)) => (Period::Custom, from, to),
            (Some(Period::Custom), _, _) => return refuse("from", "reports.error.date"),
            (None, Some(_), None) | (None, None, Some(_)) => return refuse("to", "reports.error.date"),
            (preset, _, _) => {
                let preset = preset.unwrap_or(Period::Week);
                let tomorrow = today.tomorrow().or_else(|_| refuse("to", "reports.error.date"))?;
                let from = match preset {
                    Period::Day | Period::Custom => today,
                    Period::Week => today.checked_sub(jiff::Span::new().days(6)).unwrap_or(today),
                    Period::Month => today.first_of_month(),
                };
                let to = match preset {
                    Period::Month => today.last_of_month().tomorrow().unwrap_or(tomorrow),
                    _ => tomorrow,
                };
                (preset, from, to)
            }
        };
        if to <= from {
            return refuse("to", "reports.error.order");
        }
        let days = (to - from).get_days() as i64;
        if days > MAX_DAYS {
            return refuse("to", "reports.error.too_long");
        }
        let mut granularity = parse_word::<Granularity>(&params.granularity, "granularity")?.unwrap_or(if days > 62 {
            Granularity::Month
        } else if days <= 1 {
            Granularity::Hour
        } else {
            Granularity::Day
        });
        let mut granularity_lowered = false;
        if granularity == Granularity::Hour && days > MAX_HOURLY_DAYS {
            if strict {
                return refuse("granularity", "reports.error.hours");
            }
            granularity = Granularity::Day;
            granularity_lowered = true;
        }
        let environment = parse_word::<AppMode>(&params.environment, "environment")?.unwrap_or(AppMode::Production);
        let id = |value: &Option<String>, parameter: &'static str| -> Result<Option<i64>, Refusal> {
            parse_word::<i64>(value, parameter)
        };
        let api = id(&params.api, "api")?;
        let application = id(&params.application, "application")?;
        if api.is_some() && view != View::Provider {
            return refuse("api", "reports.error.api");
        }
        if application.is_some() && view != View::User {
            return refuse("application", "reports.error.application");
        }
        Ok(Request { view, period, from, to, granularity, granularity_lowered, environment, api, application })
    }

    pub fn interval(&self) -> Interval {
        Interval { from: self.from.to_string(), to: self.to.to_string() }
    }
}

/// A report of one organisation: its tables (in page order) and the series the chart draws.
#[derive(Debug, Clone)]
pub struct Report {
    pub request: Request,
    pub tables: Vec<Table>,
    pub series: Vec<UsageRow>,
    /// The organisation's APIs with their SLA (provider view), for the page's filter.
    pub apis: Vec<(i64, String)>,
    /// The organisation's applications (user view), for the page's filter.
    pub applications: Vec<(i64, String)>,
}

impl Report {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("parameter {}: {}", .0.parameter, .0.key)]
    Refused(Refusal),
    /// An API or application filter that is not the organisation's own.
    #[error("no such API or application of this organisation")]
    NotFound,
    #[error(transparent)]
    Reports(#[from] ReportsError),
}

impl From<rusqlite::Error> for ReportError {
    fn from(error: rusqlite::Error) -> Self {
        ReportError::Reports(error.into())
    }
}

impl From<StoreError> for ReportError {
    fn from(error: StoreError) -> Self {
        ReportError::Reports(ReportsError::Store(error))
    }
}

/// Where local date `date` starts.
pub fn instant(zone: &TimeZone, date: Date) -> Result<OffsetDateTime, ReportsError> {
    let unix = day_start(zone, date)?;
    OffsetDateTime::from_unix_timestamp(unix).map_err(|_| ReportsError::EmptyInterval)
}

/// A period label as shown and exported: UTC hours become the operator's local time (`2026-12-03 22:00`).
pub fn local_period(zone: &TimeZone, label: &str) -> String {
    match crate::clock::parse(label) {
        Ok(t) => match jiff::Timestamp::from_second(t.unix_timestamp()) {
            Ok(ts) => zone.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string(),
            Err(_) => label.to_string(),
        },
        Err(_) => label.to_string(),
    }
}

const FIGURES: [&str; 7] = ["requests", "client_errors", "server_errors", "mean_ms", "p50_ms", "p95_ms", "p99_ms"];

fn figures(row: &UsageRow) -> Vec<Cell> {
    vec![
        Cell::count(row.requests),
        Cell::count(row.client_errors),
        Cell::count(row.server_errors),
        Cell::ms(row.mean_latency_ms()),
        Cell::ms(row.p50_ms()),
        Cell::ms(row.p95_ms()),
        Cell::ms(row.p99_ms()),
    ]
}

fn grouped(name: &'static str, key: &'static str, rows: &[UsageRow], label: impl Fn(&Group) -> String) -> Table {
    let mut columns = vec![key];
    columns.extend(FIGURES);
    let mut table = Table::new(name, &columns);
    for row in rows {
        let mut cells = vec![Cell::text(row.group.as_ref().map(&label).unwrap_or_default())];
        cells.extend(figures(row));
        table.push(cells);
    }
    table
}

/// Builds `request`'s report for `org` on a reader connection.
pub fn build(
    conn: &Connection,
    zone: &TimeZone,
    org: &Organisation,
    request: &Request,
    now: OffsetDateTime,
) -> Result<Report, ReportError> {
    let own_apis: Vec<crate::catalog::Api> =
        if org.is_provider { crate::catalog::list_for_organisation(conn, org.id)? } else { Vec::new() };
    let own_apps: Vec<crate::apps::Application> =
        if org.is_user { crate::apps::list_for_organisation(conn, org.id)? } else { Vec::new() };
    if request.api.is_some_and(|id| !own_apis.iter().any(|a| a.id == id))
        || request.application.is_some_and(|id| !own_apps.iter().any(|a| a.id == id))
    {
        return Err(ReportError::NotFound);
    }
    let (provider, user) = match request.view {
        View::Provider => (Some(org.id), None),
        View::User => (None, Some(org.id)),
    };
    let filter = UsageFilter {
        from: instant(zone, request.from)?,
        to: instant(zone, request.to)?,
        environment: request.environment,
        provider,
        user,
        application: request.application,
        api: request.api,
    };
    let granularity = request.granularity;
    let totals = |group: GroupBy| usage::totals(conn, zone, &filter, Some(group));
    // Names of the organisations, APIs and applications the report mentions.
    let mut organisations: HashMap<i64, String> = HashMap::new();
    let mut organisation_name = |id: i64| -> rusqlite::Result<String> {
        if let Some(name) = organisations.get(&id) {
            return Ok(name.clone());
        }
        let name = crate::participants::organisation(conn, id)?.map(|o| o.name).unwrap_or_else(|| format!("#{id}"));
        organisations.insert(id, name.clone());
        Ok(name)
    };
    let mut apis: HashMap<i64, (String, i64)> = HashMap::new();
    let mut api_of = |id: i64| -> rusqlite::Result<(String, i64)> {
        if let Some(found) = apis.get(&id) {
            return Ok(found.clone());
        }
        let found = crate::catalog::api(conn, id)?
            .map(|a| (format!("{} {}", a.name, a.version), a.sla_response_ms))
            .unwrap_or_else(|| (format!("#{id}"), 0));
        apis.insert(id, found.clone());
        Ok(found)
    };

    let series = usage::series(conn, zone, &filter, granularity, None)?;
    let mut tables = Vec::new();
    let mut total = Table::new("totals", &FIGURES);
    for row in usage::totals(conn, zone, &filter, None)? {
        total.push(figures(&row));
    }
    tables.push(total);
    let mut columns = vec!["period"];
    columns.extend(FIGURES);
    let mut per_period = Table::new("series", &columns);
    for row in &series {
        let mut cells = vec![Cell::text(local_period(zone, row.period.as_deref().unwrap_or_default()))];
        cells.extend(figures(row));
        per_period.push(cells);
    }
    tables.push(per_period);
    tables.push(grouped("by_endpoint", "endpoint", &totals(GroupBy::Endpoint)?, |g| match g {
        Group::Endpoint(e) => e.clone(),
        _ => String::new(),
    }));
    tables.push(grouped("by_status_class", "status_class", &totals(GroupBy::StatusClass)?, |g| match g {
        Group::StatusClass(s) => s.clone(),
        _ => String::new(),
    }));
    tables.push(grouped("by_error_code", "error_code", &totals(GroupBy::ErrorCode)?, |g| match g {
        Group::ErrorCode(Some(code)) => code.clone(),
        _ => String::new(),
    }));

    // Per API, against its SLA.
    let mut by_api = Table::new(
        "by_api",
        &[
            "api_id",
            "api",
            "sla_ms",
            "requests",
            "client_errors",
            "server_errors",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "p95_within_sla",
        ],
    );
    for row in totals(GroupBy::Api)? {
        let Some(Group::Api(Some(id))) = row.group else { continue };
        let (name, sla) = api_of(id)?;
        let within = match row.p95_ms() {
            Some(p95) if sla > 0 => Cell::text(if p95 <= sla as f64 { "yes" } else { "no" }),
            _ => Cell::Empty,
        };
        by_api.push(vec![
            Cell::Integer(id),
            Cell::text(name),
            Cell::Integer(sla),
            Cell::count(row.requests),
            Cell::count(row.client_errors),
            Cell::count(row.server_errors),
            Cell::ms(row.p50_ms()),
            Cell::ms(row.p95_ms()),
            Cell::ms(row.p99_ms()),
            within,
        ]);
    }
    tables.push(by_api);

    let mut breaches = Table::new("sla_breaches", &["period", "api_id", "api", "sla_ms", "requests", "p95_ms"]);
    for breach in usage::sla_breaches(conn, zone, &filter, granularity)? {
        let (name, _) = api_of(breach.api_id)?;
        breaches.push(vec![
            Cell::text(local_period(zone, &breach.period)),
            Cell::Integer(breach.api_id),
            Cell::text(name),
            Cell::count(breach.sla_response_ms),
            Cell::count(breach.requests),
            Cell::ms(Some(breach.p95_ms)),
        ]);
    }
    tables.push(breaches);

    match request.view {
        View::Provider => {
            let rows = totals(GroupBy::User)?;
            let mut table = grouped("by_user", "api_user", &rows, |_| String::new());
            for (cells, row) in table.rows.iter_mut().zip(&rows) {
                if let Some(Group::User(id)) = row.group {
                    cells[0] = Cell::text(organisation_name(id)?);
                }
            }
            tables.push(table);
        }
        View::User => {
            let rows = totals(GroupBy::Provider)?;
            let mut table = grouped("by_bank", "bank", &rows, |_| String::new());
            for (cells, row) in table.rows.iter_mut().zip(&rows) {
                if let Some(Group::Provider(Some(id))) = row.group {
                    cells[0] = Cell::text(organisation_name(id)?);
                } else {
                    cells[0] = Cell::text("—");
                }
            }
            tables.push(table);
            let rows = totals(GroupBy::Application)?;
            let table = grouped("by_application", "application", &rows, |g| match g {
                Group::Application(id) => {
                    own_apps.iter().find(|a| a.id == *id).map(|a| a.name.clone()).unwrap_or_else(|| format!("#{id}"))
                }
                _ => String::new(),
            });
            tables.push(table);
        }
    }

    let mut consents = Table::new("consents", &["period", "status", "changes"]);
    for change in super::consents::changes(conn, zone, &filter, Some(granularity))? {
        consents.push(vec![
            Cell::text(local_period(zone, change.period.as_deref().unwrap_or_default())),
            Cell::text(change.status),
            Cell::count(change.changes),
        ]);
    }
    tables.push(consents);

    if request.view == View::Provider {
        let environment = match request.environment {
            AppMode::Production => Environment::Production,
            AppMode::Sandbox => Environment::Sandbox,
        };
        let mut availability = Table::new(
            "availability",
            &["date", "api_id", "api", "availability_percent", "unplanned_minutes", "planned_minutes"],
        );
        let (first, last) = (to_time_date(request.from), request.to.yesterday().ok().and_then(to_time_date));
        if let (Some(first), Some(last)) = (first, last) {
            for api in own_apis.iter().filter(|a| request.api.is_none_or(|id| id == a.id)) {
                for day in crate::availability::daily(
                    conn,
                    zone,
                    crate::availability::Subject::Api(api.id),
                    environment,
                    first,
                    last,
                    now,
                )? {
                    availability.push(vec![
                        Cell::text(day.date.clone()),
                        Cell::Integer(api.id),
                        Cell::text(format!("{} {}", api.name, api.version)),
                        Cell::Decimal { value: day.hundredths as f64 / 100.0, decimals: 2 },
                        Cell::Integer(day.unplanned_minutes()),
                        Cell::Integer(day.planned_minutes()),
                    ]);
                }
            }
        }
        tables.push(availability);
    }

    Ok(Report {
        request: request.clone(),
        tables,
        series,
        apis: own_apis.iter().map(|a| (a.id, format!("{} {}", a.name, a.version))).collect(),
        applications: own_apps.iter().map(|a| (a.id, a.name.clone())).collect(),
    })
}

/// A group's value in JSON: its text or number (`null` for none).
pub fn group_json(group: Option<&Group>) -> serde_json::Value {
    match group {
        Some(Group::Endpoint(text) | Group::StatusClass(text)) => json!(text),
        Some(Group::ErrorCode(code)) => json!(code),
        Some(Group::Api(id) | Group::Provider(id)) => json!(id),
        Some(Group::User(id) | Group::Application(id)) => json!(id),
        None => serde_json::Value::Null,
    }
}

fn to_time_date(date: Date) -> Option<time::Date> {
    let month = time::Month::try_from(u8::try_from(date.month()).ok()?).ok()?;
    time::Date::from_calendar_date(i32::from(date.year()), month, u8::try_from(date.day()).ok()?).ok()
}

/// The whole report as one JSON document (the page's `?format=json` and the API).
pub fn json(report: &Report, organisation: &Organisation) -> serde_json::Value {
    let request = &report.request;
    let mut extra = Map::new();
    extra.insert("organisation_id".into(), json!(organisation.id));
    extra.insert("view".into(), json!(request.view.as_str()));
    extra.insert("granularity".into(), json!(request.granularity.as_str()));
    extra.insert("environment".into(), json!(request.environment.as_str()));
    extra.insert("granularity_lowered".into(), json!(request.granularity_lowered));
    export::json_document("usage", &request.interval(), &report.tables, extra)
}

// ---------------------------------------------------------------------------------------------------------------
// The page.

/// A table as the page shows it.
struct TableView {
    name: &'static str,
    title: &'static str,
    headers: Vec<&'static str>,
    /// Cells as shown, and whether each holds a number (aligned right).
    rows: Vec<Vec<(String, bool)>>,
}

#[derive(Template)]
#[template(path = "reports/no_role.html")]
struct NoRolePage {
    t: Texts,
    org_name: String,
}

#[derive(Template)]
#[template(path = "reports/participant.html")]
struct ReportPage {
    t: Texts,
    org_name: String,
    request: Request,
    is_provider: bool,
    is_user: bool,
    time_zone: String,
    chart: String,
    tables: Vec<TableView>,
    /// Filter choices: id, name, chosen.
    apis: Vec<(i64, String, bool)>,
    applications: Vec<(i64, String, bool)>,
    /// The query string of this report without `format` and `table`, for the export links.
    query: String,
    max_hourly_days: i64,
}

fn table_title(name: &str) -> &'static str {
    match name {
        "totals" => "reports.table.totals",
        "series" => "reports.table.series",
        "by_endpoint" => "reports.table.by_endpoint",
        "by_status_class" => "reports.table.by_status_class",
        "by_error_code" => "reports.table.by_error_code",
        "by_api" => "reports.table.by_api",
        "sla_breaches" => "reports.table.sla_breaches",
        "by_user" => "reports.table.by_user",
        "by_bank" => "reports.table.by_bank",
        "by_application" => "reports.table.by_application",
        "consents" => "reports.table.consents",
        "availability" => "reports.table.availability",
        _ => "reports.title",
    }
}

fn column_title(column: &str) -> &'static str {
    match column {
        "period" => "reports.col.period",
        "requests" => "reports.col.requests",
        "client_errors" => "reports.col.client_errors",
        "server_errors" => "reports.col.server_errors",
        "mean_ms" => "reports.col.mean_ms",
        "p50_ms" => "reports.col.p50_ms",
        "p95_ms" => "reports.col.p95_ms",
        "p99_ms" => "reports.col.p99_ms",
        "endpoint" => "reports.col.endpoint",
        "status_class" => "reports.col.status_class",
        "error_code" => "reports.col.error_code",
        "api_id" => "reports.col.api_id",
        "api" => "reports.col.api",
        "sla_ms" => "reports.col.sla_ms",
        "p95_within_sla" => "reports.col.p95_within_sla",
        "api_user" => "reports.col.api_user",
        "bank" => "reports.col.bank",
        "application" => "reports.col.application",
        "status" => "reports.col.status",
        "changes" => "reports.col.changes",
        "date" => "reports.col.date",
        "availability_percent" => "reports.col.availability_percent",
        "unplanned_minutes" => "reports.col.unplanned_minutes",
        "planned_minutes" => "reports.col.planned_minutes",
        _ => "reports.title",
    }
}

fn view_of(table: &Table) -> TableView {
    TableView {
        name: table.name,
        title: table_title(table.name),
        headers: table.columns.iter().map(|c| column_title(c)).collect(),
        rows: table
            .rows
            .iter()
            .map(|row| row.iter().map(|c| (c.shown(), matches!(c, Cell::Integer(_) | Cell::Decimal { .. }))).collect())
            .collect(),
    }
}

fn query_string(request: &Request) -> String {
    let mut query = format!(
        "view={}&period={}&from={}&to={}&granularity={}&environment={}",
        request.view.as_str(),
        request.period.as_str(),
        request.from,
        request.to,
        request.granularity.as_str(),
        request.environment.as_str()
    );
    if let Some(api) = request.api {
        query.push_str(&format!("&api={api}"));
    }
    if let Some(application) = request.application {
        query.push_str(&format!("&application={application}"));
    }
    query
}

impl From<ReportError> for PageError {
    fn from(error: ReportError) -> PageError {
        match error {
            ReportError::Refused(refusal) => PageError::new(StatusCode::BAD_REQUEST, refusal.key),
            ReportError::NotFound => PageError::not_found(),
            ReportError::Reports(ReportsError::EmptyInterval) => {
                PageError::new(StatusCode::BAD_REQUEST, "reports.error.order")
            }
            ReportError::Reports(ReportsError::IntervalTooLong { .. }) => {
                PageError::new(StatusCode::BAD_REQUEST, "reports.error.hours")
            }
            ReportError::Reports(e) => PageError::internal(&e),
        }
    }
}

/// The organisation's local date now.
pub fn today(zone: &TimeZone, now: OffsetDateTime) -> Result<Date, ReportsError> {
    Ok(local_date(zone, now.unix_timestamp())?)
}

/// Any member of a participant: their organisation's report, as a page or as an export.
async fn page(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    if !who.org.is_provider && !who.org.is_user {
        // Not accredited yet (the roles come with accreditation): a page that says so, not a refused parameter.
        return Ok(render(&NoRolePage { t: Texts::current(), org_name: who.org.name.clone() }));
    }
    let zone = state.config.time_zone.zone().clone();
    let now = state.clock.now();
    let org = who.org.clone();
    let request = Request::parse(&params, &org, today(&zone, now).map_err(ReportError::from)?, false)
        .map_err(ReportError::Refused)?;
    let format = parse_word::<Format>(&params.format, "format").map_err(ReportError::Refused)?;
    let report = {
        let (zone, org, request) = (zone.clone(), org.clone(), request.clone());
        state.db.read(move |conn| build(conn, &zone, &org, &request, now)).await?
    };
    let interval = request.interval();
    match (format, params.table.as_deref().filter(|t| !t.is_empty())) {
        (Some(format), Some(name)) => {
            let table = report.table(name).ok_or_else(PageError::not_found)?;
            return Ok(export::table_download("usage", &interval, table, format));
        }
        (Some(Format::Json), None) => {
            let name = export::filename("usage", None, &interval, Format::Json);
            return Ok(export::download(Format::Json, &name, json(&report, &org).to_string()));
        }
        (Some(Format::Csv), None) => return Err(PageError::new(StatusCode::BAD_REQUEST, "reports.error.table")),
        (None, _) => {}
    }
    let t = Texts::current();
    let chart = crate::web::chart::requests_chart(
        &t,
        "usage-chart",
        &report
            .series
            .iter()
            .map(|r| {
                (
                    local_period(&zone, r.period.as_deref().unwrap_or_default()),
                    r.requests,
                    r.client_errors + r.server_errors,
                )
            })
            .collect::<Vec<_>>(),
    );
    let page = ReportPage {
        t,
        org_name: org.name.clone(),
        is_provider: org.is_provider,
        is_user: org.is_user,
        time_zone: state.config.time_zone.name().to_string(),
        chart,
        tables: report.tables.iter().map(view_of).collect(),
        apis: report.apis.iter().map(|(id, name)| (*id, name.clone(), request.api == Some(*id))).collect(),
        applications: report
            .applications
            .iter()
            .map(|(id, name)| (*id, name.clone(), request.application == Some(*id)))
            .collect(),
        query: query_string(&request),
        request,
        max_hourly_days: MAX_HOURLY_DAYS,
    };
    Ok(render(&page).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn organisation(is_provider: bool, is_user: bool) -> Organisation {
        Organisation {
            id: 7,
            bin: crate::kz::Bin::parse("000000000000").unwrap(),
            name: String::new(),
            licence_number: String::new(),
            contact_email: String::new(),
            contact_phone: String::new(),
            description: String::new(),
            website: String::new(),
            has_logo: false,
            status: crate::participants::OrgStatus::Accredited,
            status_reason: String::new(),
            is_provider,
            is_user,
            created_at: String::new(),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        from_query(&query.join("&"))
    }

    fn from_query(query: &str) -> Params {
        let value: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(value)).unwrap()
    }

    #[test]
    fn presets_custom_intervals_and_refusals() {
        let today: Date = "2026-12-03".parse().unwrap();
        let bank = organisation(true, false);
        let week = Request::parse(&params(&[]), &bank, today, false).unwrap();
        assert_eq!(
            (week.view, week.from.to_string(), week.to.to_string()),
            (View::Provider, "2026-11-27".into(), "2026-12-04".into())
        );
        assert_eq!(week.granularity, Granularity::Day);
        let day = Request::parse(&params(&[("period", "day")]), &bank, today, false).unwrap();
        assert_eq!((day.from.to_string(), day.granularity), ("2026-12-03".into(), Granularity::Hour));
        let month = Request::parse(&params(&[("period", "month")]), &bank, today, false).unwrap();
        assert_eq!((month.from.to_string(), month.to.to_string()), ("2026-12-01".into(), "2027-01-01".into()));
        let custom = [("from", "2026-01-01"), ("to", "2026-03-01"), ("granularity", "hour")];
        let lowered = Request::parse(&params(&custom), &bank, today, false).unwrap();
        assert!(lowered.granularity_lowered && lowered.granularity == Granularity::Day);
        let refused = |pairs: &[(&str, &str)], org: &Organisation, strict: bool| {
            Request::parse(&params(pairs), org, today, strict).unwrap_err().parameter
        };
        assert_eq!(refused(&custom, &bank, true), "granularity");
        assert_eq!(refused(&[("to", "")], &bank, true), "to");
        assert!(Request::parse(&params(&[("api", "")]), &bank, today, false).is_ok());
        assert_eq!(refused(&[("view", "user")], &bank, false), "view");
        assert_eq!(refused(&[("view", "provider")], &organisation(false, true), false), "view");
        assert_eq!(refused(&[("from", "2026-02-01"), ("to", "2026-01-01")], &bank, false), "to");
        assert_eq!(refused(&[("from", "2024-01-01"), ("to", "2026-01-01")], &bank, false), "to");
        assert_eq!(refused(&[("from", "01.02.2026"), ("to", "2026-03-01")], &bank, false), "from");
        assert_eq!(refused(&[("granularity", "minute")], &bank, false), "granularity");
        assert_eq!(refused(&[("from", "-009999-01-01"), ("to", "2026-03-01")], &bank, false), "from");
        assert_eq!(refused(&[("environment", "staging")], &bank, false), "environment");
        assert_eq!(refused(&[("application", "3")], &bank, false), "application");
        assert_eq!(refused(&[("api", "3")], &organisation(false, true), false), "api");
    }
}
