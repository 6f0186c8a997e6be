//! The demo's sample API-user application, "Qaz Budget": all your accounts in one place. It is an ordinary client
//! of the platform — its own registered application and certificate, the consent API, PAR with PKCE, the token
//! endpoint and the gateway, all over HTTPS with mutual TLS — mounted at `/demo/app` on the platform's listener only
//! so that a newcomer's browser trusts one certificate instead of two.
//!
//! Who may call: anyone in demo mode (it is the demo's public web site). Its sessions live in memory.

use crate::digest::b64url;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::web::AppState;
use crate::web::pages::{Texts, cookie, render, render_status};

pub const BASE: &str = "/demo/app";
const COOKIE: &str = "__Host-demoapp";

/// The application: its credentials and banks once the demo has set them up, and its customers' sessions.
#[derive(Default)]
pub struct DemoApp {
    ready: std::sync::OnceLock<Ready>,
    sessions: Mutex<HashMap<String, AppSession>>,
}

/// What the application knows once registered and connected.
pub struct Ready {
    pub client_id: String,
    pub client: reqwest::Client,
    /// (BIN, name) of each connected bank.
    pub banks: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct AppSession {
    csrf: String,
    state: String,
    verifier: String,
    consent_id: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    notice: Option<&'static str>,
}

impl Ready {
    /// `identity_pem`: the application's certificate chain and key; `root_pem`: the platform root.
    pub fn new(
        platform_addr: std::net::SocketAddr,
        client_id: String,
        identity_pem: &str,
        root_pem: &str,
        banks: Vec<(String, String)>,
    ) -> Result<Ready, String> {
        let identity = reqwest::Identity::from_pem(identity_pem.as_bytes()).map_err(|e| e.to_string())?;
        let root = reqwest::Certificate::from_pem(root_pem.as_bytes()).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .identity(identity)
            .tls_certs_only([root])
            // The platform is on this machine whatever its public name says.
            .resolve("localhost", platform_addr)
            .https_only(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Ready { client_id, client, banks })
    }
}

impl DemoApp {
    /// The application becomes usable: its credentials and banks are known.
    pub fn set_ready(&self, ready: Ready) {
        let _ = self.ready.set(ready);
    }

    fn session(&self, id: &str) -> Option<AppSession> {
        self.sessions.lock().ok()?.get(id).cloned()
    }

    fn save(&self, id: &str, session: AppSession) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(id.to_string(), session);
        }
    }
}

pub fn router(app: Arc<DemoApp>) -> Router<AppState> {
    Router::new()
        .route(BASE, get(home))
        .route(&format!("{BASE}/connect"), post(connect))
        .route(&format!("{BASE}/callback"), get(callback))
        .route(&format!("{BASE}/accounts/{{id}}"), get(transactions))
        .route(&format!("{BASE}/disconnect"), post(disconnect))
        .layer(Extension(app))
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

fn with_cookie(mut response: Response, id: &str) -> Response {
    let cookie = axum_extra::extract::cookie::Cookie::build((COOKIE, id.to_string()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(axum_extra::extract::cookie::SameSite::Lax)
        .build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// One bank's accounts as the page shows them.
struct BankView {
    name: String,
    accounts: Vec<AccountView>,
}

struct AccountView {
    id: String,
    nickname: String,
    iban: String,
    currency: String,
    balance: String,
}

#[derive(Template)]
#[template(path = "demo_app.html")]
struct HomePage {
    t: Texts,
    csrf: String,
    banks: Vec<(String, String)>,
    connected: Vec<BankView>,
    missing: Vec<String>,
    /// The consent works, but no bank it names knows the customer: nothing to show, said plainly.
    no_accounts: bool,
    consent_id: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "demo_app_transactions.html")]
struct TransactionsPage {
    t: Texts,
    rows: Vec<(String, String, String, bool)>,
    next: Option<String>,
    prev: Option<String>,
    error: Option<String>,
}

/// Minor units as money for people: 1234567 KZT → "12 345.67 KZT".
pub fn money(amount: &Value) -> String {
    let minor = amount["MinorUnits"].as_i64().unwrap_or(0);
    let currency = amount["Currency"].as_str().unwrap_or("");
    let (sign, minor) = if minor < 0 { ("−", -minor) } else { ("", minor) };
    let whole = (minor / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('\u{a0}');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}\u{a0}{currency}", minor % 100)
}

/// Calls the platform's gateway with the session's token, refreshing it once if it has expired.
async fn gateway_get(app: &DemoApp, state: &AppState, id: &str, path: &str) -> Result<Value, (u16, String)> {
    let Some(ready) = app.ready.get() else { return Err((503, String::new())) };
    let Some(mut session) = app.session(id) else { return Err((401, String::new())) };
    for attempt in 0..2 {
        let Some(token) = session.access_token.clone() else { return Err((401, String::new())) };
        let response = ready
            .client
            .get(state.url(&format!("{}{path}", crate::gateway::BASE)))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| (502, e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 401 && attempt == 0 {
            let Some(refresh) = session.refresh_token.clone() else { return Err((401, String::new())) };
            let answer = ready
                .client
                .post(state.url(crate::oauth::metadata::TOKEN))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())])
                .send()
                .await
                .map_err(|e| (502, e.without_url().to_string()))?;
            if !answer.status().is_success() {
                return Err((403, String::new()));
            }
            let tokens: Value = answer.json().await.unwrap_or(Value::Null);
            session.access_token = tokens["access_token"].as_str().map(String::from);
            app.save(id, session.clone());
            continue;
        }
        if status >= 400 {
            let message = body["Errors"][0]["Message"].as_str().unwrap_or("").to_string();
            return Err((status, message));
        }
        return Ok(body);
    }
    Err((401, String::new()))
}

async fn home(
    State(state): State<AppState>,
    Extension(app): Extension<Arc<DemoApp>>,
    headers: HeaderMap,
    t: Texts,
) -> Response {
    // Every visitor gets a session at once: its CSRF token guards the forms.
    let (id, session) = match session_id(&headers).and_then(|id| app.session(&id).map(|s| (id, s))) {
        Some(found) => found,
        None => {
            let id = b64url(&rand::random::<[u8; 24]>());
            let session = AppSession { csrf: b64url(&rand::random::<[u8; 16]>()), ..AppSession::default() };
            app.save(&id, session.clone());
            (id, session)
        }
    };
    let id = Some(id);
    let mut page = HomePage {
        t,
        csrf: session.csrf.clone(),
        banks: app.ready.get().map(|r| r.banks.clone()).unwrap_or_default(),
        connected: Vec::new(),
        missing: Vec::new(),
        no_accounts: false,
        consent_id: session.consent_id.clone(),
        notice: session.notice,
    };
    if let (Some(id), Some(_)) = (id.as_deref(), session.access_token.as_ref()) {
        match gateway_get(&app, &state, id, "/accounts").await {
            Ok(body) => {
                let mut by_bank: Vec<BankView> = Vec::new();
                for account in body["Data"]["Account"].as_array().cloned().unwrap_or_default() {
                    let bin = account["Servicer"]["Identification"].as_str().unwrap_or("").to_string();
                    let bank = page.banks.iter().find(|(b, _)| *b == bin).map(|(_, n)| n.clone()).unwrap_or(bin);
                    let account_id = account["AccountId"].as_str().unwrap_or("").to_string();
                    let balance = match gateway_get(&app, &state, id, &format!("/accounts/{account_id}/balances")).await
                    {
                        Ok(b) => b["Data"]["Balance"][0]["Amount"].clone(),
                        Err(_) => Value::Null,
                    };
                    let view = AccountView {
                        nickname: account["Nickname"].as_str().unwrap_or("").to_string(),
                        iban: account["Account"][0]["Identification"].as_str().unwrap_or("").to_string(),
                        currency: account["Currency"].as_str().unwrap_or("").to_string(),
                        balance: if balance.is_null() { "—".into() } else { money(&balance) },
                        id: account_id,
                    };
                    match by_bank.iter_mut().find(|b| b.name == bank) {
                        Some(b) => b.accounts.push(view),
                        None => by_bank.push(BankView { name: bank, accounts: vec![view] }),
                    }
                }
                page.missing = body["Meta"]["MissingProviders"]
                    .as_array()
                    .map(|m| m.iter().filter_map(|p| p["Name"].as_str().map(String::from)).collect())
                    .unwrap_or_default();
                // Every bank answered and none holds an account of this customer: say so, not "connected".
                if by_bank.is_empty() && page.missing.is_empty() {
                    page.no_accounts = true;
                    page.notice = None;
                }
                page.connected = by_bank;
            }
            Err((status, _)) if status == 401 || status == 403 => {
                // The customer withdrew the consent (or it expired): this app's access is gone.
                let mut session = session.clone();
                session.access_token = None;
                session.refresh_token = None;
                session.consent_id = None;
                session.notice = Some("demoapp.revoked");
                app.save(id, session);
                page.consent_id = None;
                page.notice = Some("demoapp.revoked");
            }
            Err(_) => page.notice = Some("demoapp.unavailable"),
        }
    }
    let mut response = with_cookie(render(&page), id.as_deref().unwrap_or_default());
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The session of a form post, if its CSRF token and origin are right.
fn checked(state: &AppState, app: &DemoApp, headers: &HeaderMap, csrf: &str) -> Option<(String, AppSession)> {
    let host = state.public_url.trim_start_matches("https://").split('/').next().unwrap_or("");
    let id = session_id(headers)?;
    let session = app.session(&id)?;
    let token_ok =
        !session.csrf.is_empty() && crate::digest::constant_time_eq(session.csrf.as_bytes(), csrf.as_bytes());
    let origin_ok = crate::web::session::same_origin(headers, host);
    (token_ok && origin_ok).then_some((id, session))
}

/// The connect form: its CSRF token and the banks ticked (a repeated field, which serde's form decoding does not
/// gather, hence read by hand).
struct ConnectForm {
    csrf: String,
    bank: Vec<String>,
}

impl ConnectForm {
    fn parse(body: &[u8]) -> ConnectForm {
        let mut form = ConnectForm { csrf: String::new(), bank: Vec::new() };
        for (name, value) in form_urlencoded::parse(body) {
            match name.as_ref() {
                "csrf" => form.csrf = value.into_owned(),
                "bank" => form.bank.push(value.into_owned()),
                _ => {}
            }
        }
        form
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Creates a consent for the chosen banks, pushes the authorization request, and sends the customer to the platform.
async fn connect(
    State(state): State<AppState>,
    Extension(app): Extension<Arc<DemoApp>>,
    headers: HeaderMap,
    t: Texts,
    body: axum::body::Bytes,
) -> Response {
    let form = ConnectForm::parse(&body);
    let Some((id, session)) = checked(&state, &app, &headers, &form.csrf) else {
        return Redirect::to(BASE).into_response();
    };
    let Some(ready) = app.ready.get() else { return failed(t) };
    let chosen: Vec<&(String, String)> = ready.banks.iter().filter(|(bin, _)| form.bank.contains(bin)).collect();
    if chosen.is_empty() {
        return Redirect::to(BASE).into_response();
    }
    let consent = ready
        .client
        .post(state.url(crate::consent::api::BASE))
        .json(&json!({
            "Data": {
                "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail",
                                "ReadTransactionsCredits", "ReadTransactionsDebits"],
                "Purpose": t.get("demoapp.purpose"),
                // In every language of the platform: the consent screen and `/my` show the customer's.
                "PurposeTranslations": crate::i18n::Lang::ALL
                    .iter()
                    .map(|lang| (lang.code(), Texts { lang: *lang }.get("demoapp.purpose")))
                    .collect::<std::collections::BTreeMap<_, _>>(),
                "TransactionFromDateTime": crate::clock::rfc3339(crate::clock::now() - time::Duration::days(365)),
                "Providers": chosen.iter().map(|(bin, _)| json!({ "Bin": bin })).collect::<Vec<_>>(),
            },
            "Risk": {}
        }))
        .send()
        .await;
    let consent_id = match consent {
        Ok(r) if r.status() == StatusCode::CREATED => {
            r.json::<Value>().await.ok().and_then(|b| b["Data"]["ConsentId"].as_str().map(String::from))
        }
        _ => None,
    };
    let Some(consent_id) = consent_id else { return failed(t) };
    let verifier = b64url(&rand::random::<[u8; 32]>());
    let challenge = b64url(&crate::digest::sha256(verifier.as_bytes()));
    let oauth_state = b64url(&rand::random::<[u8; 16]>());
    let redirect_uri = state.url(&format!("{BASE}/callback"));
    let pushed = ready
        .client
        .post(state.url(crate::oauth::metadata::PAR))
        .form(&[
            ("client_id", ready.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", crate::oauth::metadata::SCOPE),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", oauth_state.as_str()),
            ("consent_id", consent_id.as_str()),
        ])
        .send()
        .await;
    let request_uri = match pushed {
        Ok(r) if r.status() == StatusCode::CREATED => {
            r.json::<Value>().await.ok().and_then(|b| b["request_uri"].as_str().map(String::from))
        }
        _ => None,
    };
    let Some(request_uri) = request_uri else { return failed(t) };
    app.save(
        &id,
        AppSession {
            csrf: session.csrf,
            state: oauth_state,
            verifier,
            consent_id: Some(consent_id),
            ..AppSession::default()
        },
    );
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("client_id", &ready.client_id).append_pair("request_uri", &request_uri);
    let to = format!("{}?{}", state.url(crate::oauth::metadata::AUTHORIZE), query.finish());
    with_cookie(Redirect::to(&to).into_response(), &id)
}

fn failed(t: Texts) -> Response {
    let page = HomePage {
        t,
        csrf: String::new(),
        banks: Vec::new(),
        connected: Vec::new(),
        missing: Vec::new(),
        no_accounts: false,
        consent_id: None,
        notice: Some("demoapp.unavailable"),
    };
    render_status(StatusCode::BAD_GATEWAY, &page)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// The platform sends the customer back here: check `state` and `iss`, exchange the code.
async fn callback(
    State(state): State<AppState>,
    Extension(app): Extension<Arc<DemoApp>>,
    headers: HeaderMap,
    t: Texts,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(id) = session_id(&headers) else { return Redirect::to(BASE).into_response() };
    let Some(mut session) = app.session(&id) else { return Redirect::to(BASE).into_response() };
    let state_ok = query.state.as_deref() == Some(session.state.as_str()) && !session.state.is_empty();
    let iss_ok = query.iss.as_deref() == Some(crate::oauth::metadata::issuer(&state).as_str());
    session.state.clear();
    if !state_ok || !iss_ok || query.error.is_some() {
        session.notice = Some(if query.error.is_some() { "demoapp.refused" } else { "demoapp.unavailable" });
        session.consent_id = None;
        app.save(&id, session);
        return Redirect::to(BASE).into_response();
    }
    let Some(code) = query.code else { return Redirect::to(BASE).into_response() };
    let Some(ready) = app.ready.get() else { return failed(t) };
    let redirect_uri = state.url(&format!("{BASE}/callback"));
    let answer = ready
        .client
        .post(state.url(crate::oauth::metadata::TOKEN))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", session.verifier.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", ready.client_id.as_str()),
        ])
        .send()
        .await;
    let tokens = match answer {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
        _ => return failed(t),
    };
    session.access_token = tokens["access_token"].as_str().map(String::from);
    session.refresh_token = tokens["refresh_token"].as_str().map(String::from);
    session.notice = Some("demoapp.connected");
    app.save(&id, session);
    Redirect::to(BASE).into_response()
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u32>,
}

async fn transactions(
    State(state): State<AppState>,
    Extension(app): Extension<Arc<DemoApp>>,
    headers: HeaderMap,
    t: Texts,
    Path(account): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(id) = session_id(&headers) else { return Redirect::to(BASE).into_response() };
    let page = query.page.unwrap_or(1).max(1);
    let link = |n: u32| format!("{BASE}/accounts/{account}?page={n}");
    match gateway_get(&app, &state, &id, &format!("/accounts/{account}/transactions?page={page}")).await {
        Ok(body) => {
            let rows = body["Data"]["Transaction"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|tx| {
                    let credit = tx["CreditDebitIndicator"] == "Credit";
                    (
                        tx["BookingDateTime"].as_str().unwrap_or("").get(..10).unwrap_or("").to_string(),
                        tx["TransactionInformation"]
                            .as_str()
                            .or_else(|| tx["MerchantDetails"]["MerchantName"].as_str())
                            .unwrap_or("")
                            .to_string(),
                        money(&tx["Amount"]),
                        credit,
                    )
                })
                .collect();
            let next = body["Links"]["Next"].is_string().then(|| link(page + 1));
            let prev = (page > 1).then(|| link(page - 1));
            render(&TransactionsPage { t, rows, next, prev, error: None })
        }
        Err((_, message)) => render_status(
            StatusCode::BAD_GATEWAY,
            &TransactionsPage { t, rows: Vec::new(), next: None, prev: None, error: Some(message) },
        ),
    }
}

/// The customer disconnects the app: it deletes its consent at the platform.
async fn disconnect(
    State(state): State<AppState>,
    Extension(app): Extension<Arc<DemoApp>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some((id, mut session)) = checked(&state, &app, &headers, &form.csrf) {
        if let (Some(consent_id), Some(ready)) = (session.consent_id.take(), app.ready.get()) {
            let _ = ready.client.delete(state.url(&format!("{}/{consent_id}", crate::consent::api::BASE))).send().await;
        }
        session.access_token = None;
        session.refresh_token = None;
        session.notice = Some("demoapp.disconnected");
        app.save(&id, session);
    }
    Redirect::to(BASE).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_grouped_with_two_decimals() {
        assert_eq!(money(&json!({"MinorUnits": 123456789, "Currency": "KZT"})), "1\u{a0}234\u{a0}567.89\u{a0}KZT");
        assert_eq!(money(&json!({"MinorUnits": -5, "Currency": "USD"})), "−0.05\u{a0}USD");
    }
}
