//! The personal account's requests (`/org/requests`): any member of a participant raises a request (a multipart form:
//! its attachments are judged by their bytes while they stream in), lists the requests the organisation raised,
//! executes or is a party of, reads one — its history without the operator's internal notes, its attachments and,
//! for a request naming an exchange, the metered record — comments, and takes the steps of the workflow its side may.
//! Another organisation's request is "not found", the same as a missing one.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::case::{
    self, Acting, Attachment, Clocks, Evidence, HistoryEntry, NewAttachment, NewRequest, Raised, Raiser, Rules, Summary,
};
use super::classifier::{self, Category};
use super::{ObjectKind, Priority, Refusal, RequestsError};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantMember};

/// The body limit of the forms with attachments: the configuration's largest (`requests.max_attachments` ×
/// `requests.max_attachment_bytes` is at most 30 MiB) plus room for the other fields and the multipart framing.
pub const MAX_FORM_BYTES: usize = 31 * 1024 * 1024;

/// How many requests the lists show.
pub const LIST_LIMIT: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/requests", get(list).post(raise).layer(DefaultBodyLimit::max(MAX_FORM_BYTES)))
        .route("/org/requests/new", get(new_form))
        .route("/org/requests/{id}", get(detail))
        .route("/org/requests/{id}/comment", post(comment))
        .route("/org/requests/{id}/step", post(step))
        .route("/org/requests/{id}/attachments/{attachment}", get(attachment))
}

#[derive(Template)]
#[template(path = "requests_list.html")]
struct ListPage<'a> {
    t: Texts,
    requests: Vec<Summary>,
    org_id: i64,
    zone: &'a jiff::tz::TimeZone,
}

impl ListPage<'_> {
    fn local(&self, at: &str) -> String {
        super::local_minute(self.zone, at)
    }

    /// The organisation's part in a request.
    fn role_key(&self, request: &Summary) -> &'static str {
        if request.requester_organisation_id == Some(self.org_id) {
            "requests.role.requester"
        } else if request.assignee_organisation_id == Some(self.org_id) {
            "requests.role.executor"
        } else {
            "requests.role.party"
        }
    }
}

/// Participant members: the organisation's requests.
async fn list(State(state): State<AppState>, ParticipantMember(who): ParticipantMember) -> Result<Response, PageError> {
    let org_id = who.org.id;
    let requests =
        state.db.read(move |c| case::for_organisation(c, org_id, LIST_LIMIT).map_err(StoreError::from)).await?;
    Ok(render(&ListPage { t: Texts::current(), requests, org_id, zone: state.config.time_zone.zone() }))
}

/// The raising form's values, shown again after a refusal.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub category: String,
    pub subject: String,
    pub description: String,
    pub priority: String,
    pub object_kind: String,
    pub object_ref: String,
}

#[derive(Template)]
#[template(path = "requests_new.html")]
struct NewPage<'a> {
    t: Texts,
    csrf: &'a str,
    categories: Vec<Category>,
    form: Form,
    error: Option<Refusal>,
    priorities: &'static [Priority],
    objects: &'static [ObjectKind],
    max_files: usize,
    max_mib: usize,
}

fn new_page(state: &AppState, who: &Member, categories: Vec<Category>, form: Form, error: Option<Refusal>) -> Response {
    let page = NewPage {
        t: Texts::current(),
        csrf: who.csrf(),
        categories: categories.into_iter().filter(|c| c.active).collect(),
        form,
        error,
        priorities: Priority::ALL,
        objects: ObjectKind::ALL,
        max_files: state.config.requests.max_attachments,
        max_mib: state.config.requests.max_attachment_bytes.div_ceil(1024 * 1024),
    };
    let status = error.map_or(StatusCode::OK, Refusal::status);
    render_status(status, &page)
}

/// What a link may prefill on the form (the statement page's "Dispute": the category and the line).
#[derive(Debug, Default, Deserialize)]
struct Prefill {
    #[serde(default)]
    category: String,
    #[serde(default)]
    object_kind: String,
    #[serde(default)]
    object_ref: String,
}

/// Participant members: the form to raise a request, prefilled from the link's query (nothing is checked until it is
/// sent; a malformed query prefills nothing).
async fn new_form(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    prefill: Result<Query<Prefill>, QueryRejection>,
) -> Result<Response, PageError> {
    let categories = state.db.read(|c| classifier::categories(c).map_err(StoreError::from)).await?;
    let Query(prefill) = prefill.unwrap_or_default();
    let subject = match prefill.object_kind.parse::<ObjectKind>() {
        Ok(ObjectKind::StatementLine) if !prefill.object_ref.is_empty() => {
            format!("{} {}", Texts::current().get("billing_dispute.object"), prefill.object_ref.trim())
        }
        _ => String::new(),
    };
    let form = Form {
        priority: Priority::Normal.as_str().into(),
        category: prefill.category.trim().to_string(),
        object_kind: prefill.object_kind.trim().to_string(),
        object_ref: prefill.object_ref.trim().to_string(),
        subject: subject.chars().take(super::case::SUBJECT_MAX).collect(),
        ..Form::default()
    };
    Ok(new_page(&state, &who, categories, form, None))
}

/// The multipart form as posted.
#[derive(Default)]
struct Posted {
    csrf: String,
    form: Form,
    attachments: Vec<NewAttachment>,
    problem: Option<Refusal>,
    malformed: bool,
}

const MAX_TEXT_FIELD: usize = 16 * 1024;

/// Reads the form; each file is judged by its bytes and size as it streams in, and the rest is still read so the
/// browser gets the answer.
async fn read_form(mut multipart: Multipart, max_bytes: usize, max_files: usize) -> Posted {
    let mut posted = Posted::default();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                posted.malformed = true;
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let is_file = name == "attachments";
        let filename = field.file_name().map(crate::participants::accreditation::clean_filename);
        let limit = if is_file { max_bytes } else { MAX_TEXT_FIELD };
        let (mut bytes, mut over) = (Vec::new(), false);
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) if over || bytes.len() + chunk.len() > limit => {
                    over = true;
                    bytes.clear();
                }
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(_) => {
                    posted.malformed = true;
                    return posted;
                }
            }
        }
        if is_file {
            if over {
                posted.problem.get_or_insert(Refusal::AttachmentSize);
                continue;
            }
            // A file input left empty still sends a part, with no name and no bytes.
            if bytes.is_empty() {
                continue;
            }
            match super::sniff_type(&bytes) {
                Some(_) if posted.attachments.len() >= max_files => {
                    posted.problem.get_or_insert(Refusal::TooManyAttachments);
                }
                Some(content_type) => posted.attachments.push(NewAttachment {
                    filename: filename.unwrap_or_else(|| "attachment".into()),
                    content_type,
                    content: bytes,
                }),
                None => {
                    posted.problem.get_or_insert(Refusal::AttachmentType);
                }
            }
            continue;
        }
        if over {
            posted.malformed = true;
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let form = &mut posted.form;
        match name.as_str() {
            "csrf" => posted.csrf = text,
            "category" => form.category = text.trim().to_string(),
            "subject" => form.subject = text,
            "description" => form.description = text,
            "priority" => form.priority = text.trim().to_string(),
            "object_kind" => form.object_kind = text.trim().to_string(),
            "object_ref" => form.object_ref = text.trim().to_string(),
            _ => {}
        }
    }
    posted
}

/// Turns the posted form into a request, or says which field is wrong.
pub fn parse_request(
    categories: &[Category],
    form: &Form,
    attachments: Vec<NewAttachment>,
) -> Result<NewRequest, Refusal> {
    let category = categories.iter().find(|c| c.code == form.category && c.active).ok_or(Refusal::UnknownCategory)?;
    let priority = form.priority.parse::<Priority>().map_err(|_| Refusal::Priority)?;
    let object_kind = form.object_kind.parse::<ObjectKind>().map_err(|_| Refusal::UnknownObject)?;
    let new = NewRequest {
        category: category.clone(),
        subject: form.subject.clone(),
        description: form.description.clone(),
        priority,
        object_kind,
        object_ref: if object_kind == ObjectKind::None { String::new() } else { form.object_ref.clone() },
        attachments,
    };
    new.check()?;
    Ok(new)
}

/// Raises a parsed request in one transaction.
pub async fn store_request(state: &AppState, raiser: Raiser, new: NewRequest) -> Result<Raised, RequestsError> {
    let clocks = Clocks::from_config(&state.config)?;
    let now = state.clock.now();
    state.db.write(move |tx| case::raise(tx, &clocks, &raiser, &new, now)).await
}

/// Participant members: raise a request.
async fn raise(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    multipart: Multipart,
) -> Result<Response, PageError> {
    let settings = &state.config.requests;
    let posted = read_form(multipart, settings.max_attachment_bytes, settings.max_attachments).await;
    // A multipart form: its token is one of the parts, so it is checked here rather than by `CsrfForm`.
    who.check_form(&posted.csrf)?;
    if posted.malformed {
        return Err(PageError::new(StatusCode::BAD_REQUEST, "error.bad_form"));
    }
    let categories = state.db.read(|c| classifier::categories(c).map_err(StoreError::from)).await?;
    let raiser =
        Raiser { organisation_id: who.org.id, user_id: Some(who.user.id), client_id: None, actor: who.audit_actor() };
    let raised: Result<Raised, RequestsError> = match posted.problem {
        Some(problem) => Err(problem.into()),
        None => match parse_request(&categories, &posted.form, posted.attachments) {
            Ok(new) => store_request(&state, raiser, new).await,
            Err(refusal) => Err(refusal.into()),
        },
    };
    match raised {
        Ok(Raised { id, .. }) => Ok(Redirect::to(&format!("/org/requests/{id}")).into_response()),
        Err(error) => {
            let refusal = error.into_refusal()?;
            tracing::info!(organisation = %who.org.bin, ?refusal, "request refused");
            Ok(new_page(&state, &who, categories, posted.form, Some(refusal)))
        }
    }
}

/// What the detail page shows, for a participant or the operator.
#[derive(Template)]
#[template(path = "request.html")]
pub struct DetailPage<'a> {
    pub t: Texts,
    pub csrf: &'a str,
    /// The console's view (internal notes, re-assignment) rather than the personal account's.
    pub console: bool,
    /// Whether the viewer may act (comment, take steps): not the regulator.
    pub can_act: bool,
    pub request: Summary,
    pub history: Vec<HistoryEntry>,
    pub attachments: Vec<Attachment>,
    pub evidence: Option<Evidence>,
    pub steps: Vec<&'static str>,
    pub organisations: Vec<(i64, String, String)>,
    pub zone: &'a jiff::tz::TimeZone,
    pub now: String,
    pub error: Option<Refusal>,
    pub base: String,
}

impl DetailPage<'_> {
    pub fn local(&self, at: &str) -> String {
        super::local_minute(self.zone, at)
    }

    pub fn step_key(&self, step: &str) -> &'static str {
        match step {
            "start" => "requests.step.start",
            "ask" => "requests.step.ask",
            "resolve" => "requests.step.resolve",
            "close" => "requests.step.close",
            _ => "requests.step.reopen",
        }
    }
}

/// Everything the detail page reads, in one read.
pub async fn load_detail(
    state: &AppState,
    id: i64,
    acting: Acting,
    with_internal: bool,
) -> Result<Option<(Summary, Vec<HistoryEntry>, Vec<Attachment>, Option<Evidence>, Vec<&'static str>)>, StoreError> {
    let now = state.clock.now();
    let rules = Rules::from_config(&state.config.requests);
    state
        .db
        .read(move |c| -> Result<_, StoreError> {
            if let Some(org) = acting.organisation_id
                && !case::visible_to(c, id, org)?
            {
                return Ok(None);
            }
            let Some(request) = case::get(c, id)? else { return Ok(None) };
            let history = case::history(c, id, with_internal)?;
            let attachments = case::attachments(c, id)?;
            let evidence = case::evidence(c, id)?;
            let steps = case::steps_for(c, id, &acting, now, rules)?;
            Ok(Some((request, history, attachments, evidence, steps)))
        })
        .await
}

async fn detail_response(
    state: &AppState,
    who: &Member,
    id: i64,
    error: Option<Refusal>,
) -> Result<Response, PageError> {
    let acting = Acting::member(who.audit_actor(), who.org.id);
    let Some((request, history, attachments, evidence, steps)) = load_detail(state, id, acting, false).await? else {
        return Err(PageError::not_found());
    };
    let page = DetailPage {
        t: Texts::current(),
        csrf: who.csrf(),
        console: false,
        can_act: true,
        request,
        history,
        attachments,
        evidence,
        steps,
        organisations: Vec::new(),
        zone: state.config.time_zone.zone(),
        now: state.clock.now_rfc3339(),
        error,
        base: format!("/org/requests/{id}"),
    };
    Ok(render_status(error.map_or(StatusCode::OK, Refusal::status), &page))
}

/// Participant members of an organisation the request concerns: the request.
async fn detail(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    detail_response(&state, &who, id, None).await
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    pub body: String,
    /// The operator's internal note (ignored on the personal account's form).
    #[serde(default)]
    pub internal: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StepForm {
    pub step: String,
    #[serde(default)]
    pub note: String,
}

/// Participant members of an organisation the request concerns: a public comment.
async fn comment(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<CommentForm>,
) -> Result<Response, PageError> {
    let acting = Acting::member(who.audit_actor(), who.org.id);
    match apply_comment(&state, id, acting, form.body, false).await {
        Ok(()) => Ok(Redirect::to(&format!("/org/requests/{id}")).into_response()),
        Err(error) => match error.into_refusal()? {
            Refusal::NotAllowed => Err(PageError::not_found()),
            refusal => detail_response(&state, &who, id, Some(refusal)).await,
        },
    }
}

/// Participant members of an organisation the request concerns: a step of the workflow their side may take.
async fn step(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<StepForm>,
) -> Result<Response, PageError> {
    let acting = Acting::member(who.audit_actor(), who.org.id);
    let visible = state
        .db
        .read(move |c| case::visible_to(c, id, acting.organisation_id.unwrap_or_default()).map_err(StoreError::from))
        .await?;
    if !visible {
        return Err(PageError::not_found());
    }
    let acting = Acting::member(who.audit_actor(), who.org.id);
    match apply_step(&state, id, acting, &form).await {
        Ok(_) => Ok(Redirect::to(&format!("/org/requests/{id}")).into_response()),
        Err(error) => detail_response(&state, &who, id, Some(error.into_refusal()?)).await,
    }
}

/// Adds a comment or note in one transaction.
pub async fn apply_comment(
    state: &AppState,
    id: i64,
    acting: Acting,
    body: String,
    internal: bool,
) -> Result<(), RequestsError> {
    let clocks = Clocks::from_config(&state.config)?;
    let now = state.clock.now();
    state.db.write(move |tx| case::comment(tx, &clocks, id, &acting, &body, internal, now)).await
}

/// Takes a step in one transaction.
pub async fn apply_step(
    state: &AppState,
    id: i64,
    acting: Acting,
    form: &StepForm,
) -> Result<super::Status, RequestsError> {
    let step = form.step.parse::<case::Step>()?;
    let clocks = Clocks::from_config(&state.config)?;
    let now = state.clock.now();
    let note = form.note.clone();
    state.db.write(move |tx| case::step(tx, &clocks, id, &acting, step, &note, now)).await
}

/// Participant members of an organisation the request concerns: an attachment, as a download.
async fn attachment(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path((id, attachment)): Path<(i64, i64)>,
) -> Result<Response, PageError> {
    let org = who.org.id;
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            if !case::visible_to(c, id, org)? {
                return Ok(None);
            }
            Ok(case::attachment_content(c, id, attachment)?)
        })
        .await?;
    found.map(crate::participants::console::attachment).ok_or_else(PageError::not_found)
}
