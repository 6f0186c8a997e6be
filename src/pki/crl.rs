//! The certificate revocation list: re-signed at every revocation and whenever the published one is half-way to
//! its nextUpdate, numbered monotonically, served at `GET /pki/crl.pem`.
//!
//! The CRL is for relying parties outside the platform; the platform itself checks the `certificates` table on
//! every request, so a revocation bites at once, not at the next CRL.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::{Duration, OffsetDateTime};

use super::{Authority, PkiError, certs};
use crate::clock;
use crate::store::Db;

/// Signs a new CRL `now` listing every revoked certificate and stores it. Runs in the caller's transaction, so a
/// revocation and the CRL that lists it are committed together.
pub fn publish(
    tx: &Transaction,
    authority: &Authority,
    validity_hours: u32,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    let number: i64 = tx.query_row("SELECT coalesce(max(number), 0) + 1 FROM crls", [], |r| r.get(0))?;
    let mut revoked_certs = Vec::new();
    for record in certs::revoked(tx)? {
        let serial = hex::decode(&record.serial).map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let revocation_time = record.revoked_at.as_deref().and_then(|t| clock::parse(t).ok()).unwrap_or(now);
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time,
            reason_code: record
                .revocation_reason
                .as_deref()
                .and_then(|word| word.parse::<certs::RevocationReason>().ok())
                .map(certs::RevocationReason::to_rcgen),
            invalidity_date: None,
        });
    }
    let this_update = now;
    let next_update = this_update + Duration::hours(validity_hours.into());
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(authority.issuer())?;
    let pem = crl.pem()?;
    tx.execute(
        "INSERT INTO crls (number, this_update, next_update, pem) VALUES (?1, ?2, ?3, ?4)",
        params![number, clock::rfc3339(this_update), clock::rfc3339(next_update), pem],
    )?;
    Ok(pem)
}

/// The newest CRL if it is less than half-way to its nextUpdate `now`.
pub fn fresh(conn: &Connection, now: OffsetDateTime) -> Result<Option<String>, PkiError> {
    let latest: Option<(String, String, String)> = conn
        .query_row("SELECT this_update, next_update, pem FROM crls ORDER BY number DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((this_update, next_update, pem)) = latest else { return Ok(None) };
    let (Ok(this_update), Ok(next_update)) = (clock::parse(&this_update), clock::parse(&next_update)) else {
        return Ok(None);
    };
    let half_way = this_update + (next_update - this_update) / 2;
    Ok((now < half_way).then_some(pem))
}

/// The CRL to serve: the stored one while fresh, otherwise a newly signed one.
pub async fn current(
    db: &Db,
    authority: std::sync::Arc<Authority>,
    validity_hours: u32,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    if let Some(pem) = db.read(move |c| fresh(c, now)).await? {
        return Ok(pem);
    }
    db.write(move |tx| {
        // Another request may have re-signed it while this one waited for the writer.
        if let Some(pem) = fresh(tx, now)? {
            return Ok(pem);
        }
        publish(tx, &authority, validity_hours, now)
    })
    .await
}
