//! The `maintenance_windows` table: planned maintenance a provider's administrators declare for one API or all of
//! their organisation's APIs — ahead of time or while it runs, with a reason, at most [`MAX_LENGTH`] long — and may
//! cancel until it ends. Availability shows a window apart as planned time and does not count it as downtime, from
//! the moment it was declared (never retroactively) until it ends or is cancelled. Declaring and cancelling are
//! journalled (`availability.maintenance.declared`, `.cancelled`; refusals with outcome `denied`).

use rusqlite::{Connection, Row, Transaction, params};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{AvailabilityError, Span, unix};
use crate::audit::{self, Actor, Event, Outcome};
use crate::participants::Organisation;

/// The longest window: maintenance that takes more than a day is an outage, whatever it is called.
pub const MAX_LENGTH: Duration = Duration::hours(24);
/// How far ahead a window may be declared.
pub const MAX_AHEAD: Duration = Duration::days(90);
/// Longest reason.
pub const REASON_MAX: usize = 500;

/// One declared window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub id: i64,
    pub organisation_id: i64,
    /// `None`: every API of the organisation.
    pub api_id: Option<i64>,
    pub starts_at: String,
    pub ends_at: String,
    pub reason: String,
    pub declared_by: String,
    pub declared_at: String,
    pub cancelled_at: Option<String>,
    pub cancelled_by: Option<String>,
}

crate::text_enum! {
    /// Where a window stands at a given moment (derived, not stored).
    pub enum WindowStatus {
        Scheduled = "scheduled",
        Ongoing = "ongoing",
        Ended = "ended",
        Cancelled = "cancelled",
    }
}

impl WindowStatus {
    pub fn text_key(self) -> &'static str {
        match self {
            WindowStatus::Scheduled => "availability.window.scheduled",
            WindowStatus::Ongoing => "availability.window.ongoing",
            WindowStatus::Ended => "availability.window.ended",
            WindowStatus::Cancelled => "availability.window.cancelled",
        }
    }

    pub fn badge_class(self) -> &'static str {
        match self {
            WindowStatus::Scheduled => "status-submitted",
            WindowStatus::Ongoing => "status-valid",
            WindowStatus::Ended => "status-ended",
            WindowStatus::Cancelled => "status-rejected",
        }
    }
}

const COLUMNS: &str = "id, organisation_id, api_id, starts_at, ends_at, reason, declared_by, declared_at, \
                       cancelled_at, cancelled_by";

impl Window {
    fn from_row(row: &Row) -> rusqlite::Result<Window> {
        Ok(Window {
            id: row.get("id")?,
            organisation_id: row.get("organisation_id")?,
            api_id: row.get("api_id")?,
            starts_at: row.get("starts_at")?,
            ends_at: row.get("ends_at")?,
            reason: row.get("reason")?,
            declared_by: row.get("declared_by")?,
            declared_at: row.get("declared_at")?,
            cancelled_at: row.get("cancelled_at")?,
            cancelled_by: row.get("cancelled_by")?,
        })
    }

    /// Whether the window covers `api` (a window for all APIs covers every one).
    pub fn covers(&self, api: Option<i64>) -> bool {
        self.api_id.is_none() || self.api_id == api
    }

    /// The time the window excuses: from its start, or its declaration if later, to its end or its cancellation.
    pub(super) fn counted_span(&self) -> Option<Span> {
        let start = unix(&self.starts_at)?.max(unix(&self.declared_at)?);
        let mut end = unix(&self.ends_at)?;
        if let Some(cancelled) = self.cancelled_at.as_deref().and_then(unix) {
            end = end.min(cancelled);
        }
        (end > start).then_some((start, end))
    }

    pub fn status(&self, now: OffsetDateTime) -> WindowStatus {
        let now = now.unix_timestamp();
        if self.cancelled_at.is_some() {
            WindowStatus::Cancelled
        } else if unix(&self.ends_at).is_some_and(|end| end <= now) {
            WindowStatus::Ended
        } else if unix(&self.starts_at).is_some_and(|start| start <= now) {
            WindowStatus::Ongoing
        } else {
            WindowStatus::Scheduled
        }
    }
}

/// A window as declared on the form, its times already read.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub api_id: Option<i64>,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub reason: String,
}

/// Why a declaration is refused (a text key), or `None`: it must end after it starts and after now (a window may be
/// declared while it runs, never for the past), last at most [`MAX_LENGTH`], start within [`MAX_AHEAD`], and give
/// a reason of 3 to 500 characters.
pub fn refusal(declaration: &Declaration, now: OffsetDateTime) -> Option<&'static str> {
    let reason = declaration.reason.trim().chars().count();
    if !(3..=REASON_MAX).contains(&reason) {
        Some("availability.error.reason")
    } else if declaration.ends_at <= declaration.starts_at {
        Some("availability.error.order")
    } else if declaration.ends_at <= now {
        Some("availability.error.past")
    } else if declaration.ends_at - declaration.starts_at > MAX_LENGTH {
        Some("availability.error.too_long")
    } else if declaration.starts_at > now + MAX_AHEAD {
        Some("availability.error.too_far")
    } else {
        None
    }
}

/// What a declaration or cancellation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Done(i64),
    /// Refused and journalled: the text key says why.
    Refused(&'static str),
}

#[allow(clippy::too_many_arguments)]
fn journal(
    tx: &Transaction,
    actor: &Actor,
    org: &Organisation,
    action: &str,
    outcome: Outcome,
    object: Option<i64>,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let mut event = Event::new(&actor.name, action, outcome)
        .at(now)
        .organisation(org.bin.as_str())
        .source(&actor.source)
        .detail(detail);
    if let Some(id) = object {
        event = event.object(format!("maintenance:{id}"));
    }
    audit::append(tx, &event)?;
    Ok(())
}

/// Declares a window for `org` (a provider), journalled; a refusal is journalled too and returned as
/// [`Decided::Refused`], so the caller's transaction commits either way.
pub fn declare(
    tx: &Transaction,
    org: &Organisation,
    declaration: &Declaration,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<Decided, AvailabilityError> {
    let api_refused = match declaration.api_id {
        Some(api) => crate::catalog::by_id_for_organisation(tx, org.id, api)?.is_none(),
        None => false,
    };
    let refused = crate::catalog::provider_refusal(org)
        .map(|_| "availability.error.not_provider")
        .or(api_refused.then_some("availability.error.api"))
        .or_else(|| refusal(declaration, now));
    if let Some(key) = refused {
        journal(
            tx,
            actor,
            org,
            "availability.maintenance.declare",
            Outcome::Denied,
            None,
            serde_json::json!({ "reason": key }),
            now,
        )?;
        return Ok(Decided::Refused(key));
    }
    let (starts, ends, at) = (
        crate::clock::rfc3339(declaration.starts_at),
        crate::clock::rfc3339(declaration.ends_at),
        crate::clock::rfc3339(now),
    );
    tx.execute(
        "INSERT INTO maintenance_windows (organisation_id, api_id, starts_at, ends_at, reason, declared_by, declared_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![org.id, declaration.api_id, starts, ends, declaration.reason.trim(), actor.name, at],
    )?;
    let id = tx.last_insert_rowid();
    journal(
        tx,
        actor,
        org,
        "availability.maintenance.declared",
        Outcome::Success,
        Some(id),
        serde_json::json!({ "api": declaration.api_id, "starts_at": starts, "ends_at": ends }),
        now,
    )?;
    Ok(Decided::Done(id))
}

/// Cancels `org`'s window `id` if it has not ended (compare-and-set), journalled. Another organisation's window is
/// [`AvailabilityError::NotFound`].
pub fn cancel(
    tx: &Transaction,
    org: &Organisation,
    id: i64,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<Decided, AvailabilityError> {
    let at = crate::clock::rfc3339(now);
    let changed = tx.execute(
        "UPDATE maintenance_windows SET cancelled_at = ?3, cancelled_by = ?4
         WHERE id = ?1 AND organisation_id = ?2 AND cancelled_at IS NULL AND ends_at > ?3",
        params![id, org.id, at, actor.name],
    )?;
    if changed == 1 {
        journal(
            tx,
            actor,
            org,
            "availability.maintenance.cancelled",
            Outcome::Success,
            Some(id),
            serde_json::json!({}),
            now,
        )?;
        return Ok(Decided::Done(id));
    }
    let exists: bool = tx.query_row(
        "SELECT count(*) > 0 FROM maintenance_windows WHERE id = ?1 AND organisation_id = ?2",
        params![id, org.id],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(AvailabilityError::NotFound);
    }
    let key = "availability.error.not_cancellable";
    journal(
        tx,
        actor,
        org,
        "availability.maintenance.cancel",
        Outcome::Denied,
        Some(id),
        serde_json::json!({ "reason": key }),
        now,
    )?;
    Ok(Decided::Refused(key))
}

/// An organisation's windows, latest start first.
pub fn for_organisation(conn: &Connection, organisation_id: i64, limit: u32) -> rusqlite::Result<Vec<Window>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows WHERE organisation_id = ?1 ORDER BY starts_at DESC, id DESC LIMIT ?2"
    ))?
    .query_map(params![organisation_id, limit], Window::from_row)?
    .collect()
}

/// A window as the console lists it: with its provider's name and its API's name (empty: all APIs).
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub window: Window,
    pub provider: String,
    pub api: String,
}

/// Every organisation's windows, latest start first.
pub fn all(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<Listed>> {
    conn.prepare_cached(
        "SELECT w.id, w.organisation_id, w.api_id, w.starts_at, w.ends_at, w.reason, w.declared_by, w.declared_at,
                w.cancelled_at, w.cancelled_by, g.name AS provider, ifnull(a.name || ' ' || a.version, '') AS api_label
         FROM maintenance_windows w JOIN organisations g ON g.id = w.organisation_id
              LEFT JOIN apis a ON a.id = w.api_id
         ORDER BY w.starts_at DESC, w.id DESC LIMIT ?1",
    )?
    .query_map([limit], |r| {
        Ok(Listed { window: Window::from_row(r)?, provider: r.get("provider")?, api: r.get("api_label")? })
    })?
    .collect()
}

/// An organisation's windows that overlap `[from, to)`, cancelled ones included (they count until cancelled).
pub fn covering(
    conn: &Connection,
    organisation_id: i64,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> rusqlite::Result<Vec<Window>> {
    let (from, to) = (crate::clock::rfc3339(from), crate::clock::rfc3339(to));
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM maintenance_windows
         WHERE organisation_id = ?1 AND starts_at < ?3 AND ends_at > ?2 ORDER BY starts_at"
    ))?
    .query_map(params![organisation_id, from, to], Window::from_row)?
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn declaration(starts_in_min: i64, minutes: i64, reason: &str, now: OffsetDateTime) -> Declaration {
        Declaration {
            api_id: None,
            starts_at: now + Duration::minutes(starts_in_min),
            ends_at: now + Duration::minutes(starts_in_min + minutes),
            reason: reason.into(),
        }
    }

    #[test]
    fn windows_end_after_they_start_and_after_now_are_bounded_and_give_a_reason() {
        let now = time::macros::datetime!(2026-12-03 10:00 UTC);
        assert_eq!(refusal(&declaration(60, 120, "Database upgrade", now), now), None);
        assert_eq!(refusal(&declaration(-10, 30, "Already running", now), now), None, "ongoing");
        assert_eq!(refusal(&declaration(-60, 30, "All in the past", now), now), Some("availability.error.past"));
        assert_eq!(refusal(&declaration(60, 0, "Empty", now), now), Some("availability.error.order"));
        assert_eq!(refusal(&declaration(60, 24 * 60 + 1, "Long", now), now), Some("availability.error.too_long"));
        assert_eq!(refusal(&declaration(91 * 24 * 60, 60, "Far", now), now), Some("availability.error.too_far"));
        assert_eq!(refusal(&declaration(60, 60, " x ", now), now), Some("availability.error.reason"));
    }

    #[test]
    fn a_window_counts_from_its_declaration_until_it_ends_or_is_cancelled() {
        let window = |declared: &str, cancelled: Option<&str>| Window {
            id: 1,
            organisation_id: 1,
            api_id: None,
            starts_at: "2026-12-03T10:00:00Z".into(),
            ends_at: "2026-12-03T12:00:00Z".into(),
            reason: "upgrade".into(),
            declared_by: "user:a".into(),
            declared_at: declared.into(),
            cancelled_at: cancelled.map(str::to_string),
            cancelled_by: cancelled.map(|_| "user:a".to_string()),
        };
        let at = |s: &str| unix(s).unwrap();
        assert_eq!(
            window("2026-12-01T00:00:00Z", None).counted_span(),
            Some((at("2026-12-03T10:00:00Z"), at("2026-12-03T12:00:00Z")))
        );
        assert_eq!(
            window("2026-12-03T11:00:00Z", None).counted_span(),
            Some((at("2026-12-03T11:00:00Z"), at("2026-12-03T12:00:00Z"))),
            "not before it was declared"
        );
        assert_eq!(
            window("2026-12-01T00:00:00Z", Some("2026-12-03T10:30:00Z")).counted_span(),
            Some((at("2026-12-03T10:00:00Z"), at("2026-12-03T10:30:00Z")))
        );
        assert_eq!(window("2026-12-01T00:00:00Z", Some("2026-12-02T00:00:00Z")).counted_span(), None);
        let now = time::macros::datetime!(2026-12-03 11:00 UTC);
        assert_eq!(window("2026-12-01T00:00:00Z", None).status(now), WindowStatus::Ongoing);
    }
}
