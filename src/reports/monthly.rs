//! The monthly platform report: the pilot report's figures for one calendar month of the operator's days —
//! participants, customers, requests, consents, availability and latency per bank — each beside the month before,
//! rendered as a printable HTML document (self-contained, inline print styles, server-drawn SVG charts) in English,
//! Russian or Kazakh, with the same numbers in a language-neutral JSON file, and sealed by a compact JWS signed with
//! the platform's key (the auditor's snapshot's signer) whose payload binds the SHA-256 of both files, the month, the
//! schema version and the generation time. [`verify`] checks a published triple against the platform's JWKS and names
//! the file that differs.
//!
//! Files: `FILE` (HTML), `FILE.json`, `FILE.jws` ([`paths`]). The HTML and the JSON are a pure function of the
//! platform's data, the month, the language and the generation time, so the console can serve the three files of a
//! month that has ended as three downloads (each regenerated for the same generation time) that verify together.

use std::path::{Path, PathBuf};

use askama::Template;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::dashboard::{Comparison, Period};
use super::platform::PlatformFigures;
use crate::config::Config;
use crate::digest::sha256_hex;
use crate::i18n::{Lang, Texts};
use crate::pki::signing::{KeyError, Signer};
use crate::snapshot::{SnapshotError, verify_signed};
use crate::store::{Db, StoreError};

/// The version of the JSON's layout (and of the seal's payload): raised when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 1;

/// The `typ` of the seal's JWS.
pub const SEAL_TYPE: &str = "kopir-monthly-report+jwt";

#[derive(Debug, thiserror::Error)]
pub enum MonthlyError {
    #[error("{0:?} is not a month: write YYYY-MM")]
    Month(String),
    #[error("the month {0} has not begun")]
    Future(String),
    #[error("{0} exists; choose another --out")]
    Exists(PathBuf),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("{0} differs from the signed report: its SHA-256 is not the one the signature binds")]
    Differs(PathBuf),
    #[error("the seal does not match: {0}")]
    Seal(String),
    #[error(transparent)]
    Verify(#[from] SnapshotError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Reports(#[from] super::ReportsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rendering: {0}")]
    Render(String),
}

impl From<rusqlite::Error> for MonthlyError {
    fn from(error: rusqlite::Error) -> Self {
        MonthlyError::Store(StoreError::Sqlite(error))
    }
}

/// A month as `YYYY-MM`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub period: Period,
}

impl Month {
    pub fn parse(text: &str) -> Result<Month, MonthlyError> {
        let bad = || MonthlyError::Month(text.chars().take(20).collect());
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let (year, month) = (year.parse::<i16>().map_err(|_| bad())?, month.parse::<i8>().map_err(|_| bad())?);
        Ok(Month { period: Period::month(year, month).ok_or_else(bad)? })
    }

    /// The month of a local date.
    pub fn of(date: jiff::civil::Date) -> Month {
        let from = date.first_of_month();
        Month { period: Period { from, to: from.last_of_month() } }
    }

    pub fn label(&self) -> String {
        self.period.from.strftime("%Y-%m").to_string()
    }

    pub fn previous(&self) -> Month {
        Month { period: self.period.previous() }
    }
}

/// What the report is, in the JSON and the seal.
pub const REPORT_KIND: &str = "kopir-monthly-platform-report";

/// The report: what the JSON holds, field for field, and what the HTML shows. The figures are the dashboard's
/// ([`PlatformFigures`], field names stable) for the month against the month before.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub report: &'static str,
    pub schema_version: u32,
    pub month: String,
    pub previous_month: String,
    /// The operator's zone: the month's days are its local days.
    pub time_zone: String,
    pub generated_at: String,
    pub kopir_version: String,
    pub instance_id: String,
    pub figures: PlatformFigures,
}

/// The seal's payload: what the JWS binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub report: String,
    pub schema_version: u32,
    pub month: String,
    pub generated_at: String,
    /// The language of the HTML (the JSON has none).
    pub lang: String,
    pub instance_id: String,
    pub html_sha256: String,
    pub json_sha256: String,
}

/// The three files of a published report.
#[derive(Debug, Clone)]
pub struct Published {
    pub month: String,
    pub lang: Lang,
    pub generated_at: String,
    pub html: String,
    pub json: String,
    pub jws: String,
}

/// The files beside the HTML: `FILE.json` and `FILE.jws`.
pub fn paths(html: &Path) -> (PathBuf, PathBuf) {
    let name = html.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (html.with_file_name(format!("{name}.json")), html.with_file_name(format!("{name}.jws")))
}

/// The report of `month` as the platform's data stands at `now` (read-only). A month that has not begun is refused;
/// the current month runs to `now`.
pub fn collect(
    conn: &Connection,
    zone: &jiff::tz::TimeZone,
    month: Month,
    now: OffsetDateTime,
) -> Result<Report, MonthlyError> {
    let today = crate::store::calendar::local_date(zone, now.unix_timestamp()).map_err(super::ReportsError::from)?;
    if month.period.from > today {
        return Err(MonthlyError::Future(month.label()));
    }
    let figures = super::platform::figures(conn, zone, month.period, now)?;
    Ok(Report {
        report: REPORT_KIND,
        schema_version: SCHEMA_VERSION,
        month: month.label(),
        previous_month: month.previous().label(),
        time_zone: zone.iana_name().unwrap_or("UTC").to_string(),
        generated_at: crate::clock::rfc3339(now),
        kopir_version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id: crate::store::setting(conn, "instance_id")?.unwrap_or_default(),
        figures,
    })
}

/// A comparison as the report prints it: `1 150 (+15.0 %)`.
pub fn change(c: &Comparison) -> String {
    match c.percent() {
        Some(p) => format!("{p} %"),
        None if c.current == c.previous => "±0".to_string(),
        None => "—".to_string(),
    }
}

#[derive(Template)]
#[template(path = "reports/monthly.html")]
struct Document<'a> {
    t: Texts,
    r: &'a Report,
    requests_chart: String,
}

impl Document<'_> {
    fn change(&self, c: &Comparison) -> String {
        change(c)
    }

    fn role_key(&self, key: &str) -> &'static str {
        match key {
            "provider" => "monthly.role_provider",
            "user" => "monthly.role_user",
            "both" => "monthly.role_both",
            _ => "monthly.role_none",
        }
    }

    fn percent(&self, a: &super::platform::AvailabilityFigure) -> String {
        a.percent().map_or_else(|| "—".to_string(), |p| format!("{p} %"))
    }

    /// Seconds as whole minutes, rounded up.
    fn minutes(&self, seconds: &i64) -> i64 {
        (seconds + 59) / 60
    }

    fn ms(&self, ms: &Option<f64>) -> String {
        ms.map_or_else(|| "—".to_string(), |ms| format!("{ms:.0}"))
    }

    /// A request category's name in the report's language.
    fn category_name<'a>(&self, c: &'a super::platform::RequestSlaCategory) -> &'a str {
        c.name(self.t.lang)
    }

    fn priority_key(&self, priority: &str) -> &'static str {
        priority.parse::<crate::requests::Priority>().map_or("monthly.status", crate::requests::Priority::text_key)
    }

    fn status_key(&self, key: &str) -> &'static str {
        match key {
            "registered" => "status.registered",
            "accredited" => "status.accredited",
            "suspended" => "status.suspended",
            _ => "status.revoked",
        }
    }

    fn consent_key(&self, key: &str) -> &'static str {
        match key.parse::<crate::consent::Status>() {
            Ok(crate::consent::Status::AwaitingAuthorisation) => "monthly.consent_awaiting",
            Ok(crate::consent::Status::Authorised) => "monthly.consent_authorised",
            Ok(crate::consent::Status::Rejected) => "monthly.consent_rejected",
            Ok(crate::consent::Status::Revoked) => "monthly.consent_revoked",
            Ok(crate::consent::Status::Expired) => "monthly.consent_expired",
            Err(_) => "monthly.status",
        }
    }
}

/// The printable HTML of a report in `lang`.
pub fn render(report: &Report, lang: Lang) -> Result<String, MonthlyError> {
    let t = Texts { lang };
    let days: Vec<(String, u64, u64)> =
        report.figures.requests.per_day.iter().map(|d| (d.period.clone(), d.requests, d.errors)).collect();
    let requests_chart = crate::web::chart::requests_chart(&t, "requests-per-day", &days);
    Document { t, r: report, requests_chart }.render().map_err(|e| MonthlyError::Render(e.to_string()))
}

/// The report of `month` as of `now`, read on a reader connection.
pub async fn read(config: &Config, db: &Db, month: Month, now: OffsetDateTime) -> Result<Report, MonthlyError> {
    let zone = config.time_zone.zone().clone();
    db.read(move |conn| collect(conn, &zone, month, now)).await
}

/// The report's JSON, as written and signed.
pub fn json(report: &Report) -> Result<String, MonthlyError> {
    Ok(serde_json::to_string_pretty(report).map_err(|e| MonthlyError::Render(e.to_string()))? + "\n")
}

/// Collects, renders and seals the report of `month` in `lang` as of `now`.
pub async fn publish(
    config: &Config,
    db: &Db,
    signer: &Signer,
    month: Month,
    lang: Lang,
    now: OffsetDateTime,
) -> Result<Published, MonthlyError> {
    let report = read(config, db, month, now).await?;
    let html = render(&report, lang)?;
    let json = json(&report)?;
    let seal = Seal {
        report: REPORT_KIND.into(),
        schema_version: SCHEMA_VERSION,
        month: report.month.clone(),
        generated_at: report.generated_at.clone(),
        lang: lang.code().into(),
        instance_id: report.instance_id.clone(),
        html_sha256: sha256_hex(html.as_bytes()),
        json_sha256: sha256_hex(json.as_bytes()),
    };
    let jws = signer.sign(db, SEAL_TYPE, &seal).await?;
    Ok(Published { month: report.month, lang, generated_at: report.generated_at, html, json, jws })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MonthlyError + '_ {
    move |error| MonthlyError::File { path: path.to_path_buf(), error }
}

/// Writes the three files (refusing to overwrite any).
pub fn write(out: &Path, published: &Published) -> Result<(), MonthlyError> {
    let (json, jws) = paths(out);
    for path in [out, &json, &jws] {
        if path.exists() {
            return Err(MonthlyError::Exists(path.to_path_buf()));
        }
    }
    for (path, text) in [(out, &published.html), (&json, &published.json), (&jws, &published.jws)] {
        crate::pki::files::write_atomic(path, text.as_bytes(), 0o644).map_err(io(path))?;
    }
    Ok(())
}

/// What verification found, when everything holds.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub seal: Seal,
    pub kid: String,
}

/// Verifies a published report (`html` and the `.json` and `.jws` beside it) against a JWKS: the signature, then
/// each file against the digest the signature binds, then that the JSON is the month and schema the seal names.
pub fn verify(html: &Path, jwks: &serde_json::Value) -> Result<Verified, MonthlyError> {
    let (json_path, jws_path) = paths(html);
    let jws = std::fs::read_to_string(&jws_path).map_err(io(&jws_path))?;
    let (seal, kid) = verify_signed::<Seal>(&jws, SEAL_TYPE, jwks)?;
    let html_bytes = std::fs::read(html).map_err(io(html))?;
    if sha256_hex(&html_bytes) != seal.html_sha256 {
        return Err(MonthlyError::Differs(html.to_path_buf()));
    }
    let json_bytes = std::fs::read(&json_path).map_err(io(&json_path))?;
    if sha256_hex(&json_bytes) != seal.json_sha256 {
        return Err(MonthlyError::Differs(json_path));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&json_bytes).map_err(|e| MonthlyError::Seal(format!("the JSON does not parse: {e}")))?;
    if json["report"] != seal.report.as_str()
        || json["month"] != seal.month.as_str()
        || json["schema_version"] != seal.schema_version
        || json["generated_at"] != seal.generated_at.as_str()
    {
        return Err(MonthlyError::Seal("the JSON's month, schema version or generation time is not the seal's".into()));
    }
    Ok(Verified { seal, kid })
}

/// Which file of a published report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Html,
    Json,
    Jws,
}

impl Part {
    pub fn parse(name: &str) -> Option<Part> {
        match name {
            "html" => Some(Part::Html),
            "json" => Some(Part::Json),
            "jws" => Some(Part::Jws),
            _ => None,
        }
    }

    /// The download's file name: the HTML's, and the JSON and JWS named after it as `kopir report verify` expects.
    pub fn filename(self, month: &str) -> String {
        let html = format!("kopir-monthly-report-{month}.html");
        match self {
            Part::Html => html,
            Part::Json => format!("{html}.json"),
            Part::Jws => format!("{html}.jws"),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Part::Html => "text/html; charset=utf-8",
            Part::Json => "application/json",
            Part::Jws => "application/jose",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(Month::parse("2026-11").unwrap().label(), "2026-11");
        assert_eq!(Month::parse("2026-01").unwrap().previous().label(), "2025-12");
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-11-01"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_json_and_jws_sit_beside_the_html() {
        let (json, jws) = paths(Path::new("/r/nov.html"));
        assert_eq!((json, jws), (PathBuf::from("/r/nov.html.json"), PathBuf::from("/r/nov.html.jws")));
        assert_eq!(Part::Jws.filename("2026-11"), "kopir-monthly-report-2026-11.html.jws");
    }
}
