//! People who sign in: operator staff, regulators and (later) participants' employees. Passwords are argon2id;
//! a password is only ever held in memory long enough to hash or check it. Sign-in is password, then a TOTP code
//! (enrolment is forced before anything else), with lockout after repeated failures and no code accepted twice.
//!
//! This module owns the `users` and `login_attempts` tables ([`sessions`] owns `sessions`): every other module reads
//! and changes people through the functions here, e.g. `identity::disable(tx, user.id, now)` then
//! `sessions::end_all_for_user(tx, user.id)`.

pub mod admin;
pub mod routes;
pub mod sessions;
pub mod totp;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use time::OffsetDateTime;

use crate::clock;

/// The sign-in pages.
pub fn router() -> axum::Router<crate::web::AppState> {
    routes::router()
}

crate::text_enum! {
    /// What a person may do (stored in `users.role`).
    pub enum Role {
        OperatorAdmin = "operator_admin",
        OperatorStaff = "operator_staff",
        Regulator = "regulator",
        ParticipantAdmin = "participant_admin",
        ParticipantDeveloper = "participant_developer",
        ParticipantAnalyst = "participant_analyst",
    }
}

impl Role {
    pub fn is_operator_side(self) -> bool {
        matches!(self, Role::OperatorAdmin | Role::OperatorStaff | Role::Regulator)
    }

    /// Text key of the role's name.
    pub fn text_key(self) -> &'static str {
        match self {
            Role::OperatorAdmin => "role.operator_admin",
            Role::OperatorStaff => "role.operator_staff",
            Role::Regulator => "role.regulator",
            Role::ParticipantAdmin => "role.participant_admin",
            Role::ParticipantDeveloper => "role.participant_developer",
            Role::ParticipantAnalyst => "role.participant_analyst",
        }
    }
}

/// A person who signs in. Secrets (password hash, TOTP secret) are not part of it: they are read only where checked.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub role: Role,
    pub organisation_id: Option<i64>,
    pub must_change_password: bool,
    pub totp_enrolled: bool,
    pub disabled: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
}

const USER_COLUMNS: &str = "id, username, full_name, email, role, organisation_id, must_change_password, \
                            totp_enrolled_at IS NOT NULL AS totp_enrolled, disabled_at IS NOT NULL AS disabled, \
                            locked_until, created_at";

impl User {
    fn from_row(r: &rusqlite::Row) -> rusqlite::Result<User> {
        Ok(User {
            id: r.get("id")?,
            username: r.get("username")?,
            full_name: r.get("full_name")?,
            email: r.get("email")?,
            role: r.get("role")?,
            organisation_id: r.get("organisation_id")?,
            must_change_password: r.get("must_change_password")?,
            totp_enrolled: r.get("totp_enrolled")?,
            disabled: r.get("disabled")?,
            locked_until: r.get("locked_until")?,
            created_at: r.get("created_at")?,
        })
    }

    /// Whether the account is locked at `now` (too many failures in a row).
    pub fn locked_at(&self, now: OffsetDateTime) -> bool {
        self.locked_until.as_deref().is_some_and(|until| until > clock::rfc3339(now).as_str())
    }
}

pub fn user_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    conn.query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [id], User::from_row).optional()
}

pub fn user_by_username(conn: &Connection, username: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"), [username], User::from_row)
        .optional()
}

pub fn users_of_organisation(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Vec<User>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users WHERE organisation_id = ?1 ORDER BY username"))?;
    let rows = stmt.query_map([organisation_id], User::from_row)?;
    rows.collect()
}

pub fn operator_users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users WHERE organisation_id IS NULL ORDER BY username"))?;
    let rows = stmt.query_map([], User::from_row)?;
    rows.collect()
}

/// The stored password hash (only for checking a password).
pub fn password_hash_of(conn: &Connection, user_id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT password_hash FROM users WHERE id = ?1", [user_id], |r| r.get(0)).optional()
}

/// A new password must be long enough and not the user name.
pub fn password_acceptable(username: &str, password: &str) -> bool {
    password.chars().count() >= 12 && password.chars().count() <= 256 && !password.eq_ignore_ascii_case(username)
}

/// A user name: 3–64 letters, digits, dots, hyphens, underscores or @.
pub fn username_acceptable(username: &str) -> bool {
    (3..=64).contains(&username.len())
        && username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hash,
}

/// argon2id with the crate's recommended parameters (19 MiB, 2 passes), a random salt, PHC string format.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|_| PasswordError::Hash)
}

/// Checks a password against a stored hash (the comparison inside argon2 is constant-time).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), stored).is_ok()
}

/// Password hashing on behalf of requests: argon2id runs on blocking threads, at most `limit` at once (each takes
/// 19 MiB and tens of milliseconds of a CPU), so a flood of sign-ins cannot exhaust memory or the blocking pool;
/// the others wait their turn. The permit is held by the blocking task, so a cancelled request frees it only when
/// its hash is done.
#[derive(Clone)]
pub struct Passwords {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    computed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Passwords {
    pub fn new(limit: usize) -> Passwords {
        Passwords {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1))),
            computed: std::sync::Arc::default(),
        }
    }

    /// How many hashes (and checks) have been computed so far.
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let computed = self.computed.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            computed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            work()
        })
        .await
        .ok()
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_password(&password)).await.unwrap_or(Err(PasswordError::Hash))
    }

    /// Checks `password` against `stored`; with no stored hash (an unknown user name) it checks against a hash of a
    /// random password instead, so the time taken does not reveal which accounts exist.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        self.run(move || match stored {
            Some(stored) => verify_password(&password, &stored),
            None => {
                let _ = verify_password(&password, dummy_hash());
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// An argon2id hash of a random password, checked against when the user name is unknown.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&generate_password()).unwrap_or_default())
}

/// A random password of 20 characters from an alphabet without look-alikes (about 115 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..20)
        .map(|_| {
            let i = (rand::random::<u32>() as usize) % ALPHABET.len();
            ALPHABET[i] as char
        })
        .collect()
}

/// Whether any active operator administrator exists.
pub fn has_operator_admin(conn: &Connection) -> rusqlite::Result<bool> {
    let found: Option<i64> = conn
        .query_row("SELECT id FROM users WHERE role = ?1 AND disabled_at IS NULL LIMIT 1", [Role::OperatorAdmin], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(found.is_some())
}

/// Creates a user; returns the new id. `must_change_password` forces a new password (and TOTP enrolment) at the
/// first sign-in.
pub fn create_user(
    tx: &Transaction,
    username: &str,
    role: Role,
    password_hash: &str,
    must_change_password: bool,
    now: OffsetDateTime,
) -> rusqlite::Result<i64> {
    create_member(tx, username, "", "", role, None, password_hash, must_change_password, now)
}

/// Creates a user belonging to `organisation_id` (or to the operator when `None`); returns the new id.
#[allow(clippy::too_many_arguments)]
pub fn create_member(
    tx: &Transaction,
    username: &str,
    full_name: &str,
    email: &str,
    role: Role,
    organisation_id: Option<i64>,
    password_hash: &str,
    must_change_password: bool,
    now: OffsetDateTime,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO users (username, full_name, email, role, organisation_id, password_hash, must_change_password,
                            created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            username,
            full_name,
            email,
            role,
            organisation_id,
            password_hash,
            must_change_password,
            clock::rfc3339(now)
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Every user, operator side first, then participants' by organisation.
pub fn all_users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY organisation_id IS NOT NULL, organisation_id, username"
    ))?;
    let rows = stmt.query_map([], User::from_row)?;
    rows.collect()
}

/// How many active users of `role` there are besides `except`, in `organisation_id` when given (else anywhere).
pub fn other_active_with_role(
    conn: &Connection,
    role: Role,
    organisation_id: Option<i64>,
    except: i64,
) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM users WHERE role = ?1 AND disabled_at IS NULL AND id <> ?2
           AND (?3 IS NULL OR organisation_id = ?3)",
        params![role, except, organisation_id],
        |r| r.get(0),
    )
}

pub fn set_role(tx: &Transaction, user_id: i64, role: Role) -> rusqlite::Result<()> {
    tx.execute("UPDATE users SET role = ?2 WHERE id = ?1", params![user_id, role])?;
    Ok(())
}

/// Disables a user from `now` (a user already disabled keeps the time they were disabled).
pub fn disable(tx: &Transaction, user_id: i64, now: OffsetDateTime) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL",
        params![user_id, clock::rfc3339(now)],
    )?;
    Ok(())
}

/// Lets a disabled user sign in again; with `lift_lockout`, also forgets their failed attempts and any lockout.
pub fn enable(tx: &Transaction, user_id: i64, lift_lockout: bool) -> rusqlite::Result<()> {
    if lift_lockout {
        tx.execute(
            "UPDATE users SET disabled_at = NULL, failed_logins = 0, locked_until = NULL WHERE id = ?1",
            [user_id],
        )?;
    } else {
        tx.execute("UPDATE users SET disabled_at = NULL WHERE id = ?1", [user_id])?;
    }
    Ok(())
}

/// Replaces the password (and lifts the obligation to change it).
pub fn set_password(tx: &Transaction, user_id: i64, password_hash: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = 0 WHERE id = ?1",
        params![user_id, password_hash],
    )?;
    Ok(())
}

/// Counts a failed sign-in; returns the failures in a row so far.
pub fn count_failure(tx: &Transaction, user_id: i64) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?1 RETURNING failed_logins",
        [user_id],
        |r| r.get(0),
    )
}

/// Locks the account until `until` and starts counting failures afresh.
pub fn lock(tx: &Transaction, user_id: i64, until: OffsetDateTime) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET locked_until = ?2, failed_logins = 0 WHERE id = ?1",
        params![user_id, clock::rfc3339(until)],
    )?;
    Ok(())
}

/// The enrolled TOTP secret (if any) and the last step a code was accepted for.
pub fn second_factor(conn: &Connection, user_id: i64) -> rusqlite::Result<(Option<Vec<u8>>, u64)> {
    conn.query_row("SELECT totp_secret, totp_last_step FROM users WHERE id = ?1", [user_id], |r| {
        Ok((r.get("totp_secret")?, r.get::<_, i64>("totp_last_step")?.max(0) as u64))
    })
}

/// A code for `step` was accepted: no code of that step or earlier will be again; failures and lockout are lifted.
pub fn accept_second_factor(tx: &Transaction, user_id: i64, step: u64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET totp_last_step = ?2, failed_logins = 0, locked_until = NULL WHERE id = ?1",
        params![user_id, step as i64],
    )?;
    Ok(())
}

/// Enrols a TOTP secret, proven by a code of `step`, unless one is enrolled already.
pub fn enrol_second_factor(
    tx: &Transaction,
    user_id: i64,
    secret: &[u8],
    step: u64,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET totp_secret = ?2, totp_enrolled_at = ?3, totp_last_step = ?4, failed_logins = 0
         WHERE id = ?1 AND totp_enrolled_at IS NULL",
        params![user_id, secret, clock::rfc3339(now), step as i64],
    )?;
    Ok(())
}

/// Removes the second factor (a lost phone) and lifts any lockout: the person enrols again at the next sign-in.
pub fn reset_second_factor(tx: &Transaction, user_id: i64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE users SET totp_secret = NULL, totp_enrolled_at = NULL, totp_last_step = 0, failed_logins = 0,
                locked_until = NULL WHERE id = ?1",
        [user_id],
    )?;
    Ok(())
}

/// Sign-in attempts from `source` in the ten minutes before `now`.
pub fn recent_attempts(conn: &Connection, source: &str, now: OffsetDateTime) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM login_attempts WHERE source = ?1 AND at > ?2",
        params![source, clock::rfc3339(now - time::Duration::minutes(10))],
        |r| r.get(0),
    )
}

/// Notes a sign-in attempt from `source` at `now`, forgetting those older than a day.
pub fn record_attempt(tx: &Transaction, source: &str, now: OffsetDateTime) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM login_attempts WHERE at < ?1", [clock::rfc3339(now - time::Duration::days(1))])?;
    tx.execute("INSERT INTO login_attempts (source, at) VALUES (?1, ?2)", params![source, clock::rfc3339(now)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn password_round_trip() {
        let password = generate_password();
        assert_eq!(password.len(), 20);
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains(&password));
        assert!(verify_password(&password, &hash));
        assert!(!verify_password("wrong password", &hash));
        assert!(!verify_password(&password, "not a hash"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_the_bound() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let passwords = Passwords::new(2);
        let (running, most) = (std::sync::Arc::new(AtomicUsize::new(0)), std::sync::Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (passwords, running, most) = (passwords.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    passwords
                        .run(move || {
                            most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_some());
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "{} ran at once", most.load(Ordering::SeqCst));
        assert_eq!(passwords.computed(), 8);
        assert!(!passwords.verify("x".into(), None).await);
    }
}
