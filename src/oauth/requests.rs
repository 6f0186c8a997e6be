//! Owns `authorization_requests`: one row per pushed authorization request, from the push to the redemption of its
//! code. The row's status only moves forward, and every move is compare-and-set in SQL — a transition names the
//! status it expects and says whether it moved — so two racing answers (two tabs, two redemptions) cannot both win:
//!
//! ```text
//! pushed ──start──▶ started ──approve──▶ approved ──redeem──▶ redeemed
//!                      ├──deny──▶ denied
//!                      └──fail──▶ failed
//! ```
//!
//! The single use of an authorization code rests on `approved → redeemed`: of two redemptions, only one moves it.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use time::OffsetDateTime;

use crate::clock;

crate::text_enum! {
    /// Where an authorization request stands (the words stored in `authorization_requests.status`).
    pub enum RequestStatus {
        /// Pushed by the client; its `request_uri` not yet used.
        Pushed = "pushed",
        /// A browser took the `request_uri`; the customer's journey is under way.
        Started = "started",
        /// The customer allowed; a code was issued.
        Approved = "approved",
        /// The customer refused or cancelled.
        Denied = "denied",
        /// The customer could not be identified.
        Failed = "failed",
        /// The code was exchanged for tokens.
        Redeemed = "redeemed",
    }
}

/// One authorization request as stored.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub id: String,
    pub application_id: i64,
    pub consent_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub request_expires_at: String,
    pub status: RequestStatus,
    /// Set when approved.
    pub code_expires_at: Option<String>,
}

impl AuthorizationRequest {
    fn from_row(row: &Row) -> rusqlite::Result<AuthorizationRequest> {
        Ok(AuthorizationRequest {
            id: row.get("id")?,
            application_id: row.get("application_id")?,
            consent_id: row.get("consent_id")?,
            redirect_uri: row.get("redirect_uri")?,
            state: row.get("state")?,
            code_challenge: row.get("code_challenge")?,
            request_expires_at: row.get("request_expires_at")?,
            status: row.get("status")?,
            code_expires_at: row.get("code_expires_at")?,
        })
    }
}

const COLUMNS: &str = "r.id, r.application_id, r.consent_id, r.redirect_uri, r.state, r.code_challenge, \
                       r.request_expires_at, r.status, r.code_expires_at";

/// What a client pushes (RFC 9126), checked.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub request_uri_hash: String,
    pub application_id: i64,
    pub consent_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub cert_sha256: String,
}

/// Stores a pushed request (status `pushed`), usable until `expires_at`.
pub fn push(
    tx: &Transaction,
    new: &NewRequest,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO authorization_requests (id, request_uri_hash, application_id, consent_id, redirect_uri,
             scope, state, code_challenge, created_at, request_expires_at, cert_sha256, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            crate::digest::b64url(&rand::random::<[u8; 16]>()),
            new.request_uri_hash,
            new.application_id,
            new.consent_id,
            new.redirect_uri,
            new.scope,
            new.state,
            new.code_challenge,
            clock::rfc3339(now),
            clock::rfc3339(expires_at),
            new.cert_sha256,
            RequestStatus::Pushed,
        ],
    )?;
    Ok(())
}

/// The request a `request_uri` (its SHA-256) stands for, with the `client_id` of the application that pushed it.
pub fn get_by_request_uri(
    conn: &Connection,
    request_uri_hash: &str,
) -> rusqlite::Result<Option<(AuthorizationRequest, crate::apps::ClientId)>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS}, a.client_id FROM authorization_requests r
             JOIN applications a ON a.id = r.application_id WHERE r.request_uri_hash = ?1"
        ),
        [request_uri_hash],
        |row| Ok((AuthorizationRequest::from_row(row)?, row.get("client_id")?)),
    )
    .optional()
}

/// The request a customer journey (its id's SHA-256) works on.
pub fn get_by_session(conn: &Connection, session_hash: &str) -> rusqlite::Result<Option<AuthorizationRequest>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM authorization_requests r WHERE r.session_hash = ?1"),
        [session_hash],
        AuthorizationRequest::from_row,
    )
    .optional()
}

/// The request an authorization code (its SHA-256) was issued for.
pub fn get_by_code(conn: &Connection, code_hash: &str) -> rusqlite::Result<Option<AuthorizationRequest>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM authorization_requests r WHERE r.code_hash = ?1"),
        [code_hash],
        AuthorizationRequest::from_row,
    )
    .optional()
}

/// Where a request stands now (`None`: no such request).
pub fn status(conn: &Connection, id: &str) -> rusqlite::Result<Option<RequestStatus>> {
    conn.query_row("SELECT status FROM authorization_requests WHERE id = ?1", [id], |row| row.get("status")).optional()
}

/// Moves `id` from `from` to `to` (and sets what `more` adds): true when it moved, false when it was elsewhere.
fn transition(
    tx: &Transaction,
    id: &str,
    from: RequestStatus,
    to: RequestStatus,
    more: &str,
    extra: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<bool> {
    let sql = format!("UPDATE authorization_requests SET status = ?1{more} WHERE id = ?2 AND status = ?3");
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&to, &id, &from];
    values.extend_from_slice(extra);
    Ok(tx.execute(&sql, values.as_slice())? == 1)
}

/// `pushed → started`: a browser took the `request_uri`; the journey `session_hash` now works on it.
pub fn start(tx: &Transaction, id: &str, session_hash: &str) -> rusqlite::Result<bool> {
    transition(tx, id, RequestStatus::Pushed, RequestStatus::Started, ", session_hash = ?4", &[&session_hash])
}

/// `started → approved`: the customer allowed; the code (its SHA-256) is good until `code_expires_at`.
pub fn approve(tx: &Transaction, id: &str, code_hash: &str, code_expires_at: OffsetDateTime) -> rusqlite::Result<bool> {
    let expires = clock::rfc3339(code_expires_at);
    transition(
        tx,
        id,
        RequestStatus::Started,
        RequestStatus::Approved,
        ", code_hash = ?4, code_expires_at = ?5",
        &[&code_hash, &expires],
    )
}

/// `started → denied`: the customer refused or cancelled.
pub fn deny(tx: &Transaction, id: &str) -> rusqlite::Result<bool> {
    transition(tx, id, RequestStatus::Started, RequestStatus::Denied, "", &[])
}

/// `started → failed`: the customer could not be identified.
pub fn fail(tx: &Transaction, id: &str) -> rusqlite::Result<bool> {
    transition(tx, id, RequestStatus::Started, RequestStatus::Failed, "", &[])
}

/// `approved → redeemed`: the code is exchanged. Of two racing redemptions, only one gets true.
pub fn redeem(tx: &Transaction, id: &str) -> rusqlite::Result<bool> {
    transition(tx, id, RequestStatus::Approved, RequestStatus::Redeemed, "", &[])
}

/// Removes requests whose `request_uri` expired before `before` (their codes died long before).
pub fn purge(tx: &Transaction, before: OffsetDateTime) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM authorization_requests WHERE request_expires_at < ?1", [clock::rfc3339(before)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::migrate::{SCHEMA, migrate};

    fn request(tx: &Transaction) -> AuthorizationRequest {
        tx.execute_batch(
            "INSERT INTO authorization_requests (id, request_uri_hash, application_id, consent_id, redirect_uri,
                 scope, code_challenge, created_at, request_expires_at, cert_sha256)
             VALUES ('r1', 'uri-hash', 1, 'c1', 'https://app.example/cb', 'accounts', 'challenge',
                 '2026-01-01T00:00:00Z', '2026-01-01T00:01:30Z', 'cert')",
        )
        .unwrap();
        // No application row (foreign keys off), so it is read without the join to applications.
        tx.query_row(&format!("SELECT {COLUMNS} FROM authorization_requests r WHERE r.id = 'r1'"), [], |row| {
            AuthorizationRequest::from_row(row)
        })
        .unwrap()
    }

    #[test]
    fn a_code_is_redeemed_once_and_transitions_expect_their_status() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        let tx = conn.transaction().unwrap();
        let r = request(&tx);
        assert_eq!(r.status, RequestStatus::Pushed);

        assert!(!approve(&tx, &r.id, "code-hash", OffsetDateTime::UNIX_EPOCH).unwrap(), "not started yet");
        assert!(!redeem(&tx, &r.id).unwrap(), "no code yet");
        assert!(start(&tx, &r.id, "session-hash").unwrap());
        assert!(!start(&tx, &r.id, "another-session").unwrap(), "a request_uri is used once");
        assert_eq!(get_by_session(&tx, "session-hash").unwrap().map(|r| r.status), Some(RequestStatus::Started));
        assert!(approve(&tx, &r.id, "code-hash", OffsetDateTime::UNIX_EPOCH).unwrap());
        assert!(!deny(&tx, &r.id).unwrap(), "answered already");

        assert!(redeem(&tx, &r.id).unwrap(), "the first redemption moves it");
        assert!(!redeem(&tx, &r.id).unwrap(), "the second redemption does not");
        assert_eq!(status(&tx, &r.id).unwrap(), Some(RequestStatus::Redeemed));
        assert_eq!(get_by_code(&tx, "code-hash").unwrap().map(|r| r.status), Some(RequestStatus::Redeemed));
    }

    #[test]
    fn the_stored_words_stay() {
        let words: Vec<&str> = RequestStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ["pushed", "started", "approved", "denied", "failed", "redeemed"]);
    }
}
