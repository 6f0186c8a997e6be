//! The marketplace: published APIs with their providers, searchable (SQLite FTS5) and filtered by standard and
//! provider (`/marketplace`); one API's passport with the connection of the viewer's applications
//! (`/marketplace/{id}`, connect and disconnect in one step); and the same list as JSON for programs
//! (`/api/v1/marketplace`).
//!
//! Who may call: the pages, anyone (the marketplace is public: what is published, by whom, on which standard, and the
//! platform's endpoint to call); a participant's members see their applications' connections, console readers the
//! providers' own URLs; connecting and disconnecting, administrators and developers of an accredited API user; the
//! JSON, anyone.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiStatus, AppConnection, CatalogError, Listing, MarketplaceFilter, STANDARDS, Standard};
use crate::identity::Role;
use crate::participants::OrgStatus;
use crate::standard::error::ApiError;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render_status};
use crate::web::session::{CsrfForm, Member, ParticipantDeveloper, SignedIn};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/marketplace", get(list))
        .route("/marketplace/{id}", get(show))
        .route("/marketplace/{id}/connect", post(connect))
        .route("/marketplace/{id}/disconnect", post(disconnect))
        .route("/api/v1/marketplace", get(json_list))
}

/// Who is looking: a console reader, a participant member (with the organisation), or a visitor.
enum Viewer {
    Console,
    Participant,
    Public,
}

fn viewer(who: Option<&SignedIn>) -> Result<Viewer, PageError> {
    let Some(who) = who else { return Ok(Viewer::Public) };
    match who.user.role {
        Role::OperatorAdmin | Role::OperatorStaff | Role::Regulator => Ok(Viewer::Console),
        Role::ParticipantAdmin | Role::ParticipantDeveloper | Role::ParticipantAnalyst
            if who.organisation.is_some() =>
        {
            Ok(Viewer::Participant)
        }
        _ => Err(PageError::forbidden()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct MarketQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    standard: String,
    #[serde(default)]
    provider: String,
}

impl MarketQuery {
    fn filter(&self) -> MarketplaceFilter {
        MarketplaceFilter {
            query: self.q.chars().take(200).collect(),
            standard: super::standard(self.standard.trim()).map(|s| s.id.to_string()),
            provider: self.provider.trim().parse().ok(),
        }
    }
}

#[derive(Template)]
#[template(path = "marketplace.html")]
struct MarketPage {
    t: Texts,
    console: bool,
    member: bool,
    listings: Vec<Listing>,
    providers: Vec<(i64, String)>,
    standards: &'static [Standard],
    q: String,
    standard: String,
    provider: Option<i64>,
    filtered: bool,
}

/// Anyone: the marketplace, searched and filtered.
async fn list(
    State(state): State<AppState>,
    who: Option<SignedIn>,
    Query(query): Query<MarketQuery>,
) -> Result<Response, PageError> {
    let shown_to = viewer(who.as_ref())?;
    let (console, member) = (matches!(shown_to, Viewer::Console), matches!(shown_to, Viewer::Participant));
    let filter = query.filter();
    let wanted = filter.clone();
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> { Ok((super::marketplace(c, &wanted)?, super::listed_providers(c)?)) })
        .await?;
    let (listings, providers) = found;
    let filtered = super::fts_query(&filter.query).is_some() || filter.standard.is_some() || filter.provider.is_some();
    let page = MarketPage {
        t: Texts::current(),
        console,
        member,
        listings,
        providers,
        standards: STANDARDS,
        q: filter.query,
        standard: filter.standard.unwrap_or_default(),
        provider: filter.provider,
        filtered,
    };
    Ok(render_status(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "marketplace_api.html")]
struct ListingPage<'a> {
    t: Texts,
    csrf: &'a str,
    console: bool,
    member: bool,
    listing: Listing,
    /// The platform's endpoint API users call for this API's standard, and its OAuth discovery document.
    endpoint: Option<String>,
    discovery: String,
    /// The viewer's organisation's API user applications and their connection to this API.
    connections: Vec<AppConnection>,
    /// Administrators and developers (may connect and disconnect).
    can_manage: bool,
    /// Why the viewer's organisation may not connect (a text key), if so.
    refusal: Option<&'static str>,
    error: Option<&'a str>,
    /// The API's tariff in force today, per service (billing's).
    tariffs: Vec<crate::billing::pages::ListedTariff>,
}

impl ListingPage<'_> {
    /// Applications that may be connected now: active, not connected.
    fn connectable(&self) -> Vec<&AppConnection> {
        self.connections.iter().filter(|c| c.application.active && !c.active()).collect()
    }
}

async fn listing_page(
    state: &AppState,
    who: Option<&SignedIn>,
    id: i64,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let shown_to = viewer(who)?;
    let (console, member) = (matches!(shown_to, Viewer::Console), matches!(shown_to, Viewer::Participant));
    let organisation = who.and_then(|w| w.organisation.as_ref()).filter(|_| member);
    let org_id = organisation.map(|o| o.id);
    let today = crate::billing::pages::today_text(state);
    let found = state
        .db
        .read(move |c| -> Result<_, StoreError> {
            let Some(listing) = super::listed(c, id)? else { return Ok(None) };
            let connections = match org_id {
                Some(org) => super::connections_for(c, org, id)?,
                None => vec![],
            };
            let tariffs = crate::billing::pages::listed_tariffs(c, &listing.api, &today)?;
            Ok(Some((listing, connections, tariffs)))
        })
        .await?;
    let (listing, connections, tariffs) = found.ok_or_else(PageError::not_found)?;
    // An organisation not (or no longer) accredited as an API user may still connect its sandbox applications.
    let has_sandbox_app = connections.iter().any(|c| c.application.mode.is_sandbox());
    let refusal = match organisation {
        Some(org) => super::user_refusal(org).filter(|_| !has_sandbox_app || org.status.is_blocked()),
        None => None,
    };
    let endpoint = super::standard(&listing.api.standard).map(|s| format!("{}{}", state.public_url, s.platform_path));
    let page = ListingPage {
        t: Texts::current(),
        csrf: who.map(SignedIn::csrf).unwrap_or_default(),
        console,
        member,
        endpoint,
        discovery: format!("{}/.well-known/openid-configuration", state.public_url),
        listing,
        connections,
        can_manage: member
            && who.is_some_and(|w| matches!(w.user.role, Role::ParticipantAdmin | Role::ParticipantDeveloper)),
        refusal,
        error,
        tariffs,
    };
    Ok(render_status(status, &page))
}

/// Anyone: one listed API and the platform's endpoint to call it; for an API user's members, their applications'
/// connections to it.
async fn show(
    State(state): State<AppState>,
    who: Option<SignedIn>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    listing_page(&state, who.as_ref(), id, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct ConnectionForm {
    #[serde(default)]
    application: String,
}

async fn change(state: AppState, who: Member, id: i64, form: ConnectionForm, on: bool) -> Result<Response, PageError> {
    let t = Texts::current();
    let org_id = who.org.id;
    let Ok(application) = form.application.trim().parse::<i64>() else {
        return listing_page(
            &state,
            Some(&who.signed_in),
            id,
            Some(t.get("catalog.error.application")),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let done = if on {
        super::connect(&state.db, org_id, id, application, who.audit_actor(), state.clock.now()).await
    } else {
        super::disconnect(&state.db, org_id, id, application, who.audit_actor(), state.clock.now()).await
    };
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/marketplace/{id}")).into_response()),
        Err(CatalogError::Refused(key)) => {
            let status =
                if key == "catalog.error.not_connected" { StatusCode::CONFLICT } else { StatusCode::FORBIDDEN };
            listing_page(&state, Some(&who.signed_in), id, Some(t.get(key)), status).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Administrators and developers of an accredited API user: connects one of the organisation's active API user
/// applications to the API (automatic approval).
async fn connect(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ConnectionForm>,
) -> Result<Response, PageError> {
    change(state, who, id, form, true).await
}

/// Administrators and developers: ends an application's connection to the API.
async fn disconnect(
    State(state): State<AppState>,
    ParticipantDeveloper(who): ParticipantDeveloper,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm<ConnectionForm>,
) -> Result<Response, PageError> {
    change(state, who, id, form, false).await
}

/// A listed API for programs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MarketplaceEntry {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub standard: String,
    pub description: String,
    pub provider: Provider,
    pub sla_response_ms: i64,
    pub timeout_ms: i64,
    /// `Published` or `Deprecated`.
    pub status: &'static str,
    pub published_at: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Provider {
    pub name: String,
    pub bin: String,
    /// `Accredited` or `Suspended`.
    pub status: &'static str,
}

impl From<Listing> for MarketplaceEntry {
    fn from(l: Listing) -> Self {
        MarketplaceEntry {
            id: l.api.id,
            status: if l.api.status == ApiStatus::Published { "Published" } else { "Deprecated" },
            name: l.api.name,
            version: l.api.version,
            standard: l.api.standard,
            description: l.api.description,
            provider: Provider {
                name: l.provider_name,
                bin: l.provider_bin,
                status: if l.provider_status == OrgStatus::Accredited { "Accredited" } else { "Suspended" },
            },
            sla_response_ms: l.api.sla_response_ms,
            timeout_ms: l.api.timeout_ms,
            published_at: l.api.published_at,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct JsonQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    standard: String,
    /// The provider's BIN.
    #[serde(default)]
    provider: String,
}

/// Public: the marketplace as JSON, with the same search (`q`) and filters (`standard`, `provider` = BIN).
async fn json_list(
    State(state): State<AppState>,
    Query(query): Query<JsonQuery>,
) -> Result<Json<Vec<MarketplaceEntry>>, ApiError> {
    let standard = query.standard.trim().to_string();
    let bin = query.provider.trim().to_string();
    let q: String = query.q.chars().take(200).collect();
    state
        .db
        .read(move |c| -> Result<Vec<MarketplaceEntry>, StoreError> {
            let provider = if bin.is_empty() {
                None
            } else {
                // Not a BIN: no provider has it.
                let Ok(bin) = crate::kz::Bin::parse(&bin) else { return Ok(vec![]) };
                match crate::participants::organisation_by_bin(c, &bin)? {
                    Some(org) => Some(org.id),
                    None => return Ok(vec![]),
                }
            };
            let standard = if standard.is_empty() {
                None
            } else {
                match super::standard(&standard) {
                    Some(s) => Some(s.id.to_string()),
                    None => return Ok(vec![]),
                }
            };
            let filter = MarketplaceFilter { query: q, standard, provider };
            Ok(super::marketplace(c, &filter)?.into_iter().map(MarketplaceEntry::from).collect())
        })
        .await
        .map(Json)
        .map_err(|e| ApiError::internal(&e))
}
