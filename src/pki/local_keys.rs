//! The platform's local secret, `<data_dir>/pki/local-secret.key` (0600, 256 random bits, made on first use): the
//! root of keys that never leave this server and that nobody outside it needs to verify. Each purpose gets its own
//! HMAC-SHA256 key derived from the secret with a fixed label, so one never stands in for another.
//!
//! Losing the file costs little: open anonymous forms must be reloaded once, and tags of mistyped user names in
//! the journal no longer match later ones.

use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;

use super::files;
use crate::config::Config;

pub struct LocalKeys {
    csrf: hmac::Key,
    names: hmac::Key,
}

impl LocalKeys {
    pub fn path(config: &Config) -> PathBuf {
        config.pki_dir().join("local-secret.key")
    }

    /// Loads the secret from `path`, making it on first use.
    pub fn load_or_create(path: &Path) -> std::io::Result<LocalKeys> {
        if !path.exists() {
            files::write_key(path, &hex::encode(rand::random::<[u8; 32]>()))?;
        }
        let text = files::read_key(path)?;
        let secret = hex::decode(text.trim())
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a 256-bit hex key"))?;
        Ok(LocalKeys::from_secret(&secret))
    }

    pub fn from_secret(secret: &[u8]) -> LocalKeys {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derive = |label: &str| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&root, label.as_bytes()).as_ref());
        LocalKeys { csrf: derive("kopir anonymous form token v1"), names: derive("kopir mistyped user name tag v1") }
    }

    /// The CSRF token of an anonymous visitor's forms, bound to the random value of the visitor's form cookie
    /// (a signed double-submit token: only this server can make it, and only for that cookie).
    pub fn form_token(&self, cookie_value: &str) -> String {
        crate::digest::b64url(hmac::sign(&self.csrf, cookie_value.as_bytes()).as_ref())
    }

    /// A short keyed tag of a user name that matches no account: the journal can count attempts per typed name
    /// without keeping what was typed (often a password typed into the wrong field).
    pub fn name_tag(&self, typed: &str) -> String {
        format!("tag:{}", &hex::encode(hmac::sign(&self.names, typed.as_bytes()))[..24])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_and_tags_are_keyed_and_distinct() {
        let a = LocalKeys::from_secret(&[1; 32]);
        let b = LocalKeys::from_secret(&[2; 32]);
        assert_eq!(a.form_token("cookie"), a.form_token("cookie"));
        assert_ne!(a.form_token("cookie"), a.form_token("other"));
        assert_ne!(a.form_token("cookie"), b.form_token("cookie"));
        assert_eq!(a.name_tag("hunter2"), a.name_tag("hunter2"));
        assert!(!a.name_tag("hunter2").contains("hunter2"));
        assert_ne!(a.name_tag("hunter2"), b.name_tag("hunter2"));
    }

    #[test]
    fn the_secret_is_made_once_and_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("local-secret.key");
        let first = LocalKeys::load_or_create(&path).unwrap().form_token("x");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(LocalKeys::load_or_create(&path).unwrap().form_token("x"), first);
    }
}
