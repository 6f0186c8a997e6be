//! The public registries of accredited API providers and API users: an HTML page and JSON for machines.
//!
//! Listed: participants with a current, unexpired accreditation whose organisation is accredited or suspended.
//! Suspended participants stay listed with the status `Suspended` (so relying parties can see why calls to or from
//! them fail); revoked ones disappear.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use super::accreditation::{self, RegistryEntry, RegistryKind};
use crate::standard::error::ApiError;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::pages::{PageError, Texts, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/registry", get(page))
        .route("/api/v1/registry/providers", get(providers))
        .route("/api/v1/registry/users", get(users))
}

async fn both(state: &AppState) -> Result<(Vec<RegistryEntry>, Vec<RegistryEntry>), StoreError> {
    let now = state.clock.now();
    state
        .db
        .read(move |c| -> Result<_, StoreError> {
            Ok((
                accreditation::registry(c, RegistryKind::Providers, now)?,
                accreditation::registry(c, RegistryKind::Users, now)?,
            ))
        })
        .await
}

#[derive(Template)]
#[template(path = "registry.html")]
struct RegistryPage {
    t: Texts,
    providers: Vec<RegistryEntry>,
    users: Vec<RegistryEntry>,
}

/// Public: both registries as a page (the header names a signed-in person).
async fn page(
    State(state): State<AppState>,
    t: Texts,
    _who: Option<crate::web::session::SignedIn>,
) -> Result<Response, PageError> {
    let (providers, users) = both(&state).await?;
    Ok(render(&RegistryPage { t, providers, users }))
}

async fn list(state: &AppState, kind: RegistryKind) -> Result<Json<Vec<RegistryEntry>>, ApiError> {
    let now = state.clock.now();
    state
        .db
        .read(move |c| accreditation::registry(c, kind, now).map_err(StoreError::from))
        .await
        .map(Json)
        .map_err(|e| ApiError::internal(&e))
}

/// Public: the registry of API providers, as JSON.
async fn providers(State(state): State<AppState>) -> Result<Json<Vec<RegistryEntry>>, ApiError> {
    list(&state, RegistryKind::Providers).await
}

/// Public: the registry of API users, as JSON.
async fn users(State(state): State<AppState>) -> Result<Json<Vec<RegistryEntry>>, ApiError> {
    list(&state, RegistryKind::Users).await
}
