//! Sandbox mode for API users: an organisation not yet accredited registers a sandbox application, gets its
//! certificate, connects to a published reference-bank API, obtains a test customer's consent through PAR, the
//! journey and the token endpoint, and reads accounts through the gateway — from the API's sandbox URL, never its
//! production one. The platform runs in production mode with real (here: failing) SMS and biometric adapters, to
//! show that a sandbox journey never touches them, and that a production application cannot reach test customers.

use std::time::Duration;

use crate::common::browser::{Browser, Page, bin};
use crate::common::consent::{REDIRECT_URI, iin, param, redirect_params};
use crate::common::exchange::{BankPlan, FULL, connect, consent, customer, world_with};
use crate::common::participant::{
    accredit, admin_of_new_organisation, app_id, client_id, db, download, serials, set_status,
};
use crate::common::{self, Csr, Identity, Platform};
use kopir::refbank::Fault;
use serde_json::Value;

const VERIFIER: &str = "sandbox-test-verifier-sandbox-test-verifier-0123";

fn challenge() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()))
}

/// Registers an application through the page with the given mode (`""` leaves the field out).
async fn register(admin: &Browser, name: &str, kind: &str, mode: &str, csr: &Csr) -> Page {
    let mut fields =
        vec![("name", name), ("kind", kind), ("redirect_uris", REDIRECT_URI), ("csr", csr.csr_pem.as_str())];
    if !mode.is_empty() {
        fields.push(("mode", mode));
    }
    admin.submit("/org/apps", "/org/apps", &fields).await
}

/// An API user's application as a program uses it: its certificate and client id.
struct App<'a> {
    platform: &'a Platform,
    identity: Identity,
    client_id: String,
}

impl App<'_> {
    fn api(&self) -> reqwest::Client {
        self.platform.client(Some(&self.identity))
    }

    async fn create_consent(&self, body: Value) -> reqwest::Response {
        self.api()
            .post(self.platform.url("/open-banking/v1/aisp/account-access-consents"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A consent for `bins` pushed for authorisation: (consent id, authorize path).
    async fn ask(&self, bins: &[&str]) -> (String, String) {
        let response = self.create_consent(consent(bins, FULL, None, None)).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let consent_id = body["Data"]["ConsentId"].as_str().unwrap().to_string();
        let response = self
            .api()
            .post(self.platform.url("/oauth/par"))
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "accounts"),
                ("code_challenge", challenge().as_str()),
                ("code_challenge_method", "S256"),
                ("state", "sbx"),
                ("consent_id", consent_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let request_uri = body["request_uri"].as_str().unwrap();
        let path = format!(
            "/oauth/authorize?client_id={}&request_uri={}",
            self.client_id,
            form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
        );
        (consent_id, path)
    }

    async fn token(&self, code: &str) -> Value {
        let response = self
            .api()
            .post(self.platform.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", VERIFIER),
                ("redirect_uri", REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.api()
            .get(self.platform.url(&format!("/open-banking/v1/aisp{path}")))
            .bearer_auth(token)
            .header("x-fapi-interaction-id", "sandbox-0001")
            .send()
            .await
            .unwrap()
    }
}

/// The code shown on a sandbox journey's page.
fn shown_code(page: &Page) -> String {
    let marker = "id=\"sandbox-code\">";
    let start = page.body.find(marker).unwrap_or_else(|| panic!("no sandbox code on {}: {}", page.url, page.body));
    page.body[start + marker.len()..start + marker.len() + 6].to_string()
}

fn count(platform: &Platform, sql: &str, param: i64) -> i64 {
    db(platform).query_row(sql, [param], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaccredited_organisation_builds_against_the_reference_banks_sandbox_and_never_reaches_production() {
    // The production instance of the bank answers every call with 500: only the sandbox one serves.
    let plans = [BankPlan { name: "Altyn Bank", digits: "99034000001", production_fault: Some(Fault::Error) }];
    let world = world_with(&plans, |c| {
        c.mode = kopir::config::Mode::Production;
        // The reference banks listen on loopback, which production refuses unless the operator allows it.
        c.gateway.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        c.trust.sms_adapter = kopir::config::SmsAdapter::Command;
        c.trust.sms_command = "/nonexistent/sms-gateway".into();
        c.trust.biometric_adapter = kopir::config::BiometricAdapter::Command;
        c.trust.biometric_command = "/nonexistent/face-check".into();
    })
    .await;
    let platform = &world.s.platform;
    let bank = &world.banks[0];
    assert_ne!(bank.sandbox.base_url, bank.production.as_ref().unwrap().base_url);

    // A newly registered organisation, not accredited: production is refused, the sandbox is open.
    let dev_bin = bin("99034200001");
    let dev = admin_of_new_organisation(platform, &dev_bin, "Sandbox Dev LLP", "sbxadmin").await;
    let status: String =
        db(platform).query_row("SELECT status FROM organisations WHERE bin = ?1", [&dev_bin], |r| r.get(0)).unwrap();
    assert_eq!(status, "registered");
    let csr = Csr::new("sandbox-app");
    let refused = register(&dev, "Budget prototype", "api_user", "production", &csr).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("Only an accredited organisation");
    let page = register(&dev, "Budget prototype", "api_user", "sandbox", &csr).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("mode-sandbox");
    let (sandbox_app, sandbox_client) = (app_id(&page), client_id(&page));
    let identity = download(&dev, sandbox_app, &serials(&page).remove(0), &csr.key_pem).await;
    let list = dev.get("/org/apps").await;
    list.assert_contains("mode-sandbox");

    // Connected through the marketplace like any application; the provider sees it as a sandbox connection.
    let connected = connect(&dev, bank.api_id, sandbox_app).await;
    assert_eq!(connected.status, 200, "{}", connected.body);
    let provider_view = bank.admin.get(&format!("/org/apis/{}", bank.api_id)).await;
    provider_view.assert_contains("Budget prototype");
    provider_view.assert_contains("Sandbox connection");

    let app = App { platform, identity, client_id: sandbox_client };
    let (consent_id, authorize) = app.ask(&[bank.bin.as_str()]).await;

    // The journey: labelled sandbox, test customers listed, a real person's IIN refused.
    let person = Browser::customer(platform);
    let page = person.get(&authorize).await;
    assert!(page.url.ends_with("/verify"), "{}: {}", page.url, page.body);
    page.assert_contains("sandbox-journey");
    page.assert_contains(customer());
    let real = iin(7);
    assert!(!kopir::apps::is_test_customer(&real));
    let refused = person.post("/verify", &page.csrf(), &[("iin", &real), ("phone", "+77015550199")]).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_contains("only the standard");
    // A test customer: the face check is the simulated one and the code is shown, though the platform's adapters
    // are real ones that cannot work here.
    let page = person.post("/verify", &refused.csrf(), &[("iin", customer()), ("phone", "+77015550101")]).await;
    assert!(page.url.ends_with("/verify/biometric"), "{}: {}", page.url, page.body);
    page.assert_contains("value=\"pass\"");
    let page = person.post("/verify/biometric", &page.csrf(), &[("session", "pass")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let code = shown_code(&page);
    let page = person.post("/verify/code", &page.csrf(), &[("code", &code)]).await;
    assert!(page.url.ends_with("/oauth/authorize/consent"), "{}: {}", page.url, page.body);
    let answered = person.post("/oauth/authorize/consent", &page.csrf(), &[("decision", "allow")]).await;
    let params = redirect_params(&answered);
    let tokens = app.token(param(&params, "code").unwrap()).await;
    let token = tokens["access_token"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert_eq!(claims["kopir_env"], "sandbox", "{claims}");
    let introspected: Value = app
        .api()
        .post(platform.url("/oauth/introspect"))
        .form(&[("token", token), ("client_id", app.client_id.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["kopir_env"], "sandbox", "{introspected}");

    // Accounts through the gateway: served by the sandbox (production answers 500 to everything).
    let response = app.get(token, "/accounts").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body["Data"]["Account"].as_array().unwrap().is_empty(), "{body}");
    assert!(body["Meta"].get("MissingProviders").is_none(), "{body}");
    let consent: Value = app
        .api()
        .get(platform.url(&format!("/open-banking/v1/aisp/account-access-consents/{consent_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(consent["Data"]["Environment"], "Sandbox");
    assert_eq!(consent["Data"]["Status"], "Authorised");

    // The organisation's portal lists the consent, marked. The test customer's own pages do not exist on a production
    // platform: a simulated face check there would open them to anyone (test customers are reached through sandbox
    // applications only).
    let portal = dev.get("/org/consents").await;
    portal.assert_contains(&consent_id);
    portal.assert_contains("mode-sandbox");
    let own = Browser::customer(platform);
    let page = own.get("/my/start").await;
    assert!(page.url.ends_with("/verify"), "{}: {}", page.url, page.body);
    let page = own.post("/verify", &page.csrf(), &[("iin", customer()), ("phone", "+77015550101")]).await;
    assert_eq!(page.status, 422, "{}: {}", page.url, page.body);
    assert!(!page.body.contains("value=\"pass\""), "a test customer was offered the simulated face check for /my");
    page.assert_contains("Test customers exist only in the sandbox");

    // Every exchange of the sandbox application is recorded as the sandbox's (metering is written in batches).
    let sql = "SELECT count(*) FROM exchanges WHERE application_id = ?1";
    common::eventually("the sandbox application's exchanges metered", Duration::from_secs(10), async || {
        let metered = count(platform, sql, sandbox_app);
        if metered >= 1 { Ok(()) } else { Err(metered) }
    })
    .await;
    let sql = "SELECT count(*) FROM exchanges WHERE application_id = ?1 AND environment <> 'sandbox'";
    assert_eq!(count(platform, sql, sandbox_app), 0);

    // Should the consent's customer ever be a real person, the gateway refuses with the standard's error.
    db(platform).execute("UPDATE customers SET iin = ?1 WHERE iin = ?2", [real.as_str(), customer()]).unwrap();
    let response = app.get(token, "/accounts").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["Errors"][0]["ErrorCode"], "UK.OBIE.Resource.ConsentMismatch", "{body}");
    db(platform).execute("UPDATE customers SET iin = ?1 WHERE iin = ?2", [customer(), real.as_str()]).unwrap();

    // The accredited organisation's production application cannot take a test customer on a production platform;
    // with a real person it goes to the real (here failing) face check — never the simulated one.
    let production = App { platform, identity: world.s.identity.clone(), client_id: world.s.client_id.clone() };
    let (_, authorize) = production.ask(&[bank.bin.as_str()]).await;
    let person = Browser::customer(platform);
    let page = person.get(&authorize).await;
    assert!(!page.body.contains("sandbox-journey"), "{}", page.body);
    let refused = person.post("/verify", &page.csrf(), &[("iin", customer()), ("phone", "+77015550101")]).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_contains("exist only in the sandbox");
    let page = person.post("/verify", &refused.csrf(), &[("iin", &real), ("phone", "+77015550199")]).await;
    assert!(page.url.ends_with("/verify/biometric"), "{}: {}", page.url, page.body);
    assert!(!page.body.contains("value=\"pass\""), "a production journey offered the simulated face check");
    let unavailable = person.post("/verify/biometric", &page.csrf(), &[("session", "pass")]).await;
    assert_eq!(unavailable.status, 422);
    unavailable.assert_contains("did not answer");
    drop(app);
    drop(production);
    world.s.platform.shutdown().await;
}

#[tokio::test]
async fn sandbox_registration_needs_good_standing_not_accreditation() {
    let platform = Platform::start().await;
    let dev_bin = bin("99034200002");
    let dev = admin_of_new_organisation(&platform, &dev_bin, "Early Fintech LLP", "early.admin").await;
    let list = dev.get("/org/apps").await;
    list.assert_contains("name=\"mode\" value=\"sandbox\"");
    list.assert_contains("Only an accredited organisation");
    let csr = Csr::new("early");

    // Without a mode the application is a production one, which needs the accreditation.
    let refused = register(&dev, "Early", "api_user", "", &csr).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = register(&dev, "Early", "api_user", "staging", &csr).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    // A provider's system is never a sandbox application.
    let refused = register(&dev, "Early", "provider_system", "sandbox", &csr).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("Only API user applications");
    assert_eq!(count(&platform, "SELECT count(*) FROM applications WHERE ?1 = ?1", 0), 0);

    let page = register(&dev, "Early", "api_user", "sandbox", &csr).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mode: String =
        db(&platform).query_row("SELECT mode FROM applications WHERE id = ?1", [app_id(&page)], |r| r.get(0)).unwrap();
    assert_eq!(mode, "sandbox");
    let registered = "SELECT count(*) FROM audit_log WHERE action = 'apps.application.registered'
                      AND json_extract(detail, '$.mode') = 'sandbox' AND ?1 = ?1";
    assert_eq!(count(&platform, registered, 0), 1);
    let console = db(&platform)
        .query_row("SELECT count(*) FROM applications WHERE mode = 'production'", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(console, 0);

    // A suspended organisation builds nothing, not even in the sandbox. Only an accredited organisation can be
    // suspended, so the operator accredits it first; suspension ends its members' sessions, so its pages send it to
    // sign in, a form it still holds is refused, and the rule refuses a blocked organisation in any case.
    accredit(&platform, &dev_bin).await;
    let form = dev.get("/org/apps").await;
    set_status(&platform, &dev_bin, "suspended").await;
    assert!(dev.get("/org/apps").await.url.ends_with("/login"));
    let csr = Csr::new("early-2");
    let fields = [
        ("name", "Early 2"),
        ("kind", "api_user"),
        ("mode", "sandbox"),
        ("redirect_uris", REDIRECT_URI),
        ("csr", csr.csr_pem.as_str()),
    ];
    let refused = dev.post("/org/apps", &form.csrf(), &fields).await;
    assert!(
        refused.url.ends_with("/login"),
        "the held form was not sent to sign in: {} {}",
        refused.status,
        refused.url
    );
    let blocked = kopir::participants::Organisation {
        status: kopir::participants::OrgStatus::Suspended,
        ..kopir::participants::organisation_by_bin(&db(&platform), &dev_bin.parse().unwrap()).unwrap().unwrap()
    };
    let (kind, mode) = (kopir::apps::AppKind::ApiUser, kopir::apps::AppMode::Sandbox);
    assert_eq!(kopir::apps::registration_refusal(&blocked, kind, mode), Some("apps.error.blocked"));
    assert_eq!(count(&platform, "SELECT count(*) FROM applications WHERE ?1 = ?1", 0), 1);
    platform.shutdown().await;
}
