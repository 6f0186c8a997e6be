//! `kopir bench reports`: the cost of the usage rollups and the speed of the report queries at a national
//! platform's size.
//!
//! A year (by default) of synthetic exchanges at a configurable rate (by default 50 million a month) is generated
//! in time order and fed through the rollup upkeep the meter's writer runs ([`crate::reports::rollup::add`]), in
//! batches of an hour's traffic (raw rows are not kept: they are pruned after 90 days and no report reads them).
//! Then the upkeep's cost is measured as the meter really incurs it: one batch per `gateway.meter_flush_ms` (1 s) of
//! traffic at the same rate, on the full-size tables, timed with the thread's CPU clock (`/proc/thread-self/schedstat`)
//! — the upkeep alone, and the meter's whole write (raw rows, rollups, commit) for comparison — and divided by the
//! traffic's own duration: the share of one core the upkeep needs. Last, each report query is run several times
//! over day, week, month and year intervals, for the whole platform and for one provider and one API user, and its
//! median time printed, and the operator's dashboard's figures ([`crate::reports::platform::figures`]) for a month.
//!
//! Traffic model: `providers` banks with one API each; `users` API users with one application each, each using 4 of
//! the banks; endpoints 40 % accounts, 30 % transactions, 25 % balances, 5 % account; 96 % served, 2.5 % refused by
//! the platform (no bank called, 400/403/404 with their error codes), 1 % refused by the bank, 0.5 % 5xx; latencies
//! spread from a few milliseconds to seconds with a long tail.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use super::{BenchError, setup};
use crate::apps::AppMode;
use crate::gateway::meter::Exchange;
use crate::reports::usage::{self, Granularity, GroupBy, UsageFilter};
use crate::standard::error::ObErrorCode;

impl From<crate::reports::ReportsError> for BenchError {
    fn from(error: crate::reports::ReportsError) -> BenchError {
        setup(error)
    }
}

impl From<jiff::Error> for BenchError {
    fn from(error: jiff::Error) -> BenchError {
        setup(error)
    }
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct ReportsOptions {
    pub months: u32,
    /// Exchanges a month (30 days).
    pub rate: u64,
    pub providers: i64,
    pub users: i64,
    /// Runs of each query (the median is printed).
    pub runs: usize,
}

/// A small deterministic generator (xorshift64*): the same traffic on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }
}

struct Traffic {
    random: Random,
    providers: i64,
    users: i64,
}

impl Traffic {
    fn exchange(&mut self, at: String) -> Exchange {
        let r = &mut self.random;
        let user = 1 + r.below(self.users);
        // Each API user uses 4 of the banks.
        let provider = 1 + (user * 7 + r.below(4) * 3) % self.providers;
        let endpoint = match r.unit() {
            x if x < 0.40 => "accounts",
            x if x < 0.70 => "transactions",
            x if x < 0.95 => "balances",
            _ => "account",
        };
        let outcome = r.unit();
        let (status, error_code, reached) = match outcome {
            x if x < 0.96 => (200, None, true),
            x if x < 0.97 => (404, Some(ObErrorCode::ResourceNotFound), false),
            x if x < 0.98 => (400, Some(ObErrorCode::FieldInvalidDate), false),
            x if x < 0.985 => (403, Some(ObErrorCode::ResourceConsentMismatch), false),
            x if x < 0.995 => (400, Some(ObErrorCode::FieldInvalid), true),
            _ => (503, Some(ObErrorCode::UnexpectedError), true),
        };
        // Mostly tens to hundreds of milliseconds, a tail to seconds.
        let latency_ms = if reached { (8.0 + 60.0 * (-r.unit().max(1e-12).ln()).powf(1.6)) as u64 } else { 0 };
        Exchange {
            at,
            application_id: 1000 + user,
            user_organisation_id: 100 + user,
            provider_organisation_id: reached.then_some(provider),
            api_id: reached.then_some(provider),
            consent_id: None,
            endpoint,
            status,
            latency_ms,
            bytes: if status == 200 { 800 + r.below(4000) as u64 } else { 0 },
            interaction_id: String::new(),
            error_code,
            mode: AppMode::Production,
        }
    }
}

/// The figures.
#[derive(Debug, Clone)]
pub struct ReportsFigures {
    pub exchanges: u64,
    pub hourly_rows: i64,
    pub daily_rows: i64,
    pub database_bytes: u64,
    pub build: Duration,
    /// Upkeep CPU per second of traffic at the rate, as % of one core; and the meter's whole write.
    pub upkeep_share: f64,
    pub write_share: f64,
    pub upkeep_us_per_batch: f64,
    pub batch_size: f64,
    /// (query, median ms).
    pub queries: Vec<(String, f64)>,
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu() -> Result<Duration, BenchError> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").map_err(setup)?;
    let ns: u64 = text.split_whitespace().next().and_then(|n| n.parse().ok()).ok_or_else(|| setup("schedstat"))?;
    Ok(Duration::from_nanos(ns))
}

fn rfc3339(unix: i64) -> Result<String, BenchError> {
    Ok(crate::clock::rfc3339(OffsetDateTime::from_unix_timestamp(unix).map_err(setup)?))
}

fn open(path: &Path, zone: &TimeZone) -> Result<Connection, BenchError> {
    let mut conn = Connection::open(path)?;
    crate::store::calendar::register(&conn, zone)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // The bulk build needs no durability; the measured upkeep is CPU time, which fsync does not change.
    conn.pragma_update(None, "synchronous", "OFF")?;
    crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA)?;
    Ok(conn)
}

/// A valid BIN for the bench's bank `id` (the 12th digit is the control digit; ids give disjoint ranges).
fn bin(id: i64) -> Result<String, BenchError> {
    (0..10)
        .find_map(|k| crate::kz::with_control_digit(&format!("{:011}", 99_034_000_000 + id * 10 + k)))
        .ok_or_else(|| setup(format!("no BIN for bank {id}")))
}

/// Banks and their APIs (the SLA of each: 300 ms for most, so that breaches exist to be found).
fn seed_catalogue(conn: &mut Connection, providers: i64) -> Result<(), BenchError> {
    let tx = conn.transaction()?;
    let now = crate::clock::now_rfc3339();
    for id in 1..=providers {
        tx.execute(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, created_at,
                                        updated_at, status, is_provider)
             VALUES (?1, ?2, ?3, 'L-1', 'bank@bench.test', '+77000000000', ?4, ?4, 'accredited', 1)",
            params![id, bin(id)?, format!("Bank {id}"), now],
        )?;
        tx.execute(
            "INSERT INTO apis (id, organisation_id, name, version, standard, sla_response_ms, status, created_at,
                               updated_at)
             VALUES (?1, ?1, 'Current accounts', '1.0', 'kopir-ais-v1', ?2, 'published', ?3, ?3)",
            params![id, if id % 5 == 0 { 150 } else { 300 }, now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Synthetic consent status changes: about `per_quarter` a quarter hour, spread over banks and API users.
fn seed_consent_changes(
    conn: &mut Connection,
    options: &ReportsOptions,
    from: i64,
    to: i64,
) -> Result<u64, BenchError> {
    let mut random = Random(0x5eed_c0de);
    let tx = conn.transaction()?;
    let mut rows = 0u64;
    {
        let mut insert = tx.prepare(
            "INSERT INTO consent_changes (slot, environment, provider_organisation_id, user_organisation_id,
                                          application_id, status, changes)
             VALUES (?1, 'production', ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET changes = changes + excluded.changes",
        )?;
        let mut slot = from - from.rem_euclid(900);
        while slot < to {
            for _ in 0..8 {
                let user = 1 + random.below(options.users);
                let provider = 1 + (user * 7 + random.below(4) * 3) % options.providers;
                let status = ["Authorised", "Authorised", "Rejected", "Revoked", "Expired"][random.below(5) as usize];
                insert.execute(params![slot, provider, 100 + user, 1000 + user, status, 1 + random.below(3)])?;
                rows += 1;
            }
            slot += 900;
        }
    }
    tx.commit()?;
    Ok(rows)
}

fn median_ms(mut runs: Vec<Duration>) -> f64 {
    runs.sort();
    runs.get(runs.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark in `dir` (created, left for the caller to remove).
pub fn run(dir: &Path, options: &ReportsOptions) -> Result<ReportsFigures, BenchError> {
    std::fs::create_dir_all(dir).map_err(|error| BenchError::File { path: dir.to_path_buf(), error })?;
    let path = dir.join("reports.db");
    let zone = crate::store::calendar::default_time_zone();
    let mut conn = open(&path, &zone)?;
    seed_catalogue(&mut conn, options.providers)?;
    let per_second = options.rate as f64 / (30.0 * 86_400.0);
    let now = crate::clock::now().unix_timestamp();
    let end = now - now.rem_euclid(3600);
    let start = end - i64::from(options.months) * 30 * 86_400;
    let mut traffic = Traffic { random: Random(0x0b5e_55ed), providers: options.providers, users: options.users };

    // The year, an hour's traffic per transaction.
    let built = Instant::now();
    let mut exchanges = 0u64;
    let mut carry = 0.0f64;
    let mut batch: Vec<Exchange> = Vec::new();
    for hour in (start..end).step_by(3600) {
        batch.clear();
        // Exchanges of this hour, spread over its seconds.
        carry += per_second * 3600.0;
        let count = carry.floor() as u64;
        carry -= count as f64;
        let step = 3600.0 / count.max(1) as f64;
        let mut second_text = (i64::MIN, String::new());
        for i in 0..count {
            let second = hour + (i as f64 * step) as i64;
            if second_text.0 != second {
                second_text = (second, rfc3339(second)?);
            }
            batch.push(traffic.exchange(second_text.1.clone()));
        }
        exchanges += count;
        let tx = conn.transaction()?;
        crate::reports::rollup::add(&tx, &batch)?;
        tx.commit()?;
    }
    let build = built.elapsed();
    seed_consent_changes(&mut conn, options, start, end)?;
    conn.execute_batch("ANALYZE")?;

    // The upkeep at the meter's cadence: one batch a second of traffic, for ten minutes of traffic after `end`.
    let seconds = 600i64;
    let mut batches: Vec<Vec<Exchange>> = Vec::new();
    let mut carry = 0.0f64;
    for second in end..end + seconds {
        carry += per_second;
        let count = carry.floor() as usize;
        carry -= count as f64;
        let at = rfc3339(second)?;
        batches.push((0..count).map(|_| traffic.exchange(at.clone())).collect());
    }
    let batch_size = batches.iter().map(Vec::len).sum::<usize>() as f64 / batches.len().max(1) as f64;
    let cpu = thread_cpu()?;
    for batch in &batches {
        let tx = conn.transaction()?;
        crate::reports::rollup::add(&tx, batch)?;
        tx.commit()?;
    }
    let upkeep = thread_cpu()? - cpu;
    // The same traffic again, as the meter writes it (raw rows, rollups, consents' last use, commit), one second on.
    let cpu = thread_cpu()?;
    for batch in &batches {
        let tx = conn.transaction()?;
        crate::gateway::meter::write(&tx, batch, crate::web::METER_OBSERVERS)?;
        tx.commit()?;
    }
    let write = thread_cpu()? - cpu;
    let upkeep_share = upkeep.as_secs_f64() / seconds as f64 * 100.0;
    let write_share = write.as_secs_f64() / seconds as f64 * 100.0;
    let upkeep_us_per_batch = upkeep.as_secs_f64() * 1e6 / batches.len().max(1) as f64;

    // The queries.
    let at = |unix: i64| OffsetDateTime::from_unix_timestamp(unix).map_err(setup);
    let today = crate::store::calendar::local_date(&zone, end)?;
    let day_start =
        |date: jiff::civil::Date| -> Result<i64, BenchError> { Ok(crate::store::calendar::day_start(&zone, date)?) };
    let yesterday = today.yesterday().map_err(setup)?;
    let week_ago = today.checked_sub(jiff::Span::new().days(7)).map_err(setup)?;
    let month_start = yesterday.first_of_month();
    let previous_month = month_start.yesterday().map_err(setup)?.first_of_month();
    let year_ago = today.checked_sub(jiff::Span::new().days(i64::from(options.months.min(12)) * 30)).map_err(setup)?;
    let intervals = [
        ("day", day_start(yesterday)?, day_start(today)?),
        ("week", day_start(week_ago)?, day_start(today)?),
        ("month", day_start(previous_month)?, day_start(month_start)?),
        ("year", day_start(year_ago)?, day_start(today)?),
        ("6 h", end - 6 * 3600, end),
    ];
    let provider = 1;
    let user = 101;
    let mut queries: Vec<(String, f64)> = Vec::new();
    let mut time_query =
        |name: String, f: &dyn Fn(&Connection) -> Result<usize, BenchError>| -> Result<(), BenchError> {
            let mut runs = Vec::with_capacity(options.runs);
            let mut rows = 0;
            for _ in 0..options.runs.max(1) {
                let started = Instant::now();
                rows = f(&conn)?;
                runs.push(started.elapsed());
            }
            queries.push((format!("{name} ({rows} rows)"), median_ms(runs)));
            Ok(())
        };
    for (label, from, to) in intervals {
        let (from, to) = (at(from)?, at(to)?);
        let whole = UsageFilter::production(from, to);
        let granularity = match label {
            "6 h" | "day" => Granularity::Hour,
            "year" => Granularity::Month,
            _ => Granularity::Day,
        };
        for (who, filter) in [
            ("platform", whole.clone()),
            ("provider", UsageFilter { provider: Some(provider), ..whole.clone() }),
            ("API user", UsageFilter { user: Some(user), ..whole.clone() }),
        ] {
            time_query(format!("totals, {label}, {who}"), &|c| Ok(usage::totals(c, &zone, &filter, None)?.len()))?;
            time_query(format!("series by {}, {label}, {who}", granularity.as_str()), &|c| {
                Ok(usage::series(c, &zone, &filter, granularity, None)?.len())
            })?;
            let groups: &[GroupBy] = match who {
                "platform" => &[GroupBy::Provider, GroupBy::User, GroupBy::ErrorCode],
                "provider" => &[GroupBy::Api, GroupBy::User, GroupBy::Endpoint, GroupBy::StatusClass],
                _ => &[GroupBy::Provider, GroupBy::Application, GroupBy::Endpoint, GroupBy::ErrorCode],
            };
            for &group in groups {
                time_query(format!("totals by {}, {label}, {who}", group.as_str()), &|c| {
                    Ok(usage::totals(c, &zone, &filter, Some(group))?.len())
                })?;
            }
            time_query(format!("series by {} and endpoint, {label}, {who}", granularity.as_str()), &|c| {
                Ok(usage::series(c, &zone, &filter, granularity, Some(GroupBy::Endpoint))?.len())
            })?;
            time_query(format!("SLA breaches by {}, {label}, {who}", granularity.as_str()), &|c| {
                Ok(usage::sla_breaches(c, &zone, &filter, granularity)?.len())
            })?;
            time_query(format!("consent changes by {}, {label}, {who}", granularity.as_str()), &|c| {
                Ok(crate::reports::consents::changes(c, &filter, Some(granularity))?.len())
            })?;
        }
    }
    // The operator's dashboard: every figure of a whole month and the month before it, and of this month so far.
    let now_at = at(end)?;
    for (label, month) in [("previous month", previous_month), ("this month", today)] {
        let period = crate::reports::dashboard::Period::month(month.year(), month.month())
            .ok_or_else(|| setup("no such month"))?;
        time_query(format!("dashboard figures, {label}, platform"), &|c| {
            Ok(crate::reports::platform::figures(c, &zone, period, now_at)?.banks.len())
        })?;
    }
    let count = |table: &str| -> Result<i64, BenchError> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let (hourly_rows, daily_rows) = (count("usage_hourly")?, count("usage_daily")?);
    drop(conn);
    let database_bytes = ["reports.db", "reports.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok(ReportsFigures {
        exchanges,
        hourly_rows,
        daily_rows,
        database_bytes,
        build,
        upkeep_share,
        write_share,
        upkeep_us_per_batch,
        batch_size,
        queries,
    })
}

/// The figures as printed.
pub fn report(options: &ReportsOptions, f: &ReportsFigures) -> Vec<String> {
    let mut lines = vec![
        format!(
            "generated {} exchanges ({} months at {} a month) through the rollup upkeep in {:.0} s: {} hourly rows, {} daily rows, {:.0} MB",
            f.exchanges,
            options.months,
            options.rate,
            f.build.as_secs_f64(),
            f.hourly_rows,
            f.daily_rows,
            f.database_bytes as f64 / 1e6
        ),
        format!(
            "upkeep at the meter's cadence (one batch a second, {:.1} exchanges each): {:.0} µs CPU a batch = {:.3} % of one core \
             (the meter's whole write: {:.3} %); goal < 2 %",
            f.batch_size, f.upkeep_us_per_batch, f.upkeep_share, f.write_share
        ),
    ];
    let worst = f.queries.iter().map(|(_, ms)| *ms).fold(0.0, f64::max);
    for (name, ms) in &f.queries {
        lines.push(format!("{ms:>9.1} ms  {name}"));
    }
    lines.push(format!("slowest query: {worst:.1} ms (median of {} runs); goal < 200 ms", options.runs));
    lines
}
