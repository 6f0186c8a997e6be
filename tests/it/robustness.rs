//! The platform under abuse, over real TLS and both HTTP versions: refusals arrive whole and in the endpoint's own
//! error shape (Open Banking JSON for the API, RFC 6749 JSON for the OAuth endpoints, an HTML page for pages) —
//! also when the refusal comes before the body is read, when the body is over the limit, or when it is malformed in
//! every way a parser can trip on — nothing answers 5xx, no answer quotes unbounded input, and the platform keeps
//! serving.

use crate::common;

use crate::common::consent::{Scenario, consent_body, scenario};
use crate::common::wire::{self, Answer, Version};
use crate::common::{Identity, Platform};
use serde_json::{Value, json};

const CONSENTS: &str = "/open-banking/v1/aisp/account-access-consents";
const OAUTH: [&str; 4] = ["/oauth/par", "/oauth/token", "/oauth/revoke", "/oauth/introspect"];
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
/// Twice the default body limit (1 MiB).
const TWO_MB: usize = 2 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    OpenBanking,
    Oauth,
    Page,
}

/// One request on a fresh connection (an oversized body ends an HTTP/1.1 connection).
async fn send(
    platform: &Platform,
    identity: Option<&Identity>,
    version: Version,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Answer {
    let mut connection = wire::connect(platform, identity, version).await;
    let headers: &[(&str, &str)] = if content_type.is_empty() { &[] } else { &[("content-type", content_type)] };
    match connection.send(method, path, headers, body).await {
        Ok(answer) => answer,
        Err(error) => panic!("{version:?} {method} {path}: no answer, the client saw: {error:?}"),
    }
}

/// Asserts a refusal (4xx) in `shape`, quoting no long run of the input, and returns the JSON body (if any).
fn assert_refusal(answer: &Answer, shape: Shape, context: &str) -> Option<Value> {
    assert!(answer.status.is_client_error(), "{context}: status {} — {}", answer.status, text(answer));
    assert_no_echo(answer, context);
    match shape {
        Shape::OpenBanking => {
            assert_eq!(answer.content_type(), JSON, "{context}: {}", text(answer));
            let body = answer.json();
            for key in ["Code", "Id", "Message"] {
                assert!(body[key].is_string(), "{context}: no {key} in {body}");
            }
            assert!(body["Errors"][0]["ErrorCode"].as_str().unwrap().starts_with("UK.OBIE."), "{context}: {body}");
            assert!(body["Errors"][0]["Message"].as_str().unwrap().chars().count() <= 500, "{context}");
            Some(body)
        }
        Shape::Oauth => {
            assert_eq!(answer.content_type(), JSON, "{context}: {}", text(answer));
            let body = answer.json();
            assert!(body["error"].is_string() && body["error_description"].is_string(), "{context}: {body}");
            Some(body)
        }
        Shape::Page => {
            assert!(answer.content_type().starts_with("text/html"), "{context}: {} {}", answer.status, text(answer));
            assert!(text(answer).contains("</html>"), "{context}: not a whole page");
            None
        }
    }
}

/// No answer may reflect a long run of what was sent (the bodies here repeat `x` or `7`).
fn assert_no_echo(answer: &Answer, context: &str) {
    let body = text(answer);
    for run in ["x".repeat(100), "7".repeat(100)] {
        assert!(!body.contains(&run), "{context}: the answer quotes the input ({} bytes)", body.len());
    }
}

fn text(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.body).into_owned()
}

fn oversized() -> Vec<u8> {
    let mut body = b"{\"Data\":\"".to_vec();
    body.resize(TWO_MB, b'x');
    body.extend_from_slice(b"\"}");
    body
}

#[tokio::test]
async fn oauth_refusals_before_the_body_arrive_as_json_over_both_http_versions() {
    // Without a client certificate every OAuth endpoint refuses in its extractor, before it reads the body. Over
    // HTTP/2 the unread body used to reset the stream, so the client saw a framing error instead of the JSON.
    let platform = Platform::start().await;
    let form =
        format!("grant_type=authorization_code&code={}&redirect_uri=https%3A%2F%2Fa.example%2Fcb", "c".repeat(4000));
    for version in Version::BOTH {
        for attempt in 0..10 {
            for path in OAUTH {
                let answer = send(&platform, None, version, "POST", path, FORM, form.clone().into_bytes()).await;
                let context = format!("{version:?} {path} #{attempt}");
                assert_eq!(answer.status, 401, "{context}");
                let body = assert_refusal(&answer, Shape::Oauth, &context).unwrap();
                assert_eq!(body["error"], "invalid_client", "{context}");
            }
            let answer = send(
                &platform,
                None,
                version,
                "POST",
                CONSENTS,
                JSON,
                consent_body(&["990340000011"]).to_string().into(),
            )
            .await;
            assert_eq!(answer.status, 401);
            assert_refusal(&answer, Shape::OpenBanking, &format!("{version:?} consents #{attempt}"));
        }
    }
    // The client that was still sending its body when the refusal came (curl, a slow network): the stream must
    // take the rest of the body, not be reset after the answer.
    for path in OAUTH.into_iter().chain([CONSENTS]) {
        let content_type = if path == CONSENTS { JSON } else { FORM };
        let early = wire::h2_answer_before_body(&platform, None, path, content_type, b"grant_type=refresh_token").await;
        assert_eq!(early.status, 401, "{path}");
        assert!(serde_json::from_slice::<Value>(&early.body).is_ok(), "{path}: {:?}", early.body);
        assert_eq!(early.reset, None, "{path}: the server reset the stream of a request still sending its body");
    }
}

#[tokio::test]
async fn refusals_on_one_connection_leave_it_usable_over_both_http_versions() {
    // Several refused requests with bodies in a row on one connection: each answer arrives, and the connection
    // goes on (the unread body is read and discarded, not left to reset the stream or end the connection).
    let platform = Platform::start().await;
    for version in Version::BOTH {
        let mut connection = wire::connect(&platform, None, version).await;
        for path in OAUTH.iter().cycle().take(12) {
            let answer = connection
                .send("POST", path, &[("content-type", FORM)], "grant_type=refresh_token&refresh_token=abc")
                .await
                .unwrap_or_else(|e| panic!("{version:?} {path}: {e:?}"));
            assert_eq!(answer.status, 401, "{version:?} {path}");
            assert_eq!(answer.json()["error"], "invalid_client");
        }
        let answer = connection.send("GET", "/healthz", &[], "").await.unwrap();
        assert_eq!(answer.status, 200);
    }
}

#[tokio::test]
async fn bodies_over_the_limit_and_oversized_fields_get_each_endpoints_error_shape() {
    let s = scenario(1).await;
    let platform = &s.platform;
    let id = Some(&s.identity);
    for version in Version::BOTH {
        // 2 MB bodies: 413 in the endpoint's shape; over HTTP/1.1 the answer says the connection ends.
        let cases: [(&str, &str, Shape, Option<&Identity>); 9] = [
            (CONSENTS, JSON, Shape::OpenBanking, id),
            ("/oauth/par", FORM, Shape::Oauth, id),
            ("/oauth/token", FORM, Shape::Oauth, id),
            ("/oauth/revoke", FORM, Shape::Oauth, id),
            ("/oauth/introspect", FORM, Shape::Oauth, id),
            ("/login", FORM, Shape::Page, None),
            ("/register", FORM, Shape::Page, None),
            ("/verify", FORM, Shape::Page, None),
            ("/oauth/authorize/consent", FORM, Shape::Page, None),
        ];
        for (path, content_type, shape, identity) in cases {
            let context = format!("{version:?} 2 MB to {path}");
            let answer = send(platform, identity, version, "POST", path, content_type, oversized()).await;
            if shape != Shape::Page {
                // Pages may refuse a stranger before reading (CSRF); the API endpoints read the body first.
                assert_eq!(answer.status, 413, "{context}: {}", text(&answer));
            }
            assert_refusal(&answer, shape, &context);
            if answer.status == 413 && version == Version::Http1 {
                assert_eq!(answer.headers.get("connection").unwrap(), "close", "{context}");
            }
        }

        // An invalid BIN of 50,000 characters is not echoed whole.
        let mut body = consent_body(&s.bank_bins());
        body["Data"]["Providers"] = json!([{ "Bin": "7".repeat(50_000) }]);
        let answer = send(platform, id, version, "POST", CONSENTS, JSON, body.to_string().into()).await;
        assert_eq!(answer.status, 400);
        let body = assert_refusal(&answer, Shape::OpenBanking, "long BIN").unwrap();
        assert!(body["Errors"][0]["Message"].as_str().unwrap().chars().count() <= 100, "{body}");

        // A permission code, a repeated OAuth parameter's name and an unknown field's value, each 50,000 long.
        let mut body = consent_body(&s.bank_bins());
        body["Data"]["Permissions"] = json!(["x".repeat(50_000)]);
        let answer = send(platform, id, version, "POST", CONSENTS, JSON, body.to_string().into()).await;
        assert_eq!(answer.status, 400);
        assert_refusal(&answer, Shape::OpenBanking, "long permission");
        let mut body = consent_body(&s.bank_bins());
        body["Data"]["TransactionFromDateTime"] = json!("7".repeat(50_000));
        let answer = send(platform, id, version, "POST", CONSENTS, JSON, body.to_string().into()).await;
        assert_eq!(answer.status, 400);
        assert_refusal(&answer, Shape::OpenBanking, "long date");
        let name = "x".repeat(50_000);
        let form = format!("{name}=1&{name}=2");
        for path in OAUTH {
            let answer = send(platform, id, version, "POST", path, FORM, form.clone().into_bytes()).await;
            assert_eq!(answer.status, 400, "{path}: {}", text(&answer));
            assert_refusal(&answer, Shape::Oauth, &format!("{path} repeated long name"));
        }
    }
    assert_still_serving(&s).await;
}

/// Bodies a parser can trip on.
fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let mut invalid_utf8 = b"{\"Data\":{\"Purpose\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1]);
    invalid_utf8.extend_from_slice(b"\"}}");
    vec![
        ("empty", Vec::new()),
        ("broken JSON", b"{\"Data\": {\"Permissions\": [".to_vec()),
        ("wrong types", br#"{"Data": 5, "Risk": [], "Permissions": {"a": null}}"#.to_vec()),
        ("wrong inner types", br#"{"Data": {"Permissions": "ReadAccountsBasic", "Providers": [{"Bin": 7}], "ExpirationDateTime": false}, "Risk": {}}"#.to_vec()),
        ("deep arrays", deep.into_bytes()),
        ("deep objects", deep_object.into_bytes()),
        ("huge numbers", format!(r#"{{"Data": {{"Permissions": [1e999999], "Bin": {}}}, "n": -{}}}"#, "7".repeat(5_000), "9".repeat(50)).into_bytes()),
        ("invalid UTF-8", invalid_utf8),
        ("over-long field", format!(r#"{{"Data": {{"Purpose": "{}"}}, "Risk": {{}}}}"#, "x".repeat(500_000)).into_bytes()),
        ("form junk", b"a=%ZZ&&&=&%00=%ff%fe&csrf=&grant_type".to_vec()),
        ("over-long form field", format!("csrf=1&username={}&password={}&iin={}", "x".repeat(300_000), "x".repeat(300_000), "7".repeat(100_000)).into_bytes()),
        ("2 MB", oversized()),
    ]
}

#[tokio::test]
async fn malformed_bodies_to_every_json_and_form_endpoint_get_no_5xx_and_the_endpoints_shape() {
    let s = scenario(1).await;
    let platform = &s.platform;
    let id = Some(&s.identity);
    // (method, path, shape, client certificate)
    let endpoints: Vec<(&str, &str, Shape, Option<&Identity>)> = vec![
        ("POST", CONSENTS, Shape::OpenBanking, id),
        ("POST", "/oauth/par", Shape::Oauth, id),
        ("POST", "/oauth/token", Shape::Oauth, id),
        ("POST", "/oauth/revoke", Shape::Oauth, id),
        ("POST", "/oauth/introspect", Shape::Oauth, id),
        // The gateway takes no bodies; one sent anyway must not matter.
        ("GET", "/open-banking/v1/aisp/accounts", Shape::OpenBanking, id),
        ("POST", "/open-banking/v1/aisp/accounts", Shape::OpenBanking, id),
        ("POST", "/login", Shape::Page, None),
        ("POST", "/login/code", Shape::Page, None),
        ("POST", "/register", Shape::Page, None),
        ("POST", "/verify", Shape::Page, None),
        ("POST", "/verify/biometric", Shape::Page, None),
        ("POST", "/verify/code", Shape::Page, None),
        ("POST", "/oauth/authorize/consent", Shape::Page, None),
        ("POST", "/account/password", Shape::Page, None),
    ];
    for version in Version::BOTH {
        for (name, body) in malformed_bodies() {
            for (method, path, shape, identity) in &endpoints {
                let natural = if *shape == Shape::OpenBanking { JSON } else { FORM };
                // Each body with the endpoint's own type; the first two with the other type too.
                let types: &[&str] = if name == "empty" || name == "broken JSON" { &[JSON, FORM] } else { &[natural] };
                for &content_type in types {
                    let context = format!("{version:?} {method} {path} ({content_type}) with {name}");
                    let answer = send(platform, *identity, version, method, path, content_type, body.clone()).await;
                    assert!(!answer.status.is_server_error(), "{context}: {} {}", answer.status, text(&answer));
                    if answer.status.is_client_error() {
                        assert_refusal(&answer, *shape, &context);
                    } else {
                        assert_no_echo(&answer, &context);
                    }
                }
            }
        }
    }
    assert_still_serving(&s).await;
}

#[tokio::test]
async fn malformed_forms_with_a_valid_csrf_token_get_no_5xx_and_no_echo() {
    // The public forms, past their CSRF check, so the form body itself is parsed.
    let platform = Platform::start().await;
    // Ten fields of 90,000: under the body limit, so the handlers parse them.
    let long = "x".repeat(90_000);
    let fields = [
        "username",
        "password",
        "bin",
        "name",
        "licence_number",
        "contact_email",
        "contact_phone",
        "admin_username",
        "admin_password",
        "admin_password_confirm",
    ];
    let over_long = fields.iter().map(|f| format!("{f}={long}")).collect::<Vec<_>>().join("&");
    let bodies: Vec<(&str, String)> = vec![
        ("junk", "a=%ZZ&&&=&%00=%ff%fe&username".into()),
        ("invalid UTF-8", "username=%ff%fe%c3%28&password=%a0%a1&bin=%ff".into()),
        ("over-long fields", over_long),
        ("repeated fields", "username=a&username=b&password=c&password=d".into()),
    ];
    let browser = common::browser::Browser::new(&platform);
    for (page, action) in [("/login", "/login"), ("/register", "/register")] {
        for (name, body) in &bodies {
            let csrf = browser.get(page).await.csrf();
            let response = browser
                .client
                .post(browser.url(action))
                .header("content-type", FORM)
                .body(format!("csrf={csrf}&{body}"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            let text = response.text().await.unwrap();
            let context = format!("{action} with {name}");
            assert!(!status.is_server_error(), "{context}: {status}");
            if status.is_client_error() {
                assert!(content_type.unwrap_or_default().starts_with("text/html"), "{context}: {status} {text}");
            }
            assert!(!text.contains(&"x".repeat(100)), "{context}: the page quotes the input ({} bytes)", text.len());
        }
    }
    assert_eq!(browser.get("/healthz").await.status, 200);
}

/// The platform still answers, and the API user can still create a consent.
async fn assert_still_serving(s: &Scenario) {
    let answer = send(&s.platform, None, Version::Http1, "GET", "/healthz", "", Vec::new()).await;
    assert_eq!(answer.status, 200);
    s.create_consent().await;
}
