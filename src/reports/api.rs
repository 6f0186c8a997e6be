//! The participants' reports over the API, for their own systems: `GET /participant/v1/reports/usage`, called over
//! mutual TLS with a certificate of one of the organisation's applications (`ApiClient`); it answers the same report
//! as the page (`super::participant`), for that organisation only, as JSON, and refuses bad parameters in the
//! standard error shape. Documented in the platform's OpenAPI document (`/standard/platform/v1/openapi.json`).
//!
//! Who may call it: an application of a participant (any kind, any mode), for its own organisation; a call without a
//! certificate, with an unregistered, revoked or operator-issued one, is refused.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::ReportsError;
use super::participant::{self, Params, Refusal, ReportError, Request, View};
use super::usage::{self, GroupBy, UsageFilter};
use crate::apps::client::ApiClient;
use crate::standard::error::{ApiError, ObErrorCode};
use crate::web::AppState;

pub const USAGE_PATH: &str = "/participant/v1/reports/usage";

pub fn router() -> Router<AppState> {
    Router::new().route(USAGE_PATH, get(usage_report))
}

/// The groupings a view may ask for (never one that names the other side's applications).
fn allowed(view: View, group: GroupBy) -> bool {
    match group {
        GroupBy::Endpoint | GroupBy::StatusClass | GroupBy::ErrorCode | GroupBy::Api => true,
        GroupBy::User => view == View::Provider,
        GroupBy::Provider | GroupBy::Application => view == View::User,
    }
}

fn bad_request(parameter: &str, message: &str) -> ApiError {
    let code =
        if matches!(parameter, "from" | "to") { ObErrorCode::FieldInvalidDate } else { ObErrorCode::FieldInvalid };
    ApiError::new(StatusCode::BAD_REQUEST, code, format!("{parameter}: {message}")).at(parameter.to_string())
}

fn refused(refusal: &Refusal) -> ApiError {
    bad_request(refusal.parameter, crate::i18n::Texts { lang: crate::i18n::Lang::En }.get(refusal.key))
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> ApiError {
        match error {
            ReportError::Refused(refusal) => refused(&refusal),
            ReportError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                ObErrorCode::ResourceNotFound,
                "No such API or application of this organisation",
            ),
            ReportError::Reports(ReportsError::EmptyInterval) => {
                bad_request("to", "the interval must end after it starts")
            }
            ReportError::Reports(e @ ReportsError::IntervalTooLong { .. }) => {
                bad_request("granularity", &e.to_string())
            }
            ReportError::Reports(e) => ApiError::internal(&e),
        }
    }
}

/// A participant's system: its organisation's usage report.
async fn usage_report(
    State(state): State<AppState>,
    client: ApiClient,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    // A query that is not a set of distinct parameters (one named twice) is answered in the standard shape too.
    let Query(params) = params.map_err(|_| bad_request("query", "each parameter may be given once"))?;
    let org = (*client.organisation).clone();
    let zone = state.config.time_zone.zone().clone();
    let now = state.clock.now();
    let today = participant::today(&zone, now).map_err(ReportError::from)?;
    let request = Request::parse(&params, &org, today, true).map_err(|r| refused(&r))?;
    let group = match params.group_by.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        None => None,
        Some(word) => match word.parse::<GroupBy>() {
            Ok(group) if allowed(request.view, group) => Some(group),
            _ => return Err(bad_request("group_by", "unknown grouping for this report")),
        },
    };
    let document = state
        .db
        .read(move |conn| -> Result<Value, ReportError> {
            let report = participant::build(conn, &zone, &org, &request, now)?;
            let mut document = participant::json(&report, &org);
            if let Some(group) = group {
                let (provider, user) = match request.view {
                    View::Provider => (Some(org.id), None),
                    View::User => (None, Some(org.id)),
                };
                let filter = UsageFilter {
                    from: participant::instant(&zone, request.from)?,
                    to: participant::instant(&zone, request.to)?,
                    environment: request.environment,
                    provider,
                    user,
                    application: request.application,
                    api: request.api,
                };
                let rows: Vec<Value> = usage::series(conn, &zone, &filter, request.granularity, Some(group))?
                    .iter()
                    .map(|row| {
                        json!({
                            "period": participant::local_period(&zone, row.period.as_deref().unwrap_or_default()),
                            "group": participant::group_json(row.group.as_ref()),
                            "requests": row.requests,
                            "client_errors": row.client_errors,
                            "server_errors": row.server_errors,
                            "p50_ms": row.p50_ms(),
                            "p95_ms": row.p95_ms(),
                            "p99_ms": row.p99_ms(),
                        })
                    })
                    .collect();
                document["group_by"] = json!(group.as_str());
                document["rows"] = Value::Array(rows);
            }
            Ok(document)
        })
        .await?;
    Ok(Json(document))
}
