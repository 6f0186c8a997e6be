//! Applications, staff and profile of the personal account, driven like a browser; the applications' certificates
//! used over real mutual TLS like a participant's system uses them.

use crate::common;

use crate::common::browser::{Browser, bin};
use crate::common::participant::PNG;
use crate::common::participant::{
    accredit, accredit_as, activate, admin_of_new_organisation, app_id, client_id, count, csrf_of, db, download,
    invite, register_app, serials, set_status,
};
use crate::common::{Csr, Platform, expect_ob_error};

const CALLBACK: &str = "https://app.example.kz/callback";

async fn whoami(platform: &Platform, identity: &common::Identity) -> reqwest::Response {
    platform.client(Some(identity)).get(platform.url("/pki/client-certificate")).send().await.unwrap()
}

/// An accredited organisation's administrator with one registered application; returns the browser, the BIN, the
/// application page and its certificate's identity.
async fn with_application(
    platform: &Platform,
    digits: &str,
) -> (Browser, String, common::browser::Page, common::Identity) {
    let bin = bin(digits);
    let admin = admin_of_new_organisation(platform, &bin, "Delta Pay LLP", &format!("admin{digits}")).await;
    accredit(platform, &bin).await;
    let csr = Csr::new("delta-app");
    let page = register_app(&admin, "Delta wallet", "api_user", CALLBACK, &csr.csr_pem).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let serial = serials(&page).remove(0);
    let identity = download(&admin, app_id(&page), &serial, &csr.key_pem).await;
    (admin, bin, page, identity)
}

#[tokio::test]
async fn registered_application_certificate_is_accepted_over_mtls_with_its_client_id() {
    let platform = Platform::start().await;
    let (admin, _, page, identity) = with_application(&platform, "99014000101").await;
    let client = client_id(&page);
    assert!(client.starts_with("kc_") && client.len() == 25, "{client}");
    page.assert_contains(CALLBACK).assert_contains("Delta wallet");

    let response = whoami(&platform, &identity).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["Data"]["ClientId"], client.as_str());
    assert_eq!(body["Data"]["SerialNumber"], identity.serial());
    // The CSR asked for O=Test Bank JSC; the platform writes the organisation's registered name instead.
    let subject = body["Data"]["Subject"].as_str().unwrap();
    assert!(subject.contains("CN=delta-app") && subject.contains("O=Delta Pay LLP"), "{subject}");

    // Stored as a JSON array, and the certificate row belongs to the application.
    let conn = db(&platform);
    let (uris, owner): (String, i64) = conn
        .query_row(
            "SELECT a.redirect_uris, c.application_id FROM applications a JOIN certificates c ON c.application_id = a.id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(uris, format!("[\"{CALLBACK}\"]"));
    assert_eq!(owner, app_id(&page));

    // A redirect URI over plain http is refused, and nothing is stored.
    let csr = Csr::new("second-app");
    let refused = register_app(&admin, "Insecure", "api_user", "http://app.example.kz/cb", &csr.csr_pem).await;
    assert_eq!(refused.status, 422);
    refused.assert_contains("absolute https://");
    let refused = register_app(&admin, "Fragment", "api_user", "https://app.example.kz/cb#x", &csr.csr_pem).await;
    assert_eq!(refused.status, 422);
    assert_eq!(count(&platform, "SELECT count(*) FROM applications"), 1);
    assert_eq!(count(&platform, "SELECT count(*) FROM certificates WHERE kind = 'client'"), 1);

    // A broken CSR is refused with the reason, and nothing is stored either.
    let broken =
        register_app(&admin, "Broken", "api_user", CALLBACK, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n").await;
    assert_eq!(broken.status, 422);
    broken.assert_contains("certificate signing request was refused");
    assert_eq!(count(&platform, "SELECT count(*) FROM applications"), 1);

    // The journal holds the registration, never the CSR, and its chain verifies.
    let journal: String = conn
        .query_row("SELECT group_concat(coalesce(detail, '') || coalesce(object, '')) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'apps.application.registered'"), 1);
    assert!(!journal.contains("CERTIFICATE REQUEST") && !journal.contains(&csr.csr_pem[40..80]));
    let output = platform.kopir().args(["audit", "verify"]).output().unwrap();
    common::assert_success(&output);
    platform.shutdown().await;
}

#[tokio::test]
async fn only_an_accredited_organisation_with_the_right_role_may_register() {
    let platform = Platform::start().await;
    let bin = bin("99014000102");
    let admin = admin_of_new_organisation(&platform, &bin, "Epsilon LLP", "eps.admin").await;
    let csr = Csr::new("eps-app");

    let list = admin.get("/org/apps").await;
    list.assert_contains("Only an accredited organisation");
    let refused = register_app(&admin, "Eps", "api_user", CALLBACK, &csr.csr_pem).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("Only an accredited organisation");

    // Accredited as a provider only: no API-user applications.
    accredit_as(&platform, &bin, true, false).await;
    let refused = register_app(&admin, "Eps", "api_user", CALLBACK, &csr.csr_pem).await;
    assert_eq!(refused.status, 403);
    refused.assert_contains("not accredited as an API user");
    assert_eq!(count(&platform, "SELECT count(*) FROM applications"), 0);
    assert_eq!(count(&platform, "SELECT count(*) FROM certificates WHERE kind = 'client'"), 0);
    let denied = count(
        &platform,
        "SELECT count(*) FROM audit_log WHERE action = 'apps.application.register' AND outcome = 'denied'",
    );
    assert_eq!(denied, 2);

    // A provider system is fine (no redirect URIs needed).
    let page = register_app(&admin, "Eps gateway", "provider_system", "", &csr.csr_pem).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("API provider system");
    platform.shutdown().await;
}

#[tokio::test]
async fn analysts_cannot_create_applications_and_developers_cannot_manage_staff() {
    let platform = Platform::start().await;
    let bin = bin("99014000103");
    let admin = admin_of_new_organisation(&platform, &bin, "Zeta Bank JSC", "zeta.admin").await;
    accredit(&platform, &bin).await;
    let otp = invite(&admin, "zeta.analyst", "participant_analyst").await;
    let (analyst, _) = activate(&platform, "zeta.analyst", &otp).await;
    let otp = invite(&admin, "zeta.dev", "participant_developer").await;
    let (developer, _) = activate(&platform, "zeta.dev", &otp).await;

    // The analyst sees the list, without the form, and a post is refused.
    let list = analyst.get("/org/apps").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("action=\"/org/apps\""), "analyst got the registration form");
    let csr = Csr::new("zeta-app");
    let refused = analyst
        .post(
            "/org/apps",
            &csrf_of(&list),
            &[("name", "x"), ("kind", "api_user"), ("redirect_uris", CALLBACK), ("csr", &csr.csr_pem)],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(count(&platform, "SELECT count(*) FROM applications"), 0);

    // The developer registers; neither may manage staff.
    let page = register_app(&developer, "Zeta app", "api_user", CALLBACK, &csr.csr_pem).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for who in [&developer, &analyst] {
        assert_eq!(who.get("/org/staff").await.status, 403);
        let forged =
            who.post("/org/staff", &csrf_of(&list), &[("username", "intruder"), ("role", "participant_admin")]).await;
        assert_eq!(forged.status, 403);
    }
    // The analyst may not change the profile either, but sees it.
    assert_eq!(analyst.get("/org/profile").await.status, 200);
    assert_eq!(analyst.post("/org/profile", &csrf_of(&list), &[("website", "https://x.kz")]).await.status, 403);
    platform.shutdown().await;
}

#[tokio::test]
async fn another_organisations_application_is_not_found() {
    let platform = Platform::start().await;
    let (_, _, page, _) = with_application(&platform, "99014000104").await;
    let id = app_id(&page);
    let serial = serials(&page).remove(0);
    let other = admin_of_new_organisation(&platform, &bin("99014000105"), "Eta Bank JSC", "eta.admin").await;
    assert_eq!(other.get(&format!("/org/apps/{id}")).await.status, 404);
    assert_eq!(other.get(&format!("/org/apps/{id}/certificates/{serial}.pem")).await.status, 404);
    let mine = other.get("/org/apps").await;
    assert!(!mine.body.contains("Delta wallet"));
    let revoke = other
        .post(&format!("/org/apps/{id}/certificates/{serial}/revoke"), &csrf_of(&mine), &[("reason", "key-compromise")])
        .await;
    assert_eq!(revoke.status, 404);
    let disable = other.post(&format!("/org/apps/{id}/disable"), &csrf_of(&mine), &[]).await;
    assert_eq!(disable.status, 404);
    assert_eq!(count(&platform, "SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL"), 0);
    assert_eq!(count(&platform, "SELECT count(*) FROM applications WHERE status = 'active'"), 1);
    platform.shutdown().await;
}

#[tokio::test]
async fn rotation_keeps_both_certificates_until_retire_at_then_refuses_the_old_one() {
    let platform = Platform::start().await;
    let (admin, _, page, old) = with_application(&platform, "99014000106").await;
    let id = app_id(&page);
    let csr = Csr::new("delta-app-2");
    let rotated = admin.post(&format!("/org/apps/{id}/certificates"), &csrf_of(&page), &[("csr", &csr.csr_pem)]).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let listed = serials(&rotated);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], old.serial(), "newest first");
    rotated.assert_contains("Retiring");
    let new = download(&admin, id, &listed[0], &csr.key_pem).await;

    // Both work during the grace period (72 hours by default).
    assert_eq!(whoami(&platform, &old).await.status(), 200);
    assert_eq!(whoami(&platform, &new).await.status(), 200);
    let retire_at: String = db(&platform)
        .query_row("SELECT retire_at FROM certificates WHERE serial = ?1", [old.serial()], |r| r.get(0))
        .unwrap();
    let hours = (kopir::clock::parse(&retire_at).unwrap() - kopir::clock::now()).whole_hours();
    assert!((71..=72).contains(&hours), "retire_at {retire_at}");

    // Once retire_at has passed (set into the past instead of waiting), the old one is refused, the new one is not.
    db(&platform)
        .execute("UPDATE certificates SET retire_at = '2020-01-01T00:00:00Z' WHERE serial = ?1", [old.serial()])
        .unwrap();
    let body = expect_ob_error(whoami(&platform, &old).await, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("rotation"), "{body}");
    assert_eq!(whoami(&platform, &new).await.status(), 200);
    let rotations = count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'apps.certificate.rotated'");
    assert_eq!(rotations, 1);
    platform.shutdown().await;
}

#[tokio::test]
async fn revoked_certificate_is_refused_on_the_next_request() {
    let platform = Platform::start().await;
    let (admin, _, page, identity) = with_application(&platform, "99014000107").await;
    let client = platform.client(Some(&identity));
    assert_eq!(client.get(platform.url("/pki/client-certificate")).send().await.unwrap().status(), 200);
    let serial = identity.serial();
    let done = admin
        .post(
            &format!("/org/apps/{}/certificates/{serial}/revoke", app_id(&page)),
            &csrf_of(&page),
            &[("reason", "key-compromise")],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    done.assert_contains("Revoked");
    // Same client, same connection: refused on the very next request.
    let response = client.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(response, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("revoked"), "{body}");
    let crl = platform.client(None).get(platform.url("/pki/crl.pem")).send().await.unwrap().text().await.unwrap();
    assert!(crl.contains("BEGIN X509 CRL"));
    // An unknown reason is refused.
    let again = admin
        .post(
            &format!("/org/apps/{}/certificates/{serial}/revoke", app_id(&page)),
            &csrf_of(&page),
            &[("reason", "bored")],
        )
        .await;
    assert_eq!(again.status, 422);
    platform.shutdown().await;
}

#[tokio::test]
async fn disabling_the_application_refuses_its_certificate() {
    let platform = Platform::start().await;
    let (admin, _, page, identity) = with_application(&platform, "99014000108").await;
    let id = app_id(&page);
    let done = admin.post(&format!("/org/apps/{id}/disable"), &csrf_of(&page), &[]).await;
    assert_eq!(done.status, 200);
    done.assert_contains("Disabled");
    let body = expect_ob_error(whoami(&platform, &identity).await, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("disabled"), "{body}");
    // Enabled again, it works again.
    let done = admin.post(&format!("/org/apps/{id}/enable"), &csrf_of(&done), &[]).await;
    assert_eq!(done.status, 200);
    assert_eq!(whoami(&platform, &identity).await.status(), 200);
    platform.shutdown().await;
}

#[tokio::test]
async fn suspending_the_organisation_refuses_its_certificates_on_the_next_request() {
    let platform = Platform::start().await;
    let (_, bin, _, identity) = with_application(&platform, "99014000109").await;
    let client = platform.client(Some(&identity));
    assert_eq!(client.get(platform.url("/pki/client-certificate")).send().await.unwrap().status(), 200);
    // Stands in for the operator's suspension (built in parallel).
    set_status(&platform, &bin, "suspended").await;
    let response = client.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(response, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("suspended"), "{body}");
    set_status(&platform, &bin, "revoked").await;
    expect_ob_error(whoami(&platform, &identity).await, 401, "UK.OBIE.Signature.Invalid").await;
    // Certificates issued with `kopir ca issue` belong to no application and are still accepted.
    let plain = platform.issue_identity("plain-gateway");
    let response = whoami(&platform, &plain).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["Data"].get("ClientId").is_none());
    platform.shutdown().await;
}

#[tokio::test]
async fn invited_member_changes_the_one_time_password_and_enrols_and_can_be_disabled() {
    let platform = Platform::start().await;
    let bin_theta = bin("99014000110");
    let admin = admin_of_new_organisation(&platform, &bin_theta, "Theta Bank JSC", "theta.admin").await;
    let otp = invite(&admin, "theta.dev", "participant_developer").await;
    assert_eq!(otp.len(), 20);
    let (developer, password) = activate(&platform, "theta.dev", &otp).await;
    // The one-time password no longer works; it was never journalled.
    let mut other = Browser::new(&platform);
    let refused = other.submit("/login", "/login", &[("username", "theta.dev"), ("password", &otp)]).await;
    assert_eq!(refused.status, 401);
    let journal: String = db(&platform)
        .query_row(
            "SELECT group_concat(coalesce(detail, '') || actor || coalesce(object, '')) FROM audit_log",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!journal.contains(&otp));

    // The staff list shows the member with their role and second factor.
    let staff = admin.get("/org/staff").await;
    staff.assert_contains("theta.dev").assert_contains("Developer").assert_contains("Set up");
    let member_id: i64 =
        db(&platform).query_row("SELECT id FROM users WHERE username = 'theta.dev'", [], |r| r.get(0)).unwrap();
    let admin_id: i64 =
        db(&platform).query_row("SELECT id FROM users WHERE username = 'theta.admin'", [], |r| r.get(0)).unwrap();

    // Role change.
    let changed =
        admin.post(&format!("/org/staff/{member_id}/role"), &staff.csrf(), &[("role", "participant_analyst")]).await;
    assert_eq!(changed.status, 200);
    assert_eq!(developer.get("/org/apps").await.status, 200);
    let role: String =
        db(&platform).query_row("SELECT role FROM users WHERE id = ?1", [member_id], |r| r.get(0)).unwrap();
    assert_eq!(role, "participant_analyst");

    // The last administrator can neither disable themself nor give up the role.
    let own = admin.post(&format!("/org/staff/{admin_id}/disable"), &staff.csrf(), &[]).await;
    assert_eq!(own.status, 409);
    own.assert_contains("cannot disable your own account");
    let demote =
        admin.post(&format!("/org/staff/{admin_id}/role"), &staff.csrf(), &[("role", "participant_developer")]).await;
    assert_eq!(demote.status, 409);
    demote.assert_contains("at least one active administrator");

    // Disabling ends the member's sessions at once and stops sign-in.
    let disabled = admin.post(&format!("/org/staff/{member_id}/disable"), &staff.csrf(), &[]).await;
    assert_eq!(disabled.status, 200);
    disabled.assert_contains("Disabled");
    let after = developer.get("/org").await;
    assert!(after.url.ends_with("/login"), "disabled member still reached {}", after.url);
    other.totp_secret = developer.totp_secret.clone();
    let refused = other.submit("/login", "/login", &[("username", "theta.dev"), ("password", &password)]).await;
    assert_eq!(refused.status, 401);
    for action in ["participants.staff.invited", "participants.staff.role_changed", "participants.staff.disabled"] {
        let n = count(&platform, &format!("SELECT count(*) FROM audit_log WHERE action = '{action}'"));
        assert_eq!(n, 1, "{action}");
    }
    // Another organisation's member is not found.
    let stranger = admin_of_new_organisation(&platform, &bin("99014000111"), "Iota LLP", "iota.admin").await;
    let page = stranger.get("/org/staff").await;
    assert_eq!(stranger.post(&format!("/org/staff/{member_id}/enable"), &page.csrf(), &[]).await.status, 404);
    platform.shutdown().await;
}

async fn upload(browser: &Browser, csrf: &str, bytes: Vec<u8>, name: &str, mime: &str) -> (u16, String) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()).mime_str(mime).unwrap();
    let form = reqwest::multipart::Form::new().text("csrf", csrf.to_string()).part("logo", part);
    let response = browser.client.post(browser.url("/org/profile/logo")).multipart(form).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn profile_and_logo_accept_png_and_refuse_large_or_foreign_files() {
    let platform = Platform::start().await;
    let bin = bin("99014000112");
    let admin = admin_of_new_organisation(&platform, &bin, "Kappa Bank JSC", "kappa.admin").await;
    let page = admin.get("/org/profile").await;
    let csrf = page.csrf();
    let org_id: i64 =
        db(&platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [&bin], |r| r.get(0)).unwrap();
    let logo_of = || -> Option<Vec<u8>> {
        db(&platform).query_row("SELECT logo FROM organisations WHERE id = ?1", [org_id], |r| r.get(0)).unwrap()
    };

    // Wrong types and an oversized file are refused, and nothing is stored.
    let (status, body) = upload(&admin, &csrf, b"GIF89a\x01\x00\x01\x00".to_vec(), "logo.gif", "image/gif").await;
    assert_eq!(status, 415);
    assert!(body.contains("must be a PNG or JPEG"), "{body}");
    let (status, _) =
        upload(&admin, &csrf, b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(), "x.png", "image/png").await;
    assert_eq!(status, 415);
    let mut big = PNG.to_vec();
    big.resize(257 * 1024, 0);
    let (status, body) = upload(&admin, &csrf, big, "big.png", "image/png").await;
    assert_eq!(status, 413);
    assert!(body.contains("too large"), "{body}");
    let mut huge = PNG.to_vec();
    huge.resize(600 * 1024, 0);
    let (status, body) = upload(&admin, &csrf, huge, "huge.png", "image/png").await;
    assert_eq!(status, 413);
    assert!(body.contains("too large"), "{body}");
    assert_eq!(logo_of(), None);
    let public =
        platform.client(None).get(platform.url(&format!("/organisations/{org_id}/logo"))).send().await.unwrap();
    assert_eq!(public.status(), 404);

    // A PNG is stored and served publicly with its type and safe headers.
    let (status, body) = upload(&admin, &csrf, PNG.to_vec(), "logo.png", "image/png").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("/organisations/{org_id}/logo")));
    let response =
        platform.client(None).get(platform.url(&format!("/organisations/{org_id}/logo"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(headers["cache-control"].to_str().unwrap().contains("max-age"));
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert_eq!(response.bytes().await.unwrap().as_ref(), PNG);
    let cached = platform
        .client(None)
        .get(platform.url(&format!("/organisations/{org_id}/logo")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // Without a CSRF token an upload is refused.
    let (status, _) = upload(&admin, "wrong", PNG.to_vec(), "logo.png", "image/png").await;
    assert_eq!(status, 403);

    // The profile: websites only over https.
    let refused = admin
        .post(
            "/org/profile",
            &csrf,
            &[
                ("description", "A bank"),
                ("website", "http://kappa.kz"),
                ("contact_email", "ops@kappa.kz"),
                ("contact_phone", "+7 727 250 00 00"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    refused.assert_contains("https://");
    let saved = admin
        .post(
            "/org/profile",
            &csrf,
            &[
                ("description", "A bank in Almaty"),
                ("website", "https://kappa.kz"),
                ("contact_email", "ops@kappa.kz"),
                ("contact_phone", "+7 727 250 00 00"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200);
    saved.assert_contains("Saved.").assert_contains("A bank in Almaty").assert_contains("https://kappa.kz");
    assert_eq!(count(&platform, "SELECT count(*) FROM audit_log WHERE action LIKE 'participants.profile.%'"), 2);
    platform.shutdown().await;
}
