//! The platform's figures for a period and the period before it: what the operator's and regulator's dashboard shows
//! and what the monthly report publishes. Pure data, read from the rollups (`usage_daily`, `usage_monthly`,
//! `api_health_hourly`) and the registries (`organisations`, `consents`, `apis`, `outages` through
//! [`crate::availability::daily`], `sla_breaches`, `api_checks`, request management's `request_sla_breaches`) — never from the raw `exchanges`.
//!
//! Production only, except [`PlatformFigures::sandbox_requests`] (the sandbox's traffic, shown apart) and the
//! sandbox's check runs ([`SandboxFigures`]). Every figure that can be compared is a [`Comparison`] (this period,
//! previous period: see [`Period::previous`]); standing figures ("at the period's end") are read at the end of each
//! period, or now for a period that has not ended yet.
//!
//! **Stability**: the monthly report is built on [`PlatformFigures`]; fields are only ever added, never renamed or
//! removed, and their meaning does not change.
//!
//! ```no_run
//! # fn f(conn: &rusqlite::Connection, zone: &jiff::tz::TimeZone) -> Result<(), kopir::reports::ReportsError> {
//! use kopir::reports::{dashboard::Period, platform};
//! let now = time::OffsetDateTime::now_utc();
//! let figures = platform::figures(conn, zone, Period::month(2026, 12).unwrap(), now)?;
//! println!("{} requests ({:?} % more)", figures.requests.total.current, figures.requests.total.percent());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use rusqlite::{Connection, params};
use serde::Serialize;
use time::OffsetDateTime;

use super::ReportsError;
use super::dashboard::{Comparison, Period};
use super::usage::{self, Granularity, Group, GroupBy, UsageFilter, UsageRow};
use crate::apps::AppMode;
use crate::availability::{self, Subject};
use crate::catalog::Environment;
use crate::consent::Status;

/// How many error codes [`PlatformFigures::top_errors`] lists.
pub const TOP_ERRORS: usize = 10;

/// Everything the dashboard shows for one period, each figure beside the previous period's.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformFigures {
    /// The period: local dates (in [`PlatformFigures::time_zone`]), both included, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    /// The period compared with, the same way.
    pub previous_from: String,
    pub previous_to: String,
    /// The operator's time zone the local days are in (`Asia/Almaty`).
    pub time_zone: String,
    /// When the figures were read (RFC 3339, UTC); standing figures of a period not ended yet are as of this instant.
    pub generated_at: String,
    pub participants: ParticipantFigures,
    /// Distinct customers with at least one live consent (authorised, not yet expired, revoked or ended) at the
    /// period's end, production applications only.
    pub customers_with_live_consents: Comparison,
    pub consents: ConsentFigures,
    pub requests: RequestFigures,
    /// The sandbox's traffic (applications in sandbox mode) in the period: requests, apart from every other figure.
    pub sandbox_requests: Comparison,
    /// Per bank (provider organisation), by name; its APIs inside.
    pub banks: Vec<BankFigures>,
    /// The error codes answered most in the period (at most [`TOP_ERRORS`], most frequent first).
    pub top_errors: Vec<ErrorFigure>,
    pub sandbox: SandboxFigures,
    pub sla_breaches: SlaBreachFigures,
    /// Request management's SLA breaches (participants' questions, incidents and disputes answered or resolved later
    /// than the classifier's targets in working time) — not the gateway's requests of [`PlatformFigures::requests`].
    pub request_sla_breaches: RequestSlaFigures,
    /// The platform's own availability (its own answers, never a bank's failure it relays), by the same rule.
    pub platform_availability: AvailabilityFigure,
    pub platform_availability_previous: AvailabilityFigure,
}

/// A count under a label (a role, a status), compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Labelled {
    /// A stable code: `provider`, `user`, `both`, `none` for roles; the registry's status values otherwise.
    pub label: String,
    pub count: Comparison,
}

/// Participants (organisations in the registry) that had registered by the period's end.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantFigures {
    /// All of them.
    pub total: Comparison,
    /// Registered during the period.
    pub registered: Comparison,
    /// By role: `provider` (a bank only), `user` (an API user only), `both`, `none` (no role yet: registered, not
    /// accredited). Roles are the registry's current ones.
    pub by_role: Vec<Labelled>,
    /// By status: `registered`, `accredited`, `suspended`, `revoked` — the registry's current status (it keeps no
    /// history of statuses), over the participants registered by each period's end.
    pub by_status: Vec<Labelled>,
    /// Accreditation certificates issued during the period.
    pub accreditations_issued: Comparison,
}

/// Consents of production applications.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentFigures {
    /// By status at the period's end: `AwaitingAuthorisation`, `Authorised`, `Rejected`, `Revoked`, `Expired`
    /// (every status listed, zero included).
    pub by_status: Vec<Labelled>,
    /// Consents requested (created) during the period.
    pub requested: Comparison,
    /// Consents authorised by customers during the period.
    pub granted: Comparison,
    /// Consents rejected during the period.
    pub rejected: Comparison,
    /// Consents revoked (as a whole) during the period.
    pub revoked: Comparison,
    /// Consents that expired during the period.
    pub expired: Comparison,
    /// One bank withdrawn from a consent (the consent going on for its other banks) during the period.
    pub bank_revocations: Comparison,
}

/// Production requests through the gateway.
#[derive(Debug, Clone, Serialize)]
pub struct RequestFigures {
    pub total: Comparison,
    /// Answered 4xx or 5xx.
    pub errors: Comparison,
    /// Answered 5xx.
    pub server_errors: Comparison,
    /// Errors in hundredths of a per cent of the requests (`123` = 1.23 %); `None` without requests.
    pub error_share_current: Option<i64>,
    pub error_share_previous: Option<i64>,
    /// p95 latency over every request, in milliseconds (from the rollups' histograms); `None` without requests.
    pub p95_ms_current: Option<f64>,
    pub p95_ms_previous: Option<f64>,
    /// One entry per local day of the period, zero days included (days after today included, as zero).
    pub per_day: Vec<PeriodCount>,
    /// One entry per local month the period touches.
    pub per_month: Vec<PeriodCount>,
    /// The previous period's days, in order (for charts that compare day by day).
    pub previous_per_day: Vec<PeriodCount>,
}

/// Requests in one local day (`2026-12-03`) or month (`2026-12`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodCount {
    pub period: String,
    pub requests: u64,
    pub errors: u64,
}

/// Availability over a period: the days' unplanned downtime against their length, by the rule of
/// [`crate::availability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AvailabilityFigure {
    /// In hundredths of a per cent (`9931` = 99.31 %); `None` when no day of the period has begun.
    pub hundredths: Option<i64>,
    /// Seconds of the period's days counted (up to the end of today).
    pub seconds: i64,
    pub unplanned_seconds: i64,
    /// Declared maintenance, shown apart and not counted as downtime.
    pub planned_seconds: i64,
    /// The worst day's availability, in hundredths of a per cent.
    pub worst_day_hundredths: Option<i64>,
}

impl AvailabilityFigure {
    /// `99.31`, or `None`.
    pub fn percent(&self) -> Option<String> {
        self.hundredths.map(availability::percent)
    }
}

/// One bank: its production traffic, availability and latency against its APIs' SLA.
#[derive(Debug, Clone, Serialize)]
pub struct BankFigures {
    pub organisation_id: i64,
    pub name: String,
    pub bin: String,
    pub requests: Comparison,
    /// Answered 5xx.
    pub server_errors: Comparison,
    /// A bank is down while any of its APIs is down.
    pub availability: AvailabilityFigure,
    pub availability_previous: AvailabilityFigure,
    pub p95_ms_current: Option<f64>,
    pub p95_ms_previous: Option<f64>,
    /// The strictest SLA of its APIs (milliseconds), `None` when it has none listed.
    pub sla_ms: Option<i64>,
    pub apis: Vec<ApiFigures>,
}

/// One bank API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiFigures {
    pub api_id: i64,
    pub name: String,
    pub version: String,
    /// The catalogue's status now (`published`, `suspended`…).
    pub status: String,
    pub requests: Comparison,
    pub server_errors: Comparison,
    pub availability: AvailabilityFigure,
    pub availability_previous: AvailabilityFigure,
    pub p95_ms_current: Option<f64>,
    pub p95_ms_previous: Option<f64>,
    /// The passport's `sla_response_ms`.
    pub sla_ms: i64,
    /// Whether this period's p95 is over the SLA.
    pub over_sla: bool,
}

/// One error code (`UK.OBIE.Resource.NotFound`…), compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorFigure {
    pub code: String,
    pub requests: Comparison,
}

/// The sandbox's scheduled conformance checks of bank APIs (both environments of each API) and the publication
/// checks, during the period.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxFigures {
    /// Scheduled runs, and those that passed, over every API and environment.
    pub runs: Comparison,
    pub passes: Comparison,
    /// Passes in hundredths of a per cent of the runs; `None` without runs.
    pub pass_rate_current: Option<i64>,
    pub pass_rate_previous: Option<i64>,
    /// Publication checks run, and passed.
    pub publication_checks: Comparison,
    pub publication_passed: Comparison,
    /// Per API with runs in either period, by bank and API name.
    pub apis: Vec<SandboxApi>,
}

/// One API's scheduled checks.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxApi {
    pub api_id: i64,
    pub api_name: String,
    pub bank_name: String,
    pub runs: Comparison,
    pub passes: Comparison,
    pub pass_rate_current: Option<i64>,
    pub pass_rate_previous: Option<i64>,
}

/// SLA breaches (the p95 of an API's last hour over its SLA, see `crate::monitoring::sla`).
#[derive(Debug, Clone, Serialize)]
pub struct SlaBreachFigures {
    /// Breaches that began during the period.
    pub started: Comparison,
    /// Breaches still open at the period's end.
    pub open_at_end: i64,
    /// Every breach that touched the period, earliest first.
    pub breaches: Vec<BreachFigure>,
}

/// Request management's SLA breaches during the period, as `crate::requests::sla` records them (one per request and
/// clock, counted at the instant the deadline was found passed), beside the requests raised.
#[derive(Debug, Clone, Serialize)]
pub struct RequestSlaFigures {
    /// Requests (and customers' complaints) raised during the period.
    pub raised: Comparison,
    /// First responses that came (or had not come) after their deadline.
    pub first_response: Comparison,
    /// Resolutions past their deadline (each escalated to the operator's supervisors).
    pub resolution: Comparison,
    /// By the request's category and priority: every pair with a breach in either period.
    pub by_category: Vec<RequestSlaCategory>,
}

/// One category's and priority's request SLA breaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestSlaCategory {
    /// The classifier's code (`incident.api`…) and its names as they are now.
    pub category: String,
    pub name_en: String,
    pub name_ru: String,
    pub name_kk: String,
    /// `critical`, `high`, `normal` or `low`.
    pub priority: String,
    pub first_response: Comparison,
    pub resolution: Comparison,
}

impl RequestSlaCategory {
    /// The category's name in the language of the page.
    pub fn name(&self, lang: crate::i18n::Lang) -> &str {
        match lang {
            crate::i18n::Lang::En => &self.name_en,
            crate::i18n::Lang::Ru => &self.name_ru,
            crate::i18n::Lang::Kk => &self.name_kk,
        }
    }
}

/// One SLA breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreachFigure {
    pub id: i64,
    pub api_id: i64,
    pub api_name: String,
    pub bank_name: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub sla_ms: i64,
    pub worst_p95_ms: i64,
    pub calls: i64,
}

/// The consent statuses, so that a status with no consent reads 0 rather than vanishing.
pub const CONSENT_STATUSES: [&str; 5] = ["AwaitingAuthorisation", "Authorised", "Rejected", "Revoked", "Expired"];
/// Organisation statuses.
pub const PARTICIPANT_STATUSES: [&str; 4] = ["registered", "accredited", "suspended", "revoked"];
/// Participant roles.
pub const PARTICIPANT_ROLES: [&str; 4] = ["provider", "user", "both", "none"];

/// Hundredths of a per cent of `part` in `whole`, rounded half up from integers.
pub fn share(part: u64, whole: u64) -> Option<i64> {
    (whole > 0).then(|| ((20_000 * u128::from(part) + u128::from(whole)) / (2 * u128::from(whole))) as i64)
}

/// A unix time as the registries store instants (RFC 3339, UTC, whole seconds), so that they compare as text.
fn text(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).map(crate::clock::rfc3339).unwrap_or_default()
}

/// One period's instants: `[start, end)` in unix seconds, and the instant its standing figures are read at.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    start: i64,
    end: i64,
    at: i64,
}

impl Bounds {
    fn of(zone: &TimeZone, period: Period, now: OffsetDateTime) -> Result<Bounds, ReportsError> {
        let (start, end) = period.bounds(zone)?;
        // `at` is excluded: a period not ended yet is read up to and including the current second.
        Ok(Bounds { start, end, at: end.min(now.unix_timestamp() + 1) })
    }

    fn filter(&self, environment: AppMode) -> Result<UsageFilter, ReportsError> {
        let time = |t| OffsetDateTime::from_unix_timestamp(t).map_err(|_| ReportsError::EmptyInterval);
        Ok(UsageFilter { environment, ..UsageFilter::production(time(self.start)?, time(self.end)?) })
    }
}

/// The figures of `period` and of [`Period::previous`], read at `now`.
pub fn figures(
    conn: &Connection,
    zone: &TimeZone,
    period: Period,
    now: OffsetDateTime,
) -> Result<PlatformFigures, ReportsError> {
    let previous = period.previous();
    let cur = Bounds::of(zone, period, now)?;
    let prev = Bounds::of(zone, previous, now)?;
    // Production usage per API (the refused-before-any-bank requests under no API), once per period: the totals,
    // the banks' and the APIs' figures are all sums of these rows.
    let by_api = |b: Bounds| -> Result<Vec<UsageRow>, ReportsError> {
        usage::totals(conn, zone, &b.filter(AppMode::Production)?, Some(GroupBy::Api))
    };
    let (api_now, api_before) = (by_api(cur)?, by_api(prev)?);
    let requests = requests(conn, zone, period, previous, cur, prev, &api_now, &api_before)?;
    let sandbox_requests = Comparison {
        current: total(conn, zone, &cur.filter(AppMode::Sandbox)?)?.requests as i64,
        previous: total(conn, zone, &prev.filter(AppMode::Sandbox)?)?.requests as i64,
    };
    Ok(PlatformFigures {
        from: period.from.to_string(),
        to: period.to.to_string(),
        previous_from: previous.from.to_string(),
        previous_to: previous.to.to_string(),
        time_zone: zone.iana_name().unwrap_or("UTC").to_string(),
        generated_at: crate::clock::rfc3339(now),
        participants: participants(conn, cur, prev)?,
        customers_with_live_consents: Comparison {
            current: count(super::consents::standing_at(conn, AppMode::Production, cur.at)?.live_customers),
            previous: count(super::consents::standing_at(conn, AppMode::Production, prev.at)?.live_customers),
        },
        consents: consents(conn, cur, prev)?,
        requests,
        sandbox_requests,
        banks: banks(conn, zone, period, previous, now, &api_now, &api_before)?,
        top_errors: top_errors(conn, zone, cur, prev)?,
        sandbox: sandbox(conn, cur, prev)?,
        sla_breaches: sla_breaches(conn, cur, prev)?,
        request_sla_breaches: request_sla_breaches(conn, cur, prev)?,
        platform_availability: availability_of(conn, zone, Subject::Platform, period, now)?,
        platform_availability_previous: availability_of(conn, zone, Subject::Platform, previous, now)?,
    })
}

fn compare(current: i64, previous: i64) -> Comparison {
    Comparison { current, previous }
}

fn participants(conn: &Connection, cur: Bounds, prev: Bounds) -> Result<ParticipantFigures, ReportsError> {
    // Registered by `at`, by role and status.
    let standing = |at: &str| -> Result<BTreeMap<(String, String), i64>, ReportsError> {
        let mut statement = conn.prepare_cached(
            "SELECT CASE WHEN is_provider = 1 AND is_user = 1 THEN 'both' WHEN is_provider = 1 THEN 'provider'
                         WHEN is_user = 1 THEN 'user' ELSE 'none' END AS role, status, count(*) AS n
             FROM organisations WHERE created_at < ?1 GROUP BY 1, 2",
        )?;
        let rows = statement.query_map([at], |r| Ok(((r.get("role")?, r.get("status")?), r.get("n")?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let (now, before) = (standing(&text(cur.at))?, standing(&text(prev.at))?);
    let sum = |map: &BTreeMap<(String, String), i64>, f: &dyn Fn(&(String, String)) -> bool| -> i64 {
        map.iter().filter(|(k, _)| f(k)).map(|(_, n)| n).sum()
    };
    let by_role = PARTICIPANT_ROLES
        .iter()
        .map(|role| Labelled {
            label: role.to_string(),
            count: compare(sum(&now, &|k| k.0 == *role), sum(&before, &|k| k.0 == *role)),
        })
        .collect();
    let by_status = PARTICIPANT_STATUSES
        .iter()
        .map(|status| Labelled {
            label: status.to_string(),
            count: compare(sum(&now, &|k| k.1 == *status), sum(&before, &|k| k.1 == *status)),
        })
        .collect();
    let between = |sql: &str, b: Bounds| -> Result<i64, ReportsError> {
        Ok(conn.prepare_cached(sql)?.query_row(params![text(b.start), text(b.end)], |r| r.get(0))?)
    };
    let registered = "SELECT count(*) FROM organisations WHERE created_at >= ?1 AND created_at < ?2";
    let issued = "SELECT count(*) FROM accreditations WHERE issued_at >= ?1 AND issued_at < ?2";
    Ok(ParticipantFigures {
        total: compare(now.values().sum(), before.values().sum()),
        registered: compare(between(registered, cur)?, between(registered, prev)?),
        by_role,
        by_status,
        accreditations_issued: compare(between(issued, cur)?, between(issued, prev)?),
    })
}

fn consents(conn: &Connection, cur: Bounds, prev: Bounds) -> Result<ConsentFigures, ReportsError> {
    let standing = |at: i64| -> Result<BTreeMap<String, i64>, ReportsError> {
        let standing = super::consents::standing_at(conn, AppMode::Production, at)?;
        Ok(standing.by_status.into_iter().map(|(status, n)| (status.as_str().to_string(), count(n))).collect())
    };
    let (now, before) = (standing(cur.at)?, standing(prev.at)?);
    let by_status = CONSENT_STATUSES
        .iter()
        .map(|s| Labelled {
            label: s.to_string(),
            count: compare(now.get(*s).copied().unwrap_or(0), before.get(*s).copied().unwrap_or(0)),
        })
        .collect();
    let entered = |b: Bounds| super::consents::entered_between(conn, AppMode::Production, b.start, b.end);
    let (c, p) = (entered(cur)?, entered(prev)?);
    let changes = |figure: &str| compare(c.get(figure).copied().unwrap_or(0), p.get(figure).copied().unwrap_or(0));
    Ok(ConsentFigures {
        by_status,
        requested: changes(Status::AwaitingAuthorisation.as_str()),
        granted: changes(Status::Authorised.as_str()),
        rejected: changes(Status::Rejected.as_str()),
        revoked: changes(Status::Revoked.as_str()),
        expired: changes(Status::Expired.as_str()),
        bank_revocations: changes(super::consents::BANK_REVOCATION),
    })
}

fn total(conn: &Connection, zone: &TimeZone, filter: &UsageFilter) -> Result<UsageRow, ReportsError> {
    Ok(usage::totals(conn, zone, filter, None)?.into_iter().next().unwrap_or_else(|| UsageRow {
        period: None,
        group: None,
        requests: 0,
        bytes: 0,
        client_errors: 0,
        server_errors: 0,
        latency_sum_ms: 0,
        latency: Default::default(),
    }))
}

/// The sum of `rows` (their histograms merged).
fn merged<'a>(rows: impl IntoIterator<Item = &'a UsageRow>) -> UsageRow {
    let mut sum = UsageRow {
        period: None,
        group: None,
        requests: 0,
        bytes: 0,
        client_errors: 0,
        server_errors: 0,
        latency_sum_ms: 0,
        latency: Default::default(),
    };
    for row in rows {
        sum.requests += row.requests;
        sum.bytes += row.bytes;
        sum.client_errors += row.client_errors;
        sum.server_errors += row.server_errors;
        sum.latency_sum_ms += row.latency_sum_ms;
        for (total, n) in sum.latency.counts.iter_mut().zip(row.latency.counts) {
            *total += n;
        }
        sum.latency.max_ms = sum.latency.max_ms.max(row.latency.max_ms);
    }
    sum
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every local day of `period`, with its requests (zero where there were none).
fn days(conn: &Connection, zone: &TimeZone, period: Period, b: Bounds) -> Result<Vec<PeriodCount>, ReportsError> {
    let rows = usage::series(conn, zone, &b.filter(AppMode::Production)?, Granularity::Day, None)?;
    let by_day: BTreeMap<String, &UsageRow> = rows.iter().filter_map(|r| r.period.clone().map(|p| (p, r))).collect();
    let mut out = Vec::new();
    let mut day = period.from;
    while day <= period.to {
        let label = day.to_string();
        let (requests, errors) = by_day.get(&label).map_or((0, 0), |r| (r.requests, r.client_errors + r.server_errors));
        out.push(PeriodCount { period: label, requests, errors });
        day = day.tomorrow()?;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn requests(
    conn: &Connection,
    zone: &TimeZone,
    period: Period,
    previous: Period,
    cur: Bounds,
    prev: Bounds,
    api_now: &[UsageRow],
    api_before: &[UsageRow],
) -> Result<RequestFigures, ReportsError> {
    let (c, p) = (merged(api_now), merged(api_before));
    let errors = |r: &UsageRow| r.client_errors + r.server_errors;
    let per_day = days(conn, zone, period, cur)?;
    // Months from the days (local days, so local months).
    let mut per_month: Vec<PeriodCount> = Vec::new();
    for day in &per_day {
        let month = day.period.get(..7).unwrap_or_default();
        match per_month.last_mut() {
            Some(last) if last.period == month => {
                last.requests += day.requests;
                last.errors += day.errors;
            }
            _ => per_month.push(PeriodCount { period: month.to_string(), requests: day.requests, errors: day.errors }),
        }
    }
    Ok(RequestFigures {
        total: compare(count(c.requests), count(p.requests)),
        errors: compare(count(errors(&c)), count(errors(&p))),
        server_errors: compare(count(c.server_errors), count(p.server_errors)),
        error_share_current: share(errors(&c), c.requests),
        error_share_previous: share(errors(&p), p.requests),
        p95_ms_current: c.p95_ms(),
        p95_ms_previous: p.p95_ms(),
        per_day,
        per_month,
        previous_per_day: days(conn, zone, previous, prev)?,
    })
}

/// A local date of `jiff` as one of `time`.
fn to_time_date(date: jiff::civil::Date) -> Option<time::Date> {
    let month = time::Month::try_from(u8::try_from(date.month()).ok()?).ok()?;
    time::Date::from_calendar_date(i32::from(date.year()), month, u8::try_from(date.day()).ok()?).ok()
}

fn availability_of(
    conn: &Connection,
    zone: &TimeZone,
    subject: Subject,
    period: Period,
    now: OffsetDateTime,
) -> Result<AvailabilityFigure, ReportsError> {
    let (Some(from), Some(to)) = (to_time_date(period.from), to_time_date(period.to)) else {
        return Ok(AvailabilityFigure {
            hundredths: None,
            seconds: 0,
            unplanned_seconds: 0,
            planned_seconds: 0,
            worst_day_hundredths: None,
        });
    };
    let days = availability::daily(conn, zone, subject, Environment::Production, from, to, now)?;
    let seconds: i64 = days.iter().map(|d| d.seconds).sum();
    let unplanned_seconds: i64 = days.iter().map(|d| d.unplanned_seconds).sum();
    Ok(AvailabilityFigure {
        hundredths: (!days.is_empty()).then(|| availability::hundredths(seconds, unplanned_seconds)),
        seconds,
        unplanned_seconds,
        planned_seconds: days.iter().map(|d| d.planned_seconds).sum(),
        worst_day_hundredths: days.iter().map(|d| d.hundredths).min(),
    })
}

/// A bank API as the dashboard lists it.
struct ListedApi {
    id: i64,
    organisation_id: i64,
    bank_name: String,
    bin: String,
    name: String,
    version: String,
    status: String,
    sla_ms: i64,
}

fn banks(
    conn: &Connection,
    zone: &TimeZone,
    period: Period,
    previous: Period,
    now: OffsetDateTime,
    api_now: &[UsageRow],
    api_before: &[UsageRow],
) -> Result<Vec<BankFigures>, ReportsError> {
    let by_api = |rows: &[UsageRow]| -> BTreeMap<i64, UsageRow> {
        rows.iter()
            .filter_map(|r| match r.group {
                Some(Group::Api(Some(id))) => Some((id, r.clone())),
                _ => None,
            })
            .collect()
    };
    let (api_now, api_before) = (by_api(api_now), by_api(api_before));
    // APIs that can carry traffic, and any other that had some in either period.
    let with_traffic: BTreeSet<i64> = api_now.keys().chain(api_before.keys()).copied().collect();
    let mut statement = conn.prepare_cached(
        "SELECT a.id, a.organisation_id, g.name AS bank_name, g.bin, a.name, a.version, a.status, a.sla_response_ms
         FROM apis a JOIN organisations g ON g.id = a.organisation_id
         ORDER BY g.name, g.id, a.name, a.version, a.id",
    )?;
    let apis: Vec<ListedApi> = statement
        .query_map([], |r| {
            Ok(ListedApi {
                id: r.get(0)?,
                organisation_id: r.get(1)?,
                bank_name: r.get(2)?,
                bin: r.get(3)?,
                name: r.get(4)?,
                version: r.get(5)?,
                status: r.get(6)?,
                sla_ms: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // A bank's figures are the sums of its APIs' (every exchange that reached a bank names its API).
    let by_bank = |rows: &BTreeMap<i64, UsageRow>| -> BTreeMap<i64, UsageRow> {
        let mut banks: BTreeMap<i64, Vec<&UsageRow>> = BTreeMap::new();
        for api in &apis {
            if let Some(row) = rows.get(&api.id) {
                banks.entry(api.organisation_id).or_default().push(row);
            }
        }
        banks.into_iter().map(|(id, rows)| (id, merged(rows))).collect()
    };
    let (bank_now, bank_before) = (by_bank(&api_now), by_bank(&api_before));
    let apis: Vec<ListedApi> = apis
        .into_iter()
        .filter(|a| {
            matches!(a.status.as_str(), "published" | "suspended" | "deprecated") || with_traffic.contains(&a.id)
        })
        .collect();
    let figure = |rows: &BTreeMap<i64, UsageRow>, id: i64, f: &dyn Fn(&UsageRow) -> u64| -> i64 {
        rows.get(&id).map_or(0, |r| count(f(r)))
    };
    let p95 = |rows: &BTreeMap<i64, UsageRow>, id: i64| rows.get(&id).and_then(UsageRow::p95_ms);
    let mut banks: Vec<BankFigures> = Vec::new();
    for api in apis {
        let p95_ms_current = p95(&api_now, api.id);
        let figures = ApiFigures {
            api_id: api.id,
            name: api.name,
            version: api.version,
            status: api.status,
            requests: compare(figure(&api_now, api.id, &|r| r.requests), figure(&api_before, api.id, &|r| r.requests)),
            server_errors: compare(
                figure(&api_now, api.id, &|r| r.server_errors),
                figure(&api_before, api.id, &|r| r.server_errors),
            ),
            availability: availability_of(conn, zone, Subject::Api(api.id), period, now)?,
            availability_previous: availability_of(conn, zone, Subject::Api(api.id), previous, now)?,
            p95_ms_current,
            p95_ms_previous: p95(&api_before, api.id),
            sla_ms: api.sla_ms,
            over_sla: p95_ms_current.is_some_and(|p| p > api.sla_ms as f64),
        };
        match banks.last_mut() {
            Some(bank) if bank.organisation_id == api.organisation_id => {
                bank.sla_ms = Some(bank.sla_ms.map_or(api.sla_ms, |s| s.min(api.sla_ms)));
                bank.apis.push(figures);
            }
            _ => {
                let id = api.organisation_id;
                banks.push(BankFigures {
                    organisation_id: id,
                    name: api.bank_name,
                    bin: api.bin,
                    requests: compare(
                        figure(&bank_now, id, &|r| r.requests),
                        figure(&bank_before, id, &|r| r.requests),
                    ),
                    server_errors: compare(
                        figure(&bank_now, id, &|r| r.server_errors),
                        figure(&bank_before, id, &|r| r.server_errors),
                    ),
                    availability: availability_of(conn, zone, Subject::Bank(id), period, now)?,
                    availability_previous: availability_of(conn, zone, Subject::Bank(id), previous, now)?,
                    p95_ms_current: p95(&bank_now, id),
                    p95_ms_previous: p95(&bank_before, id),
                    sla_ms: Some(api.sla_ms),
                    apis: vec![figures],
                });
            }
        }
    }
    Ok(banks)
}

fn top_errors(conn: &Connection, zone: &TimeZone, cur: Bounds, prev: Bounds) -> Result<Vec<ErrorFigure>, ReportsError> {
    let by_code = |b: Bounds| -> Result<BTreeMap<String, u64>, ReportsError> {
        Ok(usage::totals(conn, zone, &b.filter(AppMode::Production)?, Some(GroupBy::ErrorCode))?
            .into_iter()
            .filter_map(|r| match r.group {
                Some(Group::ErrorCode(Some(code))) => Some((code, r.requests)),
                _ => None,
            })
            .collect())
    };
    let (now, before) = (by_code(cur)?, by_code(prev)?);
    let mut top: Vec<ErrorFigure> = now
        .iter()
        .map(|(code, n)| ErrorFigure {
            code: code.clone(),
            requests: compare(count(*n), before.get(code).map_or(0, |n| count(*n))),
        })
        .collect();
    top.sort_by(|a, b| b.requests.current.cmp(&a.requests.current).then_with(|| a.code.cmp(&b.code)));
    top.truncate(TOP_ERRORS);
    Ok(top)
}

/// An API's scheduled runs in a period: its name, its bank's name, runs, passes.
type Runs = BTreeMap<i64, (String, String, i64, i64)>;

fn sandbox(conn: &Connection, cur: Bounds, prev: Bounds) -> Result<SandboxFigures, ReportsError> {
    let runs = |b: Bounds| -> Result<Runs, ReportsError> {
        let mut statement = conn.prepare_cached(
            "SELECT h.api_id, coalesce(a.name, ''), coalesce(g.name, ''), sum(h.runs), sum(h.passes)
             FROM api_health_hourly h LEFT JOIN apis a ON a.id = h.api_id
             LEFT JOIN organisations g ON g.id = a.organisation_id
             WHERE h.hour >= ?1 AND h.hour < ?2 GROUP BY h.api_id",
        )?;
        let rows = statement
            .query_map(params![b.start, b.end], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let (now, before) = (runs(cur)?, runs(prev)?);
    let rate = |passes: i64, runs: i64| share(passes.max(0) as u64, runs.max(0) as u64);
    let ids: BTreeSet<i64> = now.keys().chain(before.keys()).copied().collect();
    let mut apis: Vec<SandboxApi> = ids
        .into_iter()
        .map(|id| {
            let empty = (String::new(), String::new(), 0, 0);
            let (c, p) = (now.get(&id).unwrap_or(&empty), before.get(&id).unwrap_or(&empty));
            let names = if c.0.is_empty() && c.1.is_empty() { p } else { c };
            SandboxApi {
                api_id: id,
                api_name: names.0.clone(),
                bank_name: names.1.clone(),
                runs: compare(c.2, p.2),
                passes: compare(c.3, p.3),
                pass_rate_current: rate(c.3, c.2),
                pass_rate_previous: rate(p.3, p.2),
            }
        })
        .collect();
    apis.sort_by(|a, b| (&a.bank_name, &a.api_name, a.api_id).cmp(&(&b.bank_name, &b.api_name, b.api_id)));
    let sum = |map: &Runs, passes: bool| -> i64 { map.values().map(|v| if passes { v.3 } else { v.2 }).sum() };
    let publication = |b: Bounds| -> Result<(i64, i64), ReportsError> {
        Ok(conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(passed), 0) FROM api_checks
             WHERE purpose = 'publication' AND started_at >= ?1 AND started_at < ?2",
            )?
            .query_row(params![text(b.start), text(b.end)], |r| Ok((r.get(0)?, r.get(1)?)))?)
    };
    let (pc, pp) = (publication(cur)?, publication(prev)?);
    let (runs_now, runs_before, passes_now, passes_before) =
        (sum(&now, false), sum(&before, false), sum(&now, true), sum(&before, true));
    Ok(SandboxFigures {
        runs: compare(runs_now, runs_before),
        passes: compare(passes_now, passes_before),
        pass_rate_current: rate(passes_now, runs_now),
        pass_rate_previous: rate(passes_before, runs_before),
        publication_checks: compare(pc.0, pp.0),
        publication_passed: compare(pc.1, pp.1),
        apis,
    })
}

fn sla_breaches(conn: &Connection, cur: Bounds, prev: Bounds) -> Result<SlaBreachFigures, ReportsError> {
    let started = |b: Bounds| -> Result<i64, ReportsError> {
        Ok(conn
            .prepare_cached("SELECT count(*) FROM sla_breaches WHERE started_at >= ?1 AND started_at < ?2")?
            .query_row(params![text(b.start), text(b.end)], |r| r.get(0))?)
    };
    let open_at_end: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM sla_breaches
             WHERE started_at < ?1 AND (ended_at IS NULL OR ended_at >= ?1)",
        )?
        .query_row([text(cur.at)], |r| r.get(0))?;
    let mut statement = conn.prepare_cached(
        "SELECT b.id, b.api_id, a.name, g.name, b.started_at, b.ended_at, b.sla_ms, b.worst_p95_ms, b.calls
         FROM sla_breaches b JOIN apis a ON a.id = b.api_id JOIN organisations g ON g.id = a.organisation_id
         WHERE b.started_at < ?2 AND (b.ended_at IS NULL OR b.ended_at >= ?1)
         ORDER BY b.started_at, b.id",
    )?;
    let breaches = statement
        .query_map(params![text(cur.start), text(cur.end)], |r| {
            Ok(BreachFigure {
                id: r.get(0)?,
                api_id: r.get(1)?,
                api_name: r.get(2)?,
                bank_name: r.get(3)?,
                started_at: r.get(4)?,
                ended_at: r.get(5)?,
                sla_ms: r.get(6)?,
                worst_p95_ms: r.get(7)?,
                calls: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SlaBreachFigures { started: compare(started(cur)?, started(prev)?), open_at_end, breaches })
}

fn request_sla_breaches(conn: &Connection, cur: Bounds, prev: Bounds) -> Result<RequestSlaFigures, ReportsError> {
    use crate::requests::sla::{CategoryBreaches, breaches_by_category};
    let read = |b: Bounds| -> Result<(i64, Vec<CategoryBreaches>), ReportsError> {
        let raised = conn
            .prepare_cached("SELECT count(*) FROM requests WHERE created_at >= ?1 AND created_at < ?2")?
            .query_row(params![text(b.start), text(b.end)], |r| r.get(0))?;
        Ok((raised, breaches_by_category(conn, &text(b.start), &text(b.end))?))
    };
    let ((raised_now, now), (raised_before, before)) = (read(cur)?, read(prev)?);
    let sum = |rows: &[CategoryBreaches], f: fn(&CategoryBreaches) -> i64| rows.iter().map(f).sum::<i64>();
    let mut by_category: Vec<RequestSlaCategory> = Vec::new();
    // This period's pairs in their order, then those only the previous period had.
    for row in now.iter().chain(before.iter()) {
        let key = (row.category.as_str(), row.priority.as_str());
        if by_category.iter().any(|c| (c.category.as_str(), c.priority.as_str()) == key) {
            continue;
        }
        let find = |rows: &[CategoryBreaches]| -> (i64, i64) {
            rows.iter()
                .find(|r| (r.category.as_str(), r.priority.as_str()) == key)
                .map_or((0, 0), |r| (r.first_response, r.resolution))
        };
        let ((first_now, resolution_now), (first_before, resolution_before)) = (find(&now), find(&before));
        let [name_en, name_ru, name_kk] = row.names.clone();
        by_category.push(RequestSlaCategory {
            category: row.category.clone(),
            name_en,
            name_ru,
            name_kk,
            priority: row.priority.as_str().to_string(),
            first_response: compare(first_now, first_before),
            resolution: compare(resolution_now, resolution_before),
        });
    }
    Ok(RequestSlaFigures {
        raised: compare(raised_now, raised_before),
        first_response: compare(sum(&now, |r| r.first_response), sum(&before, |r| r.first_response)),
        resolution: compare(sum(&now, |r| r.resolution), sum(&before, |r| r.resolution)),
        by_category,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shares_are_hundredths_of_a_per_cent_rounded_half_up() {
        assert_eq!(share(1, 3), Some(3333));
        assert_eq!(share(2, 3), Some(6667));
        assert_eq!(share(0, 5), Some(0));
        assert_eq!(share(5, 5), Some(10_000));
        assert_eq!(share(1, 0), None);
    }

    #[test]
    fn an_empty_platform_reads_zeros_with_every_status_listed() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA).unwrap();
        let zone = crate::store::calendar::default_time_zone();
        crate::store::calendar::register(&conn, &zone).unwrap();
        let now = time::macros::datetime!(2026-12-03 10:00 UTC);
        let f = figures(&conn, &zone, Period::month(2026, 12).unwrap(), now).unwrap();
        assert_eq!(
            (f.from.as_str(), f.to.as_str(), f.previous_from.as_str()),
            ("2026-12-01", "2026-12-31", "2026-11-01")
        );
        assert_eq!(f.requests.per_day.len(), 31);
        assert_eq!(f.requests.total, Comparison { current: 0, previous: 0 });
        assert_eq!(f.consents.by_status.len(), CONSENT_STATUSES.len());
        assert_eq!(f.participants.by_role.len(), PARTICIPANT_ROLES.len());
        assert!(f.banks.is_empty() && f.top_errors.is_empty() && f.sla_breaches.breaches.is_empty());
        assert_eq!(f.request_sla_breaches.first_response, Comparison { current: 0, previous: 0 });
        assert!(f.request_sla_breaches.by_category.is_empty());
        assert!(serde_json::to_value(&f).unwrap()["requests"]["total"]["current"] == 0);
    }
}
