//! Signed webhooks to participants, through a persistent outbox.
//!
//! A domain that changes something a participant must hear about (a consent authorised, revoked or expired…) calls
//! [`enqueue`] inside its own write transaction, so the event commits — or not — together with the change. The
//! delivery [`worker`] then POSTs each event to the organisation's webhook URL (read at delivery time) as a compact
//! JWS signed with the platform's key, and records every attempt in the same row. Because the outbox is a table, a
//! restart loses nothing: what was pending is attempted again. Delivery is therefore at least once; receivers
//! deduplicate on the event id (`jti`, and the `x-kopir-event-id` header).
//!
//! Retries back off exponentially (`webhooks.retry_initial_secs` doubling up to `webhooks.retry_max_secs`, plus up to
//! 10 % jitter so that many events failing together do not retry together). An event still undelivered
//! `webhooks.give_up_after_hours` after it was made is marked `failed` and shown as such on the organisation's profile
//! page. While an organisation has no webhook URL, or is suspended or revoked, its events stay `pending` without
//! being attempted (they go out as soon as a URL is set or the participant is reinstated) and fail at the same
//! deadline as any other, with a `last_error` that says why.
//!
//! Payloads carry identifiers only, never a secret or a customer's data: the outbox is part of the auditor's snapshot.

pub mod inbox;
pub mod worker;

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::clock;
use crate::config::WebhooksConfig;

pub use worker::spawn_worker;

/// The event types the platform emits. A new one is added here (and documented for participants) before use, so a
/// typo in a caller fails its transaction instead of sending receivers an event they do not know.
pub const EVENT_TYPES: &[&str] = &[
    "consent.authorised",
    "consent.revoked",
    "consent.expired",
    // The customer narrowed a live consent (banks, permissions or its end): to the API user and the banks left.
    "consent.modified",
    "api.delisted",
    "api.relisted",
    // An API's production outage opened / closed (`crate::availability`): to its provider.
    "api.down",
    "api.up",
    // To the provider: its API's p95 latency went over its SLA, and came back within it (`monitoring::sla`).
    "api.sla_breached",
    "api.sla_restored",
    // To every participant accredited in its role: a new version of its accession agreement, to accept by a date.
    "agreement.published",
    // A request (`crate::requests`) raised, changed (status, comment, re-assignment, SLA warning or escalation) or
    // resolved: to every organisation it concerns.
    "request.created",
    "request.updated",
    "request.resolved",
    // To the provider: a lowered cap clamped one of its API's tariffs (`billing`).
    "billing.tariff.clamped",
    // To the API user: one of its statements stayed overdue beyond `billing.suspend_after_days` (a warning only).
    "billing.statement.overdue",
    // To the API user and, for a provider's charge, the provider: a credit note corrected one of their lines.
    "billing.credit_note.issued",
];

/// The JWS `typ` of an event.
pub const JWT_TYPE: &str = "kopir-event+jwt";

/// The header carrying the event id, for receivers to deduplicate before verifying anything.
pub const EVENT_ID_HEADER: &str = "x-kopir-event-id";

/// How many deliveries the profile page lists.
pub const RECENT_DELIVERIES: usize = 20;

/// The longest webhook URL accepted.
const URL_MAX: usize = 500;

/// Longest `last_error` kept: a short description, never a response body.
const ERROR_MAX: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("unknown webhook event type `{0}`: add it to notify::EVENT_TYPES first")]
    UnknownEventType(String),
    #[error("{path}: {error}")]
    File { path: std::path::PathBuf, error: std::io::Error },
    #[error("the webhook HTTP client cannot be built: {0}")]
    Client(String),
}

/// Records an event for `organisation_id` in the caller's transaction, due `now`, and returns its id (a UUID v4).
/// `data` holds identifiers only (it is signed and sent as is, and kept in the outbox).
pub fn enqueue(
    tx: &Transaction,
    organisation_id: i64,
    event_type: &str,
    data: &serde_json::Value,
    now: time::OffsetDateTime,
) -> rusqlite::Result<String> {
    if !EVENT_TYPES.contains(&event_type) {
        return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(NotifyError::UnknownEventType(
            event_type.to_string(),
        ))));
    }
    let event_id = crate::random::uuid_v4().to_string();
    let now = clock::rfc3339(now);
    tx.execute(
        "INSERT INTO webhook_outbox (event_id, organisation_id, event_type, payload, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![event_id, organisation_id, event_type, data.to_string(), now],
    )?;
    if inbox::INBOX_EVENTS.contains(&event_type) {
        tx.execute(
            "INSERT INTO notices (organisation_id, kind, data, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![organisation_id, event_type, data.to_string(), now],
        )?;
    }
    Ok(event_id)
}

crate::text_enum! {
    /// Where an event stands.
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
    }
}

impl DeliveryStatus {
    pub fn text_key(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "webhooks.status.pending",
            DeliveryStatus::Delivered => "webhooks.status.delivered",
            DeliveryStatus::Failed => "webhooks.status.failed",
        }
    }

    /// The badge colour the pages already have for good, waiting and bad states.
    pub fn badge_class(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "status-submitted",
            DeliveryStatus::Delivered => "status-valid",
            DeliveryStatus::Failed => "status-rejected",
        }
    }
}

/// One outbox row as the organisation's profile page shows it (the payload is not shown).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub created_at: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// Coarse, as the participant sees it.
    pub last_error: String,
    /// What the operator sees: the reason in detail.
    pub last_error_detail: String,
    pub delivered_at: Option<String>,
}

/// The latest `limit` events of an organisation, newest first.
pub fn recent(conn: &Connection, organisation_id: i64, limit: usize) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare(
        "SELECT event_id, event_type, created_at, status, attempts, last_error, delivered_at, last_error_detail
         FROM webhook_outbox WHERE organisation_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![organisation_id, limit as i64], |r| {
        let status: String = r.get(3)?;
        Ok(Delivery {
            event_id: r.get(0)?,
            event_type: r.get(1)?,
            created_at: r.get(2)?,
            status: status.parse::<DeliveryStatus>().ok().ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, status.into())
            })?,
            attempts: r.get(4)?,
            last_error: r.get(5)?,
            delivered_at: r.get(6)?,
            last_error_detail: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// An organisation's webhook URL: `None` when there is no such organisation, `Some("")` when none is set.
pub fn webhook_url(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT webhook_url FROM organisations WHERE id = ?1", [organisation_id], |r| r.get(0)).optional()
}

/// Sets (or, with "", clears) an organisation's webhook URL `now`. Its pending events become due at once, so a bank
/// that fixes its endpoint gets its backlog without waiting out the back-off. Returns how many were rescheduled.
pub fn set_webhook_url(
    tx: &Transaction,
    organisation_id: i64,
    url: &str,
    now: time::OffsetDateTime,
) -> rusqlite::Result<usize> {
    let now = clock::rfc3339(now);
    tx.execute(
        "UPDATE organisations SET webhook_url = ?2, updated_at = ?3 WHERE id = ?1",
        params![organisation_id, url, now],
    )?;
    tx.execute(
        "UPDATE webhook_outbox SET next_attempt_at = ?2 WHERE organisation_id = ?1 AND status = 'pending'",
        params![organisation_id, now],
    )
}

/// A webhook URL the platform will call: an absolute https:// URL with a host, no user information, query or
/// fragment (the platform authenticates itself with its client certificate and the signature, so a receiver needs no
/// secret in the URL — and one there would end up in the audit journal and on the page).
pub fn url_acceptable(url: &str) -> bool {
    url.len() <= URL_MAX && !url.contains('?') && crate::egress::https_url_acceptable(url)
}

/// What the audit journal keeps of a webhook URL: its origin (scheme, host, port). The path may carry a receiver's
/// secret, and the journal goes into every auditor's snapshot; the origin is enough to follow who pointed events
/// where. "" stays "" (webhooks switched off).
pub fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return String::new() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Whatever precedes an `@` is user information, which is a credential.
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

/// Outbox totals, for `kopir status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub failed: i64,
}

pub fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    let count = |status: &str| -> rusqlite::Result<i64> {
        conn.query_row("SELECT count(*) FROM webhook_outbox WHERE status = ?1", [status], |r| r.get(0))
    };
    Ok(Counts { pending: count("pending")?, failed: count("failed")? })
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    Retry(OffsetDateTime),
    /// The deadline has passed: mark the event failed.
    GiveUp,
}

/// The delay before the next attempt after `attempts` failed ones: `initial · 2^(attempts-1)`, capped at the maximum,
/// plus `jitter` (a fraction in [0, 1)) of up to a tenth of it.
pub fn retry_delay(settings: &WebhooksConfig, attempts: u32, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let base = settings.retry_initial_secs.saturating_mul(1u64 << doublings).min(settings.retry_max_secs);
    let extra = (base as f64 * 0.1 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::seconds(i64::try_from(base.saturating_add(extra)).unwrap_or(i64::MAX))
}

/// The last moment an event made at `created_at` is attempted.
pub fn deadline(settings: &WebhooksConfig, created_at: OffsetDateTime) -> OffsetDateTime {
    created_at + Duration::hours(i64::try_from(settings.give_up_after_hours).unwrap_or(i64::MAX / 3600))
}

/// After the `attempts`-th failed attempt at `now`: retry later (never after the deadline, so the last attempt falls
/// on it), or give up once the deadline has passed.
pub fn after_failure(
    settings: &WebhooksConfig,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
    attempts: u32,
    jitter: f64,
) -> Next {
    let deadline = deadline(settings, created_at);
    if now >= deadline {
        return Next::GiveUp;
    }
    Next::Retry((now + retry_delay(settings, attempts, jitter)).min(deadline))
}

/// `last_error` as stored: one line, bounded.
fn short(error: &str) -> String {
    let line: String = error.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    line.chars().take(ERROR_MAX).collect()
}

/// An event the worker may attempt now.
#[derive(Debug, Clone)]
pub(crate) struct DueEvent {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub created_at: String,
    pub attempts: i64,
    pub bin: String,
    pub url: String,
}

/// Pending events due at `now` of organisations that can receive them, oldest due first. The (status,
/// next_attempt_at) index serves the scan.
pub(crate) fn due(conn: &Connection, now: &str, limit: usize) -> rusqlite::Result<Vec<DueEvent>> {
    let mut stmt = conn.prepare(
        "SELECT o.id, o.event_id, o.event_type, o.payload, o.created_at, o.attempts, g.bin, g.webhook_url
         FROM webhook_outbox o JOIN organisations g ON g.id = o.organisation_id
         WHERE o.status = 'pending' AND o.next_attempt_at <= ?1
           AND g.webhook_url <> '' AND g.status NOT IN ('suspended', 'revoked')
         ORDER BY o.next_attempt_at, o.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |r| {
        Ok(DueEvent {
            id: r.get(0)?,
            event_id: r.get(1)?,
            event_type: r.get(2)?,
            payload: r.get(3)?,
            created_at: r.get(4)?,
            attempts: r.get(5)?,
            bin: r.get(6)?,
            url: r.get(7)?,
        })
    })?;
    rows.collect()
}

pub(crate) fn record_delivered(tx: &Transaction, id: i64, now: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE webhook_outbox SET status = 'delivered', attempts = attempts + 1, last_attempt_at = ?2,
                                   delivered_at = ?2, last_error = '', last_error_detail = ''
         WHERE id = ?1 AND status = 'pending'",
        params![id, now],
    )
}

/// Records a failed attempt (the coarse reason the participant sees, and the operator's detail); `next` is `None`
/// when the event is given up.
pub(crate) fn record_failure(
    tx: &Transaction,
    id: i64,
    now: &str,
    failure: &worker::Failure,
    next: Option<&str>,
) -> rusqlite::Result<usize> {
    let (shown, detail) = (short(&failure.shown), short(&failure.detail));
    match next {
        Some(next) => tx.execute(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3,
                                       next_attempt_at = ?4, last_error_detail = ?5
             WHERE id = ?1 AND status = 'pending'",
            params![id, now, shown, next, detail],
        ),
        None => tx.execute(
            "UPDATE webhook_outbox SET status = 'failed', attempts = attempts + 1, last_attempt_at = ?2,
                                       last_error = ?3, last_error_detail = ?4
             WHERE id = ?1 AND status = 'pending'",
            params![id, now, shown, detail],
        ),
    }
}

/// Gives up on pending events made before `cutoff` whose organisation cannot receive them (no URL, suspended or
/// revoked): the worker never picks them, so their deadline is enforced here. Returns how many.
pub(crate) fn give_up_unreachable(tx: &Transaction, cutoff: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE webhook_outbox SET status = 'failed',
                last_error = CASE
                    WHEN last_error <> '' THEN last_error
                    WHEN (SELECT webhook_url FROM organisations g WHERE g.id = organisation_id) = ''
                        THEN 'not attempted: no webhook URL was set'
                    ELSE 'not attempted: the participant is suspended or revoked' END
         WHERE status = 'pending' AND created_at <= ?1
           AND organisation_id IN (SELECT id FROM organisations
                                   WHERE webhook_url = '' OR status IN ('suspended', 'revoked'))",
        [cutoff],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::i18n::{Lang, Texts};

    fn settings() -> WebhooksConfig {
        WebhooksConfig {
            retry_initial_secs: 10,
            retry_max_secs: 3600,
            give_up_after_hours: 72,
            timeout_secs: 10,
            concurrency: 8,
            allowed_networks: Vec::new(),
        }
    }

    /// Participants build on the developer guide's list of events: every type the platform sends is named there, in
    /// each language.
    #[test]
    fn the_developer_guide_names_every_event_type() {
        for lang in ["en", "ru", "kk"] {
            let path = format!("{}/assets/docs/{lang}/developer-guide.md", env!("CARGO_MANIFEST_DIR"));
            let guide = std::fs::read_to_string(&path).unwrap();
            for event in EVENT_TYPES {
                assert!(guide.contains(&format!("`{event}`")), "{path} does not name the event {event}");
            }
        }
    }

    #[test]
    fn retries_double_up_to_the_maximum_with_bounded_jitter() {
        let s = settings();
        let secs = |attempts, jitter| retry_delay(&s, attempts, jitter).whole_seconds();
        assert_eq!([secs(1, 0.0), secs(2, 0.0), secs(3, 0.0), secs(4, 0.0)], [10, 20, 40, 80]);
        assert_eq!(secs(9, 0.0), 2560);
        assert_eq!(secs(10, 0.0), 3600);
        assert_eq!(secs(10_000, 0.0), 3600);
        assert_eq!(secs(10, 0.999_999), 3959);
        assert_eq!(secs(1, 5.0), 11, "jitter is clamped to a tenth");
    }

    #[test]
    fn the_last_attempt_falls_on_the_deadline_and_a_later_failure_gives_up() {
        let s = settings();
        let created = time::macros::datetime!(2026-11-25 10:00 UTC);
        let now = created + Duration::minutes(5);
        assert_eq!(after_failure(&s, created, now, 1, 0.0), Next::Retry(now + Duration::seconds(10)));
        let late = created + Duration::hours(72) - Duration::seconds(30);
        assert_eq!(after_failure(&s, created, late, 12, 0.0), Next::Retry(created + Duration::hours(72)));
        assert_eq!(after_failure(&s, created, created + Duration::hours(72), 13, 0.0), Next::GiveUp);
    }

    #[test]
    fn webhook_urls_are_https_without_credentials_query_or_fragment() {
        assert!(url_acceptable("https://hooks.bank.kz/kopir"));
        assert!(url_acceptable("https://hooks.bank.kz:8443/kopir/events"));
        for bad in [
            "http://hooks.bank.kz/kopir",
            "https://user:pass@hooks.bank.kz/",
            "https://hooks.bank.kz/kopir?token=secret",
            "https://hooks.bank.kz/#x",
            "ftp://hooks.bank.kz",
            "https://",
            "",
        ] {
            assert!(!url_acceptable(bad), "{bad}");
        }
        assert!(!url_acceptable(&format!("https://hooks.bank.kz/{}", "a".repeat(600))));
    }

    #[test]
    fn the_journal_keeps_only_a_webhook_url_s_origin() {
        assert_eq!(origin("https://hooks.bank.kz:8443/kopir/s3cret-token"), "https://hooks.bank.kz:8443");
        assert_eq!(origin("https://hooks.bank.kz"), "https://hooks.bank.kz");
        assert_eq!(origin("https://user:pw@hooks.bank.kz/x?token=t#f"), "https://hooks.bank.kz");
        assert_eq!(origin(""), "");
    }

    #[test]
    fn status_texts_exist_in_every_language() {
        for lang in Lang::ALL {
            for status in [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed] {
                assert_ne!(Texts { lang }.get(status.text_key()), status.text_key(), "{lang:?}");
                assert_eq!(status.as_str().parse::<DeliveryStatus>().ok(), Some(status));
            }
        }
    }

    #[test]
    fn errors_are_kept_short_and_on_one_line() {
        assert_eq!(short("HTTP 503\nbody"), "HTTP 503 body");
        assert_eq!(short(&"x".repeat(500)).len(), ERROR_MAX);
    }
}
