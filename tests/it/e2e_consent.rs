//! End-to-end walk in headless Chromium through the customer's side: sent by an API user's application to the
//! platform, the customer identifies (IIN, simulated face check, SMS code read on the demo outbox page), reads the
//! consent screen and allows; later, on `/my`, withdraws the consent for one bank and then entirely.
//! Screenshots are kept in `target/tmp/screenshots/consent/`.

use crate::common::Platform;
use crate::common::chrome::Chrome;
use crate::common::consent::{self, scenario_redirecting};

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

    // Later, on the customer's own pages.
    chrome.goto("/my").await;
    chrome.wait_text("Confirm it is me").await;
    chrome.shot("2-0-my-welcome").await;
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
    chrome.click(&format!("form[action='/my/consents/{consent_id}/revoke'] button")).await;
    chrome.wait_text("Withdrawn").await;
    chrome.shot("2-8-withdrawn").await;
    assert_eq!(s.consent(&consent_id).await["Status"], "Revoked");
    chrome.close().await;
    s.platform.shutdown().await;
}
