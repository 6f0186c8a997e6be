//! Accreditation: applications (roles asked for, the information-security questionnaire, contacts, documents), the
//! operator's decisions, the accreditation certificates issued on approval, and the lifecycle of an accredited
//! participant (suspend, reinstate, revoke). The state changes live here once; the console and the CLI both call
//! them inside their own write transaction, with the audit entry appended in the same transaction.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{OrgStatus, Organisation};
use crate::audit::{self, Event, Outcome};
use crate::clock;
use crate::kz::Bin;
use time::OffsetDateTime;

/// Largest accepted document.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;
/// Most documents one application may carry.
pub const MAX_DOCUMENTS: usize = 10;
/// Body limit of the application form: every document at its largest, plus the form fields.
pub const MAX_FORM_BYTES: usize = MAX_DOCUMENTS * MAX_DOCUMENT_BYTES + 256 * 1024;
/// How long an accreditation certificate is valid.
pub const VALIDITY_YEARS: i32 = 3;

crate::text_enum! {
    /// Where an application stands (stored in `accreditation_applications.status`).
    pub enum AppStatus {
        Draft = "draft",
        Submitted = "submitted",
        ChangesRequested = "changes_requested",
        Approved = "approved",
        Rejected = "rejected",
    }
}

impl AppStatus {
    pub fn text_key(self) -> &'static str {
        match self {
            AppStatus::Draft => "app_status.draft",
            AppStatus::Submitted => "app_status.submitted",
            AppStatus::ChangesRequested => "app_status.changes_requested",
            AppStatus::Approved => "app_status.approved",
            AppStatus::Rejected => "app_status.rejected",
        }
    }

    /// Open applications block a new one; the applicant may edit those that are not with the operator.
    pub fn is_open(self) -> bool {
        matches!(self, AppStatus::Draft | AppStatus::Submitted | AppStatus::ChangesRequested)
    }

    pub fn editable(self) -> bool {
        matches!(self, AppStatus::Draft | AppStatus::ChangesRequested)
    }
}

/// The fixed information-security questionnaire, stored as JSON in `questionnaire`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Questionnaire {
    /// ISO/IEC 27001 or an equivalent information-security management system.
    pub isms: bool,
    /// Which standard / certificate, when `isms`.
    #[serde(default)]
    pub isms_detail: String,
    pub security_officer_name: String,
    pub security_officer_email: String,
    /// A 24/7 incident-response phone.
    pub incident_phone: String,
    pub pentest: bool,
    /// Date of the last penetration test (YYYY-MM-DD), when `pentest`.
    #[serde(default)]
    pub pentest_date: String,
    pub data_in_kz: bool,
    pub encryption_at_rest: bool,
}

impl Questionnaire {
    /// Field-by-field checks; each error is (field, text key).
    pub fn validate(&self, errors: &mut Vec<(&'static str, &'static str)>, today: time::Date) {
        if self.isms && self.isms_detail.trim().is_empty() {
            errors.push(("isms_detail", "apply.error.isms_detail"));
        }
        if self.security_officer_name.trim().is_empty() || self.security_officer_name.len() > 200 {
            errors.push(("security_officer_name", "apply.error.officer_name"));
        }
        if !super::email_acceptable(&self.security_officer_email) {
            errors.push(("security_officer_email", "register.error.email"));
        }
        if !super::phone_acceptable(&self.incident_phone) {
            errors.push(("incident_phone", "register.error.phone"));
        }
        if self.pentest && !pentest_date_acceptable(&self.pentest_date, today) {
            errors.push(("pentest_date", "apply.error.pentest_date"));
        }
    }
}

/// A date in the last 12 months, not in the future.
fn pentest_date_acceptable(s: &str, today: time::Date) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let Ok(date) = time::Date::parse(s.trim(), &format) else { return false };
    date <= today && date > today - time::Duration::days(366)
}

/// An application as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub id: i64,
    pub organisation_id: i64,
    pub wants_provider: bool,
    pub wants_user: bool,
    pub questionnaire: Questionnaire,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub status: AppStatus,
    pub decision_reason: String,
    pub decided_at: Option<String>,
    pub submitted_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const APP_COLUMNS: &str = "id, organisation_id, wants_provider, wants_user, questionnaire, contact_name, \
                           contact_email, contact_phone, status, decision_reason, decided_at, submitted_at, \
                           created_at, updated_at";

fn conversion(col: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, what.into())
}

fn app_from_row(r: &Row) -> rusqlite::Result<Application> {
    let questionnaire: String = r.get("questionnaire")?;
    Ok(Application {
        id: r.get("id")?,
        organisation_id: r.get("organisation_id")?,
        wants_provider: r.get("wants_provider")?,
        wants_user: r.get("wants_user")?,
        questionnaire: serde_json::from_str(&questionnaire).map_err(|e| conversion(4, format!("questionnaire {e}")))?,
        contact_name: r.get("contact_name")?,
        contact_email: r.get("contact_email")?,
        contact_phone: r.get("contact_phone")?,
        status: r.get("status")?,
        decision_reason: r.get("decision_reason")?,
        decided_at: r.get("decided_at")?,
        submitted_at: r.get("submitted_at")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// How many applications are at `status`.
pub fn count_applications(conn: &Connection, status: AppStatus) -> rusqlite::Result<i64> {
    conn.query_row("SELECT count(*) FROM accreditation_applications WHERE status = ?1", [status], |r| r.get(0))
}

pub fn application(conn: &Connection, id: i64) -> rusqlite::Result<Option<Application>> {
    conn.query_row(&format!("SELECT {APP_COLUMNS} FROM accreditation_applications WHERE id = ?1"), [id], app_from_row)
        .optional()
}

/// The organisation's most recent application, open or not.
pub fn latest_application(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Option<Application>> {
    conn.query_row(
        &format!(
            "SELECT {APP_COLUMNS} FROM accreditation_applications WHERE organisation_id = ?1 ORDER BY id DESC LIMIT 1"
        ),
        [organisation_id],
        app_from_row,
    )
    .optional()
}

/// An application with its organisation, for the operator's queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    pub application: Application,
    pub organisation_name: String,
    pub organisation_bin: String,
}

/// Every application: submitted ones first, then the rest; oldest first within each group.
pub fn queue(conn: &Connection) -> rusqlite::Result<Vec<QueueEntry>> {
    let columns: Vec<String> = APP_COLUMNS.split(", ").map(|c| format!("a.{}", c.trim())).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, o.name AS organisation_name, o.bin AS organisation_bin FROM accreditation_applications a JOIN organisations o ON o.id = a.organisation_id
         ORDER BY a.status <> 'submitted', coalesce(a.submitted_at, a.created_at), a.id",
        columns.join(", ")
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(QueueEntry {
            application: app_from_row(r)?,
            organisation_name: r.get("organisation_name")?,
            organisation_bin: r.get("organisation_bin")?,
        })
    })?;
    rows.collect()
}

/// A document's description (its bytes are read only when downloaded).
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub id: i64,
    pub application_id: i64,
    pub kind: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_at: String,
}

impl Document {
    pub fn size_text(&self) -> String {
        if self.size >= 1024 * 1024 {
            format!("{:.1} MiB", self.size as f64 / (1024.0 * 1024.0))
        } else {
            format!("{:.1} KiB", self.size as f64 / 1024.0)
        }
    }
}

pub fn documents(conn: &Connection, application_id: i64) -> rusqlite::Result<Vec<Document>> {
    let mut stmt = conn.prepare(
        "SELECT id, application_id, kind, filename, content_type, size, sha256, uploaded_at FROM application_documents
         WHERE application_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([application_id], |r| {
        Ok(Document {
            id: r.get("id")?,
            application_id: r.get("application_id")?,
            kind: r.get("kind")?,
            filename: r.get("filename")?,
            content_type: r.get("content_type")?,
            size: r.get("size")?,
            sha256: r.get("sha256")?,
            uploaded_at: r.get("uploaded_at")?,
        })
    })?;
    rows.collect()
}

/// A document's name, type, owning organisation and bytes.
pub struct DocumentContent {
    pub filename: String,
    pub content_type: String,
    pub organisation_id: i64,
    pub content: Vec<u8>,
}

pub fn document_content(conn: &Connection, id: i64) -> rusqlite::Result<Option<DocumentContent>> {
    conn.query_row(
        "SELECT d.filename, d.content_type, a.organisation_id, d.content FROM application_documents d
         JOIN accreditation_applications a ON a.id = d.application_id WHERE d.id = ?1",
        [id],
        |r| {
            Ok(DocumentContent {
                filename: r.get("filename")?,
                content_type: r.get("content_type")?,
                organisation_id: r.get("organisation_id")?,
                content: r.get("content")?,
            })
        },
    )
    .optional()
}

/// The type of a document from its first bytes: PDF, PNG or JPEG; anything else is refused whatever it claims.
pub fn sniff_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// A file name safe to store and to put into a Content-Disposition header: no paths, no quotes, no controls.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | ';' | '\\'))
        .take(120)
        .collect::<String>()
        .trim()
        .to_string();
    if cleaned.is_empty() { "document".to_string() } else { cleaned }
}

/// An uploaded, checked document.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub filename: String,
    pub content_type: &'static str,
    pub content: Vec<u8>,
}

/// What the applicant typed.
#[derive(Debug, Clone, Default)]
pub struct ApplicationInput {
    pub wants_provider: bool,
    pub wants_user: bool,
    pub questionnaire: Questionnaire,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
}

impl ApplicationInput {
    pub fn validate(&self, today: time::Date) -> Vec<(&'static str, &'static str)> {
        let mut errors = Vec::new();
        if !self.wants_provider && !self.wants_user {
            errors.push(("wants_provider", "apply.error.roles"));
        }
        self.questionnaire.validate(&mut errors, today);
        if self.contact_name.trim().is_empty() || self.contact_name.len() > 200 {
            errors.push(("contact_name", "apply.error.contact_name"));
        }
        if !super::email_acceptable(&self.contact_email) {
            errors.push(("contact_email", "register.error.email"));
        }
        if !super::phone_acceptable(&self.contact_phone) {
            errors.push(("contact_phone", "register.error.phone"));
        }
        errors
    }

    pub fn from_application(a: &Application) -> ApplicationInput {
        ApplicationInput {
            wants_provider: a.wants_provider,
            wants_user: a.wants_user,
            questionnaire: a.questionnaire.clone(),
            contact_name: a.contact_name.clone(),
            contact_email: a.contact_email.clone(),
            contact_phone: a.contact_phone.clone(),
        }
    }
}

pub use crate::audit::Actor;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved {
        application_id: i64,
        status: AppStatus,
    },
    /// The organisation may not apply now (not registered, or its application is with the operator).
    NotAllowed,
    TooManyDocuments,
    /// Submission needs at least one document.
    NoDocuments,
    /// Submission needs the current accession agreement of each role asked for accepted by an administrator.
    AgreementNotAccepted(Vec<crate::docs::agreements::Kind>),
}

/// Saves the organisation's application (a draft, or submitted to the operator), with any new documents. Edits
/// the open draft / changes-requested application if there is one, else starts a new one.
pub fn save_application(
    tx: &Transaction,
    org: &Organisation,
    input: &ApplicationInput,
    new_documents: &[NewDocument],
    submit: bool,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<SaveOutcome> {
    if org.status != OrgStatus::Registered {
        return Ok(SaveOutcome::NotAllowed);
    }
    let moment = now;
    let now = clock::rfc3339(now);
    let questionnaire = serde_json::to_string(&input.questionnaire).map_err(|e| conversion(0, e.to_string()))?;
    let status = if submit { AppStatus::Submitted } else { AppStatus::Draft };
    let current = latest_application(tx, org.id)?.filter(|a| a.status.is_open());
    if current.as_ref().is_some_and(|a| !a.status.editable()) {
        return Ok(SaveOutcome::NotAllowed);
    }
    // Checks first, so a refusal writes nothing.
    let existing: i64 = match &current {
        Some(a) => {
            tx.query_row("SELECT count(*) FROM application_documents WHERE application_id = ?1", [a.id], |r| r.get(0))?
        }
        None => 0,
    };
    if existing as usize + new_documents.len() > MAX_DOCUMENTS {
        return Ok(SaveOutcome::TooManyDocuments);
    }
    if submit && existing == 0 && new_documents.is_empty() {
        return Ok(SaveOutcome::NoDocuments);
    }
    if submit {
        let kinds = crate::docs::agreements::Kind::for_roles(input.wants_provider, input.wants_user);
        let missing = crate::docs::agreements::missing(tx, org.id, &kinds)?;
        if !missing.is_empty() {
            return Ok(SaveOutcome::AgreementNotAccepted(missing));
        }
    }
    let (id, previous) = match current {
        Some(a) => {
            tx.execute(
                "UPDATE accreditation_applications SET wants_provider = ?2, wants_user = ?3, questionnaire = ?4,
                        contact_name = ?5, contact_email = ?6, contact_phone = ?7, status = ?8, updated_at = ?9,
                        submitted_at = CASE WHEN ?10 THEN ?9 ELSE submitted_at END
                 WHERE id = ?1",
                params![
                    a.id,
                    input.wants_provider,
                    input.wants_user,
                    questionnaire,
                    input.contact_name.trim(),
                    input.contact_email.trim(),
                    input.contact_phone.trim(),
                    status,
                    now,
                    submit
                ],
            )?;
            (a.id, Some(a.status))
        }
        None => {
            tx.execute(
                "INSERT INTO accreditation_applications (organisation_id, wants_provider, wants_user, questionnaire,
                        contact_name, contact_email, contact_phone, status, submitted_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?9 THEN ?10 END, ?10, ?10)",
                params![
                    org.id,
                    input.wants_provider,
                    input.wants_user,
                    questionnaire,
                    input.contact_name.trim(),
                    input.contact_email.trim(),
                    input.contact_phone.trim(),
                    status,
                    submit,
                    now
                ],
            )?;
            (tx.last_insert_rowid(), None)
        }
    };
    let mut stored = Vec::new();
    for doc in new_documents {
        let sha = crate::digest::sha256_hex(&doc.content);
        tx.execute(
            "INSERT INTO application_documents (application_id, kind, filename, content_type, size, sha256, content,
                                                uploaded_at)
             VALUES (?1, 'supporting', ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, doc.filename, doc.content_type, doc.content.len() as i64, sha, doc.content, now],
        )?;
        stored.push(serde_json::json!({ "filename": doc.filename, "type": doc.content_type, "sha256": sha }));
    }
    let action = match (submit, previous) {
        (true, Some(AppStatus::ChangesRequested)) => "participants.application.resubmitted",
        (true, _) => "participants.application.submitted",
        (false, _) => "participants.application.saved",
    };
    audit::append(
        tx,
        &Event::new(&actor.name, action, Outcome::Success)
            .at(moment)
            .organisation(org.bin.as_str())
            .object(format!("application:{id}"))
            .source(&actor.source)
            .detail(serde_json::json!({
                "provider": input.wants_provider,
                "user": input.wants_user,
                "documents_added": stored,
            })),
    )?;
    Ok(SaveOutcome::Saved { application_id: id, status })
}

crate::text_enum! {
    /// The operator's decision on a submitted application (the words the decision form posts).
    pub enum Decision {
        Approve = "approve",
        Reject = "reject",
        RequestChanges = "request_changes",
    }
}

impl Decision {
    fn status(self) -> AppStatus {
        match self {
            Decision::Approve => AppStatus::Approved,
            Decision::Reject => AppStatus::Rejected,
            Decision::RequestChanges => AppStatus::ChangesRequested,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    Decided {
        accreditation: Option<String>,
    },
    NotFound,
    /// Only submitted applications of registered organisations are decided.
    NotSubmitted,
    ReasonRequired,
    /// Another organisation holds the BIN: it was accredited with it (a BIN is exclusive only from accreditation on,
    /// so registrations never claim one).
    BinHeld,
    /// The organisation has not accepted the current accession agreement of a role it asks for (a new version may
    /// have been recorded since it applied).
    AgreementNotAccepted(Vec<crate::docs::agreements::Kind>),
}

/// Whether an organisation other than `organisation_id` holds `bin`: accredited with it, and so also while
/// suspended or revoked (the schema's partial unique index says the same).
pub fn bin_held_by_another(conn: &Connection, bin: &Bin, organisation_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM organisations WHERE bin = ?1 AND id <> ?2 AND status <> 'registered')",
        params![bin, organisation_id],
        |r| r.get(0),
    )
}

/// Records the operator's decision on a submitted application. Approval issues the accreditation certificate and
/// makes the organisation accredited in the same transaction.
pub fn decide(
    tx: &Transaction,
    application_id: i64,
    decision: Decision,
    reason: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<DecideOutcome> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Ok(DecideOutcome::ReasonRequired);
    }
    let Some(app) = application(tx, application_id)? else { return Ok(DecideOutcome::NotFound) };
    let Some(org) = super::organisation(tx, app.organisation_id)? else { return Ok(DecideOutcome::NotFound) };
    if app.status != AppStatus::Submitted || org.status != OrgStatus::Registered {
        return Ok(DecideOutcome::NotSubmitted);
    }
    if decision == Decision::Approve && bin_held_by_another(tx, &org.bin, org.id)? {
        return Ok(DecideOutcome::BinHeld);
    }
    if decision == Decision::Approve {
        let kinds = crate::docs::agreements::Kind::for_roles(app.wants_provider, app.wants_user);
        let missing = crate::docs::agreements::missing(tx, org.id, &kinds)?;
        if !missing.is_empty() {
            return Ok(DecideOutcome::AgreementNotAccepted(missing));
        }
    }
    let now_text = clock::rfc3339(now);
    tx.execute(
        "UPDATE accreditation_applications SET status = ?2, decision_reason = ?3, decided_by = ?4, decided_at = ?5,
                updated_at = ?5
         WHERE id = ?1",
        params![app.id, decision.status(), reason, actor.user_id, now_text],
    )?;
    let mut number = None;
    if decision == Decision::Approve {
        let year = now.year();
        let prefix = format!("KOPIR-AC-{year}-");
        let last: Option<i64> = tx.query_row(
            "SELECT max(CAST(substr(number, length(?1) + 1) AS INTEGER)) FROM accreditations
             WHERE substr(number, 1, length(?1)) = ?1",
            [&prefix],
            |r| r.get(0),
        )?;
        let n = format!("{prefix}{:06}", last.unwrap_or(0) + 1);
        let valid_until = now.replace_year(year + VALIDITY_YEARS).unwrap_or(now + time::Duration::days(365 * 3));
        tx.execute(
            "UPDATE accreditations SET status = 'superseded' WHERE organisation_id = ?1 AND status IN ('valid', 'suspended')",
            [org.id],
        )?;
        tx.execute(
            "INSERT INTO accreditations (number, organisation_id, application_id, is_provider, is_user, issued_at,
                                         valid_until, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'valid')",
            params![n, org.id, app.id, app.wants_provider, app.wants_user, now_text, clock::rfc3339(valid_until)],
        )?;
        tx.execute(
            "UPDATE organisations SET status = 'accredited', status_reason = ?2, is_provider = ?3, is_user = ?4,
                    updated_at = ?5
             WHERE id = ?1",
            params![org.id, reason, app.wants_provider, app.wants_user, now_text],
        )?;
        number = Some(n);
    }
    let action = match decision {
        Decision::Approve => "participants.application.approved",
        Decision::Reject => "participants.application.rejected",
        Decision::RequestChanges => "participants.application.changes_requested",
    };
    audit::append(
        tx,
        &Event::new(&actor.name, action, Outcome::Success)
            .at(now)
            .organisation(org.bin.as_str())
            .object(format!("application:{}", app.id))
            .source(&actor.source)
            .detail(serde_json::json!({
                "reason": reason,
                "accreditation": number,
                "provider": app.wants_provider,
                "user": app.wants_user,
            })),
    )?;
    // The organisation's inbox carries the decision too (it was a banner on the accreditation page only).
    let kind = match decision {
        Decision::Approve => "accreditation.approved",
        Decision::Reject => "accreditation.rejected",
        Decision::RequestChanges => "accreditation.changes_requested",
    };
    crate::notify::inbox::add(tx, org.id, kind, &serde_json::json!({"application_id": app.id}), now)?;
    Ok(DecideOutcome::Decided { accreditation: number })
}

crate::text_enum! {
    /// Where an accreditation certificate stands (stored in `accreditations.status`).
    pub enum CertificateStatus {
        Valid = "valid",
        Suspended = "suspended",
        Revoked = "revoked",
        /// Replaced by a later accreditation of the same organisation.
        Superseded = "superseded",
    }
}

/// An accreditation certificate.
#[derive(Debug, Clone, Serialize)]
pub struct Accreditation {
    pub number: String,
    pub organisation_id: i64,
    pub application_id: i64,
    pub is_provider: bool,
    pub is_user: bool,
    pub issued_at: String,
    pub valid_until: String,
    pub status: CertificateStatus,
}

impl Accreditation {
    pub fn issued_date(&self) -> &str {
        self.issued_at.get(..10).unwrap_or(&self.issued_at)
    }

    pub fn valid_until_date(&self) -> &str {
        self.valid_until.get(..10).unwrap_or(&self.valid_until)
    }

    pub fn status_key(&self) -> &'static str {
        match self.status {
            CertificateStatus::Valid => "cert_status.valid",
            CertificateStatus::Suspended => "cert_status.suspended",
            CertificateStatus::Revoked => "cert_status.revoked",
            CertificateStatus::Superseded => "cert_status.superseded",
        }
    }
}

fn accreditation_from_row(r: &Row) -> rusqlite::Result<Accreditation> {
    Ok(Accreditation {
        number: r.get("number")?,
        organisation_id: r.get("organisation_id")?,
        application_id: r.get("application_id")?,
        is_provider: r.get("is_provider")?,
        is_user: r.get("is_user")?,
        issued_at: r.get("issued_at")?,
        valid_until: r.get("valid_until")?,
        status: r.get("status")?,
    })
}

const ACC_COLUMNS: &str =
    "number, organisation_id, application_id, is_provider, is_user, issued_at, valid_until, status";

/// The organisation's current accreditation: the newest that is not superseded.
pub fn current_accreditation(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Option<Accreditation>> {
    conn.query_row(
        &format!(
            "SELECT {ACC_COLUMNS} FROM accreditations WHERE organisation_id = ?1 AND status <> 'superseded'
             ORDER BY issued_at DESC, number DESC LIMIT 1"
        ),
        [organisation_id],
        accreditation_from_row,
    )
    .optional()
}

pub fn accreditations_of(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Vec<Accreditation>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ACC_COLUMNS} FROM accreditations WHERE organisation_id = ?1 ORDER BY issued_at DESC, number DESC"
    ))?;
    let rows = stmt.query_map([organisation_id], accreditation_from_row)?;
    rows.collect()
}

crate::text_enum! {
    /// A change of an accredited participant's standing (the words the console and the CLI take).
    pub enum Lifecycle {
        Suspend = "suspend",
        Reinstate = "reinstate",
        /// Final: a revoked participant must register anew.
        Revoke = "revoke",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleOutcome {
    Changed {
        from: OrgStatus,
        to: OrgStatus,
        sessions_ended: usize,
    },
    NotFound,
    /// The change does not apply to the participant's current status (e.g. reinstating an accredited one).
    NotApplicable(OrgStatus),
    ReasonRequired,
}

/// Suspends, reinstates or revokes an organisation: its status and reason, its accreditation certificate's status,
/// the end of its employees' sessions (suspension and revocation) and the audit entry — all in `tx`.
pub fn change_standing(
    tx: &Transaction,
    organisation_id: i64,
    change: Lifecycle,
    reason: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<LifecycleOutcome> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Ok(LifecycleOutcome::ReasonRequired);
    }
    let Some(org) = super::organisation(tx, organisation_id)? else { return Ok(LifecycleOutcome::NotFound) };
    let (to, accreditation_from, accreditation_to) = match (change, org.status) {
        (Lifecycle::Suspend, OrgStatus::Accredited) => (OrgStatus::Suspended, "valid", "suspended"),
        (Lifecycle::Reinstate, OrgStatus::Suspended) => (OrgStatus::Accredited, "suspended", "valid"),
        (Lifecycle::Revoke, OrgStatus::Accredited | OrgStatus::Suspended) => (OrgStatus::Revoked, "", "revoked"),
        (_, other) => return Ok(LifecycleOutcome::NotApplicable(other)),
    };
    tx.execute(
        "UPDATE organisations SET status = ?2, status_reason = ?3, updated_at = ?4 WHERE id = ?1",
        params![org.id, to, reason, clock::rfc3339(now)],
    )?;
    if accreditation_from.is_empty() {
        tx.execute(
            "UPDATE accreditations SET status = ?2 WHERE organisation_id = ?1 AND status IN ('valid', 'suspended')",
            params![org.id, accreditation_to],
        )?;
    } else {
        tx.execute(
            "UPDATE accreditations SET status = ?3 WHERE organisation_id = ?1 AND status = ?2",
            params![org.id, accreditation_from, accreditation_to],
        )?;
    }
    let sessions_ended =
        if to.is_blocked() { crate::identity::sessions::end_all_for_organisation(tx, org.id)? } else { 0 };
    let action = match change {
        Lifecycle::Suspend => "participants.organisation.suspended",
        Lifecycle::Reinstate => "participants.organisation.reinstated",
        Lifecycle::Revoke => "participants.organisation.revoked",
    };
    audit::append(
        tx,
        &Event::new(&actor.name, action, Outcome::Success)
            .at(now)
            .organisation(org.bin.as_str())
            .object(format!("organisation:{}", org.bin))
            .source(&actor.source)
            .detail(serde_json::json!({
                "reason": reason,
                "from": org.status.as_str(),
                "to": to.as_str(),
                "sessions_ended": sessions_ended,
            })),
    )?;
    Ok(LifecycleOutcome::Changed { from: org.status, to, sessions_ended })
}

/// One line of a public registry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegistryEntry {
    pub name: String,
    pub bin: String,
    pub roles: Vec<&'static str>,
    pub accreditation_number: String,
    pub accredited_since: String,
    pub valid_until: String,
    /// `Accredited` or `Suspended`.
    pub status: &'static str,
}

impl RegistryEntry {
    pub fn since_date(&self) -> &str {
        self.accredited_since.get(..10).unwrap_or(&self.accredited_since)
    }

    pub fn until_date(&self) -> &str {
        self.valid_until.get(..10).unwrap_or(&self.valid_until)
    }

    pub fn is_provider(&self) -> bool {
        self.roles.contains(&"ApiProvider")
    }

    pub fn is_user(&self) -> bool {
        self.roles.contains(&"ApiUser")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    Providers,
    Users,
}

/// The public registry: accredited and suspended participants with a current, unexpired accreditation. Revoked
/// participants are not listed; suspended ones are, marked `Suspended`, so relying parties see why calls fail.
pub fn registry(conn: &Connection, kind: RegistryKind, now: OffsetDateTime) -> rusqlite::Result<Vec<RegistryEntry>> {
    let role = match kind {
        RegistryKind::Providers => "a.is_provider",
        RegistryKind::Users => "a.is_user",
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT o.name, o.bin, a.is_provider, a.is_user, a.number, a.issued_at, a.valid_until, o.status
         FROM organisations o JOIN accreditations a ON a.organisation_id = o.id
         WHERE o.status IN ('accredited', 'suspended') AND a.status IN ('valid', 'suspended') AND {role} = 1
           AND a.valid_until > ?1
         ORDER BY o.name, o.bin"
    ))?;
    let rows = stmt.query_map([clock::rfc3339(now)], |r| {
        let provider: bool = r.get("is_provider")?;
        let user: bool = r.get("is_user")?;
        let mut roles = Vec::new();
        if provider {
            roles.push("ApiProvider");
        }
        if user {
            roles.push("ApiUser");
        }
        let issued: String = r.get("issued_at")?;
        let status: OrgStatus = r.get("status")?;
        Ok(RegistryEntry {
            name: r.get("name")?,
            bin: r.get("bin")?,
            roles,
            accreditation_number: r.get("number")?,
            accredited_since: issued,
            valid_until: r.get("valid_until")?,
            status: if status == OrgStatus::Suspended { "Suspended" } else { "Accredited" },
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store::migrate::{SCHEMA, migrate};
    /// A fixed time: these tests hand it to what they check.
    const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-25 12:00 UTC);

    fn setup() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        conn
    }

    fn input() -> ApplicationInput {
        ApplicationInput {
            wants_provider: true,
            wants_user: false,
            questionnaire: Questionnaire {
                isms: true,
                isms_detail: "ISO/IEC 27001:2022".into(),
                security_officer_name: "Officer".into(),
                security_officer_email: "sec@bank.kz".into(),
                incident_phone: "+7 727 000 00 00".into(),
                pentest: false,
                pentest_date: String::new(),
                data_in_kz: true,
                encryption_at_rest: true,
            },
            contact_name: "Contact".into(),
            contact_email: "c@bank.kz".into(),
            contact_phone: "+7 727 000 00 01".into(),
        }
    }

    #[test]
    fn sniffing_trusts_bytes_not_names() {
        assert_eq!(sniff_type(b"%PDF-1.4\n..."), Some("application/pdf"));
        assert_eq!(sniff_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_type(b"MZ\x90\x00"), None);
        assert_eq!(clean_filename("../../etc/\"x\".pdf"), "x.pdf");
        assert_eq!(clean_filename(""), "document");
    }

    #[test]
    fn approval_issues_sequential_numbers_and_suspension_blocks() {
        let mut conn = setup();
        let tx = conn.transaction().unwrap();
        let actor = Actor { name: "test".into(), source: "test".into(), user_id: None };
        crate::docs::agreements::sync(&tx, NOW).unwrap();
        let mut numbers = Vec::new();
        // Two valid BINs (the 12th digit is the control digit).
        for (i, bin) in ["000000000000", "000000000010"].iter().enumerate() {
            let org_id = super::super::insert(
                &tx,
                &super::super::NewOrganisation {
                    bin: Bin::parse(bin).unwrap(),
                    name: format!("Bank {i}"),
                    licence_number: "L".into(),
                    contact_email: "a@b.kz".into(),
                    contact_phone: "+77270000000".into(),
                },
                NOW,
            )
            .unwrap();
            let org = super::super::organisation(&tx, org_id).unwrap().unwrap();
            let doc =
                NewDocument { filename: "a.pdf".into(), content_type: "application/pdf", content: b"%PDF-1".to_vec() };
            // Without the accession agreement accepted, nothing is submitted.
            assert_eq!(
                save_application(&tx, &org, &input(), std::slice::from_ref(&doc), true, &actor, NOW).unwrap(),
                SaveOutcome::AgreementNotAccepted(vec![crate::docs::agreements::Kind::Provider])
            );
            let admin = crate::identity::create_member(
                &tx,
                &format!("admin{i}"),
                "Admin",
                "admin@bank.kz",
                crate::identity::Role::ParticipantAdmin,
                Some(org_id),
                "not-a-hash",
                false,
                NOW,
            )
            .unwrap();
            let admin = Actor { name: format!("user:admin{i}"), source: "test".into(), user_id: Some(admin) };
            let accepted = crate::docs::agreements::accept_current(
                &tx,
                org.party(),
                &admin,
                &[crate::docs::agreements::Kind::Provider],
                crate::i18n::Lang::En,
                NOW,
            )
            .unwrap();
            assert_eq!(accepted, vec![crate::docs::agreements::AcceptOutcome::Accepted]);
            let SaveOutcome::Saved { application_id, .. } =
                save_application(&tx, &org, &input(), &[doc], true, &actor, NOW).unwrap()
            else {
                panic!("not saved")
            };
            assert_eq!(
                decide(&tx, application_id, Decision::Approve, " ", &actor, NOW).unwrap(),
                DecideOutcome::ReasonRequired
            );
            let DecideOutcome::Decided { accreditation: Some(n) } =
                decide(&tx, application_id, Decision::Approve, "ok", &actor, NOW).unwrap()
            else {
                panic!("not approved")
            };
            numbers.push(n);
        }
        let year = NOW.year();
        assert_eq!(numbers, vec![format!("KOPIR-AC-{year}-000001"), format!("KOPIR-AC-{year}-000002")]);
        assert_eq!(registry(&tx, RegistryKind::Providers, NOW).unwrap().len(), 2);
        assert!(registry(&tx, RegistryKind::Users, NOW).unwrap().is_empty());
        let out = change_standing(&tx, 1, Lifecycle::Suspend, "audit finding", &actor, NOW).unwrap();
        assert!(matches!(out, LifecycleOutcome::Changed { to: OrgStatus::Suspended, .. }));
        assert_eq!(
            change_standing(&tx, 1, Lifecycle::Suspend, "again", &actor, NOW).unwrap(),
            LifecycleOutcome::NotApplicable(OrgStatus::Suspended)
        );
        let listed = registry(&tx, RegistryKind::Providers, NOW).unwrap();
        assert_eq!(listed.iter().filter(|e| e.status == "Suspended").count(), 1);
        change_standing(&tx, 1, Lifecycle::Revoke, "final", &actor, NOW).unwrap();
        assert_eq!(registry(&tx, RegistryKind::Providers, NOW).unwrap().len(), 1);
        assert_eq!(
            change_standing(&tx, 1, Lifecycle::Reinstate, "undo", &actor, NOW).unwrap(),
            LifecycleOutcome::NotApplicable(OrgStatus::Revoked)
        );
        assert_eq!(current_accreditation(&tx, 1).unwrap().unwrap().status, CertificateStatus::Revoked);
    }
}
