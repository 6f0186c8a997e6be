//! The customer journey binds one identity from the face check to the verified customer, whatever order requests
//! arrive in: requests whose bodies are held back while the journey moves on cannot swap the IIN; the phone must be
//! the person's; face checks and codes are limited across journeys; a capture is good for one journey only; a test
//! customer's simulated check opens nothing on a production platform. All over real TLS, as a browser would.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::Platform;
use crate::common::browser::{Browser, Page};
use crate::common::consent::{iin, scenario_with, sms_code};
use kopir::config::{BiometricAdapter, Mode, PhoneAdapter};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A face-check vendor that matches a face only to its holder: a capture `face-of-<IIN>…` passes for that IIN
/// alone. It echoes the journey's nonce, except for captures named `replayed…`, which were made in another journey.
const VENDOR: &str = r#"read -r line
iin=$(printf '%s' "$line" | sed -n 's/.*"iin":"\([0-9]*\)".*/\1/p')
session=$(printf '%s' "$line" | sed -n 's/.*"session":"\([^"]*\)".*/\1/p')
nonce=$(printf '%s' "$line" | sed -n 's/.*"nonce":"\([^"]*\)".*/\1/p')
case "$session" in
  "face-of-$iin"*) match=true ;;
  replayed*) match=true; nonce="a-nonce-of-another-journey" ;;
  *) match=false ;;
esac
echo "{\"ok\":true,\"liveness\":true,\"match\":$match,\"nonce\":\"$nonce\"}""#;

/// The mobile-number registry: only +77011112233 is registered, and only to the IIN in `owner`.
fn registry(owner: &str) -> String {
    format!(
        r#"read -r line
case "$line" in
  *'"iin":"{owner}"'*'"phone":"+77011112233"'*) echo '{{"ok":true,"owner":true}}' ;;
  *) echo '{{"ok":true,"owner":false}}' ;;
esac"#
    )
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A platform whose face check is the matching vendor above.
async fn platform_with_vendor(scripts: &tempfile::TempDir, tweak: impl FnOnce(&mut kopir::config::Config)) -> Platform {
    let vendor = script(scripts.path(), "vendor.sh", VENDOR);
    Platform::start_with(
        move |c| {
            c.trust.biometric_adapter = BiometricAdapter::Command;
            c.trust.biometric_command = vendor.display().to_string();
            tweak(c);
        },
        None,
    )
    .await
}

/// A request sent up to its body, which is held back until `release`: what the server read when the headers came
/// is then stale.
struct Held {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    body: Vec<u8>,
}

async fn hold(platform: &Platform, browser: &Browser, path: &str, fields: &[(&str, &str)]) -> Held {
    let config = Arc::new(common::tls_config(&platform.root_pem(), None, None));
    let tcp = tokio::net::TcpStream::connect(platform.addr).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let port = platform.addr.port();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://localhost:{port}\r\nCookie: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        browser.cookie_header(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    // The server reads the journey as soon as the head is in; give it the moment it needs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Held { stream, body: body.into_bytes() }
}

impl Held {
    /// Sends the body and returns the answer's status.
    async fn release(mut self) -> u16 {
        self.stream.write_all(&self.body).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n =
                tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut buffer)).await.unwrap().unwrap();
            assert!(n > 0, "connection closed without an answer");
            answer.extend_from_slice(&buffer[..n]);
        }
        let head = String::from_utf8_lossy(&answer);
        head.split(' ').nth(1).unwrap().parse().unwrap()
    }
}

/// The attack: X passes the face check and gets the code on X's phone, while held requests try to put Y's IIN into
/// the journey after the face check. Returns the page the code leads to and the held requests' statuses.
async fn swap_attempt(platform: &Platform, customer: &Browser, start: &str, x: &str, y: &str) -> (Page, [u16; 2]) {
    let page = customer.get(start).await;
    assert!(page.url.ends_with("/verify"), "{}: {}", page.url, page.body);
    let csrf = page.csrf();
    // Held while the journey is at its first step: it will name Y.
    let identify_y =
        hold(platform, customer, "/verify", &[("csrf", &csrf), ("iin", y), ("phone", "+77015556677")]).await;
    let page = customer.post("/verify", &csrf, &[("iin", x), ("phone", "+77011112233")]).await;
    assert!(page.url.ends_with("/verify/biometric"), "{}: {}", page.url, page.body);
    // Held while the journey is at the face check with X's identity: X's own face, a second time.
    let face_again = format!("face-of-{x}-again");
    let second_face = hold(platform, customer, "/verify/biometric", &[("csrf", &csrf), ("session", &face_again)]).await;
    let face = format!("face-of-{x}");
    let page = customer.post("/verify/biometric", &csrf, &[("session", &face)]).await;
    assert!(page.url.ends_with("/verify/code"), "X's own face passes: {}: {}", page.url, page.body);
    let statuses = [identify_y.release().await, second_face.release().await];
    let code = sms_code(platform, "+77011112233").await;
    let page = customer.get("/verify/code").await;
    let after = if page.url.ends_with("/verify/code") {
        customer.post("/verify/code", &page.csrf(), &[("code", &code)]).await
    } else {
        page
    };
    (after, statuses)
}

fn known_iins(platform: &Platform) -> Vec<String> {
    let conn = rusqlite::Connection::open(platform.config.db_path()).unwrap();
    let mut stmt = conn.prepare("SELECT iin FROM customers ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

fn last_four(iin: &str) -> &str {
    &iin[iin.len() - 4..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_cannot_swap_the_identity_after_the_face_check_on_my_pages() {
    let scripts = tempfile::tempdir().unwrap();
    let platform = platform_with_vendor(&scripts, |_| {}).await;
    let (x, y) = (iin(11), iin(22));
    let customer = Browser::customer(&platform);
    let (page, statuses) = swap_attempt(&platform, &customer, "/my/start", &x, &y).await;
    assert_eq!(statuses, [409, 409], "the held requests acted on a journey that had moved on");
    assert!(page.url.ends_with("/my"), "{}: {}", page.url, page.body);
    assert!(page.body.contains(last_four(&x)), "the verified customer is not X:\n{}", page.body);
    assert!(!page.body.contains(last_four(&y)), "Y was verified with X's face:\n{}", page.body);
    assert_eq!(known_iins(&platform), vec![x], "only X may become a verified customer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_cannot_swap_the_identity_after_the_face_check_in_an_authorization() {
    let scripts = tempfile::tempdir().unwrap();
    let platform = platform_with_vendor(&scripts, |_| {}).await;
    let scenario = scenario_with(platform, 1).await;
    let consent_id = scenario.create_consent().await;
    let request_uri = scenario.push(&consent_id, &"c".repeat(43), "s1").await;
    let (x, y) = (iin(33), iin(44));
    let customer = Browser::customer(&scenario.platform);
    let (page, statuses) =
        swap_attempt(&scenario.platform, &customer, &scenario.authorize_path(&request_uri), &x, &y).await;
    assert_eq!(statuses, [409, 409]);
    assert!(page.url.ends_with("/oauth/authorize/consent"), "{}: {}", page.url, page.body);
    assert!(page.body.contains(last_four(&x)) && !page.body.contains(last_four(&y)), "{}", page.body);
    let answered = customer.post("/oauth/authorize/consent", &page.csrf(), &[("decision", "allow")]).await;
    assert_eq!(answered.status, 303);
    let conn = rusqlite::Connection::open(scenario.platform.config.db_path()).unwrap();
    let consented: String = conn
        .query_row(
            "SELECT c.iin FROM consents k JOIN customers c ON c.id = k.customer_id WHERE k.id = ?1",
            [&consent_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(consented, x, "the consent must be the face-checked customer's");
    assert_eq!(known_iins(&scenario.platform), vec![x]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_customer_cannot_open_my_pages_on_a_production_platform() {
    let platform = Platform::start_with(|c| c.mode = Mode::Production, None).await;
    let customer = Browser::customer(&platform);
    let page = customer.get("/my/start").await;
    let test_iin = kopir::standard::SANDBOX_CUSTOMERS[0].iin;
    let page = customer.post("/verify", &page.csrf(), &[("iin", test_iin), ("phone", "+77011112233")]).await;
    assert_eq!(page.status, 422, "{}: {}", page.url, page.body);
    page.assert_contains("Test customers exist only in the sandbox");
    // Still at the first step: no face check, simulated or other, is reachable for a test customer.
    let page = customer.get("/verify/biometric").await;
    assert!(page.url.ends_with("/verify"), "{}", page.url);
    assert!(known_iins(&platform).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_goes_only_to_a_phone_registered_to_the_person() {
    let scripts = tempfile::tempdir().unwrap();
    let x = iin(55);
    let phones = script(scripts.path(), "registry.sh", &registry(&x));
    let platform = platform_with_vendor(&scripts, move |c| {
        c.trust.phone_adapter = PhoneAdapter::Command;
        c.trust.phone_command = phones.display().to_string();
    })
    .await;
    let customer = Browser::customer(&platform);
    let page = customer.get("/my/start").await;
    let csrf = page.csrf();
    // Someone else's number: the face check passes (it is X), but no code is sent and X must give their own.
    customer.post("/verify", &csrf, &[("iin", &x), ("phone", "+77019998877")]).await;
    let page = customer.post("/verify/biometric", &csrf, &[("session", &format!("face-of-{x}-1"))]).await;
    assert_eq!(page.status, 422, "{}: {}", page.url, page.body);
    page.assert_contains("not registered to your IIN");
    let outbox = Browser::new(&platform).get("/demo/sms").await;
    assert!(!outbox.body.contains("+77019998877"), "a code went to a number that is not X's");
    assert!(customer.get("/verify/biometric").await.url.ends_with("/verify"), "back to the first step");
    // Their own number: the code is sent.
    customer.post("/verify", &csrf, &[("iin", &x), ("phone", "+7 701 111 22 33")]).await;
    let page = customer.post("/verify/biometric", &csrf, &[("session", &format!("face-of-{x}-2"))]).await;
    assert!(page.url.ends_with("/verify/code"), "{}: {}", page.url, page.body);
    sms_code(&platform, "+77011112233").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_is_good_for_its_own_journey_once() {
    let scripts = tempfile::tempdir().unwrap();
    let platform = platform_with_vendor(&scripts, |_| {}).await;
    let x = iin(66);
    let customer = Browser::customer(&platform);
    let page = customer.get("/my/start").await;
    let csrf = page.csrf();
    customer.post("/verify", &csrf, &[("iin", &x), ("phone", "+77011112233")]).await;
    // The vendor's answer is for a capture made with another journey's nonce: not a pass.
    let page = customer.post("/verify/biometric", &csrf, &[("session", "replayed-capture")]).await;
    assert_eq!(page.status, 422);
    page.assert_contains("does not belong to this verification");
    let capture = format!("face-of-{x}-first");
    let page = customer.post("/verify/biometric", &csrf, &[("session", &capture)]).await;
    assert!(page.url.ends_with("/verify/code"), "{}: {}", page.url, page.body);
    // The same capture in a new journey (the vendor would say yes again): refused, it was used.
    let other = Browser::customer(&platform);
    let page = other.get("/my/start").await;
    let csrf = page.csrf();
    other.post("/verify", &csrf, &[("iin", &x), ("phone", "+77011112233")]).await;
    let page = other.post("/verify/biometric", &csrf, &[("session", &capture)]).await;
    assert_eq!(page.status, 422);
    page.assert_contains("does not belong to this verification");
    let audit = rusqlite::Connection::open(platform.config.db_path())
        .unwrap()
        .query_row("SELECT count(*) FROM audit_log WHERE action = 'trust.biometric.replayed'", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(audit, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_checks_and_codes_are_limited_across_journeys() {
    let platform = Platform::start_with(
        |c| {
            c.trust.face_checks_per_hour = 2;
            c.trust.sms_per_hour = 1;
        },
        None,
    )
    .await;
    let x = iin(77);
    // Two failed face checks in one journey, then a new journey: the third check of X this hour is refused.
    let customer = Browser::customer(&platform);
    let page = customer.get("/my/start").await;
    let csrf = page.csrf();
    customer.post("/verify", &csrf, &[("iin", &x), ("phone", "+77011112233")]).await;
    for _ in 0..2 {
        let page = customer.post("/verify/biometric", &csrf, &[("session", "fail-match")]).await;
        assert_eq!(page.status, 422);
    }
    let fresh = Browser::customer(&platform);
    let page = fresh.get("/my/start").await;
    let csrf = page.csrf();
    fresh.post("/verify", &csrf, &[("iin", &x), ("phone", "+77011112233")]).await;
    let response = fresh
        .client
        .post(fresh.url("/verify/biometric"))
        .form(&[("csrf", &csrf), ("session", &"pass".to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let body = response.text().await.unwrap();
    assert!(body.contains("too many face checks or codes"), "{body}");

    // One code per phone an hour: a second person giving the same phone passes the face check, but gets no code.
    let first = Browser::customer(&platform);
    let y = iin(88);
    common::consent::identify(&platform, &first, "/my/start", &y, "+77012223344").await;
    let second = Browser::customer(&platform);
    let page = second.get("/my/start").await;
    let csrf = page.csrf();
    second.post("/verify", &csrf, &[("iin", &iin(99)), ("phone", "+77012223344")]).await;
    let page = second.post("/verify/biometric", &csrf, &[("session", "pass")]).await;
    assert_eq!(page.status, 429, "{}: {}", page.url, page.body);
    let outbox = Browser::new(&platform).get("/demo/sms").await;
    assert_eq!(outbox.body.matches("+77012223344").count(), 1, "only one code went to the phone");
}
