//! Availability by the stated rule, over real TLS: a reference bank down for ten minutes of the platform's clock
//! reads 99.31 % for that day (and its provider hears of it by signed webhook), errors of the caller's own making do
//! not count, a declared maintenance window is shown apart and not counted, the platform's own 5xx opens a platform
//! outage that the console shows, and only a provider's administrators declare and cancel maintenance.

use crate::common;

use std::time::Duration;

use crate::common::Platform;
use crate::common::browser::{Browser, bin, operator_user, participant_user};
use crate::common::exchange::{BankPlan, FULL, World, consent, customer, get, tokens_for, world_with};
use crate::common::participant::{accredit_as, admin_of_new_organisation, count, csrf_of, db};
use crate::webhooks::{Receiver, set_url, verify};
use kopir::availability::{Subject, daily, local_day};
use kopir::catalog::Environment;
use kopir::refbank::{BankConfig, Fault};
use serde_json::Value;

/// No scheduled check falls due while a test moves the clock by minutes (the day-long interval's random first run
/// aside), so that the outages come from the test's own calls.
fn quiet_checks(config: &mut kopir::config::Config) {
    config.sandbox.check_interval_secs = 86_400;
    config.sandbox.check_jitter_secs = 0;
    config.webhooks.retry_initial_secs = 1;
    config.webhooks.retry_max_secs = 2;
    // Access tokens outlive the minutes the clock is moved.
    config.oauth.access_token_secs = 3600;
}

/// Moves the platform's clock into the next local day when less than `room` is left of this one, so that what the
/// test does falls within one day.
fn keep_within_a_day(platform: &Platform, room: time::Duration) {
    let now = platform.clock().now();
    let left = local_day(platform.config.time_zone.zone(), now).end - now;
    if left < room {
        platform.clock().advance(left + time::Duration::minutes(1));
    }
}

/// A provider's administrator signed in now (after the test moved the clock past the sessions of the world's).
async fn administrator(platform: &Platform, bin: &str, username: &str) -> Browser {
    let password = participant_user(platform, bin, username, kopir::identity::Role::ParticipantAdmin).await;
    let mut admin = Browser::new(platform);
    admin.sign_in(username, &password).await;
    admin
}

fn organisation_id(platform: &Platform, bin: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [bin], |r| r.get(0)).unwrap()
}

/// The day of `now` for `subject`, as the providers' and the console's pages compute it.
fn today(platform: &Platform, subject: Subject) -> kopir::availability::Day {
    let now = platform.clock().now();
    let date = local_day(platform.config.time_zone.zone(), now).date;
    let days =
        daily(&db(platform), platform.config.time_zone.zone(), subject, Environment::Production, date, date, now)
            .unwrap();
    days.into_iter().next().unwrap()
}

/// The open production outage of an API: (id, started_at).
fn open_outage(platform: &Platform, api: i64) -> Option<(i64, String)> {
    db(platform)
        .query_row(
            "SELECT id, started_at FROM outages WHERE api_id = ?1 AND environment = 'production' AND ended_at IS NULL",
            [api],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
}

/// Waits for a webhook of `event` to reach the receiver and returns its verified claims.
async fn delivered(platform: &Platform, receiver: &Receiver, event: &str, audience: &str) -> Value {
    let seen = common::eventually(&format!("a delivered {event}"), Duration::from_secs(20), async || {
        let seen = receiver.seen();
        let mut found = None;
        for s in &seen {
            let claims = verify(platform, &s.body, audience).await;
            if claims["event"] == event {
                found = Some(claims);
            }
        }
        found.ok_or(seen.len())
    })
    .await;
    assert_eq!(seen["aud"], audience);
    seen
}

/// Replaces the bank's failing production instance by a healthy one at the same address (the bank "comes back").
async fn bring_back(w: &mut World, index: usize) {
    let failing = w.banks[index].production.take().expect("a separate production instance");
    let addr = failing.addr;
    failing.shutdown().await;
    let mut config = BankConfig::new(
        w.banks[index].name.clone(),
        w.banks[index].bin.clone(),
        w.dir.path().join(format!("bank{index}-production")),
        w.s.platform.url(""),
        w.s.platform.root_pem(),
    );
    config.listen = addr;
    config.seed = index as u64 + 1;
    w.banks[index].production = Some(kopir::refbank::start(config).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bank_down_for_ten_minutes_reads_99_31_for_that_day_and_its_provider_hears_of_it() {
    let plans = [BankPlan { name: "Altyn Bank", digits: "99034000001", production_fault: Some(Fault::Error) }];
    let mut w = world_with(&plans, quiet_checks).await;
    let platform = &w.s.platform;
    keep_within_a_day(platform, time::Duration::hours(1));
    let (api, bin) = (w.banks[0].api_id, w.banks[0].bin.clone());
    let bank = organisation_id(platform, &bin);
    let receiver = Receiver::start(platform, 0).await;
    set_url(platform, bank, &receiver.url()).await;
    let (_, token, _) = tokens_for(&w.s, consent(&[&bin], FULL, None, None), customer(), "+77010000001").await;

    // The bank answers 500: the platform relays 502, and the API's outage opens at that call.
    let failed = get(&w.s, &w.s.identity, &token, "/accounts").await;
    assert_eq!(failed.status(), 502);
    let (outage, started_at) = common::eventually("the outage to open", Duration::from_secs(10), async || {
        open_outage(platform, api).ok_or(())
    })
    .await;
    let down = delivered(platform, &receiver, "api.down", &bin).await;
    assert_eq!(down["data"]["ApiId"], api);
    assert_eq!(down["data"]["OutageId"], outage);
    assert_eq!(down["data"]["Cause"], "bank_failure");
    assert_eq!(down["data"]["Status"], 502);
    assert_eq!(down["data"]["EndedAt"], Value::Null);
    // The relayed 502 is the bank's, not the platform's.
    assert_eq!(count(platform, "SELECT count(*) FROM outages WHERE subject = 'platform'"), 0);

    // Ten minutes of the platform's clock later the bank is back; the first success closes the outage.
    bring_back(&mut w, 0).await;
    let platform = &w.s.platform;
    let back_at = kopir::clock::parse(&started_at).unwrap() + time::Duration::minutes(10);
    platform.clock().advance(back_at - platform.clock().now());
    let ok = get(&w.s, &w.s.identity, &token, "/accounts").await;
    assert_eq!(ok.status(), 200);
    common::eventually("the outage to close", Duration::from_secs(10), async || match open_outage(platform, api) {
        None => Ok(()),
        Some(open) => Err(open),
    })
    .await;
    let (ended_at, ended_by): (String, String) = db(platform)
        .query_row("SELECT ended_at, ended_by FROM outages WHERE id = ?1", [outage], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(ended_by, "traffic");
    let lasted = kopir::clock::parse(&ended_at).unwrap() - kopir::clock::parse(&started_at).unwrap();
    assert!((600..=603).contains(&lasted.whole_seconds()), "{lasted}");

    let day = today(platform, Subject::Api(api));
    assert_eq!(day.percent(), "99.31", "{day:?}");
    assert_eq!(day.planned_seconds, 0);
    assert_eq!(day.outages.len(), 1);
    assert_eq!(today(platform, Subject::Bank(bank)).percent(), "99.31", "the bank is its one API");
    let up = delivered(platform, &receiver, "api.up", &bin).await;
    assert_eq!(up["data"]["OutageId"], outage);
    assert_eq!(up["data"]["EndedAt"], ended_at.as_str());

    // Errors of the caller's own making: an unknown parameter, an account id of nothing. Metered, not counted.
    let metered = count(platform, "SELECT count(*) FROM exchanges");
    let bad = get(&w.s, &w.s.identity, &token, "/accounts/ka1-nothing/transactions?colour=blue").await;
    assert_eq!(bad.status(), 400);
    let unknown = get(&w.s, &w.s.identity, &token, "/accounts/ka1-nothing").await;
    assert_eq!(unknown.status(), 404);
    common::eventually("the refusals to be metered", Duration::from_secs(10), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n >= metered + 2 { Ok(()) } else { Err(n) }
    })
    .await;
    assert_eq!(count(platform, "SELECT count(*) FROM outages"), 1);
    assert_eq!(today(platform, Subject::Api(api)).percent(), "99.31");

    // The provider's administrator reads the same on the personal account.
    let admin = administrator(&w.s.platform, &bin, "altyn-admin").await;
    let page = admin.get("/org/availability").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("99.31 %");
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_maintenance_window_is_shown_apart_and_not_counted() {
    let plans = [BankPlan { name: "Dala Bank", digits: "99034000002", production_fault: Some(Fault::Error) }];
    let w = world_with(&plans, quiet_checks).await;
    let platform = &w.s.platform;
    keep_within_a_day(platform, time::Duration::minutes(30));
    let (api, bin) = (w.banks[0].api_id, w.banks[0].bin.clone());
    let admin = &administrator(platform, &bin, "dala-admin").await;

    // Two hours of maintenance from now, declared on the personal account in the operator's local time.
    let now = platform.clock().now();
    let zone = platform.config.time_zone.zone();
    let field = |t: time::OffsetDateTime| {
        let t = jiff::Timestamp::from_second(t.unix_timestamp()).unwrap();
        zone.to_datetime(t).strftime("%Y-%m-%dT%H:%M").to_string()
    };
    let declared = admin
        .submit(
            "/org/availability",
            "/org/availability/maintenance",
            &[
                ("api", &api.to_string()),
                ("starts", &field(now)),
                ("ends", &field(now + time::Duration::hours(2))),
                ("reason", "Core banking upgrade"),
            ],
        )
        .await;
    assert_eq!(declared.status, 200, "{}", declared.body);
    assert!(declared.url.ends_with("/org/availability"), "{}", declared.url);
    declared.assert_contains("Core banking upgrade").assert_contains("in progress");
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'availability.maintenance.declared'"), 1);

    // The bank fails during its maintenance: the outage is recorded, but not counted.
    let (_, token, _) = tokens_for(&w.s, consent(&[&bin], FULL, None, None), customer(), "+77010000002").await;
    assert_eq!(get(&w.s, &w.s.identity, &token, "/accounts").await.status(), 502);
    common::eventually("the outage to open", Duration::from_secs(10), async || open_outage(platform, api).ok_or(()))
        .await;
    platform.clock().advance(time::Duration::minutes(10));
    let day = today(platform, Subject::Api(api));
    assert_eq!(day.unplanned_seconds, 0, "{day:?}");
    assert_eq!(day.percent(), "100.00");
    assert_eq!(day.outages.len(), 1, "shown, though not counted");
    // Two hours from its declaration (or to the day's end), less the seconds its minutes were rounded down by.
    let day_end = local_day(zone, now).end;
    let expected = ((now + time::Duration::hours(2)).min(day_end) - now).whole_seconds();
    assert!((expected - 120..=expected + 2).contains(&day.planned_seconds), "{expected}: {day:?}");

    // The operator sees the open outage and the window, read-only.
    let password = operator_user(platform, "ops-availability", kopir::identity::Role::OperatorStaff).await;
    let mut operator = Browser::new(platform);
    operator.sign_in("ops-availability", &password).await;
    let console = operator.get("/console/availability").await;
    assert_eq!(console.status, 200, "{}", console.body);
    console.assert_contains("id=\"open-outages\"").assert_contains("Dala Bank").assert_contains("Core banking upgrade");
    assert!(!console.body.contains("/cancel\""), "the console cannot cancel");

    // Cancelled, the window stops counting: the outage's minutes from now on are unplanned.
    let window: i64 = db(platform).query_row("SELECT id FROM maintenance_windows", [], |r| r.get(0)).unwrap();
    let page = admin.get("/org/availability").await;
    let cancelled = admin.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf_of(&page), &[]).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    cancelled.assert_contains("cancelled");
    assert_eq!(
        count(platform, "SELECT count(*) FROM audit_log WHERE action = 'availability.maintenance.cancelled'"),
        1
    );
    platform.clock().advance(time::Duration::minutes(5));
    let day = today(platform, Subject::Api(api));
    assert!((300..=305).contains(&day.unplanned_seconds), "{day:?}");
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_provider_s_administrators_declare_and_cancel_its_maintenance() {
    let plans = [BankPlan::new("Altyn Bank", "99034000001"), BankPlan::new("Kapshagai Bank", "99034000003")];
    let w = world_with(&plans, quiet_checks).await;
    let platform = &w.s.platform;
    let (altyn, kapshagai) = (&w.banks[0], &w.banks[1]);
    let now = platform.clock().now() + time::Duration::days(1);
    let tomorrow = local_day(platform.config.time_zone.zone(), now).date;
    let (starts, ends) = (format!("{tomorrow}T10:00"), format!("{tomorrow}T11:00"));
    let fields = [("api", "all"), ("starts", starts.as_str()), ("ends", ends.as_str()), ("reason", "Network work")];
    let ok = altyn.admin.submit("/org/availability", "/org/availability/maintenance", &fields).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let window: i64 = db(platform).query_row("SELECT id FROM maintenance_windows", [], |r| r.get(0)).unwrap();
    let windows = || count(platform, "SELECT count(*) FROM maintenance_windows");
    let cancelled = || count(platform, "SELECT count(*) FROM maintenance_windows WHERE cancelled_at IS NOT NULL");

    // Another provider's administrator: sees none of it and cannot cancel it.
    let other = kapshagai.admin.get("/org/availability").await;
    assert_eq!(other.status, 200);
    assert!(!other.body.contains("Network work"));
    let refused =
        kapshagai.admin.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf_of(&other), &[]).await;
    assert_eq!(refused.status, 404);
    // So has an API user's administrator whose organisation is accredited as a provider too.
    let page = w.s.user_admin.get("/org/availability").await;
    assert_eq!(page.status, 200);
    let refused =
        w.s.user_admin.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf_of(&page), &[]).await;
    assert_eq!(refused.status, 404);
    assert_eq!(w.s.user_admin.get("/console/availability").await.status, 403, "participants have no console");
    // An administrator of an API user that publishes nothing.
    let user_bin = bin("99034100002");
    let user = admin_of_new_organisation(platform, &user_bin, "Fintech Two", "fintechtwo").await;
    accredit_as(platform, &user_bin, false, true).await;
    assert_eq!(user.get("/org/availability").await.status, 403);
    let csrf = csrf_of(&user.get("/org").await);
    assert_eq!(user.post("/org/availability/maintenance", &csrf, &fields).await.status, 403);
    assert_eq!(user.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf, &[]).await.status, 403);
    // The provider's own developer and analyst.
    for (name, role) in [
        ("altyn-dev", kopir::identity::Role::ParticipantDeveloper),
        ("altyn-analyst", kopir::identity::Role::ParticipantAnalyst),
    ] {
        let password = participant_user(platform, &altyn.bin, name, role).await;
        let mut member = Browser::new(platform);
        member.sign_in(name, &password).await;
        assert_eq!(member.get("/org/availability").await.status, 403, "{name}");
        let csrf = csrf_of(&member.get("/org").await);
        assert_eq!(member.post("/org/availability/maintenance", &csrf, &fields).await.status, 403, "{name}");
        assert_eq!(
            member.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf, &[]).await.status,
            403,
            "{name}"
        );
    }
    // Operator staff read the console but have no personal account of a provider.
    let password = operator_user(platform, "ops-reader", kopir::identity::Role::OperatorStaff).await;
    let mut operator = Browser::new(platform);
    operator.sign_in("ops-reader", &password).await;
    assert_eq!(operator.get("/console/availability").await.status, 200);
    assert_eq!(operator.get("/org/availability").await.status, 403);
    // Anonymous callers are sent to sign in, and change nothing.
    let anonymous = Browser::new(platform);
    assert!(anonymous.get("/org/availability").await.url.ends_with("/login"));
    assert!(anonymous.get("/console/availability").await.url.ends_with("/login"));
    let login = anonymous.get("/login").await;
    let posted = anonymous.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf_of(&login), &[]).await;
    assert!(posted.url.ends_with("/login"), "{}", posted.url);
    assert_eq!((windows(), cancelled()), (1, 0));

    // Refusals of the rules: a window ending before it starts, one longer than a day, an API of another bank.
    let fields = [("api", "all"), ("starts", ends.as_str()), ("ends", starts.as_str()), ("reason", "Backwards")];
    let backwards = altyn.admin.submit("/org/availability", "/org/availability/maintenance", &fields).await;
    assert_eq!(backwards.status, 422);
    backwards.assert_contains("must end after it starts");
    let later = format!("{}T12:00", local_day(platform.config.time_zone.zone(), now + time::Duration::days(1)).date);
    let fields = [("api", "all"), ("starts", starts.as_str()), ("ends", later.as_str()), ("reason", "Too long")];
    assert_eq!(altyn.admin.submit("/org/availability", "/org/availability/maintenance", &fields).await.status, 422);
    let theirs = kapshagai.api_id.to_string();
    let fields =
        [("api", theirs.as_str()), ("starts", starts.as_str()), ("ends", ends.as_str()), ("reason", "Not ours")];
    assert_eq!(altyn.admin.submit("/org/availability", "/org/availability/maintenance", &fields).await.status, 422);
    assert_eq!(windows(), 1);
    assert_eq!(count(platform, "SELECT count(*) FROM audit_log WHERE action = 'availability.maintenance.declare'"), 3);

    // Its own administrator cancels it.
    let page = altyn.admin.get("/org/availability").await;
    let done = altyn.admin.post(&format!("/org/availability/maintenance/{window}/cancel"), &csrf_of(&page), &[]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!((windows(), cancelled()), (1, 1));
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_s_own_5xx_opens_a_platform_outage_and_its_next_answer_closes_it() {
    let platform = Platform::start().await;
    let password = operator_user(&platform, "ops-platform", kopir::identity::Role::OperatorStaff).await;
    let mut operator = Browser::new(&platform);
    operator.sign_in("ops-platform", &password).await;
    let client = platform.client(None);
    let readyz = async || client.get(platform.url("/readyz")).send().await.unwrap().status().as_u16();
    assert_eq!(readyz().await, 200);
    // The database loses a table the readiness probe reads: the platform itself answers 503.
    db(&platform).execute_batch("ALTER TABLE certificates RENAME TO certificates_away").unwrap();
    assert_eq!(readyz().await, 503);
    let open = async || {
        db(&platform)
            .query_row(
                "SELECT started_at, first_status, cause, detail FROM outages
                 WHERE subject = 'platform' AND ended_at IS NULL",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)),
            )
            .ok()
    };
    let (started_at, status, cause, route) =
        common::eventually("a platform outage", Duration::from_secs(10), async || open().await.ok_or(())).await;
    assert_eq!((status, cause.as_str(), route.as_str()), (503, "platform_error", "/readyz"));
    assert_eq!(readyz().await, 503, "still down");
    // The console shows it open; that page is itself a successful answer of the platform, which ends the outage.
    let console = operator.get("/console/availability").await;
    assert_eq!(console.status, 200, "{}", console.body);
    console.assert_contains("id=\"open-outages\"").assert_contains("the platform answered with an error (503)");
    common::eventually("the platform outage to close", Duration::from_secs(10), async || match open().await {
        None => Ok(()),
        Some(still) => Err(still),
    })
    .await;
    db(&platform).execute_batch("ALTER TABLE certificates_away RENAME TO certificates").unwrap();
    assert_eq!(readyz().await, 200);
    platform.clock().advance(time::Duration::minutes(1));
    let day = today(&platform, Subject::Platform);
    assert_eq!(day.outages.len(), 1, "{day:?}");
    assert_eq!(day.outages[0].started_at, started_at);
    assert!(day.unplanned_seconds < 60, "{day:?}");
    let console = operator.get("/console/availability").await;
    console.assert_contains("id=\"platform-days\"").assert_contains("id=\"open-none\"");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_checks_open_and_close_an_outage_as_traffic_does() {
    let plans = [BankPlan { name: "Kapshagai Bank", digits: "99034000003", production_fault: Some(Fault::Error) }];
    let mut w = world_with(&plans, |c| {
        c.sandbox.check_interval_secs = 60;
        c.sandbox.check_jitter_secs = 0;
    })
    .await;
    keep_within_a_day(&w.s.platform, time::Duration::hours(1));
    let api = w.banks[0].api_id;
    let by_checks = |platform: &Platform| {
        db(platform)
            .query_row(
                "SELECT id, cause, source, ended_by FROM outages WHERE api_id = ?1 AND environment = 'production'",
                [api],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .ok()
    };
    // The next scheduled run finds the production bank failing: the outage opens, from the checks. The scheduler
    // gives an API it first sees a due time within one interval of its clock, and on a busy machine it may first see
    // this one only after a jump; so while no outage is there the clock moves on by a second each look.
    w.s.platform.clock().advance(time::Duration::seconds(61));
    let (outage, cause, source, ended_by) =
        common::eventually("an outage from the checks", Duration::from_secs(60), async || {
            let seen = by_checks(&w.s.platform).ok_or(());
            if seen.is_err() {
                w.s.platform.clock().advance(time::Duration::seconds(1));
            }
            seen
        })
        .await;
    assert_eq!((cause.as_str(), source.as_str(), ended_by), ("check_failed", "checks", None));
    // The bank comes back; the next run passes and closes it.
    bring_back(&mut w, 0).await;
    let platform = &w.s.platform;
    platform.clock().advance(time::Duration::seconds(61));
    let ended_by = common::eventually("the checks to close the outage", Duration::from_secs(60), async || {
        match by_checks(platform) {
            Some((id, _, _, Some(ended_by))) if id == outage => Ok(ended_by),
            seen => Err(seen),
        }
    })
    .await;
    assert_eq!(ended_by, "checks");
    let day = today(platform, Subject::Api(api));
    assert!((55..=180).contains(&day.unplanned_seconds), "{day:?}");
    w.s.platform.shutdown().await;
}
