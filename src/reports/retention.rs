//! Pruning: raw exchanges after `reports.raw_retention_days`, hourly rollups after `reports.hourly_retention_days`,
//! daily rollups after `reports.daily_retention_days` (0: never), monthly rollups never. An hourly job on the platform's clock deletes in
//! small transactions ([`BATCH`] raw rows, or one hour's / one day's rollup rows, at a time) and yields between them,
//! so the meter's writer and requests never wait long behind it.

use std::time::Duration;

use jiff::tz::TimeZone;
use rusqlite::{Transaction, params};
use time::OffsetDateTime;

use super::ReportsError;
use crate::clock::Clock;
use crate::config::ReportsConfig;
use crate::store::Db;

/// Raw exchanges deleted per transaction.
pub const BATCH: usize = 5_000;

/// How often the job runs.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub exchanges: u64,
    pub hourly: u64,
    pub daily: u64,
}

/// Deletes up to [`BATCH`] raw exchanges metered before `before`; returns how many.
pub fn prune_exchanges(tx: &Transaction, before: OffsetDateTime) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges WHERE at < ?1 ORDER BY at LIMIT ?2)",
        params![crate::clock::rfc3339(before), BATCH as i64],
    )
}

/// Deletes the hourly rows (the operator's too) of the oldest hour before `before`; returns how many.
pub fn prune_oldest_hour(tx: &Transaction, before: OffsetDateTime) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    for table in ["usage_hourly", "usage_platform_hourly"] {
        deleted += tx.execute(
            &format!("DELETE FROM {table} WHERE hour = (SELECT min(hour) FROM {table} WHERE hour < ?1)"),
            [before.unix_timestamp()],
        )?;
    }
    Ok(deleted)
}

/// Deletes the daily rows (the operator's too) of the oldest local day before `before_day` (`YYYY-MM-DD`); returns
/// how many.
pub fn prune_oldest_day(tx: &Transaction, before_day: &str) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    for table in ["usage_daily", "usage_platform_daily", "usage_api_daily"] {
        deleted += tx.execute(
            &format!("DELETE FROM {table} WHERE day = (SELECT min(day) FROM {table} WHERE day < ?1)"),
            [before_day],
        )?;
    }
    Ok(deleted)
}

/// One pass: everything past its retention at `now`, batch by batch.
pub async fn prune(
    db: &Db,
    zone: &TimeZone,
    retention: &ReportsConfig,
    now: OffsetDateTime,
) -> Result<Pruned, ReportsError> {
    let mut pruned = Pruned::default();
    let raw_before = now - time::Duration::days(retention.raw_retention_days.into());
    loop {
        let deleted = db.write_bookkeeping(move |tx| Ok::<_, ReportsError>(prune_exchanges(tx, raw_before)?)).await?;
        pruned.exchanges += deleted as u64;
        if deleted < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    let hourly_before = now - time::Duration::days(retention.hourly_retention_days.into());
    loop {
        let deleted =
            db.write_bookkeeping(move |tx| Ok::<_, ReportsError>(prune_oldest_hour(tx, hourly_before)?)).await?;
        if deleted == 0 {
            break;
        }
        pruned.hourly += deleted as u64;
        tokio::task::yield_now().await;
    }
    if retention.daily_retention_days > 0 {
        let cutoff = now - time::Duration::days(retention.daily_retention_days.into());
        let before_day = crate::store::calendar::local_day(zone, cutoff.unix_timestamp())?;
        loop {
            let day = before_day.clone();
            let deleted = db.write_bookkeeping(move |tx| Ok::<_, ReportsError>(prune_oldest_day(tx, &day)?)).await?;
            if deleted == 0 {
                break;
            }
            pruned.daily += deleted as u64;
            tokio::task::yield_now().await;
        }
    }
    Ok(pruned)
}

/// The job: a pass at start and then every [`EVERY`] on `clock`, until `stop`.
pub fn spawn(
    db: Db,
    clock: Clock,
    zone: TimeZone,
    retention: ReportsConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            match prune(&db, &zone, &retention, clock.now()).await {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!(
                        exchanges = pruned.exchanges,
                        hourly = pruned.hourly,
                        daily = pruned.daily,
                        "pruned usage data past its retention"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "pruning usage data failed"),
            }
            tokio::select! {
                () = clock.sleep(EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
