//! End-to-end walks in headless Chromium, as a person clicks through the pages. Screenshots are kept in
//! `target/tmp/screenshots/<walk>/` for people to look at.

use crate::common;

use crate::common::Platform;
use crate::common::chrome::Chrome;

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
    let now = platform.clock().now().unix_timestamp() as u64;
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

/// Signs in through the pages; enrols the second factor when asked. Returns the TOTP secret and the step used.
pub(crate) async fn sign_in(
    chrome: &Chrome,
    clock: &kopir::clock::Clock,
    username: &str,
    password: &str,
    secret: Option<&[u8]>,
    last_step: u64,
) -> (Vec<u8>, u64) {
    chrome.goto("/login").await;
    chrome.fill("username", username).await;
    chrome.fill("password", password).await;
    chrome.click("form[action='/login'] button[type=submit]").await;
    let (secret, form) = match secret {
        None => {
            chrome.wait_path("/account/enrol").await;
            let text = chrome.text("#totp-secret").await;
            (kopir::identity::totp::parse_secret_text(&text).unwrap(), "/account/enrol")
        }
        Some(secret) => {
            chrome.wait_path("/login/code").await;
            (secret.to_vec(), "/login/code")
        }
    };
    // A code is accepted once per 30-second step: move the platform's clock to a step later than the last one used.
    let mut now = clock.now().unix_timestamp() as u64;
    if now / 30 <= last_step {
        clock.advance(time::Duration::seconds(30));
        now = clock.now().unix_timestamp() as u64;
    }
    chrome.fill("code", &kopir::identity::totp::code_at(&secret, username, now).unwrap()).await;
    chrome.click(&format!("form[action='{form}'] button[type=submit]")).await;
    (secret, now / 30)
}

pub(crate) async fn sign_out(chrome: &Chrome) {
    chrome.click("form[action='/logout'] button[type=submit]").await;
    chrome.wait_path("/").await;
}

/// The seed's registration scenario end to end, as people click it: a bank registers and applies, the operator
/// approves, the registry lists the bank, the bank registers an application from a CSR, and the certificate it got
/// is accepted over mutual TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_apply_approve_list_and_connect_over_mtls() {
    let platform = Platform::start().await;
    let base = format!("https://localhost:{}", platform.addr.port());
    let chrome = Chrome::start(&base, "main-path").await;
    let (admin, password) = common::browser::register_organisation(
        &platform,
        &common::browser::bin("99014000099"),
        "Steppe Bank JSC",
        "erlan.admin",
    )
    .await;

    // The bank's administrator signs in (enrolling the second factor) and applies for accreditation.
    let (bank_secret, bank_step) = sign_in(&chrome, platform.clock(), &admin, &password, None, 0).await;
    chrome.wait_path("/org").await;
    chrome.goto("/org/accreditation").await;
    chrome.click("#wants_provider").await;
    chrome.click("input[name=wants_user]").await;
    for (name, value) in [("isms", "yes"), ("pentest", "yes"), ("data_in_kz", "yes"), ("encryption_at_rest", "yes")] {
        chrome.click(&format!("input[name={name}][value={value}]")).await;
    }
    chrome.fill("isms_detail", "ISO/IEC 27001:2022, certificate 12345").await;
    chrome.fill("security_officer_name", "Madina Nurlanova").await;
    chrome.fill("security_officer_email", "ciso@steppebank.kz").await;
    chrome.fill("incident_phone", "+7 727 355 00 00").await;
    // A date field takes what its locale shows (mm/dd/yyyy here); set the value the way the picker would.
    let date = (time::OffsetDateTime::now_utc() - time::Duration::days(60)).date();
    chrome.client.execute(&format!("document.getElementById('pentest_date').value = '{date}'"), vec![]).await.unwrap();
    chrome.fill("contact_name", "Erlan Abenov").await;
    chrome.fill("contact_email", "openbanking@steppebank.kz").await;
    chrome.fill("contact_phone", "+7 727 355 00 01").await;
    let pdf = chrome.shots.join("licence.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").unwrap();
    chrome
        .client
        .find(fantoccini::Locator::Id("documents"))
        .await
        .unwrap()
        .send_keys(&pdf.display().to_string())
        .await
        .unwrap();
    chrome.shot("01-application-filled").await;
    chrome.click("button[name=action][value=submit]").await;
    chrome.wait_text("licence.pdf").await;
    chrome.shot("02-application-submitted").await;
    sign_out(&chrome).await;

    // The operator reviews the queue and approves, with a reason.
    let operator_password =
        common::browser::operator_user(&platform, "saule.ops", kopir::identity::Role::OperatorStaff).await;
    let (_, _) = sign_in(&chrome, platform.clock(), "saule.ops", &operator_password, None, 0).await;
    chrome.wait_path("/console").await;
    chrome.goto("/console/applications").await;
    chrome.wait_text("Steppe Bank JSC").await;
    chrome.shot("03-console-queue").await;
    chrome.click("a[href^='/console/applications/']").await;
    chrome.wait_text("ISO/IEC 27001:2022").await;
    chrome.fill("reason", "Documents and questionnaire complete; security contacts verified by phone.").await;
    chrome.shot("04-console-review").await;
    chrome.click("input[name=decision][value=approve]").await;
    chrome.click("form[action$='/decision'] button[type=submit]").await;
    chrome.wait_text("Decision recorded.").await;
    chrome.shot("05-approved").await;
    sign_out(&chrome).await;

    // The public registry lists the bank.
    chrome.goto("/registry").await;
    chrome.wait_text("Steppe Bank JSC").await;
    chrome.wait_text("KOPIR-AC-").await;
    chrome.shot("06-registry").await;

    // The bank registers an application with a CSR and gets its transport certificate.
    sign_in(&chrome, platform.clock(), &admin, &password, Some(&bank_secret), bank_step).await;
    chrome.wait_path("/org").await;
    chrome.goto("/org/apps").await;
    let csr = common::Csr::new("steppe-gateway");
    chrome.fill("name", "Steppe Money app").await;
    chrome.fill("redirect_uris", "https://app.steppebank.kz/callback").await;
    chrome.fill("csr", &csr.csr_pem).await;
    chrome.shot("07-application-form").await;
    chrome.click("form[action='/org/apps'] button[type=submit]").await;
    chrome.wait_text("kc_").await;
    chrome.shot("08-application-registered").await;

    // The certificate shown on the page is the one the bank's system now uses over mutual TLS.
    let body = chrome.body().await;
    let client_id = body
        .split_whitespace()
        .find(|w| w.starts_with("kc_"))
        .unwrap()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-')
        .to_string();
    let conn = rusqlite::Connection::open(platform.config.db_path()).unwrap();
    let leaf: String = conn
        .query_row(
            "SELECT c.pem FROM certificates c JOIN applications a ON a.id = c.application_id WHERE a.client_id = ?1",
            [&client_id],
            |r| r.get(0),
        )
        .unwrap();
    let issuing = std::fs::read_to_string(platform.data_dir().join("pki/issuing-ca.pem")).unwrap();
    let identity = common::Identity { chain_pem: format!("{leaf}{issuing}"), key_pem: csr.key_pem };
    let response = platform.client(Some(&identity)).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let data: serde_json::Value = response.json().await.unwrap();
    assert_eq!(data["Data"]["ClientId"], client_id.as_str());

    chrome.close().await;
    let verify = platform.kopir().args(["audit", "verify"]).output().unwrap();
    common::assert_success(&verify);
    platform.shutdown().await;
}
