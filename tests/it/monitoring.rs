//! Monitoring over real TLS: gateway calls through reference banks show on the admin listener's /metrics per API
//! and endpoint (with the SLA and consents gauges); an API over its SLA is announced to its provider once and shown on
//! the operator's console; and the shipped Prometheus rules and Grafana dashboard load and use only metrics the
//! platform exports.
//!
//! The metrics recorder is process-wide (every platform of this test binary shares it), so each test reads only the
//! series labelled with its own banks' BINs, never totals.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::common::browser::{Browser, operator_user};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get, get_json, tokens_for, world, world_with};
use crate::common::participant::{count, db};
use kopir::identity::Role;
use kopir::refbank::Fault;
use serde_json::Value;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format (quoted label values may hold commas, braces and escaped quotes).
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap();
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let (mut key, mut value, mut in_value, mut escaped) = (String::new(), String::new(), false, false);
            let mut end = inner.len();
            for (i, c) in inner.char_indices() {
                if in_value {
                    if escaped {
                        value.push(if c == 'n' { '\n' } else { c });
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                        in_value = false;
                    } else {
                        value.push(c);
                    }
                } else if c == '"' {
                    in_value = true;
                } else if c == '}' {
                    end = i + 1;
                    break;
                } else if c != '=' && c != ',' {
                    key.push(c);
                }
            }
            rest = &inner[end..];
        }
        let value = rest.trim().split(' ').next().unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        samples.push(Sample { name, labels, value });
    }
    samples
}

async fn scrape(platform: &common::Platform) -> Vec<Sample> {
    let admin = platform.admin_addr.expect("the admin listener runs in tests");
    let body = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    parse_metrics(&body)
}

/// The value of the one series `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches several series: {found:?}");
    found.first().map(|s| s.value)
}

/// Waits until the series is there (gauges appear after the monitoring task's next round).
async fn wait_value(platform: &common::Platform, name: &str, labels: &[(&str, &str)]) -> f64 {
    common::eventually(&format!("{name} {labels:?} on /metrics"), Duration::from_secs(10), async || {
        value(&scrape(platform).await, name, labels).ok_or(())
    })
    .await
}

/// The metric names an expression (PromQL) uses: the platform's (`kopir_…`) and Prometheus's own `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token = String::new();
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
            token.clear();
            continue;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            token.push(c);
            continue;
        }
        if !in_string && (token.starts_with("kopir_") || token == "up") {
            names.insert(token.clone());
        }
        token.clear();
    }
    names
}

/// Every `expr` (and templating `query`/`definition`) string in the dashboard.
fn dashboard_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains('(') => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring")
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(monitoring_dir().join("kopir-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// The `expr:` of every rule in the alert rules file.
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(monitoring_dir().join("kopir-alerts.yml")).unwrap();
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(expr) = line.trim_start().strip_prefix("expr:") else { continue };
        let mut expr = expr.trim().trim_start_matches('>').trim().to_string();
        let indent = line.len() - line.trim_start().len();
        while let Some(next) = lines.peek() {
            let next_indent = next.len() - next.trim_start().len();
            if next.trim().is_empty() || next_indent <= indent {
                break;
            }
            expr.push(' ');
            expr.push_str(next.trim());
            lines.next();
        }
        exprs.push(expr);
    }
    exprs
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_calls_show_per_api_on_the_admin_listener_with_the_sla_and_consents_gauges() {
    let plans = [
        BankPlan::new("Monitor Bank", "99034007701"),
        BankPlan { name: "Failing Monitor Bank", digits: "99034007702", production_fault: Some(Fault::Error) },
    ];
    let w = world(&plans).await;
    let s = &w.s;
    let (good, bad) = (&w.banks[0], &w.banks[1]);
    let (good_api, bad_api) = (good.api_id.to_string(), bad.api_id.to_string());
    let bins = [good.bin.as_str(), bad.bin.as_str()];
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000001").await;

    // One fan-out (the good bank answers, the failing one 500s), then balances and transactions at the good bank.
    let body = get_json(s, &token, "/accounts").await;
    assert_eq!(body["Meta"]["MissingProviders"][0]["Bin"], bad.bin.as_str(), "{body}");
    let id = body["Data"]["Account"][0]["AccountId"].as_str().unwrap().to_string();
    get_json(s, &token, &format!("/accounts/{id}/balances")).await;
    get_json(s, &token, &format!("/accounts/{id}/balances")).await;
    assert_eq!(get(s, &s.identity, &token, &format!("/accounts/{id}/transactions")).await.status(), 200);

    let metrics = scrape(&s.platform).await;
    let calls = |bin: &str, api: &str, endpoint: &str, class: &str| {
        value(
            &metrics,
            "kopir_api_requests_total",
            &[
                ("provider", bin),
                ("api", api),
                ("endpoint", endpoint),
                ("environment", "production"),
                ("status_class", class),
            ],
        )
    };
    assert_eq!(calls(&good.bin, &good_api, "accounts", "2xx"), Some(1.0));
    assert_eq!(calls(&good.bin, &good_api, "balances", "2xx"), Some(2.0));
    assert_eq!(calls(&good.bin, &good_api, "transactions", "2xx"), Some(1.0));
    assert_eq!(calls(&good.bin, &good_api, "accounts", "5xx"), None, "the good bank never failed");
    assert_eq!(calls(&bad.bin, &bad_api, "accounts", "5xx"), Some(1.0));
    assert_eq!(calls(&bad.bin, &bad_api, "accounts", "2xx"), None);
    let errors = |bin: &str, api: &str| {
        value(&metrics, "kopir_api_errors_total", &[("provider", bin), ("api", api), ("endpoint", "accounts")])
    };
    assert_eq!(errors(&bad.bin, &bad_api), Some(1.0));
    assert_eq!(errors(&good.bin, &good_api), None);
    let latency = |endpoint: &str, suffix: &str| {
        value(
            &metrics,
            &format!("kopir_api_request_duration_seconds{suffix}"),
            &[
                ("provider", good.bin.as_str()),
                ("api", good_api.as_str()),
                ("endpoint", endpoint),
                ("environment", "production"),
            ],
        )
    };
    assert_eq!(latency("balances", "_count"), Some(2.0));
    assert!(latency("balances", "_sum").unwrap() > 0.0);
    let bucket = value(
        &metrics,
        "kopir_api_request_duration_seconds_bucket",
        &[("provider", good.bin.as_str()), ("api", good_api.as_str()), ("endpoint", "balances"), ("le", "+Inf")],
    );
    assert_eq!(bucket, Some(2.0), "a histogram with buckets, not a summary");

    // The gauges come with the monitoring task's next rounds (every minute): move the platform's clock past them.
    s.platform.clock().advance(time::Duration::minutes(11));
    let sla = wait_value(&s.platform, "kopir_api_sla_seconds", &[("provider", &good.bin), ("api", &good_api)]).await;
    assert_eq!(sla, 0.5, "the passport's 500 ms");
    wait_value(&s.platform, "kopir_provider_consents", &[("provider", &good.bin), ("status", "Authorised")]).await;
    let metrics = scrape(&s.platform).await;
    for bin in bins {
        assert_eq!(
            value(&metrics, "kopir_provider_consents", &[("provider", bin), ("status", "Authorised")]),
            Some(1.0)
        );
        assert_eq!(value(&metrics, "kopir_provider_customers_with_live_consents", &[("provider", bin)]), Some(1.0));
    }
    let info = metrics
        .iter()
        .find(|m| m.name == "kopir_api_info" && m.labels.get("provider") == Some(&good.bin))
        .expect("the API's info series");
    assert_eq!((info.labels["api"].as_str(), info.labels["name"].as_str()), (good_api.as_str(), "Current accounts"));
    assert_eq!(value(&metrics, "kopir_api_sla_breached", &[("provider", &good.bin), ("api", &good_api)]), Some(0.0));
    // Platform-wide gauges are shared by every platform of this process: their presence is what this test can prove.
    assert!(value(&metrics, "kopir_consents", &[("status", "Authorised")]).is_some());
    assert!(value(&metrics, "kopir_customers_with_live_consents", &[]).is_some());
    let now = kopir::clock::now().unix_timestamp() as f64;
    for certificate in ["root_ca", "issuing_ca", "server", "platform_client", "participants"] {
        let expiry = value(&metrics, "kopir_certificate_expiry_timestamp_seconds", &[("certificate", certificate)]);
        assert!(expiry.is_some_and(|t| t > now), "{certificate}: {expiry:?}");
    }
    let free = value(&metrics, "kopir_data_dir_free_bytes", &[]).unwrap();
    let size = value(&metrics, "kopir_data_dir_size_bytes", &[]).unwrap();
    assert!(free > 0.0 && free <= size, "{free} of {size}");

    // The shipped dashboard and alert rules name only metrics this scrape holds (a histogram by its series).
    let exported: BTreeSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), &mut exprs);
    exprs.extend(rule_exprs());
    assert!(exprs.len() > 15, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        used.extend(metric_names(expr));
    }
    for name in &used {
        assert!(name == "up" || exported.contains(name.as_str()), "{name} is used but not exported");
    }
    for needed in ["kopir_api_request_duration_seconds_bucket", "kopir_api_sla_seconds", "kopir_webhook_pending"] {
        assert!(used.contains(needed), "{needed} is not used: {used:?}");
    }
    w.s.platform.shutdown().await;
}

/// A series (name and labels) and the value it should read.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Moves the platform's clock past the monitoring task's next round and waits until each series reads its value. A
/// round still under way when the clock moves takes the move for itself, so the clock moves again while waiting.
async fn next_round_reads(platform: &common::Platform, expected: &[Expected<'_>]) {
    let mut seen = Vec::new();
    for _ in 0..5 {
        platform.clock().advance(time::Duration::seconds(61));
        let attempt = async {
            loop {
                let metrics = scrape(platform).await;
                seen = expected.iter().map(|(name, labels, _)| value(&metrics, name, labels)).collect();
                if seen.iter().zip(expected).all(|(v, (_, _, want))| *v == Some(*want)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(3), attempt).await.is_ok() {
            return;
        }
    }
    panic!("the gauges did not follow the registry: expected {expected:?}, last seen {seen:?}");
}

/// The platform-wide figures the gauges are set from, read as the task reads them and straight from the registry
/// (the shared recorder mixes every test platform's platform-wide series, so they are compared here).
async fn platform_figures_agree_with_the_registry(platform: &common::Platform) -> (i64, i64) {
    let now = kopir::clock::rfc3339(platform.clock().now());
    platform
        .running()
        .state
        .db
        .read(move |c| -> Result<(i64, i64), kopir::store::StoreError> {
            let live = kopir::monitoring::figures::customers_with_live_consents(c, &now)?;
            let registry: i64 = c.query_row(
                "SELECT count(DISTINCT customer_id) FROM consents WHERE status = 'Authorised' AND expires_at > ?1",
                [&now],
                |r| r.get(0),
            )?;
            assert_eq!(live, registry, "customers with live consents");
            let authorised = kopir::monitoring::figures::consents_by_status(c)?
                .into_iter()
                .find(|s| s.label == "Authorised")
                .map_or(0, |s| s.count);
            let registry: i64 =
                c.query_row("SELECT count(*) FROM consents WHERE status = 'Authorised'", [], |r| r.get(0))?;
            assert_eq!(authorised, registry, "authorised consents");
            Ok((live, authorised))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn consents_gauges_follow_a_grant_a_revocation_and_an_expiry_before_and_after_the_sweep() {
    // The expiry sweep runs at start, then once a day of the platform's clock: a consent past its end stays
    // `Authorised` in the registry until the test moves the clock a day.
    let w = world_with(&[BankPlan::new("Gauge Bank", "99034007703")], |c| c.oauth.expiry_sweep_secs = 86_400).await;
    let s = &w.s;
    let bin = w.banks[0].bin.as_str();
    let authorised: &[(&str, &str)] = &[("provider", bin), ("status", "Authorised")];
    let revoked: &[(&str, &str)] = &[("provider", bin), ("status", "Revoked")];
    let expired: &[(&str, &str)] = &[("provider", bin), ("status", "Expired")];
    let live: &[(&str, &str)] = &[("provider", bin)];
    const CONSENTS: &str = "kopir_provider_consents";
    const LIVE: &str = "kopir_provider_customers_with_live_consents";

    // Granted: one authorised consent, its customer live.
    let (granted, _, _) = tokens_for(s, consent(&[bin], FULL, None, None), customer(), "+77010000011").await;
    next_round_reads(&s.platform, &[(CONSENTS, authorised, 1.0), (LIVE, live, 1.0)]).await;
    assert_eq!(platform_figures_agree_with_the_registry(&s.platform).await, (1, 1));

    // Revoked by the API user: the authorised count and the live customer fall to zero (not left at their last
    // value), the revoked count rises.
    let deleted = s
        .api()
        .delete(s.platform.url(&format!("/open-banking/v1/aisp/account-access-consents/{granted}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    next_round_reads(&s.platform, &[(CONSENTS, authorised, 0.0), (CONSENTS, revoked, 1.0), (LIVE, live, 0.0)]).await;
    assert_eq!(platform_figures_agree_with_the_registry(&s.platform).await, (0, 0));

    // Granted again, ending in half an hour.
    let ends = kopir::clock::rfc3339(s.platform.clock().now() + time::Duration::minutes(30));
    let mut body = consent(&[bin], FULL, None, None);
    body["Data"]["ExpirationDateTime"] = ends.into();
    let (expiring, _, _) = tokens_for(s, body, customer(), "+77010000012").await;
    next_round_reads(&s.platform, &[(CONSENTS, authorised, 1.0), (LIVE, live, 1.0)]).await;

    // Past its end, not yet swept: still `Authorised` in the registry (and in the consents by status), but its
    // customer is no longer live.
    s.platform.clock().advance(time::Duration::minutes(30));
    next_round_reads(&s.platform, &[(CONSENTS, authorised, 1.0), (CONSENTS, expired, 0.0), (LIVE, live, 0.0)]).await;
    let stored = format!("SELECT count(*) FROM consents WHERE id = '{expiring}' AND status = ");
    assert_eq!(count(&s.platform, &format!("{stored}'Authorised'")), 1);
    assert_eq!(platform_figures_agree_with_the_registry(&s.platform).await, (0, 1));

    // The sweep (a day later on the platform's clock) marks it `Expired`; the gauges follow.
    s.platform.clock().advance(time::Duration::days(1));
    common::eventually("the sweep to mark the consent expired", Duration::from_secs(10), async || {
        if count(&s.platform, &format!("{stored}'Expired'")) == 1 { Ok(()) } else { Err(()) }
    })
    .await;
    next_round_reads(
        &s.platform,
        &[(CONSENTS, authorised, 0.0), (CONSENTS, expired, 1.0), (CONSENTS, revoked, 1.0), (LIVE, live, 0.0)],
    )
    .await;
    assert_eq!(platform_figures_agree_with_the_registry(&s.platform).await, (0, 0));
    w.s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_over_its_sla_is_announced_to_its_provider_once_and_listed_on_the_console() {
    // The slow bank answers after 4 s; the gateway gives up after the API's 1.5 s: every call takes over the
    // passport's 500 ms SLA.
    let plans = [BankPlan { name: "Slow Monitor Bank", digits: "99034007703", production_fault: Some(Fault::Slow) }];
    let w = world(&plans).await;
    let s = &w.s;
    let bank = &w.banks[0];
    let (_, token, _) =
        tokens_for(s, consent(&[bank.bin.as_str()], FULL, None, None), customer(), "+77010000001").await;
    let calls = futures_util::future::join_all(
        (0..kopir::monitoring::sla::MIN_CALLS)
            .map(|_| async { get(s, &s.identity, &token, "/accounts").await.status().as_u16() }),
    )
    .await;
    assert!(calls.iter().all(|status| *status == 504), "{calls:?}");
    let metered = format!("SELECT count(*) FROM exchanges WHERE api_id = {} AND status = 504", bank.api_id);
    common::eventually("the calls metered", Duration::from_secs(10), async || {
        let n = count(&s.platform, &metered);
        if n >= kopir::monitoring::sla::MIN_CALLS { Ok(()) } else { Err(n) }
    })
    .await;

    // Judged three times (the task judges every minute as well): one breach, one webhook to the provider.
    let state = &s.platform.running().state;
    for _ in 0..3 {
        kopir::monitoring::judge_slas(&state.db, state.clock.now()).await;
    }
    let provider: i64 =
        db(&s.platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [&bank.bin], |r| r.get(0)).unwrap();
    let events = |event: &str| {
        count(
            &s.platform,
            &format!(
                "SELECT count(*) FROM webhook_outbox WHERE organisation_id = {provider} AND event_type = '{event}'"
            ),
        )
    };
    assert_eq!(events("api.sla_breached"), 1, "once per breach, not every minute");
    assert_eq!(events("api.sla_restored"), 0);
    let payload: String = db(&s.platform)
        .query_row("SELECT payload FROM webhook_outbox WHERE event_type = 'api.sla_breached'", [], |r| r.get(0))
        .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["ApiId"], bank.api_id);
    assert_eq!(payload["SlaResponseMs"], 500);
    assert!(payload["P95Ms"].as_i64().unwrap() >= 1500, "{payload}");
    assert_eq!(payload["Calls"], kopir::monitoring::sla::MIN_CALLS);

    // The operator's console lists it; the regulator reads it; the provider and a visitor may not.
    let password = operator_user(&s.platform, "sla.ops", Role::OperatorStaff).await;
    let mut staff = Browser::new(&s.platform);
    staff.sign_in("sla.ops", &password).await;
    let page = staff.get("/console/sla").await;
    assert_eq!(page.status, 200);
    let open_table = page.body.split("id=\"open-breaches\"").nth(1).expect("a table of open breaches");
    let open_table = open_table.split("</table>").next().unwrap();
    assert!(open_table.contains(&format!("data-api=\"{}\"", bank.api_id)), "{}", page.body);
    assert!(open_table.contains("Slow Monitor Bank") && open_table.contains("500 ms"));
    let password = operator_user(&s.platform, "sla.regulator", Role::Regulator).await;
    let mut regulator = Browser::new(&s.platform);
    regulator.sign_in("sla.regulator", &password).await;
    assert_eq!(regulator.get("/console/sla").await.status, 200);
    assert_eq!(bank.admin.get("/console/sla").await.status, 403, "a participant reads no other bank's breaches");
    let visitor = Browser::new(&s.platform).get("/console/sla").await;
    assert!(visitor.url.contains("/login"), "a visitor is sent to sign in: {}", visitor.url);

    // The gauge shows it too.
    s.platform.clock().advance(time::Duration::seconds(61));
    let api = bank.api_id.to_string();
    common::eventually("the breach gauge", Duration::from_secs(10), async || {
        match value(&scrape(&s.platform).await, "kopir_api_sla_breached", &[("provider", &bank.bin), ("api", &api)]) {
            Some(1.0) => Ok(()),
            other => Err(other),
        }
    })
    .await;

    // An hour later the window holds no call: the breach ends, announced once. (The operator looks in on the way,
    // so that the session does not time out.)
    for minutes in [25, 25, 12] {
        s.platform.clock().advance(time::Duration::minutes(minutes));
        assert_eq!(staff.get("/console/sla").await.status, 200);
    }
    for _ in 0..2 {
        kopir::monitoring::judge_slas(&state.db, state.clock.now()).await;
    }
    assert_eq!(events("api.sla_restored"), 1);
    assert_eq!(events("api.sla_breached"), 1);
    let page = staff.get("/console/sla").await;
    assert!(page.body.contains("id=\"none-open\""), "{}", page.body);
    assert!(page.body.contains("id=\"ended-breaches\""));
    w.s.platform.shutdown().await;
}

/// promtool: on the PATH, unpacked by `.ci/run`, or unpacked here from Debian's package the same way.
fn promtool() -> PathBuf {
    if Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return PathBuf::from("promtool");
    }
    let unpacked = Path::new("/var/tmp/kopir-promtool");
    let binary = unpacked.join("usr/bin/promtool");
    if !binary.exists() {
        let download = tempfile::tempdir().unwrap();
        let fetched = Command::new("apt-get").args(["download", "prometheus"]).current_dir(download.path()).output();
        assert!(
            fetched.as_ref().is_ok_and(|o| o.status.success()),
            "promtool is missing and `apt-get download prometheus` failed: {fetched:?}"
        );
        let deb = std::fs::read_dir(download.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .unwrap();
        let staging = tempfile::tempdir_in("/var/tmp").unwrap();
        common::assert_success(&Command::new("dpkg-deb").arg("-x").arg(&deb).arg(staging.path()).output().unwrap());
        // Renamed into place whole, so that a test running beside this one never sees half a directory.
        let _ = std::fs::rename(staging.keep(), unpacked);
    }
    assert!(binary.exists(), "promtool could not be unpacked into {}", unpacked.display());
    binary
}

#[test]
fn the_shipped_alert_rules_pass_promtool_and_the_dashboard_s_queries_parse() {
    let promtool = promtool();
    let dir = monitoring_dir();
    let run = |args: &[&str], cwd: &Path| {
        let output = Command::new(&promtool).args(args).current_dir(cwd).output().unwrap();
        common::assert_success(&output);
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let checked = run(&["check", "rules", "kopir-alerts.yml"], &dir);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run(&["test", "rules", "kopir-alerts.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
    for alert in [
        "KopirApiSlaBreach",
        "KopirBankApiDown",
        "KopirCertificateExpiresIn30Days",
        "KopirCertificateExpiresIn7Days",
        "KopirWebhookBacklog",
        "KopirDataDiskLow",
        "KopirDataDiskCritical",
        "KopirDown",
    ] {
        let tests = std::fs::read_to_string(dir.join("kopir-alerts.test.yml")).unwrap();
        assert!(tests.contains(&format!("alertname: {alert}")), "{alert} has no unit test");
    }

    // Every query of the dashboard, with Grafana's variables filled in, is valid PromQL: promtool parses each as a
    // recording rule.
    let dashboard = dashboard();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard["panels"], &mut exprs);
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let filled = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$job", "kopir")
            .replace("$provider", ".*")
            .replace("$environment", "production");
        assert!(!filled.contains('$'), "an unknown variable in {expr}");
        rules.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(&filled).unwrap()
        ));
    }
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("dashboard-rules.yml"), rules).unwrap();
    let parsed = run(&["check", "rules", "dashboard-rules.yml"], scratch.path());
    assert!(parsed.contains(&format!("SUCCESS: {} rules found", exprs.len())), "{parsed}");
}
