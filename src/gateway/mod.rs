//! The gateway: the Open Banking account-information endpoints an API user calls with its token over mTLS, routed
//! to the banks of the customer's consent. Nothing of the customer's financial data is stored: answers pass through,
//! with account ids made platform-scoped, fields the consent does not cover removed, and links rewritten to the
//! platform's URLs. Each bank call is metered.
//!
//! Who may call every route here: a [`Grant`] — see `grant.rs` (certificate, application, participant, token, its
//! binding, the consent, all judged on every request).

pub mod grant;
pub mod ids;
pub mod meter;
pub mod provider;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};

use crate::config::Config;
use crate::standard::Permission;
use crate::standard::error::{ApiError, ObErrorCode};
use crate::web::AppState;
use grant::{Grant, KeyCache, Route};
use ids::{AccountIds, BankAccount};

pub const BASE: &str = "/open-banking/v1/aisp";

/// What the gateway keeps for its life: the bank client, the account-id key, the meter, verification keys.
pub struct Gateway {
    pub client: provider::BankClient,
    pub ids: AccountIds,
    pub meter: meter::Meter,
    pub keys: KeyCache,
    pub judgements: grant::Judgements,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Client(#[from] provider::ClientError),
    #[error("{path}: {error}")]
    Key { path: std::path::PathBuf, error: std::io::Error },
}

impl Gateway {
    /// Builds the gateway; the metering channel's receiving end goes to [`meter::spawn_writer`].
    pub fn new(
        config: &Config,
        guard: crate::egress::Guard,
    ) -> Result<(Arc<Gateway>, tokio::sync::mpsc::Receiver<meter::Exchange>), GatewayError> {
        let client = provider::client(config, guard)?;
        let path = config.pki_dir().join("account-ids.key");
        let ids = AccountIds::load_or_create(&path).map_err(|error| GatewayError::Key { path, error })?;
        let (meter, receiver) = meter::Meter::channel();
        Ok((
            Arc::new(Gateway {
                client,
                ids,
                meter,
                keys: KeyCache::default(),
                judgements: grant::Judgements::default(),
            }),
            receiver,
        ))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/accounts"), get(accounts))
        .route(&format!("{BASE}/accounts/{{id}}"), get(account))
        .route(&format!("{BASE}/accounts/{{id}}/balances"), get(balances))
        .route(&format!("{BASE}/accounts/{{id}}/transactions"), get(transactions))
}

fn refuse(code: ObErrorCode, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

fn has(grant: &Grant, permission: Permission) -> bool {
    grant.consent.permissions.contains(&permission)
}

/// Rewrites `AccountId` of each item under `Data.<kind>` to the platform's id for it.
fn seal_ids(state: &AppState, grant: &Grant, provider: i64, body: &mut Value, kind: &str) {
    if let Some(items) = body["Data"][kind].as_array_mut() {
        for item in items {
            if let Some(bank_id) = item["AccountId"].as_str() {
                let sealed = state
                    .gateway
                    .ids
                    .seal(grant.consent.id.as_str(), &BankAccount { provider, account_id: bank_id.to_string() });
                item["AccountId"] = Value::String(sealed);
            }
        }
    }
}

/// A bank's list of accounts (`/accounts` and `/accounts/{id}` answer alike), read only as deep as the gateway
/// changes it: each account's fields stay raw JSON, passed through as the bank wrote them. (A full
/// `serde_json::Value` tree was a tenth of the gateway's CPU per call.)
#[derive(Deserialize)]
struct AccountList {
    #[serde(rename = "Data")]
    data: AccountListData,
}

#[derive(Deserialize)]
struct AccountListData {
    #[serde(rename = "Account", default)]
    account: Vec<RawAccount>,
}

type RawAccount = BTreeMap<String, Box<RawValue>>;

/// `Data` is required by the type itself, and each account must be an object.
impl provider::BankBody for AccountList {
    fn well_formed(&self) -> bool {
        true
    }
}

/// The platform's answer with a list of accounts.
#[derive(Serialize)]
struct AccountListAnswer {
    #[serde(rename = "Data")]
    data: AccountListOut,
    #[serde(rename = "Links")]
    links: Value,
    #[serde(rename = "Meta")]
    meta: Value,
}

#[derive(Serialize)]
struct AccountListOut {
    #[serde(rename = "Account")]
    account: Vec<RawAccount>,
}

/// The accounts of one bank's answer as the consent allows them: the platform's `AccountId`, the identification
/// (IBAN, holder) only with `ReadAccountsDetail`, and the bank named in `Servicer`.
fn shape_accounts(
    state: &AppState,
    grant: &Grant,
    route: &Route,
    accounts: Vec<RawAccount>,
    into: &mut Vec<RawAccount>,
) {
    let detail = has(grant, Permission::ReadAccountsDetail);
    let servicer = to_raw_value(&json!({ "SchemeName": "KZ.BIN", "Identification": route.bin })).ok();
    for mut account in accounts {
        let bank_id = account.get("AccountId").and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
        if let Some(bank_id) = bank_id {
            let sealed = state
                .gateway
                .ids
                .seal(grant.consent.id.as_str(), &BankAccount { provider: route.provider, account_id: bank_id });
            if let Ok(raw) = to_raw_value(&sealed) {
                account.insert("AccountId".into(), raw);
            }
        }
        if !detail {
            account.remove("Account");
        }
        if let Some(servicer) = &servicer {
            account.insert("Servicer".into(), servicer.clone());
        }
        into.push(account);
    }
}

fn account_list_answer(state: &AppState, path: &str, account: Vec<RawAccount>, meta: Value) -> Response {
    Json(AccountListAnswer {
        data: AccountListOut { account },
        links: json!({ "Self": state.url(&format!("{BASE}{path}")) }),
        meta,
    })
    .into_response()
}

/// The fields of a transaction under Basic permissions; Detail adds everything else the bank sent.
const BASIC_TRANSACTION_FIELDS: &[&str] =
    &["AccountId", "TransactionId", "CreditDebitIndicator", "Status", "BookingDateTime", "ValueDateTime", "Amount"];

/// Transactions as the consent allows them: Basic fields only without `ReadTransactionsDetail`, credits and debits
/// only as permitted. The bank was told the same; this is the platform making sure.
fn shape_transactions(grant: &Grant, body: &mut Value) {
    let detail = has(grant, Permission::ReadTransactionsDetail);
    let credits = has(grant, Permission::ReadTransactionsCredits);
    let debits = has(grant, Permission::ReadTransactionsDebits);
    if let Some(items) = body["Data"]["Transaction"].as_array_mut() {
        items.retain(|t| match t["CreditDebitIndicator"].as_str() {
            Some("Credit") => credits,
            Some("Debit") => debits,
            _ => false,
        });
        if !detail {
            for item in items.iter_mut() {
                if let Some(fields) = item.as_object_mut() {
                    fields.retain(|k, _| BASIC_TRANSACTION_FIELDS.contains(&k.as_str()));
                }
            }
        }
    }
}

fn envelope(state: &AppState, path: &str, data: Value, meta: Value) -> Response {
    Json(json!({ "Data": data, "Links": { "Self": state.url(&format!("{BASE}{path}")) }, "Meta": meta }))
        .into_response()
}

/// Records a request refused before any bank was called.
fn meter_refusal(state: &AppState, grant: &Grant, endpoint: &'static str, refusal: &ApiError, interaction_id: &str) {
    state.gateway.meter.record(meter::Exchange {
        at: state.clock.now_rfc3339(),
        application_id: grant.client.app.id,
        user_organisation_id: grant.client.organisation.id,
        provider_organisation_id: None,
        api_id: None,
        consent_id: Some(grant.consent.id.to_string()),
        endpoint,
        status: refusal.status.as_u16(),
        latency_ms: 0,
        bytes: 0,
        interaction_id: interaction_id.to_string(),
        error_code: Some(refusal.code),
        mode: grant.client.app.mode,
        transaction_lines: 0,
    });
}

/// `GET /accounts`: every bank of the consent at once; a bank that fails or is slow is named in
/// `Meta.MissingProviders` and never holds the others up. Only when every bank fails is the answer an error.
async fn accounts(
    State(state): State<AppState>,
    grant: Grant,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let interaction_id = crate::web::request_id::interaction_id(&headers);
    known_query(raw.as_deref(), &[]).inspect_err(|e| {
        meter_refusal(&state, &grant, "accounts", e, &interaction_id);
    })?;
    let started = Instant::now();
    let calls = grant.routes.iter().map(|route| {
        let (state, grant, interaction_id) = (&state, &grant, interaction_id.as_str());
        async move {
            (route, provider::call::<AccountList>(state, grant, route, "accounts", "/accounts", interaction_id).await)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let mut merged: Vec<RawAccount> = Vec::new();
    let mut missing: Vec<Value> = Vec::new();
    let mut last_failure = None;
    for (route, result) in results {
        match result {
            Ok(answer) => shape_accounts(&state, &grant, route, answer.body.data.account, &mut merged),
            Err(failure) => {
                missing.push(json!({ "Bin": route.bin, "Name": route.name, "Reason": failure.message }));
                last_failure = Some(failure);
            }
        }
    }
    metrics::histogram!("kopir_gateway_fanout_seconds").record(started.elapsed().as_secs_f64());
    if merged.is_empty()
        && let Some(failure) = last_failure
        && missing.len() == grant.routes.len()
    {
        return Err(failure.into_error());
    }
    let mut meta = json!({ "TotalPages": 1 });
    if !missing.is_empty() {
        meta["MissingProviders"] = Value::Array(missing);
    }
    Ok(account_list_answer(&state, "/accounts", merged, meta))
}

/// The bank account behind a platform id, under this grant — or "not found" for an id of another consent, bank or
/// platform (indistinguishable on purpose).
fn resolve<'g>(state: &AppState, grant: &'g Grant, id: &str) -> Result<(&'g Route, BankAccount), ApiError> {
    let not_found =
        || ApiError::new(StatusCode::NOT_FOUND, ObErrorCode::ResourceNotFound, "No such account").at("AccountId");
    let account = state.gateway.ids.open(grant.consent.id.as_str(), id).ok_or_else(not_found)?;
    let route = grant.route(account.provider).ok_or_else(not_found)?;
    Ok((route, account))
}

fn account_path(account: &BankAccount, rest: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(account.account_id.as_bytes()).collect();
    format!("/accounts/{encoded}{rest}")
}

/// `GET /accounts/{AccountId}`.
async fn account(
    State(state): State<AppState>,
    grant: Grant,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let interaction_id = crate::web::request_id::interaction_id(&headers);
    let (route, bank_account) =
        known_query(raw.as_deref(), &[]).and_then(|_| resolve(&state, &grant, &id)).inspect_err(|e| {
            meter_refusal(&state, &grant, "account", e, &interaction_id);
        })?;
    let path = account_path(&bank_account, "");
    let answer = provider::call::<AccountList>(&state, &grant, route, "account", &path, &interaction_id)
        .await
        .map_err(provider::Failure::into_error)?;
    let mut accounts = Vec::new();
    shape_accounts(&state, &grant, route, answer.body.data.account, &mut accounts);
    Ok(account_list_answer(&state, &format!("/accounts/{id}"), accounts, json!({ "TotalPages": 1 })))
}

/// `GET /accounts/{AccountId}/balances` — needs `ReadBalances`.
async fn balances(
    State(state): State<AppState>,
    grant: Grant,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let interaction_id = crate::web::request_id::interaction_id(&headers);
    if !has(&grant, Permission::ReadBalances) {
        let refusal = refuse(ObErrorCode::ResourceConsentMismatch, "The consent does not include ReadBalances");
        meter_refusal(&state, &grant, "balances", &refusal, &interaction_id);
        return Err(refusal);
    }
    let (route, bank_account) =
        known_query(raw.as_deref(), &[]).and_then(|_| resolve(&state, &grant, &id)).inspect_err(|e| {
            meter_refusal(&state, &grant, "balances", e, &interaction_id);
        })?;
    let path = account_path(&bank_account, "/balances");
    let mut answer = provider::call::<Value>(&state, &grant, route, "balances", &path, &interaction_id)
        .await
        .map_err(provider::Failure::into_error)?;
    seal_ids(&state, &grant, route.provider, &mut answer.body, "Balance");
    Ok(envelope(&state, &format!("/accounts/{id}/balances"), answer.body["Data"].take(), json!({ "TotalPages": 1 })))
}

/// The query parameters a transactions call may carry through.
const TRANSACTION_PARAMS: &[&str] = &["fromBookingDateTime", "toBookingDateTime", "page"];

/// The query of a call, each name one of `allowed` and at most once. All four operations judge their query here, so
/// that they treat an unknown parameter alike (refused, as the standard says); a parameter without a name is
/// refused too, its error without a `Path` (the standard's `Path` has at least one character).
fn known_query(raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> =
        raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in pairs {
        if name.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ObErrorCode::FieldUnexpected,
                "A query parameter has no name",
            ));
        }
        if !allowed.contains(&name.as_str()) {
            let name = crate::standard::error::quote(&name);
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ObErrorCode::FieldUnexpected,
                format!("Unknown parameter {name}"),
            )
            .at(name));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ObErrorCode::FieldInvalid,
                format!("{name} is repeated"),
            )
            .at(name));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Checks the caller's dates against the consent's window and returns the query to send to the bank: the caller's
/// dates, or the window's bounds where the caller gave none.
fn transaction_query(grant: &Grant, raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = known_query(raw, TRANSACTION_PARAMS)?;
    if let Some((_, value)) = out.iter().find(|(name, _)| name == "page")
        && !value.parse::<u32>().is_ok_and(|p| p >= 1)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ObErrorCode::FieldInvalid,
            "page must be a whole number from 1",
        )
        .at("page"));
    }
    let window = (grant.consent.transaction_from.as_deref(), grant.consent.transaction_to.as_deref());
    for (name, bound, after) in [("fromBookingDateTime", window.0, true), ("toBookingDateTime", window.1, false)] {
        match out.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()) {
            Some(value) => {
                let at = crate::clock::parse(&value).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ObErrorCode::FieldInvalidDate,
                        format!("{name} must be an RFC 3339 date-time"),
                    )
                    .at(name)
                })?;
                if let Some(bound) = bound.and_then(|b| crate::clock::parse(b).ok()) {
                    let outside = if after { at < bound } else { at > bound };
                    if outside {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ObErrorCode::FieldInvalidDate,
                            format!("{name} lies outside the consent's transaction window"),
                        )
                        .at(name));
                    }
                }
            }
            None => {
                if let Some(bound) = bound {
                    out.push((name.to_string(), bound.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// A bank's pagination link as the platform's: the same page and dates, at the platform's URL for this account.
fn rewrite_link(state: &AppState, platform_id: &str, bank_link: &str) -> String {
    let query = bank_link.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if TRANSACTION_PARAMS.contains(&name.as_ref()) {
            serializer.append_pair(&name, &value);
        }
    }
    let query = serializer.finish();
    let path = format!("{BASE}/accounts/{platform_id}/transactions");
    if query.is_empty() { state.url(&path) } else { state.url(&format!("{path}?{query}")) }
}

/// `GET /accounts/{AccountId}/transactions` — needs `ReadTransactionsBasic` or `Detail`; dates within the
/// consent's window; pages as the bank pages them, linked at the platform.
async fn transactions(
    State(state): State<AppState>,
    grant: Grant,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let interaction_id = crate::web::request_id::interaction_id(&headers);
    if !has(&grant, Permission::ReadTransactionsBasic) && !has(&grant, Permission::ReadTransactionsDetail) {
        let refusal = refuse(ObErrorCode::ResourceConsentMismatch, "The consent does not include transactions");
        meter_refusal(&state, &grant, "transactions", &refusal, &interaction_id);
        return Err(refusal);
    }
    let query = transaction_query(&grant, raw.as_deref()).inspect_err(|e| {
        meter_refusal(&state, &grant, "transactions", e, &interaction_id);
    })?;
    let (route, bank_account) = resolve(&state, &grant, &id).inspect_err(|e| {
        meter_refusal(&state, &grant, "transactions", e, &interaction_id);
    })?;
    let encoded = {
        // (The serializer is not Send: it must be gone before the next await.)
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &query {
            serializer.append_pair(name, value);
        }
        serializer.finish()
    };
    let path = account_path(&bank_account, &format!("/transactions?{encoded}"));
    let mut answer = provider::call::<Value>(&state, &grant, route, "transactions", &path, &interaction_id)
        .await
        .map_err(provider::Failure::into_error)?;
    seal_ids(&state, &grant, route.provider, &mut answer.body, "Transaction");
    shape_transactions(&grant, &mut answer.body);
    let mut links = json!({});
    for name in ["Self", "First", "Prev", "Next", "Last"] {
        if let Some(link) = answer.body["Links"][name].as_str() {
            links[name] = Value::String(rewrite_link(&state, &id, link));
        }
    }
    if links.get("Self").is_none() {
        links["Self"] = Value::String(state.url(&format!("{BASE}/accounts/{id}/transactions")));
    }
    let mut meta = json!({});
    for name in ["TotalPages", "FirstAvailableDateTime", "LastAvailableDateTime"] {
        if let Some(value) = answer.body["Meta"].get(name) {
            meta[name] = value.clone();
        }
    }
    Ok(Json(json!({ "Data": answer.body["Data"].take(), "Links": links, "Meta": meta })).into_response())
}
