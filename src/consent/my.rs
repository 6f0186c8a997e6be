//! The customer's own pages: `/my` lists their consents, `/my/consents/{id}` shows one with its history and last
//! use, and lets them withdraw it — for every bank or for one. Reached with the same biometric + SMS
//! identification as the authorize pages (`/my/start` begins it).
//!
//! Who may call: the customer whose `/my` journey is verified, for their own consents only (others are "not found").

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{ChangedBy, Concerning, Consent, ConsentError, HistoryEntry, Status};
use crate::oauth::authorize::day;
use crate::store::StoreError;
use crate::trust::journey::{self, Customer, Journey, Purpose, Stage};
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/my", get(home))
        .route("/my/start", get(start))
        .route("/my/signout", post(sign_out))
        .route("/my/consents/{id}", get(show))
        .route("/my/consents/{id}/revoke", post(revoke_all))
        .route("/my/consents/{id}/banks/{organisation}/revoke", post(revoke_bank))
}

#[derive(Template)]
#[template(path = "my.html")]
struct MyPage<'a> {
    t: Texts,
    csrf: &'a str,
    masked_iin: String,
    active: Vec<Consent>,
    past: Vec<Consent>,
}

#[derive(Template)]
#[template(path = "my_welcome.html")]
struct WelcomePage {
    t: Texts,
}

#[derive(Template)]
#[template(path = "my_consent.html")]
struct ConsentPage<'a> {
    t: Texts,
    csrf: &'a str,
    consent: &'a Consent,
    live: bool,
    history: Vec<HistoryEntry>,
    notice: Option<&'static str>,
}

/// The verified `/my` journey of this visitor, with its customer id.
fn signed_in(customer: &Customer) -> Option<(&Journey, i64)> {
    let journey = customer.journey.as_ref()?;
    (journey.purpose == Purpose::My && journey.stage == Stage::Verified).then_some(journey).zip(journey.customer_id)
}

/// Anyone: the list when identified, otherwise what the page is and how to get in.
async fn home(State(state): State<AppState>, customer: Customer) -> Response {
    let t = Texts { lang: customer.lang };
    let Some((journey, customer_id)) = signed_in(&customer) else {
        return render(&WelcomePage { t });
    };
    let listed =
        state.db.read(move |c| super::list(c, Concerning::Customer(customer_id), 1).map_err(StoreError::from)).await;
    let consents = match listed {
        Ok((consents, _)) => consents,
        Err(e) => return PageError::internal(&e).into_response(),
    };
    let now = crate::clock::now_rfc3339();
    let (active, past): (Vec<Consent>, Vec<Consent>) = consents.into_iter().partition(|c| c.is_live(&now));
    let mut response = render(&MyPage { t, csrf: &journey.csrf, masked_iin: journey.masked_iin(), active, past });
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// Anyone: begins the identification that leads to `/my`.
async fn start(State(state): State<AppState>, customer: Customer) -> Response {
    if signed_in(&customer).is_some() {
        return Redirect::to("/my").into_response();
    }
    let minutes = state.config.oauth.journey_minutes;
    match state.db.write(move |tx| journey::start(tx, Purpose::My, minutes).map_err(StoreError::from)).await {
        Ok((cookie, _)) => {
            let mut response = Redirect::to("/verify").into_response();
            response.headers_mut().append(header::SET_COOKIE, journey::cookie_header(&cookie, minutes));
            response
        }
        Err(e) => PageError::internal(&e).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(State(state): State<AppState>, customer: Customer, Form(form): Form<CsrfForm>) -> Response {
    let journey = match customer.check_form(&form.csrf) {
        Ok(j) => j.clone(),
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.db.write(move |tx| journey::close(tx, &journey.id_hash).map_err(StoreError::from)).await {
        return PageError::internal(&e).into_response();
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(header::SET_COOKIE, journey::clear_cookie());
    response
}

/// The consent if it is this customer's.
async fn own(
    state: &AppState,
    customer_id: i64,
    id: String,
) -> Result<Option<(Consent, Vec<HistoryEntry>)>, StoreError> {
    state
        .db
        .read(move |c| -> Result<_, StoreError> {
            match super::load(c, &id)? {
                Some(consent) if consent.customer_id == Some(customer_id) => {
                    let history = super::history(c, &id)?;
                    Ok(Some((consent, history)))
                }
                _ => Ok(None),
            }
        })
        .await
}

async fn consent_page(state: &AppState, customer: &Customer, id: String, notice: Option<&'static str>) -> Response {
    let Some((journey, customer_id)) = signed_in(customer) else { return Redirect::to("/my").into_response() };
    match own(state, customer_id, id).await {
        Ok(Some((consent, history))) => {
            let live = consent.is_live(&crate::clock::now_rfc3339());
            let mut response = render(&ConsentPage {
                t: Texts { lang: customer.lang },
                csrf: &journey.csrf,
                consent: &consent,
                live,
                history,
                notice,
            });
            response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            response
        }
        Ok(None) => PageError::not_found().into_response(),
        Err(e) => PageError::internal(&e).into_response(),
    }
}

async fn show(State(state): State<AppState>, customer: Customer, Path(id): Path<String>) -> Response {
    consent_page(&state, &customer, id, None).await
}

/// Runs a revocation for the identified customer, on their own consent only.
async fn change(state: &AppState, customer: &Customer, csrf: &str, id: String, bank: Option<i64>) -> Response {
    if let Err(e) = customer.check_form(csrf) {
        return e.into_response();
    }
    let Some((journey, customer_id)) = signed_in(customer) else { return Redirect::to("/my").into_response() };
    let seen = journey.clone();
    match own(state, customer_id, id.clone()).await {
        Ok(Some(_)) => {}
        Ok(None) => return PageError::not_found().into_response(),
        Err(e) => return PageError::internal(&e).into_response(),
    }
    let by = ChangedBy { actor: format!("customer:{customer_id}"), source: customer.source.clone() };
    let target = id.clone();
    let done = state
        .db
        .write(move |tx| -> Result<Result<(), ConsentError>, StoreError> {
            // Still the same signed-in journey (not signed out or ended since the request was read).
            if !journey::unchanged(tx, &seen)? {
                return Ok(Err(ConsentError::NotFound));
            }
            let result = match bank {
                None => super::revoke(tx, &target, &by, "withdrawn by the customer"),
                Some(bank) => super::revoke_provider(tx, &target, bank, &by, "withdrawn by the customer for this bank"),
            };
            match result {
                Err(ConsentError::Store(e)) => Err(e.into()),
                other => Ok(other),
            }
        })
        .await;
    match done {
        Ok(Ok(())) => Redirect::to(&format!("/my/consents/{id}")).into_response(),
        Ok(Err(_)) => {
            let mut response = consent_page(state, customer, id, Some("my.not_active")).await;
            *response.status_mut() = StatusCode::CONFLICT;
            response
        }
        Err(e) => PageError::internal(&e).into_response(),
    }
}

async fn revoke_all(
    State(state): State<AppState>,
    customer: Customer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    change(&state, &customer, &form.csrf, id, None).await
}

async fn revoke_bank(
    State(state): State<AppState>,
    customer: Customer,
    Path((id, organisation)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    change(&state, &customer, &form.csrf, id, Some(organisation)).await
}

/// For templates: the status badge class and text key of a consent.
impl Consent {
    pub fn status_class(&self) -> &'static str {
        match self.status {
            Status::Authorised => "active",
            Status::AwaitingAuthorisation => "submitted",
            Status::Rejected => "rejected",
            Status::Revoked => "revoked",
            Status::Expired => "disabled",
        }
    }

    pub fn expires_day(&self) -> String {
        day(&self.expires_at)
    }

    pub fn bank_names(&self) -> String {
        self.providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
