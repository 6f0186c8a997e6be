//! Limits on face checks and SMS codes that hold across journeys: per IIN, per phone and per source address, in any
//! hour and any day. A journey counts its own failures too, but a new journey starts those afresh; these do not.
//! Each subject is kept as a SHA-256 of its kind and value, rows older than a day are pruned as new ones come, and
//! a snapshot holds none of them.

use rusqlite::{Transaction, params};
use time::{Duration, OffsetDateTime};

use crate::clock;
use crate::config::TrustConfig;
use crate::digest::sha256_hex;

crate::text_enum! {
    /// What an attempt is (the word stored in `trust_attempts.kind`).
    pub enum Kind {
        /// A call of the biometric adapter.
        Face = "face",
        /// A one-time code sent (or shown, in a sandbox journey).
        Sms = "sms",
    }
}

/// What [`take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Counted against every subject.
    Counted,
    /// A limit is reached: nothing counted; room again at this moment.
    Limited(OffsetDateTime),
}

/// Who an attempt is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Iin(&'a str),
    Phone(&'a str),
    Source(&'a str),
}

impl Subject<'_> {
    fn key(&self) -> String {
        let text = match self {
            Subject::Iin(v) => format!("iin:{v}"),
            Subject::Phone(v) => format!("phone:{v}"),
            Subject::Source(v) => format!("source:{v}"),
        };
        sha256_hex(text.as_bytes())
    }

    /// The most attempts of `kind` in an hour and in a day.
    fn limits(&self, kind: Kind, config: &TrustConfig) -> (u32, u32) {
        match (self, kind) {
            (Subject::Source(_), _) => (config.per_source_per_hour, config.per_source_per_day),
            (_, Kind::Face) => (config.face_checks_per_hour, config.face_checks_per_day),
            (_, Kind::Sms) => (config.sms_per_hour, config.sms_per_day),
        }
    }
}

/// Counts one attempt of `kind` against every subject, unless one of them has reached a limit: then nothing is
/// counted and the answer is the moment the earliest full window has room again.
pub fn take(
    tx: &Transaction,
    config: &TrustConfig,
    kind: Kind,
    subjects: &[Subject<'_>],
    now: OffsetDateTime,
) -> rusqlite::Result<Taken> {
    tx.execute("DELETE FROM trust_attempts WHERE at < ?1", [clock::rfc3339(now - Duration::days(1))])?;
    let mut retry_at: Option<OffsetDateTime> = None;
    for subject in subjects {
        let (per_hour, per_day) = subject.limits(kind, config);
        for (window, limit) in [(Duration::hours(1), per_hour), (Duration::days(1), per_day)] {
            if let Some(at) = full_until(tx, kind, &subject.key(), now, window, limit)? {
                retry_at = Some(retry_at.map_or(at, |r| r.max(at)));
            }
        }
    }
    if let Some(at) = retry_at {
        return Ok(Taken::Limited(at));
    }
    let at = clock::rfc3339(now);
    for subject in subjects {
        tx.execute(
            "INSERT INTO trust_attempts (kind, subject, at) VALUES (?1, ?2, ?3)",
            params![kind, subject.key(), at],
        )?;
    }
    Ok(Taken::Counted)
}

/// When the window has `limit` attempts already: the moment the oldest of the last `limit` leaves it.
fn full_until(
    tx: &Transaction,
    kind: Kind,
    subject: &str,
    now: OffsetDateTime,
    window: Duration,
    limit: u32,
) -> rusqlite::Result<Option<OffsetDateTime>> {
    let since = clock::rfc3339(now - window);
    let count: i64 = tx.query_row(
        "SELECT count(*) FROM trust_attempts WHERE kind = ?1 AND subject = ?2 AND at > ?3",
        params![kind, subject, since],
        |r| r.get(0),
    )?;
    if count < i64::from(limit) {
        return Ok(None);
    }
    // The attempt whose leaving makes room: the (count - limit + 1)-th oldest in the window.
    let leaving: String = tx.query_row(
        "SELECT at FROM trust_attempts WHERE kind = ?1 AND subject = ?2 AND at > ?3 ORDER BY at LIMIT 1 OFFSET ?4",
        params![kind, subject, since, count - i64::from(limit)],
        |r| r.get(0),
    )?;
    Ok(Some(clock::parse(&leaving).map(|t| t + window).unwrap_or(now + window)))
}

/// Marks a vendor's capture reference as checked. False when it was checked before, in this journey or another:
/// one capture is evidence for one check only.
pub fn first_use_of_capture(tx: &Transaction, capture: &str, now: OffsetDateTime) -> rusqlite::Result<bool> {
    // A vendor's capture reference is short-lived on its side; a week covers any replay window.
    tx.execute("DELETE FROM biometric_captures WHERE used_at < ?1", [clock::rfc3339(now - Duration::days(7))])?;
    let inserted = tx.execute(
        "INSERT INTO biometric_captures (capture_hash, used_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![sha256_hex(capture.as_bytes()), clock::rfc3339(now)],
    )?;
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::{Db, StoreError};
    /// A fixed time: these tests hand it to what they check.
    const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-25 12:00 UTC);

    #[tokio::test]
    async fn limits_hold_per_subject_and_count_nothing_when_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("t.db"), Default::default(), true).unwrap();
        let mut config = crate::config::Config::defaults().unwrap().trust;
        config.face_checks_per_hour = 2;
        config.per_source_per_hour = 3;
        let now = NOW;
        let take_for = |iin: &'static str, source: &'static str| {
            let config = config.clone();
            db.write(move |tx| {
                take(tx, &config, Kind::Face, &[Subject::Iin(iin), Subject::Source(source)], now)
                    .map_err(StoreError::from)
            })
        };
        assert_eq!(take_for("1", "a").await.unwrap(), Taken::Counted);
        assert_eq!(take_for("1", "b").await.unwrap(), Taken::Counted);
        let Taken::Limited(refused) = take_for("1", "c").await.unwrap() else { panic!("the third face check") };
        assert!(refused > now + Duration::minutes(59), "retry after the hour: {refused}");
        // Another person from source "a": allowed until the source's own limit.
        assert_eq!(take_for("2", "a").await.unwrap(), Taken::Counted);
        assert_eq!(take_for("3", "a").await.unwrap(), Taken::Counted);
        assert!(matches!(take_for("4", "a").await.unwrap(), Taken::Limited(_)), "source a has had three");
        // The refusals were not counted: source "c" still has room.
        assert_eq!(take_for("5", "c").await.unwrap(), Taken::Counted);
    }

    #[tokio::test]
    async fn a_capture_is_checked_once() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("t.db"), Default::default(), true).unwrap();
        let first = |capture: &'static str| {
            db.write(move |tx| first_use_of_capture(tx, capture, NOW).map_err(StoreError::from))
        };
        assert!(first("cap-1").await.unwrap());
        assert!(!first("cap-1").await.unwrap());
        assert!(first("cap-2").await.unwrap());
    }
}
