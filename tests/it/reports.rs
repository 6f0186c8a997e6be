//! Usage reports over real traffic: exchanges made through the gateway over real TLS against reference banks, then
//! every report query checked against counts computed independently from the raw `exchanges` rows; and the
//! retention job, driven by moving the platform's clock.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common;
use crate::common::exchange::{BankPlan, FULL, consent, customer, get, get_json, tokens_for, world};
use crate::common::participant::{count, counts_by_key, db};
use kopir::apps::AppMode;
use kopir::reports::histogram::bucket;
use kopir::reports::usage::{self, Granularity, Group, GroupBy, UsageFilter, UsageRow};

const BANKS: [BankPlan; 2] = [BankPlan::new("Altyn Bank", "99034000011"), BankPlan::new("Dala Bank", "99034000012")];

fn by_group(rows: &[UsageRow], name: impl Fn(&Group) -> String) -> BTreeMap<String, i64> {
    rows.iter().map(|r| (name(r.group.as_ref().unwrap()), r.requests as i64)).collect()
}

async fn query<T: Send + 'static>(
    platform: &common::Platform,
    f: impl FnOnce(&rusqlite::Connection, &jiff::tz::TimeZone) -> Result<T, kopir::reports::ReportsError> + Send + 'static,
) -> T {
    let zone = platform.config.time_zone.zone().clone();
    platform.running().state.db.read(move |conn| f(conn, &zone)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_equal_counts_from_the_raw_exchanges_and_old_data_is_pruned_on_the_clock() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let platform = &s.platform;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000021").await;

    // Served calls: fan-outs (one exchange per bank), one account, balances, transactions.
    let mut id = String::new();
    for _ in 0..3 {
        let accounts = get_json(s, &token, "/accounts").await;
        id = accounts["Data"]["Account"][0]["AccountId"].as_str().unwrap().to_string();
    }
    get_json(s, &token, &format!("/accounts/{id}")).await;
    get_json(s, &token, &format!("/accounts/{id}/balances")).await;
    get_json(s, &token, &format!("/accounts/{id}/transactions")).await;
    // Refusals before any bank is called: an unknown account, a malformed date.
    for _ in 0..2 {
        common::expect_ob_error(
            get(s, &s.identity, &token, "/accounts/ka1-nope/balances").await,
            404,
            "UK.OBIE.Resource.NotFound",
        )
        .await;
    }
    common::expect_ob_error(
        get(s, &s.identity, &token, &format!("/accounts/{id}/transactions?fromBookingDateTime=yesterday")).await,
        400,
        "UK.OBIE.Field.InvalidDate",
    )
    .await;
    let expected = 3 * 2 + 3 + 3;
    common::eventually("every exchange metered", Duration::from_secs(10), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n >= expected { Ok(n) } else { Err(n) }
    })
    .await;

    // Independent figures, straight from the raw rows.
    let total = count(platform, "SELECT count(*) FROM exchanges WHERE environment = 'production'");
    let by_endpoint = counts_by_key(platform, "SELECT endpoint, count(*) FROM exchanges GROUP BY 1");
    let by_status = counts_by_key(platform, "SELECT (status / 100) || 'xx', count(*) FROM exchanges GROUP BY 1");
    let by_code = counts_by_key(platform, "SELECT coalesce(error_code, '-'), count(*) FROM exchanges GROUP BY 1");
    let by_provider = counts_by_key(
        platform,
        "SELECT CAST(coalesce(provider_organisation_id, 0) AS TEXT), count(*) FROM exchanges GROUP BY 1",
    );
    assert_eq!(by_code.get("UK.OBIE.Resource.NotFound"), Some(&2), "{by_code:?}");
    assert_eq!(by_code.get("UK.OBIE.Field.InvalidDate"), Some(&1), "{by_code:?}");
    let latency_sum = count(platform, "SELECT sum(latency_ms) FROM exchanges");
    let latencies: Vec<i64> = {
        let conn = db(platform);
        let mut statement = conn.prepare("SELECT latency_ms FROM exchanges ORDER BY latency_ms").unwrap();
        statement.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let nearest_rank = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1] as u64;

    // An interval of whole hours (the hourly rows), of whole local days (the daily rows) and a local month (the
    // monthly rows) agree with them.
    let now = platform.clock().now();
    let zone = platform.config.time_zone.zone().clone();
    let today = kopir::store::calendar::local_date(&zone, now.unix_timestamp()).unwrap();
    let midnight = |date: jiff::civil::Date| {
        time::OffsetDateTime::from_unix_timestamp(kopir::store::calendar::day_start(&zone, date).unwrap()).unwrap()
    };
    let hours = UsageFilter::production(now - time::Duration::hours(2), now + time::Duration::hours(1));
    let days = UsageFilter::production(
        midnight(today.yesterday().unwrap()),
        midnight(today.tomorrow().unwrap().tomorrow().unwrap()),
    );
    let this_month = today.first_of_month();
    let next_month = this_month.last_of_month().tomorrow().unwrap();
    let months = UsageFilter::production(midnight(this_month), midnight(next_month));
    for filter in [hours.clone(), days.clone(), months] {
        let f = filter.clone();
        let totals = query(platform, move |c, z| usage::totals(c, z, &f, None)).await;
        assert_eq!(totals.len(), 1);
        let t = &totals[0];
        assert_eq!(t.requests as i64, total);
        assert_eq!(t.latency_sum_ms as i64, latency_sum);
        assert_eq!(t.client_errors as i64, *by_status.get("4xx").unwrap_or(&0));
        assert_eq!(t.latency.max_ms, *latencies.last().unwrap() as u64);
        for p in [0.5, 0.95, 0.99] {
            let read = t.latency.percentile(p).unwrap();
            assert_eq!(bucket(read.ceil() as u64), bucket(nearest_rank(p)), "p{p}: {read} vs {}", nearest_rank(p));
        }
        for (group, raw) in [
            (GroupBy::Endpoint, &by_endpoint),
            (GroupBy::StatusClass, &by_status),
            (GroupBy::ErrorCode, &by_code),
            (GroupBy::Provider, &by_provider),
        ] {
            let f = filter.clone();
            let rows = query(platform, move |c, z| usage::totals(c, z, &f, Some(group))).await;
            let read = by_group(&rows, |g| match g {
                Group::Endpoint(e) | Group::StatusClass(e) => e.clone(),
                Group::ErrorCode(code) => code.clone().unwrap_or_else(|| "-".into()),
                Group::Provider(p) => p.unwrap_or(0).to_string(),
                other => panic!("{other:?}"),
            });
            assert_eq!(&read, raw, "{group:?}");
        }
        // One provider's view: only its bank's calls.
        let provider: i64 = by_provider.keys().find(|k| *k != "0").unwrap().parse().unwrap();
        let f = UsageFilter { provider: Some(provider), ..filter.clone() };
        let rows = query(platform, move |c, z| usage::series(c, z, &f, Granularity::Day, None)).await;
        assert_eq!(rows.iter().map(|r| r.requests as i64).sum::<i64>(), by_provider[&provider.to_string()]);
        // The sandbox's traffic is kept apart: there was none.
        let f = UsageFilter { environment: AppMode::Sandbox, ..filter.clone() };
        assert!(query(platform, move |c, z| usage::totals(c, z, &f, None)).await.is_empty());
    }
    // Hour by hour, the series adds up to the same total.
    let f = hours.clone();
    let series = query(platform, move |c, z| usage::series(c, z, &f, Granularity::Hour, None)).await;
    assert!(series.iter().all(|r| r.period.as_deref().is_some_and(|p| p.ends_with(":00:00Z"))), "{series:?}");
    assert_eq!(series.iter().map(|r| r.requests as i64).sum::<i64>(), total);

    // SLA breaches: with an SLA of 1 ms, exactly the APIs whose p95 is above it.
    db(platform).execute("UPDATE apis SET sla_response_ms = 1", []).unwrap();
    let f = days.clone();
    let per_api = query(platform, move |c, z| usage::totals(c, z, &f, Some(GroupBy::Api))).await;
    let f = days.clone();
    let breaches = query(platform, move |c, z| usage::sla_breaches(c, z, &f, Granularity::Day)).await;
    let slow: Vec<i64> = per_api
        .iter()
        .filter_map(|r| match r.group {
            Some(Group::Api(Some(api))) if r.p95_ms().unwrap() > 1.0 => Some(api),
            _ => None,
        })
        .collect();
    assert_eq!(breaches.iter().map(|b| b.api_id).collect::<Vec<_>>(), slow);
    assert!(breaches.iter().all(|b| b.sla_response_ms == 1 && b.period == today.to_string()));

    // Consents: the authorisation counts once for each bank the consent names.
    let f = days.clone();
    let changes =
        query(platform, move |c, z| kopir::reports::consents::changes(c, z, &f, Some(Granularity::Day))).await;
    let authorised = changes.iter().find(|c| c.status == "Authorised").unwrap();
    assert_eq!(
        authorised.changes as i64,
        count(
            platform,
            "SELECT count(*) FROM consent_history h JOIN consent_providers p ON p.consent_id = h.consent_id WHERE h.status = 'Authorised'"
        )
    );
    let now = platform.clock().now().unix_timestamp() + 1;
    let standing =
        query(platform, move |c, _| kopir::reports::consents::standing_at(c, AppMode::Production, now)).await;
    assert_eq!(standing.live_customers, 1);
    let authorised = standing.by_status.iter().find(|(s, _)| *s == kopir::consent::Status::Authorised).unwrap().1;
    assert_eq!(authorised as i64, count(platform, "SELECT count(*) FROM consents WHERE status = 'Authorised'"));

    // Retention: after 91 days the raw rows are gone, the rollups stay; after 400 more the hourly rows go too.
    let hourly_rows = count(platform, "SELECT count(*) FROM usage_hourly");
    let daily_rows = count(platform, "SELECT count(*) FROM usage_daily");
    assert!(hourly_rows > 0 && daily_rows > 0);
    platform.clock().advance(time::Duration::days(91));
    // (The job may have been mid-pass when the clock moved: each look moves it past the job's next hourly run.)
    common::eventually("raw exchanges pruned", Duration::from_secs(10), async || {
        platform.clock().advance(time::Duration::hours(2));
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n == 0 { Ok(n) } else { Err(n) }
    })
    .await;
    assert_eq!(count(platform, "SELECT count(*) FROM usage_hourly"), hourly_rows);
    platform.clock().advance(time::Duration::days(400));
    common::eventually("hourly rollups pruned", Duration::from_secs(10), async || {
        platform.clock().advance(time::Duration::hours(2));
        let n = count(platform, "SELECT count(*) FROM usage_hourly");
        if n == 0 { Ok(n) } else { Err(n) }
    })
    .await;
    assert_eq!(count(platform, "SELECT count(*) FROM usage_daily"), daily_rows);
}
