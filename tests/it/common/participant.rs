//! Helpers for participants' pages: accrediting an organisation and changing its standing as the operator does,
//! inviting and activating members, registering applications and fetching their certificates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::browser::{Browser, Page, extract_attr, register_organisation};
use super::{Identity, Platform};
use kopir::audit::Actor;
use kopir::participants;
use kopir::participants::accreditation::{
    self, ApplicationInput, DecideOutcome, Decision, Lifecycle, LifecycleOutcome, NewDocument, Questionnaire,
    SaveOutcome,
};
use kopir::store::StoreError;

/// The test database, opened beside the running server (WAL lets both work).
pub fn db(platform: &Platform) -> RawDb {
    let conn = rusqlite::Connection::open(platform.config.db_path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    RawDb { conn, path: platform.config.db_path() }
}

/// A direct connection to the platform's database that, when dropped, tells the running platform its data changed
/// behind its back (as an operator's `sqlite3` repair must), so that the gateway judges the next request afresh.
pub struct RawDb {
    conn: rusqlite::Connection,
    path: std::path::PathBuf,
}

impl std::ops::Deref for RawDb {
    type Target = rusqlite::Connection;

    fn deref(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

impl Drop for RawDb {
    fn drop(&mut self) {
        // (Once the test's platform and its directory are gone, there is nobody left to tell.)
        if self.path.exists() {
            kopir::store::note_external_change(&self.path).unwrap();
        }
    }
}

/// Accredits the organisation as API provider and API user, as the operator's approval does: see [`accredit_as`].
pub async fn accredit(platform: &Platform, bin: &str) {
    accredit_as(platform, bin, true, true).await;
}

/// Accredits the organisation (registered, the only one with `bin`) in the roles asked for, the way the product does
/// it: its accreditation application, with one document, submitted and then approved by the operator — the
/// product's own functions, in one transaction on the running platform's writer. The tests using this are about what
/// accreditation allows, not how it is given (tests/it/accreditation.rs walks the pages).
pub async fn accredit_as(platform: &Platform, bin: &str, provider: bool, user: bool) {
    let bin_owned = bin.to_string();
    let now = platform.running().state.clock.now();
    let outcome = platform
        .running()
        .state
        .db
        .write(move |tx| {
            let bin = bin_owned;
            let organisations = participants::organisations_with_bin(tx, &bin.parse().unwrap())?;
            let [org] = organisations.as_slice() else {
                return Ok(Err(format!("{} organisations with BIN {bin}, not one", organisations.len())));
            };
            let input = ApplicationInput {
                wants_provider: provider,
                wants_user: user,
                questionnaire: Questionnaire {
                    isms: true,
                    isms_detail: "ISO/IEC 27001:2022".into(),
                    security_officer_name: "Aliya Security".into(),
                    security_officer_email: "security@bank.kz".into(),
                    incident_phone: "+7 727 250 00 01".into(),
                    pentest: false,
                    pentest_date: String::new(),
                    data_in_kz: true,
                    encryption_at_rest: true,
                },
                contact_name: "Nurlan Abenov".into(),
                contact_email: "openbanking@bank.kz".into(),
                contact_phone: "+7 727 250 00 00".into(),
            };
            let licence =
                NewDocument { filename: "licence.pdf".into(), content_type: "application/pdf", content: PDF.to_vec() };
            // Its administrator (the first one, or one made for the purpose) accepts the accession agreements.
            let administrator = organisation_administrator(tx, org, now)?;
            let kinds = kopir::docs::agreements::Kind::for_roles(provider, user);
            kopir::docs::agreements::accept_current(
                tx,
                org.party(),
                &administrator,
                &kinds,
                kopir::i18n::Lang::En,
                now,
            )?;
            let saved = accreditation::save_application(tx, org, &input, &[licence], true, &operator(), now)?;
            let SaveOutcome::Saved { application_id, .. } = saved else {
                return Ok(Err(format!("application not saved: {saved:?}")));
            };
            let decided =
                accreditation::decide(tx, application_id, Decision::Approve, "documents in order", &operator(), now)?;
            Ok::<_, StoreError>(match decided {
                DecideOutcome::Decided { .. } => Ok(()),
                other => Err(format!("not approved: {other:?}")),
            })
        })
        .await
        .unwrap();
    outcome.unwrap_or_else(|why| panic!("accrediting {bin}: {why}"));
}

/// Changes an accredited organisation's standing as the operator does (`suspended`, `accredited` again from
/// suspended, or `revoked`), through the product's own function.
pub async fn set_status(platform: &Platform, bin: &str, status: &str) {
    let change = match status {
        "suspended" => Lifecycle::Suspend,
        "accredited" => Lifecycle::Reinstate,
        "revoked" => Lifecycle::Revoke,
        other => panic!("the operator cannot make an organisation {other}"),
    };
    let bin_owned = bin.to_string();
    let now = platform.running().state.clock.now();
    let outcome = platform
        .running()
        .state
        .db
        .write(move |tx| {
            let Some(org) = participants::organisation_by_bin(tx, &bin_owned.parse().unwrap())? else {
                return Ok(None);
            };
            let changed =
                accreditation::change_standing(tx, org.id, change, "the operator's decision", &operator(), now)?;
            Ok::<_, StoreError>(Some(changed))
        })
        .await
        .unwrap();
    assert!(matches!(outcome, Some(LifecycleOutcome::Changed { .. })), "{bin} {status}: {outcome:?}");
}

/// The organisation's first administrator as an actor; an organisation without one (made straight in the database)
/// gets one, as registration would have made it.
fn organisation_administrator(
    tx: &rusqlite::Transaction,
    org: &participants::Organisation,
    now: time::OffsetDateTime,
) -> Result<Actor, StoreError> {
    let found: Option<(i64, String)> = rusqlite::OptionalExtension::optional(tx.query_row(
        "SELECT id, username FROM users WHERE organisation_id = ?1 AND role = 'participant_admin' ORDER BY id LIMIT 1",
        [org.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))?;
    let (id, username) = match found {
        Some(found) => found,
        None => {
            let username = format!("admin-{}", org.bin.as_str());
            let id = kopir::identity::create_member(
                tx,
                &username,
                "Administrator",
                "admin@bank.kz",
                kopir::identity::Role::ParticipantAdmin,
                Some(org.id),
                "not-a-password-hash",
                false,
                now,
            )?;
            (id, username)
        }
    };
    Ok(Actor { name: format!("user:{username}"), source: "test".into(), user_id: Some(id) })
}

/// The operator, as the audit journal names it when the product's functions are called on its behalf.
fn operator() -> Actor {
    Actor { name: "cli:operator".into(), source: "cli".into(), user_id: None }
}

pub fn count(platform: &Platform, sql: &str) -> i64 {
    db(platform).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Rows of `sql` as (key, count) pairs, read straight from the database (no rollup or report involved).
pub fn counts_by_key(platform: &Platform, sql: &str) -> std::collections::BTreeMap<String, i64> {
    let conn = db(platform);
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Registers an organisation and signs its first administrator in (TOTP enrolled).
pub async fn admin_of_new_organisation(platform: &Platform, bin: &str, name: &str, admin: &str) -> Browser {
    let (admin, password) = register_organisation(platform, bin, name, admin).await;
    let mut browser = Browser::new(platform);
    let page = browser.sign_in(&admin, &password).await;
    assert!(page.url.ends_with("/org"), "landed on {}:\n{}", page.url, page.body);
    browser
}

/// Invites a member through the staff page; returns the one-time password shown on the result page.
pub async fn invite(admin: &Browser, username: &str, role: &str) -> String {
    let page = admin
        .submit(
            "/org/staff",
            "/org/staff",
            &[("full_name", "Nurlan Abenov"), ("email", "nurlan@bank.kz"), ("username", username), ("role", role)],
        )
        .await;
    assert_eq!(page.status, 200, "invitation failed:\n{}", page.body);
    one_time_password(&page)
}

pub fn one_time_password(page: &Page) -> String {
    let marker = "id=\"one-time-password\">";
    let start =
        page.body.find(marker).unwrap_or_else(|| panic!("no one-time password on:\n{}", page.body)) + marker.len();
    let end = page.body[start..].find('<').unwrap() + start;
    page.body[start..end].to_string()
}

/// Signs an invited member in with the one-time password: the platform makes them choose a password and enrol
/// TOTP first. Returns their browser, signed in, and the password they chose.
pub async fn activate(platform: &Platform, username: &str, one_time_password: &str) -> (Browser, String) {
    let mut browser = Browser::new(platform);
    browser.username = username.to_string();
    let page = browser.submit("/login", "/login", &[("username", username), ("password", one_time_password)]).await;
    assert!(page.url.ends_with("/account/password"), "one-time password did not force a change: {}", page.url);
    page.assert_contains("one-time password");
    let password = format!("{username}-Own-Passw0rd");
    let changed =
        browser.post("/account/password", &page.csrf(), &[("new_password", &password), ("confirm", &password)]).await;
    assert!(changed.url.ends_with("/account/enrol"), "no TOTP enrolment after the change: {}", changed.url);
    let done = browser.enrol(&changed).await;
    assert!(done.url.ends_with("/org"), "landed on {}:\n{}", done.url, done.body);
    (browser, password)
}

/// Registers an application through the page; returns the page after the post (the application's page on success).
pub async fn register_app(browser: &Browser, name: &str, kind: &str, redirect_uris: &str, csr_pem: &str) -> Page {
    browser
        .submit(
            "/org/apps",
            "/org/apps",
            &[("name", name), ("kind", kind), ("redirect_uris", redirect_uris), ("csr", csr_pem)],
        )
        .await
}

/// The application id in an application page's URL.
pub fn app_id(page: &Page) -> i64 {
    let tail = page.url.rsplit("/org/apps/").next().unwrap();
    tail.trim_end_matches('/').parse().unwrap_or_else(|_| panic!("not an application page: {}", page.url))
}

pub fn client_id(page: &Page) -> String {
    let marker = "id=\"client-id\">";
    let start = page.body.find(marker).unwrap() + marker.len();
    let end = page.body[start..].find('<').unwrap() + start;
    page.body[start..end].to_string()
}

/// Serials of the certificates listed on an application page, newest first.
pub fn serials(page: &Page) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = page.body.as_str();
    while let Some(i) = rest.find("/certificates/") {
        rest = &rest[i + "/certificates/".len()..];
        if let Some(end) = rest.find(".pem\"") {
            let serial = &rest[..end];
            if serial.chars().all(|c| c.is_ascii_hexdigit()) && !out.contains(&serial.to_string()) {
                out.push(serial.to_string());
            }
        }
    }
    out
}

/// Downloads a certificate chain as the page offers it and pairs it with the key.
pub async fn download(browser: &Browser, app: i64, serial: &str, key_pem: &str) -> Identity {
    let response =
        browser.client.get(browser.url(&format!("/org/apps/{app}/certificates/{serial}.pem"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-pem-file");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(disposition.starts_with("attachment") && disposition.contains(&format!("{serial}.pem")), "{disposition}");
    let chain_pem = response.text().await.unwrap();
    assert_eq!(chain_pem.matches("BEGIN CERTIFICATE").count(), 2, "certificate then issuing CA");
    Identity { chain_pem, key_pem: key_pem.to_string() }
}

/// The CSRF token of a page, for posting to another form action on it.
pub fn csrf_of(page: &Page) -> String {
    extract_attr(&page.body, "name=\"csrf\" value=\"").unwrap()
}

/// A minimal PDF.
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f, 0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba,
    0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The accreditation application form as the applicant fills it in, with `documents` (name, type, bytes) attached
/// and the accession agreements accepted.
pub fn application(csrf: &str, action: &str, documents: Vec<(&str, &str, Vec<u8>)>) -> reqwest::multipart::Form {
    application_form(csrf, action, documents, true)
}

/// [`application`], with the accession agreements' tick box ticked or not.
pub fn application_form(
    csrf: &str,
    action: &str,
    documents: Vec<(&str, &str, Vec<u8>)>,
    accept_agreements: bool,
) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_string())
        .text("wants_provider", "yes")
        .text("isms", "yes")
        .text("isms_detail", "ISO/IEC 27001:2022, certificate 123")
        .text("security_officer_name", "Nurlan Abenov")
        .text("security_officer_email", "security@bank.kz")
        .text("incident_phone", "+7 727 250 00 01")
        .text("pentest", "no")
        .text("pentest_date", "")
        .text("data_in_kz", "yes")
        .text("encryption_at_rest", "yes")
        .text("contact_name", "Aigerim Sadykova")
        .text("contact_email", "aigerim@bank.kz")
        .text("contact_phone", "+7 727 250 00 00");
    for (name, mime, bytes) in documents {
        form = form.part(
            "documents",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()).mime_str(mime).unwrap(),
        );
    }
    if accept_agreements {
        form = form.text("accept_agreements", "yes");
    }
    form.text("action", action.to_string())
}
