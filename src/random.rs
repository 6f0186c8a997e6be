//! Random identifiers (request ids, token ids, consent ids) from the thread's cryptographically secure generator,
//! seeded by the operating system: `Uuid::new_v4` asks the kernel for every id, a system call the gateway would
//! make twice per request.

/// 256 random bits, base64url: request URIs, codes, refresh tokens, journeys' cookies and CSRF tokens. Only their
/// SHA-256 is stored.
pub fn token() -> String {
    crate::digest::b64url(&rand::random::<[u8; 32]>())
}

/// A version 4 (random) UUID.
pub fn uuid_v4() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_differ() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}
