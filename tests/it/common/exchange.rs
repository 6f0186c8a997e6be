//! A world for data-exchange tests: the platform, reference banks whose APIs are published through the provider's
//! pages (the publication check calls the bank), an API user's application connected to them through the
//! marketplace, and helpers to get a customer's consent and tokens and call the gateway like an API user does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kopir::refbank::{BankConfig, Fault, RunningBank};
use serde_json::{Value, json};

use super::Platform;
use super::browser::{Browser, Page, bin};
use super::consent::{Scenario, application, authorise_choosing, param};
use super::participant::{accredit, admin_of_new_organisation, csrf_of};

/// A bank: its running instances (sandbox and production may differ), BIN, name and published API.
pub struct BankSite {
    pub name: String,
    pub bin: String,
    pub api_id: i64,
    pub sandbox: RunningBank,
    pub production: Option<RunningBank>,
    pub admin: Browser,
}

pub struct World {
    pub s: Scenario,
    pub banks: Vec<BankSite>,
    pub dir: tempfile::TempDir,
}

/// What to make of one bank.
pub struct BankPlan {
    pub name: &'static str,
    pub digits: &'static str,
    /// A fault of the production instance (the sandbox one always conforms, so publication passes).
    pub production_fault: Option<Fault>,
}

impl BankPlan {
    pub const fn new(name: &'static str, digits: &'static str) -> BankPlan {
        BankPlan { name, digits, production_fault: None }
    }
}

fn passport(sandbox: &str, production: &str, timeout_ms: u64) -> Vec<(String, String)> {
    [
        ("name", "Current accounts"),
        ("version", "1.0"),
        ("standard", "kopir-ais-v1"),
        ("description", "Accounts, balances and transactions of personal current accounts"),
        ("sandbox_base_url", sandbox),
        ("production_base_url", production),
        ("sla_response_ms", "500"),
        ("timeout_ms", &timeout_ms.to_string()),
        ("contact_email", "api@bank.test"),
        ("contact_phone", "+7 727 250 00 00"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The platform with the banks' CAs trusted, banks started, APIs published and connected, the application ready.
pub async fn world(plans: &[BankPlan]) -> World {
    world_with(plans, |_| {}).await
}

pub async fn world_with(plans: &[BankPlan], tweak: impl FnOnce(&mut kopir::config::Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    // The banks' certificate authorities exist before the platform starts, so that it can trust them.
    let mut cas = String::new();
    for (i, plan) in plans.iter().enumerate() {
        for instance in ["sandbox", "production"] {
            let pki = kopir::refbank::pki::load_or_create(&dir.path().join(format!("bank{i}-{instance}")), plan.name)
                .unwrap();
            cas.push_str(&pki.ca_pem);
        }
    }
    let ca_file = dir.path().join("bank-cas.pem");
    std::fs::write(&ca_file, cas).unwrap();
    let platform = Platform::start_with(
        |c| {
            c.gateway.provider_ca_file = ca_file.clone();
            c.gateway.meter_flush_ms = 50;
            tweak(c);
        },
        None,
    )
    .await;
    let platform_url = platform.url("");
    let mut sites = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let bank_bin = bin(plan.digits);
        let start = |instance: &str, fault: Option<Fault>| {
            let mut config = BankConfig::new(
                plan.name,
                bank_bin.clone(),
                dir.path().join(format!("bank{i}-{instance}")),
                platform_url.clone(),
                platform.root_pem(),
            );
            config.seed = i as u64 + 1;
            config.fault = fault;
            config.fault_delay = Duration::from_secs(4);
            kopir::refbank::start(config)
        };
        let sandbox = start("sandbox", None).await.unwrap();
        let production = match plan.production_fault {
            Some(fault) => Some(start("production", Some(fault)).await.unwrap()),
            None => None,
        };
        let production_url =
            production.as_ref().map(|p| p.base_url.clone()).unwrap_or_else(|| sandbox.base_url.clone());
        let admin = admin_of_new_organisation(&platform, &bank_bin, plan.name, &format!("bankadmin{i}")).await;
        accredit(&platform, &bank_bin).await;
        // 1.5 s for a bank to answer; the bank that answers 17 MiB gets 3 s (still under the slow bank's 4 s), so
        // that on a busy machine it is named for its size, not for the time reading 16 MiB took.
        let timeout_ms = if plan.production_fault == Some(kopir::refbank::Fault::Oversized) { 3000 } else { 1500 };
        let fields = passport(&sandbox.base_url, &production_url, timeout_ms);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = admin.submit("/org/apis", "/org/apis", &fields).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let api_id: i64 = page.url.rsplit("/org/apis/").next().unwrap().parse().unwrap();
        let published = admin.submit(&format!("/org/apis/{api_id}"), &format!("/org/apis/{api_id}/publish"), &[]).await;
        assert_eq!(published.status, 200, "{}", published.body);
        let status: String = super::participant::db(&platform)
            .query_row("SELECT status FROM apis WHERE id = ?1", [api_id], |r| r.get(0))
            .unwrap();
        assert_eq!(status, "published", "the publication check failed:\n{}", published.body);
        sites.push(BankSite { name: plan.name.to_string(), bin: bank_bin, api_id, sandbox, production, admin });
    }
    let user_bin = bin("99034100001");
    let user_admin = admin_of_new_organisation(&platform, &user_bin, "Fintech One", "fintechadmin").await;
    accredit(&platform, &user_bin).await;
    let (app_id, client_id, identity) = application(&user_admin, "Budget App").await;
    for site in &sites {
        let page = connect(&user_admin, site.api_id, app_id).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let banks = sites.iter().map(|b| (b.bin.clone(), b.name.clone())).collect();
    let s = Scenario {
        platform,
        user_admin,
        user_bin,
        client_id,
        app_id,
        identity,
        banks,
        redirect_uri: super::consent::REDIRECT_URI.to_string(),
    };
    World { s, banks: sites, dir }
}

/// Connects `application` to `api` through the marketplace page.
pub async fn connect(browser: &Browser, api: i64, application: i64) -> Page {
    let path = format!("/marketplace/{api}");
    let page = browser.get(&path).await;
    browser.post(&format!("{path}/connect"), &csrf_of(&page), &[("application", &application.to_string())]).await
}

pub async fn disconnect(browser: &Browser, api: i64, application: i64) -> Page {
    let path = format!("/marketplace/{api}");
    let page = browser.get(&path).await;
    browser.post(&format!("{path}/disconnect"), &csrf_of(&page), &[("application", &application.to_string())]).await
}

/// The first sandbox customer: every reference bank holds them.
pub fn customer() -> &'static str {
    kopir::standard::SANDBOX_CUSTOMERS[0].iin
}

/// Tokens for a consent with `body`, allowed by the customer `iin`. Returns (consent id, access token, refresh).
pub async fn tokens_for(s: &Scenario, body: Value, iin: &str, phone: &str) -> (String, String, String) {
    tokens_choosing(s, body, iin, phone, &[("decision", "allow")]).await
}

/// [`tokens_for`] with the consent screen answered by `fields` (see [`super::consent::authorise_choosing`]).
pub async fn tokens_choosing(
    s: &Scenario,
    body: Value,
    iin: &str,
    phone: &str,
    fields: &[(&str, &str)],
) -> (String, String, String) {
    let consent_id = s.create_consent_with(body).await;
    let verifier = "gateway-test-verifier-gateway-test-verifier-0123";
    let challenge = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
    };
    let request_uri = s.push(&consent_id, &challenge, "st").await;
    let params = authorise_choosing(s, &request_uri, iin, phone, fields).await;
    let response = s
        .api()
        .post(s.platform.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", param(&params, "code").unwrap()),
            ("code_verifier", verifier),
            ("redirect_uri", s.redirect_uri.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    (
        consent_id,
        tokens["access_token"].as_str().unwrap().to_string(),
        tokens["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// A consent body for `bins` with the given permissions and transaction window.
pub fn consent(bins: &[&str], permissions: &[&str], from: Option<&str>, to: Option<&str>) -> Value {
    let mut data = json!({
        "Permissions": permissions,
        "Purpose": "Show all your accounts in one place",
        "Providers": bins.iter().map(|b| json!({ "Bin": b })).collect::<Vec<_>>(),
    });
    if let Some(from) = from {
        data["TransactionFromDateTime"] = from.into();
    }
    if let Some(to) = to {
        data["TransactionToDateTime"] = to.into();
    }
    json!({ "Data": data, "Risk": {} })
}

pub const FULL: &[&str] = &[
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
];

/// A gateway call as the API user makes it: mTLS with `identity` and the bearer token.
pub async fn get(s: &Scenario, identity: &super::Identity, token: &str, path: &str) -> reqwest::Response {
    let url = if path.starts_with("https://") {
        path.to_string()
    } else {
        s.platform.url(&format!("/open-banking/v1/aisp{path}"))
    };
    s.platform
        .client(Some(identity))
        .get(url)
        .bearer_auth(token)
        .header("x-fapi-interaction-id", "itest-0001")
        .send()
        .await
        .unwrap()
}

pub async fn get_json(s: &Scenario, token: &str, path: &str) -> Value {
    let response = get(s, &s.identity, token, path).await;
    let status = response.status();
    assert_eq!(response.headers()["x-fapi-interaction-id"], "itest-0001");
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}
