//! Reporting's foundation: usage rollups of the metered exchanges and the queries every report is built on.
//!
//! This domain owns `usage_hourly`, `usage_daily`, `usage_monthly` and the operator's `usage_platform_*` (kept by
//! [`rollup::add`], called by the meter's batch writer in the same transaction as the raw rows), `consent_changes`
//! (kept by a trigger on `consent_history`, see `schema.sql`), and the pruning of `exchanges` and of the rollups
//! ([`retention`]); the operator's days are the store's ([`crate::store::calendar`]: the SQL function every connection
//! gets). Pages, the participants' report API, the dashboard and the monthly report read through
//! [`usage`] and [`consents`]: a [`usage::UsageFilter`] (interval, environment, provider / API user / application /
//! API), a granularity and a grouping in, typed rows out, percentiles from [`histogram`].

pub mod api;
pub mod consents;
pub mod console;
pub mod dashboard;
pub mod export;
pub mod histogram;
pub mod monthly;
pub mod monthly_page;
pub mod participant;
pub mod platform;
pub mod retention;
pub mod rollup;
pub mod usage;

use thiserror::Error;

/// The participants' report page and API, the operator's and regulator's dashboard, and the console's monthly
/// platform report.
pub fn router() -> axum::Router<crate::web::AppState> {
    participant::router().merge(api::router()).merge(console::router()).merge(monthly_page::router())
}

use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum ReportsError {
    #[error("the interval is empty: it must end after it starts")]
    EmptyInterval,
    #[error(
        "intervals that do not run from one local midnight to another are read hour by hour, for at most {max_days} days"
    )]
    IntervalTooLong { max_days: i64 },
    #[error("time zone: {0}")]
    TimeZone(#[from] jiff::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ReportsError {
    fn from(error: rusqlite::Error) -> Self {
        ReportsError::Store(StoreError::Sqlite(error))
    }
}

/// Thin async doors for handlers: the same queries on a reader connection.
pub mod read {
    use jiff::tz::TimeZone;

    use super::ReportsError;
    use super::usage::{self, Granularity, GroupBy, SlaBreach, UsageFilter, UsageRow};
    use crate::store::Db;

    pub async fn series(
        db: &Db,
        zone: &TimeZone,
        filter: UsageFilter,
        granularity: Option<Granularity>,
        group: Option<GroupBy>,
    ) -> Result<Vec<UsageRow>, ReportsError> {
        let zone = zone.clone();
        db.read(move |conn| usage::usage(conn, &zone, &filter, granularity, group)).await
    }

    pub async fn sla_breaches(
        db: &Db,
        zone: &TimeZone,
        filter: UsageFilter,
        granularity: Granularity,
    ) -> Result<Vec<SlaBreach>, ReportsError> {
        let zone = zone.clone();
        db.read(move |conn| usage::sla_breaches(conn, &zone, &filter, granularity)).await
    }
}
