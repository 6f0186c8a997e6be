//! Sign-in pages: password, second factor, TOTP enrolment, password change, sign-out.
//!
//! Every failure says the same thing ("wrong user name, password or code") so the pages reveal nothing about which
//! accounts exist; the audit journal records what actually happened.

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::sessions::{self, Stage};
use super::{Role, User, totp};
use crate::audit::{self, Event, Outcome};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, redisplay, render, render_status};
use crate::web::session::{CsrfForm, SignedIn, Visitor, session_cookie, session_cookie_removal};

impl From<super::PasswordError> for PageError {
    fn from(error: super::PasswordError) -> PageError {
        PageError::internal(&error)
    }
}

/// Consecutive failures (password or code) before an account is locked.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::minutes(15);
/// Sign-in attempts allowed from one address in ten minutes.
pub const ATTEMPTS_PER_SOURCE: i64 = 30;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/login/code", get(code_page).post(code))
        .route("/account/enrol", get(enrol_page).post(enrol))
        .route("/account/password", get(password_page).post(change_password))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: Texts,
    csrf: &'a str,
    error: Option<&'a str>,
    username: &'a str,
}

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage<'a> {
    t: Texts,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage<'a> {
    t: Texts,
    csrf: &'a str,
    error: Option<&'a str>,
    qr_svg_data: String,
    secret_text: String,
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    t: Texts,
    csrf: &'a str,
    error: Option<&'a str>,
    forced: bool,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    new_password: String,
    confirm: String,
}

/// A form with nothing but its CSRF token (checked by [`CsrfForm`]).
#[derive(Deserialize)]
pub struct EmptyForm {}

async fn login_page(visitor: Visitor) -> Response {
    let t = Texts::current();
    visitor.respond(render(&LoginPage { t, csrf: &visitor.session.csrf_token, error: None, username: "" }))
}

/// Where a person goes once the password is right.
fn after_password(user: &User) -> &'static str {
    if user.must_change_password {
        "/account/password"
    } else if !user.totp_enrolled {
        "/account/enrol"
    } else {
        "/login/code"
    }
}

fn redirect_with_cookie(to: &str, cookie: &str) -> Response {
    (CookieJar::new().add(session_cookie(cookie)), Redirect::to(to)).into_response()
}

enum LoginOutcome {
    Throttled,
    Refused,
    Accepted { user: User, cookie: String },
}

async fn login(
    State(state): State<AppState>,
    visitor: Visitor,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let now = state.clock.now();
    let username = form.username.trim().to_string();
    // The address's recent attempts are counted before the (deliberately slow) password check, so a throttled
    // address costs no hash.
    let candidate = {
        let (username, source) = (username.clone(), visitor.source.clone());
        state
            .db
            .read(move |c| -> Result<_, StoreError> {
                if super::recent_attempts(c, &source, now)? >= ATTEMPTS_PER_SOURCE {
                    return Ok(Candidate::Throttled);
                }
                let Some(user) = super::user_by_username(c, &username)? else { return Ok(Candidate::Unknown) };
                let hash = super::password_hash_of(c, user.id)?;
                Ok(Candidate::Known(user, hash.unwrap_or_default()))
            })
            .await?
    };
    let candidate = match candidate {
        Candidate::Throttled => return Ok(throttled()),
        Candidate::Unknown => None,
        Candidate::Known(user, hash) => Some((user, hash)),
    };
    // The password check runs on a blocking thread, a few at a time, outside the write transaction. An unknown
    // name is checked against a dummy hash: timing does not reveal which accounts exist.
    let password_ok = state.passwords.verify(form.password, candidate.as_ref().map(|(_, hash)| hash.clone())).await;
    // A name that matches no account is kept only as a keyed tag: it is often a password typed in the wrong field.
    let typed_name_tag = state.local_keys.name_tag(&username);
    let source = visitor.source.clone();
    let previous = visitor.session_id_hash().map(str::to_string);
    let outcome = state
        .db
        .write(move |tx| -> Result<LoginOutcome, StoreError> {
            let recent = super::recent_attempts(tx, &source, now)?;
            super::record_attempt(tx, &source, now)?;
            let known = candidate.is_some();
            let actor = match &candidate {
                Some((user, _)) => format!("user:{}", user.username),
                None => "anonymous".to_string(),
            };
            let event = |outcome, reason: &str| {
                let mut detail = serde_json::json!({ "reason": reason });
                if !known {
                    detail["typed_name"] = serde_json::Value::String(typed_name_tag.clone());
                }
                Event::new(actor.clone(), "identity.login.password", outcome).at(now).source(&source).detail(detail)
            };
            if recent >= ATTEMPTS_PER_SOURCE {
                audit::append(tx, &event(Outcome::Denied, "too many attempts from this address"))?;
                return Ok(LoginOutcome::Throttled);
            }
            let Some((user, _)) = candidate else {
                audit::append(tx, &event(Outcome::Failure, "unknown user"))?;
                return Ok(LoginOutcome::Refused);
            };
            if user.disabled {
                audit::append(tx, &event(Outcome::Denied, "account disabled"))?;
                return Ok(LoginOutcome::Refused);
            }
            if user.locked_at(now) {
                audit::append(tx, &event(Outcome::Denied, "account locked"))?;
                return Ok(LoginOutcome::Refused);
            }
            if !password_ok {
                record_failure(tx, &user, &source, "wrong password", now)?;
                return Ok(LoginOutcome::Refused);
            }
            audit::append(tx, &event(Outcome::Success, "password accepted"))?;
            let (_, cookie) = sessions::start(tx, previous.as_deref(), Some(user.id), Stage::Password, &source, now)?;
            Ok(LoginOutcome::Accepted { user, cookie })
        })
        .await?;
    Ok(match outcome {
        LoginOutcome::Accepted { user, cookie } => redirect_with_cookie(after_password(&user), &cookie),
        LoginOutcome::Refused => visitor.respond(render_status(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                t,
                csrf: &visitor.session.csrf_token,
                error: Some(t.get("login.failed")),
                username: &redisplay(&form.username),
            },
        )),
        LoginOutcome::Throttled => throttled(),
    })
}

/// Who a sign-in names, read before the password is checked.
enum Candidate {
    Throttled,
    Unknown,
    Known(User, String),
}

/// 429 for an address over [`ATTEMPTS_PER_SOURCE`]; the window is ten minutes, so that is the longest wait.
fn throttled() -> Response {
    let mut response = PageError::new(StatusCode::TOO_MANY_REQUESTS, "error.throttled").into_response();
    response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("600"));
    response
}

/// Counts a failure; the fifth in a row locks the account for [`LOCKOUT`].
fn record_failure(
    tx: &rusqlite::Transaction,
    user: &User,
    source: &str,
    reason: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let failures = super::count_failure(tx, user.id)?;
    audit::append(
        tx,
        &Event::new(format!("user:{}", user.username), "identity.login", Outcome::Failure)
            .at(now)
            .source(source)
            .detail(serde_json::json!({ "reason": reason, "consecutive_failures": failures })),
    )?;
    if failures >= MAX_FAILURES {
        super::lock(tx, user.id, now + LOCKOUT)?;
        audit::append(
            tx,
            &Event::new("system", "identity.account.locked", Outcome::Success)
                .at(now)
                .object(format!("user:{}", user.username))
                .source(source)
                .detail(serde_json::json!({ "minutes": LOCKOUT.whole_minutes() })),
        )?;
        sessions::end_all_for_user(tx, user.id)?;
    }
    Ok(())
}

/// A person whose password was accepted and whose second factor is pending.
pub struct Pending {
    visitor: Visitor,
    user: User,
}

impl FromRequestParts<AppState> for Pending {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        let (Stage::Password, Some(id)) = (visitor.session.stage, visitor.session.user_id) else {
            return Err(PageError::SignIn);
        };
        let user = state.db.read(move |c| super::user_by_id(c, id).map_err(StoreError::from)).await?;
        match user {
            Some(user) if !user.disabled && !user.locked_at(state.clock.now()) => {
                // The header names the person during the first sign-in's steps too (never "Sign in").
                crate::web::nav::record(crate::web::nav::Viewer::new(&user, &visitor.session.csrf_token, false));
                Ok(Pending { visitor, user })
            }
            _ => Err(PageError::SignIn),
        }
    }
}

async fn code_page(pending: Pending) -> Result<Response, PageError> {
    if !pending.user.totp_enrolled || pending.user.must_change_password {
        return Err(PageError::Redirect(after_password(&pending.user)));
    }
    Ok(render(&CodePage { t: Texts::current(), csrf: &pending.visitor.session.csrf_token, error: None }))
}

/// The time TOTP codes are checked against.
fn unix_time(now: OffsetDateTime) -> u64 {
    now.unix_timestamp().max(0) as u64
}

enum CodeOutcome {
    Accepted(String),
    Refused,
}

async fn code(
    State(state): State<AppState>,
    pending: Pending,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let now = state.clock.now();
    let user = pending.user.clone();
    let source = pending.visitor.source.clone();
    let previous = pending.visitor.session.id_hash.clone();
    let outcome = state
        .db
        .write(move |tx| -> Result<CodeOutcome, StoreError> {
            let (secret, last_step) = super::second_factor(tx, user.id)?;
            let step = secret.and_then(|s| totp::accept(&s, &user.username, &form.code, unix_time(now), last_step));
            let Some(step) = step else {
                record_failure(tx, &user, &source, "wrong or reused code", now)?;
                return Ok(CodeOutcome::Refused);
            };
            super::accept_second_factor(tx, user.id, step)?;
            audit::append(
                tx,
                &Event::new(format!("user:{}", user.username), "identity.login", Outcome::Success)
                    .at(now)
                    .source(&source),
            )?;
            let (_, cookie) = sessions::start(tx, Some(&previous), Some(user.id), Stage::Active, &source, now)?;
            Ok(CodeOutcome::Accepted(cookie))
        })
        .await?;
    Ok(match outcome {
        CodeOutcome::Accepted(cookie) => redirect_with_cookie(home_of(pending.user.role), &cookie),
        CodeOutcome::Refused => render_status(
            StatusCode::UNAUTHORIZED,
            &CodePage { t, csrf: &pending.visitor.session.csrf_token, error: Some(t.get("login.failed")) },
        ),
    })
}

/// The first page after signing in.
pub fn home_of(role: Role) -> &'static str {
    if role.is_operator_side() { "/console" } else { "/org" }
}

async fn enrol_page(State(state): State<AppState>, pending: Pending) -> Result<Response, PageError> {
    if pending.user.totp_enrolled || pending.user.must_change_password {
        return Err(PageError::Redirect(after_password(&pending.user)));
    }
    // A fresh secret per visit, kept with the session until a code proves the app has it.
    let secret = totp::new_secret();
    let id = pending.visitor.session.id_hash.clone();
    let stored = secret.clone();
    state.db.write(move |tx| sessions::set_pending_totp(tx, &id, Some(&stored)).map_err(StoreError::from)).await?;
    Ok(enrol_response(&pending, &secret, None, StatusCode::OK))
}

fn enrol_response(pending: &Pending, secret: &[u8], error: Option<&str>, status: StatusCode) -> Response {
    use base64::Engine;
    let uri = totp::provisioning_uri(secret, &pending.user.username).unwrap_or_default();
    let svg = totp::qr_svg(&uri).unwrap_or_default();
    let page = EnrolPage {
        t: Texts::current(),
        csrf: &pending.visitor.session.csrf_token,
        error,
        qr_svg_data: format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)),
        secret_text: totp::secret_text(secret),
    };
    render_status(status, &page)
}

async fn enrol(
    State(state): State<AppState>,
    pending: Pending,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let now = state.clock.now();
    let Some(secret) = pending.visitor.session.pending_totp.clone() else {
        return Err(PageError::Redirect("/account/enrol"));
    };
    let Some(step) = totp::accept(&secret, &pending.user.username, &form.code, unix_time(now), 0) else {
        let page = enrol_response(&pending, &secret, Some(t.get("enrol.wrong_code")), StatusCode::UNPROCESSABLE_ENTITY);
        return Ok(page);
    };
    let user = pending.user.clone();
    let source = pending.visitor.source.clone();
    let previous = pending.visitor.session.id_hash.clone();
    let cookie = state
        .db
        .write(move |tx| -> Result<String, StoreError> {
            super::enrol_second_factor(tx, user.id, &secret, step, now)?;
            audit::append(
                tx,
                &Event::new(format!("user:{}", user.username), "identity.totp.enrolled", Outcome::Success)
                    .at(now)
                    .source(&source),
            )?;
            let (_, cookie) = sessions::start(tx, Some(&previous), Some(user.id), Stage::Active, &source, now)?;
            Ok(cookie)
        })
        .await?;
    Ok(redirect_with_cookie(home_of(pending.user.role), &cookie))
}

/// Either a forced change (pending sign-in of someone who must replace a one-time password) or a voluntary one
/// (fully signed in, second factor passed). Someone whose password was accepted but whose second factor is still
/// pending may not change the password: that would let a stolen password alone take the account over.
#[allow(clippy::large_enum_variant)] // built once per request and never moved around
enum PasswordChanger {
    Forced(Pending),
    Voluntary(SignedIn),
}

impl FromRequestParts<AppState> for PasswordChanger {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Ok(pending) = Pending::from_request_parts(parts, state).await {
            if pending.user.must_change_password {
                return Ok(PasswordChanger::Forced(pending));
            }
            // The second factor (or its enrolment) comes first.
            return Err(PageError::Redirect(after_password(&pending.user)));
        }
        SignedIn::from_request_parts(parts, state).await.map(PasswordChanger::Voluntary)
    }
}

impl PasswordChanger {
    fn visitor(&self) -> &Visitor {
        match self {
            PasswordChanger::Forced(p) => &p.visitor,
            PasswordChanger::Voluntary(s) => &s.visitor,
        }
    }
    fn user(&self) -> &User {
        match self {
            PasswordChanger::Forced(p) => &p.user,
            PasswordChanger::Voluntary(s) => &s.user,
        }
    }
}

async fn password_page(who: PasswordChanger) -> Response {
    let forced = matches!(who, PasswordChanger::Forced(_));
    render(&PasswordPage { t: Texts::current(), csrf: &who.visitor().session.csrf_token, error: None, forced })
}

async fn change_password(
    State(state): State<AppState>,
    who: PasswordChanger,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, PageError> {
    let t = Texts::current();
    let forced = matches!(who, PasswordChanger::Forced(_));
    let user = who.user().clone();
    let refuse = |key: &str| {
        Ok(render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage { t, csrf: &who.visitor().session.csrf_token, error: Some(t.get(key)), forced },
        ))
    };
    if form.new_password != form.confirm {
        return refuse("password.mismatch");
    }
    if !super::password_acceptable(&user.username, &form.new_password) {
        return refuse("password.too_weak");
    }
    if !forced {
        // A voluntary change proves the current password again (a left-open session is not enough).
        let id = user.id;
        let hash = state.db.read(move |c| super::password_hash_of(c, id).map_err(StoreError::from)).await;
        let Ok(Some(hash)) = hash else { return refuse("password.current_wrong") };
        if !state.passwords.verify(form.current.clone(), Some(hash)).await {
            return refuse("password.current_wrong");
        }
    }
    let hash = state.passwords.hash(form.new_password).await?;
    let now = state.clock.now();
    let source = who.visitor().source.clone();
    let previous = who.visitor().session.id_hash.clone();
    let stage = if forced { Stage::Password } else { Stage::Active };
    let changed = user.clone();
    let cookie = state
        .db
        .write(move |tx| -> Result<String, StoreError> {
            super::set_password(tx, changed.id, &hash)?;
            // Other sessions of this person end: whoever knew the old password is out.
            sessions::end_all_for_user(tx, changed.id)?;
            audit::append(
                tx,
                &Event::new(format!("user:{}", changed.username), "identity.password.changed", Outcome::Success)
                    .at(now)
                    .source(&source),
            )?;
            let (_, cookie) = sessions::start(tx, Some(&previous), Some(changed.id), stage, &source, now)?;
            Ok(cookie)
        })
        .await?;
    let next = if forced {
        let mut after = user;
        after.must_change_password = false;
        after_password(&after)
    } else {
        home_of(who.user().role)
    };
    Ok(redirect_with_cookie(next, &cookie))
}

async fn logout(State(state): State<AppState>, visitor: Visitor, CsrfForm(_): CsrfForm<EmptyForm>) -> Response {
    let id = visitor.session.id_hash.clone();
    let user_id = visitor.session.user_id;
    let (source, now) = (visitor.source.clone(), state.clock.now());
    let _ = state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            if let Some(user_id) = user_id
                && let Some(user) = super::user_by_id(tx, user_id)?
            {
                audit::append(
                    tx,
                    &Event::new(format!("user:{}", user.username), "identity.logout", Outcome::Success)
                        .at(now)
                        .source(&source),
                )?;
            }
            sessions::end(tx, &id)?;
            Ok(())
        })
        .await;
    (CookieJar::new().add(session_cookie_removal()), Redirect::to("/")).into_response()
}
