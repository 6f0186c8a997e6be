//! The API catalogue: providers' API passports, their publication after an automatic check, the marketplace where
//! API users find them, and the connections (subscriptions) of API users' applications to them.
//!
//! Lifecycle of an API (one row of `apis`, one version of one provider's API):
//!
//! ```text
//!   draft ──publish──▶ in_testing ──check passed──▶ published ──withdraw──▶ deprecated ──retire──▶ retired
//!     ▲                    │                            │                        │
//!     └────check failed────┘            (sandbox's scheduled checks)     publish again (checked)
//!                                                suspended ──withdraw──▶ deprecated
//! ```
//!
//! - **draft**: every passport field may change; only its provider sees it. A draft may also be retired (abandoned).
//! - **in_testing**: the publication check is running (synchronously, bounded by the API's time-out).
//! - **published**: listed in the marketplace; API users connect in one step (automatic approval for accredited
//!   users); consents may name the bank. Version, standard and base URLs are fixed from now on — a change of them is
//!   a new version (a new API); name, description, SLA, time-out and contacts stay editable.
//! - **suspended**: reserved for the sandbox's scheduled checks (taken off the marketplace while failing).
//! - **deprecated**: withdrawn by its provider. Still shown in the marketplace, marked; no new connections and no new
//!   consents, but applications already connected keep being served (existing consents keep working) until the
//!   provider retires it. Publishing it again runs the check again.
//! - **retired**: gone: no longer listed or served; its active connections end in the retiring transaction.
//!
//! Every change is one write transaction that also appends its audit entry and keeps the marketplace's full-text
//! index (`apis_search`, rowid = `apis.id`) in step.
//!
//! Types, SQL and logic live here; the check in `check.rs`, the provider's pages in `routes.rs`, the marketplace in
//! `marketplace.rs`, the operator's list in `console.rs`.

pub mod check;
pub mod console;
pub mod marketplace;
pub mod routes;

/// Every route of this domain (the provider's API pages, the marketplace and the console list), mounted by the web server.
pub fn router() -> axum::Router<crate::web::AppState> {
    axum::Router::new().merge(routes::router()).merge(marketplace::router()).merge(console::router())
}

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::apps::{AppKind, Application};
use crate::audit::{self, Actor, Event, Outcome};
use crate::clock::{self, Clock};
use crate::participants::{OrgStatus, Organisation};
use crate::store::{Db, StoreError};
use crate::web::pages::{Lang, Texts};

pub use check::{CheckReport, Environment, Finding, FindingOutcome, PublicationCheck, Severity};

/// An Open API standard an API may implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standard {
    /// Stored in `apis.standard`.
    pub id: &'static str,
    /// Text key of its title.
    pub title_key: &'static str,
    /// Where on the platform API users call an API of this standard (the gateway; never the provider's own URL).
    pub platform_path: &'static str,
}

/// The standards the platform knows (for now the customer current-account information standard).
pub const STANDARDS: &[Standard] = &[Standard {
    id: "kopir-ais-v1",
    title_key: "catalog.standard.kopir_ais_v1",
    platform_path: crate::standard::AIS_BASE_PATH,
}];

pub fn standard(id: &str) -> Option<&'static Standard> {
    STANDARDS.iter().find(|s| s.id == id)
}

/// The text key of a standard's title, or `None` for an unknown one (shown as its id).
pub fn standard_title_key(id: &str) -> Option<&'static str> {
    standard(id).map(|s| s.title_key)
}

crate::text_enum! {
    pub enum ApiStatus {
        Draft = "draft",
        InTesting = "in_testing",
        Published = "published",
        Suspended = "suspended",
        Deprecated = "deprecated",
        Retired = "retired",
    }
}

impl ApiStatus {
    pub fn text_key(self) -> &'static str {
        match self {
            ApiStatus::Draft => "catalog.status.draft",
            ApiStatus::InTesting => "catalog.status.in_testing",
            ApiStatus::Published => "catalog.status.published",
            ApiStatus::Suspended => "catalog.status.suspended",
            ApiStatus::Deprecated => "catalog.status.deprecated",
            ApiStatus::Retired => "catalog.status.retired",
        }
    }

    /// Text key of what the status means for the provider and API users.
    pub fn explain_key(self) -> &'static str {
        match self {
            ApiStatus::Draft => "catalog.explain.draft",
            ApiStatus::InTesting => "catalog.explain.in_testing",
            ApiStatus::Published => "catalog.explain.published",
            ApiStatus::Suspended => "catalog.explain.suspended",
            ApiStatus::Deprecated => "catalog.explain.deprecated",
            ApiStatus::Retired => "catalog.explain.retired",
        }
    }

    /// The stylesheet's badge class for the status.
    pub fn badge(self) -> &'static str {
        match self {
            ApiStatus::Published => "status-active",
            ApiStatus::InTesting | ApiStatus::Deprecated | ApiStatus::Suspended => "status-suspended",
            ApiStatus::Retired => "status-revoked",
            ApiStatus::Draft => "status-draft",
        }
    }

    /// Whether the API is off the marketplace because of the sandbox's checks (or the operator's override).
    pub fn delisted(self) -> bool {
        self == ApiStatus::Suspended
    }

    /// Whether the marketplace lists an API in this status.
    pub fn listed(self) -> bool {
        matches!(self, ApiStatus::Published | ApiStatus::Deprecated)
    }
}

/// An API's passport, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Api {
    pub id: i64,
    pub organisation_id: i64,
    pub name: String,
    pub version: String,
    pub standard: String,
    pub description: String,
    pub sandbox_base_url: String,
    pub production_base_url: String,
    pub sla_response_ms: i64,
    pub timeout_ms: i64,
    pub contact_email: String,
    pub contact_phone: String,
    pub status: ApiStatus,
    pub created_at: String,
    pub updated_at: String,
    pub published_at: Option<String>,
}

impl Api {
    /// Whether version, standard and base URLs may still change (only before the first publication).
    pub fn fully_editable(&self) -> bool {
        self.status == ApiStatus::Draft
    }

    /// Whether its provider may edit it at all.
    pub fn editable(&self) -> bool {
        !matches!(self.status, ApiStatus::InTesting | ApiStatus::Retired)
    }

    pub fn standard_title_key(&self) -> Option<&'static str> {
        standard_title_key(&self.standard)
    }
}

const COLUMNS: &str = "a.id, a.organisation_id, a.name, a.version, a.standard, a.description, a.sandbox_base_url, \
                       a.production_base_url, a.sla_response_ms, a.timeout_ms, a.contact_email, a.contact_phone, \
                       a.status, a.created_at, a.updated_at, a.published_at";
/// Columns after [`COLUMNS`] start here.
const NEXT: usize = 16;

fn from_row(r: &Row) -> rusqlite::Result<Api> {
    let status: String = r.get(12)?;
    Ok(Api {
        id: r.get(0)?,
        organisation_id: r.get(1)?,
        name: r.get(2)?,
        version: r.get(3)?,
        standard: r.get(4)?,
        description: r.get(5)?,
        sandbox_base_url: r.get(6)?,
        production_base_url: r.get(7)?,
        sla_response_ms: r.get(8)?,
        timeout_ms: r.get(9)?,
        contact_email: r.get(10)?,
        contact_phone: r.get(11)?,
        status: status.parse::<ApiStatus>().ok().ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                12,
                rusqlite::types::Type::Text,
                format!("status {status}").into(),
            )
        })?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        published_at: r.get(15)?,
    })
}

/// One API by id, whoever owns it.
pub fn api(conn: &Connection, id: i64) -> rusqlite::Result<Option<Api>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM apis a WHERE a.id = ?1"), [id], from_row).optional()
}

/// One API, only if `organisation_id` provides it (another organisation's API is "not found").
pub fn by_id_for_organisation(conn: &Connection, organisation_id: i64, id: i64) -> rusqlite::Result<Option<Api>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM apis a WHERE a.id = ?1 AND a.organisation_id = ?2"),
        params![id, organisation_id],
        from_row,
    )
    .optional()
}

/// The APIs of one provider, newest first.
pub fn list_for_organisation(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Vec<Api>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM apis a WHERE a.organisation_id = ?1 ORDER BY a.created_at DESC, a.id DESC"
    ))?;
    let rows = stmt.query_map([organisation_id], from_row)?;
    rows.collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The passport, validated

/// Longest description.
pub const DESCRIPTION_MAX: usize = 4000;
/// Longest base URL.
pub const URL_MAX: usize = 500;
/// Bounds of the SLA response time and the time-out, in milliseconds (the schema allows time-outs of 100–60 000).
pub const SLA_MAX_MS: i64 = 60_000;
pub const TIMEOUT_MIN_MS: i64 = 100;
pub const TIMEOUT_MAX_MS: i64 = 60_000;

/// A passport as validated from a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passport {
    pub name: String,
    pub version: String,
    pub standard: String,
    pub description: String,
    pub sandbox_base_url: String,
    pub production_base_url: String,
    pub sla_response_ms: i64,
    pub timeout_ms: i64,
    pub contact_email: String,
    pub contact_phone: String,
}

/// A passport as typed, before validation (every field text).
#[derive(Debug, Clone, Default)]
pub struct PassportInput {
    pub name: String,
    pub version: String,
    pub standard: String,
    pub description: String,
    pub sandbox_base_url: String,
    pub production_base_url: String,
    pub sla_response_ms: String,
    pub timeout_ms: String,
    pub contact_email: String,
    pub contact_phone: String,
}

impl PassportInput {
    /// The stored passport, as the form shows it for editing.
    pub fn of(api: &Api) -> PassportInput {
        PassportInput {
            name: api.name.clone(),
            version: api.version.clone(),
            standard: api.standard.clone(),
            description: api.description.clone(),
            sandbox_base_url: api.sandbox_base_url.clone(),
            production_base_url: api.production_base_url.clone(),
            sla_response_ms: api.sla_response_ms.to_string(),
            timeout_ms: api.timeout_ms.to_string(),
            contact_email: api.contact_email.clone(),
            contact_phone: api.contact_phone.clone(),
        }
    }
}

/// A base URL the platform will call: an absolute `https://` URL with a host (and optionally a port and a path),
/// without user information, query or fragment, at most [`URL_MAX`] characters.
pub fn base_url_acceptable(url: &str) -> bool {
    url.len() <= URL_MAX && !url.contains('?') && crate::egress::https_url_acceptable(url)
}

fn text_ok(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    (min..=max).contains(&n) && !s.chars().any(char::is_control)
}

fn millis(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok()
}

/// Checks a typed passport; on refusal, the text key of every problem.
pub fn validate(input: &PassportInput) -> Result<Passport, Vec<&'static str>> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_string();
    if !text_ok(&name, 1, 200) {
        errors.push("catalog.error.name");
    }
    let version = input.version.trim().to_string();
    if !text_ok(&version, 1, 32) || version.contains(char::is_whitespace) {
        errors.push("catalog.error.version");
    }
    if standard(input.standard.trim()).is_none() {
        errors.push("catalog.error.standard");
    }
    let description = input.description.trim().replace("\r\n", "\n");
    if description.chars().count() > DESCRIPTION_MAX
        || description.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        errors.push("catalog.error.description");
    }
    let sandbox = input.sandbox_base_url.trim().trim_end_matches('/').to_string();
    if !base_url_acceptable(&sandbox) {
        errors.push("catalog.error.sandbox_url");
    }
    let production = input.production_base_url.trim().trim_end_matches('/').to_string();
    if !base_url_acceptable(&production) {
        errors.push("catalog.error.production_url");
    }
    let sla = millis(&input.sla_response_ms).filter(|v| (1..=SLA_MAX_MS).contains(v));
    if sla.is_none() {
        errors.push("catalog.error.sla");
    }
    let timeout = millis(&input.timeout_ms).filter(|v| (TIMEOUT_MIN_MS..=TIMEOUT_MAX_MS).contains(v));
    match (sla, timeout) {
        (_, None) => errors.push("catalog.error.timeout"),
        (Some(sla), Some(timeout)) if timeout < sla => errors.push("catalog.error.timeout_below_sla"),
        _ => {}
    }
    let email = input.contact_email.trim().to_string();
    if !crate::participants::email_acceptable(&email) {
        errors.push("catalog.error.email");
    }
    let phone = input.contact_phone.trim().to_string();
    if !crate::participants::phone_acceptable(&phone) {
        errors.push("catalog.error.phone");
    }
    match (errors.is_empty(), sla, timeout) {
        (true, Some(sla_response_ms), Some(timeout_ms)) => Ok(Passport {
            name,
            version,
            standard: input.standard.trim().to_string(),
            description,
            sandbox_base_url: sandbox,
            production_base_url: production,
            sla_response_ms,
            timeout_ms,
            contact_email: email,
            contact_phone: phone,
        }),
        _ => Err(errors),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The marketplace's full-text index

/// Writes the search row of one API (its name, its provider's name and BIN, its description, and its standard's id
/// and title in every language). Called in the transaction of every change of the API.
pub fn reindex(tx: &Transaction, api_id: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM apis_search WHERE rowid = ?1", [api_id])?;
    let Some(api) = api(tx, api_id)? else { return Ok(()) };
    let provider: String =
        tx.query_row("SELECT name || ' ' || bin FROM organisations WHERE id = ?1", [api.organisation_id], |r| {
            r.get(0)
        })?;
    let mut standard = api.standard.clone();
    if let Some(key) = api.standard_title_key() {
        for lang in Lang::ALL {
            standard.push(' ');
            standard.push_str(Texts { lang }.get(key));
        }
    }
    tx.execute(
        "INSERT INTO apis_search (rowid, name, provider, description, standard) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![api.id, format!("{} {}", api.name, api.version), provider, api.description, standard],
    )?;
    Ok(())
}

/// Re-writes the search rows of every API of an organisation: to be called in the transaction that changes the
/// organisation's name (none does yet; each change of an API re-reads the name anyway).
pub fn reindex_provider(tx: &Transaction, organisation_id: i64) -> rusqlite::Result<()> {
    let ids: Vec<i64> = tx
        .prepare("SELECT id FROM apis WHERE organisation_id = ?1")?
        .query_map([organisation_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        reindex(tx, id)?;
    }
    Ok(())
}

/// Turns what a person typed into a safe FTS5 query: every run of letters and digits becomes a quoted prefix term
/// (`"word"*`), all of which must match; everything else (quotes, operators, punctuation) only separates words.
/// `None` when nothing searchable is left.
pub fn fts_query(input: &str) -> Option<String> {
    let terms: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("\"{}\"*", w.chars().take(64).collect::<String>()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

// ---------------------------------------------------------------------------------------------------------------
// The marketplace

/// A listed API with its provider.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub api: Api,
    pub provider_name: String,
    pub provider_bin: String,
    pub provider_status: OrgStatus,
}

impl Listing {
    /// Whether an API user may connect to it now.
    pub fn connectable(&self) -> bool {
        self.api.status == ApiStatus::Published && self.provider_status == OrgStatus::Accredited
    }
}

/// What the marketplace is asked for.
#[derive(Debug, Clone, Default)]
pub struct MarketplaceFilter {
    /// As typed; turned into an FTS5 query by [`fts_query`].
    pub query: String,
    pub standard: Option<String>,
    pub provider: Option<i64>,
}

fn listing_from_row(r: &Row) -> rusqlite::Result<Listing> {
    let status: String = r.get(NEXT + 2)?;
    Ok(Listing {
        api: from_row(r)?,
        provider_name: r.get(NEXT)?,
        provider_bin: r.get(NEXT + 1)?,
        provider_status: OrgStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(NEXT + 2, rusqlite::types::Type::Text, status.into())
        })?,
    })
}

/// Listed: published and deprecated APIs of providers that are accredited (or suspended, marked so, as in the
/// registries).
const LISTED: &str = "a.status IN ('published', 'deprecated') AND o.status IN ('accredited', 'suspended')";

/// The marketplace: listed APIs matching the filter — best search matches first when searching, else by provider
/// and name.
pub fn marketplace(conn: &Connection, filter: &MarketplaceFilter) -> rusqlite::Result<Vec<Listing>> {
    let head = format!(
        "SELECT {COLUMNS}, o.name, o.bin, o.status FROM apis a JOIN organisations o ON o.id = a.organisation_id"
    );
    let tail = "AND (?2 IS NULL OR a.standard = ?2) AND (?3 IS NULL OR a.organisation_id = ?3)";
    match fts_query(&filter.query) {
        Some(q) => {
            let mut stmt = conn.prepare(&format!(
                "{head} JOIN apis_search s ON s.rowid = a.id
                 WHERE apis_search MATCH ?1 AND {LISTED} {tail} ORDER BY s.rank, o.name, a.name LIMIT 200"
            ))?;
            let rows = stmt.query_map(params![q, filter.standard, filter.provider], listing_from_row)?;
            rows.collect()
        }
        None => {
            let mut stmt = conn.prepare(&format!(
                "{head} WHERE ?1 IS NULL AND {LISTED} {tail} ORDER BY o.name, a.name, a.version LIMIT 200"
            ))?;
            let rows =
                stmt.query_map(params![Option::<String>::None, filter.standard, filter.provider], listing_from_row)?;
            rows.collect()
        }
    }
}

/// One listed API (others: `None`).
pub fn listed(conn: &Connection, id: i64) -> rusqlite::Result<Option<Listing>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS}, o.name, o.bin, o.status FROM apis a JOIN organisations o ON o.id = a.organisation_id
             WHERE a.id = ?1 AND {LISTED}"
        ),
        [id],
        listing_from_row,
    )
    .optional()
}

/// The providers with listed APIs (id, name), for the marketplace's filter.
pub fn listed_providers(conn: &Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT o.id, o.name FROM apis a JOIN organisations o ON o.id = a.organisation_id WHERE {LISTED}
         ORDER BY o.name"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Connections

/// An application of the viewer's organisation and its connection to one API, if any.
#[derive(Debug, Clone, Serialize)]
pub struct AppConnection {
    pub application: Application,
    /// `active` or `disconnected`; `None` when never connected.
    pub status: Option<String>,
    pub connected_at: Option<String>,
    pub disconnected_at: Option<String>,
}

impl AppConnection {
    pub fn active(&self) -> bool {
        self.status.as_deref() == Some("active")
    }
}

/// The organisation's API user applications with their connection to `api_id`.
pub fn connections_for(conn: &Connection, organisation_id: i64, api_id: i64) -> rusqlite::Result<Vec<AppConnection>> {
    let mut out = Vec::new();
    for application in crate::apps::list_for_organisation(conn, organisation_id)? {
        if application.kind != AppKind::ApiUser {
            continue;
        }
        let row: Option<(String, String, Option<String>)> = conn
            .query_row(
                "SELECT status, connected_at, disconnected_at FROM api_connections
                 WHERE application_id = ?1 AND api_id = ?2",
                params![application.id, api_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (status, connected_at, disconnected_at) = match row {
            Some((s, c, d)) => (Some(s), Some(c), d),
            None => (None, None, None),
        };
        out.push(AppConnection { application, status, connected_at, disconnected_at });
    }
    Ok(out)
}

/// A connection of one application, as its page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationConnection {
    pub api_id: i64,
    pub api_name: String,
    pub api_version: String,
    pub api_status: ApiStatus,
    pub provider_name: String,
    pub provider_bin: String,
    pub active: bool,
    pub connected_at: String,
    pub disconnected_at: Option<String>,
}

/// Every connection of an application (active first, then newest).
pub fn connections_of_application(
    conn: &Connection,
    application_id: i64,
) -> rusqlite::Result<Vec<ApplicationConnection>> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.name, a.version, a.status, o.name, o.bin, c.status, c.connected_at, c.disconnected_at
         FROM api_connections c JOIN apis a ON a.id = c.api_id JOIN organisations o ON o.id = a.organisation_id
         WHERE c.application_id = ?1 ORDER BY c.status = 'active' DESC, c.connected_at DESC",
    )?;
    let rows = stmt.query_map([application_id], |r| {
        let status: String = r.get(3)?;
        Ok(ApplicationConnection {
            api_id: r.get(0)?,
            api_name: r.get(1)?,
            api_version: r.get(2)?,
            api_status: status.parse::<ApiStatus>().ok().ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, status.into())
            })?,
            provider_name: r.get(4)?,
            provider_bin: r.get(5)?,
            active: r.get::<_, String>(6)? == "active",
            connected_at: r.get(7)?,
            disconnected_at: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// An application actively connected to one API, as its provider sees it: who, and whether it is a sandbox
/// application (its calls go to the API's sandbox URL, for test customers only).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApplication {
    pub application_name: String,
    pub client_id: crate::apps::ClientId,
    pub organisation_name: String,
    pub organisation_bin: String,
    pub mode: crate::apps::AppMode,
    pub connected_at: String,
}

/// The applications actively connected to `api_id`: production ones first, then by organisation and name.
pub fn connections_to_api(conn: &Connection, api_id: i64) -> rusqlite::Result<Vec<ConnectedApplication>> {
    let mut stmt = conn.prepare(
        "SELECT a.name, a.client_id, o.name, o.bin, a.mode, c.connected_at
         FROM api_connections c JOIN applications a ON a.id = c.application_id
         JOIN organisations o ON o.id = a.organisation_id
         WHERE c.api_id = ?1 AND c.status = 'active' ORDER BY a.mode = 'sandbox', o.name, a.name",
    )?;
    let rows = stmt.query_map([api_id], |r| {
        let mode: String = r.get(4)?;
        Ok(ConnectedApplication {
            application_name: r.get(0)?,
            client_id: r.get(1)?,
            organisation_name: r.get(2)?,
            organisation_bin: r.get(3)?,
            mode: mode.parse::<crate::apps::AppMode>().ok().ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, mode.into())
            })?,
            connected_at: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// What the gateway needs to call a bank for an application: the API the application is connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectedApi {
    pub api_id: i64,
    pub name: String,
    pub version: String,
    pub standard: String,
    /// Without a trailing slash; endpoints are appended (`{production_base_url}/accounts`).
    pub production_base_url: String,
    /// Where sandbox applications' calls go; may be empty.
    pub sandbox_base_url: String,
    pub timeout_ms: i64,
    pub sla_response_ms: i64,
    /// `Published`, `Deprecated` (withdrawn by the provider: existing connections are still served) or `Suspended`
    /// (delisted by the sandbox's checks: the gateway answers its calls with 503 and says why).
    pub status: ApiStatus,
}

/// The API of `provider_organisation_id` that `application_id` is actively connected to and that is served —
/// published, or deprecated (its provider withdrew it, but connected applications keep being served until it is
/// retired) — or suspended (delisted by the sandbox's checks: returned so that the gateway can say so instead of
/// "not connected"). A published API wins over a deprecated one, that over a suspended one, then the latest
/// published. `None` when there is none. The provider's and the API user's standing are not judged here.
pub fn connected_api(
    conn: &Connection,
    application_id: i64,
    provider_organisation_id: i64,
) -> rusqlite::Result<Option<ConnectedApi>> {
    // Cached: the gateway asks this on every request, for every bank of the consent.
    conn.prepare_cached(
        "SELECT a.id, a.name, a.version, a.standard, a.production_base_url, a.timeout_ms, a.sla_response_ms, a.status,
                a.sandbox_base_url
         FROM api_connections c JOIN apis a ON a.id = c.api_id
         WHERE c.application_id = ?1 AND c.status = 'active' AND a.organisation_id = ?2
           AND a.status IN ('published', 'deprecated', 'suspended')
         ORDER BY a.status = 'published' DESC, a.status = 'deprecated' DESC, a.published_at DESC, a.id DESC LIMIT 1",
    )?
    .query_row(params![application_id, provider_organisation_id], |r| {
        let status: String = r.get(7)?;
        Ok(ConnectedApi {
            api_id: r.get(0)?,
            name: r.get(1)?,
            version: r.get(2)?,
            standard: r.get(3)?,
            production_base_url: r.get(4)?,
            sandbox_base_url: r.get(8)?,
            timeout_ms: r.get(5)?,
            sla_response_ms: r.get(6)?,
            status: status.parse::<ApiStatus>().ok().ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, status.into())
            })?,
        })
    })
    .optional()
}

// ---------------------------------------------------------------------------------------------------------------
// Checks, as recorded

/// One recorded run of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    pub id: i64,
    pub purpose: String,
    pub environment: String,
    pub base_url: String,
    pub passed: bool,
    pub findings: Vec<Finding>,
    pub latency_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
}

/// The latest runs of checks of an API, newest first.
pub fn checks(conn: &Connection, api_id: i64, limit: u32) -> rusqlite::Result<Vec<CheckRun>> {
    let mut stmt = conn.prepare(
        "SELECT id, purpose, environment, base_url, passed, findings, latency_ms, started_at, finished_at
         FROM api_checks WHERE api_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![api_id, limit], |r| {
        let findings: String = r.get(5)?;
        Ok(CheckRun {
            id: r.get(0)?,
            purpose: r.get(1)?,
            environment: r.get(2)?,
            base_url: r.get(3)?,
            passed: r.get(4)?,
            // A row another version wrote in another shape shows no findings rather than failing the page.
            findings: serde_json::from_str(&findings).unwrap_or_default(),
            latency_ms: r.get(6)?,
            started_at: r.get(7)?,
            finished_at: r.get(8)?,
        })
    })?;
    rows.collect()
}

fn record_check(tx: &Transaction, api_id: i64, report: &CheckReport) -> Result<i64, CatalogError> {
    let findings = serde_json::to_string(&report.findings).map_err(|e| StoreError::Schema(e.to_string()))?;
    tx.execute(
        "INSERT INTO api_checks (api_id, purpose, environment, base_url, passed, findings, latency_ms, started_at,
                                 finished_at)
         VALUES (?1, 'publication', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            api_id,
            report.environment,
            report.base_url,
            report.passed,
            findings,
            report.latency_ms,
            report.started_at,
            report.finished_at
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The newest check of an API in one environment.
#[derive(Debug, Clone, Serialize)]
pub struct LatestRun {
    /// `publication` or `scheduled`.
    pub purpose: &'static str,
    pub passed: bool,
    /// When it started (RFC 3339, UTC).
    pub at: String,
}

/// "Last check", one meaning on every page: the newest check of each environment the API was checked in (sandbox,
/// production), whether the publication check or a scheduled run, taken together — passed when each of them passed,
/// at the newer one's start. A scheduled run checks both environments, so after one this is that run.
#[derive(Debug, Clone, Serialize)]
pub struct LastCheck {
    pub passed: bool,
    pub at: String,
    pub sandbox: Option<LatestRun>,
    pub production: Option<LatestRun>,
}

impl LastCheck {
    /// The last check made of each environment's newest run, if there is any.
    pub fn of(sandbox: Option<LatestRun>, production: Option<LatestRun>) -> Option<LastCheck> {
        let runs: Vec<&LatestRun> = sandbox.iter().chain(production.iter()).collect();
        let at = runs.iter().map(|r| r.at.clone()).max()?;
        let passed = runs.iter().all(|r| r.passed);
        Some(LastCheck { passed, at, sandbox, production })
    }
}

/// The API's last check as the catalogue's own records tell it (the checks whose findings were kept); the
/// publication check in use may know more ([`PublicationCheck::last_check`]).
pub fn last_check(conn: &Connection, api_id: i64) -> rusqlite::Result<Option<LastCheck>> {
    let mut stmt = conn.prepare_cached(
        "SELECT purpose, passed, started_at FROM api_checks WHERE api_id = ?1 AND environment = ?2
         ORDER BY id DESC LIMIT 1",
    )?;
    let mut latest = |environment: &str| {
        stmt.query_row(params![api_id, environment], |r| {
            let purpose: String = r.get(0)?;
            Ok(LatestRun {
                purpose: if purpose == "publication" { "publication" } else { "scheduled" },
                passed: r.get(1)?,
                at: r.get(2)?,
            })
        })
        .optional()
    };
    let (sandbox, production) = (latest("sandbox")?, latest("production")?);
    Ok(LastCheck::of(sandbox, production))
}

/// The operator's view of one API.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleRow {
    pub api: Api,
    pub provider_name: String,
    pub provider_bin: String,
    pub last_check: Option<LastCheck>,
    pub active_connections: i64,
}

/// Every API on the platform, by provider and name, with its last check as `check` knows it.
pub fn console_rows(conn: &Connection, check: &dyn PublicationCheck) -> rusqlite::Result<Vec<ConsoleRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS}, o.name, o.bin,
                (SELECT count(*) FROM api_connections c WHERE c.api_id = a.id AND c.status = 'active')
         FROM apis a JOIN organisations o ON o.id = a.organisation_id ORDER BY o.name, a.name, a.version"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((from_row(r)?, r.get::<_, String>(NEXT)?, r.get::<_, String>(NEXT + 1)?, r.get::<_, i64>(NEXT + 2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (api, provider_name, provider_bin, active_connections) = row?;
        let last_check = check.last_check(conn, api.id)?;
        out.push(ConsoleRow { api, provider_name, provider_bin, last_check, active_connections });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Changes

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A refusal the person can act on: the text key says why.
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        CatalogError::Store(e.into())
    }
}

/// Why an organisation may not publish APIs (a text key), or `None` when it may.
pub fn provider_refusal(org: &Organisation) -> Option<&'static str> {
    if org.status != OrgStatus::Accredited {
        Some("catalog.error.not_accredited")
    } else if !org.is_provider {
        Some("catalog.error.not_provider")
    } else {
        None
    }
}

/// Why an organisation may not connect applications to APIs (a text key), or `None` when it may.
pub fn user_refusal(org: &Organisation) -> Option<&'static str> {
    if org.status != OrgStatus::Accredited {
        Some("catalog.error.not_accredited")
    } else if !org.is_user {
        Some("catalog.error.not_user")
    } else {
        None
    }
}

/// Why an organisation may not connect an application in `mode` (a text key), or `None` when it may: a sandbox
/// application needs only an organisation in good standing (its calls reach the banks' sandboxes and test customers
/// only); a production one, the accreditation as an API user.
pub fn connection_refusal(org: &Organisation, mode: crate::apps::AppMode) -> Option<&'static str> {
    match mode {
        crate::apps::AppMode::Sandbox if org.status.is_blocked() => Some("catalog.error.not_accredited"),
        crate::apps::AppMode::Sandbox => None,
        crate::apps::AppMode::Production => user_refusal(org),
    }
}

fn org_of(tx: &Transaction, organisation_id: i64) -> Result<Organisation, CatalogError> {
    crate::participants::organisation(tx, organisation_id)?.ok_or(CatalogError::NotFound)
}

fn event(actor: &Actor, action: &str, outcome: Outcome, org: &Organisation, now: OffsetDateTime) -> Event {
    Event::new(&actor.name, action, outcome).at(now).organisation(org.bin.as_str()).source(&actor.source)
}

/// What a change of the catalogue came to inside its transaction: done, or refused — a refusal is journalled, so the
/// transaction commits it, and only then does the caller see the refusal as an error
/// ([`Written::into_result`]).
enum Written<T> {
    Done(T),
    Refused(&'static str),
}

impl<T> Written<T> {
    fn into_result(self) -> Result<T, CatalogError> {
        match self {
            Written::Done(value) => Ok(value),
            Written::Refused(why) => Err(CatalogError::Refused(why)),
        }
    }
}

/// Records a refusal in the journal (committed with the refusal) and returns it.
fn deny<T>(
    tx: &Transaction,
    actor: &Actor,
    action: &str,
    org: &Organisation,
    object: Option<String>,
    why: &'static str,
    now: OffsetDateTime,
) -> Result<Written<T>, CatalogError> {
    let mut e = event(actor, action, Outcome::Denied, org, now).detail(serde_json::json!({ "reason": why }));
    if let Some(object) = object {
        e = e.object(object);
    }
    audit::append(tx, &e)?;
    Ok(Written::Refused(why))
}

fn object(api_id: i64) -> String {
    format!("api:{api_id}")
}

/// Creates a draft API for an accredited provider.
pub async fn create(
    db: &Db,
    organisation_id: i64,
    passport: Passport,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<Api, CatalogError> {
    db.write(move |tx| -> Result<Written<Api>, CatalogError> {
        let org = org_of(tx, organisation_id)?;
        if let Some(why) = provider_refusal(&org) {
            return deny(tx, &actor, "catalog.api.create", &org, None, why, now);
        }
        let at = clock::rfc3339(now);
        tx.execute(
            "INSERT INTO apis (organisation_id, name, version, standard, description, sandbox_base_url,
                               production_base_url, sla_response_ms, timeout_ms, contact_email, contact_phone, status,
                               created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'draft', ?12, ?12)",
            params![
                organisation_id,
                passport.name,
                passport.version,
                passport.standard,
                passport.description,
                passport.sandbox_base_url,
                passport.production_base_url,
                passport.sla_response_ms,
                passport.timeout_ms,
                passport.contact_email,
                passport.contact_phone,
                at
            ],
        )?;
        let id = tx.last_insert_rowid();
        reindex(tx, id)?;
        audit::append(
            tx,
            &event(&actor, "catalog.api.created", Outcome::Success, &org, now).object(object(id)).detail(
                serde_json::json!({
                    "name": passport.name,
                    "version": passport.version,
                    "standard": passport.standard,
                    "sandbox_base_url": passport.sandbox_base_url,
                    "production_base_url": passport.production_base_url,
                }),
            ),
        )?;
        Ok(Written::Done(by_id_for_organisation(tx, organisation_id, id)?.ok_or(CatalogError::NotFound)?))
    })
    .await?
    .into_result()
}

/// Changes an API's passport. Once published, version, standard and base URLs are kept as they are (a change of them
/// is a new version); while a check runs or after retirement nothing changes.
pub async fn update(
    db: &Db,
    organisation_id: i64,
    api_id: i64,
    passport: Passport,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<Api, CatalogError> {
    db.write(move |tx| -> Result<Written<Api>, CatalogError> {
        let current = by_id_for_organisation(tx, organisation_id, api_id)?.ok_or(CatalogError::NotFound)?;
        let org = org_of(tx, organisation_id)?;
        if let Some(why) = provider_refusal(&org) {
            return deny(tx, &actor, "catalog.api.update", &org, Some(object(api_id)), why, now);
        }
        if !current.editable() {
            return Ok(Written::Refused("catalog.error.not_editable"));
        }
        let mut p = passport;
        if !current.fully_editable() {
            p.version = current.version.clone();
            p.standard = current.standard.clone();
            p.sandbox_base_url = current.sandbox_base_url.clone();
            p.production_base_url = current.production_base_url.clone();
        }
        let mut changed = Vec::new();
        for (field, before, after) in [
            ("name", &current.name, &p.name),
            ("version", &current.version, &p.version),
            ("standard", &current.standard, &p.standard),
            ("description", &current.description, &p.description),
            ("sandbox_base_url", &current.sandbox_base_url, &p.sandbox_base_url),
            ("production_base_url", &current.production_base_url, &p.production_base_url),
            ("contact_email", &current.contact_email, &p.contact_email),
            ("contact_phone", &current.contact_phone, &p.contact_phone),
        ] {
            if before != after {
                changed.push(field);
            }
        }
        if current.sla_response_ms != p.sla_response_ms {
            changed.push("sla_response_ms");
        }
        if current.timeout_ms != p.timeout_ms {
            changed.push("timeout_ms");
        }
        tx.execute(
            "UPDATE apis SET name = ?2, version = ?3, standard = ?4, description = ?5, sandbox_base_url = ?6,
                             production_base_url = ?7, sla_response_ms = ?8, timeout_ms = ?9, contact_email = ?10,
                             contact_phone = ?11, updated_at = ?12
             WHERE id = ?1",
            params![
                api_id,
                p.name,
                p.version,
                p.standard,
                p.description,
                p.sandbox_base_url,
                p.production_base_url,
                p.sla_response_ms,
                p.timeout_ms,
                p.contact_email,
                p.contact_phone,
                clock::rfc3339(now)
            ],
        )?;
        reindex(tx, api_id)?;
        audit::append(
            tx,
            &event(&actor, "catalog.api.updated", Outcome::Success, &org, now)
                .object(object(api_id))
                .detail(serde_json::json!({ "changed": changed, "status": current.status.as_str() })),
        )?;
        Ok(Written::Done(by_id_for_organisation(tx, organisation_id, api_id)?.ok_or(CatalogError::NotFound)?))
    })
    .await?
    .into_result()
}

/// A check left `in_testing` this long (a crash mid-check) may be started again.
const STALE_TEST: Duration = Duration::minutes(2);

/// How a publication attempt ended.
#[derive(Debug, Clone)]
pub enum Publication {
    Published(CheckReport),
    /// The check failed; the API went back to its earlier status.
    Refused(CheckReport),
}

/// Publishes an API after `check` passes: marks it `in_testing` (one transaction), runs the check with no
/// transaction open, then records the run and publishes it or puts it back (a second transaction), each with its
/// audit entry. Allowed from `draft`, from `deprecated` (publishing again), and from a stale `in_testing`.
pub async fn publish(
    db: &Db,
    check: &dyn PublicationCheck,
    organisation_id: i64,
    api_id: i64,
    actor: Actor,
    clock: &Clock,
) -> Result<Publication, CatalogError> {
    let begin_actor = actor.clone();
    let now = clock.now();
    let (api, previous) = db
        .write(move |tx| -> Result<Written<(Api, ApiStatus)>, CatalogError> {
            let actor = begin_actor;
            let api = by_id_for_organisation(tx, organisation_id, api_id)?.ok_or(CatalogError::NotFound)?;
            let org = org_of(tx, organisation_id)?;
            if let Some(why) = provider_refusal(&org) {
                return deny(tx, &actor, "catalog.api.publish", &org, Some(object(api_id)), why, now);
            }
            let stale = clock::rfc3339(now - STALE_TEST);
            let may = match api.status {
                ApiStatus::Draft | ApiStatus::Deprecated => true,
                ApiStatus::InTesting => api.updated_at < stale,
                _ => false,
            };
            if !may {
                return Ok(Written::Refused("catalog.error.cannot_publish"));
            }
            tx.execute(
                "UPDATE apis SET status = 'in_testing', updated_at = ?2 WHERE id = ?1",
                params![api_id, clock::rfc3339(now)],
            )?;
            let previous = if api.status == ApiStatus::Deprecated { ApiStatus::Deprecated } else { ApiStatus::Draft };
            Ok(Written::Done((api, previous)))
        })
        .await?
        .into_result()?;

    let report = check.check(&api, Environment::Sandbox).await;

    let finished = report.clone();
    // The check took its time: what follows happens now.
    let now = clock.now();
    db.write(move |tx| -> Result<Publication, CatalogError> {
        let org = org_of(tx, organisation_id)?;
        let check_id = record_check(tx, api_id, &finished)?;
        let at = clock::rfc3339(now);
        let failed: Vec<&str> =
            finished.findings.iter().filter(|f| f.outcome == FindingOutcome::Failed).map(|f| f.id.as_str()).collect();
        if finished.passed {
            tx.execute(
                "UPDATE apis SET status = 'published', published_at = ?2, updated_at = ?2
                 WHERE id = ?1 AND status = 'in_testing'",
                params![api_id, at],
            )?;
        } else {
            tx.execute(
                "UPDATE apis SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'in_testing'",
                params![api_id, previous.as_str(), at],
            )?;
        }
        reindex(tx, api_id)?;
        let (action, outcome) = if finished.passed {
            ("catalog.api.published", Outcome::Success)
        } else {
            ("catalog.api.publication_refused", Outcome::Failure)
        };
        audit::append(
            tx,
            &event(&actor, action, outcome, &org, now).object(object(api_id)).detail(serde_json::json!({
                "check": check_id,
                "base_url": finished.base_url,
                "failed": failed,
                "latency_ms": finished.latency_ms,
            })),
        )?;
        Ok(if finished.passed { Publication::Published(finished) } else { Publication::Refused(finished) })
    })
    .await
}

/// The provider withdraws a published (or suspended) API: `deprecated` — no new connections or consents, existing
/// connections still served.
pub async fn withdraw(
    db: &Db,
    organisation_id: i64,
    api_id: i64,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(), CatalogError> {
    change_status(db, organisation_id, api_id, actor, Change::Withdraw, now).await
}

/// The provider retires a deprecated API (or abandons a draft): `retired`; its active connections end.
pub async fn retire(
    db: &Db,
    organisation_id: i64,
    api_id: i64,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(), CatalogError> {
    change_status(db, organisation_id, api_id, actor, Change::Retire, now).await
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Withdraw,
    Retire,
}

async fn change_status(
    db: &Db,
    organisation_id: i64,
    api_id: i64,
    actor: Actor,
    change: Change,
    now: OffsetDateTime,
) -> Result<(), CatalogError> {
    db.write(move |tx| -> Result<Written<()>, CatalogError> {
        let api = by_id_for_organisation(tx, organisation_id, api_id)?.ok_or(CatalogError::NotFound)?;
        let org = org_of(tx, organisation_id)?;
        let (action, allowed, to) = match change {
            Change::Withdraw => (
                "catalog.api.deprecated",
                matches!(api.status, ApiStatus::Published | ApiStatus::Suspended),
                ApiStatus::Deprecated,
            ),
            Change::Retire => (
                "catalog.api.retired",
                matches!(api.status, ApiStatus::Deprecated | ApiStatus::Draft),
                ApiStatus::Retired,
            ),
        };
        if let Some(why) = provider_refusal(&org) {
            return deny(tx, &actor, action, &org, Some(object(api_id)), why, now);
        }
        if !allowed {
            return Ok(Written::Refused("catalog.error.transition"));
        }
        let at = clock::rfc3339(now);
        tx.execute("UPDATE apis SET status = ?2, updated_at = ?3 WHERE id = ?1", params![api_id, to.as_str(), at])?;
        let ended = match change {
            Change::Retire => tx.execute(
                "UPDATE api_connections SET status = 'disconnected', disconnected_at = ?2
                 WHERE api_id = ?1 AND status = 'active'",
                params![api_id, at],
            )?,
            Change::Withdraw => 0,
        };
        reindex(tx, api_id)?;
        audit::append(
            tx,
            &event(&actor, action, Outcome::Success, &org, now).object(object(api_id)).detail(serde_json::json!({
                "from": api.status.as_str(),
                "connections_ended": ended,
            })),
        )?;
        Ok(Written::Done(()))
    })
    .await?
    .into_result()
}

/// Connects an API user's application to a published API in one step (automatic approval for an accredited API
/// user, or for any API user's sandbox application): the connection becomes (or becomes again) active.
pub async fn connect(
    db: &Db,
    organisation_id: i64,
    api_id: i64,
    application_id: i64,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(), CatalogError> {
    db.write(move |tx| -> Result<Written<()>, CatalogError> {
        let org = org_of(tx, organisation_id)?;
        let listing = listed(tx, api_id)?.ok_or(CatalogError::NotFound)?;
        const ACTION: &str = "catalog.api.connect";
        let Some(app) = crate::apps::by_id_for_organisation(tx, organisation_id, application_id)? else {
            // An organisation that may connect nothing of production is told so whatever it names.
            return match user_refusal(&org) {
                Some(why) => deny(tx, &actor, ACTION, &org, Some(object(api_id)), why, now),
                None => Err(CatalogError::NotFound),
            };
        };
        if let Some(why) = connection_refusal(&org, app.mode) {
            return deny(tx, &actor, ACTION, &org, Some(object(api_id)), why, now);
        }
        let why = if !listing.connectable() {
            Some("catalog.error.not_connectable")
        } else if app.kind != AppKind::ApiUser {
            Some("catalog.error.app_kind")
        } else if !app.active {
            Some("catalog.error.app_disabled")
        } else {
            None
        };
        if let Some(why) = why {
            return deny(tx, &actor, ACTION, &org, Some(object(api_id)), why, now);
        }
        let at = clock::rfc3339(now);
        let changed = tx.execute(
            "INSERT INTO api_connections (application_id, api_id, status, connected_at) VALUES (?1, ?2, 'active', ?3)
             ON CONFLICT (application_id, api_id) DO UPDATE
               SET status = 'active', connected_at = excluded.connected_at, disconnected_at = NULL
               WHERE api_connections.status <> 'active'",
            params![app.id, api_id, at],
        )?;
        if changed > 0 {
            audit::append(
                tx,
                &event(&actor, "catalog.api.connected", Outcome::Success, &org, now).object(object(api_id)).detail(
                    serde_json::json!({
                        "application": app.client_id,
                        "mode": app.mode.as_str(),
                        "provider": listing.provider_bin,
                        "api": listing.api.name,
                        "version": listing.api.version,
                    }),
                ),
            )?;
        }
        Ok(Written::Done(()))
    })
    .await?
    .into_result()
}

/// Ends an application's connection to an API (whatever the API's status now). Consents naming the bank can then no
/// longer be created for the application, and the gateway no longer serves it.
pub async fn disconnect(
    db: &Db,
    organisation_id: i64,
    api_id: i64,
    application_id: i64,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<(), CatalogError> {
    db.write(move |tx| -> Result<Written<()>, CatalogError> {
        let org = org_of(tx, organisation_id)?;
        let api = api(tx, api_id)?.ok_or(CatalogError::NotFound)?;
        let app =
            crate::apps::by_id_for_organisation(tx, organisation_id, application_id)?.ok_or(CatalogError::NotFound)?;
        let changed = tx.execute(
            "UPDATE api_connections SET status = 'disconnected', disconnected_at = ?3
             WHERE application_id = ?1 AND api_id = ?2 AND status = 'active'",
            params![app.id, api.id, clock::rfc3339(now)],
        )?;
        if changed == 0 {
            return Ok(Written::Refused("catalog.error.not_connected"));
        }
        let provider_bin: String =
            tx.query_row("SELECT bin FROM organisations WHERE id = ?1", [api.organisation_id], |r| r.get(0))?;
        audit::append(
            tx,
            &event(&actor, "catalog.api.disconnected", Outcome::Success, &org, now)
                .object(object(api_id))
                .detail(serde_json::json!({ "application": app.client_id, "provider": provider_bin })),
        )?;
        Ok(Written::Done(()))
    })
    .await?
    .into_result()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn input() -> PassportInput {
        PassportInput {
            name: "Accounts".into(),
            version: "1.0".into(),
            standard: "kopir-ais-v1".into(),
            description: "Current accounts".into(),
            sandbox_base_url: "https://sandbox.bank.kz/ob/".into(),
            production_base_url: "https://api.bank.kz/ob".into(),
            sla_response_ms: "800".into(),
            timeout_ms: "3000".into(),
            contact_email: "api@bank.kz".into(),
            contact_phone: "+7 727 250 00 00".into(),
        }
    }

    #[test]
    fn a_good_passport_is_accepted_and_trimmed() {
        let p = validate(&input()).unwrap();
        assert_eq!(p.sandbox_base_url, "https://sandbox.bank.kz/ob");
        assert_eq!(p.timeout_ms, 3000);
    }

    #[test]
    fn passports_are_refused_field_by_field() {
        type Change = fn(&mut PassportInput);
        let cases: Vec<(Change, &str)> = vec![
            (|i| i.name = " ".into(), "catalog.error.name"),
            (|i| i.version = "1 0".into(), "catalog.error.version"),
            (|i| i.standard = "obie".into(), "catalog.error.standard"),
            (|i| i.sandbox_base_url = "http://sandbox.bank.kz".into(), "catalog.error.sandbox_url"),
            (|i| i.sandbox_base_url = "https://user:pw@sandbox.bank.kz".into(), "catalog.error.sandbox_url"),
            (|i| i.production_base_url = "https://api.bank.kz/ob?key=1".into(), "catalog.error.production_url"),
            (|i| i.production_base_url = "https://api.bank.kz/ob#x".into(), "catalog.error.production_url"),
            (|i| i.sla_response_ms = "0".into(), "catalog.error.sla"),
            (|i| i.timeout_ms = "fast".into(), "catalog.error.timeout"),
            (|i| i.timeout_ms = "500".into(), "catalog.error.timeout_below_sla"),
            (|i| i.contact_email = "api".into(), "catalog.error.email"),
            (|i| i.contact_phone = "123".into(), "catalog.error.phone"),
        ];
        for (change, key) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(validate(&i), Err(vec![key]));
        }
    }

    #[test]
    fn search_input_becomes_quoted_prefix_terms() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(fts_query("\"*()"), None);
        assert_eq!(fts_query("acc OR \"x\" NEAR(y)"), Some("\"acc\"* \"OR\"* \"x\"* \"NEAR\"* \"y\"*".into()));
        assert_eq!(fts_query("Қазақ банк"), Some("\"Қазақ\"* \"банк\"*".into()));
        assert_eq!(fts_query("a-b"), Some("\"a\"* \"b\"*".into()));
    }

    #[test]
    fn search_matches_words_prefixes_and_cyrillic_in_any_case() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE apis_search USING fts5(name, provider, description, standard,
             tokenize = 'unicode61 remove_diacritics 2');
             INSERT INTO apis_search (rowid, name, provider, description, standard)
               VALUES (1, 'Шоттар 1.0', 'Қазақ Банкі 990340000013', 'Ағымдағы шоттар туралы ақпарат', 'kopir-ais-v1');
             INSERT INTO apis_search (rowid, name, provider, description, standard)
               VALUES (2, 'Accounts 2', 'Altyn Bank', 'Текущие счета клиентов', 'kopir-ais-v1');",
        )
        .unwrap();
        let hits = |q: &str| -> Vec<i64> {
            let q = fts_query(q).unwrap();
            let mut stmt =
                conn.prepare("SELECT rowid FROM apis_search WHERE apis_search MATCH ?1 ORDER BY rowid").unwrap();
            stmt.query_map([q], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
        };
        assert_eq!(hits("ҚАЗАҚ"), vec![1]);
        assert_eq!(hits("ағымдағы"), vec![1]);
        assert_eq!(hits("счет"), vec![2]);
        assert_eq!(hits("СЧЕТА altyn"), vec![2]);
        assert_eq!(hits("kopir"), vec![1, 2]);
        assert_eq!(hits("9903400"), vec![1]);
        assert_eq!(hits("\" OR 1=1 --"), Vec::<i64>::new());
    }

    #[test]
    fn every_catalogue_text_key_in_the_code_exists_in_every_language() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("\"catalog.") {
                let rest = &text[i + 1..];
                let end = rest.find('"').unwrap();
                let key = &rest[..end];
                if key.starts_with("catalog.api.") || key.ends_with('.') || key.contains(' ') {
                    continue; // audit actions and prefixes, not text keys
                }
                for lang in Lang::ALL {
                    if (Texts { lang }).get(key) == key {
                        missing.push(format!("{}: {key} ({lang:?})", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "text keys without a text: {missing:?}");
    }
}
