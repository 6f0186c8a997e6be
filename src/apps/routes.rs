//! Application pages of the personal account: list and register (`/org/apps`), one application with its
//! certificates, rotation, revocation, the chain download, and disabling.
//!
//! Members see; administrators and developers change. Another organisation's application is "not found".

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{AppCertificate, AppError, AppKind, AppMode, Application, NewApplication};
use crate::participants::Organisation;
use crate::pki::RevocationReason;
use crate::pki::certs::CertSerial;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantDeveloper, ParticipantMember};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/apps", get(list).post(register))
        .route("/org/apps/{id}", get(show))
        .route("/org/apps/{id}/certificates", post(rotate))
        .route("/org/apps/{id}/certificates/{serial}", get(download))
        .route("/org/apps/{id}/certificates/{serial}/revoke", post(revoke))
        .route("/org/apps/{id}/disable", post(disable))
        .route("/org/apps/{id}/enable", post(enable))
}

fn can_manage(who: &Member) -> bool {
    matches!(who.user.role, crate::identity::Role::ParticipantAdmin | crate::identity::Role::ParticipantDeveloper)
}

/// The registration form, as typed (the CSR is kept so a refused form need not be pasted again).
#[derive(Debug, Default, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    /// `production` (the default) or `sandbox`.
    #[serde(default)]
    mode: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    csr: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct ListPage<'a> {
    t: Texts,
    csrf: &'a str,
    org: &'a Organisation,
    apps: Vec<Application>,
    can_manage: bool,
    /// Why this organisation may not register now (a text key), if so.
    blocked: Option<&'static str>,
    /// Why it may not register production applications now (a text key), if so; sandbox ones it may.
    production_refusal: Option<&'static str>,
    form: &'a RegisterForm,
    errors: Vec<&'a str>,
}

impl ListPage<'_> {
    /// The mode the form shows chosen: the one typed, else production where the organisation may, else sandbox.
    fn chosen_mode(&self) -> &str {
        match self.form.mode.as_str() {
            "production" | "sandbox" => &self.form.mode,
            _ if self.production_refusal.is_none() => "production",
            _ => "sandbox",
        }
    }
}

async fn list_page(
    state: &AppState,
    who: &Member,
    form: &RegisterForm,
    errors: Vec<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org = &who.org;
    let org_id = org.id;
    let apps = state.db.read(move |c| super::list_for_organisation(c, org_id).map_err(StoreError::from)).await?;
    // Any organisation in good standing may build in the sandbox; production needs the accreditation.
    let blocked = org.status.is_blocked().then_some("apps.error.blocked");
    let production_refusal = if org.status != crate::participants::OrgStatus::Accredited {
        Some("apps.error.not_accredited")
    } else {
        (!org.is_user && !org.is_provider).then_some("apps.error.no_role")
    };
    Ok(render_status(
        status,
        &ListPage {
            t: Texts::current(),
            csrf: who.csrf(),
            org,
            apps,
            can_manage: can_manage(who),
            blocked,
            production_refusal,
            form,
            errors,
        },
    ))
}

/// Members: the organisation's applications, and (for developers) the registration form.
async fn list(State(state): State<AppState>, ParticipantMember(who): ParticipantMember) -> Result<Response, PageError> {
    list_page(&state, &who, &RegisterForm::default(), vec![], StatusCode::OK).await
}

/// Developers: registers an application and issues its transport certificate from the CSR.
async fn register(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    CsrfForm(form): CsrfForm<RegisterForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    let mut errors: Vec<&str> = Vec::new();
    let name = form.name.trim().to_string();
    if !super::name_acceptable(&name) {
        errors.push(t.get("apps.error.name"));
    }
    let kind = form.kind.parse::<AppKind>().ok();
    if kind.is_none() {
        errors.push(t.get("apps.error.kind"));
    }
    let mode = match form.mode.as_str() {
        "" => Some(AppMode::Production),
        other => other.parse::<AppMode>().ok(),
    };
    if mode.is_none() {
        errors.push(t.get("apps.error.mode"));
    }
    let uris = match super::parse_redirect_uris(&form.redirect_uris) {
        Ok(uris) => uris,
        Err(key) => {
            errors.push(t.get(key));
            vec![]
        }
    };
    if kind == Some(AppKind::ApiUser) && uris.is_empty() && errors.is_empty() {
        errors.push(t.get("apps.error.no_uris"));
    }
    if form.csr.trim().is_empty() {
        errors.push(t.get("apps.error.csr_missing"));
    }
    let (Some(kind), Some(mode), true) = (kind, mode, errors.is_empty()) else {
        return list_page(&state, &who, &form, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let new = NewApplication { name, kind, mode, redirect_uris: uris, csr_pem: form.csr.trim().to_string() };
    match super::register(
        &state.db,
        state.authority.clone(),
        org_id,
        who.user.id,
        new,
        who.audit_actor(),
        state.clock.now(),
    )
    .await
    {
        Ok((app, _)) => Ok(Redirect::to(&format!("/org/apps/{}", app.id)).into_response()),
        Err(AppError::Refused(key)) => list_page(&state, &who, &form, vec![t.get(key)], StatusCode::FORBIDDEN).await,
        Err(AppError::BadCsr(why)) => {
            let message = format!("{} {why}", t.get("apps.error.csr"));
            list_page(&state, &who, &form, vec![message.as_str()], StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Refusals and bad requests re-render the application pages (the handlers match them); what reaches here is not
/// found or a failure.
impl From<AppError> for PageError {
    fn from(error: AppError) -> PageError {
        match error {
            AppError::NotFound => PageError::not_found(),
            AppError::Store(e) => PageError::from(e),
            other => PageError::internal(&other),
        }
    }
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage<'a> {
    t: Texts,
    csrf: &'a str,
    org: &'a Organisation,
    app: Application,
    certificates: Vec<AppCertificate>,
    /// The application's connections to APIs in the marketplace.
    connections: Vec<crate::catalog::ApplicationConnection>,
    can_manage: bool,
    reasons: Vec<&'static str>,
    grace_hours: u32,
    error: Option<&'a str>,
}

async fn app_page(
    state: &AppState,
    who: &Member,
    id: i64,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org = &who.org;
    let org_id = org.id;
    let now = state.clock.now();
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let Some(app) = super::by_id_for_organisation(c, org_id, id)? else { return Ok(None) };
            let certificates = super::certificates(c, app.id, now)?;
            let connections = crate::catalog::connections_of_application(c, app.id)?;
            Ok(Some((app, certificates, connections)))
        })
        .await?;
    let (app, certificates, connections) = found.ok_or_else(PageError::not_found)?;
    let page = AppPage {
        t: Texts::current(),
        csrf: who.csrf(),
        org,
        app,
        certificates,
        connections,
        can_manage: can_manage(who),
        reasons: RevocationReason::ALL.iter().map(|r| r.as_str()).collect(),
        grace_hours: state.config.pki.rotation_grace_hours,
        error,
    };
    Ok(render_status(status, &page))
}

/// Members: one application with its client id, redirect URIs and certificates.
async fn show(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    app_page(&state, &who, id, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    csr: String,
}

/// Developers: a new certificate from a new CSR; the previous ones retire after the grace period.
async fn rotate(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    if form.csr.trim().is_empty() {
        return app_page(&state, &who, id, Some(t.get("apps.error.csr_missing")), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let grace = state.config.pki.rotation_grace_hours;
    let csr = form.csr.trim().to_string();
    match super::rotate(
        &state.db,
        state.authority.clone(),
        org_id,
        id,
        csr,
        grace,
        who.audit_actor(),
        state.clock.now(),
    )
    .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/org/apps/{id}")).into_response()),
        Err(AppError::Refused(key)) => app_page(&state, &who, id, Some(t.get(key)), StatusCode::FORBIDDEN).await,
        Err(AppError::BadCsr(why)) => {
            let message = format!("{} {why}", t.get("apps.error.csr"));
            app_page(&state, &who, id, Some(&message), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Members: the certificate chain (the certificate, then the issuing CA) as a PEM file. The path ends in `.pem`.
async fn download(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
    Path((id, file)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    let org_id = who.org.id;
    let Some(serial) = file.strip_suffix(".pem").and_then(|s| CertSerial::parse(&s.to_ascii_lowercase()).ok()) else {
        return Err(PageError::not_found());
    };
    let wanted = serial.clone();
    let pem = state
        .db
        .read(move |c| -> Result<Option<String>, StoreError> {
            if super::by_id_for_organisation(c, org_id, id)?.is_none() {
                return Ok(None);
            }
            Ok(super::certificate_pem(c, id, &wanted)?)
        })
        .await?
        .ok_or_else(PageError::not_found)?;
    let mut response = format!("{pem}{}", state.authority.issuing_pem).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{serial}.pem\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    reason: String,
}

/// Developers: revokes one certificate of the application; the platform refuses it on the next request.
async fn revoke(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path((id, serial)): Path<(i64, String)>,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    let Some(reason) = form.reason.parse::<RevocationReason>().ok() else {
        return app_page(&state, &who, id, Some(t.get("apps.error.reason")), StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let hours = state.config.pki.crl_validity_hours;
    let Ok(serial) = CertSerial::parse(&serial.to_ascii_lowercase()) else { return Err(PageError::not_found()) };
    match super::revoke_certificate(
        &state.db,
        state.authority.clone(),
        org_id,
        id,
        serial,
        reason,
        hours,
        who.audit_actor(),
        state.clock.now(),
    )
    .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/org/apps/{id}")).into_response()),
        Err(AppError::Refused(key)) => app_page(&state, &who, id, Some(t.get(key)), StatusCode::CONFLICT).await,
        Err(e) => Err(e.into()),
    }
}

/// A form of a button only: its CSRF token is all it carries.
#[derive(Debug, Deserialize)]
pub struct ButtonForm {}

async fn set_active(state: AppState, who: Member, id: i64, active: bool) -> Result<Response, PageError> {
    super::set_active(&state.db, who.org.id, id, active, who.audit_actor(), state.clock.now()).await?;
    Ok(Redirect::to(&format!("/org/apps/{id}")).into_response())
}

/// Developers: disables the application; all its certificates are refused until it is enabled again.
async fn disable(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<Response, PageError> {
    set_active(state, who, id, false).await
}

/// Developers: enables a disabled application again.
async fn enable(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<Response, PageError> {
    set_active(state, who, id, true).await
}
