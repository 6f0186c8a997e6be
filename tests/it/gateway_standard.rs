//! The gateway answers what its served standard (`/standard/ais/v1/openapi.json`) says, over real TLS with a token
//! from the product's OAuth flow: platform account ids fit the standard's `AccountId` on all four operations,
//! `Servicer` is declared, every refusal (a nameless or unknown query parameter, a missing token, a malformed date)
//! has the documented code and a schema-valid body, and the interaction id is echoed exactly as documented.

use crate::common;

use crate::common::exchange::{BankPlan, FULL, consent, customer, get_json, tokens_for, world};
use serde_json::Value;

const BANKS: [BankPlan; 2] =
    [BankPlan::new("Tulpar Bank", "99034000007"), BankPlan::new("Zhetysu Bank", "99034000008")];

/// The document the platform serves, fetched as an API user would.
async fn served_document(platform: &common::Platform) -> Value {
    let response = platform.client(None).get(platform.url(kopir::standard::AIS_V1_DOCUMENT_PATH)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Whether `id` fits the document's `AccountId` schema (length and pattern, read from the document itself).
fn fits_account_id(document: &Value, id: &str) -> bool {
    let schema = &document["components"]["schemas"]["AccountId"];
    let max = schema["maxLength"].as_u64().unwrap() as usize;
    assert_eq!(max, 40, "OBIE Max40Text");
    assert_eq!(schema["pattern"], "^[A-Za-z0-9._~-]+$");
    !id.is_empty() && id.len() <= max && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// A call as the API user makes it, with `query` after the path and, if given, an interaction id.
async fn call(
    s: &common::consent::Scenario,
    token: Option<&str>,
    path: &str,
    interaction: Option<&str>,
) -> reqwest::Response {
    let mut request = s.platform.client(Some(&s.identity)).get(s.platform.url(&format!("/open-banking/v1/aisp{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(interaction) = interaction {
        request = request.header("x-fapi-interaction-id", interaction);
    }
    request.send().await.unwrap()
}

/// Checks a refusal against the document's `ErrorResponse` and returns its body.
async fn refused(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = common::expect_ob_error(response, status, code).await;
    assert_eq!(kopir::standard::validate("ErrorResponse", &body), Ok(()), "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_answers_what_its_served_standard_says_on_all_four_operations() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let document = served_document(&s.platform).await;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000071").await;

    // Every id served fits `AccountId`; every answer validates against its schema, `Servicer` included.
    let accounts = get_json(s, &token, "/accounts").await;
    assert_eq!(kopir::standard::validate("KzReadAccount", &accounts), Ok(()), "{accounts}");
    let list = accounts["Data"]["Account"].as_array().unwrap();
    assert!(list.len() >= 2, "{accounts}");
    for account in list {
        let id = account["AccountId"].as_str().unwrap();
        assert!(fits_account_id(&document, id), "{id} ({} characters)", id.len());
        assert_eq!(account["Servicer"]["SchemeName"], "KZ.BIN");
        assert!(bins.contains(&account["Servicer"]["Identification"].as_str().unwrap()));
        let one = get_json(s, &token, &format!("/accounts/{id}")).await;
        assert_eq!(kopir::standard::validate("KzReadAccount", &one), Ok(()), "{one}");
        assert_eq!(one["Data"]["Account"][0]["AccountId"], id);
        let balances = get_json(s, &token, &format!("/accounts/{id}/balances")).await;
        assert_eq!(kopir::standard::validate("KzReadBalance", &balances), Ok(()), "{balances}");
        for balance in balances["Data"]["Balance"].as_array().unwrap() {
            assert_eq!(balance["AccountId"], id);
        }
        let transactions = get_json(s, &token, &format!("/accounts/{id}/transactions")).await;
        assert_eq!(kopir::standard::validate("KzReadTransaction", &transactions), Ok(()), "{transactions}");
        for transaction in transactions["Data"]["Transaction"].as_array().unwrap() {
            assert_eq!(transaction["AccountId"], id);
        }
    }
    // The served document declares what the gateway adds.
    let servicer = &document["components"]["schemas"]["KzServicer"];
    assert_eq!(servicer["properties"]["SchemeName"]["enum"][0], "KZ.BIN");
    assert_eq!(
        document["components"]["schemas"]["KzAccount"]["properties"]["Servicer"]["$ref"],
        "#/components/schemas/KzServicer"
    );

    // Query parameters: the same rule on all four; a nameless one is refused with an error the schema allows.
    let id = list[0]["AccountId"].as_str().unwrap();
    let paths = [
        "/accounts".to_string(),
        format!("/accounts/{id}"),
        format!("/accounts/{id}/balances"),
        format!("/accounts/{id}/transactions"),
    ];
    for path in &paths {
        let body =
            refused(call(s, Some(&token), &format!("{path}?=x"), None).await, 400, "UK.OBIE.Field.Unexpected").await;
        assert!(body["Errors"][0].get("Path").is_none(), "{path}: {body}");
        let body =
            refused(call(s, Some(&token), &format!("{path}?limit=5"), None).await, 400, "UK.OBIE.Field.Unexpected")
                .await;
        assert_eq!(body["Errors"][0]["Path"], "limit", "{path}");
        // Without a token: the documented 401 code, naming the header.
        let body = refused(call(s, None, path, None).await, 401, "UK.OBIE.Header.Missing").await;
        assert_eq!(body["Errors"][0]["Path"], "Authorization", "{path}");
        refused(call(s, Some("garbage"), path, None).await, 401, "UK.OBIE.Reauthenticate").await;
    }
    let transactions = &paths[3];
    for (query, why) in [("page=1&page=2", "repeated"), ("page=0", "below 1")] {
        let body = refused(
            call(s, Some(&token), &format!("{transactions}?{query}"), None).await,
            400,
            "UK.OBIE.Field.Invalid",
        )
        .await;
        assert_eq!(body["Errors"][0]["Path"], "page", "{why}");
    }
    let unauthorised = &document["components"]["responses"]["401Error"]["description"];
    assert!(
        unauthorised
            .as_str()
            .unwrap()
            .contains("`UK.OBIE.Header.Missing` without a client certificate or without `Authorization: Bearer`")
    );

    // Booking dates are RFC 3339 date-times with an offset, as the document's `format` says.
    for name in ["FromBookingDateTime", "ToBookingDateTime"] {
        assert_eq!(document["components"]["parameters"][name]["schema"]["format"], "date-time");
    }
    let from = kopir::clock::rfc3339(kopir::clock::now() - time::Duration::days(5));
    let dated = get_json(s, &token, &format!("{transactions}?fromBookingDateTime={from}")).await;
    assert_eq!(kopir::standard::validate("KzReadTransaction", &dated), Ok(()));
    for not_a_date_time in ["2026-01-01T00:00:00", "2026-01-01", "yesterday"] {
        let body = refused(
            call(s, Some(&token), &format!("{transactions}?toBookingDateTime={not_a_date_time}"), None).await,
            400,
            "UK.OBIE.Field.InvalidDate",
        )
        .await;
        assert_eq!(body["Errors"][0]["Path"], "toBookingDateTime");
    }

    // The interaction id: echoed when 1 to 64 letters, digits and hyphens; otherwise a fresh UUID, never refused.
    let answer_header = &document["components"]["responses"]["400Error"]["headers"]["x-fapi-interaction-id"];
    let pattern = answer_header["schema"]["pattern"].as_str().unwrap();
    assert_eq!(pattern, "^[A-Za-z0-9-]{1,64}$");
    let echoed = "a".repeat(64);
    let replaced = ["", "a.b", "x".repeat(65).as_str(), "id with space"].map(String::from);
    for path in &paths {
        let response = call(s, Some(&token), path, Some(&echoed)).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-fapi-interaction-id"], echoed.as_str());
        for sent in &replaced {
            let response = call(s, Some(&token), path, Some(sent)).await;
            assert_eq!(response.status(), 200, "{path} with interaction id {sent:?}");
            let answered = response.headers()["x-fapi-interaction-id"].to_str().unwrap().to_string();
            assert_ne!(&answered, sent);
            assert!(uuid_like(&answered), "{answered}");
        }
        // Refusals carry it too.
        let response = call(s, None, path, Some("itest-refused-1")).await;
        assert_eq!(response.headers()["x-fapi-interaction-id"], "itest-refused-1");
    }
    w.s.platform.shutdown().await;
}

/// A fresh id of the platform's: a UUID, which fits the answer header's pattern.
fn uuid_like(value: &str) -> bool {
    value.len() == 36 && value.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_document_is_public_and_describes_only_what_api_users_call() {
    let platform = common::Platform::start().await;
    // No certificate: the document is public, and cacheable by its ETag.
    let response =
        platform.client(None).get(platform.url(kopir::standard::PLATFORM_V1_DOCUMENT_PATH)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let document: Value = response.json().await.unwrap();
    let again = platform
        .client(None)
        .get(platform.url(kopir::standard::PLATFORM_V1_DOCUMENT_PATH))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(document["openapi"], "3.1.0");
    let mut paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
            "/oauth/introspect",
            "/oauth/par",
            "/oauth/revoke",
            "/oauth/token",
            "/open-banking/v1/aisp/account-access-consents",
            "/open-banking/v1/aisp/account-access-consents/{ConsentId}",
            // Participants' own systems read their running billing totals and their usage reports...
            "/participant/v1/billing/running",
            "/participant/v1/reports/usage",
            // ... and raise and follow requests (questions, incidents, disputes).
            "/participant/v1/requests",
            "/participant/v1/requests/categories",
            "/participant/v1/requests/{id}",
        ]
    );
    // Its error schema is the standard's, word for word.
    let ais = kopir::standard::document();
    assert_eq!(document["components"]["schemas"]["ErrorResponse"], ais["components"]["schemas"]["ErrorResponse"]);
    platform.shutdown().await;
}

/// Found by the fuzzing stage: `?page=0` was answered as page 1 though the document says pages count from 1, and the
/// last page a `u32` names overflowed the offset (a 500 in a debug build, a wrapped offset in a release one).
#[tokio::test(flavor = "multi_thread")]
async fn the_consent_list_counts_pages_from_one_and_answers_the_last_nameable_page() {
    let s = common::consent::scenario(1).await;
    s.create_consent().await;
    let list = |query: &'static str| {
        s.api().get(s.platform.url(&format!("/open-banking/v1/aisp/account-access-consents{query}"))).send()
    };
    let body = refused(list("?page=0").await.unwrap(), 400, "UK.OBIE.Field.Invalid").await;
    assert_eq!(body["Errors"][0]["Path"], "page");
    let first = list("?page=1").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["Data"]["Consent"].as_array().unwrap().len(), 1);
    let last = list("?page=4294967295").await.unwrap();
    assert_eq!(last.status(), 200);
    let last: Value = last.json().await.unwrap();
    assert_eq!(last["Data"]["Consent"], serde_json::json!([]), "{last}");
    s.platform.shutdown().await;
}
