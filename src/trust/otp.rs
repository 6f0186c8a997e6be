//! One-time codes: 6 random digits, stored only as a salted SHA-256, valid 5 minutes, 5 attempts in all (a resend
//! does not reset them), a resend at most every 60 seconds and 3 sends per challenge.

use rusqlite::{OptionalExtension, Transaction, params};
use time::{Duration, OffsetDateTime};

use crate::clock;
use crate::digest::{constant_time_eq, sha256_hex};

pub const TTL: Duration = Duration::minutes(5);
pub const MAX_ATTEMPTS: i64 = 5;
pub const RESEND_AFTER: Duration = Duration::seconds(60);
pub const MAX_SENDS: i64 = 3;

fn random_code() -> String {
    // Rejection sampling keeps the six digits uniform.
    loop {
        let n: u32 = rand::random();
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

fn hash(salt: &str, code: &str) -> String {
    sha256_hex(format!("{salt}:{code}").as_bytes())
}

fn phone_hash(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    sha256_hex(digits.as_bytes())
}

/// A new challenge for `purpose`: returns its id and the code to send (the code is not stored).
pub fn issue(tx: &Transaction, purpose: &str, phone: &str, now: OffsetDateTime) -> rusqlite::Result<(String, String)> {
    tx.execute("DELETE FROM otp_challenges WHERE expires_at < ?1", [clock::rfc3339(now - Duration::days(1))])?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let salt = hex::encode(rand::random::<[u8; 16]>());
    let code = random_code();
    tx.execute(
        "INSERT INTO otp_challenges (id, purpose, phone_hash, salt, code_hash, created_at, expires_at, last_sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6)",
        params![
            id,
            purpose,
            phone_hash(phone),
            salt,
            hash(&salt, &code),
            clock::rfc3339(now),
            clock::rfc3339(now + TTL)
        ],
    )?;
    Ok((id, code))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Verified {
        purpose: String,
    },
    Wrong {
        attempts_left: i64,
    },
    /// Five wrong codes: the challenge is dead.
    Exhausted,
    Expired,
    /// Unknown id, or already used.
    Unknown,
}

/// Checks a code; a right one consumes the challenge.
pub fn check(tx: &Transaction, id: &str, code: &str, now: OffsetDateTime) -> rusqlite::Result<Check> {
    let row: Option<(String, String, String, String, i64, String)> = tx
        .query_row(
            "SELECT purpose, salt, code_hash, expires_at, attempts, status FROM otp_challenges WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((purpose, salt, code_hash, expires_at, attempts, status)) = row else { return Ok(Check::Unknown) };
    match status.as_str() {
        "pending" => {}
        "failed" => return Ok(Check::Exhausted),
        _ => return Ok(Check::Unknown),
    }
    if expires_at.as_str() <= clock::rfc3339(now).as_str() {
        return Ok(Check::Expired);
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if constant_time_eq(hash(&salt, &code).as_bytes(), code_hash.as_bytes()) {
        tx.execute("UPDATE otp_challenges SET status = 'verified' WHERE id = ?1", [id])?;
        return Ok(Check::Verified { purpose });
    }
    let attempts = attempts + 1;
    let status = if attempts >= MAX_ATTEMPTS { "failed" } else { "pending" };
    tx.execute("UPDATE otp_challenges SET attempts = ?2, status = ?3 WHERE id = ?1", params![id, attempts, status])?;
    Ok(if attempts >= MAX_ATTEMPTS {
        Check::Exhausted
    } else {
        Check::Wrong { attempts_left: MAX_ATTEMPTS - attempts }
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    /// A new code to send; the previous one no longer works.
    Code(String),
    /// Too soon: try again in this many seconds.
    Wait(i64),
    TooMany,
    Unknown,
}

/// A new code for an open challenge, to the same phone number, at most every 60 s and 3 times in all. The attempts
/// already used stay used, and the expiry moves with the new code.
pub fn resend(tx: &Transaction, id: &str, phone: &str, now: OffsetDateTime) -> rusqlite::Result<Resend> {
    if let Some(refused) = resend_refusal(tx, id, phone, now)? {
        return Ok(refused);
    }
    let salt = hex::encode(rand::random::<[u8; 16]>());
    let code = random_code();
    tx.execute(
        "UPDATE otp_challenges SET salt = ?2, code_hash = ?3, sends = sends + 1, last_sent_at = ?4, expires_at = ?5
         WHERE id = ?1",
        params![id, salt, hash(&salt, &code), clock::rfc3339(now), clock::rfc3339(now + TTL)],
    )?;
    Ok(Resend::Code(code))
}

/// Why a resend may not happen now (None: it may).
pub fn resend_refusal(
    tx: &Transaction,
    id: &str,
    phone: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<Resend>> {
    let row: Option<(String, String, i64, String)> = tx
        .query_row("SELECT phone_hash, last_sent_at, sends, status FROM otp_challenges WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((stored_phone, last_sent_at, sends, status)) = row else { return Ok(Some(Resend::Unknown)) };
    if status != "pending" || !constant_time_eq(stored_phone.as_bytes(), phone_hash(phone).as_bytes()) {
        return Ok(Some(Resend::Unknown));
    }
    if sends >= MAX_SENDS {
        return Ok(Some(Resend::TooMany));
    }
    if let Ok(last) = clock::parse(&last_sent_at) {
        let next = last + RESEND_AFTER;
        if now < next {
            return Ok(Some(Resend::Wait((next - now).whole_seconds().max(1))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::migrate::{SCHEMA, migrate};
    use rusqlite::Connection;

    /// A fixed time: these tests hand it to what they check.
    const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-25 12:00 UTC);

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        conn
    }

    #[test]
    fn right_code_verifies_once_and_is_never_stored() {
        let mut conn = db();
        let tx = conn.transaction().unwrap();
        let (id, code) = issue(&tx, "consent:1", "+7 701 000 00 00", NOW).unwrap();
        assert_eq!(code.len(), 6);
        let stored: String =
            tx.query_row("SELECT code_hash || salt || phone_hash FROM otp_challenges", [], |r| r.get(0)).unwrap();
        assert!(!stored.contains(&code) && !stored.contains("7010000000"));
        assert_eq!(check(&tx, &id, &code, NOW).unwrap(), Check::Verified { purpose: "consent:1".into() });
        assert_eq!(check(&tx, &id, &code, NOW).unwrap(), Check::Unknown, "a used code worked again");
    }

    #[test]
    fn five_wrong_codes_kill_the_challenge_even_for_the_right_code() {
        let mut conn = db();
        let tx = conn.transaction().unwrap();
        let (id, code) = issue(&tx, "p", "+77010000000", NOW).unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for left in (1..5).rev() {
            assert_eq!(check(&tx, &id, wrong, NOW).unwrap(), Check::Wrong { attempts_left: left });
        }
        assert_eq!(check(&tx, &id, wrong, NOW).unwrap(), Check::Exhausted);
        assert_eq!(check(&tx, &id, &code, NOW).unwrap(), Check::Exhausted);
    }

    #[test]
    fn expired_codes_are_refused() {
        let mut conn = db();
        let tx = conn.transaction().unwrap();
        let (id, code) = issue(&tx, "p", "+77010000000", NOW).unwrap();
        tx.execute("UPDATE otp_challenges SET expires_at = '2000-01-01T00:00:00Z'", []).unwrap();
        assert_eq!(check(&tx, &id, &code, NOW).unwrap(), Check::Expired);
    }

    #[test]
    fn resends_are_throttled_limited_and_replace_the_code() {
        let mut conn = db();
        let tx = conn.transaction().unwrap();
        let (id, first) = issue(&tx, "p", "+77010000000", NOW).unwrap();
        assert!(matches!(resend(&tx, &id, "+77010000000", NOW).unwrap(), Resend::Wait(s) if s > 0 && s <= 60));
        assert_eq!(resend(&tx, &id, "+77019999999", NOW).unwrap(), Resend::Unknown, "another number");
        let back = |tx: &Transaction| {
            tx.execute("UPDATE otp_challenges SET last_sent_at = '2000-01-01T00:00:00Z'", []).unwrap()
        };
        back(&tx);
        let Resend::Code(second) = resend(&tx, &id, "+7 701 000 0000", NOW).unwrap() else { panic!("no resend") };
        back(&tx);
        assert!(matches!(resend(&tx, &id, "+77010000000", NOW).unwrap(), Resend::Code(_)));
        back(&tx);
        assert_eq!(resend(&tx, &id, "+77010000000", NOW).unwrap(), Resend::TooMany);
        if first != second {
            assert!(
                matches!(check(&tx, &id, &first, NOW).unwrap(), Check::Wrong { .. }),
                "the replaced code still worked"
            );
        }
    }

    #[test]
    fn codes_are_six_uniformish_digits() {
        let codes: Vec<String> = (0..2000).map(|_| random_code()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.chars().all(|d| d.is_ascii_digit())));
        let distinct: std::collections::HashSet<&String> = codes.iter().collect();
        assert!(distinct.len() > 1990);
    }
}
