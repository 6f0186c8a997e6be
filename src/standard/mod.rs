//! The platform's Open API standards, served as OpenAPI documents: today "kopir AIS v1", customer current-account
//! information (accounts, balances, transactions) in the OBIE v3.1.11 shapes adapted to Kazakhstan.
//!
//! The document in `assets/standard/` is the contract: the gateway serves its paths to API users, every provider bank
//! implements them for the platform, and the sandbox validates answers against its schemas with [`validate`]. The
//! constants and types here are the parts of it that code on both sides needs.

pub mod error;
pub mod permission;
mod routes;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use permission::Permission;

pub use routes::router;

/// The AIS v1 OpenAPI document, byte for byte as served.
pub const AIS_V1_JSON: &str = include_str!("../../assets/standard/kopir-ais-v1.openapi.json");

/// Where the platform serves the document.
pub const AIS_V1_DOCUMENT_PATH: &str = "/standard/ais/v1/openapi.json";

/// The platform's own API for API users beside the standard (the consent resource, the authorization server's
/// endpoints), as an OpenAPI document, byte for byte as served.
pub const PLATFORM_V1_JSON: &str = include_str!("../../assets/standard/kopir-platform-v1.openapi.json");

/// Where the platform serves that document.
pub const PLATFORM_V1_DOCUMENT_PATH: &str = "/standard/platform/v1/openapi.json";

/// The path prefix of the account endpoints, at the platform and at every bank.
pub const AIS_BASE_PATH: &str = "/open-banking/v1/aisp";

/// The header that carries the platform's signed consent to a bank.
pub const CONSENT_HEADER: &str = "x-kopir-consent";

/// The JWS `typ` of that header.
pub const CONSENT_TYP: &str = "kopir-consent+jwt";

/// FAPI's interaction id: sent with every call to a bank and echoed in the answer.
pub const X_FAPI_INTERACTION_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-fapi-interaction-id");

/// Transactions per page.
pub const PAGE_SIZE: usize = 50;

/// A test customer every provider's sandbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SandboxCustomer {
    pub iin: &'static str,
    pub name: &'static str,
}

/// The standard's sandbox test customers (IINs with valid control digits; listed in the document too).
pub const SANDBOX_CUSTOMERS: &[SandboxCustomer] = &[
    SandboxCustomer { iin: "900514401235", name: "Aigerim Nurlanovna Sadykova" },
    SandboxCustomer { iin: "851102304561", name: "Daniyar Serikovich Akhmetov" },
    SandboxCustomer { iin: "010321607896", name: "Aruzhan Bolatovna Omarova" },
    SandboxCustomer { iin: "780830302347", name: "Yerlan Maratovich Zhaksybekov" },
    SandboxCustomer { iin: "650109405679", name: "Saule Kairatovna Ibraimova" },
];

/// The claims of the `x-kopir-consent` header (schema `KzConsentClaims`): the platform signs them for every call to
/// a bank; the bank verifies them with the platform's JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentClaims {
    /// The platform's URL.
    pub iss: String,
    /// The BIN of the bank called.
    pub aud: String,
    /// The customer's IIN.
    pub sub: String,
    pub consent_id: String,
    /// Permission codes; kept as text so that a code a later version adds does not make the whole header unreadable.
    pub permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_to: Option<String>,
    pub interaction_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl ConsentClaims {
    /// What the permissions allow.
    pub fn scope(&self) -> Scope {
        Scope::from_codes(self.permissions.iter().map(String::as_str))
    }
}

/// What a set of permissions allows, endpoint by endpoint (the rules of the standard's "Permissions" section).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scope {
    pub accounts_basic: bool,
    pub accounts_detail: bool,
    pub balances: bool,
    pub transactions_basic: bool,
    pub transactions_detail: bool,
    pub credits: bool,
    pub debits: bool,
}

/// How transactions may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionScope {
    /// With the Detail fields.
    pub detail: bool,
    pub credits: bool,
    pub debits: bool,
}

impl Scope {
    /// Unknown codes are ignored.
    pub fn from_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> Scope {
        let mut scope = Scope::default();
        for code in codes {
            match code.parse::<Permission>().ok() {
                Some(Permission::ReadAccountsBasic) => scope.accounts_basic = true,
                Some(Permission::ReadAccountsDetail) => scope.accounts_detail = true,
                Some(Permission::ReadBalances) => scope.balances = true,
                Some(Permission::ReadTransactionsBasic) => scope.transactions_basic = true,
                Some(Permission::ReadTransactionsDetail) => scope.transactions_detail = true,
                Some(Permission::ReadTransactionsCredits) => scope.credits = true,
                Some(Permission::ReadTransactionsDebits) => scope.debits = true,
                None => {}
            }
        }
        scope
    }

    /// `/accounts` and `/accounts/{AccountId}`.
    pub fn accounts(&self) -> bool {
        self.accounts_basic || self.accounts_detail
    }

    /// `/accounts/{AccountId}/balances`.
    pub fn balances(&self) -> bool {
        self.balances
    }

    /// `/accounts/{AccountId}/transactions`, if allowed at all.
    pub fn transactions(&self) -> Option<TransactionScope> {
        let base = self.transactions_basic || self.transactions_detail;
        (base && (self.credits || self.debits)).then_some(TransactionScope {
            detail: self.transactions_detail,
            credits: self.credits,
            debits: self.debits,
        })
    }
}

/// The AIS v1 document, parsed once. `Value::Null` only if the embedded file were broken, which a unit test rules
/// out.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::from_str(AIS_V1_JSON).unwrap_or(Value::Null))
}

/// The names of the document's schemas (`components.schemas`).
pub fn schema_names() -> Vec<&'static str> {
    document()["components"]["schemas"].as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
}

type Validators = HashMap<String, jsonschema::Validator>;

/// One validator per schema, compiled once on first use. Each is rooted at a small document that points at the
/// schema and carries all of `components.schemas`, so `$ref`s between schemas resolve locally (no retrieval).
fn validators() -> &'static Result<Validators, String> {
    static VALIDATORS: OnceLock<Result<Validators, String>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let schemas = &document()["components"]["schemas"];
        let mut out = Validators::new();
        for name in schema_names() {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": format!("#/components/schemas/{name}"),
                "components": { "schemas": schemas },
            });
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .map_err(|e| format!("schema {name}: {e}"))?;
            out.insert(name.to_string(), validator);
        }
        Ok(out)
    })
}

/// Validates `value` against the schema `schema_name` of the AIS v1 document (e.g. `KzReadAccount`,
/// `ErrorResponse`); the errors name the JSON pointer of each offending value.
pub fn validate(schema_name: &str, value: &Value) -> Result<(), Vec<String>> {
    check(schema_name, value, |at, e| format!("{at}: {e}"))
}

/// Like [`validate`], but each error names only where and which rule (`/Data/Account/0 (additionalProperties)`),
/// never the offending value: for evidence that may be stored or shown, as a value may be account data.
pub fn violations(schema_name: &str, value: &Value) -> Result<(), Vec<String>> {
    check(schema_name, value, |at, e| format!("{at} ({})", e.kind().keyword()))
}

/// Validates `value` against `schema_name`, describing each error with `describe(where, error)`.
fn check(
    schema_name: &str,
    value: &Value,
    describe: impl Fn(&str, &jsonschema::ValidationError) -> String,
) -> Result<(), Vec<String>> {
    let validators = validators().as_ref().map_err(|e| vec![e.clone()])?;
    let validator =
        validators.get(schema_name).ok_or_else(|| vec![format!("the standard has no schema {schema_name}")])?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| {
            let at = e.instance_path().to_string();
            describe(if at.is_empty() { "/" } else { at.as_str() }, &e)
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The property names a schema allows (`properties`), e.g. to tell the Detail fields from the Basic ones.
pub fn properties(schema_name: &str) -> Vec<&'static str> {
    document()["components"]["schemas"][schema_name]["properties"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn document_parses_and_names_the_four_paths() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/accounts",
            "/accounts/{AccountId}",
            "/accounts/{AccountId}/balances",
            "/accounts/{AccountId}/transactions",
        ] {
            assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
        }
        assert_eq!(doc["x-kopir-page-size"], PAGE_SIZE);
    }

    #[test]
    fn sandbox_customers_are_valid_and_match_the_document() {
        assert_eq!(SANDBOX_CUSTOMERS.len(), 5);
        let listed = document()["x-kopir-sandbox-customers"].as_array().unwrap();
        assert_eq!(listed.len(), SANDBOX_CUSTOMERS.len());
        let description = document()["info"]["description"].as_str().unwrap();
        for (customer, entry) in SANDBOX_CUSTOMERS.iter().zip(listed) {
            assert!(crate::kz::Iin::parse(customer.iin).is_ok(), "{}", customer.iin);
            assert_eq!(entry["IIN"], customer.iin);
            assert_eq!(entry["Name"], customer.name);
            assert!(description.contains(customer.iin) && description.contains(customer.name));
        }
    }

    #[test]
    fn every_schema_compiles_and_every_ref_resolves() {
        assert!(validators().is_ok(), "{:?}", validators().as_ref().err());
        let names = schema_names();
        for wanted in [
            "KzAccount",
            "KzBalance",
            "KzTransaction",
            "Amount",
            "Links",
            "Meta",
            "ErrorResponse",
            "KzReadAccount",
            "KzReadBalance",
            "KzReadTransaction",
            "KzConsentClaims",
            "KzServicer",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing");
        }
        let text = AIS_V1_JSON;
        for (i, _) in text.match_indices("\"$ref\": \"#/components/") {
            let rest = &text[i + 9..];
            let target = &rest[..rest.find('"').unwrap()];
            let pointer = target.trim_start_matches('#');
            assert!(document().pointer(pointer).is_some(), "dangling $ref {target}");
        }
    }

    #[test]
    fn the_platform_document_parses_and_every_ref_resolves() {
        let doc: Value = serde_json::from_str(PLATFORM_V1_JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (i, _) in PLATFORM_V1_JSON.match_indices("\"$ref\": \"#/components/") {
            let rest = &PLATFORM_V1_JSON[i + 9..];
            let target = &rest[..rest.find('"').unwrap()];
            assert!(doc.pointer(target.trim_start_matches('#')).is_some(), "dangling $ref {target}");
        }
        // The permissions and error shapes are the standard's own.
        for shared in ["Permission", "ErrorResponse", "ErrorDetail", "IsoDateTime"] {
            assert_eq!(doc["components"]["schemas"][shared], document()["components"]["schemas"][shared], "{shared}");
        }
    }

    #[test]
    fn validation_accepts_the_standard_shapes_and_names_what_is_wrong() {
        let account = json!({
            "Data": { "Account": [{
                "AccountId": "acc-1",
                "Status": "Enabled",
                "StatusUpdateDateTime": "2026-01-01T00:00:00Z",
                "Currency": "KZT",
                "AccountType": "Personal",
                "AccountSubType": "CurrentAccount",
                "Account": [{ "SchemeName": "KZ.IBAN", "Identification": "KZ86125KZT5004100100", "Name": "A B" }]
            }]},
            "Links": { "Self": "https://bank.example/open-banking/v1/aisp/accounts" },
            "Meta": { "TotalPages": 1 }
        });
        assert_eq!(validate("KzReadAccount", &account), Ok(()));
        assert!(validate("KzAccountDetail", &account["Data"]["Account"][0]).is_ok());
        assert!(validate("KzAccountBasic", &account["Data"]["Account"][0]).is_err());

        let mut wrong = account.clone();
        wrong["Data"]["Account"][0]["Currency"] = json!("tenge");
        wrong["Data"]["Account"][0]["StatusUpdateDateTime"] = json!("2026-01-01T00:00:00+05:00");
        wrong["Meta"]["Extra"] = json!(1);
        let errors = validate("KzReadAccount", &wrong).unwrap_err();
        assert!(errors.iter().any(|e| e.contains("/Data/Account/0/Currency")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("/Data/Account/0/StatusUpdateDateTime")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("/Meta")), "{errors:?}");
        let redacted = violations("KzReadAccount", &wrong).unwrap_err();
        assert!(redacted.contains(&"/Data/Account/0/Currency (pattern)".to_string()), "{redacted:?}");
        assert!(redacted.iter().all(|e| !e.contains("tenge") && !e.contains("+05:00")), "{redacted:?}");
        assert_eq!(violations("KzReadAccount", &account), Ok(()));
        assert!(properties("KzTransactionDetail").contains(&"MerchantDetails"));
        assert!(!properties("KzTransactionBasic").contains(&"MerchantDetails"));

        let amount = json!({ "MinorUnits": 1234550, "Currency": "KZT" });
        assert!(validate("Amount", &amount).is_ok());
        assert!(validate("Amount", &json!({ "MinorUnits": "12345.50", "Currency": "KZT" })).is_err());
        assert!(validate("Amount", &json!({ "MinorUnits": -1, "Currency": "KZT" })).is_err());
        assert!(validate("NoSuchSchema", &amount).is_err());

        let error = json!({
            "Code": "404 NotFound", "Id": "x", "Message": "Not found",
            "Errors": [{ "ErrorCode": "UK.OBIE.Resource.NotFound", "Message": "No such account" }]
        });
        assert!(validate("ErrorResponse", &error).is_ok());
        assert!(validate("ErrorResponse", &json!({ "Code": "404", "Message": "m", "Errors": [] })).is_err());
    }

    #[test]
    fn scope_follows_the_permission_rules() {
        let scope = Scope::from_codes(["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits", "X"]);
        assert!(scope.accounts());
        assert!(!scope.balances());
        assert_eq!(scope.transactions(), Some(TransactionScope { detail: false, credits: true, debits: false }));
        assert_eq!(Scope::from_codes(["ReadTransactionsDetail"]).transactions(), None);
        assert!(!Scope::from_codes(["ReadBalances"]).accounts());
    }

    #[test]
    fn consent_claims_match_their_schema() {
        let claims = ConsentClaims {
            iss: "https://localhost:8443".into(),
            aud: "000740001307".into(),
            sub: "900514401235".into(),
            consent_id: "c-1".into(),
            permissions: vec!["ReadAccountsBasic".into()],
            transaction_from: Some("2026-01-01T00:00:00Z".into()),
            transaction_to: None,
            interaction_id: "i-1".into(),
            iat: 1,
            exp: 2,
            jti: "j-1".into(),
        };
        assert_eq!(validate("KzConsentClaims", &serde_json::to_value(&claims).unwrap()), Ok(()));
    }
}
