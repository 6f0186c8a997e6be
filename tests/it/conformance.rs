//! The sandbox's conformance suite against reference banks over real TLS: a conforming bank passes every case, and
//! each fault mode fails exactly the case of the rule it breaks; the suite is the publication gate (a failing API
//! stays a draft, the run is recorded with its findings); and `kopir conformance run` prints, writes JUnit and
//! exits non-zero on a failure.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Platform;
use crate::common::browser::bin;
use crate::common::participant::{accredit, admin_of_new_organisation, db};
use kopir::catalog::FindingOutcome;
use kopir::refbank::{BankConfig, Fault, RunningBank};
use kopir::sandbox::cases::CASES;
use kopir::sandbox::suite::{self, Credentials, SuiteReport, Target};
use kopir::standard::SANDBOX_CUSTOMERS;

const FAULT_DELAY: Duration = Duration::from_millis(150);

struct Banks {
    platform: Platform,
    /// Each bank's fault, BIN and running instance.
    banks: Vec<(Option<Fault>, String, RunningBank)>,
    dir: tempfile::TempDir,
}

impl Banks {
    fn bank(&self, fault: Option<Fault>) -> &(Option<Fault>, String, RunningBank) {
        self.banks.iter().find(|(f, ..)| *f == fault).unwrap()
    }
}

/// The platform trusting the banks' CAs, and one reference bank per fault (`None`: conforming).
async fn start(faults: &[Option<Fault>]) -> Banks {
    let dir = tempfile::tempdir().unwrap();
    let mut cas = String::new();
    for i in 0..faults.len() {
        cas.push_str(
            &kopir::refbank::pki::load_or_create(&dir.path().join(format!("bank{i}")), "Test Bank").unwrap().ca_pem,
        );
    }
    let ca_file = dir.path().join("bank-cas.pem");
    std::fs::write(&ca_file, cas).unwrap();
    let platform = Platform::start_with(|c| c.gateway.provider_ca_file = ca_file.clone(), None).await;
    let mut banks = Vec::new();
    for (i, fault) in faults.iter().enumerate() {
        let bank_bin = bin(&format!("9905000{:04}", 100 + i));
        let mut config = BankConfig::new(
            "Test Bank",
            bank_bin.clone(),
            dir.path().join(format!("bank{i}")),
            platform.url(""),
            platform.root_pem(),
        );
        config.seed = 7;
        config.fault = *fault;
        config.fault_delay = FAULT_DELAY;
        banks.push((*fault, bank_bin, kopir::refbank::start(config).await.unwrap()));
    }
    Banks { platform, banks, dir }
}

fn credentials(platform: &Platform) -> Credentials {
    let state = &platform.running().state;
    let guard = state.egress.banks.clone();
    Credentials::platform(&platform.config, state.db.clone(), state.signer.clone(), &platform.url(""), guard).unwrap()
}

fn failed(report: &SuiteReport) -> BTreeSet<&'static str> {
    report.cases.iter().filter(|c| c.outcome == FindingOutcome::Failed).map(|c| c.case.id).collect()
}

fn show(report: &SuiteReport) -> String {
    report.cases.iter().map(|c| format!("{:?} {} {}\n", c.outcome, c.case.id, c.evidence)).collect()
}

/// No evidence names a customer, an IBAN, an IIN, an amount, or carries the signed header.
fn assert_redacted(report: &SuiteReport) {
    for case in &report.cases {
        let e = &case.evidence;
        assert!(!e.contains("eyJ"), "{}: a JWS in the evidence: {e}", case.case.id);
        assert!(!e.contains("MinorUnits"), "{}: {e}", case.case.id);
        for customer in SANDBOX_CUSTOMERS {
            assert!(!e.contains(customer.iin), "{}: {e}", case.case.id);
            let surname = customer.name.rsplit(' ').next().unwrap();
            assert!(!e.contains(surname), "{}: {e}", case.case.id);
        }
        let iban = e
            .as_bytes()
            .windows(4)
            .any(|w| w[0] == b'K' && w[1] == b'Z' && w[2].is_ascii_digit() && w[3].is_ascii_digit());
        assert!(!iban, "{}: an IBAN in the evidence: {e}", case.case.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conforming_bank_passes_every_case_and_each_fault_fails_the_case_of_its_rule() {
    let faults = [
        None,
        Some(Fault::Slow),
        Some(Fault::Error),
        Some(Fault::Malformed),
        Some(Fault::Leaky),
        Some(Fault::Unfiltered),
        Some(Fault::Open),
        Some(Fault::BadPaging),
        Some(Fault::Oversized),
    ];
    let world = start(&faults).await;
    let credentials = credentials(&world.platform);
    let clock = world.platform.running().state.clock.clone();
    let runs = world.banks.iter().map(|(fault, bank_bin, bank)| {
        let (credentials, clock) = (credentials.clone(), clock.clone());
        let target = Target {
            base_url: bank.base_url.clone(),
            bin: bank_bin.clone(),
            // The slow bank answers each call after 150 ms; the others locally within a few, but nine banks
            // answering at once on a busy machine (the oversized ones writing 17 MiB each) take longer: their SLA is
            // generous, so that only the slow bank's is the rule under test.
            sla_ms: if *fault == Some(Fault::Slow) { 100 } else { 2_500 },
            timeout_ms: 5_000,
            customers: Vec::new(),
            with_customers: true,
        };
        async move {
            let started = Instant::now();
            let report = suite::run(&target, &credentials, &clock).await;
            (*fault, report, started.elapsed())
        }
    });
    let reports = futures_util::future::join_all(runs).await;
    for (fault, report, elapsed) in &reports {
        println!("{fault:?}: {} calls in {elapsed:?}, p95 {:?} ms\n{}", report.calls, report.p95_ms, show(report));
        assert_eq!(report.cases.len(), CASES.len());
        assert!(report.calls <= 40, "{fault:?}: {} calls", report.calls);
        assert_redacted(report);
        let expected: BTreeSet<&str> = match fault {
            None => BTreeSet::new(),
            Some(Fault::Slow) => ["sla.response_time"].into(),
            Some(Fault::Error) => {
                ["auth.refused", "auth.forged", "auth.expired", "auth.audience", "accounts.schema"].into()
            }
            // 17 MiB answers: the suite reads 512 KiB of each, which is no JSON.
            Some(Fault::Malformed | Fault::Oversized) => {
                ["auth.refused", "error.shape", "auth.forged", "auth.expired", "auth.audience", "accounts.schema"]
                    .into()
            }
            Some(Fault::Leaky) => ["permissions.basic"].into(),
            Some(Fault::Unfiltered) => ["transactions.date_filter"].into(),
            Some(Fault::Open) => ["auth.refused", "error.shape", "auth.forged", "auth.expired", "auth.audience"].into(),
            Some(Fault::BadPaging) => ["pagination.links"].into(),
        };
        assert_eq!(failed(report), expected, "{fault:?}:\n{}", show(report));
        match fault {
            // Nothing skipped: every case ran and passed.
            None => assert_eq!(report.count(FindingOutcome::Passed), CASES.len(), "{}", show(report)),
            // No account could be read: the cases on an account are skipped, not failed.
            Some(Fault::Error | Fault::Malformed | Fault::Oversized) => {
                for id in ["account.schema", "transactions.schema", "pagination.links", "transactions.date_filter"] {
                    assert_eq!(report.outcome(id), Some(FindingOutcome::Skipped), "{fault:?} {id}");
                }
            }
            _ => assert_eq!(report.count(FindingOutcome::Skipped), 0, "{fault:?}:\n{}", show(report)),
        }
    }
    let evidence = |fault: Option<Fault>, id: &str| {
        let (_, report, _) = reports.iter().find(|(f, ..)| *f == fault).unwrap();
        report.cases.iter().find(|c| c.case.id == id).unwrap().evidence.clone()
    };
    assert!(evidence(Some(Fault::Leaky), "permissions.basic").contains("Detail fields Account"));
    assert!(evidence(Some(Fault::Unfiltered), "transactions.date_filter").contains("booked outside the window"));
    assert!(evidence(Some(Fault::BadPaging), "pagination.links").contains("repeats"));
    assert!(evidence(Some(Fault::Open), "auth.forged").contains("→ 200"));
    assert!(evidence(Some(Fault::Slow), "sla.response_time").contains("SLA 100 ms"));
    assert!(evidence(Some(Fault::Malformed), "accounts.schema").contains("the body is not JSON"));
    assert!(evidence(None, "tls.client_certificate").starts_with("refused"));
    assert!(evidence(None, "auth.refused").contains("UK.OBIE.Header.Missing"));
    for (_, _, bank) in world.banks {
        bank.shutdown().await;
    }
    world.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn production_runs_only_the_cases_without_customer_data() {
    let world = start(&[None]).await;
    let (_, bank_bin, bank) = world.bank(None);
    let target = Target {
        base_url: bank.base_url.clone(),
        bin: bank_bin.clone(),
        sla_ms: 1_000,
        timeout_ms: 3_000,
        customers: vec![SANDBOX_CUSTOMERS[1].iin.to_string()],
        with_customers: false,
    };
    let report = suite::run(&target, &credentials(&world.platform), &world.platform.running().state.clock).await;
    assert!(failed(&report).is_empty(), "{}", show(&report));
    assert!(report.calls <= 6, "{} calls", report.calls);
    assert_eq!(report.outcome("auth.forged"), Some(FindingOutcome::Passed));
    assert_eq!(report.outcome("accounts.schema"), Some(FindingOutcome::Skipped));
    world.platform.shutdown().await;
}

fn status_of(platform: &Platform, id: i64) -> String {
    db(platform).query_row("SELECT status FROM apis WHERE id = ?1", [id], |r| r.get(0)).unwrap()
}

fn passport(sandbox: &str) -> Vec<(String, String)> {
    [
        ("name", "Current accounts"),
        ("version", "1.0"),
        ("standard", "kopir-ais-v1"),
        ("description", "Accounts, balances and transactions"),
        ("sandbox_base_url", sandbox),
        ("production_base_url", sandbox),
        ("sla_response_ms", "1000"),
        ("timeout_ms", "3000"),
        ("contact_email", "api@bank.test"),
        ("contact_phone", "+7 727 250 00 00"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn borrowed(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_refuses_a_bank_that_leaks_detail_fields_and_records_the_run() {
    let world = start(&[Some(Fault::Leaky)]).await;
    let platform = &world.platform;
    let (_, bank_bin, leaky) = world.bank(Some(Fault::Leaky));
    let admin = admin_of_new_organisation(platform, bank_bin, "Leaky Bank JSC", "leaky.admin").await;
    accredit(platform, bank_bin).await;
    let page = admin.submit("/org/apis", "/org/apis", &borrowed(&passport(&leaky.base_url))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let id: i64 = page.url.rsplit("/org/apis/").next().unwrap().parse().unwrap();

    let page = admin.submit(&format!("/org/apis/{id}"), &format!("/org/apis/{id}/publish"), &[]).await;
    assert_eq!(page.status, 422, "{}", page.body);
    page.assert_contains("The check failed, so the API was not published.")
        .assert_contains("A Basic consent never gets the Detail fields")
        .assert_contains("permissions.basic")
        .assert_contains("Detail fields Account");
    assert_eq!(status_of(platform, id), "draft");
    let (passed, findings): (bool, String) = db(platform)
        .query_row("SELECT passed, findings FROM api_checks WHERE api_id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert!(!passed);
    let findings: serde_json::Value = serde_json::from_str(&findings).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), CASES.len());
    let basic = findings.as_array().unwrap().iter().find(|f| f["id"] == "permissions.basic").unwrap();
    assert_eq!(basic["outcome"], "failed");
    assert_eq!(basic["severity"], "critical");
    let refused: i64 = db(platform)
        .query_row("SELECT count(*) FROM audit_log WHERE action = 'catalog.api.publication_refused'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(refused, 1);

    world.platform.shutdown().await;
}

/// Writes a configuration for the `kopir` binary: the platform's data directory and the banks' CAs.
fn cli_config(world: &Banks) -> std::path::PathBuf {
    let path = world.dir.path().join("cli.toml");
    let toml = format!(
        "data_dir = {:?}\n\n[gateway]\nprovider_ca_file = {:?}\n",
        world.platform.data_dir(),
        world.dir.path().join("bank-cas.pem")
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn kopir(config: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"));
    cmd.arg("--config").arg(config).env_remove("KOPIR_DATA_DIR");
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_passes_a_conforming_bank_with_junit_and_fails_a_faulty_one() {
    let world = start(&[None, Some(Fault::Unfiltered)]).await;
    let config = cli_config(&world);
    let (_, good_bin, good) = world.bank(None);
    let (_, bad_bin, bad) = world.bank(Some(Fault::Unfiltered));
    let junit = world.dir.path().join("junit.xml");
    let issuer = world.platform.url("");

    // With the platform's credentials (configuration and data directory).
    let run = |base: String, bank_bin: String, junit: Option<std::path::PathBuf>| {
        let mut cmd = kopir(&config);
        cmd.args(["conformance", "run", "--base-url", &base, "--bin", &bank_bin, "--sla-ms", "2000"]);
        cmd.args(["--issuer", &issuer]);
        if let Some(junit) = junit {
            cmd.arg("--junit").arg(junit);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = run(good.base_url.clone(), good_bin.clone(), Some(junit.clone())).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PASS tls.reachable"), "{stdout}");
    assert!(
        stdout.contains(&format!("{} passed, 0 failed, 0 skipped of {} cases", CASES.len(), CASES.len())),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert_eq!(xml.matches("<testcase ").count(), CASES.len(), "{xml}");
    assert_eq!(xml.matches("</testcase>").count(), CASES.len(), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
    for case in CASES {
        assert!(xml.contains(&format!("name=\"{}\"", case.id)), "{} missing", case.id);
    }
    assert_eq!(xml.matches("<testsuite ").count(), 1);
    assert!(xml.trim_end().ends_with("</testsuites>"));
    well_formed(&xml);

    // A faulty bank: exit 1, the failed case printed, JUnit with the failure.
    let bad_junit = world.dir.path().join("bad.xml");
    let out = run(bad.base_url.clone(), bad_bin.clone(), Some(bad_junit.clone())).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL transactions.date_filter"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 conformance case(s) failed"));
    let xml = std::fs::read_to_string(&bad_junit).unwrap();
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    well_formed(&xml);

    // Without --bin, the BIN of a catalogued API with this base URL is used; none here.
    let mut cmd = kopir(&config);
    cmd.args(["conformance", "run", "--base-url", &good.base_url, "--issuer", &issuer]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bin is required"));

    // With explicit credentials, as a bank testing itself: here the platform's own files.
    let pki = world.platform.data_dir().join("pki");
    let kid: String = db(&world.platform)
        .query_row("SELECT kid FROM signing_keys WHERE retired_at IS NULL", [], |r| r.get(0))
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kopir"));
    cmd.env_remove("KOPIR_CONFIG").env_remove("KOPIR_DATA_DIR");
    cmd.args(["conformance", "run", "--base-url", &good.base_url, "--bin", good_bin, "--sla-ms", "2000"]);
    cmd.arg("--cert").arg(pki.join("platform-client.pem"));
    cmd.arg("--key").arg(pki.join("platform-client.key"));
    cmd.arg("--ca").arg(world.dir.path().join("bank-cas.pem"));
    cmd.arg("--signing-key").arg(pki.join(format!("signing-{kid}.key")));
    // `--kid=…` in one argument: a random key id may begin with '-', which would read as an option.
    cmd.arg(format!("--kid={kid}")).args(["--issuer", &issuer]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    world.platform.shutdown().await;
}

/// A small check that the XML's elements nest: every opened element is closed in order.
fn well_formed(xml: &str) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').unwrap() + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.ends_with('/') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "unbalanced </{name}>");
        } else {
            open.push(tag.split_whitespace().next().unwrap().to_string());
        }
        assert!(!tag.contains('<'), "a < inside a tag: {tag}");
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
}
