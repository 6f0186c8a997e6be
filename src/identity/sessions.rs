//! Sign-in sessions (the `sessions` table): one row per browser session, keyed by the SHA-256 of the cookie value
//! (the value itself is never stored), with its stage of signing in, its CSRF token and, during TOTP enrolment, the
//! secret being enrolled. Sessions expire after [`IDLE`] without a request or [`ABSOLUTE`] after they started.
//!
//! ```ignore
//! let (session, cookie_value) = sessions::start(tx, None, Some(user.id), Stage::Password, &source, now)?;
//! let again = sessions::get(conn, &cookie_value, now)?; // Some(session) until it expires
//! ```

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use time::{Duration, OffsetDateTime};

use crate::clock;
use crate::digest::{constant_time_eq, sha256_hex};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::minutes(30);
/// A session ends this long after it started, however busy.
pub const ABSOLUTE: Duration = Duration::hours(12);

crate::text_enum! {
    /// How far a visitor has signed in (stored in `sessions.stage`).
    pub enum Stage {
        Anonymous = "anonymous",
        /// The password was right; the second factor (or its enrolment, or a forced password change) is pending.
        Password = "password",
        Active = "active",
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub stage: Stage,
    pub user_id: Option<i64>,
    pub csrf_token: String,
    pub pending_totp: Option<Vec<u8>>,
}

impl Session {
    /// A visitor without a session row, whose forms carry `csrf_token`.
    pub fn anonymous(csrf_token: String) -> Session {
        Session { id_hash: String::new(), stage: Stage::Anonymous, user_id: None, csrf_token, pending_totp: None }
    }

    /// Checks a submitted CSRF token in constant time.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        constant_time_eq(self.csrf_token.as_bytes(), submitted.as_bytes())
    }

    fn from_row(r: &Row) -> rusqlite::Result<Session> {
        Ok(Session {
            id_hash: r.get("id_hash")?,
            stage: r.get("stage")?,
            user_id: r.get("user_id")?,
            csrf_token: r.get("csrf_token")?,
            pending_totp: r.get("pending_totp")?,
        })
    }
}

pub use crate::random::token as random_token;

/// The live session whose cookie value is `cookie_value`, if it has not expired by `now`.
pub fn get(conn: &Connection, cookie_value: &str, now: OffsetDateTime) -> rusqlite::Result<Option<Session>> {
    conn.query_row(
        "SELECT id_hash, stage, user_id, csrf_token, pending_totp FROM sessions WHERE id_hash = ?1 AND expires_at > ?2
           AND last_seen_at > ?3",
        params![sha256_hex(cookie_value.as_bytes()), clock::rfc3339(now), clock::rfc3339(now - IDLE)],
        Session::from_row,
    )
    .optional()
}

/// Starts a session (anonymous, or for a user at `stage`), replacing `previous` if given. Returns the session and
/// the cookie value to send.
pub fn start(
    tx: &Transaction,
    previous: Option<&str>,
    user_id: Option<i64>,
    stage: Stage,
    source: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<(Session, String)> {
    if let Some(old) = previous {
        tx.execute("DELETE FROM sessions WHERE id_hash = ?1", [old])?;
    }
    // Expired sessions are swept whenever a new one starts: no separate job needed.
    tx.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
        params![clock::rfc3339(now), clock::rfc3339(now - IDLE)],
    )?;
    let value = random_token();
    let session = Session {
        id_hash: sha256_hex(value.as_bytes()),
        stage,
        user_id,
        csrf_token: random_token(),
        pending_totp: None,
    };
    tx.execute(
        "INSERT INTO sessions (id_hash, user_id, stage, csrf_token, created_at, last_seen_at, expires_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
        params![
            session.id_hash,
            user_id,
            stage,
            session.csrf_token,
            clock::rfc3339(now),
            clock::rfc3339(now + ABSOLUTE),
            source
        ],
    )?;
    Ok((session, value))
}

/// Slides the idle time-out to `now`, at most once a minute per session (to keep writes off most requests).
pub fn touch(tx: &Transaction, id_hash: &str, now: OffsetDateTime) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?3",
        params![id_hash, clock::rfc3339(now), clock::rfc3339(now - Duration::minutes(1))],
    )?;
    Ok(())
}

/// Keeps (or forgets, with `None`) the TOTP secret being enrolled with the session.
pub fn set_pending_totp(tx: &Transaction, id_hash: &str, secret: Option<&[u8]>) -> rusqlite::Result<()> {
    tx.execute("UPDATE sessions SET pending_totp = ?2 WHERE id_hash = ?1", params![id_hash, secret])?;
    Ok(())
}

pub fn end(tx: &Transaction, id_hash: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

/// Ends every session of a user (disabled, password changed elsewhere).
pub fn end_all_for_user(tx: &Transaction, user_id: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Ends every session of an organisation's people (suspended or revoked); returns how many ended.
pub fn end_all_for_organisation(tx: &Transaction, organisation_id: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE organisation_id = ?1)",
        [organisation_id],
    )
}
