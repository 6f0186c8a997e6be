//! The customer's own pages: `/my` lists their consents, `/my/consents/{id}` shows one with its history and last
//! use, and lets them narrow it (drop banks and optional permissions, end it earlier) or withdraw it — for one bank,
//! or for every bank after a confirmation (`/my/consents/{id}/withdraw`: it cannot be undone). Reached with the
//! same biometric + SMS identification as the authorize pages (`/my/start` begins it).
//!
//! Who may call: the customer whose `/my` journey is verified, for their own consents only (others are "not found").

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::narrow::{Narrowing, Refused};
use super::{ChangedBy, Concerning, Consent, ConsentError, HistoryEntry};
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
        .route("/my/consents/{id}/withdraw", get(confirm_withdrawal))
        .route("/my/consents/{id}/narrow", post(narrow))
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
    now: String,
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
    /// What went wrong with the change asked for (an alert).
    notice: Option<&'static str>,
    /// The customer's complaints about this consent (`crate::requests`): number, status, when.
    complaints: Vec<(i64, crate::requests::Status, String)>,
    /// What the change just made did (a status message).
    done: Option<&'static str>,
    now: String,
    /// The dates the narrowing form's last day may take (`YYYY-MM-DD`, the operator's zone).
    until_min: String,
    until_max: String,
}

#[derive(Template)]
#[template(path = "my_withdraw.html")]
struct WithdrawPage<'a> {
    t: Texts,
    csrf: &'a str,
    consent: &'a Consent,
    now: String,
}

/// What a change just made did, named in the address it redirects to (`?done=…`): a fixed set, so the address
/// cannot put any other text on the page.
#[derive(serde::Deserialize)]
struct Done {
    done: Option<String>,
}

impl Done {
    fn text_key(&self) -> Option<&'static str> {
        match self.done.as_deref()? {
            "withdrawn" => Some("my.withdrawn"),
            "bank" => Some("my.bank_withdrawn"),
            "narrowed" => Some("my.narrowed"),
            _ => None,
        }
    }
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
    let mut response = render(&MyPage { t, csrf: &journey.csrf, masked_iin: journey.masked_iin(), active, past, now });
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
    done: Option<&'static str>,
) -> Result<Response, PageError> {
    let Some((journey, customer_id)) = signed_in(customer) else { return Err(PageError::Redirect("/my")) };
    let (consent, history) = own(state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    let moment = state.clock.now();
    let now = crate::clock::rfc3339(moment);
    let live = consent.is_live(&now);
    let (until_min, until_max) = super::narrow::until_bounds(&consent, state.config.time_zone.zone(), moment);
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
        done,
        now,
        until_min,
        until_max,
        complaints,
    });
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn show(
    State(state): State<AppState>,
    customer: Customer,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    consent_page(&state, &customer, id, None, done.text_key()).await
}

/// The identified customer, for their own live consent: asks whether to withdraw it for every bank (it cannot be
/// undone); the answer posts to `/my/consents/{id}/revoke`.
async fn confirm_withdrawal(
    State(state): State<AppState>,
    customer: Customer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let Some((journey, customer_id)) = signed_in(&customer) else { return Err(PageError::Redirect("/my")) };
    let (consent, _) = own(&state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    let now = state.clock.now_rfc3339();
    if !consent.is_live(&now) {
        let mut response = consent_page(&state, &customer, id, Some("my.not_active"), None).await?;
        *response.status_mut() = StatusCode::CONFLICT;
        return Ok(response);
    }
    let mut response =
        render(&WithdrawPage { t: Texts { lang: customer.lang }, csrf: &journey.csrf, consent: &consent, now });
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What a customer's change came to.
enum Outcome {
    Done,
    /// The journey moved on, or the consent (or the bank's part of it) was not active.
    NotActive,
    /// The narrowing asked for is not allowed (a required permission, no bank left, …).
    Refused(Refused),
}

/// A change the customer asks for on one of their consents.
enum Change {
    /// Withdraw for every bank.
    All,
    /// Withdraw for one bank.
    Bank(i64),
    /// Narrow: drop banks or permissions, end earlier.
    Narrow(Narrowing),
}

impl Change {
    /// The `?done=` word of the page shown after it.
    fn done(&self) -> &'static str {
        match self {
            Change::All => "withdrawn",
            Change::Bank(_) => "bank",
            Change::Narrow(_) => "narrowed",
        }
    }
}

/// Makes a change for the identified customer, on their own consent only, in one transaction.
async fn change(state: &AppState, customer: &Customer, id: String, change: Change) -> Result<Response, PageError> {
    let Some((journey, customer_id)) = signed_in(customer) else { return Err(PageError::Redirect("/my")) };
    let seen = journey.clone();
    let (consent, _) = own(state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    let by = ChangedBy { actor: format!("customer:{customer_id}"), source: customer.source.clone() };
    let target = consent.id;
    let now = state.clock.now();
    let done = change.done();
    let outcome = state
        .db
        .write(move |tx| -> Result<Outcome, StoreError> {
            // Still the same signed-in journey (not signed out or ended since the request was read).
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(Outcome::NotActive);
            }
            let result = match &change {
                Change::All => super::revoke(tx, &target, &by, "withdrawn by the customer", now),
                Change::Bank(bank) => {
                    super::revoke_provider(tx, &target, *bank, &by, "withdrawn by the customer for this bank", now)
                }
                Change::Narrow(narrowing) => super::narrow::narrow(tx, &target, narrowing, &by, now).map(|_| ()),
            };
            match result {
                Ok(()) => Ok(Outcome::Done),
                Err(ConsentError::Store(e)) => Err(e.into()),
                Err(ConsentError::Refused(refused)) => Ok(Outcome::Refused(refused)),
                Err(_) => Ok(Outcome::NotActive),
            }
        })
        .await?;
    let (status, key) = match outcome {
        Outcome::Done => return Ok(Redirect::to(&format!("/my/consents/{id}?done={done}")).into_response()),
        Outcome::NotActive => (StatusCode::CONFLICT, "my.not_active"),
        Outcome::Refused(refused) => (StatusCode::UNPROCESSABLE_ENTITY, refused.text_key()),
    };
    let mut response = consent_page(state, customer, id, Some(key), None).await?;
    *response.status_mut() = status;
    Ok(response)
}

async fn revoke_all(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JourneyForm { customer, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    change(&state, &customer, id, Change::All).await
}

async fn revoke_bank(
    State(state): State<AppState>,
    Path((id, organisation)): Path<(String, i64)>,
    JourneyForm { customer, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    change(&state, &customer, id, Change::Bank(organisation)).await
}

/// The identified customer narrows their own live consent: the banks and permissions still ticked, the last day.
async fn narrow(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JourneyForm { customer, form, .. }: JourneyForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Some((_, customer_id)) = signed_in(&customer) else { return Err(PageError::Redirect("/my")) };
    let (consent, _) = own(&state, customer_id, id.clone()).await?.ok_or_else(PageError::not_found)?;
    match super::narrow::from_form(&consent, &form, state.config.time_zone.zone()) {
        Ok(narrowing) => change(&state, &customer, id, Change::Narrow(narrowing)).await,
        Err(refused) => {
            let mut response = consent_page(&state, &customer, id, Some(refused.text_key()), None).await?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
    }
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
                return Err(crate::requests::Refusal::Conflict.into());
            }
            crate::requests::case::complain(tx, &clocks, customer_id, &consent_id, &form.text, now)
        })
        .await;
    match done {
        Ok(_) => consent_page(&state, &customer, id, None, Some("requests.complaint.sent")).await,
        Err(error) => {
            let refusal = error.into_refusal()?;
            let mut response = consent_page(&state, &customer, id, Some(refusal.text_key()), None).await?;
            *response.status_mut() = refusal.status();
            Ok(response)
        }
    }
}
