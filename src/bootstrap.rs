//! `kopir init`: the idempotent first-run set-up. Creates what is missing — data directory, database, certificate
//! authority, server and platform client certificates, first CRL, first operator administrator — and leaves
//! everything that exists as it is. The database changes are one transaction, so a failed run can simply be
//! repeated.

use std::path::PathBuf;

use crate::audit::{self, Event, Outcome};
use crate::config::Config;
use crate::identity::{self, Role};
use crate::pki::{self, Authority, PkiError, certs, crl};
use crate::store::{self, Db, StoreError, StoreOptions};

/// The administrator created on first run. The password is shown once and stored only as a hash.
pub struct FirstAdmin {
    pub username: String,
    pub one_time_password: String,
}

/// One line of the init report.
pub struct Item {
    pub what: String,
    pub location: String,
    pub created: bool,
}

pub struct InitReport {
    pub items: Vec<Item>,
    pub admin: Option<FirstAdmin>,
}

impl InitReport {
    pub fn changed_anything(&self) -> bool {
        self.admin.is_some() || self.items.iter().any(|i| i.created)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("password hashing failed")]
    Password,
    #[error(transparent)]
    Keys(#[from] crate::pki::signing::KeyError),
}

impl From<rusqlite::Error> for InitError {
    fn from(e: rusqlite::Error) -> Self {
        InitError::Store(e.into())
    }
}

pub fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        readers: config.store.readers,
        busy_timeout: std::time::Duration::from_millis(config.store.busy_timeout_ms),
        time_zone: config.time_zone.zone().clone(),
    }
}

/// Whether `init` has run: the database exists.
pub fn is_initialised(config: &Config) -> bool {
    config.db_path().exists()
}

/// Initialises the appliance `now` (the caller's time: `init` runs before any platform, and so any clock, exists).
pub async fn init(config: &Config, actor: &str, now: time::OffsetDateTime) -> Result<InitReport, InitError> {
    let mut items = Vec::new();
    let data_dir = &config.data_dir;
    let dir_existed = data_dir.exists();
    pki::files::private_dir(data_dir).map_err(|e| InitError::DataDir(data_dir.clone(), e))?;
    items.push(Item { what: "data directory".into(), location: data_dir.display().to_string(), created: !dir_existed });

    let db_existed = config.db_path().exists();
    let (db, migration) = Db::open(&config.db_path(), store_options(config), true)?;
    let schema_note = if migration.from == migration.to {
        format!("{} (schema version {})", config.db_path().display(), migration.to)
    } else {
        format!("{} (schema version {} → {})", config.db_path().display(), migration.from, migration.to)
    };
    items.push(Item {
        what: "database".into(),
        location: schema_note,
        created: !db_existed || migration.from != migration.to,
    });

    let (steps, records) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || pki::bootstrap(&config)
    })
    .await
    .map_err(|_| StoreError::Worker)??;
    for step in &steps {
        items.push(Item { what: step.what.into(), location: step.path.display().to_string(), created: step.created });
    }
    let authority = std::sync::Arc::new(Authority::load(config)?);

    // The administrator's password is generated and hashed off the async threads (argon2 is deliberately slow).
    let needs_admin = !db.read(|c| identity::has_operator_admin(c).map_err(StoreError::from)).await?;
    let admin = if needs_admin {
        let password = identity::generate_password();
        let hash = tokio::task::spawn_blocking({
            let password = password.clone();
            move || identity::hash_password(&password)
        })
        .await
        .map_err(|_| StoreError::Worker)?
        .map_err(|_| InitError::Password)?;
        Some((password, hash))
    } else {
        None
    };

    let actor = actor.to_string();
    let key_config = config.clone();
    let pki_hours = config.pki.crl_validity_hours;
    let created_keys: Vec<(&'static str, bool)> = steps.iter().map(|s| (s.what, s.created)).collect();
    let admin_created = db
        .write(move |tx| -> Result<(Option<FirstAdmin>, bool), InitError> {
            for record in &records {
                if certs::insert(tx, record)? {
                    audit::append(
                        tx,
                        &Event::new(&actor, "pki.certificate.recorded", Outcome::Success)
                            .at(now)
                            .object(format!("certificate:{}", record.serial))
                            .source("cli")
                            .detail(serde_json::json!({ "kind": record.kind.as_str(), "subject": record.subject })),
                    )?;
                }
            }
            for (what, created) in created_keys {
                if created {
                    audit::append(
                        tx,
                        &Event::new(&actor, "pki.key.created", Outcome::Success).at(now).object(what).source("cli"),
                    )?;
                }
            }
            let new_key = crate::pki::signing::ensure_key(&key_config, tx, now)?;
            if let Some(kid) = &new_key {
                audit::append(
                    tx,
                    &Event::new(&actor, "oauth.signing_key.created", Outcome::Success)
                        .at(now)
                        .object(format!("signing_key:{kid}"))
                        .source("cli"),
                )?;
            }
            let has_crl: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM crls)", [], |r| r.get(0))?;
            if !has_crl {
                crl::publish(tx, &authority, pki_hours, now)?;
            }
            if store::setting(tx, "instance_id")?.is_none() {
                store::set_setting(tx, "instance_id", &crate::random::uuid_v4().to_string())?;
                store::set_setting(tx, "initialised_at", &crate::clock::rfc3339(now))?;
                audit::append(
                    tx,
                    &Event::new(&actor, "appliance.initialised", Outcome::Success).at(now).source("cli"),
                )?;
            }
            let Some((password, hash)) = admin else { return Ok((None, new_key.is_some())) };
            let username = "admin".to_string();
            identity::create_user(tx, &username, Role::OperatorAdmin, &hash, true, now)?;
            audit::append(
                tx,
                &Event::new(&actor, "identity.user.created", Outcome::Success)
                    .at(now)
                    .object(format!("user:{username}"))
                    .source("cli")
                    .detail(serde_json::json!({ "role": Role::OperatorAdmin.as_str(), "one_time_password": "issued" })),
            )?;
            Ok((Some(FirstAdmin { username, one_time_password: password }), new_key.is_some()))
        })
        .await?;
    let (admin_created, key_created) = admin_created;
    items.push(Item {
        what: "JWS signing key".into(),
        location: "published at /.well-known/jwks.json".into(),
        created: key_created,
    });
    items.push(Item {
        what: "operator administrator".into(),
        location: admin_created.as_ref().map(|a| a.username.clone()).unwrap_or_else(|| "exists".into()),
        created: admin_created.is_some(),
    });
    Ok(InitReport { items, admin: admin_created })
}
