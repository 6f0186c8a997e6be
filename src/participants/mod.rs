//! Participants: organisations (banks, fintechs) that register themselves, are accredited by the operator as API
//! providers and/or API users, appear in the public registries, and can be suspended or revoked — which blocks
//! their sessions, certificates and data access on the very next request.

pub mod accreditation;
pub mod agreements;
pub mod apply;
pub mod console;
pub mod profile;
pub mod registry;
pub mod routes;
pub mod staff;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use crate::clock;
use crate::kz::Bin;

/// Every participant page and the public registries: registration, the organisation's pages, accreditation, and
/// the operator console's participant pages.
pub fn router() -> axum::Router<crate::web::AppState> {
    axum::Router::new()
        .merge(routes::router())
        .merge(staff::router())
        .merge(profile::router())
        .merge(apply::router())
        .merge(agreements::router())
        .merge(console::router())
        .merge(registry::router())
}

crate::text_enum! {
    /// Where an organisation stands (stored in `organisations.status`).
    pub enum OrgStatus {
        Registered = "registered",
        Accredited = "accredited",
        Suspended = "suspended",
        Revoked = "revoked",
    }
}

impl OrgStatus {
    /// The status for `word`, if it is one (kept for callers that treat an unknown word as none).
    pub fn parse(word: &str) -> Option<OrgStatus> {
        word.parse().ok()
    }

    pub fn text_key(self) -> &'static str {
        match self {
            OrgStatus::Registered => "status.registered",
            OrgStatus::Accredited => "status.accredited",
            OrgStatus::Suspended => "status.suspended",
            OrgStatus::Revoked => "status.revoked",
        }
    }

    /// Whether the participant may act at all (sign in, call the API).
    pub fn is_blocked(self) -> bool {
        matches!(self, OrgStatus::Suspended | OrgStatus::Revoked)
    }
}

/// An organisation, as the pages and the API show it (the logo bytes are served separately).
#[derive(Debug, Clone, Serialize)]
pub struct Organisation {
    pub id: i64,
    pub bin: Bin,
    pub name: String,
    pub licence_number: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub description: String,
    pub website: String,
    pub has_logo: bool,
    pub status: OrgStatus,
    pub status_reason: String,
    pub is_provider: bool,
    pub is_user: bool,
    pub created_at: String,
}

impl Organisation {
    /// The organisation as the party accepting an accession agreement.
    pub fn party(&self) -> crate::docs::agreements::Party<'_> {
        crate::docs::agreements::Party { organisation_id: self.id, bin: self.bin.as_str() }
    }

    /// The accession agreements its accredited roles bind it to.
    pub fn agreement_kinds(&self) -> Vec<crate::docs::agreements::Kind> {
        crate::docs::agreements::Kind::for_roles(self.is_provider, self.is_user)
    }
}

const COLUMNS: &str = "id, bin, name, licence_number, contact_email, contact_phone, description, website, \
                       logo IS NOT NULL AS has_logo, status, status_reason, is_provider, is_user, created_at";

fn from_row(r: &Row) -> rusqlite::Result<Organisation> {
    Ok(Organisation {
        id: r.get("id")?,
        bin: r.get("bin")?,
        name: r.get("name")?,
        licence_number: r.get("licence_number")?,
        contact_email: r.get("contact_email")?,
        contact_phone: r.get("contact_phone")?,
        description: r.get("description")?,
        website: r.get("website")?,
        has_logo: r.get("has_logo")?,
        status: r.get("status")?,
        status_reason: r.get("status_reason")?,
        is_provider: r.get("is_provider")?,
        is_user: r.get("is_user")?,
        created_at: r.get("created_at")?,
    })
}

/// What an organisation's administrator may change of its public profile.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    pub description: &'a str,
    pub website: &'a str,
    pub contact_email: &'a str,
    pub contact_phone: &'a str,
}

pub fn update_profile(
    tx: &Transaction,
    organisation_id: i64,
    profile: &Profile,
    now: time::OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE organisations SET description = ?2, website = ?3, contact_email = ?4, contact_phone = ?5,
                                  updated_at = ?6 WHERE id = ?1",
        params![
            organisation_id,
            profile.description,
            profile.website,
            profile.contact_email,
            profile.contact_phone,
            clock::rfc3339(now)
        ],
    )?;
    Ok(())
}

/// Replaces the organisation's logo (bytes already checked to be of `content_type`).
pub fn set_logo(
    tx: &Transaction,
    organisation_id: i64,
    bytes: &[u8],
    content_type: &str,
    now: time::OffsetDateTime,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE organisations SET logo = ?2, logo_type = ?3, updated_at = ?4 WHERE id = ?1",
        params![organisation_id, bytes, content_type, clock::rfc3339(now)],
    )?;
    Ok(())
}

/// The organisation's logo and its content type, if it has one.
pub fn logo(conn: &Connection, organisation_id: i64) -> rusqlite::Result<Option<(Vec<u8>, String)>> {
    conn.query_row(
        "SELECT logo, logo_type FROM organisations WHERE id = ?1 AND logo IS NOT NULL AND logo_type IS NOT NULL",
        [organisation_id],
        |r| Ok((r.get("logo")?, r.get("logo_type")?)),
    )
    .optional()
}

/// How many organisations are at `status`.
pub fn count_with_status(conn: &Connection, status: OrgStatus) -> rusqlite::Result<i64> {
    conn.query_row("SELECT count(*) FROM organisations WHERE status = ?1", [status], |r| r.get(0))
}

pub fn organisation(conn: &Connection, id: i64) -> rusqlite::Result<Option<Organisation>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM organisations WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The organisation known by `bin`: the one accredited with it when there is one (a BIN is exclusive from
/// accreditation on), otherwise the earliest of the registrations naming it.
pub fn organisation_by_bin(conn: &Connection, bin: &Bin) -> rusqlite::Result<Option<Organisation>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM organisations WHERE bin = ?1 ORDER BY status = 'registered', id LIMIT 1"),
        [bin],
        from_row,
    )
    .optional()
}

/// Every organisation registered with `bin`, the holder (if any) first.
pub fn organisations_with_bin(conn: &Connection, bin: &Bin) -> rusqlite::Result<Vec<Organisation>> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM organisations WHERE bin = ?1 ORDER BY status = 'registered', id"))?;
    let rows = stmt.query_map([bin], from_row)?;
    rows.collect()
}

/// Whether `name` is too close to the platform's own names to be an organisation's: the operator's organisation in
/// the CA's certificates (`pki.organization`), the platform's name, and the subject of its client certificate. A
/// participant named like the platform could present itself as the platform to customers and banks.
pub fn name_reserved(name: &str, config: &crate::config::Config) -> bool {
    let fold = |s: &str| -> String { s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect() };
    let name = fold(name);
    [config.pki.organization.as_str(), "kopir", crate::pki::PLATFORM_CLIENT_NAME]
        .iter()
        .map(|reserved| fold(reserved))
        .any(|reserved| !reserved.is_empty() && (name.contains(&reserved) || reserved.contains(&name)))
}

pub fn organisations(conn: &Connection) -> rusqlite::Result<Vec<Organisation>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM organisations ORDER BY name"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// What a new organisation gives about itself.
#[derive(Debug, Clone)]
pub struct NewOrganisation {
    pub bin: Bin,
    pub name: String,
    pub licence_number: String,
    pub contact_email: String,
    pub contact_phone: String,
}

pub fn insert(tx: &Transaction, org: &NewOrganisation, now: time::OffsetDateTime) -> rusqlite::Result<i64> {
    let now = clock::rfc3339(now);
    tx.execute(
        "INSERT INTO organisations (bin, name, licence_number, contact_email, contact_phone, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![org.bin, org.name, org.licence_number, org.contact_email, org.contact_phone, now],
    )?;
    Ok(tx.last_insert_rowid())
}

/// A plausible e-mail address: one @, something on both sides, a dot in the domain, no spaces.
pub fn email_acceptable(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && email.len() <= 254
                && !domain.contains('@')
        }
        None => false,
    }
}

/// A phone number: +, digits, spaces, hyphens and parentheses, with 10 to 15 digits.
pub fn phone_acceptable(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (10..=15).contains(&digits) && phone.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_checks() {
        assert!(email_acceptable("ops@bank.kz"));
        assert!(!email_acceptable("ops@bank"));
        assert!(!email_acceptable("ops bank@x.kz"));
        assert!(phone_acceptable("+7 (727) 250-00-00"));
        assert!(!phone_acceptable("12345"));
    }
}
