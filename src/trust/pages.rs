//! The customer's verification pages — `/verify` (IIN and phone), `/verify/biometric`, `/verify/code` (SMS code,
//! resend), `/verify/cancel`, `/verify/ended` — and the demo's SMS outbox page `/demo/sms`.
//!
//! Who may call: the holder of a live journey cookie (each page checks the journey's stage and sends the browser
//! to the right one); forms are CSRF- and origin-checked. `/demo/sms` exists in demo mode only.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::biometric::{BiometricVerifier, Verdict};
use super::journey::{self, Customer, Journey, JourneyForm, MAX_BIOMETRIC_FAILURES, NoFields, Purpose, Stage};
use super::limits::{self, Subject};
use super::otp;
use crate::config::Mode;
use crate::consent::ChangedBy;
use crate::kz::Iin;
use crate::oauth::authorize::{self, Pending};
use crate::oauth::requests::{self, RequestStatus};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render, render_status};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/verify", get(identify_page).post(identify))
        .route("/verify/biometric", get(biometric_page).post(biometric))
        .route("/verify/code", get(code_page).post(code))
        .route("/verify/resend", post(resend))
        .route("/verify/cancel", post(cancel))
        .route("/verify/ended", get(ended_page))
        .route("/demo/sms", get(demo_outbox))
}

/// Who is asking, shown on every step of an authorization journey.
struct Asking {
    application: String,
    organisation: String,
    banks: Vec<String>,
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    t: Texts,
    csrf: &'a str,
    /// `identify`, `biometric` or `code`.
    step: &'static str,
    asking: Option<Asking>,
    error: Option<String>,
    notice: Option<String>,
    iin: &'a str,
    phone: &'a str,
    masked_iin: String,
    /// Given to the vendor's capture widget, which binds the capture to this journey.
    nonce: &'a str,
    simulated: bool,
    demo: bool,
    /// A sandbox journey: a sandbox application's consent, or a test customer's own pages on a production platform.
    /// Test customers only, the face check simulated, the code shown here instead of sent.
    sandbox: bool,
    /// The code just issued to a sandbox journey's test customer (shown once, never stored).
    sandbox_code: Option<String>,
    test_customers: &'static [crate::standard::SandboxCustomer],
}

#[derive(Template)]
#[template(path = "verify_ended.html")]
struct EndedPage {
    t: Texts,
    message: String,
    /// Back to the API user's application with `error=access_denied`.
    return_url: Option<String>,
    application: String,
    /// For `/my` journeys: start again.
    restart: bool,
}

async fn pending_of(state: &AppState, journey: &Journey) -> Result<Option<Pending>, StoreError> {
    if journey.purpose != Purpose::Authorize {
        return Ok(None);
    }
    let hash = journey.id_hash.clone();
    state.db.read(move |c| authorize::pending(c, &hash).map_err(StoreError::from)).await
}

fn asking(pending: &Option<Pending>) -> Option<Asking> {
    pending.as_ref().map(|p| Asking {
        application: p.consent.application_name.clone(),
        organisation: p.consent.organisation_name.clone(),
        banks: p.consent.providers.iter().map(|b| b.name.clone()).collect(),
    })
}

/// Whether the journey is a sandbox one: for a sandbox application's consent. On a demo platform every adapter is
/// simulated anyway, and the demo's outbox holds the codes. (A test customer's own `/my` pages on a production
/// platform are refused at the first step: no real person is behind a test customer, so nothing real could verify
/// them, and a simulated check would open them to anyone.)
fn is_sandbox(pending: &Option<Pending>) -> bool {
    pending.as_ref().is_some_and(|p| p.consent.mode.is_sandbox())
}

/// Renders one step of the journey.
async fn step_page(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    step: &'static str,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    render_step(state, customer, journey, step, error, notice, None).await
}

/// Renders one step of the journey with the error text under `key`.
async fn step_error(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    step: &'static str,
    key: &'static str,
) -> Result<Response, PageError> {
    let message = Texts { lang: customer.lang }.get(key).to_string();
    step_page(state, customer, journey, step, Some(message), None).await
}

/// Renders one step of the journey, with the code of a sandbox journey's test customer when one was just issued.
async fn render_step(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    step: &'static str,
    error: Option<String>,
    notice: Option<String>,
    sandbox_code: Option<String>,
) -> Result<Response, PageError> {
    let pending = pending_of(state, journey).await?;
    let sandbox = is_sandbox(&pending);
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(render_status(
        status,
        &VerifyPage {
            t: Texts { lang: customer.lang },
            csrf: &journey.csrf,
            step,
            asking: asking(&pending),
            error,
            notice,
            iin: journey.iin.as_deref().unwrap_or(""),
            phone: "",
            masked_iin: journey.masked_iin(),
            nonce: journey.biometric_nonce.as_deref().unwrap_or(""),
            simulated: sandbox || matches!(state.biometric, BiometricVerifier::Simulated),
            demo: state.config.mode == Mode::Demo && !sandbox,
            sandbox,
            sandbox_code,
            test_customers: crate::standard::SANDBOX_CUSTOMERS,
        },
    ))
}

/// The journey of this visitor at `stage`, or where to go instead.
fn at_stage(customer: &Customer, stage: Stage) -> Result<&Journey, PageError> {
    match &customer.journey {
        None => Err(no_journey()),
        Some(j) if j.stage == stage => Ok(j),
        Some(j) => Err(PageError::Redirect(j.current_path())),
    }
}

fn no_journey() -> PageError {
    PageError::new(StatusCode::FORBIDDEN, "verify.no_journey")
}

async fn identify_page(State(state): State<AppState>, customer: Customer) -> Result<Response, PageError> {
    let journey = at_stage(&customer, Stage::Identify)?;
    step_page(&state, &customer, journey, "identify", None, None).await
}

#[derive(Deserialize)]
struct IdentifyForm {
    iin: String,
    phone: String,
}

async fn identify(
    State(state): State<AppState>,
    JourneyForm { customer, journey, form }: JourneyForm<IdentifyForm>,
) -> Result<Response, PageError> {
    if journey.stage != Stage::Identify {
        return Err(PageError::Redirect(journey.current_path()));
    }
    let iin = form.iin.trim().to_string();
    let Ok(iin) = Iin::parse(&iin) else {
        return step_error(&state, &customer, &journey, "identify", "verify.bad_iin").await;
    };
    let Some(phone) = journey::normalise_phone(&form.phone) else {
        return step_error(&state, &customer, &journey, "identify", "verify.bad_phone").await;
    };
    // A sandbox application's consent is for test customers only; a production one on a production platform, for
    // real people only; a test customer's own pages do not exist on a production platform. The customer stays on
    // this step (a developer who typed a real IIN can pick a test one).
    let pending = pending_of(&state, &journey).await?;
    let refusal = match &pending {
        Some(p) => crate::apps::customer_refusal(p.consent.mode, state.config.mode, iin.as_str()),
        None => (state.config.mode == Mode::Production && crate::apps::is_test_customer(iin.as_str()))
            .then_some("verify.test_customer_my"),
    };
    if let Some(key) = refusal {
        audit_customer(&state, &customer, "trust.customer.mode_refused", &journey).await;
        return step_error(&state, &customer, &journey, "identify", key).await;
    }
    let (seen, iin_text) = (journey.clone(), iin.as_str().to_string());
    if !state.db.write(move |tx| journey::identified(tx, &seen, &iin_text, &phone).map_err(StoreError::from)).await? {
        return Err(conflict());
    }
    Ok(Redirect::to("/verify/biometric").into_response())
}

/// Another request (a second tab, or a request whose body came late) moved the journey on first.
fn conflict() -> PageError {
    PageError::new(StatusCode::CONFLICT, "verify.conflict")
}

/// A limit across journeys is reached: the step's page says when the customer may try again.
async fn limited(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    step: &'static str,
    retry_at: time::OffsetDateTime,
) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    let seconds = (retry_at - state.clock.now()).whole_seconds().max(1);
    let minutes = (seconds + 59) / 60;
    audit_customer(state, customer, "trust.limit.reached", journey).await;
    let message = t.get("verify.limit_reached").replace("{minutes}", &minutes.to_string());
    let mut response = step_page(state, customer, journey, step, Some(message), None).await?;
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Ok(response)
}

async fn biometric_page(State(state): State<AppState>, customer: Customer) -> Result<Response, PageError> {
    let journey = at_stage(&customer, Stage::Biometric)?;
    step_page(&state, &customer, journey, "biometric", None, None).await
}

#[derive(Deserialize)]
struct BiometricForm {
    /// The vendor's reference of the capture (or, with the simulated adapter, the outcome chosen).
    session: String,
}

/// Ends the journey as failed and shows why, with the way back to the application (authorize) or a restart (my).
async fn end_failed(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    message_key: &'static str,
) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    let pending = pending_of(state, journey).await?;
    let (hash, p) = (journey.id_hash.clone(), pending.clone());
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            journey::close(tx, &hash)?;
            if let Some(p) = &p {
                authorize::fail(tx, p)?;
            }
            Ok(())
        })
        .await?;
    let mut response = render_status(
        StatusCode::FORBIDDEN,
        &EndedPage {
            t,
            message: t.get(message_key).to_string(),
            return_url: pending
                .as_ref()
                .map(|p| authorize::denied_url(state, p, "The customer could not be identified")),
            application: pending.as_ref().map(|p| p.consent.application_name.clone()).unwrap_or_default(),
            restart: journey.purpose == Purpose::My,
        },
    );
    response.headers_mut().append(header::SET_COOKIE, journey::clear_cookie());
    Ok(response)
}

/// What a face check may do before the vendor is asked.
enum FaceCheck {
    Go,
    /// The journey moved on since the request read it.
    Moved,
    Limited(time::OffsetDateTime),
    /// The capture reference was checked before (in this journey or another).
    Replayed,
}

async fn biometric(
    State(state): State<AppState>,
    JourneyForm { customer, journey, form }: JourneyForm<BiometricForm>,
) -> Result<Response, PageError> {
    if journey.stage != Stage::Biometric {
        return Err(PageError::Redirect(journey.current_path()));
    }
    let (Some(iin), Some(nonce)) =
        (journey.iin.as_deref().and_then(|iin| Iin::parse(iin).ok()), journey.biometric_nonce.clone())
    else {
        return Err(no_journey());
    };
    let session = form.session.trim().to_string();
    if session.is_empty() || session.len() > 200 {
        return step_error(&state, &customer, &journey, "biometric", "verify.biometric_missing").await;
    }
    let sandbox = is_sandbox(&pending_of(&state, &journey).await?);
    // No real person is behind a test customer: their face check is always the simulated one.
    let verifier = if sandbox { &BiometricVerifier::Simulated } else { &state.biometric };
    let real_capture = !matches!(verifier, BiometricVerifier::Simulated);
    let now = state.clock.now();
    let (seen, trust, source, capture) =
        (journey.clone(), state.config.trust.clone(), customer.source.clone(), session.clone());
    let allowed = state
        .db
        .write(move |tx| -> Result<FaceCheck, StoreError> {
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(FaceCheck::Moved);
            }
            let subjects = [Subject::Iin(seen.iin.as_deref().unwrap_or_default()), Subject::Source(&source)];
            if let limits::Taken::Limited(at) = limits::take(tx, &trust, limits::Kind::Face, &subjects, now)? {
                return Ok(FaceCheck::Limited(at));
            }
            if real_capture && !limits::first_use_of_capture(tx, &capture, now)? {
                return Ok(FaceCheck::Replayed);
            }
            Ok(FaceCheck::Go)
        })
        .await?;
    let verdict = match allowed {
        FaceCheck::Go => match verifier.verify(&iin, &session, &nonce).await {
            Ok(verdict) => verdict,
            Err(error) => {
                tracing::warn!(%error, "biometric adapter failed");
                // The vendor failed, not the customer: nothing counts against them; they may try again.
                return step_error(&state, &customer, &journey, "biometric", "verify.biometric_unavailable").await;
            }
        },
        FaceCheck::Replayed => Verdict::Unbound,
        FaceCheck::Moved => return Err(conflict()),
        FaceCheck::Limited(at) => return limited(&state, &customer, &journey, "biometric", at).await,
    };
    if verdict != Verdict::Passed {
        let seen = journey.clone();
        let failures = state
            .db
            .write(move |tx| journey::biometric_failed(tx, &seen).map_err(StoreError::from))
            .await?
            .ok_or_else(conflict)?;
        let action = if verdict == Verdict::Unbound { "trust.biometric.replayed" } else { "trust.biometric.failed" };
        audit_customer(&state, &customer, action, &journey).await;
        if failures >= MAX_BIOMETRIC_FAILURES {
            return end_failed(&state, &customer, &journey, "verify.biometric_exhausted").await;
        }
        let key = match verdict {
            Verdict::LivenessFailed => "verify.liveness_failed",
            Verdict::Unbound => "verify.capture_unbound",
            _ => "verify.no_match",
        };
        return step_error(&state, &customer, &journey, "biometric", key).await;
    }
    if !sandbox && let PhoneCheck::Page(page) = phone_of_the_person(&state, &customer, &journey, &iin).await? {
        return Ok(page);
    }
    send_code(&state, &customer, &journey, sandbox).await
}

/// Asks the mobile-number registry whether the journey's phone is registered to the person who just passed the face
/// check. If not, the journey goes back to the first step (identity forgotten) and the customer is told why.
async fn phone_of_the_person(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    iin: &Iin,
) -> Result<PhoneCheck, PageError> {
    let t = Texts { lang: customer.lang };
    let Some(phone) = journey.phone.as_deref() else { return Err(no_journey()) };
    match state.phones.owns(iin, phone).await {
        Ok(true) => Ok(PhoneCheck::Owned),
        Ok(false) => {
            let seen = journey.clone();
            if !state.db.write(move |tx| journey::phone_refused(tx, &seen).map_err(StoreError::from)).await? {
                return Err(conflict());
            }
            audit_customer(state, customer, "trust.phone.not_owned", journey).await;
            let mut back = journey.clone();
            (back.stage, back.iin, back.phone, back.biometric_nonce) = (Stage::Identify, None, None, None);
            let message = Some(t.get("verify.phone_not_owned").to_string());
            Ok(PhoneCheck::Page(step_page(state, customer, &back, "identify", message, None).await?))
        }
        Err(error) => {
            tracing::warn!(%error, "phone registry adapter failed");
            let message = Some(t.get("verify.phone_unavailable").to_string());
            Ok(PhoneCheck::Page(step_page(state, customer, journey, "biometric", message, None).await?))
        }
    }
}

/// What the phone registry said of the journey's phone.
enum PhoneCheck {
    /// Registered to the person: the journey goes on.
    Owned,
    /// Not (or the registry failed): this page says so.
    Page(Response),
}

/// What sending a code found.
enum CodeIssue {
    Issued(String, String),
    Moved,
    Limited(time::OffsetDateTime),
}

/// Issues an OTP for the journey and sends it. If the SMS cannot be sent, the journey stays where it is. A sandbox
/// journey's code is sent nowhere: it is shown on the next page, once (test customers have no real phone).
async fn send_code(
    state: &AppState,
    customer: &Customer,
    journey: &Journey,
    sandbox: bool,
) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    let (Some(phone), Some(iin)) = (journey.phone.clone(), journey.iin.clone()) else {
        return Err(no_journey());
    };
    let now = state.clock.now();
    let (seen, purpose, trust, source) =
        (journey.clone(), journey.otp_purpose(), state.config.trust.clone(), customer.source.clone());
    let p = phone.clone();
    let issued = state
        .db
        .write(move |tx| -> Result<CodeIssue, StoreError> {
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(CodeIssue::Moved);
            }
            let subjects = [Subject::Iin(&iin), Subject::Phone(&p), Subject::Source(&source)];
            if let limits::Taken::Limited(at) = limits::take(tx, &trust, limits::Kind::Sms, &subjects, now)? {
                return Ok(CodeIssue::Limited(at));
            }
            let (otp_id, code) = otp::issue(tx, &purpose, &p, now)?;
            Ok(CodeIssue::Issued(otp_id, code))
        })
        .await?;
    let (otp_id, code) = match issued {
        CodeIssue::Issued(otp_id, code) => (otp_id, code),
        CodeIssue::Moved => return Err(conflict()),
        CodeIssue::Limited(at) => return limited(state, customer, journey, "biometric", at).await,
    };
    if !sandbox {
        let text = t.get("verify.sms_text").replace("{code}", &code);
        if let Err(error) = state.sms.send(&phone, &text).await {
            tracing::warn!(%error, "SMS adapter failed");
            return step_error(state, customer, journey, "biometric", "verify.sms_unavailable").await;
        }
    }
    let seen = journey.clone();
    if !state.db.write(move |tx| journey::code_sent(tx, &seen, &otp_id).map_err(StoreError::from)).await? {
        return Err(conflict());
    }
    if sandbox {
        // Rendered here, not after a redirect: the code is never kept, so no later page could show it.
        render_step(state, customer, journey, "code", None, None, Some(code)).await
    } else {
        Ok(Redirect::to("/verify/code").into_response())
    }
}

async fn code_page(State(state): State<AppState>, customer: Customer) -> Result<Response, PageError> {
    let journey = at_stage(&customer, Stage::Otp)?;
    step_page(&state, &customer, journey, "code", None, None).await
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn code(
    State(state): State<AppState>,
    JourneyForm { customer, journey, form }: JourneyForm<CodeForm>,
) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    if journey.stage != Stage::Otp {
        return Err(PageError::Redirect(journey.current_path()));
    }
    let Some(otp_id) = journey.otp_id.clone() else {
        return Err(no_journey());
    };
    let (seen, purpose, submitted, now) = (journey.clone(), journey.otp_purpose(), form.code, state.clock.now());
    let checked = state
        .db
        .write(move |tx| -> Result<Option<(otp::Check, Option<i64>)>, StoreError> {
            // The code belongs to the identity that passed the face check; a journey moved on since is not this one.
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(None);
            }
            let check = otp::check(tx, &otp_id, &submitted, now)?;
            if let otp::Check::Verified { purpose: p } = &check {
                if *p != purpose {
                    return Ok(Some((otp::Check::Unknown, None)));
                }
                let Some(customer_id) = journey::verified(tx, &seen, now)? else { return Ok(None) };
                return Ok(Some((check, Some(customer_id))));
            }
            Ok(Some((check, None)))
        })
        .await?;
    match checked.map(|(check, customer_id)| (check, customer_id.or(journey.customer_id))) {
        None => Err(conflict()),
        Some((otp::Check::Verified { .. }, customer_id)) => {
            // Journalled as the customer just identified (the pseudonymous `customer:<id>`, never the IIN).
            let verified = Journey { customer_id, ..journey.clone() };
            audit_customer(&state, &customer, "trust.customer.verified", &verified).await;
            Ok(Redirect::to(match journey.purpose {
                Purpose::Authorize => authorize::CONSENT_PAGE,
                Purpose::My => "/my",
            })
            .into_response())
        }
        Some((otp::Check::Wrong { attempts_left }, _)) => {
            let message = t.get("verify.wrong_code").replace("{left}", &attempts_left.to_string());
            step_page(&state, &customer, &journey, "code", Some(message), None).await
        }
        Some((otp::Check::Expired, _)) => step_error(&state, &customer, &journey, "code", "verify.code_expired").await,
        Some((otp::Check::Exhausted | otp::Check::Unknown, _)) => {
            audit_customer(&state, &customer, "trust.otp.exhausted", &journey).await;
            end_failed(&state, &customer, &journey, "verify.code_exhausted").await
        }
    }
}

/// What a resend found.
enum Resent {
    Otp(otp::Resend),
    Moved,
    Limited(time::OffsetDateTime),
}

async fn resend(
    State(state): State<AppState>,
    JourneyForm { customer, journey, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    let (Some(otp_id), Some(phone), Stage::Otp) = (journey.otp_id.clone(), journey.phone.clone(), journey.stage) else {
        return Err(PageError::Redirect(journey.current_path()));
    };
    let sandbox = is_sandbox(&pending_of(&state, &journey).await?);
    let now = state.clock.now();
    let (seen, trust, source, p) =
        (journey.clone(), state.config.trust.clone(), customer.source.clone(), phone.clone());
    let outcome = state
        .db
        .write(move |tx| -> Result<Resent, StoreError> {
            if !journey::unchanged(tx, &seen, now)? {
                return Ok(Resent::Moved);
            }
            // Only a resend that would send counts against the limits; one refused for its wait or count does not.
            if let Some(refused) = otp::resend_refusal(tx, &otp_id, &p, now)? {
                return Ok(Resent::Otp(refused));
            }
            let iin = seen.iin.as_deref().unwrap_or_default();
            let subjects = [Subject::Iin(iin), Subject::Phone(&p), Subject::Source(&source)];
            if let limits::Taken::Limited(at) = limits::take(tx, &trust, limits::Kind::Sms, &subjects, now)? {
                return Ok(Resent::Limited(at));
            }
            Ok(Resent::Otp(otp::resend(tx, &otp_id, &p, now)?))
        })
        .await?;
    let outcome = match outcome {
        Resent::Otp(outcome) => outcome,
        Resent::Moved => return Err(conflict()),
        Resent::Limited(at) => return limited(&state, &customer, &journey, "code", at).await,
    };
    let (error, notice) = match outcome {
        otp::Resend::Code(code) if sandbox => {
            let notice = Some(t.get("verify.code_resent").to_string());
            return render_step(&state, &customer, &journey, "code", None, notice, Some(code)).await;
        }
        otp::Resend::Code(code) => {
            let text = t.get("verify.sms_text").replace("{code}", &code);
            match state.sms.send(&phone, &text).await {
                Ok(()) => (None, Some(t.get("verify.code_resent").to_string())),
                Err(error) => {
                    tracing::warn!(%error, "SMS adapter failed");
                    (Some(t.get("verify.sms_unavailable").to_string()), None)
                }
            }
        }
        otp::Resend::Wait(secs) => (Some(t.get("verify.resend_wait").replace("{seconds}", &secs.to_string())), None),
        otp::Resend::TooMany => (Some(t.get("verify.resend_limit").to_string()), None),
        otp::Resend::Unknown => return end_failed(&state, &customer, &journey, "verify.code_exhausted").await,
    };
    step_page(&state, &customer, &journey, "code", error, notice).await
}

/// The customer gives up. An authorization request ends as refused by the customer (`Rejected`,
/// `access_denied`); a `/my` journey just ends.
async fn cancel(
    State(state): State<AppState>,
    JourneyForm { customer, journey, .. }: JourneyForm<NoFields>,
) -> Result<Response, PageError> {
    let pending = pending_of(&state, &journey).await?;
    let by = ChangedBy {
        actor: journey.customer_id.map(|id| format!("customer:{id}")).unwrap_or_else(|| "customer:unidentified".into()),
        source: customer.source.clone(),
    };
    let (hash, p) = (journey.id_hash.clone(), pending.clone());
    let now = state.clock.now();
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            journey::close(tx, &hash)?;
            // Only a request still open ends here; one answered some other way has nothing to reject.
            if let Some(p) = p.filter(|p| p.status == RequestStatus::Started)
                && requests::deny(tx, &p.id)?
                && let Err(crate::consent::ConsentError::Store(e)) =
                    crate::consent::reject(tx, &p.consent.id, &by, "cancelled by the customer", now)
            {
                return Err(e.into());
            }
            Ok(())
        })
        .await?;
    let to = match &pending {
        Some(p) => authorize::denied_url(&state, p, "The customer cancelled"),
        None => "/".to_string(),
    };
    let mut response = Redirect::to(&to).into_response();
    response.headers_mut().append(header::SET_COOKIE, journey::clear_cookie());
    Ok(response)
}

async fn ended_page(customer: Customer) -> Result<Response, PageError> {
    let t = Texts { lang: customer.lang };
    Ok(render_status(
        StatusCode::GONE,
        &EndedPage {
            t,
            message: t.get("verify.ended").to_string(),
            return_url: None,
            application: String::new(),
            restart: true,
        },
    ))
}

/// Journey events in the audit journal name the customer by id when known — never the IIN, phone or code.
async fn audit_customer(state: &AppState, customer: &Customer, action: &'static str, journey: &Journey) {
    let actor =
        journey.customer_id.map(|id| format!("customer:{id}")).unwrap_or_else(|| "customer:unidentified".into());
    let outcome =
        if action.ends_with("verified") { crate::audit::Outcome::Success } else { crate::audit::Outcome::Denied };
    let (source, object) = (customer.source.clone(), format!("journey:{}", &journey.id_hash[..12]));
    let now = state.clock.now();
    let written = state
        .db
        .write(move |tx| {
            let event = crate::audit::Event::new(actor, action, outcome).at(now).object(object).source(source);
            crate::audit::append(tx, &event).map_err(StoreError::from)
        })
        .await;
    if let Err(error) = written {
        tracing::error!(%error, "audit of a customer journey failed");
    }
}

#[derive(Template)]
#[template(path = "demo_sms.html")]
struct OutboxPage {
    t: Texts,
    messages: Vec<(String, String, String)>,
}

/// Who may call: anyone, in demo mode only (the outbox adapter is refused in production). Newest first.
async fn demo_outbox(State(state): State<AppState>, t: Texts) -> Result<Response, PageError> {
    if state.config.mode != Mode::Demo || !matches!(state.sms, super::sms::SmsSender::Outbox(_)) {
        return Err(PageError::not_found());
    }
    let messages = state.db.read(|c| super::sms::outbox(c, 20).map_err(StoreError::from)).await?;
    let mut response = render(&OutboxPage { t, messages });
    // The page is for watching codes arrive: never cache it.
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}
