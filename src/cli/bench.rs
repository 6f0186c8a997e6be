//! `kopir bench`: gateway throughput and latency against a local reference bank, compared with nginx.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

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
}

pub async fn run(args: BenchArgs) -> Result<(), Failure> {
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
