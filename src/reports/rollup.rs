//! Upkeep of the usage rollups (`usage_hourly`, `usage_daily`, `usage_monthly`): the meter's batch writer calls [`add`] in the same
//! transaction as its insert of the raw exchanges, so a batch's rows and their rollup are committed together or not
//! at all — a restart neither loses nor double counts. The batch is aggregated in memory by key first, then each key
//! is one upsert (`ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, …`): the cost grows with the
//! keys a batch touches, never with the size of the tables.
//!
//! Hourly rows are keyed by the UTC hour. Daily and monthly rows are keyed by the operator's day and month: the batch
//! is aggregated by quarter hour (which never straddles two local days) and each quarter's figures are added to the
//! day (and month) that `kopir_local_day` names for it.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{Transaction, params_from_iter, types::Value};

use super::histogram::{BUCKETS, bucket, columns};
use crate::gateway::meter::Exchange;
use crate::store::calendar::QUARTER_HOUR;

/// What an exchange is counted under (besides its period).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    period: i64,
    environment: &'static str,
    provider_organisation_id: i64,
    user_organisation_id: i64,
    application_id: i64,
    api_id: i64,
    endpoint: &'static str,
    status_class: u16,
    error_code: &'static str,
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    requests: i64,
    bytes: i64,
    latency_sum: i64,
    latency_max: i64,
    buckets: [i64; BUCKETS],
}

impl Figures {
    fn count(&mut self, e: &Exchange) {
        let latency = i64::try_from(e.latency_ms).unwrap_or(i64::MAX);
        self.requests += 1;
        self.bytes = self.bytes.saturating_add(i64::try_from(e.bytes).unwrap_or(i64::MAX));
        self.latency_sum = self.latency_sum.saturating_add(latency);
        self.latency_max = self.latency_max.max(latency);
        self.buckets[bucket(e.latency_ms)] += 1;
    }
}

/// `'2xx'` for 204.
pub fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}

const KEY_COLUMNS: &str = "environment, provider_organisation_id, user_organisation_id, application_id, api_id, \
                           endpoint, status_class, error_code";

fn upsert_sql(table: &str, period_column: &str, period_value: &str) -> String {
    let buckets = columns();
    let placeholders: Vec<String> = (2..=13 + BUCKETS).map(|i| format!("?{i}")).collect();
    let additions: Vec<String> = buckets.iter().map(|b| format!("{b} = {b} + excluded.{b}")).collect();
    format!(
        "INSERT INTO {table} ({period_column}, {KEY_COLUMNS}, requests, bytes, latency_sum, latency_max, {})
         VALUES ({period_value}, {})
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, bytes = bytes + excluded.bytes,
             latency_sum = latency_sum + excluded.latency_sum, latency_max = max(latency_max, excluded.latency_max),
             {}",
        buckets.join(", "),
        placeholders.join(", "),
        additions.join(", ")
    )
}

static HOURLY_UPSERT: LazyLock<String> = LazyLock::new(|| upsert_sql("usage_hourly", "hour", "?1"));
static DAILY_UPSERT: LazyLock<String> = LazyLock::new(|| upsert_sql("usage_daily", "day", "kopir_local_day(?1)"));
static MONTHLY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("usage_monthly", "month", "substr(kopir_local_day(?1), 1, 7)"));

/// Adds a batch of exchanges to the hourly and daily rollups, inside the caller's transaction.
pub fn add(tx: &Transaction, batch: &[Exchange]) -> rusqlite::Result<()> {
    let mut hourly: HashMap<Key, Figures> = HashMap::new();
    let mut quarterly: HashMap<Key, Figures> = HashMap::new();
    for e in batch {
        let at = crate::clock::parse(&e.at)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?
            .unix_timestamp();
        let key = Key {
            period: at - at.rem_euclid(3600),
            environment: e.mode.as_str(),
            provider_organisation_id: e.provider_organisation_id.unwrap_or(0),
            user_organisation_id: e.user_organisation_id,
            application_id: e.application_id,
            api_id: e.api_id.unwrap_or(0),
            endpoint: e.endpoint,
            status_class: e.status / 100,
            error_code: e.error_code.map(|c| c.as_str()).unwrap_or(""),
        };
        let quarter = Key { period: at - at.rem_euclid(QUARTER_HOUR), ..key.clone() };
        hourly.entry(key).or_default().count(e);
        quarterly.entry(quarter).or_default().count(e);
    }
    upsert(tx, &HOURLY_UPSERT, &hourly)?;
    upsert(tx, &DAILY_UPSERT, &quarterly)?;
    upsert(tx, &MONTHLY_UPSERT, &quarterly)
}

fn upsert(tx: &Transaction, sql: &str, rows: &HashMap<Key, Figures>) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(sql)?;
    let mut values: Vec<Value> = Vec::with_capacity(13 + BUCKETS);
    for (key, figures) in rows {
        values.clear();
        values.extend([
            Value::Integer(key.period),
            Value::Text(key.environment.to_string()),
            Value::Integer(key.provider_organisation_id),
            Value::Integer(key.user_organisation_id),
            Value::Integer(key.application_id),
            Value::Integer(key.api_id),
            Value::Text(key.endpoint.to_string()),
            Value::Text(status_class(key.status_class * 100)),
            Value::Text(key.error_code.to_string()),
            Value::Integer(figures.requests),
            Value::Integer(figures.bytes),
            Value::Integer(figures.latency_sum),
            Value::Integer(figures.latency_max),
        ]);
        values.extend(figures.buckets.iter().map(|&b| Value::Integer(b)));
        statement.execute(params_from_iter(values.iter()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use rusqlite::Connection;

    use super::*;
    use crate::apps::AppMode;
    use crate::standard::error::ObErrorCode;
    use crate::store::migrate::{SCHEMA, migrate};

    fn exchange(at: &str, provider: Option<i64>, status: u16, latency_ms: u64, mode: AppMode) -> Exchange {
        Exchange {
            at: at.to_string(),
            application_id: 3,
            user_organisation_id: 2,
            provider_organisation_id: provider,
            api_id: provider.map(|p| p * 10),
            consent_id: None,
            endpoint: "accounts",
            status,
            latency_ms,
            bytes: 100,
            interaction_id: "i".into(),
            error_code: (status >= 400).then_some(ObErrorCode::ResourceConsentMismatch),
            mode,
        }
    }

    fn sample() -> Vec<Exchange> {
        vec![
            exchange("2026-12-03T18:59:59Z", Some(1), 200, 40, AppMode::Production),
            exchange("2026-12-03T18:10:00Z", Some(1), 200, 120, AppMode::Production),
            // 19:00 UTC is midnight in Almaty: a new hour and a new local day.
            exchange("2026-12-03T19:00:00Z", Some(1), 200, 7, AppMode::Production),
            exchange("2026-12-03T19:30:00Z", None, 403, 0, AppMode::Production),
            exchange("2026-12-03T19:31:00Z", Some(1), 200, 31_000, AppMode::Sandbox),
        ]
    }

    fn table(conn: &Connection, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let mut statement = conn.prepare(sql).unwrap();
        let width = statement.column_count();
        statement
            .query_map([], |row| (0..width).map(|i| row.get(i)).collect::<rusqlite::Result<Vec<_>>>())
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn upkeep_in_two_batches_equals_the_migrations_backfill_and_keys_the_operators_days() {
        // The upkeep path: current schema, the exchanges written by the meter's writer in two batches.
        let mut kept = Connection::open_in_memory().unwrap();
        migrate(&mut kept, SCHEMA).unwrap();
        let all = sample();
        for batch in [&all[..2], &all[2..]] {
            let tx = kept.transaction().unwrap();
            crate::gateway::meter::write(&tx, batch, crate::web::METER_OBSERVERS).unwrap();
            tx.commit().unwrap();
        }
        // The backfill: a database at migration 13 with the same raw rows, then migration 14.
        let before: String = SCHEMA.split("-- migration 14:").next().unwrap().to_string();
        let mut old = Connection::open_in_memory().unwrap();
        migrate(&mut old, &before).unwrap();
        for e in &all {
            old.execute(
                "INSERT INTO exchanges (at, application_id, user_organisation_id, provider_organisation_id, api_id,
                     endpoint, status, latency_ms, bytes, interaction_id, environment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    e.at,
                    e.application_id,
                    e.user_organisation_id,
                    e.provider_organisation_id,
                    e.api_id,
                    e.endpoint,
                    e.status,
                    e.latency_ms as i64,
                    e.bytes as i64,
                    e.interaction_id,
                    e.mode.as_str()
                ],
            )
            .unwrap();
        }
        migrate(&mut old, SCHEMA).unwrap();
        // Error codes are new in migration 14: the old rows have none.
        kept.execute("UPDATE usage_hourly SET error_code = ''", []).unwrap();
        kept.execute("UPDATE usage_daily SET error_code = ''", []).unwrap();
        for query in [
            "SELECT * FROM usage_hourly ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
            "SELECT * FROM usage_daily ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
        ] {
            assert_eq!(table(&kept, query), table(&old, query), "{query}");
        }
        let days = table(&kept, "SELECT day, environment, sum(requests) FROM usage_daily GROUP BY 1, 2 ORDER BY 1, 2");
        use rusqlite::types::Value::{Integer, Text};
        assert_eq!(
            days,
            vec![
                vec![Text("2026-12-03".into()), Text("production".into()), Integer(2)],
                vec![Text("2026-12-04".into()), Text("production".into()), Integer(2)],
                vec![Text("2026-12-04".into()), Text("sandbox".into()), Integer(1)],
            ]
        );
        let months = table(&kept, "SELECT month, sum(requests) FROM usage_monthly GROUP BY 1");
        assert_eq!(months, vec![vec![Text("2026-12".into()), Integer(5)]]);
        let hour_18 = table(
            &kept,
            "SELECT requests, latency_sum, latency_max, b03, b06 FROM usage_hourly WHERE hour = 1796320800",
        );
        assert_eq!(hour_18, vec![vec![Integer(2), Integer(160), Integer(120), Integer(1), Integer(1)]]);
    }
}
