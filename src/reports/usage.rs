//! Usage reports read from the rollups (never from the raw exchanges): totals and series over an interval, grouped
//! by endpoint, status class, error code, API, provider, API user or application, with latency percentiles read from
//! the summed histograms, and the periods whose p95 exceeded an API's SLA.
//!
//! Which rollup answers: the monthly rows when the interval runs from the start of one local month to another and
//! the figures are wanted per month or in total; the daily rows when it runs from one local midnight to another (day,
//! week, month and custom intervals of whole days — what the pages ask) and the granularity is not hours; otherwise
//! the hourly rows, at hour precision (the hours that overlap the interval), for at most [`MAX_HOURLY_DAYS`] days.
//! Queries that name no API user or application and do not group by them read the operator's rollups of the same
//! period (`usage_platform_*`, the same figures without those two columns), a few hundred rows a period; of those,
//! daily queries that group by nothing, by bank or by API (and SLA breaches per day) read the operator's daily rows
//! per bank API (`usage_api_daily`: no endpoint, status class or error code, the 4xx and 5xx counts as columns), a
//! few dozen rows a day.
//! Sandbox traffic is its own environment: every query names the one it reads.
//!
//! ```no_run
//! # fn f(conn: &rusqlite::Connection, zone: &jiff::tz::TimeZone) -> Result<(), kopir::reports::ReportsError> {
//! use kopir::reports::usage::{self, Granularity, GroupBy, UsageFilter};
//! let from = time::macros::datetime!(2026-11-30 19:00 UTC); // 1 December, Almaty
//! let filter = UsageFilter { provider: Some(7), ..UsageFilter::production(from, from + time::Duration::days(7)) };
//! for row in usage::series(conn, zone, &filter, Granularity::Day, Some(GroupBy::Endpoint))? {
//!     println!("{:?} {:?} {} p95 {:?}", row.period, row.group, row.requests, row.p95_ms());
//! }
//! # Ok(()) }
//! ```

use jiff::tz::TimeZone;
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};
use time::OffsetDateTime;

use super::ReportsError;
use super::histogram::{BUCKETS, Histogram, columns};
use crate::apps::AppMode;
use crate::store::calendar::{day_start, local_date};

/// The longest interval the hourly rows answer (longer ones need whole local days).
pub const MAX_HOURLY_DAYS: i64 = 31;

crate::text_enum! {
    /// The length of a series' periods: UTC hours, or the operator's days and months.
    pub enum Granularity {
        Hour = "hour",
        Day = "day",
        Month = "month",
    }
}

crate::text_enum! {
    /// What rows are grouped by.
    pub enum GroupBy {
        Endpoint = "endpoint",
        StatusClass = "status_class",
        ErrorCode = "error_code",
        Api = "api",
        Provider = "provider",
        User = "user",
        Application = "application",
    }
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::Endpoint => "endpoint",
            GroupBy::StatusClass => "status_class",
            GroupBy::ErrorCode => "error_code",
            GroupBy::Api => "api_id",
            GroupBy::Provider => "provider_organisation_id",
            GroupBy::User => "user_organisation_id",
            GroupBy::Application => "application_id",
        }
    }
}

/// The value a row is grouped under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Group {
    Endpoint(String),
    /// `2xx`, `4xx`, `5xx`…
    StatusClass(String),
    /// The ObErrorCode answered; `None` for exchanges that were served.
    ErrorCode(Option<String>),
    /// `None` for requests refused before any bank's API was reached.
    Api(Option<i64>),
    Provider(Option<i64>),
    User(i64),
    Application(i64),
}

/// Which exchanges a report counts: `[from, to)`, one environment, and optionally one provider, API user,
/// application, API.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageFilter {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub environment: AppMode,
    pub provider: Option<i64>,
    pub user: Option<i64>,
    pub application: Option<i64>,
    pub api: Option<i64>,
}

impl UsageFilter {
    /// All production traffic in `[from, to)`.
    pub fn production(from: OffsetDateTime, to: OffsetDateTime) -> UsageFilter {
        UsageFilter {
            from,
            to,
            environment: AppMode::Production,
            provider: None,
            user: None,
            application: None,
            api: None,
        }
    }
}

/// One row of a report: a period (for series), a group (when grouped) and the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// The period's label: `2026-12-03T17:00:00Z` (UTC hour), `2026-12-03` (local day), `2026-12` (local month).
    pub period: Option<String>,
    pub group: Option<Group>,
    pub requests: u64,
    pub bytes: u64,
    /// Requests answered 4xx and 5xx.
    pub client_errors: u64,
    pub server_errors: u64,
    pub latency_sum_ms: u64,
    pub latency: Histogram,
}

impl UsageRow {
    pub fn mean_latency_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.latency_sum_ms as f64 / self.requests as f64)
    }
    pub fn p50_ms(&self) -> Option<f64> {
        self.latency.percentile(0.50)
    }
    pub fn p95_ms(&self) -> Option<f64> {
        self.latency.percentile(0.95)
    }
    pub fn p99_ms(&self) -> Option<f64> {
        self.latency.percentile(0.99)
    }
}

/// A period in which an API's p95 latency exceeded its passport's `sla_response_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaBreach {
    pub period: String,
    pub api_id: i64,
    pub provider_organisation_id: i64,
    pub sla_response_ms: u64,
    pub requests: u64,
    pub p95_ms: f64,
}

/// The rollup rows that answer a query, and the bounds in their period column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Hourly { from: i64, to: i64 },
    Daily { from: String, to: String },
    Monthly { from: String, to: String },
}

/// How finely the rollup that answers is keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Every column, API users and applications included.
    Fine,
    /// The operator's: without the API-user and application columns.
    Platform,
    /// The operator's per bank API (daily only): without endpoint, status class and error code either, the 4xx and
    /// 5xx counts as columns.
    PerApi,
}

impl Rows {
    /// The coarsest rows of `source` that answer a query of `filter` grouped by `group`.
    fn answering(source: &Source, filter: &UsageFilter, group: Option<GroupBy>) -> Rows {
        if !platform_rows(filter, group) {
            Rows::Fine
        } else if matches!(source, Source::Daily { .. })
            && matches!(group, None | Some(GroupBy::Provider | GroupBy::Api))
        {
            Rows::PerApi
        } else {
            Rows::Platform
        }
    }
}

impl Source {
    /// The rollup table of `rows`.
    fn table(&self, rows: Rows) -> &'static str {
        match (self, rows) {
            (Source::Hourly { .. }, Rows::Fine) => "usage_hourly",
            (Source::Daily { .. }, Rows::Fine) => "usage_daily",
            (Source::Monthly { .. }, Rows::Fine) => "usage_monthly",
            (Source::Hourly { .. }, _) => "usage_platform_hourly",
            (Source::Daily { .. }, Rows::Platform) => "usage_platform_daily",
            (Source::Daily { .. }, Rows::PerApi) => "usage_api_daily",
            (Source::Monthly { .. }, _) => "usage_platform_monthly",
        }
    }

    fn period_column(&self) -> &'static str {
        match self {
            Source::Hourly { .. } => "hour",
            Source::Daily { .. } => "day",
            Source::Monthly { .. } => "month",
        }
    }

    /// The SQL naming a row's period at `granularity` (`alias` is the table's, with its dot, or empty).
    fn period(&self, granularity: Granularity, alias: &str) -> String {
        match (self, granularity) {
            (Source::Hourly { .. }, Granularity::Hour) => format!("{alias}hour"),
            (Source::Hourly { .. }, Granularity::Day) => format!("kopir_local_day({alias}hour)"),
            (Source::Hourly { .. }, Granularity::Month) => format!("substr(kopir_local_day({alias}hour), 1, 7)"),
            (Source::Daily { .. }, Granularity::Day | Granularity::Hour) => format!("{alias}day"),
            (Source::Daily { .. }, Granularity::Month) => format!("substr({alias}day, 1, 7)"),
            (Source::Monthly { .. }, _) => format!("{alias}month"),
        }
    }

    fn bounds(&self) -> [Value; 2] {
        match self {
            // The hours that overlap the interval.
            Source::Hourly { from, to } => [Value::Integer(from - 3599), Value::Integer(*to)],
            Source::Daily { from, to } | Source::Monthly { from, to } => {
                [Value::Text(from.clone()), Value::Text(to.clone())]
            }
        }
    }
}

/// The local day starting exactly at `at`, if one does.
fn local_midnight(zone: &TimeZone, at: i64) -> Result<Option<String>, ReportsError> {
    let date = local_date(zone, at)?;
    Ok((day_start(zone, date)? == at).then(|| date.to_string()))
}

fn source(zone: &TimeZone, filter: &UsageFilter, granularity: Option<Granularity>) -> Result<Source, ReportsError> {
    let (from, to) = (filter.from.unix_timestamp(), filter.to.unix_timestamp());
    if to <= from {
        return Err(ReportsError::EmptyInterval);
    }
    if granularity != Some(Granularity::Hour)
        && let (Some(from_day), Some(to_day)) = (local_midnight(zone, from)?, local_midnight(zone, to)?)
    {
        let month_start = |day: &str| day.ends_with("-01").then(|| day[..7].to_string());
        if matches!(granularity, None | Some(Granularity::Month))
            && let (Some(from_month), Some(to_month)) = (month_start(&from_day), month_start(&to_day))
        {
            return Ok(Source::Monthly { from: from_month, to: to_month });
        }
        return Ok(Source::Daily { from: from_day, to: to_day });
    }
    if to - from > MAX_HOURLY_DAYS * 86_400 {
        return Err(ReportsError::IntervalTooLong { max_days: MAX_HOURLY_DAYS });
    }
    Ok(Source::Hourly { from, to })
}

/// Whether the operator's rollups answer: nothing asked of API users or applications.
fn platform_rows(filter: &UsageFilter, group: Option<GroupBy>) -> bool {
    filter.user.is_none()
        && filter.application.is_none()
        && !matches!(group, Some(GroupBy::User | GroupBy::Application))
}

/// The conditions of a filter on a rollup table, with their values after the two period bounds.
fn conditions(source: &Source, filter: &UsageFilter, alias: &str) -> (String, Vec<Value>) {
    let column = source.period_column();
    let mut sql = format!("{alias}{column} >= ?1 AND {alias}{column} < ?2 AND {alias}environment = ?3");
    let mut values: Vec<Value> = source.bounds().into();
    values.push(Value::Text(filter.environment.as_str().to_string()));
    for (column, value) in [
        ("provider_organisation_id", filter.provider),
        ("user_organisation_id", filter.user),
        ("application_id", filter.application),
        ("api_id", filter.api),
    ] {
        if let Some(value) = value {
            values.push(Value::Integer(value));
            sql.push_str(&format!(" AND {alias}{column} = ?{}", values.len()));
        }
    }
    (sql, values)
}

fn figures_sql(alias: &str, rows: Rows) -> String {
    let buckets: Vec<String> = columns().iter().map(|b| format!("sum({alias}{b}) AS {b}")).collect();
    let errors = if rows == Rows::PerApi {
        format!("sum({alias}client_errors) AS client_errors, sum({alias}server_errors) AS server_errors")
    } else {
        format!(
            "sum(CASE WHEN {alias}status_class = '4xx' THEN {alias}requests ELSE 0 END) AS client_errors,
             sum(CASE WHEN {alias}status_class = '5xx' THEN {alias}requests ELSE 0 END) AS server_errors"
        )
    };
    format!(
        "sum({alias}requests) AS requests, sum({alias}bytes) AS bytes, sum({alias}latency_sum) AS latency_sum,
         max({alias}latency_max) AS latency_max, {errors}, {}",
        buckets.join(", ")
    )
}

fn count(row: &Row, column: &str) -> rusqlite::Result<u64> {
    Ok(row.get::<_, Option<i64>>(column)?.unwrap_or(0).max(0) as u64)
}

fn histogram(row: &Row) -> rusqlite::Result<Histogram> {
    let mut latency = Histogram { max_ms: count(row, "latency_max")?, ..Histogram::default() };
    for (i, column) in columns().iter().enumerate().take(BUCKETS) {
        latency.counts[i] = count(row, column)?;
    }
    Ok(latency)
}

/// A period value as its label.
fn period_label(value: Value) -> Option<String> {
    match value {
        Value::Integer(unix) => OffsetDateTime::from_unix_timestamp(unix).ok().map(crate::clock::rfc3339),
        Value::Text(text) => Some(text),
        _ => None,
    }
}

fn group_value(group: GroupBy, value: Value) -> Option<Group> {
    let (text, number) = match value {
        Value::Text(text) => (text, 0),
        Value::Integer(number) => (String::new(), number),
        _ => return None,
    };
    let some = |n: i64| (n != 0).then_some(n);
    Some(match group {
        GroupBy::Endpoint => Group::Endpoint(text),
        GroupBy::StatusClass => Group::StatusClass(text),
        GroupBy::ErrorCode => Group::ErrorCode((!text.is_empty()).then_some(text)),
        GroupBy::Api => Group::Api(some(number)),
        GroupBy::Provider => Group::Provider(some(number)),
        GroupBy::User => Group::User(number),
        GroupBy::Application => Group::Application(number),
    })
}

/// The figures of `filter`, per period of `granularity` (all in one when `None`) and per `group` (when given),
/// ordered by period then group.
pub fn usage(
    conn: &Connection,
    zone: &TimeZone,
    filter: &UsageFilter,
    granularity: Option<Granularity>,
    group: Option<GroupBy>,
) -> Result<Vec<UsageRow>, ReportsError> {
    let source = source(zone, filter, granularity)?;
    let period = granularity.map_or_else(|| "NULL".to_string(), |g| source.period(g, ""));
    let group_column = group.map_or("NULL", GroupBy::column);
    let (conditions, values) = conditions(&source, filter, "");
    let rows = Rows::answering(&source, filter, group);
    let sql = format!(
        "SELECT {period} AS period, {group_column} AS grp, {} FROM {} WHERE {conditions}
         GROUP BY 1, 2 ORDER BY 1, 2",
        figures_sql("", rows),
        source.table(rows)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values.iter()), |row| {
        Ok(UsageRow {
            period: period_label(row.get("period")?),
            group: group.and_then(|g| row.get("grp").ok().and_then(|v| group_value(g, v))),
            requests: count(row, "requests")?,
            bytes: count(row, "bytes")?,
            client_errors: count(row, "client_errors")?,
            server_errors: count(row, "server_errors")?,
            latency_sum_ms: count(row, "latency_sum")?,
            latency: histogram(row)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The totals over the whole interval, per `group` when given.
pub fn totals(
    conn: &Connection,
    zone: &TimeZone,
    filter: &UsageFilter,
    group: Option<GroupBy>,
) -> Result<Vec<UsageRow>, ReportsError> {
    usage(conn, zone, filter, None, group)
}

/// One row per period of `granularity` (and per `group` when given).
pub fn series(
    conn: &Connection,
    zone: &TimeZone,
    filter: &UsageFilter,
    granularity: Granularity,
    group: Option<GroupBy>,
) -> Result<Vec<UsageRow>, ReportsError> {
    usage(conn, zone, filter, Some(granularity), group)
}

/// The periods of `granularity` in which an API's p95 latency (its banks' answers only) exceeded its SLA.
pub fn sla_breaches(
    conn: &Connection,
    zone: &TimeZone,
    filter: &UsageFilter,
    granularity: Granularity,
) -> Result<Vec<SlaBreach>, ReportsError> {
    let source = source(zone, filter, Some(granularity))?;
    let period = source.period(granularity, "u.");
    let (conditions, values) = conditions(&source, filter, "u.");
    let rows = Rows::answering(&source, filter, Some(GroupBy::Api));
    // Summed per period and API first, then each sum joined to its API's SLA (not every rollup row).
    let sql = format!(
        "SELECT s.*, a.sla_response_ms
         FROM (SELECT {period} AS period, u.api_id AS api_id, u.provider_organisation_id AS provider_organisation_id, {}
               FROM {} u WHERE {conditions} AND u.api_id <> 0 GROUP BY 1, 2) s
         JOIN apis a ON a.id = s.api_id
         ORDER BY 1, 2",
        figures_sql("u.", rows),
        source.table(rows)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values.iter()), |row| {
        Ok((
            period_label(row.get("period")?).unwrap_or_default(),
            row.get::<_, i64>("api_id")?,
            row.get::<_, i64>("provider_organisation_id")?,
            count(row, "sla_response_ms")?,
            count(row, "requests")?,
            histogram(row)?,
        ))
    })?;
    let mut breaches = Vec::new();
    for row in rows {
        let (period, api_id, provider_organisation_id, sla_response_ms, requests, latency) = row?;
        if let Some(p95_ms) = latency.percentile(0.95)
            && p95_ms > sla_response_ms as f64
        {
            breaches.push(SlaBreach { period, api_id, provider_organisation_id, sla_response_ms, requests, p95_ms });
        }
    }
    Ok(breaches)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::gateway::meter::Exchange;
    use crate::store::calendar::default_time_zone;
    use crate::store::migrate::{SCHEMA, migrate};

    /// Three Almaty days of two banks' traffic (and refusals without a bank), each hour but the days' first.
    fn seeded() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        crate::store::fixtures::organisations(&conn, &[(1, "990140000661"), (2, "990140000662")]);
        conn.execute_batch(
            "INSERT INTO apis (id, organisation_id, name, version, standard, sla_response_ms, status, created_at,
                               updated_at)
             VALUES (10, 1, 'A', '1', 's', 100, 'published', 't', 't'), (20, 2, 'B', '1', 's', 400, 'published', 't', 't');",
        )
        .unwrap();
        let midnight = 1_796_324_400; // 2026-12-03T19:00:00Z, 4 December in Almaty
        let mut batch = Vec::new();
        for n in 0..3 * 24 * 6 {
            let at = midnight + n * 600;
            if (at - midnight) % 86_400 < 3600 {
                continue;
            }
            let provider = [None, Some(1), Some(2)][n as usize % 3];
            let status = [200, 200, 200, 404, 503][n as usize % 5];
            batch.push(Exchange {
                at: crate::clock::rfc3339(OffsetDateTime::from_unix_timestamp(at).unwrap()),
                application_id: 3,
                user_organisation_id: 2,
                provider_organisation_id: provider,
                api_id: provider.map(|p| p * 10),
                consent_id: None,
                endpoint: ["accounts", "balances"][n as usize % 2],
                status: if provider.is_none() { 403 } else { status },
                latency_ms: if provider.is_none() { 0 } else { 20 + (n as u64 * 37) % 700 },
                bytes: 100,
                interaction_id: "i".into(),
                error_code: None,
                mode: crate::apps::AppMode::Production,
                transaction_lines: 0,
            });
        }
        let tx = conn.transaction().unwrap();
        super::super::rollup::add(&tx, &batch).unwrap();
        tx.commit().unwrap();
        conn
    }

    #[test]
    fn daily_figures_per_bank_api_equal_the_operators_hourly_rows_read_per_local_day() {
        let conn = seeded();
        let zone = default_time_zone();
        let at = |unix: i64| OffsetDateTime::from_unix_timestamp(unix).unwrap();
        let (from, to) = (1_796_324_400, 1_796_324_400 + 3 * 86_400);
        // Whole local days: the daily rows per bank API. An hour earlier (no traffic in it): the operator's hourly
        // rows, each given its local day by `kopir_local_day`.
        let daily = UsageFilter::production(at(from), at(to));
        let hourly = UsageFilter::production(at(from - 3600), at(to));
        assert_eq!(
            source(&zone, &daily, Some(Granularity::Day)).unwrap(),
            Source::Daily { from: "2026-12-04".into(), to: "2026-12-07".into() }
        );
        assert!(matches!(source(&zone, &hourly, Some(Granularity::Day)).unwrap(), Source::Hourly { .. }));
        let days = source(&zone, &daily, None).unwrap();
        assert_eq!(Rows::answering(&days, &daily, Some(GroupBy::Api)), Rows::PerApi);
        assert_eq!(Rows::answering(&days, &daily, Some(GroupBy::Endpoint)), Rows::Platform);
        assert_eq!(Rows::answering(&days, &UsageFilter { user: Some(2), ..daily.clone() }, None), Rows::Fine);
        for group in [None, Some(GroupBy::Provider), Some(GroupBy::Api)] {
            let per_api = series(&conn, &zone, &daily, Granularity::Day, group).unwrap();
            assert_eq!(per_api, series(&conn, &zone, &hourly, Granularity::Day, group).unwrap(), "{group:?}");
            assert!(per_api.len() >= 3 && per_api.iter().all(|r| r.server_errors > 0 || r.client_errors > 0));
        }
        let one_bank = UsageFilter { provider: Some(2), ..daily.clone() };
        let one_bank_hourly = UsageFilter { provider: Some(2), ..hourly.clone() };
        assert_eq!(
            series(&conn, &zone, &one_bank, Granularity::Day, Some(GroupBy::Api)).unwrap(),
            series(&conn, &zone, &one_bank_hourly, Granularity::Day, Some(GroupBy::Api)).unwrap()
        );
        let breaches = sla_breaches(&conn, &zone, &daily, Granularity::Day).unwrap();
        assert_eq!(breaches, sla_breaches(&conn, &zone, &hourly, Granularity::Day).unwrap());
        assert!(breaches.iter().any(|b| b.api_id == 10) && breaches.len() >= 3, "{breaches:?}");
    }
}
