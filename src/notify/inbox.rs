//! The personal account's inbox (`/org/inbox`, the one writer of `notices` and `notice_reads`): what the platform
//! tells an organisation, which until now appeared only as banners or webhooks — its requests raised, changed and
//! resolved, its APIs delisted and relisted by the sandbox's checks, their SLA breached and restored, its statements
//! overdue beyond the limit and credit notes on its lines, and the operator's decisions on its accreditation. Every event of [`INBOX_EVENTS`] that [`super::enqueue`] signs for an
//! organisation is also put in its inbox, in the same transaction; accreditation decisions call [`add`] directly.
//! Notices carry identifiers only. Each member reads them: the unread count is what came after the last
//! "mark as read" of that person.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rusqlite::{Connection, Transaction, params};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::clock;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};
use crate::web::session::{CsrfForm, ParticipantMember};

/// The webhook events that are notices too.
pub const INBOX_EVENTS: &[&str] = &[
    "api.delisted",
    "api.relisted",
    "api.sla_breached",
    "api.sla_restored",
    "request.created",
    "request.updated",
    "request.resolved",
    "billing.statement.overdue",
    "billing.credit_note.issued",
];

/// How many notices the inbox lists.
const LIST_LIMIT: usize = 200;

/// Puts a notice in an organisation's inbox, in the caller's transaction.
pub fn add(
    tx: &Transaction,
    organisation_id: i64,
    kind: &str,
    data: &serde_json::Value,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO notices (organisation_id, kind, data, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![organisation_id, kind, data.to_string(), clock::rfc3339(now)],
    )?;
    Ok(())
}

/// A notice as the inbox shows it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub id: i64,
    pub kind: String,
    pub data: serde_json::Value,
    pub created_at: String,
    pub unread: bool,
}

impl Notice {
    pub fn text_key(&self) -> &'static str {
        match self.kind.as_str() {
            "api.delisted" => "inbox.kind.api_delisted",
            "api.relisted" => "inbox.kind.api_relisted",
            "api.sla_breached" => "inbox.kind.api_sla_breached",
            "api.sla_restored" => "inbox.kind.api_sla_restored",
            "request.created" => "inbox.kind.request_created",
            "request.updated" => "inbox.kind.request_updated",
            "request.resolved" => "inbox.kind.request_resolved",
            "accreditation.approved" => "inbox.kind.accreditation_approved",
            "accreditation.rejected" => "inbox.kind.accreditation_rejected",
            "accreditation.changes_requested" => "inbox.kind.accreditation_changes_requested",
            "billing.statement.overdue" => "billing.overdue.notice",
            "billing.credit_note.issued" => "billing_credit.notice",
            _ => "inbox.kind.other",
        }
    }

    /// Where the notice leads, if anywhere.
    pub fn link(&self) -> Option<String> {
        if let Some(id) = self.data["request_id"].as_i64() {
            return Some(format!("/org/requests/{id}"));
        }
        if self.kind.starts_with("accreditation.") {
            return Some("/org/accreditation".into());
        }
        if self.data["credit_note"].is_string() {
            // Where both parties find their credit notes (a provider may not read the API user's statement).
            return Some("/org/billing".into());
        }
        if let Some(number) = self.data["statement"].as_str().filter(|_| self.kind.starts_with("billing.")) {
            return Some(format!("/org/billing/statements/{number}"));
        }
        self.data["ApiId"].as_i64().map(|_| "/org/availability".to_string()).filter(|_| self.kind.starts_with("api."))
    }

    /// What it is about, in a few words: the request's number, or the API.
    pub fn about(&self) -> String {
        if let Some(id) = self.data["request_id"].as_i64() {
            return format!("#{id}");
        }
        if let Some(number) = self.data["credit_note"].as_str().or_else(|| self.data["statement"].as_str()) {
            return number.to_string();
        }
        match (self.data["Name"].as_str(), self.data["Version"].as_str(), self.data["ApiId"].as_i64()) {
            (Some(name), Some(version), _) => format!("{name} {version}"),
            (_, _, Some(id)) => format!("API {id}"),
            _ => String::new(),
        }
    }
}

/// The organisation's notices, newest first, each marked unread for `user_id` if it came after their last reading.
pub fn list(conn: &Connection, organisation_id: i64, user_id: i64) -> rusqlite::Result<Vec<Notice>> {
    let mut stmt = conn.prepare(
        "SELECT n.id, n.kind, n.data, n.created_at,
                n.id > coalesce((SELECT last_read_id FROM notice_reads WHERE user_id = ?2), 0) AS unread
         FROM notices n WHERE n.organisation_id = ?1 ORDER BY n.id DESC LIMIT ?3",
    )?;
    stmt.query_map(params![organisation_id, user_id, LIST_LIMIT as i64], |r| {
        let data: String = r.get(2)?;
        Ok(Notice {
            id: r.get(0)?,
            kind: r.get(1)?,
            data: serde_json::from_str(&data).unwrap_or_default(),
            created_at: r.get(3)?,
            unread: r.get(4)?,
        })
    })?
    .collect()
}

/// How many of the organisation's notices `user_id` has not read.
pub fn unread(conn: &Connection, organisation_id: i64, user_id: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM notices WHERE organisation_id = ?1
           AND id > coalesce((SELECT last_read_id FROM notice_reads WHERE user_id = ?2), 0)",
        params![organisation_id, user_id],
        |r| r.get(0),
    )
}

/// Marks everything of the organisation up to `up_to` as read for `user_id` (never moving backwards).
pub fn mark_read(tx: &Transaction, organisation_id: i64, user_id: i64, up_to: i64) -> rusqlite::Result<()> {
    let last: i64 = tx.query_row(
        "SELECT coalesce(max(id), 0) FROM notices WHERE organisation_id = ?1 AND id <= ?2",
        params![organisation_id, up_to],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO notice_reads (user_id, last_read_id) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET last_read_id = max(last_read_id, excluded.last_read_id)",
        params![user_id, last],
    )?;
    Ok(())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/org/inbox", get(page)).route("/org/inbox/read", post(read))
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage<'a> {
    t: Texts,
    csrf: &'a str,
    notices: Vec<Notice>,
    unread: i64,
    zone: &'a jiff::tz::TimeZone,
}

impl InboxPage<'_> {
    fn local(&self, at: &str) -> String {
        crate::store::calendar::local_minute(self.zone, at)
    }

    fn newest(&self) -> i64 {
        self.notices.first().map(|n| n.id).unwrap_or_default()
    }
}

/// Participant members: their organisation's notices, the unread ones marked.
async fn page(State(state): State<AppState>, ParticipantMember(who): ParticipantMember) -> Result<Response, PageError> {
    let (org, user) = (who.org.id, who.user.id);
    let (notices, unread) =
        state.db.read(move |c| -> Result<_, StoreError> { Ok((list(c, org, user)?, unread(c, org, user)?)) }).await?;
    Ok(render(&InboxPage {
        t: Texts::current(),
        csrf: who.csrf(),
        notices,
        unread,
        zone: state.config.time_zone.zone(),
    }))
}

#[derive(Debug, Deserialize)]
struct ReadForm {
    /// The newest notice the page showed: later ones stay unread.
    #[serde(default)]
    up_to: i64,
}

/// Participant members: mark what the page showed as read (for themselves).
async fn read(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    CsrfForm(form): CsrfForm<ReadForm>,
) -> Result<Response, PageError> {
    let (org, user, up_to) = (who.org.id, who.user.id, form.up_to);
    state.db.write(move |tx| mark_read(tx, org, user, up_to).map_err(StoreError::from)).await?;
    Ok(Redirect::to("/org/inbox").into_response())
}
