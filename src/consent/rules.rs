//! What a consent request may ask for: OBIE v3.1 permission codes the platform's standard serves, their
//! combinations, dates, and the banks named.

use rusqlite::Connection;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use crate::clock;
use crate::kz::Bin;

pub use crate::standard::Permission;

/// A consent request as validated, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConsent {
    pub permissions: Vec<Permission>,
    /// The permissions the API user cannot work without: the customer may untick the others (see
    /// [`narrowed_permissions`]). Sorted; always a subset of `permissions`.
    pub required: Vec<Permission>,
    pub purpose: String,
    /// The purpose in other languages (`en`, `ru`, `kk` → text), shown in the page's language.
    pub purpose_translations: std::collections::BTreeMap<String, String>,
    pub expires_at: String,
    pub transaction_from: Option<String>,
    pub transaction_to: Option<String>,
    pub provider_ids: Vec<i64>,
}

/// A refusal of a consent request: the OBIE error code, a message and the JSON path of the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: crate::standard::error::ObErrorCode,
    pub message: String,
    pub path: &'static str,
}

fn refuse(code: crate::standard::error::ObErrorCode, path: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into(), path }
}

/// The body of `POST /account-access-consents` (OBIE `OBReadConsent1` plus the banks and the purpose).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConsentRequest {
    pub data: ConsentRequestData,
    #[serde(default)]
    pub risk: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConsentRequestData {
    pub permissions: Vec<String>,
    /// kopir: the permissions the application cannot work without; the customer may untick every other one. The
    /// accounts permission is always required. Absent: only that one.
    #[serde(default)]
    pub required_permissions: Option<Vec<String>>,
    #[serde(default)]
    pub expiration_date_time: Option<String>,
    #[serde(default)]
    pub transaction_from_date_time: Option<String>,
    #[serde(default)]
    pub transaction_to_date_time: Option<String>,
    /// kopir: why the API user asks, shown to the customer in plain words.
    pub purpose: String,
    /// kopir: the purpose in the platform's other languages (`en`, `ru`, `kk` → text); the page shows the one in its
    /// language, else `Purpose`.
    #[serde(default)]
    pub purpose_translations: Option<std::collections::BTreeMap<String, String>>,
    /// kopir: the banks the data is to come from, by BIN.
    pub providers: Vec<ProviderRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ProviderRef {
    pub bin: String,
}

/// The most banks one consent may name.
pub const MAX_PROVIDERS: usize = 20;

/// Checks the permission set: known codes, no repeats, an accounts permission (every other endpoint addresses an
/// account), and transaction permissions complete (OBIE: Basic or Detail together with Credits and/or Debits).
pub fn check_permissions(codes: &[String]) -> Result<Vec<Permission>, Refusal> {
    use crate::standard::error::ObErrorCode::FieldInvalid;
    const PATH: &str = "Data.Permissions";
    if codes.is_empty() {
        return Err(refuse(FieldInvalid, PATH, "Permissions must name at least one permission"));
    }
    let mut permissions = Vec::with_capacity(codes.len());
    for code in codes {
        let permission = code.parse::<Permission>().map_err(|_| {
            let code = crate::standard::error::quote(code);
            refuse(FieldInvalid, PATH, format!("Permission {code} is not offered by the platform's standard"))
        })?;
        if permissions.contains(&permission) {
            return Err(refuse(
                FieldInvalid,
                PATH,
                format!("Permission {} is repeated", crate::standard::error::quote(code)),
            ));
        }
        permissions.push(permission);
    }
    let has = |p: Permission| permissions.contains(&p);
    if !has(Permission::ReadAccountsBasic) && !has(Permission::ReadAccountsDetail) {
        return Err(refuse(FieldInvalid, PATH, "Permissions must include ReadAccountsBasic or ReadAccountsDetail"));
    }
    let base = has(Permission::ReadTransactionsBasic) || has(Permission::ReadTransactionsDetail);
    let direction = has(Permission::ReadTransactionsCredits) || has(Permission::ReadTransactionsDebits);
    if base && !direction {
        return Err(refuse(
            FieldInvalid,
            PATH,
            "ReadTransactionsBasic or ReadTransactionsDetail needs ReadTransactionsCredits and/or ReadTransactionsDebits",
        ));
    }
    if direction && !base {
        return Err(refuse(
            FieldInvalid,
            PATH,
            "ReadTransactionsCredits or ReadTransactionsDebits needs ReadTransactionsBasic or ReadTransactionsDetail",
        ));
    }
    permissions.sort();
    Ok(permissions)
}

/// Whether the customer may never untick `permission`: the accounts permissions (every other endpoint addresses an
/// account) and those the API user marked required.
pub fn is_required(permission: Permission, required: &[Permission]) -> bool {
    matches!(permission, Permission::ReadAccountsBasic | Permission::ReadAccountsDetail)
        || required.contains(&permission)
}

/// Checks `Data.RequiredPermissions`: known codes, each among the permissions asked. Returns them sorted, with the
/// accounts permission asked (always required) added.
pub fn check_required(permissions: &[Permission], codes: &[String]) -> Result<Vec<Permission>, Refusal> {
    use crate::standard::error::ObErrorCode::FieldInvalid;
    const PATH: &str = "Data.RequiredPermissions";
    let mut required: Vec<Permission> = permissions.iter().copied().filter(|p| is_required(*p, &[])).collect();
    for code in codes {
        let quoted = || crate::standard::error::quote(code);
        let permission = code.parse::<Permission>().map_err(|_| {
            refuse(FieldInvalid, PATH, format!("Permission {} is not offered by the platform's standard", quoted()))
        })?;
        if !permissions.contains(&permission) {
            return Err(refuse(FieldInvalid, PATH, format!("Permission {} is required but not asked for", quoted())));
        }
        if !required.contains(&permission) {
            required.push(permission);
        }
    }
    required.sort();
    Ok(required)
}

/// The permissions left when the customer drops `dropped` from `current`: never one that [`is_required`]; a
/// transaction permission left without its pair (Basic/Detail with Credits/Debits) goes too, unless it is required.
/// `None` when the change drops a required permission or leaves an invalid set.
pub fn narrowed_permissions(
    current: &[Permission],
    required: &[Permission],
    dropped: &[Permission],
) -> Option<Vec<Permission>> {
    if dropped.iter().any(|p| is_required(*p, required)) {
        return None;
    }
    let mut left: Vec<Permission> = current.iter().copied().filter(|p| !dropped.contains(p)).collect();
    let base = [Permission::ReadTransactionsBasic, Permission::ReadTransactionsDetail];
    let direction = [Permission::ReadTransactionsCredits, Permission::ReadTransactionsDebits];
    let has_any = |left: &[Permission], set: &[Permission]| left.iter().any(|p| set.contains(p));
    if !has_any(&left, &base) {
        left.retain(|p| !direction.contains(p) || is_required(*p, required));
    }
    if !has_any(&left, &direction) {
        left.retain(|p| !base.contains(p) || is_required(*p, required));
    }
    let codes: Vec<String> = left.iter().map(|p| p.as_str().to_string()).collect();
    check_permissions(&codes).ok()
}

fn date(value: &Option<String>, path: &'static str) -> Result<Option<OffsetDateTime>, Refusal> {
    match value {
        None => Ok(None),
        Some(text) => clock::parse(text).map(Some).map_err(|_| {
            refuse(
                crate::standard::error::ObErrorCode::FieldInvalidDate,
                path,
                format!("{path} must be an RFC 3339 date-time with a time zone, e.g. 2027-01-31T00:00:00Z"),
            )
        }),
    }
}

/// Validates everything in the request that needs no database. Returns the new consent without its banks.
pub fn check_request(
    data: &ConsentRequestData,
    now: OffsetDateTime,
    max_days: u64,
) -> Result<(NewConsent, Vec<Bin>), Refusal> {
    use crate::standard::error::ObErrorCode::{FieldInvalid, FieldInvalidDate, FieldMissing};
    let permissions = check_permissions(&data.permissions)?;
    let required = check_required(&permissions, data.required_permissions.as_deref().unwrap_or_default())?;
    let latest = now + Duration::days(i64::try_from(max_days).unwrap_or(3650));
    let expires = date(&data.expiration_date_time, "Data.ExpirationDateTime")?.unwrap_or(latest);
    if expires <= now {
        return Err(refuse(FieldInvalidDate, "Data.ExpirationDateTime", "ExpirationDateTime is in the past"));
    }
    if expires > latest {
        return Err(refuse(
            FieldInvalidDate,
            "Data.ExpirationDateTime",
            format!("ExpirationDateTime may be at most {max_days} days ahead"),
        ));
    }
    let from = date(&data.transaction_from_date_time, "Data.TransactionFromDateTime")?;
    let to = date(&data.transaction_to_date_time, "Data.TransactionToDateTime")?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(refuse(
            FieldInvalidDate,
            "Data.TransactionFromDateTime",
            "TransactionFromDateTime is after TransactionToDateTime",
        ));
    }
    let purpose = data.purpose.trim();
    if purpose.is_empty() {
        return Err(refuse(FieldMissing, "Data.Purpose", "Purpose must say, in plain words, why the data is needed"));
    }
    if purpose.chars().count() > 300 {
        return Err(refuse(FieldInvalid, "Data.Purpose", "Purpose may be at most 300 characters"));
    }
    let mut purpose_translations = std::collections::BTreeMap::new();
    for (code, text) in data.purpose_translations.iter().flatten() {
        const PATH: &str = "Data.PurposeTranslations";
        if crate::i18n::Lang::parse(code).map(crate::i18n::Lang::code) != Some(code.as_str()) {
            let code = crate::standard::error::quote(code);
            return Err(refuse(FieldInvalid, PATH, format!("{code} is not a language of the platform (en, ru, kk)")));
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 300 {
            return Err(refuse(FieldInvalid, PATH, "Each translation of Purpose must be 1 to 300 characters"));
        }
        purpose_translations.insert(code.clone(), text.to_string());
    }
    if data.providers.is_empty() {
        return Err(refuse(FieldMissing, "Data.Providers", "Providers must name at least one bank by its BIN"));
    }
    if data.providers.len() > MAX_PROVIDERS {
        return Err(refuse(FieldInvalid, "Data.Providers", format!("At most {MAX_PROVIDERS} banks per consent")));
    }
    let mut bins: Vec<Bin> = Vec::with_capacity(data.providers.len());
    for provider in &data.providers {
        let Ok(bin) = Bin::parse(&provider.bin) else {
            let bin = crate::standard::error::quote(&provider.bin);
            return Err(refuse(FieldInvalid, "Data.Providers.Bin", format!("{bin} is not a valid BIN")));
        };
        if bins.contains(&bin) {
            return Err(refuse(FieldInvalid, "Data.Providers.Bin", format!("{bin} is named twice")));
        }
        bins.push(bin);
    }
    let consent = NewConsent {
        permissions,
        required,
        purpose: purpose.to_string(),
        purpose_translations,
        expires_at: clock::rfc3339(expires),
        transaction_from: from.map(clock::rfc3339),
        transaction_to: to.map(clock::rfc3339),
        provider_ids: Vec::new(),
    };
    Ok((consent, bins))
}

/// Resolves the banks by BIN: each must be an accredited API provider in good standing that publishes an API this
/// application is connected to.
pub fn resolve_providers(conn: &Connection, application_id: i64, bins: &[Bin]) -> Result<Vec<i64>, Refusal> {
    use crate::standard::error::ObErrorCode::FieldInvalid;
    const PATH: &str = "Data.Providers.Bin";
    let store = |e: rusqlite::Error| {
        tracing::error!(error = %e, "provider lookup failed");
        refuse(crate::standard::error::ObErrorCode::UnexpectedError, PATH, "The banks could not be checked")
    };
    let mut ids = Vec::with_capacity(bins.len());
    for bin in bins {
        let org = crate::participants::organisation_by_bin(conn, bin).map_err(store)?;
        let Some(org) = org else {
            return Err(refuse(FieldInvalid, PATH, format!("No participant has BIN {bin}")));
        };
        if org.status != crate::participants::OrgStatus::Accredited || !org.is_provider {
            return Err(refuse(
                FieldInvalid,
                PATH,
                format!("{bin} is not an accredited API provider in good standing"),
            ));
        }
        let connected: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM api_connections c JOIN apis a ON a.id = c.api_id
                 WHERE c.application_id = ?1 AND c.status = 'active' AND a.organisation_id = ?2
                   AND a.status = 'published')",
                rusqlite::params![application_id, org.id],
                |r| r.get(0),
            )
            .map_err(store)?;
        if !connected {
            return Err(refuse(
                FieldInvalid,
                PATH,
                format!(
                    "The application is not connected to a published API of {bin}; connect to it in the marketplace"
                ),
            ));
        }
        ids.push(org.id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn permission_sets_follow_the_obie_rules() {
        assert!(check_permissions(&codes(&["ReadAccountsBasic"])).is_ok());
        assert!(
            check_permissions(&codes(&[
                "ReadAccountsDetail",
                "ReadBalances",
                "ReadTransactionsDetail",
                "ReadTransactionsCredits"
            ]))
            .is_ok()
        );
        for bad in [
            vec![],
            vec!["ReadBalances"],
            vec!["ReadAccountsBasic", "ReadTransactionsDetail"],
            vec!["ReadAccountsBasic", "ReadTransactionsDebits"],
            vec!["ReadAccountsBasic", "ReadAccountsBasic"],
            vec!["ReadAccountsBasic", "ReadPAN"],
        ] {
            assert!(check_permissions(&codes(&bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_customer_may_drop_optional_permissions_only_and_never_leave_half_a_pair() {
        use Permission::*;
        let all =
            [ReadAccountsDetail, ReadBalances, ReadTransactionsDetail, ReadTransactionsCredits, ReadTransactionsDebits];
        let required = check_required(&all, &codes(&["ReadBalances"])).unwrap();
        assert_eq!(required, [ReadAccountsDetail, ReadBalances], "the accounts permission is always required");
        assert!(check_required(&all, &codes(&["ReadAccountsBasic"])).is_err(), "not asked for");
        assert!(check_required(&all, &codes(&["ReadEverything"])).is_err());
        assert_eq!(narrowed_permissions(&all, &required, &[ReadBalances]), None, "required");
        assert_eq!(narrowed_permissions(&all, &required, &[ReadAccountsDetail]), None, "accounts");
        assert_eq!(
            narrowed_permissions(&all, &required, &[ReadTransactionsCredits]).unwrap(),
            [ReadAccountsDetail, ReadBalances, ReadTransactionsDetail, ReadTransactionsDebits]
        );
        assert_eq!(
            narrowed_permissions(&all, &required, &[ReadTransactionsDetail]).unwrap(),
            [ReadAccountsDetail, ReadBalances],
            "money in and out go with the transactions"
        );
        assert_eq!(
            narrowed_permissions(&all, &required, &[ReadTransactionsCredits, ReadTransactionsDebits]).unwrap(),
            [ReadAccountsDetail, ReadBalances]
        );
        let strict = check_required(&all, &codes(&["ReadTransactionsCredits"])).unwrap();
        assert_eq!(narrowed_permissions(&all, &strict, &[ReadTransactionsDetail]), None, "leaves credits alone");
    }

    fn data(expiry: Option<&str>, from: Option<&str>, to: Option<&str>) -> ConsentRequestData {
        ConsentRequestData {
            permissions: codes(&["ReadAccountsBasic"]),
            required_permissions: None,
            expiration_date_time: expiry.map(String::from),
            transaction_from_date_time: from.map(String::from),
            transaction_to_date_time: to.map(String::from),
            purpose: "Budgeting".into(),
            purpose_translations: None,
            providers: vec![ProviderRef { bin: crate::kz::with_control_digit("99034000001").unwrap_or_default() }],
        }
    }

    #[test]
    fn dates_are_checked_and_expiry_defaults_to_the_maximum() {
        let now = clock::parse("2026-11-25T10:00:00Z").unwrap();
        let (consent, _) = check_request(&data(None, None, None), now, 30).unwrap();
        assert_eq!(consent.expires_at, "2026-12-25T10:00:00Z");
        let (consent, _) = check_request(&data(Some("2026-12-01T00:00:00+05:00"), None, None), now, 30).unwrap();
        assert_eq!(consent.expires_at, "2026-11-30T19:00:00Z", "normalised to UTC");
        let past = check_request(&data(Some("2026-11-25T09:00:00Z"), None, None), now, 30).unwrap_err();
        assert_eq!(past.path, "Data.ExpirationDateTime");
        assert!(check_request(&data(Some("2027-11-25T09:00:00Z"), None, None), now, 30).is_err());
        assert!(check_request(&data(Some("tomorrow"), None, None), now, 30).is_err());
        let window = check_request(&data(None, Some("2026-02-01T00:00:00Z"), Some("2026-01-01T00:00:00Z")), now, 30);
        assert_eq!(window.unwrap_err().path, "Data.TransactionFromDateTime");
    }
}
