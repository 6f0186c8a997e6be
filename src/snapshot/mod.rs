//! The auditor's snapshot: a plain SQLite copy of the database, taken consistently while the platform serves
//! traffic (`VACUUM INTO`, one read transaction), with every secret removed, and a manifest signed with the
//! platform's JWS key: schema version, row count and content hash of every table, SHA-256 of the file, audit chain
//! head. `kopir snapshot verify` checks the signature, the file hash, `PRAGMA integrity_check`, each table against the
//! manifest (naming the one that differs) and the audit chain inside the file (naming its first bad row).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::clock;
use crate::config::Config;
use crate::digest::{sha256, sha256_hex};
use crate::pki::signing::{KeyError, Signer};
use crate::store::{Db, StoreError, migrate};

/// What a snapshot must never contain: each statement removes one kind of secret. Sessions of staff and
/// customers go entirely (their rows are credentials, and a customer's holds the IIN and phone in flight); password
/// hashes and TOTP secrets are emptied; one-time codes go (a hash of six digits is as good as the code), and so does
/// the demo SMS outbox that shows them, and the counters of face checks and codes (subjects are hashes of IINs and
/// phones); hashes of request URIs, authorization codes and refresh tokens are replaced
/// (useless to an auditor); webhook URLs keep only their origin (a path may carry a receiver's secret); a customer's
/// complaint keeps its dates and course but not what the customer typed, and requests' attachments keep their name,
/// type and SHA-256 (to match an original against) but not their bytes. Private keys live in files and are never in
/// the database.
const STRIP: &[&str] = &[
    "DELETE FROM sessions",
    "UPDATE users SET password_hash = '', totp_secret = NULL, totp_last_step = 0",
    "DELETE FROM otp_challenges",
    "DELETE FROM sms_outbox",
    "DELETE FROM customer_sessions",
    "DELETE FROM trust_attempts",
    "DELETE FROM biometric_captures",
    "UPDATE authorization_requests SET request_uri_hash = 'redacted:' || id, code_hash = NULL, session_hash = NULL",
    "UPDATE refresh_tokens SET token_hash = 'redacted:' || rowid",
    "UPDATE organisations SET webhook_url = substr(webhook_url, 1, 8 + instr(substr(webhook_url, 9) || '/', '/') - 1)",
    "UPDATE requests SET subject = 'redacted', description = 'redacted' WHERE requester_customer_id IS NOT NULL",
    "UPDATE request_attachments SET content = x''",
];

/// The counts [`STRIP`] must leave at zero, each with what it counts.
const LEFT_OVER: &[(&str, &str)] = &[
    ("SELECT count(*) FROM sessions", "session rows"),
    ("SELECT count(*) FROM users WHERE password_hash <> ''", "password hashes"),
    ("SELECT count(*) FROM users WHERE totp_secret IS NOT NULL", "TOTP secrets"),
    ("SELECT count(*) FROM otp_challenges", "one-time code rows"),
    ("SELECT count(*) FROM sms_outbox", "SMS outbox rows"),
    ("SELECT count(*) FROM customer_sessions", "customer session rows"),
    ("SELECT count(*) FROM trust_attempts", "face-check and SMS counters"),
    ("SELECT count(*) FROM biometric_captures", "face capture references"),
    (
        "SELECT count(*) FROM authorization_requests WHERE code_hash IS NOT NULL OR request_uri_hash NOT LIKE 'redacted:%'",
        "authorization code or request URI hashes",
    ),
    ("SELECT count(*) FROM refresh_tokens WHERE token_hash NOT LIKE 'redacted:%'", "refresh token hashes"),
    ("SELECT count(*) FROM organisations WHERE instr(substr(webhook_url, 9), '/') > 0", "webhook URL paths"),
    (
        "SELECT count(*) FROM requests WHERE requester_customer_id IS NOT NULL AND description <> 'redacted'",
        "customers' complaint texts",
    ),
    ("SELECT count(*) FROM request_attachments WHERE length(content) > 0", "request attachment contents"),
];

/// The keyed hash that stands for an IIN in a pseudonymised snapshot: stable across snapshots of one platform
/// (the key stays in the data directory), not reversible without the key.
fn pseudonym(key: &[u8], iin: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    format!("pseudo:{}", &hex::encode(aws_lc_rs::hmac::sign(&key, iin.as_bytes()).as_ref())[..32])
}

/// The pseudonymisation key, `<data_dir>/pki/pseudonym.key` (0600), made on first use.
fn pseudonym_key(config: &Config) -> Result<Vec<u8>, SnapshotError> {
    let path = config.pki_dir().join("pseudonym.key");
    if !path.exists() {
        let key = hex::encode(rand::random::<[u8; 32]>());
        crate::pki::files::write_key(&path, &key).map_err(io(&path))?;
    }
    let text = crate::pki::files::read_key(&path).map_err(io(&path))?;
    hex::decode(text.trim()).map_err(|_| SnapshotError::Manifest(format!("{} is not a hex key", path.display())))
}

fn pseudonymise(conn: &Connection, key: &[u8]) -> Result<(), SnapshotError> {
    let customers: Vec<(i64, String)> = {
        let mut stmt = conn.prepare("SELECT id, iin FROM customers WHERE iin NOT LIKE 'pseudo:%'")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
    };
    for (id, iin) in customers {
        conn.execute("UPDATE customers SET iin = ?2 WHERE id = ?1", rusqlite::params![id, pseudonym(key, &iin)])?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0} exists; choose another --out")]
    Exists(PathBuf),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("the manifest is not valid: {0}")]
    Manifest(String),
    #[error("the manifest's signature does not verify: {0}")]
    Signature(String),
    #[error("the snapshot file does not match its manifest: {0}")]
    Mismatch(String),
    #[error("the snapshot holds a secret: {0}")]
    Secret(String),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// The `typ` of the manifest's JWS.
pub const MANIFEST_TYPE: &str = "kopir-snapshot-manifest+jwt";

/// One table as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    pub name: String,
    pub rows: i64,
    /// SHA-256 over the table's rows in rowid order (each row as a JSON array of its values).
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub kopir_version: String,
    pub instance_id: String,
    pub created_at: String,
    pub schema_version: u32,
    pub file_sha256: String,
    pub file_bytes: u64,
    pub tables: Vec<TableDigest>,
    pub audit_rows: i64,
    pub audit_head: String,
    /// Customers' IINs are replaced by keyed hashes (`--pseudonymise`).
    #[serde(default)]
    pub pseudonymised: bool,
}

/// The manifest's two files beside the snapshot: the signed one and a readable copy.
pub fn manifest_paths(snapshot: &Path) -> (PathBuf, PathBuf) {
    let name = snapshot.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (snapshot.with_file_name(format!("{name}.manifest.jws")), snapshot.with_file_name(format!("{name}.manifest.json")))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |error| SnapshotError::File { path: path.to_path_buf(), error }
}

fn tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

fn value_json(v: rusqlite::types::ValueRef<'_>) -> serde_json::Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => serde_json::json!(f),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => format!("blob:{}", hex::encode(sha256(b))).into(),
    }
}

/// Row count and content hash of one table. The table name comes from `sqlite_master`, never from input.
fn digest_table(conn: &Connection, table: &str) -> rusqlite::Result<TableDigest> {
    let quoted = table.replace('"', "\"\"");
    // A WITHOUT ROWID table (e.g. an FTS5 index's shadow tables) is ordered by all its columns instead.
    let without_rowid: bool = conn
        .query_row("SELECT wr FROM pragma_table_list WHERE name = ?1 AND schema = 'main'", [table], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    let order = if without_rowid {
        let columns: i64 = conn.query_row("SELECT count(*) FROM pragma_table_info(?1)", [table], |r| r.get(0))?;
        (1..=columns.max(1)).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    } else {
        "rowid".to_string()
    };
    let mut stmt = conn.prepare(&format!("SELECT * FROM \"{quoted}\" ORDER BY {order}"))?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut hasher_input = Vec::new();
    let mut count = 0i64;
    while let Some(row) = rows.next()? {
        let values: Vec<serde_json::Value> =
            (0..columns).map(|i| row.get_ref(i).map(value_json)).collect::<Result<_, _>>()?;
        hasher_input.extend_from_slice(serde_json::Value::Array(values).to_string().as_bytes());
        hasher_input.push(b'\n');
        count += 1;
    }
    Ok(TableDigest { name: table.to_string(), rows: count, sha256: sha256_hex(&hasher_input) })
}

/// Checks that nothing [`STRIP`] removes is left in the file, and (when promised) that no IIN is.
fn check_no_secrets(conn: &Connection, pseudonymised: bool) -> Result<(), SnapshotError> {
    for (sql, what) in LEFT_OVER {
        let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
        if n > 0 {
            return Err(SnapshotError::Secret(format!("{n} {what}")));
        }
    }
    if pseudonymised {
        let n: i64 =
            conn.query_row("SELECT count(*) FROM customers WHERE iin NOT LIKE 'pseudo:%'", [], |r| r.get(0))?;
        if n > 0 {
            return Err(SnapshotError::Secret(format!("{n} customer IINs in a pseudonymised snapshot")));
        }
    }
    Ok(())
}

/// Writes the snapshot to `out` and its signed manifest beside it. Safe while the server runs: the copy is one
/// read transaction under WAL and blocks no writer.
pub async fn export(config: &Config, db: &Db, out: &Path, pseudonymised: bool) -> Result<Manifest, SnapshotError> {
    let (jws_path, json_path) = manifest_paths(out);
    for path in [out, &jws_path, &json_path] {
        if path.exists() {
            return Err(SnapshotError::Exists(path.to_path_buf()));
        }
    }
    let source = config.db_path();
    let target = out.to_path_buf();
    let key = if pseudonymised { Some(pseudonym_key(config)?) } else { None };
    let manifest = tokio::task::spawn_blocking(move || -> Result<Manifest, SnapshotError> {
        let conn =
            Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let instance_id = crate::store::setting(&conn, "instance_id")?.unwrap_or_default();
        conn.execute("VACUUM INTO ?1", [target.to_string_lossy().as_ref()])?;
        drop(conn);
        let copy = Connection::open(&target)?;
        // Overwritten content must not survive in free pages: secure_delete, then a VACUUM of the copy itself.
        copy.pragma_update(None, "secure_delete", true)?;
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        for statement in STRIP {
            copy.execute_batch(statement)?;
        }
        if let Some(key) = &key {
            pseudonymise(&copy, key)?;
        }
        copy.execute_batch("VACUUM")?;
        check_no_secrets(&copy, pseudonymised)?;
        let head = audit::verify(&copy)?;
        let schema_version: u32 = copy.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let digests = tables(&copy)?.iter().map(|t| digest_table(&copy, t)).collect::<Result<Vec<_>, _>>()?;
        drop(copy);
        let bytes = std::fs::read(&target).map_err(io(&target))?;
        Ok(Manifest {
            kopir_version: env!("CARGO_PKG_VERSION").to_string(),
            instance_id,
            created_at: clock::now_rfc3339(),
            schema_version,
            file_sha256: sha256_hex(&bytes),
            file_bytes: bytes.len() as u64,
            tables: digests,
            audit_rows: head.rows,
            audit_head: head.head_hash,
            pseudonymised,
        })
    })
    .await
    .map_err(|_| StoreError::Worker)??;
    let signer = Signer::new(std::sync::Arc::new(config.clone()));
    let jws = signer.sign(db, MANIFEST_TYPE, &manifest).await?;
    crate::pki::files::write_atomic(&jws_path, jws.as_bytes(), 0o644).map_err(io(&jws_path))?;
    let readable = serde_json::to_string_pretty(&manifest).map_err(|e| SnapshotError::Manifest(e.to_string()))?;
    crate::pki::files::write_atomic(&json_path, readable.as_bytes(), 0o644).map_err(io(&json_path))?;
    Ok(manifest)
}

/// What verification found, when everything holds.
#[derive(Debug, Clone, Serialize)]
pub struct Verified<M = Manifest> {
    pub manifest: M,
    pub kid: String,
}

/// Checks a compact JWS signed by the platform's [`Signer`] against a JWKS (the platform's published key set) and
/// returns its payload and the key it names. Its `typ` must be `typ`, so that one signed document cannot pass for
/// another. Shared by the snapshot's manifest and the monthly report's seal.
pub fn verify_signed<T: serde::de::DeserializeOwned>(
    jws: &str,
    typ: &str,
    jwks: &serde_json::Value,
) -> Result<(T, String), SnapshotError> {
    let header = jsonwebtoken::decode_header(jws.trim()).map_err(|e| SnapshotError::Manifest(e.to_string()))?;
    if header.typ.as_deref() != Some(typ) {
        return Err(SnapshotError::Manifest(format!("the signed document is not a {typ}")));
    }
    let kid = header.kid.ok_or_else(|| SnapshotError::Manifest("the signature names no key (kid)".into()))?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| SnapshotError::Signature(format!("key {kid} is not in the given key set")))?;
    let (x, y) = (jwk["x"].as_str().unwrap_or_default(), jwk["y"].as_str().unwrap_or_default());
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(x, y).map_err(|e| SnapshotError::Signature(e.to_string()))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<T>(jws.trim(), &key, &validation)
        .map_err(|e| SnapshotError::Signature(e.to_string()))?
        .claims;
    Ok((claims, kid))
}

/// Verifies a snapshot against its signed manifest and a JWKS (the platform's published key set).
pub fn verify(snapshot: &Path, jwks: &serde_json::Value) -> Result<Verified, SnapshotError> {
    let (jws_path, _) = manifest_paths(snapshot);
    let jws = std::fs::read_to_string(&jws_path).map_err(io(&jws_path))?;
    let (manifest, kid) = verify_signed::<Manifest>(&jws, MANIFEST_TYPE, jwks)?;

    let bytes = std::fs::read(snapshot).map_err(io(snapshot))?;
    let conn =
        Connection::open_with_flags(snapshot, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if integrity != "ok" {
        return Err(SnapshotError::Mismatch(format!("integrity check: {integrity}")));
    }
    let schema_version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if schema_version != manifest.schema_version {
        return Err(SnapshotError::Mismatch(format!(
            "schema version {schema_version}, manifest says {}",
            manifest.schema_version
        )));
    }
    // The audit chain names its first bad row; check it before the table digests, which would only name the table.
    let head = audit::verify(&conn)?;
    let found = tables(&conn)?;
    for expected in &manifest.tables {
        if !found.contains(&expected.name) {
            return Err(SnapshotError::Mismatch(format!("table {} is missing", expected.name)));
        }
        let actual = digest_table(&conn, &expected.name)?;
        if actual.rows != expected.rows {
            return Err(SnapshotError::Mismatch(format!(
                "table {} has {} rows, the manifest says {}",
                expected.name, actual.rows, expected.rows
            )));
        }
        if actual.sha256 != expected.sha256 {
            return Err(SnapshotError::Mismatch(format!("a row of table {} was changed", expected.name)));
        }
    }
    if let Some(extra) = found.iter().find(|t| !manifest.tables.iter().any(|m| &m.name == *t)) {
        return Err(SnapshotError::Mismatch(format!("table {extra} is not in the manifest")));
    }
    if head.head_hash != manifest.audit_head || head.rows != manifest.audit_rows {
        return Err(SnapshotError::Mismatch("the audit chain head differs from the manifest".into()));
    }
    if sha256_hex(&bytes) != manifest.file_sha256 {
        return Err(SnapshotError::Mismatch("the file's SHA-256 differs from the manifest".into()));
    }
    check_no_secrets(&conn, manifest.pseudonymised)?;
    // The schema inside must be one this binary knows: an auditor's tool should not trust an unknown layout.
    if schema_version > migrate::latest_version().map_err(SnapshotError::Store)? {
        return Err(SnapshotError::Mismatch(format!("schema version {schema_version} is newer than this kopir")));
    }
    Ok(Verified { manifest, kid })
}
