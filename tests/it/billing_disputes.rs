//! Billing disputes and credit notes over real TLS: a fintech disputes a line of its statement from the statement's
//! page (and over mTLS), the request goes to the provider the line names and both see it while a third organisation
//! can neither name the line nor see the request; the operator's administrator settles it with a credit note — never
//! above what is left of the line, numbered, immutable, signed like a statement — that both parties' pages, the
//! operator's net positions and the command line show; nobody else may issue one.

use std::time::Duration;

use crate::common;
use crate::common::browser::{Browser, Page, bin, operator_user};
use crate::common::exchange::{BankPlan, FULL, World, consent, customer, get_json, tokens_for, world_with};
use crate::common::participant::{accredit, admin_of_new_organisation, count, db};
use kopir::identity::Role;
use serde_json::{Value, json};

const DAY: time::Duration = time::Duration::days(1);
const BANKS: [BankPlan; 1] = [BankPlan::new("Altyn Bank", "99034000061")];

fn organisation_id(platform: &common::Platform, bin: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [bin], |r| r.get(0)).unwrap()
}

fn day(platform: &common::Platform, days: i64) -> String {
    let at = platform.clock().now() + DAY * days as i32;
    kopir::store::calendar::local_day(platform.config.time_zone.zone(), at.unix_timestamp()).unwrap()
}

async fn operator(platform: &common::Platform, name: &str, role: Role) -> Browser {
    let password = operator_user(platform, name, role).await;
    let mut browser = Browser::new(platform);
    browser.sign_in(name, &password).await;
    browser
}

/// Raises a request on the personal account's form, opened from `form_path` (the statement page's link).
async fn raise_on_page(browser: &Browser, form_path: &str, fields: &[(&str, &str)]) -> Page {
    let form_page = browser.get(form_path).await;
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    let mut form = reqwest::multipart::Form::new().text("csrf", form_page.csrf());
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    browser.post_multipart("/org/requests", form).await
}

/// The request form's fields of a billing dispute about the statement line `object_ref`.
fn dispute_form<'a>(subject: &'a str, description: &'a str, object_ref: &'a str) -> [(&'static str, &'a str); 6] {
    [
        ("category", "billing.dispute"),
        ("priority", "normal"),
        ("subject", subject),
        ("description", description),
        ("object_kind", "statement_line"),
        ("object_ref", object_ref),
    ]
}

/// Prices the bank's API, makes a day of exchanges with it and closes their month; returns the month.
async fn a_closed_month(w: &mut World) -> String {
    let platform = &w.s.platform;
    let d1 = day(platform, 1);
    let regulator = operator(platform, "regulator-disputes", Role::Regulator).await;
    let admin = operator(platform, "admin-disputes-fee", Role::OperatorAdmin).await;
    for service in ["accounts", "balances", "transactions_page"] {
        for payee in ["provider", "platform"] {
            let cap = [("payee", payee), ("service", service), ("effective_from", d1.as_str()), ("amount", "5")];
            assert_eq!(regulator.submit("/console/billing", "/console/billing/caps", &cap).await.status, 200);
        }
        let fee = [("service", service), ("effective_from", d1.as_str()), ("amount", "0.10")];
        assert_eq!(admin.submit("/console/billing", "/console/billing/fees", &fee).await.status, 200);
        let tariff = [
            ("api", w.banks[0].api_id.to_string()),
            ("service", service.to_string()),
            ("effective_from", d1.clone()),
            ("amount", "2.00".to_string()),
            ("free_units", String::new()),
        ];
        let tariff: Vec<(&str, &str)> = tariff.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = w.banks[0].admin.submit("/org/billing/tariffs", "/org/billing/tariffs", &tariff).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    platform.clock().advance(DAY);
    let s = &w.s;
    let (_, token, _) =
        tokens_for(s, consent(&[w.banks[0].bin.as_str()], FULL, None, None), customer(), "+77010000061").await;
    let list = get_json(s, &token, "/accounts").await;
    let account = list["Data"]["Account"][0]["AccountId"].as_str().unwrap().to_string();
    get_json(s, &token, "/accounts").await;
    get_json(s, &token, &format!("/accounts/{account}/balances")).await;
    common::eventually("exchanges metered", Duration::from_secs(20), async || {
        let n = count(platform, "SELECT coalesce(sum(units), 0) FROM billing_units_daily");
        if n >= 3 { Ok(n) } else { Err(n) }
    })
    .await;
    let month = day(platform, 0)[..7].to_string();
    let (close_db, _) = kopir::store::Db::open(&platform.config.db_path(), Default::default(), false).unwrap();
    let (_, last) = kopir::billing::close::month_days(&month).unwrap();
    let for_close = month.clone();
    let closed = close_db
        .write(move |tx| {
            let actor = kopir::audit::Actor { name: "test".into(), source: "test".into(), user_id: None };
            kopir::billing::close::close(tx, &for_close, last + DAY, &actor, kopir::clock::now())
        })
        .await
        .unwrap();
    assert!(matches!(closed, kopir::billing::close::Closed::Issued(_)), "{closed:?}");
    month
}

fn statement_number(platform: &common::Platform, month: &str, kind: &str, organisation: i64) -> String {
    db(platform)
        .query_row(
            "SELECT number FROM billing_statements WHERE month = ?1 AND kind = ?2 AND organisation_id = ?3",
            rusqlite::params![month, kind, organisation],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disputed_line_reaches_its_provider_and_an_administrator_s_credit_note_settles_it() {
    let mut w = world_with(&BANKS, |_| {}).await;
    let month = a_closed_month(&mut w).await;
    let platform = &w.s.platform;
    let (fintech, bank) = (organisation_id(platform, &w.s.user_bin), organisation_id(platform, &w.banks[0].bin));
    let user_number = statement_number(platform, &month, "user", fintech);
    let provider_number = statement_number(platform, &month, "provider", bank);
    let document: Value = serde_json::from_str(
        &db(platform)
            .query_row("SELECT document FROM billing_statements WHERE number = ?1", [&user_number], |r| {
                r.get::<_, String>(0)
            })
            .unwrap(),
    )
    .unwrap();
    // The line of the accounts service: two lists at 2.00 each, with 0.10 of fee each.
    let lines = document["body"]["lines"].as_array().unwrap();
    let index = lines.iter().position(|l| l["service"] == "accounts").unwrap() + 1;
    assert_eq!(
        (lines[index - 1]["charge_tiyn"].as_i64(), lines[index - 1]["fee_tiyn"].as_i64()),
        (Some(400), Some(20))
    );
    let line = format!("{user_number}/{index}");

    // The fintech's statement page: a "Dispute" action per line opens the request form with the line prefilled.
    w.s.user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    let page = w.s.user_admin.get(&format!("/org/billing/statements/{user_number}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let link =
        format!("/org/requests/new?category=billing.dispute&amp;object_kind=statement_line&amp;object_ref={line}");
    assert!(page.body.contains(&link), "{}", page.body);
    assert!(page.body.contains(&format!("object_ref={line}/fee")), "the fee has its own action");
    let form_path = link.replace("&amp;", "&");
    let form = w.s.user_admin.get(&form_path).await;
    assert!(form.body.contains("<option value=\"billing.dispute\" selected>"), "{}", form.body);
    assert!(
        form.body.contains(&format!("value=\"{line}\"")) && form.body.contains("value=\"statement_line\" selected")
    );
    let raised = raise_on_page(
        &w.s.user_admin,
        &form_path,
        &dispute_form(
            "Two account lists billed, one failed on our side",
            "The second call of the day timed out in our app; please check.",
            &line,
        ),
    )
    .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    let id: i64 = raised.url.rsplit('/').next().unwrap().parse().unwrap();
    // Routed to the provider the line names; both parties see it, the operator arbitrates from the console.
    let assignee: Option<i64> = db(platform)
        .query_row("SELECT assignee_organisation_id FROM requests WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(assignee, Some(bank));
    assert_eq!(
        count(platform, &format!("SELECT count(*) FROM request_parties WHERE request_id = {id}")),
        2,
        "the fintech and the bank"
    );
    w.banks[0].admin.sign_in("bankadmin0", "bankadmin0-Passw0rd-long").await;
    let bank_admin = &w.banks[0].admin;
    assert_eq!(bank_admin.get(&format!("/org/requests/{id}")).await.status, 200);
    // The bank's own statement shows the dispute on the same charge; the fintech's marks it held.
    let page = bank_admin.get(&format!("/org/billing/statements/{provider_number}")).await;
    assert!(page.body.contains(&format!("/org/requests/{id}")), "{}", page.body);
    let page = w.s.user_admin.get(&format!("/org/billing/statements/{user_number}")).await;
    assert!(
        page.body.contains(&format!("/org/requests/{id}\">#{id}</a>")) && page.body.contains("held until resolved")
    );

    // Over mTLS: the fee of the line goes to the operator's team.
    let answer = platform
        .client(Some(&w.s.identity))
        .post(platform.url("/participant/v1/requests"))
        .json(&json!({"category": "billing.dispute", "subject": "Fee", "description": "Why a fee on a failed call?",
                      "object": {"kind": "statement_line", "id": format!("{line}/fee")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let fee_dispute: Value = answer.json().await.unwrap();
    assert_eq!(
        (fee_dispute["object_kind"].as_str(), fee_dispute["assignee_team"].as_str()),
        (Some("statement_line"), Some("operator_staff"))
    );
    assert!(fee_dispute["assignee_organisation_id"].is_null());

    // A third organisation: the line is not its to name (refused exactly as an unknown line), the request not its to
    // see, the statement not its to read.
    let stranger_bin = bin("99034000069");
    let stranger = admin_of_new_organisation(platform, &stranger_bin, "Third Fintech", "thirdadmin").await;
    accredit(platform, &stranger_bin).await;
    let mut refusals = Vec::new();
    for object in [line.clone(), format!("{user_number}/99"), "KOPIR-209901-000001/1".to_string()] {
        let page = raise_on_page(&stranger, "/org/requests/new", &dispute_form("x", "y", &object)).await;
        assert_eq!(page.status, 422, "{object}");
        assert!(page.body.contains("The object was not found"), "{object}");
        refusals.push(page.body.replace(&object, "OBJECT"));
    }
    assert_eq!(refusals[0], refusals[2], "another's line is answered like a line that does not exist");
    assert_eq!(count(platform, "SELECT count(*) FROM requests"), 2);
    assert_eq!(stranger.get(&format!("/org/requests/{id}")).await.status, 404);
    assert_eq!(stranger.get(&format!("/org/billing/statements/{user_number}")).await.status, 404);

    // The provider disputing its own earnings has no counterparty: the operator's staff take it, the API user sees it.
    let raised = raise_on_page(
        bank_admin,
        "/org/requests/new",
        &dispute_form("Earnings too low", "Our count of account lists is higher.", &format!("{provider_number}/1")),
    )
    .await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    let provider_dispute: i64 = raised.url.rsplit('/').next().unwrap().parse().unwrap();
    let (team, role): (Option<String>, String) = db(platform)
        .query_row(
            "SELECT r.assignee_team, p.role FROM requests r JOIN request_parties p ON p.request_id = r.id
             WHERE r.id = ?1 AND p.organisation_id = ?2",
            rusqlite::params![provider_dispute, fintech],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((team.as_deref(), role.as_str()), (Some("operator_staff"), "party"));
    let page = w.s.user_admin.get(&format!("/org/billing/statements/{user_number}")).await;
    assert!(page.body.contains(&format!("/org/requests/{provider_dispute}\">")), "the same charge: {}", page.body);
    // A provider cannot name the API user's platform fee.
    let page = raise_on_page(bank_admin, "/org/requests/new", &dispute_form("x", "y", &format!("{line}/fee"))).await;
    assert_eq!(page.status, 422);

    // The operator's administrator settles it: above the line's amount nothing is written; 1.50 of 4.00 is issued
    // and recorded on the request; the rest, 2.50, is all that is left of the charge on either statement.
    let admin = operator(platform, "admin-disputes", Role::OperatorAdmin).await;
    let statement_page = format!("/org/billing/statements/{user_number}");
    let page = admin.get(&statement_page).await;
    assert!(page.body.contains("id=\"credit-form\""), "{}", page.body);
    assert!(page.body.contains(&format!("/console/requests/{id}")), "the operator's view links the dispute");
    let events_before = count(platform, &format!("SELECT count(*) FROM request_events WHERE request_id = {id}"));
    let credit = |line: &str, amount: &str, request: &str| {
        vec![
            ("line".to_string(), line.to_string()),
            ("amount".to_string(), amount.to_string()),
            ("reason".to_string(), "A call the API user's app abandoned was billed.".to_string()),
            ("request".to_string(), request.to_string()),
        ]
    };
    let submit = async |who: &Browser, fields: Vec<(String, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        who.submit(&statement_page, "/console/billing/credit-notes", &fields).await
    };
    let page = submit(&admin, credit(&line, "4.01", &id.to_string())).await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("more than what is left"), "{}", page.body);
    assert_eq!(count(platform, "SELECT count(*) FROM billing_credit_notes"), 0);
    assert_eq!(count(platform, &format!("SELECT count(*) FROM request_events WHERE request_id = {id}")), events_before);
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.credit_note.issued'"), 0);
    assert_eq!(submit(&admin, credit(&line, "0", "")).await.status, 422);
    // The fee dispute does not settle a charge.
    let fee_id = fee_dispute["id"].as_i64().unwrap().to_string();
    assert_eq!(submit(&admin, credit(&line, "1", &fee_id)).await.status, 422);
    let page = submit(&admin, credit(&line, "1.50", &id.to_string())).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with(&statement_page), "{}", page.url);
    let number: String = db(platform).query_row("SELECT number FROM billing_credit_notes", [], |r| r.get(0)).unwrap();
    assert_eq!(number, format!("KOPIR-CN-{}-000001", month.replace('-', "")));
    assert!(page.body.contains(&number) && page.body.contains("id=\"statement-total-after\""), "{}", page.body);
    let comment: String = db(platform)
        .query_row(
            "SELECT body FROM request_events WHERE request_id = ?1 AND kind = 'comment' AND internal = 0",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(comment.contains(&number) && comment.contains("1.50"), "{comment}");
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.credit_note.issued'"), 1);
    // Both sides told: a signed webhook and an inbox notice to the API user and to the provider whose charge it
    // credits, with identifiers and amounts only (the reason stays on the pages); a refused note told nobody.
    let told = |organisation: i64| {
        db(platform)
            .query_row(
                "SELECT payload FROM webhook_outbox WHERE event_type = 'billing.credit_note.issued' AND organisation_id = ?1",
                [organisation],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
    };
    for organisation in [fintech, bank] {
        let payload: Value = serde_json::from_str(&told(organisation)).unwrap();
        assert_eq!(
            (payload["credit_note"].as_str(), payload["line"].as_str()),
            (Some(number.as_str()), Some(line.as_str()))
        );
        assert_eq!((payload["amount_tiyn"].as_i64(), payload["dispute_request_id"].as_i64()), (Some(150), Some(id)));
        assert!(!payload.to_string().contains("abandoned"), "no reason in the event: {payload}");
        let notices = format!(
            "SELECT count(*) FROM notices WHERE kind = 'billing.credit_note.issued' AND organisation_id = {organisation}"
        );
        assert_eq!(count(platform, &notices), 1);
    }
    assert_eq!(
        count(platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'billing.credit_note.issued'"),
        2
    );
    let inbox = w.s.user_admin.get("/org/inbox").await;
    assert!(inbox.body.contains("A credit note corrected one of your statement lines"), "{}", inbox.body);
    assert!(inbox.body.contains(&number) && inbox.body.contains("href=\"/org/billing\""), "{}", inbox.body);
    // The printable statement lists it under the lines, with the total after it; the lines stay as issued.
    let print = w.s.user_admin.get(&format!("{statement_page}/print")).await;
    assert_eq!(print.status, 200);
    assert!(print.body.contains("id=\"print-credit-notes\"") && print.body.contains(&number), "{}", print.body);
    assert!(print.body.contains("−1.50 ₸") && print.body.contains("id=\"print-total-after\""), "{}", print.body);
    let twin = format!("{provider_number}/1");
    assert_eq!(submit(&admin, credit(&twin, "2.51", "")).await.status, 422, "the provider's line is the same charge");
    assert_eq!(count(platform, "SELECT count(*) FROM billing_credit_notes"), 1);

    // Immutable: the trigger refuses any change and any delete.
    assert!(db(platform).execute("UPDATE billing_credit_notes SET amount_tiyn = 1", []).is_err());
    assert!(db(platform).execute("UPDATE billing_credit_notes SET reason = 'other'", []).is_err());
    assert!(db(platform).execute("DELETE FROM billing_credit_notes", []).is_err());

    // Its JSON as issued and its seal, verified against the JWKS; both parties read it, the third organisation not.
    let json_path = format!("/org/billing/credit-notes/{number}/json");
    let json = w.s.user_admin.get(&json_path).await;
    assert_eq!(json.status, 200);
    let note: Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!((note["amount_tiyn"].as_i64(), note["line_reference"].as_str()), (Some(150), Some(line.as_str())));
    assert_eq!(note["request_id"].as_i64(), Some(id));
    let jws = w.s.user_admin.get(&format!("/org/billing/credit-notes/{number}/jws")).await;
    let jwks: Value =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let (seal, _kid) = kopir::snapshot::verify_signed::<kopir::billing::statements::CreditSeal>(
        &jws.body,
        kopir::billing::statements::CREDIT_SEAL_TYPE,
        &jwks,
    )
    .unwrap();
    assert_eq!(
        (seal.credit_note.as_str(), seal.line.as_str(), seal.amount_tiyn),
        (number.as_str(), line.as_str(), 150)
    );
    assert_eq!(seal.sha256, kopir::digest::sha256_hex(json.body.as_bytes()), "the seal binds the JSON as served");
    assert!(
        kopir::snapshot::verify_signed::<kopir::billing::statements::Seal>(
            &jws.body,
            kopir::billing::statements::SEAL_TYPE,
            &jwks
        )
        .is_err(),
        "a credit note's seal is not a statement's"
    );
    assert_eq!(bank_admin.get(&json_path).await.status, 200);
    assert_eq!(stranger.get(&json_path).await.status, 404);

    // Both parties' views; the operator's list and its net positions after credit notes beside the issued ones.
    for browser in [&w.s.user_admin, bank_admin] {
        let page = browser.get("/org/billing").await;
        assert!(page.body.contains("id=\"credit-notes\"") && page.body.contains(&number), "{}", page.body);
    }
    assert!(!stranger.get("/org/billing").await.body.contains(&number));
    let page = bank_admin.get(&format!("/org/billing/statements/{provider_number}")).await;
    assert!(page.body.contains(&number) && page.body.contains("id=\"statement-total-after\""), "{}", page.body);
    let page = admin.get("/console/billing/statements").await;
    assert!(page.body.contains(&number), "{}", page.body);
    let operator_number: String = db(platform)
        .query_row("SELECT number FROM billing_statements WHERE month = ?1 AND kind = 'operator'", [&month], |r| {
            r.get(0)
        })
        .unwrap();
    let page = admin.get(&format!("/org/billing/statements/{operator_number}")).await;
    assert!(page.body.contains("id=\"positions-after\""), "{}", page.body);
    // The positions under their own headings only (a line table's "charge" and "fee" would mislabel them).
    assert!(!page.body.contains("id=\"statement-lines\""), "{}", page.body);
    let issued_owes = document["total_tiyn"].as_i64().unwrap();
    let after = kopir::billing::tenge(issued_owes - 150);
    assert!(
        page.body.contains(&format!("<tr id=\"position-{fintech}\">")) && page.body.contains(&after),
        "{}",
        page.body
    );

    // Nobody else issues one: staff, the regulator, a participant's administrator (its own line or not).
    let staff = operator(platform, "staff-disputes", Role::OperatorStaff).await;
    let regulator = operator(platform, "regulator-disputes-2", Role::Regulator).await;
    for (who, shown) in [
        (&staff, statement_page.as_str()),
        (&regulator, statement_page.as_str()),
        (&w.s.user_admin, "/org/billing"),
        (bank_admin, "/org/billing"),
    ] {
        let fields = credit(&line, "0.10", "");
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = who.submit(shown, "/console/billing/credit-notes", &fields).await;
        assert_eq!(page.status, 403, "{shown}");
    }
    assert!(!staff.get(&statement_page).await.body.contains("id=\"credit-form\""), "staff get no form");
    assert_eq!(count(platform, "SELECT count(*) FROM billing_credit_notes"), 1);

    // The command line lists it.
    let listed = platform.kopir().args(["billing", "credit-notes", "--month", &month, "--json"]).output().unwrap();
    common::assert_success(&listed);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["number"], number.as_str());
    assert_eq!(listed[0]["amount_tiyn"], 150);

    // The accountants' export carries it beside the statements: its JSON as issued (byte for byte the download) and
    // its seal, named in the signed manifest; a changed credit note is caught by the verification.
    let out = w.dir.path().join("export-with-credit-notes");
    let exported =
        platform.kopir().args(["billing", "export", "--month", &month, "--json", "--out"]).arg(&out).output().unwrap();
    common::assert_success(&exported);
    let printed: Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(printed["credit_notes"][0]["number"], number.as_str(), "{printed}");
    let verified = kopir::billing::export::verify(&out, &jwks).unwrap();
    let listed = &verified.manifest.credit_notes;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].number.as_str(), listed[0].line.as_str(), listed[0].amount_tiyn),
        (number.as_str(), line.as_str(), 150)
    );
    assert_eq!(std::fs::read_to_string(out.join(format!("{number}.json"))).unwrap(), json.body);
    let (exported_seal, _) = kopir::snapshot::verify_signed::<kopir::billing::statements::CreditSeal>(
        &std::fs::read_to_string(out.join(format!("{number}.jws"))).unwrap(),
        kopir::billing::statements::CREDIT_SEAL_TYPE,
        &jwks,
    )
    .unwrap();
    assert_eq!(exported_seal.sha256, kopir::digest::sha256_hex(json.body.as_bytes()));
    std::fs::write(out.join(format!("{number}.json")), json.body.replace("150", "15000")).unwrap();
    let error = kopir::billing::export::verify(&out, &jwks).unwrap_err().to_string();
    assert!(error.contains(&format!("{number}.json")), "{error}");
}

/// The dispute as people click it, in Chromium: the fintech opens its statement from its billing page and disputes a
/// line with the line's "Dispute" action (the request form comes prefilled), the request goes to the bank the line
/// names; the operator's administrator issues a credit note settling it from the statement's page; the fintech sees
/// the line credited and the credit note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_walk_a_fintech_disputes_a_line_and_the_operator_s_credit_note_settles_it() {
    use crate::common::chrome::{Chrome, sign_in};
    use crate::e2e_browser::sign_out;
    let mut w = world_with(&BANKS, |_| {}).await;
    let month = a_closed_month(&mut w).await;
    let platform = &w.s.platform;
    let (fintech, bank) = (organisation_id(platform, &w.s.user_bin), organisation_id(platform, &w.banks[0].bin));
    let user_number = statement_number(platform, &month, "user", fintech);
    let statement_page = format!("/org/billing/statements/{user_number}");
    let admin_password = operator_user(platform, "aliya.billing", Role::OperatorAdmin).await;
    let chrome = Chrome::start(&format!("https://localhost:{}", platform.addr.port()), "billing-dispute").await;

    // The fintech finds the statement on its billing page and disputes the first line's charge.
    let secret = w.s.user_admin.totp_secret.clone().unwrap();
    let step = platform.clock().now().unix_timestamp() as u64 / 30;
    let (_, step) =
        sign_in(&chrome, platform.clock(), "fintechadmin", "fintechadmin-Passw0rd-long", Some(&secret), step).await;
    chrome.wait_path("/org").await;
    chrome.goto("/org/billing").await;
    chrome.click(&format!("a[href='{statement_page}']")).await;
    chrome.wait_path(&statement_page).await;
    chrome.wait_text("Altyn Bank (BIN").await;
    chrome.shot("01-fintech-statement").await;
    let line = format!("{user_number}/1");
    chrome.click(&format!("a.button[href$='object_ref={line}']")).await;
    chrome.wait_path("/org/requests/new").await;
    chrome.fill("subject", "Two account lists billed, one was abandoned").await;
    chrome.fill("description", "The second account list was abandoned by our app before it was answered.").await;
    chrome.shot("02-dispute-form").await;
    chrome.click("form[action='/org/requests'] button[type=submit]").await;
    chrome.wait_text("Two account lists billed, one was abandoned").await;
    let id: i64 = chrome.path().await.rsplit('/').next().unwrap().parse().unwrap();
    let (kind, reference, assignee): (String, String, Option<i64>) = db(platform)
        .query_row("SELECT object_kind, object_ref, assignee_organisation_id FROM requests WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), reference.as_str(), assignee), ("statement_line", line.as_str(), Some(bank)));
    chrome.shot("03-dispute-raised").await;
    sign_out(&chrome).await;

    // The operator's administrator settles it with a credit note from the statement's page.
    sign_in(&chrome, platform.clock(), "aliya.billing", &admin_password, None, 0).await;
    chrome.wait_path("/console").await;
    chrome.goto(&statement_page).await;
    chrome.client.execute(&format!("document.getElementById('credit-line').value = '{line}'"), vec![]).await.unwrap();
    chrome.fill("credit-amount", "2.00").await;
    chrome.fill("credit-reason", "The abandoned account list is not billable.").await;
    chrome.fill("credit-request", &id.to_string()).await;
    chrome.shot("04-credit-note-form").await;
    chrome.click("#credit-form button[type=submit]").await;
    chrome.wait_text("KOPIR-CN-").await;
    chrome.shot("05-credit-note-issued").await;
    assert_eq!(count(platform, "SELECT count(*) FROM billing_credit_notes WHERE amount_tiyn = 200"), 1);
    sign_out(&chrome).await;

    // The fintech sees the line credited, the credit note and the operator's comment on its dispute.
    sign_in(&chrome, platform.clock(), "fintechadmin", "fintechadmin-Passw0rd-long", Some(&secret), step).await;
    chrome.wait_path("/org").await;
    chrome.goto(&statement_page).await;
    chrome.wait_text("−2.00 ₸").await;
    chrome.wait_text("KOPIR-CN-").await;
    chrome.shot("06-fintech-sees-credit").await;
    chrome.goto(&format!("/org/requests/{id}")).await;
    chrome.wait_text("Credit note KOPIR-CN-").await;
    chrome.close().await;
    w.s.platform.shutdown().await;
}
