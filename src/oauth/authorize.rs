//! The authorization endpoint and the consent screen (browser pages, no client certificate).
//!
//! `GET /oauth/authorize?client_id=…&request_uri=…` takes a pushed request (once, before it expires), starts the
//! customer's verification journey and sends the browser to it. After biometric + SMS verification the customer
//! sees the consent screen — who asks, from which banks, what data, why, until when — and allows or denies.
//! The answer goes back to the registered redirect URI with `code` (or `error=access_denied`), `state` and `iss`
//! (RFC 9207). Errors before the client and its redirect URI are established are shown as a page, never redirected.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rusqlite::{Connection, Transaction};
use serde::Deserialize;

use super::metadata::{AUTHORIZE, issuer};
use super::par::REQUEST_URI_PREFIX;
use super::requests::{self, RequestStatus};
use crate::clock;
use crate::consent::{self, ChangedBy, Consent};
use crate::digest::sha256_hex;
use crate::store::StoreError;
use crate::trust::journey::{self, Customer, Journey, JourneyForm, Purpose, Stage};
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};

pub const CONSENT_PAGE: &str = "/oauth/authorize/consent";

pub fn router() -> Router<AppState> {
    Router::new().route(AUTHORIZE, get(authorize)).route(CONSENT_PAGE, get(consent_page).post(decide))
}

/// An authorization request that a browser journey is working on.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub status: RequestStatus,
    pub consent: Consent,
}

/// The request a journey belongs to.
pub fn pending(conn: &Connection, session_hash: &str) -> rusqlite::Result<Option<Pending>> {
    let Some(request) = requests::get_by_session(conn, session_hash)? else { return Ok(None) };
    Ok(consent::load(conn, &request.consent_id)?.map(|consent| Pending {
        id: request.id,
        redirect_uri: request.redirect_uri,
        state: request.state,
        status: request.status,
        consent,
    }))
}

/// The redirect URI with the response parameters added (RFC 6749 §4.1.2, RFC 9207 `iss`).
pub fn response_url(state: &AppState, pending: &Pending, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    if let Some(s) = &pending.state {
        query.append_pair("state", s);
    }
    query.append_pair("iss", &issuer(state));
    let separator = if pending.redirect_uri.contains('?') { '&' } else { '?' };
    format!("{}{separator}{}", pending.redirect_uri, query.finish())
}

/// Where a failed or cancelled journey sends the customer back: `error=access_denied`.
pub fn denied_url(state: &AppState, pending: &Pending, description: &str) -> String {
    response_url(state, pending, &[("error", "access_denied"), ("error_description", description)])
}

/// The journey failed (identity not verified): the request ends, the consent stays unanswered.
pub fn fail(tx: &Transaction, pending: &Pending) -> rusqlite::Result<()> {
    requests::fail(tx, &pending.id)?;
    Ok(())
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    request_uri: Option<String>,
}

fn page_error(key: &'static str) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, key)
}

/// Who may call: anyone with a browser; the pushed request is the credential.
async fn authorize(State(state): State<AppState>, Query(query): Query<AuthorizeQuery>) -> Result<Response, PageError> {
    let (Some(client_id), Some(request_uri)) = (query.client_id, query.request_uri) else {
        return Err(page_error("authorize.bad_request"));
    };
    let Some(secret) = request_uri.strip_prefix(REQUEST_URI_PREFIX) else {
        return Err(page_error("authorize.bad_request"));
    };
    let uri_hash = sha256_hex(secret.as_bytes());
    let minutes = state.config.oauth.journey_minutes;
    let moment = state.clock.now();
    let now = clock::rfc3339(moment);
    let started = state
        .db
        .write(move |tx| -> Result<Option<String>, StoreError> {
            let Some((request, owner)) = requests::get_by_request_uri(tx, &uri_hash)? else { return Ok(None) };
            if request.status != RequestStatus::Pushed
                || request.request_expires_at <= now
                || owner != client_id.as_str()
            {
                return Ok(None);
            }
            let (cookie, session_hash) = journey::start(tx, Purpose::Authorize, minutes, moment)?;
            // Checked above in this transaction, so it moves; the compare-and-set keeps it so if that changes.
            Ok(requests::start(tx, &request.id, &session_hash)?.then_some(cookie))
        })
        .await?;
    let Some(cookie) = started else { return Err(page_error("authorize.expired_request")) };
    let mut response = Redirect::to("/verify").into_response();
    // The browser keeps the cookie long enough for `/my` to remember the customer after the decision; the journey's
    // own expiry (kept on the server) is what decides.
    let keep = minutes + state.config.oauth.remember_customer_minutes;
    response.headers_mut().append(header::SET_COOKIE, journey::cookie_header(&cookie, keep));
    Ok(response)
}

#[derive(Template)]
#[template(path = "consent_screen.html")]
struct ConsentScreen<'a> {
    t: Texts,
    csrf: &'a str,
    consent: &'a Consent,
    masked_iin: String,
    window: Option<(String, String)>,
    /// Why the choices sent were refused (an alert).
    notice: Option<&'static str>,
    /// The dates the last day may take (`YYYY-MM-DD`, the operator's zone).
    until_min: String,
    until_max: String,
}

/// The consent screen for a verified journey's request, with the customer's choices (banks, optional permissions,
/// the last day) all ticked as asked.
fn screen(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    pending: &Pending,
    notice: Option<&'static str>,
) -> Response {
    let consent = &pending.consent;
    let t = Texts { lang: customer.lang };
    let window = match (&consent.transaction_from, &consent.transaction_to) {
        (None, None) => None,
        (from, to) => Some((
            from.as_deref().map(|d| t.date(d)).unwrap_or_default(),
            to.as_deref().map(|d| t.date(d)).unwrap_or_default(),
        )),
    };
    let (until_min, until_max) =
        consent::narrow::until_bounds(consent, state.config.time_zone.zone(), state.clock.now());
    render(&ConsentScreen {
        t,
        csrf: &journey.csrf,
        consent,
        masked_iin: journey.masked_iin(),
        window,
        notice,
        until_min,
        until_max,
    })
}

/// The request and its journey, when the customer is verified and the request still open.
async fn verified(state: &AppState, journey: Option<&Journey>) -> Result<(Journey, Pending), PageError> {
    let Some(journey) = journey.cloned() else {
        return Err(PageError::new(StatusCode::FORBIDDEN, "verify.no_journey"));
    };
    if journey.purpose != Purpose::Authorize || journey.stage != Stage::Verified {
        return Err(PageError::Redirect(journey.current_path()));
    }
    let hash = journey.id_hash.clone();
    let pending = state.db.read(move |c| pending(c, &hash).map_err(StoreError::from)).await?;
    match pending {
        Some(p) if p.status == RequestStatus::Started => Ok((journey, p)),
        _ => Err(PageError::new(StatusCode::GONE, "authorize.expired_request")),
    }
}

/// Who may call: the customer whose journey is verified, for the request it belongs to.
async fn consent_page(State(state): State<AppState>, customer: Customer) -> Result<Response, PageError> {
    let (journey, pending) = verified(&state, customer.journey.as_ref()).await?;
    Ok(screen(&state, &customer, &journey, &pending, None))
}

/// What answering the consent screen came to.
enum Answered {
    /// The consent is authorised (a code issued) or rejected; the journey is closed.
    Done,
    /// The journey or the request moved on first (another tab), or the consent can no longer be answered.
    Gone,
    /// The customer's choices are not allowed (no bank left, a day already past).
    Refused(consent::narrow::Refused),
}

/// Who may call: the customer whose journey is verified (CSRF-checked form). Allow → the customer's choices
/// applied (banks and optional permissions unticked dropped, the period shortened), `Authorised` and a code;
/// deny → `Rejected` and `access_denied`. Either way the browser goes back to the API user's application.
async fn decide(
    State(state): State<AppState>,
    JourneyForm { customer, journey, form }: JourneyForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let (journey, pending) = verified(&state, Some(&journey)).await?;
    let Some(customer_id) = journey.customer_id else {
        return Err(PageError::forbidden());
    };
    let allow = match form.iter().find(|(name, _)| name == "decision").map(|(_, v)| v.as_str()) {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(PageError::new(StatusCode::BAD_REQUEST, "error.bad_form")),
    };
    let narrowing = if allow {
        match consent::narrow::from_form(&pending.consent, &form, state.config.time_zone.zone()) {
            Ok(narrowing) => narrowing,
            Err(refused) => return Ok(refused_screen(&state, &customer, &journey, &pending, refused)),
        }
    } else {
        consent::narrow::Narrowing::default()
    };
    let code = crate::random::token();
    let (code_hash, code_secs) = (sha256_hex(code.as_bytes()), state.config.oauth.code_secs);
    let by = ChangedBy { actor: format!("customer:{customer_id}"), source: customer.source.clone() };
    let (p, hash, seen) = (pending.clone(), journey.id_hash.clone(), journey.clone());
    let remember = state.config.oauth.remember_customer_minutes;
    let now = state.clock.now();
    let outcome = state
        .db
        .write(move |tx| -> Result<Answered, StoreError> {
            // The customer is the one the journey verified, and the journey is still open.
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(Answered::Gone);
            }
            // Only a request still open may be answered (a second tab cannot answer twice).
            if requests::status(tx, &p.id)? != Some(RequestStatus::Started) {
                return Ok(Answered::Gone);
            }
            if allow {
                match consent::narrow::choose(tx, &p.consent.id, &narrowing, &by, now) {
                    Ok(()) => {}
                    Err(consent::ConsentError::Store(e)) => return Err(e.into()),
                    Err(consent::ConsentError::Refused(refused)) => return Ok(Answered::Refused(refused)),
                    Err(_) => return Ok(Answered::Gone),
                }
                match consent::authorise(tx, &p.consent.id, customer_id, &by, now) {
                    Ok(_) => {}
                    Err(consent::ConsentError::Store(e)) => return Err(e.into()),
                    Err(_) => return Ok(Answered::Gone),
                }
                requests::approve(tx, &p.id, &code_hash, now + time::Duration::seconds(code_secs as i64))?;
            } else {
                match consent::reject(tx, &p.consent.id, &by, "refused by the customer", now) {
                    Ok(()) => {}
                    Err(consent::ConsentError::Store(e)) => return Err(e.into()),
                    Err(_) => return Ok(Answered::Gone),
                }
                requests::deny(tx, &p.id)?;
            }
            // `/my` remembers the customer for a while (no second identification), unless configured not to.
            if remember == 0 || !journey::remember_for_my(tx, &hash, remember, now)? {
                journey::close(tx, &hash)?;
            }
            Ok(Answered::Done)
        })
        .await?;
    match outcome {
        Answered::Gone => return Err(PageError::new(StatusCode::GONE, "authorize.expired_request")),
        Answered::Refused(refused) => return Ok(refused_screen(&state, &customer, &journey, &pending, refused)),
        Answered::Done => {}
    }
    let to = if allow {
        response_url(&state, &pending, &[("code", &code)])
    } else {
        denied_url(&state, &pending, "The customer refused the consent")
    };
    let mut response = Redirect::to(&to).into_response();
    if remember == 0 {
        response.headers_mut().append(header::SET_COOKIE, journey::clear_cookie());
    }
    Ok(response)
}

/// The consent screen again, saying why the choices were refused (nothing was stored).
fn refused_screen(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    pending: &Pending,
    refused: consent::narrow::Refused,
) -> Response {
    let mut response = screen(state, customer, journey, pending, Some(refused.text_key()));
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    response
}
