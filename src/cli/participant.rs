//! `kopir participant …`: participants from the command line — list, show, and suspend / reinstate / revoke with
//! the same domain logic as the console (one transaction: status, certificate status, sessions ended, audit entry).

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::kz::Bin;
use crate::participants::accreditation::{self, Lifecycle, LifecycleOutcome};
use crate::participants::{self, Organisation};
use crate::store::{Db, StoreError};

use super::{Failure, cli_actor};

#[derive(Debug, Subcommand)]
pub enum ParticipantCommand {
    /// List every registered organisation with its status.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one organisation, its accreditation certificates and its latest application.
    Show {
        /// The organisation's BIN (12 digits).
        bin: String,
        #[arg(long)]
        json: bool,
    },
    /// Suspend an accredited participant: its people are signed out and refused at once.
    Suspend {
        bin: String,
        /// Why (kept in the audit journal and shown to the participant).
        #[arg(long)]
        reason: String,
    },
    /// Reinstate a suspended participant.
    Reinstate {
        bin: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke a participant's accreditation for good.
    Revoke {
        bin: String,
        #[arg(long)]
        reason: String,
    },
}

fn open(config: &Config) -> Result<Db, Failure> {
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    Ok(db)
}

fn parse_bin(bin: &str) -> Result<Bin, Failure> {
    Bin::parse(bin).map_err(|_| anyhow::anyhow!("{bin:?} is not a valid BIN (12 digits with a control digit)").into())
}

fn summary(org: &Organisation) -> serde_json::Value {
    json!({
        "bin": org.bin,
        "name": org.name,
        "status": org.status.as_str(),
        "status_reason": org.status_reason,
        "provider": org.is_provider,
        "user": org.is_user,
        "registered_at": org.created_at,
    })
}

pub async fn run(config: &Config, command: ParticipantCommand) -> Result<(), Failure> {
    let db = open(config)?;
    match command {
        ParticipantCommand::List { json } => {
            let orgs = db.read(|c| participants::organisations(c).map_err(StoreError::from)).await?;
            if json {
                let all: Vec<_> = orgs.iter().map(summary).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:<13} {:<11} {:<9} NAME", "BIN", "STATUS", "ROLES");
                for o in orgs {
                    let roles = match (o.is_provider, o.is_user) {
                        (true, true) => "both",
                        (true, false) => "provider",
                        (false, true) => "user",
                        (false, false) => "-",
                    };
                    println!("{:<13} {:<11} {:<9} {}", o.bin, o.status.as_str(), roles, o.name);
                }
            }
            Ok(())
        }
        ParticipantCommand::Show { bin, json } => {
            let bin = parse_bin(&bin)?;
            let key = bin.clone();
            let found = db
                .read(move |c| -> Result<_, StoreError> {
                    let Some(org) = participants::organisation_by_bin(c, &key)? else { return Ok(None) };
                    let accreditations = accreditation::accreditations_of(c, org.id)?;
                    let latest = accreditation::latest_application(c, org.id)?;
                    Ok(Some((org, accreditations, latest)))
                })
                .await?;
            let Some((org, accreditations, latest)) = found else {
                return Err(anyhow::anyhow!("no organisation with BIN {bin}").into());
            };
            if json {
                let mut value = summary(&org);
                value["accreditations"] = serde_json::to_value(&accreditations)?;
                value["latest_application"] = json!(latest.map(|a| json!({
                    "id": a.id,
                    "status": a.status.as_str(),
                    "reason": a.decision_reason,
                    "submitted_at": a.submitted_at,
                })));
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{} ({})", org.name, org.bin);
                println!("  status:     {}{}", org.status.as_str(), reason_suffix(&org.status_reason));
                println!("  provider:   {}", org.is_provider);
                println!("  user:       {}", org.is_user);
                println!("  registered: {}", org.created_at);
                for a in accreditations {
                    println!(
                        "  certificate {} ({}), issued {}, valid until {}",
                        a.number, a.status, a.issued_at, a.valid_until
                    );
                }
                if let Some(a) = latest {
                    println!("  application {}: {}", a.id, a.status.as_str());
                }
            }
            Ok(())
        }
        ParticipantCommand::Suspend { bin, reason } => change(&db, &bin, Lifecycle::Suspend, reason).await,
        ParticipantCommand::Reinstate { bin, reason } => change(&db, &bin, Lifecycle::Reinstate, reason).await,
        ParticipantCommand::Revoke { bin, reason } => change(&db, &bin, Lifecycle::Revoke, reason).await,
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(" ({reason})") }
}

async fn change(db: &Db, bin: &str, change: Lifecycle, reason: String) -> Result<(), Failure> {
    let bin = parse_bin(bin)?;
    if reason.trim().is_empty() {
        return Err(anyhow::anyhow!("--reason must not be empty").into());
    }
    let cli = cli_actor();
    let actor = cli;
    let key = bin.clone();
    let outcome = db
        .write(move |tx| -> Result<LifecycleOutcome, StoreError> {
            let Some(org) = participants::organisation_by_bin(tx, &key)? else { return Ok(LifecycleOutcome::NotFound) };
            Ok(accreditation::change_standing(tx, org.id, change, &reason, &actor, crate::clock::now())?)
        })
        .await?;
    match outcome {
        LifecycleOutcome::Changed { from, to, sessions_ended } => {
            println!("participant {bin}: {} -> {} ({} session(s) ended)", from.as_str(), to.as_str(), sessions_ended);
            Ok(())
        }
        LifecycleOutcome::NotFound => Err(anyhow::anyhow!("no organisation with BIN {bin}").into()),
        LifecycleOutcome::NotApplicable(status) => {
            Err(anyhow::anyhow!("cannot {} participant {bin}: its status is {}", change.as_str(), status.as_str())
                .into())
        }
        LifecycleOutcome::ReasonRequired => Err(anyhow::anyhow!("--reason must not be empty").into()),
    }
}
