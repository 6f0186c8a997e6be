//! `kopir keys …`: the platform's JWS signing keys.

use clap::Subcommand;

use crate::config::Config;
use crate::pki::signing as jwks;
use crate::store::{Db, StoreError};

use super::{Failure, cli_actor};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys: active, retired (still published) and unpublished.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key; the current one stops signing and stays published for --retain-hours.
    Rotate {
        #[arg(long, default_value_t = 24)]
        retain_hours: u32,
    },
}

pub async fn run(config: &Config, command: KeysCommand) -> Result<(), Failure> {
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    match command {
        KeysCommand::List { json } => {
            let keys = db.read(|c| jwks::list(c).map_err(StoreError::from)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<44} {:<6} {:<21} STATUS", "KID", "ALG", "CREATED");
                for k in keys {
                    let status = match (&k.retired_at, &k.unpublish_at) {
                        (None, _) => "active".to_string(),
                        (Some(_), Some(until)) if until.as_str() > crate::clock::now_rfc3339().as_str() => {
                            format!("retired, published until {until}")
                        }
                        _ => "retired, unpublished".to_string(),
                    };
                    println!("{:<44} {:<6} {:<21} {}", k.kid, k.alg, k.created_at, status);
                }
            }
        }
        KeysCommand::Rotate { retain_hours } => {
            let kid = jwks::rotate(&db, config, retain_hours, cli_actor(), crate::clock::now()).await?;
            println!("new signing key {kid}; the previous key stays published for {retain_hours} hours");
        }
    }
    Ok(())
}
