//! The bank's side of kopir AIS v1: the four account endpoints, answered only to the platform (a client certificate
//! from its CA is required at the handshake, see `server`, and it must carry the platform's certificate policy)
//! with a valid signed consent header, for the customer the
//! header names and within its permissions and transaction window.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use time::OffsetDateTime;

use super::Fault;
use super::consent::{self, Consent, Verifier};
use super::data::{Book, Txn};
use crate::standard::error::{ApiError, ObErrorCode};
use crate::standard::{AIS_BASE_PATH, CONSENT_HEADER, PAGE_SIZE};
use crate::web::request_id;

/// What every handler reaches.
pub struct Inner {
    pub book: Book,
    pub verifier: Verifier,
    /// `https://localhost:PORT/open-banking/v1/aisp`: the base of every link.
    pub base_url: String,
    pub fault: Option<Fault>,
    pub fault_delay: Duration,
}

pub type Bank = Arc<Inner>;

pub fn router(bank: Bank) -> Router {
    let base = AIS_BASE_PATH;
    Router::new()
        .route(&format!("{base}/accounts"), get(accounts))
        .route(&format!("{base}/accounts/{{account_id}}"), get(account))
        .route(&format!("{base}/accounts/{{account_id}}/balances"), get(balances))
        .route(&format!("{base}/accounts/{{account_id}}/transactions"), get(transactions))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ObErrorCode::ResourceInvalidFormat, "Only GET is served")
        })
        .layer(middleware::from_fn_with_state(bank.clone(), fault))
        .layer(middleware::from_fn(ids))
        .with_state(bank)
}

/// A request id for the error body's `Id` and `x-request-id`, and the interaction id echoed (FAPI).
async fn ids(request: Request, next: Next) -> Response {
    let id = crate::random::uuid_v4().to_string();
    let (mut response, interaction) = request_id::scope(id.clone(), async move {
        let interaction = request_id::interaction_id(request.headers());
        (next.run(request).await, interaction)
    })
    .await;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&interaction) {
        h.insert(request_id::X_FAPI_INTERACTION_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(request_id::X_REQUEST_ID, v);
    }
    response
}

/// Truncated JSON: what `Fault::Malformed` answers with status 200.
const MALFORMED: &str = r#"{"Data":{"Account":[{"AccountId":"acc-"#;

/// The size of `Fault::Oversized`'s answers.
const OVERSIZED_BYTES: usize = 17 * 1024 * 1024;

/// Well-formed JSON of [`OVERSIZED_BYTES`]: an empty account list padded in `Meta`.
fn oversized() -> String {
    let head = r#"{"Data":{"Account":[]},"Meta":{"Padding":""#;
    let tail = r#""}}"#;
    format!("{head}{}{tail}", "x".repeat(OVERSIZED_BYTES - head.len() - tail.len()))
}

/// The configured misbehaviour, for testing how the platform and the sandbox cope with a bad bank.
async fn fault(State(bank): State<Bank>, request: Request, next: Next) -> Response {
    match bank.fault {
        None => next.run(request).await,
        Some(Fault::Slow) => {
            tokio::time::sleep(bank.fault_delay).await;
            next.run(request).await
        }
        Some(Fault::Error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ObErrorCode::UnexpectedError,
            "The bank could not complete the request (fault mode: error)",
        )
        .into_response(),
        Some(Fault::Malformed) => ([(header::CONTENT_TYPE, "application/json")], MALFORMED).into_response(),
        Some(Fault::Oversized) => ([(header::CONTENT_TYPE, "application/json")], oversized()).into_response(),
        // The other faults bend single rules inside the handlers.
        Some(Fault::Leaky | Fault::Unfiltered | Fault::Open | Fault::BadPaging) => next.run(request).await,
    }
}

/// Whether the connection's client certificate is the platform's own: it carries the platform's certificate policy
/// (`pki::PLATFORM_CLIENT_POLICY`). Set on every request by `server`; a participant's certificate from the same CA,
/// whatever its subject, is not the platform's.
#[derive(Debug, Clone, Copy)]
pub struct PlatformCaller(pub bool);

/// A call the platform made for a customer under a consent: the header was present and verified.
struct Authorised(Consent);

impl FromRequestParts<Bank> for Authorised {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, bank: &Bank) -> Result<Self, ApiError> {
        let verified = Self::verified(parts, bank).await;
        match bank.fault {
            Some(Fault::Open) => {
                Ok(verified.unwrap_or_else(|_| Authorised(consent::unverified(parts.headers.get(CONSENT_HEADER)))))
            }
            Some(Fault::Leaky) => verified.map(|Authorised(mut consent)| {
                consent.scope.accounts_detail |= consent.scope.accounts_basic;
                consent.scope.transactions_detail |= consent.scope.transactions_basic;
                Authorised(consent)
            }),
            _ => verified,
        }
    }
}

impl Authorised {
    async fn verified(parts: &Parts, bank: &Bank) -> Result<Authorised, ApiError> {
        if !parts.extensions.get::<PlatformCaller>().is_some_and(|caller| caller.0) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ObErrorCode::ResourceConsentMismatch,
                "Only the platform's own client certificate (with the platform's certificate policy) may call the bank",
            ));
        }
        let Some(value) = parts.headers.get(CONSENT_HEADER) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ObErrorCode::HeaderMissing,
                "The platform's signed consent header is required",
            )
            .at(CONSENT_HEADER));
        };
        let invalid = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ObErrorCode::SignatureInvalid,
                "The signed consent header does not verify against the platform's keys, has expired, or is not \
                 addressed to this bank",
            )
            .at(CONSENT_HEADER)
        };
        let token = value.to_str().map_err(|_| invalid())?;
        match bank.verifier.verify(token).await {
            Ok(consent) => Ok(Authorised(consent)),
            Err(error) => {
                tracing::debug!(%error, "consent header refused");
                Err(invalid())
            }
        }
    }
}

fn mismatch(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ObErrorCode::ResourceConsentMismatch,
        format!("The consent's permissions do not cover {what}"),
    )
}

fn now() -> i64 {
    crate::clock::now().unix_timestamp()
}

/// RFC 3339 in UTC with `Z`.
fn ts(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at).map(crate::clock::rfc3339).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<D: Serialize> {
    data: D,
    links: Links,
    meta: Meta,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Links {
    #[serde(rename = "Self")]
    this: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last: Option<String>,
}

impl Links {
    fn only(this: String) -> Links {
        Links { this, first: None, prev: None, next: None, last: None }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    total_pages: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_available_date_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_available_date_time: Option<String>,
}

impl Meta {
    fn one_page() -> Meta {
        Meta { total_pages: 1, first_available_date_time: None, last_available_date_time: None }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Amount {
    minor_units: i64,
    currency: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccountData<'a> {
    account: Vec<AccountOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccountOut<'a> {
    account_id: &'a str,
    status: &'static str,
    status_update_date_time: String,
    currency: &'static str,
    account_type: &'static str,
    account_sub_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nickname: Option<&'a str>,
    opening_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<[Identification<'a>; 1]>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Identification<'a> {
    scheme_name: &'static str,
    identification: &'a str,
    name: &'a str,
}

fn account_out(book: &Book, index: usize, detail: bool) -> AccountOut<'_> {
    let account = &book.accounts[index];
    AccountOut {
        account_id: &account.id,
        status: "Enabled",
        status_update_date_time: ts(account.opened),
        currency: account.currency.as_str(),
        account_type: "Personal",
        account_sub_type: "CurrentAccount",
        nickname: account.nickname,
        opening_date: ts(account.opened),
        account: detail.then(|| {
            [Identification { scheme_name: "KZ.IBAN", identification: &account.iban, name: &book.holder(index).name }]
        }),
    }
}

/// `GET /accounts`: every account of the customer (none for a customer the bank does not know).
async fn accounts(State(bank): State<Bank>, Authorised(consent): Authorised) -> Result<Response, ApiError> {
    if !consent.scope.accounts() {
        return Err(mismatch("accounts"));
    }
    let detail = consent.scope.accounts_detail;
    let book = &bank.book;
    let account = book.accounts_of(&consent.claims.sub).iter().map(|&i| account_out(book, i, detail)).collect();
    let envelope = Envelope {
        data: AccountData { account },
        links: Links::only(format!("{}/accounts", bank.base_url)),
        meta: Meta::one_page(),
    };
    Ok(Json(envelope).into_response())
}

/// `GET /accounts/{AccountId}`.
async fn account(
    State(bank): State<Bank>,
    Path(id): Path<String>,
    Authorised(consent): Authorised,
) -> Result<Response, ApiError> {
    if !consent.scope.accounts() {
        return Err(mismatch("accounts"));
    }
    let index = bank.book.account_of(&consent.claims.sub, &id).ok_or_else(ApiError::not_found)?;
    let envelope = Envelope {
        data: AccountData { account: vec![account_out(&bank.book, index, consent.scope.accounts_detail)] },
        links: Links::only(format!("{}/accounts/{id}", bank.base_url)),
        meta: Meta::one_page(),
    };
    Ok(Json(envelope).into_response())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BalanceData<'a> {
    balance: Vec<BalanceOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BalanceOut<'a> {
    account_id: &'a str,
    credit_debit_indicator: &'static str,
    #[serde(rename = "Type")]
    kind: &'static str,
    date_time: String,
    amount: Amount,
}

fn indicator(credit: bool) -> &'static str {
    if credit { "Credit" } else { "Debit" }
}

/// `GET /accounts/{AccountId}/balances`: booked and available, now.
async fn balances(
    State(bank): State<Bank>,
    Path(id): Path<String>,
    Authorised(consent): Authorised,
) -> Result<Response, ApiError> {
    if !consent.scope.balances() {
        return Err(mismatch("balances"));
    }
    let index = bank.book.account_of(&consent.claims.sub, &id).ok_or_else(ApiError::not_found)?;
    let account = &bank.book.accounts[index];
    let now = now();
    let history = bank.book.history(index, now);
    let balance = |kind: &'static str, value: i64| BalanceOut {
        account_id: &account.id,
        credit_debit_indicator: indicator(value >= 0),
        kind,
        date_time: ts(now),
        amount: Amount { minor_units: value.abs(), currency: account.currency.as_str() },
    };
    let envelope = Envelope {
        data: BalanceData {
            balance: vec![
                balance("InterimBooked", history.booked(now)),
                balance("InterimAvailable", history.available(now)),
            ],
        },
        links: Links::only(format!("{}/accounts/{id}/balances", bank.base_url)),
        meta: Meta::one_page(),
    };
    Ok(Json(envelope).into_response())
}

/// The query of `GET /transactions`.
struct TxQuery {
    from: Option<i64>,
    to: Option<i64>,
    page: usize,
}

/// RFC 3339, or an ISO date-time without an offset read as UTC (OBIE clients send those). A `+` left unencoded in
/// a query arrives as a space; it is taken back.
fn parse_time(value: &str) -> Option<i64> {
    let value = value.trim().replace(' ', "+");
    if let Ok(t) = crate::clock::parse(&value) {
        return Some(t.unix_timestamp());
    }
    let local =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    time::PrimitiveDateTime::parse(&value, local).ok().map(|t| t.assume_utc().unix_timestamp())
}

impl TxQuery {
    fn parse(query: Option<&str>) -> Result<TxQuery, ApiError> {
        let mut q = TxQuery { from: None, to: None, page: 1 };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let date = |field: &str| {
                parse_time(&value).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ObErrorCode::FieldInvalidDate,
                        format!("{field} must be an RFC 3339 date-time"),
                    )
                    .at(field.to_string())
                })
            };
            match key.as_ref() {
                "fromBookingDateTime" => q.from = Some(date("fromBookingDateTime")?),
                "toBookingDateTime" => q.to = Some(date("toBookingDateTime")?),
                "page" => {
                    q.page = value.parse::<u32>().ok().filter(|p| *p >= 1).map(|p| p as usize).ok_or_else(|| {
                        ApiError::new(StatusCode::BAD_REQUEST, ObErrorCode::FieldInvalid, "page must be 1 or more")
                            .at("page")
                    })?
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The link to `page` with the same filters (times normalised to UTC).
    fn link(&self, base: &str, page: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(from) = self.from {
            query.append_pair("fromBookingDateTime", &ts(from));
        }
        if let Some(to) = self.to {
            query.append_pair("toBookingDateTime", &ts(to));
        }
        query.append_pair("page", &page.to_string());
        format!("{base}?{}", query.finish())
    }
}

/// The positions of the transactions booked within `lo..=hi` in a list sorted by time.
fn between(txns: &[Txn], lo: i64, hi: i64) -> Range<usize> {
    let start = txns.partition_point(|t| t.at < lo);
    let end = txns.partition_point(|t| t.at <= hi).max(start);
    start..end
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnOut<'a> {
    account_id: &'a str,
    transaction_id: String,
    credit_debit_indicator: &'static str,
    status: &'static str,
    booking_date_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_date_time: Option<String>,
    amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_information: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_details: Option<Merchant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    balance: Option<TxnBalance>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Merchant {
    merchant_name: &'static str,
    merchant_category_code: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnBalance {
    amount: Amount,
    credit_debit_indicator: &'static str,
    #[serde(rename = "Type")]
    kind: &'static str,
}

/// One transaction as JSON: Basic, or with the Detail fields.
fn render(t: &Txn, account_id: &str, currency: &'static str, city: &str, detail: bool) -> String {
    let out = TxnOut {
        account_id,
        transaction_id: t.id_text(),
        credit_debit_indicator: indicator(t.credit),
        status: if t.pending { "Pending" } else { "Booked" },
        booking_date_time: ts(t.at),
        value_date_time: t.value_at().map(ts),
        amount: Amount { minor_units: t.amount, currency },
        transaction_reference: detail.then(|| t.reference()),
        transaction_information: detail.then(|| t.information(city)),
        merchant_details: detail
            .then_some(t.mcc)
            .flatten()
            .map(|mcc| Merchant { merchant_name: t.label, merchant_category_code: mcc }),
        balance: (detail && !t.pending).then(|| TxnBalance {
            amount: Amount { minor_units: t.balance_after.abs(), currency },
            credit_debit_indicator: indicator(t.balance_after >= 0),
            kind: "InterimBooked",
        }),
    };
    serde_json::to_string(&out).unwrap_or_default()
}

/// `GET /accounts/{AccountId}/transactions`: newest first, 50 a page, within the consent's window and the query's
/// dates, credits and/or debits as the permissions say, Detail fields only with ReadTransactionsDetail. The page is
/// assembled from each transaction's JSON, rendered once a day (see `History::rendered`).
async fn transactions(
    State(bank): State<Bank>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    Authorised(consent): Authorised,
) -> Result<Response, ApiError> {
    let Some(scope) = consent.scope.transactions() else {
        return Err(mismatch("transactions"));
    };
    let index = bank.book.account_of(&consent.claims.sub, &id).ok_or_else(ApiError::not_found)?;
    let mut query = TxQuery::parse(query.as_deref())?;
    if bank.fault == Some(Fault::Unfiltered) {
        (query.from, query.to) = (None, None);
    }
    let account = &bank.book.accounts[index];
    let currency = account.currency.as_str();
    let city = bank.book.city(index);
    let now = now();
    let history = bank.book.history(index, now);
    let visible = history.until(now);
    let (window_from, window_to) = (consent.from.unwrap_or(i64::MIN), consent.to.unwrap_or(i64::MAX));
    let reachable = between(visible, window_from, window_to);
    let selected = between(
        visible,
        query.from.map_or(window_from, |f| f.max(window_from)),
        query.to.map_or(window_to, |t| t.min(window_to)),
    );
    let wanted = |i: &usize| if visible[*i].credit { scope.credits } else { scope.debits };
    let count = selected.clone().filter(wanted).count();
    let total_pages = count.div_ceil(PAGE_SIZE).max(1);
    let skip = (query.page - 1).saturating_mul(PAGE_SIZE);

    let base = format!("{}/accounts/{id}/transactions", bank.base_url);
    let page = query.page;
    let links = Links {
        this: query.link(&base, page),
        first: Some(query.link(&base, 1)),
        prev: (page > 1).then(|| query.link(&base, (page - 1).min(total_pages))),
        next: (page < total_pages)
            .then(|| query.link(&base, if bank.fault == Some(Fault::BadPaging) { page } else { page + 1 })),
        last: Some(query.link(&base, total_pages)),
    };
    let meta = Meta {
        total_pages,
        first_available_date_time: visible.get(reachable.clone()).and_then(<[Txn]>::first).map(|t| ts(t.at)),
        last_available_date_time: visible.get(reachable).and_then(<[Txn]>::last).map(|t| ts(t.at)),
    };
    let mut body = String::with_capacity(PAGE_SIZE * 480 + 1_024);
    body.push_str(r#"{"Data":{"Transaction":["#);
    for (n, i) in selected.rev().filter(wanted).skip(skip).take(PAGE_SIZE).enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(history.rendered(i, scope.detail, |t| render(t, &account.id, currency, city, scope.detail)));
    }
    body.push_str(r#"]},"Links":"#);
    body.push_str(&serde_json::to_string(&links).map_err(|e| ApiError::internal(&e))?);
    body.push_str(r#","Meta":"#);
    body.push_str(&serde_json::to_string(&meta).map_err(|e| ApiError::internal(&e))?);
    body.push('}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn dates_parse_with_and_without_offsets_and_bad_ones_are_refused() {
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T05:00:00+05:00"), Some(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T05:00:00 05:00"), Some(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T00:00:00"), Some(1_767_225_600));
        assert_eq!(parse_time("2026-01-01T00:00:00.250"), Some(1_767_225_600));
        assert_eq!(parse_time("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert!(TxQuery::parse(Some("fromBookingDateTime=nope")).is_err());
        assert!(TxQuery::parse(Some("page=0")).is_err());
        assert!(TxQuery::parse(Some("page=x")).is_err());
        let q = TxQuery::parse(Some("page=3&toBookingDateTime=2026-01-01T05%3A00%3A00%2B05%3A00&other=1")).unwrap();
        assert_eq!((q.page, q.to), (3, Some(1_767_225_600)));
        assert_eq!(q.link("https://b/x", 4), "https://b/x?toBookingDateTime=2026-01-01T00%3A00%3A00Z&page=4");
    }
}
