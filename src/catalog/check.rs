//! The automatic check an API passes before publication — a pluggable step.
//!
//! [`PublicationCheck`] is what publication (and the scheduled checks) call; the platform holds the one in use
//! (`state.publication_check`): the sandbox's conformance suite (`sandbox::check`), run against the API's base URL
//! as the platform calls banks. The catalogue owns only the step and what it reports — [`CheckReport`], its
//! [`Finding`]s, their [`FindingOutcome`] and [`Severity`] — and knows nothing of the sandbox (the sandbox depends
//! on the catalogue, never the other way). An API passes when no finding failed.
//!
//! Findings carry a short evidence excerpt that is never a secret and never account data: the request line, the
//! status, the content type and size, error codes, and the JSON pointers of schema violations.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::{Api, CheckRun};

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckReport> + Send + 'a>>;

crate::text_enum! {
    /// Which of an API's two base URLs a check calls.
    pub enum Environment {
        Sandbox = "sandbox",
        Production = "production",
    }
}

impl Environment {
    /// The API's base URL for this environment, without a trailing slash.
    pub fn base_url(self, api: &Api) -> &str {
        match self {
            Environment::Sandbox => api.sandbox_base_url.trim_end_matches('/'),
            Environment::Production => api.production_base_url.trim_end_matches('/'),
        }
    }
}

/// A check of an API's endpoint: run before an API is published (against its sandbox) and, once it is published, on
/// a schedule against both environments. It never fails as such: whatever goes wrong is a finding.
pub trait PublicationCheck: Send + Sync {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a>;

    /// The text key of the description of the finding `finding_id`, for the findings this check knows (others
    /// show their recorded English description).
    fn text_key(&self, finding_id: &str) -> Option<&'static str>;

    /// The API's last check (one meaning on every page, see [`super::LastCheck`]); by default from the catalogue's
    /// records of checks.
    fn last_check(&self, conn: &rusqlite::Connection, api_id: i64) -> rusqlite::Result<Option<super::LastCheck>> {
        super::last_check(conn, api_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingOutcome {
    Passed,
    Failed,
    /// Not run, because an earlier finding made it pointless.
    Skipped,
}

impl FindingOutcome {
    pub fn text_key(self) -> &'static str {
        match self {
            FindingOutcome::Passed => "catalog.finding.passed",
            FindingOutcome::Failed => "catalog.finding.failed",
            FindingOutcome::Skipped => "catalog.finding.skipped",
        }
    }

    pub fn badge(self) -> &'static str {
        match self {
            FindingOutcome::Passed => "status-active",
            FindingOutcome::Failed => "status-revoked",
            FindingOutcome::Skipped => "status-suspended",
        }
    }
}

crate::text_enum! {
    /// How much a failed case matters.
    pub enum Severity {
        /// The platform's credentials or the customers' data are not protected, or nothing works.
        Critical = "critical",
        /// A rule of the standard is broken: API users' code will trip on it.
        Major = "major",
        /// A detail of the standard.
        Minor = "minor",
    }
}

/// One thing a check looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identifier, e.g. `tls.reachable` (the conformance suite's case ids).
    pub id: String,
    /// What was checked, in English (as recorded).
    pub description: String,
    pub outcome: FindingOutcome,
    /// A short, non-secret excerpt of what was seen.
    pub evidence: String,
    /// The case's severity (absent in runs recorded before the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The text key of the description, when the check in use knows the finding (set by [`label`] for pages;
    /// never stored).
    #[serde(skip)]
    pub text_key: Option<&'static str>,
}

impl Finding {
    pub fn new(id: &str, description: &str, outcome: FindingOutcome, evidence: impl Into<String>) -> Finding {
        Finding {
            id: id.into(),
            description: description.into(),
            outcome,
            evidence: evidence.into(),
            severity: None,
            text_key: None,
        }
    }
}

/// Sets the text key of every finding of `runs` that `text_key` knows (the pages show it instead of the recorded
/// English description).
pub fn label(runs: &mut [CheckRun], text_key: impl Fn(&str) -> Option<&'static str>) {
    for finding in runs.iter_mut().flat_map(|run| run.findings.iter_mut()) {
        finding.text_key = text_key(&finding.id);
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// `sandbox` (or `production`).
    pub environment: &'static str,
    pub base_url: String,
    /// At least one finding passed and none failed.
    pub passed: bool,
    pub findings: Vec<Finding>,
    /// The 95th percentile of the response times of the check's calls (to the answer, when there was one).
    pub latency_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
}

impl CheckReport {
    pub fn new(
        environment: &'static str,
        base_url: &str,
        started_at: String,
        finished_at: String,
        findings: Vec<Finding>,
        latency_ms: Option<i64>,
    ) -> CheckReport {
        let passed = findings.iter().any(|f| f.outcome == FindingOutcome::Passed)
            && !findings.iter().any(|f| f.outcome == FindingOutcome::Failed);
        CheckReport {
            environment,
            base_url: base_url.to_string(),
            passed,
            findings,
            latency_ms,
            started_at,
            finished_at,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_report_passes_only_with_no_failure_and_something_passed() {
        let f = |o| Finding::new("x", "x", o, "");
        let report = |findings| {
            let at = "2026-11-25T12:00:00Z".to_string();
            CheckReport::new("sandbox", "u", at.clone(), at, findings, None)
        };
        assert!(report(vec![f(FindingOutcome::Passed)]).passed);
        assert!(!report(vec![]).passed);
        assert!(!report(vec![f(FindingOutcome::Skipped)]).passed);
        assert!(!report(vec![f(FindingOutcome::Passed), f(FindingOutcome::Failed)]).passed);
    }
}
