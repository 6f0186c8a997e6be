//! `kopir ca …`: the certificate authority from the command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::pki::{Authority, RevocationReason, certs, lifecycle};
use crate::store::{Db, StoreError};

use super::{Failure, cli_actor};

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Sign a participant's certificate signing request (PEM) into a client certificate; writes the chain
    /// (certificate, then issuing CA) to --out.
    Issue {
        /// The CSR, PEM encoded (e.g. made with `openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256`).
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Where to write the certificate chain (PEM). Refuses to overwrite an existing file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A note kept with the certificate, e.g. the participant and system it is for.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List every certificate the CA has made.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate: the running server refuses it on its next request and the CRL lists it.
    Revoke {
        /// Serial number in hex, as `kopir ca list` shows it.
        serial: String,
        /// unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation or
        /// privilege-withdrawn.
        #[arg(long, value_parser = parse_reason)]
        reason: RevocationReason,
    },
    /// Re-issue the HTTPS server certificate for the configured server.hostnames and server.ip_addresses; the old
    /// one is revoked as superseded. A running server switches to it on SIGHUP.
    RenewServer,
}

fn parse_reason(s: &str) -> Result<RevocationReason, String> {
    s.parse::<RevocationReason>().ok().ok_or_else(|| {
        let all: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown reason; use one of: {}", all.join(", "))
    })
}

fn open(config: &Config) -> Result<Db, Failure> {
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    Ok(db)
}

pub async fn run(config: &Config, command: CaCommand) -> Result<(), Failure> {
    match command {
        CaCommand::Issue { csr, out, label } => {
            if out.exists() {
                return Err(anyhow::anyhow!("{} exists; choose another --out", out.display()).into());
            }
            let csr_pem = std::fs::read_to_string(&csr).with_context(|| format!("reading {}", csr.display()))?;
            let db = open(config)?;
            let authority = Arc::new(Authority::load(config)?);
            let issued =
                lifecycle::issue_client(&db, authority, csr_pem, label, cli_actor(), crate::clock::now()).await?;
            crate::pki::files::write_cert(&out, &issued.chain_pem)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("issued certificate {}", issued.record.serial);
            println!("  subject:   {}", issued.record.subject);
            println!("  valid to:  {}", issued.record.not_after);
            println!("  sha256:    {}", issued.record.sha256);
            println!("  written:   {}", out.display());
            Ok(())
        }
        CaCommand::List { json } => {
            let db = open(config)?;
            let records = db.read(|c| certs::list(c).map_err(StoreError::from)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                println!("{:<34} {:<16} {:<10} {:<21} SUBJECT", "SERIAL", "KIND", "STATUS", "NOT AFTER");
                for r in records {
                    let status = if r.is_revoked() { "revoked" } else { "active" };
                    println!(
                        "{:<34} {:<16} {:<10} {:<21} {}",
                        r.serial,
                        r.kind.as_str(),
                        status,
                        r.not_after,
                        r.subject
                    );
                }
            }
            Ok(())
        }
        CaCommand::RenewServer => {
            let db = open(config)?;
            let authority = Arc::new(Authority::load(config)?);
            let record = lifecycle::renew_server(&db, authority, config, cli_actor(), crate::clock::now()).await?;
            println!("new server certificate {} valid to {}", record.serial, record.not_after);
            println!("  for: {}", config.server.hostnames.join(", "));
            println!("a running server serves it after SIGHUP (systemctl reload kopir)");
            Ok(())
        }
        CaCommand::Revoke { serial, reason } => {
            let db = open(config)?;
            let authority = Arc::new(Authority::load(config)?);
            let record = lifecycle::revoke(
                &db,
                authority,
                serial,
                reason,
                config.pki.crl_validity_hours,
                cli_actor(),
                crate::clock::now(),
            )
            .await?;
            println!(
                "revoked certificate {} ({}) at {}, reason {}",
                record.serial,
                record.subject,
                record.revoked_at.unwrap_or_default(),
                reason.as_str()
            );
            Ok(())
        }
    }
}
