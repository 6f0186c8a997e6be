//! Time on the wire and in the database: UTC, RFC 3339, whole seconds (so text order is time order).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `2026-11-25T14:24:56Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn now_rfc3339() -> String {
    rfc3339(now())
}

pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc_and_parses_back() {
        let t = time::macros::datetime!(2026-11-25 14:24:56.789 +05:00);
        let s = rfc3339(t);
        assert_eq!(s, "2026-11-25T09:24:56Z");
        assert_eq!(parse(&s).unwrap().unix_timestamp(), t.unix_timestamp());
    }
}
