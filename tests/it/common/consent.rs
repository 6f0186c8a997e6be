//! Helpers for consent and OAuth tests: a platform with banks and an API user's application connected to them,
//! consents created over mTLS, pushed authorization requests, and the customer's journey walked like a browser.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use kopir::audit::Actor;
use kopir::catalog::check::CheckFuture;
use kopir::catalog::{
    self, Api, CheckReport, Environment, Finding, FindingOutcome, Passport, Publication, PublicationCheck,
};
use kopir::participants;
use kopir::store::StoreError;

use super::browser::{Browser, Page, bin, register_organisation};
use super::participant::{accredit, admin_of_new_organisation, app_id, client_id, download, register_app, serials};
use super::{Csr, Identity, Platform};

pub const REDIRECT_URI: &str = "https://fintech.example/callback";

/// An API user's application connected to `banks`.
pub struct Scenario {
    pub platform: Platform,
    pub user_admin: Browser,
    pub user_bin: String,
    pub client_id: String,
    pub app_id: i64,
    pub identity: Identity,
    /// (BIN, name) of each bank.
    pub banks: Vec<(String, String)>,
    /// The application's registered redirect URI.
    pub redirect_uri: String,
}

/// A valid IIN made from a seed (the first 11 digits vary until a control digit exists).
pub fn iin(seed: u32) -> String {
    (0..10)
        .find_map(|k| kopir::kz::with_control_digit(&format!("9001013{:04}", (seed * 10 + k) % 10_000)))
        .expect("an IIN")
}

/// Publishes a (placeholder) account-information API for the bank, if it has none yet, and connects the
/// `user_bin` organisation's application to it — through the catalogue's own functions (create, publish, connect),
/// on the running platform, each with its audit entry. The API has no base URL: its publication check is
/// [`Placeholder`], which passes (the tests here are about what a connection allows, not how an API passes its
/// check; tests/it/catalog.rs and the exchange fixture publish through the real conformance suite).
pub async fn connect(platform: &Platform, user_bin: &str, app_id: i64, bank_bin: &str) {
    let state = &platform.running().state;
    let (bank, user, apis) = {
        let (bank_bin, user_bin) = (bank_bin.to_string(), user_bin.to_string());
        state
            .db
            .read(move |c| {
                let bank = participants::organisation_by_bin(c, &bank_bin.parse().unwrap())?.expect("the bank");
                let user = participants::organisation_by_bin(c, &user_bin.parse().unwrap())?.expect("the API user");
                let apis = catalog::list_for_organisation(c, bank.id)?;
                Ok::<_, StoreError>((bank.id, user.id, apis))
            })
            .await
            .unwrap()
    };
    let api_id = match apis.first() {
        Some(api) => api.id,
        None => {
            let passport = Passport {
                name: "Accounts".into(),
                version: "1.0".into(),
                standard: "kopir-ais-v1".into(),
                description: String::new(),
                sandbox_base_url: String::new(),
                production_base_url: String::new(),
                sla_response_ms: 1000,
                timeout_ms: 5000,
                contact_email: String::new(),
                contact_phone: String::new(),
            };
            let api = catalog::create(&state.db, bank, passport, fixture(), state.clock.now()).await.unwrap();
            let published =
                catalog::publish(&state.db, &Placeholder(state.clock.clone()), bank, api.id, fixture(), &state.clock)
                    .await
                    .unwrap();
            assert!(matches!(published, Publication::Published(_)), "{published:?}");
            api.id
        }
    };
    catalog::connect(&state.db, user, api_id, app_id, fixture(), state.clock.now()).await.unwrap();
}

/// The publication check of [`connect`]'s placeholder API: one passed finding, nothing called.
struct Placeholder(kopir::clock::Clock);

impl PublicationCheck for Placeholder {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a> {
        let at = self.0.now_rfc3339();
        let found = Finding::new("placeholder", "A placeholder API of the tests", FindingOutcome::Passed, "");
        let report =
            CheckReport::new(environment.as_str(), environment.base_url(api), at.clone(), at, vec![found], None);
        Box::pin(std::future::ready(report))
    }

    fn text_key(&self, _: &str) -> Option<&'static str> {
        None
    }
}

/// Who the audit journal names for what [`connect`] does.
fn fixture() -> Actor {
    Actor { name: "cli:operator".into(), source: "cli".into(), user_id: None }
}

/// The administrator's user name of the bank [`bank`] registers from `seed` (its password is
/// [`super::browser::register_organisation`]'s).
pub fn bank_admin(seed: &str) -> String {
    format!("admin{}", &seed[seed.len() - 4..])
}

/// The seed of the BIN of the `i`-th bank (from 0) of a [`scenario`].
pub fn bank_seed(i: usize) -> String {
    format!("99034000{:03}", i + 1)
}

/// A registered, accredited organisation (no one signed in). Returns its BIN.
pub async fn bank(platform: &Platform, seed: &str, name: &str) -> String {
    let bin = bin(seed);
    register_organisation(platform, &bin, name, &bank_admin(seed)).await;
    accredit(platform, &bin).await;
    bin
}

/// Registers an API user's application for the signed-in administrator's organisation and downloads its
/// certificate.
pub async fn application(admin: &Browser, name: &str) -> (i64, String, Identity) {
    application_with(admin, name, REDIRECT_URI).await
}

pub async fn application_with(admin: &Browser, name: &str, redirect_uri: &str) -> (i64, String, Identity) {
    let csr = Csr::new(name);
    let page = register_app(admin, name, "api_user", redirect_uri, &csr.csr_pem).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (id, client) = (app_id(&page), client_id(&page));
    let serial = serials(&page).remove(0);
    let identity = download(admin, id, &serial, &csr.key_pem).await;
    (id, client, identity)
}

pub async fn scenario_with(platform: Platform, banks: usize) -> Scenario {
    scenario_redirecting(platform, banks, REDIRECT_URI).await
}

/// A scenario whose application is sent back to `redirect_uri` (a browser walk needs one it can open).
pub async fn scenario_redirecting(platform: Platform, banks: usize, redirect_uri: &str) -> Scenario {
    let names = ["Altyn Bank", "Dala Bank", "Kapshagai Bank"];
    let mut list = Vec::new();
    for (i, name) in names.iter().take(banks).enumerate() {
        let bin = bank(&platform, &bank_seed(i), name).await;
        list.push((bin, name.to_string()));
    }
    let user_bin = bin("99034100001");
    let user_admin = admin_of_new_organisation(&platform, &user_bin, "Fintech One", "fintechadmin").await;
    accredit(&platform, &user_bin).await;
    let (app_id, client_id, identity) = application_with(&user_admin, "Budget App", redirect_uri).await;
    for (bank_bin, _) in &list {
        connect(&platform, &user_bin, app_id, bank_bin).await;
    }
    Scenario {
        platform,
        user_admin,
        user_bin,
        client_id,
        app_id,
        identity,
        banks: list,
        redirect_uri: redirect_uri.to_string(),
    }
}

pub async fn scenario(banks: usize) -> Scenario {
    scenario_with(Platform::start().await, banks).await
}

pub fn consent_body(bins: &[&str]) -> Value {
    json!({
        "Data": {
            "Permissions": ["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsCredits",
                            "ReadTransactionsDebits"],
            "TransactionFromDateTime": "2026-01-01T00:00:00Z",
            "Purpose": "Show all your accounts in one place",
            "Providers": bins.iter().map(|b| json!({ "Bin": b })).collect::<Vec<_>>(),
        },
        "Risk": {}
    })
}

impl Scenario {
    pub fn api(&self) -> reqwest::Client {
        self.platform.client(Some(&self.identity))
    }

    pub fn bank_bins(&self) -> Vec<&str> {
        self.banks.iter().map(|(b, _)| b.as_str()).collect()
    }

    /// Creates a consent for every bank; returns its id.
    pub async fn create_consent(&self) -> String {
        self.create_consent_with(consent_body(&self.bank_bins())).await
    }

    pub async fn create_consent_with(&self, body: Value) -> String {
        let response = self
            .api()
            .post(self.platform.url("/open-banking/v1/aisp/account-access-consents"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["Data"]["Status"], "AwaitingAuthorisation");
        body["Data"]["ConsentId"].as_str().unwrap().to_string()
    }

    pub async fn consent(&self, id: &str) -> Value {
        let response = self
            .api()
            .get(self.platform.url(&format!("/open-banking/v1/aisp/account-access-consents/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["Data"].clone()
    }

    /// Pushes an authorization request (RFC 9126) with `identity`; returns the raw response.
    pub async fn push_as(
        &self,
        identity: &Identity,
        client_id: &str,
        consent_id: &str,
        challenge: &str,
        state: &str,
    ) -> reqwest::Response {
        self.platform
            .client(Some(identity))
            .post(self.platform.url("/oauth/par"))
            .form(&[
                ("client_id", client_id),
                ("response_type", "code"),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("scope", "accounts"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
                ("state", state),
                ("consent_id", consent_id),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Pushes a request and returns its `request_uri`.
    pub async fn push(&self, consent_id: &str, challenge: &str, state: &str) -> String {
        let response = self.push_as(&self.identity, &self.client_id, consent_id, challenge, state).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert!(body["expires_in"].as_u64().unwrap() < 600);
        body["request_uri"].as_str().unwrap().to_string()
    }

    /// The path of the authorization endpoint for a pushed request.
    pub fn authorize_path(&self, request_uri: &str) -> String {
        format!(
            "/oauth/authorize?client_id={}&request_uri={}",
            self.client_id,
            form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
        )
    }
}

/// The newest one-time code sent to `phone`, read from the demo outbox page.
pub async fn sms_code(platform: &Platform, phone: &str) -> String {
    let page = Browser::new(platform).get("/demo/sms").await;
    assert_eq!(page.status, 200);
    let row = page.body.split("<tr>").find(|row| row.contains(phone)).unwrap_or_else(|| panic!("no SMS to {phone}"));
    let digits: Vec<&str> = row.split(|c: char| !c.is_ascii_digit()).filter(|d| d.len() == 6).collect();
    digits.first().unwrap_or_else(|| panic!("no code in {row}")).to_string()
}

/// Walks identification: IIN and phone, the simulated face check passed, the SMS code. Returns the page after the
/// code (the consent screen or `/my`).
pub async fn identify(platform: &Platform, customer: &Browser, start: &str, iin: &str, phone: &str) -> Page {
    let page = customer.get(start).await;
    assert!(page.url.ends_with("/verify"), "landed on {} ({}): {}", page.url, page.status, page.body);
    let page = customer.post("/verify", &page.csrf(), &[("iin", iin), ("phone", phone)]).await;
    assert!(page.url.ends_with("/verify/biometric"), "{}: {}", page.url, page.body);
    let page = customer.post("/verify/biometric", &page.csrf(), &[("session", "pass")]).await;
    assert!(page.url.ends_with("/verify/code"), "{}: {}", page.url, page.body);
    let sent_to: String = phone.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
    let code = sms_code(platform, &sent_to).await;
    customer.post("/verify/code", &page.csrf(), &[("code", &code)]).await
}

/// The query parameters of the URL a response redirects to.
pub fn redirect_params(page: &Page) -> Vec<(String, String)> {
    assert_eq!(page.status, 303, "expected a redirect out of the platform from {}: {}", page.url, page.body);
    let location = page.headers["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let query = location.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The whole customer journey for a pushed request, answered with `decision`; returns the redirect's parameters.
pub async fn authorise(
    scenario: &Scenario,
    request_uri: &str,
    iin: &str,
    phone: &str,
    decision: &str,
) -> Vec<(String, String)> {
    authorise_choosing(scenario, request_uri, iin, phone, &[("decision", decision)]).await
}

/// [`authorise`] with the consent screen's form as `fields` (the decision and the customer's choices: `choices`,
/// the banks and permissions left ticked, `until`).
pub async fn authorise_choosing(
    scenario: &Scenario,
    request_uri: &str,
    iin: &str,
    phone: &str,
    fields: &[(&str, &str)],
) -> Vec<(String, String)> {
    let customer = Browser::customer(&scenario.platform);
    let page = identify(&scenario.platform, &customer, &scenario.authorize_path(request_uri), iin, phone).await;
    assert!(page.url.ends_with("/oauth/authorize/consent"), "{}: {}", page.url, page.body);
    let answered = customer.post("/oauth/authorize/consent", &page.csrf(), fields).await;
    redirect_params(&answered)
}
