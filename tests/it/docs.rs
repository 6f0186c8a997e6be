//! The operating documents at `/docs` (public, in three languages, searchable, printable) and the accession
//! agreements' electronic acceptance: required for accreditation, asked again for a new version, journalled and
//! shown to the console.

use crate::common::Platform;
use crate::common::browser::{Browser, bin, operator_user, participant_user};
use crate::common::participant::{PDF, accredit, admin_of_new_organisation, application_form, count, db};
use kopir::docs::agreements::{self, Kind, PublishOutcome};
use kopir::i18n::Lang;
use kopir::identity::Role;
use kopir::store::StoreError;

/// A page fetched anonymously in a language (as a browser sending `Accept-Language`).
async fn anonymous(platform: &Platform, path: &str, lang: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = platform.client(None).get(platform.url(path)).header("accept-language", lang).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn docs_render_every_document_in_three_languages_with_contents_and_search_finds() {
    let platform = Platform::start().await;
    for lang in Lang::ALL {
        let documents: Vec<_> = kopir::docs::documents(lang).collect();
        assert_eq!(documents.len(), 8);
        let (status, _, index) = anonymous(&platform, "/docs", lang.code()).await;
        assert_eq!(status, 200, "{index}");
        assert!(index.contains(&format!("<html lang=\"{}\"", lang.code())), "{index}");
        for doc in &documents {
            assert!(index.contains(&format!("href=\"/docs/{}\"", doc.slug)), "{:?}: {} not listed", lang, doc.slug);
            let (status, headers, page) = anonymous(&platform, &format!("/docs/{}", doc.slug), lang.code()).await;
            assert_eq!(status, 200, "{} {lang:?}", doc.slug);
            // The page's own title, version and the contents linking to each heading.
            assert!(page.contains(&format!("<h1>{}</h1>", doc.title)), "{} {lang:?}", doc.slug);
            assert!(page.contains(&format!("<dd id=\"doc-version\">{}</dd>", doc.version)));
            for entry in &doc.toc {
                assert!(page.contains(&format!("<a href=\"#{}\">", entry.id)), "{} {lang:?}: {entry:?}", doc.slug);
                assert!(page.contains(&format!("id=\"{}\"", entry.id)), "{} {lang:?}: {entry:?}", doc.slug);
            }
            assert!(page.contains(&kopir::docs::version_hash(doc.slug).unwrap()));
            // Scripts never run: none in the page, and the policy allows none.
            assert!(!page.contains("<script"), "{} {lang:?}", doc.slug);
            assert!(headers["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
        }
    }
    // The threat model shown is the repository's own file.
    let (_, _, threat_model) = anonymous(&platform, "/docs/threat-model", "kk").await;
    assert!(threat_model.contains("TLS listener and HTTP server"));
    assert!(threat_model.contains("tests/it/mtls.rs::tls_below_1_2_is_refused"));
    // Printable: the stylesheet has print rules that leave the navigation out.
    let (_, _, css) = anonymous(&platform, "/assets/css/kopir.css", "en").await;
    assert!(css.contains("@media print") && css.contains(".noprint"));

    // Search, server-side, in the visitor's language.
    let (status, _, found) = anonymous(&platform, "/docs/search?q=PKCE+verifier", "en").await;
    assert_eq!(status, 200);
    assert!(found.contains("href=\"/docs/developer-guide#sec-"), "{found}");
    let (_, _, found) = anonymous(&platform, "/docs/search?q=%D0%B4%D0%BE%D0%B3%D0%BE%D0%B2%D0%BE%D1%80", "ru").await;
    assert!(found.contains("href=\"/docs/agreement-provider#sec-"), "{found}");
    assert!(found.contains("href=\"/docs/agreement-user#sec-"), "{found}");
    let (_, _, found) = anonymous(&platform, "/docs/search?q=%D0%BA%D0%B5%D0%BB%D1%96%D1%81%D1%96%D0%BC", "kk").await;
    assert!(found.contains("href=\"/docs/agreement-user#sec-"), "{found}");
    let (_, _, none) = anonymous(&platform, "/docs/search?q=zzqqxx", "en").await;
    assert!(none.contains("id=\"no-results\""), "{none}");
    // What was typed is shown back escaped, never as markup.
    let (_, _, escaped) = anonymous(&platform, "/docs/search?q=%3Cscript%3Ealert(1)%3C/script%3E", "en").await;
    assert!(!escaped.contains("<script>alert"), "{escaped}");
    assert!(escaped.contains("script") && escaped.contains("alert(1)"), "{escaped}");

    let (status, _, _) = anonymous(&platform, "/docs/no-such-document", "en").await;
    assert_eq!(status, 404);
    platform.shutdown().await;
}

#[tokio::test]
async fn accreditation_is_refused_without_the_agreement_and_the_acceptance_is_stored_and_journalled() {
    let platform = Platform::start().await;
    let org_bin = bin("99016000077");
    let admin = admin_of_new_organisation(&platform, &org_bin, "Steppe Pay LLP", "steppe.admin").await;

    // The form names the agreement of each role, in its current version.
    let page = admin.get("/org/accreditation").await;
    page.assert_contains("href=\"/docs/agreement-provider\"").assert_contains("name=\"accept_agreements\"");

    // Submitted without ticking the acceptance: refused, nothing submitted, nothing accepted.
    let refused = admin
        .post_multipart(
            "/org/accreditation",
            application_form(&page.csrf(), "submit", vec![("licence.pdf", "application/pdf", PDF.to_vec())], false),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_contains("You have not accepted the accession agreement");
    assert_eq!(count(&platform, "SELECT count(*) FROM accreditation_applications WHERE status = 'submitted'"), 0);
    assert_eq!(count(&platform, "SELECT count(*) FROM agreement_acceptances"), 0);

    // Ticked, but the submission is refused for another reason (no document): the acceptance is rolled back with it.
    let no_documents =
        admin.post_multipart("/org/accreditation", application_form(&page.csrf(), "submit", vec![], true)).await;
    assert_eq!(no_documents.status, 422, "{}", no_documents.body);
    assert_eq!(count(&platform, "SELECT count(*) FROM agreement_acceptances"), 0);

    // Ticked: the provider agreement's current version is accepted by this administrator, with its hash.
    let submitted = admin
        .post_multipart(
            "/org/accreditation",
            application_form(&page.csrf(), "submit", vec![("licence.pdf", "application/pdf", PDF.to_vec())], true),
        )
        .await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);
    let (username, sha256, lang): (String, String, String) = db(&platform)
        .query_row(
            "SELECT u.username, v.sha256, a.lang FROM agreement_acceptances a
               JOIN agreement_versions v ON v.id = a.version_id JOIN users u ON u.id = a.user_id
              WHERE v.kind = 'provider'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(username, "steppe.admin");
    assert_eq!(sha256, kopir::docs::version_hash("agreement-provider").unwrap());
    assert_eq!(lang, "en");
    let (actor, detail): (String, String) = db(&platform)
        .query_row(
            "SELECT actor, detail FROM audit_log WHERE action = 'docs.agreement.accepted' AND organisation = ?1",
            [&org_bin],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(actor, "user:steppe.admin");
    assert!(detail.contains(&sha256) && detail.contains("\"agreement\":\"provider\""), "{detail}");

    // A new version recorded before the operator decides: the approval is refused until it is accepted too.
    let application_id: i64 = db(&platform)
        .query_row("SELECT id FROM accreditation_applications WHERE status = 'submitted'", [], |r| r.get(0))
        .unwrap();
    // (A version the binary's own text does not carry.)
    let next = format!("{}.next", current_text_version(Kind::Provider));
    publish(&platform, Kind::Provider, &next).await;
    let staff_password = operator_user(&platform, "aliya.ops", Role::OperatorStaff).await;
    let mut staff = Browser::new(&platform);
    staff.sign_in("aliya.ops", &staff_password).await;
    let review = staff.get(&format!("/console/applications/{application_id}")).await;
    let decided = staff
        .post(
            &format!("/console/applications/{application_id}/decision"),
            &review.csrf(),
            &[("decision", "approve"), ("reason", "documents in order")],
        )
        .await;
    assert_eq!(decided.status, 409, "{}", decided.body);
    decided.assert_contains("has not accepted the current accession agreement");
    assert_eq!(count(&platform, "SELECT count(*) FROM accreditations"), 0);

    // The administrator accepts the new version on the agreements page; then the operator approves.
    let agreements = admin.get("/org/agreements").await;
    agreements.assert_contains(&next).assert_contains("Not accepted");
    let version_id = current_version_id(&platform, Kind::Provider);
    let accepted = admin
        .post("/org/agreements", &agreements.csrf(), &[("version_id", &version_id.to_string()), ("confirm", "yes")])
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let decided = staff
        .post(
            &format!("/console/applications/{application_id}/decision"),
            &review.csrf(),
            &[("decision", "approve"), ("reason", "documents in order")],
        )
        .await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert_eq!(count(&platform, "SELECT count(*) FROM accreditations"), 1);
    assert_eq!(count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'docs.agreement.accepted'"), 2);
    assert!(kopir::audit::verify(&db(&platform)).is_ok());
    platform.shutdown().await;
}

/// The version of an agreement's text in this binary.
fn current_text_version(kind: Kind) -> String {
    kopir::docs::document(kind.slug(), kopir::i18n::Lang::En).unwrap().version.clone()
}

/// Records a new version of an agreement as a new binary's start would (`agreements::sync` calls the same).
async fn publish(platform: &Platform, kind: Kind, version: &str) {
    let now = platform.clock().now();
    let version = version.to_string();
    let sha256 = kopir::digest::sha256_hex(format!("{kind} {version}").as_bytes());
    let outcome = platform
        .running()
        .state
        .db
        .write(move |tx| {
            let system = kopir::audit::Actor { name: "system".into(), source: "system".into(), user_id: None };
            agreements::publish(tx, kind, &version, &sha256, now + time::Duration::days(30), &system, now)
                .map_err(StoreError::from)
        })
        .await
        .unwrap();
    assert!(matches!(outcome, PublishOutcome::Published { .. }), "{outcome:?}");
}

fn current_version_id(platform: &Platform, kind: Kind) -> i64 {
    agreements::current(&db(platform), kind).unwrap().unwrap().id
}

#[tokio::test]
async fn a_new_version_asks_every_participant_and_the_console_shows_who_has_and_has_not_accepted() {
    let platform = Platform::start().await;
    let first_bin = bin("99017000088");
    let second_bin = bin("99018000099");
    let first = admin_of_new_organisation(&platform, &first_bin, "Altyn Test Bank JSC", "altyn.admin").await;
    let second = admin_of_new_organisation(&platform, &second_bin, "Dala Test Bank JSC", "dala.admin").await;
    accredit(&platform, &first_bin).await;
    accredit(&platform, &second_bin).await;
    let old_version = current_version_id(&platform, Kind::User);

    publish(&platform, Kind::User, "2.0").await;
    // Every participant accredited as an API user is asked, by a signed webhook naming the date.
    assert_eq!(count(&platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'agreement.published'"), 2);
    let payload: String = db(&platform)
        .query_row("SELECT payload FROM webhook_outbox WHERE event_type = 'agreement.published' LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(payload.contains("\"Version\":\"2.0\"") && payload.contains("\"AcceptBy\""), "{payload}");
    assert_eq!(count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'docs.agreement.published'"), 3);

    // Its administrator is told on the organisation's page, and sees the version to accept and by when; a developer
    // sees it but may not accept.
    let dashboard = first.get("/org").await;
    dashboard
        .assert_contains("id=\"pending-agreements\"")
        .assert_contains("Accession agreement for API users, version 2.0");
    let page = first.get("/org/agreements").await;
    assert_eq!(page.status, 200);
    page.assert_contains("2.0").assert_contains("Not accepted").assert_contains("name=\"confirm\"");
    let developer_password = participant_user(&platform, &first_bin, "altyn.dev", Role::ParticipantDeveloper).await;
    let mut developer = Browser::new(&platform);
    developer.sign_in("altyn.dev", &developer_password).await;
    let seen = developer.get("/org/agreements").await;
    assert_eq!(seen.status, 200);
    assert!(!seen.body.contains("name=\"confirm\""), "a developer is offered the acceptance");
    let new_version = current_version_id(&platform, Kind::User);
    let refused = developer
        .post("/org/agreements", &seen.csrf(), &[("version_id", &new_version.to_string()), ("confirm", "yes")])
        .await;
    assert_eq!(refused.status, 403);

    // Unticked, or an old version: refused and nothing stored.
    let unticked = first.post("/org/agreements", &page.csrf(), &[("version_id", &new_version.to_string())]).await;
    assert_eq!(unticked.status, 422);
    let stale = first
        .post("/org/agreements", &page.csrf(), &[("version_id", &old_version.to_string()), ("confirm", "yes")])
        .await;
    assert_eq!(stale.status, 409);
    let before = count(&platform, "SELECT count(*) FROM agreement_acceptances");
    let accepted = first
        .post("/org/agreements", &page.csrf(), &[("version_id", &new_version.to_string()), ("confirm", "yes")])
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    accepted.assert_contains("Accepted. The acceptance is recorded");
    assert_eq!(count(&platform, "SELECT count(*) FROM agreement_acceptances"), before + 1);
    assert!(!first.get("/org").await.body.contains("pending-agreements"));
    let detail: String = db(&platform)
        .query_row(
            "SELECT detail FROM audit_log WHERE action = 'docs.agreement.accepted' AND object = 'agreement:user:2.0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(detail.contains("\"version\":\"2.0\"") && detail.contains("\"sha256\""), "{detail}");

    // The console (operator staff and the regulator, read-only) shows who has and who has not accepted.
    for (name, role) in [("aliya.ops", Role::OperatorStaff), ("regulator.nb", Role::Regulator)] {
        let password = operator_user(&platform, name, role).await;
        let mut reader = Browser::new(&platform);
        reader.sign_in(name, &password).await;
        let console = reader.get("/console/agreements").await;
        assert_eq!(console.status, 200, "{name}");
        let user_section = console.body.split("id=\"agreement-user\"").nth(1).unwrap();
        let first_row = user_section.split("<tr>").find(|r| r.contains("Altyn Test Bank JSC")).unwrap();
        assert!(first_row.contains("Accepted") && first_row.contains("altyn.admin"), "{first_row}");
        let second_row = user_section.split("<tr>").find(|r| r.contains("Dala Test Bank JSC")).unwrap();
        assert!(second_row.contains("Not accepted"), "{second_row}");
        assert!(user_section.contains("Earlier versions"));
        assert!(!console.body.contains("method=\"post\" action=\"/console"));
    }
    // Nobody else reads the console page or another organisation's acceptance.
    assert_eq!(second.get("/console/agreements").await.status, 403);
    let stranger = Browser::new(&platform);
    assert!(stranger.get("/console/agreements").await.url.ends_with("/login"));
    assert!(stranger.get("/org/agreements").await.url.ends_with("/login"));
    let theirs = second.get("/org/agreements").await;
    assert!(!theirs.body.contains("altyn.admin"), "another organisation's acceptance is shown");

    // Once the date has passed, the one who has not accepted is shown overdue.
    platform.clock().advance(time::Duration::days(31));
    let password = operator_user(&platform, "ops.later", Role::OperatorStaff).await;
    let mut staff = Browser::new(&platform);
    staff.sign_in("ops.later", &password).await;
    let console = staff.get("/console/agreements").await;
    let user_section = console.body.split("id=\"agreement-user\"").nth(1).unwrap();
    let second_row = user_section.split("<tr>").find(|r| r.contains("Dala Test Bank JSC")).unwrap();
    assert!(second_row.contains("Overdue"), "{second_row}");

    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_read_and_search_in_chromium_in_three_languages() {
    let platform = Platform::start().await;
    let chrome = crate::common::chrome::Chrome::start(&platform.url(""), "docs").await;
    chrome.goto("/docs").await;
    chrome.wait_text("Operating documents").await;
    chrome.shot("1-index").await;
    chrome.click("a[href='/docs/developer-guide']").await;
    chrome.wait_text("Push the authorization request").await;
    chrome.shot("2-developer-guide").await;
    chrome.goto("/docs").await;
    chrome.fill("docs-q", "PKCE").await;
    chrome.click("form.docs-search button[type=submit]").await;
    chrome.wait_text("Sections found").await;
    chrome.shot("3-search").await;
    chrome.goto("/lang/ru").await;
    chrome.goto("/docs/agreement-user").await;
    chrome.wait_text("Договор присоединения для пользователей API").await;
    chrome.shot("4-agreement-ru").await;
    chrome.goto("/lang/kk").await;
    chrome.goto("/docs/threat-model").await;
    chrome.wait_text("Қауіптер моделі").await;
    chrome.shot("5-threat-model-kk").await;
    chrome.close().await;
    platform.shutdown().await;
}
