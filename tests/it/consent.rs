//! The consent resource over mTLS (validation, who sees what), the customer's journey when it goes wrong (wrong
//! codes, failed or unavailable face checks, refusal, cancel), and the customer's `/my` pages.

use crate::common;

use crate::common::Platform;
use crate::common::browser::Browser;
use crate::common::consent::{self, Scenario, authorise, consent_body, identify, param, scenario, scenario_with};
use crate::common::participant::{count, set_status};
use serde_json::{Value, json};

const CONSENTS: &str = "/open-banking/v1/aisp/account-access-consents";

async fn post_consent(s: &Scenario, identity: &common::Identity, body: Value) -> reqwest::Response {
    s.platform.client(Some(identity)).post(s.platform.url(CONSENTS)).json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_requests_are_validated_and_seen_only_by_those_concerned() {
    let s = scenario(2).await;
    let bins = s.bank_bins();
    let refusals: Vec<(Value, &str, &str)> = vec![
        (json!(["ReadAccountsBasic", "ReadTransactionsDetail"]), "UK.OBIE.Field.Invalid", "Data.Permissions"),
        (json!(["ReadBalances"]), "UK.OBIE.Field.Invalid", "Data.Permissions"),
        (json!(["ReadAccountsBasic", "ReadPAN"]), "UK.OBIE.Field.Invalid", "Data.Permissions"),
        (json!([]), "UK.OBIE.Field.Invalid", "Data.Permissions"),
    ];
    for (permissions, code, path) in refusals {
        let mut body = consent_body(&bins);
        body["Data"]["Permissions"] = permissions.clone();
        let error = common::expect_ob_error(post_consent(&s, &s.identity, body).await, 400, code).await;
        assert_eq!(error["Errors"][0]["Path"], path, "{permissions}");
    }
    let mut past = consent_body(&bins);
    past["Data"]["ExpirationDateTime"] = "2020-01-01T00:00:00Z".into();
    let error =
        common::expect_ob_error(post_consent(&s, &s.identity, past).await, 400, "UK.OBIE.Field.InvalidDate").await;
    assert_eq!(error["Errors"][0]["Path"], "Data.ExpirationDateTime");
    let mut garbled = consent_body(&bins);
    garbled["Data"]["TransactionFromDateTime"] = "yesterday".into();
    common::expect_ob_error(post_consent(&s, &s.identity, garbled).await, 400, "UK.OBIE.Field.InvalidDate").await;
    let mut no_purpose = consent_body(&bins);
    no_purpose["Data"]["Purpose"] = " ".into();
    common::expect_ob_error(post_consent(&s, &s.identity, no_purpose).await, 400, "UK.OBIE.Field.Missing").await;
    let mut missing = consent_body(&bins);
    missing["Data"].as_object_mut().unwrap().remove("Permissions");
    common::expect_ob_error(post_consent(&s, &s.identity, missing).await, 400, "UK.OBIE.Field.Missing").await;

    // Banks: unknown, not accredited, suspended, and one the application is not connected to.
    let unknown = common::browser::bin("99034999991");
    let error = common::expect_ob_error(
        post_consent(&s, &s.identity, consent_body(&[&unknown])).await,
        400,
        "UK.OBIE.Field.Invalid",
    )
    .await;
    assert_eq!(error["Errors"][0]["Path"], "Data.Providers.Bin");
    let newcomer = common::browser::bin("99034000777");
    common::browser::register_organisation(&s.platform, &newcomer, "Newcomer Bank", "newcomeradmin").await;
    common::expect_ob_error(
        post_consent(&s, &s.identity, consent_body(&[&newcomer])).await,
        400,
        "UK.OBIE.Field.Invalid",
    )
    .await;
    let unconnected = consent::bank(&s.platform, "99034000555", "Unconnected Bank").await;
    let error = common::expect_ob_error(
        post_consent(&s, &s.identity, consent_body(&[&unconnected])).await,
        400,
        "UK.OBIE.Field.Invalid",
    )
    .await;
    assert!(error["Errors"][0]["Message"].as_str().unwrap().contains("not connected"), "{error}");
    set_status(&s.platform, bins[1], "suspended").await;
    common::expect_ob_error(post_consent(&s, &s.identity, consent_body(&bins)).await, 400, "UK.OBIE.Field.Invalid")
        .await;
    set_status(&s.platform, bins[1], "accredited").await;
    assert_eq!(count(&s.platform, "SELECT count(*) FROM consents"), 0, "nothing half-written");

    let consent_id = s.create_consent().await;
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Providers"].as_array().unwrap().len(), 2);
    assert_eq!(data["Permissions"].as_array().unwrap().len(), 5);
    assert!(data["ExpirationDateTime"].as_str().unwrap() > "2027", "defaults to the longest validity");

    // Another API user's application: not found; cannot delete; sees only its own in the list.
    let other_bin = common::browser::bin("99034100002");
    let other_admin =
        common::participant::admin_of_new_organisation(&s.platform, &other_bin, "Fintech Two", "fintech2admin").await;
    common::participant::accredit(&s.platform, &other_bin).await;
    let (_, _, other) = consent::application(&other_admin, "Spy App").await;
    let client = s.platform.client(Some(&other));
    let url = s.platform.url(&format!("{CONSENTS}/{consent_id}"));
    common::expect_ob_error(client.get(&url).send().await.unwrap(), 404, "UK.OBIE.Resource.NotFound").await;
    common::expect_ob_error(client.delete(&url).send().await.unwrap(), 404, "UK.OBIE.Resource.NotFound").await;
    let listed: Value = client.get(s.platform.url(CONSENTS)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["Data"]["Consent"].as_array().unwrap().len(), 0);
    let listed: Value = s.api().get(s.platform.url(CONSENTS)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["Data"]["Consent"][0]["ConsentId"], consent_id.as_str());

    // A certificate of no application, and no certificate: refused.
    let stray = s.platform.issue_identity("stray");
    common::expect_ob_error(
        post_consent(&s, &stray, consent_body(&bins)).await,
        403,
        "UK.OBIE.Resource.ConsentMismatch",
    )
    .await;
    let anonymous =
        s.platform.client(None).post(s.platform.url(CONSENTS)).json(&consent_body(&bins)).send().await.unwrap();
    common::expect_ob_error(anonymous, 401, "UK.OBIE.Header.Missing").await;

    // A bank's provider-system application sees the consents naming its bank, and may not create any.
    let bank_admin = {
        let mut browser = Browser::new(&s.platform);
        let password = common::browser::participant_user(
            &s.platform,
            bins[0],
            "altyndev",
            kopir::identity::Role::ParticipantAdmin,
        )
        .await;
        browser.sign_in("altyndev", &password).await;
        browser
    };
    let csr = common::Csr::new("altyn-gateway");
    let page =
        common::participant::register_app(&bank_admin, "Altyn gateway", "provider_system", "", &csr.csr_pem).await;
    let (app, serial) = (common::participant::app_id(&page), common::participant::serials(&page).remove(0));
    let bank_identity = common::participant::download(&bank_admin, app, &serial, &csr.key_pem).await;
    let bank_client = s.platform.client(Some(&bank_identity));
    let listed: Value = bank_client.get(s.platform.url(CONSENTS)).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["Data"]["Consent"][0]["ConsentId"], consent_id.as_str());
    assert_eq!(bank_client.get(&url).send().await.unwrap().status(), 200);
    common::expect_ob_error(bank_client.delete(&url).send().await.unwrap(), 404, "UK.OBIE.Resource.NotFound").await;
    common::expect_ob_error(
        post_consent(&s, &bank_identity, consent_body(&bins)).await,
        403,
        "UK.OBIE.Resource.ConsentMismatch",
    )
    .await;

    // The portal lists them for both sides; the customer's IIN appears nowhere.
    let page = s.user_admin.get("/org/consents").await;
    page.assert_contains(&consent_id).assert_contains("Altyn Bank");
    bank_admin.get("/org/consents").await.assert_contains(&consent_id);

    // Withdrawn before the customer answered: Rejected.
    assert_eq!(s.api().delete(&url).send().await.unwrap().status(), 204);
    assert_eq!(s.consent(&consent_id).await["Status"], "Rejected");
    s.platform.shutdown().await;
}

/// Starts a journey for a new consent and passes identification up to the face check.
async fn at_biometric(s: &Scenario, seed: u32) -> (Browser, common::browser::Page, String) {
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "st").await;
    let customer = Browser::customer(&s.platform);
    let page = customer.get(&s.authorize_path(&request_uri)).await;
    page.assert_contains("Budget App").assert_contains("Altyn Bank");
    let bad = customer.post("/verify", &page.csrf(), &[("iin", "123456789012"), ("phone", "+77010000000")]).await;
    assert_eq!(bad.status, 422);
    bad.assert_contains("not a valid IIN");
    let bad =
        customer.post("/verify", &page.csrf(), &[("iin", &consent::iin(seed)), ("phone", "+44 20 7946 0000")]).await;
    assert_eq!(bad.status, 422);
    let page = customer
        .post("/verify", &page.csrf(), &[("iin", &consent::iin(seed)), ("phone", &format!("+7701222{seed:04}"))])
        .await;
    assert!(page.url.ends_with("/verify/biometric"));
    (customer, page, consent_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_failed_face_checks_and_refusals_authorise_nothing() {
    let s = scenario(1).await;

    // Five wrong codes: the journey ends, the way back says access_denied, the consent still awaits.
    let (customer, page, consent_id) = at_biometric(&s, 51).await;
    let page = customer.post("/verify/biometric", &page.csrf(), &[("session", "pass")]).await;
    let right = consent::sms_code(&s.platform, "+77012220051").await;
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let mut last = page;
    for left in (1..5).rev() {
        last = customer.post("/verify/code", &last.csrf(), &[("code", wrong)]).await;
        assert_eq!(last.status, 422);
        last.assert_contains(&format!("Attempts left: {left}"));
    }
    let ended = customer.post("/verify/code", &last.csrf(), &[("code", wrong)]).await;
    assert_eq!(ended.status, 403);
    ended.assert_contains("too many times");
    let back = common::browser::extract_attr(&ended.body, "class=\"button\" href=\"").unwrap();
    assert!(
        back.starts_with(consent::REDIRECT_URI) && back.contains("error=access_denied") && back.contains("state=st"),
        "{back}"
    );
    let after = customer.post("/verify/code", &last.csrf(), &[("code", &right)]).await;
    assert_ne!(after.status, 303, "the right code after five wrong ones");
    assert_eq!(s.consent(&consent_id).await["Status"], "AwaitingAuthorisation");
    assert_eq!(count(&s.platform, "SELECT count(*) FROM authorization_requests WHERE code_hash IS NOT NULL"), 0);

    // Face checks: a failed liveness, a mismatch, a third failure ends it.
    let (customer, page, consent_id) = at_biometric(&s, 52).await;
    let page = customer.post("/verify/biometric", &page.csrf(), &[("session", "fail-liveness")]).await;
    assert_eq!(page.status, 422);
    page.assert_contains("live person");
    let page = customer.post("/verify/biometric", &page.csrf(), &[("session", "fail-match")]).await;
    page.assert_contains("did not match");
    let ended = customer.post("/verify/biometric", &page.csrf(), &[("session", "fail-match")]).await;
    assert_eq!(ended.status, 403);
    ended.assert_contains("three times").assert_contains("error=access_denied");
    assert_eq!(s.consent(&consent_id).await["Status"], "AwaitingAuthorisation");
    assert_eq!(count(&s.platform, "SELECT count(*) FROM sms_outbox WHERE phone = '+77012220052'"), 0, "no code sent");

    // The customer denies: Rejected, access_denied with state and iss.
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "deny-state").await;
    let params = authorise(&s, &request_uri, &consent::iin(53), "+77012220053", "deny").await;
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("deny-state"));
    assert_eq!(param(&params, "iss"), Some(s.platform.url("").as_str()));
    assert!(param(&params, "code").is_none());
    assert_eq!(s.consent(&consent_id).await["Status"], "Rejected");
    let history = count(
        &s.platform,
        &format!("SELECT count(*) FROM consent_history WHERE consent_id = '{consent_id}' AND actor LIKE 'customer:%'"),
    );
    assert_eq!(history, 1, "the refusal is the customer's, in the history");

    // Cancel before identification: Rejected too, and back to the application.
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "c").await;
    let customer = Browser::customer(&s.platform);
    let page = customer.get(&s.authorize_path(&request_uri)).await;
    let cancelled = customer.post("/verify/cancel", &page.csrf(), &[]).await;
    assert_eq!(param(&consent::redirect_params(&cancelled), "error"), Some("access_denied"));
    assert_eq!(s.consent(&consent_id).await["Status"], "Rejected");

    // A forged form (no CSRF token) is refused.
    let (customer, _, _) = at_biometric(&s, 54).await;
    let forged = customer.post("/verify/biometric", "forged", &[("session", "pass")]).await;
    assert_eq!(forged.status, 403);
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_face_check_service_tells_the_customer_and_authorises_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("vendor.sh");
    std::fs::write(&program, "#!/bin/sh\ncat > /dev/null\necho '{\"ok\": false, \"error\": \"vendor down\"}'\n")
        .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&program).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = program.display().to_string();
    let platform = Platform::start_with(
        move |c| {
            c.trust.biometric_adapter = kopir::config::BiometricAdapter::Command;
            c.trust.biometric_command = path;
        },
        None,
    )
    .await;
    let s = scenario_with(platform, 1).await;
    let (customer, page, consent_id) = at_biometric(&s, 61).await;
    page.assert_contains("Capture reference");
    let page = customer.post("/verify/biometric", &page.csrf(), &[("session", "vendor-ref-1")]).await;
    assert_eq!(page.status, 422);
    page.assert_contains("did not answer");
    assert!(page.url.ends_with("/verify/biometric"), "the customer may try again");
    assert_eq!(s.consent(&consent_id).await["Status"], "AwaitingAuthorisation");
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_see_their_consents_and_revoke_one_bank_or_all() {
    let s = scenario(2).await;
    let iin = consent::iin(71);
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    authorise(&s, &request_uri, &iin, "+77013330071", "allow").await;
    // Another customer's consent, not to be seen.
    let other = s.create_consent().await;
    let request_uri = s.push(&other, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    authorise(&s, &request_uri, &consent::iin(72), "+77013330072", "allow").await;

    let customer = Browser::customer(&s.platform);
    customer.get("/my").await.assert_contains("Confirm it is me");
    let page = identify(&s.platform, &customer, "/my/start", &iin, "+77013330071").await;
    assert!(page.url.ends_with("/my"), "{}", page.url);
    page.assert_contains("Budget App").assert_contains("Altyn Bank").assert_contains("Dala Bank");
    assert!(page.body.contains(&format!("/my/consents/{consent_id}")));
    assert!(!page.body.contains(&format!("/my/consents/{other}")), "another customer's consent is listed");
    assert_eq!(customer.get(&format!("/my/consents/{other}")).await.status, 404);

    let page = customer.get(&format!("/my/consents/{consent_id}")).await;
    page.assert_contains("Show all your accounts in one place").assert_contains("Withdraw for this bank");
    let dala: i64 = common::participant::db(&s.platform)
        .query_row("SELECT id FROM organisations WHERE name = 'Dala Bank'", [], |r| r.get(0))
        .unwrap();
    let page = customer.post(&format!("/my/consents/{consent_id}/banks/{dala}/revoke"), &page.csrf(), &[]).await;
    assert_eq!(page.status, 200);
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Status"], "Authorised", "the other bank goes on");
    let providers = data["Providers"].as_array().unwrap();
    assert!(providers.iter().any(|p| p["Name"] == "Dala Bank" && p["Status"] == "Revoked"));
    assert!(providers.iter().any(|p| p["Name"] == "Altyn Bank" && p["Status"] == "Active"));
    assert_eq!(
        count(&s.platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'consent.revoked'"),
        2,
        "API user and Dala Bank"
    );

    let page = customer.post(&format!("/my/consents/{consent_id}/revoke"), &page.csrf(), &[]).await;
    assert_eq!(page.status, 200);
    page.assert_contains("Withdrawn");
    assert_eq!(s.consent(&consent_id).await["Status"], "Revoked");
    assert_eq!(s.consent(&other).await["Status"], "Authorised");
    let again = customer.post(&format!("/my/consents/{consent_id}/revoke"), &page.csrf(), &[]).await;
    assert_eq!(again.status, 409, "nothing left to withdraw");
    assert_eq!(customer.post(&format!("/my/consents/{other}/revoke"), &page.csrf(), &[]).await.status, 404);

    // Signed out: the pages are closed again.
    let home = customer.get("/my").await;
    customer.post("/my/signout", &home.csrf(), &[]).await;
    customer.get("/my").await.assert_contains("Confirm it is me");
    let page = customer.get(&format!("/my/consents/{consent_id}")).await;
    assert!(page.url.ends_with("/my"), "{}", page.url);
    page.assert_contains("Confirm it is me");
    assert!(!page.body.contains("Show all your accounts"));
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_sms_service_tells_the_customer_and_authorises_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("sms.sh");
    std::fs::write(&program, "#!/bin/sh\ncat > /dev/null\nsleep 5\n").unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = program.display().to_string();
    let platform = Platform::start_with(
        move |c| {
            c.trust.sms_adapter = kopir::config::SmsAdapter::Command;
            c.trust.sms_command = path;
            c.trust.adapter_timeout_secs = 1;
        },
        None,
    )
    .await;
    let s = scenario_with(platform, 1).await;
    let (customer, page, consent_id) = at_biometric(&s, 62).await;
    let page = customer.post("/verify/biometric", &page.csrf(), &[("session", "pass")]).await;
    assert_eq!(page.status, 422, "{}", page.body);
    page.assert_contains("could not send the SMS code");
    assert!(page.url.ends_with("/verify/biometric"));
    assert_eq!(s.consent(&consent_id).await["Status"], "AwaitingAuthorisation");
    // The demo outbox page exists only with the outbox adapter.
    assert_eq!(Browser::new(&s.platform).get("/demo/sms").await.status, 404);
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_and_portal_pages_refuse_visitors_without_the_right_journey_or_session() {
    let s = scenario(1).await;
    let stranger = Browser::customer(&s.platform);
    for path in ["/verify", "/verify/biometric", "/verify/code", "/oauth/authorize/consent"] {
        let page = stranger.get(path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
    }
    let home = stranger.get("/my").await;
    let forged = stranger.post("/verify/code", "forged", &[("code", "123456")]).await;
    assert_eq!(forged.status, 403);
    let revoke = stranger.post("/my/consents/aac-x/revoke", "forged", &[]).await;
    assert_eq!(revoke.status, 403);
    home.assert_contains("Confirm it is me");
    assert!(stranger.get("/my/consents/aac-x").await.url.ends_with("/my"));
    // The portal list needs a signed-in participant member.
    let anonymous = Browser::new(&s.platform).get("/org/consents").await;
    assert!(anonymous.url.ends_with("/login"), "{}", anonymous.url);
    // A customer verified for /my cannot use that journey to answer an authorization request.
    let customer = Browser::customer(&s.platform);
    let page = identify(&s.platform, &customer, "/my/start", &consent::iin(63), "+77013330063").await;
    assert!(page.url.ends_with("/my"));
    let consent_page = customer.get("/oauth/authorize/consent").await;
    assert!(consent_page.url.ends_with("/my"), "{}", consent_page.url);
    s.platform.shutdown().await;
}
