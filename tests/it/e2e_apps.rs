//! End-to-end walk in headless Chromium through the applications, staff and profile pages: a real browser posts the
//! forms (CSRF, Origin, multipart upload). Screenshots are kept in `target/tmp/screenshots/apps/`.

use crate::common;

use crate::common::chrome::Chrome;
use crate::common::participant::{accredit, count};
use crate::common::{Csr, Platform};

/// Waits (up to 10 s) until `sql` counts `n` rows.
async fn wait_count(platform: &Platform, sql: &str, n: i64) {
    common::eventually(&format!("{n} rows of {sql}"), std::time::Duration::from_secs(10), async || {
        let counted = count(platform, sql);
        if counted == n { Ok(()) } else { Err(counted) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accredited_bank_registers_an_application_invites_a_developer_and_uploads_its_logo() {
    let platform = Platform::start().await;
    let bin = common::browser::bin("99014000088");
    let (admin, password) =
        common::browser::register_organisation(&platform, &bin, "Qazaq Digital Bank JSC", "dana.admin").await;
    // Stands in for the operator's approval of the accreditation application.
    accredit(&platform, &bin).await;
    let base = format!("https://localhost:{}", platform.addr.port());
    let chrome = Chrome::start(&base, "apps").await;

    chrome.goto("/login").await;
    chrome.fill("username", &admin).await;
    chrome.fill("password", &password).await;
    chrome.click("form[action='/login'] button[type=submit]").await;
    chrome.wait_path("/account/enrol").await;
    let secret = kopir::identity::totp::parse_secret_text(&chrome.text("#totp-secret").await).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    chrome.fill("code", &kopir::identity::totp::code_at(&secret, &admin, now).unwrap()).await;
    chrome.click("form[action='/account/enrol'] button[type=submit]").await;
    chrome.wait_path("/org").await;

    // Register an application with a CSR pasted into the form.
    chrome.goto("/org/apps").await;
    chrome.wait_text("Register an application").await;
    let csr = Csr::new("qdb-mobile");
    chrome.fill("name", "QDB mobile").await;
    chrome.fill("redirect_uris", "https://mobile.qdb.kz/callback\nhttps://mobile.qdb.kz/cb2").await;
    chrome.fill("csr", &csr.csr_pem).await;
    chrome.shot("01-register-application").await;
    chrome.click("form[action='/org/apps'] button[type=submit]").await;
    chrome.wait_path("/org/apps/1").await;
    chrome.wait_text("Transport certificates").await;
    let client_id = chrome.text("#client-id").await;
    assert!(client_id.starts_with("kc_"), "{client_id}");
    chrome.shot("02-application").await;
    assert_eq!(count(&platform, "SELECT count(*) FROM certificates WHERE application_id IS NOT NULL"), 1);

    // Invite a developer.
    chrome.goto("/org/staff").await;
    chrome.fill("full_name", "Yerlan Omarov").await;
    chrome.fill("email", "yerlan@qdb.kz").await;
    chrome.fill("username", "yerlan.dev").await;
    chrome.shot("03-staff").await;
    chrome.click("form[action='/org/staff'] button[type=submit]").await;
    wait_count(&platform, "SELECT count(*) FROM users WHERE username = 'yerlan.dev'", 1).await;
    chrome.wait_text("Member invited").await;
    assert_eq!(chrome.text("#one-time-password").await.len(), 20);
    chrome.shot("04-invited").await;

    // Upload a logo from a file, as a person picks one.
    let png = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    std::fs::write(png.path(), common::participant::PNG).unwrap();
    chrome.goto("/org/profile").await;
    chrome.fill("description", "A digital bank in Almaty").await;
    chrome.fill("website", "https://qdb.kz").await;
    chrome.click("form[action='/org/profile'] button[type=submit]").await;
    wait_count(&platform, "SELECT count(*) FROM organisations WHERE website = 'https://qdb.kz'", 1).await;
    chrome.wait_text("Saved.").await;
    let file = chrome.client.find(fantoccini::Locator::Id("logo")).await.unwrap();
    file.send_keys(&png.path().display().to_string()).await.unwrap();
    chrome.click("form[action='/org/profile/logo'] button[type=submit]").await;
    wait_count(&platform, "SELECT count(*) FROM organisations WHERE logo_type = 'image/png'", 1).await;
    chrome.wait_text("Saved.").await;
    chrome.shot("05-profile").await;

    // The application page in Russian and Kazakh.
    chrome.goto("/org/apps").await;
    chrome.click("a[href='/lang/ru']").await;
    chrome.wait_text("Приложения").await;
    chrome.shot("06-apps-ru").await;
    chrome.click("a[href='/lang/kk']").await;
    chrome.wait_text("Қосымшалар").await;
    chrome.shot("07-apps-kk").await;

    chrome.close().await;
    platform.shutdown().await;
}
