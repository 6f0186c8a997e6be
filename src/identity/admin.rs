//! Account administration shared by the CLI and the console: create a user with a one-time password, disable,
//! re-enable, and reset a second factor. Each is one transaction with its audit entry.

use time::OffsetDateTime;

use super::{Role, User, sessions};
use crate::audit::{self, Event, Outcome};
use crate::pki::lifecycle::Actor;
use crate::store::{Db, StoreError};

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
    now: OffsetDateTime,
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
            let id = super::create_member(tx, &username, &full_name, "", role, None, &hash, true, now)?;
            audit::append(
                tx,
                &Event::new(&actor.name, "identity.user.created", Outcome::Success)
                    .at(now)
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
pub async fn set_disabled(
    db: &Db,
    username: &str,
    disabled: bool,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<User, AccountError> {
    let username = username.to_string();
    db.write(move |tx| -> Result<User, AccountError> {
        let user = super::user_by_username(tx, &username)?.ok_or_else(|| AccountError::NoSuchUser(username.clone()))?;
        if disabled
            && user.role == Role::OperatorAdmin
            && !user.disabled
            && super::other_active_with_role(tx, Role::OperatorAdmin, None, user.id)? == 0
        {
            return Err(AccountError::LastAdministrator(username));
        }
        if disabled {
            super::disable(tx, user.id, now)?;
            sessions::end_all_for_user(tx, user.id)?;
        } else {
            super::enable(tx, user.id, false)?;
        }
        let action = if disabled { "identity.user.disabled" } else { "identity.user.enabled" };
        audit::append(
            tx,
            &Event::new(&actor.name, action, Outcome::Success)
                .at(now)
                .object(format!("user:{username}"))
                .source(&actor.source),
        )?;
        super::user_by_id(tx, user.id)?.ok_or(AccountError::NoSuchUser(username))
    })
    .await
}

/// Removes a user's second factor (a lost phone): they enrol again at their next sign-in. Also lifts a lockout.
pub async fn reset_second_factor(
    db: &Db,
    username: &str,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<User, AccountError> {
    let username = username.to_string();
    db.write(move |tx| -> Result<User, AccountError> {
        let user = super::user_by_username(tx, &username)?.ok_or_else(|| AccountError::NoSuchUser(username.clone()))?;
        super::reset_second_factor(tx, user.id)?;
        sessions::end_all_for_user(tx, user.id)?;
        audit::append(
            tx,
            &Event::new(&actor.name, "identity.totp.reset", Outcome::Success)
                .at(now)
                .object(format!("user:{username}"))
                .source(&actor.source),
        )?;
        super::user_by_id(tx, user.id)?.ok_or(AccountError::NoSuchUser(username))
    })
    .await
}

pub use super::all_users;
