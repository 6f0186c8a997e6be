//! Participants' reports over real TLS: exchanges made through the gateway against reference banks, then the page's
//! exports and the mTLS API checked against counts computed independently from the raw `exchanges` rows; refusals
//! across organisations and roles.

use std::time::Duration;

use crate::common;
use crate::common::browser::{Browser, operator_user, participant_user};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get_json, tokens_for, world};
use crate::common::participant::{count, db};
use serde_json::Value;

const BANKS: [BankPlan; 2] = [BankPlan::new("Altyn Bank", "99034000031"), BankPlan::new("Dala Bank", "99034000032")];

fn organisation_id(platform: &common::Platform, bin: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [bin], |r| r.get(0)).unwrap()
}

/// A small RFC 4180 reader for the exports: fields, quoted fields with doubled quotes, CRLF records.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

fn requests_of(document: &Value, table: &str) -> i64 {
    document["tables"][table].as_array().unwrap().iter().map(|r| r["requests"].as_i64().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn participants_reports_equal_the_raw_exchanges_and_show_only_their_own_traffic() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let platform = &s.platform;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000031").await;
    for _ in 0..3 {
        get_json(s, &token, "/accounts").await;
    }
    common::eventually("exchanges metered", Duration::from_secs(10), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n >= 6 { Ok(n) } else { Err(n) }
    })
    .await;
    let user_org = organisation_id(platform, &s.user_bin);
    let altyn = organisation_id(platform, &w.banks[0].bin);
    let raw_user = count(
        platform,
        &format!(
            "SELECT count(*) FROM exchanges WHERE environment = 'production' AND user_organisation_id = {user_org}"
        ),
    );
    let raw_altyn = count(
        platform,
        &format!(
            "SELECT count(*) FROM exchanges WHERE environment = 'production' AND provider_organisation_id = {altyn}"
        ),
    );
    assert!(raw_user >= 6 && raw_altyn >= 3 && raw_altyn < raw_user, "{raw_user} {raw_altyn}");

    // The API user's page, its JSON and CSV exports.
    let page = s.user_admin.get("/org/reports?view=user").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg") && page.body.contains("<desc id=\"usage-chart-desc\">"), "{}", page.body);
    assert!(page.body.contains("id=\"table-by_bank\"") && page.body.contains("Altyn Bank"));
    let totals = &page.body[page.body.find("id=\"table-totals\"").unwrap()..];
    assert!(totals.contains(&format!("<td class=\"num\">{raw_user}</td>")), "{totals}");
    // Hours over a long interval: shown by day, and the page says so.
    let long =
        s.user_admin.get("/org/reports?view=user&period=custom&from=2026-01-01&to=2026-03-01&granularity=hour").await;
    assert_eq!(long.status, 200);
    assert!(long.body.contains("id=\"granularity-lowered\""));
    let export = s.user_admin.get("/org/reports?view=user&format=json").await;
    assert_eq!(export.status, 200);
    let document: Value = serde_json::from_str(&export.body).unwrap();
    assert_eq!(document["tables"]["totals"][0]["requests"].as_i64(), Some(raw_user));
    assert_eq!(requests_of(&document, "by_bank"), raw_user);
    assert_eq!(requests_of(&document, "by_endpoint"), raw_user);
    let csv = s.user_admin.get("/org/reports?view=user&format=csv&table=by_status_class").await;
    assert_eq!(csv.status, 200);
    let disposition = csv.headers["content-disposition"].to_str().unwrap().to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"usage-by_status_class_") && disposition.ends_with(".csv\"")
    );
    let records = parse_csv(&csv.body);
    assert_eq!(records[0][0..2], ["status_class".to_string(), "requests".to_string()]);
    let raw_2xx = count(
        platform,
        &format!("SELECT count(*) FROM exchanges WHERE user_organisation_id = {user_org} AND status / 100 = 2"),
    );
    let read_2xx: i64 = records.iter().find(|r| r[0] == "2xx").map(|r| r[1].parse().unwrap()).unwrap_or(0);
    assert_eq!(read_2xx, raw_2xx);

    // The bank's administrator sees its own share only, per API user.
    let bank_admin = &w.banks[0].admin;
    let export = bank_admin.get("/org/reports?format=json").await;
    assert_eq!(export.status, 200, "{}", export.body);
    let document: Value = serde_json::from_str(&export.body).unwrap();
    assert_eq!(document["view"], "provider");
    assert_eq!(document["tables"]["totals"][0]["requests"].as_i64(), Some(raw_altyn));
    assert_eq!(requests_of(&document, "by_user"), raw_altyn);
    assert!(document["tables"]["availability"].as_array().is_some_and(|a| !a.is_empty()));
    // Naming the other bank's API is refused; a bank has no API user's report.
    let other_api = w.banks[1].api_id;
    assert_eq!(bank_admin.get(&format!("/org/reports?api={other_api}&format=json")).await.status, 404);
    assert_eq!(bank_admin.get(&format!("/org/reports?api={}&format=json", w.banks[0].api_id)).await.status, 200);
    // Nor the API user's application, in the bank's own API user's report.
    let foreign_app = format!("/org/reports?view=user&application={}&format=json", s.app_id);
    assert_eq!(bank_admin.get(&foreign_app).await.status, 404);
    assert_eq!(bank_admin.get(&format!("/org/reports?view=provider&application={}", s.app_id)).await.status, 400);

    // An analyst of the bank reads it; operator staff use the dashboard; anonymous callers sign in.
    let password =
        participant_user(platform, &w.banks[0].bin, "altyn-analyst", kopir::identity::Role::ParticipantAnalyst).await;
    let mut analyst = Browser::new(platform);
    analyst.sign_in("altyn-analyst", &password).await;
    assert_eq!(analyst.get("/org/reports").await.status, 200);
    let password = operator_user(platform, "ops-reports", kopir::identity::Role::OperatorStaff).await;
    let mut operator = Browser::new(platform);
    operator.sign_in("ops-reports", &password).await;
    assert_eq!(operator.get("/org/reports").await.status, 403);
    let anonymous = Browser::new(platform);
    assert!(anonymous.get("/org/reports?format=json").await.url.ends_with("/login"));

    // The API over mTLS: the same figures, bad input in the standard error shape, no certificate refused.
    let api = |query: &str| platform.url(&format!("/participant/v1/reports/usage{query}"));
    let answer = platform.client(Some(&s.identity)).get(api("?view=user&group_by=provider")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let document: Value = answer.json().await.unwrap();
    assert_eq!(document["tables"]["totals"][0]["requests"].as_i64(), Some(raw_user));
    let grouped: i64 = document["rows"].as_array().unwrap().iter().map(|r| r["requests"].as_i64().unwrap()).sum();
    assert_eq!(grouped, raw_user);
    for query in [
        "?group_by=nope",
        "?view=user&group_by=user",
        "?from=2026-01-10&to=2026-01-01",
        "?from=2026-01-01&to=2026-03-01&granularity=hour",
        "?view=user&api=1",
        "?period=fortnight",
    ] {
        let answer = platform.client(Some(&s.identity)).get(api(query)).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{query}");
        let error: Value = answer.json().await.unwrap();
        assert!(error["Errors"][0]["ErrorCode"].as_str().is_some_and(|c| c.starts_with("UK.OBIE.Field")), "{error}");
    }
    let anonymous = platform.client(None).get(api("")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
