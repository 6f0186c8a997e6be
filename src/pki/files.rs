//! Key and certificate files: private keys are written once, atomically, readable by the owner only (0600), in a
//! directory only the owner can enter (0700).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700, or tightens an existing one to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Writes `contents` to `path` through a temporary file and a rename, with `mode`, so a crash never leaves a
/// half-written key behind and the file is never readable by others, not even for a moment.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes a private key (mode 0600).
pub fn write_key(path: &Path, pem: &str) -> std::io::Result<()> {
    write_atomic(path, pem.as_bytes(), 0o600)
}

/// Writes a certificate (public; mode 0644).
pub fn write_cert(path: &Path, pem: &str) -> std::io::Result<()> {
    write_atomic(path, pem.as_bytes(), 0o644)
}

/// Reads a private key file, refusing one that others can read: a leaked key must not be used silently.
pub fn read_key(path: &Path) -> std::io::Result<String> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is accessible by other users (mode {:o}); run chmod 600 on it", path.display(), mode & 0o777),
        ));
    }
    fs::read_to_string(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_are_owner_only_and_loose_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("pki");
        private_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        let key = sub.join("k.key");
        write_key(&key, "secret").unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_key(&key).unwrap(), "secret");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_key(&key).is_err());
    }
}
