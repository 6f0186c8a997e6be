//! Kazakhstan identifiers: BIN (business identification number) and IIN (individual identification number), both
//! 12 digits with the same control digit (the 12th), computed with two weight sequences.

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

/// A validated BIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin(String);

impl Bin {
    pub fn parse(s: &str) -> Option<Bin> {
        let s = s.trim();
        valid_12_digit_id(s).then(|| Bin(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated IIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iin(String);

impl Iin {
    pub fn parse(s: &str) -> Option<Iin> {
        let s = s.trim();
        valid_12_digit_id(s).then(|| Iin(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Appends the control digit to 11 digits (for tests and seeded demo data); `None` when no control digit exists.
pub fn with_control_digit(first_11: &str) -> Option<String> {
    (0..10).map(|c| format!("{first_11}{c}")).find(|candidate| valid_12_digit_id(candidate))
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
        assert!(Bin::parse(" 000740001307 ").is_some());
    }

    #[test]
    fn control_digit_helper_produces_valid_numbers() {
        let bin = with_control_digit("12345678901").unwrap_or_default();
        assert!(bin.is_empty() || valid_12_digit_id(&bin));
        let some = (0..50).filter_map(|i| with_control_digit(&format!("9901400{i:04}"))).count();
        assert!(some > 40);
    }
}
