//! Request management: requests raised over mTLS and in the personal account are assigned by the classifier and
//! their object, attachments are judged by their content, each party sees only its requests (the operator all, the
//! regulator reads), SLA deadlines run in working time across a weekend and a public holiday, pause while waiting
//! for the requester and escalate at the deadline, the operator re-assigns, the executor answers and the requester
//! closes — each change signed to the organisations concerned.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::common::browser::{Browser, Page, bin, extract_attr, operator_user};
use crate::common::consent::{Scenario, scenario};
use crate::common::participant::{accredit, admin_of_new_organisation, count, db};
use crate::common::{Platform, eventually};
use crate::webhooks::{Receiver, set_url, verify};
use kopir::identity::Role;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
/// A Windows program calling itself a PDF.
const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0 this is not a PDF";

fn org_id(platform: &Platform, bin: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [bin], |r| r.get(0)).unwrap()
}

fn column(platform: &Platform, id: i64, column: &str) -> Option<String> {
    db(platform)
        .query_row(&format!("SELECT CAST({column} AS TEXT) FROM requests WHERE id = ?1"), [id], |r| r.get(0))
        .unwrap()
}

async fn raise_over_api(s: &Scenario, body: Value) -> reqwest::Response {
    s.api().post(s.platform.url("/participant/v1/requests")).json(&body).send().await.unwrap()
}

/// The bank's administrator of [`scenario`]'s first bank, signed in.
async fn bank_admin(s: &Scenario) -> Browser {
    let mut browser = Browser::new(&s.platform);
    let page = browser.sign_in("admin0001", "admin0001-Passw0rd-long").await;
    assert!(page.url.ends_with("/org"), "{}", page.url);
    browser
}

async fn signed_in_operator(platform: &Platform, name: &str, role: Role) -> Browser {
    let password = operator_user(platform, name, role).await;
    let mut browser = Browser::new(platform);
    let landed = browser.sign_in(name, &password).await;
    assert!(landed.url.ends_with("/console"), "{}", landed.url);
    browser
}

/// Raises a request on the personal account's form; returns the page it lands on.
pub(crate) async fn raise_on_page(browser: &Browser, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Page {
    let form_page = browser.get("/org/requests/new").await;
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    let mut form = reqwest::multipart::Form::new().text("csrf", form_page.csrf());
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    for (name, bytes) in files {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string());
        form = form.part("attachments", part);
    }
    browser.post_multipart("/org/requests", form).await
}

fn id_of(page: &Page) -> i64 {
    page.url.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a request: {}", page.url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_raised_over_mtls_goes_to_the_api_s_provider_and_only_the_parties_see_it() {
    let s = scenario(1).await;
    let platform = &s.platform;
    let (bank_bin, bank_name) = s.banks[0].clone();
    let (bank, fintech) = (org_id(platform, &bank_bin), org_id(platform, &s.user_bin));
    let receiver = Receiver::start(platform, 0).await;
    set_url(platform, bank, &receiver.url()).await;
    let api: i64 =
        db(platform).query_row("SELECT id FROM apis WHERE organisation_id = ?1", [bank], |r| r.get(0)).unwrap();

    // The classifier over the API: the seeded starting set.
    let categories: Value =
        s.api().get(platform.url("/participant/v1/requests/categories")).send().await.unwrap().json().await.unwrap();
    let codes: Vec<&str> =
        categories["categories"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    for code in ["integration", "incident", "incident.api", "dispute", "accreditation", "billing", "security"] {
        assert!(codes.contains(&code), "{codes:?}");
    }

    // An incident on the bank's API goes to the bank; the attachment is kept.
    let png = base64::engine::general_purpose::STANDARD.encode(PNG);
    let raised = raise_over_api(
        &s,
        json!({"category": "incident.api", "subject": "Balances time out", "description": "Since 10:00 every call to /balances times out.",
               "priority": "high", "object": {"kind": "api", "id": api.to_string()},
               "attachments": [{"filename": "trace.png", "content": png}]}),
    )
    .await;
    assert_eq!(raised.status(), 201);
    let incident: Value = raised.json().await.unwrap();
    assert_eq!(incident["status"], "assigned");
    assert_eq!(incident["assignee_organisation_id"], bank);
    assert_eq!(incident["assignee_name"], bank_name.as_str());
    assert!(incident["resolution_due_at"].is_string());
    let incident_id = incident["id"].as_i64().unwrap();

    // A question about integration goes to the operator's staff.
    let question: Value = raise_over_api(
        &s,
        json!({"category": "integration", "subject": "Pagination", "description": "How large may a page be?"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(question["assignee_team"], "operator_staff");
    assert_eq!(question["priority"], "normal");
    assert_eq!(question["assignee_organisation_id"], Value::Null);

    // Refusals: an object the fintech may not name, a program calling itself a PDF.
    let unknown = raise_over_api(
        &s,
        json!({"category": "dispute.data", "subject": "x", "description": "y", "object": {"kind": "consent", "id": "aac-not-ours"}}),
    )
    .await;
    let body = crate::common::expect_ob_error(unknown, 400, "UK.OBIE.Field.Invalid").await;
    assert_eq!(body["Errors"][0]["Path"], "object");
    let exe = base64::engine::general_purpose::STANDARD.encode(EXE);
    let disguised = raise_over_api(
        &s,
        json!({"category": "incident", "subject": "x", "description": "y", "attachments": [{"filename": "report.pdf", "content": exe}]}),
    )
    .await;
    crate::common::expect_ob_error(disguised, 415, "UK.OBIE.Resource.InvalidFormat").await;
    assert_eq!(count(platform, "SELECT count(*) FROM requests"), 2, "nothing of a refused request is stored");
    // Without a client certificate: refused.
    let anonymous = platform.client(None).get(platform.url("/participant/v1/requests")).send().await.unwrap();
    assert!(!anonymous.status().is_success(), "{}", anonymous.status());

    // The bank sees the incident (not the fintech's question), with the attachment; it answers.
    let bank_browser = bank_admin(&s).await;
    let list = bank_browser.get("/org/requests").await;
    list.assert_contains("Balances time out");
    assert!(!list.body.contains("Pagination"), "the bank sees another party's question");
    let page = bank_browser.get(&format!("/org/requests/{incident_id}")).await;
    assert_eq!(page.status, 200);
    page.assert_contains("Fintech One").assert_contains("trace.png");
    assert_eq!(bank_browser.get(&format!("/org/requests/{}", question["id"])).await.status, 404);
    let answered = bank_browser
        .submit(
            &format!("/org/requests/{incident_id}"),
            &format!("/org/requests/{incident_id}/comment"),
            &[("body", "Looking into it.")],
        )
        .await;
    answered.assert_contains("Looking into it.");
    assert!(
        column(platform, incident_id, "first_responded_at").is_some(),
        "the executor's comment is the first response"
    );

    // A third participant sees neither.
    let stranger_bin = bin("99034200001");
    let stranger = admin_of_new_organisation(platform, &stranger_bin, "Stranger Fintech", "strangeradmin").await;
    assert_eq!(stranger.get(&format!("/org/requests/{incident_id}")).await.status, 404);
    assert_eq!(stranger.get(&format!("/org/requests/{incident_id}/attachments/1")).await.status, 404);
    assert!(!stranger.get("/org/requests").await.body.contains("Balances time out"));

    // The fintech's system reads it with the bank's answer; the stranger's organisation has none.
    let read: Value = s
        .api()
        .get(platform.url(&format!("/participant/v1/requests/{incident_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(read["history"].as_array().unwrap().iter().any(|h| h["body"] == "Looking into it."), "{read}");

    // The operator sees all; the regulator reads but may not act; participants may not open the console.
    let operator = signed_in_operator(platform, "aliya.ops", Role::OperatorStaff).await;
    operator.get("/console/requests").await.assert_contains("Balances time out").assert_contains("Pagination");
    let regulator = signed_in_operator(platform, "regulator.nb", Role::Regulator).await;
    let read_only = regulator.get(&format!("/console/requests/{incident_id}")).await;
    assert_eq!(read_only.status, 200);
    assert!(!read_only.body.contains("/comment\""), "no forms for the regulator");
    let csrf = read_only.csrf();
    let refused = regulator.post(&format!("/console/requests/{incident_id}/comment"), &csrf, &[("body", "hi")]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(bank_browser.get("/console/requests").await.status, 403);
    assert!(Browser::new(platform).get("/org/requests").await.url.ends_with("/login"));

    // The bank's inbox carries the incident beside its accreditation's approval, unread until marked read.
    let inbox = bank_browser.get("/org/inbox").await;
    inbox.assert_contains("A request was raised").assert_contains(&format!("/org/requests/{incident_id}"));
    inbox.assert_contains("The accreditation was approved").assert_contains("id=\"unread-count\">3<");
    let newest = extract_attr(&inbox.body, "name=\"up_to\" value=\"").unwrap();
    let read = bank_browser.post("/org/inbox/read", &inbox.csrf(), &[("up_to", &newest)]).await;
    read.assert_contains("id=\"unread-count\">0<");
    assert!(!stranger.get("/org/inbox").await.body.contains("A request was raised"));

    // Journal and signed webhooks: the bank heard of the incident and of its own comment, signed for its BIN.
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'requests.request.created'"), 2);
    let seen = eventually("the bank's webhooks", Duration::from_secs(20), async || {
        let seen = receiver.seen();
        if seen.len() >= 2 { Ok(seen) } else { Err(seen.len()) }
    })
    .await;
    let events: Vec<Value> =
        verified(platform, &seen.iter().map(|s| s.body.clone()).collect::<Vec<_>>(), &bank_bin).await;
    assert!(
        events.iter().any(|c| c["event"] == "request.created" && c["data"]["request_id"] == incident_id),
        "{events:?}"
    );
    assert!(events.iter().any(|c| c["event"] == "request.updated" && c["data"]["change"] == "comment"), "{events:?}");
    let requests_heard = events.iter().filter(|c| c["event"].as_str().is_some_and(|e| e.starts_with("request.")));
    assert!(requests_heard.clone().count() >= 2);
    assert!(
        requests_heard.into_iter().all(|c| c["data"]["request_id"] == incident_id),
        "the bank hears only of its requests"
    );
    assert_eq!(fintech, incident["requester_organisation_id"].as_i64().unwrap());
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_s_complaint_about_a_consent_reaches_the_api_user_and_the_operator() {
    let s = scenario(1).await;
    let platform = &s.platform;
    let iin = crate::common::consent::iin(81);
    let consent_id = s.create_consent().await;
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    crate::common::consent::authorise(&s, &request_uri, &iin, "+77013330081", "allow").await;

    let customer = Browser::customer(platform);
    crate::common::consent::identify(platform, &customer, "/my/start", &iin, "+77013330081").await;
    let page = customer.get(&format!("/my/consents/{consent_id}")).await;
    page.assert_contains("Complain about this consent");
    let sent = customer
        .post(
            &format!("/my/consents/{consent_id}/complaint"),
            &page.csrf(),
            &[("text", "Budget App shows accounts I never chose.")],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    sent.assert_contains("Your complaint was sent").assert_contains("id=\"complaints\"");
    let id: i64 =
        db(platform).query_row("SELECT id FROM requests WHERE object_ref = ?1", [&consent_id], |r| r.get(0)).unwrap();

    // The API user executes it; the operator sees it; the bank is not drawn in.
    let fintech = org_id(platform, &s.user_bin);
    assert_eq!(column(platform, id, "assignee_organisation_id"), Some(fintech.to_string()));
    let theirs = s.user_admin.get(&format!("/org/requests/{id}")).await;
    assert_eq!(theirs.status, 200);
    theirs.assert_contains("Budget App shows accounts I never chose.").assert_contains("A customer");
    assert!(!theirs.body.contains(&iin), "the customer's IIN reached the API user");
    let operator = signed_in_operator(platform, "meruert.ops", Role::OperatorStaff).await;
    operator.get("/console/requests").await.assert_contains(&format!("Consent {consent_id}"));
    assert_eq!(bank_admin(&s).await.get(&format!("/org/requests/{id}")).await.status, 404);
    assert_eq!(count(platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'request.created'"), 1);
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'requests.complaint.created'"), 1);

    // Only about the customer's own consents.
    let other = s.create_consent().await;
    let refused = customer.post(&format!("/my/consents/{other}/complaint"), &page.csrf(), &[("text", "x")]).await;
    assert_eq!(refused.status, 404);
    s.platform.shutdown().await;
}

/// Verifies each webhook body against the published keys.
async fn verified(platform: &Platform, bodies: &[String], audience: &str) -> Vec<Value> {
    let mut claims = Vec::new();
    for body in bodies {
        claims.push(verify(platform, body, audience).await);
    }
    claims
}

/// Moves the platform's clock to `at` (which must be ahead of it).
fn move_clock_to(platform: &Platform, at: time::OffsetDateTime) {
    let clock = platform.clock();
    let ahead = at - clock.now();
    assert!(ahead > time::Duration::ZERO, "the test's date has passed; move it on");
    clock.advance(ahead);
}

/// The week the SLA scenario runs in: a working Friday after which the weekend and at least one weekday of Nauryz
/// are off, whose next Friday and the Monday after it are working days — the first such week from `today` on,
/// found in the platform's calendar (21 March falls on another weekday each year, and most years do not fit).
struct NauryzWeek {
    /// The Friday the request is raised on.
    friday: jiff::civil::Date,
    /// The first working day after it (past the weekend and Nauryz).
    after: jiff::civil::Date,
}

fn nauryz_week(today: jiff::civil::Date) -> NauryzWeek {
    use jiff::civil::{Weekday, date};
    use kopir::requests::calendar::{Calendar, is_nauryz};
    let calendar = Calendar::new(kopir::store::calendar::default_time_zone(), "09:00", "18:00", &[], &[]).unwrap();
    let days = |d: jiff::civil::Date, n: i64| d.checked_add(jiff::Span::new().days(n)).unwrap();
    for year in today.year()..today.year() + 40 {
        for day in 14..=23 {
            let friday = date(year, 3, day);
            if friday.weekday() != Weekday::Friday || friday <= today || !calendar.is_working_day(friday) {
                continue;
            }
            let after = (1..30).map(|n| days(friday, n)).find(|d| calendar.is_working_day(*d)).unwrap();
            let nauryz_off = (1..30)
                .map(|n| days(friday, n))
                .take_while(|d| *d < after)
                .any(|d| is_nauryz(d) && !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday));
            if nauryz_off
                && after < days(friday, 7)
                && calendar.is_working_day(days(friday, 7))
                && calendar.is_working_day(days(friday, 10))
            {
                return NauryzWeek { friday, after };
            }
        }
    }
    panic!("no Nauryz week fits the scenario within 40 years of {today}");
}

/// A local time of the operator (Almaty) as an instant.
fn almaty(day: jiff::civil::Date, hour: i8) -> time::OffsetDateTime {
    let zoned = day.at(hour, 0, 0, 0).to_zoned_datetime(kopir::store::calendar::default_time_zone()).unwrap();
    time::OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).unwrap()
}

/// An instant as the requests' columns store it, to the minute (UTC).
fn utc_minute(at: time::OffsetDateTime) -> String {
    kopir::clock::rfc3339(at)[..16].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_clocks_skip_the_weekend_and_nauryz_pause_while_waiting_and_escalate_at_the_deadline() {
    let platform = Platform::start().await;
    let fintech_bin = bin("99034300001");
    let mut fintech = admin_of_new_organisation(&platform, &fintech_bin, "Clockwork Fintech", "clockadmin").await;
    accredit(&platform, &fintech_bin).await;
    let operator_password = operator_user(&platform, "saule.ops", Role::OperatorStaff).await;

    // A Friday, 16:00 in Almaty (UTC+5), before the weekend and Nauryz (in 2027: Friday 19 March; Monday 22 and
    // Tuesday 23 are Nauryz and Wednesday 24 is off too, 21 March being a Sunday). Sessions time out meanwhile: sign
    // in again.
    let zone = kopir::store::calendar::default_time_zone();
    let today = kopir::store::calendar::local_date(&zone, platform.clock().now().unix_timestamp()).unwrap();
    let NauryzWeek { friday, after } = nauryz_week(today);
    let next_friday = friday.checked_add(jiff::Span::new().days(7)).unwrap();
    let monday_after = friday.checked_add(jiff::Span::new().days(10)).unwrap();
    move_clock_to(&platform, almaty(friday, 16));
    fintech.sign_in("clockadmin", "clockadmin-Passw0rd-long").await;

    // A program calling itself a PDF is refused by its bytes, whatever its name.
    let refused = raise_on_page(
        &fintech,
        &[
            ("category", "integration"),
            ("priority", "critical"),
            ("subject", "Certificates"),
            ("description", "Which EKU?"),
            ("object_kind", ""),
        ],
        &[("licence.pdf", EXE)],
    )
    .await;
    assert_eq!(refused.status, 415, "{}", refused.body);
    refused.assert_contains("PDF, PNG or JPEG");
    let raised = raise_on_page(
        &fintech,
        &[
            ("category", "integration"),
            ("priority", "critical"),
            ("subject", "Certificates"),
            ("description", "Which EKU?"),
            ("object_kind", ""),
        ],
        &[("scan.png", PNG)],
    )
    .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    let id = id_of(&raised);
    // Critical: first response within 30 working minutes, resolution within 240: two hours on Friday, two more on
    // the first working day after Nauryz (Thursday 25 March in 2027).
    // (To the minute: the test's requests reach the platform a few seconds after the clock was set.)
    let due = |column_name: &str| column(&platform, id, column_name).unwrap_or_default()[..16].to_string();
    assert_eq!(due("first_response_due_at"), utc_minute(almaty(friday, 16) + time::Duration::minutes(30)));
    assert_eq!(due("resolution_due_at"), utc_minute(almaty(after, 11)));
    raised.assert_contains(&format!("{after} 11:00")).assert_contains("scan.png");
    assert_eq!(count(&platform, "SELECT count(*) FROM request_attachments"), 1);

    // 17:00: the first response is late (the clocks' job records it).
    platform.clock().advance(time::Duration::hours(1));
    eventually("the first response's breach", Duration::from_secs(20), async || {
        match count(&platform, "SELECT count(*) FROM request_sla_breaches WHERE clock = 'first_response'") {
            1 => Ok(()),
            n => Err(n),
        }
    })
    .await;

    // The operator asks the requester: the resolution clock pauses with 180 working minutes left (60 on Friday,
    // 120 after Nauryz).
    let mut operator = Browser::new(&platform);
    operator.sign_in("saule.ops", &operator_password).await;
    let asked = operator
        .submit(&format!("/console/requests/{id}"), &format!("/console/requests/{id}/step"), &[("step", "ask")])
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_eq!(column(&platform, id, "status").as_deref(), Some("waiting"));
    assert_eq!(column(&platform, id, "resolution_due_at"), None);
    assert_eq!(column(&platform, id, "resolution_remaining_minutes").as_deref(), Some("180"));
    assert!(column(&platform, id, "first_responded_at").is_some());

    // A week passes while it waits (the clocks' job runs meanwhile; the escalation's time below shows it waited).
    platform.clock().advance(time::Duration::days(7));

    // The requester answers on the next Friday at 17:00: the clock resumes with its 180 minutes: 60 on Friday, 120 on
    // the Monday after, due at 11:00.
    fintech.sign_in("clockadmin", "clockadmin-Passw0rd-long").await;
    let answered = fintech
        .submit(
            &format!("/org/requests/{id}"),
            &format!("/org/requests/{id}/comment"),
            &[("body", "serverAuth and clientAuth.")],
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(column(&platform, id, "status").as_deref(), Some("in_progress"));
    assert_eq!(next_friday.weekday(), jiff::civil::Weekday::Friday);
    assert_eq!(
        column(&platform, id, "resolution_due_at").unwrap_or_default()[..16],
        utc_minute(almaty(monday_after, 11))
    );
    assert_eq!(column(&platform, id, "escalated_at"), None, "nothing escalates while the request waits");

    // That Monday, 12:00: past the deadline: warned, escalated, the breach counted.
    platform.clock().advance(time::Duration::days(2) + time::Duration::hours(19));
    let escalated_at = eventually("the escalation", Duration::from_secs(20), async || {
        column(&platform, id, "escalated_at").ok_or("not yet")
    })
    .await;
    assert!(escalated_at.starts_with(&format!("{monday_after}T")), "escalated while it waited: {escalated_at}");
    assert!(column(&platform, id, "warned_at").is_some());
    assert_eq!(column(&platform, id, "assignee_team").as_deref(), Some("operator_admin"), "the supervisors take it");
    assert_eq!(count(&platform, "SELECT count(*) FROM request_sla_breaches WHERE clock = 'resolution'"), 1);
    assert_eq!(count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'requests.request.escalated'"), 1);
    operator.sign_in("saule.ops", &operator_password).await;
    let escalated = operator.get("/console/requests?show=escalated").await;
    escalated.assert_contains("Certificates");
    escalated.assert_contains("id=\"breaches-resolution\">1<");
    let history = operator.get(&format!("/console/requests/{id}")).await;
    history.assert_contains("Escalated to the supervisors").assert_contains("SLA warning");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reassigns_the_fintech_answers_the_bank_closes_and_internal_notes_stay_inside() {
    let s = scenario(1).await;
    let platform = &s.platform;
    let fintech = org_id(platform, &s.user_bin);
    let mut bank_browser = bank_admin(&s).await;

    // The bank raises an incident about the fintech's behaviour without naming an object: the operator takes it.
    let raised = raise_on_page(
        &bank_browser,
        &[
            ("category", "incident"),
            ("priority", "high"),
            ("subject", "Retry storm"),
            ("description", "An application retries without back-off."),
            ("object_kind", ""),
        ],
        &[],
    )
    .await;
    let id = id_of(&raised);
    assert_eq!(column(platform, id, "assignee_team").as_deref(), Some("operator_staff"));
    assert_eq!(s.user_admin.get(&format!("/org/requests/{id}")).await.status, 404, "not yet the fintech's");

    // The operator notes something internal and hands it to the fintech with a reason.
    let operator = signed_in_operator(platform, "dana.ops", Role::OperatorStaff).await;
    let path = format!("/console/requests/{id}");
    operator
        .submit(
            &path,
            &format!("{path}/comment"),
            &[("body", "Their certificate rotated yesterday."), ("internal", "yes")],
        )
        .await;
    let bare = operator
        .submit(&path, &format!("{path}/assign"), &[("assignee", &format!("organisation:{fintech}")), ("reason", "")])
        .await;
    assert_eq!(bare.status, 422, "a re-assignment needs its reason");
    let handed = operator
        .submit(
            &path,
            &format!("{path}/assign"),
            &[("assignee", &format!("organisation:{fintech}")), ("reason", "The calls come from Budget App.")],
        )
        .await;
    handed.assert_contains("The calls come from Budget App.");
    assert_eq!(column(platform, id, "assignee_organisation_id"), Some(fintech.to_string()));
    assert_eq!(column(platform, id, "status").as_deref(), Some("assigned"));

    // The fintech sees it now, without the internal note, answers and resolves it; it may not close it.
    let mine = s.user_admin.get(&format!("/org/requests/{id}")).await;
    assert_eq!(mine.status, 200);
    assert!(!mine.body.contains("Their certificate rotated"), "an internal note reached a participant");
    let fintech_path = format!("/org/requests/{id}");
    s.user_admin
        .submit(&fintech_path, &format!("{fintech_path}/comment"), &[("body", "Fixed: back-off deployed.")])
        .await;
    s.user_admin.submit(&fintech_path, &format!("{fintech_path}/step"), &[("step", "resolve")]).await;
    assert_eq!(column(platform, id, "status").as_deref(), Some("resolved"));
    let not_theirs = s.user_admin.submit(&fintech_path, &format!("{fintech_path}/step"), &[("step", "close")]).await;
    assert_eq!(not_theirs.status, 409);

    // The bank reads the answer and closes it; it may reopen it within the configured days.
    let bank_view = bank_browser.get(&fintech_path).await;
    bank_view.assert_contains("Fixed: back-off deployed.");
    assert!(!bank_view.body.contains("Their certificate rotated"));
    bank_browser.submit(&fintech_path, &format!("{fintech_path}/step"), &[("step", "close")]).await;
    assert_eq!(column(platform, id, "status").as_deref(), Some("closed"));
    platform.clock().advance(time::Duration::days(15));
    bank_browser.sign_in("admin0001", "admin0001-Passw0rd-long").await;
    let late = bank_browser.submit(&fintech_path, &format!("{fintech_path}/step"), &[("step", "reopen")]).await;
    assert_eq!(late.status, 409, "reopenable for 14 days only");

    // Every change is in the journal; the operator's console shows the whole history.
    for action in ["created", "noted", "reassigned", "commented", "resolve", "close"] {
        assert!(
            count(platform, &format!("SELECT count(*) FROM audit_log WHERE action = 'requests.request.{action}'")) >= 1,
            "{action} not journalled"
        );
    }
    assert_eq!(
        count(platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'request.resolved'"),
        2,
        "both parties hear of the resolution"
    );
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_naming_an_exchange_shows_both_parties_its_metered_record() {
    let s = scenario(1).await;
    let platform = &s.platform;
    let (bank_bin, _) = s.banks[0].clone();
    let (bank, fintech) = (org_id(platform, &bank_bin), org_id(platform, &s.user_bin));
    // The meter's record of one exchange (written as the gateway's meter writes it).
    db(platform)
        .execute(
            "INSERT INTO exchanges (at, application_id, user_organisation_id, provider_organisation_id, api_id, consent_id,
                                    endpoint, status, latency_ms, bytes, interaction_id, error_code)
             VALUES ('2026-12-01T10:00:00Z', ?1, ?2, ?3, (SELECT id FROM apis WHERE organisation_id = ?3), 'aac-1',
                     'transactions', 502, 4321, 0, '93bac548-d2de-4546-b106-880a5018460d', 'UK.OBIE.UnexpectedError')",
            rusqlite::params![s.app_id, fintech, bank],
        )
        .unwrap();
    let raised = raise_over_api(
        &s,
        json!({"category": "dispute.data", "subject": "Missing transactions", "description": "The bank answered 502.",
               "object": {"kind": "interaction", "id": "93bac548-d2de-4546-b106-880a5018460d"}}),
    )
    .await;
    assert_eq!(raised.status(), 201);
    let dispute: Value = raised.json().await.unwrap();
    let id = dispute["id"].as_i64().unwrap();
    // Both parties, the operator arbitrates.
    assert_eq!(dispute["assignee_team"], "operator_staff");
    let bank_browser = bank_admin(&s).await;
    for browser in [&bank_browser, &s.user_admin] {
        let page = browser.get(&format!("/org/requests/{id}")).await;
        assert_eq!(page.status, 200);
        page.assert_contains("id=\"evidence\"")
            .assert_contains("transactions")
            .assert_contains("4321 ms")
            .assert_contains("UK.OBIE.UnexpectedError");
    }
    // Another pair's exchange cannot be named.
    let stranger_bin = bin("99034200002");
    let stranger = admin_of_new_organisation(platform, &stranger_bin, "Other Fintech", "otheradmin").await;
    let refused = raise_on_page(
        &stranger,
        &[
            ("category", "dispute.data"),
            ("priority", "normal"),
            ("subject", "x"),
            ("description", "y"),
            ("object_kind", "interaction"),
            ("object_ref", "93bac548-d2de-4546-b106-880a5018460d"),
        ],
        &[],
    )
    .await;
    assert_eq!(refused.status, 422);
    refused.assert_contains("The object was not found");
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operator_administrators_change_the_classifier_and_each_change_is_a_journalled_version() {
    let platform = Platform::start().await;
    let staff = signed_in_operator(&platform, "erlan.ops", Role::OperatorStaff).await;
    let admin = signed_in_operator(&platform, "gulnar.admin", Role::OperatorAdmin).await;
    let id: i64 =
        db(&platform).query_row("SELECT id FROM request_categories WHERE code = 'billing'", [], |r| r.get(0)).unwrap();
    let mut fields = vec![
        ("executor".to_string(), "operator".to_string()),
        ("team".into(), "operator_admin".into()),
        ("active".into(), "yes".into()),
        ("version".into(), "1".into()),
    ];
    for p in ["low", "normal", "high", "critical"] {
        fields.push((format!("first_{p}"), "60".into()));
        fields.push((format!("resolution_{p}"), "600".into()));
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let path = format!("/console/requests/categories/{id}");
    let refused = staff.submit("/console/requests/categories", &path, &fields).await;
    assert_eq!(refused.status, 403);
    let changed = admin.submit("/console/requests/categories", &path, &fields).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let stale = admin.submit("/console/requests/categories", &path, &fields).await;
    assert_eq!(stale.status, 409, "a form made from version 1 no longer applies");
    let (version, team): (i64, String) = db(&platform)
        .query_row("SELECT version, team FROM request_categories WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((version, team.as_str()), (2, "operator_admin"));
    assert_eq!(
        count(&platform, &format!("SELECT count(*) FROM request_category_versions WHERE category_id = {id}")),
        2
    );
    assert_eq!(count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'requests.category.updated'"), 1);
    assert_eq!(
        count(
            &platform,
            "SELECT count(*) FROM request_sla_targets WHERE category_id = (SELECT id FROM request_categories WHERE code = 'billing') AND resolution_minutes = 600"
        ),
        4
    );
    platform.shutdown().await;
}

/// The walk in Chromium, as people click it: a bank raises an incident about a fintech's behaviour, the
/// operator re-assigns it to the fintech with a reason, the fintech answers and resolves it, the bank closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_walk_a_bank_s_incident_is_reassigned_answered_and_closed() {
    use crate::common::chrome::Chrome;
    use crate::common::chrome::sign_in;
    use crate::e2e_browser::sign_out;
    let s = scenario(1).await;
    let platform = &s.platform;
    let fintech = org_id(platform, &s.user_bin);
    let operator_password = operator_user(platform, "saule.ops", Role::OperatorStaff).await;
    let chrome = Chrome::start(&format!("https://localhost:{}", platform.addr.port()), "requests").await;

    // The bank raises the incident; without an object it goes to the operator's staff.
    let (bank_secret, bank_step) =
        sign_in(&chrome, platform.clock(), "admin0001", "admin0001-Passw0rd-long", None, 0).await;
    chrome.wait_path("/org").await;
    chrome.goto("/org/requests").await;
    chrome.click("#raise-request").await;
    chrome.wait_path("/org/requests/new").await;
    chrome.client.execute("document.getElementById('category').value = 'incident'", vec![]).await.unwrap();
    chrome.client.execute("document.getElementById('priority').value = 'high'", vec![]).await.unwrap();
    chrome.fill("subject", "Retry storm from Budget App").await;
    chrome.fill("description", "Budget App calls /accounts 50 times a second without back-off.").await;
    chrome.shot("01-bank-raises").await;
    chrome.click("form[action='/org/requests'] button[type=submit]").await;
    chrome.wait_text("Operator staff").await;
    let path = chrome.path().await;
    let id = path.rsplit('/').next().unwrap().to_string();
    chrome.shot("02-raised").await;
    sign_out(&chrome).await;

    // The operator hands it to the fintech, with the reason.
    sign_in(&chrome, platform.clock(), "saule.ops", &operator_password, None, 0).await;
    chrome.wait_path("/console").await;
    chrome.goto(&format!("/console/requests/{id}")).await;
    chrome
        .client
        .execute(&format!("document.getElementById('assignee').value = 'organisation:{fintech}'"), vec![])
        .await
        .unwrap();
    chrome.fill("reason", "The calls come from Fintech One's Budget App.").await;
    chrome.click("#reassign").await;
    chrome.wait_text("The calls come from Fintech One's Budget App.").await;
    chrome.shot("03-operator-reassigns").await;
    sign_out(&chrome).await;

    // The fintech answers and resolves it.
    let fintech_secret = s.user_admin.totp_secret.clone().unwrap();
    let step = platform.clock().now().unix_timestamp() as u64 / 30;
    sign_in(&chrome, platform.clock(), "fintechadmin", "fintechadmin-Passw0rd-long", Some(&fintech_secret), step).await;
    chrome.wait_path("/org").await;
    chrome.goto(&format!("/org/requests/{id}")).await;
    chrome.fill("body", "Back-off deployed in Budget App 2.4.1.").await;
    chrome.click("#send-comment").await;
    chrome.wait_text("Back-off deployed in Budget App 2.4.1.").await;
    chrome.click("#step-resolve").await;
    chrome.wait_text("Resolved").await;
    chrome.shot("04-fintech-resolves").await;
    sign_out(&chrome).await;

    // The bank reads the answer and closes it.
    sign_in(&chrome, platform.clock(), "admin0001", "admin0001-Passw0rd-long", Some(&bank_secret), bank_step).await;
    chrome.wait_path("/org").await;
    chrome.goto(&format!("/org/requests/{id}")).await;
    chrome.wait_text("Back-off deployed in Budget App 2.4.1.").await;
    chrome.click("#step-close").await;
    chrome.wait_text("Closed").await;
    chrome.shot("05-bank-closes").await;
    assert_eq!(column(platform, id.parse().unwrap(), "status").as_deref(), Some("closed"));
    chrome.close().await;
    s.platform.shutdown().await;
}

/// The local date `n` days after `day`.
fn plus_days(day: jiff::civil::Date, n: i64) -> jiff::civil::Date {
    day.checked_add(jiff::Span::new().days(n)).unwrap()
}

/// Raises an integration question of `priority` on the page; returns its number.
async fn raise_question(browser: &Browser, subject: &str, priority: &str) -> i64 {
    let fields = [
        ("category", "integration"),
        ("priority", priority),
        ("subject", subject),
        ("description", "Which scopes does the sandbox grant?"),
        ("object_kind", ""),
    ];
    let raised = raise_on_page(browser, &fields, &[]).await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    id_of(&raised)
}

/// Breaches seeded with the test clock — three integration questions, one answered at once, none resolved, ten days
/// passing — are the dashboard's and the signed monthly report's counts, beside an empty previous period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sla_breaches_are_counted_in_the_dashboard_and_the_signed_monthly_report() {
    let platform = Platform::start().await;
    let fintech_bin = bin("99034300007");
    let fintech = admin_of_new_organisation(&platform, &fintech_bin, "Tardy Answers LLP", "tardyadmin").await;
    accredit(&platform, &fintech_bin).await;
    let staff_password = operator_user(&platform, "aigerim.ops", Role::OperatorStaff).await;
    let regulator_password = operator_user(&platform, "regulator-requests", Role::Regulator).await;
    let zone = kopir::store::calendar::default_time_zone();
    let today = kopir::store::calendar::local_date(&zone, platform.clock().now().unix_timestamp()).unwrap();

    // Two critical questions and a high one; the operator answers the first at once (its first response in time).
    let answered = raise_question(&fintech, "Scopes", "critical").await;
    raise_question(&fintech, "Certificates", "critical").await;
    raise_question(&fintech, "Limits", "high").await;
    let mut staff = Browser::new(&platform);
    staff.sign_in("aigerim.ops", &staff_password).await;
    let started = staff
        .submit(
            &format!("/console/requests/{answered}"),
            &format!("/console/requests/{answered}/step"),
            &[("step", "start")],
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);

    // Ten days later at noon every deadline has passed (critical: 4 working hours, high: 1 working day; no run of
    // holidays is that long): two first responses and three resolutions late, all recorded that day.
    let day = plus_days(today, 10);
    move_clock_to(&platform, almaty(day, 12));
    eventually("the breaches", Duration::from_secs(20), async || {
        match count(&platform, "SELECT count(*) FROM request_sla_breaches") {
            5 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    let (expected_first, expected_resolution) = (2, 3);

    // The dashboard (the regulator reads it) for the three days around that day, against the three before.
    let mut regulator = Browser::new(&platform);
    regulator.sign_in("regulator-requests", &regulator_password).await;
    let period = format!("period=custom&from={}&to={}", plus_days(day, -1), plus_days(day, 1));
    let page = regulator.get(&format!("/console/dashboard?{period}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("id=\"headline-request-first-response-breaches\"")
        .assert_contains("id=\"table-request_sla_breaches\"")
        .assert_contains("data-value=\"integration\"");
    let document: Value =
        serde_json::from_str(&regulator.get(&format!("/console/dashboard?{period}&format=json")).await.body).unwrap();
    let figures = &document["figures"]["request_sla_breaches"];
    assert_eq!(figures["first_response"], json!({"current": expected_first, "previous": 0}), "{figures}");
    assert_eq!(figures["resolution"], json!({"current": expected_resolution, "previous": 0}));
    assert_eq!(figures["raised"]["current"], 0, "raised ten days before the period");
    let by_category: Vec<(String, String, i64, i64)> = figures["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["category"].as_str().unwrap().to_string(),
                c["priority"].as_str().unwrap().to_string(),
                c["first_response"]["current"].as_i64().unwrap(),
                c["resolution"]["current"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_category,
        [
            ("integration".to_string(), "critical".to_string(), 1, 2),
            ("integration".to_string(), "high".to_string(), 1, 1)
        ]
    );
    let summary = document["tables"]["summary"].as_array().unwrap();
    let row = summary.iter().find(|r| r["figure"] == "request_resolution_breaches").unwrap();
    assert_eq!(row["current"], expected_resolution);

    // The month's signed report, once the month has ended: the same counts, and the three files verify.
    let month = day.strftime("%Y-%m").to_string();
    move_clock_to(&platform, almaty(plus_days(day.last_of_month(), 2), 12));
    regulator.sign_in("regulator-requests", &regulator_password).await;
    let page = regulator.get(&format!("/console/reports/monthly?month={month}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let dir = tempfile::tempdir().unwrap();
    let mut html_path = std::path::PathBuf::new();
    for part in ["html", "json", "jws"] {
        let href = extract_attr(&page.body, &format!("id=\"download-{part}\" href=\"")).unwrap();
        let file = regulator.get(&href.replace("&#38;", "&").replace("&amp;", "&")).await;
        assert_eq!(file.status, 200, "{href}");
        let path = dir.path().join(format!(
            "kopir-monthly-report-{month}.html{}",
            if part == "html" { String::new() } else { format!(".{part}") }
        ));
        std::fs::write(&path, &file.body).unwrap();
        if part == "html" {
            html_path = path;
        }
    }
    let jwks =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let verified = {
        let mut cmd = platform.kopir();
        cmd.args(["report", "verify", "--jwks"]).arg(&jwks_file).arg(&html_path);
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    };
    crate::common::assert_success(&verified);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(html_path.with_extension("html.json")).unwrap()).unwrap();
    let figures = &report["figures"]["request_sla_breaches"];
    assert_eq!(figures["first_response"], json!({"current": expected_first, "previous": 0}), "{figures}");
    assert_eq!(figures["resolution"], json!({"current": expected_resolution, "previous": 0}));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains(&format!(
        "<tr id=\"request-sla-first-response\"><th scope=\"row\">First responses late</th><td class=\"n\">{expected_first}</td>"
    )));
    assert!(html.contains("data-category=\"integration\" data-priority=\"critical\""));
    platform.shutdown().await;
}

/// The header says what awaits the person: a member their organisation's unread notices until they read them, operator
/// staff the requests their team has not taken up until someone starts them; the regulator and the other team nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_counts_unread_notices_and_requests_awaiting_the_team_until_read_or_taken_up() {
    let platform = Platform::start().await;
    let fintech_bin = bin("99034300008");
    let fintech = admin_of_new_organisation(&platform, &fintech_bin, "Header Fintech LLP", "headeradmin").await;
    accredit(&platform, &fintech_bin).await;
    let id = raise_question(&fintech, "Header", "normal").await;
    let org = org_id(&platform, &fintech_bin);

    // The member: as many unread as the organisation's notices (the accreditation's decision, the request raised).
    let notices = count(&platform, &format!("SELECT count(*) FROM notices WHERE organisation_id = {org}"));
    assert!(notices >= 2, "{notices}");
    let page = fintech.get("/org/requests").await;
    let link = format!(
        "<a id=\"header-waiting\" class=\"waiting\" href=\"/org/inbox\" data-count=\"{notices}\">Inbox ({notices} unread)</a>"
    );
    page.assert_contains(&link);
    let inbox = fintech.get("/org/inbox").await;
    inbox.assert_contains(&link);
    let read = fintech.post("/org/inbox/read", &inbox.csrf(), &[("up_to", &i64::MAX.to_string())]).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(!read.body.contains("id=\"header-waiting\""), "still unread after reading");
    assert!(!fintech.get("/org").await.body.contains("id=\"header-waiting\""));

    // Operator staff: the question awaits their team; the supervisors and the regulator have nothing waiting.
    let staff = signed_in_operator(&platform, "dana.ops", Role::OperatorStaff).await;
    let console = staff.get("/console").await;
    console
        .assert_contains("href=\"/console/requests?show=team\" data-count=\"1\">Requests (1 awaiting your team)</a>");
    let listed = staff.get("/console/requests?show=team").await;
    listed.assert_contains(&format!("data-request=\"{id}\"")).assert_contains("id=\"show-team\"");
    let admin = signed_in_operator(&platform, "bolat.admin", Role::OperatorAdmin).await;
    assert!(!admin.get("/console").await.body.contains("id=\"header-waiting\""));
    assert!(!admin.get("/console/requests?show=team").await.body.contains(&format!("data-request=\"{id}\"")));
    let regulator = signed_in_operator(&platform, "regulator-header", Role::Regulator).await;
    let seen = regulator.get("/console/requests?show=team").await;
    assert!(!seen.body.contains("id=\"header-waiting\"") && !seen.body.contains("id=\"show-team\""));

    // Taken up: the count drops.
    let started = staff
        .submit(&format!("/console/requests/{id}"), &format!("/console/requests/{id}/step"), &[("step", "start")])
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(!started.body.contains("id=\"header-waiting\""), "still awaiting after it was taken up");
    platform.shutdown().await;
}
