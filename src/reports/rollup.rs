//! Upkeep of the usage rollups (`usage_hourly`, `usage_daily`, `usage_monthly`, and the operator's `usage_platform_*`
//! without the API-user and application columns): the meter's batch writer calls [`add`] in the same transaction as
//! its insert of the raw exchanges, so a batch's rows and their rollup are committed together or not at all — a
//! restart neither loses nor double counts. The batch is aggregated in memory by key first, then each key is one
//! upsert (`ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, …`): the cost grows with the keys a
//! batch touches, never with the size of the tables.
//!
//! Hourly rows are keyed by the UTC hour. Daily and monthly rows are keyed by the operator's day and month: the batch
//! is aggregated by quarter hour (which never straddles two local days), each quarter's day is asked once of
//! `kopir_local_day`, and the quarters' figures are summed per day and per month in memory before their upserts.
//!
//! `usage_api_daily` (migration 23) is the operator's daily rollup summed further, per bank API only, with the 4xx
//! and 5xx counts as columns: the rows platform-wide reports per day, per bank or per API read over long intervals.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use rusqlite::{Transaction, params_from_iter, types::Value};

use super::histogram::{BUCKETS, bucket, columns};
use crate::gateway::meter::Exchange;
use crate::store::calendar::QUARTER_HOUR;

/// What an exchange is counted under (besides its period), in the order of the rollups' primary keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    /// Unix seconds (quarter hour or hour), or the index of a day or month among the batch's.
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

impl Key {
    /// The same key in another period, without the API user and application (the operator's rollups).
    fn platform(&self, period: i64) -> Key {
        Key { period, user_organisation_id: 0, application_id: 0, ..self.clone() }
    }

    /// The same key in another period, per bank API only (`usage_api_daily`).
    fn api(&self, period: i64) -> Key {
        Key { endpoint: "", status_class: 0, error_code: "", ..self.platform(period) }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    requests: i64,
    bytes: i64,
    latency_sum: i64,
    latency_max: i64,
    buckets: [i64; BUCKETS],
    /// Requests answered 4xx and 5xx (kept as columns by `usage_api_daily` only).
    client_errors: i64,
    server_errors: i64,
}

impl Figures {
    fn count(&mut self, e: &Exchange) {
        let latency = i64::try_from(e.latency_ms).unwrap_or(i64::MAX);
        self.requests += 1;
        self.bytes = self.bytes.saturating_add(i64::try_from(e.bytes).unwrap_or(i64::MAX));
        self.latency_sum = self.latency_sum.saturating_add(latency);
        self.latency_max = self.latency_max.max(latency);
        self.buckets[bucket(e.latency_ms)] += 1;
        match e.status / 100 {
            4 => self.client_errors += 1,
            5 => self.server_errors += 1,
            _ => {}
        }
    }

    fn merge(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.latency_sum = self.latency_sum.saturating_add(other.latency_sum);
        self.latency_max = self.latency_max.max(other.latency_max);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
    }
}

/// `'2xx'` for 204.
pub fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}

const KEY_COLUMNS: &str = "environment, provider_organisation_id, user_organisation_id, application_id, api_id, \
                           endpoint, status_class, error_code";
const PLATFORM_KEY_COLUMNS: &str = "environment, provider_organisation_id, api_id, endpoint, status_class, error_code";

fn upsert_sql(table: &str, period_column: &str, key_columns: &str) -> String {
    let buckets = columns();
    let keys = key_columns.split(", ").count();
    let placeholders: Vec<String> = (1..=keys + 5 + BUCKETS).map(|i| format!("?{i}")).collect();
    let additions: Vec<String> = buckets.iter().map(|b| format!("{b} = {b} + excluded.{b}")).collect();
    format!(
        "INSERT INTO {table} ({period_column}, {key_columns}, requests, bytes, latency_sum, latency_max, {})
         VALUES ({})
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, bytes = bytes + excluded.bytes,
             latency_sum = latency_sum + excluded.latency_sum, latency_max = max(latency_max, excluded.latency_max),
             {}",
        buckets.join(", "),
        placeholders.join(", "),
        additions.join(", ")
    )
}

static HOURLY_UPSERT: LazyLock<String> = LazyLock::new(|| upsert_sql("usage_hourly", "hour", KEY_COLUMNS));
static DAILY_UPSERT: LazyLock<String> = LazyLock::new(|| upsert_sql("usage_daily", "day", KEY_COLUMNS));
static MONTHLY_UPSERT: LazyLock<String> = LazyLock::new(|| upsert_sql("usage_monthly", "month", KEY_COLUMNS));
static PLATFORM_HOURLY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("usage_platform_hourly", "hour", PLATFORM_KEY_COLUMNS));
static PLATFORM_DAILY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("usage_platform_daily", "day", PLATFORM_KEY_COLUMNS));
static PLATFORM_MONTHLY_UPSERT: LazyLock<String> =
    LazyLock::new(|| upsert_sql("usage_platform_monthly", "month", PLATFORM_KEY_COLUMNS));
static API_DAILY_UPSERT: LazyLock<String> = LazyLock::new(|| {
    let buckets = columns();
    let placeholders: Vec<String> = (1..=10 + BUCKETS).map(|i| format!("?{i}")).collect();
    let additions: Vec<String> = buckets.iter().map(|b| format!("{b} = {b} + excluded.{b}")).collect();
    format!(
        "INSERT INTO usage_api_daily (day, environment, provider_organisation_id, api_id, requests, bytes,
             client_errors, server_errors, latency_sum, latency_max, {})
         VALUES ({})
         ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, bytes = bytes + excluded.bytes,
             client_errors = client_errors + excluded.client_errors,
             server_errors = server_errors + excluded.server_errors,
             latency_sum = latency_sum + excluded.latency_sum, latency_max = max(latency_max, excluded.latency_max),
             {}",
        buckets.join(", "),
        placeholders.join(", "),
        additions.join(", ")
    )
});

/// Adds a batch of exchanges to the rollups, inside the caller's transaction.
pub fn add(tx: &Transaction, batch: &[Exchange]) -> rusqlite::Result<()> {
    let mut quarterly: HashMap<Key, Figures> = HashMap::new();
    // A batch's exchanges come in time order, many in the same second: each time is parsed once.
    let mut times = crate::clock::RunsOfTimes::default();
    for e in batch {
        let at = times.unix(&e.at).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        let key = Key {
            period: at - at.rem_euclid(QUARTER_HOUR),
            environment: e.mode.as_str(),
            provider_organisation_id: e.provider_organisation_id.unwrap_or(0),
            user_organisation_id: e.user_organisation_id,
            application_id: e.application_id,
            api_id: e.api_id.unwrap_or(0),
            endpoint: e.endpoint,
            status_class: e.status / 100,
            error_code: e.error_code.map(|c| c.as_str()).unwrap_or(""),
        };
        quarterly.entry(key).or_default().count(e);
    }
    if quarterly.is_empty() {
        return Ok(());
    }
    // The operator's day of each quarter hour (a meter's batch has one or two), in time order: local days and months
    // only grow with time, so their indexes in `days` and `months` sort as they do.
    let mut quarters: Vec<i64> = quarterly.keys().map(|k| k.period).collect();
    quarters.sort_unstable();
    quarters.dedup();
    let mut day_of: HashMap<i64, (i64, i64)> = HashMap::with_capacity(quarters.len());
    let (mut days, mut months): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    {
        let mut local_day = tx.prepare_cached("SELECT kopir_local_day(?1)")?;
        for &quarter in &quarters {
            let day: String = local_day.query_row([quarter], |r| r.get(0))?;
            let month = day.get(..7).unwrap_or(&day).to_string();
            if days.last() != Some(&day) {
                days.push(day);
            }
            if months.last() != Some(&month) {
                months.push(month);
            }
            day_of.insert(quarter, (days.len() as i64 - 1, months.len() as i64 - 1));
        }
    }
    // Sorted maps: the upserts then walk each table's primary key in order.
    let mut hourly: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut daily: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut monthly: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut platform_hourly: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut platform_daily: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut platform_monthly: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut api_daily: BTreeMap<Key, Figures> = BTreeMap::new();
    for (key, figures) in &quarterly {
        let hour = key.period - key.period.rem_euclid(3600);
        let (day, month) = day_of.get(&key.period).copied().unwrap_or_default();
        for (map, period) in [(&mut hourly, hour), (&mut daily, day), (&mut monthly, month)] {
            map.entry(Key { period, ..key.clone() }).or_default().merge(figures);
        }
        for (map, period) in [(&mut platform_hourly, hour), (&mut platform_daily, day), (&mut platform_monthly, month)]
        {
            map.entry(key.platform(period)).or_default().merge(figures);
        }
        api_daily.entry(key.api(day)).or_default().merge(figures);
    }
    let unix = |period: i64| Value::Integer(period);
    let day = |period: i64| Value::Text(days.get(period as usize).cloned().unwrap_or_default());
    let month = |period: i64| Value::Text(months.get(period as usize).cloned().unwrap_or_default());
    upsert(tx, &HOURLY_UPSERT, &hourly, &unix, false)?;
    upsert(tx, &DAILY_UPSERT, &daily, &day, false)?;
    upsert(tx, &MONTHLY_UPSERT, &monthly, &month, false)?;
    upsert(tx, &PLATFORM_HOURLY_UPSERT, &platform_hourly, &unix, true)?;
    upsert(tx, &PLATFORM_DAILY_UPSERT, &platform_daily, &day, true)?;
    upsert(tx, &PLATFORM_MONTHLY_UPSERT, &platform_monthly, &month, true)?;
    upsert_api_daily(tx, &api_daily, &day)
}

fn upsert_api_daily(
    tx: &Transaction,
    rows: &BTreeMap<Key, Figures>,
    day: &dyn Fn(i64) -> Value,
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(&API_DAILY_UPSERT)?;
    let mut values: Vec<Value> = Vec::with_capacity(10 + BUCKETS);
    for (key, figures) in rows {
        values.clear();
        values.extend([
            day(key.period),
            Value::Text(key.environment.to_string()),
            Value::Integer(key.provider_organisation_id),
            Value::Integer(key.api_id),
            Value::Integer(figures.requests),
            Value::Integer(figures.bytes),
            Value::Integer(figures.client_errors),
            Value::Integer(figures.server_errors),
            Value::Integer(figures.latency_sum),
            Value::Integer(figures.latency_max),
        ]);
        values.extend(figures.buckets.iter().map(|&b| Value::Integer(b)));
        statement.execute(params_from_iter(values.iter()))?;
    }
    Ok(())
}

fn upsert(
    tx: &Transaction,
    sql: &str,
    rows: &BTreeMap<Key, Figures>,
    period: &dyn Fn(i64) -> Value,
    platform: bool,
) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(sql)?;
    let mut values: Vec<Value> = Vec::with_capacity(13 + BUCKETS);
    for (key, figures) in rows {
        values.clear();
        values.extend([
            period(key.period),
            Value::Text(key.environment.to_string()),
            Value::Integer(key.provider_organisation_id),
        ]);
        if !platform {
            values.extend([Value::Integer(key.user_organisation_id), Value::Integer(key.application_id)]);
        }
        values.extend([
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
            transaction_lines: 0,
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

    fn grouped_sums(table: &str, period: &str) -> String {
        let buckets: Vec<String> = columns().iter().map(|b| format!("sum({b})")).collect();
        format!(
            "SELECT {period}, environment, provider_organisation_id, api_id, endpoint, status_class, error_code,
                    sum(requests), sum(bytes), sum(latency_sum), max(latency_max), {}
             FROM {table} GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7",
            buckets.join(", ")
        )
    }

    #[test]
    fn the_operators_rollups_equal_the_sums_of_the_fine_ones_kept_and_back_filled() {
        // Traffic of several API users and applications, across an hour and an Almaty midnight, in three batches.
        let mut all = sample();
        for (i, e) in sample().into_iter().enumerate() {
            all.push(Exchange { user_organisation_id: 20 + i as i64 % 2, application_id: 30 + i as i64, ..e });
        }
        all.sort_by(|a, b| a.at.cmp(&b.at));
        let mut kept = Connection::open_in_memory().unwrap();
        migrate(&mut kept, SCHEMA).unwrap();
        for batch in [&all[..3], &all[3..7], &all[7..]] {
            let tx = kept.transaction().unwrap();
            add(&tx, batch).unwrap();
            tx.commit().unwrap();
        }
        let pairs = [
            ("usage_hourly", "usage_platform_hourly", "hour"),
            ("usage_daily", "usage_platform_daily", "day"),
            ("usage_monthly", "usage_platform_monthly", "month"),
        ];
        for (fine, platform, period) in pairs {
            let operator = table(&kept, &format!("SELECT * FROM {platform} ORDER BY 1, 2, 3, 4, 5, 6, 7"));
            assert!(!operator.is_empty());
            assert_eq!(operator, table(&kept, &grouped_sums(fine, period)), "{platform}");
        }
        // Fewer rows than the fine rollup: two API users' traffic folded together.
        let rows = |t: &str| -> i64 { kept.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)).unwrap() };
        assert!(rows("usage_platform_hourly") < rows("usage_hourly"));

        // Migration 17 back-fills the operator's rollups from the fine rows a database already has.
        let before: String = SCHEMA.split("-- migration 17:").next().unwrap().to_string();
        let mut old = Connection::open_in_memory().unwrap();
        migrate(&mut old, &before).unwrap();
        for (fine, _, _) in pairs {
            for row in table(&kept, &format!("SELECT * FROM {fine}")) {
                let placeholders: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
                old.execute(
                    &format!("INSERT INTO {fine} VALUES ({})", placeholders.join(", ")),
                    params_from_iter(row.iter()),
                )
                .unwrap();
            }
        }
        migrate(&mut old, SCHEMA).unwrap();
        for (_, platform, _) in pairs {
            let query = format!("SELECT * FROM {platform} ORDER BY 1, 2, 3, 4, 5, 6, 7");
            assert_eq!(table(&old, &query), table(&kept, &query), "{platform}");
        }
    }

    #[test]
    fn the_daily_rows_per_api_equal_the_operators_daily_rows_summed_kept_and_back_filled() {
        // Two banks, refusals by the platform (no bank) and a bank's 5xx, across an Almaty midnight, in three batches.
        let mut all = sample();
        for (i, e) in sample().into_iter().enumerate() {
            let provider = e.provider_organisation_id.map(|p| p + 1);
            all.push(Exchange { provider_organisation_id: provider, api_id: provider.map(|p| p * 10), ..e });
            all.push(Exchange {
                status: if i % 2 == 0 { 503 } else { 404 },
                endpoint: "balances",
                ..sample()[i].clone()
            });
        }
        all.sort_by(|a, b| a.at.cmp(&b.at));
        let mut kept = Connection::open_in_memory().unwrap();
        migrate(&mut kept, SCHEMA).unwrap();
        for batch in [&all[..4], &all[4..9], &all[9..]] {
            let tx = kept.transaction().unwrap();
            add(&tx, batch).unwrap();
            tx.commit().unwrap();
        }
        let buckets: Vec<String> = columns().iter().map(|b| format!("sum({b})")).collect();
        let summed = format!(
            "SELECT day, environment, provider_organisation_id, api_id, sum(requests), sum(bytes),
                    sum(CASE WHEN status_class = '4xx' THEN requests ELSE 0 END),
                    sum(CASE WHEN status_class = '5xx' THEN requests ELSE 0 END), sum(latency_sum), max(latency_max),
                    {}
             FROM usage_platform_daily GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            buckets.join(", ")
        );
        let per_api = "SELECT * FROM usage_api_daily ORDER BY 1, 2, 3, 4";
        let rows = table(&kept, per_api);
        assert_eq!(rows, table(&kept, &summed));
        // Each bank, the refusals (0) and both environments have their rows, errors counted.
        assert!(rows.len() >= 6, "{rows:?}");
        let errors: (i64, i64) = kept
            .query_row("SELECT sum(client_errors), sum(server_errors) FROM usage_api_daily", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let count = |low: u16| all.iter().filter(|e| e.status / 100 == low).count() as i64;
        assert_eq!(errors, (count(4), count(5)));

        // The migration back-fills it from the operator's daily rows a database already has.
        let before: String = SCHEMA.split("-- migration 23:").next().unwrap().to_string();
        let mut old = Connection::open_in_memory().unwrap();
        migrate(&mut old, &before).unwrap();
        for row in table(&kept, "SELECT * FROM usage_platform_daily") {
            let placeholders: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
            old.execute(
                &format!("INSERT INTO usage_platform_daily VALUES ({})", placeholders.join(", ")),
                params_from_iter(row.iter()),
            )
            .unwrap();
        }
        migrate(&mut old, SCHEMA).unwrap();
        assert_eq!(table(&old, per_api), rows);
    }
}
