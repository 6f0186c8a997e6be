//! The accession agreements' versions and their electronic acceptance (migration 20).
//!
//! An agreement's text comes with the binary (`assets/docs/<lang>/agreement-{provider,user}.md`); when a binary with
//! a new version starts, [`sync`] records the version (its number, the SHA-256 over its three languages, and the date
//! by which participants are asked to accept it: `accept_within_days` of its front matter) and asks every accredited
//! participant of that role to accept it: a signed `agreement.published` webhook, and its administrators see it on
//! `/org/agreements`. A text changed under a version already recorded stops start-up: a change is a new version.
//!
//! Accreditation needs the participant's administrator to have accepted the current version of the agreement of
//! each role it asks for (API provider, API user): an application is not submitted, nor approved, without it.
//! Every acceptance — who, which version and its hash, when, in which language — is stored and journalled
//! (`docs.agreement.accepted`) in one transaction.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use time::OffsetDateTime;

use crate::audit::{self, Actor, Event, Outcome};
use crate::clock;
use crate::i18n::Lang;

crate::text_enum! {
    /// Which accession agreement (stored in `agreement_versions.kind`).
    pub enum Kind {
        Provider = "provider",
        User = "user",
    }
}

impl Kind {
    /// The document's address under `/docs`.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Provider => "agreement-provider",
            Kind::User => "agreement-user",
        }
    }

    pub fn text_key(self) -> &'static str {
        match self {
            Kind::Provider => "agreements.kind_provider",
            Kind::User => "agreements.kind_user",
        }
    }

    /// The agreements an organisation in these roles must accept.
    pub fn for_roles(provider: bool, user: bool) -> Vec<Kind> {
        let mut kinds = Vec::new();
        if provider {
            kinds.push(Kind::Provider);
        }
        if user {
            kinds.push(Kind::User);
        }
        kinds
    }
}

/// One recorded version of an agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: i64,
    pub kind: Kind,
    pub version: String,
    pub sha256: String,
    pub published_at: String,
    /// Participants are asked to accept it by then (RFC 3339).
    pub accept_by: String,
}

impl Version {
    pub fn short_hash(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
    }

    pub fn accept_by_date(&self) -> &str {
        self.accept_by.get(..10).unwrap_or(&self.accept_by)
    }

    pub fn published_date(&self) -> &str {
        self.published_at.get(..10).unwrap_or(&self.published_at)
    }
}

fn version_from_row(r: &Row) -> rusqlite::Result<Version> {
    Ok(Version {
        id: r.get("id")?,
        kind: r.get("kind")?,
        version: r.get("version")?,
        sha256: r.get("sha256")?,
        published_at: r.get("published_at")?,
        accept_by: r.get("accept_by")?,
    })
}

const VERSION_COLUMNS: &str = "id, kind, version, sha256, published_at, accept_by";

/// The version participants must accept now: the latest recorded.
pub fn current(conn: &Connection, kind: Kind) -> rusqlite::Result<Option<Version>> {
    conn.query_row(
        &format!("SELECT {VERSION_COLUMNS} FROM agreement_versions WHERE kind = ?1 ORDER BY id DESC LIMIT 1"),
        [kind],
        version_from_row,
    )
    .optional()
}

/// Every recorded version of an agreement, newest first.
pub fn versions(conn: &Connection, kind: Kind) -> rusqlite::Result<Vec<Version>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {VERSION_COLUMNS} FROM agreement_versions WHERE kind = ?1 ORDER BY id DESC"))?;
    stmt.query_map([kind], version_from_row)?.collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published {
        id: i64,
    },
    /// This text is already recorded.
    Known,
    /// The version number is recorded with another text.
    VersionReused,
}

/// Records a new version of an agreement, to be accepted by `accept_by`, and asks every participant in good
/// standing accredited in its role to accept it (a signed `agreement.published` webhook). Journalled as
/// `docs.agreement.published`.
pub fn publish(
    tx: &Transaction,
    kind: Kind,
    version: &str,
    sha256: &str,
    accept_by: OffsetDateTime,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<PublishOutcome> {
    let known: Option<String> = tx
        .query_row(
            "SELECT sha256 FROM agreement_versions WHERE kind = ?1 AND (sha256 = ?2 OR version = ?3)",
            params![kind, sha256, version],
            |r| r.get(0),
        )
        .optional()?;
    match known {
        Some(hash) if hash == sha256 => return Ok(PublishOutcome::Known),
        Some(_) => return Ok(PublishOutcome::VersionReused),
        None => {}
    }
    tx.execute(
        "INSERT INTO agreement_versions (kind, version, sha256, published_at, accept_by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind, version, sha256, clock::rfc3339(now), clock::rfc3339(accept_by)],
    )?;
    let id = tx.last_insert_rowid();
    let role = match kind {
        Kind::Provider => "is_provider",
        Kind::User => "is_user",
    };
    let concerned: Vec<i64> = tx
        .prepare(&format!("SELECT id FROM organisations WHERE status = 'accredited' AND {role} ORDER BY id"))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for organisation in &concerned {
        crate::notify::enqueue(
            tx,
            *organisation,
            "agreement.published",
            &serde_json::json!({
                "Agreement": kind.as_str(),
                "Version": version,
                "Sha256": sha256,
                "AcceptBy": clock::rfc3339(accept_by),
                "Document": format!("/docs/{}", kind.slug()),
            }),
            now,
        )?;
    }
    audit::append(
        tx,
        &Event::new(&actor.name, "docs.agreement.published", Outcome::Success)
            .at(now)
            .object(format!("agreement:{kind}:{version}"))
            .source(&actor.source)
            .detail(serde_json::json!({
                "sha256": sha256,
                "accept_by": clock::rfc3339(accept_by),
                "participants_asked": concerned.len(),
            })),
    )?;
    Ok(PublishOutcome::Published { id })
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "the {0} accession agreement's text changed under version {1}, which participants may already have accepted: \
         give the changed text a new version"
    )]
    VersionReused(Kind, String),
    #[error("the {0} accession agreement has no version in its front matter")]
    NoVersion(Kind),
}

/// Records the agreements' versions this binary carries, where they are new (at every start, in one transaction).
pub fn sync(tx: &Transaction, now: OffsetDateTime) -> Result<(), SyncError> {
    let system = Actor { name: "system".into(), source: "system".into(), user_id: None };
    for kind in Kind::ALL.iter().copied() {
        let Some(doc) = super::document(kind.slug(), Lang::En) else { continue };
        if doc.version.is_empty() {
            return Err(SyncError::NoVersion(kind));
        }
        let Some(hash) = super::version_hash(kind.slug()) else { continue };
        let days = doc.accept_within_days.unwrap_or(30);
        let accept_by = now + time::Duration::days(i64::from(days));
        if publish(tx, kind, &doc.version, &hash, accept_by, &system, now)? == PublishOutcome::VersionReused {
            return Err(SyncError::VersionReused(kind, doc.version.clone()));
        }
    }
    Ok(())
}

/// The agreements among `kinds` whose current version the organisation has not accepted (an agreement with no
/// version recorded cannot be accepted, so it is missing too).
pub fn missing(conn: &Connection, organisation_id: i64, kinds: &[Kind]) -> rusqlite::Result<Vec<Kind>> {
    let mut out = Vec::new();
    for kind in kinds {
        let accepted: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM agreement_acceptances a
                             WHERE a.organisation_id = ?1
                               AND a.version_id = (SELECT max(id) FROM agreement_versions WHERE kind = ?2))",
            params![organisation_id, kind],
            |r| r.get(0),
        )?;
        if !accepted {
            out.push(*kind);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted,
    AlreadyAccepted,
    /// The version is not the current one (a newer one was recorded meanwhile) or does not exist.
    NotCurrent,
    /// Only a participant's administrator accepts for it.
    NotAdministrator,
}

/// The party that accepts: an organisation, by its id and BIN.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    pub organisation_id: i64,
    pub bin: &'a str,
}

/// The organisation's administrator `actor` accepts version `version_id` (which must be the current one) of an
/// agreement, having read it in `lang`. Stored and journalled in the caller's transaction.
pub fn accept(
    tx: &Transaction,
    org: Party,
    actor: &Actor,
    version_id: i64,
    lang: Lang,
    now: OffsetDateTime,
) -> rusqlite::Result<AcceptOutcome> {
    let Some(user_id) = actor.user_id else { return Ok(AcceptOutcome::NotAdministrator) };
    let is_admin: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND organisation_id = ?2 AND role = 'participant_admin'
                                           AND disabled_at IS NULL)",
        params![user_id, org.organisation_id],
        |r| r.get(0),
    )?;
    if !is_admin {
        return Ok(AcceptOutcome::NotAdministrator);
    }
    let version = tx
        .query_row(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM agreement_versions v
                  WHERE id = ?1 AND id = (SELECT max(id) FROM agreement_versions WHERE kind = v.kind)"
            ),
            [version_id],
            version_from_row,
        )
        .optional()?;
    let Some(version) = version else { return Ok(AcceptOutcome::NotCurrent) };
    let inserted = tx.execute(
        "INSERT INTO agreement_acceptances (version_id, organisation_id, user_id, lang, accepted_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (version_id, organisation_id) DO NOTHING",
        params![version.id, org.organisation_id, user_id, lang.code(), clock::rfc3339(now)],
    )?;
    if inserted == 0 {
        return Ok(AcceptOutcome::AlreadyAccepted);
    }
    audit::append(
        tx,
        &Event::new(&actor.name, "docs.agreement.accepted", Outcome::Success)
            .at(now)
            .organisation(org.bin)
            .object(format!("agreement:{}:{}", version.kind, version.version))
            .source(&actor.source)
            .detail(serde_json::json!({
                "agreement": version.kind.as_str(),
                "version": version.version,
                "sha256": version.sha256,
                "lang": lang.code(),
            })),
    )?;
    Ok(AcceptOutcome::Accepted)
}

/// Accepts the current versions of `kinds` not yet accepted (the accreditation form's tick box).
pub fn accept_current(
    tx: &Transaction,
    org: Party,
    actor: &Actor,
    kinds: &[Kind],
    lang: Lang,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<AcceptOutcome>> {
    let mut outcomes = Vec::new();
    for kind in kinds {
        let outcome = match current(tx, *kind)? {
            Some(version) => accept(tx, org, actor, version.id, lang, now)?,
            None => AcceptOutcome::NotCurrent,
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// An acceptance as shown: who and when.
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub username: String,
    pub accepted_at: String,
    pub lang: String,
}

/// Where an organisation stands with one agreement's current version.
#[derive(Debug, Clone)]
pub struct Standing {
    pub kind: Kind,
    pub version: Version,
    /// Whether its roles (accredited, or asked for in its open application) make it required.
    pub required: bool,
    pub accepted: Option<Acceptance>,
}

fn acceptance(conn: &Connection, version_id: i64, organisation_id: i64) -> rusqlite::Result<Option<Acceptance>> {
    conn.query_row(
        "SELECT u.username, a.accepted_at, a.lang FROM agreement_acceptances a JOIN users u ON u.id = a.user_id
          WHERE a.version_id = ?1 AND a.organisation_id = ?2",
        params![version_id, organisation_id],
        |r| Ok(Acceptance { username: r.get(0)?, accepted_at: r.get(1)?, lang: r.get(2)? }),
    )
    .optional()
}

/// Each agreement's current version and the organisation's acceptance of it; `required` by the roles given.
pub fn standing(conn: &Connection, organisation_id: i64, roles: &[Kind]) -> rusqlite::Result<Vec<Standing>> {
    let mut out = Vec::new();
    for kind in Kind::ALL.iter().copied() {
        let Some(version) = current(conn, kind)? else { continue };
        let accepted = acceptance(conn, version.id, organisation_id)?;
        out.push(Standing { kind, version, required: roles.contains(&kind), accepted });
    }
    Ok(out)
}

/// One participant concerned by an agreement, as the console lists it.
#[derive(Debug, Clone)]
pub struct ParticipantRow {
    pub organisation_id: i64,
    pub name: String,
    pub bin: String,
    pub status: String,
    pub accepted: Option<Acceptance>,
}

/// The participants accredited (or suspended) in the agreement's role, and whether each accepted `version`.
pub fn participants(conn: &Connection, version: &Version) -> rusqlite::Result<Vec<ParticipantRow>> {
    let role = match version.kind {
        Kind::Provider => "is_provider",
        Kind::User => "is_user",
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT o.id, o.name, o.bin, o.status, u.username, a.accepted_at, a.lang
           FROM organisations o
           LEFT JOIN agreement_acceptances a ON a.organisation_id = o.id AND a.version_id = ?1
           LEFT JOIN users u ON u.id = a.user_id
          WHERE o.status IN ('accredited', 'suspended') AND o.{role}
          ORDER BY a.accepted_at IS NOT NULL, o.name"
    ))?;
    stmt.query_map([version.id], |r| {
        let username: Option<String> = r.get(4)?;
        Ok(ParticipantRow {
            organisation_id: r.get(0)?,
            name: r.get(1)?,
            bin: r.get(2)?,
            status: r.get(3)?,
            accepted: match username {
                Some(username) => Some(Acceptance { username, accepted_at: r.get(5)?, lang: r.get(6)? }),
                None => None,
            },
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA).unwrap();
        conn
    }

    #[test]
    fn sync_records_each_version_once_and_refuses_a_changed_text_under_an_old_version() {
        let mut conn = db();
        let now = clock::parse("2027-01-10T09:00:00Z").unwrap();
        let tx = conn.transaction().unwrap();
        sync(&tx, now).unwrap();
        sync(&tx, now).unwrap();
        let provider = current(&tx, Kind::Provider).unwrap().unwrap();
        assert_eq!(versions(&tx, Kind::Provider).unwrap().len(), 1);
        assert_eq!(provider.sha256, crate::docs::version_hash("agreement-provider").unwrap());
        assert!(provider.accept_by > provider.published_at);
        let system = Actor { name: "system".into(), source: "system".into(), user_id: None };
        let changed = publish(&tx, Kind::Provider, &provider.version, &"0".repeat(64), now, &system, now).unwrap();
        assert_eq!(changed, PublishOutcome::VersionReused);
        let journalled: i64 = tx
            .query_row("SELECT count(*) FROM audit_log WHERE action = 'docs.agreement.published'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journalled, 2);
    }
}
