//! Billing over real TLS: the regulator's caps refuse tariffs above them and clamp (and announce) what they lower;
//! exchanges made through the gateway against reference banks are priced at the tariff of their day, after the free
//! quota, with the platform's fee — and every total equals an independent sum over the raw `exchanges` rows;
//! the sandbox's checks, refusals and a failing bank are free; refusals across organisations and roles.

use std::collections::HashMap;
use std::time::Duration;

use crate::common;
use crate::common::browser::{Browser, operator_user, participant_user};
use crate::common::exchange::{BankPlan, FULL, World, consent, customer, get, get_json, tokens_for, world_with};
use crate::common::participant::{count, db};
use kopir::identity::Role;
use serde_json::Value;

const DAY: time::Duration = time::Duration::days(1);

fn organisation_id(platform: &common::Platform, bin: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [bin], |r| r.get(0)).unwrap()
}

/// The operator's day `days` after the platform's today, `YYYY-MM-DD`.
fn day(platform: &common::Platform, days: i64) -> String {
    let at = platform.clock().now() + DAY * days as i32;
    kopir::store::calendar::local_day(platform.config.time_zone.zone(), at.unix_timestamp()).unwrap()
}

async fn signed_in(platform: &common::Platform, username: &str, password: &str) -> Browser {
    let mut browser = Browser::new(platform);
    browser.sign_in(username, password).await;
    browser
}

async fn regulator(platform: &common::Platform) -> Browser {
    let password = operator_user(platform, "regulator-billing", Role::Regulator).await;
    signed_in(platform, "regulator-billing", &password).await
}

/// Sets a cap as the regulator does on the console page; returns the page after the post.
async fn set_cap(regulator: &Browser, payee: &str, service: &str, from: &str, amount: &str) -> common::browser::Page {
    regulator
        .submit(
            "/console/billing",
            "/console/billing/caps",
            &[("payee", payee), ("service", service), ("effective_from", from), ("amount", amount)],
        )
        .await
}

async fn set_tariff(
    admin: &Browser,
    api: i64,
    service: &str,
    from: &str,
    amount: &str,
    free: &str,
) -> common::browser::Page {
    admin
        .submit(
            "/org/billing/tariffs",
            "/org/billing/tariffs",
            &[
                ("api", &api.to_string()),
                ("service", service),
                ("effective_from", from),
                ("amount", amount),
                ("free_units", free),
            ],
        )
        .await
}

const BANKS: [BankPlan; 1] = [BankPlan::new("Altyn Bank", "99034000041")];

#[tokio::test(flavor = "multi_thread")]
async fn caps_refuse_tariffs_above_them_and_a_lowered_cap_clamps_and_notifies_the_provider() {
    let mut w = world_with(&BANKS, |_| {}).await;
    let platform = &w.s.platform;
    let bank = &w.banks[0];
    let (tomorrow, after) = (day(platform, 1), day(platform, 2));
    let regulator = regulator(platform).await;

    // No cap yet: only a free tariff may be set.
    let page = set_tariff(&bank.admin, bank.api_id, "accounts", &tomorrow, "1.00", "").await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("No cap is in force"), "{}", page.body);
    // The regulator's caps; today or the past is refused (nothing metered is priced again).
    assert_eq!(set_cap(&regulator, "provider", "accounts", &day(platform, 0), "2").await.status, 422);
    let page = set_cap(&regulator, "provider", "accounts", &tomorrow, "2.00").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with("/console/billing"));
    // Above the cap: refused, the cap named; at or under it: set.
    let page = set_tariff(&bank.admin, bank.api_id, "accounts", &tomorrow, "2.50", "").await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("cap in force on that day:"), "{}", page.body);
    assert!(page.body.contains("2.00"), "the cap is named: {}", page.body);
    let page = set_tariff(&bank.admin, bank.api_id, "accounts", &tomorrow, "1.80", "5").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with("/org/billing/tariffs"), "{}", page.url);
    assert_eq!(count(platform, "SELECT count(*) FROM billing_tariffs WHERE price_tiyn = 180 AND free_units = 5"), 1);

    // A cap lowered from the day after clamps the tariff from that day, journals it and tells the provider.
    let page = set_cap(&regulator, "provider", "accounts", &after, "1.20").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let clamp: (i64, String, i64) = db(platform)
        .query_row(
            "SELECT price_tiyn, effective_from, free_units FROM billing_tariffs WHERE clamped_by_cap IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(clamp, (120, after.clone(), 5));
    let provider = organisation_id(platform, &bank.bin);
    assert_eq!(
        count(
            platform,
            &format!(
                "SELECT count(*) FROM webhook_outbox WHERE organisation_id = {provider}
                 AND event_type = 'billing.tariff.clamped'"
            )
        ),
        1
    );
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.tariff.clamped'"), 1);
    assert_eq!(
        count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.cap.set' AND outcome = 'success'"),
        2
    );
    assert!(
        count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.tariff.set' AND outcome = 'denied'")
            >= 2
    );
    let page = bank.admin.get("/org/billing/tariffs").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"clamps\"") && page.body.contains("1.20"), "{}", page.body);

    // The marketplace shows the tariff of the day: none today, 1.80 tomorrow, the clamped 1.20 the day after.
    let market = format!("/marketplace/{}", bank.api_id);
    let page = w.s.user_admin.get(&market).await;
    assert!(page.body.contains("id=\"tariffs\"") && page.body.contains("free (no tariff)"), "{}", page.body);
    platform.clock().advance(DAY);
    w.s.user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    assert!(w.s.user_admin.get(&market).await.body.contains("1.80 ₸"));
    platform.clock().advance(DAY);
    w.s.user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    let page = w.s.user_admin.get(&market).await;
    assert!(page.body.contains("1.20 ₸") && !page.body.contains("1.80 ₸"), "{}", page.body);

    // The command line: the caps and tariffs as JSON; a month that has not ended is not closed; an ended one is,
    // once.
    let caps = platform.kopir().args(["billing", "caps", "--json"]).output().unwrap();
    common::assert_success(&caps);
    let caps: Value = serde_json::from_slice(&caps.stdout).unwrap();
    assert_eq!(caps.as_array().unwrap().len(), 2);
    let tariffs = platform.kopir().args(["billing", "tariffs", "--json"]).output().unwrap();
    common::assert_success(&tariffs);
    let tariffs: Value = serde_json::from_slice(&tariffs.stdout).unwrap();
    assert!(tariffs.as_array().unwrap().iter().any(|t| t["clamped_by_cap"].is_i64()));
    let future = platform.kopir().args(["billing", "close", "--month", "2999-01"]).output().unwrap();
    assert!(!future.status.success());
    for already in [false, true] {
        let closed = platform.kopir().args(["billing", "close", "--month", "2020-01", "--json"]).output().unwrap();
        common::assert_success(&closed);
        let closed: Value = serde_json::from_slice(&closed.stdout).unwrap();
        assert_eq!(closed["already_closed"], already);
        assert_eq!(closed["statements"].as_array().unwrap().len(), 1, "the operator's, with nothing to net");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn billing_pages_refuse_other_roles_and_organisations() {
    let w = world_with(&BANKS, |_| {}).await;
    let platform = &w.s.platform;
    let bank = &w.banks[0];
    let tomorrow = day(platform, 1);
    let regulator = regulator(platform).await;
    let password = operator_user(platform, "ops-billing", Role::OperatorStaff).await;
    let staff = signed_in(platform, "ops-billing", &password).await;
    let password = operator_user(platform, "admin-billing", Role::OperatorAdmin).await;
    let admin = signed_in(platform, "admin-billing", &password).await;

    // Caps are the regulator's alone; the fee the operator administrators'.
    for who in [&staff, &admin] {
        assert_eq!(who.get("/console/billing").await.status, 200);
        assert_eq!(set_cap(who, "provider", "accounts", &tomorrow, "1").await.status, 403);
    }
    let fee = [("service", "accounts"), ("effective_from", tomorrow.as_str()), ("amount", "0.10")];
    for who in [&staff, &regulator] {
        assert_eq!(who.submit("/console/billing", "/console/billing/fees", &fee).await.status, 403);
    }
    assert_eq!(set_cap(&regulator, "platform", "accounts", &tomorrow, "0.20").await.status, 200);
    // The fee under the platform cap: above it refused, under it set.
    let above = [("service", "accounts"), ("effective_from", tomorrow.as_str()), ("amount", "0.30")];
    assert_eq!(admin.submit("/console/billing", "/console/billing/fees", &above).await.status, 422);
    assert_eq!(admin.submit("/console/billing", "/console/billing/fees", &fee).await.status, 200);
    let page = regulator.get("/console/billing").await;
    assert!(page.body.contains("id=\"caps\"") && page.body.contains("id=\"fees\"") && page.body.contains("0.10"));
    assert!(!page.body.contains("/console/billing/fees\""), "the regulator gets no fee form");

    // Participants: no console; tariffs only for the provider's administrators of their own APIs.
    assert_eq!(bank.admin.get("/console/billing").await.status, 403);
    assert_eq!(w.s.user_admin.get("/console/billing").await.status, 403);
    // (The fixture's API user is accredited in both roles, so it has a tariffs page, without the bank's API.)
    let page = w.s.user_admin.get("/org/billing/tariffs").await;
    assert!(page.status == 200 && !page.body.contains(&format!("value=\"{}\"", bank.api_id)));
    assert_eq!(set_tariff(&w.s.user_admin, bank.api_id, "accounts", &tomorrow, "0", "").await.status, 404);
    let password = participant_user(platform, &bank.bin, "altyn-analyst-b", Role::ParticipantAnalyst).await;
    let analyst = signed_in(platform, "altyn-analyst-b", &password).await;
    assert_eq!(analyst.get("/org/billing/tariffs").await.status, 403);
    assert_eq!(analyst.get("/org/billing").await.status, 200, "every member sees the totals");
    assert_eq!(staff.get("/org/billing").await.status, 403);
    // Another provider naming this bank's API: not found.
    let other = common::participant::admin_of_new_organisation(
        platform,
        &common::browser::bin("99034000049"),
        "Other Bank",
        "otheradmin",
    )
    .await;
    common::participant::accredit(platform, &common::browser::bin("99034000049")).await;
    assert_eq!(set_tariff(&other, bank.api_id, "accounts", &tomorrow, "0", "").await.status, 404);
    // Anonymous: to sign in; the API without a certificate: refused.
    let anonymous = Browser::new(platform);
    for path in ["/console/billing", "/org/billing", "/org/billing/tariffs"] {
        assert!(anonymous.get(path).await.url.ends_with("/login"), "{path}");
    }
    let answer = platform.client(None).get(platform.url("/participant/v1/billing/running")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let api = |query: &str| platform.url(&format!("/participant/v1/billing/running{query}"));
    let answer = platform.client(Some(&w.s.identity)).get(api("?view=everyone")).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["Errors"][0]["ErrorCode"], "UK.OBIE.Field.Invalid", "{error}");
    // Its own figures only: as a provider, the user organisation earns nothing from the bank's traffic.
    let answer = platform.client(Some(&w.s.identity)).get(api("?view=provider")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let document: Value = answer.json().await.unwrap();
    assert_eq!((document["view"].as_str(), document["total_tiyn"].as_i64()), (Some("provider"), Some(0)));
}

/// The test's own statement of the tariffs it sets: (price, free units) of the provider and the platform's fee, per
/// service, on `day` (`d1`, `d2`: the days they take effect).
fn schedule(service: &str, day: &str, d1: &str, d2: &str) -> (i64, i64, i64) {
    let (price, free) = match (service, day >= d2, day >= d1) {
        ("accounts", true, _) => (150, 2),
        ("accounts", false, true) => (100, 2),
        ("balances", _, true) => (40, 0),
        // 2.00 from d1, clamped by the regulator's 1.20 from d2.
        ("transactions_page", true, _) => (120, 0),
        ("transactions_page", false, true) => (200, 0),
        _ => (0, 0),
    };
    let fee = match (service, day >= d1) {
        ("transactions_page", true) => 20,
        (_, true) => 10,
        _ => 0,
    };
    (price, free, fee)
}

/// The month's charges (provider's, platform's) computed from the raw exchanges alone.
fn independent_sum(w: &World, month: &str, d1: &str, d2: &str) -> (i64, i64, i64) {
    let platform = &w.s.platform;
    let zone = platform.config.time_zone.zone();
    let user = organisation_id(platform, &w.s.user_bin);
    let conn = db(platform);
    let mut statement = conn
        .prepare(
            "SELECT at, endpoint, transaction_lines FROM exchanges
             WHERE environment = 'production' AND status BETWEEN 200 AND 299 AND api_id IS NOT NULL
               AND user_organisation_id = ?1 ORDER BY at, id",
        )
        .unwrap();
    let rows: Vec<(String, String, i64)> =
        statement.query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    let (mut units_total, mut charge, mut fee) = (0, 0, 0);
    let mut used: HashMap<&str, i64> = HashMap::new();
    for (at, endpoint, lines) in &rows {
        let unix = kopir::clock::parse(at).unwrap().unix_timestamp();
        let day = kopir::store::calendar::local_day(zone, unix).unwrap();
        if !day.starts_with(month) {
            continue;
        }
        let (service, units) = match endpoint.as_str() {
            "accounts" | "account" => ("accounts", 1),
            "balances" => ("balances", 1),
            _ => ("transactions_page", ((lines + 99) / 100).max(1)),
        };
        let (price, free, fee_price) = schedule(service, &day, d1, d2);
        let before = used.entry(service).or_default();
        let free_now = (free - *before).clamp(0, units);
        *before += units;
        units_total += units;
        charge += (units - free_now) * price;
        fee += units * fee_price;
    }
    (units_total, charge, fee)
}

/// A day's calls with a new consent: the accounts list at both banks (the failing one is free) `accounts_calls`
/// times, balances, two transactions pages and a refused call (free). Returns how many exchanges they make.
async fn exchanges_of_a_day(w: &World, accounts_calls: usize) -> i64 {
    let s = &w.s;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000041").await;
    let mut account = String::new();
    let mut calls = 0;
    for _ in 0..accounts_calls {
        let list = get_json(s, &token, "/accounts").await;
        account = list["Data"]["Account"][0]["AccountId"].as_str().unwrap().to_string();
        calls += 2;
    }
    get_json(s, &token, &format!("/accounts/{account}/balances")).await;
    for _ in 0..2 {
        let page = get_json(s, &token, &format!("/accounts/{account}/transactions")).await;
        assert!(page["Data"]["Transaction"].as_array().is_some_and(|t| !t.is_empty()));
    }
    let refused = get(s, &s.identity, &token, "/accounts?nope=1").await;
    assert_eq!(refused.status(), 400);
    calls + 4
}

async fn running(w: &World) -> Value {
    let platform = &w.s.platform;
    let answer =
        platform.client(Some(&w.s.identity)).get(platform.url("/participant/v1/billing/running")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn exchanges_are_priced_at_their_day_s_tariff_after_the_free_quota_and_equal_the_raw_exchanges() {
    let plans = [
        BankPlan::new("Altyn Bank", "99034000042"),
        BankPlan { production_fault: Some(kopir::refbank::Fault::Error), ..BankPlan::new("Dala Bank", "99034000043") },
    ];
    let mut w = world_with(&plans, |_| {}).await;
    let platform = &w.s.platform;
    let (d1, d2) = (day(platform, 1), day(platform, 2));
    let regulator = regulator(platform).await;
    let password = operator_user(platform, "admin-fees", Role::OperatorAdmin).await;
    let operator = signed_in(platform, "admin-fees", &password).await;
    for (service, cap, fee) in
        [("accounts", "2", "0.10"), ("balances", "1", "0.10"), ("transactions_page", "3", "0.20")]
    {
        assert_eq!(set_cap(&regulator, "provider", service, &d1, cap).await.status, 200);
        assert_eq!(set_cap(&regulator, "platform", service, &d1, "0.50").await.status, 200);
        let form = [("service", service), ("effective_from", d1.as_str()), ("amount", fee)];
        assert_eq!(operator.submit("/console/billing", "/console/billing/fees", &form).await.status, 200);
    }
    let api = w.banks[0].api_id;
    let admin = &w.banks[0].admin;
    for (service, from, amount, free) in [
        ("accounts", &d1, "1", "2"),
        ("balances", &d1, "0.40", ""),
        ("transactions_page", &d1, "2", ""),
        // The mid-month change: accounts dearer from d2.
        ("accounts", &d2, "1.50", "2"),
    ] {
        let page = set_tariff(admin, api, service, from, amount, free).await;
        assert_eq!(page.status, 200, "{service}: {}", page.body);
    }
    // The regulator lowers the transactions cap from d2: the provider's 2.00 becomes 1.20 that day.
    assert_eq!(set_cap(&regulator, "provider", "transactions_page", &d2, "1.20").await.status, 200);

    let d0 = day(platform, 0);
    // Today: nothing is in force yet, so everything is free (but counts towards the month's free quota).
    let mut calls = exchanges_of_a_day(&w, 1).await;
    platform.clock().advance(DAY);
    calls += exchanges_of_a_day(&w, 3).await;
    platform.clock().advance(DAY);
    calls += exchanges_of_a_day(&w, 2).await;
    common::eventually("exchanges metered", Duration::from_secs(20), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n >= calls { Ok(n) } else { Err(n) }
    })
    .await;
    assert!(
        count(platform, "SELECT count(*) FROM exchanges WHERE endpoint = 'transactions' AND transaction_lines > 0")
            >= 3
    );
    assert!(count(platform, "SELECT count(*) FROM exchanges WHERE status >= 500") >= 6, "the failing bank's calls");

    let month = day(platform, 0)[..7].to_string();
    let (units, charge, fee) = independent_sum(&w, &month, &d1, &d2);
    let document = running(&w).await;
    assert_eq!(document["month"], month.as_str());
    assert_eq!(document["view"], "user");
    assert_eq!(document["units"].as_i64(), Some(units), "{document}");
    assert_eq!(document["charge_tiyn"].as_i64(), Some(charge), "{document}");
    assert_eq!(document["fee_tiyn"].as_i64(), Some(fee), "{document}");
    assert_eq!(document["total_tiyn"].as_i64(), Some(charge + fee));
    let per_bank: i64 =
        document["counterparties"].as_array().unwrap().iter().map(|c| c["total_tiyn"].as_i64().unwrap()).sum();
    assert_eq!(per_bank, charge + fee);
    assert_eq!(
        document["counterparties"].as_array().unwrap().len(),
        usize::from(units > 0),
        "only the bank that answered"
    );
    let per_day: i64 = document["days"].as_array().unwrap().iter().map(|d| d["total_tiyn"].as_i64().unwrap()).sum();
    assert_eq!(per_day, charge + fee);
    assert!(document["projected_tiyn"].as_i64().unwrap() >= charge + fee);
    if d0.starts_with(&month) {
        // Within one month the numbers are known outright: d0 = 1 account list, free (no tariff yet) but counted
        // in the month's quota of 2; d1 = 3 account lists (1 free) at 1.00, balances 0.40, two pages at 2.00;
        // d2 = 2 account lists at 1.50, balances 0.40, two pages at the clamped 1.20.
        assert_eq!(charge, 200 + 40 + 400 + 300 + 40 + 240);
        assert_eq!(fee, 3 * 10 + 10 + 2 * 20 + 2 * 10 + 10 + 2 * 20);
    }

    // The month closed (as `kopir billing close` and the schedule do, on the first day after it): statements whose
    // totals equal the independent sums; closing again issues nothing new; an issued statement never changes.
    let (close_db, _) = kopir::store::Db::open(&platform.config.db_path(), Default::default(), false).unwrap();
    let (_, last) = kopir::billing::close::month_days(&month).unwrap();
    let after_month = last + DAY;
    let close_month = async || {
        let month = month.clone();
        close_db
            .write(move |tx| {
                let actor = kopir::audit::Actor { name: "test".into(), source: "test".into(), user_id: None };
                kopir::billing::close::close(tx, &month, after_month, &actor, kopir::clock::now())
            })
            .await
            .unwrap()
    };
    let kopir::billing::close::Closed::Issued(issued) = close_month().await else { panic!("not issued") };
    let kopir::billing::close::Closed::Already(again) = close_month().await else { panic!("closed twice") };
    assert_eq!(issued, again);
    let user_org = organisation_id(platform, &w.s.user_bin);
    let bank_org = organisation_id(platform, &w.banks[0].bin);
    let of = |kind: &str, org: Option<i64>| {
        issued.iter().find(|s| s.kind == kind && s.organisation_id == org).unwrap_or_else(|| panic!("{kind}")).clone()
    };
    assert_eq!(of("user", Some(user_org)).total_tiyn, charge + fee);
    assert_eq!(of("provider", Some(bank_org)).total_tiyn, charge);
    assert_eq!(of("operator", None).total_tiyn, fee, "the operator keeps the fees, passes the charges on");
    let number = of("user", Some(user_org)).number;
    assert!(number.starts_with(&format!("KOPIR-{}-", month.replace('-', ""))), "{number}");
    let document: Value = serde_json::from_str(
        &db(platform)
            .query_row("SELECT document FROM billing_statements WHERE number = ?1", [&number], |r| {
                r.get::<_, String>(0)
            })
            .unwrap(),
    )
    .unwrap();
    let lines = document["body"]["lines"].as_array().unwrap();
    assert_eq!(
        lines.iter().map(|l| l["charge_tiyn"].as_i64().unwrap() + l["fee_tiyn"].as_i64().unwrap()).sum::<i64>(),
        charge + fee
    );
    assert_eq!(lines.iter().map(|l| l["units"].as_i64().unwrap()).sum::<i64>(), units);
    let tampered = db(platform).execute("UPDATE billing_statements SET total_tiyn = 0 WHERE number = ?1", [&number]);
    assert!(tampered.is_err(), "an issued statement never changes");
    assert!(db(platform).execute("DELETE FROM billing_statements", []).is_err());
    let listed = platform.kopir().args(["billing", "statements", "--month", &month, "--json"]).output().unwrap();
    common::assert_success(&listed);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&number));

    // The statement over the pages: its JSON as issued, a signature that verifies against the JWKS and binds the
    // JSON's SHA-256, line items that trace to the metered exchanges; another organisation cannot read it.
    w.s.user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    let base = format!("/org/billing/statements/{number}");
    let page = w.s.user_admin.get(&base).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("{}.{:02} ₸", (charge + fee) / 100, (charge + fee) % 100)));
    let json = w.s.user_admin.get(&format!("{base}/json")).await;
    assert_eq!(json.status, 200);
    let jws = w.s.user_admin.get(&format!("{base}/jws")).await;
    let jwks: Value =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let (seal, _kid) = kopir::snapshot::verify_signed::<kopir::billing::statements::Seal>(
        &jws.body,
        kopir::billing::statements::SEAL_TYPE,
        &jwks,
    )
    .unwrap();
    assert_eq!(seal.statement, number);
    assert_eq!(seal.sha256, kopir::digest::sha256_hex(json.body.as_bytes()), "the seal binds the JSON as served");
    let csv = w.s.user_admin.get(&format!("{base}/csv")).await;
    assert_eq!(csv.status, 200);
    let records = crate::reports_participant::parse_csv(&csv.body);
    assert_eq!(records[0][1], "interaction_id");
    let csv_units: i64 = records[1..].iter().map(|r| r[6].parse::<i64>().unwrap()).sum();
    assert_eq!(csv_units, units, "the line items add up to the statement's units");
    assert!(records[1..].iter().all(|r| r[1] == "itest-0001"));
    w.banks[0].admin.sign_in("bankadmin0", "bankadmin0-Passw0rd-long").await;
    assert_eq!(w.banks[0].admin.get(&base).await.status, 404, "another organisation's statement");
    assert_eq!(w.banks[0].admin.get(&format!("{base}/json")).await.status, 404);
    // The operator marks it invoiced, then paid; the regulator cannot; a move from a stale status is a conflict.
    let password = operator_user(platform, "ops-settle", Role::OperatorStaff).await;
    let staff = signed_in(platform, "ops-settle", &password).await;
    let mark = |from: &'static str, to: &'static str| [("from", from), ("to", to)];
    let list = "/console/billing/statements";
    let action = format!("{list}/{number}/status");
    let password = operator_user(platform, "regulator-settle", Role::Regulator).await;
    let regulator = signed_in(platform, "regulator-settle", &password).await;
    assert_eq!(regulator.get(list).await.status, 200, "the regulator reads the statements");
    assert_eq!(regulator.submit(list, &action, &mark("issued", "invoiced")).await.status, 403);
    assert_eq!(staff.submit(list, &action, &mark("issued", "paid")).await.status, 409);
    assert_eq!(staff.submit(list, &action, &mark("issued", "invoiced")).await.status, 200);
    assert_eq!(staff.submit(list, &action, &mark("issued", "invoiced")).await.status, 409);
    assert_eq!(staff.submit(list, &action, &mark("invoiced", "paid")).await.status, 200);
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.statement.marked'"), 2);

    // The pages: the API user's charges per bank and the bank's earnings, with a chart and its data table.
    w.s.user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    let page = w.s.user_admin.get("/org/billing").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"user-banks\"") && page.body.contains("<svg") && page.body.contains("id=\"user-days\"")
    );
    assert!(page.body.contains(&format!("{}.{:02} ₸", (charge + fee) / 100, (charge + fee) % 100)), "{}", page.body);
    w.banks[0].admin.sign_in("bankadmin0", "bankadmin0-Passw0rd-long").await;
    let page = w.banks[0].admin.get("/org/billing").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"provider-users\"") && page.body.contains("Fintech One"));
    assert!(page.body.contains(&format!("{}.{:02} ₸", charge / 100, charge % 100)), "{}", page.body);
}

#[test]
fn bench_billing_closes_a_small_month_and_its_statements_hold_every_unit() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"))
        .args(["bench", "billing", "--exchanges", "20000", "--providers", "4", "--users", "6"])
        .output()
        .unwrap();
    common::assert_success(&output);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("close: ") && text.contains(": ok"), "{text}");
}

/// Caps, the bank's tariff and the platform fee for account lists from `from`: 1.00 ₸ per list to the bank and
/// 0.10 ₸ to the operator, no free units.
async fn account_lists_priced_from(w: &World, from: &str) {
    let platform = &w.s.platform;
    let regulator = regulator(platform).await;
    assert_eq!(set_cap(&regulator, "provider", "accounts", from, "2").await.status, 200);
    assert_eq!(set_cap(&regulator, "platform", "accounts", from, "0.50").await.status, 200);
    let password = operator_user(platform, "admin-fee-lists", Role::OperatorAdmin).await;
    let operator = signed_in(platform, "admin-fee-lists", &password).await;
    let form = [("service", "accounts"), ("effective_from", from), ("amount", "0.10")];
    assert_eq!(operator.submit("/console/billing", "/console/billing/fees", &form).await.status, 200);
    let page = set_tariff(&w.banks[0].admin, w.banks[0].api_id, "accounts", from, "1.00", "").await;
    assert_eq!(page.status, 200, "{}", page.body);
}

/// The billable account lists of the API user between two instants (RFC 3339), counted from the raw exchanges.
fn raw_account_lists(platform: &common::Platform, from: &str, to: &str) -> i64 {
    db(platform)
        .query_row(
            "SELECT count(*) FROM exchanges WHERE environment = 'production' AND status BETWEEN 200 AND 299
               AND api_id IS NOT NULL AND endpoint IN ('accounts', 'account') AND at >= ?1 AND at < ?2",
            [from, to],
            |r| r.get(0),
        )
        .unwrap()
}

fn test_actor() -> kopir::audit::Actor {
    kopir::audit::Actor { name: "test".into(), source: "test".into(), user_id: None }
}

const TRAFFIC_TASKS: usize = 3;

#[tokio::test(flavor = "multi_thread")]
async fn a_month_closed_three_times_at_once_while_traffic_flows_issues_one_set_equal_to_the_raw_exchanges() {
    use kopir::billing::close::{self, Closed};
    // Tokens outlive the few minutes the clock is moved across midnight; the sandbox's checks, failing once the
    // clock is days ahead of the banks', must not delist the API meanwhile.
    let mut w = world_with(&[BankPlan::new("Altyn Bank", "99034000044")], |c| {
        c.oauth.access_token_secs = 3600;
        c.sandbox.delist_after_failures = 1000;
    })
    .await;
    let d1 = day(&w.s.platform, 1);
    account_lists_priced_from(&w, &d1).await;
    let platform = &w.s.platform;
    let zone = platform.config.time_zone.zone().clone();

    // The clock moved to 23:50 (operator's time) on the last day of the month the tariff takes effect in.
    let first_of_next: jiff::civil::Date = d1.parse::<jiff::civil::Date>().unwrap().last_of_month().tomorrow().unwrap();
    let midnight = kopir::store::calendar::day_start(&zone, first_of_next).unwrap();
    let before_midnight = midnight - 600 - platform.clock().now().unix_timestamp();
    platform.clock().advance(time::Duration::seconds(before_midnight));
    let month = day(platform, 0)[..7].to_string();
    let next_month = first_of_next.to_string()[..7].to_string();
    let (month_start, month_end) = close::month_bounds(&zone, &month).unwrap();
    assert_eq!(month_end, kopir::clock::rfc3339(time::OffsetDateTime::from_unix_timestamp(midnight).unwrap()));

    // Tasks sending account-list requests continuously, each with its own interaction ids.
    let bins = [w.banks[0].bin.as_str()];
    let (_, token, _) = tokens_for(&w.s, consent(&bins, FULL, None, None), customer(), "+77010000044").await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut traffic = Vec::new();
    for task in 0..TRAFFIC_TASKS {
        let client = platform.client(Some(&w.s.identity));
        let url = platform.url("/open-banking/v1/aisp/accounts");
        let (token, stop) = (token.clone(), stop.clone());
        traffic.push(tokio::spawn(async move {
            let mut answered = 0;
            for i in 0.. {
                if *stop.borrow() {
                    break;
                }
                let response = client
                    .get(&url)
                    .bearer_auth(&token)
                    .header("x-fapi-interaction-id", format!("load-{task}-{i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
                answered += 1;
            }
            answered
        }));
    }
    let new_month_rows = |task: usize| -> i64 {
        db(platform)
            .query_row(
                "SELECT count(*) FROM exchanges WHERE interaction_id LIKE ?1 AND at >= ?2",
                rusqlite::params![format!("load-{task}-%"), month_end],
                |r| r.get(0),
            )
            .unwrap()
    };
    common::eventually("traffic before midnight", Duration::from_secs(30), async || {
        let n = raw_account_lists(platform, &month_start, &month_end);
        if n >= 3 * TRAFFIC_TASKS as i64 { Ok(n) } else { Err(n) }
    })
    .await;

    // Midnight passes (still within the schedule's hour of grace); once every task has two exchanges of the new
    // month written, each one's exchanges of the old month are written too (each task waits for its answers, and
    // the meter writes in order).
    platform.clock().advance(time::Duration::minutes(15));
    common::eventually("every task's traffic after midnight", Duration::from_secs(30), async || {
        let rows: Vec<i64> = (0..TRAFFIC_TASKS).map(new_month_rows).collect();
        if rows.iter().all(|&n| n >= 2) { Ok(rows) } else { Err(rows) }
    })
    .await;

    // Two tasks and the command line's function close the month at once, each on its own connection, while the
    // traffic goes on.
    let path = platform.config.db_path();
    let open = || kopir::store::Db::open(&path, Default::default(), false).unwrap().0;
    let (a, b, c) = (open(), open(), open());
    let now = platform.clock().now();
    let today = kopir::billing::today(&zone, now).unwrap();
    let by_task = |db: kopir::store::Db| {
        let month = month.clone();
        tokio::spawn(async move { db.write(move |tx| close::close(tx, &month, today, &test_actor(), now)).await })
    };
    let (first, second) = (by_task(a), by_task(b));
    let by_cli = close::close_at(&c, &zone, &month, test_actor(), now);
    let (first, second, third) = tokio::join!(first, second, by_cli);
    let outcomes = [first.unwrap().unwrap(), second.unwrap().unwrap(), third.unwrap()];
    let issued: Vec<&Vec<close::Statement>> =
        outcomes.iter().filter_map(|o| if let Closed::Issued(s) = o { Some(s) } else { None }).collect();
    assert_eq!(issued.len(), 1, "one close issues: {outcomes:?}");
    let issued = issued[0].clone();
    for outcome in &outcomes {
        match outcome {
            Closed::Issued(s) | Closed::Already(s) => assert_eq!(s, &issued),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(count(platform, &format!("SELECT count(*) FROM billing_statements WHERE month = '{month}'")), 3);
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.month.closed'"), 1);

    // More of the new month's traffic, then it stops; closing again answers the same numbers.
    let so_far: i64 = (0..TRAFFIC_TASKS).map(new_month_rows).sum();
    common::eventually("traffic after the close", Duration::from_secs(30), async || {
        let n: i64 = (0..TRAFFIC_TASKS).map(new_month_rows).sum();
        if n >= so_far + TRAFFIC_TASKS as i64 { Ok(n) } else { Err(n) }
    })
    .await;
    stop_tx.send(true).unwrap();
    let mut answered = 0;
    for task in traffic {
        answered += task.await.unwrap();
    }
    common::eventually("every answer metered", Duration::from_secs(20), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges WHERE interaction_id LIKE 'load-%'");
        if n >= answered { Ok(n) } else { Err(n) }
    })
    .await;
    let Closed::Already(again) =
        close::close_at(&c, &zone, &month, test_actor(), platform.clock().now()).await.unwrap()
    else {
        panic!("closed twice")
    };
    assert_eq!(again, issued);

    // The statements equal an independent count over the raw exchanges of the closed month; the new month's
    // exchanges are in none of them.
    let lists = raw_account_lists(platform, &month_start, &month_end);
    let after = raw_account_lists(platform, &month_end, "9999");
    assert!(lists > 0 && after > 0, "{lists} {after}");
    assert_eq!(lists + after, answered, "every answered call is a billable account list of one month or the other");
    let user_org = organisation_id(platform, &w.s.user_bin);
    let bank_org = organisation_id(platform, &w.banks[0].bin);
    let of = |kind: &str, org: Option<i64>| {
        issued.iter().find(|s| s.kind == kind && s.organisation_id == org).unwrap_or_else(|| panic!("{kind}")).clone()
    };
    let user = of("user", Some(user_org));
    assert_eq!(user.total_tiyn, lists * 110);
    assert_eq!(of("provider", Some(bank_org)).total_tiyn, lists * 100);
    assert_eq!(of("operator", None).total_tiyn, lists * 10);
    let document: Value =
        serde_json::from_str(&kopir::billing::close::document(&db(platform), &user.number).unwrap().unwrap()).unwrap();
    let units: i64 = document["body"]["lines"].as_array().unwrap().iter().map(|l| l["units"].as_i64().unwrap()).sum();
    assert_eq!(units, lists);
    assert_eq!(count(platform, &format!("SELECT count(*) FROM billing_statements WHERE month = '{next_month}'")), 0);

    printable_documents_and_the_export(&mut w, &month, &next_month, &user, lists).await;
}

/// The printable document (page, languages, access) and `kopir billing export` of the month just closed.
async fn printable_documents_and_the_export(
    w: &mut World,
    month: &str,
    next_month: &str,
    user: &kopir::billing::close::Statement,
    lists: i64,
) {
    let platform = &w.s.platform;
    let total = format!("{}.{:02} ₸", lists * 110 / 100, lists * 110 % 100);
    let number = user.number.clone();
    let base = format!("/org/billing/statements/{number}");
    w.s.user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    let page = w.s.user_admin.get(&base).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("href=\"{base}/print\"")), "the statement page links its document");
    // The page names the line's counterparty and API as the document does (the JSON as issued holds their ids).
    assert!(page.body.contains("<td>Altyn Bank (BIN "), "{}", page.body);
    assert!(!page.body.contains("<td>API "), "every API named: {}", page.body);
    // Its kind and settlement status in words, its issue time in the operator's zone (the UTC instant kept in the
    // markup for machines).
    assert!(page.body.contains("<dd>API user: charges and platform fee</dd>"), "{}", page.body);
    assert!(page.body.contains(&format!("<time datetime=\"{}\">", user.issued_at)), "{}", page.body);
    assert!(!page.body.contains(&format!(">{}<", user.issued_at)), "not shown in UTC: {}", page.body);
    let print = w.s.user_admin.get(&format!("{base}/print")).await;
    assert_eq!(print.status, 200, "{}", print.body);
    assert!(print.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = print.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && !policy.contains("script"), "{policy}");
    for text in [
        "<html lang=\"en\">",
        "@page { size: A4",
        number.as_str(),
        month,
        "Fintech One",
        w.s.user_bin.as_str(),
        "kopir Open Banking platform",
        "Total due to the operator",
        total.as_str(),
        user.sha256.as_str(),
        "/jws",
        "Altyn Bank",
    ] {
        assert!(print.body.contains(text), "{text}: {}", print.body);
    }
    assert!(!print.body.contains("<nav") && !print.body.contains("<script"), "standalone: no navigation");
    for (lang, text) in [("ru", "Итого к оплате оператору"), ("kk", "Операторға төленетін барлығы")]
    {
        w.s.user_admin.get(&format!("/lang/{lang}")).await;
        let print = w.s.user_admin.get(&format!("{base}/print")).await;
        assert!(print.body.contains(&format!("<html lang=\"{lang}\">")) && print.body.contains(text), "{lang}");
        assert!(print.body.contains(&total), "{lang}");
    }
    w.s.user_admin.get("/lang/en").await;

    // The same readers as the statement page: the console's; another organisation, whatever its role, gets 404.
    let bank = &mut w.banks[0];
    bank.admin.sign_in("bankadmin0", "bankadmin0-Passw0rd-long").await;
    assert_eq!(bank.admin.get(&format!("{base}/print")).await.status, 404);
    let password = participant_user(platform, &bank.bin, "altyn-analyst-p", Role::ParticipantAnalyst).await;
    let analyst = signed_in(platform, "altyn-analyst-p", &password).await;
    assert_eq!(analyst.get(&format!("{base}/print")).await.status, 404);
    assert_eq!(bank.admin.get("/org/billing/statements/KOPIR-299901-000001/print").await.status, 404);
    let password = operator_user(platform, "regulator-print", Role::Regulator).await;
    let regulator = signed_in(platform, "regulator-print", &password).await;
    assert_eq!(regulator.get(&format!("{base}/print")).await.status, 200);
    assert!(Browser::new(platform).get(&format!("{base}/print")).await.url.ends_with("/login"));
    let password = participant_user(platform, &w.s.user_bin, "fintech-analyst-p", Role::ParticipantAnalyst).await;
    let own_analyst = signed_in(platform, "fintech-analyst-p", &password).await;
    assert_eq!(own_analyst.get(&format!("{base}/print")).await.status, 200, "every member of its organisation");

    // The command line writes the same document.
    let file = w.dir.path().join("statement.html");
    let printed = platform
        .kopir()
        .args(["billing", "statements", "--month", month, "--number", &number, "--print", "--json", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    common::assert_success(&printed);
    let summary: Value = serde_json::from_slice(&printed.stdout).unwrap();
    let html = std::fs::read_to_string(&file).unwrap();
    assert_eq!(summary["sha256"], kopir::digest::sha256_hex(html.as_bytes()).as_str());
    assert!(html.contains(&number) && html.contains(&total) && html.contains(&user.sha256));

    // The export: every statement's files and a signed manifest that verifies against the platform's key set, the
    // JSON byte for byte what the statement's JSON download serves.
    let out = w.dir.path().join("export");
    let exported =
        platform.kopir().args(["billing", "export", "--month", month, "--json", "--out"]).arg(&out).output().unwrap();
    common::assert_success(&exported);
    let summary: Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(summary["statements"].as_array().unwrap().len(), 3, "{summary}");
    assert_eq!(summary["files"], 12);
    let jwks: Value =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jws = std::fs::read_to_string(out.join("manifest.jws")).unwrap();
    let (manifest, _kid) = kopir::snapshot::verify_signed::<kopir::billing::export::Manifest>(
        &jws,
        kopir::billing::export::MANIFEST_TYPE,
        &jwks,
    )
    .unwrap();
    assert_eq!(manifest.month, month);
    for f in &manifest.files {
        assert_eq!(kopir::digest::sha256_hex(&std::fs::read(out.join(&f.name)).unwrap()), f.sha256, "{}", f.name);
    }
    let served = w.s.user_admin.get(&format!("{base}/json")).await;
    assert_eq!(std::fs::read_to_string(out.join(format!("{number}.json"))).unwrap(), served.body);
    let seal = std::fs::read_to_string(out.join(format!("{number}.jws"))).unwrap();
    let (seal, _) = kopir::snapshot::verify_signed::<kopir::billing::statements::Seal>(
        &seal,
        kopir::billing::statements::SEAL_TYPE,
        &jwks,
    )
    .unwrap();
    assert_eq!(seal.sha256, kopir::digest::sha256_hex(served.body.as_bytes()));
    let csv = std::fs::read_to_string(out.join(format!("{number}.csv"))).unwrap();
    assert_eq!(csv.lines().count() as i64, lists + 1, "one line item per billable exchange of the month");
    assert!(std::fs::read_to_string(out.join(format!("{number}.html"))).unwrap().contains(&total));
    kopir::billing::export::verify(&out, &jwks).unwrap();
    let jwks_file = w.dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let verified = platform.kopir().args(["billing", "verify", "--json", "--jwks"]).arg(&jwks_file).arg(&out).output();
    common::assert_success(&verified.unwrap());
    // A changed line item is caught; a month not closed, or a directory already used, is refused.
    std::fs::write(out.join(format!("{number}.csv")), csv.replacen("load-", "edit-", 1)).unwrap();
    let error = kopir::billing::export::verify(&out, &jwks).unwrap_err().to_string();
    assert!(error.contains(&format!("{number}.csv")), "{error}");
    let refused = platform.kopir().args(["billing", "export", "--month", month, "--out"]).arg(&out).output().unwrap();
    assert!(!refused.status.success());
    let refused = platform
        .kopir()
        .args(["billing", "export", "--month", next_month, "--out"])
        .arg(w.dir.path().join("next"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not closed"), "{refused:?}");
    for args in [vec!["caps"], vec!["tariffs"], vec!["statements", "--month", month]] {
        let output = platform.kopir().arg("billing").args(&args).arg("--json").output().unwrap();
        common::assert_success(&output);
        let _: Value = serde_json::from_slice(&output.stdout).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_overdue_beyond_the_limit_warns_the_console_and_the_participant_once_and_refuses_nothing() {
    use crate::webhooks::{Receiver, set_url, verify};
    let mut w = world_with(&[BankPlan::new("Altyn Bank", "99034000045")], |c| {
        c.billing.suspend_after_days = 5;
        // The sandbox's checks fail once the clock has moved days ahead of the banks': they must not delist the API
        // in the middle of this test.
        c.sandbox.delist_after_failures = 1000;
    })
    .await;
    let d1 = day(&w.s.platform, 1);
    account_lists_priced_from(&w, &d1).await;
    let platform = &w.s.platform;
    let user_org = organisation_id(platform, &w.s.user_bin);
    let receiver = Receiver::start(platform, 0).await;
    set_url(platform, user_org, &receiver.url()).await;
    platform.clock().advance(DAY);
    let bins = [w.banks[0].bin.as_str()];
    let (_, token, _) = tokens_for(&w.s, consent(&bins, FULL, None, None), customer(), "+77010000045").await;
    for _ in 0..3 {
        get_json(&w.s, &token, "/accounts").await;
    }
    common::eventually("exchanges metered", Duration::from_secs(20), async || {
        let n = count(platform, "SELECT coalesce(sum(units), 0) FROM billing_units_daily");
        if n >= 3 { Ok(n) } else { Err(n) }
    })
    .await;
    // The month closed (as on the first day after it), the API user's statement invoiced, then marked overdue.
    let month = day(platform, 0)[..7].to_string();
    let (_, last) = kopir::billing::close::month_days(&month).unwrap();
    let now = platform.clock().now();
    let closed = platform
        .running()
        .state
        .db
        .write(move |tx| kopir::billing::close::close(tx, &month, last + DAY, &test_actor(), now))
        .await
        .unwrap();
    let kopir::billing::close::Closed::Issued(issued) = closed else { panic!("{closed:?}") };
    let statement = issued.iter().find(|s| s.organisation_id == Some(user_org)).unwrap().clone();
    assert_eq!(statement.total_tiyn, 3 * 110);
    let password = operator_user(platform, "ops-overdue", Role::OperatorStaff).await;
    let mut staff = signed_in(platform, "ops-overdue", &password).await;
    let list = "/console/billing/statements";
    let action = format!("{list}/{}/status", statement.number);
    assert_eq!(staff.submit(list, &action, &[("from", "issued"), ("to", "invoiced")]).await.status, 200);
    assert_eq!(staff.submit(list, &action, &[("from", "invoiced"), ("to", "overdue")]).await.status, 200);
    let warnings = || count(platform, "SELECT count(*) FROM billing_overdue_warnings");
    let store = platform.running().state.db.clone();

    // Within the limit: no warning anywhere.
    platform.clock().advance(DAY * 4);
    assert_eq!(kopir::billing::schedule::warn_overdue(&store, 5, platform.clock().now()).await.unwrap(), 0);
    staff.sign_in("ops-overdue", &password).await;
    assert!(!staff.get(list).await.body.contains("id=\"overdue-warning\""));

    // Beyond it: the schedule (woken by the clock) warns once — journal, signed webhook, inbox notice — and the
    // console lists the participant with the days and the amount.
    platform.clock().advance(DAY * 2);
    common::eventually("the schedule's warning", Duration::from_secs(20), async || {
        if warnings() == 1 { Ok(()) } else { Err(warnings()) }
    })
    .await;
    platform.clock().advance(DAY);
    assert_eq!(kopir::billing::schedule::warn_overdue(&store, 5, platform.clock().now()).await.unwrap(), 0);
    assert_eq!(warnings(), 1);
    assert_eq!(
        count(platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'billing.statement.overdue'"),
        1
    );
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'billing.statement.overdue_warned'"), 1);
    let event_id: String = db(platform)
        .query_row("SELECT event_id FROM webhook_outbox WHERE event_type = 'billing.statement.overdue'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let seen = common::eventually("the webhook delivered", Duration::from_secs(30), async || {
        let seen: Vec<_> = receiver.seen().into_iter().filter(|s| s.event_id == event_id).collect();
        if seen.is_empty() { Err(seen.len()) } else { Ok(seen) }
    })
    .await;
    assert_eq!(seen.len(), 1, "sent once");
    let claims = verify(platform, &seen[0].body, &w.s.user_bin).await;
    assert_eq!(claims["event"], "billing.statement.overdue");
    assert_eq!(claims["data"]["statement"], statement.number.as_str());
    assert!(claims["data"]["days_overdue"].as_i64().unwrap() > 5);

    staff.sign_in("ops-overdue", &password).await;
    for path in [list, "/console"] {
        let page = staff.get(path).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("id=\"overdue-warning\"") && page.body.contains("Fintech One"), "{path}");
        assert!(page.body.contains(&format!("id=\"overdue-{}\"", statement.number)) && page.body.contains("3.30 ₸"));
        assert!(page.body.contains("no access is suspended automatically"), "{path}");
    }
    let user_admin = &mut w.s.user_admin;
    user_admin.sign_in("fintechadmin", "fintechadmin-Passw0rd-long").await;
    let inbox = user_admin.get("/org/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(inbox.body.contains("One of your statements is overdue"), "{}", inbox.body);
    assert!(inbox.body.contains(&format!("/org/billing/statements/{}", statement.number)));
    // Participants do not see the console's list.
    assert_eq!(user_admin.get(list).await.status, 403);

    // Nothing is refused: the participant's calls go on.
    let (_, token, _) = tokens_for(&w.s, consent(&bins, FULL, None, None), customer(), "+77010000045").await;
    get_json(&w.s, &token, "/accounts").await;
    assert_eq!(running(&w).await["view"], "user");
    let status: String =
        db(platform).query_row("SELECT status FROM organisations WHERE id = ?1", [user_org], |r| r.get(0)).unwrap();
    assert_eq!(status, "accredited", "a warning, never a suspension");
}
