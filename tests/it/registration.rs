//! Registration claims nothing and tells nothing: a BIN becomes an organisation's only when the operator accredits
//! it (so nobody can squat a bank's BIN), the answer to a registration is the same whether or not the BIN or the name
//! exists, and names like the platform's are reserved. The platform's own client certificate is recognisable by its
//! policy, and an older data directory's certificate is re-issued with it at start.

use crate::common::Platform;
use crate::common::browser::{Browser, Page, bin, operator_user, registration_form};
use crate::common::participant::{application, db};
use kopir::identity::Role;

/// Posts the registration form as a browser would; returns the CSRF token the form carried and the answer.
async fn register(platform: &Platform, bin: &str, name: &str, admin: &str) -> (String, Page) {
    let browser = Browser::new(platform);
    let form = browser.get("/register").await;
    let csrf = form.csrf();
    let password = format!("{admin}-Passw0rd-long");
    let answer = browser.post("/register", &csrf, &registration_form(bin, name, admin, &password)).await;
    (csrf, answer)
}

/// The answer with what legitimately differs between two registrations replaced: the visitor's CSRF token, the
/// organisation's name and the administrator's user name as typed, and any per-response nonce.
fn normalised(csrf: &str, page: &Page, name: &str, admin: &str) -> String {
    let mut body = page.body.replace(csrf, "CSRF").replace(name, "NAME").replace(admin, "ADMIN");
    while let Some(at) = body.find("nonce=\"") {
        let start = at + "nonce=\"".len();
        let end = body[start..].find('"').map_or(body.len(), |e| start + e);
        body.replace_range(at..end, "NONCE");
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_bin_or_name_claims_nothing_and_the_answer_is_the_same() {
    let platform = Platform::start().await;
    let (held_bin, held_name) = (bin("99016000001"), "Halyk Test Bank JSC");
    let (_, first) = register(&platform, &held_bin, held_name, "first.admin").await;
    assert_eq!(first.status, 200, "{}", first.body);

    // Someone else registers the same BIN and name, and a third party something new: the same answer, byte for
    // byte once the typed name, user name and tokens are set aside.
    let (csrf, again) = register(&platform, &held_bin, held_name, "second.admin").await;
    let fresh_name = "Fresh Fintech LLP";
    let (fresh_csrf, fresh) = register(&platform, &bin("99016000002"), fresh_name, "fresh.admin").await;
    assert_eq!((again.status, fresh.status), (200, 200), "{}", again.body);
    assert_eq!(
        normalised(&csrf, &again, held_name, "second.admin"),
        normalised(&fresh_csrf, &fresh, fresh_name, "fresh.admin")
    );
    let same_bin: i64 = db(&platform)
        .query_row("SELECT count(*) FROM organisations WHERE bin = ?1", [&held_bin], |r| r.get(0))
        .unwrap();
    assert_eq!(same_bin, 2, "both registrations are kept, pending the operator's accreditation");
    platform.shutdown().await;
}

/// Registers and signs in an organisation's administrator, and submits its accreditation application.
async fn applicant(platform: &Platform, bin: &str, name: &str, admin: &str) -> i64 {
    let (_, answer) = register(platform, bin, name, admin).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let mut browser = Browser::new(platform);
    browser.sign_in(admin, &format!("{admin}-Passw0rd-long")).await;
    let page = browser.get("/org/accreditation").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    let form = application(&page.csrf(), "submit", vec![("licence.pdf", "application/pdf", pdf)]);
    let submitted = browser.post_multipart("/org/accreditation", form).await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    db(platform)
        .query_row(
            "SELECT a.id FROM accreditation_applications a JOIN users u ON u.organisation_id = a.organisation_id
             WHERE u.username = ?1",
            [admin],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accreditation_makes_a_bin_exclusive_and_a_second_organisation_cannot_be_accredited_with_it() {
    let platform = Platform::start().await;
    let contested = bin("99016000011");
    let squatter = applicant(&platform, &contested, "Squat Holdings LLP", "squat.admin").await;
    let real = applicant(&platform, &contested, "Jusan Test Bank JSC", "jusan.admin").await;

    let password = operator_user(&platform, "bin.staff", Role::OperatorStaff).await;
    let mut staff = Browser::new(&platform);
    staff.sign_in("bin.staff", &password).await;
    let decide = |id: i64| {
        let staff = &staff;
        async move {
            let review = staff.get(&format!("/console/applications/{id}")).await;
            staff
                .post(
                    &format!("/console/applications/{id}/decision"),
                    &review.csrf(),
                    &[("decision", "approve"), ("reason", "Licence checked with the regulator")],
                )
                .await
        }
    };
    // The reviewer is told of the other registration with the same BIN.
    let review = staff.get(&format!("/console/applications/{real}")).await;
    review.assert_contains("id=\"same-bin\"").assert_contains("Squat Holdings LLP");
    let approved = decide(real).await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let refused = decide(squatter).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    refused.assert_contains("Another organisation is accredited with this BIN");
    let statuses: Vec<(String, String)> = {
        let db = db(&platform);
        let mut stmt = db.prepare("SELECT name, status FROM organisations WHERE bin = ?1 ORDER BY name").unwrap();
        stmt.query_map([&contested], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(
        statuses,
        [
            ("Jusan Test Bank JSC".to_string(), "accredited".to_string()),
            ("Squat Holdings LLP".into(), "registered".into())
        ]
    );
    // The schema holds the same rule for any other path.
    let bypass =
        db(&platform).execute("UPDATE organisations SET status = 'accredited' WHERE name = 'Squat Holdings LLP'", []);
    assert!(bypass.is_err(), "a second organisation was accredited with the BIN");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_like_the_platforms_are_reserved() {
    let platform = Platform::start().await;
    let operator = platform.config.pki.organization.clone();
    for (i, name) in
        [operator.as_str(), "KOPIR Platform Client", "kopir", "Kopir-Open Banking Platform"].iter().enumerate()
    {
        let (_, answer) = register(&platform, &bin(&format!("9901600002{i}")), name, &format!("reserved.{i}")).await;
        assert_eq!(answer.status, 422, "{name}: {}", answer.body);
        answer.assert_contains("reserved for the platform");
    }
    let taken: i64 = db(&platform).query_row("SELECT count(*) FROM organisations", [], |r| r.get(0)).unwrap();
    assert_eq!(taken, 0);
    let (_, allowed) = register(&platform, &bin("99016000029"), "Bereke Test Bank JSC", "bereke.admin").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    platform.shutdown().await;
}

/// A data directory made before the policy existed: its platform client certificate is re-issued at start, with the
/// policy, recorded and journalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_platform_client_certificate_is_reissued_with_the_policy_at_start() {
    use rustls::pki_types::pem::PemObject;
    let leaf = |pem: &str| rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).next().unwrap().unwrap();
    let mut platform = Platform::start().await;
    let paths = kopir::pki::PkiPaths::new(&platform.config);
    let current = std::fs::read_to_string(paths.platform_client_cert()).unwrap();
    assert!(kopir::pki::is_platform_client(leaf(&current).as_ref()), "a new platform's certificate has the policy");

    platform.shutdown_keep_dir().await;
    let old = platform.forge_with_platform_ca(kopir::pki::PLATFORM_CLIENT_NAME, |_| {});
    std::fs::write(paths.platform_client_cert(), &old.chain_pem).unwrap();
    std::fs::write(paths.platform_client_key(), &old.key_pem).unwrap();
    assert!(!kopir::pki::is_platform_client(leaf(&old.chain_pem).as_ref()));

    let running = kopir::web::start(platform.config.clone(), None).await.expect("server restarts");
    let platform = Platform::attach(platform.dir, platform.config, running);
    let renewed = std::fs::read_to_string(paths.platform_client_cert()).unwrap();
    assert!(kopir::pki::is_platform_client(leaf(&renewed).as_ref()));
    let serial = {
        let der = leaf(&renewed);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        hex::encode(cert.raw_serial())
    };
    assert_ne!(serial, old.serial());
    let recorded: i64 = db(&platform)
        .query_row("SELECT count(*) FROM certificates WHERE serial = ?1 AND kind = 'platform_client'", [&serial], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(recorded, 1);
    let journalled: i64 = db(&platform)
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'pki.platform_client_certificate.reissued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(journalled, 1);
    platform.shutdown().await;
}
