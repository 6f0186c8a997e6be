//! The pilot's scenarios end to end, over real TLS against reference banks: APIs published through the providers'
//! pages (checked against each bank), connected through the marketplace, a customer's consent given through the
//! journey, and accounts, balances and transactions routed through the gateway — then every refusal.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::consent::{authorise, param};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get, get_json, tokens_for, world, world_with};
use crate::common::participant::{count, db, set_status};
use kopir::refbank::Fault;
use serde_json::Value;

const BANKS: [BankPlan; 3] = [
    BankPlan::new("Altyn Bank", "99034000001"),
    BankPlan::new("Dala Bank", "99034000002"),
    BankPlan::new("Kapshagai Bank", "99034000003"),
];

/// Waits (up to 10 s) until `sql` counts at least `least` rows (metering is written in batches); returns the count.
async fn wait_for(platform: &common::Platform, sql: &str, least: i64) -> i64 {
    common::eventually(&format!("{least} or more rows of {sql}"), Duration::from_secs(10), async || {
        let n = count(platform, sql);
        if n >= least { Ok(n) } else { Err(n) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_balances_and_transactions_flow_from_three_banks_under_a_live_consent() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (consent_id, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000001").await;

    // Scenario 4: the customer's accounts at all three banks in one answer.
    let body = get_json(s, &token, "/accounts").await;
    let accounts = body["Data"]["Account"].as_array().unwrap();
    assert!(accounts.len() >= 3, "{body}");
    let mut servicers: Vec<&str> = accounts.iter().map(|a| a["Servicer"]["Identification"].as_str().unwrap()).collect();
    servicers.sort();
    servicers.dedup();
    assert_eq!(servicers.len(), 3, "accounts from every bank");
    assert!(body["Meta"].get("MissingProviders").is_none());
    assert_eq!(body["Links"]["Self"], s.platform.url("/open-banking/v1/aisp/accounts").as_str());
    for account in accounts {
        let id = account["AccountId"].as_str().unwrap();
        assert!(id.len() <= 40 && !id.contains("acc-"), "platform-scoped, opaque: {id}");
        let iban = account["Account"][0]["Identification"].as_str().unwrap();
        assert!(kopir::kz::Iban::parse(iban).is_some(), "{iban}");
        assert_eq!(kopir::standard::validate("KzAccount", account), Ok(()));
    }

    // Scenario 5: balances and transactions of one account, pages linked at the platform.
    let kzt = accounts.iter().find(|a| a["Currency"] == "KZT").unwrap();
    let id = kzt["AccountId"].as_str().unwrap();
    let one = get_json(s, &token, &format!("/accounts/{id}")).await;
    assert_eq!(one["Data"]["Account"][0]["AccountId"], id);
    let balances = get_json(s, &token, &format!("/accounts/{id}/balances")).await;
    let balance = &balances["Data"]["Balance"][0];
    assert_eq!(balance["AccountId"], id);
    assert!(balance["Amount"]["MinorUnits"].is_i64(), "{balance}");
    let page1 = get_json(s, &token, &format!("/accounts/{id}/transactions")).await;
    let txns = page1["Data"]["Transaction"].as_array().unwrap();
    assert!(!txns.is_empty());
    assert!(txns.iter().all(|t| t["AccountId"] == id));
    assert!(txns[0]["TransactionInformation"].is_string(), "Detail fields with ReadTransactionsDetail");
    let next = page1["Links"]["Next"].as_str().expect("a year of history has more than one page");
    assert!(next.starts_with(&s.platform.url(&format!("/open-banking/v1/aisp/accounts/{id}/transactions?"))), "{next}");
    let page2 = get_json(s, &token, next).await;
    let second = page2["Data"]["Transaction"].as_array().unwrap();
    assert!(!second.is_empty());
    assert_ne!(second[0]["TransactionId"], txns[0]["TransactionId"]);
    assert!(
        second[0]["BookingDateTime"].as_str() <= txns.last().unwrap()["BookingDateTime"].as_str(),
        "newest first, across pages"
    );
    // A date filter inside the window.
    let from = kopir::clock::rfc3339(kopir::clock::now() - time::Duration::days(10));
    let recent = get_json(s, &token, &format!("/accounts/{id}/transactions?fromBookingDateTime={from}")).await;
    assert!(
        recent["Data"]["Transaction"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["BookingDateTime"].as_str().unwrap() >= from.as_str())
    );

    // Metered, with the consent's last use; and no account data stored anywhere.
    let metered = wait_for(
        &s.platform,
        "SELECT count(*) FROM exchanges WHERE status = 200 AND provider_organisation_id IS NOT NULL",
        8,
    )
    .await;
    assert!(metered >= 8, "{metered}: 3 accounts, account, balances, 3 transaction pages");
    assert_eq!(count(&s.platform, "SELECT count(*) FROM exchanges WHERE endpoint = 'accounts' AND status = 200"), 3);
    assert_eq!(count(&s.platform, "SELECT count(*) FROM exchanges WHERE interaction_id = 'itest-0001'"), metered);
    let used: Option<String> = db(&s.platform)
        .query_row("SELECT last_used_at FROM consents WHERE id = ?1", [&consent_id], |r| r.get(0))
        .unwrap();
    assert!(used.is_some());
    let dump = std::process::Command::new("sqlite3").arg(s.platform.config.db_path()).arg(".dump").output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    let iban = accounts[0]["Account"][0]["Identification"].as_str().unwrap();
    assert!(!dump.contains(iban), "an IBAN is stored");
    assert!(!dump.contains(txns[0]["TransactionId"].as_str().unwrap()), "a transaction is stored");

    // Scenario 8: the customer withdraws one bank on /my; then all.
    let customer_browser = common::browser::Browser::customer(&s.platform);
    let page = common::consent::identify(&s.platform, &customer_browser, "/my/start", customer(), "+77010000001").await;
    assert!(page.url.ends_with("/my"));
    let dala: i64 = db(&s.platform)
        .query_row("SELECT id FROM organisations WHERE bin = ?1", [&w.banks[1].bin], |r| r.get(0))
        .unwrap();
    let detail = customer_browser.get(&format!("/my/consents/{consent_id}")).await;
    customer_browser.post(&format!("/my/consents/{consent_id}/banks/{dala}/revoke"), &detail.csrf(), &[]).await;
    let body = get_json(s, &token, "/accounts").await;
    let left: Vec<&str> = body["Data"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Servicer"]["Identification"].as_str().unwrap())
        .collect();
    assert!(!left.contains(&w.banks[1].bin.as_str()), "the withdrawn bank still answers");
    assert!(!left.is_empty());
    let dala_account = accounts.iter().find(|a| a["Servicer"]["Identification"] == w.banks[1].bin.as_str()).unwrap();
    let refused =
        get(s, &s.identity, &token, &format!("/accounts/{}", dala_account["AccountId"].as_str().unwrap())).await;
    common::expect_ob_error(refused, 404, "UK.OBIE.Resource.NotFound").await;
    customer_browser.post(&format!("/my/consents/{consent_id}/revoke"), &detail.csrf(), &[]).await;
    let refused = get(s, &s.identity, &token, "/accounts").await;
    common::expect_ob_error(refused, 403, "UK.OBIE.Resource.InvalidConsentStatus").await;
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_refuses_what_the_consent_token_certificate_or_connection_does_not_allow() {
    let w = world_with(&BANKS[..2], |c| c.oauth.expiry_sweep_secs = 1).await;
    let s = &w.s;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let window_from = kopir::clock::rfc3339(kopir::clock::now() - time::Duration::days(60));
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, Some(&window_from), None), customer(), "+77010000002").await;
    let accounts = get_json(s, &token, "/accounts").await;
    let id = accounts["Data"]["Account"][0]["AccountId"].as_str().unwrap().to_string();

    // No token, a garbage token, a token with another certificate, no certificate.
    let anonymous = s
        .platform
        .client(Some(&s.identity))
        .get(s.platform.url("/open-banking/v1/aisp/accounts"))
        .send()
        .await
        .unwrap();
    common::expect_ob_error(anonymous, 401, "UK.OBIE.Header.Missing").await;
    common::expect_ob_error(get(s, &s.identity, "not.a.token", "/accounts").await, 401, "UK.OBIE.Reauthenticate").await;
    let (_, _, other_identity) = common::consent::application(&s.user_admin, "Second App").await;
    common::expect_ob_error(get(s, &other_identity, &token, "/accounts").await, 401, "UK.OBIE.Reauthenticate").await;
    let stray = s.platform.issue_identity("stray");
    common::expect_ob_error(get(s, &stray, &token, "/accounts").await, 401, "UK.OBIE.Reauthenticate").await;
    let no_cert = s
        .platform
        .client(None)
        .get(s.platform.url("/open-banking/v1/aisp/accounts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    common::expect_ob_error(no_cert, 401, "UK.OBIE.Header.Missing").await;

    // An account id of another consent, an altered one.
    let (_, other_token, _) =
        tokens_for(s, consent(&bins, FULL, None, None), kopir::standard::SANDBOX_CUSTOMERS[1].iin, "+77010000003")
            .await;
    common::expect_ob_error(
        get(s, &s.identity, &other_token, &format!("/accounts/{id}")).await,
        404,
        "UK.OBIE.Resource.NotFound",
    )
    .await;
    let mut altered = id.clone();
    altered.insert(6, 'x');
    common::expect_ob_error(
        get(s, &s.identity, &token, &format!("/accounts/{altered}/balances")).await,
        404,
        "UK.OBIE.Resource.NotFound",
    )
    .await;

    // Dates outside the consent's window, or malformed.
    let before = kopir::clock::rfc3339(kopir::clock::now() - time::Duration::days(90));
    let error = common::expect_ob_error(
        get(s, &s.identity, &token, &format!("/accounts/{id}/transactions?fromBookingDateTime={before}")).await,
        400,
        "UK.OBIE.Field.InvalidDate",
    )
    .await;
    assert!(error["Errors"][0]["Message"].as_str().unwrap().contains("window"), "{error}");
    common::expect_ob_error(
        get(s, &s.identity, &token, &format!("/accounts/{id}/transactions?toBookingDateTime=yesterday")).await,
        400,
        "UK.OBIE.Field.InvalidDate",
    )
    .await;
    common::expect_ob_error(
        get(s, &s.identity, &token, &format!("/accounts/{id}/transactions?limit=5")).await,
        400,
        "UK.OBIE.Field.Unexpected",
    )
    .await;
    // Without a date, the window applies.
    let all = get_json(s, &token, &format!("/accounts/{id}/transactions")).await;
    let last_page = all["Links"]["Last"].as_str().map(String::from);
    let oldest_page = match last_page {
        Some(url) => get_json(s, &token, &url).await,
        None => all.clone(),
    };
    let oldest = oldest_page["Data"]["Transaction"].as_array().unwrap().last().unwrap()["BookingDateTime"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(oldest >= window_from, "{oldest} is before the window {window_from}");

    // A Basic-only consent without balances: no identification, no transaction details, no balances.
    let basic = consent(&bins, &["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits"], None, None);
    let (_, basic_token, _) = tokens_for(s, basic, customer(), "+77010000004").await;
    let accounts = get_json(s, &basic_token, "/accounts").await;
    let first = &accounts["Data"]["Account"][0];
    assert!(first.get("Account").is_none(), "identification without ReadAccountsDetail: {first}");
    let basic_id = first["AccountId"].as_str().unwrap();
    let txns = get_json(s, &basic_token, &format!("/accounts/{basic_id}/transactions")).await;
    for t in txns["Data"]["Transaction"].as_array().unwrap() {
        assert!(t.get("TransactionInformation").is_none() && t.get("MerchantDetails").is_none(), "{t}");
        assert_eq!(t["CreditDebitIndicator"], "Credit", "credits only");
    }
    common::expect_ob_error(
        get(s, &s.identity, &basic_token, &format!("/accounts/{basic_id}/balances")).await,
        403,
        "UK.OBIE.Resource.ConsentMismatch",
    )
    .await;

    // Not connected any more: that bank is missing from the fan-out, and its accounts cannot be read.
    common::exchange::disconnect(&s.user_admin, w.banks[1].api_id, s.app_id).await;
    let body = get_json(s, &token, "/accounts").await;
    let missing = body["Meta"]["MissingProviders"].as_array().unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["Bin"], w.banks[1].bin.as_str());
    common::exchange::connect(&s.user_admin, w.banks[1].api_id, s.app_id).await;

    // A suspended API user, then reinstated.
    set_status(&s.platform, &s.user_bin, "suspended").await;
    common::expect_ob_error(get(s, &s.identity, &token, "/accounts").await, 401, "UK.OBIE.Signature.Invalid").await;
    set_status(&s.platform, &s.user_bin, "accredited").await;
    get_json(s, &token, "/accounts").await;

    // Scenario 8 again: expired. A consent that ends in a few seconds stops working on its own.
    let soon = kopir::clock::rfc3339(kopir::clock::now() + time::Duration::seconds(4));
    let mut body = consent(&bins, FULL, None, None);
    body["Data"]["ExpirationDateTime"] = soon.into();
    let (expiring, expiring_token, _) = tokens_for(s, body, customer(), "+77010000005").await;
    get_json(s, &expiring_token, "/accounts").await;
    s.platform.clock().advance(time::Duration::seconds(5));
    common::expect_ob_error(
        get(s, &s.identity, &expiring_token, "/accounts").await,
        403,
        "UK.OBIE.Resource.InvalidConsentStatus",
    )
    .await;
    // The expiry sweep, woken by the clock, records it.
    common::eventually("the sweep to mark the consent expired", Duration::from_secs(10), async || {
        let status = s.consent(&expiring).await["Status"].clone();
        if status == "Expired" { Ok(()) } else { Err(status) }
    })
    .await;

    // Scenario 7: a refused consent gives no code, hence no token at all.
    let refused_consent = s.create_consent_with(consent(&bins, FULL, None, None)).await;
    let request_uri = s.push(&refused_consent, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "r").await;
    let params = authorise(s, &request_uri, customer(), "+77010000006", "deny").await;
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert!(param(&params, "code").is_none());

    // Refusals are metered too (no bank called).
    assert!(
        wait_for(
            &s.platform,
            "SELECT count(*) FROM exchanges WHERE provider_organisation_id IS NULL AND status >= 400",
            1
        )
        .await
            > 0
    );
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_failing_garbled_or_oversized_bank_is_named_and_never_stalls_the_others() {
    let plans = [
        BankPlan::new("Altyn Bank", "99034000001"),
        BankPlan { name: "Slow Bank", digits: "99034000002", production_fault: Some(Fault::Slow) },
        BankPlan { name: "Broken Bank", digits: "99034000003", production_fault: Some(Fault::Error) },
        BankPlan { name: "Garbled Bank", digits: "99034000004", production_fault: Some(Fault::Malformed) },
        BankPlan { name: "Bloated Bank", digits: "99034000005", production_fault: Some(Fault::Oversized) },
    ];
    let w = world(&plans).await;
    let s = &w.s;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000007").await;
    let started = Instant::now();
    let body = get_json(s, &token, "/accounts").await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3500), "the slow bank (4 s) held the answer up: {took:?}");
    let accounts = body["Data"]["Account"].as_array().unwrap();
    assert!(!accounts.is_empty());
    assert!(accounts.iter().all(|a| a["Servicer"]["Identification"] == w.banks[0].bin.as_str()));
    let missing: Vec<(String, String)> = body["Meta"]["MissingProviders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["Name"].as_str().unwrap().to_string(), m["Reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(missing.len(), 4, "{missing:?}");
    let reason = |name: &str| missing.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone()).unwrap();
    assert!(reason("Slow Bank").contains("did not answer within 1500 ms"), "{missing:?}");
    assert!(reason("Broken Bank").contains("answered with an error"), "{missing:?}");
    assert!(reason("Garbled Bank").contains("malformed"), "{missing:?}");
    assert!(reason("Bloated Bank").contains("more than 16 MiB"), "{missing:?}");
    let statuses = wait_for(&s.platform, "SELECT count(*) FROM exchanges WHERE status = 504", 1).await;
    assert_eq!(statuses, 1, "the time-out is metered");

    // With only failing banks, the answer is a standard error.
    let (_, only_slow, _) = tokens_for(s, consent(&[bins[1]], FULL, None, None), customer(), "+77010000008").await;
    let error =
        common::expect_ob_error(get(s, &s.identity, &only_slow, "/accounts").await, 504, "UK.OBIE.UnexpectedError")
            .await;
    assert!(error["Errors"][0]["Message"].as_str().unwrap().contains("Slow Bank"));
    let _: Value = error;
    w.s.platform.shutdown().await;
}
