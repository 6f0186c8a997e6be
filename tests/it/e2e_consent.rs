//! End-to-end walk in headless Chromium through the customer's side: sent by an API user's application to the
//! platform, the customer identifies (IIN, simulated face check, SMS code read on the demo outbox page), reads the
//! consent screen and allows; later, on `/my`, withdraws the consent for one bank and then entirely. A second walk
//! gives a consent with one bank unticked and a shorter period, narrows it on `/my` while the bank's administrator
//! watches its list change, and withdraws it after the confirmation. Screenshots are kept in
//! `target/tmp/screenshots/consent/` and `target/tmp/screenshots/consent-narrowing/`.

use crate::common::Platform;
use crate::common::browser::registration_password;
use crate::common::chrome::{Chrome, sign_in};
use crate::common::consent::{self, bank_admin, bank_seed, scenario_redirecting};
use crate::common::participant::db;

/// Identifies in the browser from wherever the journey starts, reading the code on the outbox page.
async fn identify(chrome: &Chrome, platform: &Platform, iin: &str, phone: &str, shots: &str) {
    chrome.wait_path("/verify").await;
    chrome.fill("iin", iin).await;
    chrome.fill("phone", phone).await;
    chrome.shot(&format!("{shots}-1-identify")).await;
    chrome.click("form[action='/verify'] button[type=submit]").await;
    chrome.wait_path("/verify/biometric").await;
    chrome.shot(&format!("{shots}-2-face-check")).await;
    chrome.click("button[value='pass']").await;
    chrome.wait_path("/verify/code").await;
    chrome.goto("/demo/sms").await;
    chrome.wait_text("Demo SMS outbox").await;
    chrome.shot(&format!("{shots}-3-outbox")).await;
    let code = consent::sms_code(platform, phone).await;
    chrome.goto("/verify/code").await;
    chrome.fill("code", &code).await;
    chrome.shot(&format!("{shots}-4-code")).await;
    chrome.click("form[action='/verify/code'] button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_consents_in_the_browser_and_later_withdraws_it_on_the_my_pages() {
    let platform = Platform::start().await;
    let base = format!("https://localhost:{}", platform.addr.port());
    // The application's callback: any page the browser can open shows where it was sent.
    let s = scenario_redirecting(platform, 2, &format!("{base}/registry")).await;
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "walk").await;

    let chrome = Chrome::start(&base, "consent").await;
    chrome.goto(&s.authorize_path(&request_uri)).await;
    chrome.wait_text("Budget App").await;
    let iin = consent::iin(81);
    identify(&chrome, &s.platform, &iin, "+77014440081", "1").await;
    chrome.wait_path("/oauth/authorize/consent").await;
    let screen = chrome.body().await;
    for text in [
        "Budget App",
        "Fintech One",
        "Altyn Bank",
        "Dala Bank",
        "Show all your accounts in one place",
        "The balances of your accounts",
    ] {
        assert!(screen.contains(text), "the consent screen lacks {text:?}:\n{screen}");
    }
    chrome.shot("1-5-consent-screen").await;
    chrome.click("button[value='allow']").await;
    chrome.wait_path("/registry").await;
    let url = chrome.client.current_url().await.unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(params.iter().any(|(k, v)| k == "code" && v.len() == 43), "{url}");
    assert!(params.iter().any(|(k, v)| k == "state" && v == "walk"), "{url}");
    assert!(params.iter().any(|(k, v)| k == "iss" && *v == base), "{url}");
    chrome.shot("1-6-back-at-the-application").await;
    assert_eq!(s.consent(&consent_id).await["Status"], "Authorised");

    // Right after, on the customer's own pages: remembered, not asked to identify again.
    chrome.goto("/my").await;
    chrome.wait_text("Active consents").await;
    chrome.shot("2-0-my-remembered").await;
    // Once that time is over, `/my` asks who they are.
    s.platform.clock().advance(time::Duration::minutes(11));
    chrome.goto("/my").await;
    chrome.wait_text("Confirm it is me").await;
    chrome.shot("2-1-my-welcome").await;
    chrome.click("a[href='/my/start']").await;
    identify(&chrome, &s.platform, &iin, "+77014440081", "2").await;
    chrome.wait_path("/my").await;
    chrome.wait_text("Active consents").await;
    chrome.shot("2-5-my-consents").await;
    chrome.click(&format!("a[href='/my/consents/{consent_id}']")).await;
    chrome.wait_path(&format!("/my/consents/{consent_id}")).await;
    chrome.shot("2-6-consent").await;
    chrome.click("form[action$='/revoke'][action*='/banks/'] button").await;
    chrome.wait_text("Withdrawn for one bank").await;
    chrome.shot("2-7-one-bank-withdrawn").await;
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Status"], "Authorised");
    assert_eq!(data["Providers"].as_array().unwrap().iter().filter(|p| p["Status"] == "Revoked").count(), 1);
    chrome.click("#withdraw").await;
    chrome.wait_text("This cannot be undone").await;
    chrome.shot("2-8-withdraw-confirm").await;
    chrome.click("#confirm-withdrawal").await;
    chrome.wait_text("Your consent is withdrawn for every bank").await;
    chrome.shot("2-9-withdrawn").await;
    assert_eq!(s.consent(&consent_id).await["Status"], "Revoked");
    chrome.close().await;
    s.platform.shutdown().await;
}

/// The local date (the operator's zone) `days` from the platform's now, as a date field takes it.
fn local_day(platform: &Platform, days: i64) -> String {
    let zone = kopir::store::calendar::default_time_zone();
    let today = kopir::store::calendar::local_date(&zone, platform.clock().now().unix_timestamp()).unwrap();
    today.checked_add(jiff::Span::new().days(days)).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_unticks_a_bank_narrows_the_consent_later_and_withdraws_it_after_confirming() {
    let platform = Platform::start().await;
    let base = format!("https://localhost:{}", platform.addr.port());
    let s = scenario_redirecting(platform, 3, &format!("{base}/registry")).await;
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "walk").await;
    let id_of = |name: &str| -> i64 {
        db(&s.platform).query_row("SELECT id FROM organisations WHERE name = ?1", [name], |r| r.get(0)).unwrap()
    };
    let (dala, kapshagai) = (id_of("Dala Bank"), id_of("Kapshagai Bank"));

    // The consent screen: Kapshagai Bank unticked and a last day a week away.
    let chrome = Chrome::start(&base, "consent-narrowing").await;
    chrome.goto(&s.authorize_path(&request_uri)).await;
    let iin = consent::iin(85);
    identify(&chrome, &s.platform, &iin, "+77014440085", "1").await;
    chrome.wait_path("/oauth/authorize/consent").await;
    chrome.click(&format!("input[name=bank][value='{kapshagai}']")).await;
    let until = local_day(&s.platform, 7);
    chrome
        .client
        .execute("document.getElementById('until').value = arguments[0];", vec![serde_json::json!(until)])
        .await
        .unwrap();
    chrome.shot("1-5-consent-screen-one-bank-unticked").await;
    chrome.click("button[value='allow']").await;
    chrome.wait_path("/registry").await;
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Status"], "Authorised");
    let names: Vec<&str> = data["Providers"].as_array().unwrap().iter().map(|p| p["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Altyn Bank", "Dala Bank"], "Kapshagai Bank unticked");
    let ends = data["ExpirationDateTime"].as_str().unwrap();
    let zone = kopir::store::calendar::default_time_zone();
    let last = kopir::store::calendar::local_day(&zone, kopir::clock::parse(ends).unwrap().unix_timestamp() - 1);
    assert_eq!(last.unwrap(), until, "ends when the chosen day ends");

    // Dala Bank's administrator sees the consent as active.
    let admin = bank_admin(&bank_seed(1));
    sign_in(&chrome, s.platform.clock(), &admin, &registration_password(&admin), None, 0).await;
    chrome.wait_path("/org").await;
    chrome.goto("/org/consents").await;
    chrome.wait_text(&consent_id).await;
    let row = chrome.text("tbody tr").await;
    assert!(row.contains("Active") && !row.contains("Withdrawn"), "{row}");
    chrome.shot("2-1-bank-list-active").await;

    // The customer narrows it on /my (remembered since the consent screen): Dala Bank and the balances dropped.
    chrome.goto("/my").await;
    chrome.wait_text("Active consents").await;
    chrome.click(&format!("a[href='/my/consents/{consent_id}']")).await;
    chrome.wait_path(&format!("/my/consents/{consent_id}")).await;
    chrome.click(&format!("#narrow input[name=bank][value='{dala}']")).await;
    chrome.click("#narrow input[name=permission][value='ReadBalances']").await;
    chrome.shot("3-1-narrowing").await;
    chrome.click("#narrow button[type=submit]").await;
    chrome.wait_text("Your consent is changed").await;
    chrome.shot("3-2-narrowed").await;
    let data = s.consent(&consent_id).await;
    assert!(!data["Permissions"].as_array().unwrap().iter().any(|p| p == "ReadBalances"), "{data}");

    // The bank's list follows on its next request.
    chrome.goto("/org/consents").await;
    chrome.wait_text(&consent_id).await;
    let row = chrome.text("tbody tr").await;
    assert!(row.contains("Dala Bank Withdrawn"), "{row}");
    chrome.shot("3-3-bank-list-withdrawn").await;

    // A full withdrawal asks first, then says what happened.
    chrome.goto(&format!("/my/consents/{consent_id}")).await;
    chrome.click("#withdraw").await;
    chrome.wait_text("This cannot be undone").await;
    chrome.shot("4-1-withdraw-confirm").await;
    chrome.click("#confirm-withdrawal").await;
    chrome.wait_text("Your consent is withdrawn for every bank").await;
    chrome.shot("4-2-withdrawn").await;
    assert_eq!(s.consent(&consent_id).await["Status"], "Revoked");
    chrome.close().await;
    s.platform.shutdown().await;
}
