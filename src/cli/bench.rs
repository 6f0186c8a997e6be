//! `kopir bench`: gateway throughput and latency against a local reference bank, compared with nginx.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::{BenchOptions, line, run as run_bench};

use super::Failure;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds of measured load (after the warm-up) for each of kopir and nginx.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Keep-alive connections driving the load.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// The nginx binary for the comparison.
    #[arg(long, value_name = "FILE", default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    /// Skip the nginx comparison.
    #[arg(long)]
    pub no_nginx: bool,
    #[command(subcommand)]
    pub target: Option<BenchTarget>,
}

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// The cost of the sandbox's scheduled checks: CPU share of the platform, checks/s, storage a day.
    Checks(ChecksArgs),
    /// Usage rollups at a national platform's size: upkeep CPU share and the time of every report query.
    Reports(ReportsArgs),
    /// Billing: the meter's billing observer over a month of exchanges, then the month's close.
    Billing(BillingArgs),
}

#[derive(Debug, Args)]
pub struct BillingArgs {
    /// Exchanges in the month.
    #[arg(long, default_value_t = 50_000_000)]
    pub exchanges: u64,
    /// Banks (one API each).
    #[arg(long, default_value_t = 20)]
    pub providers: i64,
    /// API users.
    #[arg(long, default_value_t = 60)]
    pub users: i64,
}

fn run_billing(args: BillingArgs) -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("kopir-bench-billing-{}", std::process::id()));
    let options = crate::bench::billing::BillingOptions {
        exchanges: args.exchanges.max(1),
        providers: args.providers.max(1),
        users: args.users.max(1),
    };
    println!(
        "kopir bench billing: a month of {} exchanges, {} banks, {} API users",
        options.exchanges, options.providers, options.users
    );
    let outcome = crate::bench::billing::run(&dir, &options);
    let _ = std::fs::remove_dir_all(&dir);
    let figures = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in crate::bench::billing::report(&figures) {
        println!("{line}");
    }
    if figures.statement_units != figures.billable_units {
        return Err(anyhow::anyhow!("the statements' units differ from the units generated").into());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReportsArgs {
    /// Months of synthetic traffic (of 30 days).
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Exchanges a month.
    #[arg(long, default_value_t = 50_000_000)]
    pub rate: u64,
    /// Banks (one API each).
    #[arg(long, default_value_t = 20)]
    pub providers: i64,
    /// API users (one application each, each using 4 banks).
    #[arg(long, default_value_t = 60)]
    pub users: i64,
    /// Consents in the registry (for consents by status).
    #[arg(long, default_value_t = 1_000_000)]
    pub consents: i64,
    /// Runs of each query; the median and the maximum are printed.
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
}

fn run_reports(args: ReportsArgs) -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("kopir-bench-reports-{}", std::process::id()));
    let options = crate::bench::reports::ReportsOptions {
        months: args.months.max(1),
        rate: args.rate.max(1),
        providers: args.providers.max(4),
        users: args.users.max(1),
        consents: args.consents.max(1),
        runs: args.runs.max(1),
    };
    println!(
        "kopir bench reports: {} months at {} exchanges a month, {} banks, {} API users, on {} CPUs",
        options.months,
        options.rate,
        options.providers,
        options.users,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let outcome = crate::bench::reports::run(&dir, &options);
    let _ = std::fs::remove_dir_all(&dir);
    let figures = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in crate::bench::reports::report(&options, &figures) {
        println!("{line}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    /// Published APIs to check (two reference banks serve them all).
    #[arg(long, default_value_t = 100)]
    pub apis: usize,
    /// Seconds between two runs of one API (the shipped default is 45; a shorter one measures more checks).
    #[arg(long, default_value_t = 45)]
    pub interval: u64,
    /// Seconds measured, after a warm-up of one interval plus half the jitter.
    #[arg(long, default_value_t = 120)]
    pub duration: u64,
}

async fn run_checks(args: ChecksArgs) -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("kopir-bench-checks-{}", std::process::id()));
    let options = crate::bench::checks::ChecksOptions {
        apis: args.apis.max(1),
        interval: Duration::from_secs(args.interval.max(1)),
        duration: Duration::from_secs(args.duration.max(1)),
        kopir: std::env::current_exe()?,
    };
    println!(
        "kopir bench checks: {} published APIs, both environments checked every {} s (± {} s jitter), \
         no other traffic, {} s measured, on {} CPUs",
        options.apis,
        args.interval,
        args.interval.min(10) / 2,
        args.duration,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let outcome = crate::bench::checks::run(&dir, &options).await;
    let _ = std::fs::remove_dir_all(&dir);
    let figures = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in crate::bench::checks::report(&figures) {
        println!("{line}");
    }
    Ok(())
}

pub async fn run(args: BenchArgs) -> Result<(), Failure> {
    match args.target {
        Some(BenchTarget::Checks(checks)) => return run_checks(checks).await,
        // Synchronous work on one thread: its CPU clock is what is measured.
        Some(BenchTarget::Reports(reports)) => return run_reports(reports),
        Some(BenchTarget::Billing(billing)) => return run_billing(billing),
        None => {}
    }
    let dir = std::env::temp_dir().join(format!("kopir-bench-{}", std::process::id()));
    let nginx = (!args.no_nginx).then_some(args.nginx.clone());
    if let Some(binary) = &nginx
        && !binary.exists()
    {
        return Err(anyhow::anyhow!(
            "{} not found: install Debian's nginx-light (apt-get install nginx-light), or pass --no-nginx",
            binary.display()
        )
        .into());
    }
    let options = BenchOptions {
        duration: Duration::from_secs(args.duration.max(1)),
        warmup: Duration::from_secs(args.warmup),
        connections: args.connections.max(1),
        nginx,
        kopir: std::env::current_exe()?,
    };
    println!(
        "kopir bench: GET /open-banking/v1/aisp/accounts (token, certificate binding and consent checked live; one bank), \
         {} keep-alive connections, {} s warm-up, {} s measured, on {} CPUs",
        options.connections,
        args.warmup,
        args.duration,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let outcome = run_bench(&dir, &options).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (kopir, nginx) = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", line("kopir gateway → bank", &kopir));
    if let Some(nginx) = &nginx {
        println!("{}", line("nginx (TLS proxy) → bank", nginx));
        if nginx.per_second > 0.0 {
            println!("ratio kopir / nginx: {:.2}", kopir.per_second / nginx.per_second);
        }
    }
    println!(
        "goal on 2 cores: ≥ 5000 req/s through the gateway, p99 < 20 ms, ratio ≥ 0.5 (the load generator shares the CPUs)"
    );
    Ok(())
}
