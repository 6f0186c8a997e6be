//! Kazakhstan identifiers: BIN (business identification number) and IIN (individual identification number), both
//! 12 digits with the same control digit (the 12th), computed with two weight sequences; and the KZ IBAN.

use std::fmt;

/// Whether `digits` is 12 ASCII digits with a valid control digit.
pub fn valid_12_digit_id(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = bytes.iter().map(|b| u32::from(b - b'0')).collect();
    let weighted = |weights: [u32; 11]| d.iter().zip(weights).map(|(x, w)| x * w).sum::<u32>() % 11;
    let mut control = weighted([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    if control == 10 {
        control = weighted([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]);
        if control == 10 {
            return false;
        }
    }
    control == d[11]
}

crate::store::value::text_id! {
    /// A business identification number: 12 digits whose last is the control digit.
    pub struct Bin, valid_12_digit_id
}

crate::store::value::text_id! {
    /// An individual identification number: 12 digits whose last is the control digit.
    pub struct Iin, valid_12_digit_id
}

/// Appends the control digit to 11 digits (for tests and seeded demo data); `None` when no control digit exists.
pub fn with_control_digit(first_11: &str) -> Option<String> {
    (0..10).map(|c| format!("{first_11}{c}")).find(|candidate| valid_12_digit_id(candidate))
}

/// A validated Kazakhstan IBAN (ISO 13616): `KZ`, two check digits, a 3-digit bank code and 13 alphanumeric
/// account characters — 20 characters, stored upper-case without spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Iban(String);

impl Iban {
    /// Accepts the electronic form and the printed one (groups of four separated by spaces), any letter case.
    pub fn parse(s: &str) -> Option<Iban> {
        let compact: String = s.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()).collect();
        let bytes = compact.as_bytes();
        let shaped = bytes.len() == 20
            && compact.starts_with("KZ")
            && bytes[2..7].iter().all(u8::is_ascii_digit)
            && bytes[7..].iter().all(u8::is_ascii_alphanumeric);
        (shaped && mod97(&compact) == Some(1)).then_some(Iban(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 3-digit code of the bank that keeps the account.
    pub fn bank_code(&self) -> &str {
        &self.0[4..7]
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ISO 7064 MOD 97-10 of an IBAN: the first four characters moved to the end, letters as 10..35, the remainder
/// computed digit by digit (the number has ~40 digits, too many for any integer type).
fn mod97(iban: &str) -> Option<u32> {
    let (head, tail) = iban.split_at(4);
    let mut remainder = 0u32;
    for c in tail.chars().chain(head.chars()) {
        let value = c.to_digit(36)?;
        remainder = if value < 10 { (remainder * 10 + value) % 97 } else { (remainder * 100 + value) % 97 };
    }
    Some(remainder)
}

/// The KZ IBAN of `account` (13 alphanumeric characters) at the bank with the 3-digit `bank_code`, with its check
/// digits computed; `None` when either part has the wrong shape.
pub fn kz_iban(bank_code: &str, account: &str) -> Option<String> {
    let account = account.to_ascii_uppercase();
    let shaped = bank_code.len() == 3
        && bank_code.bytes().all(|b| b.is_ascii_digit())
        && account.len() == 13
        && account.bytes().all(|b| b.is_ascii_alphanumeric());
    if !shaped {
        return None;
    }
    let check = 98 - mod97(&format!("KZ00{bank_code}{account}"))?;
    Some(format!("KZ{check:02}{bank_code}{account}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_identifiers() {
        // Published examples of valid numbers.
        assert!(valid_12_digit_id("000740001307"));
        assert!(valid_12_digit_id("990140000384"));
        assert!(!valid_12_digit_id("000740001308"));
        assert!(!valid_12_digit_id("00074000130"));
        assert!(!valid_12_digit_id("00074000130a"));
        assert!(Bin::parse(" 000740001307 ").is_ok());
    }

    #[test]
    fn control_digit_helper_produces_valid_numbers() {
        let bin = with_control_digit("12345678901").unwrap_or_default();
        assert!(bin.is_empty() || valid_12_digit_id(&bin));
        let some = (0..50).filter_map(|i| with_control_digit(&format!("9901400{i:04}"))).count();
        assert!(some > 40);
    }

    #[test]
    fn iban_known_example_parses_and_corruptions_fail() {
        // The example KZ IBAN of the SWIFT IBAN registry.
        let iban = Iban::parse("KZ86125KZT5004100100");
        assert_eq!(iban.as_ref().map(Iban::as_str), Some("KZ86125KZT5004100100"));
        assert_eq!(iban.as_ref().map(Iban::bank_code), Some("125"));
        assert!(Iban::parse("kz86 125K ZT50 0410 0100").is_some());
        // One changed character, swapped neighbours, wrong country, wrong length.
        assert!(Iban::parse("KZ86125KZT5004100101").is_none());
        assert!(Iban::parse("KZ86125KZT5004101000").is_none());
        assert!(Iban::parse("DE86125KZT5004100100").is_none());
        assert!(Iban::parse("KZ86125KZT500410010").is_none());
        assert!(Iban::parse("KZ8612AKZT5004100100").is_none());
    }

    #[test]
    fn iban_check_digits_are_computed() {
        assert_eq!(kz_iban("125", "KZT5004100100").as_deref(), Some("KZ86125KZT5004100100"));
        for n in 0..200u32 {
            let made = kz_iban("601", &format!("KZT{n:010}")).unwrap_or_default();
            assert!(Iban::parse(&made).is_some(), "{made}");
        }
        assert!(kz_iban("12", "KZT5004100100").is_none());
        assert!(kz_iban("125", "KZT500410010").is_none());
        assert!(kz_iban("125", "KZT50041001-0").is_none());
    }
}
