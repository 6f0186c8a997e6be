//! The provider's pages of the personal account: its APIs (`/org/apis`: list and create) and one API's passport
//! (`/org/apis/{id}`: view, edit, publish after the automatic check, withdraw, retire) with its check results.
//!
//! Members see; administrators and developers of an accredited API provider change. Another organisation's API is
//! "not found".

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Api, CatalogError, CheckRun, PassportInput, Publication, STANDARDS, Standard};
use crate::participants::Organisation;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantDeveloper, ParticipantMember};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/apis", get(list).post(create))
        .route("/org/apis/{id}", get(show).post(update))
        .route("/org/apis/{id}/publish", post(publish))
        .route("/org/apis/{id}/withdraw", post(withdraw))
        .route("/org/apis/{id}/retire", post(retire))
}

fn can_manage(who: &Member) -> bool {
    matches!(who.user.role, crate::identity::Role::ParticipantAdmin | crate::identity::Role::ParticipantDeveloper)
}

/// Refusals re-render the passport page (the handlers match them); what reaches here is not found or a failure.
impl From<CatalogError> for PageError {
    fn from(error: CatalogError) -> PageError {
        match error {
            CatalogError::NotFound => PageError::not_found(),
            CatalogError::Refused(key) => PageError::new(StatusCode::CONFLICT, key),
            CatalogError::Store(e) => PageError::from(e),
        }
    }
}

/// The passport form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct PassportForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    standard: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    sandbox_base_url: String,
    #[serde(default)]
    production_base_url: String,
    #[serde(default)]
    sla_response_ms: String,
    #[serde(default)]
    timeout_ms: String,
    #[serde(default)]
    contact_email: String,
    #[serde(default)]
    contact_phone: String,
}

impl PassportForm {
    fn input(&self) -> PassportInput {
        PassportInput {
            name: self.name.clone(),
            version: self.version.clone(),
            standard: self.standard.clone(),
            description: self.description.clone(),
            sandbox_base_url: self.sandbox_base_url.clone(),
            production_base_url: self.production_base_url.clone(),
            sla_response_ms: self.sla_response_ms.clone(),
            timeout_ms: self.timeout_ms.clone(),
            contact_email: self.contact_email.clone(),
            contact_phone: self.contact_phone.clone(),
        }
    }
}

/// A fresh form's defaults: the one standard, the organisation's contacts, a 1 s SLA and a 5 s time-out.
fn blank(org: &Organisation) -> PassportInput {
    PassportInput {
        standard: STANDARDS.first().map(|s| s.id.to_string()).unwrap_or_default(),
        sla_response_ms: "1000".into(),
        timeout_ms: "5000".into(),
        contact_email: org.contact_email.clone(),
        contact_phone: org.contact_phone.clone(),
        ..PassportInput::default()
    }
}

#[derive(Template)]
#[template(path = "catalog_apis.html")]
struct ListPage<'a> {
    t: Texts,
    csrf: &'a str,
    apis: Vec<Api>,
    can_manage: bool,
    blocked: Option<&'static str>,
    form: PassportInput,
    standards: &'static [Standard],
    /// Version, standard and base URLs are shown, not editable (never on a new API).
    locked: bool,
    errors: Vec<&'a str>,
}

async fn list_page(
    state: &AppState,
    who: &Member,
    form: Option<PassportInput>,
    errors: Vec<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org = &who.org;
    let org_id = org.id;
    let apis = state.db.read(move |c| super::list_for_organisation(c, org_id).map_err(StoreError::from)).await?;
    let page = ListPage {
        t: Texts::current(),
        csrf: who.csrf(),
        apis,
        can_manage: can_manage(who),
        blocked: super::provider_refusal(org),
        form: form.unwrap_or_else(|| blank(org)),
        standards: STANDARDS,
        locked: false,
        errors,
    };
    Ok(render_status(status, &page))
}

/// Members: the organisation's APIs; administrators and developers of an accredited provider also the form.
async fn list(State(state): State<AppState>, ParticipantMember(who): ParticipantMember) -> Result<Response, PageError> {
    list_page(&state, &who, None, vec![], StatusCode::OK).await
}

/// Administrators and developers: creates a draft API from its passport.
async fn create(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    CsrfForm(form): CsrfForm<PassportForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    let input = form.input();
    let passport = match super::validate(&input) {
        Ok(p) => p,
        Err(keys) => {
            let errors = keys.into_iter().map(|k| t.get(k)).collect();
            return list_page(&state, &who, Some(input), errors, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    match super::create(&state.db, org_id, passport, who.audit_actor(), state.clock.now()).await {
        Ok(api) => Ok(Redirect::to(&format!("/org/apis/{}", api.id)).into_response()),
        Err(CatalogError::Refused(key)) => {
            list_page(&state, &who, Some(input), vec![t.get(key)], StatusCode::FORBIDDEN).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "catalog_api.html")]
struct ApiPage<'a> {
    t: Texts,
    csrf: &'a str,
    org: &'a Organisation,
    api: Api,
    checks: Vec<CheckRun>,
    active_connections: usize,
    /// The applications connected now, sandbox ones marked.
    connected: Vec<super::ConnectedApplication>,
    can_manage: bool,
    blocked: Option<&'static str>,
    form: PassportInput,
    standards: &'static [Standard],
    locked: bool,
    errors: Vec<&'a str>,
    notice: Option<&'a str>,
}

impl ApiPage<'_> {
    fn can_publish(&self) -> bool {
        matches!(self.api.status, super::ApiStatus::Draft | super::ApiStatus::Deprecated)
    }

    fn can_withdraw(&self) -> bool {
        matches!(self.api.status, super::ApiStatus::Published | super::ApiStatus::Suspended)
    }

    fn can_retire(&self) -> bool {
        matches!(self.api.status, super::ApiStatus::Deprecated | super::ApiStatus::Draft)
    }
}

struct Shown<'a> {
    form: Option<PassportInput>,
    errors: Vec<&'a str>,
    notice: Option<&'a str>,
    status: StatusCode,
}

impl Shown<'_> {
    fn ok() -> Shown<'static> {
        Shown { form: None, errors: vec![], notice: None, status: StatusCode::OK }
    }
}

async fn api_page(state: &AppState, who: &Member, id: i64, shown: Shown<'_>) -> Result<Response, PageError> {
    let org = &who.org;
    let org_id = org.id;
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let Some(api) = super::by_id_for_organisation(c, org_id, id)? else { return Ok(None) };
            let checks = super::checks(c, id, 10)?;
            let connected = super::connections_to_api(c, id)?;
            Ok(Some((api, checks, connected)))
        })
        .await;
    let (api, mut checks, connected) = found?.ok_or_else(PageError::not_found)?;
    super::check::label(&mut checks, |id| state.publication_check.text_key(id));
    let form = shown.form.unwrap_or_else(|| PassportInput::of(&api));
    let locked = !api.fully_editable();
    let page = ApiPage {
        t: Texts::current(),
        csrf: who.csrf(),
        org,
        api,
        checks,
        active_connections: connected.len(),
        connected,
        can_manage: can_manage(who),
        blocked: super::provider_refusal(org),
        form,
        standards: STANDARDS,
        locked,
        errors: shown.errors,
        notice: shown.notice,
    };
    Ok(render_status(shown.status, &page))
}

/// Members: one API's passport, status and check results.
async fn show(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    api_page(&state, &who, id, Shown::ok()).await
}

/// Administrators and developers: saves the passport (after publication only what may still change).
async fn update(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<PassportForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    let mut input = form.input();
    // Fields fixed after publication are not part of the form then: take them from the stored passport.
    let current = state.db.read(move |c| super::by_id_for_organisation(c, org_id, id).map_err(StoreError::from)).await;
    let current = current?.ok_or_else(PageError::not_found)?;
    if !current.fully_editable() {
        input.version = current.version.clone();
        input.standard = current.standard.clone();
        input.sandbox_base_url = current.sandbox_base_url.clone();
        input.production_base_url = current.production_base_url.clone();
    }
    let passport = match super::validate(&input) {
        Ok(p) => p,
        Err(keys) => {
            let errors = keys.into_iter().map(|k| t.get(k)).collect();
            let shown = Shown { form: Some(input), errors, notice: None, status: StatusCode::UNPROCESSABLE_ENTITY };
            return api_page(&state, &who, id, shown).await;
        }
    };
    match super::update(&state.db, org_id, id, passport, who.audit_actor(), state.clock.now()).await {
        Ok(_) => Ok(Redirect::to(&format!("/org/apis/{id}")).into_response()),
        Err(CatalogError::Refused(key)) => {
            let shown =
                Shown { form: Some(input), errors: vec![t.get(key)], notice: None, status: StatusCode::CONFLICT };
            api_page(&state, &who, id, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A form of a button only: its CSRF token is all it carries.
#[derive(Debug, Deserialize)]
pub struct ButtonForm {}

/// Administrators and developers: runs the publication check and publishes on success; on failure the API goes back
/// to its earlier status and the page shows the findings.
async fn publish(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    match super::publish(&state.db, state.publication_check.as_ref(), org_id, id, who.audit_actor(), &state.clock).await
    {
        Ok(Publication::Published(_)) => Ok(Redirect::to(&format!("/org/apis/{id}")).into_response()),
        Ok(Publication::Refused(_)) => {
            let notice = Some(t.get("catalog.publication_refused"));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            api_page(&state, &who, id, Shown { form: None, errors: vec![], notice, status }).await
        }
        Err(CatalogError::Refused(key)) => {
            let shown = Shown { form: None, errors: vec![t.get(key)], notice: None, status: StatusCode::CONFLICT };
            api_page(&state, &who, id, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn transition(state: AppState, who: Member, id: i64, retire: bool) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    let done = if retire {
        super::retire(&state.db, org_id, id, who.audit_actor(), state.clock.now()).await
    } else {
        super::withdraw(&state.db, org_id, id, who.audit_actor(), state.clock.now()).await
    };
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/org/apis/{id}")).into_response()),
        Err(CatalogError::Refused(key)) => {
            let shown = Shown { form: None, errors: vec![t.get(key)], notice: None, status: StatusCode::CONFLICT };
            api_page(&state, &who, id, shown).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Administrators and developers: withdraws a published API (deprecated: no new connections or consents).
async fn withdraw(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<Response, PageError> {
    transition(state, who, id, false).await
}

/// Administrators and developers: retires a deprecated API (or abandons a draft); its connections end.
async fn retire(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<Response, PageError> {
    transition(state, who, id, true).await
}
