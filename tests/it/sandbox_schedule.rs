//! The sandbox's scheduled checks end to end: a published API whose bank stops answering is delisted after N failing
//! runs (off the marketplace, the gateway refusing its calls with the delisted error, its provider and connected API
//! user told by webhook, the journal written), relisted after M passing runs once the bank is back; the operator's
//! override pins either state until "return to automatic"; the health pages render with SVG charts and refuse whoever
//! may not see them.

use crate::common;

use std::time::Duration;

use crate::common::browser::{Browser, operator_user};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get, get_json, tokens_for, world_with};
use crate::common::participant::{count, db};
use kopir::identity::Role;
use kopir::refbank::BankConfig;
use serde_json::Value;

const PLANS: [BankPlan; 2] = [BankPlan::new("Altyn Bank", "99034000001"), BankPlan::new("Dala Bank", "99034000002")];

fn status_of(platform: &common::Platform, api: i64) -> String {
    db(platform).query_row("SELECT status FROM apis WHERE id = ?1", [api], |r| r.get(0)).unwrap()
}

/// Waits (up to `secs`) until the API's status is `want`.
async fn wait_status(platform: &common::Platform, api: i64, want: &str, secs: u64) {
    common::eventually(&format!("API {api} to be {want}"), Duration::from_secs(secs), async || {
        let status = status_of(platform, api);
        if status == want { Ok(()) } else { Err(status) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_bank_is_delisted_after_n_runs_and_relisted_after_m_passes_and_the_operator_can_pin_it() {
    let mut w = world_with(&PLANS, |c| {
        c.sandbox.check_interval_secs = 1;
        c.sandbox.check_jitter_secs = 0;
        c.sandbox.delist_after_failures = 2;
        c.sandbox.relist_after_passes = 2;
    })
    .await;
    let api = w.banks[0].api_id;
    let other = w.banks[1].api_id;
    let bins: Vec<String> = w.banks.iter().map(|b| b.bin.clone()).collect();
    let bin_refs: Vec<&str> = bins.iter().map(String::as_str).collect();
    let (_, token, _) = tokens_for(&w.s, consent(&bin_refs, FULL, None, None), customer(), "+77010000001").await;
    let before = get_json(&w.s, &token, "/accounts").await;
    let account_at_first_bank = before["Data"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Servicer"]["Identification"] == bins[0].as_str())
        .map(|a| a["AccountId"].as_str().unwrap().to_string())
        .expect("an account at the first bank");

    // The schedule runs: passing runs are recorded (both environments) and the API stays listed.
    let platform = &w.s.platform;
    common::eventually("two passing scheduled runs recorded", Duration::from_secs(30), async || {
        let passed = count(platform, &format!("SELECT count(*) FROM api_runs WHERE api_id = {api} AND passed = 1"));
        if passed >= 2 { Ok(()) } else { Err(passed) }
    })
    .await;
    assert_eq!(status_of(platform, api), "published");
    let environments =
        count(platform, &format!("SELECT count(DISTINCT environment) FROM api_runs WHERE api_id = {api}"));
    assert_eq!(environments, 2, "sandbox and production are both checked");

    // The first bank stops answering: after two failing runs it is delisted.
    let site = w.banks.remove(0);
    let bank_addr = site.sandbox.addr;
    site.sandbox.shutdown().await;
    wait_status(platform, api, "suspended", 60).await;
    let failures: i64 = db(platform)
        .query_row("SELECT consecutive_failures FROM api_health WHERE api_id = ?1", [api], |r| r.get(0))
        .unwrap();
    assert!(failures >= 2, "delisted after {failures} failing runs");
    let failing = count(
        platform,
        &format!("SELECT count(*) FROM api_runs WHERE api_id = {api} AND passed = 0 AND failed LIKE '%tls.reachable%'"),
    );
    assert!(failing >= 2, "failing checks name the unreachable endpoint: {failing}");
    // Off the marketplace, the other bank still there.
    let market = w.s.user_admin.get("/marketplace").await;
    assert_eq!(market.status, 200);
    assert!(!market.body.contains("Altyn Bank"), "the delisted API is still listed");
    assert!(market.body.contains("Dala Bank"));
    assert_eq!(w.s.user_admin.get(&format!("/marketplace/{api}")).await.status, 404);
    // Its provider and the connected API user are told, in the journal too.
    let provider_org: i64 =
        db(platform).query_row("SELECT organisation_id FROM apis WHERE id = ?1", [api], |r| r.get(0)).unwrap();
    let user_org: i64 =
        db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [&w.s.user_bin], |r| r.get(0)).unwrap();
    for org in [provider_org, user_org] {
        let events = count(
            platform,
            &format!(
                "SELECT count(*) FROM webhook_outbox WHERE organisation_id = {org} AND event_type = 'api.delisted'"
            ),
        );
        assert_eq!(events, 1, "organisation {org} was not told");
    }
    let payload: String = db(platform)
        .query_row("SELECT payload FROM webhook_outbox WHERE event_type = 'api.delisted' LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["ApiId"], api);
    assert_eq!(payload["By"], "checks");
    assert_eq!(
        count(platform, "SELECT count(*) FROM audit_log WHERE action = 'sandbox.api.delisted' AND actor = 'system'"),
        1
    );
    // The connections are kept; the API user's page says why the bank is gone.
    assert_eq!(
        count(platform, &format!("SELECT count(*) FROM api_connections WHERE api_id = {api} AND status = 'active'")),
        1
    );
    let app_page = w.s.user_admin.get(&format!("/org/apps/{}", w.s.app_id)).await;
    app_page.assert_contains("Delisted by the platform");
    let provider_page = site.admin.get(&format!("/org/apis/{api}")).await;
    assert!(provider_page.body.contains("id=\"delisted-banner\""), "{}", provider_page.body);

    // The gateway: the fan-out names the bank as missing with the reason; a call to it alone is a 503.
    let fanout = get_json(&w.s, &token, "/accounts").await;
    let missing = fanout["Meta"]["MissingProviders"].as_array().expect("a missing provider");
    assert_eq!(missing.len(), 1, "{fanout}");
    assert_eq!(missing[0]["Bin"], bins[0].as_str());
    assert!(
        missing[0]["Reason"].as_str().unwrap().contains("temporarily delisted by the platform's checks"),
        "{fanout}"
    );
    assert!(
        fanout["Data"]["Account"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["Servicer"]["Identification"] == bins[1].as_str())
    );
    let refused = get(&w.s, &w.s.identity, &token, &format!("/accounts/{account_at_first_bank}/balances")).await;
    let error = common::expect_ob_error(refused, 503, "UK.OBIE.UnexpectedError").await;
    assert!(error["Errors"][0]["Message"].as_str().unwrap().contains("temporarily delisted"), "{error}");

    // The bank comes back on the same address: two passing runs and it is listed again.
    let mut config = BankConfig::new(
        "Altyn Bank",
        bins[0].clone(),
        w.dir.path().join("bank0-sandbox"),
        platform.url(""),
        platform.root_pem(),
    );
    config.listen = bank_addr;
    config.seed = 1;
    let revived = kopir::refbank::start(config).await.unwrap();
    wait_status(platform, api, "published", 60).await;
    assert_eq!(count(platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'api.relisted'"), 2);
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'sandbox.api.relisted'"), 1);
    assert!(w.s.user_admin.get("/marketplace").await.body.contains("Altyn Bank"));
    let answer = get(&w.s, &w.s.identity, &token, &format!("/accounts/{account_at_first_bank}/balances")).await;
    assert_eq!(answer.status(), 200);

    // The pages: the provider sees its API's health with charts and a data table.
    let health = site.admin.get(&format!("/org/apis/{api}/health")).await;
    assert_eq!(health.status, 200, "{}", health.body);
    for part in ["<svg", "id=\"latency-chart-title\"", "id=\"availability-chart-desc\"", "<table", "tls.reachable"] {
        assert!(health.body.contains(part), "{part} missing from the health page");
    }
    assert!(!health.body.contains("/override"), "providers get no override form");
    // Another provider's API is not found; the provider may not reach the console.
    assert_eq!(site.admin.get(&format!("/org/apis/{other}/health")).await.status, 404);
    assert_eq!(site.admin.get("/console/apis/health").await.status, 403);
    assert_eq!(site.admin.get(&format!("/console/apis/{api}/health")).await.status, 403);

    // Operator staff see every API and pin it delisted with a reason.
    let password = operator_user(platform, "aliya.ops", Role::OperatorStaff).await;
    let mut staff = Browser::new(platform);
    staff.sign_in("aliya.ops", &password).await;
    let overview = staff.get("/console/apis/health").await;
    assert_eq!(overview.status, 200);
    overview.assert_contains("Altyn Bank").assert_contains("Dala Bank").assert_contains("class=\"spark\"");
    let page = staff.get(&format!("/console/apis/{api}/health")).await;
    let csrf = page.csrf();
    let no_reason =
        staff.post(&format!("/console/apis/{api}/override"), &csrf, &[("mode", "delisted"), ("reason", "")]).await;
    assert_eq!(no_reason.status, 422, "a reason is mandatory");
    assert_eq!(status_of(platform, api), "published");
    let pinned = staff
        .post(
            &format!("/console/apis/{api}/override"),
            &csrf,
            &[("mode", "delisted"), ("reason", "Incident INC-42 at the bank")],
        )
        .await;
    assert_eq!(pinned.status, 200, "{}", pinned.body);
    assert_eq!(status_of(platform, api), "suspended");
    pinned.assert_contains("Incident INC-42 at the bank");
    let audit: String = db(platform)
        .query_row(
            "SELECT detail FROM audit_log WHERE action = 'sandbox.api.override' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(audit.contains("Incident INC-42"), "{audit}");
    assert_eq!(
        count(
            platform,
            "SELECT count(*) FROM audit_log WHERE action = 'sandbox.api.override' AND actor = 'user:aliya.ops'"
        ),
        1
    );
    // The checks pass, but the pin holds.
    let runs = count(platform, &format!("SELECT count(*) FROM api_runs WHERE api_id = {api}"));
    common::eventually("six more scheduled runs", Duration::from_secs(30), async || {
        let now = count(platform, &format!("SELECT count(*) FROM api_runs WHERE api_id = {api}"));
        if now >= runs + 6 { Ok(()) } else { Err(now - runs) }
    })
    .await;
    assert_eq!(status_of(platform, api), "suspended", "the operator's pin gave way to the checks");
    let passes: i64 = db(platform)
        .query_row("SELECT consecutive_passes FROM api_health WHERE api_id = ?1", [api], |r| r.get(0))
        .unwrap();
    assert!(passes >= 2, "{passes}");
    // Back to automatic: the passing checks relist it.
    let back = staff
        .post(&format!("/console/apis/{api}/override"), &csrf, &[("mode", "automatic"), ("reason", "Incident closed")])
        .await;
    assert_eq!(back.status, 200);
    wait_status(platform, api, "published", 30).await;

    // The regulator reads but may not override; a participant may not either; a visitor is sent to sign in.
    let password = operator_user(platform, "regulator.nb", Role::Regulator).await;
    let mut regulator = Browser::new(platform);
    regulator.sign_in("regulator.nb", &password).await;
    let read = regulator.get(&format!("/console/apis/{api}/health")).await;
    assert_eq!(read.status, 200);
    assert!(!read.body.contains("/override"), "the regulator is shown no override form");
    let csrf = read.csrf();
    let tried = regulator
        .post(
            &format!("/console/apis/{api}/override"),
            &csrf,
            &[("mode", "delisted"), ("reason", "Test of the rights")],
        )
        .await;
    assert_eq!(tried.status, 403);
    let provider_csrf = site.admin.get(&format!("/org/apis/{api}")).await.csrf();
    let tried = site
        .admin
        .post(
            &format!("/console/apis/{api}/override"),
            &provider_csrf,
            &[("mode", "listed"), ("reason", "Let me back in")],
        )
        .await;
    assert_eq!(tried.status, 403);
    assert_eq!(status_of(platform, api), "published");
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'sandbox.api.override'"), 2);
    let stranger = Browser::new(platform);
    assert!(stranger.get("/console/apis/health").await.url.ends_with("/login"));
    assert!(stranger.get(&format!("/org/apis/{api}/health")).await.url.ends_with("/login"));

    revived.shutdown().await;
    w.s.platform.shutdown().await;
}
