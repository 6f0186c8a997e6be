//! SQLite storage: one writer connection and a small pool of read-only connections, all used on blocking threads
//! behind `read` / `write`, so no connection is ever held across an `.await`.
//!
//! `write` runs its closure in one `IMMEDIATE` transaction and commits only when the closure returns `Ok`: a
//! multi-step change is all or nothing by construction.
//!
//! [`Db::generation`] tells whether anything that decides who may call the platform (certificates, applications,
//! participants, tokens, consents, connections, APIs) may have changed since an earlier look — in this process or in
//! another one (the CLI) — so that the gateway can keep its judgement of a caller in memory between requests.

pub mod calendar;
#[cfg(test)]
pub mod fixtures;
pub mod migrate;
pub mod value;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use thiserror::Error;
use tokio::sync::Semaphore;

pub use migrate::MigrationReport;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database has schema version {database}, newer than this binary's {binary}: use a newer kopir")]
    TooNew { database: u32, binary: u32 },
    #[error("schema: {0}")]
    Schema(String),
    #[error("database {0} does not exist: run `kopir init` first")]
    Missing(PathBuf),
    #[error("database worker stopped unexpectedly")]
    Worker,
}

/// Tuning of the connections.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub readers: usize,
    pub busy_timeout: Duration,
    /// The operator's time zone: every connection's `kopir_local_day` (see `crate::store::calendar`).
    pub time_zone: jiff::tz::TimeZone,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            time_zone: crate::store::calendar::default_time_zone(),
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `<database>-changes`, kept open: its modification time moves on after every commit that changed a judged
    /// table, in any process, so that a process sees another one's changes with one `fstat`.
    changes: std::fs::File,
    /// Moves on after every commit of this process that changed a judged table.
    generation: AtomicU64,
    /// Set by the writer's update hook when the open transaction touches a judged table.
    judged_write: Arc<AtomicBool>,
    writer: Mutex<Connection>,
    write_permit: Semaphore,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
}

impl Db {
    /// Opens (creating when `create` is set) the database and brings its schema up to date.
    pub fn open(path: &Path, options: StoreOptions, create: bool) -> Result<(Db, MigrationReport), StoreError> {
        if !create && !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        if create && !path.exists() {
            // The database holds password hashes: owner-only from the first byte (SQLite gives its -wal and -shm
            // files the same mode).
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::Schema(format!("cannot create {}: {e}", path.display())))?;
        }
        let mut flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut writer = Connection::open_with_flags(path, flags)?;
        configure(&writer, &options)?;
        // WAL lets readers work while the writer commits; FULL sync keeps every committed consent and audit row
        // through a power cut.
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        let report = migrate::migrate(&mut writer, migrate::SCHEMA)?;
        let judged_write = Arc::new(AtomicBool::new(false));
        let flag = judged_write.clone();
        writer.update_hook(Some(move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if JUDGED_TABLES.contains(&table) {
                flag.store(true, Ordering::Relaxed);
            }
        }))?;

        let readers = (0..options.readers.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )?;
                configure(&conn, &options)?;
                conn.pragma_update(None, "query_only", true)?;
                Ok(conn)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let count = readers.len();
        let db = Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                changes: open_changes(path)?,
                generation: AtomicU64::new(0),
                judged_write,
                writer: Mutex::new(writer),
                write_permit: Semaphore::new(1),
                readers: Mutex::new(readers),
                read_permits: Semaphore::new(count),
            }),
        };
        Ok((db, report))
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Where the database stands as to judged tables: two equal generations, taken before two reads, mean that
    /// nothing those reads judged by changed in between (but time: expiries are for the caller to re-check).
    pub fn generation(&self) -> Generation {
        // Own commits first: a change committed before this load is then also seen by any read that follows.
        let local = self.inner.generation.load(Ordering::Acquire);
        let shared = self
            .inner
            .changes
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Generation { local, shared }
    }

    /// Runs `f` on a read-only connection, on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let _permit = self.inner.read_permits.acquire().await.map_err(|_| StoreError::Worker)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.lock().map_err(|_| StoreError::Worker)?.pop().ok_or(StoreError::Worker)?;
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Worker)?
    }

    /// Runs `f` inside one IMMEDIATE transaction on the writer, on a blocking thread; commits when `f` returns `Ok`,
    /// rolls back otherwise.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_with(f, true).await
    }

    /// [`Db::write`] for bookkeeping that decides nothing about who is served — metering, times of last use — even
    /// where it touches a judged table: the [`Generation`] stays, so the gateway's judgements in memory stay too.
    pub async fn write_bookkeeping<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_with(f, false).await
    }

    async fn write_with<T, E, F>(&self, f: F, judged: bool) -> Result<T, E>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let _permit = self.inner.write_permit.acquire().await.map_err(|_| StoreError::Worker)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().map_err(|_| StoreError::Worker)?;
            inner.judged_write.store(false, Ordering::Relaxed);
            let result = write_tx(&mut conn, f);
            // After the commit, never before: a judgement read under the old generation must not outlive it.
            if inner.judged_write.swap(false, Ordering::Relaxed) && judged && result.is_ok() {
                inner.generation.fetch_add(1, Ordering::AcqRel);
                // Set explicitly, in nanoseconds, so that the file system's coarse clock cannot make two changes alike.
                if let Err(error) = inner.changes.set_modified(SystemTime::now()) {
                    tracing::warn!(%error, "cannot mark a change for other processes");
                }
            }
            result
        })
        .await
        .map_err(|_| StoreError::Worker)?
    }
}

/// The tables whose rows decide whether a caller is served: a commit that writes one of them moves the
/// [`Generation`] on.
const JUDGED_TABLES: &[&str] = &[
    "certificates",
    "applications",
    "organisations",
    "access_tokens",
    "consents",
    "consent_providers",
    "customers",
    "api_connections",
    "apis",
    "signing_keys",
];

/// See [`Db::generation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    local: u64,
    shared: u128,
}

/// Opens (creating) `<database>-changes`.
fn open_changes(db: &Path) -> Result<std::fs::File, StoreError> {
    let path = changes_path(db);
    open_changes_file(&path).map_err(|e| StoreError::Schema(format!("cannot open {}: {e}", path.display())))
}

fn changes_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-changes");
    PathBuf::from(name)
}

fn open_changes_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)
}

/// Tells running platforms that the database at `db` was changed without [`Db`] (a repair with `sqlite3`, a test's
/// direct write), so that they judge callers afresh on the next request — `touch <database>-changes` does the same.
pub fn note_external_change(db: &Path) -> std::io::Result<()> {
    open_changes_file(&changes_path(db))?.set_modified(SystemTime::now())
}

/// The transaction wrapper shared by `Db::write` and code that already owns a connection.
pub fn write_tx<T, E, F>(conn: &mut Connection, f: F) -> Result<T, E>
where
    F: FnOnce(&Transaction) -> Result<T, E>,
    E: From<StoreError>,
{
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
    let value = f(&tx)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(value)
}

fn configure(conn: &Connection, options: &StoreOptions) -> Result<(), StoreError> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    crate::store::calendar::register(conn, &options.time_zone)?;
    Ok(())
}

/// Reads a value from `settings`.
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>, rusqlite::Error> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()
}

/// Writes a value into `settings`.
pub fn set_setting(tx: &Transaction, key: &str, value: &str) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn write_commits_on_ok_and_rolls_back_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (db, report) = Db::open(&dir.path().join("t.db"), StoreOptions::default(), true).unwrap();
        assert_eq!(report.from, 0);
        db.write(|tx| {
            set_setting(tx, "a", "1")?;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        let failed: Result<(), StoreError> = db
            .write(|tx| {
                set_setting(tx, "a", "2")?;
                set_setting(tx, "b", "2")?;
                Err(StoreError::Schema("abandon".into()))
            })
            .await;
        assert!(failed.is_err());
        let (a, b) = db.read(|c| Ok::<_, StoreError>((setting(c, "a")?, setting(c, "b")?))).await.unwrap();
        assert_eq!(a.as_deref(), Some("1"));
        assert_eq!(b, None);
    }

    #[tokio::test]
    async fn the_generation_moves_on_judged_writes_in_any_process_and_not_on_bookkeeping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (db, _) = Db::open(&path, StoreOptions::default(), true).unwrap();
        let start = db.generation();
        db.write(|tx| set_setting(tx, "k", "v").map_err(StoreError::from)).await.unwrap();
        assert_eq!(db.generation(), start, "settings decide nothing about callers");
        let organisation = "INSERT INTO organisations (bin, name, licence_number, contact_email, contact_phone,
                                                       created_at, updated_at)
                            VALUES ('990640000779', 'X', 'L-1', 'x@example.kz', '+77010000000', '2026-01-01T00:00:00Z',
                                    '2026-01-01T00:00:00Z')";
        db.write_bookkeeping(move |tx| tx.execute(organisation, []).map_err(StoreError::from)).await.unwrap();
        assert_eq!(db.generation(), start, "bookkeeping keeps the generation");
        db.write(|tx| tx.execute("UPDATE organisations SET name = 'Y'", []).map_err(StoreError::from)).await.unwrap();
        let after_own = db.generation();
        assert_ne!(after_own, start, "a judged write in this process");
        // Another process (the CLI) opens the same database and changes a judged table.
        let (other, _) = Db::open(&path, StoreOptions::default(), false).unwrap();
        other
            .write(|tx| tx.execute("UPDATE organisations SET name = 'Z'", []).map_err(StoreError::from))
            .await
            .unwrap();
        assert_ne!(db.generation(), after_own, "a judged write by another connection is seen");
        let rolled_back = db.generation();
        let refused: Result<(), StoreError> = db
            .write(|tx| {
                tx.execute("UPDATE organisations SET name = 'W'", [])?;
                Err(StoreError::Worker)
            })
            .await;
        assert!(refused.is_err());
        assert_eq!(db.generation(), rolled_back, "a rolled-back write changed nothing");
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open(&dir.path().join("t.db"), StoreOptions::default(), true).unwrap();
        let result = db
            .read(|c| c.execute("INSERT INTO settings (key, value) VALUES ('x', 'y')", []).map_err(StoreError::from))
            .await;
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn missing_database_is_not_created_without_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        assert!(matches!(Db::open(&path, StoreOptions::default(), false), Err(StoreError::Missing(_))));
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let (db, _) = Db::open(&path, StoreOptions::default(), true).unwrap();
            db.write(|tx| set_setting(tx, "k", "v").map_err(StoreError::from)).await.unwrap();
        }
        let (db, report) = Db::open(&path, StoreOptions::default(), false).unwrap();
        assert_eq!(report.from, report.to);
        let v = db.read(|c| setting(c, "k").map_err(StoreError::from)).await.unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }
}
