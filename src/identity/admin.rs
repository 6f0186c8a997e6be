//! Account administration shared by the CLI and the console: create a user with a one-time password, disable,
//! re-enable, and reset a second factor. Each is one transaction with its audit entry.

use rusqlite::params;

use super::{Role, User};
use crate::audit::{self, Event, Outcome};
use crate::clock;
use crate::pki::lifecycle::Actor;
use crate::store::{Db, StoreError};
use crate::web::session;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user names have 3 to 64 letters, digits, dots, hyphens, underscores or @")]
    BadUsername,
    #[error("the user name {0} is taken")]
    Taken(String),
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("{0} is the last active operator administrator and cannot be disabled")]
    LastAdministrator(String),
    #[error("password hashing failed")]
    Password,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Store(e.into())
    }
}

/// Creates an operator-side user (administrator, staff or regulator) with a one-time password, which is returned
/// once and stored only as a hash. The person changes it and enrols TOTP at first sign-in.
pub async fn create_operator_user(
    db: &Db,
    username: &str,
    full_name: &str,
    role: Role,
    actor: Actor,
) -> Result<(User, String), AccountError> {
    if !super::username_acceptable(username) {
        return Err(AccountError::BadUsername);
    }
    let password = super::generate_password();
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || super::hash_password(&password))
            .await
            .map_err(|_| AccountError::Password)?
            .map_err(|_| AccountError::Password)?
    };
    let (username, full_name) = (username.to_string(), full_name.to_string());
    let user = db
        .write(move |tx| -> Result<User, AccountError> {
            if super::user_by_username(tx, &username)?.is_some() {
                return Err(AccountError::Taken(username));
            }
            let id = super::create_member(tx, &username, &full_name, "", role, None, &hash, true)?;
            audit::append(
                tx,
                &Event::new(&actor.name, "identity.user.created", Outcome::Success)
                    .object(format!("user:{username}"))
                    .source(&actor.source)
                    .detail(serde_json::json!({ "role": role.as_str(), "one_time_password": "issued" })),
            )?;
            super::user_by_id(tx, id)?.ok_or(AccountError::NoSuchUser(username))
        })
        .await?;
    Ok((user, password))
}

/// Disables (or re-enables) a user; disabling ends their sessions at once.
pub async fn set_disabled(db: &Db, username: &str, disabled: bool, actor: Actor) -> Result<User, AccountError> {
    let username = username.to_string();
    db.write(move |tx| -> Result<User, AccountError> {
        let user = super::user_by_username(tx, &username)?.ok_or_else(|| AccountError::NoSuchUser(username.clone()))?;
        if disabled && user.role == Role::OperatorAdmin && !user.disabled {
            let others: i64 = tx.query_row(
                "SELECT count(*) FROM users WHERE role = 'operator_admin' AND disabled_at IS NULL AND id != ?1",
                [user.id],
                |r| r.get(0),
            )?;
            if others == 0 {
                return Err(AccountError::LastAdministrator(username));
            }
        }
        let at = disabled.then(clock::now_rfc3339);
        tx.execute("UPDATE users SET disabled_at = ?2 WHERE id = ?1", params![user.id, at])?;
        if disabled {
            session::end_all_for_user(tx, user.id)?;
        }
        let action = if disabled { "identity.user.disabled" } else { "identity.user.enabled" };
        audit::append(
            tx,
            &Event::new(&actor.name, action, Outcome::Success).object(format!("user:{username}")).source(&actor.source),
        )?;
        super::user_by_id(tx, user.id)?.ok_or(AccountError::NoSuchUser(username))
    })
    .await
}

/// Removes a user's second factor (a lost phone): they enrol again at their next sign-in. Also lifts a lockout.
pub async fn reset_second_factor(db: &Db, username: &str, actor: Actor) -> Result<User, AccountError> {
    let username = username.to_string();
    db.write(move |tx| -> Result<User, AccountError> {
        let user = super::user_by_username(tx, &username)?.ok_or_else(|| AccountError::NoSuchUser(username.clone()))?;
        tx.execute(
            "UPDATE users SET totp_secret = NULL, totp_enrolled_at = NULL, totp_last_step = 0, failed_logins = 0,
                    locked_until = NULL WHERE id = ?1",
            [user.id],
        )?;
        session::end_all_for_user(tx, user.id)?;
        audit::append(
            tx,
            &Event::new(&actor.name, "identity.totp.reset", Outcome::Success)
                .object(format!("user:{username}"))
                .source(&actor.source),
        )?;
        super::user_by_id(tx, user.id)?.ok_or(AccountError::NoSuchUser(username))
    })
    .await
}

/// Every user, operator side and participants'.
pub fn all_users(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<User>> {
    let mut users = super::operator_users(conn)?;
    let mut stmt =
        conn.prepare("SELECT id FROM users WHERE organisation_id IS NOT NULL ORDER BY organisation_id, username")?;
    let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in ids {
        if let Some(user) = super::user_by_id(conn, id)? {
            users.push(user);
        }
    }
    Ok(users)
}
