//! The operator's days: which local day (in the configured `time_zone`) an instant falls on, and where a local day
//! starts. Every database connection gets the SQL function `kopir_local_day(unix_seconds)` → `'YYYY-MM-DD'` for the
//! configured zone (installed when the store opens a connection, and by the migrations), so the daily rollups are keyed the same way by the meter's writer, by the
//! schema's one-off backfill and by the report queries.
//!
//! ```
//! let almaty = kopir::store::calendar::default_time_zone();
//! // 2026-12-03 20:30 UTC is already the 4th in Almaty (UTC+5).
//! assert_eq!(kopir::store::calendar::local_day(&almaty, 1_796_329_800).unwrap(), "2026-12-04");
//! ```

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// The SQL function's name.
pub const LOCAL_DAY_FUNCTION: &str = "kopir_local_day";

/// The default of `time_zone`.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Almaty";

/// Every time zone's offset from UTC is a whole number of quarter hours, so a quarter hour never straddles two local
/// days: rollups aggregate into quarter hours before they are assigned to a day.
pub const QUARTER_HOUR: i64 = 900;

/// The default zone (from the bundled database when the system has none; UTC only if even that failed to load).
pub fn default_time_zone() -> TimeZone {
    TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC)
}

/// The local day of a unix time, `YYYY-MM-DD`.
pub fn local_day(zone: &TimeZone, unix_seconds: i64) -> Result<String, jiff::Error> {
    Ok(zone.to_datetime(Timestamp::from_second(unix_seconds)?).date().to_string())
}

/// The local date of a unix time.
pub fn local_date(zone: &TimeZone, unix_seconds: i64) -> Result<Date, jiff::Error> {
    Ok(zone.to_datetime(Timestamp::from_second(unix_seconds)?).date())
}

/// Where a local day starts, as a unix time (midnight, or the first instant of the day where a transition skips it).
pub fn day_start(zone: &TimeZone, date: Date) -> Result<i64, jiff::Error> {
    Ok(date.to_zoned_datetime(zone.clone())?.start_of_day()?.timestamp().as_second())
}

/// A stored instant (RFC 3339) as a page shows it: `YYYY-MM-DD HH:MM:SS` in the operator's zone (the text unchanged
/// if it is not an instant).
pub fn local_text(zone: &TimeZone, rfc3339: &str) -> String {
    match rfc3339.parse::<Timestamp>() {
        Ok(at) => zone.to_datetime(at).strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// A stored time (RFC 3339) as the operator reads it on a page: `2027-03-25 11:00` in `zone` (the text as stored if
/// it is not a time).
pub fn local_minute(zone: &TimeZone, rfc3339: &str) -> String {
    let Ok(t) = crate::clock::parse(rfc3339) else { return rfc3339.to_string() };
    let Ok(ts) = Timestamp::from_second(t.unix_timestamp()) else { return rfc3339.to_string() };
    zone.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string()
}

/// Gives a connection `kopir_local_day` for `zone`.
pub fn register(conn: &Connection, zone: &TimeZone) -> rusqlite::Result<()> {
    let zone = zone.clone();
    conn.create_scalar_function(
        LOCAL_DAY_FUNCTION,
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let seconds: i64 = ctx.get(0)?;
            local_day(&zone, seconds).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn local_days_follow_the_zone_and_the_sql_function_agrees() {
        let almaty = default_time_zone();
        // 2026-01-01T18:30Z is 23:30 in Almaty (UTC+5).
        assert_eq!(local_day(&almaty, 1_767_292_200).unwrap(), "2026-01-01");
        let start = day_start(&almaty, "2026-01-02".parse().unwrap()).unwrap();
        assert_eq!(start, 1_767_294_000);
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, &TimeZone::get("Asia/Kolkata").unwrap()).unwrap();
        let day: String = conn.query_row("SELECT kopir_local_day(1767292200)", [], |r| r.get(0)).unwrap();
        assert_eq!(day, "2026-01-02");
    }
}
