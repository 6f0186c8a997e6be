//! The monthly platform report over real TLS: traffic through the gateway to reference banks, then `kopir report
//! monthly` (the binary) and the console's downloads; the JSON's numbers against counts computed from the raw rows,
//! the signature against the JWKS the platform publishes, tampered files named, all three languages, and who may
//! read the console page.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common;
use crate::common::browser::{Browser, operator_user};
use crate::common::exchange::{BankPlan, FULL, consent, customer, get_json, tokens_for, world};
use crate::common::participant::count;

const BANKS: [BankPlan; 2] = [BankPlan::new("Oral Bank", "99034000041"), BankPlan::new("Ertis Bank", "99034000042")];

/// Runs the `kopir` binary off the runtime's threads (the platform keeps serving meanwhile).
async fn kopir(platform: &common::Platform, args: Vec<std::ffi::OsString>) -> std::process::Output {
    let mut cmd = platform.kopir();
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn args(items: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    items.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Copies a report's three files into `dir` under the name `copy.html`.
fn copy_report(html: &Path, dir: &Path) -> PathBuf {
    let to = dir.join("copy.html");
    std::fs::copy(html, &to).unwrap();
    let name = html.file_name().unwrap().to_string_lossy();
    for suffix in ["json", "jws"] {
        std::fs::copy(html.with_file_name(format!("{name}.{suffix}")), dir.join(format!("copy.html.{suffix}")))
            .unwrap();
    }
    to
}

/// The month's figures in a report's JSON against the raw rows of the platform's database.
fn assert_figures_equal_raw_rows(platform: &common::Platform, json: &Value, month: &str, bank_bins: &[&str]) {
    assert_eq!(json["report"], "kopir-monthly-platform-report");
    assert_eq!(json["month"], month);
    assert_eq!(json["schema_version"], 1);
    let f = &json["figures"];
    let production = "FROM exchanges WHERE environment = 'production'";
    let total = count(platform, &format!("SELECT count(*) {production}"));
    assert!(total >= 6, "{total}");
    assert_eq!(f["requests"]["total"]["current"].as_i64(), Some(total), "{f}");
    assert_eq!(f["requests"]["total"]["previous"].as_i64(), Some(0));
    let errors = count(platform, &format!("SELECT count(*) {production} AND status >= 400"));
    assert_eq!(f["requests"]["errors"]["current"].as_i64(), Some(errors));
    let per_day: i64 =
        f["requests"]["per_day"].as_array().unwrap().iter().map(|d| d["requests"].as_i64().unwrap()).sum();
    assert_eq!(per_day, total);
    assert!(f["requests"]["per_day"].as_array().unwrap().len() >= 28);
    for bin in bank_bins {
        let raw = count(
            platform,
            &format!(
                "SELECT count(*) {production} AND provider_organisation_id = (SELECT id FROM organisations WHERE bin = '{bin}')"
            ),
        );
        assert!(raw > 0, "{bin}");
        let bank = f["banks"].as_array().unwrap().iter().find(|b| b["bin"] == *bin).unwrap();
        assert_eq!(bank["requests"]["current"].as_i64(), Some(raw), "{bank}");
        assert!(bank["availability"]["hundredths"].is_i64(), "{bank}");
        let api = &bank["apis"][0];
        assert_eq!(api["sla_ms"], 500);
        assert_eq!(api["requests"]["current"].as_i64(), Some(raw));
    }
    // Standing figures are read at the generation time (the command line reads the system's clock, which the test's
    // platform clock may be ahead of).
    let at = json["generated_at"].as_str().unwrap();
    let registered = count(
        platform,
        &format!("SELECT count(*) FROM organisations WHERE unixepoch(created_at) <= unixepoch('{at}')"),
    );
    assert!(registered >= 1);
    assert_eq!(f["participants"]["total"]["current"].as_i64(), Some(registered));
    let granted =
        count(platform, "SELECT count(*) FROM consent_history WHERE status = 'Authorised' AND organisation_id IS NULL");
    assert!(granted >= 1);
    assert_eq!(f["consents"]["granted"]["current"].as_i64(), Some(granted));
    let live_customers = count(
        platform,
        &format!(
            "SELECT count(DISTINCT c.customer_id) FROM consents c JOIN applications a ON a.id = c.application_id
         WHERE a.mode = 'production' AND c.status = 'Authorised' AND unixepoch(c.authorised_at) <= unixepoch('{at}')"
        ),
    );
    assert_eq!(f["customers_with_live_consents"]["current"].as_i64(), Some(live_customers));
    assert!(f["platform_availability"]["hundredths"].is_i64(), "{f}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monthly_report_equals_the_raw_rows_verifies_against_the_jwks_and_names_a_tampered_file() {
    let w = world(&BANKS).await;
    let s = &w.s;
    let platform = &s.platform;
    let bins: Vec<&str> = w.banks.iter().map(|b| b.bin.as_str()).collect();
    let (_, token, _) = tokens_for(s, consent(&bins, FULL, None, None), customer(), "+77010000041").await;
    for _ in 0..3 {
        get_json(s, &token, "/accounts").await;
    }
    common::eventually("exchanges metered", Duration::from_secs(10), async || {
        let n = count(platform, "SELECT count(*) FROM exchanges");
        if n >= 6 { Ok(n) } else { Err(n) }
    })
    .await;
    let zone = kopir::store::calendar::default_time_zone();
    let today = kopir::store::calendar::local_date(&zone, platform.clock().now().unix_timestamp()).unwrap();
    let month = today.strftime("%Y-%m").to_string();

    // The command line, while the platform serves.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let written = kopir(platform, args(&[&"report", &"monthly", &"--month", &month, &"--out", &out])).await;
    common::assert_success(&written);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.html.json")).unwrap()).unwrap();
    assert_figures_equal_raw_rows(platform, &json, &month, &bins);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("@page { size: A4") && html.contains("break-before: page"));
    assert!(html.contains("<svg") && html.contains("role=\"img\"") && html.contains("Oral Bank"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("<nav"), "not self-contained");
    let total = json["figures"]["requests"]["total"]["current"].as_i64().unwrap();
    assert!(html.contains(&format!("<td class=\"n\">{total}</td>")));
    // Writing over a published report is refused.
    let again = kopir(platform, args(&[&"report", &"monthly", &"--month", &month, &"--out", &out])).await;
    assert_eq!(again.status.code(), Some(1));
    let bad =
        kopir(platform, args(&[&"report", &"monthly", &"--month", &"2026-13", &"--out", &dir.path().join("x")])).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM"));

    // Every language renders, with the same numbers.
    for (lang, text) in [("ru", "Ежемесячный отчёт платформы"), ("kk", "Платформаның айлық есебі")]
    {
        let path = dir.path().join(format!("report-{lang}.html"));
        common::assert_success(
            &kopir(platform, args(&[&"report", &"monthly", &"--month", &month, &"--lang", &lang, &"--out", &path]))
                .await,
        );
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(html.contains(&format!("<html lang=\"{lang}\">")) && html.contains(text), "{lang}");
        assert!(html.contains(&format!("<td class=\"n\">{total}</td>")));
    }

    // Verified against the key set the platform publishes at its JWKS URL.
    let jwks =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, &jwks).unwrap();
    let verified = kopir(platform, args(&[&"report", &"verify", &"--json", &"--jwks", &jwks_file, &out])).await;
    common::assert_success(&verified);
    let result: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["seal"]["month"], month.as_str());
    assert_eq!(result["seal"]["generated_at"], json["generated_at"]);

    // A changed figure in the HTML, or in the JSON, fails and names the file.
    let tampered_dir = tempfile::tempdir().unwrap();
    let tampered = copy_report(&out, tampered_dir.path());
    let changed =
        html.replacen(&format!("<td class=\"n\">{total}</td>"), &format!("<td class=\"n\">{}</td>", total + 1), 1);
    std::fs::write(&tampered, changed).unwrap();
    let failed = kopir(platform, args(&[&"report", &"verify", &"--jwks", &jwks_file, &tampered])).await;
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("copy.html differs"), "{err}");
    let tampered_dir = tempfile::tempdir().unwrap();
    let tampered = copy_report(&out, tampered_dir.path());
    let json_path = tampered_dir.path().join("copy.html.json");
    let text = std::fs::read_to_string(&json_path).unwrap();
    std::fs::write(
        &json_path,
        text.replacen(&format!("\"current\": {total}"), &format!("\"current\": {}", total * 10), 1),
    )
    .unwrap();
    let failed = kopir(platform, args(&[&"report", &"verify", &"--jwks", &jwks_file, &tampered])).await;
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("copy.html.json differs"), "{err}");
    // Another platform's key set: the signature is refused.
    std::fs::write(&jwks_file, serde_json::json!({ "keys": [] }).to_string()).unwrap();
    let foreign = kopir(platform, args(&[&"report", &"verify", &"--jwks", &jwks_file, &out])).await;
    assert_eq!(foreign.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("signature"));
    // The snapshot's signed manifest does not pass for a report's seal.
    let snapshot = dir.path().join("audit.db");
    common::assert_success(&kopir(platform, args(&[&"snapshot", &"export", &"--out", &snapshot])).await);
    let swapped_dir = tempfile::tempdir().unwrap();
    let swapped = copy_report(&out, swapped_dir.path());
    std::fs::copy(dir.path().join("audit.db.manifest.jws"), swapped_dir.path().join("copy.html.jws")).unwrap();
    let failed = kopir(platform, args(&[&"report", &"verify", &swapped])).await;
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("not a kopir-monthly-report+jwt"));

    // The console: once the month has ended, its three files download and verify together.
    let password = operator_user(platform, "regulator-monthly", kopir::identity::Role::Regulator).await;
    let mut regulator = Browser::new(platform);
    regulator.sign_in("regulator-monthly", &password).await;
    let page = regulator.get(&format!("/console/reports/monthly?month={month}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"not-ended\"") && !page.body.contains("id=\"download-html\""));
    platform.clock().advance(time::Duration::days(32));
    // (The session timed out meanwhile.)
    regulator.sign_in("regulator-monthly", &password).await;
    let page = regulator.get(&format!("/console/reports/monthly?month={month}")).await;
    let console_dir = tempfile::tempdir().unwrap();
    let mut html_path = PathBuf::new();
    for part in ["html", "json", "jws"] {
        let href = common::browser::extract_attr(&page.body, &format!("id=\"download-{part}\" href=\"")).unwrap();
        let file = regulator.get(&href.replace("&#38;", "&")).await;
        assert_eq!(file.status, 200, "{href}: {}", &file.body[file.body.find("<main").unwrap_or(0)..]);
        let disposition = file.headers["content-disposition"].to_str().unwrap().to_string();
        let name = disposition.trim_start_matches("attachment; filename=\"").trim_end_matches('"').to_string();
        assert!(name.starts_with(&format!("kopir-monthly-report-{month}.html")), "{name}");
        std::fs::write(console_dir.path().join(&name), &file.body).unwrap();
        if part == "html" {
            html_path = console_dir.path().join(&name);
        }
    }
    std::fs::write(&jwks_file, &jwks).unwrap();
    let verified = kopir(platform, args(&[&"report", &"verify", &"--jwks", &jwks_file, &html_path])).await;
    common::assert_success(&verified);
    let console_json: Value =
        serde_json::from_str(&std::fs::read_to_string(html_path.with_extension("html.json")).unwrap()).unwrap();
    assert_figures_equal_raw_rows(platform, &console_json, &month, &bins);
    // A download link whose generation time is in the future, or whose month has not ended by it, is refused.
    let future = format!(
        "/console/reports/monthly/download?month={month}&lang=en&part=jws&at={}",
        kopir::clock::rfc3339(platform.clock().now() + time::Duration::days(1)).replace(':', "%3A")
    );
    assert_eq!(regulator.get(&future).await.status, 400);
    let early =
        format!("/console/reports/monthly/download?month={month}&lang=en&part=html&at={}-01T00%3A00%3A00Z", month);
    assert_eq!(regulator.get(&early).await.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn console_readers_view_the_report_in_three_languages_and_others_are_refused() {
    let platform = common::Platform::start().await;
    let password = operator_user(&platform, "ops-monthly", kopir::identity::Role::OperatorStaff).await;
    let mut staff = Browser::new(&platform);
    staff.sign_in("ops-monthly", &password).await;
    let page = staff.get("/console/reports/monthly").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // By default the last month that has ended, whose files can be downloaded.
    assert!(page.body.contains("id=\"download-jws\""), "{}", page.body);
    for (lang, text) in
        [("en", "Monthly platform report"), ("ru", "Ежемесячный отчёт платформы"), ("kk", "Платформаның айлық есебі")]
    {
        staff.get(&format!("/lang/{lang}")).await;
        let view = staff.get("/console/reports/monthly/view").await;
        assert_eq!(view.status, 200, "{}", view.body);
        assert!(view.body.contains(&format!("<html lang=\"{lang}\">")) && view.body.contains(text), "{lang}");
        let policy = view.headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'") && !policy.contains("script"), "{policy}");
        let console = staff.get("/console/reports/monthly").await;
        assert!(console.body.contains(&format!("lang={lang}")), "the downloads are in the page's language");
    }
    assert_eq!(staff.get("/console/reports/monthly?month=2026-13").await.status, 400);
    assert_eq!(staff.get("/console/reports/monthly/view?month=2999-01").await.status, 404);
    assert_eq!(staff.get("/console/reports/monthly/download?month=2026-01&lang=en&at=x&part=html").await.status, 400);

    // Participants are refused; anonymous callers are sent to sign in.
    let participant = crate::common::participant::admin_of_new_organisation(
        &platform,
        &common::browser::bin("99034000043"),
        "Taraz Pay LLP",
        "taraz-admin",
    )
    .await;
    for path in [
        "/console/reports/monthly",
        "/console/reports/monthly/view",
        "/console/reports/monthly/download?month=2026-01&lang=en&at=2026-02-02T00%3A00%3A00Z&part=json",
    ] {
        assert_eq!(participant.get(path).await.status, 403, "{path}");
        assert!(Browser::new(&platform).get(path).await.url.ends_with("/login"), "{path}");
    }
}
