//! `kopir conformance run`: the sandbox's conformance suite against one base URL, from the command line — with the
//! platform's credentials (`--data-dir` / `--config`), or with a bank's own (`--cert --key --signing-key --kid
//! --issuer`) to test itself before applying. Prints every case and a summary, optionally writes JUnit XML, and
//! exits 1 if a case failed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{Failure, GlobalArgs, load_config};
use crate::catalog::check::FindingOutcome;
use crate::sandbox::suite::{self, Credentials, SuiteReport, Target};
use crate::store::{Db, StoreError};

#[derive(Debug, Subcommand)]
pub enum ConformanceCommand {
    /// Run the conformance suite against a provider's base URL.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The API's base URL, e.g. https://bank.example/open-banking/v1/aisp.
    #[arg(long, value_name = "URL")]
    pub base_url: String,
    /// The bank's BIN (the signed header's audience). With the platform's credentials it may be left out when a
    /// catalogued API has this base URL.
    #[arg(long)]
    pub bin: Option<String>,
    /// The SLA response time the suite's 95th percentile must meet, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub sla_ms: u64,
    /// The time-out of each call, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// A test customer's IIN (repeatable); by default the standard's sandbox customers.
    #[arg(long = "customer", value_name = "IIN")]
    pub customers: Vec<String>,
    /// Write the results as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Instead of the platform's credentials: the client certificate (PEM chain) to present.
    #[arg(long, value_name = "FILE", requires_all = ["key", "signing_key", "kid", "issuer"])]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) to trust for the bank's server certificate: besides the system's with --cert; with
    /// the platform's credentials, instead of `gateway.provider_ca_file`.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The ES256 key (PKCS#8 PEM) that signs the consent header, published in the JWKS the bank trusts.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub signing_key: Option<PathBuf>,
    /// The key id of --signing-key in that JWKS.
    #[arg(long, requires = "cert")]
    pub kid: Option<String>,
    /// The header's issuer: the URL the bank expects (the platform's, or the bank's test issuer).
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
}

pub async fn run(global: &GlobalArgs, command: ConformanceCommand) -> Result<(), Failure> {
    let ConformanceCommand::Run(args) = command;
    crate::logging::init_cli();
    for iin in &args.customers {
        if crate::kz::Iin::parse(iin).is_err() {
            return Err(usage(&format!("--customer {iin:?} is not a valid IIN")));
        }
    }
    if !args.base_url.starts_with("https://") {
        return Err(usage("--base-url must be an https:// URL"));
    }
    let (credentials, bin) = match (&args.cert, &args.key, &args.signing_key, &args.kid, &args.issuer) {
        (Some(cert), Some(key), Some(signing_key), Some(kid), Some(issuer)) => {
            let ca = args.ca.as_deref().map(read).transpose()?;
            let credentials =
                Credentials::explicit(&read(cert)?, &read(key)?, ca.as_deref(), &read(signing_key)?, kid, issuer)
                    .map_err(|e| usage(&e.to_string()))?;
            let bin = args.bin.clone().ok_or_else(|| usage("--bin is required with explicit credentials"))?;
            (credentials, bin)
        }
        _ => platform(global, &args).await?,
    };
    if crate::kz::Bin::parse(&bin).is_err() {
        return Err(usage(&format!("{bin:?} is not a valid BIN")));
    }
    let target = Target {
        base_url: args.base_url.clone(),
        bin,
        sla_ms: args.sla_ms,
        timeout_ms: args.timeout_ms,
        customers: args.customers.clone(),
        with_customers: true,
    };
    let report = suite::run(&target, &credentials, &crate::clock::Clock::system()).await;
    print!("{}", text(&report));
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&report))
            .map_err(|e| anyhow::anyhow!("cannot write the JUnit report {}: {e}", path.display()))?;
    }
    match report.failed() {
        0 => Ok(()),
        n => Err(anyhow::anyhow!("{n} conformance case(s) failed").into()),
    }
}

/// The platform's credentials from its configuration and data directory, and the BIN (given, or the provider's of
/// the catalogued API with this base URL).
async fn platform(global: &GlobalArgs, args: &RunArgs) -> Result<(Credentials, String), Failure> {
    let mut config = load_config(global)?;
    if let Some(ca) = &args.ca {
        config.gateway.provider_ca_file = ca.clone();
    }
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(&config), false)?;
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => {
            let url = args.base_url.trim_end_matches('/').to_string();
            db.read(move |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT o.bin FROM apis a JOIN organisations o ON o.id = a.organisation_id
                     WHERE a.sandbox_base_url = ?1 OR a.production_base_url = ?1 ORDER BY a.id DESC LIMIT 1",
                    [&url],
                    |r| r.get::<_, String>(0),
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?
            .ok_or_else(|| usage("--bin is required: no catalogued API has this base URL"))?
        }
    };
    let issuer = args.issuer.clone().unwrap_or_else(|| config.server.public_url.trim_end_matches('/').to_string());
    let signer = crate::pki::signing::Signer::new(std::sync::Arc::new(config.clone()));
    // The platform's own credentials reach only what the platform's checks may reach.
    let guard = crate::egress::Guard::for_purpose(
        &config,
        crate::egress::Purpose::Banks,
        std::sync::Arc::new(crate::egress::SystemLookup),
    );
    let credentials = Credentials::platform(&config, db, signer, &issuer, guard).map_err(|e| usage(&e.to_string()))?;
    Ok((credentials, bin))
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| usage(&format!("cannot read {}: {e}", path.display())))
}

fn usage(message: &str) -> Failure {
    Failure::Config(crate::config::ConfigError::Key {
        source_name: "command line".into(),
        key: "conformance".into(),
        message: message.into(),
    })
}

fn outcome(outcome: FindingOutcome) -> &'static str {
    match outcome {
        FindingOutcome::Passed => "PASS",
        FindingOutcome::Failed => "FAIL",
        FindingOutcome::Skipped => "SKIP",
    }
}

/// One line per case with its evidence below, then the summary.
pub fn text(report: &SuiteReport) -> String {
    let mut out = format!("conformance suite against {}\n", report.base_url);
    for result in &report.cases {
        let _ = writeln!(
            out,
            "{:<4} {:<28} {:<8} {}",
            outcome(result.outcome),
            result.case.id,
            result.case.severity.as_str(),
            result.case.description
        );
        if !result.evidence.is_empty() {
            let _ = writeln!(out, "     {}", result.evidence);
        }
    }
    let latency = match (report.p95_ms, report.max_ms) {
        (Some(p95), Some(max)) => format!(", p95 {p95} ms, max {max} ms"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{} passed, {} failed, {} skipped of {} cases; {} calls{latency}",
        report.count(FindingOutcome::Passed),
        report.failed(),
        report.count(FindingOutcome::Skipped),
        report.cases.len(),
        report.calls,
    );
    out
}

/// XML text with the five special characters escaped and control characters dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\n' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// The report as JUnit XML: one testsuite, one testcase per case (a failure or a skip with the evidence).
pub fn junit(report: &SuiteReport) -> String {
    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let total: i64 = report.cases.iter().map(|c| c.elapsed_ms).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"kopir conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        report.cases.len(),
        report.failed(),
        report.count(FindingOutcome::Skipped)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"kopir-ais-v1 conformance\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" \
         timestamp=\"{}\" time=\"{}\">",
        report.cases.len(),
        report.failed(),
        report.count(FindingOutcome::Skipped),
        xml(&report.started_at),
        seconds(total)
    );
    let _ =
        writeln!(out, "    <properties><property name=\"base_url\" value=\"{}\"/></properties>", xml(&report.base_url));
    for result in &report.cases {
        let _ = write!(
            out,
            "    <testcase classname=\"conformance.{}\" name=\"{}\" time=\"{}\"",
            result.case.severity.as_str(),
            xml(result.case.id),
            seconds(result.elapsed_ms)
        );
        match result.outcome {
            FindingOutcome::Passed => {
                let _ = writeln!(out, ">\n      <system-out>{}</system-out>\n    </testcase>", xml(&result.evidence));
            }
            FindingOutcome::Failed => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml(result.case.description),
                    result.case.severity.as_str(),
                    xml(&result.evidence)
                );
            }
            FindingOutcome::Skipped => {
                let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(&result.evidence));
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(xml("a<b & \"c\" 'd'>\u{7}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
    }
}
