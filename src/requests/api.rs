//! Requests over the API, for participants' systems (mutual TLS with a certificate of one of the organisation's
//! applications, `ApiClient`; documented in `/standard/platform/v1/openapi.json`):
//! - `GET /participant/v1/requests/categories`: the classifier's active categories with their targets;
//! - `POST /participant/v1/requests`: raise a request (attachments as base64, judged by their bytes and size);
//! - `GET /participant/v1/requests`: the requests the organisation raised, executes or is a party of;
//! - `GET /participant/v1/requests/{id}`: one of them, with its public history and the metered record of the
//!   exchange it names.
//!
//! Who may call: an application of a participant in good standing (any kind, any mode), for its own organisation;
//! another organisation's request is "not found", the same as a missing one. Refusals are the standard error body.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::case::{self, Acting, NewAttachment, Raised, Raiser};
use super::classifier::{self, Category};
use super::pages::{Form, parse_request, store_request};
use super::{Refusal, RequestsError};
use crate::apps::client::ApiClient;
use crate::standard::error::{ApiError, ObErrorCode};
use crate::store::StoreError;
use crate::web::AppState;

pub const REQUESTS_PATH: &str = "/participant/v1/requests";

/// The body limit of `POST /participant/v1/requests`: the largest attachments (30 MiB) as base64, plus the rest.
const MAX_BODY_BYTES: usize = 42 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/participant/v1/requests/categories", get(categories))
        .route(REQUESTS_PATH, get(list).post(raise).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .route("/participant/v1/requests/{id}", get(one))
}

/// A refusal is the standard error body with its English text and the field it is about; a failure is an internal
/// error (logged, never described).
impl From<RequestsError> for ApiError {
    fn from(error: RequestsError) -> ApiError {
        match error {
            RequestsError::Refused(refusal) => refused(refusal),
            failure => ApiError::internal(&failure),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        refused(refusal)
    }
}

fn refused(refusal: Refusal) -> ApiError {
    let texts = crate::i18n::Texts { lang: crate::i18n::Lang::En };
    let (status, code) = match refusal {
        Refusal::AttachmentType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, ObErrorCode::ResourceInvalidFormat),
        Refusal::AttachmentSize => (StatusCode::PAYLOAD_TOO_LARGE, ObErrorCode::FieldInvalid),
        _ => (StatusCode::BAD_REQUEST, ObErrorCode::FieldInvalid),
    };
    ApiError::new(status, code, texts.get(refusal.text_key())).at(refusal.field())
}

fn category_json(c: &Category) -> Value {
    let targets: serde_json::Map<String, Value> = c
        .targets
        .iter()
        .map(|t| {
            (
                t.priority.as_str().to_string(),
                json!({"first_response_minutes": t.first_response_minutes, "resolution_minutes": t.resolution_minutes}),
            )
        })
        .collect();
    json!({
        "code": c.code, "names": {"en": c.name_en, "ru": c.name_ru, "kk": c.name_kk}, "executor": c.executor,
        "version": c.version, "targets": targets,
    })
}

/// A participant's system: the categories it may raise requests in.
async fn categories(State(state): State<AppState>, _client: ApiClient) -> Result<Json<Value>, ApiError> {
    let all =
        state.db.read(|c| classifier::categories(c).map_err(StoreError::from)).await.map_err(RequestsError::from)?;
    let list: Vec<Value> = all.iter().filter(|c| c.active).map(category_json).collect();
    Ok(Json(json!({"categories": list})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseBody {
    category: String,
    subject: String,
    description: String,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    object: Option<ObjectBody>,
    #[serde(default)]
    attachments: Vec<AttachmentBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectBody {
    kind: String,
    #[serde(default)]
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentBody {
    filename: String,
    /// Base64 (standard alphabet, padded).
    content: String,
}

fn attachments(state: &AppState, bodies: Vec<AttachmentBody>) -> Result<Vec<NewAttachment>, Refusal> {
    let settings = &state.config.requests;
    if bodies.len() > settings.max_attachments {
        return Err(Refusal::TooManyAttachments);
    }
    bodies
        .into_iter()
        .map(|a| {
            // The decoded size is known before decoding: refuse an oversized file without holding it twice.
            if a.content.len() / 4 * 3 > settings.max_attachment_bytes + 3 {
                return Err(Refusal::AttachmentSize);
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(a.content.trim())
                .map_err(|_| Refusal::AttachmentType)?;
            if bytes.len() > settings.max_attachment_bytes {
                return Err(Refusal::AttachmentSize);
            }
            let content_type = super::sniff_type(&bytes).ok_or(Refusal::AttachmentType)?;
            Ok(NewAttachment {
                filename: crate::participants::accreditation::clean_filename(&a.filename),
                content_type,
                content: bytes,
            })
        })
        .collect()
}

fn request_json(request: &case::Summary) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or_default();
    value["category_name"] = json!(request.category_names[0]);
    value
}

/// A participant's system: raise a request for its organisation.
async fn raise(
    State(state): State<AppState>,
    client: ApiClient,
    body: Result<Json<RaiseBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|rejection| {
        let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, ObErrorCode::ResourceInvalidFormat, "The body must be the JSON object documented")
    })?;
    let files = attachments(&state, body.attachments)?;
    let categories =
        state.db.read(|c| classifier::categories(c).map_err(StoreError::from)).await.map_err(RequestsError::from)?;
    let form = Form {
        category: body.category,
        subject: body.subject,
        description: body.description,
        priority: body.priority.unwrap_or_else(|| "normal".into()),
        object_kind: body.object.as_ref().map(|o| o.kind.clone()).unwrap_or_default(),
        object_ref: body.object.map(|o| o.id).unwrap_or_default(),
    };
    let new = parse_request(&categories, &form, files)?;
    let org = client.organisation.id;
    let raiser = Raiser {
        organisation_id: org,
        user_id: None,
        client_id: Some(client.app.client_id.to_string()),
        actor: crate::audit::Actor {
            name: format!("client:{}", client.app.client_id),
            source: String::new(),
            user_id: None,
        },
    };
    let Raised { id, .. } = store_request(&state, raiser, new).await?;
    let request = state
        .db
        .read(move |c| case::get(c, id).map_err(StoreError::from))
        .await
        .map_err(RequestsError::from)?
        .ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::CREATED, Json(request_json(&request))))
}

/// A participant's system: its organisation's requests, newest first.
async fn list(State(state): State<AppState>, client: ApiClient) -> Result<Json<Value>, ApiError> {
    let org = client.organisation.id;
    let requests = state
        .db
        .read(move |c| case::for_organisation(c, org, super::pages::LIST_LIMIT).map_err(StoreError::from))
        .await
        .map_err(RequestsError::from)?;
    Ok(Json(json!({"requests": requests.iter().map(request_json).collect::<Vec<_>>()})))
}

/// A participant's system: one of its organisation's requests.
async fn one(
    State(state): State<AppState>,
    client: ApiClient,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // A request's number; anything else names no request (404 in the standard shape, as for another's request).
    let id: i64 = id.parse().map_err(|_| ApiError::not_found())?;
    let acting = Acting::member(
        crate::audit::Actor { name: format!("client:{}", client.app.client_id), source: String::new(), user_id: None },
        client.organisation.id,
    );
    let Some((request, history, attachments, evidence, steps)) =
        super::pages::load_detail(&state, id, acting, false).await.map_err(RequestsError::from)?
    else {
        return Err(ApiError::not_found());
    };
    let mut document = request_json(&request);
    document["history"] = json!(history);
    document["attachments"] = json!(attachments);
    document["evidence"] = json!(evidence);
    document["steps"] = json!(steps);
    Ok(Json(document))
}
