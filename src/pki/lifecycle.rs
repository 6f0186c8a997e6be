//! Certificate issuance and revocation as whole changes: the certificate, its record, the CRL and the audit entry
//! are committed together or not at all.

use std::sync::Arc;

use super::{Authority, CertRecord, Issued, PkiError, RevocationReason, certs, crl};
use crate::audit::{self, Event, Outcome};
use crate::clock;
use crate::store::Db;
use rusqlite::Transaction;

pub use crate::audit::Actor;

/// Signs `csr_pem` into a client certificate and records it.
pub async fn issue_client(
    db: &Db,
    authority: Arc<Authority>,
    csr_pem: String,
    label: String,
    actor: Actor,
    now: time::OffsetDateTime,
) -> Result<Issued, PkiError> {
    let signed = db
        .write(move |tx| -> Result<Signed, PkiError> {
            match authority.issue_client(&csr_pem, &label, &actor.name) {
                Ok(issued) => {
                    record_client(tx, &issued, None, &actor, now)?;
                    Ok(Signed::Issued(Box::new(issued)))
                }
                Err(error) => {
                    record_refusal(tx, &label, &error, &actor, now)?;
                    Ok(Signed::Refused(error))
                }
            }
        })
        .await?;
    match signed {
        Signed::Issued(issued) => Ok(*issued),
        Signed::Refused(error) => Err(error),
    }
}

/// What a signing came to inside its transaction: issued, or refused — the refusal is journalled, so the transaction
/// commits it before the caller sees it as its error.
enum Signed {
    Issued(Box<Issued>),
    Refused(PkiError),
}

/// Records a refused issuance in the caller's transaction. A refused request is itself worth recording; the CSR's
/// content is not.
pub fn record_refusal(
    tx: &Transaction,
    label: &str,
    error: &PkiError,
    actor: &Actor,
    now: time::OffsetDateTime,
) -> Result<(), PkiError> {
    audit::append(
        tx,
        &Event::new(&actor.name, "pki.certificate.issue", Outcome::Failure)
            .at(now)
            .source(&actor.source)
            .detail(serde_json::json!({ "label": label, "reason": error.to_string() })),
    )?;
    Ok(())
}

/// Records a client certificate signed by [`Authority::issue_client`] in the caller's transaction — belonging to an
/// application when `application_id` is given — with its audit entry. The sibling of [`issue_client`] for changes
/// that create or rotate an application in the same transaction.
pub fn record_client(
    tx: &Transaction,
    issued: &Issued,
    application_id: Option<i64>,
    actor: &Actor,
    now: time::OffsetDateTime,
) -> Result<(), PkiError> {
    if !certs::insert(tx, &issued.record)? {
        return Err(PkiError::BadCsr("a certificate with this serial exists already".into()));
    }
    if let Some(id) = application_id {
        certs::assign_application(tx, &issued.record.serial, id)?;
    }
    audit::append(
        tx,
        &Event::new(&actor.name, "pki.certificate.issued", Outcome::Success)
            .at(now)
            .object(format!("certificate:{}", issued.record.serial))
            .source(&actor.source)
            .detail(serde_json::json!({
                "kind": issued.record.kind.as_str(),
                "label": issued.record.label,
                "subject": issued.record.subject,
                "not_after": issued.record.not_after,
                "application_id": application_id,
            })),
    )?;
    Ok(())
}

/// Revokes a certificate: recorded at once (the server refuses it on its next request) and listed in a freshly
/// signed CRL.
pub async fn revoke(
    db: &Db,
    authority: Arc<Authority>,
    serial: String,
    reason: RevocationReason,
    crl_validity_hours: u32,
    actor: Actor,
    now: time::OffsetDateTime,
) -> Result<CertRecord, PkiError> {
    db.write(move |tx| {
        let serial = serial.trim().to_ascii_lowercase().replace(':', "");
        let record = certs::by_serial(tx, &serial)?.ok_or_else(|| PkiError::NoSuchCertificate(serial.clone()))?;
        if !record.kind.revocable() {
            return Err(PkiError::NotRevocable { serial, kind: record.kind.as_str() });
        }
        if !certs::mark_revoked(tx, &serial, &clock::rfc3339(now), reason)? {
            return Err(PkiError::AlreadyRevoked(serial));
        }
        crl::publish(tx, &authority, crl_validity_hours, now)?;
        audit::append(
            tx,
            &Event::new(&actor.name, "pki.certificate.revoked", Outcome::Success)
                .at(now)
                .object(format!("certificate:{serial}"))
                .source(&actor.source)
                .detail(serde_json::json!({ "reason": reason.as_str(), "subject": record.subject })),
        )?;
        certs::by_serial(tx, &serial)?.ok_or(PkiError::NoSuchCertificate(serial))
    })
    .await
}

/// Re-issues the HTTPS server certificate for the configured names (after host names change, or before expiry).
/// The previous certificate is revoked as superseded. The running server picks the new one up on restart.
pub async fn renew_server(
    db: &Db,
    authority: Arc<Authority>,
    config: &crate::config::Config,
    actor: Actor,
    now: time::OffsetDateTime,
) -> Result<CertRecord, PkiError> {
    let (old, record) = tokio::task::spawn_blocking({
        let authority = authority.clone();
        let config = config.clone();
        let name = actor.name.clone();
        move || authority.renew_server(&config, &name)
    })
    .await
    .map_err(|_| crate::store::StoreError::Worker)??;
    let hours = config.pki.crl_validity_hours;
    db.write(move |tx| {
        let event = Event::new(&actor.name, "pki.server_certificate.renewed", Outcome::Success)
            .at(now)
            .source(&actor.source)
            .detail(serde_json::json!({ "replaced": old, "subject": record.subject }));
        record_reissue(tx, &authority, hours, &record, old.as_deref(), event, now)?;
        Ok(record)
    })
    .await
}

/// Records a re-issued certificate in one transaction: the new record, the previous one revoked as superseded (and
/// the CRL published again), and the audit entry `event` naming the new certificate.
fn record_reissue(
    tx: &rusqlite::Transaction,
    authority: &Authority,
    crl_hours: u32,
    record: &CertRecord,
    old: Option<&str>,
    event: Event,
    now: time::OffsetDateTime,
) -> Result<(), PkiError> {
    certs::insert(tx, record)?;
    if let Some(old) = old
        && certs::mark_revoked(tx, old, &clock::rfc3339(now), RevocationReason::Superseded)?
    {
        crl::publish(tx, authority, crl_hours, now)?;
    }
    audit::append(tx, &event.object(format!("certificate:{}", record.serial)))?;
    Ok(())
}

/// Makes sure the platform's client certificate carries the platform's policy (see
/// [`super::PLATFORM_CLIENT_POLICY`]): a data directory made before it is given a new certificate at start, recorded,
/// the old one revoked as superseded, with an audit entry. Returns the new record when one was made.
pub async fn ensure_platform_client_marked(
    db: &Db,
    authority: Arc<Authority>,
    config: &crate::config::Config,
    now: time::OffsetDateTime,
) -> Result<Option<CertRecord>, PkiError> {
    let marked = tokio::task::spawn_blocking({
        let authority = authority.clone();
        let config = config.clone();
        move || authority.mark_platform_client(&config, "system:start")
    })
    .await
    .map_err(|_| crate::store::StoreError::Worker)??;
    let Some((old, record)) = marked else { return Ok(None) };
    let hours = config.pki.crl_validity_hours;
    let record = db
        .write(move |tx| {
            let event = Event::new("system:start", "pki.platform_client_certificate.reissued", Outcome::Success)
                .at(now)
                .detail(serde_json::json!({
                    "replaced": old,
                    "reason": "the platform's certificate policy was missing",
                }));
            record_reissue(tx, &authority, hours, &record, old.as_deref(), event, now)?;
            Ok::<_, PkiError>(record)
        })
        .await?;
    tracing::info!(serial = %record.serial, "re-issued the platform's client certificate with the platform's policy");
    Ok(Some(record))
}
