//! The operator's and regulator's dashboard over real TLS: exchanges through the gateway against reference banks,
//! then every figure of the page and its exports checked against counts computed independently from the raw
//! `exchanges` and registry rows; the comparison with the previous month after the clock moves on; who may read it;
//! and that the regulator can change nothing through any state-changing console route.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common;
use crate::common::browser::{Browser, operator_user};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get, get_json, tokens_for, world};
use crate::common::participant::{accredit, admin_of_new_organisation, count, counts_by_key, db};
use crate::reports_participant::parse_csv;
use kopir::identity::Role;
use kopir::reports::dashboard::Period;
use serde_json::Value;

const BANKS: [BankPlan; 2] = [BankPlan::new("Altyn Bank", "99034000051"), BankPlan::new("Dala Bank", "99034000052")];

/// The current local month of the platform's clock, and its bounds `[start, end)` in unix seconds.
fn this_month(platform: &common::Platform) -> (Period, i64, i64) {
    let zone = platform.config.time_zone.zone().clone();
    let today = kopir::store::calendar::local_date(&zone, platform.clock().now().unix_timestamp()).unwrap();
    let period = Period::month(today.year(), today.month()).unwrap();
    let (start, end) = period.bounds(&zone).unwrap();
    (period, start, end)
}

/// The `current` of a compared table's row.
fn compared(document: &Value, table: &str, label: &str, column: &str) -> i64 {
    let rows = document["tables"][table].as_array().unwrap_or_else(|| panic!("no table {table}: {document}"));
    let key = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| !["current", "previous", "change", "change_percent"].contains(&k.as_str()))
        .unwrap()
        .clone();
    let row = rows.iter().find(|r| r[&key] == label).unwrap_or_else(|| panic!("no {label} in {table}: {rows:?}"));
    row[column].as_i64().unwrap_or_else(|| panic!("{table}/{label}/{column}: {row}"))
}

async fn dashboard_json(browser: &Browser, query: &str) -> Value {
    let answer = browser.get(&format!("/console/dashboard?{query}format=json")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_figures_equal_the_raw_rows_and_compare_with_the_previous_month() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let platform = &s.platform;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000051").await;
    for _ in 0..3 {
        get_json(s, &token, "/accounts").await;
    }
    for _ in 0..2 {
        common::expect_ob_error(
            get(s, &s.identity, &token, "/accounts/ka1-nope/balances").await,
            404,
            "UK.OBIE.Resource.NotFound",
        )
        .await;
    }
    common::eventually("exchanges metered", Duration::from_secs(10), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n >= 8 { Ok(n) } else { Err(n) }
    })
    .await;

    let (period, start, end) = this_month(platform);
    let within = format!("environment = 'production' AND unixepoch(at) >= {start} AND unixepoch(at) < {end}");
    let total = count(platform, &format!("SELECT count(*) FROM exchanges WHERE {within}"));
    let errors = count(platform, &format!("SELECT count(*) FROM exchanges WHERE {within} AND status >= 400"));
    let server_errors = count(platform, &format!("SELECT count(*) FROM exchanges WHERE {within} AND status >= 500"));
    let per_bank = counts_by_key(
        platform,
        &format!(
            "SELECT g.name, count(*) FROM exchanges e JOIN organisations g ON g.id = e.provider_organisation_id
             WHERE {within} GROUP BY 1"
        ),
    );
    let per_code = counts_by_key(
        platform,
        &format!("SELECT error_code, count(*) FROM exchanges WHERE {within} AND error_code IS NOT NULL GROUP BY 1"),
    );
    assert!(total >= 8 && errors >= 2 && per_bank.len() == 2, "{total} {errors} {per_bank:?}");

    let password = operator_user(platform, "dash.ops", Role::OperatorStaff).await;
    let mut staff = Browser::new(platform);
    staff.sign_in("dash.ops", &password).await;
    let document = dashboard_json(&staff, "").await;
    let figures = &document["figures"];
    assert_eq!(document["from"], period.from.to_string());
    assert_eq!(document["to"], period.to.to_string());
    assert_eq!(document["previous_from"], period.previous().from.to_string());

    // Requests: total, errors, per day, per month, per bank and API, error codes — all equal the raw rows.
    assert_eq!(compared(&document, "summary", "requests", "current"), total);
    assert_eq!(compared(&document, "summary", "requests", "previous"), 0);
    assert_eq!(compared(&document, "summary", "errors", "current"), errors);
    assert_eq!(compared(&document, "summary", "server_errors", "current"), server_errors);
    let days = document["tables"]["requests_per_day"].as_array().unwrap();
    assert_eq!(days.len() as i64, period.days());
    assert_eq!(days.iter().map(|d| d["requests"].as_i64().unwrap()).sum::<i64>(), total);
    let per_day = counts_by_key(
        platform,
        &format!("SELECT {}, count(*) FROM exchanges WHERE {within} GROUP BY 1", local_day_sql(platform)),
    );
    for (day, n) in &per_day {
        let row = days.iter().find(|d| d["date"] == day.as_str()).unwrap();
        assert_eq!(row["requests"].as_i64(), Some(*n), "{day}");
    }
    let months = document["tables"]["requests_per_month"].as_array().unwrap();
    assert_eq!(months.len(), 1);
    assert_eq!(months[0]["requests"].as_i64(), Some(total));
    let banks = document["tables"]["banks"].as_array().unwrap();
    assert_eq!(banks.len(), 2, "{banks:?}");
    for bank in banks {
        let name = bank["bank"].as_str().unwrap();
        assert_eq!(bank["requests"].as_i64(), per_bank.get(name).copied(), "{name}");
        assert_eq!(bank["availability_percent"], "100.00", "no outage: {bank}");
        assert_eq!(bank["unplanned_minutes"], 0);
        assert_eq!(bank["sla_ms"], 500);
        assert!(bank["p95_ms"].as_f64().is_some(), "{bank}");
    }
    assert_eq!(count(platform, "SELECT count(*) FROM outages"), 0);
    let apis = document["tables"]["apis"].as_array().unwrap();
    assert_eq!(apis.iter().map(|a| a["requests"].as_i64().unwrap()).sum::<i64>(), per_bank.values().sum::<i64>());
    let top = document["tables"]["top_errors"].as_array().unwrap();
    let read: BTreeMap<String, i64> =
        top.iter().map(|r| (r["error_code"].as_str().unwrap().to_string(), r["current"].as_i64().unwrap())).collect();
    assert_eq!(read, per_code);

    // Registries: participants, consents, customers, the sandbox's checks, SLA breaches.
    assert_eq!(
        compared(&document, "summary", "participants", "current"),
        count(platform, "SELECT count(*) FROM organisations")
    );
    let roles = counts_by_key(
        platform,
        "SELECT CASE WHEN is_provider AND is_user THEN 'both' WHEN is_provider THEN 'provider' WHEN is_user THEN 'user'
                ELSE 'none' END, count(*) FROM organisations GROUP BY 1",
    );
    for (role, n) in &roles {
        assert_eq!(compared(&document, "participants_by_role", role, "current"), *n, "{role}");
    }
    let statuses = counts_by_key(platform, "SELECT status, count(*) FROM organisations GROUP BY 1");
    for (status, n) in &statuses {
        assert_eq!(compared(&document, "participants_by_status", status, "current"), *n, "{status}");
    }
    let production = "FROM consents c JOIN applications a ON a.id = c.application_id WHERE a.mode = 'production'";
    let consents = counts_by_key(platform, &format!("SELECT c.status, count(*) {production} GROUP BY 1"));
    assert!(consents.get("Authorised").is_some_and(|n| *n >= 1), "{consents:?}");
    for status in ["AwaitingAuthorisation", "Authorised", "Rejected", "Revoked", "Expired"] {
        let n = consents.get(status).copied().unwrap_or(0);
        assert_eq!(compared(&document, "consents_by_status", status, "current"), n, "{status}");
    }
    let now = platform.clock().now_rfc3339();
    let customers = count(
        platform,
        &format!(
            "SELECT count(DISTINCT c.customer_id) {production} AND c.status = 'Authorised' AND c.expires_at > '{now}'"
        ),
    );
    assert_eq!(compared(&document, "summary", "customers_with_live_consents", "current"), customers);
    assert_eq!(
        compared(&document, "summary", "consents_granted", "current"),
        count(platform, &format!("SELECT count(*) {production} AND c.authorised_at IS NOT NULL"))
    );
    assert_eq!(
        compared(&document, "summary", "consents_requested", "current"),
        count(platform, &format!("SELECT count(*) {production}"))
    );
    assert_eq!(
        compared(&document, "summary", "publication_checks", "current"),
        count(platform, "SELECT count(*) FROM api_checks WHERE purpose = 'publication'")
    );
    let runs = count(
        platform,
        &format!("SELECT count(*) FROM api_runs WHERE at_ms >= {start} * 1000 AND at_ms < {end} * 1000"),
    );
    assert_eq!(compared(&document, "summary", "sandbox_runs", "current"), runs);
    assert_eq!(
        compared(&document, "summary", "sla_breaches_started", "current"),
        count(platform, "SELECT count(*) FROM sla_breaches")
    );
    assert_eq!(figures["requests"]["total"]["current"].as_i64(), Some(total));

    // Ten minutes of one bank's outage today (as the gateway's failures would record it): that bank's and its API's
    // availability over the month's days so far is 100 % minus those ten minutes; the other bank's stays 100 %.
    let zone = platform.config.time_zone.zone().clone();
    let now = platform.clock().now();
    let today = kopir::store::calendar::local_date(&zone, now.unix_timestamp()).unwrap();
    let today_start = kopir::store::calendar::day_start(&zone, today).unwrap();
    let began = (now.unix_timestamp() - 1200).max(today_start);
    let rfc = |unix: i64| kopir::clock::rfc3339(time::OffsetDateTime::from_unix_timestamp(unix).unwrap());
    db(platform)
        .execute(
            "INSERT INTO outages (subject, api_id, environment, started_at, ended_at, first_status, cause, source, ended_by)
             VALUES ('api', ?1, 'production', ?2, ?3, 502, 'bank_failure', 'traffic', 'traffic')",
            rusqlite::params![w.banks[0].api_id, rfc(began), rfc(began + 600)],
        )
        .unwrap();
    let days_so_far = i64::from(period.from.until(today).unwrap().get_days()) + 1;
    let expected = kopir::availability::percent(kopir::availability::hundredths(days_so_far * 86_400, 600));
    let document = dashboard_json(&staff, "").await;
    for table in ["banks", "apis"] {
        for row in document["tables"][table].as_array().unwrap() {
            let down = row["bank"] == w.banks[0].name.as_str();
            let (percent, minutes) = if down { (expected.as_str(), 10) } else { ("100.00", 0) };
            assert_eq!(row["availability_percent"], percent, "{table}: {row}");
            assert_eq!(row["unplanned_minutes"], minutes, "{table}: {row}");
        }
    }

    // The page shows the same numbers, with charts and captions; the CSV export parses and agrees.
    let page = staff.get("/console/dashboard").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for chart in ["dashboard-requests", "dashboard-availability", "dashboard-latency"] {
        assert!(page.body.contains(&format!("<desc id=\"{chart}-desc\">")), "{chart}");
    }
    let headline = page.body.split("id=\"headline-requests\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(headline.contains(&format!("<td class=\"num\">{total}</td>")), "{headline}");
    assert!(page.body.contains("<caption>") && page.body.contains("id=\"table-banks\""));
    let csv = staff.get("/console/dashboard?format=csv&table=banks").await;
    assert_eq!(csv.status, 200);
    let disposition = csv.headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment; filename=\"dashboard-banks_"), "{disposition}");
    let records = parse_csv(&csv.body);
    assert_eq!(records[0][0..3], ["bank".to_string(), "bin".to_string(), "requests".to_string()]);
    for record in &records[1..] {
        assert_eq!(record[2].parse::<i64>().ok(), per_bank.get(&record[0]).copied(), "{record:?}");
        let row = page.body.split(&format!("data-value=\"{}\"", record[0])).nth(1).unwrap();
        assert!(row.contains(&format!("data-value=\"{}\"", record[2])), "the page shows the export's number");
    }
    let one = staff.get("/console/dashboard?format=json&table=top_errors").await;
    let one: Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(one["tables"]["top_errors"], document["tables"]["top_errors"]);
    assert_eq!(staff.get("/console/dashboard?format=csv&table=nope").await.status, 404);
    assert_eq!(staff.get("/console/dashboard?format=csv").await.status, 400);
    assert_eq!(staff.get("/console/dashboard?period=custom&from=2026-02-01&to=2026-01-01").await.status, 400);
    assert_eq!(staff.get("/console/dashboard?period=fortnight").await.status, 400);
    let custom = format!("period=custom&from={}&to={}&", period.from, period.to);
    let same = dashboard_json(&staff, &custom).await;
    assert_eq!(compared(&same, "summary", "requests", "current"), total);

    // A month later: this month is empty, compared with the last; the previous month shows it.
    let next = period.to.tomorrow().unwrap();
    let zone = platform.config.time_zone.zone().clone();
    let next_start = kopir::store::calendar::day_start(&zone, next).unwrap();
    let move_by = next_start - platform.clock().now().unix_timestamp() + 3 * 3600;
    platform.clock().advance(time::Duration::seconds(move_by));
    staff.sign_in("dash.ops", &password).await;
    let later = dashboard_json(&staff, "").await;
    assert_eq!(later["previous_from"], period.from.to_string());
    assert_eq!(compared(&later, "summary", "requests", "current"), 0);
    assert_eq!(compared(&later, "summary", "requests", "previous"), total);
    assert_eq!(compared(&later, "summary", "requests", "change"), -total);
    let row =
        later["tables"]["summary"].as_array().unwrap().iter().find(|r| r["figure"] == "requests").unwrap().clone();
    assert_eq!(row["change_percent"], "-100.0");
    let earlier = dashboard_json(&staff, "period=previous_month&").await;
    assert_eq!(earlier["from"], period.from.to_string());
    assert_eq!(compared(&earlier, "summary", "requests", "current"), total);
    let page = staff.get("/console/dashboard").await;
    let headline = page.body.split("id=\"headline-requests\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(
        headline.contains(&format!("<td class=\"num\">-{total}</td>")) && headline.contains("-100.0 %"),
        "{headline}"
    );
    w.s.platform.shutdown().await;
}

/// The local day of a unix time in SQL, for the platform's zone when it is a fixed offset (the tests' zone has no
/// summer time): `date(t + offset, 'unixepoch')`.
fn local_day_sql(platform: &common::Platform) -> String {
    let zone = platform.config.time_zone.zone().clone();
    let offset = zone.to_offset(jiff::Timestamp::now()).seconds();
    format!("date(unixepoch(at) + {offset}, 'unixepoch')")
}

/// Every state-changing `/console/*` route of the router, read from the source (so that a route added later is
/// covered too): `(path, methods)`.
fn console_writes() -> Vec<String> {
    let mut found = Vec::new();
    let mut files = Vec::new();
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices(".route(\"/console") {
            let rest = &text[i + ".route(\"".len()..];
            let path = &rest[..rest.find('"').unwrap()];
            // The route's handlers: up to the parenthesis that closes `.route(`.
            let (mut depth, mut end) = (1, 0);
            for (j, c) in text[i + ".route(".len()..].char_indices() {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let handlers = &text[i + ".route(".len()..i + ".route(".len() + end];
            if ["post(", "put(", "delete(", "patch("].iter().any(|m| handlers.contains(m)) {
                found.push(path.to_string());
            }
        }
    }
    found.sort();
    found
}

/// Every row of every table but the sessions (a reader's own session is touched by each request).
fn everything(platform: &common::Platform) -> BTreeMap<String, Vec<String>> {
    let conn = db(platform);
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'sessions'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|table| {
            let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let columns = statement.column_count();
            let rows = statement
                .query_map([], |r| {
                    Ok((0..columns)
                        .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i)))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (table, rows)
        })
        .collect()
}

#[tokio::test]
async fn the_dashboard_is_for_console_readers_and_the_regulator_changes_nothing() {
    let platform = common::Platform::start().await;
    let bank_bin = common::browser::bin("99034000031");
    let bank = admin_of_new_organisation(&platform, &bank_bin, "Kopa Bank JSC", "kopa.admin").await;
    accredit(&platform, &bank_bin).await;
    let org: i64 =
        db(&platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [&bank_bin], |r| r.get(0)).unwrap();
    let application: i64 = db(&platform)
        .query_row("SELECT max(id) FROM accreditation_applications", [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(1);

    // Operator staff and the regulator read it; neither is shown a form that changes anything.
    let mut readers = Vec::new();
    for (name, role) in [("dash.staff", Role::OperatorStaff), ("dash.regulator", Role::Regulator)] {
        let password = operator_user(&platform, name, role).await;
        let mut reader = Browser::new(&platform);
        reader.sign_in(name, &password).await;
        let page = reader.get("/console/dashboard").await;
        assert_eq!(page.status, 200, "{name}: {}", page.body);
        assert!(page.body.contains("id=\"table-headlines\""));
        assert!(!page.body.contains("method=\"post\" action=\"/console"), "a read-only page");
        let console = reader.get("/console").await;
        assert!(console.body.contains("id=\"dashboard-link\""), "linked from the console");
        readers.push(reader);
    }
    let regulator = readers.pop().unwrap();
    let staff_id: i64 =
        db(&platform).query_row("SELECT id FROM users WHERE username = 'dash.staff'", [], |r| r.get(0)).unwrap();

    // A participant's administrator is refused; a visitor is sent to sign in.
    assert_eq!(bank.get("/console/dashboard").await.status, 403);
    assert_eq!(bank.get("/console/dashboard?format=json").await.status, 403);
    let visitor = Browser::new(&platform).get("/console/dashboard?format=json").await;
    assert!(visitor.url.ends_with("/login"), "{}", visitor.url);

    // The regulator, with a valid form token of its own session, changes nothing through any console route.
    let routes = console_writes();
    for expected in ["/console/applications/{id}/decision", "/console/participants/{id}/standing", "/console/staff"] {
        assert!(routes.iter().any(|r| r == expected), "the route list is read from the router's source: {routes:?}");
    }
    let csrf = regulator.get("/console/dashboard").await.csrf();
    let before = everything(&platform);
    // The one console write that is the regulator's own: the caps on tariffs (issue 16), set by nobody else
    // (`billing::billing_pages_refuse_other_roles_and_organisations` proves both sides).
    const REGULATOR_S_OWN: &str = "/console/billing/caps";
    assert!(routes.iter().any(|r| r == REGULATOR_S_OWN));
    for route in routes.iter().filter(|r| *r != REGULATOR_S_OWN) {
        let id = match route.as_str() {
            r if r.starts_with("/console/applications/") => application,
            r if r.starts_with("/console/participants/") => org,
            r if r.starts_with("/console/staff/") => staff_id,
            _ => 1,
        };
        let path = route.replace("{id}", &id.to_string());
        let fields: &[(&str, &str)] = &[
            ("decision", "approve"),
            ("action", "suspend"),
            ("status", "suspended"),
            ("reason", "The regulator tries to act"),
            ("mode", "delisted"),
            ("username", "regulator.made"),
            ("role", "operator_admin"),
            ("full_name", "Made By Regulator"),
            ("email", "made@regulator.kz"),
        ];
        let answer = regulator.post(&path, &csrf, fields).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
    }
    assert_eq!(everything(&platform), before, "nothing stored");
    platform.shutdown().await;
}
