//! Request management: participants raise questions, incidents and disputes; a classifier kept by the operator's
//! administrators decides who executes each and within which working time; the executor answers, the requester
//! closes; every change is in the request's history and in the audit journal.
//!
//! - [`classifier`]: the tree of categories, their executors and SLA targets, versioned.
//! - [`calendar`]: the operator's working time (hours, weekends, Kazakhstan's public holidays).
//! - [`case`]: the requests themselves (the one writer of `requests`, `request_parties`, `request_events`,
//!   `request_attachments`): raising one with its auto-assignment, the status workflow, comments and notes,
//!   re-assignment, visibility, the evidence of an exchange.
//! - [`sla`]: the clocks' deadlines, the job that warns, escalates and counts breaches.
//! - [`pages`] (the personal account, `/org/requests`), [`console`] (`/console/requests`), [`api`] (mTLS,
//!   `/participant/v1/requests`).
//!
//! Who sees what: a participant's members see the requests their organisation raised, executes or is a party of;
//! the operator's staff see and handle all, the regulator reads all; internal notes are the operator's only.

pub mod api;
pub mod calendar;
pub mod case;
pub mod classifier;
pub mod console;
pub mod pages;
pub mod sla;

use axum::Router;
use axum::http::StatusCode;

use crate::web::AppState;
use crate::web::pages::PageError;

pub fn router() -> Router<AppState> {
    Router::new().merge(pages::router()).merge(console::router()).merge(api::router())
}

pub use sla::spawn;

crate::text_enum! {
    /// How urgent a request is: its SLA targets depend on it.
    pub enum Priority {
        Low = "low",
        Normal = "normal",
        High = "high",
        Critical = "critical",
    }
}

impl Priority {
    pub fn text_key(self) -> &'static str {
        match self {
            Priority::Low => "requests.priority.low",
            Priority::Normal => "requests.priority.normal",
            Priority::High => "requests.priority.high",
            Priority::Critical => "requests.priority.critical",
        }
    }
}

crate::text_enum! {
    /// Where a request stands: new → assigned → in progress → waiting for the requester → resolved → closed.
    pub enum Status {
        New = "new",
        Assigned = "assigned",
        InProgress = "in_progress",
        Waiting = "waiting",
        Resolved = "resolved",
        Closed = "closed",
    }
}

impl Status {
    pub fn text_key(self) -> &'static str {
        match self {
            Status::New => "requests.status.new",
            Status::Assigned => "requests.status.assigned",
            Status::InProgress => "requests.status.in_progress",
            Status::Waiting => "requests.status.waiting",
            Status::Resolved => "requests.status.resolved",
            Status::Closed => "requests.status.closed",
        }
    }

    /// Whether the request is still being worked on (its clocks may run).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    pub fn badge_class(self) -> &'static str {
        match self {
            Status::New | Status::Assigned | Status::InProgress => "status-submitted",
            Status::Waiting => "status-changes_requested",
            Status::Resolved | Status::Closed => "status-valid",
        }
    }
}

crate::text_enum! {
    /// Who executes a category's requests.
    pub enum Executor {
        /// The operator's team (the category's `team`).
        Operator = "operator",
        /// The organisation the request's object points to (an API's provider, an application's owner, the other
        /// side of a consent or an exchange); the operator's team when the object names none.
        Counterparty = "counterparty",
        /// Both parties of the object see it; the operator's team arbitrates.
        Parties = "parties",
    }
}

impl Executor {
    pub fn text_key(self) -> &'static str {
        match self {
            Executor::Operator => "requests.executor.operator",
            Executor::Counterparty => "requests.executor.counterparty",
            Executor::Parties => "requests.executor.parties",
        }
    }
}

crate::text_enum! {
    /// The operator's teams, by the role of their members.
    pub enum Team {
        OperatorStaff = "operator_staff",
        OperatorAdmin = "operator_admin",
    }
}

impl Team {
    /// The team an operator's person belongs to: staff to the staff, administrators to the supervisors; nobody
    /// else's.
    pub fn of_role(role: crate::identity::Role) -> Option<Team> {
        match role {
            crate::identity::Role::OperatorStaff => Some(Team::OperatorStaff),
            crate::identity::Role::OperatorAdmin => Some(Team::OperatorAdmin),
            _ => None,
        }
    }

    pub fn text_key(self) -> &'static str {
        match self {
            Team::OperatorStaff => "requests.team.operator_staff",
            Team::OperatorAdmin => "requests.team.operator_admin",
        }
    }
}

crate::text_enum! {
    /// What a request may be about.
    pub enum ObjectKind {
        None = "",
        Api = "api",
        Application = "application",
        Consent = "consent",
        Interaction = "interaction",
        Accreditation = "accreditation",
        /// A line of an issued billing statement (`KOPIR-YYYYMM-NNNNNN/N`, or `…/N/fee` for its platform fee).
        StatementLine = "statement_line",
    }
}

impl ObjectKind {
    pub fn text_key(self) -> &'static str {
        match self {
            ObjectKind::None => "requests.object.none",
            ObjectKind::Api => "requests.object.api",
            ObjectKind::Application => "requests.object.application",
            ObjectKind::Consent => "requests.object.consent",
            ObjectKind::Interaction => "requests.object.interaction",
            ObjectKind::Accreditation => "requests.object.accreditation",
            ObjectKind::StatementLine => "billing_dispute.object",
        }
    }
}

/// Everything the domain can fail with: a refusal the person or system can act on ([`Refusal`]: the pages show its
/// text again on their form, the API sends it in the standard error body), or a failure (logged, never shown).
#[derive(Debug, thiserror::Error)]
pub enum RequestsError {
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Calendar(#[from] calendar::CalendarError),
    #[error("the calendar configuration: {0}")]
    Config(String),
}

impl From<Refusal> for RequestsError {
    fn from(refusal: Refusal) -> RequestsError {
        RequestsError::Refused(refusal)
    }
}

impl RequestsError {
    /// The refusal, for a handler that shows it on its form again; a failure stays the error it is (so `?` turns it
    /// into the error page or body).
    pub fn into_refusal(self) -> Result<Refusal, RequestsError> {
        match self {
            RequestsError::Refused(refusal) => Ok(refusal),
            failure => Err(failure),
        }
    }
}

/// A refusal that reaches a page unhandled is an error page with its status and text; a failure is an internal error.
impl From<RequestsError> for PageError {
    fn from(error: RequestsError) -> PageError {
        match error {
            RequestsError::Refused(refusal) => PageError::new(refusal.status(), refusal.text_key()),
            failure => PageError::internal(&failure),
        }
    }
}

/// A refusal a person or system can act on (the pages show its text; the API sends its English text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownCategory,
    UnknownObject,
    Subject,
    Description,
    Priority,
    AttachmentType,
    AttachmentSize,
    TooManyAttachments,
    /// The request is not in a state that allows this (someone else changed it first, or the step does not apply).
    Conflict,
    /// This party may not take this step.
    NotAllowed,
    Comment,
    Reason,
    Assignee,
}

impl Refusal {
    pub fn text_key(self) -> &'static str {
        match self {
            Refusal::UnknownCategory => "requests.error.category",
            Refusal::UnknownObject => "requests.error.object",
            Refusal::Subject => "requests.error.subject",
            Refusal::Description => "requests.error.description",
            Refusal::Priority => "requests.error.priority",
            Refusal::AttachmentType => "requests.error.attachment_type",
            Refusal::AttachmentSize => "requests.error.attachment_size",
            Refusal::TooManyAttachments => "requests.error.too_many",
            Refusal::Conflict => "requests.error.conflict",
            Refusal::NotAllowed => "requests.error.not_allowed",
            Refusal::Comment => "requests.error.comment",
            Refusal::Reason => "requests.error.reason",
            Refusal::Assignee => "requests.error.assignee",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Refusal::AttachmentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::AttachmentSize => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Conflict => StatusCode::CONFLICT,
            Refusal::NotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The field of the form or JSON body it is about.
    pub fn field(self) -> &'static str {
        match self {
            Refusal::UnknownCategory => "category",
            Refusal::UnknownObject => "object",
            Refusal::Subject => "subject",
            Refusal::Description => "description",
            Refusal::Priority => "priority",
            Refusal::AttachmentType | Refusal::AttachmentSize | Refusal::TooManyAttachments => "attachments",
            Refusal::Conflict | Refusal::NotAllowed => "status",
            Refusal::Comment => "body",
            Refusal::Reason => "reason",
            Refusal::Assignee => "assignee",
        }
    }
}

/// A stored time as the operator reads it: `2027-03-25 11:00` in the operator's time zone.
pub fn local_minute(zone: &jiff::tz::TimeZone, rfc3339: &str) -> String {
    crate::store::calendar::local_minute(zone, rfc3339)
}

/// The type of an attachment from its first bytes (PDF, PNG or JPEG); anything else is refused whatever it claims.
pub fn sniff_type(bytes: &[u8]) -> Option<&'static str> {
    crate::participants::accreditation::sniff_type(bytes)
}
