//! Consent figures: changes of status per period (granted, rejected, revoked, expired…) from the `consent_changes`
//! rollup that a trigger on `consent_history` keeps, and the registry's standing figures at any instant (consents by
//! status, customers with an authorised consent) from the flows and totals that triggers on `consents` keep
//! (migration 18): no report reads the registry itself.

use rusqlite::types::Value;
use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use rusqlite::{Connection, params, params_from_iter};

use super::ReportsError;
use super::usage::{Granularity, UsageFilter};
use crate::consent::Status;
use crate::store::calendar::{day_start, local_date};

/// Status changes of consents in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChanges {
    /// As in [`super::usage::UsageRow::period`]; `None` for the whole interval.
    pub period: Option<String>,
    /// The status the consents entered (`Revoked` also counts one bank's revocation, for that bank).
    pub status: String,
    pub changes: u64,
}

/// The registry at an instant: consents by status (every status, zeros included) and the customers with at least one
/// authorised consent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandingConsents {
    pub by_status: Vec<(Status, u64)>,
    pub live_customers: u64,
}

/// The figure of `consent_flows` counting customers with an authorised consent.
pub const LIVE_CUSTOMER: &str = "live_customer";
/// The figure of `consent_flows` counting one bank's revocation of a consent that goes on for the others.
pub const BANK_REVOCATION: &str = "bank_revocation";

/// Changes of consents' status in `[from, to)` (at quarter-hour precision), per period of `granularity`: UTC hours,
/// or the operator's days and months in `zone`. The filter's API is ignored (a consent is given to an API user for
/// banks, not for one API).
///
/// Days and months: the periods' bounds are worked out here, once each, and the slots read in the primary key's
/// order are summed into the period they fall in — no per-row call of `kopir_local_day`, and no sort.
pub fn changes(
    conn: &Connection,
    zone: &TimeZone,
    filter: &UsageFilter,
    granularity: Option<Granularity>,
) -> Result<Vec<ConsentChanges>, ReportsError> {
    let (from, to) = (filter.from.unix_timestamp(), filter.to.unix_timestamp());
    if to <= from {
        return Err(ReportsError::EmptyInterval);
    }
    let mut values = vec![Value::Integer(from), Value::Integer(to), Value::Text(filter.environment.as_str().into())];
    let mut conditions = String::from("slot >= ?1 AND slot < ?2 AND environment = ?3");
    for (column, value) in [
        ("provider_organisation_id", filter.provider),
        ("user_organisation_id", filter.user),
        ("application_id", filter.application),
    ] {
        if let Some(value) = value {
            values.push(Value::Integer(value));
            conditions.push_str(&format!(" AND {column} = ?{}", values.len()));
        }
    }
    let local = match granularity {
        Some(Granularity::Day) => false,
        Some(Granularity::Month) => true,
        None | Some(Granularity::Hour) => {
            let period = if granularity.is_some() { "slot / 3600 * 3600" } else { "NULL" };
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {period} AS period, status, sum(changes) AS changes FROM consent_changes WHERE {conditions}
                 GROUP BY 1, 2 ORDER BY 1, 2"
            ))?;
            let rows = statement.query_map(params_from_iter(values.iter()), |row| {
                let period = row
                    .get::<_, Option<i64>>("period")?
                    .and_then(|unix| time::OffsetDateTime::from_unix_timestamp(unix).ok().map(crate::clock::rfc3339));
                Ok(ConsentChanges {
                    period,
                    status: row.get("status")?,
                    changes: row.get::<_, i64>("changes")?.max(0) as u64,
                })
            })?;
            return Ok(rows.collect::<Result<Vec<_>, _>>()?);
        }
    };
    let periods = local_periods(zone, from, to, local)?;
    // Per period (in order), the changes by status.
    let mut sums: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); periods.len()];
    let mut statement = conn.prepare_cached(&format!(
        "SELECT slot, status, changes FROM consent_changes WHERE {conditions} ORDER BY slot"
    ))?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    let mut at = 0;
    while let Some(row) = rows.next()? {
        let slot: i64 = row.get(0)?;
        while at + 1 < periods.len() && slot >= periods[at].2 {
            at += 1;
        }
        let status = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        let changes = row.get::<_, i64>(2)?.max(0) as u64;
        match sums[at].get_mut(status) {
            Some(sum) => *sum += changes,
            None => {
                sums[at].insert(status.to_string(), changes);
            }
        }
    }
    Ok(periods
        .into_iter()
        .zip(sums)
        .flat_map(|((label, _, _), by_status)| {
            by_status.into_iter().map(move |(status, changes)| ConsentChanges {
                period: Some(label.clone()),
                status,
                changes,
            })
        })
        .collect())
}

/// The operator's days (or months) that `[from, to)` overlaps, in order, as `(label, start, end)` (unix seconds, the
/// part within the interval): the labels `kopir_local_day` gives their slots.
fn local_periods(zone: &TimeZone, from: i64, to: i64, months: bool) -> Result<Vec<(String, i64, i64)>, ReportsError> {
    let mut periods: Vec<(String, i64, i64)> = Vec::new();
    let mut date = local_date(zone, from)?;
    let mut start = from;
    while start < to {
        let next = date.tomorrow()?;
        let end = day_start(zone, next)?.min(to);
        let label = if months { date.strftime("%Y-%m").to_string() } else { date.to_string() };
        match periods.last_mut() {
            Some(last) if last.0 == label => last.2 = end,
            _ => periods.push((label, start, end)),
        }
        start = end;
        date = next;
    }
    Ok(periods)
}

/// Consents by status and customers with an authorised consent at the instant `at` (unix seconds), for one
/// environment: the all-time totals of `consent_totals` less the flows of the slots from `at` on. Exact where `at`
/// is a quarter-hour boundary (every local day's and month's is) or later than every change (now).
pub fn standing_at(
    conn: &Connection,
    environment: crate::apps::AppMode,
    at: i64,
) -> Result<StandingConsents, ReportsError> {
    let mut figures: BTreeMap<String, i64> = BTreeMap::new();
    let mut totals =
        conn.prepare_cached("SELECT figure, entered - exited FROM consent_totals WHERE environment = ?1")?;
    for row in totals.query_map(params![environment.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
        let (figure, n) = row?;
        figures.insert(figure, n);
    }
    let mut since = conn.prepare_cached(
        "SELECT figure, sum(entered - exited) FROM consent_flows WHERE environment = ?1 AND slot >= ?2 GROUP BY 1",
    )?;
    for row in since.query_map(params![environment.as_str(), at], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
        let (figure, n): (String, i64) = row?;
        *figures.entry(figure).or_default() -= n;
    }
    let count = |figure: &str| figures.get(figure).copied().unwrap_or(0).max(0) as u64;
    Ok(StandingConsents {
        by_status: Status::ALL.iter().map(|status| (*status, count(status.as_str()))).collect(),
        live_customers: count(LIVE_CUSTOMER),
    })
}

/// How many consents entered each status in `[from, to)` (unix seconds, quarter-hour boundaries), and how many
/// single banks were revoked (under [`BANK_REVOCATION`]), for one environment.
pub fn entered_between(
    conn: &Connection,
    environment: crate::apps::AppMode,
    from: i64,
    to: i64,
) -> Result<BTreeMap<String, i64>, ReportsError> {
    let mut statement = conn.prepare_cached(
        "SELECT figure, sum(entered) FROM consent_flows WHERE environment = ?1 AND slot >= ?2 AND slot < ?3
         GROUP BY 1",
    )?;
    let rows = statement.query_map(params![environment.as_str(), from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::apps::AppMode;
    use crate::store::migrate::{SCHEMA, migrate};

    const START: i64 = 1_789_999_200; // 2026-09-21T14:00:00Z, a quarter-hour boundary (as the instants read must be).
    const SPAN: i64 = 5 * 86_400;

    /// One change of the registry at a second `at`, applied in time order as the platform would.
    enum Change {
        Created { id: String, application: i64 },
        Authorised { id: String, customer: i64 },
        Ended { id: String, status: &'static str },
        BankRevoked { id: String, bank: i64 },
    }

    /// 300 consents over five days, of two environments and 15 customers: authorised, then revoked or expired,
    /// refused, or left waiting; some lose one of their two banks. Times are arbitrary seconds.
    fn history() -> Vec<(i64, Change)> {
        let mut seed: u64 = 0x5eed_c0de;
        let mut next = |n: i64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % n as u64) as i64
        };
        let mut changes = Vec::new();
        for n in 0..300 {
            let id = format!("c{n}");
            let created = START + next(SPAN);
            changes.push((created, Change::Created { id: id.clone(), application: 1 + next(2) }));
            match next(10) {
                0..=6 => {
                    let authorised = created + 1 + next(3_000);
                    changes.push((authorised, Change::Authorised { id: id.clone(), customer: 1 + next(15) }));
                    if next(2) == 0 {
                        changes.push((authorised + 1 + next(40_000), Change::BankRevoked { id: id.clone(), bank: 11 }));
                    }
                    match next(3) {
                        0 => changes.push((authorised + next(80_000), Change::Ended { id, status: "Revoked" })),
                        1 => {
                            changes.push((authorised + 50_000 + next(80_000), Change::Ended { id, status: "Expired" }))
                        }
                        _ => {}
                    }
                }
                7 | 8 => changes.push((created + next(2_000), Change::Ended { id, status: "Rejected" })),
                _ => {}
            }
        }
        // Time order; at one second, in the order generated (an authorisation before its own ending).
        changes.sort_by_key(|(at, _)| *at);
        changes
    }

    fn rfc(at: i64) -> String {
        crate::clock::rfc3339(time::OffsetDateTime::from_unix_timestamp(at).unwrap())
    }

    fn apply(conn: &Connection, changes: &[(i64, Change)]) {
        use crate::store::fixtures;
        fixtures::organisations(conn, &[(10, "990140000661"), (11, "990140000662"), (20, "990140000663")]);
        fixtures::api_user_applications(conn, 20);
        fixtures::customers(conn, 15);
        for (at, change) in changes {
            let at = rfc(*at);
            match change {
                Change::Created { id, application } => {
                    conn.execute(
                        "INSERT INTO consents (id, application_id, permissions, purpose, expires_at, created_at,
                                               status_updated_at)
                         VALUES (?1, ?2, '[]', 'test', '2099-01-01T00:00:00Z', ?3, ?3)",
                        params![id, application, at],
                    )
                    .unwrap();
                    for bank in [10, 11] {
                        conn.execute(
                            "INSERT INTO consent_providers (consent_id, organisation_id) VALUES (?1, ?2)",
                            params![id, bank],
                        )
                        .unwrap();
                    }
                }
                Change::Authorised { id, customer } => {
                    conn.execute(
                        "UPDATE consents SET customer_id = ?2, authorised_at = ?3 WHERE id = ?1",
                        params![id, customer, at],
                    )
                    .unwrap();
                    conn.execute(
                        "UPDATE consents SET status = 'Authorised', status_updated_at = ?2 WHERE id = ?1",
                        params![id, at],
                    )
                    .unwrap();
                }
                Change::Ended { id, status } => {
                    conn.execute(
                        "UPDATE consents SET status = ?2, status_updated_at = ?3 WHERE id = ?1",
                        params![id, status, at],
                    )
                    .unwrap();
                }
                Change::BankRevoked { id, bank } => {
                    conn.execute(
                        "UPDATE consent_providers SET status = 'revoked', revoked_at = ?3
                         WHERE consent_id = ?1 AND organisation_id = ?2",
                        params![id, bank, at],
                    )
                    .unwrap();
                }
            }
        }
    }

    /// The figures at `at` read straight from the registry's dated columns (the slow way the flows replace).
    fn from_registry(conn: &Connection, environment: AppMode, at: i64) -> StandingConsents {
        let status_at = "CASE WHEN c.status_updated_at < ?2 THEN c.status
                              WHEN c.authorised_at IS NOT NULL AND c.authorised_at < ?2 THEN 'Authorised'
                              ELSE 'AwaitingAuthorisation' END";
        let from = "FROM consents c JOIN applications a ON a.id = c.application_id
                    WHERE a.mode = ?1 AND c.created_at < ?2";
        let by_status = Status::ALL
            .iter()
            .map(|status| {
                let n: i64 = conn
                    .query_row(
                        &format!("SELECT count(*) {from} AND ({status_at}) = ?3"),
                        params![environment.as_str(), rfc(at), status.as_str()],
                        |r| r.get(0),
                    )
                    .unwrap();
                (*status, n as u64)
            })
            .collect();
        let live: i64 = conn
            .query_row(
                &format!("SELECT count(DISTINCT c.customer_id) {from} AND ({status_at}) = 'Authorised'"),
                params![environment.as_str(), rfc(at)],
                |r| r.get(0),
            )
            .unwrap();
        StandingConsents { by_status, live_customers: live as u64 }
    }

    fn entered_from_registry(conn: &Connection, environment: AppMode, from: i64, to: i64) -> BTreeMap<String, i64> {
        let count = |sql: &str| -> i64 {
            conn.query_row(
                &format!(
                    "SELECT count(*) FROM consents c JOIN applications a ON a.id = c.application_id
                     LEFT JOIN consent_providers p ON p.consent_id = c.id AND p.organisation_id = 11
                     WHERE a.mode = ?1 AND {sql}"
                ),
                params![environment.as_str(), rfc(from), rfc(to)],
                |r| r.get(0),
            )
            .unwrap()
        };
        let within = |column: &str| format!("{column} >= ?2 AND {column} < ?3");
        let mut out = BTreeMap::new();
        out.insert("AwaitingAuthorisation".into(), count(&within("c.created_at")));
        out.insert("Authorised".into(), count(&within("c.authorised_at")));
        for status in ["Rejected", "Revoked", "Expired"] {
            out.insert(status.into(), count(&format!("c.status = '{status}' AND {}", within("c.status_updated_at"))));
        }
        out.insert(BANK_REVOCATION.into(), count(&within("p.revoked_at")));
        out.retain(|_, n| *n > 0);
        out
    }

    #[test]
    fn flows_agree_with_the_registry_at_every_quarter_hour_whether_kept_by_triggers_or_back_filled() {
        let changes = history();
        // Kept by the triggers as the registry changes.
        let mut kept = Connection::open_in_memory().unwrap();
        migrate(&mut kept, SCHEMA).unwrap();
        apply(&kept, &changes);
        // Written before migration 18, then back-filled by it.
        let marker = SCHEMA.find("-- migration 18:").unwrap();
        let mut filled = Connection::open_in_memory().unwrap();
        migrate(&mut filled, &SCHEMA[..marker]).unwrap();
        apply(&filled, &changes);
        migrate(&mut filled, SCHEMA).unwrap();

        let mut checked = 0;
        for environment in [AppMode::Production, AppMode::Sandbox] {
            let mut at = START - 900;
            while at <= START + SPAN + 3 * 86_400 {
                let expected = from_registry(&kept, environment, at);
                assert_eq!(standing_at(&kept, environment, at).unwrap(), expected, "triggers, {environment:?} at {at}");
                assert_eq!(standing_at(&filled, environment, at).unwrap(), expected, "back-fill, {environment:?} {at}");
                checked += 1;
                at += 900;
            }
            let mut day = START - START % 86_400;
            while day <= START + SPAN + 3 * 86_400 {
                let expected = entered_from_registry(&kept, environment, day, day + 86_400);
                let read = |conn: &Connection| {
                    let mut figures = entered_between(conn, environment, day, day + 86_400).unwrap();
                    figures.retain(|figure, n| *n > 0 && figure != LIVE_CUSTOMER);
                    figures
                };
                assert_eq!(read(&kept), expected, "triggers, {environment:?} day {day}");
                assert_eq!(read(&filled), expected, "back-fill, {environment:?} day {day}");
                day += 86_400;
            }
        }
        // Now (after every change): the registry as it stands, and the live customers' table agrees.
        let now = START + SPAN + 4 * 86_400;
        let standing = standing_at(&kept, AppMode::Production, now).unwrap();
        let live: i64 = kept
            .query_row(
                "SELECT count(*) FROM consent_live_customers WHERE environment = 'production' AND authorised > 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(standing.live_customers, live as u64);
        assert!(standing.live_customers > 3 && checked > 1_000, "{standing:?} {checked}");
    }

    #[test]
    fn changes_by_slot_ranges_equal_the_per_row_local_day_of_every_slot() {
        // A zone with summer time, so that some local days are 23 or 25 hours long.
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::calendar::register(&conn, &zone).unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        // Changes in quarter hours over 80 days across three months and both of Berlin's transitions' seasons.
        let first: i64 = 1_790_000_100; // 2026-09-21T12:15:00Z, a quarter-hour boundary
        let mut seed: u64 = 7;
        for slot in (0..80 * 96).map(|n| first + n * 900) {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            if seed >> 62 == 0 {
                continue;
            }
            let status = ["Authorised", "Revoked", "Expired"][(seed >> 40) as usize % 3];
            conn.execute(
                "INSERT INTO consent_changes (slot, environment, provider_organisation_id, user_organisation_id,
                                              application_id, status, changes)
                 VALUES (?1, 'production', ?2, 2, 3, ?3, ?4)",
                params![slot, 1 + (seed >> 50) as i64 % 2, status, 1 + (seed >> 33) as i64 % 4],
            )
            .unwrap();
        }
        let old = |period: &str, from: i64, to: i64| -> Vec<ConsentChanges> {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {period}, status, sum(changes) FROM consent_changes
                     WHERE slot >= ?1 AND slot < ?2 AND environment = 'production' AND provider_organisation_id = 1
                     GROUP BY 1, 2 ORDER BY 1, 2"
                ))
                .unwrap();
            statement
                .query_map(params![from, to], |r| {
                    Ok(ConsentChanges { period: r.get(0)?, status: r.get(1)?, changes: r.get::<_, i64>(2)? as u64 })
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        // Whole local days, and an interval starting and ending mid-day.
        for (from, to) in [(first + 3 * 3600, first + 75 * 86_400 + 7 * 3600), (first, first + 80 * 86_400)] {
            let at = |unix: i64| time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
            let filter = UsageFilter { provider: Some(1), ..UsageFilter::production(at(from), at(to)) };
            let read = |granularity| changes(&conn, &zone, &filter, granularity).unwrap();
            assert_eq!(read(Some(Granularity::Day)), old("kopir_local_day(slot)", from, to));
            assert_eq!(read(Some(Granularity::Month)), old("substr(kopir_local_day(slot), 1, 7)", from, to));
            assert!(read(Some(Granularity::Month)).len() >= 6);
            let hours = read(Some(Granularity::Hour));
            assert_eq!(hours.iter().map(|c| c.changes).sum::<u64>(), read(None).iter().map(|c| c.changes).sum::<u64>());
        }
    }
}
