//! The operator's and regulator's dashboard: the period it shows (a month by default, in the operator's local days)
//! and how each figure compares with the period before it.
//!
//! ```
//! use kopir::reports::dashboard::{Comparison, Period};
//! let december = Period::month(2026, 12).unwrap();
//! assert_eq!(december.previous(), Period::month(2026, 11).unwrap());
//! let requests = Comparison { current: 1_150, previous: 1_000 };
//! assert_eq!((requests.delta(), requests.percent().as_deref()), (150, Some("+15.0")));
//! ```

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::store::calendar;

/// The dashboard's period: local days `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Date,
}

impl Period {
    /// A whole calendar month (`None` for a month that does not exist).
    pub fn month(year: i16, month: i8) -> Option<Period> {
        let from = Date::new(year, month, 1).ok()?;
        Some(Period { from, to: from.last_of_month() })
    }

    /// Local days `from` to `to` (`None` when `to` comes before `from`).
    pub fn days_between(from: Date, to: Date) -> Option<Period> {
        (from <= to).then_some(Period { from, to })
    }

    /// The number of local days.
    pub fn days(&self) -> i64 {
        i64::from(self.from.until(self.to).map(|span| span.get_days()).unwrap_or(0)) + 1
    }

    /// Whether the period is one whole calendar month.
    pub fn is_month(&self) -> bool {
        self.from.day() == 1 && self.to == self.from.last_of_month()
    }

    /// The period it is compared with: the month before a whole month (so that December is compared with November,
    /// not with the 30 days before it), otherwise as many days just before it.
    pub fn previous(&self) -> Period {
        if self.is_month()
            && let Some(from) = self.from.yesterday().ok().map(|d| d.first_of_month())
        {
            return Period { from, to: from.last_of_month() };
        }
        let to = self.from.yesterday().unwrap_or(self.from);
        let from = to.checked_sub(jiff::Span::new().days(self.days() - 1)).unwrap_or(to);
        Period { from, to }
    }

    /// Its bounds as unix seconds, `[start, end)`: from the first instant of its first local day in `zone` to the
    /// first of the day after its last.
    pub fn bounds(&self, zone: &TimeZone) -> Result<(i64, i64), jiff::Error> {
        Ok((calendar::day_start(zone, self.from)?, calendar::day_start(zone, self.to.tomorrow()?)?))
    }
}

/// A figure of this period beside the previous period's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub current: i64,
    pub previous: i64,
}

impl Comparison {
    /// The change, absolute.
    pub fn delta(&self) -> i64 {
        self.current - self.previous
    }

    /// The change in per cent of the previous figure with one decimal and a sign (`+15.0`, `-2.5`, `+0.0`), computed
    /// from integers (tenths, rounded half away from zero); `None` when the previous figure is zero.
    pub fn percent(&self) -> Option<String> {
        if self.previous == 0 {
            return None;
        }
        let (delta, base) = (i128::from(self.delta()), i128::from(self.previous).abs());
        let tenths = (2000 * delta.abs() + base) / (2 * base);
        let sign = if delta < 0 { '-' } else { '+' };
        Some(format!("{sign}{}.{}", tenths / 10, tenths % 10))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_month_is_compared_with_the_month_before_and_other_periods_with_as_many_days_before() {
        let march = Period::month(2026, 3).unwrap();
        assert_eq!((march.days(), march.is_month()), (31, true));
        assert_eq!(march.previous(), Period::month(2026, 2).unwrap());
        assert_eq!(Period::month(2026, 1).unwrap().previous(), Period::month(2025, 12).unwrap());
        assert_eq!(Period::month(2026, 13), None);
        let week = Period::days_between("2026-03-02".parse().unwrap(), "2026-03-08".parse().unwrap()).unwrap();
        assert_eq!(week.days(), 7);
        let before = week.previous();
        assert_eq!((before.from.to_string(), before.to.to_string()), ("2026-02-23".into(), "2026-03-01".into()));
        assert_eq!(before.days(), 7);
        assert_eq!(Period::days_between("2026-03-02".parse().unwrap(), "2026-03-01".parse().unwrap()), None);
    }

    #[test]
    fn bounds_are_the_operator_s_local_days() {
        let almaty = calendar::default_time_zone();
        let (start, end) = Period::month(2026, 1).unwrap().bounds(&almaty).unwrap();
        // 2026-01-01T00:00+05:00 and 2026-02-01T00:00+05:00.
        assert_eq!((start, end), (1_767_207_600, 1_769_886_000));
        assert_eq!(calendar::local_day(&almaty, start).unwrap(), "2026-01-01");
        assert_eq!(calendar::local_day(&almaty, end - 1).unwrap(), "2026-01-31");
    }

    #[test]
    fn changes_are_absolute_and_in_per_cent_rounded_from_integers() {
        let c = |current, previous| Comparison { current, previous };
        assert_eq!((c(1_150, 1_000).delta(), c(1_150, 1_000).percent()), (150, Some("+15.0".into())));
        assert_eq!(c(975, 1_000).percent(), Some("-2.5".into()));
        assert_eq!(c(5, 5).percent(), Some("+0.0".into()));
        assert_eq!(c(2, 3).percent(), Some("-33.3".into()));
        assert_eq!(c(1, 3).percent(), Some("-66.7".into()));
        assert_eq!(c(7, 0).percent(), None);
        assert_eq!(c(0, 4).delta(), -4);
    }
}
