//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew), with replay protection:
//! the accepted step is stored and a code for that step or an earlier one is refused.

use totp_rs::{Algorithm, Builder, Totp};

pub const ISSUER: &str = "kopir";

/// 20 random bytes (160 bits), the RFC 4226 recommendation.
pub fn new_secret() -> Vec<u8> {
    rand::random::<[u8; 20]>().to_vec()
}

fn totp(secret: &[u8], account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .ok()
}

/// The step a correct code belongs to, or `None`. Only digits are considered (spaces are allowed for readability).
pub fn check(secret: &[u8], account: &str, code: &str, unix_time: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    totp(secret, account)?.check(&code, unix_time)
}

/// Accepts a code only for a step later than the last accepted one. Returns the new last step.
pub fn accept(secret: &[u8], account: &str, code: &str, unix_time: u64, last_step: u64) -> Option<u64> {
    check(secret, account, code, unix_time).filter(|step| *step > last_step)
}

/// The code for a given time (tests and the enrolment page's self-check use it).
pub fn code_at(secret: &[u8], account: &str, unix_time: u64) -> Option<String> {
    Some(totp(secret, account)?.generate(unix_time).to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn provisioning_uri(secret: &[u8], account: &str) -> Option<String> {
    totp(secret, account)?.to_url().ok()
}

/// Base32 text of the secret, for typing it into an app by hand.
pub fn secret_text(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// The secret from its base32 text (what a person types into an app by hand).
pub fn parse_secret_text(text: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::try_from_base32(text.trim()).ok().map(|s| s.as_ref().to_vec())
}

/// The provisioning URI as an SVG QR code.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_verify_once_and_not_again() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, "alice", now).unwrap();
        let step = accept(&secret, "alice", &code, now, 0).unwrap();
        assert_eq!(step, now / 30);
        assert_eq!(accept(&secret, "alice", &code, now, step), None, "replayed code accepted");
        assert_eq!(accept(&secret, "alice", "000000x", now, 0), None);
        let later = code_at(&secret, "alice", now + 30).unwrap();
        assert_eq!(accept(&secret, "alice", &later, now + 30, step), Some(step + 1));
    }

    #[test]
    fn provisioning_uri_and_qr() {
        let secret = new_secret();
        let uri = provisioning_uri(&secret, "alice").unwrap();
        assert!(uri.starts_with("otpauth://totp/kopir:alice?"), "{uri}");
        assert!(uri.contains(&secret_text(&secret)));
        assert_eq!(parse_secret_text(&secret_text(&secret)).unwrap(), secret);
        assert!(qr_svg(&uri).unwrap().contains("<svg"));
    }
}
