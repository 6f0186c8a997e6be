//! The HTTPS server and mutual TLS, called over real TLS like a bank would.

use crate::common;

use x509_parser::prelude::FromDer;

use crate::common::{Platform, client_for, expect_ob_error, foreign_identity};

#[tokio::test]
async fn server_chain_verifies_against_the_published_ca() {
    let platform = Platform::start().await;
    // Fetch the trust anchor without trusting anything yet, as a newcomer would…
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .resolve("localhost", platform.addr)
        .build()
        .unwrap();
    let response = insecure.get(platform.url("/pki/ca.pem")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    let ca_pem = response.text().await.unwrap();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(ca_pem, platform.root_pem());

    // …then verify the server's chain against it, over TLS 1.3 and TLS 1.2.
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let strict = client_for(platform.addr, &ca_pem, None, Some(versions));
        let health = strict.get(platform.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(health.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    }

    // A client that trusts another CA refuses the server.
    let other = foreign_identity("x");
    let wrong_trust = client_for(platform.addr, &other.chain_pem, None, None);
    assert!(wrong_trust.get(platform.url("/healthz")).send().await.is_err());

    // The chain endpoint serves the issuing CA then the root.
    let chain = platform.client(None).get(platform.url("/pki/chain.pem")).send().await.unwrap().text().await.unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(chain.ends_with(&ca_pem));
    platform.shutdown().await;
}

#[tokio::test]
async fn certificate_issued_from_a_csr_by_the_cli_is_accepted_on_a_protected_route() {
    let platform = Platform::start().await;
    let identity = platform.issue_identity("bank-one-gateway");
    let response = platform.client(Some(&identity)).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["Data"]["SerialNumber"], identity.serial());
    assert_eq!(body["Data"]["Status"], "Active");
    let subject = body["Data"]["Subject"].as_str().unwrap();
    assert!(subject.contains("CN=bank-one-gateway") && subject.contains("O=Test Bank JSC"), "{subject}");
    assert_eq!(body["Data"]["Sha256Thumbprint"].as_str().unwrap().len(), 64);
    assert_eq!(body["Data"]["X5tS256"].as_str().unwrap().len(), 43);
    platform.shutdown().await;
}

#[tokio::test]
async fn call_without_a_certificate_is_refused_with_the_standard_error() {
    let platform = Platform::start().await;
    let response = platform.client(None).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "MutualTLS");
    expect_ob_error(response, 401, "UK.OBIE.Header.Missing").await;
    platform.shutdown().await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let platform = Platform::start().await;
    let foreign = foreign_identity("impostor");
    let response = platform.client(Some(&foreign)).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(response, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("not issued by the platform"), "{body}");
    platform.shutdown().await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let platform = Platform::start().await;
    let expired = platform.forge_with_platform_ca("old-app", |p| {
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    });
    let response = platform.client(Some(&expired)).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(response, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("expired"), "{body}");
    platform.shutdown().await;
}

#[tokio::test]
async fn a_certificate_is_refused_once_the_platform_s_clock_passes_its_end() {
    let platform = Platform::start().await;
    let identity = platform.issue_identity("ages-out");
    let client = platform.client(Some(&identity));
    let fresh = client.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    // Certificates from `kopir ca issue` are valid for a year: move the platform's time past that.
    platform.clock().advance(time::Duration::days(400));
    let response = client.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(response, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("expired"), "{body}");
    platform.shutdown().await;
}

#[tokio::test]
async fn certificate_signed_by_the_ca_but_never_recorded_is_refused() {
    // A certificate the CA's key signed outside the platform's records (a stolen key, a restored old backup) is
    // not trusted just because its chain verifies.
    let platform = Platform::start().await;
    let unrecorded = platform.forge_with_platform_ca("ghost", |_| {});
    let response =
        platform.client(Some(&unrecorded)).get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(response, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("not registered"), "{body}");
    platform.shutdown().await;
}

#[tokio::test]
async fn revoked_certificate_is_refused_on_the_next_request_and_listed_in_the_crl() {
    let platform = Platform::start().await;
    let identity = platform.issue_identity("soon-revoked");
    // One client, one keep-alive connection: revocation must bite on a connection that is already open.
    let client = platform.client(Some(&identity));
    let first = client.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let _ = first.bytes().await.unwrap();

    let serial = identity.serial();
    let output = platform.kopir().args(["ca", "revoke", &serial, "--reason", "key-compromise"]).output().unwrap();
    common::assert_success(&output);

    let second = client.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = expect_ob_error(second, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body["Errors"][0]["Message"].as_str().unwrap().contains("revoked"), "{body}");

    // The published CRL is signed by the issuing CA and lists the serial with its reason.
    let crl_pem = client.get(platform.url("/pki/crl.pem")).send().await.unwrap().text().await.unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(crl_pem.as_bytes()).unwrap();
    assert_eq!(pem.label, "X509 CRL");
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&pem.contents).unwrap();
    let listed: Vec<String> = crl.iter_revoked_certificates().map(|r| hex::encode(r.raw_serial())).collect();
    assert!(listed.contains(&serial), "CRL lists {listed:?}");
    let issuing_pem = std::fs::read_to_string(platform.data_dir().join("pki/issuing-ca.pem")).unwrap();
    let (_, issuing_pem) = x509_parser::pem::parse_x509_pem(issuing_pem.as_bytes()).unwrap();
    let issuing = issuing_pem.parse_x509().unwrap();
    crl.verify_signature(issuing.public_key()).expect("CRL signed by the issuing CA");
    assert!(crl.crl_number().unwrap() >= &x509_parser::num_bigint::BigUint::from(2u32));

    // Revoking twice is refused and changes nothing.
    let again = platform.kopir().args(["ca", "revoke", &serial, "--reason", "superseded"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    platform.shutdown().await;
}

#[tokio::test]
async fn public_routes_carry_security_headers_and_unknown_routes_get_the_standard_error() {
    let platform = Platform::start().await;
    let client = platform.client(None);
    let response =
        client.get(platform.url("/healthz")).header("x-fapi-interaction-id", "abc-123").send().await.unwrap();
    let headers = response.headers();
    assert_eq!(headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(headers["x-fapi-interaction-id"], "abc-123");
    assert_eq!(headers["x-request-id"].to_str().unwrap().len(), 36);

    let missing = client.get(platform.url("/no/such/thing")).send().await.unwrap();
    expect_ob_error(missing, 404, "UK.OBIE.Resource.NotFound").await;
    let wrong_method = client.delete(platform.url("/healthz")).send().await.unwrap();
    expect_ob_error(wrong_method, 405, "UK.OBIE.Resource.InvalidFormat").await;
    // A made-up interaction id with odd characters is replaced, not echoed.
    let odd = client.get(platform.url("/healthz")).header("x-fapi-interaction-id", "<script>").send().await.unwrap();
    assert_ne!(odd.headers()["x-fapi-interaction-id"], "<script>");

    let ready = client.get(platform.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    platform.shutdown().await;
}

#[tokio::test]
async fn metrics_are_served_on_the_loopback_admin_listener_only() {
    let platform = Platform::start().await;
    let client = platform.client(None);
    client.get(platform.url("/healthz")).send().await.unwrap();
    let admin = platform.admin_addr.expect("admin listener");
    assert!(admin.ip().is_loopback());
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kopir_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/healthz\""), "{metrics}");
    // Not on the public listener.
    let public = client.get(platform.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    platform.shutdown().await;
}

#[tokio::test]
async fn old_connections_are_retired_at_their_maximum_age() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let platform = Platform::start_with(|c| c.server.max_connection_age_secs = 1, None).await;
    let mut config = common::tls_config(&platform.root_pem(), None, None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(platform.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Idle past the maximum age: the server closes the connection by itself.
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf)).await;
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("connection still open, read {n} bytes"),
        Err(_) => panic!("connection was not closed at its maximum age"),
    }
    platform.shutdown().await;
}

#[tokio::test]
async fn tls_below_1_2_is_refused() {
    // openssl is installed by .ci/run; rustls clients cannot even offer TLS 1.1.
    let platform = Platform::start().await;
    let target = format!("127.0.0.1:{}", platform.addr.port());
    // The probe runs on a blocking thread: the server shares this test's runtime.
    let probe = |version: &'static str| {
        let target = target.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("openssl")
                    .args(["s_client", "-connect", &target, version, "-servername", "localhost"])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("openssl is installed")
            })
            .await
            .unwrap()
        }
    };
    let modern = probe("-tls1_2").await;
    let modern_text = String::from_utf8_lossy(&modern.stdout);
    assert!(modern_text.contains("Cipher is ECDHE"), "TLS 1.2 handshake failed:\n{modern_text}");
    for old in ["-tls1_1", "-tls1"] {
        let output = probe(old).await;
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(!text.contains("Cipher is ECDHE"), "{old} was accepted:\n{text}");
        assert!(text.contains("Cipher is (NONE)") || !output.status.success(), "{old}:\n{text}");
    }
    platform.shutdown().await;
}
