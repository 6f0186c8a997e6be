//! Accreditation end to end over real TLS: a participant applies with documents, the operator reviews and decides in
//! the console, the certificate and the public registries follow; refusals of every kind; suspension from the CLI.

use crate::common;

use crate::common::browser::{
    Browser, Page, bin, extract_attr, operator_user, participant_user, register_organisation,
};
use crate::common::participant::{PDF, app_id, application, download, register_app, serials};
use crate::common::{Csr, Platform, assert_success};
use kopir::identity::Role;
use reqwest::multipart::Form;

async fn apply(browser: &Browser, documents: Vec<(&str, &str, Vec<u8>)>) -> Page {
    let page = browser.get("/org/accreditation").await;
    assert_eq!(page.status, 200, "{}", page.body);
    browser.post_multipart("/org/accreditation", application(&page.csrf(), "submit", documents)).await
}

fn db(platform: &Platform) -> rusqlite::Connection {
    rusqlite::Connection::open(platform.config.db_path()).unwrap()
}

fn count(platform: &Platform, table: &str) -> i64 {
    db(platform).query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

fn application_id(platform: &Platform, bin: &str) -> i64 {
    db(platform)
        .query_row(
            "SELECT a.id FROM accreditation_applications a JOIN organisations o ON o.id = a.organisation_id
             WHERE o.bin = ?1 ORDER BY a.id DESC LIMIT 1",
            [bin],
            |r| r.get(0),
        )
        .unwrap()
}

async fn signed_in(platform: &Platform, username: &str, password: &str) -> Browser {
    let mut browser = Browser::new(platform);
    let page = browser.sign_in(username, password).await;
    assert_eq!(page.status, 200, "{} could not sign in: {}", username, page.body);
    browser
}

/// Approves through the domain directly (the console path is tested on its own).
async fn approve(platform: &Platform, application_id: i64) {
    let (db, _) = kopir::store::Db::open(&platform.config.db_path(), Default::default(), false).unwrap();
    db.write(move |tx| {
        let actor =
            kopir::participants::accreditation::Actor { name: "test".into(), source: "test".into(), user_id: None };
        kopir::participants::accreditation::decide(
            tx,
            application_id,
            kopir::participants::accreditation::Decision::Approve,
            "complete",
            &actor,
        )
        .map_err(kopir::store::StoreError::from)
    })
    .await
    .unwrap();
}

fn audit_verifies(platform: &Platform) {
    let output = platform.kopir().args(["audit", "verify"]).output().unwrap();
    assert_success(&output);
}

#[tokio::test]
async fn apply_review_approve_certificate_and_registries() {
    let platform = Platform::start().await;
    let org_bin = bin("99014000021");
    let (admin, password) = register_organisation(&platform, &org_bin, "Kaspi Test Bank JSC", "kaspi.admin").await;
    let participant = signed_in(&platform, &admin, &password).await;

    let submitted = apply(&participant, vec![("licence.pdf", "application/pdf", PDF.to_vec())]).await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    submitted.assert_contains("Submitted, awaiting review").assert_contains("licence.pdf");
    // One open application at a time: while the operator has it, there is no form.
    assert!(!submitted.body.contains("enctype=\"multipart/form-data\""));
    let id = application_id(&platform, &org_bin);

    // Operator staff: the queue, the review page, the document, a decision without a reason, then with one.
    let staff_password = operator_user(&platform, "op.staff", Role::OperatorStaff).await;
    let staff = signed_in(&platform, "op.staff", &staff_password).await;
    let queue = staff.get("/console/applications").await;
    assert_eq!(queue.status, 200);
    queue.assert_contains("Kaspi Test Bank JSC").assert_contains(&format!("/console/applications/{id}"));
    let review = staff.get(&format!("/console/applications/{id}")).await;
    review.assert_contains("Nurlan Abenov").assert_contains("ISO/IEC 27001:2022").assert_contains("API provider");
    let doc_link = extract_attr(&review.body, "href=\"/console/documents/").unwrap();
    let download = staff.client.get(staff.url(&format!("/console/documents/{doc_link}"))).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    assert!(download.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(download.bytes().await.unwrap().as_ref(), PDF);

    let refused = staff
        .post(
            &format!("/console/applications/{id}/decision"),
            &review.csrf(),
            &[("decision", "approve"), ("reason", "  ")],
        )
        .await;
    assert_eq!(refused.status, 422);
    refused.assert_contains("A reason is required");
    assert_eq!(count(&platform, "accreditations"), 0);

    // The regulator reads everything but cannot decide.
    let regulator_password = operator_user(&platform, "regulator.one", Role::Regulator).await;
    let regulator = signed_in(&platform, "regulator.one", &regulator_password).await;
    let seen = regulator.get(&format!("/console/applications/{id}")).await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains("/decision"), "regulator sees the decision form");
    let forbidden = regulator
        .post(
            &format!("/console/applications/{id}/decision"),
            &seen.csrf(),
            &[("decision", "approve"), ("reason", "ok")],
        )
        .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(regulator.get("/console/audit?action=participants.").await.status, 200);
    assert_eq!(regulator.get("/console/staff").await.status, 403);

    let approved = staff
        .post(
            &format!("/console/applications/{id}/decision"),
            &review.csrf(),
            &[("decision", "approve"), ("reason", "Documents and questionnaire complete")],
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    approved.assert_contains("Decision recorded").assert_contains("Approved");

    // The participant sees the decision with its reason, and the certificate.
    let status = participant.get("/org/accreditation").await;
    status.assert_contains("Approved").assert_contains("Documents and questionnaire complete");
    let year = time::OffsetDateTime::now_utc().year();
    let number = format!("KOPIR-AC-{year}-000001");
    let certificate = participant.get("/org/accreditation/certificate").await;
    assert_eq!(certificate.status, 200);
    certificate.assert_contains(&number).assert_contains(&org_bin).assert_contains("Kaspi Test Bank JSC");
    participant.get("/org").await.assert_contains("Accredited");

    // The public registries, without signing in.
    let public = Browser::new(&platform);
    let registry = public.get("/registry").await;
    assert_eq!(registry.status, 200);
    registry.assert_contains("Kaspi Test Bank JSC").assert_contains(&number);
    let providers: serde_json::Value =
        public.client.get(public.url("/api/v1/registry/providers")).send().await.unwrap().json().await.unwrap();
    let entry = providers.as_array().unwrap().iter().find(|e| e["Bin"] == org_bin.as_str()).expect("listed");
    assert_eq!(entry["Name"], "Kaspi Test Bank JSC");
    assert_eq!(entry["AccreditationNumber"], number.as_str());
    assert_eq!(entry["Status"], "Accredited");
    assert!(entry["AccreditedSince"].as_str().unwrap().starts_with(&year.to_string()));
    assert!(entry["ValidUntil"].as_str().unwrap().starts_with(&(year + 3).to_string()));
    let users: serde_json::Value =
        public.client.get(public.url("/api/v1/registry/users")).send().await.unwrap().json().await.unwrap();
    assert!(users.as_array().unwrap().is_empty(), "a provider-only participant is not an API user: {users}");

    // The trail holds the decision; the chain is intact.
    let trail = staff.get("/console/audit?action=participants.application").await;
    trail.assert_contains("participants.application.approved").assert_contains("participants.application.submitted");
    audit_verifies(&platform);
    platform.shutdown().await;
}

#[tokio::test]
async fn changes_requested_then_resubmitted() {
    let platform = Platform::start().await;
    let org_bin = bin("99014000022");
    let (admin, password) = register_organisation(&platform, &org_bin, "Halyk Test Bank JSC", "halyk.admin").await;
    let participant = signed_in(&platform, &admin, &password).await;
    assert_eq!(apply(&participant, vec![("a.pdf", "application/pdf", PDF.to_vec())]).await.status, 200);
    let id = application_id(&platform, &org_bin);
    let staff_password = operator_user(&platform, "op.reviewer", Role::OperatorStaff).await;
    let staff = signed_in(&platform, "op.reviewer", &staff_password).await;
    let review = staff.get(&format!("/console/applications/{id}")).await;
    let asked = staff
        .post(
            &format!("/console/applications/{id}/decision"),
            &review.csrf(),
            &[("decision", "request_changes"), ("reason", "Attach the penetration-test summary")],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let page = participant.get("/org/accreditation").await;
    page.assert_contains("Changes requested").assert_contains("Attach the penetration-test summary");
    assert!(page.body.contains("enctype=\"multipart/form-data\""), "no form to resubmit");
    // Documents larger than the platform's general 1 MiB body limit are accepted on this form.
    let mut two_mib = PDF.to_vec();
    two_mib.resize(2 * 1024 * 1024, b' ');
    let again = participant
        .post_multipart(
            "/org/accreditation",
            application(
                &page.csrf(),
                "submit",
                vec![
                    ("pentest.png", "image/png", b"\x89PNG\r\n\x1a\nrest".to_vec()),
                    ("policy.pdf", "application/pdf", two_mib),
                ],
            ),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    again.assert_contains("Submitted, awaiting review").assert_contains("pentest.png").assert_contains("a.pdf");
    assert_eq!(application_id(&platform, &org_bin), id, "the same application is resubmitted");
    assert_eq!(count(&platform, "accreditation_applications"), 1);
    assert_eq!(count(&platform, "application_documents"), 3);
    platform.shutdown().await;
}

#[tokio::test]
async fn refusals_roles_other_organisations_and_bad_uploads() {
    let platform = Platform::start().await;
    let org_bin = bin("99014000023");
    let (admin, password) = register_organisation(&platform, &org_bin, "Jusan Test Bank JSC", "jusan.admin").await;
    let participant = signed_in(&platform, &admin, &password).await;

    // A developer may look but not apply.
    let dev_password = participant_user(&platform, &org_bin, "jusan.dev", Role::ParticipantDeveloper).await;
    let developer = signed_in(&platform, "jusan.dev", &dev_password).await;
    let view = developer.get("/org/accreditation").await;
    assert_eq!(view.status, 200);
    assert!(!view.body.contains("enctype=\"multipart/form-data\""), "a developer sees the form");
    let denied = developer
        .post_multipart(
            "/org/accreditation",
            application(&view.csrf(), "submit", vec![("a.pdf", "application/pdf", PDF.to_vec())]),
        )
        .await;
    assert_eq!(denied.status, 403);

    // Too large: 5 MiB and one byte of an otherwise valid PDF.
    let mut big = PDF.to_vec();
    big.resize(5 * 1024 * 1024 + 1, b' ');
    let too_large = apply(&participant, vec![("big.pdf", "application/pdf", big)]).await;
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    too_large.assert_contains("larger than 5 MiB");
    // Over the form's own body limit: eleven documents just under 5 MiB each.
    let mut almost = PDF.to_vec();
    almost.resize(5 * 1024 * 1024 - 1024, b' ');
    let many: Vec<(&str, &str, Vec<u8>)> = (0..11).map(|_| ("part.pdf", "application/pdf", almost.clone())).collect();
    let whole = apply(&participant, many).await;
    assert_eq!(whole.status, 413, "{}", whole.body);
    whole.assert_contains("too large");
    // Random bytes and a Windows executable, both claiming to be PDFs.
    let random: Vec<u8> = (0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let wrong = apply(&participant, vec![("scan.pdf", "application/pdf", random)]).await;
    assert_eq!(wrong.status, 415, "{}", wrong.body);
    wrong.assert_contains("Only PDF, PNG and JPEG");
    let exe = apply(&participant, vec![("setup.exe", "application/pdf", b"MZ\x90\x00\x03\x00\x00\x00".to_vec())]).await;
    assert_eq!(exe.status, 415);
    // Even with one good document beside it, a bad one refuses the whole form.
    let mixed = apply(
        &participant,
        vec![("a.pdf", "application/pdf", PDF.to_vec()), ("b.pdf", "application/pdf", b"<html>".to_vec())],
    )
    .await;
    assert_eq!(mixed.status, 415);
    // No role chosen.
    let page = participant.get("/org/accreditation").await;
    let no_role = participant
        .post_multipart(
            "/org/accreditation",
            Form::new().text("csrf", page.csrf()).text("action", "submit").text("contact_name", "X"),
        )
        .await;
    assert_eq!(no_role.status, 422);
    no_role.assert_contains("Choose at least one role");
    assert_eq!(count(&platform, "accreditation_applications"), 0, "a refused form stored an application");
    assert_eq!(count(&platform, "application_documents"), 0, "a refused form stored a document");

    // Another organisation's administrator sees only their own (empty) application and cannot reach the console.
    assert_eq!(apply(&participant, vec![("a.pdf", "application/pdf", PDF.to_vec())]).await.status, 200);
    let id = application_id(&platform, &org_bin);
    let other_bin = bin("99014000024");
    let (other, other_password) = register_organisation(&platform, &other_bin, "Other Pay LLP", "other.admin").await;
    let intruder = signed_in(&platform, &other, &other_password).await;
    let theirs = intruder.get("/org/accreditation").await;
    assert_eq!(theirs.status, 200);
    assert!(
        !theirs.body.contains("Nurlan Abenov") && !theirs.body.contains("Jusan"),
        "another organisation's data shown"
    );
    assert_eq!(intruder.get(&format!("/console/applications/{id}")).await.status, 403);
    assert_eq!(intruder.get("/console/documents/1").await.status, 403);
    assert_eq!(intruder.get("/org/accreditation/documents/1").await.status, 404);
    let own = participant.client.get(participant.url("/org/accreditation/documents/1")).send().await.unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["x-content-type-options"], "nosniff");
    let post = intruder
        .post(
            &format!("/console/applications/{id}/decision"),
            &theirs.csrf(),
            &[("decision", "approve"), ("reason", "x")],
        )
        .await;
    assert_eq!(post.status, 403);
    assert_eq!(count(&platform, "accreditations"), 0);
    audit_verifies(&platform);
    platform.shutdown().await;
}

#[tokio::test]
async fn suspension_from_the_cli_bites_on_the_next_request_and_reinstatement_restores() {
    let platform = Platform::start().await;
    let org_bin = bin("99014000025");
    let (admin, password) = register_organisation(&platform, &org_bin, "Freedom Test Bank JSC", "freedom.admin").await;
    let participant = signed_in(&platform, &admin, &password).await;
    assert_eq!(apply(&participant, vec![("a.pdf", "application/pdf", PDF.to_vec())]).await.status, 200);
    approve(&platform, application_id(&platform, &org_bin)).await;
    participant.get("/org").await.assert_contains("Accredited");
    // A system of the participant with a client certificate: its application, registered on the participant's pages.
    let csr = Csr::new("freedom-gateway");
    let registered = register_app(&participant, "Gateway", "provider_system", "", &csr.csr_pem).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let serial = serials(&registered).remove(0);
    let identity = download(&participant, app_id(&registered), &serial, &csr.key_pem).await;
    let system = platform.client(Some(&identity));
    let ok = system.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    let output = platform
        .kopir()
        .args(["participant", "suspend", &org_bin, "--reason", "Security incident under review"])
        .output()
        .unwrap();
    assert_success(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("accredited -> suspended"));

    // The very next request: the session is gone; signing in again is refused with the reason on the page.
    let next = participant.get("/org").await;
    assert!(next.url.ends_with("/login"), "suspended participant reached {}", next.url);
    let mut again = Browser::new(&platform);
    again.totp_secret = participant.totp_secret.clone();
    let refused = again.sign_in(&admin, &password).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("suspended");
    assert_eq!(again.get("/org/accreditation").await.status, 403);
    // The participant's certificate is refused on its next request too.
    let blocked = system.get(platform.url("/pki/client-certificate")).send().await.unwrap();
    let body = common::expect_ob_error(blocked, 401, "UK.OBIE.Signature.Invalid").await;
    assert!(body.to_string().contains("suspended or revoked"), "{body}");

    let providers: serde_json::Value =
        again.client.get(again.url("/api/v1/registry/providers")).send().await.unwrap().json().await.unwrap();
    let entry = providers.as_array().unwrap().iter().find(|e| e["Bin"] == org_bin.as_str()).expect("still listed");
    assert_eq!(entry["Status"], "Suspended");
    let status: String = db(&platform)
        .query_row(
            "SELECT a.status FROM accreditations a JOIN organisations o ON o.id = a.organisation_id WHERE o.bin = ?1",
            [&org_bin],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "suspended");

    // Reinstating twice: the second is refused.
    assert_success(
        &platform.kopir().args(["participant", "reinstate", &org_bin, "--reason", "Resolved"]).output().unwrap(),
    );
    let twice = platform.kopir().args(["participant", "reinstate", &org_bin, "--reason", "Again"]).output().unwrap();
    assert!(!twice.status.success());
    let mut back = Browser::new(&platform);
    back.totp_secret = participant.totp_secret.clone();
    let page = back.sign_in(&admin, &password).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("Accredited");
    assert_eq!(system.get(platform.url("/pki/client-certificate")).send().await.unwrap().status(), 200);

    let list = platform.kopir().args(["participant", "list", "--json"]).output().unwrap();
    assert_success(&list);
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|o| o["bin"] == org_bin.as_str() && o["status"] == "accredited"));
    let show = platform.kopir().args(["participant", "show", &org_bin]).output().unwrap();
    assert_success(&show);
    assert!(String::from_utf8_lossy(&show.stdout).contains("KOPIR-AC-"));
    let no_reason = platform.kopir().args(["participant", "suspend", &org_bin, "--reason", " "]).output().unwrap();
    assert!(!no_reason.status.success());

    // Revocation is final and takes the participant out of the registries.
    assert_success(
        &platform.kopir().args(["participant", "revoke", &org_bin, "--reason", "Licence withdrawn"]).output().unwrap(),
    );
    assert!(back.get("/org").await.url.ends_with("/login"));
    let providers: serde_json::Value =
        back.client.get(back.url("/api/v1/registry/providers")).send().await.unwrap().json().await.unwrap();
    assert!(!providers.as_array().unwrap().iter().any(|e| e["Bin"] == org_bin.as_str()));
    let reinstate = platform.kopir().args(["participant", "reinstate", &org_bin, "--reason", "no"]).output().unwrap();
    assert!(!reinstate.status.success());
    audit_verifies(&platform);
    platform.shutdown().await;
}

#[tokio::test]
async fn console_participants_staff_and_audit() {
    let platform = Platform::start().await;
    let org_bin = bin("99014000026");
    let (admin, password) = register_organisation(&platform, &org_bin, "Console Test Bank JSC", "console.admin").await;
    let participant = signed_in(&platform, &admin, &password).await;
    assert_eq!(
        apply(&participant, vec![("a.jpg", "image/jpeg", vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])]).await.status,
        200
    );
    approve(&platform, application_id(&platform, &org_bin)).await;

    let admin_password = operator_user(&platform, "op.admin", Role::OperatorAdmin).await;
    let operator = signed_in(&platform, "op.admin", &admin_password).await;
    let dashboard = operator.get("/console").await;
    assert_eq!(dashboard.status, 200);
    let list = operator.get("/console/participants?status=accredited").await;
    list.assert_contains("Console Test Bank JSC");
    let org_id: i64 =
        db(&platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [&org_bin], |r| r.get(0)).unwrap();
    let detail = operator.get(&format!("/console/participants/{org_id}")).await;
    detail.assert_contains("KOPIR-AC-");
    let no_reason = operator
        .post(
            &format!("/console/participants/{org_id}/standing"),
            &detail.csrf(),
            &[("action", "suspend"), ("reason", "")],
        )
        .await;
    assert_eq!(no_reason.status, 422);
    let suspended = operator
        .post(
            &format!("/console/participants/{org_id}/standing"),
            &detail.csrf(),
            &[("action", "suspend"), ("reason", "Unpaid fees")],
        )
        .await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    suspended.assert_contains("Unpaid fees");
    assert!(participant.get("/org").await.url.ends_with("/login"));
    let filtered = operator.get("/console/participants?status=suspended").await;
    filtered.assert_contains("Console Test Bank JSC");

    // Staff: a regulator added with a one-time password shown once, then disabled.
    let staff = operator.get("/console/staff").await;
    let added = operator
        .post(
            "/console/staff",
            &staff.csrf(),
            &[
                ("username", "reg.new"),
                ("full_name", "Regulator Person"),
                ("email", "reg@nbrk.kz"),
                ("role", "regulator"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let one_time = {
        let marker = "id=\"one-time-password\">";
        let start = added.body.find(marker).unwrap() + marker.len();
        added.body[start..start + added.body[start..].find('<').unwrap()].to_string()
    };
    assert_eq!(one_time.len(), 20);
    let newcomer = Browser::new(&platform);
    let first = newcomer.submit("/login", "/login", &[("username", "reg.new"), ("password", &one_time)]).await;
    assert!(first.url.ends_with("/account/password"), "{}", first.url);
    let reg_id: i64 =
        db(&platform).query_row("SELECT id FROM users WHERE username = 'reg.new'", [], |r| r.get(0)).unwrap();
    let disabled = operator.post(&format!("/console/staff/{reg_id}/disable"), &staff.csrf(), &[]).await;
    assert_eq!(disabled.status, 200);
    disabled.assert_contains("Disabled");

    // The audit trail: filters, newest first; secrets never in it.
    let trail = operator.get("/console/audit?action=participants.organisation&object=organisation").await;
    trail.assert_contains("participants.organisation.suspended").assert_contains("Unpaid fees");
    assert!(!trail.body.contains("identity.login"));
    let none = operator.get("/console/audit?from=2000-01-01&to=2000-01-02").await;
    none.assert_contains("Nothing found");
    let all: String = db(&platform)
        .query_row(
            "SELECT group_concat(coalesce(detail, '') || actor || coalesce(object, '')) FROM audit_log",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!all.contains(&one_time), "a one-time password reached the audit journal");
    audit_verifies(&platform);
    platform.shutdown().await;
}
