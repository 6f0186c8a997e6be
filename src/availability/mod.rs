//! Availability by a stated rule — of each bank API, of each bank, and of the platform itself — computed from live
//! traffic and the sandbox's scheduled checks together, with providers' planned maintenance shown apart.
//!
//! **The rule** (modelled on the UAE Open Finance hub's):
//! - Availability is computed **per day**, the operator's local day in the configured `time_zone`
//!   ([`local_day`]), as `100 % − unplanned downtime ÷ the day's length`, in whole seconds; the percentage is shown
//!   with two decimals and computed from integers (hundredths of a per cent, rounded half up). Nothing fractional is
//!   stored.
//! - **Downtime runs from the first failed call to the first successful one** after it: an outage opens at the first
//!   failure and closes at the first success; failures in between change nothing. An outage still open counts up to
//!   now.
//! - **What fails a bank API** (the provider's fault): the gateway's call timed out (`504`: no answer within the API's
//!   time-out), or gave nothing usable (`502`: connection or TLS failure, an answer broken off or over 16 MiB, a
//!   `2xx` whose body is not the standard's shape, a bank `5xx`, or the bank refusing the platform's own credentials
//!   — the one kind of `4xx` that is the provider's doing); and a scheduled check that failed. **What is a success**:
//!   a `2xx` the gateway could use, a check that passed. **Neither**: the bank's `400` and `404`, which the gateway
//!   passes on as the caller's or customer's business; refusals made before any bank was called (`403` no
//!   connection or wrong customer for the mode, `503` delisted); the platform's own `500` (counted against the
//!   platform, not the bank).
//! - **A bank is down while any of its APIs is down** (the union of its APIs' unplanned downtime): a bank serves
//!   API users through every API it publishes, and a healthy minor API must not hide a dead one; with one API per
//!   bank (today's standard) the bank's figure is its API's.
//! - **The platform is down** from its first own `5xx` to its next answer that is not one, over every route: answers
//!   the platform made itself, never a bank's failure it relays (`502`, `503`, `504` of the gateway's account
//!   routes and of the demo application). See [`platform`].
//! - **Planned maintenance** that a provider declares in its personal account, for one API or all its APIs, is shown
//!   apart as planned seconds and never counted as downtime — from the moment it was declared (a window declared
//!   during an outage does not excuse what came before) until it ends or is cancelled.
//!
//! Sources: production traffic is metered exchanges ([`outages::observe_exchanges`], called by the meter's batch
//! writer in the batch's transaction); checks are the scheduled runs ([`outages::observe_checks`], in the run's
//! transaction). Both environments are tracked apart; the published figures are production's. When an API's
//! production outage opens or closes, its provider gets a signed `api.down` / `api.up` webhook in the same
//! transaction, and the operator's console lists the open outages (`/console/availability`).
//!
//! ```
//! use kopir::availability::{hundredths, percent};
//! // A bank down for ten minutes of a day:
//! assert_eq!(percent(hundredths(86_400, 600)), "99.31");
//! ```

pub mod maintenance;
pub mod outages;
pub mod pages;
pub mod platform;

use jiff::tz::TimeZone;
use rusqlite::Connection;
use serde::Serialize;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::store::calendar;

use crate::catalog::Environment;

pub use maintenance::Window;
pub use outages::{Cause, Outage, Source};
pub use platform::PlatformWatch;

/// Every route of the availability pages, mounted by the web server.
pub fn router() -> axum::Router<crate::web::AppState> {
    pages::router()
}

/// What availability is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// One API (by id).
    Api(i64),
    /// A bank: every API its organisation (by id) publishes.
    Bank(i64),
    /// The platform's own answers.
    Platform,
}

/// The operator's local day of an instant, in the configured `time_zone` (`config.time_zone`, the zone
/// [`crate::store::calendar`] keys the usage rollups by), so that availability days and the reports' days agree.
pub fn local_day(zone: &TimeZone, at: OffsetDateTime) -> LocalDay {
    let date = calendar::local_date(zone, at.unix_timestamp())
        .ok()
        .and_then(civil_to_date)
        .unwrap_or_else(|| at.to_offset(UtcOffset::UTC).date());
    LocalDay::of(zone, date)
}

/// One local day: its date and its bounds in UTC, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDay {
    pub date: Date,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

impl LocalDay {
    /// The local day `date` in `zone`: from its first instant to the next day's (23 or 25 hours on the days a zone
    /// with summer time changes its clocks; a UTC day only if the zone cannot place the date at all).
    pub fn of(zone: &TimeZone, date: Date) -> LocalDay {
        let utc_start = date.midnight().assume_utc();
        let start_of = |d: Date| -> Option<OffsetDateTime> {
            let civil =
                jiff::civil::Date::new(d.year().try_into().ok()?, u8::from(d.month()) as i8, d.day() as i8).ok()?;
            let seconds = calendar::day_start(zone, civil).ok()?;
            OffsetDateTime::from_unix_timestamp(seconds).ok()
        };
        let start = start_of(date).unwrap_or(utc_start);
        let end = date.next_day().and_then(start_of).filter(|end| *end > start).unwrap_or(start + Duration::DAY);
        LocalDay { date, start, end }
    }

    pub fn seconds(&self) -> i64 {
        (self.end - self.start).whole_seconds()
    }
}

/// A civil date of `jiff` as one of `time`.
fn civil_to_date(date: jiff::civil::Date) -> Option<Date> {
    let month = time::Month::try_from(u8::try_from(date.month()).ok()?).ok()?;
    Date::from_calendar_date(i32::from(date.year()), month, u8::try_from(date.day()).ok()?).ok()
}

/// Availability in hundredths of a per cent: `(day − down) / day`, rounded half up, from integers only.
pub fn hundredths(day_seconds: i64, down_seconds: i64) -> i64 {
    if day_seconds <= 0 {
        return 10_000;
    }
    let up = (day_seconds - down_seconds.clamp(0, day_seconds)) as i128;
    let day = day_seconds as i128;
    ((20_000 * up + day) / (2 * day)) as i64
}

/// Hundredths of a per cent as shown: `99.31`.
pub fn percent(hundredths: i64) -> String {
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// One day of a subject's availability.
#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub date: String,
    /// The day's length in seconds (86 400, or 82 800 / 90 000 where summer time starts / ends that day).
    pub seconds: i64,
    pub unplanned_seconds: i64,
    pub planned_seconds: i64,
    /// Availability in hundredths of a per cent.
    pub hundredths: i64,
    /// The outages that touched the day (an outage over midnight is listed on both days).
    pub outages: Vec<Outage>,
}

impl Day {
    /// `99.31`.
    pub fn percent(&self) -> String {
        percent(self.hundredths)
    }

    /// Whole minutes, rounded up (a 20-second outage shows as a minute, not as none).
    pub fn unplanned_minutes(&self) -> i64 {
        (self.unplanned_seconds + 59) / 60
    }

    pub fn planned_minutes(&self) -> i64 {
        (self.planned_seconds + 59) / 60
    }
}

/// A time span `[start, end)` in Unix seconds.
type Span = (i64, i64);

/// Sorted, merged spans.
fn union(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|(s, e)| e > s);
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a` without `b` (both merged).
fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(mut s, e) in a {
        for &(bs, be) in b {
            if be <= s || bs >= e {
                continue;
            }
            if bs > s {
                out.push((s, bs));
            }
            s = s.max(be);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

/// Seconds of `spans` (merged) inside `[lo, hi)`.
fn within(spans: &[Span], lo: i64, hi: i64) -> i64 {
    spans.iter().map(|&(s, e)| (e.min(hi) - s.max(lo)).max(0)).sum()
}

fn unix(rfc3339: &str) -> Option<i64> {
    crate::clock::parse(rfc3339).ok().map(|t| t.unix_timestamp())
}

/// An outage as a span, an open one running to `now`.
fn outage_span(outage: &Outage, now: i64) -> Option<Span> {
    let start = unix(&outage.started_at)?;
    let end = match &outage.ended_at {
        Some(end) => unix(end)?,
        None => now.max(start),
    };
    Some((start, end))
}

/// The availability of `subject` in `environment`, day by day from `from` to `to` (local dates in `zone`, the
/// operator's time zone, both included; days after today are left out).
///
/// ```
/// # use kopir::availability::{daily, Subject, LocalDay, local_day};
/// # let mut conn = rusqlite::Connection::open_in_memory().unwrap();
/// # kopir::store::migrate::migrate(&mut conn, kopir::store::migrate::SCHEMA).unwrap();
/// let zone = kopir::store::calendar::default_time_zone();
/// let now = time::OffsetDateTime::now_utc();
/// let today = local_day(&zone, now).date;
/// let production = kopir::catalog::Environment::Production;
/// let days = daily(&conn, &zone, Subject::Platform, production, today, today, now).unwrap();
/// assert_eq!(days[0].percent(), "100.00");
/// ```
pub fn daily(
    conn: &Connection,
    zone: &TimeZone,
    subject: Subject,
    environment: Environment,
    from: Date,
    to: Date,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<Day>> {
    let today = local_day(zone, now).date;
    let to = to.min(today);
    if from > to {
        return Ok(Vec::new());
    }
    let (lo, hi) = (LocalDay::of(zone, from).start, LocalDay::of(zone, to).end);
    let now_s = now.unix_timestamp();
    // Per API: its outages, and the windows that excuse them.
    let (apis, outage_rows, windows) = match subject {
        Subject::Api(id) => {
            let Some(api) = crate::catalog::api(conn, id)? else { return Ok(Vec::new()) };
            let windows = maintenance::covering(conn, api.organisation_id, lo, hi)?;
            (vec![id], outages::for_apis(conn, &[id], environment, lo, hi)?, windows)
        }
        Subject::Bank(organisation) => {
            let ids: Vec<i64> =
                crate::catalog::list_for_organisation(conn, organisation)?.into_iter().map(|a| a.id).collect();
            let windows = maintenance::covering(conn, organisation, lo, hi)?;
            (ids.clone(), outages::for_apis(conn, &ids, environment, lo, hi)?, windows)
        }
        Subject::Platform => (Vec::new(), outages::for_platform(conn, environment, lo, hi)?, Vec::new()),
    };
    let planned_of = |api: Option<i64>| -> Vec<Span> {
        union(windows.iter().filter(|w| api.is_none() || w.covers(api)).filter_map(Window::counted_span).collect())
    };
    let unplanned: Vec<Span> = if apis.is_empty() {
        union(outage_rows.iter().filter_map(|o| outage_span(o, now_s)).collect())
    } else {
        let mut all = Vec::new();
        for api in &apis {
            let down = union(
                outage_rows.iter().filter(|o| o.api_id == Some(*api)).filter_map(|o| outage_span(o, now_s)).collect(),
            );
            all.extend(subtract(&down, &planned_of(Some(*api))));
        }
        union(all)
    };
    // An API's planned time is the windows covering it; a bank's, every window of its organisation.
    let planned = match subject {
        Subject::Api(id) => planned_of(Some(id)),
        Subject::Bank(_) | Subject::Platform => planned_of(None),
    };
    let mut days = Vec::new();
    let mut date = from;
    loop {
        let day = LocalDay::of(zone, date);
        let (s, e) = (day.start.unix_timestamp(), day.end.unix_timestamp());
        let unplanned_seconds = within(&unplanned, s, e);
        let touching = outage_rows
            .iter()
            .filter(|o| outage_span(o, now_s).is_some_and(|(os, oe)| os < e && (oe > s || (oe == os && os >= s))))
            .cloned()
            .collect();
        days.push(Day {
            date: date.to_string(),
            seconds: day.seconds(),
            unplanned_seconds,
            planned_seconds: within(&planned, s, e),
            hundredths: hundredths(day.seconds(), unplanned_seconds),
            outages: touching,
        });
        match date.next_day() {
            Some(next) if next <= to => date = next,
            _ => break,
        }
    }
    Ok(days)
}

/// Why an availability action was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    /// A refusal the person can act on: the text key says why.
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("no such maintenance window")]
    NotFound,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<rusqlite::Error> for AvailabilityError {
    fn from(e: rusqlite::Error) -> Self {
        AvailabilityError::Store(e.into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ten_minutes_down_reads_99_31_and_rounding_is_half_up_from_integers() {
        assert_eq!(percent(hundredths(86_400, 600)), "99.31");
        assert_eq!(percent(hundredths(86_400, 0)), "100.00");
        assert_eq!(percent(hundredths(86_400, 86_400)), "0.00");
        assert_eq!(percent(hundredths(86_400, 864)), "99.00");
        // 4.32 s is half a hundredth of a per cent of a day: 4 s rounds up, 5 s down.
        assert_eq!(hundredths(86_400, 4), 10_000);
        assert_eq!(hundredths(86_400, 5), 9_999);
    }

    #[test]
    fn the_local_day_is_the_configured_zone_s_and_agrees_with_the_reports_days() {
        let almaty = calendar::default_time_zone();
        let at = time::macros::datetime!(2026-12-03 19:30 UTC);
        let day = local_day(&almaty, at);
        assert_eq!(day.date, time::macros::date!(2026 - 12 - 04), "00:30 in Almaty");
        assert_eq!(day.start, time::macros::datetime!(2026-12-03 19:00 UTC));
        assert_eq!(day.seconds(), 86_400);
        assert_eq!(LocalDay::of(&almaty, day.date), day);
        // Another zone moves the day's bounds, and the rollups' `kopir_local_day` names the same day.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let day = local_day(&berlin, at);
        assert_eq!(day.date, time::macros::date!(2026 - 12 - 03), "20:30 in Berlin");
        assert_eq!(day.start, time::macros::datetime!(2026-12-02 23:00 UTC));
        for probe in [day.start, day.end - Duration::SECOND, at] {
            let reports = calendar::local_day(&berlin, probe.unix_timestamp()).unwrap();
            assert_eq!(reports, day.date.to_string());
        }
        assert_eq!(calendar::local_day(&berlin, day.end.unix_timestamp()).unwrap(), "2026-12-04");
        // The days summer time starts and ends last 23 and 25 hours.
        assert_eq!(LocalDay::of(&berlin, time::macros::date!(2026 - 03 - 29)).seconds(), 82_800);
        assert_eq!(LocalDay::of(&berlin, time::macros::date!(2026 - 10 - 25)).seconds(), 90_000);
    }

    #[test]
    fn a_bank_is_down_while_any_api_is_and_a_window_excuses_only_what_it_covers() {
        use outages::{Observation, Source, observe};
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, status,
                                        is_provider, created_at, updated_at)
             VALUES (1, '990340000014', 'Altyn Bank', 'L-1', 'a@b.kz', '+7 700 000 00 00', 'accredited', 1,
                     '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             INSERT INTO apis (id, organisation_id, name, version, standard, status, created_at, updated_at)
             VALUES (1, 1, 'Accounts', '1.0', 'kopir-ais-v1', 'published', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
                    (2, 1, 'Cards', '1.0', 'kopir-ais-v1', 'published', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
             -- Maintenance of the second API from 10:15 to 11:00, declared in the morning.
             INSERT INTO maintenance_windows (organisation_id, api_id, starts_at, ends_at, reason, declared_by, declared_at)
             VALUES (1, 2, '2026-12-03T10:15:00Z', '2026-12-03T11:00:00Z', 'Upgrade', 'user:a', '2026-12-03T09:00:00Z');",
        )
        .unwrap();
        let failed = || Observation::Failed { status: Some(502), cause: Cause::BankFailure, detail: String::new() };
        let production = Environment::Production;
        // The first API: down 10:00 to 10:10; a repeated failure changes nothing.
        assert!(observe(&tx, 1, production, "2026-12-03T10:00:00Z", Source::Traffic, &failed()).unwrap());
        assert!(!observe(&tx, 1, production, "2026-12-03T10:03:00Z", Source::Checks, &failed()).unwrap());
        assert!(observe(&tx, 1, production, "2026-12-03T10:10:00Z", Source::Traffic, &Observation::Succeeded).unwrap());
        // The second: down 10:05 to 10:20, a success from before its start (a late batch) does not end it.
        assert!(observe(&tx, 2, production, "2026-12-03T10:05:00Z", Source::Checks, &failed()).unwrap());
        assert!(
            !observe(&tx, 2, production, "2026-12-03T10:04:00Z", Source::Traffic, &Observation::Succeeded).unwrap()
        );
        assert!(observe(&tx, 2, production, "2026-12-03T10:20:00Z", Source::Checks, &Observation::Succeeded).unwrap());
        // A sandbox failure is kept apart.
        assert!(observe(&tx, 1, Environment::Sandbox, "2026-12-03T10:30:00Z", Source::Checks, &failed()).unwrap());
        let events: i64 = tx.query_row("SELECT count(*) FROM webhook_outbox", [], |r| r.get(0)).unwrap();
        assert_eq!(events, 4, "down and up of each API in production, to its provider");
        tx.commit().unwrap();

        let now = time::macros::datetime!(2026-12-03 12:00 UTC);
        let zone = calendar::default_time_zone();
        let date = local_day(&zone, now).date;
        let day = |subject| daily(&conn, &zone, subject, Environment::Production, date, date, now).unwrap().remove(0);
        let first = day(Subject::Api(1));
        assert_eq!((first.unplanned_seconds, first.planned_seconds, first.percent()), (600, 0, "99.31".into()));
        let second = day(Subject::Api(2));
        assert_eq!((second.unplanned_seconds, second.planned_seconds), (600, 2700), "10:05–10:15 only");
        let bank = day(Subject::Bank(1));
        assert_eq!((bank.unplanned_seconds, bank.planned_seconds, bank.percent()), (900, 2700, "98.96".into()));
        assert_eq!(bank.outages.len(), 2);
        assert_eq!(day(Subject::Platform).percent(), "100.00");
    }

    #[test]
    fn every_availability_text_key_in_the_code_exists_in_every_language() {
        use crate::i18n::{Lang, Texts};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/availability");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("\"availability.") {
                let rest = &text[i + 1..];
                let key = &rest[..rest.find('"').unwrap()];
                if key.starts_with("availability.maintenance.") || key.ends_with('.') || key.contains(' ') {
                    continue; // audit actions, not text keys
                }
                for lang in Lang::ALL {
                    if (Texts { lang }).get(key) == key {
                        missing.push(format!("{}: {key} ({lang:?})", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "text keys without a text: {missing:?}");
    }

    #[test]
    fn spans_merge_and_subtract() {
        assert_eq!(union(vec![(5, 9), (1, 3), (2, 4), (9, 10), (7, 7)]), vec![(1, 4), (5, 10)]);
        assert_eq!(subtract(&[(0, 10), (20, 30)], &[(2, 4), (8, 22), (29, 40)]), vec![(0, 2), (4, 8), (22, 29)]);
        assert_eq!(within(&[(0, 10), (20, 30)], 5, 25), 10);
    }
}
