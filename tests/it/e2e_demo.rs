//! `kopir demo` walked in headless Chromium the way the README tells a newcomer: the sample application, the banks
//! picked, the platform's identification (simulated face check, SMS code from the outbox page), the consent, the
//! accounts and transactions of all three banks, then the consent withdrawn on `/my` and the accounts gone.
//! Screenshots are kept in `target/tmp/screenshots/demo/`.

use crate::common;

use crate::common::chrome::Chrome;
use kopir::demo::{DemoOptions, start};

async fn identify(chrome: &Chrome, platform: &common::Platform, iin: &str, phone: &str, shot: &str) {
    chrome.wait_path("/verify").await;
    chrome.fill("iin", iin).await;
    chrome.fill("phone", phone).await;
    chrome.click("form[action='/verify'] button[type=submit]").await;
    chrome.wait_path("/verify/biometric").await;
    chrome.shot(&format!("{shot}-face-check")).await;
    chrome.click("button[value='pass']").await;
    chrome.wait_path("/verify/code").await;
    chrome.goto("/demo/sms").await;
    chrome.wait_text("Demo SMS outbox").await;
    chrome.shot(&format!("{shot}-outbox")).await;
    let code = common::consent::sms_code(platform, phone).await;
    chrome.goto("/verify/code").await;
    chrome.fill("code", &code).await;
    chrome.click("form[action='/verify/code'] button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_connects_three_banks_in_the_demo_and_withdraws_the_consent() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let demo = start(config.clone(), DemoOptions { bank_ports: [0, 0, 0] }).await.unwrap();
    assert_eq!(demo.banks.len(), 3);
    assert!(demo.credentials.iter().any(|(who, _, _)| who.contains("Qaz Budget")));
    let platform = common::Platform::attach(dir, config, demo.platform);
    // One first sign-in rule for every account the demo made (the operator's administrator and the banks'): each
    // got a one-time password, to be changed before the second factor is enrolled.
    let accounts: Vec<(String, bool)> = common::participant::db(&platform)
        .prepare("SELECT username, must_change_password FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(accounts.len() >= 4 && accounts.iter().all(|(_, forced)| *forced), "{accounts:?}");
    // The platform's home leads the demo's visitor to the sample application first.
    let home = common::browser::Browser::new(&platform).get("/").await;
    home.assert_contains("id=\"demo-way\"").assert_contains("href=\"/demo/app\"");
    let base = platform.url("");
    let chrome = Chrome::start(&base, "demo").await;

    chrome.goto("/demo/app").await;
    chrome.wait_text("All your accounts in one place").await;
    chrome.shot("1-sample-app").await;
    chrome.click("form[action='/demo/app/connect'] button[type=submit]").await;
    let customer = kopir::standard::SANDBOX_CUSTOMERS[0].iin;
    identify(&chrome, &platform, customer, "+77015550101", "2").await;
    chrome.wait_path("/oauth/authorize/consent").await;
    chrome.wait_text("Qaz Budget").await;
    chrome.shot("3-consent").await;
    chrome.click("button[value='allow']").await;
    chrome.wait_path("/demo/app").await;
    chrome.wait_text("Your banks are connected.").await;
    let page = chrome.body().await;
    for bank in ["Altyn Bank JSC", "Dala Bank JSC", "Kapshagai Bank JSC"] {
        assert!(page.contains(bank), "no accounts of {bank}:\n{page}");
    }
    assert!(page.contains("KZT"), "{page}");
    chrome.shot("4-accounts-of-three-banks").await;
    chrome.click("a[href^='/demo/app/accounts/']").await;
    chrome.wait_text("Transactions").await;
    let transactions = chrome.body().await;
    assert!(transactions.matches("KZT").count() + transactions.matches("USD").count() >= 10, "{transactions}");
    chrome.shot("5-transactions").await;

    // The customer withdraws the consent on the platform; the app's next look finds nothing.
    // (`/my` remembers the customer who just consented: no second identification.)
    chrome.goto("/my").await;
    chrome.wait_text("Active consents").await;
    chrome.click("a[href^='/my/consents/']").await;
    chrome.wait_text("Withdraw the whole consent").await;
    chrome.click("#withdraw").await;
    chrome.wait_text("This cannot be undone").await;
    chrome.click("#confirm-withdrawal").await;
    chrome.wait_text("Your consent is withdrawn for every bank").await;
    chrome.shot("7-withdrawn").await;
    chrome.goto("/demo/app").await;
    chrome.wait_text("no longer sees your accounts").await;
    let page = chrome.body().await;
    assert!(!page.contains("Available balance"), "accounts still shown:\n{page}");
    chrome.shot("8-gone").await;
    chrome.close().await;
    platform.shutdown().await;
    for bank in demo.banks {
        bank.shutdown().await;
    }
}

/// A customer no bank of the demo knows consents: the sample application says plainly that the banks hold no account
/// in their name, not "Your banks are connected" above nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_no_bank_knows_is_told_so_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path());
    let demo = start(config.clone(), DemoOptions { bank_ports: [0, 0, 0] }).await.unwrap();
    let platform = common::Platform::attach(dir, config, demo.platform);
    let chrome = Chrome::start(&platform.url(""), "demo-stranger").await;
    chrome.goto("/demo/app").await;
    chrome.click("form[action='/demo/app/connect'] button[type=submit]").await;
    identify(&chrome, &platform, &common::consent::iin(95), "+77015550195", "1").await;
    chrome.wait_path("/oauth/authorize/consent").await;
    chrome.click("button[value='allow']").await;
    chrome.wait_path("/demo/app").await;
    chrome.wait_text("None of the banks you chose knows you as a customer").await;
    let page = chrome.body().await;
    assert!(!page.contains("Your banks are connected"), "{page}");
    chrome.shot("2-no-bank-knows-the-customer").await;
    chrome.close().await;
    platform.shutdown().await;
    for bank in demo.banks {
        bank.shutdown().await;
    }
}
