//! Browser sessions for the personal account and the operator console, CSRF protection, and the extractors that
//! say who may see a page. The sessions themselves (the `sessions` table) are [`crate::identity::sessions`]'; this
//! module carries them through cookies and requests.
//!
//! The cookie `__Host-kopir_session` (Secure, HttpOnly, SameSite=Strict, Path=/) holds 32 random bytes; the database
//! keeps only their SHA-256. Sessions start when a password is accepted; each has a CSRF token that every form echoes
//! in a hidden field. Sessions expire after 30 idle minutes or 12 hours, and their id is replaced at each step of
//! signing in.
//!
//! Anonymous visitors (the sign-in and registration forms) have no session and cost no database write: their forms
//! carry a signed double-submit token instead — the cookie `__Host-kopir_form` (same attributes) holds 32 random
//! bytes, and the form's token is an HMAC of that value under a key only this server holds
//! ([`crate::pki::local_keys`]). A page of another site can neither read the cookie nor make the token, and the
//! `__Host-` prefix keeps a sibling domain from planting a cookie of its own. Every POST is accepted only with the
//! right token (compared in constant time) and a same-origin `Origin` header.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::OffsetDateTime;

use super::AppState;
use super::client_cert::ConnectionInfo;
use super::pages::{Lang, PageError};
use crate::identity::sessions::{self, random_token};
pub use crate::identity::sessions::{Session, Stage};
use crate::identity::{Role, User};
use crate::participants::{OrgStatus, Organisation};
use crate::store::StoreError;

pub const SESSION_COOKIE: &str = "__Host-kopir_session";
/// The anonymous visitor's form cookie: the value the CSRF token of anonymous forms is bound to.
pub const FORM_COOKIE: &str = "__Host-kopir_form";

/// A `__Host-` cookie as every cookie of the platform's pages is: Secure, HttpOnly, SameSite=Strict, Path=/.
fn host_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value)).path("/").secure(true).http_only(true).same_site(SameSite::Strict).build()
}

fn header_value(cookie: &Cookie) -> HeaderValue {
    HeaderValue::from_str(&cookie.encoded().to_string()).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The session cookie carrying a session's id (add it to the response's [`CookieJar`]).
pub fn session_cookie(value: &str) -> Cookie<'static> {
    host_cookie(SESSION_COOKIE, value.to_string())
}

/// The cookie that ends the browser's session cookie.
pub fn session_cookie_removal() -> Cookie<'static> {
    let mut cookie = host_cookie(SESSION_COOKIE, String::new());
    cookie.make_removal();
    cookie
}

fn form_cookie(value: &str) -> HeaderValue {
    header_value(&host_cookie(FORM_COOKIE, value.to_string()))
}

/// A form cookie value as this server makes them (43 base64url characters); anything else is replaced.
fn well_formed_form_cookie(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The source address of a request, for the audit journal and throttling.
pub fn source_of(parts_extensions: &axum::http::Extensions) -> String {
    parts_extensions.get::<Arc<ConnectionInfo>>().map(|i| i.peer_addr.ip().to_string()).unwrap_or_default()
}

/// The host the request was addressed to: the `:authority` of HTTP/2 (in the URI) or the `Host` header of HTTP/1.1.
pub fn request_host(parts: &Parts) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
        .unwrap_or_default()
}

/// Whether a state-changing request comes from a page of this platform: browsers send `Origin` with every POST.
pub fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    if host.is_empty() {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => origin == format!("https://{host}"),
        // No Origin (old clients, some tools): fall back to Referer, else refuse.
        None => headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .is_some_and(|r| r.starts_with(&format!("https://{host}/"))),
    }
}

/// Any visitor of a page with forms: loads the session or starts an anonymous one (the new cookie is added to the
/// response with [`Visitor::respond`]).
#[derive(Debug, Clone)]
pub struct Visitor {
    pub session: Session,
    pub lang: Lang,
    pub source: String,
    pub new_cookie: Option<HeaderValue>,
    /// The raw cookie value, needed to rotate the session.
    pub cookie_value: Option<String>,
    /// The host the request was addressed to.
    pub host: String,
    /// Whether the request came from a page of this platform (`Origin`, else `Referer`): forms are refused otherwise.
    pub same_origin: bool,
}

impl Visitor {
    /// The id hash of the visitor's session, if there is one (anonymous visitors have none).
    pub fn session_id_hash(&self) -> Option<&str> {
        Some(self.session.id_hash.as_str()).filter(|id| !id.is_empty())
    }

    pub fn respond(&self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        if let Some(c) = &self.new_cookie {
            response.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        response
    }

    /// Checks the CSRF token and the origin of a form post (handlers take [`CsrfForm`], which calls this).
    pub fn check_form(&self, submitted_token: &str) -> Result<(), PageError> {
        // A cookie made by this very request means the browser sent none: no token can match it.
        let (no_cookie, bad_token, bad_origin) =
            (self.new_cookie.is_some(), !self.session.csrf_ok(submitted_token), !self.same_origin);
        if no_cookie || bad_token || bad_origin {
            tracing::warn!(source = %self.source, no_cookie, bad_token, bad_origin, "form refused");
            return Err(PageError::new(StatusCode::FORBIDDEN, "error.csrf"));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = PageError;

    /// Loads the visitor once per request: the guards and [`CsrfForm`] of one handler share it.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(visitor) = parts.extensions.get::<Visitor>() {
            return Ok(visitor.clone());
        }
        let visitor = Visitor::load(parts, state).await?;
        parts.extensions.insert(visitor.clone());
        Ok(visitor)
    }
}

impl Visitor {
    async fn load(parts: &Parts, state: &AppState) -> Result<Visitor, PageError> {
        let lang = crate::i18n::current();
        let source = source_of(&parts.extensions);
        let host = request_host(parts);
        let same_origin = same_origin(&parts.headers, &host);
        let jar = CookieJar::from_headers(&parts.headers);
        let now = state.clock.now();
        if let Some(value) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) {
            let lookup = value.clone();
            let found = state.db.read(move |c| sessions::get(c, &lookup, now).map_err(StoreError::from)).await?;
            if let Some(session) = found {
                touch(state, &session.id_hash, now).await;
                return Ok(Visitor {
                    session,
                    lang,
                    source,
                    new_cookie: None,
                    cookie_value: Some(value),
                    host,
                    same_origin,
                });
            }
        }
        // Anonymous: no session row, a signed token bound to the form cookie (made here when missing).
        let (form_value, new_cookie) = match jar.get(FORM_COOKIE).map(|c| c.value().to_string()) {
            Some(value) if well_formed_form_cookie(&value) => (value, None),
            _ => {
                let value = random_token();
                let set = form_cookie(&value);
                (value, Some(set))
            }
        };
        let session = Session::anonymous(state.local_keys.form_token(&form_value));
        Ok(Visitor { session, lang, source, new_cookie, cookie_value: None, host, same_origin })
    }
}

/// A form post whose CSRF token (the `csrf` field) and origin were checked against the visitor's session before its
/// fields were read: a handler taking `CsrfForm(form)` never sees a forged post.
///
/// ```ignore
/// async fn update(ParticipantAdmin(who): ParticipantAdmin, CsrfForm(form): CsrfForm<ProfileForm>) -> Result<…, PageError>
/// ```
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: axum::extract::Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let visitor = Visitor::from_request_parts(&mut parts, state).await?;
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "error.bad_form"));
        }
        let request = axum::extract::Request::from_parts(parts, body);
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "error.too_large")
            } else {
                PageError::new(StatusCode::BAD_REQUEST, "error.bad_form")
            }
        })?;
        let token = form_urlencoded::parse(&bytes).find(|(name, _)| name == "csrf").map(|(_, v)| v.into_owned());
        visitor.check_form(token.as_deref().unwrap_or_default())?;
        serde_urlencoded::from_bytes(&bytes)
            .map(CsrfForm)
            .map_err(|_| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, "error.bad_form"))
    }
}

/// Slides the idle time-out, at most once a minute per session (to keep writes off most requests).
async fn touch(state: &AppState, id_hash: &str, now: OffsetDateTime) {
    let id = id_hash.to_string();
    let _ = state.db.write(move |tx| sessions::touch(tx, &id, now).map_err(StoreError::from)).await;
}

/// A signed-in person (password and second factor passed), with their organisation if they belong to one.
/// Participants whose organisation is suspended or revoked are refused here, on every page, at once.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub visitor: Visitor,
    pub user: User,
    pub organisation: Option<Organisation>,
}

impl SignedIn {
    pub fn lang(&self) -> Lang {
        self.visitor.lang
    }

    pub fn csrf(&self) -> &str {
        &self.visitor.session.csrf_token
    }

    /// This person as the actor of a change, for the audit journal.
    pub fn audit_actor(&self) -> crate::audit::Actor {
        crate::audit::Actor { name: self.actor(), source: self.visitor.source.clone(), user_id: Some(self.user.id) }
    }

    pub fn actor(&self) -> String {
        format!("user:{}", self.user.username)
    }

    pub fn check_form(&self, token: &str) -> Result<(), PageError> {
        self.visitor.check_form(token)
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        let (Stage::Active, Some(user_id)) = (visitor.session.stage, visitor.session.user_id) else {
            return Err(PageError::SignIn);
        };
        let found = state
            .db
            .read(move |c| -> Result<_, StoreError> {
                let Some(user) = crate::identity::user_by_id(c, user_id)? else { return Ok(None) };
                let org = match user.organisation_id {
                    Some(id) => crate::participants::organisation(c, id)?,
                    None => None,
                };
                let waiting = super::nav::Waiting::of(c, &user)?;
                Ok(Some((user, org, waiting)))
            })
            .await?;
        let Some((user, organisation, waiting)) = found else { return Err(PageError::SignIn) };
        if user.disabled {
            return Err(PageError::SignIn);
        }
        if let Some(org) = &organisation
            && matches!(org.status, OrgStatus::Suspended | OrgStatus::Revoked)
        {
            return Err(PageError::new(StatusCode::FORBIDDEN, "error.organisation_blocked"));
        }
        super::nav::record(super::nav::Viewer::new(&user, &visitor.session.csrf_token, true).waiting(waiting));
        Ok(SignedIn { visitor, user, organisation })
    }
}

/// A page open to everyone that shows more to the signed-in (and names them in the header): `Option<SignedIn>` is
/// `None` for a visitor who is not signed in, whose session ended, or whose organisation is blocked — they see the
/// public page; only a failure (500) refuses it.
impl axum::extract::OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        match <SignedIn as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(who) => Ok(Some(who)),
            Err(failed) if failed.status().is_server_error() => Err(failed),
            Err(_) => Ok(None),
        }
    }
}

macro_rules! role_guard {
    ($(#[$doc:meta])* $name:ident, $($role:path),+) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub SignedIn);

        impl FromRequestParts<AppState> for $name {
            type Rejection = PageError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let who = SignedIn::from_request_parts(parts, state).await?;
                if matches!(who.user.role, $($role)|+) {
                    Ok($name(who))
                } else {
                    tracing::warn!(user = %who.user.username, role = ?who.user.role, guard = stringify!($name), "page refused");
                    Err(PageError::forbidden())
                }
            }
        }
    };
}

role_guard!(
    /// Operator staff who may act (administrators and staff).
    OperatorStaff,
    Role::OperatorAdmin,
    Role::OperatorStaff
);
role_guard!(
    /// The operator's administrators: manage operator staff.
    OperatorAdmin,
    Role::OperatorAdmin
);
role_guard!(
    /// The regulator: reads the console, and sets the billing caps (`billing::pages`).
    Regulator,
    Role::Regulator
);
role_guard!(
    /// Anyone who may read the console: operator staff and the regulator.
    ConsoleReader,
    Role::OperatorAdmin,
    Role::OperatorStaff,
    Role::Regulator
);
/// A signed-in employee of a participant, with their organisation: the participants' guards hand it over, so no
/// participant page asks whether there is one. (Reads as the [`SignedIn`] it wraps.)
#[derive(Debug, Clone)]
pub struct Member {
    pub signed_in: SignedIn,
    pub org: Organisation,
}

impl std::ops::Deref for Member {
    type Target = SignedIn;

    fn deref(&self) -> &SignedIn {
        &self.signed_in
    }
}

macro_rules! member_guard {
    ($(#[$doc:meta])* $name:ident, $($role:path),+) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Member);

        impl FromRequestParts<AppState> for $name {
            type Rejection = PageError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let who = SignedIn::from_request_parts(parts, state).await?;
                if !matches!(who.user.role, $($role)|+) {
                    tracing::warn!(user = %who.user.username, role = ?who.user.role, guard = stringify!($name), "page refused");
                    return Err(PageError::forbidden());
                }
                // A participant's person always has an organisation; should the row be gone, there is no page here.
                let Some(org) = who.organisation.clone() else { return Err(PageError::Redirect("/")) };
                Ok($name(Member { signed_in: who, org }))
            }
        }
    };
}

member_guard!(
    /// Any employee of a participant.
    ParticipantMember,
    Role::ParticipantAdmin,
    Role::ParticipantDeveloper,
    Role::ParticipantAnalyst
);
member_guard!(
    /// A participant's administrator: staff, profile, accreditation.
    ParticipantAdmin,
    Role::ParticipantAdmin
);
member_guard!(
    /// A participant's administrator or developer: applications and certificates.
    ParticipantDeveloper,
    Role::ParticipantAdmin,
    Role::ParticipantDeveloper
);
