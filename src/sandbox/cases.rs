//! The cases of the conformance suite: stable ids, severities and descriptions, in the order they are reported.
//! The ids are recorded with every run (`api_checks.findings`) and named by the CLI's JUnit report, so they never
//! change meaning; the descriptions are the English texts, with their translations under `catalog.finding.*`.

use super::evidence::Severity;

/// One case of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Case {
    pub id: &'static str,
    pub severity: Severity,
    /// What the case checks, in English.
    pub description: &'static str,
    /// The key of the description in the page texts.
    pub text_key: &'static str,
}

const fn case(id: &'static str, severity: Severity, description: &'static str, text_key: &'static str) -> Case {
    Case { id, severity, description, text_key }
}

use Severity::{Critical, Major, Minor};

pub const TLS_REACHABLE: &str = "tls.reachable";
pub const AUTH_REFUSED: &str = "auth.refused";
pub const ERROR_SHAPE: &str = "error.shape";
pub const CLIENT_CERTIFICATE: &str = "tls.client_certificate";
pub const AUTH_FORGED: &str = "auth.forged";
pub const AUTH_EXPIRED: &str = "auth.expired";
pub const AUTH_AUDIENCE: &str = "auth.audience";
pub const ACCOUNTS_SCHEMA: &str = "accounts.schema";
pub const SANDBOX_CUSTOMERS: &str = "sandbox.customers";
pub const ACCOUNT_SCHEMA: &str = "account.schema";
pub const BALANCES_SCHEMA: &str = "balances.schema";
pub const TRANSACTIONS_SCHEMA: &str = "transactions.schema";
pub const NOT_FOUND: &str = "errors.not_found";
pub const INVALID_DATE: &str = "errors.invalid_date";
pub const INVALID_PAGE: &str = "errors.invalid_page";
pub const PERMISSION_MISMATCH: &str = "permissions.mismatch";
pub const PERMISSION_BASIC: &str = "permissions.basic";
pub const PERMISSION_CREDITS: &str = "permissions.credits";
pub const PAGINATION: &str = "pagination.links";
pub const DATE_FILTER: &str = "transactions.date_filter";
pub const CONSENT_WINDOW: &str = "transactions.consent_window";
pub const INTERACTION_ID: &str = "headers.interaction_id";
pub const SLA: &str = "sla.response_time";

/// Every case, in the order of the report.
pub const CASES: &[Case] = &[
    case(
        TLS_REACHABLE,
        Critical,
        "The endpoint answers over TLS with a trusted certificate, within the time-out",
        "catalog.finding.tls",
    ),
    case(
        AUTH_REFUSED,
        Critical,
        "A call without the signed consent header is refused with 401 UK.OBIE.Header.Missing",
        "catalog.finding.refused",
    ),
    case(
        ERROR_SHAPE,
        Major,
        "The refusal carries the standard's error body (schema ErrorResponse: Code, Id, Message, Errors[].ErrorCode)",
        "catalog.finding.error_shape",
    ),
    case(
        CLIENT_CERTIFICATE,
        Critical,
        "A call without the platform's client certificate is refused (at the TLS handshake, or with 401 or 403)",
        "catalog.finding.client_certificate",
    ),
    case(
        AUTH_FORGED,
        Critical,
        "A signed header signed by a key outside the platform's JWKS is refused with 401 UK.OBIE.Signature.Invalid",
        "catalog.finding.forged",
    ),
    case(
        AUTH_EXPIRED,
        Critical,
        "An expired signed header is refused with 401 UK.OBIE.Signature.Invalid",
        "catalog.finding.expired",
    ),
    case(
        AUTH_AUDIENCE,
        Critical,
        "A signed header addressed to another bank (aud) is refused with 401 UK.OBIE.Signature.Invalid",
        "catalog.finding.audience",
    ),
    case(
        ACCOUNTS_SCHEMA,
        Critical,
        "GET /accounts answers every test customer with the schema KzReadAccount, with identification under a Detail \
         consent (KzAccountDetail)",
        "catalog.finding.accounts_schema",
    ),
    case(
        SANDBOX_CUSTOMERS,
        Major,
        "Every test customer holds at least one KZT current account",
        "catalog.finding.sandbox_customers",
    ),
    case(
        ACCOUNT_SCHEMA,
        Major,
        "GET /accounts/{AccountId} answers with that one account (schema KzReadAccount)",
        "catalog.finding.account_schema",
    ),
    case(
        BALANCES_SCHEMA,
        Major,
        "GET /accounts/{AccountId}/balances answers with the schema KzReadBalance, for that account",
        "catalog.finding.balances_schema",
    ),
    case(
        TRANSACTIONS_SCHEMA,
        Major,
        "GET /accounts/{AccountId}/transactions answers with the schema KzReadTransaction: at most 50, newest first, \
         with the Detail fields under a Detail consent",
        "catalog.finding.transactions_schema",
    ),
    case(
        NOT_FOUND,
        Major,
        "An unknown account and another customer's account are refused with 404 UK.OBIE.Resource.NotFound",
        "catalog.finding.not_found",
    ),
    case(
        INVALID_DATE,
        Major,
        "A malformed fromBookingDateTime is refused with 400 UK.OBIE.Field.InvalidDate",
        "catalog.finding.invalid_date",
    ),
    case(INVALID_PAGE, Minor, "A page of 0 is refused with 400 UK.OBIE.Field.Invalid", "catalog.finding.invalid_page"),
    case(
        PERMISSION_MISMATCH,
        Major,
        "An endpoint the consent's permissions do not cover is refused with 403 UK.OBIE.Resource.ConsentMismatch",
        "catalog.finding.permission_mismatch",
    ),
    case(
        PERMISSION_BASIC,
        Critical,
        "A Basic consent never gets the Detail fields: accounts without identification (KzAccountBasic), \
         transactions without details (KzTransactionBasic)",
        "catalog.finding.permission_basic",
    ),
    case(
        PERMISSION_CREDITS,
        Major,
        "A consent for credits only gets credit transactions only",
        "catalog.finding.permission_credits",
    ),
    case(
        PAGINATION,
        Major,
        "Links.Next leads to the next page at the same base URL, Links.Self names the page and pages do not repeat, \
         to the last page (a few pages followed)",
        "catalog.finding.pagination",
    ),
    case(
        DATE_FILTER,
        Critical,
        "fromBookingDateTime and toBookingDateTime are honoured: every transaction booked within them, none within \
         left out",
        "catalog.finding.date_filter",
    ),
    case(
        CONSENT_WINDOW,
        Critical,
        "No transaction booked outside the consent's transaction window is returned",
        "catalog.finding.consent_window",
    ),
    case(INTERACTION_ID, Minor, "x-fapi-interaction-id is echoed on every answer", "catalog.finding.interaction_id"),
    case(
        SLA,
        Major,
        "The 95th percentile of the suite's response times is within the API's SLA",
        "catalog.finding.sla",
    ),
];

/// The case with this id.
pub fn find(id: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{Lang, Texts};

    #[test]
    fn ids_are_unique_and_every_description_is_translated() {
        let mut ids: Vec<&str> = CASES.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CASES.len());
        for case in CASES {
            for lang in [Lang::En, Lang::Ru, Lang::Kk] {
                assert_ne!(Texts { lang }.get(case.text_key), case.text_key, "{lang:?} lacks {}", case.text_key);
            }
            assert_eq!(Texts { lang: Lang::En }.get(case.text_key), case.description, "{}", case.id);
        }
    }
}
