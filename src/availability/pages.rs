//! The availability pages. Who may call each route:
//!
//! - `GET /org/availability` — a provider's administrators (`ParticipantAdmin` of an API provider): the daily
//!   availability of their organisation and of each API over the last week, the outages, their maintenance windows
//!   with their status, and the form to declare one.
//! - `POST /org/availability/maintenance` — the same: declares a window (audited).
//! - `POST /org/availability/maintenance/{id}/cancel` — the same, for a window of their own organisation only
//!   (another's is "not found"): cancels it until it ends (audited).
//! - `GET /console/availability` — console readers (operator staff, administrators, the regulator), read-only: open
//!   outages, the platform's own availability, every provider's maintenance windows.
//!
//! Other roles of a participant are refused with 403, anonymous callers sent to sign in.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::tz::TimeZone;
use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime};

use super::maintenance::{self, Decided, Declaration, Listed, Window, WindowStatus};
use super::outages::{self, OpenOutage};
use super::{AvailabilityError, Day, Subject, daily, local_day};
use crate::catalog::{self, Api, Environment};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, redisplay, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, Member, ParticipantAdmin};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/availability", get(provider_page))
        .route("/org/availability/maintenance", post(declare))
        .route("/org/availability/maintenance/{id}/cancel", post(cancel))
        .route("/console/availability", get(console_page))
}

/// Days the pages show.
const DAYS: i64 = 7;
/// Windows listed.
const WINDOWS: u32 = 200;

impl From<AvailabilityError> for PageError {
    fn from(error: AvailabilityError) -> PageError {
        match error {
            AvailabilityError::NotFound => PageError::not_found(),
            AvailabilityError::Refused(key) => PageError::new(StatusCode::UNPROCESSABLE_ENTITY, key),
            AvailabilityError::Store(e) => PageError::internal(&e),
        }
    }
}

/// The operator's time zone as the pages name it: `Asia/Almaty, UTC+05:00` (the offset at `now`).
fn zone_label(name: &str, zone: &TimeZone, now: OffsetDateTime) -> String {
    let seconds = jiff::Timestamp::from_second(now.unix_timestamp()).map(|t| zone.to_offset(t).seconds()).unwrap_or(0);
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{name}, UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A stored time as the pages show it: the operator's local time, to the minute.
fn local(rfc3339: &str, zone: &TimeZone) -> String {
    let at = crate::clock::parse(rfc3339).ok().and_then(|t| jiff::Timestamp::from_second(t.unix_timestamp()).ok());
    match at {
        Some(at) => zone.to_datetime(at).strftime("%Y-%m-%d %H:%M").to_string(),
        None => rfc3339.to_string(),
    }
}

/// A `datetime-local` field (`2026-12-03T18:30`, seconds optional) in the operator's local time (a time that a
/// change of clocks skips or repeats is read as the clocks before the change have it).
fn parse_local(value: &str, zone: &TimeZone) -> Option<OffsetDateTime> {
    let with_seconds = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let value = value.trim();
    let t = PrimitiveDateTime::parse(value, with_seconds).or_else(|_| PrimitiveDateTime::parse(value, minutes)).ok()?;
    let civil = jiff::civil::DateTime::new(
        i16::try_from(t.year()).ok()?,
        i8::try_from(u8::from(t.month())).ok()?,
        i8::try_from(t.day()).ok()?,
        i8::try_from(t.hour()).ok()?,
        i8::try_from(t.minute()).ok()?,
        i8::try_from(t.second()).ok()?,
        0,
    )
    .ok()?;
    let at = zone.to_ambiguous_timestamp(civil).compatible().ok()?;
    OffsetDateTime::from_unix_timestamp(at.as_second()).ok()
}

/// An outage as a row of the pages.
struct OutageRow {
    api: String,
    started: String,
    ended: Option<String>,
    cause_key: &'static str,
    source_key: &'static str,
    status: Option<i64>,
}

fn source_key(source: outages::Source) -> &'static str {
    match source {
        outages::Source::Traffic => "availability.source.traffic",
        outages::Source::Checks => "availability.source.checks",
        outages::Source::Platform => "availability.source.platform",
    }
}

fn outage_rows(days: &[Day], apis: &[Api], zone: &TimeZone) -> Vec<OutageRow> {
    let mut seen = std::collections::BTreeMap::new();
    for outage in days.iter().flat_map(|d| d.outages.iter()) {
        seen.entry(std::cmp::Reverse((outage.started_at.clone(), outage.id))).or_insert_with(|| outage.clone());
    }
    seen.into_values()
        .map(|o| OutageRow {
            api: o
                .api_id
                .and_then(|id| apis.iter().find(|a| a.id == id))
                .map(|a| format!("{} {}", a.name, a.version))
                .unwrap_or_default(),
            started: local(&o.started_at, zone),
            ended: o.ended_at.as_deref().map(|e| local(e, zone)),
            cause_key: o.cause.text_key(),
            source_key: source_key(o.source),
            status: o.first_status,
        })
        .collect()
}

/// A window as a row of the pages.
struct WindowRow {
    id: i64,
    /// The API's number (its page links from the console), `None` for all the provider's APIs.
    api_id: Option<i64>,
    api: String,
    starts: String,
    ends: String,
    reason: String,
    declared_by: String,
    status: WindowStatus,
    provider: String,
}

impl WindowRow {
    fn new(window: Window, api: String, provider: String, now: OffsetDateTime, zone: &TimeZone) -> WindowRow {
        WindowRow {
            id: window.id,
            api_id: window.api_id,
            api,
            starts: local(&window.starts_at, zone),
            ends: local(&window.ends_at, zone),
            status: window.status(now),
            reason: window.reason,
            declared_by: window.declared_by,
            provider,
        }
    }

    fn cancellable(&self) -> bool {
        matches!(self.status, WindowStatus::Scheduled | WindowStatus::Ongoing)
    }
}

/// The form's fields as typed, for showing them again.
#[derive(Debug, Default, Deserialize)]
struct DeclareForm {
    #[serde(default)]
    api: String,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
    #[serde(default)]
    reason: String,
}

#[derive(Template)]
#[template(path = "availability_org.html")]
struct ProviderPage<'a> {
    t: Texts,
    csrf: &'a str,
    /// The operator's time zone, as the times are shown in it.
    zone: String,
    bank: Vec<Day>,
    dates: Vec<String>,
    apis: Vec<(Api, Vec<Day>)>,
    outages: Vec<OutageRow>,
    windows: Vec<WindowRow>,
    form: DeclareForm,
    errors: Vec<&'a str>,
}

struct ProviderData {
    bank: Vec<Day>,
    apis: Vec<(Api, Vec<Day>)>,
    windows: Vec<Window>,
}

fn week(zone: &TimeZone, now: OffsetDateTime) -> (Date, Date) {
    let today = local_day(zone, now).date;
    (today - Duration::days(DAYS - 1), today)
}

async fn provider_view(
    state: &AppState,
    who: &Member,
    form: DeclareForm,
    errors: Vec<&str>,
) -> Result<Response, PageError> {
    if catalog::provider_refusal(&who.org).is_some() {
        return Err(PageError::forbidden());
    }
    let now = state.clock.now();
    let org_id = who.org.id;
    let zone = state.config.time_zone.zone().clone();
    let (from, to) = week(&zone, now);
    let data = state
        .db
        .read({
            let zone = zone.clone();
            move |c| -> Result<ProviderData, StoreError> {
                let bank = daily(c, &zone, Subject::Bank(org_id), Environment::Production, from, to, now)?;
                let mut apis = Vec::new();
                for api in catalog::list_for_organisation(c, org_id)? {
                    let days = daily(c, &zone, Subject::Api(api.id), Environment::Production, from, to, now)?;
                    apis.push((api, days));
                }
                Ok(ProviderData { bank, apis, windows: maintenance::for_organisation(c, org_id, WINDOWS)? })
            }
        })
        .await?;
    let api_list: Vec<Api> = data.apis.iter().map(|(a, _)| a.clone()).collect();
    let api_name = |id: Option<i64>| {
        id.and_then(|id| api_list.iter().find(|a| a.id == id)).map(|a| format!("{} {}", a.name, a.version))
    };
    let windows = data
        .windows
        .into_iter()
        .map(|w| {
            let api = api_name(w.api_id).unwrap_or_default();
            WindowRow::new(w, api, String::new(), now, &zone)
        })
        .collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = ProviderPage {
        t: Texts::current(),
        csrf: who.csrf(),
        zone: zone_label(state.config.time_zone.name(), &zone, now),
        dates: data.bank.iter().map(|d| d.date.clone()).collect(),
        outages: outage_rows(&data.bank, &api_list, &zone),
        bank: data.bank,
        apis: data.apis,
        windows,
        form,
        errors,
    };
    Ok(render_status(status, &page))
}

/// A provider's administrators: availability, outages and maintenance windows.
async fn provider_page(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
) -> Result<Response, PageError> {
    provider_view(&state, &who, DeclareForm::default(), vec![]).await
}

/// A provider's administrators: declares a maintenance window.
async fn declare(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<DeclareForm>,
) -> Result<Response, PageError> {
    if catalog::provider_refusal(&who.org).is_some() {
        return Err(PageError::forbidden());
    }
    let t = Texts::current();
    let now = state.clock.now();
    let zone = state.config.time_zone.zone();
    let api_id = match form.api.trim() {
        "" | "all" => Some(None),
        id => id.parse::<i64>().ok().map(Some),
    };
    let (Some(api_id), Some(starts_at), Some(ends_at)) =
        (api_id, parse_local(&form.starts, zone), parse_local(&form.ends, zone))
    else {
        let form = DeclareForm { starts: redisplay(&form.starts), ends: redisplay(&form.ends), ..form };
        return provider_view(&state, &who, form, vec![t.get("availability.error.time")]).await;
    };
    let declaration = Declaration { api_id, starts_at, ends_at, reason: form.reason.clone() };
    let (org, actor) = (who.org.clone(), who.audit_actor());
    let decided = state.db.write(move |tx| maintenance::declare(tx, &org, &declaration, &actor, now)).await?;
    match decided {
        Decided::Done(_) => Ok(Redirect::to("/org/availability").into_response()),
        Decided::Refused(key) => {
            let form = DeclareForm {
                starts: redisplay(&form.starts),
                ends: redisplay(&form.ends),
                reason: redisplay(&form.reason),
                api: form.api,
            };
            provider_view(&state, &who, form, vec![t.get(key)]).await
        }
    }
}

#[derive(Debug, Deserialize)]
struct ButtonForm {}

/// A provider's administrators: cancels one of their organisation's windows.
async fn cancel(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<Response, PageError> {
    if catalog::provider_refusal(&who.org).is_some() {
        return Err(PageError::forbidden());
    }
    let (org, actor, now) = (who.org.clone(), who.audit_actor(), state.clock.now());
    match state.db.write(move |tx| maintenance::cancel(tx, &org, id, &actor, now)).await? {
        Decided::Done(_) => Ok(Redirect::to("/org/availability").into_response()),
        Decided::Refused(key) => {
            provider_view(&state, &who, DeclareForm::default(), vec![Texts::current().get(key)]).await
        }
    }
}

#[derive(Template)]
#[template(path = "availability_console.html")]
struct ConsolePage {
    t: Texts,
    /// The operator's time zone, as the times are shown in it.
    zone: String,
    open: Vec<(OpenOutage, String)>,
    platform: Vec<Day>,
    outages: Vec<OutageRow>,
    windows: Vec<WindowRow>,
}

struct ConsoleData {
    open: Vec<OpenOutage>,
    platform: Vec<Day>,
    windows: Vec<Listed>,
}

/// Console readers: open outages, the platform's availability, every maintenance window (read-only).
async fn console_page(State(state): State<AppState>, ConsoleReader(_): ConsoleReader) -> Result<Response, PageError> {
    let now = state.clock.now();
    let zone = state.config.time_zone.zone().clone();
    let (from, to) = week(&zone, now);
    let data = state
        .db
        .read({
            let zone = zone.clone();
            move |c| -> Result<ConsoleData, StoreError> {
                Ok(ConsoleData {
                    open: outages::open_list(c)?,
                    platform: daily(c, &zone, Subject::Platform, Environment::Production, from, to, now)?,
                    windows: maintenance::all(c, WINDOWS)?,
                })
            }
        })
        .await?;
    let page = ConsolePage {
        t: Texts::current(),
        zone: zone_label(state.config.time_zone.name(), &zone, now),
        open: data
            .open
            .into_iter()
            .map(|o| {
                let since = local(&o.outage.started_at, &zone);
                (o, since)
            })
            .collect(),
        outages: outage_rows(&data.platform, &[], &zone),
        platform: data.platform,
        windows: data.windows.into_iter().map(|l| WindowRow::new(l.window, l.api, l.provider, now, &zone)).collect(),
    };
    Ok(render_status(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn form_times_are_the_operator_s_local_time() {
        let zone = crate::store::calendar::default_time_zone();
        assert_eq!(parse_local("2026-12-03T18:30", &zone), Some(time::macros::datetime!(2026-12-03 13:30 UTC)));
        assert_eq!(parse_local("2026-12-03T18:30:15", &zone), Some(time::macros::datetime!(2026-12-03 13:30:15 UTC)));
        assert_eq!(parse_local("tomorrow", &zone), None);
        assert_eq!(local("2026-12-03T13:30:00Z", &zone), "2026-12-03 18:30");
        let now = time::macros::datetime!(2026-12-03 13:30 UTC);
        assert_eq!(zone_label("Asia/Almaty", &zone, now), "Asia/Almaty, UTC+05:00");
        // A zone with summer time: its winter offset in December, and its summer one in July.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(local("2026-12-03T13:30:00Z", &berlin), "2026-12-03 14:30");
        assert_eq!(local("2026-07-03T13:30:00Z", &berlin), "2026-07-03 15:30");
        assert_eq!(parse_local("2026-07-03T15:30", &berlin), Some(time::macros::datetime!(2026-07-03 13:30 UTC)));
        let west = TimeZone::get("America/Sao_Paulo").unwrap();
        assert_eq!(zone_label("America/Sao_Paulo", &west, now), "America/Sao_Paulo, UTC-03:00");
    }
}
