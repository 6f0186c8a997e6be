//! Numbered migrations from the embedded `schema.sql`, tracked with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The whole schema, as shipped. Each `-- migration N: …` line starts block N.
pub const SCHEMA: &str = include_str!("../../schema.sql");

const MARKER: &str = "-- migration ";

/// One numbered block of `schema.sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub number: u32,
    pub title: String,
    pub sql: String,
}

/// Splits the schema into its migrations. Numbers must run 1, 2, 3… without gaps.
pub fn migrations(schema: &str) -> Result<Vec<Migration>, StoreError> {
    let mut out: Vec<Migration> = Vec::new();
    for line in schema.lines() {
        if let Some(rest) = line.strip_prefix(MARKER) {
            let (number, title) = rest.split_once(':').unwrap_or((rest, ""));
            let number: u32 =
                number.trim().parse().map_err(|_| StoreError::Schema(format!("bad migration marker: {line}")))?;
            let expected = out.len() as u32 + 1;
            if number != expected {
                return Err(StoreError::Schema(format!("migration {number} found where {expected} was expected")));
            }
            out.push(Migration { number, title: title.trim().to_string(), sql: String::new() });
        } else if let Some(current) = out.last_mut() {
            current.sql.push_str(line);
            current.sql.push('\n');
        }
    }
    Ok(out)
}

/// The schema version this binary knows.
pub fn latest_version() -> Result<u32, StoreError> {
    Ok(migrations(SCHEMA)?.len() as u32)
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub from: u32,
    pub to: u32,
}

/// Applies every migration newer than the database, each in its own transaction. A database newer than the binary
/// is refused: an older binary must not write into a schema it does not understand.
pub fn migrate(conn: &mut Connection, schema: &str) -> Result<MigrationReport, StoreError> {
    let all = migrations(schema)?;
    let latest = all.len() as u32;
    let current: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > latest {
        return Err(StoreError::TooNew { database: current, binary: latest });
    }
    // A migration may rebuild a table others refer to (SQLite cannot drop a constraint in place), which needs
    // foreign keys off — outside any transaction; every reference is checked before each migration commits instead.
    // Migration 14 rolls exchanges up into the operator's days with `kopir_local_day`, which `Db::open` gives every
    // connection for the configured time zone; a bare connection (a unit test's in-memory database) gets the
    // default zone's.
    let has_local_day: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_function_list WHERE name = ?1",
        [crate::store::calendar::LOCAL_DAY_FUNCTION],
        |row| row.get(0),
    )?;
    if !has_local_day {
        crate::store::calendar::register(conn, &crate::store::calendar::default_time_zone())?;
    }
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let applied = all.iter().filter(|m| m.number > current).try_for_each(|migration| apply(conn, migration));
    conn.pragma_update(None, "foreign_keys", enforced)?;
    applied?;
    Ok(MigrationReport { from: current, to: latest.max(current) })
}

fn apply(conn: &mut Connection, migration: &Migration) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| {
        StoreError::Schema(format!("migration {} ({}): {e}", migration.number, migration.title))
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&migration.sql).map_err(|e| failed(&e))?;
    let broken: i64 = tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
    if broken > 0 {
        return Err(failed(&format!("{broken} rows would refer to rows that do not exist")));
    }
    // PRAGMA takes no bound parameters; the number comes from our own schema, not from input.
    tx.execute_batch(&format!("PRAGMA user_version = {}", migration.number))?;
    tx.commit()?;
    tracing::info!(number = migration.number, title = %migration.title, "applied database migration");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn shipped_schema_has_consecutive_migrations() {
        let all = migrations(SCHEMA).unwrap();
        assert!(!all.is_empty());
        for (i, m) in all.iter().enumerate() {
            assert_eq!(m.number as usize, i + 1);
            assert!(!m.title.is_empty(), "migration {} needs a title", m.number);
        }
    }

    #[test]
    fn fresh_database_reaches_latest_version_and_second_run_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        let report = migrate(&mut conn, SCHEMA).unwrap();
        assert_eq!(report.from, 0);
        assert_eq!(report.to, latest_version().unwrap());
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, report.to);
        let again = migrate(&mut conn, SCHEMA).unwrap();
        assert_eq!(again.from, again.to);
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        let latest = latest_version().unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", latest + 1)).unwrap();
        match migrate(&mut conn, SCHEMA) {
            Err(StoreError::TooNew { database, binary }) => {
                assert_eq!(database, latest + 1);
                assert_eq!(binary, latest);
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn later_migration_applies_on_top_of_an_older_database() {
        let v1 = "-- migration 1: one\nCREATE TABLE a (x INTEGER) STRICT;\n";
        let v2 = format!("{v1}-- migration 2: two\nALTER TABLE a ADD COLUMN y TEXT;\n");
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, v1).unwrap(), MigrationReport { from: 0, to: 1 });
        conn.execute("INSERT INTO a (x) VALUES (7)", []).unwrap();
        assert_eq!(migrate(&mut conn, &v2).unwrap(), MigrationReport { from: 1, to: 2 });
        let (x, y): (i64, Option<String>) =
            conn.query_row("SELECT x, y FROM a", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((x, y), (7, None));
    }

    #[test]
    fn failing_migration_leaves_the_database_at_the_previous_version() {
        let schema = "-- migration 1: ok\nCREATE TABLE a (x INTEGER);\n-- migration 2: broken\nCREATE TABLE b (y INTEGER);\nNOT SQL;\n";
        let mut conn = Connection::open_in_memory().unwrap();
        assert!(matches!(migrate(&mut conn, schema), Err(StoreError::Schema(_))));
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 1);
        let b: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'b'", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 0, "the half-applied migration was rolled back");
    }

    #[test]
    fn gap_in_numbers_is_refused() {
        let schema = "-- migration 1: a\nSELECT 1;\n-- migration 3: c\nSELECT 1;\n";
        assert!(matches!(migrations(schema), Err(StoreError::Schema(_))));
    }

    #[test]
    fn organisations_rebuilt_by_the_bin_migration_keep_their_rows_and_the_rows_referring_to_them() {
        // Everything before the migration that rebuilds `organisations` (found by its title, whatever its number).
        let title = SCHEMA.find("webhook failures in detail for the operator only").unwrap();
        let before = &SCHEMA[..SCHEMA[..title].rfind(MARKER).unwrap()];
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut conn, before).unwrap();
        conn.execute_batch(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, status,
                                        created_at, updated_at, webhook_url)
             VALUES (7, '990140000661', 'Old Bank JSC', '1', 'a@b.kz', '+77272500000', 'accredited', 't', 't',
                     'https://hooks.bank.kz/x');
             INSERT INTO users (username, role, password_hash, created_at, organisation_id)
             VALUES ('old.admin', 'participant_admin', 'h', 't', 7);",
        )
        .unwrap();
        migrate(&mut conn, SCHEMA).unwrap();
        let kept: (String, String, String) = conn
            .query_row("SELECT name, status, webhook_url FROM organisations WHERE id = 7", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(kept, ("Old Bank JSC".into(), "accredited".into(), "https://hooks.bank.kz/x".into()));
        let broken: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).unwrap();
        assert_eq!(broken, 0);
        let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert!(enforced, "foreign keys are enforced again after the migrations");
        // A registration may repeat the BIN; a second accredited organisation with it may not.
        let insert = |status: &str| {
            conn.execute(
                "INSERT INTO organisations (bin, name, licence_number, contact_email, contact_phone, status,
                                            created_at, updated_at)
                 VALUES ('990140000661', 'Squat LLP', '1', 'a@b.kz', '+77272500000', ?1, 't', 't')",
                [status],
            )
        };
        assert!(insert("registered").is_ok());
        assert!(insert("accredited").is_err());
        assert!(conn.execute("DELETE FROM organisations WHERE id = 7", []).is_err(), "references still hold");
    }
}
