//! The operator console: dashboard, the accreditation queue and review with decisions, documents, participants
//! and their suspension / reinstatement / revocation, the audit trail, and operator staff.
//!
//! Reading needs [`ConsoleReader`] (operator staff and the regulator); acting needs [`OperatorStaff`]; managing
//! staff needs [`OperatorAdmin`]. A regulator sees no forms, and a POST from one is refused with 403.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::accreditation::{
    self, Accreditation, Application, DecideOutcome, Decision, Document, Lifecycle, LifecycleOutcome, QueueEntry,
};
use super::{OrgStatus, Organisation};
use crate::audit::{self, Event, Outcome};
use crate::identity::{self, Role, User, sessions};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, OperatorAdmin, OperatorStaff, SignedIn};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(dashboard))
        .route("/console/applications", get(applications))
        .route("/console/applications/{id}", get(application))
        .route("/console/applications/{id}/decision", post(decide))
        .route("/console/documents/{id}", get(document))
        .route("/console/participants", get(participants))
        .route("/console/participants/{id}", get(participant))
        .route("/console/participants/{id}/standing", post(change_standing))
        .route("/console/staff", get(staff).post(add_staff))
        .route("/console/staff/{id}/disable", post(disable_staff))
}

fn can_act(who: &SignedIn) -> bool {
    matches!(who.user.role, Role::OperatorAdmin | Role::OperatorStaff)
}

#[derive(Template)]
#[template(path = "console_dashboard.html")]
struct DashboardPage {
    t: Texts,
    submitted: i64,
    changes_requested: i64,
    registered: i64,
    accredited: i64,
    suspended: i64,
    revoked: i64,
    /// API users' statements overdue beyond `billing.suspend_after_days` (`crate::billing::overdue`).
    overdue: Vec<crate::billing::overdue::Overdue>,
    suspend_after_days: u32,
}

/// Console readers: counts at a glance.
async fn dashboard(State(state): State<AppState>, ConsoleReader(_): ConsoleReader) -> Result<Response, PageError> {
    use accreditation::AppStatus;
    let (limit, now) = (state.config.billing.suspend_after_days, state.clock.now());
    let ([submitted, changes_requested, registered, accredited, suspended, revoked], overdue) = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            Ok((
                [
                    accreditation::count_applications(c, AppStatus::Submitted)?,
                    accreditation::count_applications(c, AppStatus::ChangesRequested)?,
                    super::count_with_status(c, OrgStatus::Registered)?,
                    super::count_with_status(c, OrgStatus::Accredited)?,
                    super::count_with_status(c, OrgStatus::Suspended)?,
                    super::count_with_status(c, OrgStatus::Revoked)?,
                ],
                crate::billing::overdue::beyond(c, limit, now)?,
            ))
        })
        .await?;
    Ok(render(&DashboardPage {
        t: Texts::current(),
        submitted,
        changes_requested,
        registered,
        accredited,
        suspended,
        revoked,
        overdue,
        suspend_after_days: limit,
    }))
}

#[derive(Template)]
#[template(path = "console_applications.html")]
struct ApplicationsPage {
    t: Texts,
    entries: Vec<QueueEntry>,
}

/// Console readers: every application, submitted ones first, oldest first.
async fn applications(State(state): State<AppState>, ConsoleReader(_): ConsoleReader) -> Result<Response, PageError> {
    let entries = state.db.read(|c| accreditation::queue(c).map_err(StoreError::from)).await?;
    Ok(render(&ApplicationsPage { t: Texts::current(), entries }))
}

#[derive(Template)]
#[template(path = "console_application.html")]
struct ApplicationPage<'a> {
    t: Texts,
    csrf: &'a str,
    app: Application,
    org: Organisation,
    documents: Vec<Document>,
    /// Other organisations registered with the same BIN: registration claims no BIN, so the reviewer settles which
    /// is the real one (out of band) before approving.
    same_bin: Vec<Organisation>,
    can_decide: bool,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

async fn application_page(
    state: &AppState,
    who: &SignedIn,
    id: i64,
    error: Option<&'static str>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let Some(app) = accreditation::application(c, id)? else { return Ok(None) };
            let Some(org) = super::organisation(c, app.organisation_id)? else { return Ok(None) };
            let documents = accreditation::documents(c, id)?;
            let same_bin = super::organisations_with_bin(c, &org.bin)?.into_iter().filter(|o| o.id != org.id).collect();
            Ok(Some((app, org, documents, same_bin)))
        })
        .await?;
    let Some((app, org, documents, same_bin)) = found else { return Err(PageError::not_found()) };
    let can_decide =
        can_act(who) && app.status == accreditation::AppStatus::Submitted && org.status == OrgStatus::Registered;
    let page = ApplicationPage {
        t: Texts::current(),
        csrf: who.csrf(),
        app,
        org,
        documents,
        same_bin,
        can_decide,
        error,
        notice,
    };
    Ok(render_status(status, &page))
}

/// Console readers: one application with everything the reviewer needs; the decision form for operator staff.
async fn application(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    application_page(&state, &who, id, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

/// Operator staff: approve, reject or ask for changes — always with a reason.
async fn decide(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<DecisionForm>,
) -> Result<Response, PageError> {
    let Some(decision) = form.decision.parse::<Decision>().ok() else {
        return application_page(
            &state,
            &who,
            id,
            Some("console.error.decision"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let actor = who.audit_actor();
    let reason = form.reason.clone();
    let now = state.clock.now();
    let result = state
        .db
        .write(move |tx| accreditation::decide(tx, id, decision, &reason, &actor, now).map_err(StoreError::from))
        .await?;
    let (error, notice, status) = match result {
        DecideOutcome::Decided { .. } => (None, Some("console.notice.decided"), StatusCode::OK),
        DecideOutcome::ReasonRequired => (Some("console.error.reason"), None, StatusCode::UNPROCESSABLE_ENTITY),
        DecideOutcome::NotSubmitted => (Some("console.error.not_submitted"), None, StatusCode::CONFLICT),
        DecideOutcome::BinHeld => (Some("console.error.bin_held"), None, StatusCode::CONFLICT),
        DecideOutcome::AgreementNotAccepted(_) => (Some("console.error.agreement"), None, StatusCode::CONFLICT),
        DecideOutcome::NotFound => return Err(PageError::not_found()),
    };
    application_page(&state, &who, id, error, notice, status).await
}

/// Console readers: a document, always as a download (never rendered by the browser), with its checked type.
async fn document(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let found = state.db.read(move |c| accreditation::document_content(c, id).map_err(StoreError::from)).await?;
    found.map(attachment).ok_or_else(PageError::not_found)
}

/// A stored document as a download: never rendered by the browser, with the type its bytes were checked to have.
pub fn attachment(doc: accreditation::DocumentContent) -> Response {
    let mut response = doc.content.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    let ascii: String = doc.filename.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect();
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    response
}

#[derive(Deserialize, Default)]
pub struct StatusFilter {
    #[serde(default)]
    status: String,
}

#[derive(Template)]
#[template(path = "console_participants.html")]
struct ParticipantsPage {
    t: Texts,
    organisations: Vec<Organisation>,
    filter: String,
    statuses: [OrgStatus; 4],
}

/// Console readers: every organisation, optionally only those with one status.
async fn participants(
    State(state): State<AppState>,
    ConsoleReader(_): ConsoleReader,
    Query(filter): Query<StatusFilter>,
) -> Result<Response, PageError> {
    let wanted = filter.status.parse::<OrgStatus>().ok();
    let all = state.db.read(|c| super::organisations(c).map_err(StoreError::from)).await?;
    let organisations = all.into_iter().filter(|o| wanted.is_none_or(|w| o.status == w)).collect();
    let filter = wanted.map(|w| w.as_str().to_string()).unwrap_or_default();
    Ok(render(&ParticipantsPage {
        t: Texts::current(),
        organisations,
        filter,
        statuses: [OrgStatus::Registered, OrgStatus::Accredited, OrgStatus::Suspended, OrgStatus::Revoked],
    }))
}

#[derive(Template)]
#[template(path = "console_participant.html")]
struct ParticipantPage<'a> {
    t: Texts,
    csrf: &'a str,
    org: Organisation,
    accreditations: Vec<Accreditation>,
    members: Vec<User>,
    latest: Option<Application>,
    /// The latest webhook deliveries, with the failures' detail that participants do not see.
    deliveries: Vec<crate::notify::Delivery>,
    can_act: bool,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

async fn participant_page(
    state: &AppState,
    who: &SignedIn,
    id: i64,
    error: Option<&'static str>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let Some(org) = super::organisation(c, id)? else { return Ok(None) };
            Ok(Some((
                org,
                accreditation::accreditations_of(c, id)?,
                identity::users_of_organisation(c, id)?,
                accreditation::latest_application(c, id)?,
                crate::notify::recent(c, id, crate::notify::RECENT_DELIVERIES)?,
            )))
        })
        .await?;
    let Some((org, accreditations, members, latest, deliveries)) = found else { return Err(PageError::not_found()) };
    let page = ParticipantPage {
        t: Texts::current(),
        csrf: who.csrf(),
        org,
        accreditations,
        members,
        latest,
        deliveries,
        can_act: can_act(who),
        error,
        notice,
    };
    Ok(render_status(status, &page))
}

/// Console readers: one organisation, its accreditations and people; standing actions for operator staff.
async fn participant(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    participant_page(&state, &who, id, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct StandingForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
}

/// Operator staff: suspend, reinstate or revoke a participant, with a reason.
async fn change_standing(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<StandingForm>,
) -> Result<Response, PageError> {
    let Some(change) = form.action.parse::<Lifecycle>().ok() else {
        return participant_page(
            &state,
            &who,
            id,
            Some("console.error.decision"),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let actor = who.audit_actor();
    let reason = form.reason.clone();
    let now = state.clock.now();
    let result = state
        .db
        .write(move |tx| accreditation::change_standing(tx, id, change, &reason, &actor, now).map_err(StoreError::from))
        .await?;
    let (error, notice, status) = match result {
        LifecycleOutcome::Changed { .. } => (None, Some("console.notice.standing"), StatusCode::OK),
        LifecycleOutcome::ReasonRequired => (Some("console.error.reason"), None, StatusCode::UNPROCESSABLE_ENTITY),
        LifecycleOutcome::NotApplicable(_) => (Some("console.error.standing"), None, StatusCode::CONFLICT),
        LifecycleOutcome::NotFound => return Err(PageError::not_found()),
    };
    participant_page(&state, &who, id, error, notice, status).await
}

#[derive(Template)]
#[template(path = "console_staff.html")]
struct StaffPage<'a> {
    t: Texts,
    csrf: &'a str,
    me: i64,
    users: Vec<User>,
    created: Option<(String, String)>,
    error: Option<&'static str>,
    form: StaffForm,
}

async fn staff_page(
    state: &AppState,
    who: &SignedIn,
    created: Option<(String, String)>,
    error: Option<&'static str>,
    form: StaffForm,
    status: StatusCode,
) -> Result<Response, PageError> {
    let users = state.db.read(|c| identity::operator_users(c).map_err(StoreError::from)).await?;
    let page = StaffPage { t: Texts::current(), csrf: who.csrf(), me: who.user.id, users, created, error, form };
    let mut response = render_status(status, &page);
    // The page may show a one-time password: never keep it in a cache.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Operator administrators: the operator's people.
async fn staff(State(state): State<AppState>, OperatorAdmin(who): OperatorAdmin) -> Result<Response, PageError> {
    staff_page(&state, &who, None, None, StaffForm::default(), StatusCode::OK).await
}

#[derive(Deserialize, Default, Clone)]
pub struct StaffForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

enum AddOutcome {
    Added,
    Taken,
}

/// Operator administrators: adds an operator staff member or a regulator with a one-time password, shown once.
async fn add_staff(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    CsrfForm(form): CsrfForm<StaffForm>,
) -> Result<Response, PageError> {
    let role = match form.role.as_str() {
        "operator_staff" => Role::OperatorStaff,
        "regulator" => Role::Regulator,
        _ => {
            return staff_page(&state, &who, None, Some("opstaff.error.role"), form, StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    let username = form.username.trim().to_string();
    if !identity::username_acceptable(&username) {
        return staff_page(&state, &who, None, Some("register.error.username"), form, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    if form.full_name.trim().is_empty() {
        return staff_page(
            &state,
            &who,
            None,
            Some("register.error.full_name"),
            form,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    if !super::email_acceptable(&form.email) {
        return staff_page(&state, &who, None, Some("register.error.email"), form, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let password = identity::generate_password();
    let for_hash = password.clone();
    let hash = state.passwords.hash(for_hash).await?;
    let now = state.clock.now();
    let actor = who.audit_actor();
    let (name, full_name, email) = (username.clone(), form.full_name.trim().to_string(), form.email.trim().to_string());
    let result = state
        .db
        .write(move |tx| -> Result<AddOutcome, StoreError> {
            if identity::user_by_username(tx, &name)?.is_some() {
                return Ok(AddOutcome::Taken);
            }
            identity::create_member(tx, &name, &full_name, &email, role, None, &hash, true, now)?;
            audit::append(
                tx,
                &Event::new(&actor.name, "identity.user.created", Outcome::Success)
                    .at(now)
                    .object(format!("user:{name}"))
                    .source(&actor.source)
                    .detail(serde_json::json!({ "role": role.as_str() })),
            )?;
            Ok(AddOutcome::Added)
        })
        .await?;
    match result {
        AddOutcome::Added => {
            staff_page(&state, &who, Some((username, password)), None, StaffForm::default(), StatusCode::OK).await
        }
        AddOutcome::Taken => {
            staff_page(&state, &who, None, Some("register.error.username_taken"), form, StatusCode::CONFLICT).await
        }
    }
}

/// A form with nothing but its CSRF token (checked by [`CsrfForm`]).
#[derive(Deserialize)]
pub struct EmptyForm {}

/// Operator administrators: disables an operator user (not themselves) and ends their sessions.
async fn disable_staff(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, PageError> {
    if id == who.user.id {
        return staff_page(&state, &who, None, Some("opstaff.error.self"), StaffForm::default(), StatusCode::CONFLICT)
            .await;
    }
    let actor = who.audit_actor();
    let now = state.clock.now();
    let disabled = state
        .db
        .write(move |tx| -> Result<bool, StoreError> {
            let Some(user) = identity::user_by_id(tx, id)? else { return Ok(false) };
            if !user.role.is_operator_side() || user.disabled {
                return Ok(false);
            }
            identity::disable(tx, id, now)?;
            sessions::end_all_for_user(tx, id)?;
            audit::append(
                tx,
                &Event::new(&actor.name, "identity.user.disabled", Outcome::Success)
                    .at(now)
                    .object(format!("user:{}", user.username))
                    .source(&actor.source),
            )?;
            Ok(true)
        })
        .await?;
    if disabled { Ok(Redirect::to("/console/staff").into_response()) } else { Err(PageError::not_found()) }
}
