//! Narrowing a consent: the customer takes banks and optional permissions out of it, or ends it earlier — on the
//! consent screen before allowing ([`choose`]), or later on `/my` while it is live ([`narrow`]). A consent is never
//! widened: a wider one is a new consent. Each change is one transaction: the consent's row and its banks (each
//! write a compare-and-set on what was read), the history, the audit journal and the webhooks.
//!
//! Nothing else has to follow: the gateway judges every request against the consent as stored (its permissions,
//! its banks still active, its expiry), so a dropped permission or bank is refused on the next request, with the
//! tokens already issued.

use rusqlite::{Transaction, params};
use serde_json::json;
use time::OffsetDateTime;

use super::rules::narrowed_permissions;
use super::{ChangedBy, Consent, ConsentError, ConsentId, Permission, Status, record, require};
use crate::clock;

/// What the customer takes out of a consent. Everything else stays as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Banks (organisation ids) the consent is to cover no more.
    pub drop_banks: Vec<i64>,
    /// Optional permissions to drop (a transaction permission left without its pair goes with them).
    pub drop_permissions: Vec<Permission>,
    /// An earlier end (RFC 3339, UTC).
    pub ends_at: Option<String>,
}

/// Why a narrowing was refused; each has a text for the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no bank would be left")]
    NoBankLeft,
    #[error("a required permission cannot be dropped")]
    RequiredPermission,
    #[error("the new end must be after now and before the current end")]
    End,
    #[error("nothing would change")]
    Unchanged,
}

impl Refused {
    pub fn text_key(self) -> &'static str {
        match self {
            Refused::NoBankLeft => "narrow.refused_no_bank",
            Refused::RequiredPermission => "narrow.refused_required",
            Refused::End => "narrow.refused_end",
            Refused::Unchanged => "narrow.refused_unchanged",
        }
    }
}

/// What a narrowing comes to, checked against the consent as read.
#[derive(Debug)]
struct Plan {
    drop_banks: Vec<i64>,
    permissions: Vec<Permission>,
    expires_at: String,
}

impl Plan {
    fn changes_consent(&self, consent: &Consent) -> bool {
        self.permissions != consent.permissions || self.expires_at != consent.expires_at
    }

    /// The history's reason: what changed, in the standard's words (ids and codes only).
    fn reason(&self, consent: &Consent, who: &str) -> String {
        let mut parts = Vec::new();
        let dropped: Vec<&str> =
            consent.permissions.iter().filter(|p| !self.permissions.contains(p)).map(|p| p.as_str()).collect();
        if !dropped.is_empty() {
            parts.push(format!("without {}", dropped.join(", ")));
        }
        if self.expires_at != consent.expires_at {
            parts.push(format!("until {}", self.expires_at));
        }
        let names: Vec<&str> = consent
            .providers
            .iter()
            .filter(|p| self.drop_banks.contains(&p.organisation_id))
            .map(|p| p.name.as_str())
            .collect();
        if !names.is_empty() {
            parts.push(format!("not for {}", names.join(", ")));
        }
        format!("{who}: {}", parts.join("; "))
    }
}

fn plan(consent: &Consent, narrowing: &Narrowing, now: &str) -> Result<Plan, Refused> {
    let mut drop_banks = Vec::new();
    for bank in &narrowing.drop_banks {
        // A bank the consent does not name, or already withdrawn: nothing to drop.
        if consent.active_providers().any(|p| p.organisation_id == *bank) && !drop_banks.contains(bank) {
            drop_banks.push(*bank);
        }
    }
    if consent.active_providers().all(|p| drop_banks.contains(&p.organisation_id)) {
        return Err(Refused::NoBankLeft);
    }
    let permissions = if narrowing.drop_permissions.is_empty() {
        consent.permissions.clone()
    } else {
        narrowed_permissions(&consent.permissions, &consent.required_permissions, &narrowing.drop_permissions)
            .ok_or(Refused::RequiredPermission)?
    };
    let expires_at = match &narrowing.ends_at {
        None => consent.expires_at.clone(),
        Some(end) if end.as_str() <= now || end.as_str() > consent.expires_at.as_str() => return Err(Refused::End),
        Some(end) => end.clone(),
    };
    let plan = Plan { drop_banks, permissions, expires_at };
    if plan.drop_banks.is_empty() && !plan.changes_consent(consent) {
        return Err(Refused::Unchanged);
    }
    Ok(plan)
}

/// Writes the consent's new permissions and end, if the row is still as read (a compare-and-set).
fn rewrite(tx: &Transaction, consent: &Consent, plan: &Plan, status: Status) -> Result<(), ConsentError> {
    let (before, after) = (json_list(&consent.permissions)?, json_list(&plan.permissions)?);
    let changed = tx.execute(
        "UPDATE consents SET permissions = ?2, expires_at = ?3
         WHERE id = ?1 AND status = ?4 AND permissions = ?5 AND expires_at = ?6",
        params![consent.id, after, plan.expires_at, status.as_str(), before, consent.expires_at],
    )?;
    if changed == 0 {
        // Read in this very transaction, so it cannot have moved; if it did, nothing of the change may stay: an error
        // of the store rolls the whole transaction back.
        return Err(ConsentError::Store(rusqlite::Error::StatementChangedRows(0)));
    }
    Ok(())
}

fn json_list(permissions: &[Permission]) -> rusqlite::Result<String> {
    serde_json::to_string(permissions).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// On the consent screen, before the customer allows: the banks unticked are taken out of the request (they never
/// see it), the optional permissions unticked dropped and the period shortened. Nothing to do when the customer
/// kept everything. Notified with the authorisation that follows in the same transaction.
pub fn choose(
    tx: &Transaction,
    id: &ConsentId,
    narrowing: &Narrowing,
    by: &ChangedBy,
    now: OffsetDateTime,
) -> Result<(), ConsentError> {
    let consent = require(tx, id, &[Status::AwaitingAuthorisation])?;
    let plan = match plan(&consent, narrowing, &clock::rfc3339(now)) {
        Ok(plan) => plan,
        Err(Refused::Unchanged) => return Ok(()),
        Err(refused) => return Err(ConsentError::Refused(refused)),
    };
    for bank in &plan.drop_banks {
        tx.execute(
            "DELETE FROM consent_providers WHERE consent_id = ?1 AND organisation_id = ?2 AND status = 'active'",
            params![consent.id, bank],
        )?;
    }
    if plan.changes_consent(&consent) {
        rewrite(tx, &consent, &plan, Status::AwaitingAuthorisation)?;
    }
    record(tx, &consent, MODIFIED, None, by, &plan.reason(&consent, "chosen by the customer"), now)?;
    Ok(())
}

/// The history's status word of a narrowing (`ProviderRevoked` rows record each bank dropped).
pub const MODIFIED: &str = "Modified";

/// Narrows a live consent for good. Banks dropped are revoked for that bank (`ProviderRevoked` in the history, the
/// bank told by a `consent.revoked` webhook); a change of permissions or end is one `Modified` row, and the API
/// user and the banks left are told by a `consent.modified` webhook.
pub fn narrow(
    tx: &Transaction,
    id: &ConsentId,
    narrowing: &Narrowing,
    by: &ChangedBy,
    now: OffsetDateTime,
) -> Result<Consent, ConsentError> {
    let consent = require(tx, id, &[Status::Authorised])?;
    let at = clock::rfc3339(now);
    if !consent.is_live(&at) {
        return Err(ConsentError::WrongStatus(Status::Expired));
    }
    let plan = plan(&consent, narrowing, &at).map_err(ConsentError::Refused)?;
    for bank in &plan.drop_banks {
        let changed = tx.execute(
            "UPDATE consent_providers SET status = 'revoked', revoked_at = ?3
             WHERE consent_id = ?1 AND organisation_id = ?2 AND status = 'active'",
            params![consent.id, bank, at],
        )?;
        if changed == 0 {
            // As in `rewrite`: roll everything back rather than keep half a narrowing.
            return Err(ConsentError::Store(rusqlite::Error::StatementChangedRows(0)));
        }
        record(tx, &consent, "ProviderRevoked", Some(*bank), by, "dropped by the customer", now)?;
    }
    if plan.changes_consent(&consent) {
        rewrite(tx, &consent, &plan, Status::Authorised)?;
        record(tx, &consent, MODIFIED, None, by, &plan.reason(&consent, "narrowed by the customer"), now)?;
    }
    let narrowed = super::load(tx, id.as_str())?.ok_or(ConsentError::NotFound)?;
    tell(tx, &consent, &narrowed, &plan, now)?;
    Ok(narrowed)
}

/// The webhooks of a narrowing: `consent.modified` to the API user (and to the banks left when what they serve
/// changed), `consent.revoked` to each bank dropped. Identifiers and codes only.
fn tell(tx: &Transaction, before: &Consent, after: &Consent, plan: &Plan, now: OffsetDateTime) -> rusqlite::Result<()> {
    let dropped_bins: Vec<&str> = before
        .providers
        .iter()
        .filter(|p| plan.drop_banks.contains(&p.organisation_id))
        .map(|p| p.bin.as_str())
        .collect();
    let modified = json!({
        "ConsentId": after.id,
        "Status": after.status.as_str(),
        "ClientId": after.client_id,
        "Permissions": after.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "ExpirationDateTime": after.expires_at,
        "RevokedProviderBins": dropped_bins,
    });
    crate::notify::enqueue(tx, after.organisation_id, "consent.modified", &modified, now)?;
    for provider in &before.providers {
        if plan.drop_banks.contains(&provider.organisation_id) {
            let revoked = json!({
                "ConsentId": after.id,
                "Status": after.status.as_str(),
                "ClientId": after.client_id,
                "ProviderBin": provider.bin,
            });
            crate::notify::enqueue(tx, provider.organisation_id, "consent.revoked", &revoked, now)?;
        } else if !provider.revoked && plan.changes_consent(before) {
            crate::notify::enqueue(tx, provider.organisation_id, "consent.modified", &modified, now)?;
        }
    }
    Ok(())
}

/// The narrowing a form asks for: the banks and permissions still ticked (repeated `bank` and `permission` fields)
/// and the last day (`until`, a date in the operator's `zone`: the consent ends when that day does). What is not
/// ticked is dropped; a required permission is never dropped (its box cannot be unticked, so it is not sent). A form
/// without the choices (no `choices` field: the boxes were not shown) keeps everything.
pub fn from_form(
    consent: &Consent,
    form: &[(String, String)],
    zone: &jiff::tz::TimeZone,
) -> Result<Narrowing, Refused> {
    let values = |name: &'static str| form.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str());
    if values("choices").next().is_none() {
        return Ok(Narrowing::default());
    }
    let banks: Vec<i64> = values("bank").filter_map(|v| v.parse().ok()).collect();
    let permissions: Vec<Permission> = values("permission").filter_map(|v| v.parse().ok()).collect();
    let drop_banks = consent.active_providers().map(|p| p.organisation_id).filter(|id| !banks.contains(id)).collect();
    let drop_permissions =
        consent.permissions.iter().copied().filter(|p| !permissions.contains(p) && !consent.is_required(*p)).collect();
    let ends_at = match values("until").next().map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(day) => {
            let day: jiff::civil::Date = day.parse().map_err(|_| Refused::End)?;
            let next = day.tomorrow().map_err(|_| Refused::End)?;
            let end = crate::store::calendar::day_start(zone, next).map_err(|_| Refused::End)?;
            let end = OffsetDateTime::from_unix_timestamp(end).map_err(|_| Refused::End)?;
            let end = clock::rfc3339(end);
            // The day the consent already ends on (or later): no earlier end asked.
            (end < consent.expires_at).then_some(end)
        }
    };
    Ok(Narrowing { drop_banks, drop_permissions, ends_at })
}

/// The local dates a form's `until` may take: today and the day the consent ends (`YYYY-MM-DD`).
pub fn until_bounds(consent: &Consent, zone: &jiff::tz::TimeZone, now: OffsetDateTime) -> (String, String) {
    let local = |unix: i64| crate::store::calendar::local_day(zone, unix).unwrap_or_default();
    let end = clock::parse(&consent.expires_at).map(|t| t.unix_timestamp()).unwrap_or(now.unix_timestamp());
    (local(now.unix_timestamp()), local(end))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::consent::Provider;
    use Permission::*;

    fn consent() -> Consent {
        let bank = |id: i64, name: &str| Provider {
            organisation_id: id,
            bin: format!("99034000{id:04}"),
            name: name.into(),
            revoked: false,
            revoked_at: None,
        };
        Consent {
            id: ConsentId::generate(),
            application_id: 1,
            client_id: crate::apps::ClientId::generate(),
            application_name: "Budget App".into(),
            mode: crate::apps::AppMode::Production,
            organisation_id: 9,
            organisation_name: "Fintech One".into(),
            customer_id: Some(1),
            permissions: vec![ReadAccountsDetail, ReadBalances, ReadTransactionsDetail, ReadTransactionsCredits],
            required_permissions: vec![ReadAccountsDetail],
            purpose: "Budgeting".into(),
            purpose_translations: Default::default(),
            expires_at: "2026-12-31T00:00:00Z".into(),
            transaction_from: None,
            transaction_to: None,
            status: Status::Authorised,
            created_at: "2026-12-01T00:00:00Z".into(),
            status_updated_at: "2026-12-01T00:00:00Z".into(),
            authorised_at: Some("2026-12-01T00:00:00Z".into()),
            last_used_at: None,
            providers: vec![bank(1, "Altyn Bank"), bank(2, "Dala Bank")],
        }
    }

    const NOW: &str = "2026-12-04T00:00:00Z";

    #[test]
    fn a_consent_is_only_ever_narrowed() {
        let c = consent();
        let later = Narrowing { ends_at: Some("2027-01-31T00:00:00Z".into()), ..Default::default() };
        assert_eq!(plan(&c, &later, NOW).unwrap_err(), Refused::End, "never later");
        let past = Narrowing { ends_at: Some("2026-12-01T00:00:00Z".into()), ..Default::default() };
        assert_eq!(plan(&c, &past, NOW).unwrap_err(), Refused::End);
        assert_eq!(plan(&c, &Narrowing::default(), NOW).unwrap_err(), Refused::Unchanged);
        let stranger = Narrowing { drop_banks: vec![77], ..Default::default() };
        assert_eq!(plan(&c, &stranger, NOW).unwrap_err(), Refused::Unchanged, "a bank it does not name");
        let all = Narrowing { drop_banks: vec![1, 2], ..Default::default() };
        assert_eq!(plan(&c, &all, NOW).unwrap_err(), Refused::NoBankLeft);
        let accounts = Narrowing { drop_permissions: vec![ReadAccountsDetail], ..Default::default() };
        assert_eq!(plan(&c, &accounts, NOW).unwrap_err(), Refused::RequiredPermission);
    }

    #[test]
    fn a_narrowing_takes_out_banks_permissions_and_time() {
        let c = consent();
        let narrowing = Narrowing {
            drop_banks: vec![2, 2],
            drop_permissions: vec![ReadTransactionsCredits],
            ends_at: Some("2026-12-10T00:00:00Z".into()),
        };
        let plan = plan(&c, &narrowing, NOW).unwrap();
        assert_eq!(plan.drop_banks, [2]);
        assert_eq!(
            plan.permissions,
            [ReadAccountsDetail, ReadBalances],
            "the transactions go with their only direction"
        );
        assert_eq!(plan.expires_at, "2026-12-10T00:00:00Z");
        let reason = plan.reason(&c, "narrowed by the customer");
        assert_eq!(
            reason,
            "narrowed by the customer: without ReadTransactionsDetail, ReadTransactionsCredits; \
             until 2026-12-10T00:00:00Z; not for Dala Bank"
        );
    }

    #[test]
    fn a_form_keeps_what_is_ticked_and_ends_with_the_chosen_local_day() {
        let c = consent();
        let zone = crate::store::calendar::default_time_zone();
        let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        // Without the choices (a client that never showed the boxes): everything kept.
        assert_eq!(from_form(&c, &form(&[("decision", "allow")]), &zone).unwrap(), Narrowing::default());
        let narrowing = from_form(
            &c,
            &form(&[
                ("choices", "1"),
                ("bank", "1"),
                ("permission", "ReadTransactionsDetail"),
                ("until", "2026-12-09"),
            ]),
            &zone,
        )
        .unwrap();
        assert_eq!(narrowing.drop_banks, [2]);
        assert_eq!(narrowing.drop_permissions, [ReadBalances, ReadTransactionsCredits], "the required one is kept");
        // Almaty is UTC+5: the 9th ends at 19:00 UTC.
        assert_eq!(narrowing.ends_at.as_deref(), Some("2026-12-09T19:00:00Z"));
        let same_end = from_form(&c, &form(&[("choices", "1"), ("bank", "1"), ("until", "2026-12-31")]), &zone);
        assert_eq!(same_end.unwrap().ends_at, None, "the day it already ends on");
        assert_eq!(from_form(&c, &form(&[("choices", "1"), ("until", "soon")]), &zone).unwrap_err(), Refused::End);
    }
}
