//! Platform-scoped account ids. A bank's own account id never reaches the API user: the platform hands out a
//! deterministic authenticated encryption of `provider ‖ bank account id` under the consent id, base64url. The id is
//! stable for one account under one consent, opaque, unlinkable between consents (so between API users: the same
//! account under two consents has two unrelated ids), and tamper-evident: it only opens under the consent it was
//! issued for, so an API user cannot address an account of a bank (or a consent) it was not given. Nothing is
//! stored.
//!
//! The construction is SIV (RFC 5297's shape, with HMAC-SHA-256 as its PRF): the tag is
//! `HMAC(mac key, consent id ‖ plaintext)` cut to [`TAG_BYTES`], and the plaintext is encrypted with AES-256-CTR
//! starting at that tag. Being deterministic is the point (the same account gets the same id) and all SIV then shows
//! is that two ids are equal, which they are meant to be. The two subkeys are derived from the platform's one
//! `account-ids.key`.
//!
//! Why this and not the AES-GCM-SIV of the first version: an id must fit the standard's `AccountId` (OBIE `Max40Text`,
//! letters, digits, `._~-`), and GCM-SIV's 16-byte tag, an 8-byte provider and a 4-character prefix made ids of 58
//! characters. Here the provider is a variable-length integer (two bytes up to 16 383 organisations), the tag is
//! 10 bytes and there is no prefix: 40 base64url characters carry 30 bytes, so a bank's id of up to
//! [`BANK_ID_BYTES`] bytes gives an id of at most 40 characters. An 80-bit tag keeps ids tamper-evident: a forgery is
//! an online guess, each one an authenticated, rate-limited and metered call, with one chance in 2^80 — and a forged
//! id would still only name an account of the consent's own customer at a bank of the consent. The standard asks banks
//! for ids of at most [`BANK_ID_BYTES`] characters (its `AccountId` description); a longer one still works, its
//! platform id is then longer than 40.
//!
//! Ids of the first version (`ka1-…`) no longer open: an API user lists `/accounts` again to learn the new ones (ids
//! were never promised to outlive a platform upgrade, and every consent can list its accounts).

use std::path::Path;

use aws_lc_rs::cipher::{AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use base64::Engine;

use crate::pki::files;

/// The length of the authentication tag, in bytes (80 bits).
const TAG_BYTES: usize = 10;

/// The longest bank account id, in bytes, whose platform id fits the standard's 40 characters (with a provider id
/// below 16 384).
pub const BANK_ID_BYTES: usize = 18;

/// The longest platform id [`AccountIds::open`] looks at: a bank id of the standard's 40 characters and a provider id
/// of ten bytes, base64url.
const MAX_ID_CHARS: usize = 4 * (TAG_BYTES + 10 + 40).div_ceil(3);

pub struct AccountIds {
    mac: hmac::Key,
    /// AES-256-CTR, its key schedule made once (the IV comes with each call).
    enc: EncryptingKey,
}

/// Where an account lives: the provider (organisation id) and the bank's own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    pub provider: i64,
    pub account_id: String,
}

fn invalid(message: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

impl AccountIds {
    /// Loads the key from `path` (0600), making it on first use.
    pub fn load_or_create(path: &Path) -> std::io::Result<AccountIds> {
        if !path.exists() {
            files::write_key(path, &hex::encode(rand::random::<[u8; 32]>()))?;
        }
        let text = files::read_key(path)?;
        let bytes = hex::decode(text.trim()).map_err(|_| invalid("not a hex key"))?;
        AccountIds::from_key(&bytes)
    }

    /// Derives the MAC and encryption subkeys from the platform's 256-bit key.
    pub fn from_key(bytes: &[u8]) -> std::io::Result<AccountIds> {
        if bytes.len() != 32 {
            return Err(invalid("not a 256-bit key"));
        }
        let root = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(hmac::sign(&root, label).as_ref());
            out
        };
        let enc = UnboundCipherKey::new(&AES_256, &derive(b"kopir account ids v2: encryption"))
            .and_then(EncryptingKey::ctr)
            .map_err(|_| invalid("not a usable AES-256 key"))?;
        Ok(AccountIds { mac: hmac::Key::new(hmac::HMAC_SHA256, &derive(b"kopir account ids v2: mac")), enc })
    }

    /// The synthetic IV: the MAC of the consent id (length-prefixed, so that no two inputs run together) and the
    /// plaintext, cut to the tag's length.
    fn tag(&self, consent_id: &str, plain: &[u8]) -> [u8; TAG_BYTES] {
        let mut context = hmac::Context::with_key(&self.mac);
        context.update(&(consent_id.len() as u64).to_be_bytes());
        context.update(consent_id.as_bytes());
        context.update(plain);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&context.sign().as_ref()[..TAG_BYTES]);
        tag
    }

    /// AES-256-CTR from the tag (encrypting and decrypting are the same).
    fn apply_keystream(&self, tag: &[u8; TAG_BYTES], data: &mut [u8]) -> Option<()> {
        let mut iv = [0u8; 16];
        iv[..TAG_BYTES].copy_from_slice(tag);
        self.enc.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv))).ok()?;
        Some(())
    }

    /// The platform's id for a bank account under a consent.
    pub fn seal(&self, consent_id: &str, account: &BankAccount) -> String {
        let mut plain = Vec::with_capacity(3 + account.account_id.len());
        put_varint(&mut plain, account.provider as u64);
        plain.extend_from_slice(account.account_id.as_bytes());
        let tag = self.tag(consent_id, &plain);
        // Encrypting a short buffer with a valid key cannot fail; an unusable id is refused later anyway.
        if self.apply_keystream(&tag, &mut plain).is_none() {
            return String::new();
        }
        let mut sealed = tag.to_vec();
        sealed.extend_from_slice(&plain);
        crate::digest::b64url(&sealed)
    }

    /// The bank account behind a platform id, if the id was issued under this consent.
    pub fn open(&self, consent_id: &str, id: &str) -> Option<BankAccount> {
        if id.len() > MAX_ID_CHARS {
            return None;
        }
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()?;
        if sealed.len() < TAG_BYTES + 2 {
            return None;
        }
        let (tag, encrypted) = sealed.split_at(TAG_BYTES);
        let tag: [u8; TAG_BYTES] = tag.try_into().ok()?;
        let mut plain = encrypted.to_vec();
        self.apply_keystream(&tag, &mut plain)?;
        let expected = self.tag(consent_id, &plain);
        if !crate::digest::constant_time_eq(&expected, &tag) {
            return None;
        }
        let (provider, rest) = take_varint(&plain)?;
        if rest.is_empty() {
            return None;
        }
        Some(BankAccount {
            provider: i64::try_from(provider).ok()?,
            account_id: String::from_utf8(rest.to_vec()).ok()?,
        })
    }
}

/// Unsigned LEB128: seven bits a byte, low first, the high bit saying "more".
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The integer at the start of `bytes` and what follows it; `None` for a truncated or over-long (or non-minimal)
/// encoding, so that one value has one encoding.
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        value |= bits.checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            if i > 0 && bits == 0 {
                return None;
            }
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
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
        assert!(!id.contains("acc-0001"), "{id}");
        assert_eq!(ids.open("aac-1", &id), Some(account.clone()));
        assert_eq!(ids.open("aac-2", &id), None, "another consent");
        let mut forged = id.clone();
        forged.pop();
        forged.push(if id.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(ids.open("aac-1", &forged), None, "altered");
        assert_ne!(ids.seal("aac-2", &account), id, "another consent, another id");
        let other = AccountIds::from_key(&[8u8; 32]).unwrap();
        assert_eq!(other.open("aac-1", &id), None, "another platform's key");
        assert_eq!(ids.open("aac-1", ""), None);
        assert_eq!(ids.open("aac-1", "ka1-AAAA"), None);
    }

    #[test]
    fn ids_fit_the_standard_for_bank_ids_up_to_the_documented_length() {
        let ids = AccountIds::from_key(&[9u8; 32]).unwrap();
        let pattern = |id: &str| id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
        for provider in [1, 127, 128, 16_383] {
            for len in 1..=BANK_ID_BYTES {
                let account = BankAccount { provider, account_id: "x".repeat(len) };
                let id = ids.seal("aac-1", &account);
                assert!(id.len() <= 40 && pattern(&id), "{provider}/{len}: {id} ({} chars)", id.len());
                assert_eq!(ids.open("aac-1", &id), Some(account));
            }
        }
        // Beyond the documented length an id still works, only longer.
        let long = BankAccount { provider: 99_999_999, account_id: "y".repeat(40) };
        assert_eq!(ids.open("aac-1", &ids.seal("aac-1", &long)), Some(long));
    }

    #[test]
    fn the_same_bank_id_at_two_providers_gives_unrelated_ids() {
        let ids = AccountIds::from_key(&[7u8; 32]).unwrap();
        let a = ids.seal("aac-1", &BankAccount { provider: 1, account_id: "acc-1".into() });
        let b = ids.seal("aac-1", &BankAccount { provider: 2, account_id: "acc-1".into() });
        assert_ne!(a[..14], b[..14], "the tags differ, so do the ciphertexts");
    }

    #[test]
    fn varints_round_trip_and_have_one_encoding() {
        for value in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), i64::MAX as u64] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            out.push(b'z');
            assert_eq!(take_varint(&out), Some((value, &b"z"[..])));
        }
        assert_eq!(take_varint(&[0x81, 0x00, b'z']), None, "non-minimal");
        assert_eq!(take_varint(&[0x81]), None, "truncated");
    }
}
