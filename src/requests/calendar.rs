//! The operator's working time, which the SLA clocks of requests run on: working hours (`requests.work_starts` to
//! `requests.work_ends`, in the operator's `time_zone`), Monday to Friday, except Kazakhstan's public holidays and the
//! days the configuration adds.
//!
//! Public holidays (Labour Code art. 84, the Law on Holidays): 1–2 January, 7 January (Orthodox Christmas), 8 March,
//! 21–23 March (Nauryz), 1 May, 7 May, 9 May, 6 July, 30 August, 25 October, 16 December, and the first day of
//! Kurban Ait (its date moves with the lunar calendar: built in for 2024–2026, later years come from
//! `requests.extra_days_off`). A holiday other than a religious one that falls on a Saturday or Sunday moves the day
//! off to the next working day. The government's yearly decrees that move further days are the configuration's
//! `extra_days_off` and `extra_working_days`.
//!
//! ```
//! use kopir::requests::calendar::Calendar;
//! let calendar = Calendar::new(kopir::store::calendar::default_time_zone(), "09:00", "18:00", &[], &[]).unwrap();
//! // Friday 19 March 2027, 16:00 in Almaty (UTC+5), plus four working hours: two on Friday; the weekend, Nauryz
//! // (Monday 22 and Tuesday 23) and Wednesday 24 (21 March was a Sunday) are off; two more on Thursday.
//! let start = time::macros::datetime!(2027-03-19 11:00 UTC);
//! assert_eq!(calendar.add_working(start, 240).unwrap(), time::macros::datetime!(2027-03-25 06:00 UTC));
//! ```

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday, date};
use jiff::tz::TimeZone;
use time::OffsetDateTime;

/// Fixed-date public holidays (month, day) after which a weekend day off moves to the next working day.
const FIXED: &[(i8, i8)] =
    &[(1, 1), (1, 2), (3, 8), (3, 21), (3, 22), (3, 23), (5, 1), (5, 7), (5, 9), (7, 6), (8, 30), (10, 25), (12, 16)];

/// Nauryz, 21–23 March: the spring holidays, part of [`FIXED`].
pub const NAURYZ: [(i8, i8); 3] = [(3, 21), (3, 22), (3, 23)];

/// Whether `day` is one of the Nauryz holidays (not the days off moved from a weekend: [`Calendar::is_working_day`]
/// says those).
pub fn is_nauryz(day: Date) -> bool {
    NAURYZ.contains(&(day.month(), day.day()))
}

/// Religious holidays: days off, but never moved when they fall on a weekend. Orthodox Christmas every year; the first
/// day of Kurban Ait in the years its date is known here.
const CHRISTMAS: (i8, i8) = (1, 7);
const KURBAN_AIT: &[Date] = &[date(2024, 6, 16), date(2025, 6, 6), date(2026, 5, 27)];

/// The years whose holidays are worked out when the calendar is made (a request's clock never runs further).
const FIRST_YEAR: i16 = 2020;
const LAST_YEAR: i16 = 2100;

/// The most days [`Calendar::add_working`] walks before it gives up (a calendar with no working day left).
const MAX_DAYS: usize = 3660;

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("no working time within ten years of {0}")]
    NoWorkingTime(String),
    #[error("time arithmetic: {0}")]
    Time(String),
}

impl From<jiff::Error> for CalendarError {
    fn from(error: jiff::Error) -> CalendarError {
        CalendarError::Time(error.to_string())
    }
}

/// The operator's working calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    starts: Time,
    ends: Time,
    days_off: BTreeSet<Date>,
    working_days: BTreeSet<Date>,
}

fn parse_time(key: &str, value: &str) -> Result<Time, String> {
    value.parse::<Time>().map_err(|_| format!("requests.{key}: `{value}` is not a time of day such as \"09:00\""))
}

fn parse_dates(key: &str, values: &[String]) -> Result<BTreeSet<Date>, String> {
    values
        .iter()
        .map(|v| v.parse::<Date>().map_err(|_| format!("requests.{key}: `{v}` is not a date such as \"2027-03-24\"")))
        .collect()
}

impl Calendar {
    /// A calendar for `zone` with working hours `starts`–`ends` (`HH:MM`) and the configuration's extra days.
    pub fn new(
        zone: TimeZone,
        starts: &str,
        ends: &str,
        extra_days_off: &[String],
        extra_working_days: &[String],
    ) -> Result<Calendar, String> {
        let (starts, ends) = (parse_time("work_starts", starts)?, parse_time("work_ends", ends)?);
        if starts >= ends {
            return Err("requests.work_starts must be before requests.work_ends".into());
        }
        let mut days_off = public_holidays();
        days_off.extend(parse_dates("extra_days_off", extra_days_off)?);
        let working_days = parse_dates("extra_working_days", extra_working_days)?;
        Ok(Calendar { zone, starts, ends, days_off, working_days })
    }

    /// The calendar the configuration describes.
    pub fn from_config(config: &crate::config::Config) -> Result<Calendar, String> {
        let r = &config.requests;
        Calendar::new(
            config.time_zone.zone().clone(),
            &r.work_starts,
            &r.work_ends,
            &r.extra_days_off,
            &r.extra_working_days,
        )
    }

    /// Whether `day` has working hours.
    pub fn is_working_day(&self, day: Date) -> bool {
        if self.working_days.contains(&day) {
            return true;
        }
        !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) && !self.days_off.contains(&day)
    }

    fn local(&self, t: OffsetDateTime) -> Result<DateTime, CalendarError> {
        Ok(self.zone.to_datetime(Timestamp::from_second(t.unix_timestamp())?))
    }

    fn instant(&self, local: DateTime) -> Result<OffsetDateTime, CalendarError> {
        let seconds = local.to_zoned_datetime(self.zone.clone())?.timestamp().as_second();
        OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| CalendarError::Time(e.to_string()))
    }

    /// The instant `minutes` working minutes after `start` (a start outside working hours counts from the next
    /// working hour).
    pub fn add_working(&self, start: OffsetDateTime, minutes: i64) -> Result<OffsetDateTime, CalendarError> {
        let mut left = minutes.max(0) * 60;
        let mut at = self.local(start)?;
        for _ in 0..MAX_DAYS {
            let day = at.date();
            if !self.is_working_day(day) || at.time() >= self.ends {
                at = day.tomorrow()?.to_datetime(self.starts);
                continue;
            }
            if at.time() < self.starts {
                at = day.to_datetime(self.starts);
            }
            let available = day.to_datetime(self.ends).duration_since(at).as_secs();
            if left <= available {
                return self.instant(at + jiff::SignedDuration::from_secs(left));
            }
            left -= available;
            at = day.tomorrow()?.to_datetime(self.starts);
        }
        Err(CalendarError::NoWorkingTime(crate::clock::rfc3339(start)))
    }

    /// The working minutes from `from` to `to` (0 when `to` is not later), rounded up: a paused clock keeps a started
    /// minute for its executor.
    pub fn working_minutes_between(&self, from: OffsetDateTime, to: OffsetDateTime) -> Result<i64, CalendarError> {
        if to <= from {
            return Ok(0);
        }
        let (mut at, end) = (self.local(from)?, self.local(to)?);
        let mut seconds = 0;
        for _ in 0..MAX_DAYS {
            let day = at.date();
            if day > end.date() {
                break;
            }
            if self.is_working_day(day) {
                let open = day.to_datetime(self.starts).max(at);
                let close = day.to_datetime(self.ends).min(end);
                if close > open {
                    seconds += close.duration_since(open).as_secs();
                }
            }
            at = day.tomorrow()?.to_datetime(Time::midnight());
        }
        Ok((seconds + 59) / 60)
    }
}

/// Every public holiday and moved day off from [`FIRST_YEAR`] to [`LAST_YEAR`].
fn public_holidays() -> BTreeSet<Date> {
    let mut off = BTreeSet::new();
    for year in FIRST_YEAR..=LAST_YEAR {
        for &(month, day) in FIXED.iter().chain([&CHRISTMAS]) {
            if let Ok(d) = Date::new(year, month, day) {
                off.insert(d);
            }
        }
    }
    off.extend(KURBAN_AIT.iter().copied());
    // A fixed holiday on a weekend: the next day that is neither a weekend day nor already off is off instead.
    let weekend = |d: Date| matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday);
    for year in FIRST_YEAR..=LAST_YEAR {
        for &(month, day) in FIXED {
            let Ok(holiday) = Date::new(year, month, day) else { continue };
            if !weekend(holiday) {
                continue;
            }
            let mut next = holiday;
            while let Ok(d) = next.tomorrow() {
                next = d;
                if !weekend(next) && !off.contains(&next) {
                    off.insert(next);
                    break;
                }
            }
        }
    }
    off
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use time::macros::datetime;

    #[test]
    fn nauryz_is_among_the_fixed_holidays() {
        assert!(NAURYZ.iter().all(|d| FIXED.contains(d)));
        assert!(is_nauryz(date(2030, 3, 22)) && !is_nauryz(date(2030, 3, 24)));
    }

    fn almaty() -> Calendar {
        Calendar::new(crate::store::calendar::default_time_zone(), "09:00", "18:00", &[], &[]).unwrap()
    }

    #[test]
    fn weekends_holidays_and_moved_days_off_have_no_working_hours() {
        let c = almaty();
        assert!(c.is_working_day(date(2027, 3, 19)), "a Friday");
        assert!(!c.is_working_day(date(2027, 3, 20)), "a Saturday");
        assert!(!c.is_working_day(date(2027, 3, 22)), "Nauryz");
        // 21 March 2027 is a Sunday: its day off moves past the other Nauryz days to Wednesday the 24th.
        assert!(!c.is_working_day(date(2027, 3, 24)));
        assert!(c.is_working_day(date(2027, 3, 25)));
        assert!(!c.is_working_day(date(2030, 12, 16)), "Independence Day");
        // Orthodox Christmas on a Sunday (2029) moves nothing.
        assert!(c.is_working_day(date(2029, 1, 8)));
        assert!(!c.is_working_day(date(2026, 5, 27)), "Kurban Ait");
    }

    #[test]
    fn working_time_skips_nights_weekends_and_holidays() {
        let c = almaty();
        // Thursday 17:30 local + 60 min: 30 min on Thursday, 30 on Friday morning.
        assert_eq!(c.add_working(datetime!(2027-03-18 12:30 UTC), 60).unwrap(), datetime!(2027-03-19 04:30 UTC));
        // Saturday: counts from Monday 09:00 (no holiday that week).
        assert_eq!(c.add_working(datetime!(2027-04-03 05:00 UTC), 30).unwrap(), datetime!(2027-04-05 04:30 UTC));
        // Across the weekend and Nauryz, as in the module's example.
        assert_eq!(c.add_working(datetime!(2027-03-19 11:00 UTC), 240).unwrap(), datetime!(2027-03-25 06:00 UTC));
        assert_eq!(
            c.working_minutes_between(datetime!(2027-03-19 11:00 UTC), datetime!(2027-03-25 06:00 UTC)).unwrap(),
            240
        );
        assert_eq!(
            c.working_minutes_between(datetime!(2027-03-20 11:00 UTC), datetime!(2027-03-24 11:00 UTC)).unwrap(),
            0
        );
    }

    #[test]
    fn the_configuration_moves_days() {
        let c = Calendar::new(
            crate::store::calendar::default_time_zone(),
            "09:00",
            "18:00",
            &["2027-03-25".into()],
            &["2027-03-27".into()],
        )
        .unwrap();
        assert!(!c.is_working_day(date(2027, 3, 25)));
        assert!(c.is_working_day(date(2027, 3, 27)), "a Saturday made a working day");
        assert!(Calendar::new(TimeZone::UTC, "18:00", "09:00", &[], &[]).is_err());
        assert!(Calendar::new(TimeZone::UTC, "09:00", "18:00", &["27.03.2027".into()], &[]).is_err());
    }
}
