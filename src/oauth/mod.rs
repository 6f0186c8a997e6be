//! The authorization server. So far: the platform's signing keys and their JWKS.

pub mod jwks;
