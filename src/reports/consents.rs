//! Consent figures: changes of status per period (granted, rejected, revoked, expired…) from the `consent_changes`
//! rollup that a trigger on `consent_history` keeps, and the registry's standing figures (consents by status now,
//! customers with an authorised consent).

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::ReportsError;
use super::usage::{Granularity, UsageFilter};
use crate::consent::Status;

/// Status changes of consents in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChanges {
    /// As in [`super::usage::UsageRow::period`]; `None` for the whole interval.
    pub period: Option<String>,
    /// The status the consents entered (`Revoked` also counts one bank's revocation, for that bank).
    pub status: String,
    pub changes: u64,
}

/// The registry now: consents by status and the customers with an authorised consent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandingConsents {
    pub by_status: Vec<(Status, u64)>,
    pub customers_with_authorised: u64,
}

/// Changes of consents' status in `[from, to)` (at quarter-hour precision), per period of `granularity`. The filter's
/// API is ignored (a consent is given to an API user for banks, not for one API).
pub fn changes(
    conn: &Connection,
    filter: &UsageFilter,
    granularity: Option<Granularity>,
) -> Result<Vec<ConsentChanges>, ReportsError> {
    let (from, to) = (filter.from.unix_timestamp(), filter.to.unix_timestamp());
    if to <= from {
        return Err(ReportsError::EmptyInterval);
    }
    let period = match granularity {
        None => "NULL",
        Some(Granularity::Hour) => "slot / 3600 * 3600",
        Some(Granularity::Day) => "kopir_local_day(slot)",
        Some(Granularity::Month) => "substr(kopir_local_day(slot), 1, 7)",
    };
    let mut values = vec![Value::Integer(from), Value::Integer(to), Value::Text(filter.environment.as_str().into())];
    let mut sql = String::from("slot >= ?1 AND slot < ?2 AND environment = ?3");
    for (column, value) in [
        ("provider_organisation_id", filter.provider),
        ("user_organisation_id", filter.user),
        ("application_id", filter.application),
    ] {
        if let Some(value) = value {
            values.push(Value::Integer(value));
            sql.push_str(&format!(" AND {column} = ?{}", values.len()));
        }
    }
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {period} AS period, status, sum(changes) AS changes FROM consent_changes WHERE {sql}
         GROUP BY 1, 2 ORDER BY 1, 2"
    ))?;
    let rows = statement.query_map(params_from_iter(values.iter()), |row| {
        let period = match row.get::<_, Value>("period")? {
            Value::Integer(unix) => time::OffsetDateTime::from_unix_timestamp(unix).ok().map(crate::clock::rfc3339),
            Value::Text(text) => Some(text),
            _ => None,
        };
        Ok(ConsentChanges { period, status: row.get("status")?, changes: row.get::<_, i64>("changes")?.max(0) as u64 })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Consents by status now, and customers with an authorised consent, for one environment and optionally one
/// provider (its banks' share: a consent revoked for that bank counts as revoked) or one API user.
pub fn standing(
    conn: &Connection,
    environment: crate::apps::AppMode,
    provider: Option<i64>,
    user: Option<i64>,
) -> Result<StandingConsents, ReportsError> {
    let mut values = vec![Value::Text(environment.as_str().into())];
    let (join, status) = match provider {
        Some(provider) => {
            values.push(Value::Integer(provider));
            (
                "JOIN consent_providers p ON p.consent_id = c.id AND p.organisation_id = ?2",
                "CASE WHEN p.status = 'revoked' AND c.status = 'Authorised' THEN 'Revoked' ELSE c.status END",
            )
        }
        None => ("", "c.status"),
    };
    let mut condition = String::from("a.mode = ?1");
    if let Some(user) = user {
        values.push(Value::Integer(user));
        condition.push_str(&format!(" AND a.organisation_id = ?{}", values.len()));
    }
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {status} AS status, count(*) AS consents,
                count(DISTINCT CASE WHEN {status} = 'Authorised' THEN c.customer_id END) AS customers
         FROM consents c JOIN applications a ON a.id = c.application_id {join}
         WHERE {condition} GROUP BY 1 ORDER BY 1"
    ))?;
    let mut standing = StandingConsents::default();
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    while let Some(row) = rows.next()? {
        let status: Status = row.get("status")?;
        standing.by_status.push((status, row.get::<_, i64>("consents")?.max(0) as u64));
        standing.customers_with_authorised += row.get::<_, i64>("customers")?.max(0) as u64;
    }
    Ok(standing)
}
