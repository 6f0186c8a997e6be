//! Billable units, kept with the exchanges they come from: the meter's batch writer calls [`observe`] (one of
//! `web::METER_OBSERVERS`) in the transaction that inserts the raw exchanges, so a batch's units are committed with
//! it or not at all. Only successful production exchanges with a bank count — never the sandbox, a refusal or a
//! failure. The batch is aggregated in memory per quarter hour (which never straddles two local days), each quarter's
//! local day asked once of `kopir_local_day`, then one upsert per (day, API user, provider, API, service): the cost
//! grows with the keys a batch touches, never with the tables.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Transaction, params};

use super::Service;
use crate::apps::AppMode;
use crate::gateway::meter::Exchange;
use crate::store::calendar::QUARTER_HOUR;

/// The service and units of an exchange, if it is billable.
pub fn billable(e: &Exchange) -> Option<(Service, i64)> {
    if e.mode != AppMode::Production || !(200..300).contains(&e.status) {
        return None;
    }
    e.provider_organisation_id?;
    e.api_id?;
    let service = Service::of_endpoint(e.endpoint)?;
    Some((service, service.units(e.transaction_lines)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    user: i64,
    provider: i64,
    api: i64,
    service: Service,
}

impl PartialOrd for Service {
    fn partial_cmp(&self, other: &Service) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Service {
    fn cmp(&self, other: &Service) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// Adds a batch's billable units to `billing_units_daily`, inside the caller's transaction.
pub fn observe(tx: &Transaction, batch: &[Exchange]) -> rusqlite::Result<()> {
    let mut quarterly: HashMap<(i64, Key), (i64, i64)> = HashMap::new();
    let mut times = crate::clock::RunsOfTimes::default();
    for e in batch {
        let Some((service, units)) = billable(e) else { continue };
        let at = times.unix(&e.at).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        let key = Key {
            user: e.user_organisation_id,
            provider: e.provider_organisation_id.unwrap_or(0),
            api: e.api_id.unwrap_or(0),
            service,
        };
        let entry = quarterly.entry((at - at.rem_euclid(QUARTER_HOUR), key)).or_default();
        entry.0 += 1;
        entry.1 += units;
    }
    if quarterly.is_empty() {
        return Ok(());
    }
    let mut day_of: HashMap<i64, String> = HashMap::new();
    let mut daily: BTreeMap<(String, Key), (i64, i64)> = BTreeMap::new();
    {
        let mut local_day = tx.prepare_cached("SELECT kopir_local_day(?1)")?;
        for ((quarter, key), (exchanges, units)) in quarterly {
            let day = match day_of.get(&quarter) {
                Some(day) => day.clone(),
                None => {
                    let day: String = local_day.query_row([quarter], |r| r.get(0))?;
                    day_of.insert(quarter, day.clone());
                    day
                }
            };
            let entry = daily.entry((day, key)).or_default();
            entry.0 += exchanges;
            entry.1 += units;
        }
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO billing_units_daily (day, user_organisation_id, provider_organisation_id, api_id, service,
             exchanges, units)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO UPDATE SET exchanges = exchanges + excluded.exchanges, units = units + excluded.units",
    )?;
    for ((day, key), (exchanges, units)) in daily {
        upsert.execute(params![day, key.user, key.provider, key.api, key.service, exchanges, units])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rusqlite::Connection;

    use super::*;
    use crate::standard::error::ObErrorCode;
    use crate::store::migrate::{SCHEMA, migrate};

    fn exchange(at: &str, endpoint: &'static str, status: u16, lines: u32, mode: AppMode) -> Exchange {
        Exchange {
            at: at.to_string(),
            application_id: 3,
            user_organisation_id: 2,
            provider_organisation_id: Some(1),
            api_id: Some(10),
            consent_id: None,
            endpoint,
            status,
            latency_ms: 10,
            bytes: 100,
            interaction_id: "i".into(),
            error_code: (status >= 400).then_some(ObErrorCode::UnexpectedError),
            mode,
            transaction_lines: lines,
        }
    }

    #[test]
    fn only_successful_production_exchanges_count_per_local_day_and_transactions_per_page() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::calendar::register(&conn, &crate::store::calendar::default_time_zone()).unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        let batch = vec![
            exchange("2026-12-03T10:00:00Z", "accounts", 200, 0, AppMode::Production),
            exchange("2026-12-03T10:00:01Z", "account", 200, 0, AppMode::Production),
            exchange("2026-12-03T10:00:02Z", "transactions", 200, 250, AppMode::Production),
            exchange("2026-12-03T10:00:03Z", "transactions", 200, 0, AppMode::Production),
            // Free: the sandbox, a bank's failure, a refusal.
            exchange("2026-12-03T10:00:04Z", "accounts", 200, 0, AppMode::Sandbox),
            exchange("2026-12-03T10:00:05Z", "balances", 502, 0, AppMode::Production),
            Exchange {
                provider_organisation_id: None,
                api_id: None,
                ..exchange("2026-12-03T10:00:06Z", "balances", 403, 0, AppMode::Production)
            },
            // 19:00 UTC is midnight in Almaty: the next local day.
            exchange("2026-12-03T19:00:00Z", "balances", 200, 0, AppMode::Production),
        ];
        let tx = conn.transaction().unwrap();
        observe(&tx, &batch).unwrap();
        observe(&tx, &batch[..1]).unwrap();
        tx.commit().unwrap();
        let rows: Vec<(String, String, i64, i64)> = conn
            .prepare("SELECT day, service, exchanges, units FROM billing_units_daily ORDER BY day, service")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("2026-12-03".into(), "accounts".into(), 3, 3),
                ("2026-12-03".into(), "transactions_page".into(), 2, 4),
                ("2026-12-04".into(), "balances".into(), 1, 1),
            ]
        );
    }
}
