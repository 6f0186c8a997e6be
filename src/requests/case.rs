//! Requests (the one writer of `requests`, `request_parties`, `request_events` and `request_attachments`): raising
//! one with its automatic assignment, the status workflow, comments and internal notes, re-assignment, what each
//! party may see, and the metered record of the exchange a request names.
//!
//! Every change is one transaction: the row's compare-and-set on its status, its history event, the audit entry
//! (`requests.request.<what>`) and the signed webhooks to the organisations concerned (`request.created`,
//! `request.updated`, `request.resolved`) commit together or not at all.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::calendar::Calendar;
use super::classifier::Category;
use super::{Executor, ObjectKind, Priority, Refusal, RequestsError, Status, Team};
use crate::audit::{self, Actor, Event, Outcome};
use crate::clock;

/// The longest subject and description accepted, in characters.
pub const SUBJECT_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 10_000;

/// What the SLA clocks need besides the calendar.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub warning_percent: u32,
    pub reopen_days: u32,
}

impl Rules {
    pub fn from_config(config: &crate::config::RequestsConfig) -> Rules {
        Rules { warning_percent: config.warning_percent, reopen_days: config.reopen_days }
    }

    /// Working minutes after which the executor is warned, of a clock with `minutes` in all.
    fn warn_after(self, minutes: i64) -> i64 {
        minutes * i64::from(self.warning_percent) / 100
    }
}

/// The working calendar and the rules the SLA clocks run by.
#[derive(Debug, Clone)]
pub struct Clocks {
    pub calendar: Calendar,
    pub rules: Rules,
}

impl Clocks {
    pub fn from_config(config: &crate::config::Config) -> Result<Clocks, RequestsError> {
        let calendar = Calendar::from_config(config).map_err(RequestsError::Config)?;
        Ok(Clocks { calendar, rules: Rules::from_config(&config.requests) })
    }
}

/// An attachment that passed the content check.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: &'static str,
    pub content: Vec<u8>,
}

/// A request as its raiser sends it (checked by [`NewRequest::check`] before anything is stored).
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub category: Category,
    pub subject: String,
    pub description: String,
    pub priority: Priority,
    pub object_kind: ObjectKind,
    pub object_ref: String,
    pub attachments: Vec<NewAttachment>,
}

impl NewRequest {
    pub fn check(&self) -> Result<(), Refusal> {
        if !self.category.active {
            return Err(Refusal::UnknownCategory);
        }
        if self.subject.trim().is_empty() || self.subject.chars().count() > SUBJECT_MAX {
            return Err(Refusal::Subject);
        }
        if self.description.trim().is_empty() || self.description.chars().count() > DESCRIPTION_MAX {
            return Err(Refusal::Description);
        }
        if self.object_ref.chars().count() > 100 || (self.object_kind == ObjectKind::None) != self.object_ref.is_empty()
        {
            // Accreditation needs no reference: it is the requester's own.
            if self.object_kind != ObjectKind::Accreditation {
                return Err(Refusal::UnknownObject);
            }
        }
        Ok(())
    }
}

/// Who raises a request: a member on a page, or an application's certificate over the API.
#[derive(Debug, Clone)]
pub struct Raiser {
    pub organisation_id: i64,
    pub user_id: Option<i64>,
    pub client_id: Option<String>,
    pub actor: Actor,
}

/// Who acts on a request.
#[derive(Debug, Clone)]
pub struct Acting {
    pub actor: Actor,
    /// The organisation acted for; `None` for the operator's staff.
    pub organisation_id: Option<i64>,
}

impl Acting {
    pub fn operator(actor: Actor) -> Acting {
        Acting { actor, organisation_id: None }
    }

    pub fn member(actor: Actor, organisation_id: i64) -> Acting {
        Acting { actor, organisation_id: Some(organisation_id) }
    }
}

/// Who executes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    Team(Team),
    Organisation(i64),
}

/// The organisations an object points to besides the requester, or `None` if the requester may not name it (it does
/// not exist, or it is not theirs to name: another pair's consent or exchange, an application that neither belongs to
/// them nor is connected to one of their APIs).
pub fn object_parties(
    conn: &Connection,
    requester: i64,
    kind: ObjectKind,
    reference: &str,
) -> rusqlite::Result<Option<Vec<i64>>> {
    let others = |orgs: Vec<i64>| -> Option<Vec<i64>> {
        if !orgs.contains(&requester) {
            return None;
        }
        let mut rest: Vec<i64> = orgs.into_iter().filter(|o| *o != requester).collect();
        rest.sort_unstable();
        rest.dedup();
        Some(rest)
    };
    Ok(match kind {
        ObjectKind::None | ObjectKind::Accreditation => Some(Vec::new()),
        ObjectKind::Api => {
            let Ok(id) = reference.trim().parse::<i64>() else { return Ok(None) };
            conn.query_row(
                "SELECT organisation_id FROM apis WHERE id = ?1
                   AND (status IN ('published', 'deprecated', 'suspended') OR organisation_id = ?2)",
                params![id, requester],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|provider| if provider == requester { Vec::new() } else { vec![provider] })
        }
        ObjectKind::Application => conn
            .query_row(
                "SELECT a.organisation_id FROM applications a WHERE a.client_id = ?1
                   AND (a.organisation_id = ?2 OR EXISTS (
                        SELECT 1 FROM api_connections c JOIN apis p ON p.id = c.api_id
                        WHERE c.application_id = a.id AND p.organisation_id = ?2))",
                params![reference.trim(), requester],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|owner| if owner == requester { Vec::new() } else { vec![owner] }),
        ObjectKind::Consent => {
            let user: Option<i64> = conn
                .query_row(
                    "SELECT a.organisation_id FROM consents c JOIN applications a ON a.id = c.application_id
                     WHERE c.id = ?1",
                    [reference.trim()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(user) = user else { return Ok(None) };
            let mut stmt = conn.prepare("SELECT organisation_id FROM consent_providers WHERE consent_id = ?1")?;
            let mut orgs =
                stmt.query_map([reference.trim()], |r| r.get::<_, i64>(0))?.collect::<Result<Vec<_>, _>>()?;
            orgs.insert(0, user);
            others(orgs)
        }
        ObjectKind::Interaction => {
            let found: Option<(i64, Option<i64>)> = conn
                .query_row(
                    "SELECT user_organisation_id, provider_organisation_id FROM exchanges WHERE interaction_id = ?1
                       AND (user_organisation_id = ?2 OR provider_organisation_id = ?2)
                     ORDER BY id DESC LIMIT 1",
                    params![reference.trim(), requester],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            found.and_then(|(user, provider)| others([Some(user), provider].into_iter().flatten().collect()))
        }
        ObjectKind::StatementLine => {
            crate::billing::disputes::line_parties(conn, requester, reference)?.map(|parties| parties.others)
        }
    })
}

/// The organisation a counterparty category's request about an object goes to: the first other organisation the
/// object points to; for a statement line, the organisation paid by the line when the requester is not it (the
/// provider of a charge; a platform fee, or a provider disputing its own earnings, names none: the operator's team).
pub fn object_counterparty(
    conn: &Connection,
    requester: i64,
    kind: ObjectKind,
    reference: &str,
    others: &[i64],
) -> rusqlite::Result<Option<i64>> {
    Ok(match kind {
        ObjectKind::StatementLine => {
            crate::billing::disputes::line_parties(conn, requester, reference)?.and_then(|parties| parties.counterparty)
        }
        _ => others.first().copied(),
    })
}

/// Who executes a request of `category` about an object whose other organisations are `others` (of which
/// `counterparty` executes a counterparty category's request), and which of them are parties besides the executor.
/// A counterparty category whose object names no counterparty goes to the operator's team, the object's other
/// organisations its parties.
pub fn assign(category: &Category, counterparty: Option<i64>, others: &[i64]) -> (Assignee, Vec<i64>) {
    match (category.executor, counterparty) {
        (Executor::Counterparty, Some(first)) => {
            (Assignee::Organisation(first), others.iter().copied().filter(|o| *o != first).collect())
        }
        (Executor::Parties | Executor::Counterparty, _) => (Assignee::Team(category.team), others.to_vec()),
        _ => (Assignee::Team(category.team), Vec::new()),
    }
}

/// The organisations a request concerns (each hears of its changes).
pub fn party_organisations(conn: &Connection, id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT organisation_id FROM request_parties WHERE request_id = ?1 ORDER BY 1")?;
    stmt.query_map([id], |r| r.get(0))?.collect()
}

/// Whether an organisation may see a request.
pub fn visible_to(conn: &Connection, id: i64, organisation_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM request_parties WHERE request_id = ?1 AND organisation_id = ?2)",
        params![id, organisation_id],
        |r| r.get(0),
    )
}

/// One entry of the history, as written.
struct Happened<'a> {
    actor: &'a str,
    organisation_id: Option<i64>,
    kind: &'a str,
    status: Status,
    body: &'a str,
    internal: bool,
}

fn event(tx: &Transaction, id: i64, h: Happened, now: &str) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO request_events (request_id, at, actor, actor_organisation_id, kind, status, body, internal)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![id, now, h.actor, h.organisation_id, h.kind, h.status, h.body, h.internal],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Tells every organisation of the request (webhook), in the caller's transaction.
fn announce(tx: &Transaction, id: i64, event_type: &str, change: &str, now: OffsetDateTime) -> rusqlite::Result<()> {
    let (status, category): (Status, String) = tx.query_row(
        "SELECT r.status, c.code FROM requests r JOIN request_categories c ON c.id = r.category_id WHERE r.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for org in party_organisations(tx, id)? {
        crate::notify::enqueue(
            tx,
            org,
            event_type,
            &json!({"request_id": id, "status": status, "category": category, "change": change}),
            now,
        )?;
    }
    Ok(())
}

fn journal(
    tx: &Transaction,
    actor: &Actor,
    action: &str,
    id: i64,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    audit::append(
        tx,
        &Event::new(&actor.name, action, Outcome::Success)
            .at(now)
            .object(format!("request:{id}"))
            .source(&actor.source)
            .detail(detail),
    )?;
    Ok(())
}

/// A request raised: its number and who executes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub id: i64,
    pub assignee: Assignee,
}

/// Raises a request: checks its object, assigns it by its category and object, starts its SLA clocks, stores its
/// attachments, and tells the organisations concerned. A refusal ([`RequestsError::Refused`]) has written nothing.
pub fn raise(
    tx: &Transaction,
    clocks: &Clocks,
    raiser: &Raiser,
    new: &NewRequest,
    now: OffsetDateTime,
) -> Result<Raised, RequestsError> {
    new.check()?;
    let others =
        object_parties(tx, raiser.organisation_id, new.object_kind, &new.object_ref)?.ok_or(Refusal::UnknownObject)?;
    let target = new.category.target(new.priority).ok_or(Refusal::Priority)?;
    let counterparty = object_counterparty(tx, raiser.organisation_id, new.object_kind, &new.object_ref, &others)?;
    let (assignee, parties) = assign(&new.category, counterparty, &others);
    let (calendar, rules) = (&clocks.calendar, clocks.rules);
    let at = clock::rfc3339(now);
    let first_due = clock::rfc3339(calendar.add_working(now, target.first_response_minutes)?);
    let resolution_due = clock::rfc3339(calendar.add_working(now, target.resolution_minutes)?);
    let warn_at = clock::rfc3339(calendar.add_working(now, rules.warn_after(target.resolution_minutes))?);
    let (assignee_org, assignee_team) = match assignee {
        Assignee::Organisation(org) => (Some(org), None),
        Assignee::Team(team) => (None, Some(team)),
    };
    let object_ref =
        if new.object_kind == ObjectKind::Accreditation { String::new() } else { new.object_ref.trim().to_string() };
    tx.execute(
        "INSERT INTO requests (category_id, category_version, requester_organisation_id, requester_user_id,
             requester_client_id, subject, description, priority, object_kind, object_ref, status,
             assignee_organisation_id, assignee_team, created_at, updated_at, first_response_due_at,
             resolution_target_minutes, resolution_due_at, resolution_warn_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'assigned', ?11, ?12, ?13, ?13, ?14, ?15, ?16, ?17)",
        params![
            new.category.id,
            new.category.version,
            raiser.organisation_id,
            raiser.user_id,
            raiser.client_id,
            new.subject.trim(),
            new.description.trim(),
            new.priority,
            new.object_kind,
            object_ref,
            assignee_org,
            assignee_team,
            at,
            first_due,
            target.resolution_minutes,
            resolution_due,
            warn_at,
        ],
    )?;
    let id = tx.last_insert_rowid();
    let add_party = |org: i64, role: &str| {
        tx.execute(
            "INSERT INTO request_parties (request_id, organisation_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (request_id, organisation_id) DO NOTHING",
            params![id, org, role],
        )
    };
    add_party(raiser.organisation_id, "requester")?;
    if let Some(org) = assignee_org {
        add_party(org, "executor")?;
    }
    for org in &parties {
        add_party(*org, "party")?;
    }
    let who = &raiser.actor.name;
    event(
        tx,
        id,
        Happened {
            actor: who,
            organisation_id: Some(raiser.organisation_id),
            kind: "created",
            status: Status::New,
            body: "",
            internal: false,
        },
        &at,
    )?;
    event(
        tx,
        id,
        Happened {
            actor: "system",
            organisation_id: None,
            kind: "assigned",
            status: Status::Assigned,
            body: &assignee_label(tx, assignee)?,
            internal: false,
        },
        &at,
    )?;
    for a in &new.attachments {
        tx.execute(
            "INSERT INTO request_attachments (request_id, filename, content_type, size, sha256, content, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                a.filename,
                a.content_type,
                a.content.len() as i64,
                crate::digest::sha256_hex(&a.content),
                a.content,
                at
            ],
        )?;
    }
    journal(
        tx,
        &raiser.actor,
        "requests.request.created",
        id,
        json!({
            "category": new.category.code, "category_version": new.category.version, "priority": new.priority,
            "object_kind": new.object_kind, "assignee": assignee_json(assignee), "attachments": new.attachments.len(),
            "client_id": raiser.client_id,
        }),
        now,
    )?;
    announce(tx, id, "request.created", "created", now)?;
    Ok(Raised { id, assignee })
}

fn assignee_json(assignee: Assignee) -> serde_json::Value {
    match assignee {
        Assignee::Team(team) => json!({"team": team}),
        Assignee::Organisation(org) => json!({"organisation_id": org}),
    }
}

/// How the history names an executor: the organisation's name and BIN, or the team's word.
fn assignee_label(conn: &Connection, assignee: Assignee) -> rusqlite::Result<String> {
    Ok(match assignee {
        Assignee::Team(team) => team.as_str().to_string(),
        Assignee::Organisation(org) => conn
            .query_row("SELECT name || ' (' || bin || ')' FROM organisations WHERE id = ?1", [org], |r| r.get(0))
            .optional()?
            .unwrap_or_default(),
    })
}

/// The request's row as its steps need it.
#[derive(Debug, Clone)]
struct Row {
    status: Status,
    requester: Option<i64>,
    assignee_org: Option<i64>,
    first_responded_at: Option<String>,
    resolution_due_at: Option<String>,
    remaining: Option<i64>,
    target: i64,
    closed_at: Option<String>,
    resolved_at: Option<String>,
}

fn row(conn: &Connection, id: i64) -> rusqlite::Result<Option<Row>> {
    conn.query_row(
        "SELECT status, requester_organisation_id, assignee_organisation_id, first_responded_at, resolution_due_at,
                resolution_remaining_minutes, resolution_target_minutes, closed_at, resolved_at
         FROM requests WHERE id = ?1",
        [id],
        |r| {
            Ok(Row {
                status: r.get("status")?,
                requester: r.get("requester_organisation_id")?,
                assignee_org: r.get("assignee_organisation_id")?,
                first_responded_at: r.get("first_responded_at")?,
                resolution_due_at: r.get("resolution_due_at")?,
                remaining: r.get("resolution_remaining_minutes")?,
                target: r.get("resolution_target_minutes")?,
                closed_at: r.get("closed_at")?,
                resolved_at: r.get("resolved_at")?,
            })
        },
    )
    .optional()
}

/// Which side of the request someone acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Operator,
    Executor,
    Requester,
    /// Another party: may comment, nothing else.
    Party,
}

fn side(conn: &Connection, id: i64, row: &Row, acting: &Acting) -> rusqlite::Result<Option<Side>> {
    Ok(match acting.organisation_id {
        None => Some(Side::Operator),
        Some(org) if row.assignee_org == Some(org) => Some(Side::Executor),
        Some(org) if row.requester == Some(org) => Some(Side::Requester),
        Some(org) if visible_to(conn, id, org)? => Some(Side::Party),
        Some(_) => None,
    })
}

/// A step of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The executor starts work.
    Start,
    /// The executor needs the requester: the resolution clock pauses.
    AskRequester,
    /// The executor (or the operator) resolves it.
    Resolve,
    /// The requester (or the operator) accepts the resolution.
    Close,
    /// The requester reopens a resolved request, or a closed one within `requests.reopen_days`.
    Reopen,
}

impl std::str::FromStr for Step {
    type Err = Refusal;

    fn from_str(word: &str) -> Result<Step, Refusal> {
        Ok(match word {
            "start" => Step::Start,
            "ask" => Step::AskRequester,
            "resolve" => Step::Resolve,
            "close" => Step::Close,
            "reopen" => Step::Reopen,
            _ => return Err(Refusal::Conflict),
        })
    }
}

impl Step {
    /// The steps a side may take from a status (what the pages offer).
    fn allowed(self, side: Side, status: Status) -> bool {
        let executor = matches!(side, Side::Executor | Side::Operator);
        let requester = matches!(side, Side::Requester | Side::Operator);
        match self {
            Step::Start => executor && matches!(status, Status::Assigned | Status::Waiting),
            Step::AskRequester => executor && matches!(status, Status::Assigned | Status::InProgress),
            Step::Resolve => executor && matches!(status, Status::Assigned | Status::InProgress | Status::Waiting),
            Step::Close => requester && status == Status::Resolved,
            Step::Reopen => requester && matches!(status, Status::Resolved | Status::Closed),
        }
    }

    fn target(self) -> Status {
        match self {
            Step::Start | Step::Reopen => Status::InProgress,
            Step::AskRequester => Status::Waiting,
            Step::Resolve => Status::Resolved,
            Step::Close => Status::Closed,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Step::Start => "start",
            Step::AskRequester => "ask",
            Step::Resolve => "resolve",
            Step::Close => "close",
            Step::Reopen => "reopen",
        }
    }
}

/// The steps `acting` may take on a request now (for the pages' buttons), by their words.
pub fn steps_for(
    conn: &Connection,
    id: i64,
    acting: &Acting,
    now: OffsetDateTime,
    rules: Rules,
) -> rusqlite::Result<Vec<&'static str>> {
    let Some(row) = row(conn, id)? else { return Ok(Vec::new()) };
    let Some(side) = side(conn, id, &row, acting)? else { return Ok(Vec::new()) };
    Ok([Step::Start, Step::AskRequester, Step::Resolve, Step::Close, Step::Reopen]
        .into_iter()
        .filter(|s| s.allowed(side, row.status) && (*s != Step::Reopen || reopenable(&row, now, rules)))
        .map(Step::word)
        .collect())
}

fn reopenable(row: &Row, now: OffsetDateTime, rules: Rules) -> bool {
    match (row.status, &row.closed_at) {
        (Status::Closed, Some(closed)) => {
            clock::parse(closed).is_ok_and(|at| now - at <= time::Duration::days(i64::from(rules.reopen_days)))
        }
        (Status::Resolved, _) => true,
        _ => false,
    }
}

/// The resolution clock's deadline and warning, restarted at `now` with `remaining` working minutes of `target`.
fn restart_clock(
    calendar: &Calendar,
    rules: Rules,
    now: OffsetDateTime,
    target: i64,
    remaining: i64,
) -> Result<(String, String), RequestsError> {
    let due = calendar.add_working(now, remaining)?;
    let spent = target - remaining;
    let warn = calendar.add_working(now, (rules.warn_after(target) - spent).max(0))?;
    Ok((clock::rfc3339(due), clock::rfc3339(warn)))
}

/// Marks the first response if the executor's side answers for the first time.
fn first_response(tx: &Transaction, id: i64, row: &Row, side: Side, at: &str) -> rusqlite::Result<()> {
    if row.first_responded_at.is_none() && matches!(side, Side::Executor | Side::Operator) {
        tx.execute(
            "UPDATE requests SET first_responded_at = ?1 WHERE id = ?2 AND first_responded_at IS NULL",
            params![at, id],
        )?;
    }
    Ok(())
}

/// Takes a step of the workflow, as a compare-and-set on the status read.
pub fn step(
    tx: &Transaction,
    clocks: &Clocks,
    id: i64,
    acting: &Acting,
    step: Step,
    note: &str,
    now: OffsetDateTime,
) -> Result<Status, RequestsError> {
    let (calendar, rules) = (&clocks.calendar, clocks.rules);
    let row = row(tx, id)?.ok_or(Refusal::NotAllowed)?;
    let side = side(tx, id, &row, acting)?.ok_or(Refusal::NotAllowed)?;
    if !step.allowed(side, row.status) {
        return Err(if matches!(side, Side::Party) { Refusal::NotAllowed } else { Refusal::Conflict }.into());
    }
    if step == Step::Reopen && !reopenable(&row, now, rules) {
        return Err(Refusal::Conflict.into());
    }
    let at = clock::rfc3339(now);
    let to = step.target();
    let changed = match (step, row.status) {
        (Step::AskRequester, _) => {
            // Pause: keep the working minutes left.
            let left = match row.resolution_due_at.as_deref().map(clock::parse) {
                Some(Ok(due)) => calendar.working_minutes_between(now, due)?,
                _ => row.remaining.unwrap_or(row.target),
            };
            tx.execute(
                "UPDATE requests SET status = 'waiting', resolution_due_at = NULL, resolution_warn_at = NULL,
                     resolution_remaining_minutes = ?1, updated_at = ?2 WHERE id = ?3 AND status = ?4",
                params![left, at, id, row.status],
            )?
        }
        (Step::Start | Step::Resolve, Status::Waiting) => {
            // Resume (and, for Resolve, stop at once).
            let left = row.remaining.unwrap_or(row.target);
            let (due, warn) = restart_clock(calendar, rules, now, row.target, left)?;
            let resolved = (to == Status::Resolved).then(|| at.clone());
            tx.execute(
                "UPDATE requests SET status = ?1, resolution_due_at = ?2, resolution_warn_at = ?3,
                     resolution_remaining_minutes = NULL, resolved_at = ?4, updated_at = ?5
                 WHERE id = ?6 AND status = 'waiting'",
                params![to, due, warn, resolved, at, id],
            )?
        }
        (Step::Reopen, _) => {
            let (due, warn) = restart_clock(calendar, rules, now, row.target, row.target)?;
            tx.execute(
                "UPDATE requests SET status = 'in_progress', resolution_due_at = ?1, resolution_warn_at = ?2,
                     resolution_remaining_minutes = NULL, resolved_at = NULL, closed_at = NULL, warned_at = NULL,
                     escalated_at = NULL, updated_at = ?3
                 WHERE id = ?4 AND status = ?5",
                params![due, warn, at, id, row.status],
            )?
        }
        (Step::Resolve, _) => tx.execute(
            "UPDATE requests SET status = 'resolved', resolved_at = ?1, updated_at = ?1 WHERE id = ?2 AND status = ?3",
            params![at, id, row.status],
        )?,
        (Step::Close, _) => tx.execute(
            "UPDATE requests SET status = 'closed', closed_at = ?1, updated_at = ?1 WHERE id = ?2 AND status = ?3",
            params![at, id, row.status],
        )?,
        (Step::Start, _) => tx.execute(
            "UPDATE requests SET status = 'in_progress', updated_at = ?1 WHERE id = ?2 AND status = ?3",
            params![at, id, row.status],
        )?,
    };
    if changed == 0 {
        return Err(Refusal::Conflict.into());
    }
    if step != Step::Close && step != Step::Reopen {
        first_response(tx, id, &row, side, &at)?;
    }
    let kind = if step == Step::Reopen { "reopened" } else { "status" };
    event(
        tx,
        id,
        Happened {
            actor: &acting.actor.name,
            organisation_id: acting.organisation_id,
            kind,
            status: to,
            body: note.trim(),
            internal: false,
        },
        &at,
    )?;
    journal(
        tx,
        &acting.actor,
        &format!("requests.request.{}", step.word()),
        id,
        json!({"from": row.status, "to": to, "resolved_at": row.resolved_at}),
        now,
    )?;
    let event_type = if to == Status::Resolved { "request.resolved" } else { "request.updated" };
    announce(tx, id, event_type, step.word(), now)?;
    Ok(to)
}

/// Adds a public comment, or (the operator only) an internal note. A requester's comment on a request waiting for
/// them resumes it; the executor's first comment is the first response.
pub fn comment(
    tx: &Transaction,
    clocks: &Clocks,
    id: i64,
    acting: &Acting,
    body: &str,
    internal: bool,
    now: OffsetDateTime,
) -> Result<(), RequestsError> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > DESCRIPTION_MAX {
        return Err(Refusal::Comment.into());
    }
    let row = row(tx, id)?.ok_or(Refusal::NotAllowed)?;
    let side = side(tx, id, &row, acting)?.ok_or(Refusal::NotAllowed)?;
    if internal && side != Side::Operator {
        return Err(Refusal::NotAllowed.into());
    }
    let at = clock::rfc3339(now);
    let kind = if internal { "note" } else { "comment" };
    let mut status = row.status;
    if !internal {
        first_response(tx, id, &row, side, &at)?;
        if side == Side::Requester && row.status == Status::Waiting {
            let left = row.remaining.unwrap_or(row.target);
            let (due, warn) = restart_clock(&clocks.calendar, clocks.rules, now, row.target, left)?;
            let changed = tx.execute(
                "UPDATE requests SET status = 'in_progress', resolution_due_at = ?1, resolution_warn_at = ?2,
                     resolution_remaining_minutes = NULL WHERE id = ?3 AND status = 'waiting'",
                params![due, warn, id],
            )?;
            if changed == 1 {
                status = Status::InProgress;
            }
        }
    }
    tx.execute("UPDATE requests SET updated_at = ?1 WHERE id = ?2", params![at, id])?;
    event(
        tx,
        id,
        Happened { actor: &acting.actor.name, organisation_id: acting.organisation_id, kind, status, body, internal },
        &at,
    )?;
    journal(
        tx,
        &acting.actor,
        if internal { "requests.request.noted" } else { "requests.request.commented" },
        id,
        json!({"status": status, "characters": body.chars().count()}),
        now,
    )?;
    if !internal {
        announce(tx, id, "request.updated", "comment", now)?;
    }
    Ok(())
}

/// The operator hands a request to another executor, with a reason: the request is assigned again, the new
/// organisation becomes a party (the former executor stays one).
pub fn reassign(
    tx: &Transaction,
    id: i64,
    actor: &Actor,
    to: Assignee,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), RequestsError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(Refusal::Reason.into());
    }
    let row = row(tx, id)?.ok_or(Refusal::NotAllowed)?;
    if !row.status.is_open() {
        return Err(Refusal::Conflict.into());
    }
    let (org, team) = match to {
        Assignee::Organisation(org) => (Some(org), None),
        Assignee::Team(team) => (None, Some(team)),
    };
    let at = clock::rfc3339(now);
    let changed = tx.execute(
        "UPDATE requests SET assignee_organisation_id = ?1, assignee_team = ?2,
             status = CASE WHEN status = 'waiting' THEN status ELSE 'assigned' END, updated_at = ?3
         WHERE id = ?4 AND status = ?5",
        params![org, team, at, id, row.status],
    )?;
    if changed == 0 {
        return Err(Refusal::Conflict.into());
    }
    if let Some(former) = row.assignee_org {
        tx.execute(
            "UPDATE request_parties SET role = 'party' WHERE request_id = ?1 AND organisation_id = ?2 AND role = 'executor'",
            params![id, former],
        )?;
    }
    if let Some(org) = org {
        tx.execute(
            "INSERT INTO request_parties (request_id, organisation_id, role) VALUES (?1, ?2, 'executor')
             ON CONFLICT (request_id, organisation_id) DO UPDATE SET role = CASE WHEN role = 'requester' THEN role ELSE 'executor' END",
            params![id, org],
        )?;
    }
    let status = if row.status == Status::Waiting { Status::Waiting } else { Status::Assigned };
    let label = assignee_label(tx, to)?;
    event(
        tx,
        id,
        Happened {
            actor: &actor.name,
            organisation_id: None,
            kind: "reassigned",
            status,
            body: &format!("{label}: {reason}"),
            internal: false,
        },
        &at,
    )?;
    journal(tx, actor, "requests.request.reassigned", id, json!({"to": assignee_json(to), "reason": reason}), now)?;
    announce(tx, id, "request.updated", "reassigned", now)?;
    Ok(())
}

/// The classifier's code of customers' complaints about a consent.
pub const COMPLAINT: &str = "complaint";

/// The longest complaint a customer may write.
pub const COMPLAINT_MAX: usize = 4000;

/// A customer complains about one of their consents (the caller has checked it is theirs): the request goes to the
/// consent's API user, at normal priority, and the operator sees it like every request. A consent that is not this
/// customer's is [`Refusal::UnknownObject`].
pub fn complain(
    tx: &Transaction,
    clocks: &Clocks,
    customer_id: i64,
    consent_id: &str,
    text: &str,
    now: OffsetDateTime,
) -> Result<i64, RequestsError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > COMPLAINT_MAX {
        return Err(Refusal::Description.into());
    }
    let user: Option<i64> = tx
        .query_row(
            "SELECT a.organisation_id FROM consents c JOIN applications a ON a.id = c.application_id
             WHERE c.id = ?1 AND c.customer_id = ?2",
            params![consent_id, customer_id],
            |r| r.get(0),
        )
        .optional()?;
    let user = user.ok_or(Refusal::UnknownObject)?;
    let category = super::classifier::category_by_code(tx, COMPLAINT)?.ok_or(Refusal::UnknownCategory)?;
    let target = category.target(Priority::Normal).ok_or(Refusal::Priority)?;
    let (calendar, rules) = (&clocks.calendar, clocks.rules);
    let at = clock::rfc3339(now);
    let first_due = clock::rfc3339(calendar.add_working(now, target.first_response_minutes)?);
    let resolution_due = clock::rfc3339(calendar.add_working(now, target.resolution_minutes)?);
    let warn_at = clock::rfc3339(calendar.add_working(now, rules.warn_after(target.resolution_minutes))?);
    tx.execute(
        "INSERT INTO requests (category_id, category_version, requester_customer_id, subject, description, priority,
             object_kind, object_ref, status, assignee_organisation_id, created_at, updated_at, first_response_due_at,
             resolution_target_minutes, resolution_due_at, resolution_warn_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'normal', 'consent', ?6, 'assigned', ?7, ?8, ?8, ?9, ?10, ?11, ?12)",
        params![
            category.id,
            category.version,
            customer_id,
            format!("Consent {consent_id}"),
            text,
            consent_id,
            user,
            at,
            first_due,
            target.resolution_minutes,
            resolution_due,
            warn_at
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO request_parties (request_id, organisation_id, role) VALUES (?1, ?2, 'executor')",
        params![id, user],
    )?;
    let actor = format!("customer:{customer_id}");
    let created = Happened {
        actor: &actor,
        organisation_id: None,
        kind: "created",
        status: Status::New,
        body: "",
        internal: false,
    };
    event(tx, id, created, &at)?;
    let label = assignee_label(tx, Assignee::Organisation(user))?;
    let assigned = Happened {
        actor: "system",
        organisation_id: None,
        kind: "assigned",
        status: Status::Assigned,
        body: &label,
        internal: false,
    };
    event(tx, id, assigned, &at)?;
    audit::append(
        tx,
        &Event::new(&actor, "requests.complaint.created", Outcome::Success)
            .at(now)
            .object(format!("request:{id}"))
            .detail(json!({"consent_id": consent_id, "assignee": {"organisation_id": user}})),
    )?;
    announce(tx, id, "request.created", "created", now)?;
    Ok(id)
}

/// A customer's complaints about a consent, newest first: (id, status, raised at).
pub fn complaints(
    conn: &Connection,
    customer_id: i64,
    consent_id: &str,
) -> rusqlite::Result<Vec<(i64, Status, String)>> {
    let mut stmt = conn.prepare(
        "SELECT id, status, created_at FROM requests WHERE requester_customer_id = ?1 AND object_kind = 'consent'
           AND object_ref = ?2 ORDER BY id DESC",
    )?;
    stmt.query_map(params![customer_id, consent_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
}

/// A request as the pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: i64,
    pub category_code: String,
    #[serde(skip)]
    pub category_names: [String; 3],
    pub subject: String,
    pub description: String,
    pub priority: Priority,
    pub status: Status,
    pub object_kind: ObjectKind,
    pub object_ref: String,
    /// `None` for a customer's complaint.
    pub requester_organisation_id: Option<i64>,
    pub requester_name: String,
    pub requester_bin: String,
    pub assignee_organisation_id: Option<i64>,
    pub assignee_name: Option<String>,
    pub assignee_team: Option<Team>,
    pub created_at: String,
    pub updated_at: String,
    pub first_response_due_at: String,
    pub first_responded_at: Option<String>,
    pub resolution_due_at: Option<String>,
    pub resolution_remaining_minutes: Option<i64>,
    pub warned_at: Option<String>,
    pub escalated_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
}

impl Summary {
    /// Whether a customer raised it (a complaint about a consent).
    pub fn is_customer(&self) -> bool {
        self.requester_organisation_id.is_none()
    }

    pub fn category_name(&self) -> &str {
        match crate::i18n::current() {
            crate::i18n::Lang::En => &self.category_names[0],
            crate::i18n::Lang::Ru => &self.category_names[1],
            crate::i18n::Lang::Kk => &self.category_names[2],
        }
    }

    /// Whether the first response's deadline passed without one (as of `now`, RFC 3339).
    pub fn first_response_late(&self, now: &str) -> bool {
        match &self.first_responded_at {
            Some(at) => *at > self.first_response_due_at,
            None => now > self.first_response_due_at.as_str(),
        }
    }
}

const SUMMARY: &str =
    "SELECT r.id, c.code, c.name_en, c.name_ru, c.name_kk, r.subject, r.description, r.priority, r.status,
        r.object_kind, r.object_ref, r.requester_organisation_id, coalesce(q.name, '') AS requester_name, coalesce(q.bin, '') AS requester_bin,
        r.assignee_organisation_id, a.name AS assignee_name, r.assignee_team, r.created_at, r.updated_at,
        r.first_response_due_at, r.first_responded_at, r.resolution_due_at, r.resolution_remaining_minutes,
        r.warned_at, r.escalated_at, r.resolved_at, r.closed_at
    FROM requests r JOIN request_categories c ON c.id = r.category_id
    LEFT JOIN organisations q ON q.id = r.requester_organisation_id
    LEFT JOIN organisations a ON a.id = r.assignee_organisation_id";

fn summary(r: &rusqlite::Row) -> rusqlite::Result<Summary> {
    Ok(Summary {
        id: r.get(0)?,
        category_code: r.get(1)?,
        category_names: [r.get(2)?, r.get(3)?, r.get(4)?],
        subject: r.get(5)?,
        description: r.get(6)?,
        priority: r.get(7)?,
        status: r.get(8)?,
        object_kind: r.get(9)?,
        object_ref: r.get(10)?,
        requester_organisation_id: r.get(11)?,
        requester_name: r.get(12)?,
        requester_bin: r.get(13)?,
        assignee_organisation_id: r.get(14)?,
        assignee_name: r.get(15)?,
        assignee_team: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        first_response_due_at: r.get(19)?,
        first_responded_at: r.get(20)?,
        resolution_due_at: r.get(21)?,
        resolution_remaining_minutes: r.get(22)?,
        warned_at: r.get(23)?,
        escalated_at: r.get(24)?,
        resolved_at: r.get(25)?,
        closed_at: r.get(26)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Summary>> {
    conn.query_row(&format!("{SUMMARY} WHERE r.id = ?1"), [id], summary).optional()
}

/// The requests an organisation sees, newest first.
pub fn for_organisation(conn: &Connection, organisation_id: i64, limit: usize) -> rusqlite::Result<Vec<Summary>> {
    let mut stmt = conn.prepare(&format!(
        "{SUMMARY} WHERE r.id IN (SELECT request_id FROM request_parties WHERE organisation_id = ?1)
         ORDER BY r.id DESC LIMIT ?2"
    ))?;
    stmt.query_map(params![organisation_id, limit as i64], summary)?.collect()
}

/// What the console's list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListFilter {
    #[default]
    Open,
    Escalated,
    All,
    /// Assigned to this operator team and not yet taken up (what the header counts for its members).
    Awaiting(Team),
}

/// Every request (the operator's and the regulator's view), newest first.
pub fn all(conn: &Connection, filter: ListFilter, limit: usize) -> rusqlite::Result<Vec<Summary>> {
    let (condition, team) = match filter {
        ListFilter::Open => ("WHERE r.status NOT IN ('resolved', 'closed')", None),
        ListFilter::Escalated => ("WHERE r.escalated_at IS NOT NULL AND r.status NOT IN ('resolved', 'closed')", None),
        ListFilter::All => ("", None),
        ListFilter::Awaiting(team) => ("WHERE r.assignee_team = ?2 AND r.status = 'assigned'", Some(team)),
    };
    let mut stmt = conn.prepare(&format!("{SUMMARY} {condition} ORDER BY r.id DESC LIMIT ?1"))?;
    match team {
        Some(team) => stmt.query_map(params![limit as i64, team], summary)?.collect(),
        None => stmt.query_map([limit as i64], summary)?.collect(),
    }
}

/// How many requests are assigned to `team` and not yet taken up (raised, re-assigned or escalated to it, nobody
/// has started work): one range of the index `requests_awaiting_team`.
pub fn awaiting_team(conn: &Connection, team: Team) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM requests WHERE assignee_team = ?1 AND status = 'assigned'")?
        .query_row([team], |r| r.get(0))
}

/// One entry of a request's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub actor: String,
    pub organisation_name: Option<String>,
    pub kind: String,
    pub status: Status,
    pub body: String,
    pub internal: bool,
}

impl HistoryEntry {
    pub fn kind_key(&self) -> &'static str {
        match self.kind.as_str() {
            "created" => "requests.event.created",
            "assigned" => "requests.event.assigned",
            "reassigned" => "requests.event.reassigned",
            "status" => "requests.event.status",
            "comment" => "requests.event.comment",
            "note" => "requests.event.note",
            "reopened" => "requests.event.reopened",
            "warning" => "requests.event.warning",
            "breach" => "requests.event.breach",
            _ => "requests.event.escalated",
        }
    }
}

/// A request's history, oldest first; internal notes only when asked for (the operator's view).
pub fn history(conn: &Connection, id: i64, with_internal: bool) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = conn.prepare(
        "SELECT e.at, e.actor, o.name, e.kind, e.status, e.body, e.internal FROM request_events e
         LEFT JOIN organisations o ON o.id = e.actor_organisation_id
         WHERE e.request_id = ?1 AND (?2 OR e.internal = 0) ORDER BY e.id",
    )?;
    stmt.query_map(params![id, with_internal], |r| {
        Ok(HistoryEntry {
            at: r.get(0)?,
            actor: r.get(1)?,
            organisation_name: r.get(2)?,
            kind: r.get(3)?,
            status: r.get(4)?,
            body: r.get(5)?,
            internal: r.get(6)?,
        })
    })?
    .collect()
}

/// An attachment as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

pub fn attachments(conn: &Connection, id: i64) -> rusqlite::Result<Vec<Attachment>> {
    let mut stmt = conn.prepare(
        "SELECT id, filename, content_type, size, sha256 FROM request_attachments WHERE request_id = ?1 ORDER BY id",
    )?;
    stmt.query_map([id], |r| {
        Ok(Attachment {
            id: r.get(0)?,
            filename: r.get(1)?,
            content_type: r.get(2)?,
            size: r.get(3)?,
            sha256: r.get(4)?,
        })
    })?
    .collect()
}

/// An attachment's file, as the accreditation documents are served.
pub fn attachment_content(
    conn: &Connection,
    request_id: i64,
    attachment_id: i64,
) -> rusqlite::Result<Option<crate::participants::accreditation::DocumentContent>> {
    conn.query_row(
        "SELECT a.filename, a.content_type, coalesce(r.requester_organisation_id, 0), a.content FROM request_attachments a
         JOIN requests r ON r.id = a.request_id WHERE a.id = ?1 AND a.request_id = ?2",
        params![attachment_id, request_id],
        |r| {
            Ok(crate::participants::accreditation::DocumentContent {
                filename: r.get(0)?,
                content_type: r.get(1)?,
                organisation_id: r.get(2)?,
                content: r.get(3)?,
            })
        },
    )
    .optional()
}

/// The metered record of the exchange a request names: who called whom, when, which endpoint, how it ended and how
/// long it took — never account data (the meter keeps none).
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub interaction_id: String,
    pub at: String,
    pub user_name: String,
    pub application_name: String,
    pub provider_name: Option<String>,
    pub api_name: Option<String>,
    pub endpoint: String,
    pub status: i64,
    pub latency_ms: i64,
    pub error_code: Option<String>,
    pub environment: String,
}

pub fn evidence(conn: &Connection, id: i64) -> rusqlite::Result<Option<Evidence>> {
    conn.query_row(
        "SELECT e.interaction_id, e.at, u.name, ap.name, p.name, api.name || ' ' || api.version, e.endpoint, e.status,
                e.latency_ms, e.error_code, e.environment
         FROM requests r
         JOIN exchanges e ON e.interaction_id = r.object_ref
              AND (e.user_organisation_id = r.requester_organisation_id OR e.provider_organisation_id = r.requester_organisation_id)
         JOIN organisations u ON u.id = e.user_organisation_id
         JOIN applications ap ON ap.id = e.application_id
         LEFT JOIN organisations p ON p.id = e.provider_organisation_id
         LEFT JOIN apis api ON api.id = e.api_id
         WHERE r.id = ?1 AND r.object_kind = 'interaction'
         ORDER BY e.id DESC LIMIT 1",
        [id],
        |r| {
            Ok(Evidence {
                interaction_id: r.get(0)?,
                at: r.get(1)?,
                user_name: r.get(2)?,
                application_name: r.get(3)?,
                provider_name: r.get(4)?,
                api_name: r.get(5)?,
                endpoint: r.get(6)?,
                status: r.get(7)?,
                latency_ms: r.get(8)?,
                error_code: r.get(9)?,
                environment: r.get(10)?,
            })
        },
    )
    .optional()
}

/// Organisations the operator may hand a request to: every accredited one, by name.
pub fn assignable_organisations(conn: &Connection) -> rusqlite::Result<Vec<(i64, String, String)>> {
    let mut stmt =
        conn.prepare("SELECT id, name, bin FROM organisations WHERE status = 'accredited' ORDER BY name LIMIT 1000")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The header counts on every page: its queries must read an index range, never scan a table.
    #[test]
    fn the_header_s_counts_read_their_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let requests =
            plan("SELECT count(*) FROM requests WHERE assignee_team = 'operator_staff' AND status = 'assigned'");
        assert!(requests.contains("USING COVERING INDEX requests_awaiting_team"), "{requests}");
        let notices = plan(
            "SELECT count(*) FROM notices WHERE organisation_id = 1
               AND id > coalesce((SELECT last_read_id FROM notice_reads WHERE user_id = 2), 0)",
        );
        assert!(
            notices.contains("USING COVERING INDEX notices_organisation") && !notices.contains("SCAN notices"),
            "{notices}"
        );
        assert_eq!(awaiting_team(&conn, Team::OperatorStaff).unwrap(), 0);
    }
}
