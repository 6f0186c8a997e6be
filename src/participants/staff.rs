//! Staff management for a participant's administrators (`/org/staff`): list the members, invite one (a one-time
//! password shown once; the invitee changes it and enrols TOTP at first sign-in), change a role, disable and
//! re-enable. An administrator cannot disable themself, and the last active administrator can neither be disabled
//! nor lose the role. Every change is one transaction with its audit entry.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rusqlite::Transaction;
use serde::Deserialize;

use super::{Organisation, email_acceptable};
use crate::audit::{self, Event, Outcome};
use crate::identity::{self, Role, User, sessions};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantAdmin};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/org/staff", get(list).post(invite))
        .route("/org/staff/{id}/role", post(change_role))
        .route("/org/staff/{id}/disable", post(disable))
        .route("/org/staff/{id}/enable", post(enable))
}

/// The roles an administrator may give.
const ROLES: [Role; 3] = [Role::ParticipantAdmin, Role::ParticipantDeveloper, Role::ParticipantAnalyst];

fn participant_role(s: &str) -> Option<Role> {
    s.parse().ok().filter(|r| ROLES.contains(r))
}

#[derive(Debug, Default, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct StaffPage<'a> {
    t: Texts,
    csrf: &'a str,
    org: &'a Organisation,
    me: &'a User,
    members: Vec<User>,
    roles: [Role; 3],
    form: &'a InviteForm,
    errors: Vec<&'static str>,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "staff_invited.html")]
struct InvitedPage<'a> {
    t: Texts,
    full_name: &'a str,
    username: &'a str,
    role: Role,
    one_time_password: &'a str,
}

async fn page(
    state: &AppState,
    who: &Member,
    form: &InviteForm,
    errors: Vec<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    page_with(state, who, form, errors, None, status).await
}

async fn page_with(
    state: &AppState,
    who: &Member,
    form: &InviteForm,
    errors: Vec<&'static str>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let org_id = who.org.id;
    let members = state.db.read(move |c| identity::users_of_organisation(c, org_id).map_err(StoreError::from)).await?;
    let page = StaffPage {
        t: Texts::current(),
        csrf: who.csrf(),
        org: &who.org,
        me: &who.user,
        members,
        roles: ROLES,
        form,
        errors,
        notice,
    };
    Ok(render_status(status, &page))
}

/// Administrators: the organisation's members and the invitation form.
async fn list(State(state): State<AppState>, ParticipantAdmin(who): ParticipantAdmin) -> Result<Response, PageError> {
    page(&state, &who, &InviteForm::default(), vec![], StatusCode::OK).await
}

enum Invited {
    Done,
    Taken,
}

/// Administrators: creates a member with a generated one-time password, shown once on the result page.
async fn invite(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response, PageError> {
    let org = who.org.clone();
    let mut errors = Vec::new();
    let full_name = form.full_name.trim().to_string();
    let email = form.email.trim().to_string();
    let username = form.username.trim().to_string();
    if full_name.is_empty() || full_name.chars().count() > 200 {
        errors.push("staff.error.full_name");
    }
    if !email_acceptable(&email) {
        errors.push("register.error.email");
    }
    if !identity::username_acceptable(&username) {
        errors.push("register.error.username");
    }
    let role = participant_role(&form.role);
    if role.is_none() {
        errors.push("staff.error.role");
    }
    let (Some(role), true) = (role, errors.is_empty()) else {
        return page(&state, &who, &form, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let one_time_password = identity::generate_password();
    let otp = one_time_password.clone();
    let hash = state.passwords.hash(otp).await?;
    let now = state.clock.now();
    let (actor, source) = (who.actor(), who.visitor.source.clone());
    let (name, mail, login) = (full_name.clone(), email.clone(), username.clone());
    let result = state
        .db
        .write(move |tx| -> Result<Invited, StoreError> {
            if identity::user_by_username(tx, &login)?.is_some() {
                return Ok(Invited::Taken);
            }
            identity::create_member(tx, &login, &name, &mail, role, Some(org.id), &hash, true, now)?;
            audit::append(
                tx,
                &Event::new(actor, "participants.staff.invited", Outcome::Success)
                    .at(now)
                    .organisation(org.bin.as_str())
                    .object(format!("user:{login}"))
                    .source(&source)
                    .detail(serde_json::json!({ "role": role.as_str(), "full_name": name })),
            )?;
            Ok(Invited::Done)
        })
        .await?;
    match result {
        Invited::Done => Ok(render(&InvitedPage {
            t: Texts::current(),
            full_name: &full_name,
            username: &username,
            role,
            one_time_password: &one_time_password,
        })),
        Invited::Taken => {
            page(&state, &who, &form, vec!["register.error.username_taken"], StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// How many active administrators the organisation has besides `except`.
fn other_active_admins(tx: &Transaction, organisation_id: i64, except: i64) -> rusqlite::Result<i64> {
    identity::other_active_with_role(tx, Role::ParticipantAdmin, Some(organisation_id), except)
}

/// What became of a change to a member.
enum Change {
    Done,
    NotFound,
    Refused(&'static str),
}

/// Runs `change` on a member of the administrator's organisation, in one transaction.
async fn change_member(
    state: &AppState,
    who: &Member,
    member_id: i64,
    change: impl FnOnce(&Transaction, &Organisation, &User) -> Result<Change, StoreError> + Send + 'static,
) -> Result<Response, PageError> {
    let org = who.org.clone();
    let result = state
        .db
        .write(move |tx| -> Result<Change, StoreError> {
            match identity::user_by_id(tx, member_id)? {
                Some(member) if member.organisation_id == Some(org.id) => change(tx, &org, &member),
                _ => Ok(Change::NotFound),
            }
        })
        .await?;
    match result {
        Change::Done => Ok(Redirect::to("/org/staff").into_response()),
        Change::NotFound => Err(PageError::not_found()),
        Change::Refused(key) => {
            page_with(state, who, &InviteForm::default(), vec![], Some(key), StatusCode::CONFLICT).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// Administrators: gives a member another role (never leaving the organisation without an active administrator).
async fn change_role(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> Result<Response, PageError> {
    let Some(role) = participant_role(&form.role) else {
        return page(&state, &who, &InviteForm::default(), vec!["staff.error.role"], StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    };
    let (actor, source, now) = (who.actor(), who.visitor.source.clone(), state.clock.now());
    change_member(&state, &who, id, move |tx, org, member| {
        if member.role == role {
            return Ok(Change::Done);
        }
        if member.role == Role::ParticipantAdmin && !member.disabled && other_active_admins(tx, org.id, member.id)? == 0
        {
            return Ok(Change::Refused("staff.error.last_admin"));
        }
        identity::set_role(tx, member.id, role)?;
        audit::append(
            tx,
            &Event::new(actor, "participants.staff.role_changed", Outcome::Success)
                .at(now)
                .organisation(org.bin.as_str())
                .object(format!("user:{}", member.username))
                .source(&source)
                .detail(serde_json::json!({ "from": member.role.as_str(), "to": role.as_str() })),
        )?;
        Ok(Change::Done)
    })
    .await
}

/// A form with nothing but its CSRF token (checked by [`CsrfForm`]).
#[derive(Debug, Deserialize)]
pub struct EmptyForm {}

/// Administrators: disables a member and ends their sessions at once.
async fn disable(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, PageError> {
    let (actor, source, me, now) = (who.actor(), who.visitor.source.clone(), who.user.id, state.clock.now());
    change_member(&state, &who, id, move |tx, org, member| {
        if member.id == me {
            return Ok(Change::Refused("staff.error.self"));
        }
        if member.disabled {
            return Ok(Change::Done);
        }
        if member.role == Role::ParticipantAdmin && other_active_admins(tx, org.id, member.id)? == 0 {
            return Ok(Change::Refused("staff.error.last_admin"));
        }
        identity::disable(tx, member.id, now)?;
        sessions::end_all_for_user(tx, member.id)?;
        audit::append(
            tx,
            &Event::new(actor, "participants.staff.disabled", Outcome::Success)
                .at(now)
                .organisation(org.bin.as_str())
                .object(format!("user:{}", member.username))
                .source(&source),
        )?;
        Ok(Change::Done)
    })
    .await
}

/// Administrators: lets a disabled member sign in again.
async fn enable(
    State(state): State<AppState>,
    ParticipantAdmin(who): ParticipantAdmin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Result<Response, PageError> {
    let (actor, source, now) = (who.actor(), who.visitor.source.clone(), state.clock.now());
    change_member(&state, &who, id, move |tx, org, member| {
        if !member.disabled {
            return Ok(Change::Done);
        }
        identity::enable(tx, member.id, true)?;
        audit::append(
            tx,
            &Event::new(actor, "participants.staff.enabled", Outcome::Success)
                .at(now)
                .organisation(org.bin.as_str())
                .object(format!("user:{}", member.username))
                .source(&source),
        )?;
        Ok(Change::Done)
    })
    .await
}
