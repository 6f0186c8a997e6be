//! The central consent registry: who (customer) lets whom (an API user's application) read what (permissions) from
//! which banks (providers), why (purpose) and until when — with every status change kept in `consent_history`.
//!
//! Statuses follow OBIE v3.1: `AwaitingAuthorisation → Authorised | Rejected`, `Authorised → Revoked | Expired`.
//! A customer may revoke one bank of a consent; revoking the last bank revokes the consent.

pub mod api;
pub mod my;
pub mod narrow;
pub mod portal;
pub mod rules;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Event, Outcome};
use crate::clock;

/// Every route of consents: the Open Banking API, the customer's `/my` pages and the participants' portal page.
pub fn router() -> axum::Router<crate::web::AppState> {
    axum::Router::new().merge(api::router()).merge(my::router()).merge(portal::router())
}

pub use rules::{NewConsent, Permission};

crate::text_enum! {
    /// Where a consent stands (OBIE words: stored in `consents.status` and sent as `Status`).
    pub enum Status {
        AwaitingAuthorisation = "AwaitingAuthorisation",
        Authorised = "Authorised",
        Rejected = "Rejected",
        Revoked = "Revoked",
        Expired = "Expired",
    }
}

impl Status {
    /// The badge's class on pages.
    pub fn class(self) -> &'static str {
        match self {
            Status::Authorised => "active",
            Status::AwaitingAuthorisation => "submitted",
            Status::Rejected => "rejected",
            Status::Revoked => "revoked",
            Status::Expired => "disabled",
        }
    }

    /// The key of the status's name in the page texts.
    pub fn text_key(self) -> &'static str {
        match self {
            Status::AwaitingAuthorisation => "consent.status_awaiting",
            Status::Authorised => "consent.status_authorised",
            Status::Rejected => "consent.status_rejected",
            Status::Revoked => "consent.status_revoked",
            Status::Expired => "consent.status_expired",
        }
    }
}

crate::text_enum! {
    /// Where a consent stands for one bank it names, now: the one status every page and the API show per bank
    /// (`Providers[].Status`), computed by [`Consent::bank_status`] only.
    pub enum BankStatus {
        Awaiting = "AwaitingAuthorisation",
        Active = "Active",
        Rejected = "Rejected",
        Revoked = "Revoked",
        Expired = "Expired",
    }
}

impl BankStatus {
    /// The key of the status's name in the page texts (the same words as the consent's own statuses).
    pub fn text_key(self) -> &'static str {
        match self {
            BankStatus::Awaiting => Status::AwaitingAuthorisation.text_key(),
            BankStatus::Active => Status::Authorised.text_key(),
            BankStatus::Rejected => Status::Rejected.text_key(),
            BankStatus::Revoked => Status::Revoked.text_key(),
            BankStatus::Expired => Status::Expired.text_key(),
        }
    }

    /// The badge's class on pages.
    pub fn class(self) -> &'static str {
        match self {
            BankStatus::Active => "active",
            BankStatus::Awaiting => "submitted",
            BankStatus::Rejected => "rejected",
            BankStatus::Revoked => "revoked",
            BankStatus::Expired => "disabled",
        }
    }
}

/// One bank named in a consent.
#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub organisation_id: i64,
    pub bin: String,
    pub name: String,
    /// Revoked by the customer for this bank only.
    pub revoked: bool,
    pub revoked_at: Option<String>,
}

crate::store::value::text_id! {
    /// A consent's id: `aac-` and a UUID v4 (the OBIE `ConsentId`). Parsed where a path or a token names one.
    pub struct ConsentId, |s: &str| {
        s.strip_prefix("aac-").is_some_and(|uuid| {
            uuid.len() == 36
                && uuid.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                })
        })
    }
}

impl ConsentId {
    fn generate() -> ConsentId {
        // A UUID's text is always in this form.
        ConsentId::parse(&format!("aac-{}", crate::random::uuid_v4()))
            .unwrap_or_else(|_| unreachable!("a generated consent id is well formed"))
    }
}

/// A consent with what the pages and the API show beside it.
#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    pub id: ConsentId,
    pub application_id: i64,
    pub client_id: crate::apps::ClientId,
    pub application_name: String,
    /// The application's mode: a sandbox application's consents are the sandbox's (test customers, the banks'
    /// sandboxes), kept apart from production in every list and report.
    pub mode: crate::apps::AppMode,
    /// The API user: the organisation of the application.
    pub organisation_id: i64,
    pub organisation_name: String,
    pub customer_id: Option<i64>,
    pub permissions: Vec<Permission>,
    /// Those of `permissions` the customer may not drop (see [`rules::is_required`]).
    pub required_permissions: Vec<Permission>,
    pub purpose: String,
    /// The purpose in other languages (language code → text).
    pub purpose_translations: std::collections::BTreeMap<String, String>,
    pub expires_at: String,
    pub transaction_from: Option<String>,
    pub transaction_to: Option<String>,
    pub status: Status,
    pub created_at: String,
    pub status_updated_at: String,
    pub authorised_at: Option<String>,
    pub last_used_at: Option<String>,
    pub providers: Vec<Provider>,
}

impl Consent {
    /// Whether data may flow under this consent now: authorised, not past its expiry, with a bank left.
    pub fn is_live(&self, now: &str) -> bool {
        self.status == Status::Authorised && self.expires_at.as_str() > now && self.providers.iter().any(|p| !p.revoked)
    }

    /// The purpose in `lang` when the API user gave it in that language, else as given.
    pub fn purpose_in(&self, lang: &crate::i18n::Lang) -> &str {
        self.purpose_translations.get(lang.code()).map(String::as_str).unwrap_or(&self.purpose)
    }

    /// Whether the customer may not drop `permission` (see [`rules::is_required`]).
    pub fn is_required(&self, permission: Permission) -> bool {
        rules::is_required(permission, &self.required_permissions)
    }

    pub fn active_providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter().filter(|p| !p.revoked)
    }

    pub fn names_provider(&self, organisation_id: i64) -> bool {
        self.providers.iter().any(|p| p.organisation_id == organisation_id)
    }

    /// The consent's status as it stands `now`: an authorised consent past its expiry is expired even before the
    /// sweep marks it so.
    pub fn status_now(&self, now: &str) -> Status {
        if self.status == Status::Authorised && self.expires_at.as_str() <= now { Status::Expired } else { self.status }
    }

    /// Where the consent stands for one of its banks `now` — the one answer for every page and the API. A bank
    /// withdrawn on its own stays `Revoked` whatever the consent does later; otherwise the bank follows the consent.
    pub fn bank_status(&self, provider: &Provider, now: &str) -> BankStatus {
        if provider.revoked {
            return BankStatus::Revoked;
        }
        match self.status_now(now) {
            Status::AwaitingAuthorisation => BankStatus::Awaiting,
            Status::Authorised => BankStatus::Active,
            Status::Rejected => BankStatus::Rejected,
            Status::Revoked => BankStatus::Revoked,
            Status::Expired => BankStatus::Expired,
        }
    }

    /// [`Consent::bank_status`] for the bank `organisation_id`, if the consent names it.
    pub fn status_for(&self, organisation_id: i64, now: &str) -> Option<BankStatus> {
        self.providers.iter().find(|p| p.organisation_id == organisation_id).map(|p| self.bank_status(p, now))
    }

    /// The status badge (class, text key) of the consent as the bank `bank` sees it — its own status — or, with
    /// no bank, of the consent as a whole. (The bank comes as a template macro's argument does.)
    pub fn badge(&self, bank: &Option<&i64>, now: &str) -> (&'static str, &'static str) {
        match bank.and_then(|b| self.status_for(*b, now)) {
            Some(status) => (status.class(), status.text_key()),
            None => {
                let status = self.status_now(now);
                (status.class(), status.text_key())
            }
        }
    }
}

/// One permission as the customer reads and chooses it.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The standard's code (the form's value).
    pub code: &'static str,
    /// Its text key on its own line.
    pub key: &'static str,
    /// Its text key as a part of the transactions line ("money coming in").
    pub part_key: &'static str,
    /// The customer may not drop it.
    pub required: bool,
}

/// A line of the permissions list: money coming in and going out are parts of the transactions line, not lines of
/// their own (they only say which transactions).
#[derive(Debug, Clone)]
pub struct PermissionLine {
    pub main: Choice,
    pub parts: Vec<Choice>,
}

impl Consent {
    pub fn permission_lines(&self) -> Vec<PermissionLine> {
        let choice = |p: Permission| Choice {
            code: p.as_str(),
            key: p.text_key(),
            part_key: match p {
                Permission::ReadTransactionsCredits => "consent.part_credits",
                Permission::ReadTransactionsDebits => "consent.part_debits",
                _ => p.text_key(),
            },
            required: self.is_required(p),
        };
        let is_direction =
            |p: &Permission| matches!(p, Permission::ReadTransactionsCredits | Permission::ReadTransactionsDebits);
        let directions: Vec<Choice> = self.permissions.iter().copied().filter(is_direction).map(choice).collect();
        let has_base = self
            .permissions
            .iter()
            .any(|p| matches!(p, Permission::ReadTransactionsBasic | Permission::ReadTransactionsDetail));
        let mut lines = Vec::new();
        for permission in self.permissions.iter().copied() {
            match permission {
                p if is_direction(&p) && has_base => {}
                p @ (Permission::ReadTransactionsBasic | Permission::ReadTransactionsDetail) => {
                    lines.push(PermissionLine { main: choice(p), parts: directions.clone() })
                }
                p => lines.push(PermissionLine { main: choice(p), parts: Vec::new() }),
            }
        }
        lines
    }
}

/// A row of a consent's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub status: String,
    pub bank: Option<String>,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

impl HistoryEntry {
    /// The key of the status's name in the page texts.
    pub fn status_key(&self) -> &'static str {
        match self.status.as_str() {
            narrow::MODIFIED => "consent.status_modified",
            status => status.parse::<Status>().map(Status::text_key).unwrap_or("consent.status_provider_revoked"),
        }
    }

    /// Who made the change, in words a customer understands (a text key).
    pub fn actor_key(&self) -> &'static str {
        match self.actor.split(':').next() {
            Some("customer") => "consent.by_customer",
            Some("client") => "consent.by_application",
            Some("user") | Some("cli") => "consent.by_operator",
            _ => "consent.by_platform",
        }
    }
}

const COLUMNS: &str = "c.id, c.application_id, a.client_id, a.name, a.organisation_id, o.name, c.customer_id, \
                       c.permissions, c.purpose, c.expires_at, c.transaction_from, c.transaction_to, c.status, \
                       c.created_at, c.status_updated_at, c.authorised_at, c.last_used_at, a.mode, \
                       c.required_permissions, c.purpose_translations";
const FROM: &str =
    "consents c JOIN applications a ON a.id = c.application_id JOIN organisations o ON o.id = a.organisation_id";

fn conversion(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
}

fn from_row(r: &Row) -> rusqlite::Result<Consent> {
    let permissions: String = r.get(7)?;
    let mode: String = r.get(17)?;
    let required: String = r.get(18)?;
    let translations: String = r.get(19)?;
    Ok(Consent {
        id: r.get(0)?,
        application_id: r.get(1)?,
        client_id: r.get(2)?,
        application_name: r.get(3)?,
        mode: crate::apps::AppMode::parse(&mode).ok_or_else(|| conversion(17, format!("mode {mode}")))?,
        organisation_id: r.get(4)?,
        organisation_name: r.get(5)?,
        customer_id: r.get(6)?,
        permissions: serde_json::from_str(&permissions).map_err(|e| conversion(7, e.to_string()))?,
        required_permissions: serde_json::from_str(&required).map_err(|e| conversion(18, e.to_string()))?,
        purpose: r.get(8)?,
        purpose_translations: serde_json::from_str(&translations).map_err(|e| conversion(19, e.to_string()))?,
        expires_at: r.get(9)?,
        transaction_from: r.get(10)?,
        transaction_to: r.get(11)?,
        status: r.get(12)?,
        created_at: r.get(13)?,
        status_updated_at: r.get(14)?,
        authorised_at: r.get(15)?,
        last_used_at: r.get(16)?,
        providers: Vec::new(),
    })
}

fn providers(conn: &Connection, consent_id: &str) -> rusqlite::Result<Vec<Provider>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.organisation_id, o.bin, o.name, p.status, p.revoked_at
         FROM consent_providers p JOIN organisations o ON o.id = p.organisation_id
         WHERE p.consent_id = ?1 ORDER BY o.name",
    )?;
    let rows = stmt.query_map([consent_id], |r| {
        Ok(Provider {
            organisation_id: r.get(0)?,
            bin: r.get(1)?,
            name: r.get(2)?,
            revoked: r.get::<_, String>(3)? == "revoked",
            revoked_at: r.get(4)?,
        })
    })?;
    rows.collect()
}

fn with_providers(conn: &Connection, mut list: Vec<Consent>) -> rusqlite::Result<Vec<Consent>> {
    for consent in &mut list {
        consent.providers = providers(conn, consent.id.as_str())?;
    }
    Ok(list)
}

pub fn load(conn: &Connection, id: &str) -> rusqlite::Result<Option<Consent>> {
    let consent = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} WHERE c.id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    match consent {
        Some(mut consent) => {
            consent.providers = providers(conn, consent.id.as_str())?;
            Ok(Some(consent))
        }
        None => Ok(None),
    }
}

/// How many consents a listing shows per page.
pub const PAGE: u32 = 50;

/// Which consents a listing shows.
#[derive(Debug, Clone, Copy)]
pub enum Concerning {
    /// Consents given to this application (the API user's API).
    Application(i64),
    /// Consents given to any application of this organisation (the API user's portal).
    UserOrganisation(i64),
    /// Consents naming this organisation as a provider.
    Provider(i64),
    /// A customer's consents (the /my pages): everything past AwaitingAuthorisation.
    Customer(i64),
}

/// One page of consents, newest first, and whether there is a next page.
pub fn list(conn: &Connection, who: Concerning, page: u32) -> rusqlite::Result<(Vec<Consent>, bool)> {
    let (filter, id) = match who {
        Concerning::Application(id) => ("c.application_id = ?1", id),
        Concerning::UserOrganisation(id) => ("a.organisation_id = ?1", id),
        Concerning::Provider(id) => {
            ("c.id IN (SELECT consent_id FROM consent_providers WHERE organisation_id = ?1)", id)
        }
        Concerning::Customer(id) => ("c.customer_id = ?1", id),
    };
    let sql =
        format!("SELECT {COLUMNS} FROM {FROM} WHERE {filter} ORDER BY c.created_at DESC, c.id DESC LIMIT ?2 OFFSET ?3");
    let mut stmt = conn.prepare(&sql)?;
    // In 64 bits: the last page a u32 can name is past any table, but its offset must not overflow.
    let offset = i64::from(page.saturating_sub(1)) * i64::from(PAGE);
    let rows = stmt.query_map(params![id, PAGE + 1, offset], from_row)?;
    let mut list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let more = list.len() > PAGE as usize;
    list.truncate(PAGE as usize);
    Ok((with_providers(conn, list)?, more))
}

pub fn history(conn: &Connection, consent_id: &str) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = conn.prepare(
        "SELECT h.status, o.name, h.actor, h.reason, h.at FROM consent_history h
         LEFT JOIN organisations o ON o.id = h.organisation_id WHERE h.consent_id = ?1 ORDER BY h.id",
    )?;
    let rows = stmt.query_map([consent_id], |r| {
        Ok(HistoryEntry { status: r.get(0)?, bank: r.get(1)?, actor: r.get(2)?, reason: r.get(3)?, at: r.get(4)? })
    })?;
    rows.collect()
}

/// Why a change to a consent was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("no such consent")]
    NotFound,
    #[error("the consent is {0:?}; this change is not allowed from that status")]
    WrongStatus(Status),
    #[error("the consent does not name this bank, or it is already revoked for it")]
    NotAProvider,
    #[error("the narrowing was refused: {0}")]
    Refused(narrow::Refused),
    #[error(transparent)]
    Store(#[from] rusqlite::Error),
}

/// Who changed a consent, as the history and the audit journal name them.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    /// `customer:<id>`, `client:<client id>`, `user:<name>` or `system`.
    pub actor: String,
    pub source: String,
}

impl ChangedBy {
    pub fn system() -> ChangedBy {
        ChangedBy { actor: "system".into(), source: "kopir".into() }
    }
}

fn record(
    tx: &Transaction,
    consent: &Consent,
    status: &str,
    bank: Option<i64>,
    by: &ChangedBy,
    reason: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO consent_history (consent_id, status, organisation_id, actor, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![consent.id, status, bank, by.actor, reason, clock::rfc3339(now)],
    )?;
    let action = match (status, bank) {
        (_, Some(_)) => "consent.provider_revoked".to_string(),
        (status, None) => format!("consent.{}", status.to_ascii_lowercase()),
    };
    audit::append(
        tx,
        &Event::new(&by.actor, action, Outcome::Success)
            .at(now)
            .object(format!("consent:{}", consent.id))
            .organisation(consent.organisation_id.to_string())
            .source(&by.source)
            .detail(json!({ "reason": reason, "provider": bank, "client_id": consent.client_id })),
    )?;
    Ok(())
}

/// Tells the API user and every bank named in the consent what happened, through the webhook outbox (same
/// transaction: the event exists if and only if the change does).
fn notify(
    tx: &Transaction,
    consent: &Consent,
    status: Status,
    bank: Option<i64>,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let event = match (status, bank) {
        (_, Some(_)) => "consent.revoked",
        (Status::Authorised, None) => "consent.authorised",
        (Status::Expired, _) => "consent.expired",
        _ => "consent.revoked",
    };
    let bin = bank.and_then(|b| consent.providers.iter().find(|p| p.organisation_id == b)).map(|p| p.bin.clone());
    let data = json!({
        "ConsentId": consent.id,
        "Status": status.as_str(),
        "ClientId": consent.client_id,
        // Set when one bank of the consent was revoked and the consent goes on for the others.
        "ProviderBin": bin,
    });
    crate::notify::enqueue(tx, consent.organisation_id, event, &data, now)?;
    for provider in &consent.providers {
        if bank.is_none_or(|b| b == provider.organisation_id) {
            crate::notify::enqueue(tx, provider.organisation_id, event, &data, now)?;
        }
    }
    Ok(())
}

fn set_status(
    tx: &Transaction,
    consent: &Consent,
    to: Status,
    by: &ChangedBy,
    reason: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE consents SET status = ?2, status_updated_at = ?3 WHERE id = ?1",
        params![consent.id, to.as_str(), clock::rfc3339(now)],
    )?;
    record(tx, consent, to.as_str(), None, by, reason, now)
}

/// Stores a validated new consent for `application_id` in `AwaitingAuthorisation`, created `now`.
pub fn insert(
    tx: &Transaction,
    application_id: i64,
    new: &NewConsent,
    by: &ChangedBy,
    now: OffsetDateTime,
) -> rusqlite::Result<Consent> {
    let id = ConsentId::generate();
    let created_at = clock::rfc3339(now);
    let permissions = serde_json::to_string(&new.permissions).map_err(|e| conversion(0, e.to_string()))?;
    let required = serde_json::to_string(&new.required).map_err(|e| conversion(0, e.to_string()))?;
    let translations = serde_json::to_string(&new.purpose_translations).map_err(|e| conversion(0, e.to_string()))?;
    tx.execute(
        "INSERT INTO consents (id, application_id, permissions, purpose, expires_at, transaction_from, transaction_to,
                               created_at, status_updated_at, required_permissions, purpose_translations)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
        params![
            id,
            application_id,
            permissions,
            new.purpose,
            new.expires_at,
            new.transaction_from,
            new.transaction_to,
            created_at,
            required,
            translations
        ],
    )?;
    for organisation_id in &new.provider_ids {
        tx.execute(
            "INSERT INTO consent_providers (consent_id, organisation_id) VALUES (?1, ?2)",
            params![id, organisation_id],
        )?;
    }
    let consent = load(tx, id.as_str())?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    record(tx, &consent, Status::AwaitingAuthorisation.as_str(), None, by, "", now)?;
    Ok(consent)
}

fn require(tx: &Transaction, id: &ConsentId, allowed: &[Status]) -> Result<Consent, ConsentError> {
    let consent = load(tx, id.as_str())?.ok_or(ConsentError::NotFound)?;
    if !allowed.contains(&consent.status) {
        return Err(ConsentError::WrongStatus(consent.status));
    }
    Ok(consent)
}

/// The customer allowed it `now`: the consent becomes theirs and `Authorised`.
pub fn authorise(
    tx: &Transaction,
    id: &ConsentId,
    customer_id: i64,
    by: &ChangedBy,
    now: OffsetDateTime,
) -> Result<Consent, ConsentError> {
    let consent = require(tx, id, &[Status::AwaitingAuthorisation])?;
    let at = clock::rfc3339(now);
    if consent.expires_at <= at {
        return Err(ConsentError::WrongStatus(Status::Expired));
    }
    tx.execute("UPDATE consents SET customer_id = ?2, authorised_at = ?3 WHERE id = ?1", params![id, customer_id, at])?;
    set_status(tx, &consent, Status::Authorised, by, "", now)?;
    notify(tx, &consent, Status::Authorised, None, now)?;
    load(tx, id.as_str())?.ok_or(ConsentError::NotFound)
}

/// The customer refused (or the API user withdrew the request before the customer decided).
pub fn reject(
    tx: &Transaction,
    id: &ConsentId,
    by: &ChangedBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), ConsentError> {
    let consent = require(tx, id, &[Status::AwaitingAuthorisation])?;
    set_status(tx, &consent, Status::Rejected, by, reason, now).map_err(ConsentError::from)
}

/// Ends an authorised consent for every bank at once, and every token issued under it.
pub fn revoke(
    tx: &Transaction,
    id: &ConsentId,
    by: &ChangedBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), ConsentError> {
    let consent = require(tx, id, &[Status::Authorised])?;
    set_status(tx, &consent, Status::Revoked, by, reason, now)?;
    end_tokens(tx, id, now)?;
    notify(tx, &consent, Status::Revoked, None, now)?;
    Ok(())
}

/// Ends an authorised consent for one bank; the last bank ends the whole consent.
pub fn revoke_provider(
    tx: &Transaction,
    id: &ConsentId,
    organisation_id: i64,
    by: &ChangedBy,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), ConsentError> {
    let consent = require(tx, id, &[Status::Authorised])?;
    if !consent.active_providers().any(|p| p.organisation_id == organisation_id) {
        return Err(ConsentError::NotAProvider);
    }
    if consent.active_providers().count() == 1 {
        return revoke(tx, id, by, reason, now);
    }
    tx.execute(
        "UPDATE consent_providers SET status = 'revoked', revoked_at = ?3 WHERE consent_id = ?1 AND organisation_id = ?2",
        params![id, organisation_id, clock::rfc3339(now)],
    )?;
    record(tx, &consent, "ProviderRevoked", Some(organisation_id), by, reason, now)?;
    notify(tx, &consent, Status::Authorised, Some(organisation_id), now)?;
    Ok(())
}

/// Refresh and access tokens stop with the consent (they are also judged against it live).
fn end_tokens(tx: &Transaction, consent_id: &ConsentId, now: OffsetDateTime) -> rusqlite::Result<()> {
    crate::oauth::token::revoke_for_consent(tx, consent_id.as_str(), None, now)
}

/// Marks every authorised consent past its expiry `Expired`. Returns their ids.
pub fn expire_due(tx: &Transaction, now: OffsetDateTime) -> rusqlite::Result<Vec<ConsentId>> {
    let at = clock::rfc3339(now);
    let ids: Vec<ConsentId> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM consents WHERE status = 'Authorised' AND expires_at <= ?1 ORDER BY expires_at LIMIT 500",
        )?;
        stmt.query_map([&at], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    let by = ChangedBy::system();
    for id in &ids {
        if let Some(consent) = load(tx, id.as_str())? {
            set_status(tx, &consent, Status::Expired, &by, "expiration date reached", now)?;
            end_tokens(tx, id, now)?;
            notify(tx, &consent, Status::Expired, None, now)?;
        }
    }
    Ok(ids)
}

/// Notes that the consent was used `now` (a token issued or refreshed, data fetched), for the customer's pages.
pub fn touch(tx: &Transaction, id: &ConsentId, now: OffsetDateTime) -> rusqlite::Result<()> {
    tx.execute("UPDATE consents SET last_used_at = ?2 WHERE id = ?1", params![id, clock::rfc3339(now)])?;
    Ok(())
}

/// Runs the expiry sweep (and the purge of dead authorization requests) every `oauth.expiry_sweep_secs` until
/// `stop` turns true: once at the start, then after each wait on the platform's clock (which tests move forward).
pub fn spawn_expiry_sweep(
    db: crate::store::Db,
    clock: crate::clock::Clock,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    () = clock.sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            first = false;
            if *stop.borrow() {
                return;
            }
            let now = clock.now();
            let swept = db
                .write(move |tx| -> Result<Vec<ConsentId>, crate::store::StoreError> {
                    let expired = expire_due(tx, now)?;
                    crate::oauth::purge_stale(tx, now)?;
                    Ok(expired)
                })
                .await;
            match swept {
                Ok(ids) if !ids.is_empty() => tracing::info!(count = ids.len(), "consents expired"),
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "consent expiry sweep failed"),
            }
        }
    })
}
