//! Rate limits before expensive work, the second factor before a password change, no database write for an
//! anonymous page view, and no trace of a mistyped user name — driven over HTTPS as a browser and a bank would.

use crate::common;

use std::net::IpAddr;
use std::sync::Arc;

use crate::common::Platform;
use crate::common::browser::{Browser, operator_user, register_organisation};
use crate::common::participant::count;
use kopir::identity::Role;

/// A browser-like client (cookies, same-origin `Origin`) whose connections come from `local`, another loopback
/// address than the other clients of a test.
fn client_from(platform: &Platform, local: &str) -> reqwest::Client {
    let origin = format!("https://localhost:{}", platform.addr.port());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("origin", origin.parse().unwrap());
    reqwest::Client::builder()
        .use_preconfigured_tls(common::tls_config(&platform.root_pem(), None, None))
        .resolve("localhost", platform.addr)
        .local_address(local.parse::<IpAddr>().unwrap())
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response.headers().get("retry-after").expect("Retry-After on a 429");
    let seconds: u64 = value.to_str().unwrap().parse().expect("Retry-After in whole seconds");
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn a_burst_of_sign_ins_from_one_address_meets_429_before_any_password_hash() {
    let platform = Platform::start_with(
        |c| {
            c.limits.sign_in_burst = 3;
            c.limits.sign_in_per_minute = 1;
        },
        None,
    )
    .await;
    let password = operator_user(&platform, "ops.burst", Role::OperatorStaff).await;
    let browser = Browser::new(&platform);
    let csrf = browser.get("/login").await.csrf();
    for _ in 0..3 {
        let refused =
            browser.post("/login", &csrf, &[("username", "ops.burst"), ("password", "not the password at all")]).await;
        assert_eq!(refused.status, 401, "{}", refused.body);
    }
    let hashes = platform.running().state.passwords.computed();
    assert_eq!(hashes, 3, "each sign-in checked one password");
    let failures = "SELECT failed_logins FROM users WHERE username = 'ops.burst'";
    let attempts = "SELECT count(*) FROM login_attempts";
    let journal = "SELECT count(*) FROM audit_log";
    let (failed_before, attempts_before, journal_before) =
        (count(&platform, failures), count(&platform, attempts), count(&platform, journal));
    assert_eq!(failed_before, 3);

    // The fourth, even with the right password, is refused by the limit: no hash, no write, an HTML page.
    let response = browser
        .client
        .post(browser.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "ops.burst"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    retry_after(&response);
    assert!(content_type(&response).starts_with("text/html"), "{}", content_type(&response));
    assert!(response.text().await.unwrap().contains("Too many sign-in attempts"));
    // Registration is a sign-in form too: refused before its hash.
    let register = browser
        .client
        .post(browser.url("/register"))
        .form(&[("csrf", csrf.as_str()), ("password", "Long-enough-passw0rd"), ("confirm", "Long-enough-passw0rd")])
        .send()
        .await
        .unwrap();
    assert_eq!(register.status().as_u16(), 429);
    retry_after(&register);

    assert_eq!(platform.running().state.passwords.computed(), hashes, "a refused request computed a hash");
    assert_eq!(count(&platform, failures), failed_before);
    assert_eq!(count(&platform, attempts), attempts_before);
    assert_eq!(count(&platform, journal), journal_before);

    // Another address has its own allowance: its sign-in is checked (and accepted).
    let other = client_from(&platform, "127.0.0.2");
    let page = other.get(browser.url("/login")).send().await.unwrap().text().await.unwrap();
    let other_csrf = common::browser::extract_attr(&page, "name=\"csrf\" value=\"").unwrap();
    let accepted = other
        .post(browser.url("/login"))
        .form(&[("csrf", other_csrf.as_str()), ("username", "ops.burst"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 303, "the other address was limited too");
    assert_eq!(platform.running().state.passwords.computed(), hashes + 1);
    platform.shutdown().await;
}

#[tokio::test]
async fn page_views_beyond_the_address_limit_get_an_html_429() {
    let platform = Platform::start_with(
        |c| {
            c.limits.pages_burst = 5;
            c.limits.pages_per_second = 1;
        },
        None,
    )
    .await;
    let browser = Browser::new(&platform);
    let mut limited = None;
    for _ in 0..30 {
        let response = browser.client.get(browser.url("/login")).send().await.unwrap();
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status().as_u16(), 200);
    }
    let limited = limited.expect("the page limit was never reached");
    retry_after(&limited);
    assert!(content_type(&limited).starts_with("text/html"));
    assert!(limited.headers().contains_key("x-request-id"));
    assert!(limited.text().await.unwrap().contains("Too many requests from your address"));
    let other = client_from(&platform, "127.0.0.3");
    assert_eq!(other.get(browser.url("/login")).send().await.unwrap().status().as_u16(), 200);
    platform.shutdown().await;
}

/// Sends `request` until it meets the limit (at most `tries` times) and returns the refusal; none of the first
/// `burst` may be refused.
async fn until_limited(burst: usize, tries: usize, send: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    for i in 0..tries {
        let response = send().send().await.unwrap();
        if response.status().as_u16() == 429 {
            assert!(i >= burst, "refused within the burst (request {i})");
            return response;
        }
    }
    panic!("the limit was never reached");
}

#[tokio::test]
async fn token_endpoint_and_gateway_answer_429_in_their_own_shapes_per_certificate() {
    let platform = Platform::start_with(
        |c| {
            c.limits.oauth_burst = 2;
            c.limits.oauth_per_second = 1;
            c.limits.api_burst = 2;
            c.limits.api_per_second = 1;
        },
        None,
    )
    .await;
    let first = platform.client(Some(&platform.issue_identity("limits-first")));
    let second = platform.client(Some(&platform.issue_identity("limits-second")));
    let token = |client: &reqwest::Client| {
        client.post(platform.url("/oauth/token")).form(&[("grant_type", "client_credentials")])
    };
    let accounts = |client: &reqwest::Client| client.get(platform.url("/open-banking/v1/aisp/accounts"));

    let refused = until_limited(2, 30, || token(&first)).await;
    retry_after(&refused);
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "slow_down", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("retry after"), "{body}");

    let refused = until_limited(2, 30, || accounts(&first).header("x-fapi-interaction-id", "limits-1")).await;
    retry_after(&refused);
    assert_eq!(refused.headers()["x-fapi-interaction-id"], "limits-1");
    common::expect_ob_error(refused, 429, "UK.OBIE.UnexpectedError").await;

    // Another certificate from the same address is not affected.
    let other_token = token(&second).send().await.unwrap();
    assert_ne!(other_token.status().as_u16(), 429);
    let other_accounts = accounts(&second).send().await.unwrap();
    assert_ne!(other_accounts.status().as_u16(), 429);
    platform.shutdown().await;
}

#[tokio::test]
async fn anonymous_page_views_write_no_session_rows_and_anonymous_forms_need_the_signed_token() {
    let platform = Platform::start().await;
    let sessions = "SELECT count(*) FROM sessions";
    assert_eq!(count(&platform, sessions), 0);
    for path in ["/login", "/register", "/"] {
        for _ in 0..10 {
            // A fresh client each time: a visitor without cookies.
            let response = platform.client(None).get(platform.url(path)).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
            assert!(cookie.starts_with("__Host-kopir_form="), "{cookie}");
            for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
                assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
            }
        }
    }
    assert_eq!(count(&platform, sessions), 0, "anonymous page views wrote session rows");

    // The forms still work with the token: registration, then sign-in (which starts the first session).
    let (admin, password) =
        register_organisation(&platform, &common::browser::bin("99014000077"), "Limits Bank JSC", "limits.admin").await;
    let mut browser = Browser::new(&platform);
    let landed = browser.sign_in(&admin, &password).await;
    assert!(landed.url.ends_with("/org"), "{}", landed.url);
    assert!(count(&platform, sessions) >= 1);

    // Without the token, with another visitor's token, or without the cookie the token is bound to: refused.
    let visitor = Browser::new(&platform);
    let stranger = Browser::new(&platform);
    let own = visitor.get("/login").await.csrf();
    let theirs = stranger.get("/login").await.csrf();
    assert_ne!(own, theirs, "two visitors got the same token");
    let fields = [("username", admin.as_str()), ("password", password.as_str())];
    assert_eq!(visitor.post("/login", "", &fields).await.status, 403);
    assert_eq!(visitor.post("/login", &theirs, &fields).await.status, 403);
    let cookieless = platform
        .client(None)
        .post(platform.url("/login"))
        .header("origin", visitor.base.as_str())
        .form(&[("csrf", own.as_str()), ("username", admin.as_str()), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cookieless.status().as_u16(), 403);
    let registration = visitor.post("/register", &theirs, &[("bin", "990140000770")]).await;
    assert_eq!(registration.status, 403);
    // And with its own token it goes through to the password check.
    let checked = visitor.post("/login", &own, &[("username", admin.as_str()), ("password", "wrong-password!!")]).await;
    assert_eq!(checked.status, 401);
    platform.shutdown().await;
}

#[tokio::test]
async fn the_password_cannot_be_changed_before_the_second_factor() {
    let platform = Platform::start().await;
    let (admin, password) =
        register_organisation(&platform, &common::browser::bin("99014000078"), "Factor Bank JSC", "factor.admin").await;
    let mut owner = Browser::new(&platform);
    assert!(owner.sign_in(&admin, &password).await.url.ends_with("/org"));
    owner.sign_out().await;

    // Someone who has the password but not the second factor.
    let thief = Browser::new(&platform);
    let half = thief.submit("/login", "/login", &[("username", &admin), ("password", &password)]).await;
    assert!(half.url.ends_with("/login/code"), "{}", half.url);
    let new_password = "taken-over-Passw0rd-1";
    let attempt = thief
        .post(
            "/account/password",
            &half.csrf(),
            &[("current", &password), ("new_password", new_password), ("confirm", new_password)],
        )
        .await;
    assert!(attempt.url.ends_with("/login/code"), "sent to {} ({})", attempt.url, attempt.status);
    let page = thief.get("/account/password").await;
    assert!(page.url.ends_with("/login/code"), "the password page opened before the second factor: {}", page.url);

    let stored: String = common::participant::db(&platform)
        .query_row("SELECT password_hash FROM users WHERE username = ?1", [&admin], |r| r.get(0))
        .unwrap();
    assert!(kopir::identity::verify_password(&password, &stored), "the password was changed");
    assert!(!kopir::identity::verify_password(new_password, &stored));
    platform.shutdown().await;
}

#[tokio::test]
async fn a_mistyped_user_name_leaves_no_trace_in_the_journal_or_the_snapshot() {
    let platform = Platform::start().await;
    // A password typed into the user-name field.
    let typed = "Sup3r-Secret-Passw0rd";
    let browser = Browser::new(&platform);
    let refused = browser.submit("/login", "/login", &[("username", typed), ("password", "something")]).await;
    assert_eq!(refused.status, 401);
    let again = browser.submit("/login", "/login", &[("username", typed), ("password", "something else")]).await;
    assert_eq!(again.status, 401);

    let conn = common::participant::db(&platform);
    let (entries, everything): (i64, String) = conn
        .query_row(
            "SELECT count(*), group_concat(actor || '|' || coalesce(object, '') || '|' || coalesce(detail, ''), '\n')
             FROM audit_log WHERE action = 'identity.login.password'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(entries, 2, "{everything}");
    assert!(!everything.to_lowercase().contains(&typed.to_lowercase()), "{everything}");
    // The two attempts can still be told to be the same name.
    let tags: Vec<String> = everything
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l.rsplit('|').next().unwrap()).unwrap())
        .map(|d| d["typed_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags[0], tags[1]);
    drop(conn);

    let out = platform.dir.path().join("journal.kopir-snapshot");
    let exported = platform.kopir().args(["snapshot", "export", "--out"]).arg(&out).output().unwrap();
    common::assert_success(&exported);
    let mut files = vec![out.clone()];
    files.extend(
        std::fs::read_dir(platform.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("journal.kopir-snapshot") && *p != out),
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(typed.len()).any(|w| w == typed.as_bytes()), "{} holds the typed name", file.display());
    }
    platform.shutdown().await;
}
