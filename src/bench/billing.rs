//! `kopir bench billing`: a month of synthetic exchanges fed through the billing observer the meter's writer runs
//! (`billing::units::observe`, one transaction per second of traffic), then the month closed (`billing::close`) on
//! the resulting tables. Prints the observer's CPU per exchange, the close's wall time, the statements issued, the
//! process's peak memory, and checks that the statements' units equal the units generated (an independent count).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::apps::AppMode;
use crate::billing::close::{self, Closed};
use crate::gateway::meter::Exchange;

#[derive(Debug, Clone)]
pub struct BillingOptions {
    /// Exchanges in the month (30 days).
    pub exchanges: u64,
    pub providers: i64,
    pub users: i64,
}

#[derive(Debug, Clone)]
pub struct BillingFigures {
    pub exchanges: u64,
    pub billable_units: i64,
    pub observe_cpu: Duration,
    pub unit_rows: i64,
    pub close: Duration,
    pub statements: usize,
    pub statement_units: i64,
    pub peak_rss_kib: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Billing(#[from] crate::billing::BillingError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Setup(String),
}

fn thread_cpu() -> Result<Duration, BenchError> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").map_err(|e| BenchError::Setup(e.to_string()))?;
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BenchError::Setup("schedstat".into()))?;
    Ok(Duration::from_nanos(ns))
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The same traffic on every run (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }
}

/// Runs the bench in `dir` (a fresh database) for the month 2026-11 of the default zone.
pub fn run(dir: &Path, options: &BillingOptions) -> Result<BillingFigures, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::Setup(e.to_string()))?;
    let zone = crate::store::calendar::default_time_zone();
    let mut conn = Connection::open(dir.join("billing.db"))?;
    crate::store::calendar::register(&conn, &zone)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA)?;
    // The bench keeps no catalogue or registry: its APIs and organisations are bare numbers.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let month = "2026-11";
    let (start, end) = close::month_bounds(&zone, month).ok_or_else(|| BenchError::Setup("month".into()))?;
    let parse =
        |s: &str| crate::clock::parse(s).map(|t| t.unix_timestamp()).map_err(|e| BenchError::Setup(e.to_string()));
    let (start, end) = (parse(&start)?, parse(&end)?);
    // Caps, tariffs (a change mid-month for every API) and the platform fee, as the regulator, providers and
    // operator would set them (the bench's APIs are numbers; it keeps no catalogue).
    {
        let tx = conn.transaction()?;
        for service in crate::billing::Service::ALL {
            for payee in ["provider", "platform"] {
                tx.execute(
                    "INSERT INTO billing_caps (payee, service, effective_from, max_tiyn, set_by, set_at)
                     VALUES (?1, ?2, '2026-10-01', 500, 'bench', '2026-09-01T00:00:00Z')",
                    params![payee, service],
                )?;
            }
            tx.execute(
                "INSERT INTO billing_tariffs (api_id, service, effective_from, price_tiyn, free_units, set_by, set_at)
                 VALUES (NULL, ?1, '2026-10-01', 10, 0, 'bench', '2026-09-01T00:00:00Z')",
                [service],
            )?;
            for api in 1..=options.providers {
                for (from, price) in [("2026-10-01", 100 + api), ("2026-11-15", 120 + api)] {
                    tx.execute(
                        "INSERT INTO billing_tariffs (api_id, service, effective_from, price_tiyn, free_units, set_by,
                             set_at) VALUES (?1, ?2, ?3, ?4, 1000, 'bench', '2026-09-01T00:00:00Z')",
                        params![api, service, from, price],
                    )?;
                }
            }
        }
        tx.commit()?;
    }
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let seconds = end - start;
    let per_second = options.exchanges.div_ceil(seconds as u64).max(1);
    let mut generated = 0u64;
    let mut billable_units = 0i64;
    let mut observe_cpu = Duration::ZERO;
    let mut batch: Vec<Exchange> = Vec::with_capacity(per_second as usize);
    // Traffic is spread over the month in one-second batches; seconds are skipped evenly when the month has more
    // seconds than exchanges.
    let step = (seconds as u64 * per_second / options.exchanges.max(1)).max(1) as i64;
    let mut second = start;
    while second < end && generated < options.exchanges {
        batch.clear();
        let at = crate::clock::rfc3339(
            OffsetDateTime::from_unix_timestamp(second).map_err(|e| BenchError::Setup(e.to_string()))?,
        );
        for _ in 0..per_second.min(options.exchanges - generated) {
            let user = 1 + random.below(options.users);
            let provider = 1 + random.below(options.providers);
            let (endpoint, lines) = match random.below(20) {
                0..=7 => ("accounts", 0),
                8..=13 => ("transactions", random.below(260) as u32),
                14..=18 => ("balances", 0),
                _ => ("account", 0),
            };
            // 4 % failures and refusals, 2 % sandbox: never billed.
            let status = if random.below(25) == 0 { 502 } else { 200 };
            let mode = if random.below(50) == 0 { AppMode::Sandbox } else { AppMode::Production };
            let e = Exchange {
                at: at.clone(),
                application_id: user,
                user_organisation_id: 10_000 + user,
                provider_organisation_id: Some(provider),
                api_id: Some(provider),
                consent_id: None,
                endpoint,
                status,
                latency_ms: 50,
                bytes: 1000,
                interaction_id: String::new(),
                error_code: None,
                mode,
                transaction_lines: lines,
            };
            if let Some((_, units)) = crate::billing::units::billable(&e) {
                billable_units += units;
            }
            batch.push(e);
            generated += 1;
        }
        let tx = conn.transaction()?;
        let cpu = thread_cpu()?;
        crate::billing::units::observe(&tx, &batch)?;
        observe_cpu += thread_cpu()? - cpu;
        tx.commit()?;
        second += step;
    }
    let unit_rows: i64 = conn.query_row("SELECT count(*) FROM billing_units_daily", [], |r| r.get(0))?;
    conn.execute_batch("ANALYZE")?;
    let actor = crate::audit::Actor { name: "bench".into(), source: "bench".into(), user_id: None };
    let today = crate::billing::parse_day("2026-12-02").ok_or_else(|| BenchError::Setup("day".into()))?;
    let began = Instant::now();
    let tx = conn.transaction()?;
    let closed = close::close(&tx, month, today, &actor, crate::clock::now())?;
    tx.commit()?;
    let close_time = began.elapsed();
    let Closed::Issued(statements) = closed else { return Err(BenchError::Setup("the month was not closed".into())) };
    // Units on the API users' statements, read back from the documents as issued.
    let mut statement_units = 0i64;
    for s in statements.iter().filter(|s| s.kind == "user") {
        let document = close::document(&conn, &s.number)?.unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(&document).map_err(|e| BenchError::Setup(e.to_string()))?;
        statement_units += value["body"]["lines"]
            .as_array()
            .map(|lines| lines.iter().filter_map(|l| l["units"].as_i64()).sum::<i64>())
            .unwrap_or(0);
    }
    Ok(BillingFigures {
        exchanges: generated,
        billable_units,
        observe_cpu,
        unit_rows,
        close: close_time,
        statements: statements.len(),
        statement_units,
        peak_rss_kib: peak_rss_kib(),
    })
}

/// The figures as printed.
pub fn report(f: &BillingFigures) -> Vec<String> {
    let per_exchange_ns = f.observe_cpu.as_nanos() as f64 / f.exchanges.max(1) as f64;
    vec![
        format!(
            "observer: {} exchanges, {} billable units, {:.0} ns CPU per exchange ({:.2} s in all), {} unit rows",
            f.exchanges,
            f.billable_units,
            per_exchange_ns,
            f.observe_cpu.as_secs_f64(),
            f.unit_rows
        ),
        format!("close: {:.3} s, {} statements", f.close.as_secs_f64(), f.statements),
        format!(
            "check: units on the API users' statements {} = units generated {}: {}",
            f.statement_units,
            f.billable_units,
            if f.statement_units == f.billable_units { "ok" } else { "MISMATCH" }
        ),
        format!("peak memory: {} MiB", f.peak_rss_kib.map(|k| k / 1024).unwrap_or(0)),
    ]
}
