//! Applications: an API user's OAuth clients and an API provider's systems that call the platform. Each has a
//! random client id, exact-match redirect URIs and transport certificates issued by the platform CA from CSRs.
//! An API user's application is in production or sandbox mode ([`AppMode`], chosen at registration): a sandbox one
//! reaches only the banks' sandboxes and the standard's test customers, and needs no accreditation yet.
//! Rotation issues a new certificate and lets the previous one live on until `retire_at` (the grace period); the
//! mTLS check (`web::client_cert::MtlsClient`) refuses it after that, and refuses every certificate of a disabled
//! application or of a suspended or revoked organisation.
//!
//! Types, SQL and logic live here; the pages are in `routes.rs`.

pub mod client;
pub mod console;
pub mod routes;

/// Every route of this domain (applications: the participants' pages and the console list), mounted by the web server.
pub fn router() -> axum::Router<crate::web::AppState> {
    axum::Router::new().merge(routes::router()).merge(console::router())
}

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Event, Outcome};
use crate::clock;
use crate::participants::{OrgStatus, Organisation};
use crate::pki::lifecycle::{self, Actor};
use crate::pki::{Authority, PkiError};
use crate::store::{Db, StoreError};

/// Most redirect URIs one application may register.
pub const MAX_REDIRECT_URIS: usize = 10;

crate::text_enum! {
    pub enum AppKind {
        /// An API user's application (an OAuth client): needs the organisation to be accredited as an API user.
        ApiUser = "api_user",
        /// An API provider's system that calls the platform: needs accreditation as an API provider.
        ProviderSystem = "provider_system",
    }
}

impl AppKind {
    pub fn text_key(self) -> &'static str {
        match self {
            AppKind::ApiUser => "apps.kind_api_user",
            AppKind::ProviderSystem => "apps.kind_provider_system",
        }
    }
}

crate::text_enum! {
    /// Where an API user's application works, chosen at registration and never changed: `production` (real banks, real
    /// customers; the organisation must be accredited as an API user) or `sandbox` (the banks' sandboxes and the
    /// standard's test customers only; any registered organisation, accredited or not, so it can build before it
    /// touches a real bank). A provider's system is always `production`.
    pub enum AppMode {
        Production = "production",
        Sandbox = "sandbox",
    }
}

impl AppMode {
    /// The mode of `word`, if it is one (for callers that read it as text; `word.parse()` says why not).
    pub fn parse(word: &str) -> Option<AppMode> {
        word.parse().ok()
    }

    pub fn is_sandbox(self) -> bool {
        self == AppMode::Sandbox
    }

    pub fn text_key(self) -> &'static str {
        match self {
            AppMode::Production => "apps.mode_production",
            AppMode::Sandbox => "apps.mode_sandbox",
        }
    }

    /// The CSS class of the mode's badge.
    pub fn badge(self) -> &'static str {
        match self {
            AppMode::Production => "mode-production",
            AppMode::Sandbox => "mode-sandbox",
        }
    }
}

/// Whether `iin` is one of the standard's sandbox test customers (`standard::SANDBOX_CUSTOMERS`).
pub fn is_test_customer(iin: &str) -> bool {
    crate::standard::SANDBOX_CUSTOMERS.iter().any(|c| c.iin == iin)
}

/// Why a customer may not take part in a consent of an application in `mode` (a text key), or `None` when they may.
/// A sandbox application's customers are the standard's test customers only, on every platform. A production
/// application's customers are real people: on a platform in production mode the test customers are refused; a
/// platform in demo mode has no real people at all (its reference banks and the demo application use the test
/// customers), so there they are allowed.
pub fn customer_refusal(mode: AppMode, platform: crate::config::Mode, iin: &str) -> Option<&'static str> {
    match (mode, is_test_customer(iin)) {
        (AppMode::Sandbox, false) => Some("apps.sandbox.real_customer"),
        (AppMode::Production, true) if platform == crate::config::Mode::Production => {
            Some("apps.sandbox.test_customer")
        }
        _ => None,
    }
}

crate::store::value::text_id! {
    /// An OAuth client id: `kc_` and 22 base64url characters (16 random bytes). Parsed where a client names itself
    /// (`client_id` of a request), carried as this type from there.
    pub struct ClientId, |s: &str| {
        s.strip_prefix("kc_").is_some_and(|rest| {
            rest.len() == 22 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }
}

impl ClientId {
    pub fn generate() -> ClientId {
        let bytes: [u8; 16] = rand::random();
        let text = format!("kc_{}", crate::digest::b64url(&bytes));
        // 16 bytes are always 22 base64url characters.
        ClientId::parse(&text).unwrap_or_else(|_| unreachable!("a generated client id is well formed"))
    }
}

/// An application as the pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub id: i64,
    pub organisation_id: i64,
    pub client_id: ClientId,
    pub name: String,
    pub kind: AppKind,
    pub mode: AppMode,
    pub redirect_uris: Vec<String>,
    pub active: bool,
    pub created_at: String,
}

impl Application {
    pub fn status(&self) -> &'static str {
        if self.active { "active" } else { "disabled" }
    }

    pub fn status_key(&self) -> &'static str {
        if self.active { "apps.status_active" } else { "apps.status_disabled" }
    }
}

const COLUMNS: &str = "id, organisation_id, client_id, name, kind, redirect_uris, status, created_at, mode";

fn from_row(r: &Row) -> rusqlite::Result<Application> {
    let kind: String = r.get(4)?;
    let uris: String = r.get(5)?;
    let status: String = r.get(6)?;
    let mode: String = r.get(8)?;
    Ok(Application {
        id: r.get(0)?,
        organisation_id: r.get(1)?,
        client_id: r.get(2)?,
        name: r.get(3)?,
        kind: kind.parse::<AppKind>().ok().ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, format!("kind {kind}").into())
        })?,
        mode: mode.parse::<AppMode>().ok().ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, format!("mode {mode}").into())
        })?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into()))?,
        active: status == "active",
        created_at: r.get(7)?,
    })
}

/// The applications of one organisation, newest first.
pub fn list_for_organisation(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Vec<Application>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM applications WHERE organisation_id = ?1 ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([organisation_id], from_row)?;
    rows.collect()
}

/// Every application on the platform with its organisation's name (for the operator's registry).
pub fn list_all(conn: &Connection) -> rusqlite::Result<Vec<(Application, String)>> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.organisation_id, a.client_id, a.name, a.kind, a.redirect_uris, a.status, a.created_at, a.mode,
                o.name
         FROM applications a JOIN organisations o ON o.id = a.organisation_id ORDER BY o.name, a.name",
    )?;
    let rows = stmt.query_map([], |r| Ok((from_row(r)?, r.get::<_, String>(9)?)))?;
    rows.collect()
}

/// One application, only if it belongs to `organisation_id` (another organisation's application is "not found").
pub fn by_id_for_organisation(
    conn: &Connection,
    organisation_id: i64,
    id: i64,
) -> rusqlite::Result<Option<Application>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM applications WHERE id = ?1 AND organisation_id = ?2"))?
        .query_row(params![id, organisation_id], from_row)
        .optional()
}

/// An application by its OAuth client id (for the authorization server).
pub fn by_client_id(conn: &Connection, client_id: &ClientId) -> rusqlite::Result<Option<Application>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM applications WHERE client_id = ?1"), [client_id], from_row)
        .optional()
}

/// Whether `uri` is one of the application's registered redirect URIs — exact string match, nothing else.
pub fn redirect_uri_registered(app: &Application, uri: &str) -> bool {
    app.redirect_uris.iter().any(|registered| registered == uri)
}

/// A transport certificate of an application, as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AppCertificate {
    pub serial: String,
    pub subject: String,
    pub sha256: String,
    pub not_before: String,
    pub not_after: String,
    pub issued_at: String,
    pub revoked_at: Option<String>,
    pub revocation_reason: Option<String>,
    pub retire_at: Option<String>,
    /// `active`, `retiring` (valid until `retire_at`), `retired`, `revoked` or `expired`, judged at reading time.
    pub status: &'static str,
}

impl AppCertificate {
    pub fn status_key(&self) -> &'static str {
        match self.status {
            "retiring" => "apps.cert_retiring",
            "retired" => "apps.cert_retired",
            "revoked" => "apps.cert_revoked",
            "expired" => "apps.cert_expired",
            _ => "apps.cert_active",
        }
    }
}

fn cert_status(revoked: bool, retire_at: Option<&str>, not_after: &str, now: &str) -> &'static str {
    if revoked {
        "revoked"
    } else if not_after <= now {
        "expired"
    } else {
        match retire_at {
            Some(at) if at <= now => "retired",
            Some(_) => "retiring",
            None => "active",
        }
    }
}

/// The certificates of an application, newest first, each with where it stands `now`.
pub fn certificates(
    conn: &Connection,
    application_id: i64,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<AppCertificate>> {
    let now = clock::rfc3339(now);
    let mut stmt = conn.prepare(
        "SELECT serial, subject, sha256, not_before, not_after, issued_at, revoked_at, revocation_reason, retire_at
         FROM certificates WHERE application_id = ?1 ORDER BY issued_at DESC, rowid DESC",
    )?;
    let rows = stmt.query_map([application_id], |r| {
        let revoked_at: Option<String> = r.get(6)?;
        let retire_at: Option<String> = r.get(8)?;
        let not_after: String = r.get(4)?;
        Ok(AppCertificate {
            status: cert_status(revoked_at.is_some(), retire_at.as_deref(), &not_after, &now),
            serial: r.get(0)?,
            subject: r.get(1)?,
            sha256: r.get(2)?,
            not_before: r.get(3)?,
            not_after,
            issued_at: r.get(5)?,
            revoked_at,
            revocation_reason: r.get(7)?,
            retire_at,
        })
    })?;
    rows.collect()
}

/// The stored PEM of one certificate of an application (the leaf only).
pub fn certificate_pem(
    conn: &Connection,
    application_id: i64,
    serial: &crate::pki::certs::CertSerial,
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT pem FROM certificates WHERE application_id = ?1 AND serial = ?2",
        params![application_id, serial],
        |r| r.get(0),
    )
    .optional()
}

/// Why a redirect URI list is not acceptable (each a text key).
pub fn parse_redirect_uris(text: &str) -> Result<Vec<String>, &'static str> {
    let uris: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect::<Vec<_>>();
    if uris.len() > MAX_REDIRECT_URIS {
        return Err("apps.error.too_many_uris");
    }
    let mut seen = Vec::new();
    for uri in &uris {
        if !crate::egress::https_url_acceptable(uri) {
            return Err("apps.error.redirect_uri");
        }
        if seen.contains(uri) {
            return Err("apps.error.duplicate_uri");
        }
        seen.push(uri.clone());
    }
    Ok(uris)
}

/// An application's name: 1 to 100 characters, no control characters.
pub fn name_acceptable(name: &str) -> bool {
    let n = name.chars().count();
    (1..=100).contains(&n) && !name.chars().any(char::is_control)
}

/// Why an organisation may not register an application of `kind` in `mode` (a text key), or `None` when it may.
/// A sandbox application needs only a registered organisation in good standing (accreditation comes later; the
/// sandbox is where the organisation builds before it touches a real bank); a production one, accreditation in the
/// role.
pub fn registration_refusal(org: &Organisation, kind: AppKind, mode: AppMode) -> Option<&'static str> {
    if mode == AppMode::Sandbox {
        return if kind != AppKind::ApiUser {
            Some("apps.error.sandbox_kind")
        } else if org.status.is_blocked() {
            Some("apps.error.blocked")
        } else {
            None
        };
    }
    if org.status != OrgStatus::Accredited {
        return Some("apps.error.not_accredited");
    }
    match kind {
        AppKind::ApiUser if !org.is_user => Some("apps.error.not_user"),
        AppKind::ProviderSystem if !org.is_provider => Some("apps.error.not_provider"),
        _ => None,
    }
}

/// What a developer submits to register an application.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub name: String,
    pub kind: AppKind,
    pub mode: AppMode,
    pub redirect_uris: Vec<String>,
    pub csr_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A refusal the person can act on: the text key says why.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// The CSR could not be signed; the message is the CA's (it names no secret).
    #[error("{0}")]
    BadCsr(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Pki(PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Store(e.into())
    }
}

impl From<PkiError> for AppError {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::BadCsr(why) => AppError::BadCsr(why),
            PkiError::Store(s) => AppError::Store(s),
            other => AppError::Pki(other),
        }
    }
}

fn org_of(tx: &Transaction, organisation_id: i64) -> Result<Organisation, AppError> {
    crate::participants::organisation(tx, organisation_id)?.ok_or(AppError::NotFound)
}

/// What a change came to inside its transaction: done, or refused — a refusal is journalled, so the transaction
/// commits it, and only then does the caller see it as its error ([`Written::into_result`]).
enum Written<T> {
    Done(T),
    Refused(AppError),
}

impl<T> Written<T> {
    fn into_result(self) -> Result<T, AppError> {
        match self {
            Written::Done(value) => Ok(value),
            Written::Refused(error) => Err(error),
        }
    }
}

/// Signs the CSR for the organisation (its registered name becomes the certificate's O); a refusal is journalled
/// and returned as [`Written::Refused`] so the caller can commit that record.
fn sign(
    tx: &Transaction,
    authority: &Authority,
    csr_pem: &str,
    org: &Organisation,
    label: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> Result<Written<crate::pki::Issued>, AppError> {
    match authority.issue_client_for(csr_pem, label, &actor.name, Some(&org.name)) {
        Ok(issued) => Ok(Written::Done(issued)),
        Err(error) => {
            lifecycle::record_refusal(tx, label, &error, actor, now)?;
            Ok(Written::Refused(error.into()))
        }
    }
}

/// Registers an application and issues its first transport certificate, all in one transaction. The organisation's
/// status and roles are checked inside the transaction, so a suspension racing the request wins.
pub async fn register(
    db: &Db,
    authority: Arc<Authority>,
    organisation_id: i64,
    user_id: i64,
    new: NewApplication,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(Application, crate::pki::Issued), AppError> {
    db.write(move |tx| -> Result<Written<(Application, crate::pki::Issued)>, AppError> {
        let org = org_of(tx, organisation_id)?;
        if let Some(why) = registration_refusal(&org, new.kind, new.mode) {
            audit::append(
                tx,
                &Event::new(&actor.name, "apps.application.register", Outcome::Denied)
                    .at(now)
                    .organisation(org.bin.as_str())
                    .source(&actor.source)
                    .detail(serde_json::json!({
                        "name": new.name,
                        "kind": new.kind.as_str(),
                        "mode": new.mode.as_str(),
                        "reason": why,
                    })),
            )?;
            return Ok(Written::Refused(AppError::Refused(why)));
        }
        let label = format!("{} — {}", org.name, new.name);
        let issued = match sign(tx, &authority, &new.csr_pem, &org, &label, &actor, now)? {
            Written::Done(issued) => issued,
            Written::Refused(e) => return Ok(Written::Refused(e)),
        };
        let client_id = ClientId::generate();
        let uris = serde_json::to_string(&new.redirect_uris).map_err(|e| StoreError::Schema(e.to_string()))?;
        tx.execute(
            "INSERT INTO applications (organisation_id, client_id, name, kind, redirect_uris, status, created_by,
                                       created_at, mode)
             VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8)",
            params![
                organisation_id,
                client_id.as_str(),
                new.name,
                new.kind.as_str(),
                uris,
                user_id,
                clock::rfc3339(now),
                new.mode.as_str()
            ],
        )?;
        let id = tx.last_insert_rowid();
        lifecycle::record_client(tx, &issued, Some(id), &actor, now)?;
        audit::append(
            tx,
            &Event::new(&actor.name, "apps.application.registered", Outcome::Success)
                .at(now)
                .organisation(org.bin.as_str())
                .object(format!("application:{}", client_id.as_str()))
                .source(&actor.source)
                .detail(serde_json::json!({
                    "name": new.name,
                    "kind": new.kind.as_str(),
                    "mode": new.mode.as_str(),
                    "redirect_uris": new.redirect_uris,
                    "certificate": issued.record.serial,
                })),
        )?;
        let app = by_id_for_organisation(tx, organisation_id, id)?.ok_or(AppError::NotFound)?;
        Ok(Written::Done((app, issued)))
    })
    .await?
    .into_result()
}

/// Issues a new certificate for an application; every earlier certificate still valid gets `retire_at = now + grace`
/// (an earlier `retire_at` is kept), so old and new both work until then.
#[allow(clippy::too_many_arguments)]
pub async fn rotate(
    db: &Db,
    authority: Arc<Authority>,
    organisation_id: i64,
    application_id: i64,
    csr_pem: String,
    grace_hours: u32,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<crate::pki::Issued, AppError> {
    db.write(move |tx| -> Result<Written<crate::pki::Issued>, AppError> {
        let app = by_id_for_organisation(tx, organisation_id, application_id)?.ok_or(AppError::NotFound)?;
        let org = org_of(tx, organisation_id)?;
        if !app.active {
            return Ok(Written::Refused(AppError::Refused("apps.error.disabled")));
        }
        if org.status.is_blocked() {
            return Ok(Written::Refused(AppError::Refused("apps.error.not_accredited")));
        }
        let label = format!("{} — {}", org.name, app.name);
        let issued = match sign(tx, &authority, &csr_pem, &org, &label, &actor, now)? {
            Written::Done(issued) => issued,
            Written::Refused(e) => return Ok(Written::Refused(e)),
        };
        let retire_at = clock::rfc3339(now + Duration::hours(grace_hours.into()));
        let mut stmt = tx.prepare(
            "UPDATE certificates SET retire_at = ?2
             WHERE application_id = ?1 AND revoked_at IS NULL AND (retire_at IS NULL OR retire_at > ?2)
             RETURNING serial",
        )?;
        let retiring: Vec<String> =
            stmt.query_map(params![app.id, retire_at], |r| r.get(0))?.collect::<Result<_, _>>()?;
        drop(stmt);
        lifecycle::record_client(tx, &issued, Some(app.id), &actor, now)?;
        // Refresh tokens follow the application to its new certificate (customers need not consent again); from
        // now on only the new certificate's key can refresh them.
        let rebound = tx.execute(
            "UPDATE refresh_tokens SET cert_sha256 = ?2 WHERE application_id = ?1 AND revoked_at IS NULL",
            params![app.id, issued.record.sha256],
        )?;
        audit::append(
            tx,
            &Event::new(&actor.name, "apps.certificate.rotated", Outcome::Success)
                .at(now)
                .organisation(org.bin.as_str())
                .object(format!("application:{}", app.client_id))
                .source(&actor.source)
                .detail(serde_json::json!({
                    "certificate": issued.record.serial,
                    "retiring": retiring,
                    "retire_at": retire_at,
                    "refresh_tokens_rebound": rebound,
                })),
        )?;
        Ok(Written::Done(issued))
    })
    .await?
    .into_result()
}

/// Revokes one certificate of an application (it must belong to the application of this organisation).
#[allow(clippy::too_many_arguments)]
pub async fn revoke_certificate(
    db: &Db,
    authority: Arc<Authority>,
    organisation_id: i64,
    application_id: i64,
    serial: crate::pki::certs::CertSerial,
    reason: crate::pki::RevocationReason,
    crl_validity_hours: u32,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let check = serial.clone();
    let belongs = db
        .read(move |c| -> Result<bool, AppError> {
            if by_id_for_organisation(c, organisation_id, application_id)?.is_none() {
                return Ok(false);
            }
            Ok(certificate_pem(c, application_id, &check)?.is_some())
        })
        .await?;
    if !belongs {
        return Err(AppError::NotFound);
    }
    match lifecycle::revoke(db, authority, serial.into_string(), reason, crl_validity_hours, actor, now).await {
        Ok(_) => Ok(()),
        Err(PkiError::AlreadyRevoked(_)) => Err(AppError::Refused("apps.error.already_revoked")),
        Err(e) => Err(e.into()),
    }
}

/// Disables (or re-enables) an application: while disabled, every certificate of it is refused.
pub async fn set_active(
    db: &Db,
    organisation_id: i64,
    application_id: i64,
    active: bool,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    db.write(move |tx| -> Result<(), AppError> {
        let app = by_id_for_organisation(tx, organisation_id, application_id)?.ok_or(AppError::NotFound)?;
        let org = org_of(tx, organisation_id)?;
        let status = if active { "active" } else { "disabled" };
        tx.execute("UPDATE applications SET status = ?2 WHERE id = ?1", params![app.id, status])?;
        let action = if active { "apps.application.enabled" } else { "apps.application.disabled" };
        audit::append(
            tx,
            &Event::new(&actor.name, action, Outcome::Success)
                .at(now)
                .organisation(org.bin.as_str())
                .object(format!("application:{}", app.client_id))
                .source(&actor.source),
        )?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redirect_uri_lists_are_bounded_and_without_repeats() {
        let eleven: String = (0..11).map(|i| format!("https://a.kz/{i}\n")).collect();
        assert_eq!(parse_redirect_uris(&eleven), Err("apps.error.too_many_uris"));
        assert_eq!(parse_redirect_uris("https://a.kz/1\n\n https://a.kz/2 \n").unwrap().len(), 2);
        assert_eq!(parse_redirect_uris("https://a.kz/1\nhttps://a.kz/1"), Err("apps.error.duplicate_uri"));
    }

    fn org(status: OrgStatus, is_user: bool, is_provider: bool) -> Organisation {
        Organisation {
            id: 1,
            bin: crate::kz::Bin::parse("990340000014").unwrap(),
            name: "Org".into(),
            licence_number: "L-1".into(),
            contact_email: "a@b.kz".into(),
            contact_phone: "+77010000000".into(),
            description: String::new(),
            website: String::new(),
            has_logo: false,
            status,
            status_reason: String::new(),
            is_provider,
            is_user,
            created_at: "2026-11-25T12:00:00Z".into(),
        }
    }

    #[test]
    fn sandbox_applications_need_good_standing_and_production_ones_accreditation() {
        use AppKind::{ApiUser, ProviderSystem};
        use AppMode::{Production, Sandbox};
        let registered = org(OrgStatus::Registered, false, false);
        assert_eq!(registration_refusal(&registered, ApiUser, Sandbox), None);
        assert_eq!(registration_refusal(&registered, ApiUser, Production), Some("apps.error.not_accredited"));
        assert_eq!(registration_refusal(&registered, ProviderSystem, Sandbox), Some("apps.error.sandbox_kind"));
        let provider_only = org(OrgStatus::Accredited, false, true);
        assert_eq!(registration_refusal(&provider_only, ApiUser, Sandbox), None);
        assert_eq!(registration_refusal(&provider_only, ApiUser, Production), Some("apps.error.not_user"));
        for blocked in [OrgStatus::Suspended, OrgStatus::Revoked] {
            assert_eq!(registration_refusal(&org(blocked, true, true), ApiUser, Sandbox), Some("apps.error.blocked"));
        }
        assert_eq!(registration_refusal(&org(OrgStatus::Accredited, true, false), ApiUser, Production), None);
    }

    #[test]
    fn sandbox_consents_are_for_test_customers_and_production_ones_for_real_people() {
        use crate::config::Mode::{Demo, Production as Live};
        let test = crate::standard::SANDBOX_CUSTOMERS[2].iin;
        let real = "900101300012";
        assert!(is_test_customer(test) && !is_test_customer(real));
        for platform in [Demo, Live] {
            assert_eq!(customer_refusal(AppMode::Sandbox, platform, test), None);
            assert_eq!(customer_refusal(AppMode::Sandbox, platform, real), Some("apps.sandbox.real_customer"));
            assert_eq!(customer_refusal(AppMode::Production, platform, real), None);
        }
        assert_eq!(customer_refusal(AppMode::Production, Live, test), Some("apps.sandbox.test_customer"));
        assert_eq!(customer_refusal(AppMode::Production, Demo, test), None, "the demo's people are all made up");
    }

    #[test]
    fn client_ids_are_random_and_shaped() {
        let a = ClientId::generate();
        assert!(a.as_str().starts_with("kc_"));
        assert_eq!(a.as_str().len(), 25);
        assert_ne!(a, ClientId::generate());
    }

    #[test]
    fn certificate_status_at_a_time() {
        let now = "2026-11-25T12:00:00Z";
        assert_eq!(cert_status(false, None, "2027-01-01T00:00:00Z", now), "active");
        assert_eq!(cert_status(false, Some("2026-11-26T00:00:00Z"), "2027-01-01T00:00:00Z", now), "retiring");
        assert_eq!(cert_status(false, Some("2026-11-25T00:00:00Z"), "2027-01-01T00:00:00Z", now), "retired");
        assert_eq!(cert_status(true, None, "2027-01-01T00:00:00Z", now), "revoked");
        assert_eq!(cert_status(false, None, "2026-01-01T00:00:00Z", now), "expired");
    }
}
