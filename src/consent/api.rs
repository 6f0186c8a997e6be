//! The consent resource of the Open Banking API, over mutual TLS:
//! - `POST /open-banking/v1/aisp/account-access-consents` — an API user's application asks (→ `AwaitingAuthorisation`);
//! - `GET /open-banking/v1/aisp/account-access-consents` — the consents that concern the caller (kopir extension):
//!   an API user's application sees its own, a provider's system those naming its bank;
//! - `GET …/{ConsentId}` — the owner, or a bank the consent names;
//! - `DELETE …/{ConsentId}` — the owner only: withdraws a request or revokes an authorised consent.
//!
//! Anyone else gets 404 for a consent that exists, so ids cannot be probed.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::rules::{self, ConsentRequest, Refusal};
use super::{ChangedBy, Concerning, Consent, ConsentError, Status};
use crate::apps::AppKind;
use crate::apps::client::ApiClient;
use crate::standard::error::{ApiError, ObErrorCode};
use crate::store::StoreError;
use crate::web::AppState;

pub const BASE: &str = "/open-banking/v1/aisp/account-access-consents";

pub fn router() -> Router<AppState> {
    Router::new().route(BASE, get(list).post(create)).route(&format!("{BASE}/{{id}}"), get(read).delete(delete))
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = if r.code == ObErrorCode::UnexpectedError {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, r.code, r.message).at(r.path)
    }
}

/// The OBIE `OBReadConsentResponse1` body of one consent as it stands `now`. Each bank's `Status` is
/// [`Consent::bank_status`], the same word every page shows.
pub fn consent_data(consent: &Consent, now: &str) -> Value {
    json!({
        "ConsentId": consent.id,
        "CreationDateTime": consent.created_at,
        "Status": consent.status.as_str(),
        "StatusUpdateDateTime": consent.status_updated_at,
        "Permissions": consent.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "RequiredPermissions": consent.required_permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "ExpirationDateTime": consent.expires_at,
        "TransactionFromDateTime": consent.transaction_from,
        "TransactionToDateTime": consent.transaction_to,
        "Purpose": consent.purpose,
        "PurposeTranslations": consent.purpose_translations,
        "Providers": consent.providers.iter().map(|p| json!({
            "Bin": p.bin,
            "Name": p.name,
            "Status": consent.bank_status(p, now).as_str(),
        })).collect::<Vec<_>>(),
        "LastUsedDateTime": consent.last_used_at,
        // kopir: `Sandbox` for a sandbox application's consent (test customers, the banks' sandboxes).
        "Environment": if consent.mode.is_sandbox() { "Sandbox" } else { "Production" },
    })
}

fn one(state: &AppState, consent: &Consent) -> Value {
    json!({
        "Data": consent_data(consent, &state.clock.now_rfc3339()),
        "Risk": {},
        "Links": { "Self": state.url(&format!("{BASE}/{}", consent.id)) },
        "Meta": { "TotalPages": 1 },
    })
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::internal(&e)
}

/// Reads a JSON body into `T`, answering the standard error with the path of the first wrong field.
pub fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ObErrorCode::HeaderInvalid,
            "The body must be JSON (Content-Type: application/json)",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.to_string().starts_with("missing field") {
            ObErrorCode::FieldMissing
        } else {
            ObErrorCode::FieldInvalid
        };
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "The body is not valid JSON".into()
            }
            // serde's text may quote the value; keep the kind of mismatch, not the whole input.
            _ => {
                format!(
                    "The body does not match the schema: {}",
                    crate::standard::error::truncate(&inner.to_string(), 160)
                )
            }
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, message).at(crate::standard::error::quote(&path))
    })
}

/// Who may call: an accredited API user's application, or any API user's sandbox application.
async fn create(
    State(state): State<AppState>,
    client: ApiClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    client.require_api_user()?;
    let request: ConsentRequest = json_body(&headers, &body)?;
    let (mut new, bins) = rules::check_request(&request.data, state.clock.now(), state.config.oauth.consent_max_days)?;
    let application_id = client.app.id;
    let by = ChangedBy { actor: format!("client:{}", client.app.client_id), source: client.cert.serial.clone() };
    let now = state.clock.now();
    let consent = state
        .db
        .write(move |tx| -> Result<Created, StoreError> {
            match rules::resolve_providers(tx, application_id, &bins) {
                Ok(ids) => new.provider_ids = ids,
                Err(refusal) => return Ok(Created::Refused(refusal)),
            }
            Ok(Created::Consent(Box::new(super::insert(tx, application_id, &new, &by, now)?)))
        })
        .await
        .map_err(store_error)?;
    let consent = match consent {
        Created::Consent(consent) => *consent,
        Created::Refused(refusal) => return Err(refusal.into()),
    };
    let mut response = (StatusCode::CREATED, Json(one(&state, &consent))).into_response();
    if let Ok(location) = state.url(&format!("{BASE}/{}", consent.id)).parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The consent if the caller may see it: its application, or a provider system of a bank it names.
async fn visible(state: &AppState, client: &ApiClient, id: String) -> Result<Consent, ApiError> {
    let consent = state.db.read(move |c| super::load(c, &id).map_err(StoreError::from)).await.map_err(store_error)?;
    match consent {
        Some(c) if c.application_id == client.app.id => Ok(c),
        Some(c) if client.app.kind == AppKind::ProviderSystem && c.names_provider(client.organisation.id) => Ok(c),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, ObErrorCode::ResourceNotFound, "No such consent")),
    }
}

/// What creating a consent came to.
enum Created {
    Consent(Box<Consent>),
    /// A bank named cannot be asked (unknown, not a provider, or not for this environment).
    Refused(Refusal),
}

/// Who may call: the consent's application, or a provider system of a bank it names.
async fn read(State(state): State<AppState>, client: ApiClient, Path(id): Path<String>) -> Result<Response, ApiError> {
    let consent = visible(&state, &client, id).await?;
    Ok(Json(one(&state, &consent)).into_response())
}

/// Who may call: the consent's application only. An unanswered request is withdrawn (`Rejected`); an authorised
/// consent is revoked. Deleting a consent that already ended changes nothing.
async fn delete(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let consent = visible(&state, &client, id).await?;
    if consent.application_id != client.app.id {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ObErrorCode::ResourceNotFound, "No such consent"));
    }
    let by = ChangedBy { actor: format!("client:{}", client.app.client_id), source: client.cert.serial.clone() };
    let id = consent.id.clone();
    let status = consent.status;
    let now = state.clock.now();
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            let done = match status {
                Status::AwaitingAuthorisation => super::reject(tx, &id, &by, "withdrawn by the API user", now),
                Status::Authorised => super::revoke(tx, &id, &by, "revoked by the API user", now),
                _ => Ok(()),
            };
            match done {
                Err(ConsentError::Store(e)) => Err(e.into()),
                // Changed meanwhile by someone else: it has ended either way.
                Ok(()) | Err(_) => Ok(()),
            }
        })
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    page: Option<u32>,
}

/// Who may call: any participant's application; each sees only the consents that concern it.
async fn list(
    State(state): State<AppState>,
    client: ApiClient,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    // Pages count from 1, as the document says (and as the gateway's transaction pages do).
    if query.page == Some(0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ObErrorCode::FieldInvalid,
            "page must be a whole number from 1",
        )
        .at("page"));
    }
    let page = query.page.unwrap_or(1);
    let who = match client.app.kind {
        AppKind::ApiUser => Concerning::Application(client.app.id),
        AppKind::ProviderSystem => Concerning::Provider(client.organisation.id),
    };
    let (consents, more) =
        state.db.read(move |c| super::list(c, who, page).map_err(StoreError::from)).await.map_err(store_error)?;
    let mut links = json!({ "Self": state.url(&format!("{BASE}?page={page}")) });
    if more {
        links["Next"] = json!(state.url(&format!("{BASE}?page={}", page + 1)));
    }
    if page > 1 {
        links["Prev"] = json!(state.url(&format!("{BASE}?page={}", page - 1)));
    }
    let now = state.clock.now_rfc3339();
    let data: Vec<Value> = consents.iter().map(|c| consent_data(c, &now)).collect();
    Ok(Json(json!({ "Data": { "Consent": data }, "Links": links, "Meta": {} })).into_response())
}
