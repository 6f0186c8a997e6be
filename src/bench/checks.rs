//! `kopir bench checks`: the cost of the sandbox's scheduled checks. Two reference banks run as child processes; the
//! platform is set up in-process with `--apis` published APIs (two through the publication check, the rest copies
//! pointing at the same banks: sandbox at one, production at the other), then runs as a child process (`kopir serve`)
//! with the schedule at `--interval` seconds (10 s jitter, as shipped) and no other traffic. After a warm-up of one
//! interval plus half the jitter (every API has then run once, so the steady state is measured), the platform process's
//! CPU time (user + system, from `/proc/PID/stat`) over the measured wall time gives its share of one core; the
//! database gives the checks recorded and the storage they took (SQLite's `dbstat`), projected to a day.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;

use super::{BenchError, free_port, setup, start_bank, start_platform};
use crate::config::Config;

/// How to run the checks benchmark.
#[derive(Debug, Clone)]
pub struct ChecksOptions {
    pub apis: usize,
    pub interval: Duration,
    pub duration: Duration,
    pub kopir: std::path::PathBuf,
}

/// What it measured.
#[derive(Debug, Clone)]
pub struct ChecksFigures {
    pub apis: usize,
    pub interval_secs: u64,
    pub wall_secs: f64,
    /// CPU seconds (user + system) of the platform process over the measured time.
    pub cpu_secs: f64,
    /// Checks (one environment of one API) recorded over the measured time.
    pub checks: i64,
    /// Bytes the check tables (`api_runs`, `api_health_hourly`, `api_checks` and their indexes) grew by.
    pub bytes: i64,
    /// Bytes per `api_runs` row at the end (the summary's real size, pages included).
    pub bytes_per_summary: f64,
}

impl ChecksFigures {
    /// % of one core.
    pub fn cpu_share(&self) -> f64 {
        if self.wall_secs > 0.0 { self.cpu_secs / self.wall_secs * 100.0 } else { 0.0 }
    }

    pub fn checks_per_second(&self) -> f64 {
        if self.wall_secs > 0.0 { self.checks as f64 / self.wall_secs } else { 0.0 }
    }

    /// CPU milliseconds per check.
    pub fn cpu_ms_per_check(&self) -> f64 {
        if self.checks > 0 { self.cpu_secs * 1000.0 / self.checks as f64 } else { 0.0 }
    }

    /// Checks a day at the shipped schedule (a mean period of 45 s: 1,920 runs of two checks) for `apis` APIs.
    pub fn shipped_checks_per_day(&self) -> f64 {
        self.apis as f64 * 2.0 * 1920.0
    }

    /// The share of one core at the shipped schedule, from the measured cost per check.
    pub fn shipped_cpu_share(&self) -> f64 {
        self.cpu_ms_per_check() / 1000.0 * self.shipped_checks_per_day() / 86_400.0 * 100.0
    }

    /// Storage a day at the measured rate.
    pub fn bytes_per_day(&self) -> f64 {
        if self.wall_secs > 0.0 { self.bytes as f64 / self.wall_secs * 86_400.0 } else { 0.0 }
    }
}

/// User + system CPU seconds of a process, from `/proc/PID/stat` (fields 14 and 15, in clock ticks).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: the fields after it start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` (100 on Linux, the fallback).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .unwrap_or(100.0)
}

const TABLES: &str = "'api_runs', 'api_health_hourly', 'api_health', 'api_checks', 'api_checks_api'";

/// (checks recorded, bytes of the check tables, bytes per summary row).
fn storage(db: &Path) -> Result<(i64, i64, f64), BenchError> {
    let conn = rusqlite::Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(setup)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(setup)?;
    let checks: i64 = conn.query_row("SELECT count(*) FROM api_runs", [], |r| r.get(0)).map_err(setup)?;
    let bytes: i64 = conn
        .query_row(&format!("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({TABLES})"), [], |r| r.get(0))
        .map_err(setup)?;
    let runs_bytes: i64 = conn
        .query_row("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = 'api_runs'", [], |r| r.get(0))
        .map_err(setup)?;
    let per_row = if checks > 0 { runs_bytes as f64 / checks as f64 } else { 0.0 };
    Ok((checks, bytes, per_row))
}

/// Copies the first published API `count` times (alternating providers), sandbox at one bank and production at the
/// other, all published, each indexed for the marketplace.
async fn more_apis(state: &crate::web::AppState, count: usize, banks: [String; 2]) -> Result<(), BenchError> {
    state
        .db
        .write(move |tx| -> Result<(), crate::store::StoreError> {
            let sources: Vec<(i64, i64)> = tx
                .prepare("SELECT id, organisation_id FROM apis WHERE status = 'published' ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let now = crate::clock::now_rfc3339();
            for i in 0..count {
                let Some((source, _)) = sources.get(i % sources.len().max(1)) else { break };
                tx.execute(
                    "INSERT INTO apis (organisation_id, name, version, standard, description, sandbox_base_url,
                                       production_base_url, sla_response_ms, timeout_ms, contact_email, contact_phone,
                                       status, created_at, updated_at, published_at)
                     SELECT organisation_id, name, ?2, standard, description, ?3, ?4, sla_response_ms, timeout_ms,
                            contact_email, contact_phone, 'published', ?5, ?5, ?5
                     FROM apis WHERE id = ?1",
                    rusqlite::params![source, format!("bench-{i}"), banks[i % 2], banks[(i + 1) % 2], now],
                )?;
                crate::catalog::reindex(tx, tx.last_insert_rowid())?;
            }
            Ok(())
        })
        .await
        .map_err(setup)
}

/// Runs the checks benchmark in `dir`.
pub async fn run(dir: &Path, options: &ChecksOptions) -> Result<ChecksFigures, BenchError> {
    let platform_dir = dir.join("platform");
    let port = free_port()?;
    let mut config = Config::defaults().map_err(setup)?;
    config.data_dir = platform_dir.clone();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.server.public_url = format!("https://localhost:{port}");
    config.admin.enabled = false;
    config.log.stderr = false;
    config.log.level = "warn".into();
    crate::bootstrap::init(&config, "cli:bench", crate::clock::now()).await.map_err(setup)?;
    let root = config.pki_dir().join("root-ca.pem");

    // Two reference banks, their CAs trusted by the platform.
    let plans = [("Bench Bank One JSC", "99064000077"), ("Bench Bank Two JSC", "99064000078")];
    let mut guards = Vec::new();
    let mut bases = Vec::new();
    let mut cas = String::new();
    for (i, (name, digits)) in plans.iter().enumerate() {
        let bank_dir = dir.join(format!("bank{i}"));
        let pki = crate::refbank::pki::load_or_create(&bank_dir, name).map_err(setup)?;
        cas.push_str(&pki.ca_pem);
        let bank_port = free_port()?;
        let (bank, base) = start_bank(&options.kopir, &bank_dir, name, digits, bank_port, &config, &root).await?;
        guards.push(bank);
        bases.push(base);
    }
    let ca_file = dir.join("bank-cas.pem");
    std::fs::write(&ca_file, cas).map_err(|error| BenchError::File { path: ca_file.clone(), error })?;
    config.gateway.provider_ca_file = ca_file.clone();

    // Set-up in-process: two APIs published through the check, the rest copied.
    let demo_dir = platform_dir.join("demo");
    crate::pki::files::private_dir(&demo_dir).map_err(|error| BenchError::File { path: demo_dir.clone(), error })?;
    {
        let running = crate::web::start(config.clone(), None).await.map_err(setup)?;
        let state = running.state.clone();
        let base_refs: Vec<&str> = bases.iter().map(String::as_str).collect();
        let mut credentials = Vec::new();
        crate::demo::seed(&state, &plans, &base_refs, &demo_dir, &mut credentials).await.map_err(setup)?;
        let published = plans.len().min(options.apis);
        more_apis(&state, options.apis.saturating_sub(published), [bases[0].clone(), bases[1].clone()]).await?;
        running.shutdown().await;
    }

    let interval = options.interval.as_secs().max(1);
    let env = [
        ("KOPIR_SANDBOX_CHECK_INTERVAL_SECS", interval.to_string()),
        ("KOPIR_SANDBOX_CHECK_JITTER_SECS", interval.min(10).to_string()),
    ];
    let platform = start_platform(&options.kopir, &platform_dir, port, &config, &ca_file, &env).await?;
    let pid = platform.0.id();
    // Every API has run once after one interval plus half the jitter: measure from then on.
    tokio::time::sleep(Duration::from_secs(interval + interval.min(10) / 2 + 1)).await;
    let db = config.db_path();
    let (checks0, bytes0, _) = storage(&db)?;
    let cpu0 = cpu_seconds(pid).ok_or_else(|| setup("cannot read the platform's CPU time"))?;
    let started = Instant::now();
    tokio::time::sleep(options.duration).await;
    let cpu1 = cpu_seconds(pid).ok_or_else(|| setup("cannot read the platform's CPU time"))?;
    let wall_secs = started.elapsed().as_secs_f64();
    let (checks1, bytes1, bytes_per_summary) = storage(&db)?;
    drop(platform);
    drop(guards);
    Ok(ChecksFigures {
        apis: options.apis,
        interval_secs: interval,
        wall_secs,
        cpu_secs: cpu1 - cpu0,
        checks: checks1 - checks0,
        bytes: bytes1 - bytes0,
        bytes_per_summary,
    })
}

/// The report's lines.
pub fn report(f: &ChecksFigures) -> Vec<String> {
    vec![
        format!(
            "measured over {:.0} s: {} checks ({:.2} checks/s), platform CPU {:.2} s = {:.2} % of one core, {:.2} ms CPU per check",
            f.wall_secs,
            f.checks,
            f.checks_per_second(),
            f.cpu_secs,
            f.cpu_share(),
            f.cpu_ms_per_check()
        ),
        format!(
            "at the shipped schedule (every 45 s, {} APIs × 2 environments = {:.0} checks/day): {:.2} % of one core",
            f.apis,
            f.shipped_checks_per_day(),
            f.shipped_cpu_share()
        ),
        format!(
            "storage: {:.0} bytes per run summary; the check tables grew {:.1} MiB/day at the measured rate, {:.1} MiB/day \
             of summaries at the shipped schedule (findings only on changes)",
            f.bytes_per_summary,
            f.bytes_per_day() / 1_048_576.0,
            f.bytes_per_summary * f.shipped_checks_per_day() / 1_048_576.0
        ),
        "goal: < 5 % of one core at the shipped schedule".to_string(),
    ]
}
