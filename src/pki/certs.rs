//! The `certificates` table: every certificate the CA made, and its revocation.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

crate::store::value::text_id! {
    /// A certificate's serial number as the platform writes it: lower-case hex of its bytes (at most 20 bytes,
    /// RFC 5280). Parse at the edge with the case a person typed folded first.
    pub struct CertSerial, |s: &str| {
        !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

crate::text_enum! {
    /// What a certificate is for.
    pub enum CertKind {
        RootCa = "root_ca",
        IssuingCa = "issuing_ca",
        Server = "server",
        PlatformClient = "platform_client",
        Client = "client",
    }
}

impl CertKind {
    /// The text key of the kind's name (pages show words, never the stored value).
    pub fn text_key(self) -> &'static str {
        match self {
            CertKind::RootCa => "cert_kind.root_ca",
            CertKind::IssuingCa => "cert_kind.issuing_ca",
            CertKind::Server => "cert_kind.server",
            CertKind::PlatformClient => "cert_kind.platform_client",
            CertKind::Client => "cert_kind.client",
        }
    }

    /// Whether `kopir ca revoke` may revoke it (the CA's own certificates need a new CA instead).
    pub fn revocable(self) -> bool {
        matches!(self, CertKind::Server | CertKind::PlatformClient | CertKind::Client)
    }
}

crate::text_enum! {
    /// RFC 5280 revocation reasons the platform uses.
    pub enum RevocationReason {
        Unspecified = "unspecified",
        KeyCompromise = "key-compromise",
        AffiliationChanged = "affiliation-changed",
        Superseded = "superseded",
        CessationOfOperation = "cessation-of-operation",
        PrivilegeWithdrawn = "privilege-withdrawn",
    }
}

impl RevocationReason {
    pub fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// A row of `certificates`.
#[derive(Debug, Clone, Serialize)]
pub struct CertRecord {
    /// Lower-case hex of the serial number's bytes.
    pub serial: String,
    pub kind: CertKind,
    pub label: String,
    pub subject: String,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub sha256: String,
    pub not_before: String,
    pub not_after: String,
    #[serde(skip)]
    pub pem: String,
    pub issued_at: String,
    pub issued_by: String,
    pub revoked_at: Option<String>,
    pub revocation_reason: Option<String>,
}

impl CertRecord {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

const COLUMNS: &str = "serial, kind, label, subject, sha256, not_before, not_after, pem, issued_at, issued_by, \
                       revoked_at, revocation_reason";

fn from_row(row: &Row) -> rusqlite::Result<CertRecord> {
    let kind: String = row.get(1)?;
    Ok(CertRecord {
        serial: row.get(0)?,
        kind: kind.parse::<CertKind>().ok().ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, format!("kind {kind}").into())
        })?,
        label: row.get(2)?,
        subject: row.get(3)?,
        sha256: row.get(4)?,
        not_before: row.get(5)?,
        not_after: row.get(6)?,
        pem: row.get(7)?,
        issued_at: row.get(8)?,
        issued_by: row.get(9)?,
        revoked_at: row.get(10)?,
        revocation_reason: row.get(11)?,
    })
}

/// Records a certificate; a certificate already recorded (same serial) is left as it is. Returns whether it was new.
pub fn insert(tx: &Transaction, record: &CertRecord) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "INSERT INTO certificates (serial, kind, label, subject, sha256, not_before, not_after, pem, issued_at, issued_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (serial) DO NOTHING",
        params![
            record.serial,
            record.kind.as_str(),
            record.label,
            record.subject,
            record.sha256,
            record.not_before,
            record.not_after,
            record.pem,
            record.issued_at,
            record.issued_by
        ],
    )?;
    Ok(n == 1)
}

pub fn by_serial(conn: &Connection, serial: &str) -> rusqlite::Result<Option<CertRecord>> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM certificates WHERE serial = ?1"), [serial], from_row).optional()
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<CertRecord>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM certificates ORDER BY issued_at, serial"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

pub fn revoked(conn: &Connection) -> rusqlite::Result<Vec<CertRecord>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {COLUMNS} FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// Marks a certificate revoked; returns false when it already was.
pub fn mark_revoked(tx: &Transaction, serial: &str, at: &str, reason: RevocationReason) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE certificates SET revoked_at = ?2, revocation_reason = ?3 WHERE serial = ?1 AND revoked_at IS NULL",
        params![serial, at, reason.as_str()],
    )?;
    Ok(n == 1)
}

/// Makes a recorded certificate belong to an application.
pub fn assign_application(tx: &Transaction, serial: &str, application_id: i64) -> rusqlite::Result<()> {
    tx.execute("UPDATE certificates SET application_id = ?2 WHERE serial = ?1", params![serial, application_id])?;
    Ok(())
}

/// Whether the certificate with this serial and fingerprint is one the platform issued and has not revoked.
/// Both must match: a serial alone could be replayed by a certificate from another issuer.
pub fn status(conn: &Connection, serial: &str, sha256: &str) -> rusqlite::Result<CertStatus> {
    Ok(match check(conn, serial, sha256, "")? {
        CertCheck::Unknown => CertStatus::Unknown,
        CertCheck::Revoked => CertStatus::Revoked,
        _ => CertStatus::Active,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Active,
    Revoked,
    Unknown,
}

/// The application a client certificate belongs to, as an mTLS caller carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppRef {
    pub id: i64,
    pub client_id: String,
    pub organisation_id: i64,
}

/// Everything that decides whether a presented certificate may call the platform now, from one read: the
/// certificate's own record, its application and that application's organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    /// Serial and fingerprint are not both on record.
    Unknown,
    Revoked,
    /// Replaced in a rotation and past its `retire_at`.
    Retired,
    /// Its application is disabled.
    ApplicationDisabled,
    /// Its application's organisation is suspended or revoked.
    OrganisationBlocked,
    /// Accepted; with its application when it belongs to one (certificates from `kopir ca issue` do not).
    Active(Option<AppRef>),
}

/// When a certificate replaced in a rotation stops being accepted, if it was replaced.
pub fn retire_at(conn: &Connection, serial: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT retire_at FROM certificates WHERE serial = ?1")?
        .query_row([serial], |r| r.get(0))
        .optional()
        .map(Option::flatten)
}

/// Judges a certificate at `now` (RFC 3339; an empty `now` ignores `retire_at`).
pub fn check(conn: &Connection, serial: &str, sha256: &str, now: &str) -> rusqlite::Result<CertCheck> {
    type Row = (String, Option<String>, Option<String>, Option<i64>, Option<String>, Option<i64>, Option<String>);
    // Cached: this runs on every mTLS request.
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT c.sha256, c.revoked_at, c.retire_at, a.id, a.client_id, a.organisation_id,
                    CASE WHEN a.id IS NULL THEN NULL WHEN a.status <> 'active' THEN 'disabled' ELSE o.status END
             FROM certificates c
             LEFT JOIN applications a ON a.id = c.application_id
             LEFT JOIN organisations o ON o.id = a.organisation_id
             WHERE c.serial = ?1",
        )?
        .query_row([serial], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .optional()?;
    let Some((stored, revoked_at, retire_at, app_id, client_id, org_id, state)) = row else {
        return Ok(CertCheck::Unknown);
    };
    if stored != sha256 {
        return Ok(CertCheck::Unknown);
    }
    if revoked_at.is_some() {
        return Ok(CertCheck::Revoked);
    }
    if let Some(retire_at) = retire_at
        && !now.is_empty()
        && retire_at.as_str() <= now
    {
        return Ok(CertCheck::Retired);
    }
    Ok(match (app_id, client_id, org_id, state.as_deref()) {
        (None, ..) => CertCheck::Active(None),
        (_, _, _, Some("disabled")) => CertCheck::ApplicationDisabled,
        (_, _, _, Some("suspended" | "revoked") | None) => CertCheck::OrganisationBlocked,
        (Some(id), Some(client_id), Some(organisation_id), _) => {
            CertCheck::Active(Some(AppRef { id, client_id, organisation_id }))
        }
        _ => CertCheck::OrganisationBlocked,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{Db, StoreError, StoreOptions};

    const NOW: &str = "2026-11-25T12:00:00Z";

    async fn verdict(db: &Db, serial: &str, sha: &str) -> CertCheck {
        let (serial, sha) = (serial.to_string(), sha.to_string());
        db.read(move |c| check(c, &serial, &sha, NOW).map_err(StoreError::from)).await.unwrap()
    }

    async fn set(db: &Db, sql: &'static str) {
        db.write(move |tx| tx.execute(sql, []).map_err(StoreError::from)).await.unwrap();
    }

    #[tokio::test]
    async fn check_judges_certificate_application_and_organisation_together() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("t.db"), StoreOptions::default(), true).unwrap();
        let (a, b) = (&"a".repeat(64), &"b".repeat(64));
        let (a2, b2) = (a.clone(), b.clone());
        db.write(move |tx| -> Result<(), StoreError> {
            tx.execute(
                "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, status,
                                            created_at, updated_at)
                 VALUES (7, '000000000000', 'Bank', 'L', 'a@b.kz', '+77270000000', 'accredited', ?1, ?1)",
                [NOW],
            )?;
            tx.execute(
                "INSERT INTO applications (id, organisation_id, client_id, name, kind, created_at)
                 VALUES (3, 7, 'kc_x', 'App', 'api_user', ?1)",
                [NOW],
            )?;
            for (serial, sha, app) in [("0a", &a2, Some(3)), ("0b", &b2, None)] {
                tx.execute(
                    "INSERT INTO certificates (serial, kind, subject, sha256, not_before, not_after, pem, issued_at,
                                               issued_by, application_id)
                     VALUES (?1, 'client', 'CN=x', ?2, ?3, '2027-01-01T00:00:00Z', '', ?3, 'test', ?4)",
                    params![serial, sha, NOW, app],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let app = AppRef { id: 3, client_id: "kc_x".into(), organisation_id: 7 };
        assert_eq!(verdict(&db, "0a", a).await, CertCheck::Active(Some(app.clone())));
        assert_eq!(verdict(&db, "0b", b).await, CertCheck::Active(None));
        assert_eq!(verdict(&db, "0a", b).await, CertCheck::Unknown);
        assert_eq!(verdict(&db, "0c", a).await, CertCheck::Unknown);

        set(&db, "UPDATE certificates SET retire_at = '2026-11-25T13:00:00Z' WHERE serial = '0a'").await;
        assert_eq!(verdict(&db, "0a", a).await, CertCheck::Active(Some(app)));
        set(&db, "UPDATE certificates SET retire_at = '2026-11-25T12:00:00Z' WHERE serial = '0a'").await;
        assert_eq!(verdict(&db, "0a", a).await, CertCheck::Retired);
        set(&db, "UPDATE certificates SET retire_at = NULL WHERE serial = '0a'").await;

        set(&db, "UPDATE organisations SET status = 'suspended'").await;
        assert_eq!(verdict(&db, "0a", a).await, CertCheck::OrganisationBlocked);
        assert_eq!(verdict(&db, "0b", b).await, CertCheck::Active(None), "no application, no organisation");
        set(&db, "UPDATE applications SET status = 'disabled'").await;
        assert_eq!(verdict(&db, "0a", a).await, CertCheck::ApplicationDisabled);
        set(&db, "UPDATE certificates SET revoked_at = '2026-11-25T12:00:00Z', revocation_reason = 'superseded' WHERE serial = '0a'")
            .await;
        assert_eq!(verdict(&db, "0a", a).await, CertCheck::Revoked);
    }
}

/// A certificate with the application and organisation it belongs to, for the operator console.
#[derive(Debug, Clone)]
pub struct OwnedCert {
    pub record: CertRecord,
    pub client_id: Option<String>,
    pub organisation: Option<String>,
    pub retire_at: Option<String>,
}

/// Every certificate, newest first, optionally only those whose serial, subject, label, client id or organisation
/// contains `query`.
pub fn list_with_owners(conn: &Connection, query: &str) -> rusqlite::Result<Vec<OwnedCert>> {
    let like = format!("%{}%", query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let mut stmt = conn.prepare(&format!(
        "SELECT {}, a.client_id, o.name, c.retire_at
         FROM certificates c
         LEFT JOIN applications a ON a.id = c.application_id
         LEFT JOIN organisations o ON o.id = a.organisation_id
         WHERE ?1 = '' OR c.serial LIKE ?2 ESCAPE '\\' OR c.subject LIKE ?2 ESCAPE '\\' OR c.label LIKE ?2 ESCAPE '\\'
            OR a.client_id LIKE ?2 ESCAPE '\\' OR o.name LIKE ?2 ESCAPE '\\'
         ORDER BY c.issued_at DESC, c.serial
         LIMIT 500",
        COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
    ))?;
    let rows = stmt.query_map(params![query, like], |r| {
        Ok(OwnedCert { record: from_row(r)?, client_id: r.get(12)?, organisation: r.get(13)?, retire_at: r.get(14)? })
    })?;
    rows.collect()
}
