//! Customers' consents: one status per bank on every page and in the API, narrowing on the consent screen and on
//! `/my` (banks, optional permissions, an earlier end) followed by the gateway, the banks' lists and the API user's
//! webhooks, and a withdrawal that asks for confirmation and says what it did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use crate::common::Platform;
use crate::common::browser::{Browser, Page};
use crate::common::consent::{Scenario, identify};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get, get_json, tokens_choosing, tokens_for, world};
use crate::common::participant::{count, db};

const BANKS: [BankPlan; 2] = [BankPlan::new("Altyn Bank", "99034000001"), BankPlan::new("Dala Bank", "99034000002")];
const PHONE: &str = "+77010000001";

fn organisation(platform: &Platform, name: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE name = ?1", [name], |r| r.get(0)).unwrap()
}

/// The table row of a page that mentions `needle`.
fn row<'a>(page: &'a Page, needle: &str) -> &'a str {
    page.body
        .split("<tr>")
        .find(|r| r.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle}: {}", page.body))
}

/// How a bank and its status read in a list of a consent's banks.
fn bank_badge(name: &str, class: &str, text: &str) -> String {
    format!("<li>{name} <span class=\"badge status-{class}\">{text}</span></li>")
}

/// The English short name of a month (1 to 12).
fn month(number: i8) -> &'static str {
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][number as usize - 1]
}

fn status_cell(class: &str, text: &str) -> String {
    format!("<td><span class=\"badge status-{class}\">{text}</span></td>")
}

/// Each bank's `Status` in the API's view of the consent, by name.
fn api_statuses(data: &Value) -> Vec<(String, String)> {
    data["Providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["Name"].as_str().unwrap().to_string(), p["Status"].as_str().unwrap().to_string()))
        .collect()
}

/// The servicers (banks' BINs) of the customer's accounts as the gateway answers them.
async fn servicers(s: &Scenario, token: &str) -> Vec<String> {
    let body = get_json(s, token, "/accounts").await;
    let mut bins: Vec<String> = body["Data"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Servicer"]["Identification"].as_str().unwrap().to_string())
        .collect();
    bins.sort();
    bins.dedup();
    bins
}

/// The local date (operator's zone) `days` from the platform's now, and the instant the consent ends if that is its
/// last day.
fn last_day(platform: &Platform, days: i64) -> (String, String) {
    let zone = kopir::store::calendar::default_time_zone();
    let now = platform.clock().now().unix_timestamp();
    let day =
        kopir::store::calendar::local_date(&zone, now).unwrap().checked_add(jiff::Span::new().days(days)).unwrap();
    let end = kopir::store::calendar::day_start(&zone, day.tomorrow().unwrap()).unwrap();
    (day.to_string(), kopir::clock::rfc3339(time::OffsetDateTime::from_unix_timestamp(end).unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_customer_unticks_a_bank_and_a_permission_and_shortens_the_period_on_the_consent_screen() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let mut body = consent(&bins, FULL, None, None);
    // The API user marks what it cannot work without; the accounts permission always is.
    body["Data"]["RequiredPermissions"] = serde_json::json!(["ReadBalances"]);
    let mut wrong = body.clone();
    wrong["Data"]["RequiredPermissions"] = serde_json::json!(["ReadAccountsBasic"]);
    let refused = s
        .api()
        .post(s.platform.url("/open-banking/v1/aisp/account-access-consents"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "required but not asked for");
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["Errors"][0]["Path"], "Data.RequiredPermissions", "{refused}");

    let mut wrong = body.clone();
    wrong["Data"]["PurposeTranslations"] = serde_json::json!({ "de": "Alle Konten an einem Ort" });
    let refused = s
        .api()
        .post(s.platform.url("/open-banking/v1/aisp/account-access-consents"))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "not a language of the platform");

    // The screen: every bank and permission ticked; the required ones cannot be unticked; the purpose in the page's
    // language when the API user gave it in several.
    let mut translated = body.clone();
    translated["Data"]["PurposeTranslations"] = serde_json::json!({ "ru": "Все ваши счета в одном месте" });
    let consent_id = s.create_consent_with(translated).await;
    assert_eq!(s.consent(&consent_id).await["PurposeTranslations"]["ru"], "Все ваши счета в одном месте");
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "st").await;
    let browser = Browser::customer(&s.platform);
    let screen = identify(&s.platform, &browser, &s.authorize_path(&request_uri), customer(), PHONE).await;
    screen.assert_contains("Show all your accounts in one place");
    browser.get("/lang/ru").await;
    let russian = browser.get("/oauth/authorize/consent").await;
    russian.assert_contains("Все ваши счета в одном месте");
    assert!(!russian.body.contains("Show all your accounts in one place"));
    browser.get("/lang/en").await;
    for code in ["ReadAccountsDetail", "ReadBalances"] {
        screen.assert_contains(&format!("name=\"permission\" value=\"{code}\" checked disabled>"));
    }
    screen.assert_contains("name=\"permission\" value=\"ReadTransactionsCredits\" checked>");
    screen.assert_contains("Money coming in").assert_contains("Dala Bank").assert_contains("needed by the application");
    // No bank left: refused, nothing stored, the screen again.
    let none =
        browser.post("/oauth/authorize/consent", &screen.csrf(), &[("decision", "allow"), ("choices", "1")]).await;
    assert_eq!(none.status, 422, "{}", none.body);
    none.assert_contains("At least one bank must stay ticked");
    assert_eq!(s.consent(&consent_id).await["Status"], "AwaitingAuthorisation");
    browser.post("/oauth/authorize/consent", &none.csrf(), &[("decision", "deny")]).await;

    // Allowed with Dala Bank and "money coming in" unticked, for three days.
    let altyn = organisation(&s.platform, "Altyn Bank").to_string();
    let (until, ends) = last_day(&s.platform, 3);
    let fields = [
        ("decision", "allow"),
        ("choices", "1"),
        ("bank", altyn.as_str()),
        ("permission", "ReadTransactionsDetail"),
        ("permission", "ReadTransactionsDebits"),
        ("until", until.as_str()),
    ];
    let (consent_id, token, _) = tokens_choosing(s, body, customer(), PHONE, &fields).await;
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Status"], "Authorised");
    assert_eq!(api_statuses(&data), [("Altyn Bank".to_string(), "Active".to_string())], "Dala Bank never asked");
    assert_eq!(
        data["Permissions"],
        serde_json::json!(["ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail", "ReadTransactionsDebits"]),
        "the required ones kept although not sent"
    );
    assert_eq!(data["ExpirationDateTime"], ends.as_str(), "the end of the last day chosen, in the operator's zone");
    let reason: String = db(&s.platform)
        .query_row(
            "SELECT reason FROM consent_history WHERE consent_id = ?1 AND status = 'Modified'",
            [&consent_id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.contains("ReadTransactionsCredits") && reason.contains("Dala Bank"), "{reason}");
    // The gateway serves what is left only.
    assert_eq!(servicers(s, &token).await, [w.banks[0].bin.clone()]);
    // Dala Bank's own list does not show a consent it was never asked for.
    let dala = w.banks[1].admin.get("/org/consents").await;
    assert!(!dala.body.contains(&consent_id), "{}", dala.body);
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_status_per_bank_and_a_narrowed_consent_followed_by_the_gateway_the_banks_and_the_api_user() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (consent_id, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), PHONE).await;
    let account =
        get_json(s, &token, "/accounts").await["Data"]["Account"][0]["AccountId"].as_str().unwrap().to_string();
    get_json(s, &token, &format!("/accounts/{account}/balances")).await;
    let (altyn, dala) = (organisation(&s.platform, "Altyn Bank"), organisation(&s.platform, "Dala Bank"));

    let browser = Browser::customer(&s.platform);
    let home = identify(&s.platform, &browser, "/my/start", customer(), PHONE).await;
    assert!(home.url.ends_with("/my"), "{}", home.url);
    let detail_path = format!("/my/consents/{consent_id}");
    let detail = browser.get(&detail_path).await;
    // Times in the operator's zone and the language's format (the attribute keeps RFC 3339 UTC).
    let given: String = db(&s.platform)
        .query_row("SELECT authorised_at FROM consents WHERE id = ?1", [&consent_id], |r| r.get(0))
        .unwrap();
    let shown = kopir::i18n::Texts { lang: kopir::i18n::Lang::En }.time(&given);
    detail.assert_contains(&format!("<time datetime=\"{given}\">{shown}</time>"));

    // Narrowing on /my: a required permission cannot go, an end in the past is refused, nothing changed is said.
    let csrf = detail.csrf();
    let altyn_id = altyn.to_string();
    let dala_id = dala.to_string();
    let keep_all = [
        ("choices", "1"),
        ("bank", altyn_id.as_str()),
        ("bank", dala_id.as_str()),
        ("permission", "ReadBalances"),
        ("permission", "ReadTransactionsDetail"),
        ("permission", "ReadTransactionsCredits"),
        ("permission", "ReadTransactionsDebits"),
    ];
    let unchanged = browser.post(&format!("{detail_path}/narrow"), &csrf, &keep_all).await;
    assert_eq!(unchanged.status, 422);
    unchanged.assert_contains("nothing was changed");
    let mut past = keep_all.to_vec();
    past.push(("until", "2020-01-01"));
    assert_eq!(browser.post(&format!("{detail_path}/narrow"), &csrf, &past).await.status, 422);
    let no_bank = browser.post(&format!("{detail_path}/narrow"), &csrf, &[("choices", "1")]).await;
    assert_eq!(no_bank.status, 422);
    no_bank.assert_contains("At least one bank must stay ticked");
    // Another customer's browser and a visitor without the journey get nothing.
    let stranger = Browser::customer(&s.platform);
    let anonymous = stranger.post(&format!("{detail_path}/narrow"), "forged", &keep_all).await;
    assert_eq!(anonymous.status, 403);
    assert!(stranger.get(&format!("{detail_path}/withdraw")).await.url.ends_with("/my"));
    let other = Browser::customer(&s.platform);
    let other_home = identify(&s.platform, &other, "/my/start", &crate::common::consent::iin(81), "+77013330081").await;
    assert_eq!(other.get(&format!("{detail_path}/withdraw")).await.status, 404);
    assert_eq!(other.post(&format!("{detail_path}/narrow"), &other_home.csrf(), &keep_all).await.status, 404);
    assert_eq!(s.consent(&consent_id).await["Permissions"].as_array().unwrap().len(), 5, "nothing changed yet");

    // Drop Dala Bank and the balances, end in two days.
    let (until, ends) = last_day(&s.platform, 2);
    let narrowed = browser
        .post(
            &format!("{detail_path}/narrow"),
            &csrf,
            &[
                ("choices", "1"),
                ("bank", altyn_id.as_str()),
                ("permission", "ReadTransactionsDetail"),
                ("permission", "ReadTransactionsCredits"),
                ("permission", "ReadTransactionsDebits"),
                ("until", until.as_str()),
            ],
        )
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    assert!(narrowed.url.ends_with("?done=narrowed"), "{}", narrowed.url);
    narrowed.assert_contains("Your consent is changed").assert_contains("Changed");
    narrowed.assert_contains(&status_cell("revoked", "Withdrawn"));
    // "Until" reads as the last day chosen (the end is when that day ends), not the next day's midnight.
    let english = kopir::i18n::Texts { lang: kopir::i18n::Lang::En };
    let chosen: jiff::civil::Date = until.parse().unwrap();
    assert_eq!(english.last_day(&ends), format!("{} {} {}", chosen.day(), month(chosen.month()), chosen.year()));
    narrowed.assert_contains(&format!("<time datetime=\"{ends}\">{}</time>", english.last_day(&ends)));

    // The API: the same status per bank; the permissions and the end as narrowed.
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Status"], "Authorised");
    assert_eq!(
        api_statuses(&data),
        [("Altyn Bank".to_string(), "Active".to_string()), ("Dala Bank".to_string(), "Revoked".to_string())]
    );
    assert!(!data["Permissions"].as_array().unwrap().iter().any(|p| p == "ReadBalances"), "{data}");
    assert_eq!(data["ExpirationDateTime"], ends.as_str());
    // The gateway follows on the next request, with the token already issued.
    let balances = get(s, &s.identity, &token, &format!("/accounts/{account}/balances")).await;
    assert_eq!(balances.status(), 403, "a dropped permission");
    assert_eq!(servicers(s, &token).await, [w.banks[0].bin.clone()], "a dropped bank");
    // History, audit journal and webhooks, all from the one transaction.
    let history = crate::common::participant::counts_by_key(
        &s.platform,
        &format!("SELECT status, count(*) FROM consent_history WHERE consent_id = '{consent_id}' GROUP BY status"),
    );
    assert_eq!(history.get("Modified"), Some(&1), "{history:?}");
    assert_eq!(history.get("ProviderRevoked"), Some(&1), "{history:?}");
    assert_eq!(count(&s.platform, "SELECT count(*) FROM audit_log WHERE action = 'consent.modified'"), 1);
    let events = crate::common::participant::counts_by_key(
        &s.platform,
        "SELECT o.name || ' ' || w.event_type, count(*) FROM webhook_outbox w JOIN organisations o ON o.id = w.organisation_id
         WHERE w.event_type IN ('consent.modified', 'consent.revoked') GROUP BY 1",
    );
    assert_eq!(events.get("Fintech One consent.modified"), Some(&1), "{events:?}");
    assert_eq!(events.get("Altyn Bank consent.modified"), Some(&1), "{events:?}");
    assert_eq!(events.get("Dala Bank consent.revoked"), Some(&1), "{events:?}");
    assert_eq!(events.get("Fintech One consent.revoked"), None, "{events:?}");

    // The same status everywhere: /my's list, each bank's list, the API user's list.
    let list = browser.get("/my").await;
    list.assert_contains(&bank_badge("Altyn Bank", "active", "Active"));
    list.assert_contains(&bank_badge("Dala Bank", "revoked", "Withdrawn"));
    let dala_list = w.banks[1].admin.get("/org/consents").await;
    assert!(row(&dala_list, &consent_id).contains(&status_cell("revoked", "Withdrawn")), "{}", dala_list.body);
    let altyn_list = w.banks[0].admin.get("/org/consents").await;
    assert!(row(&altyn_list, &consent_id).contains(&status_cell("active", "Active")));
    let user_list = s.user_admin.get("/org/consents").await;
    assert!(row(&user_list, &consent_id).contains(&bank_badge("Dala Bank", "revoked", "Withdrawn")));
    // Participant pages show times the same way: the list's creation time, the application's page.
    let created: String = db(&s.platform)
        .query_row("SELECT created_at FROM consents WHERE id = ?1", [&consent_id], |r| r.get(0))
        .unwrap();
    let texts = kopir::i18n::Texts { lang: kopir::i18n::Lang::En };
    assert!(
        row(&user_list, &consent_id).contains(&format!("<time datetime=\"{created}\">{}</time>", texts.time(&created)))
    );
    let app_created: String = db(&s.platform)
        .query_row("SELECT created_at FROM applications WHERE id = ?1", [s.app_id], |r| r.get(0))
        .unwrap();
    let app_page = s.user_admin.get(&format!("/org/apps/{}", s.app_id)).await;
    app_page.assert_contains(&format!("<time datetime=\"{app_created}\">{}</time>", texts.time(&app_created)));

    // Withdrawal asks first; the answer says what happened; every bank then reads "Withdrawn".
    let confirm = browser.get(&format!("{detail_path}/withdraw")).await;
    assert_eq!(confirm.status, 200);
    confirm.assert_contains("This cannot be undone").assert_contains("Yes, withdraw the consent");
    assert_eq!(s.consent(&consent_id).await["Status"], "Authorised", "asking changes nothing");
    let withdrawn = browser.post(&format!("{detail_path}/revoke"), &confirm.csrf(), &[]).await;
    assert_eq!(withdrawn.status, 200);
    assert!(withdrawn.url.ends_with("?done=withdrawn"), "{}", withdrawn.url);
    withdrawn.assert_contains("Your consent is withdrawn for every bank");
    let data = s.consent(&consent_id).await;
    assert_eq!(data["Status"], "Revoked");
    assert!(api_statuses(&data).iter().all(|(_, status)| status == "Revoked"), "{data}");
    assert_eq!(withdrawn.body.matches(&status_cell("revoked", "Withdrawn")).count(), 2, "each bank reads Withdrawn");
    let list = browser.get("/my").await;
    list.assert_contains(&bank_badge("Altyn Bank", "revoked", "Withdrawn"));
    let altyn_list = w.banks[0].admin.get("/org/consents").await;
    assert!(row(&altyn_list, &consent_id).contains(&status_cell("revoked", "Withdrawn")));
    assert_eq!(browser.get(&format!("{detail_path}/withdraw")).await.status, 409, "nothing left to withdraw");
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_errors_are_pages_in_the_language_and_the_my_journey_shows_its_own_steps() {
    let platform = Platform::start().await;
    // A path no route serves: a page in the visitor's language for a browser, JSON under the API and for API clients.
    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let get = |path: &str, lang: &str| {
        platform.client(None).get(platform.url(path)).header("accept", BROWSER).header("accept-language", lang).send()
    };
    let page = get("/my/consents/aac-x/nothing-here", "en").await.unwrap();
    assert_eq!(page.status(), 404);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().starts_with("<!doctype html>"));
    let russian = get("/nothing-here", "ru").await.unwrap();
    assert_eq!(russian.status(), 404);
    assert!(russian.text().await.unwrap().contains("<html lang=\"ru\">"));
    for path in ["/open-banking/v1/nothing-here", "/api/v1/nothing-here"] {
        let api = get(path, "en").await.unwrap();
        assert_eq!(api.status(), 404);
        assert!(api.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path}");
    }
    let client = platform.client(None).get(platform.url("/nothing-here")).send().await.unwrap();
    assert!(client.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "an API client");
    // The /my journey's steps end at "Your consents", not at a decision it never asks for.
    let customer = Browser::customer(&platform);
    let start = customer.get("/my/start").await;
    assert!(start.url.ends_with("/verify"), "{}", start.url);
    start.assert_contains("<li>Your consents</li>");
    assert!(!start.body.contains("Your decision"), "{}", start.body);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn my_remembers_the_customer_who_just_decided_for_the_configured_time_only() {
    for minutes in [10, 0] {
        let platform = Platform::start_with(move |c| c.oauth.remember_customer_minutes = minutes, None).await;
        let s = crate::common::consent::scenario_with(platform, 1).await;
        let consent_id = s.create_consent().await;
        let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "st").await;
        let browser = Browser::customer(&s.platform);
        let iin = crate::common::consent::iin(86);
        let screen = identify(&s.platform, &browser, &s.authorize_path(&request_uri), &iin, "+77013330086").await;
        let answered = browser.post("/oauth/authorize/consent", &screen.csrf(), &[("decision", "allow")]).await;
        assert_eq!(answered.status, 303, "{}", answered.body);
        let my = browser.get("/my").await;
        if minutes == 0 {
            my.assert_contains("Confirm it is me");
        } else {
            assert!(my.body.contains(&format!("/my/consents/{consent_id}")), "not remembered: {}", my.body);
            // The remembered journey answers no other authorization request, and ends when its time is over.
            assert!(browser.get("/oauth/authorize/consent").await.url.ends_with("/my"));
            s.platform.clock().advance(time::Duration::minutes(minutes as i64 + 1));
            browser.get("/my").await.assert_contains("Confirm it is me");
        }
        s.platform.shutdown().await;
    }
}
