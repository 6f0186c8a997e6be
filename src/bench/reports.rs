//! `kopir bench reports`: the cost of the usage rollups and the speed of the report queries at a national
//! platform's size.
//!
//! A year (by default) of synthetic exchanges at a configurable rate (by default 50 million a month) is generated
//! in time order and fed through the rollup upkeep the meter's writer runs ([`crate::reports::rollup::add`]); raw rows
//! are not kept (they are pruned after 90 days and no report reads them). All but the last day go through `add` in
//! batches of a day's traffic, one transaction each (the fast fill: the same upserts, fewer of them). The last day goes
//! through it as the meter really calls it — one batch per `gateway.meter_flush_ms` (1 s) of traffic, since at this
//! rate a batch never reaches `gateway.meter_batch` (500) — each in its own transaction, on the full-size tables: the
//! CPU time of `add` (the thread's CPU clock, `/proc/thread-self/schedstat`, less the clock's own cost) over that day
//! ÷ 86,400 s is the upkeep's share of one core. The meter's whole write (raw rows, rollups, outages, commit) is
//! measured the same way over the hour after the year, for comparison.
//!
//! Then every query the report pages, their exports and the operator's reports run is timed (`runs` times; median
//! and maximum): `/org/reports` for the largest provider and the largest API user with each interval and
//! granularity, with its JSON and CSV exports; the availability pages; the platform-wide figures of the dashboard and
//! the monthly report (per day and per month over a month and a year, per bank, per bank API, top error codes, SLA
//! breaches, consents' changes and consents by status over a registry of `consents` consents).
//!
//! Traffic model: `providers` banks with one API each; `users` API users with one application each, each using 4 of
//! the banks; API users' traffic skewed (the n-th largest has about 1/√n of the largest's share: a few large
//! fintechs, a long tail); endpoints 40 % accounts, 30 % transactions, 25 % balances, 5 % account; 96 % served, 2.5 %
//! refused by the platform (no bank called, 400/403/404 with their error codes), 1 % refused by the bank, 0.5 % 5xx;
//! latencies spread from a few milliseconds to seconds with a long tail.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use super::{BenchError, setup};
use crate::apps::AppMode;
use crate::catalog::Environment;
use crate::gateway::meter::Exchange;
use crate::reports::participant::{self, Params, Request};
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
    /// Consents in the registry (for consents by status).
    pub consents: i64,
    /// Runs of each query (the median and the maximum are printed).
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

/// API user `user`'s organisation and application ids; bank `provider`'s organisation and API ids are its number.
fn user_organisation(user: i64) -> i64 {
    100_000 + user
}

fn application(user: i64) -> i64 {
    200_000 + user
}

/// The banks API user `user` uses: 4 of them.
fn bank_of(user: i64, which: i64, providers: i64) -> i64 {
    1 + (user * 7 + which * 3) % providers
}

impl Traffic {
    fn exchange(&mut self, at: String) -> Exchange {
        let r = &mut self.random;
        // Skewed: P(user ≤ k) = √(k / users).
        let u = r.unit();
        let user = 1 + ((u * u * self.users as f64) as i64).min(self.users - 1);
        let provider = bank_of(user, r.below(4), self.providers);
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
            application_id: application(user),
            user_organisation_id: user_organisation(user),
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
            transaction_lines: if endpoint == "transactions" && status == 200 { (latency_ms % 160) as u32 } else { 0 },
        }
    }

    /// The exchanges of `[from, to)` at `per_second`, spread evenly over its seconds (`carry` keeps the fractions).
    fn between(&mut self, from: i64, to: i64, per_second: f64, carry: &mut f64) -> Result<Vec<Exchange>, BenchError> {
        *carry += per_second * (to - from) as f64;
        let count = carry.floor() as u64;
        *carry -= count as f64;
        let step = (to - from) as f64 / count.max(1) as f64;
        let mut exchanges = Vec::with_capacity(count as usize);
        let mut second_text = (i64::MIN, String::new());
        for i in 0..count {
            let second = from + (i as f64 * step) as i64;
            if second_text.0 != second {
                second_text = (second, rfc3339(second)?);
            }
            exchanges.push(self.exchange(second_text.1.clone()));
        }
        Ok(exchanges)
    }
}

/// One timed query: its name, the rows it returned, the median and the slowest of its runs.
#[derive(Debug, Clone)]
pub struct Timed {
    pub name: String,
    pub rows: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
    /// The median of the thread's CPU time over the runs: what the query costs, whatever else the machine is doing
    /// (the wall-clock median grows when other work shares the cores).
    pub cpu_p50_ms: f64,
}

/// The figures.
#[derive(Debug, Clone)]
pub struct ReportsFigures {
    pub exchanges: u64,
    /// Rows of `usage_hourly`, `usage_daily`, `usage_monthly` and of the operator's three.
    pub rows: Vec<(&'static str, i64)>,
    pub database_bytes: u64,
    pub build: Duration,
    /// Exchanges of the measured day and its batches.
    pub upkeep_exchanges: u64,
    pub upkeep_batches: usize,
    /// CPU of `rollup::add` over the measured day, and per batch.
    pub upkeep_cpu: Duration,
    /// Upkeep CPU per second of traffic at the rate, as % of one core; and the meter's whole write.
    pub upkeep_share: f64,
    pub write_share: f64,
    pub largest_provider: i64,
    pub largest_user: i64,
    pub queries: Vec<Timed>,
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

/// A valid BIN for the bench's organisation `id` under `prefix` (nine digits): the 12th digit is the control digit,
/// and ids give disjoint ranges.
fn bin(prefix: i64, id: i64) -> Result<String, BenchError> {
    (0..10)
        .find_map(|k| crate::kz::with_control_digit(&format!("{:011}", prefix * 100 + id * 10 + k)))
        .ok_or_else(|| setup(format!("no BIN for organisation {id}")))
}

/// Banks and their APIs (the SLA of each: 300 ms for most, so that breaches exist to be found), API users and their
/// applications.
fn seed_catalogue(conn: &mut Connection, options: &ReportsOptions) -> Result<(), BenchError> {
    let tx = conn.transaction()?;
    let now = crate::clock::now_rfc3339();
    for id in 1..=options.providers {
        tx.execute(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, created_at,
                                        updated_at, status, is_provider)
             VALUES (?1, ?2, ?3, 'L-1', 'bank@bench.test', '+77000000000', ?4, ?4, 'accredited', 1)",
            params![id, bin(990_340_000, id)?, format!("Bank {id}"), now],
        )?;
        tx.execute(
            "INSERT INTO apis (id, organisation_id, name, version, standard, sla_response_ms, status, created_at,
                               updated_at)
             VALUES (?1, ?1, 'Current accounts', '1.0', 'kopir-ais-v1', ?2, 'published', ?3, ?3)",
            params![id, if id % 5 == 0 { 150 } else { 300 }, now],
        )?;
    }
    for user in 1..=options.users {
        tx.execute(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, created_at,
                                        updated_at, status, is_user)
             VALUES (?1, ?2, ?3, 'L-2', 'fintech@bench.test', '+77000000000', ?4, ?4, 'accredited', 1)",
            params![user_organisation(user), bin(990_440_000, user)?, format!("Fintech {user}"), now],
        )?;
        tx.execute(
            "INSERT INTO applications (id, organisation_id, client_id, name, kind, created_at, mode)
             VALUES (?1, ?2, ?3, ?4, 'api_user', ?5, 'production')",
            params![
                application(user),
                user_organisation(user),
                format!("kc_bench{user:017}"),
                format!("App {user}"),
                now
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Synthetic consent status changes: about 8 a quarter hour, spread over banks and API users.
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
                let provider = bank_of(user, random.below(4), options.providers);
                let status = ["Authorised", "Authorised", "Rejected", "Revoked", "Expired"][random.below(5) as usize];
                insert.execute(params![
                    slot,
                    provider,
                    user_organisation(user),
                    application(user),
                    status,
                    1 + random.below(3)
                ])?;
                rows += 1;
            }
            slot += 900;
        }
    }
    tx.commit()?;
    Ok(rows)
}

/// The registry: `options.consents` consents of about 0.6 as many customers, each naming one bank, by status 55 %
/// authorised, 20 % expired, 15 % revoked, 5 % rejected, 5 % awaiting authorisation.
fn seed_consents(conn: &mut Connection, options: &ReportsOptions, now_unix: i64) -> Result<(), BenchError> {
    let now = rfc3339(now_unix)?;
    let span = options.months as i64 * 30 * 86_400;
    let mut random = Random(0xc0_75e7);
    let customers = (options.consents * 3 / 5).max(1);
    let tx = conn.transaction()?;
    {
        let mut customer =
            tx.prepare("INSERT INTO customers (id, iin, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?3)")?;
        for id in 1..=customers {
            customer.execute(params![id, format!("{:012}", 800_000_000_000 + id), now])?;
        }
        // Created over the benchmark's months, each in its final status from its last change on (so the flows of
        // migration 18 hold a realistic number of slots).
        let mut consent = tx.prepare(
            "INSERT INTO consents (id, application_id, customer_id, permissions, purpose, expires_at, status,
                                   created_at, status_updated_at, authorised_at)
             VALUES (?1, ?2, ?3, '[\"ReadAccountsBasic\"]', 'bench', ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut provider =
            tx.prepare("INSERT INTO consent_providers (consent_id, organisation_id, status) VALUES (?1, ?2, ?3)")?;
        for n in 0..options.consents {
            let u = random.unit();
            let user = 1 + ((u * u * options.users as f64) as i64).min(options.users - 1);
            let status = match random.unit() {
                x if x < 0.55 => "Authorised",
                x if x < 0.75 => "Expired",
                x if x < 0.90 => "Revoked",
                x if x < 0.95 => "Rejected",
                _ => "AwaitingAuthorisation",
            };
            let id = format!("aac-{n:08x}-0000-4000-8000-{n:012x}");
            let created = now_unix - random.below(span);
            let changed = (created + random.below(30 * 86_400)).min(now_unix);
            let authorised = matches!(status, "Authorised" | "Revoked" | "Expired").then(|| rfc3339(created + 60));
            let (changed, expires) = match status {
                "Authorised" => (created + 60, now_unix + 90 * 86_400),
                "Expired" => (changed.max(created + 60), changed.max(created + 60)),
                "AwaitingAuthorisation" => (created, created + 90 * 86_400),
                _ => (changed.max(created + 60), created + 90 * 86_400),
            };
            let customer = 1 + random.below(customers);
            let (expires, created, changed) = (rfc3339(expires)?, rfc3339(created)?, rfc3339(changed)?);
            let authorised = authorised.transpose()?;
            consent.execute(params![id, application(user), customer, expires, status, created, changed, authorised])?;
            let bank = bank_of(user, random.below(4), options.providers);
            provider.execute(params![id, bank, if status == "Revoked" { "revoked" } else { "active" }])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn median_ms(runs: &mut [Duration]) -> f64 {
    runs.sort();
    runs.get(runs.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark in `dir` (created, left for the caller to remove).
pub fn run(dir: &Path, options: &ReportsOptions) -> Result<ReportsFigures, BenchError> {
    std::fs::create_dir_all(dir).map_err(|error| BenchError::File { path: dir.to_path_buf(), error })?;
    let path = dir.join("reports.db");
    let zone = crate::store::calendar::default_time_zone();
    let mut conn = open(&path, &zone)?;
    seed_catalogue(&mut conn, options)?;
    let per_second = options.rate as f64 / (30.0 * 86_400.0);
    let now_at = crate::clock::now();
    let now = now_at.unix_timestamp();
    let end = now - now.rem_euclid(3600);
    let start = end - i64::from(options.months) * 30 * 86_400;
    let mut traffic = Traffic { random: Random(0x0b5e_55ed), providers: options.providers, users: options.users };

    // The year but its last day: a day's traffic per batch and transaction.
    let built = Instant::now();
    let mut exchanges = 0u64;
    let mut carry = 0.0f64;
    let measured_from = end - 86_400;
    let mut day = start;
    while day < measured_from {
        let batch = traffic.between(day, (day + 86_400).min(measured_from), per_second, &mut carry)?;
        exchanges += batch.len() as u64;
        let tx = conn.transaction()?;
        crate::reports::rollup::add(&tx, &batch)?;
        tx.commit()?;
        day += 86_400;
    }

    // The last day at the meter's cadence, on the full-size tables: one batch and transaction a second.
    let clock_cost = {
        let before = thread_cpu()?;
        for _ in 0..1000 {
            thread_cpu()?;
        }
        (thread_cpu()? - before) / 1001
    };
    let mut upkeep_cpu = Duration::ZERO;
    let mut upkeep_exchanges = 0u64;
    let mut upkeep_batches = 0usize;
    for second in measured_from..end {
        let batch = traffic.between(second, second + 1, per_second, &mut carry)?;
        if batch.is_empty() {
            continue;
        }
        let tx = conn.transaction()?;
        let cpu = thread_cpu()?;
        crate::reports::rollup::add(&tx, &batch)?;
        upkeep_cpu += (thread_cpu()? - cpu).saturating_sub(clock_cost);
        tx.commit()?;
        upkeep_exchanges += batch.len() as u64;
        upkeep_batches += 1;
    }
    exchanges += upkeep_exchanges;
    let build = built.elapsed();
    let upkeep_share = upkeep_cpu.as_secs_f64() / 86_400.0 * 100.0;

    // The meter's whole write (raw rows, rollups, outages, commit) for the hour after the year, for comparison.
    let mut write_cpu = Duration::ZERO;
    for second in end..end + 3600 {
        let batch = traffic.between(second, second + 1, per_second, &mut carry)?;
        let cpu = thread_cpu()?;
        let tx = conn.transaction()?;
        crate::gateway::meter::write(&tx, &batch, crate::web::METER_OBSERVERS)?;
        tx.commit()?;
        write_cpu += (thread_cpu()? - cpu).saturating_sub(clock_cost);
    }
    let write_share = write_cpu.as_secs_f64() / 3600.0 * 100.0;

    seed_consent_changes(&mut conn, options, start, end)?;
    seed_consents(&mut conn, options, now)?;
    conn.execute_batch("ANALYZE")?;

    let largest = |sql: &str| -> Result<i64, BenchError> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    let largest_provider = largest(
        "SELECT provider_organisation_id FROM usage_platform_monthly WHERE provider_organisation_id <> 0
         GROUP BY 1 ORDER BY sum(requests) DESC LIMIT 1",
    )?;
    let largest_user =
        largest("SELECT user_organisation_id FROM usage_monthly GROUP BY 1 ORDER BY sum(requests) DESC LIMIT 1")?;
    let queries = time_queries(&conn, &zone, options, now_at, largest_provider, largest_user)?;

    let mut rows = Vec::new();
    for table in [
        "usage_hourly",
        "usage_daily",
        "usage_monthly",
        "usage_platform_hourly",
        "usage_platform_daily",
        "usage_platform_monthly",
    ] {
        rows.push((table, conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?));
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    let database_bytes = ["reports.db", "reports.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok(ReportsFigures {
        exchanges,
        rows,
        database_bytes,
        build,
        upkeep_exchanges,
        upkeep_batches,
        upkeep_cpu,
        upkeep_share,
        write_share,
        largest_provider,
        largest_user,
        queries,
    })
}

/// Times every query of the report pages, their exports and the operator's reports.
fn time_queries(
    conn: &Connection,
    zone: &TimeZone,
    options: &ReportsOptions,
    now: OffsetDateTime,
    provider: i64,
    user: i64,
) -> Result<Vec<Timed>, BenchError> {
    let mut queries: Vec<Timed> = Vec::new();
    let mut time = |name: String, f: &dyn Fn() -> Result<usize, BenchError>| -> Result<(), BenchError> {
        let mut runs = Vec::with_capacity(options.runs);
        let mut cpu = Vec::with_capacity(options.runs);
        let mut rows = 0;
        for _ in 0..options.runs.max(1) {
            let cpu_before = thread_cpu()?;
            let started = Instant::now();
            match f() {
                Ok(n) => rows = n,
                // A failing query is reported in its row, the others still measured.
                Err(error) => {
                    queries.push(Timed {
                        name: format!("{name} — FAILED: {error}"),
                        rows: 0,
                        p50_ms: 0.0,
                        max_ms: 0.0,
                        cpu_p50_ms: 0.0,
                    });
                    return Ok(());
                }
            }
            runs.push(started.elapsed());
            cpu.push(thread_cpu()?.saturating_sub(cpu_before));
        }
        let max_ms = runs.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        queries.push(Timed { name, rows, p50_ms: median_ms(&mut runs), max_ms, cpu_p50_ms: median_ms(&mut cpu) });
        Ok(())
    };
    let today = participant::today(zone, now)?;
    let day_start = |date: Date| -> Result<OffsetDateTime, BenchError> { Ok(participant::instant(zone, date)?) };
    let month_start = today.first_of_month();
    let last_month = month_start.yesterday()?.first_of_month();
    let year_ago = month_start.checked_sub(jiff::Span::new().months(12))?;

    // `/org/reports` (page and API): the organisation's report, and its exports.
    let org = |id: i64| -> Result<crate::participants::Organisation, BenchError> {
        crate::participants::organisation(conn, id)?.ok_or_else(|| setup(format!("organisation {id}")))
    };
    let (bank, fintech) = (org(provider)?, org(user)?);
    let preset = |period: &str, granularity: Option<&str>| Params {
        period: Some(period.to_string()),
        granularity: granularity.map(str::to_string),
        ..Params::default()
    };
    let custom = |from: Date, to: Date, granularity: &str| Params {
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        granularity: Some(granularity.to_string()),
        ..Params::default()
    };
    let requests = [
        ("day by hour", preset("day", Some("hour"))),
        ("week by day", preset("week", Some("day"))),
        ("week by hour", preset("week", Some("hour"))),
        ("month by day", preset("month", Some("day"))),
        ("month by hour", preset("month", Some("hour"))),
        ("last month by day", custom(last_month, month_start, "day")),
        ("last month by month", custom(last_month, month_start, "month")),
        ("12 months by month", custom(year_ago, month_start, "month")),
        ("12 months by day", custom(year_ago, month_start, "day")),
    ];
    for (who, organisation) in [("large provider", &bank), ("large API user", &fintech)] {
        for (label, params) in &requests {
            let request = Request::parse(params, organisation, today, false).map_err(|r| setup(r.key))?;
            let build = || participant::build(conn, zone, organisation, &request, now).map_err(setup);
            time(format!("/org/reports, {who}, {label}"), &|| Ok(build()?.tables.iter().map(|t| t.rows.len()).sum()))?;
            time(format!("/org/reports + JSON and every CSV, {who}, {label}"), &|| {
                let report = build()?;
                let mut bytes = participant::json(&report, organisation).to_string().len();
                bytes += report.tables.iter().map(|t| t.csv().len()).sum::<usize>();
                Ok(bytes)
            })?;
        }
    }

    // The availability pages: a provider's (its bank and each API, a week) and the console's (the platform's).
    let week_ago = today.checked_sub(jiff::Span::new().days(6))?;
    let time_date = |date: Date| -> Result<time::Date, BenchError> {
        let month = time::Month::try_from(date.month() as u8).map_err(setup)?;
        time::Date::from_calendar_date(date.year().into(), month, date.day() as u8).map_err(setup)
    };
    let availability = |subject: crate::availability::Subject, from: Date| -> Result<usize, BenchError> {
        let (from, to) = (time_date(from)?, time_date(today)?);
        Ok(crate::availability::daily(conn, zone, subject, Environment::Production, from, to, now)?.len())
    };
    time("availability, provider's page (bank and its APIs, a week)".into(), &|| {
        let mut rows = availability(crate::availability::Subject::Bank(provider), week_ago)?;
        for api in crate::catalog::list_for_organisation(conn, provider)? {
            rows += availability(crate::availability::Subject::Api(api.id), week_ago)?;
        }
        Ok(rows)
    })?;
    time("availability, console's page (platform, a week)".into(), &|| {
        availability(crate::availability::Subject::Platform, week_ago)
    })?;
    time("availability, every bank, last month".into(), &|| {
        let mut rows = 0;
        for bank in 1..=options.providers {
            rows += availability(crate::availability::Subject::Bank(bank), last_month)?;
        }
        Ok(rows)
    })?;

    // The operator's figures (the dashboard, the monthly report): platform-wide.
    let whole = |from: Date, to: Date| -> Result<UsageFilter, BenchError> {
        Ok(UsageFilter::production(day_start(from)?, day_start(to)?))
    };
    let intervals = [
        ("last month", whole(last_month, month_start)?),
        ("this month so far", whole(month_start, today.tomorrow()?)?),
        ("12 months", whole(year_ago, month_start)?),
    ];
    for (label, filter) in &intervals {
        time(format!("platform totals, {label}"), &|| Ok(usage::totals(conn, zone, filter, None)?.len()))?;
        time(format!("platform per day, {label}"), &|| {
            Ok(usage::series(conn, zone, filter, Granularity::Day, None)?.len())
        })?;
        time(format!("platform per month, {label}"), &|| {
            Ok(usage::series(conn, zone, filter, Granularity::Month, None)?.len())
        })?;
        for group in [GroupBy::Provider, GroupBy::Api, GroupBy::ErrorCode, GroupBy::User] {
            time(format!("platform by {}, {label}", group.as_str()), &|| {
                Ok(usage::totals(conn, zone, filter, Some(group))?.len())
            })?;
        }
        time(format!("platform per day by bank, {label}"), &|| {
            Ok(usage::series(conn, zone, filter, Granularity::Day, Some(GroupBy::Provider))?.len())
        })?;
        time(format!("platform SLA breaches per day, {label}"), &|| {
            Ok(usage::sla_breaches(conn, zone, filter, Granularity::Day)?.len())
        })?;
        time(format!("platform consents' changes per day, {label}"), &|| {
            Ok(crate::reports::consents::changes(conn, zone, filter, Some(Granularity::Day))?.len())
        })?;
    }
    let last_day = UsageFilter::production(day_start(today.yesterday()?)?, day_start(today)?);
    time("platform per hour, yesterday".into(), &|| {
        Ok(usage::series(conn, zone, &last_day, Granularity::Hour, None)?.len())
    })?;
    for (label, at) in [("now", now.unix_timestamp() + 1), ("a year ago", day_start(year_ago)?.unix_timestamp())] {
        time(format!("consents by status and live customers, platform, {label}"), &|| {
            Ok(crate::reports::consents::standing_at(conn, AppMode::Production, at)?.by_status.len())
        })?;
    }
    // The monitoring task's consents gauges (every minute): the platform's and every bank's.
    time("monitoring gauges: consents by status and live customers, platform and per bank".into(), &|| {
        let at = crate::clock::rfc3339(now);
        use crate::monitoring::figures;
        Ok(figures::consents_by_status(conn)?.len()
            + usize::from(figures::customers_with_live_consents(conn, &at)? >= 0)
            + figures::consents_by_provider(conn)?.len()
            + figures::customers_by_provider(conn, &at)?.len())
    })?;
    // The operator's dashboard (and the monthly report, built on the same figures): a whole month and this month.
    for (label, month) in [("last month", last_month), ("this month so far", month_start)] {
        let period = crate::reports::dashboard::Period::month(month.year(), month.month())
            .ok_or_else(|| setup("no such month"))?;
        time(format!("dashboard figures, {label}"), &|| {
            Ok(crate::reports::platform::figures(conn, zone, period, now)?.banks.len())
        })?;
    }
    Ok(queries)
}

/// The figures as printed.
pub fn report(options: &ReportsOptions, f: &ReportsFigures) -> Vec<String> {
    let rows: Vec<String> = f.rows.iter().map(|(table, n)| format!("{table} {n}")).collect();
    let mut lines = vec![
        format!(
            "generated {} exchanges ({} months at {} a month) through the rollup upkeep in {:.0} s; {:.0} MB; rows: {}",
            f.exchanges,
            options.months,
            options.rate,
            f.build.as_secs_f64(),
            f.database_bytes as f64 / 1e6,
            rows.join(", ")
        ),
        format!(
            "upkeep at the meter's cadence over the last day ({} exchanges in {} one-second batches, {:.1} each): \
             {:.2} s of CPU = {:.0} µs a batch = {:.3} % of one core (the meter's whole write: {:.3} %); goal < 2 %",
            f.upkeep_exchanges,
            f.upkeep_batches,
            f.upkeep_exchanges as f64 / f.upkeep_batches.max(1) as f64,
            f.upkeep_cpu.as_secs_f64(),
            f.upkeep_cpu.as_secs_f64() * 1e6 / f.upkeep_batches.max(1) as f64,
            f.upkeep_share,
            f.write_share
        ),
        format!(
            "queries ({} runs each; large provider = bank {}, large API user = organisation {}):",
            options.runs, f.largest_provider, f.largest_user
        ),
        format!("{:>9} {:>9} {:>9} {:>9}  query", "rows", "p50 ms", "max ms", "CPU ms"),
    ];
    for q in &f.queries {
        lines.push(format!("{:>9} {:>9.1} {:>9.1} {:>9.1}  {}", q.rows, q.p50_ms, q.max_ms, q.cpu_p50_ms, q.name));
    }
    let over: Vec<&Timed> = f.queries.iter().filter(|q| q.p50_ms >= 200.0).collect();
    let worst = f.queries.iter().map(|q| q.p50_ms).fold(0.0, f64::max);
    let worst_cpu = f.queries.iter().map(|q| q.cpu_p50_ms).fold(0.0, f64::max);
    let over_cpu = f.queries.iter().filter(|q| q.cpu_p50_ms >= 200.0).count();
    lines.push(format!(
        "slowest median: {worst:.1} ms ({} of {} over the 200 ms goal); in CPU time {worst_cpu:.1} ms ({over_cpu} over) — \
         the CPU column is what the query costs on a quiet machine",
        over.len(),
        f.queries.len()
    ));
    lines
}
