//! The personal account, driven over HTTPS as a browser drives it: cookies, CSRF tokens, forms.

use crate::common;

use crate::common::Platform;
use crate::common::browser::{Browser, bin, register_organisation};

#[tokio::test]
async fn register_enrol_totp_and_sign_in_again() {
    let platform = Platform::start().await;
    let (admin, password) =
        register_organisation(&platform, &bin("99014000012"), "Alpha Bank JSC", "alpha.admin").await;

    let mut browser = Browser::new(&platform);
    let page = browser.sign_in(&admin, &password).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with("/org"), "landed on {}", page.url);
    page.assert_contains("Alpha Bank JSC").assert_contains("Registered, not accredited");
    // Secure session cookie attributes.
    browser.sign_out().await;
    let after = browser.get("/org").await;
    assert!(after.url.ends_with("/login"), "signed-out visitor reached {}", after.url);

    // A second sign-in needs the password and a fresh code.
    let mut again = Browser::new(&platform);
    again.totp_secret = browser.totp_secret.clone();
    let page = again.sign_in(&admin, &password).await;
    assert!(page.url.ends_with("/org"), "landed on {}:\n{}", page.url, page.body);
    platform.shutdown().await;
}

#[tokio::test]
async fn session_cookie_is_host_only_secure_httponly_strict() {
    let platform = Platform::start().await;
    let browser = Browser::new(&platform);
    let response = browser.client.get(browser.url("/login")).send().await.unwrap();
    // An anonymous visitor gets the form cookie (the session cookie comes with sign-in; same attributes).
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-kopir_form="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'") && !csp.contains("script-src"),
        "{csp}"
    );
    platform.shutdown().await;
}

#[tokio::test]
async fn wrong_password_wrong_code_replayed_code_and_lockout_are_refused() {
    let platform = Platform::start().await;
    let (admin, password) = register_organisation(&platform, &bin("99014000013"), "Beta Bank JSC", "beta.admin").await;
    let mut browser = Browser::new(&platform);
    let landed = browser.sign_in(&admin, &password).await;
    assert!(landed.url.ends_with("/org"));
    browser.sign_out().await;

    // Wrong password.
    let page = browser.submit("/login", "/login", &[("username", &admin), ("password", "not the password!!")]).await;
    assert_eq!(page.status, 401);
    page.assert_contains("Wrong user name, password or code");

    // Right password, replayed code (the last one used, even if the TOTP step has moved on since).
    let page = browser.submit("/login", "/login", &[("username", &admin), ("password", &password)]).await;
    assert!(page.url.ends_with("/login/code"));
    let replay = browser.last_code.clone().expect("a code was used to sign in");
    let refused = browser.post("/login/code", &page.csrf(), &[("code", &replay)]).await;
    assert_eq!(refused.status, 401, "a replayed code was accepted");
    let wrong = browser.post("/login/code", &page.csrf(), &[("code", "000000")]).await;
    assert_eq!(wrong.status, 401);

    // Three more failures lock the account (five in a row): even the right password is then refused.
    for _ in 0..3 {
        browser.submit("/login", "/login", &[("username", &admin), ("password", "wrong password again")]).await;
    }
    let locked = browser.submit("/login", "/login", &[("username", &admin), ("password", &password)]).await;
    assert_eq!(locked.status, 401, "locked account signed in");

    // The journal has it all, and no password or code in it.
    let conn = rusqlite::Connection::open(platform.config.db_path()).unwrap();
    let lockouts: i64 = conn
        .query_row("SELECT count(*) FROM audit_log WHERE action = 'identity.account.locked'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(lockouts, 1);
    let all: String = conn
        .query_row(
            "SELECT group_concat(coalesce(detail, '') || actor || coalesce(object, '')) FROM audit_log",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!all.contains(&password) && !all.contains(&replay));
    platform.shutdown().await;
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_origin_are_refused() {
    let platform = Platform::start().await;
    let browser = Browser::new(&platform);
    let page = browser.get("/register").await;
    let missing = browser.post("/register", "", &[("bin", "000740001307")]).await;
    assert_eq!(missing.status, 403);
    missing.assert_contains("This form has expired");
    let foreign = browser
        .client
        .post(browser.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("csrf", page.csrf().as_str()), ("username", "x"), ("password", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    platform.shutdown().await;
}

#[tokio::test]
async fn registration_checks_the_bin_and_keeps_what_was_typed() {
    let platform = Platform::start().await;
    let browser = Browser::new(&platform);
    let page = browser
        .submit(
            "/register",
            "/register",
            &[
                ("bin", "123456789012"),
                ("name", "Gamma Pay LLP"),
                ("licence_number", "L-1"),
                ("contact_email", "ops@gamma.kz"),
                ("contact_phone", "+7 701 000 00 00"),
                ("admin_username", "gamma.admin"),
                ("admin_full_name", "Dana"),
                ("admin_email", "dana@gamma.kz"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    page.assert_contains("valid control digit")
        .assert_contains("at least 12 characters")
        .assert_contains("Gamma Pay LLP");
    assert!(!page.body.contains("value=\"short\""), "password echoed back");
    platform.shutdown().await;
}

#[tokio::test]
async fn first_operator_administrator_must_change_the_one_time_password_and_enrol() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.log.stderr = false;
    let report = kopir::bootstrap::init(&config, "test", kopir::clock::now()).await.unwrap();
    let admin = report.admin.unwrap();
    let running = kopir::web::start(config.clone(), None).await.unwrap();
    let platform_like = common::Platform::attach(dir, config, running);
    let mut browser = Browser::new(&platform_like);
    browser.username = admin.username.clone();
    let page = browser
        .submit("/login", "/login", &[("username", &admin.username), ("password", &admin.one_time_password)])
        .await;
    assert!(page.url.ends_with("/account/password"), "{}", page.url);
    // Nothing else is reachable before the password change and the enrolment.
    let console = browser.get("/org").await;
    assert!(console.url.ends_with("/login"));
    let page = browser.get("/account/password").await;
    let changed = browser
        .post(
            "/account/password",
            &page.csrf(),
            &[("new_password", "operator-Passw0rd-1"), ("confirm", "operator-Passw0rd-1")],
        )
        .await;
    assert!(changed.url.ends_with("/account/enrol"), "{}", changed.url);
    let done = browser.enrol(&changed).await;
    assert!(done.url.ends_with("/console"), "{}", done.url);
    platform_like.shutdown().await;
}
