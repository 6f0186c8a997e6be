//! A customer's verification journey: IIN (and the phone to send the code to) → biometric verification → SMS
//! one-time code → verified. The same journey leads to the consent screen of an authorization request or to the
//! customer's own `/my` pages. The browser holds a random cookie; the database keeps its SHA-256.
//!
//! A request reads the journey when its headers arrive and acts when its body has arrived, possibly much later, after
//! other requests moved the journey on. So every step is a compare-and-set inside its write transaction: it changes
//! the row only if the stage, the IIN, the phone, the code challenge and the face-check nonce are still what the
//! request saw, and the identity the code step verifies is the one that passed the face check.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::clock;
use crate::digest::{constant_time_eq, sha256_hex};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, cookie};

pub const COOKIE: &str = "__Host-kopir_customer";
/// Biometric failures (liveness or match) allowed in one journey.
pub const MAX_BIOMETRIC_FAILURES: i64 = 3;

crate::text_enum! {
    /// What a journey identifies the customer for (the word stored in `customer_sessions.purpose`).
    pub enum Purpose {
        /// Identification for an authorization request: ends at the consent screen.
        Authorize = "authorize",
        /// Identification for the customer's own pages.
        My = "my",
    }
}

crate::text_enum! {
    /// Where a journey stands (the word stored in `customer_sessions.stage`).
    pub enum Stage {
        Identify = "identify",
        Biometric = "biometric",
        Otp = "otp",
        Verified = "verified",
        Closed = "closed",
    }
}

impl Journey {
    fn from_row(row: &rusqlite::Row) -> rusqlite::Result<Journey> {
        Ok(Journey {
            id_hash: row.get("id_hash")?,
            purpose: row.get("purpose")?,
            stage: row.get("stage")?,
            iin: row.get("iin")?,
            phone: row.get("phone")?,
            otp_id: row.get("otp_id")?,
            customer_id: row.get("customer_id")?,
            biometric_failures: row.get("biometric_failures")?,
            csrf: row.get("csrf")?,
            expires_at: row.get("expires_at")?,
            biometric_nonce: row.get("biometric_nonce")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Journey {
    pub id_hash: String,
    pub purpose: Purpose,
    pub stage: Stage,
    pub iin: Option<String>,
    pub phone: Option<String>,
    pub otp_id: Option<String>,
    pub customer_id: Option<i64>,
    pub biometric_failures: i64,
    pub csrf: String,
    pub expires_at: String,
    /// The value the biometric vendor must echo for this journey's capture.
    pub biometric_nonce: Option<String>,
}

impl Journey {
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), submitted.as_bytes())
    }

    /// The OTP challenge's purpose: binds a code to this journey only.
    pub fn otp_purpose(&self) -> String {
        format!("journey:{}", &self.id_hash[..16.min(self.id_hash.len())])
    }

    /// The IIN with all but the last four digits hidden, for pages.
    pub fn masked_iin(&self) -> String {
        self.iin.as_deref().map(mask_iin).unwrap_or_default()
    }

    /// The page this journey's customer should be on now.
    pub fn current_path(&self) -> &'static str {
        match (self.stage, self.purpose) {
            (Stage::Identify, _) => "/verify",
            (Stage::Biometric, _) => "/verify/biometric",
            (Stage::Otp, _) => "/verify/code",
            (Stage::Verified, Purpose::Authorize) => "/oauth/authorize/consent",
            (Stage::Verified, Purpose::My) => "/my",
            (Stage::Closed, _) => "/verify/ended",
        }
    }
}

pub fn mask_iin(iin: &str) -> String {
    let keep = iin.len().saturating_sub(4);
    format!("{}{}", "•".repeat(keep), &iin[keep..])
}

/// Removes journeys that ended before `before`.
pub fn purge(tx: &Transaction, before: time::OffsetDateTime) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM customer_sessions WHERE expires_at < ?1", [clock::rfc3339(before)])
}

/// Starts a journey `now`. Returns the cookie value (given to the browser once) and the id hash.
pub fn start(
    tx: &Transaction,
    purpose: Purpose,
    minutes: u64,
    now: OffsetDateTime,
) -> rusqlite::Result<(String, String)> {
    purge(tx, now - time::Duration::days(1))?;
    let value = crate::random::token();
    let id_hash = sha256_hex(value.as_bytes());
    tx.execute(
        "INSERT INTO customer_sessions (id_hash, purpose, stage, csrf, created_at, expires_at)
         VALUES (?1, ?2, 'identify', ?3, ?4, ?5)",
        params![
            id_hash,
            purpose,
            crate::random::token(),
            clock::rfc3339(now),
            clock::rfc3339(now + time::Duration::minutes(minutes as i64))
        ],
    )?;
    Ok((value, id_hash))
}

pub fn cookie_header(value: &str, minutes: u64) -> HeaderValue {
    // Lax, not Strict: the journey begins with a redirect from the API user's site, and the cookie set then must
    // come back on the very next (same-site) page.
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        minutes * 60
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("__Host-kopir_customer=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

fn load_by_hash(conn: &Connection, id_hash: &str, now: OffsetDateTime) -> rusqlite::Result<Option<Journey>> {
    conn.query_row(
        "SELECT id_hash, purpose, stage, iin, phone, otp_id, customer_id, biometric_failures, csrf, expires_at,
                biometric_nonce
         FROM customer_sessions WHERE id_hash = ?1 AND expires_at > ?2",
        params![id_hash, clock::rfc3339(now)],
        Journey::from_row,
    )
    .optional()
}

/// The journey of a cookie, unless it has ended by `now`.
pub fn load(conn: &Connection, cookie_value: &str, now: OffsetDateTime) -> rusqlite::Result<Option<Journey>> {
    load_by_hash(conn, &sha256_hex(cookie_value.as_bytes()), now)
}

/// Whether the journey is still as `seen` when the request read it: same stage, identity, phone, code challenge,
/// nonce and customer — and not ended by `now`. Steps that act on what they saw check this inside their write
/// transaction.
pub fn unchanged(tx: &Transaction, seen: &Journey, now: OffsetDateTime) -> rusqlite::Result<bool> {
    Ok(load_by_hash(tx, &seen.id_hash, now)?.is_some_and(|current| {
        current.stage == seen.stage
            && current.iin == seen.iin
            && current.phone == seen.phone
            && current.otp_id == seen.otp_id
            && current.biometric_nonce == seen.biometric_nonce
            && current.customer_id == seen.customer_id
    }))
}

/// The customer said who they are: next is the face check, with a fresh nonce. False when the journey had already
/// left the first step (another request identified it first).
pub fn identified(tx: &Transaction, seen: &Journey, iin: &str, phone: &str) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE customer_sessions SET iin = ?2, phone = ?3, stage = 'biometric', biometric_nonce = ?4
         WHERE id_hash = ?1 AND stage = 'identify'",
        params![seen.id_hash, iin, phone, crate::random::token()],
    )?;
    Ok(changed == 1)
}

/// A failed face check of the identity `seen`; the failures so far, or None when the journey has moved on.
pub fn biometric_failed(tx: &Transaction, seen: &Journey) -> rusqlite::Result<Option<i64>> {
    let changed = tx.execute(
        "UPDATE customer_sessions SET biometric_failures = biometric_failures + 1
         WHERE id_hash = ?1 AND stage = 'biometric' AND iin = ?2 AND biometric_nonce = ?3",
        params![seen.id_hash, seen.iin, seen.biometric_nonce],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    tx.query_row("SELECT biometric_failures FROM customer_sessions WHERE id_hash = ?1", [&seen.id_hash], |r| r.get(0))
        .map(Some)
}

/// The identity `seen` passed the face check and its code went to the phone `seen`: next is the code. False when the
/// journey has moved on (its identity cannot have changed while it stayed at the face check).
pub fn code_sent(tx: &Transaction, seen: &Journey, otp_id: &str) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE customer_sessions SET otp_id = ?5, stage = 'otp'
         WHERE id_hash = ?1 AND stage = 'biometric' AND iin = ?2 AND phone = ?3 AND biometric_nonce = ?4",
        params![seen.id_hash, seen.iin, seen.phone, seen.biometric_nonce, otp_id],
    )?;
    Ok(changed == 1)
}

/// The phone given is not the person's (the registry says so): back to the first step, identity forgotten, so the
/// customer gives their own number and passes the face check again.
pub fn phone_refused(tx: &Transaction, seen: &Journey) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE customer_sessions SET stage = 'identify', iin = NULL, phone = NULL, biometric_nonce = NULL
         WHERE id_hash = ?1 AND stage = 'biometric' AND iin = ?2 AND phone = ?3 AND biometric_nonce = ?4",
        params![seen.id_hash, seen.iin, seen.phone, seen.biometric_nonce],
    )?;
    Ok(changed == 1)
}

/// Both factors passed for the identity `seen` (the one that passed the face check, whose code this was): the
/// customer is known (created on first visit) and the phone is forgotten. None when the journey has moved on.
pub fn verified(tx: &Transaction, seen: &Journey, now: OffsetDateTime) -> rusqlite::Result<Option<i64>> {
    let (Some(iin), Some(otp_id)) = (&seen.iin, &seen.otp_id) else { return Ok(None) };
    if seen.stage != Stage::Otp || !unchanged(tx, seen, now)? {
        return Ok(None);
    }
    let now = clock::rfc3339(now);
    tx.execute(
        "INSERT INTO customers (iin, created_at, last_seen_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (iin) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        params![iin, now],
    )?;
    let customer_id: i64 = tx.query_row("SELECT id FROM customers WHERE iin = ?1", [iin], |r| r.get(0))?;
    let changed = tx.execute(
        "UPDATE customer_sessions SET stage = 'verified', customer_id = ?4, phone = NULL, otp_id = NULL
         WHERE id_hash = ?1 AND stage = 'otp' AND iin = ?2 AND otp_id = ?3",
        params![seen.id_hash, iin, otp_id, customer_id],
    )?;
    Ok((changed == 1).then_some(customer_id))
}

/// A verified journey that has answered its consent screen goes on as the customer's `/my` journey for `minutes`
/// more (with a fresh CSRF token), so that `/my` does not ask the customer who just decided to identify again.
/// False when the journey is no longer verified.
pub fn remember_for_my(tx: &Transaction, id_hash: &str, minutes: u64, now: OffsetDateTime) -> rusqlite::Result<bool> {
    let changed = tx.execute(
        "UPDATE customer_sessions SET purpose = 'my', csrf = ?2, expires_at = ?3
         WHERE id_hash = ?1 AND stage = 'verified' AND purpose = 'authorize'",
        params![id_hash, crate::random::token(), clock::rfc3339(now + time::Duration::minutes(minutes.min(60) as i64))],
    )?;
    Ok(changed == 1)
}

/// Ends the journey (failed, cancelled or done): nothing more happens with this cookie.
pub fn close(tx: &Transaction, id_hash: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE customer_sessions SET stage = 'closed', phone = NULL, otp_id = NULL WHERE id_hash = ?1",
        [id_hash],
    )?;
    Ok(())
}

/// A Kazakh mobile number in any usual writing (`+7 701 234 56 78`, `87012345678`) as `+77012345678`.
pub fn normalise_phone(input: &str) -> Option<String> {
    if !input.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) {
        return None;
    }
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        11 if digits.starts_with('7') || digits.starts_with('8') => &digits[1..],
        10 => &digits[..],
        _ => return None,
    };
    national.starts_with('7').then(|| format!("+7{national}"))
}

/// The visitor of a journey page: the journey (if the cookie names a live one), the language and the host.
pub struct Customer {
    pub journey: Option<Journey>,
    pub lang: crate::i18n::Lang,
    pub host: String,
    pub source: String,
    /// Whether the request came from a page of this platform.
    pub same_origin: bool,
}

impl Customer {
    /// The journey, if the form's CSRF token and origin are right.
    pub fn check_form(&self, token: &str) -> Result<&Journey, PageError> {
        let journey = self
            .journey
            .as_ref()
            .ok_or_else(|| PageError::new(axum::http::StatusCode::FORBIDDEN, "verify.no_journey"))?;
        if !journey.csrf_ok(token) || !self.same_origin {
            tracing::warn!(source = %self.source, "customer form refused");
            return Err(PageError::new(axum::http::StatusCode::FORBIDDEN, "error.csrf"));
        }
        Ok(journey)
    }
}

impl FromRequestParts<AppState> for Customer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = crate::i18n::current();
        let host = crate::web::session::request_host(parts);
        let same_origin = crate::web::session::same_origin(&parts.headers, &host);
        let source = crate::web::session::source_of(&parts.extensions);
        let journey = match cookie(&parts.headers, COOKIE) {
            Some(value) => {
                let now = state.clock.now();
                state.db.read(move |c| load(c, &value, now).map_err(StoreError::from)).await?
            }
            None => None,
        };
        Ok(Customer { journey, lang, host, source, same_origin })
    }
}

/// A journey page's form, taken only when its CSRF token and the request's origin are the journey's — checked
/// before the form is read, as [`crate::web::session::CsrfForm`] does for signed-in pages. The form type needs no
/// `csrf` field.
pub struct JourneyForm<T> {
    pub customer: Customer,
    pub journey: Journey,
    pub form: T,
}

/// A form with nothing but its CSRF token.
#[derive(serde::Deserialize)]
pub struct NoFields {}

impl<T: serde::de::DeserializeOwned + Send> FromRequest<AppState> for JourneyForm<T> {
    type Rejection = axum::response::Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Self::take(request, state).await.map_err(|refused| match refused {
            // The framework's own refusal: the platform's error layer answers it (and, over HTTP/1.1, ends the
            // connection, the rest of the body being unwanted).
            FormRefusal::TooLarge(rejection) => rejection.into_response(),
            FormRefusal::Page(e) => e.into_response(),
        })
    }
}

/// Why a journey form was not taken.
enum FormRefusal {
    TooLarge(axum::extract::rejection::BytesRejection),
    Page(PageError),
}

impl From<PageError> for FormRefusal {
    fn from(e: PageError) -> Self {
        FormRefusal::Page(e)
    }
}

impl<T: serde::de::DeserializeOwned + Send> JourneyForm<T> {
    async fn take(request: Request, state: &AppState) -> Result<Self, FormRefusal> {
        let (mut parts, body) = request.into_parts();
        let customer = Customer::from_request_parts(&mut parts, state).await?;
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "error.bad_form").into());
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                FormRefusal::TooLarge(rejection)
            } else {
                FormRefusal::Page(PageError::new(StatusCode::BAD_REQUEST, "error.bad_form"))
            }
        })?;
        let token = form_urlencoded::parse(&bytes).find(|(name, _)| name == "csrf").map(|(_, v)| v.into_owned());
        let journey = customer.check_form(token.as_deref().unwrap_or_default())?.clone();
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, "error.bad_form"))?;
        Ok(JourneyForm { customer, journey, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised_to_plus_seven() {
        assert_eq!(normalise_phone("+7 701 234 56 78").as_deref(), Some("+77012345678"));
        assert_eq!(normalise_phone("87012345678").as_deref(), Some("+77012345678"));
        assert_eq!(normalise_phone("7012345678").as_deref(), Some("+77012345678"));
        assert_eq!(normalise_phone("+7 727 250 00 00"), Some("+77272500000".into()));
        assert_eq!(normalise_phone("+44 20 7946 0000"), None);
        assert_eq!(normalise_phone("phone"), None);
    }

    #[test]
    fn iins_are_masked_but_the_last_four() {
        assert_eq!(mask_iin("900101300012"), "••••••••0012");
    }
}
