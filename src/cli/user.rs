//! `kopir user …`: operator accounts from the command line.

use clap::Subcommand;

use crate::config::Config;
use crate::identity::{Role, admin};
use crate::store::{Db, StoreError};

use super::{Failure, cli_actor};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an operator-side user; prints a one-time password (shown once) to hand over.
    Add {
        username: String,
        /// operator-admin, operator-staff or regulator.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = "")]
        full_name: String,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: their sessions end at once.
    Disable { username: String },
    /// Enable a disabled user again.
    Enable { username: String },
    /// Remove a user's second factor (lost phone) and lift a lockout; they enrol again at the next sign-in.
    ResetSecondFactor { username: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "operator-admin" => Ok(Role::OperatorAdmin),
        "operator-staff" => Ok(Role::OperatorStaff),
        "regulator" => Ok(Role::Regulator),
        _ => Err("use operator-admin, operator-staff or regulator (participants manage their own staff)".into()),
    }
}

pub async fn run(config: &Config, command: UserCommand) -> Result<(), Failure> {
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    match command {
        UserCommand::Add { username, role, full_name } => {
            let (user, password) =
                admin::create_operator_user(&db, &username, &full_name, role, cli_actor(), crate::clock::now()).await?;
            println!("created {} ({})", user.username, user.role.as_str());
            println!("one-time password (shown once): {password}");
            println!("the user changes it and enrols a second factor at first sign-in");
        }
        UserCommand::List { json } => {
            let users = db.read(|c| admin::all_users(c).map_err(StoreError::from)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!(
                    "{:<24} {:<22} {:<6} {:<9} {:<10} ORGANISATION",
                    "USERNAME", "ROLE", "2FA", "STATUS", "LOCKED"
                );
                for u in users {
                    let status = if u.disabled { "disabled" } else { "active" };
                    let locked = if u.locked_at(crate::clock::now()) { "yes" } else { "no" };
                    let org = u.organisation_id.map(|id| id.to_string()).unwrap_or_else(|| "operator".into());
                    let tfa = if u.totp_enrolled { "yes" } else { "no" };
                    println!(
                        "{:<24} {:<22} {:<6} {:<9} {:<10} {}",
                        u.username,
                        u.role.as_str(),
                        tfa,
                        status,
                        locked,
                        org
                    );
                }
            }
        }
        UserCommand::Disable { username } => {
            let user = admin::set_disabled(&db, &username, true, cli_actor(), crate::clock::now()).await?;
            println!("disabled {}; their sessions have ended", user.username);
        }
        UserCommand::Enable { username } => {
            let user = admin::set_disabled(&db, &username, false, cli_actor(), crate::clock::now()).await?;
            println!("enabled {}", user.username);
        }
        UserCommand::ResetSecondFactor { username } => {
            let user = admin::reset_second_factor(&db, &username, cli_actor(), crate::clock::now()).await?;
            println!("second factor of {} removed; they enrol again at their next sign-in", user.username);
        }
    }
    Ok(())
}
