//! Backups: the database (a consistent `VACUUM INTO` copy, taken while serving), the CA and signing keys, and the
//! configuration, written to a directory. The database and the keys are encrypted with a key derived from a
//! passphrase (argon2id → AES-256-GCM); the manifest `backup.json` records the KDF salt and each file's SHA-256.
//! `restore` checks and decrypts everything before writing anything, and never writes into an initialised data
//! directory.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::config::Config;
use crate::digest::sha256_hex;
use crate::pki::files;

const DB_FILE: &str = "kopir.db.enc";
const KEYS_FILE: &str = "pki.enc";
const CONFIG_FILE: &str = "appliance.toml";
const MANIFEST_FILE: &str = "backup.json";
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("{0} is not empty; back up into a new directory")]
    TargetNotEmpty(PathBuf),
    #[error("{0} already holds a kopir database; restore only onto a fresh data directory")]
    LiveTarget(PathBuf),
    #[error("the passphrase must have at least 12 characters")]
    WeakPassphrase,
    #[error("wrong passphrase, or the backup was altered")]
    Decrypt,
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("encryption failed")]
    Crypto,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    pub kopir_version: String,
    pub created_at: String,
    pub schema_version: u32,
    /// Salt of the argon2id key derivation, base64.
    pub kdf_salt: String,
    pub files: Vec<BackupFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupFile {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The keys as bundled inside `pki.enc`.
#[derive(Serialize, Deserialize)]
struct KeyBundle {
    files: Vec<BundledFile>,
}

#[derive(Serialize, Deserialize)]
struct BundledFile {
    name: String,
    private: bool,
    content: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |error| BackupError::File { path: path.to_path_buf(), error }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn derive_key(passphrase: &str, salt: &[u8]) -> Result<LessSafeKey, BackupError> {
    let mut key = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|_| BackupError::Crypto)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| BackupError::Crypto)?;
    Ok(LessSafeKey::new(unbound))
}

/// nonce || ciphertext+tag; the file name is authenticated too, so files cannot be swapped.
fn seal(key: &LessSafeKey, name: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(name.as_bytes()), &mut data)
        .map_err(|_| BackupError::Crypto)?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

fn open(key: &LessSafeKey, name: &str, sealed: &[u8]) -> Result<Vec<u8>, BackupError> {
    if sealed.len() < NONCE_LEN {
        return Err(BackupError::Decrypt);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| BackupError::Decrypt)?;
    let mut data = body.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(name.as_bytes()), &mut data).map_err(|_| BackupError::Decrypt)?;
    Ok(plain.to_vec())
}

/// Writes a backup of this platform into `out` (created; must be empty or absent).
pub async fn backup(
    config: &Config,
    config_file: Option<&Path>,
    out: &Path,
    passphrase: &str,
) -> Result<BackupManifest, BackupError> {
    if passphrase.chars().count() < 12 {
        return Err(BackupError::WeakPassphrase);
    }
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(BackupError::TargetNotEmpty(out.to_path_buf()));
    }
    files::private_dir(out).map_err(io(out))?;
    // The consistent copy: one read transaction on its own connection, not blocking the writer.
    let copy_path = out.join("kopir.db.plain.tmp");
    let source = config.db_path();
    {
        let copy = copy_path.clone();
        tokio::task::spawn_blocking(move || -> Result<(), BackupError> {
            let conn = rusqlite::Connection::open(&source)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            conn.execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])?;
            Ok(())
        })
        .await
        .map_err(|_| BackupError::Crypto)??;
    }
    let schema_version: u32 = {
        let conn = rusqlite::Connection::open(&copy_path)?;
        conn.pragma_query_value(None, "user_version", |r| r.get(0))?
    };
    let plain_db = std::fs::read(&copy_path).map_err(io(&copy_path))?;
    std::fs::remove_file(&copy_path).map_err(io(&copy_path))?;

    let pki = config.pki_dir();
    let mut bundle = KeyBundle { files: Vec::new() };
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(&pki).map_err(io(&pki))?.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries.into_iter().filter(|p| p.is_file()) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let private = name.ends_with(".key");
        let content =
            if private { files::read_key(&path) } else { std::fs::read_to_string(&path) }.map_err(io(&path))?;
        bundle.files.push(BundledFile { name, private, content });
    }
    let bundle_json = serde_json::to_vec(&bundle).map_err(|e| BackupError::Damaged(e.to_string()))?;

    let salt: [u8; 16] = rand::random();
    let passphrase = passphrase.to_string();
    let key = tokio::task::spawn_blocking(move || derive_key(&passphrase, &salt))
        .await
        .map_err(|_| BackupError::Crypto)??;
    let sealed_db = seal(&key, DB_FILE, &plain_db)?;
    let sealed_keys = seal(&key, KEYS_FILE, &bundle_json)?;
    // The configuration file in use (or, without one, the embedded defaults it ran on).
    let config_text = match config_file {
        Some(path) => std::fs::read(path).map_err(io(path))?,
        None => crate::config::EXAMPLE.as_bytes().to_vec(),
    };

    let mut manifest = BackupManifest {
        format: FORMAT,
        kopir_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: clock::now_rfc3339(),
        schema_version,
        kdf_salt: b64().encode(salt),
        files: Vec::new(),
    };
    for (name, content, mode) in
        [(DB_FILE, sealed_db, 0o600), (KEYS_FILE, sealed_keys, 0o600), (CONFIG_FILE, config_text, 0o600)]
    {
        let path = out.join(name);
        files::write_atomic(&path, &content, mode).map_err(io(&path))?;
        manifest.files.push(BackupFile {
            name: name.to_string(),
            bytes: content.len() as u64,
            sha256: sha256_hex(&content),
        });
    }
    let manifest_path = out.join(MANIFEST_FILE);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| BackupError::Damaged(e.to_string()))?;
    files::write_atomic(&manifest_path, text.as_bytes(), 0o600).map_err(io(&manifest_path))?;
    Ok(manifest)
}

/// Restores a backup into `data_dir`, which must not hold a database. Everything is checked and decrypted
/// before the first file is written. The backed-up configuration is written as `appliance.restored.toml` for the
/// operator to compare with the one in use; it is never applied silently.
pub async fn restore(from: &Path, data_dir: &Path, passphrase: &str) -> Result<BackupManifest, BackupError> {
    if data_dir.join("kopir.db").exists() {
        return Err(BackupError::LiveTarget(data_dir.to_path_buf()));
    }
    let manifest_path = from.join(MANIFEST_FILE);
    let manifest: BackupManifest = serde_json::from_slice(&std::fs::read(&manifest_path).map_err(io(&manifest_path))?)
        .map_err(|e| BackupError::Damaged(format!("{MANIFEST_FILE}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Damaged(format!("unknown backup format {}", manifest.format)));
    }
    let mut contents = std::collections::HashMap::new();
    for file in &manifest.files {
        let path = from.join(&file.name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if sha256_hex(&bytes) != file.sha256 {
            return Err(BackupError::Damaged(format!("{} does not match its SHA-256 in the manifest", file.name)));
        }
        contents.insert(file.name.clone(), bytes);
    }
    let salt = b64().decode(&manifest.kdf_salt).map_err(|_| BackupError::Damaged("bad KDF salt".into()))?;
    let passphrase = passphrase.to_string();
    let key = tokio::task::spawn_blocking(move || derive_key(&passphrase, &salt))
        .await
        .map_err(|_| BackupError::Crypto)??;
    let missing = |name: &str| BackupError::Damaged(format!("{name} is missing"));
    let plain_db = open(&key, DB_FILE, contents.get(DB_FILE).ok_or_else(|| missing(DB_FILE))?)?;
    let keys = open(&key, KEYS_FILE, contents.get(KEYS_FILE).ok_or_else(|| missing(KEYS_FILE))?)?;
    let bundle: KeyBundle = serde_json::from_slice(&keys).map_err(|e| BackupError::Damaged(e.to_string()))?;
    for file in &bundle.files {
        if file.name.contains('/') || file.name.contains("..") || file.name.is_empty() {
            return Err(BackupError::Damaged(format!("bad file name {}", file.name)));
        }
    }

    files::private_dir(data_dir).map_err(io(data_dir))?;
    let pki = data_dir.join("pki");
    files::private_dir(&pki).map_err(io(&pki))?;
    for file in &bundle.files {
        let path = pki.join(&file.name);
        let mode = if file.private { 0o600 } else { 0o644 };
        files::write_atomic(&path, file.content.as_bytes(), mode).map_err(io(&path))?;
    }
    let db_path = data_dir.join("kopir.db");
    files::write_atomic(&db_path, &plain_db, 0o600).map_err(io(&db_path))?;
    if let Some(config) = contents.get(CONFIG_FILE) {
        let path = data_dir.join("appliance.restored.toml");
        files::write_atomic(&path, config, 0o600).map_err(io(&path))?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_right_key_and_name() {
        let key = derive_key("correct horse battery", &[7u8; 16]).unwrap();
        let sealed = seal(&key, "a", b"secret bytes").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"secret bytes"));
        assert_eq!(open(&key, "a", &sealed).unwrap(), b"secret bytes");
        assert!(matches!(open(&key, "b", &sealed), Err(BackupError::Decrypt)));
        let wrong = derive_key("wrong horse battery", &[7u8; 16]).unwrap();
        assert!(matches!(open(&wrong, "a", &sealed), Err(BackupError::Decrypt)));
    }
}
