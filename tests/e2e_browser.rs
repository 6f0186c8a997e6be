//! End-to-end walks in headless Chromium, as a person clicks through the pages. Screenshots are kept in
//! `target/tmp/screenshots/<walk>/` for people to look at.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Platform;
use common::chrome::Chrome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_registers_enrols_its_second_factor_and_reaches_its_workspace() {
    let platform = Platform::start().await;
    let base = format!("https://localhost:{}", platform.addr.port());
    let chrome = Chrome::start(&base, "registration").await;

    chrome.goto("/").await;
    chrome.wait_text("Open Banking, with the customer in control").await;
    chrome.shot("01-home").await;

    chrome.goto("/register").await;
    let bin = common::browser::bin("99014000077");
    chrome.fill("bin", &bin).await;
    chrome.fill("name", "Qazaq Digital Bank JSC").await;
    chrome.fill("licence_number", "1.2.77/2026").await;
    chrome.fill("contact_email", "openapi@qdb.kz").await;
    chrome.fill("contact_phone", "+7 727 300 00 00").await;
    chrome.fill("admin_full_name", "Aruzhan Bekova").await;
    chrome.fill("admin_email", "aruzhan@qdb.kz").await;
    chrome.fill("admin_username", "aruzhan").await;
    chrome.fill("password", "qdb-Admin-Passw0rd").await;
    chrome.fill("confirm", "qdb-Admin-Passw0rd").await;
    chrome.shot("02-register-filled").await;
    chrome.click("form[action='/register'] button[type=submit]").await;
    chrome.wait_text("Organisation registered").await;
    chrome.shot("03-registered").await;

    chrome.goto("/login").await;
    chrome.fill("username", "aruzhan").await;
    chrome.fill("password", "qdb-Admin-Passw0rd").await;
    chrome.click("form[action='/login'] button[type=submit]").await;
    chrome.wait_path("/account/enrol").await;
    chrome.shot("04-enrol-totp").await;
    // Read the key as a person would type it into an authenticator app, and answer with the app's code.
    let secret_text = chrome.text("#totp-secret").await;
    let secret = kopir::identity::totp::parse_secret_text(&secret_text).expect("the page shows a base32 key");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let code = kopir::identity::totp::code_at(&secret, "aruzhan", now).unwrap();
    chrome.fill("code", &code).await;
    chrome.click("form[action='/account/enrol'] button[type=submit]").await;
    chrome.wait_path("/org").await;
    let body = chrome.body().await;
    assert!(body.contains("Qazaq Digital Bank JSC") && body.contains(&bin), "{body}");
    chrome.shot("05-workspace").await;

    // The same page in Russian and Kazakh.
    chrome.click("a[href='/lang/ru']").await;
    chrome.wait_text("Зарегистрирована, не аккредитована").await;
    chrome.shot("06-workspace-ru").await;
    chrome.click("a[href='/lang/kk']").await;
    chrome.wait_text("Тіркелген, аккредиттелмеген").await;
    chrome.shot("07-workspace-kk").await;

    chrome.close().await;
    platform.shutdown().await;
}
