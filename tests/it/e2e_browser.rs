//! End-to-end walks in headless Chromium, as a person clicks through the pages. Screenshots are kept in
//! `target/tmp/screenshots/<walk>/` for people to look at.

use crate::common;

use crate::common::Platform;
use crate::common::chrome::{Chrome, sign_in};

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
    // The accession agreement of the role applied for, accepted with the application.
    chrome.click("input[name=accept_agreements]").await;
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

/// Whether the page fits the window's width (no horizontal scrolling) and the header stays one row of menus.
async fn fits_the_width(chrome: &Chrome) -> (bool, f64) {
    let fits = chrome
        .client
        .execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![])
        .await
        .unwrap();
    let header = chrome
        .client
        .execute("return document.querySelector('header.top').getBoundingClientRect().height;", vec![])
        .await
        .unwrap();
    (fits.as_bool().unwrap(), header.as_f64().unwrap())
}

/// The console at 1280 px: the grouped menu in one header row with the signed-in person, a group opened, and the
/// audit trail holding 200 entries (50 a page, long details wrapped inside their fixed columns, no sideways scroll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_fits_1280_px_and_the_audit_trail_reads_with_200_entries() {
    let platform = Platform::start().await;
    platform
        .running()
        .state
        .db
        .write(|tx| {
            for i in 0..200 {
                let event = kopir::audit::Event::new(
                    format!("user:operator{}", i % 7),
                    ["participants.decision", "apps.certificate.issued", "catalog.api.published"][i % 3],
                    kopir::audit::Outcome::Success,
                )
                .at(kopir::clock::now())
                .object(format!("organisation:{}", 1000 + i))
                .source("192.0.2.10")
                .detail(serde_json::json!({
                    "reason": "Documents and questionnaire complete; security contacts verified by phone with the bank's CISO.",
                    "serial": "5f2c9a81d0e34b7796a1c0ffee4242aa5f2c9a81d0e34b7796a1c0ffee4242aa",
                }));
                kopir::audit::append(tx, &event)?;
            }
            Ok::<_, kopir::store::StoreError>(())
        })
        .await
        .unwrap();
    let password = common::browser::operator_user(&platform, "dana.admin", kopir::identity::Role::OperatorAdmin).await;
    let base = format!("https://localhost:{}", platform.addr.port());
    let chrome = Chrome::start(&base, "console-1280").await;
    sign_in(&chrome, platform.clock(), "dana.admin", &password, None, 0).await;
    chrome.wait_path("/console").await;
    let header = chrome.text("header.top").await;
    assert!(header.contains("dana.admin") && header.contains("Operator administrator"), "{header}");
    assert!(!header.contains("Sign in"), "{header}");
    let (fits, height) = fits_the_width(&chrome).await;
    assert!(fits, "the console scrolls sideways at 1280 px");
    assert!(height < 80.0, "the header wraps onto several rows: {height} px");
    chrome.shot("01-console").await;
    // A group opens on click (no script) and its entries lead to their pages.
    chrome.click("details.menu:nth-of-type(3) > summary").await;
    chrome.shot("02-menu-apis-open").await;
    chrome.click("a[href='/console/apis/health']").await;
    chrome.wait_path("/console/apis/health").await;

    chrome.goto("/console/audit").await;
    chrome.wait_text("Filters").await;
    let (fits, _) = fits_the_width(&chrome).await;
    assert!(fits, "the audit trail scrolls sideways at 1280 px");
    let rows = chrome.client.find_all(fantoccini::Locator::Css("table.journal tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 50);
    chrome.shot("03-audit-trail-200").await;
    chrome.click("a[rel=next]").await;
    chrome.wait_text("entries 51–100").await;
    chrome.shot("04-audit-trail-page-2").await;
    chrome.fill("action", "catalog.").await;
    chrome.click("form[role=search] button[type=submit]").await;
    chrome.wait_text("Journal entries matching the filters").await;
    chrome.shot("05-audit-trail-filtered").await;
    // The header keeps one row in the longer languages too.
    chrome.goto("/console").await;
    for (lang, shot, overview) in [("ru", "06-console-ru", "Обзор"), ("kk", "07-console-kk", "Шолу")] {
        chrome.click(&format!("a[href='/lang/{lang}']")).await;
        chrome.wait_text(overview).await;
        let (fits, height) = fits_the_width(&chrome).await;
        assert!(fits && height < 80.0, "{lang}: the header takes {height} px or the page scrolls sideways");
        chrome.shot(shot).await;
    }

    chrome.close().await;
    platform.shutdown().await;
}
