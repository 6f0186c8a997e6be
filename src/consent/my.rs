//! The customer's own pages: `/my` lists their consents, `/my/consents/{id}` shows one with its history and last
//! use, and lets them withdraw it — for every bank or for one. Reached with the same biometric + SMS
//! identification as the authorize pages (`/my/start` begins it).
//!
//! Who may call: the customer whose `/my` journey is verified, for their own consents only (others are "not found").

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{ChangedBy, Concerning, Consent, ConsentError, HistoryEntry, Status};
use crate::clock::day;
use crate::store::StoreError;
use crate::trust::journey::{self, Customer, Journey, JourneyForm, NoFields, Purpose, Stage};
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
        .route("/my/consents/{id}/complaint", post(complain))
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
    /// The customer's complaints about this consent (`crate::requests`): number, status, when.
    complaints: Vec<(i64, crate::requests::Status, String)>,
}

/// The verified `/my` journey of this visitor, with its customer id.
fn signed_in(customer: &Customer) -> Option<(&Journey, i64)> {
    let journey = customer.journey.as_ref()?;
    (journey.purpose == Purpose::My && journey.stage == Stage::Verified).then_some(journey).zip(journey.customer_id)
}

/// Anyone: the list when identified, otherwise what the page is and how to get in.
async fn home(State(state): State<AppState>, customer: Customer) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    let Some((journey, customer_id)) = signed_in(&customer) else {
        return Ok(render(&WelcomePage { t }));
    };
    let (consents, _) =
        state.db.read(move |c| super::list(c, Concerning::Customer(customer_id), 1).map_err(StoreError::from)).await?;
    let now = state.clock.now_rfc3339();
    let (active, past): (Vec<Consent>, Vec<Consent>) = consents.into_iter().partition(|c| c.is_live(&now));
    let mut response = render(&MyPage { t, csrf: &journey.csrf, masked_iin: journey.masked_iin(), active, past });
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Anyone: begins the identification that leads to `/my`.
async fn start(State(state): State<AppState>, customer: Customer) -> Result<Response, PageError> {
    if signed_in(&customer).is_some() {
        return Err(PageError::Redirect("/my"));
    }
    let (minutes, now) = (state.config.oauth.journey_minutes, state.clock.now());
    let (cookie, _) =
        state.db.write(move |tx| journey::start(tx, Purpose::My, minutes, now).map_err(StoreError::from)).await?;
    let mut response = Redirect::to("/verify").into_response();
    response.headers_mut().append(header::SET_COOKIE, journey::cookie_header(&cookie, minutes));
    Ok(response)
}

async fn sign_out(
    State(state): State<AppState>,
    JourneyForm { journey, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    state.db.write(move |tx| journey::close(tx, &journey.id_hash).map_err(StoreError::from)).await?;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(header::SET_COOKIE, journey::clear_cookie());
    Ok(response)
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

async fn consent_page(
    state: &AppState,
    customer: &Customer,
    id: String,
    notice: Option<&'static str>,
) -> Result<Response, PageError> {
    let Some((journey, customer_id)) = signed_in(customer) else { return Err(PageError::Redirect("/my")) };
    let (consent, history) = own(state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    let live = consent.is_live(&state.clock.now_rfc3339());
    let complaints = state
        .db
        .read(move |c| crate::requests::case::complaints(c, customer_id, &id).map_err(StoreError::from))
        .await?;
    let mut response = render(&ConsentPage {
        t: Texts { lang: customer.lang },
        csrf: &journey.csrf,
        consent: &consent,
        live,
        history,
        notice,
        complaints,
    });
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn show(
    State(state): State<AppState>,
    customer: Customer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    consent_page(&state, &customer, id, None).await
}

/// What a customer's withdrawal came to.
enum Withdrawn {
    Done,
    /// The journey moved on, or the consent (or the bank's part of it) was not active.
    NotActive,
}

/// Runs a revocation for the identified customer, on their own consent only.
async fn change(state: &AppState, customer: &Customer, id: String, bank: Option<i64>) -> Result<Response, PageError> {
    let Some((journey, customer_id)) = signed_in(customer) else { return Err(PageError::Redirect("/my")) };
    let seen = journey.clone();
    let (consent, _) = own(state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    let by = ChangedBy { actor: format!("customer:{customer_id}"), source: customer.source.clone() };
    let target = consent.id;
    let now = state.clock.now();
    let done = state
        .db
        .write(move |tx| -> Result<Withdrawn, StoreError> {
            // Still the same signed-in journey (not signed out or ended since the request was read).
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(Withdrawn::NotActive);
            }
            let result = match bank {
                None => super::revoke(tx, &target, &by, "withdrawn by the customer", now),
                Some(bank) => {
                    super::revoke_provider(tx, &target, bank, &by, "withdrawn by the customer for this bank", now)
                }
            };
            match result {
                Ok(()) => Ok(Withdrawn::Done),
                Err(ConsentError::Store(e)) => Err(e.into()),
                Err(_) => Ok(Withdrawn::NotActive),
            }
        })
        .await?;
    match done {
        Withdrawn::Done => Ok(Redirect::to(&format!("/my/consents/{id}")).into_response()),
        Withdrawn::NotActive => {
            let mut response = consent_page(state, customer, id, Some("my.not_active")).await?;
            *response.status_mut() = StatusCode::CONFLICT;
            Ok(response)
        }
    }
}

async fn revoke_all(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JourneyForm { customer, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    change(&state, &customer, id, None).await
}

async fn revoke_bank(
    State(state): State<AppState>,
    Path((id, organisation)): Path<(String, i64)>,
    JourneyForm { customer, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    change(&state, &customer, id, Some(organisation)).await
}

/// The complaint form of the consent page.
#[derive(serde::Deserialize)]
struct ComplaintForm {
    #[serde(default)]
    text: String,
}

/// The identified customer: a complaint about one of their own consents, to its API user and the operator
/// (`crate::requests::case::complain`).
async fn complain(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JourneyForm { customer, form, .. }: JourneyForm<ComplaintForm>,
) -> Result<Response, PageError> {
    let Some((journey, customer_id)) = signed_in(&customer) else { return Err(PageError::Redirect("/my")) };
    own(&state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    let seen = journey.clone();
    let clocks = crate::requests::case::Clocks::from_config(&state.config)?;
    let now = state.clock.now();
    let consent_id = id.clone();
    let done = state
        .db
        .write(move |tx| -> Result<_, crate::requests::RequestsError> {
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(Err(crate::requests::Refusal::Conflict));
            }
            crate::requests::case::complain(tx, &clocks, customer_id, &consent_id, &form.text, now)
        })
        .await?;
    match done {
        Ok(_) => consent_page(&state, &customer, id, Some("requests.complaint.sent")).await,
        Err(refusal) => {
            let mut response = consent_page(&state, &customer, id, Some(refusal.text_key())).await?;
            *response.status_mut() = refusal.status();
            Ok(response)
        }
    }
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
