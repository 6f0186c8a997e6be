//! The `certificates` table: every certificate the CA made, and its revocation.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    RootCa,
    IssuingCa,
    Server,
    PlatformClient,
    Client,
}

impl CertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::RootCa => "root_ca",
            CertKind::IssuingCa => "issuing_ca",
            CertKind::Server => "server",
            CertKind::PlatformClient => "platform_client",
            CertKind::Client => "client",
        }
    }

    fn parse(s: &str) -> Option<CertKind> {
        Some(match s {
            "root_ca" => CertKind::RootCa,
            "issuing_ca" => CertKind::IssuingCa,
            "server" => CertKind::Server,
            "platform_client" => CertKind::PlatformClient,
            "client" => CertKind::Client,
            _ => return None,
        })
    }

    /// Whether `kopir ca revoke` may revoke it (the CA's own certificates need a new CA instead).
    pub fn revocable(self) -> bool {
        matches!(self, CertKind::Server | CertKind::PlatformClient | CertKind::Client)
    }
}

/// RFC 5280 revocation reasons the platform uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 6] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<RevocationReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

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
        kind: CertKind::parse(&kind).ok_or_else(|| {
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

/// Whether the certificate with this serial and fingerprint is one the platform issued and has not revoked.
/// Both must match: a serial alone could be replayed by a certificate from another issuer.
pub fn status(conn: &Connection, serial: &str, sha256: &str) -> rusqlite::Result<CertStatus> {
    // A certificate of an application whose organisation is suspended or revoked is refused like a revoked one:
    // the participant's standing bites on the next request, without touching the certificate itself.
    let row: Option<(String, Option<String>, Option<String>)> = conn
        .query_row(
            "SELECT c.sha256, c.revoked_at, o.status FROM certificates c
             LEFT JOIN applications a ON a.id = c.application_id
             LEFT JOIN organisations o ON o.id = a.organisation_id
             WHERE c.serial = ?1",
            [serial],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        None => CertStatus::Unknown,
        Some((stored, _, _)) if stored != sha256 => CertStatus::Unknown,
        Some((_, Some(_), _)) => CertStatus::Revoked,
        Some((_, None, Some(org))) if org == "suspended" || org == "revoked" => CertStatus::ParticipantBlocked,
        Some((_, None, _)) => CertStatus::Active,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Active,
    Revoked,
    Unknown,
    /// The certificate is fine, but its participant is suspended or revoked.
    ParticipantBlocked,
}
