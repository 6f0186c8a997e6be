//! Platform-scoped account ids. A bank's own account id never reaches the API user: the platform hands out
//! `AES-256-GCM-SIV(key, provider ‖ bank account id)` with the consent id as associated data, base64url. The id is
//! stable for one account under one consent, opaque, and only decrypts under the consent it was issued for — so an
//! API user cannot address an account of a bank (or a consent) it was not given. Nothing is stored.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;

use crate::pki::files;

const PREFIX: &str = "ka1-";

pub struct AccountIds {
    key: LessSafeKey,
}

/// Where an account lives: the provider (organisation id) and the bank's own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    pub provider: i64,
    pub account_id: String,
}

impl AccountIds {
    /// Loads the key from `path` (0600), making it on first use.
    pub fn load_or_create(path: &Path) -> std::io::Result<AccountIds> {
        if !path.exists() {
            files::write_key(path, &hex::encode(rand::random::<[u8; 32]>()))?;
        }
        let text = files::read_key(path)?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a hex key"))?;
        AccountIds::from_key(&bytes)
    }

    pub fn from_key(bytes: &[u8]) -> std::io::Result<AccountIds> {
        let key = UnboundKey::new(&AES_256_GCM_SIV, bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a 256-bit key"))?;
        Ok(AccountIds { key: LessSafeKey::new(key) })
    }

    /// The platform's id for a bank account under a consent.
    pub fn seal(&self, consent_id: &str, account: &BankAccount) -> String {
        let mut data = account.provider.to_be_bytes().to_vec();
        data.extend_from_slice(account.account_id.as_bytes());
        // GCM-SIV stays safe with a repeated nonce (it then only shows that two plaintexts are equal — which is
        // the point: the same account gets the same id).
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; 12]),
            Aad::from(consent_id.as_bytes()),
            &mut data,
        );
        match sealed {
            Ok(()) => format!("{PREFIX}{}", crate::digest::b64url(&data)),
            // Sealing a short buffer cannot fail; an unusable id is refused later anyway.
            Err(_) => String::new(),
        }
    }

    /// The bank account behind a platform id, if the id was issued under this consent.
    pub fn open(&self, consent_id: &str, id: &str) -> Option<BankAccount> {
        let encoded = id.strip_prefix(PREFIX)?;
        if encoded.len() > 400 {
            return None;
        }
        let mut data = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok()?;
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key([0u8; 12]), Aad::from(consent_id.as_bytes()), &mut data)
            .ok()?;
        if plain.len() < 9 {
            return None;
        }
        let (provider, account) = plain.split_at(8);
        Some(BankAccount {
            provider: i64::from_be_bytes(provider.try_into().ok()?),
            account_id: String::from_utf8(account.to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_stable_opaque_and_bound_to_their_consent() {
        let ids = AccountIds::from_key(&[7u8; 32]).unwrap();
        let account = BankAccount { provider: 42, account_id: "acc-0001".into() };
        let id = ids.seal("aac-1", &account);
        assert_eq!(id, ids.seal("aac-1", &account), "stable");
        assert!(!id.contains("acc-0001") && id.len() <= 128, "{id}");
        assert_eq!(ids.open("aac-1", &id), Some(account.clone()));
        assert_eq!(ids.open("aac-2", &id), None, "another consent");
        let mut forged = id.clone();
        forged.pop();
        forged.push(if id.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(ids.open("aac-1", &forged), None, "altered");
        assert_ne!(ids.seal("aac-2", &account), id, "another consent, another id");
        let other = AccountIds::from_key(&[8u8; 32]).unwrap();
        assert_eq!(other.open("aac-1", &id), None, "another platform's key");
    }
}
