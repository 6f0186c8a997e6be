//! People who sign in: operator staff, regulators and (later) participants' employees. Passwords are argon2id;
//! a password is only ever held in memory long enough to hash or check it.

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
    tx.execute(
        "INSERT INTO users (username, role, password_hash, must_change_password, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![username, role.as_str(), password_hash, must_change_password, clock::now_rfc3339()],
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
}
