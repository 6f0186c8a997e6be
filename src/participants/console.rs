//! The operator console: dashboard, the accreditation queue and review with decisions, documents, participants
//! and their suspension / reinstatement / revocation, the audit trail, and operator staff.
//!
//! Reading needs [`ConsoleReader`] (operator staff and the regulator); acting needs [`OperatorStaff`]; managing
//! staff needs [`OperatorAdmin`]. A regulator sees no forms, and a POST from one is refused with 403.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rusqlite::params;
use serde::Deserialize;

use super::accreditation::{
    self, Accreditation, Application, DecideOutcome, Decision, Document, Lifecycle, LifecycleOutcome, QueueEntry,
};
use super::{OrgStatus, Organisation};
use crate::audit::{self, Event, Outcome};
use crate::identity::{self, Role, User};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{self, ConsoleReader, OperatorAdmin, OperatorStaff, SignedIn};

pub const AUDIT_PAGE_SIZE: u32 = 50;

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
        .route("/console/audit", get(audit_trail))
        .route("/console/staff", get(staff).post(add_staff))
        .route("/console/staff/{id}/disable", post(disable_staff))
}

fn can_act(who: &SignedIn) -> bool {
    matches!(who.user.role, Role::OperatorAdmin | Role::OperatorStaff)
}

#[derive(Template)]
#[template(path = "console_dashboard.html")]
struct DashboardPage<'a> {
    t: Texts,
    csrf: &'a str,
    user: &'a User,
    submitted: i64,
    changes_requested: i64,
    registered: i64,
    accredited: i64,
    suspended: i64,
    revoked: i64,
}

/// Console readers: counts at a glance.
async fn dashboard(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Response {
    let counts = state
        .db
        .read(|c| -> Result<_, StoreError> {
            let count = |sql: &str, arg: &str| -> rusqlite::Result<i64> { c.query_row(sql, [arg], |r| r.get(0)) };
            let apps = "SELECT count(*) FROM accreditation_applications WHERE status = ?1";
            let orgs = "SELECT count(*) FROM organisations WHERE status = ?1";
            Ok([
                count(apps, "submitted")?,
                count(apps, "changes_requested")?,
                count(orgs, "registered")?,
                count(orgs, "accredited")?,
                count(orgs, "suspended")?,
                count(orgs, "revoked")?,
            ])
        })
        .await;
    match counts {
        Ok([submitted, changes_requested, registered, accredited, suspended, revoked]) => render(&DashboardPage {
            t: Texts { lang: who.lang() },
            csrf: who.csrf(),
            user: &who.user,
            submitted,
            changes_requested,
            registered,
            accredited,
            suspended,
            revoked,
        }),
        Err(e) => PageError::internal(&e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "console_applications.html")]
struct ApplicationsPage<'a> {
    t: Texts,
    csrf: &'a str,
    entries: Vec<QueueEntry>,
}

/// Console readers: every application, submitted ones first, oldest first.
async fn applications(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Response {
    match state.db.read(|c| accreditation::queue(c).map_err(StoreError::from)).await {
        Ok(entries) => render(&ApplicationsPage { t: Texts { lang: who.lang() }, csrf: who.csrf(), entries }),
        Err(e) => PageError::internal(&e).into_response(),
    }
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
) -> Response {
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let Some(app) = accreditation::application(c, id)? else { return Ok(None) };
            let Some(org) = super::organisation(c, app.organisation_id)? else { return Ok(None) };
            let documents = accreditation::documents(c, id)?;
            let same_bin = super::organisations_with_bin(c, &org.bin)?.into_iter().filter(|o| o.id != org.id).collect();
            Ok(Some((app, org, documents, same_bin)))
        })
        .await;
    match found {
        Ok(Some((app, org, documents, same_bin))) => {
            let can_decide = can_act(who)
                && app.status == accreditation::AppStatus::Submitted
                && org.status == OrgStatus::Registered;
            render_status(
                status,
                &ApplicationPage {
                    t: Texts { lang: who.lang() },
                    csrf: who.csrf(),
                    app,
                    org,
                    documents,
                    same_bin,
                    can_decide,
                    error,
                    notice,
                },
            )
        }
        Ok(None) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
}

/// Console readers: one application with everything the reviewer needs; the decision form for operator staff.
async fn application(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Path(id): Path<i64>,
) -> Response {
    application_page(&state, &who, id, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
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
    Form(form): Form<DecisionForm>,
) -> Response {
    if let Err(e) = who.check_form(&form.csrf) {
        return e.into_response();
    }
    let Some(decision) = Decision::parse(&form.decision) else {
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
    let result = state
        .db
        .write(move |tx| accreditation::decide(tx, id, decision, &reason, &actor).map_err(StoreError::from))
        .await;
    match result {
        Ok(DecideOutcome::Decided { .. }) => {
            application_page(&state, &who, id, None, Some("console.notice.decided"), StatusCode::OK).await
        }
        Ok(DecideOutcome::ReasonRequired) => {
            application_page(&state, &who, id, Some("console.error.reason"), None, StatusCode::UNPROCESSABLE_ENTITY)
                .await
        }
        Ok(DecideOutcome::NotSubmitted) => {
            application_page(&state, &who, id, Some("console.error.not_submitted"), None, StatusCode::CONFLICT).await
        }
        Ok(DecideOutcome::BinHeld) => {
            application_page(&state, &who, id, Some("console.error.bin_held"), None, StatusCode::CONFLICT).await
        }
        Ok(DecideOutcome::NotFound) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
}

/// Console readers: a document, always as a download (never rendered by the browser), with its checked type.
async fn document(State(state): State<AppState>, ConsoleReader(_): ConsoleReader, Path(id): Path<i64>) -> Response {
    let found = state.db.read(move |c| accreditation::document_content(c, id).map_err(StoreError::from)).await;
    match found {
        Ok(Some(doc)) => attachment(doc),
        Ok(None) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
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
struct ParticipantsPage<'a> {
    t: Texts,
    csrf: &'a str,
    organisations: Vec<Organisation>,
    filter: String,
    statuses: [OrgStatus; 4],
}

/// Console readers: every organisation, optionally only those with one status.
async fn participants(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Query(filter): Query<StatusFilter>,
) -> Response {
    let wanted = OrgStatus::parse(&filter.status);
    match state.db.read(|c| super::organisations(c).map_err(StoreError::from)).await {
        Ok(all) => {
            let organisations = all.into_iter().filter(|o| wanted.is_none_or(|w| o.status == w)).collect();
            let filter = wanted.map(|w| w.as_str().to_string()).unwrap_or_default();
            render(&ParticipantsPage {
                t: Texts { lang: who.lang() },
                csrf: who.csrf(),
                organisations,
                filter,
                statuses: [OrgStatus::Registered, OrgStatus::Accredited, OrgStatus::Suspended, OrgStatus::Revoked],
            })
        }
        Err(e) => PageError::internal(&e).into_response(),
    }
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
) -> Response {
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
        .await;
    match found {
        Ok(Some((org, accreditations, members, latest, deliveries))) => render_status(
            status,
            &ParticipantPage {
                t: Texts { lang: who.lang() },
                csrf: who.csrf(),
                org,
                accreditations,
                members,
                latest,
                deliveries,
                can_act: can_act(who),
                error,
                notice,
            },
        ),
        Ok(None) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
}

/// Console readers: one organisation, its accreditations and people; standing actions for operator staff.
async fn participant(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Path(id): Path<i64>,
) -> Response {
    participant_page(&state, &who, id, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct StandingForm {
    csrf: String,
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
    Form(form): Form<StandingForm>,
) -> Response {
    if let Err(e) = who.check_form(&form.csrf) {
        return e.into_response();
    }
    let Some(change) = Lifecycle::parse(&form.action) else {
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
    let result = state
        .db
        .write(move |tx| accreditation::change_standing(tx, id, change, &reason, &actor).map_err(StoreError::from))
        .await;
    match result {
        Ok(LifecycleOutcome::Changed { .. }) => {
            participant_page(&state, &who, id, None, Some("console.notice.standing"), StatusCode::OK).await
        }
        Ok(LifecycleOutcome::ReasonRequired) => {
            participant_page(&state, &who, id, Some("console.error.reason"), None, StatusCode::UNPROCESSABLE_ENTITY)
                .await
        }
        Ok(LifecycleOutcome::NotApplicable(_)) => {
            participant_page(&state, &who, id, Some("console.error.standing"), None, StatusCode::CONFLICT).await
        }
        Ok(LifecycleOutcome::NotFound) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "console_audit.html")]
struct AuditPage<'a> {
    t: Texts,
    csrf: &'a str,
    filter: audit::Filter,
    entries: Vec<audit::Entry>,
    page: u32,
    more: bool,
    query_prev: String,
    query_next: String,
}

fn query_string(filter: &audit::Filter, page: u32) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "action={}&actor={}&object={}&from={}&to={}&page={page}",
        enc(&filter.action),
        enc(&filter.actor),
        enc(&filter.object),
        enc(&filter.from),
        enc(&filter.to)
    )
}

/// Console readers: the audit journal, filtered, newest first, 50 a page. Read-only.
async fn audit_trail(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Query(filter): Query<audit::Filter>,
) -> Response {
    let page = filter.page.unwrap_or(1).max(1);
    let f = filter.clone();
    match state.db.read(move |c| audit::search(c, &f, AUDIT_PAGE_SIZE).map_err(StoreError::from)).await {
        Ok((entries, more)) => render(&AuditPage {
            t: Texts { lang: who.lang() },
            csrf: who.csrf(),
            query_prev: query_string(&filter, page.saturating_sub(1).max(1)),
            query_next: query_string(&filter, page + 1),
            filter,
            entries,
            page,
            more,
        }),
        Err(e) => PageError::internal(&e).into_response(),
    }
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
) -> Response {
    match state.db.read(|c| identity::operator_users(c).map_err(StoreError::from)).await {
        Ok(users) => {
            let mut response = render_status(
                status,
                &StaffPage {
                    t: Texts { lang: who.lang() },
                    csrf: who.csrf(),
                    me: who.user.id,
                    users,
                    created,
                    error,
                    form,
                },
            );
            // The page may show a one-time password: never keep it in a cache.
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => PageError::internal(&e).into_response(),
    }
}

/// Operator administrators: the operator's people.
async fn staff(State(state): State<AppState>, OperatorAdmin(who): OperatorAdmin) -> Response {
    staff_page(&state, &who, None, None, StaffForm::default(), StatusCode::OK).await
}

#[derive(Deserialize, Default, Clone)]
pub struct StaffForm {
    #[serde(default)]
    csrf: String,
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
    Form(form): Form<StaffForm>,
) -> Response {
    if let Err(e) = who.check_form(&form.csrf) {
        return e.into_response();
    }
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
    let Ok(hash) = state.passwords.hash(for_hash).await else {
        return PageError::internal(&"password hashing failed").into_response();
    };
    let actor = who.audit_actor();
    let (name, full_name, email) = (username.clone(), form.full_name.trim().to_string(), form.email.trim().to_string());
    let result = state
        .db
        .write(move |tx| -> Result<AddOutcome, StoreError> {
            if identity::user_by_username(tx, &name)?.is_some() {
                return Ok(AddOutcome::Taken);
            }
            identity::create_member(tx, &name, &full_name, &email, role, None, &hash, true)?;
            audit::append(
                tx,
                &Event::new(&actor.name, "identity.user.created", Outcome::Success)
                    .object(format!("user:{name}"))
                    .source(&actor.source)
                    .detail(serde_json::json!({ "role": role.as_str() })),
            )?;
            Ok(AddOutcome::Added)
        })
        .await;
    match result {
        Ok(AddOutcome::Added) => {
            staff_page(&state, &who, Some((username, password)), None, StaffForm::default(), StatusCode::OK).await
        }
        Ok(AddOutcome::Taken) => {
            staff_page(&state, &who, None, Some("register.error.username_taken"), form, StatusCode::CONFLICT).await
        }
        Err(e) => PageError::internal(&e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// Operator administrators: disables an operator user (not themselves) and ends their sessions.
async fn disable_staff(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(e) = who.check_form(&form.csrf) {
        return e.into_response();
    }
    if id == who.user.id {
        return staff_page(&state, &who, None, Some("opstaff.error.self"), StaffForm::default(), StatusCode::CONFLICT)
            .await;
    }
    let actor = who.audit_actor();
    let result = state
        .db
        .write(move |tx| -> Result<bool, StoreError> {
            let Some(user) = identity::user_by_id(tx, id)? else { return Ok(false) };
            if !user.role.is_operator_side() || user.disabled {
                return Ok(false);
            }
            tx.execute("UPDATE users SET disabled_at = ?2 WHERE id = ?1", params![id, crate::clock::now_rfc3339()])?;
            session::end_all_for_user(tx, id)?;
            audit::append(
                tx,
                &Event::new(&actor.name, "identity.user.disabled", Outcome::Success)
                    .object(format!("user:{}", user.username))
                    .source(&actor.source),
            )?;
            Ok(true)
        })
        .await;
    match result {
        Ok(true) => Redirect::to("/console/staff").into_response(),
        Ok(false) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
}
