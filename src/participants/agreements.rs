//! A participant's accession agreements (`/org/agreements`): every member reads the current versions, what the
//! organisation accepted (who, when) and by when a new version is to be accepted; its administrators accept. The
//! versions, acceptances and their journal entries are `docs::agreements`'.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::OrgStatus;
use crate::docs::agreements::{self, AcceptOutcome, Kind, Standing};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantAdmin, ParticipantMember};

pub fn router() -> Router<AppState> {
    Router::new().route("/org/agreements", get(org_page).post(accept))
}

#[derive(Template)]
#[template(path = "org_agreements.html")]
struct OrgPage<'a> {
    t: Texts,
    csrf: &'a str,
    is_admin: bool,
    agreements: Vec<Standing>,
    notice: Option<&'static str>,
    error: Option<&'static str>,
}

/// The roles whose agreements bind an organisation: those it is accredited in, else those of its latest application.
fn roles(c: &rusqlite::Connection, org: &super::Organisation) -> rusqlite::Result<Vec<Kind>> {
    if org.status != OrgStatus::Registered {
        return Ok(org.agreement_kinds());
    }
    let app = super::accreditation::latest_application(c, org.id)?;
    Ok(app.map(|a| Kind::for_roles(a.wants_provider, a.wants_user)).unwrap_or_default())
}

async fn org_response(
    state: &AppState,
    who: &Member,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org = who.org.clone();
    let agreements = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let roles = roles(c, &org)?;
            Ok(agreements::standing(c, org.id, &roles)?)
        })
        .await?;
    let is_admin = matches!(who.user.role, crate::identity::Role::ParticipantAdmin);
    Ok(render_status(status, &OrgPage { t: Texts::current(), csrf: who.csrf(), is_admin, agreements, notice, error }))
}

/// Participant members: the accession agreements' current versions, what the organisation accepted, by when a new
/// version is to be accepted; the acceptance form for administrators.
async fn org_page(
    State(state): State<AppState>,
    ParticipantMember(who): ParticipantMember,
) -> Result<Response, PageError> {
    org_response(&state, &who, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct AcceptForm {
    version_id: i64,
    /// The tick box "I have read and accept".
    #[serde(default)]
    confirm: String,
}

/// Participant administrators: accept the current version of an agreement (stored and journalled).
async fn accept(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<AcceptForm>,
) -> Result<Response, PageError> {
    if form.confirm != "yes" {
        return org_response(&state, &who, None, Some("agreements.error_confirm"), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let org = who.org.clone();
    let actor = who.audit_actor();
    let lang = who.lang();
    let now = state.clock.now();
    let outcome = state
        .db
        .write(move |tx| {
            agreements::accept(tx, org.party(), &actor, form.version_id, lang, now).map_err(StoreError::from)
        })
        .await?;
    match outcome {
        AcceptOutcome::Accepted | AcceptOutcome::AlreadyAccepted => {
            org_response(&state, &who, Some("agreements.notice_accepted"), None, StatusCode::OK).await
        }
        AcceptOutcome::NotCurrent => {
            org_response(&state, &who, None, Some("agreements.error_not_current"), StatusCode::CONFLICT).await
        }
        AcceptOutcome::NotAdministrator => Err(PageError::forbidden()),
    }
}
