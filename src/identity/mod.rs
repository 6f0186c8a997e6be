//! People who sign in: operator staff, regulators and (later) participants' employees. Passwords are argon2id;
//! a password is only ever held in memory long enough to hash or check it. Sign-in is password, then a TOTP code
//! (enrolment is forced before anything else), with lockout after repeated failures and no code accepted twice.

pub mod admin;
pub mod routes;
pub mod totp;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    OperatorAdmin,
    OperatorStaff,
    Regulator,
    ParticipantAdmin,
    ParticipantDeveloper,
    ParticipantAnalyst,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::OperatorAdmin,
            Role::OperatorStaff,
            Role::Regulator,
            Role::ParticipantAdmin,
            Role::ParticipantDeveloper,
            Role::ParticipantAnalyst,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

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

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OperatorAdmin => "operator_admin",
            Role::OperatorStaff => "operator_staff",
            Role::Regulator => "regulator",
            Role::ParticipantAdmin => "participant_admin",
            Role::ParticipantDeveloper => "participant_developer",
            Role::ParticipantAnalyst => "participant_analyst",
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
                            totp_enrolled_at IS NOT NULL, disabled_at IS NOT NULL, locked_until, created_at";

fn user_from_row(r: &rusqlite::Row) -> rusqlite::Result<User> {
    let role: String = r.get(4)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        full_name: r.get(2)?,
        email: r.get(3)?,
        role: Role::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, format!("role {role}").into())
        })?,
        organisation_id: r.get(5)?,
        must_change_password: r.get(6)?,
        totp_enrolled: r.get(7)?,
        disabled: r.get(8)?,
        locked_until: r.get(9)?,
        created_at: r.get(10)?,
    })
}

pub fn user_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    conn.query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [id], user_from_row).optional()
}

pub fn user_by_username(conn: &Connection, username: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"), [username], user_from_row)
        .optional()
}

pub fn users_of_organisation(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Vec<User>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users WHERE organisation_id = ?1 ORDER BY username"))?;
    let rows = stmt.query_map([organisation_id], user_from_row)?;
    rows.collect()
}

pub fn operator_users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users WHERE organisation_id IS NULL ORDER BY username"))?;
    let rows = stmt.query_map([], user_from_row)?;
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
        .query_row("SELECT id FROM users WHERE role = 'operator_admin' AND disabled_at IS NULL LIMIT 1", [], |r| {
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
) -> rusqlite::Result<i64> {
    create_member(tx, username, "", "", role, None, password_hash, must_change_password)
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
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO users (username, full_name, email, role, organisation_id, password_hash, must_change_password,
                            created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            username,
            full_name,
            email,
            role.as_str(),
            organisation_id,
            password_hash,
            must_change_password,
            clock::now_rfc3339()
        ],
    )?;
    Ok(tx.last_insert_rowid())
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
