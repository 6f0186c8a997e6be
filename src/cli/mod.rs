//! The `kopir` command line: argument parsing and the thin glue from each command to its domain.
//! Exit codes: 0 success, 1 failure, 2 bad configuration or usage.

mod backup;
mod bench;
mod billing;
mod ca;
mod conformance;
mod demo;
mod keys;
mod participant;
mod refbank;
mod report;
mod serve;
mod snapshot;
mod status;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::pki::lifecycle::Actor;

#[derive(Debug, Parser)]
#[command(name = "kopir", version, about = "kopir — the national Open API & Open Banking platform in one binary")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Without it the embedded defaults apply (see `kopir config example`).
    #[arg(long, global = true, env = "KOPIR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (database, keys, logs); overrides `data_dir` of the configuration.
    #[arg(long, global = true, env = "KOPIR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, database, certificate authority and first administrator (idempotent).
    Init,
    /// Run the platform: HTTPS with mutual TLS, and the loopback admin listener. Initialises first if needed
    /// (demo mode).
    Serve {
        /// Address of the HTTPS listener, e.g. 127.0.0.1:8443 (overrides server.listen).
        #[arg(long, env = "KOPIR_LISTEN", value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Address of the admin (metrics) listener; must be loopback (overrides admin.listen).
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<std::net::SocketAddr>,
    },
    /// Versions, listener, certificate expiry, queues and counts, the audit chain.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The certificate authority: issue client certificates from CSRs, list, revoke.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The platform's JWS signing keys (JWKS): list, rotate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Operator accounts: add, list, disable, enable, reset a second factor.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Participants: list, show, suspend, reinstate, revoke.
    #[command(subcommand)]
    Participant(participant::ParticipantCommand),
    /// Back up the database, the keys (both encrypted with a passphrase) and the configuration into a directory.
    Backup {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// File whose first line is the passphrase (or set KOPIR_BACKUP_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore a backup onto a fresh data directory (--data-dir); refuses one that already holds a database.
    Restore {
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// The auditor's snapshot: export a secret-free copy with a signed manifest; verify one.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// The monthly platform report: write one (HTML, JSON and signature), verify one.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Billing: caps, tariffs, the month close and its statements.
    #[command(subcommand)]
    Billing(billing::BillingCommand),
    /// The audit journal.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure the gateway: requests/s, p50/p99 latency and peak memory through kopir to a local reference bank,
    /// and the same load through nginx as a bare TLS proxy, with the ratio.
    Bench(bench::BenchArgs),
    /// Run the demo: the platform on embedded defaults with three reference banks, a sample API-user application
    /// ("Qaz Budget", at /demo/app) and test customers. Prints the URLs and credentials.
    Demo {
        /// Address of the platform's HTTPS listener (default server.listen, 127.0.0.1:8443); a `localhost`
        /// server.public_url follows its port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Ports of the three reference banks on 127.0.0.1 (default 9441 9442 9443; 0 lets the kernel choose).
        #[arg(long, value_name = "PORT", num_args = 3)]
        bank_ports: Vec<u16>,
    },
    /// Run a reference bank: a simulated provider implementing the platform's account information standard, with
    /// the sandbox customers and generated ones (for tests, demos and benchmarks).
    ReferenceBank(refbank::ReferenceBankArgs),
    /// The sandbox's conformance suite against a provider's base URL: with the platform's credentials
    /// (--data-dir / --config) or a bank's own (--cert --key --signing-key --kid --issuer). Exits 1 if a case fails.
    #[command(subcommand)]
    Conformance(conformance::ConformanceCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit journal; names the first altered, missing or re-ordered row.
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration (file, environment, flags) and print the result.
    Check,
    /// Print the documented example configuration with every key and its default.
    Example,
}

/// A command's failure: configuration problems exit 2, everything else 1.
#[derive(Debug)]
pub enum Failure {
    Config(ConfigError),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Other(e.into())
    }
}

pub fn config_failure(e: ConfigError) -> Failure {
    Failure::Config(e)
}

/// Loads the configuration the way every command does: defaults, file, environment, then `--data-dir`.
pub fn load_config(global: &GlobalArgs) -> Result<Config, Failure> {
    let mut config = Config::load(global.config.as_deref(), std::env::vars()).map_err(Failure::Config)?;
    if let Some(dir) = &global.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

/// The person at the terminal, for the audit journal.
pub fn cli_actor() -> Actor {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".to_string());
    Actor { name: format!("cli:{user}"), source: "cli".into(), user_id: None }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kopir: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("kopir: configuration error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("kopir: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            let report = crate::bootstrap::init(&config, &cli_actor().name, crate::clock::now()).await?;
            serve::print_init_report(&config, &report);
            Ok(())
        }
        Command::Serve { listen, admin_listen } => serve::run(&cli.global, listen, admin_listen).await,
        Command::Ca(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            ca::run(&config, command).await
        }
        Command::Keys(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            keys::run(&config, command).await
        }
        Command::User(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            user::run(&config, command).await
        }
        Command::Participant(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            participant::run(&config, command).await
        }
        Command::Status { json } => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            status::run(&config, json).await
        }
        Command::Backup { out, passphrase_file } => backup::backup(&cli.global, out, passphrase_file).await,
        Command::Restore { from, passphrase_file } => backup::restore(&cli.global, from, passphrase_file).await,
        Command::Snapshot(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            snapshot::run(&config, command).await
        }
        Command::Report(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            report::run(&config, command).await
        }
        Command::Billing(command) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            billing::run(&config, command).await
        }
        Command::Audit(AuditCommand::Verify { json }) => {
            let config = load_config(&cli.global)?;
            crate::logging::init_cli();
            audit_verify(&config, json).await
        }
        Command::ReferenceBank(args) => refbank::run(&cli.global, args).await,
        Command::Conformance(command) => conformance::run(&cli.global, command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Demo { listen, bank_ports } => demo::run(&cli.global, listen, bank_ports).await,
        Command::Config(ConfigCommand::Example) => {
            print!("{}", crate::config::EXAMPLE);
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            let config = load_config(&cli.global)?;
            println!("configuration is valid");
            println!("{config:#?}");
            Ok(())
        }
    }
}

async fn audit_verify(config: &Config, json: bool) -> Result<(), Failure> {
    let (db, _) = crate::store::Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    let result = db.read(|c| crate::audit::verify(c).map_err(Into::into)).await;
    match result {
        Ok(head) => {
            if json {
                println!("{}", serde_json::json!({ "ok": true, "rows": head.rows, "head": head.head_hash }));
            } else {
                println!("audit chain intact: {} rows, head {}", head.rows, head.head_hash);
            }
            Ok(())
        }
        Err(VerifyFailure::Broken { seq, reason }) => {
            if json {
                println!("{}", serde_json::json!({ "ok": false, "first_bad_row": seq, "reason": reason }));
            }
            Err(anyhow::anyhow!("audit chain broken at row {seq}: {reason}").into())
        }
        Err(VerifyFailure::Other(e)) => Err(anyhow::anyhow!("cannot read the audit journal: {e}").into()),
    }
}

/// `audit::verify`'s outcome across the store's error type.
enum VerifyFailure {
    Broken { seq: i64, reason: String },
    Other(String),
}

impl From<crate::audit::AuditError> for VerifyFailure {
    fn from(e: crate::audit::AuditError) -> Self {
        match e {
            crate::audit::AuditError::Broken { seq, reason } => VerifyFailure::Broken { seq, reason },
            other => VerifyFailure::Other(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for VerifyFailure {
    fn from(e: crate::store::StoreError) -> Self {
        VerifyFailure::Other(e.to_string())
    }
}
