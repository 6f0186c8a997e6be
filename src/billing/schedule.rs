//! The scheduled month close: every [`EVERY`] on the platform's clock, the month before the operator's today is
//! closed ([`super::close::close`], idempotent) once that month has billable units and today has run for at least
//! [`GRACE`] (the meter's last batches of the month are written within seconds; the grace leaves them room). The same
//! job then warns about statements overdue beyond `billing.suspend_after_days` ([`super::overdue::warn`]: a warning
//! only, never a suspension).

use std::time::Duration;

use jiff::tz::TimeZone;
use rusqlite::OptionalExtension;

use super::close::{self, Closed};
use super::{BillingError, day_text};
use crate::audit::Actor;
use crate::clock::Clock;
use crate::store::Db;

/// How often the job looks.
pub const EVERY: Duration = Duration::from_secs(3600);
/// How long into a new month before its predecessor is closed.
pub const GRACE: time::Duration = time::Duration::hours(1);

/// The month to close at `now`, if any: the previous month of the operator's days, once `GRACE` has passed.
pub fn due(zone: &TimeZone, now: time::OffsetDateTime) -> Option<(String, time::Date)> {
    let today = super::today(zone, now - GRACE)?;
    let previous = today.replace_day(1).ok()?.previous_day()?;
    Some((day_text(previous).get(..7)?.to_string(), super::today(zone, now)?))
}

async fn run_once(db: &Db, zone: &TimeZone, now: time::OffsetDateTime) -> Result<Option<Closed>, BillingError> {
    let Some((month, today)) = due(zone, now) else { return Ok(None) };
    db.write(move |tx| -> Result<Option<Closed>, BillingError> {
        let closed: bool =
            tx.query_row("SELECT count(*) > 0 FROM billing_closes WHERE month = ?1", [&month], |r| r.get(0))?;
        let billable = tx
            .query_row(
                "SELECT 1 FROM billing_units_daily WHERE day BETWEEN ?1 AND ?2 LIMIT 1",
                [format!("{month}-01"), format!("{month}-31")],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .is_some();
        if closed || !billable {
            return Ok(None);
        }
        let actor = Actor { name: "system".into(), source: "schedule".into(), user_id: None };
        Ok(Some(close::close(tx, &month, today, &actor, now)?))
    })
    .await
}

/// Warns, once per statement, about those overdue beyond `limit_days` (0: off).
pub async fn warn_overdue(db: &Db, limit_days: u32, now: time::OffsetDateTime) -> Result<usize, BillingError> {
    if limit_days == 0 {
        return Ok(0);
    }
    db.write(move |tx| -> Result<usize, BillingError> { Ok(super::overdue::warn(tx, limit_days, now)?.len()) }).await
}

pub fn spawn(
    db: Db,
    clock: Clock,
    zone: TimeZone,
    suspend_after_days: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            match run_once(&db, &zone, clock.now()).await {
                Ok(Some(Closed::Issued(statements))) => {
                    tracing::info!(statements = statements.len(), "billing month closed");
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "closing the billing month failed"),
            }
            match warn_overdue(&db, suspend_after_days, clock.now()).await {
                Ok(0) => {}
                Ok(warned) => tracing::warn!(warned, "billing statements overdue beyond billing.suspend_after_days"),
                Err(error) => tracing::error!(%error, "the overdue warning failed"),
            }
            tokio::select! {
                () = clock.sleep(EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_previous_month_is_due_an_hour_into_the_new_one() {
        let zone = crate::store::calendar::default_time_zone();
        // 2027-01-01 00:30 in Almaty (UTC+5): still within the grace, so December's predecessor is due.
        let early = time::macros::datetime!(2026-12-31 19:30 UTC);
        assert_eq!(due(&zone, early).unwrap().0, "2026-11");
        let later = time::macros::datetime!(2026-12-31 20:30 UTC);
        assert_eq!(due(&zone, later).unwrap().0, "2026-12");
    }
}
