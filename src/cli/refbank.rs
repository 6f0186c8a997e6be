//! `kopir reference-bank`: runs a simulated provider bank implementing the standard, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Failure, GlobalArgs};
use crate::refbank::{BankConfig, Fault};

#[derive(Debug, Args)]
pub struct ReferenceBankArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,
    /// The bank's name (in its certificates and logs).
    #[arg(long, default_value = "Reference Bank")]
    pub name: String,
    /// The bank's BIN: the audience the platform's signed header must name.
    #[arg(long)]
    pub bin: String,
    /// The platform's public URL (its `server.public_url`), where its JWKS is fetched.
    #[arg(long, value_name = "URL")]
    pub platform_url: String,
    /// The platform's root CA certificate (PEM), e.g. <platform data dir>/pki/root-ca.pem.
    #[arg(long, value_name = "FILE")]
    pub platform_ca: PathBuf,
    /// Seed of the bank's customers, accounts and transactions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Misbehave on purpose, breaking one rule of the standard: slow, error, malformed, leaky (Detail fields under
    /// a Basic consent), unfiltered (date filter ignored), open (no valid signed header needed), badpaging
    /// (Links.Next points at the same page) or oversized (17 MiB answers, more than the gateway reads).
    #[arg(long)]
    pub fault: Option<Fault>,
    /// The delay of `--fault slow`, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3_000)]
    pub fault_delay_ms: u64,
}

pub async fn run(global: &GlobalArgs, args: ReferenceBankArgs) -> Result<(), Failure> {
    let stop = shutdown_signal()?;
    let Some(data_dir) = global.data_dir.clone() else {
        return Err(usage("--data-dir DIR is required: the bank keeps its CA and server certificate there"));
    };
    let platform_root_pem = std::fs::read_to_string(&args.platform_ca)
        .map_err(|e| usage(&format!("cannot read --platform-ca {}: {e}", args.platform_ca.display())))?;
    crate::logging::init_cli();
    let mut config = BankConfig::new(args.name, args.bin, data_dir, args.platform_url, platform_root_pem);
    config.listen = args.listen;
    config.seed = args.seed;
    config.fault = args.fault;
    config.fault_delay = Duration::from_millis(args.fault_delay_ms);
    let bank = crate::refbank::start(config).await.map_err(|e| match e {
        crate::refbank::BankError::Bin(_) | crate::refbank::BankError::PlatformUrl(_) => usage(&e.to_string()),
        other => Failure::Other(other.into()),
    })?;
    println!("reference bank listening on {}", bank.addr);
    println!("base URL: {}", bank.base_url);
    println!("CA certificate (for the platform's gateway.provider_ca_file): {}", bank.ca_file.display());
    println!("sandbox customers (IIN):");
    for customer in crate::standard::SANDBOX_CUSTOMERS {
        println!("  {}  {}", customer.iin, customer.name);
    }
    println!("Stop with Ctrl-C or SIGTERM.");
    stop.await;
    bank.shutdown().await;
    Ok(())
}

fn usage(message: &str) -> Failure {
    Failure::Config(crate::config::ConfigError::Key {
        source_name: "command line".into(),
        key: "reference-bank".into(),
        message: message.into(),
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); installed before start-up so an early signal is a request to stop.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
