//! The reference bank against a real platform: it answers only the platform (client certificate from the platform's
//! CA, signed consent header verified with the platform's JWKS), only for the header's customer, within the
//! permissions and the window, in the shapes of the standard — and the platform serves that standard.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{Identity, Platform, client_for, foreign_identity};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kopir::refbank::{self, BankConfig, Fault, RunningBank};
use kopir::standard::{self, CONSENT_HEADER, CONSENT_TYP, ConsentClaims, SANDBOX_CUSTOMERS};
use serde_json::Value;
use time::OffsetDateTime;
use tower::ServiceExt;

const BIN: &str = "000740001307";
const OTHER_BIN: &str = "990140000384";
const DETAIL: &[&str] = &[
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
];

struct Bank {
    platform: Platform,
    bank: RunningBank,
    /// The platform's own client certificate, as its gateway presents it.
    identity: Identity,
    _dir: tempfile::TempDir,
}

async fn start_bank(platform: Platform, fault: Option<Fault>) -> Bank {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BankConfig::new("Test Bank", BIN, dir.path(), platform.url(""), platform.root_pem());
    config.seed = 11;
    config.fault = fault;
    config.fault_delay = Duration::from_millis(1_500);
    let bank = refbank::start(config).await.unwrap();
    let paths = kopir::pki::PkiPaths::new(&platform.config);
    let identity = Identity {
        chain_pem: std::fs::read_to_string(paths.platform_client_cert()).unwrap(),
        key_pem: std::fs::read_to_string(paths.platform_client_key()).unwrap(),
    };
    Bank { platform, bank, identity, _dir: dir }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(t: i64) -> String {
    kopir::clock::rfc3339(OffsetDateTime::from_unix_timestamp(t).unwrap())
}

impl Bank {
    fn claims(&self, iin: &str, permissions: &[&str]) -> ConsentClaims {
        ConsentClaims {
            iss: self.platform.url(""),
            aud: BIN.into(),
            sub: iin.into(),
            consent_id: "consent-test".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            transaction_from: None,
            transaction_to: None,
            interaction_id: "interaction-test".into(),
            iat: now(),
            exp: now() + 60,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    async fn sign(&self, claims: &ConsentClaims) -> String {
        let state = &self.platform.running().state;
        state.signer.sign(&state.db, CONSENT_TYP, claims).await.unwrap()
    }

    async fn header(&self, iin: &str, permissions: &[&str]) -> String {
        self.sign(&self.claims(iin, permissions)).await
    }

    fn client(&self) -> reqwest::Client {
        client_for(self.bank.addr, &self.bank.ca_pem, Some(&self.identity), None)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bank.base_url)
    }

    async fn call(&self, url: &str, header: Option<&str>) -> reqwest::Response {
        let mut request = self.client().get(url);
        if let Some(header) = header {
            request = request.header(CONSENT_HEADER, header);
        }
        request.send().await.unwrap()
    }

    /// A 200 answer's body, checked against the standard's schema.
    async fn ok(&self, url: &str, header: &str, schema: &str) -> Value {
        let response = self.call(url, Some(header)).await;
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        valid(schema, &body);
        body
    }

    async fn accounts(&self, iin: &str) -> Vec<Value> {
        let header = self.header(iin, DETAIL).await;
        let body = self.ok(&self.url("/accounts"), &header, "KzReadAccount").await;
        body["Data"]["Account"].as_array().unwrap().clone()
    }

    /// Follows `Links.Next` from `url` to the end; returns every page.
    async fn pages(&self, url: &str, header: &str) -> Vec<Value> {
        let mut pages = vec![self.ok(url, header, "KzReadTransaction").await];
        while let Some(next) = pages.last().unwrap()["Links"]["Next"].as_str().map(str::to_string) {
            pages.push(self.ok(&next, header, "KzReadTransaction").await);
            assert!(pages.len() < 100, "runaway pagination");
        }
        pages
    }
}

fn valid(schema: &str, value: &Value) {
    if let Err(errors) = standard::validate(schema, value) {
        panic!("not a valid {schema}: {errors:?}\n{value:#}");
    }
}

/// Checks the standard error body and code, and that it validates.
async fn refused(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert!(response.headers().contains_key("x-fapi-interaction-id"));
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    valid("ErrorResponse", &body);
    assert_eq!(body["Errors"][0]["ErrorCode"], code, "{body}");
    assert_eq!(body["Id"], request_id.as_str());
    body
}

fn transactions_of(pages: &[Value]) -> Vec<Value> {
    pages.iter().flat_map(|p| p["Data"]["Transaction"].as_array().unwrap().clone()).collect()
}

fn times(transactions: &[Value]) -> Vec<i64> {
    transactions
        .iter()
        .map(|t| kopir::clock::parse(t["BookingDateTime"].as_str().unwrap()).unwrap().unix_timestamp())
        .collect()
}

#[tokio::test]
async fn calls_without_the_platforms_credentials_are_refused() {
    let b = start_bank(Platform::start().await, None).await;
    let customer = SANDBOX_CUSTOMERS[0].iin;
    let accounts = b.url("/accounts");
    let good = b.header(customer, DETAIL).await;

    // No client certificate, or one from another CA: refused at the handshake.
    for identity in [None, Some(foreign_identity("intruder"))] {
        let client = client_for(b.bank.addr, &b.bank.ca_pem, identity.as_ref(), None);
        let sent = client.get(&accounts).header(CONSENT_HEADER, &good).send().await;
        match sent {
            Err(_) => {}
            Ok(response) => assert_eq!(response.status(), 401, "a call without the platform's certificate was served"),
        }
    }
    // A participant's certificate from the platform's CA gets through TLS but is not the platform's, even with a
    // good header: the bank looks for the platform's certificate policy.
    let participant = b.platform.issue_identity("some-fintech");
    let client = client_for(b.bank.addr, &b.bank.ca_pem, Some(&participant), None);
    refused(client.get(&accounts).send().await.unwrap(), 403, "UK.OBIE.Resource.ConsentMismatch").await;
    refused(
        client.get(&accounts).header(CONSENT_HEADER, &good).send().await.unwrap(),
        403,
        "UK.OBIE.Resource.ConsentMismatch",
    )
    .await;

    refused(b.call(&accounts, None).await, 401, "UK.OBIE.Header.Missing").await;
    refused(b.call(&accounts, Some("not a jws")).await, 401, "UK.OBIE.Signature.Invalid").await;

    // Signed by a key that is not the platform's, under the platform's key id and under an unknown one.
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    let intruder = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let intruder = EncodingKey::from_ec_pem(intruder.serialize_pem().as_bytes()).unwrap();
    for key_id in [kid.clone(), "no-such-key".to_string()] {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key_id);
        header.typ = Some(CONSENT_TYP.into());
        let forged = jsonwebtoken::encode(&header, &b.claims(customer, DETAIL), &intruder).unwrap();
        refused(b.call(&accounts, Some(&forged)).await, 401, "UK.OBIE.Signature.Invalid").await;
    }
    // A tampered payload under a genuine signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut tampered = b.claims(SANDBOX_CUSTOMERS[1].iin, DETAIL);
    tampered.iat = 0;
    parts[1] = base64_url(&serde_json::to_vec(&tampered).unwrap());
    refused(b.call(&accounts, Some(&parts.join("."))).await, 401, "UK.OBIE.Signature.Invalid").await;

    // Genuine signatures over claims the bank must not accept.
    let mut expired = b.claims(customer, DETAIL);
    (expired.iat, expired.exp) = (now() - 900, now() - 600);
    let mut elsewhere = b.claims(customer, DETAIL);
    elsewhere.aud = OTHER_BIN.into();
    let mut foreign_issuer = b.claims(customer, DETAIL);
    foreign_issuer.iss = "https://impostor.example".into();
    for claims in [expired, elsewhere, foreign_issuer] {
        let header = b.sign(&claims).await;
        refused(b.call(&accounts, Some(&header)).await, 401, "UK.OBIE.Signature.Invalid").await;
    }
    let state = &b.platform.running().state;
    let wrong_type = state.signer.sign(&state.db, "at+jwt", &b.claims(customer, DETAIL)).await.unwrap();
    refused(b.call(&accounts, Some(&wrong_type)).await, 401, "UK.OBIE.Signature.Invalid").await;

    // And the genuine header works.
    assert_eq!(b.call(&accounts, Some(&good)).await.status(), 200);
    b.bank.shutdown().await;
}

#[tokio::test]
async fn a_rotated_platform_key_is_fetched_and_both_keys_verify() {
    let b = start_bank(Platform::start().await, None).await;
    let iin = SANDBOX_CUSTOMERS[2].iin;
    let url = b.url("/accounts");
    let before = b.header(iin, DETAIL).await;
    assert_eq!(b.call(&url, Some(&before)).await.status(), 200);
    let rotated = b.platform.kopir().args(["keys", "rotate", "--retain-hours", "24"]).output().unwrap();
    common::assert_success(&rotated);
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let after = common::eventually("the platform to sign with the new key", Duration::from_secs(15), async || {
        let header = b.header(iin, DETAIL).await;
        if kid(&header) != kid(&before) { Ok(header) } else { Err(kid(&header)) }
    })
    .await;
    // The bank has never seen the new key id: it fetches the JWKS again (within its pause) and accepts it.
    assert_eq!(b.call(&url, Some(&after)).await.status(), 200);
    assert_eq!(b.call(&url, Some(&before)).await.status(), 200, "the retired key still verifies what it signed");
    b.bank.shutdown().await;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn accounts_of_the_headers_customer_only_with_detail_as_permitted() {
    let b = start_bank(Platform::start().await, None).await;
    let customer = SANDBOX_CUSTOMERS[0];
    let accounts = b.accounts(customer.iin).await;
    assert_eq!(accounts.len(), 3, "two KZT accounts and a USD one");
    assert!(accounts.iter().any(|a| a["Currency"] == "USD"));
    let mut ibans = HashSet::new();
    for account in &accounts {
        valid("KzAccountDetail", account);
        assert_eq!(account["AccountType"], "Personal");
        assert_eq!(account["AccountSubType"], "CurrentAccount");
        let identification = &account["Account"][0];
        assert_eq!(identification["SchemeName"], "KZ.IBAN");
        assert_eq!(identification["Name"], customer.name);
        let iban = kopir::kz::Iban::parse(identification["Identification"].as_str().unwrap()).unwrap();
        assert_eq!(iban.bank_code(), b.bank.bank_code);
        assert!(ibans.insert(iban.as_str().to_string()));
    }

    // Basic: no identification.
    let basic = b.header(customer.iin, &["ReadAccountsBasic"]).await;
    let body = b.ok(&b.url("/accounts"), &basic, "KzReadAccount").await;
    assert_eq!(body["Data"]["Account"].as_array().unwrap().len(), 3);
    for account in body["Data"]["Account"].as_array().unwrap() {
        valid("KzAccountBasic", account);
        assert!(account.get("Account").is_none());
    }
    assert_eq!(body["Links"]["Self"], b.url("/accounts").as_str());
    assert_eq!(body["Meta"]["TotalPages"], 1);

    // One account, the same shape.
    let id = accounts[0]["AccountId"].as_str().unwrap();
    let one = b.ok(&b.url(&format!("/accounts/{id}")), &basic, "KzReadAccount").await;
    assert_eq!(one["Data"]["Account"].as_array().unwrap().len(), 1);
    assert_eq!(one["Data"]["Account"][0]["AccountId"], id);

    // Not found: an unknown id, and another customer's account (as if it did not exist).
    refused(b.call(&b.url("/accounts/acc-000000000000"), Some(&basic)).await, 404, "UK.OBIE.Resource.NotFound").await;
    let others = b.accounts(SANDBOX_CUSTOMERS[1].iin).await;
    let theirs = others[0]["AccountId"].as_str().unwrap();
    assert!(accounts.iter().all(|a| a["AccountId"] != theirs));
    for path in [format!("/accounts/{theirs}"), format!("/accounts/{theirs}/balances")] {
        let header = b.header(customer.iin, DETAIL).await;
        refused(b.call(&b.url(&path), Some(&header)).await, 404, "UK.OBIE.Resource.NotFound").await;
    }
    let header = b.header(customer.iin, DETAIL).await;
    let url = b.url(&format!("/accounts/{theirs}/transactions"));
    refused(b.call(&url, Some(&header)).await, 404, "UK.OBIE.Resource.NotFound").await;

    // A customer the bank does not know has no accounts.
    let stranger = kopir::kz::with_control_digit("99010140012").unwrap();
    assert!(b.accounts(&stranger).await.is_empty());

    // Without an accounts permission: refused.
    let balances_only = b.header(customer.iin, &["ReadBalances"]).await;
    refused(b.call(&b.url("/accounts"), Some(&balances_only)).await, 403, "UK.OBIE.Resource.ConsentMismatch").await;

    // Every sandbox customer is there, with at least one KZT current account.
    for sandbox in SANDBOX_CUSTOMERS {
        assert!(b.accounts(sandbox.iin).await.iter().any(|a| a["Currency"] == "KZT"), "{}", sandbox.iin);
    }

    // The interaction id is echoed.
    let response = b
        .client()
        .get(b.url("/accounts"))
        .header(CONSENT_HEADER, &basic)
        .header("x-fapi-interaction-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-fapi-interaction-id"], "abc-123");
    b.bank.shutdown().await;
}

#[tokio::test]
async fn balances_need_read_balances_and_agree_with_the_transactions() {
    let b = start_bank(Platform::start().await, None).await;
    let iin = SANDBOX_CUSTOMERS[0].iin;
    let accounts = b.accounts(iin).await;
    for account in &accounts {
        let id = account["AccountId"].as_str().unwrap();
        let currency = account["Currency"].as_str().unwrap();
        let url = b.url(&format!("/accounts/{id}/balances"));
        let without = b.header(iin, &["ReadAccountsDetail", "ReadTransactionsDetail", "ReadTransactionsCredits"]).await;
        refused(b.call(&url, Some(&without)).await, 403, "UK.OBIE.Resource.ConsentMismatch").await;

        let header = b.header(iin, DETAIL).await;
        let body = b.ok(&url, &header, "KzReadBalance").await;
        let signed = |kind: &str| -> i64 {
            let balance = body["Data"]["Balance"].as_array().unwrap().iter().find(|x| x["Type"] == kind).unwrap();
            assert_eq!(balance["AccountId"], id);
            assert_eq!(balance["Amount"]["Currency"], currency);
            let units = balance["Amount"]["MinorUnits"].as_i64().unwrap();
            if balance["CreditDebitIndicator"] == "Credit" { units } else { -units }
        };
        let (booked, available) = (signed("InterimBooked"), signed("InterimAvailable"));

        // The newest booked transaction's running balance is the booked balance; pending debits make the difference.
        let page = b.ok(&b.url(&format!("/accounts/{id}/transactions")), &header, "KzReadTransaction").await;
        let transactions = page["Data"]["Transaction"].as_array().unwrap();
        if let Some(newest) = transactions.iter().find(|t| t["Status"] == "Booked") {
            let units = newest["Balance"]["Amount"]["MinorUnits"].as_i64().unwrap();
            let running = if newest["Balance"]["CreditDebitIndicator"] == "Credit" { units } else { -units };
            assert_eq!(running, booked, "{id}");
        }
        let pending: i64 = transactions
            .iter()
            .filter(|t| t["Status"] == "Pending")
            .map(|t| t["Amount"]["MinorUnits"].as_i64().unwrap())
            .sum();
        assert_eq!(available, booked - pending, "{id}");
    }
    b.bank.shutdown().await;
}

#[tokio::test]
async fn transactions_are_paged_newest_first_filtered_and_kept_within_the_window() {
    let b = start_bank(Platform::start().await, None).await;
    let iin = SANDBOX_CUSTOMERS[0].iin;
    let accounts = b.accounts(iin).await;
    let main = accounts.iter().find(|a| a["Nickname"] == "Main account").unwrap();
    let id = main["AccountId"].as_str().unwrap();
    let url = b.url(&format!("/accounts/{id}/transactions"));
    let header = b.header(iin, DETAIL).await;

    // Every page, following Next; newest first across pages; TotalPages and the links agree.
    let pages = b.pages(&url, &header).await;
    let total_pages = pages[0]["Meta"]["TotalPages"].as_u64().unwrap() as usize;
    assert!(total_pages > 5, "a year of a salary account is many pages");
    assert_eq!(pages.len(), total_pages);
    let all = transactions_of(&pages);
    assert!(pages[..total_pages - 1].iter().all(|p| p["Data"]["Transaction"].as_array().unwrap().len() == 50));
    let at = times(&all);
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    let ids: HashSet<&str> = all.iter().map(|t| t["TransactionId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "a transaction repeated across pages");
    assert!(at[0] <= now() && at[at.len() - 1] >= now() - 367 * 86_400);
    assert!(all.iter().any(|t| t["CreditDebitIndicator"] == "Credit"));
    assert!(all.iter().any(|t| t["CreditDebitIndicator"] == "Debit"));
    assert!(all.iter().any(|t| t["MerchantDetails"]["MerchantName"] == "Yandex Go"));
    for t in &all {
        valid("KzTransactionDetail", t);
        assert_eq!(t["AccountId"], id);
    }
    let meta = &pages[0]["Meta"];
    assert_eq!(meta["LastAvailableDateTime"], all[0]["BookingDateTime"]);
    assert_eq!(meta["FirstAvailableDateTime"], all[all.len() - 1]["BookingDateTime"]);

    let first = &pages[0]["Links"];
    assert!(first.get("Prev").is_none());
    assert_eq!(first["Self"], first["First"]);
    let last = &pages[total_pages - 1]["Links"];
    assert!(last.get("Next").is_none());
    assert_eq!(last["Self"], first["Last"]);
    assert!(first["Self"].as_str().unwrap().starts_with(&b.bank.base_url));
    // Prev of page 2 is page 1; a page past the end is empty.
    let back = b.ok(pages[1]["Links"]["Prev"].as_str().unwrap(), &header, "KzReadTransaction").await;
    assert_eq!(back["Data"], pages[0]["Data"]);
    let beyond = b.ok(&format!("{url}?page={}", total_pages + 1), &header, "KzReadTransaction").await;
    assert!(beyond["Data"]["Transaction"].as_array().unwrap().is_empty());

    // Date filters, inclusive, and kept in the links.
    let (from, to) = (now() - 60 * 86_400, now() - 30 * 86_400);
    let query = format!("fromBookingDateTime={}&toBookingDateTime={}", rfc3339(from), rfc3339(to));
    let filtered = transactions_of(&b.pages(&format!("{url}?{query}"), &header).await);
    let expected: Vec<&Value> = all.iter().zip(&at).filter(|(_, t)| (from..=to).contains(*t)).map(|(v, _)| v).collect();
    assert_eq!(filtered.len(), expected.len());
    assert!(!filtered.is_empty());
    assert!(times(&filtered).iter().all(|t| (from..=to).contains(t)));
    // An exact booking time as both bounds finds that transaction (inclusive).
    let one = all[10]["BookingDateTime"].as_str().unwrap();
    let exact =
        b.ok(&format!("{url}?fromBookingDateTime={one}&toBookingDateTime={one}"), &header, "KzReadTransaction").await;
    assert!(
        exact["Data"]["Transaction"].as_array().unwrap().iter().any(|t| t["TransactionId"] == all[10]["TransactionId"])
    );

    // Malformed dates and pages.
    for bad in ["fromBookingDateTime=yesterday", "toBookingDateTime=2026-02-30T00:00:00Z"] {
        let body =
            refused(b.call(&format!("{url}?{bad}"), Some(&header)).await, 400, "UK.OBIE.Field.InvalidDate").await;
        assert!(body["Errors"][0]["Path"].as_str().unwrap().ends_with("BookingDateTime"));
    }
    refused(b.call(&format!("{url}?page=0"), Some(&header)).await, 400, "UK.OBIE.Field.Invalid").await;

    // The consent's window: nothing outside it, whatever the query asks, and Meta spans only the window.
    let mut windowed = b.claims(iin, DETAIL);
    let (window_from, window_to) = (now() - 90 * 86_400, now() - 45 * 86_400);
    windowed.transaction_from = Some(rfc3339(window_from));
    windowed.transaction_to = Some(rfc3339(window_to));
    let windowed = b.sign(&windowed).await;
    let wide = format!("{url}?fromBookingDateTime={}", rfc3339(now() - 300 * 86_400));
    let within = b.pages(&wide, &windowed).await;
    let inside = transactions_of(&within);
    assert!(!inside.is_empty());
    assert!(times(&inside).iter().all(|t| (window_from..=window_to).contains(t)));
    assert_eq!(inside.len(), at.iter().filter(|t| (window_from..=window_to).contains(*t)).count());
    let first_available = kopir::clock::parse(within[0]["Meta"]["FirstAvailableDateTime"].as_str().unwrap()).unwrap();
    assert!(first_available.unix_timestamp() >= window_from);

    // Basic hides the Detail fields.
    let basic = b
        .header(
            iin,
            &["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits", "ReadTransactionsDebits"],
        )
        .await;
    let plain = b.ok(&url, &basic, "KzReadTransaction").await;
    for t in plain["Data"]["Transaction"].as_array().unwrap() {
        valid("KzTransactionBasic", t);
        for field in ["TransactionInformation", "TransactionReference", "MerchantDetails", "Balance"] {
            assert!(t.get(field).is_none(), "{field} under Basic");
        }
    }

    // Credits alone, debits alone.
    for (permission, indicator) in [("ReadTransactionsCredits", "Credit"), ("ReadTransactionsDebits", "Debit")] {
        let header = b.header(iin, &["ReadAccountsBasic", "ReadTransactionsDetail", permission]).await;
        let only = transactions_of(&b.pages(&url, &header).await);
        assert!(!only.is_empty());
        assert!(only.iter().all(|t| t["CreditDebitIndicator"] == indicator), "{permission}");
        assert_eq!(only.len(), all.iter().filter(|t| t["CreditDebitIndicator"] == indicator).count());
    }

    // Without transaction permissions: refused.
    let accounts_only = b.header(iin, &["ReadAccountsDetail", "ReadBalances"]).await;
    refused(b.call(&url, Some(&accounts_only)).await, 403, "UK.OBIE.Resource.ConsentMismatch").await;
    let no_direction = b.header(iin, &["ReadAccountsDetail", "ReadTransactionsDetail"]).await;
    refused(b.call(&url, Some(&no_direction)).await, 403, "UK.OBIE.Resource.ConsentMismatch").await;
    b.bank.shutdown().await;
}

#[tokio::test]
async fn fault_modes_are_slow_failing_or_malformed() {
    let platform = Platform::start().await;
    let slow = start_bank(platform, Some(Fault::Slow)).await;
    let header = slow.header(SANDBOX_CUSTOMERS[0].iin, DETAIL).await;
    let started = Instant::now();
    let response = slow.call(&slow.url("/accounts"), Some(&header)).await;
    assert!(started.elapsed() >= Duration::from_millis(1_400), "not slow: {:?}", started.elapsed());
    assert_eq!(response.status(), 200);
    valid("KzReadAccount", &response.json().await.unwrap());
    slow.bank.shutdown().await;

    for (fault, status) in [(Fault::Error, 500), (Fault::Malformed, 200)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BankConfig::new("Faulty", BIN, dir.path(), slow.platform.url(""), slow.platform.root_pem());
        config.fault = Some(fault);
        let bank = refbank::start(config).await.unwrap();
        let client = client_for(bank.addr, &bank.ca_pem, Some(&slow.identity), None);
        let response =
            client.get(format!("{}/accounts", bank.base_url)).header(CONSENT_HEADER, &header).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{fault:?}");
        let text = response.text().await.unwrap();
        match fault {
            Fault::Error => valid("ErrorResponse", &serde_json::from_str(&text).unwrap()),
            _ => assert!(serde_json::from_str::<Value>(&text).is_err(), "malformed mode answered JSON: {text}"),
        }
        bank.shutdown().await;
    }
}

#[tokio::test]
async fn the_bank_keeps_its_certificates_across_restarts() {
    let platform = Platform::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = BankConfig::new("Keeper", BIN, dir.path(), platform.url(""), platform.root_pem());
    let first = refbank::start(config.clone()).await.unwrap();
    let ca = first.ca_pem.clone();
    first.shutdown().await;
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.path().join(key)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let second = refbank::start(config).await.unwrap();
    assert_eq!(second.ca_pem, ca);
    assert_eq!(std::fs::read_to_string(&second.ca_file).unwrap(), ca);
    second.shutdown().await;
    let mut bad = BankConfig::new("Bad", "123", dir.path(), platform.url(""), platform.root_pem());
    assert!(refbank::start(bad.clone()).await.is_err(), "an invalid BIN is refused");
    bad.bin = BIN.into();
    bad.platform_root_pem = "not a certificate".into();
    assert!(refbank::start(bad).await.is_err(), "a platform root that is not PEM is refused");
}

#[tokio::test]
async fn the_platform_serves_the_standard_document_and_page() {
    let platform = Platform::start().await;
    let router = kopir::web::router(platform.running().state.clone());
    let get = |path: &str, lang: Option<&str>| {
        let mut request = axum::http::Request::get(path);
        if let Some(lang) = lang {
            request = request.header("accept-language", lang);
        }
        router.clone().oneshot(request.body(axum::body::Body::empty()).unwrap())
    };
    let response = get(standard::AIS_V1_DOCUMENT_PATH, None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let etag = response.headers()["etag"].clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    for path in
        ["/accounts", "/accounts/{AccountId}", "/accounts/{AccountId}/balances", "/accounts/{AccountId}/transactions"]
    {
        assert!(document["paths"][path]["get"].is_object(), "{path}");
    }
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for customer in SANDBOX_CUSTOMERS {
        assert!(text.contains(customer.iin) && text.contains(customer.name));
    }
    let cached = router
        .clone()
        .oneshot(
            axum::http::Request::get(standard::AIS_V1_DOCUMENT_PATH)
                .header("if-none-match", etag)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    for (lang, title) in [
        ("en", "Account information standard"),
        ("ru", "Стандарт информации о счетах"),
        ("kk", "Шот туралы ақпарат стандарты"),
    ] {
        let response = get("/standard", Some(lang)).await.unwrap();
        assert_eq!(response.status(), 200);
        let html =
            String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
        assert!(html.contains(title), "{lang}");
        assert!(html.contains(&format!("lang=\"{lang}\"")));
        assert!(html.contains(standard::AIS_V1_DOCUMENT_PATH) && html.contains(standard::PLATFORM_V1_DOCUMENT_PATH));
        assert!(html.contains("ReadTransactionsCredits"));
        for customer in SANDBOX_CUSTOMERS {
            assert!(html.contains(customer.iin), "{lang}: {}", customer.iin);
        }
    }
}

/// A participant's certificate with exactly the platform's subject (an organisation named like the platform, its
/// system named like the platform's client) is still not the platform's: the bank recognises the platform by the
/// certificate policy only the platform's own certificate carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_certificate_with_the_platforms_subject_is_refused() {
    let b = start_bank(Platform::start().await, None).await;
    let customer = SANDBOX_CUSTOMERS[0].iin;
    let good = b.header(customer, DETAIL).await;
    let accounts = b.url("/accounts");
    use rustls::pki_types::pem::PemObject;
    let subject_of = |pem: &str| {
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        (cert.subject().to_string(), kopir::pki::is_platform_client(der.as_ref()))
    };

    // Issued as the platform issues participants' certificates, for an organisation bearing the platform's name.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, kopir::pki::PLATFORM_CLIENT_NAME);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let organisation = b.platform.config.pki.organization.clone();
    let issued =
        b.platform.running().state.authority.issue_client_for(&csr, "impostor", "test", Some(&organisation)).unwrap();
    let impostor = Identity { chain_pem: issued.chain_pem.clone(), key_pem: key.serialize_pem() };
    let (impostor_subject, impostor_marked) = subject_of(&impostor.chain_pem);
    let (platform_subject, platform_marked) = subject_of(&b.identity.chain_pem);
    assert_eq!(impostor_subject, platform_subject, "the same subject as the platform's client certificate");
    assert!(platform_marked && !impostor_marked);

    let client = client_for(b.bank.addr, &b.bank.ca_pem, Some(&impostor), None);
    let answer = client.get(&accounts).header(CONSENT_HEADER, &good).send().await.unwrap();
    refused(answer, 403, "UK.OBIE.Resource.ConsentMismatch").await;
    // The platform's own certificate, with the same header, is served.
    assert_eq!(b.call(&accounts, Some(&good)).await.status(), 200);
}
