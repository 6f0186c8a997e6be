//! The operator's console for requests (`/console/requests`): every request (open, escalated, all, or — for operator
//! staff and administrators — those assigned to their own team and not yet taken up, `?show=team`, which the header
//! counts) with the SLA breaches of the last 30 days; one request with its internal notes; the classifier. Console readers (operator
//! staff and the regulator) read; operator staff comment, add internal notes, take the workflow's steps and re-assign
//! with a reason; operator administrators change the classifier.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::case::{self, Acting, Assignee, ListFilter, Summary};
use super::classifier::{self, Category, Change, NewCategory, Target, Updated};
use super::pages::{CommentForm, DetailPage, StepForm, apply_comment, apply_step, load_detail};
use super::{Executor, Priority, Refusal, RequestsError, Team};
use crate::identity::Role;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};
use crate::web::session::{ConsoleReader, CsrfForm, OperatorAdmin, OperatorStaff, SignedIn};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/requests", get(list))
        .route("/console/requests/categories", get(categories).post(create_category))
        .route("/console/requests/categories/{id}", post(update_category))
        .route("/console/requests/{id}", get(detail))
        .route("/console/requests/{id}/comment", post(comment))
        .route("/console/requests/{id}/step", post(step))
        .route("/console/requests/{id}/assign", post(assign))
        .route("/console/requests/{id}/attachments/{attachment}", get(attachment))
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    show: String,
}

#[derive(Template)]
#[template(path = "console_requests.html")]
struct ListPage<'a> {
    t: Texts,
    show: &'static str,
    /// The viewer's operator team, for the "awaiting my team" filter (none for the regulator).
    team: Option<Team>,
    requests: Vec<Summary>,
    breaches_first_response: i64,
    breaches_resolution: i64,
    zone: &'a jiff::tz::TimeZone,
    now: String,
}

impl ListPage<'_> {
    fn local(&self, at: &str) -> String {
        super::local_minute(self.zone, at)
    }
}

/// Console readers: the requests, with the last 30 days' SLA breaches.
async fn list(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let team = Team::of_role(who.user.role);
    let (filter, show) = match (query.show.as_str(), team) {
        ("escalated", _) => (ListFilter::Escalated, "escalated"),
        ("all", _) => (ListFilter::All, "all"),
        ("team", Some(team)) => (ListFilter::Awaiting(team), "team"),
        _ => (ListFilter::Open, "open"),
    };
    let now = state.clock.now();
    let (from, to) = (crate::clock::rfc3339(now - time::Duration::days(30)), crate::clock::rfc3339(now));
    let (requests, (first, resolution)) = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            Ok((case::all(c, filter, super::pages::LIST_LIMIT)?, super::sla::breach_counts(c, &from, &to)?))
        })
        .await?;
    Ok(render(&ListPage {
        t: Texts::current(),
        show,
        team,
        requests,
        breaches_first_response: first,
        breaches_resolution: resolution,
        zone: state.config.time_zone.zone(),
        now: crate::clock::rfc3339(now),
    }))
}

fn is_staff(who: &SignedIn) -> bool {
    matches!(who.user.role, Role::OperatorAdmin | Role::OperatorStaff)
}

async fn detail_response(
    state: &AppState,
    who: &SignedIn,
    id: i64,
    error: Option<Refusal>,
) -> Result<Response, PageError> {
    let staff = is_staff(who);
    let acting = Acting::operator(who.audit_actor());
    let Some((request, history, attachments, evidence, steps)) = load_detail(state, id, acting, true).await? else {
        return Err(PageError::not_found());
    };
    let organisations = if staff {
        state.db.read(|c| case::assignable_organisations(c).map_err(StoreError::from)).await?
    } else {
        Vec::new()
    };
    let page = DetailPage {
        t: Texts::current(),
        csrf: who.csrf(),
        console: true,
        can_act: staff,
        request,
        history,
        attachments,
        evidence,
        steps: if staff { steps } else { Vec::new() },
        organisations,
        zone: state.config.time_zone.zone(),
        now: state.clock.now_rfc3339(),
        error,
        base: format!("/console/requests/{id}"),
    };
    Ok(render_status(error.map_or(StatusCode::OK, Refusal::status), &page))
}

/// Console readers: one request, with the operator's internal notes; the forms for operator staff.
async fn detail(
    State(state): State<AppState>,
    ConsoleReader(who): ConsoleReader,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    detail_response(&state, &who, id, None).await
}

/// Operator staff: a public comment or an internal note.
async fn comment(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<CommentForm>,
) -> Result<Response, PageError> {
    let internal = form.internal.is_some();
    match apply_comment(&state, id, Acting::operator(who.audit_actor()), form.body, internal).await {
        Ok(()) => Ok(Redirect::to(&format!("/console/requests/{id}")).into_response()),
        Err(error) => detail_response(&state, &who, id, Some(error.into_refusal()?)).await,
    }
}

/// Operator staff: a step of the workflow (the operator may take any side's step).
async fn step(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<StepForm>,
) -> Result<Response, PageError> {
    match apply_step(&state, id, Acting::operator(who.audit_actor()), &form).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/requests/{id}")).into_response()),
        Err(error) => detail_response(&state, &who, id, Some(error.into_refusal()?)).await,
    }
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    /// `team:operator_staff`, `team:operator_admin` or `organisation:<id>`.
    assignee: String,
    #[serde(default)]
    reason: String,
}

fn parse_assignee(word: &str) -> Option<Assignee> {
    match word.split_once(':')? {
        ("team", team) => team.parse::<Team>().ok().map(Assignee::Team),
        ("organisation", id) => id.parse::<i64>().ok().map(Assignee::Organisation),
        _ => None,
    }
}

/// Operator staff: hand the request to another executor, with a reason.
async fn assign(
    State(state): State<AppState>,
    OperatorStaff(who): OperatorStaff,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<AssignForm>,
) -> Result<Response, PageError> {
    let Some(to) = parse_assignee(&form.assignee) else {
        return detail_response(&state, &who, id, Some(Refusal::Assignee)).await;
    };
    let (actor, now, reason) = (who.audit_actor(), state.clock.now(), form.reason);
    let done = state
        .db
        .write(move |tx| -> Result<_, RequestsError> {
            if let Assignee::Organisation(org) = to
                && !case::assignable_organisations(tx)?.iter().any(|(o, _, _)| *o == org)
            {
                return Err(Refusal::Assignee.into());
            }
            case::reassign(tx, id, &actor, to, &reason, now)
        })
        .await;
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/console/requests/{id}")).into_response()),
        Err(error) => detail_response(&state, &who, id, Some(error.into_refusal()?)).await,
    }
}

/// Console readers: an attachment, as a download.
async fn attachment(
    State(state): State<AppState>,
    ConsoleReader(_who): ConsoleReader,
    Path((id, attachment)): Path<(i64, i64)>,
) -> Result<Response, PageError> {
    let found = state.db.read(move |c| case::attachment_content(c, id, attachment).map_err(StoreError::from)).await?;
    found.map(crate::participants::console::attachment).ok_or_else(PageError::not_found)
}

#[derive(Template)]
#[template(path = "console_request_categories.html")]
struct CategoriesPage<'a> {
    t: Texts,
    csrf: &'a str,
    categories: Vec<Category>,
    is_admin: bool,
    executors: &'static [Executor],
    teams: &'static [Team],
    /// The targets a new category starts with (the seeded "normal" ones for every priority).
    defaults: Vec<Target>,
    error: Option<&'static str>,
}

async fn categories_response(
    state: &AppState,
    who: &SignedIn,
    error: Option<&'static str>,
) -> Result<Response, PageError> {
    let categories = state.db.read(|c| classifier::categories(c).map_err(StoreError::from)).await?;
    let page = CategoriesPage {
        t: Texts::current(),
        csrf: who.csrf(),
        categories,
        is_admin: who.user.role == Role::OperatorAdmin,
        executors: Executor::ALL,
        teams: Team::ALL,
        defaults: Priority::ALL
            .iter()
            .map(|p| Target { priority: *p, first_response_minutes: 240, resolution_minutes: 1620 })
            .collect(),
        error,
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(status, &page))
}

/// Console readers: the classifier; its forms for operator administrators.
async fn categories(State(state): State<AppState>, ConsoleReader(who): ConsoleReader) -> Result<Response, PageError> {
    categories_response(&state, &who, None).await
}

/// The classifier's form: executor, team, whether it is offered, and the targets per priority (`first_<priority>`,
/// `resolution_<priority>`, in working minutes).
#[derive(Debug, Deserialize)]
struct CategoryForm {
    executor: String,
    team: String,
    #[serde(default)]
    active: Option<String>,
    /// (Text: numbers do not survive serde's `flatten` of a form.)
    #[serde(default)]
    version: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    parent: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    name_ru: String,
    #[serde(default)]
    name_kk: String,
    #[serde(flatten)]
    targets: std::collections::HashMap<String, String>,
}

impl CategoryForm {
    fn change(&self) -> Option<Change> {
        let minutes = |key: String| self.targets.get(&key).and_then(|v| v.trim().parse::<i64>().ok());
        let targets = Priority::ALL
            .iter()
            .map(|p| {
                Some(Target {
                    priority: *p,
                    first_response_minutes: minutes(format!("first_{p}"))?,
                    resolution_minutes: minutes(format!("resolution_{p}"))?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let change = Change {
            executor: self.executor.parse().ok()?,
            team: self.team.parse().ok()?,
            active: self.active.is_some(),
            targets,
        };
        change.valid().then_some(change)
    }
}

/// Operator administrators: change a category (a compare-and-set on the version the form was made from).
async fn update_category(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<CategoryForm>,
) -> Result<Response, PageError> {
    let Some(change) = form.change() else {
        return categories_response(&state, &who, Some("requests.error.category_form")).await;
    };
    let (actor, now, version) = (who.audit_actor(), state.clock.now(), form.version.trim().parse::<i64>().unwrap_or(0));
    let updated = state
        .db
        .write(move |tx| classifier::update(tx, id, version, &change, &actor, now).map_err(StoreError::from))
        .await?;
    match updated {
        Updated::Version(_) => Ok(Redirect::to("/console/requests/categories").into_response()),
        Updated::Conflict => {
            let page = categories_response(&state, &who, Some("requests.error.category_conflict")).await?;
            let mut page = page.into_response();
            *page.status_mut() = StatusCode::CONFLICT;
            Ok(page)
        }
    }
}

/// Operator administrators: add a category.
async fn create_category(
    State(state): State<AppState>,
    OperatorAdmin(who): OperatorAdmin,
    CsrfForm(form): CsrfForm<CategoryForm>,
) -> Result<Response, PageError> {
    let parent_id = match form.parent.trim() {
        "" => None,
        p => match p.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => return categories_response(&state, &who, Some("requests.error.category_form")).await,
        },
    };
    let Some(change) = form.change() else {
        return categories_response(&state, &who, Some("requests.error.category_form")).await;
    };
    let new = NewCategory {
        code: form.code.trim().to_string(),
        parent_id,
        name_en: form.name_en.trim().to_string(),
        name_ru: form.name_ru.trim().to_string(),
        name_kk: form.name_kk.trim().to_string(),
        change,
    };
    if !new.valid() {
        return categories_response(&state, &who, Some("requests.error.category_form")).await;
    }
    let (actor, now) = (who.audit_actor(), state.clock.now());
    let created = state.db.write(move |tx| classifier::create(tx, &new, &actor, now).map_err(StoreError::from)).await?;
    match created {
        Some(_) => Ok(Redirect::to("/console/requests/categories").into_response()),
        None => categories_response(&state, &who, Some("requests.error.category_taken")).await,
    }
}
