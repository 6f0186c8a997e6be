//! Billing: the regulator's caps per service, the providers' tariffs per API and service under them, the operator's
//! platform fee under its own cap, billable units from metering, and the running totals every participant sees.
//!
//! - **Services** are what a unit is of: an account list (or one account), a balances call, a page of up to
//!   [`LINES_PER_PAGE`] transaction lines. An API's services follow from the standard it implements
//!   ([`services_of_standard`]).
//! - **Effective dates are the operator's local days.** A cap, tariff or fee takes effect at 00:00 of a day after
//!   today (never today or earlier, so nothing already metered is priced again), and is never changed or deleted: the
//!   row in force on a day is the one with the latest `effective_from` on or before it (the latest decision among
//!   equals). The day an exchange falls on thus names its tariff, and units are kept per day
//!   (`billing_units_daily`, [`units::observe`]).
//! - **Caps.** A tariff above the provider cap in force on its effective day is refused, naming the cap. A cap that
//!   takes effect below a tariff clamps it: a row at the cap's price is added from the cap's day (`clamped_by_cap`),
//!   journalled, and the provider gets a signed `billing.tariff.clamped` webhook; the provider's tariff page lists
//!   it. Prices are also read as `min(tariff, cap)` for each day, so no unit is ever priced above the cap in force.
//! - **Money is integer tiyn** everywhere; no floating point touches an amount.
//!
//! Disputes about a statement line are requests ([`disputes`]); corrections are credit notes ([`credit`]).
//!
//! Journal actions: `billing.cap.set`, `billing.tariff.set`, `billing.fee.set`, `billing.tariff.clamped`,
//! `billing.credit_note.issued`; refusals
//! as `billing.cap.set`, `billing.tariff.set`, `billing.fee.set` with outcome `denied` and the reason.

pub mod charges;
pub mod close;
pub mod credit;
pub mod disputes;
pub mod export;
pub mod overdue;
pub mod pages;
pub mod print;
pub mod schedule;
pub mod statements;
pub mod units;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::audit::{self, Actor, Event, Outcome};
use crate::participants::Organisation;

/// Transaction lines in one billable page.
pub const LINES_PER_PAGE: u32 = 100;
/// How far ahead a cap, tariff or fee may be set.
pub const MAX_AHEAD_DAYS: i64 = 366;
/// The largest price per unit (100 000 tenge), and the largest free quota.
pub const MAX_PRICE_TIYN: i64 = 10_000_000;
pub const MAX_FREE_UNITS: i64 = 1_000_000_000;

crate::text_enum! {
    /// What a billable unit is of.
    pub enum Service {
        Accounts = "accounts",
        Balances = "balances",
        TransactionsPage = "transactions_page",
    }
}

impl Service {
    /// The service of a metered endpoint (`accounts` and `account` are both the account list's).
    pub fn of_endpoint(endpoint: &str) -> Option<Service> {
        match endpoint {
            "accounts" | "account" => Some(Service::Accounts),
            "balances" => Some(Service::Balances),
            "transactions" => Some(Service::TransactionsPage),
            _ => None,
        }
    }

    /// The billable units of one successful exchange: one, or for transactions one per page of up to
    /// [`LINES_PER_PAGE`] lines (an empty page is still a page).
    pub fn units(self, transaction_lines: u32) -> i64 {
        match self {
            Service::TransactionsPage => i64::from(transaction_lines.div_ceil(LINES_PER_PAGE).max(1)),
            _ => 1,
        }
    }

    pub fn text_key(self) -> &'static str {
        match self {
            Service::Accounts => "billing.service.accounts",
            Service::Balances => "billing.service.balances",
            Service::TransactionsPage => "billing.service.transactions_page",
        }
    }
}

/// The services an API implementing `standard` offers.
pub fn services_of_standard(standard: &str) -> &'static [Service] {
    match standard {
        "kopir-ais-v1" => Service::ALL,
        _ => &[],
    }
}

crate::text_enum! {
    /// Whom a cap limits.
    pub enum Payee {
        /// The providers' tariffs.
        Provider = "provider",
        /// The operator's platform fee.
        Platform = "platform",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Requests(Box<crate::requests::RequestsError>),
}

/// A maximum rate per unit of a service, from a day on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cap {
    pub id: i64,
    pub payee: Payee,
    pub service: Service,
    pub effective_from: String,
    pub max_tiyn: i64,
    pub set_by: String,
    pub set_at: String,
}

impl Cap {
    fn from_row(r: &Row) -> rusqlite::Result<Cap> {
        Ok(Cap {
            id: r.get("id")?,
            payee: r.get("payee")?,
            service: r.get("service")?,
            effective_from: r.get("effective_from")?,
            max_tiyn: r.get("max_tiyn")?,
            set_by: r.get("set_by")?,
            set_at: r.get("set_at")?,
        })
    }
}

/// A price per unit of one API's service (or, without an API, the operator's platform fee), from a day on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tariff {
    pub id: i64,
    pub api_id: Option<i64>,
    pub service: Service,
    pub effective_from: String,
    pub price_tiyn: i64,
    pub free_units: i64,
    pub clamped_by_cap: Option<i64>,
    pub set_by: String,
    pub set_at: String,
}

impl Tariff {
    fn from_row(r: &Row) -> rusqlite::Result<Tariff> {
        Ok(Tariff {
            id: r.get("id")?,
            api_id: r.get("api_id")?,
            service: r.get("service")?,
            effective_from: r.get("effective_from")?,
            price_tiyn: r.get("price_tiyn")?,
            free_units: r.get("free_units")?,
            clamped_by_cap: r.get("clamped_by_cap")?,
            set_by: r.get("set_by")?,
            set_at: r.get("set_at")?,
        })
    }
}

const CAP_COLUMNS: &str = "id, payee, service, effective_from, max_tiyn, set_by, set_at";
const TARIFF_COLUMNS: &str =
    "id, api_id, service, effective_from, price_tiyn, free_units, clamped_by_cap, set_by, set_at";

/// Why a decision was refused: a text key, and the cap it would break (shown with the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub key: &'static str,
    pub cap: Option<Cap>,
}

impl Refusal {
    fn new(key: &'static str) -> Refusal {
        Refusal { key, cap: None }
    }
}

/// What a decision came to: the new row's id, or a refusal (journalled; the caller's transaction commits either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    Done(i64),
    Refused(Refusal),
}

/// `YYYY-MM-DD`.
pub fn day_text(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// A `YYYY-MM-DD` day.
pub fn parse_day(text: &str) -> Option<Date> {
    Date::parse(text.trim(), time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The operator's local day at `now`.
pub fn today(zone: &jiff::tz::TimeZone, now: OffsetDateTime) -> Option<Date> {
    let day = crate::store::calendar::local_date(zone, now.unix_timestamp()).ok()?;
    let month = time::Month::try_from(u8::try_from(day.month()).ok()?).ok()?;
    Date::from_calendar_date(i32::from(day.year()), month, u8::try_from(day.day()).ok()?).ok()
}

/// The effective day of a decision taken `today`, or why it is refused: a day after today, at most
/// [`MAX_AHEAD_DAYS`] ahead.
pub fn effective_day(text: &str, today: Date) -> Result<String, &'static str> {
    let day = parse_day(text).ok_or("billing.error.day")?;
    if day <= today {
        Err("billing.error.day_past")
    } else if day > today + time::Duration::days(MAX_AHEAD_DAYS) {
        Err("billing.error.day_far")
    } else {
        Ok(day_text(day))
    }
}

fn price_refusal(price: i64, free: i64) -> Option<&'static str> {
    if !(0..=MAX_PRICE_TIYN).contains(&price) {
        Some("billing.error.price")
    } else if !(0..=MAX_FREE_UNITS).contains(&free) {
        Some("billing.error.free")
    } else {
        None
    }
}

/// The cap on `payee`'s price of `service` in force on `day`.
pub fn cap_in_force(conn: &Connection, payee: Payee, service: Service, day: &str) -> rusqlite::Result<Option<Cap>> {
    conn.prepare_cached(&format!(
        "SELECT {CAP_COLUMNS} FROM billing_caps WHERE payee = ?1 AND service = ?2 AND effective_from <= ?3
         ORDER BY effective_from DESC, id DESC LIMIT 1"
    ))?
    .query_row(params![payee, service, day], Cap::from_row)
    .optional()
}

/// Every cap ever set, latest effective day first.
pub fn caps(conn: &Connection) -> rusqlite::Result<Vec<Cap>> {
    conn.prepare_cached(&format!("SELECT {CAP_COLUMNS} FROM billing_caps ORDER BY effective_from DESC, id DESC"))?
        .query_map([], Cap::from_row)?
        .collect()
}

/// The tariff of `api`'s `service` (`None`: the platform fee) in force on `day`.
pub fn tariff_in_force(
    conn: &Connection,
    api: Option<i64>,
    service: Service,
    day: &str,
) -> rusqlite::Result<Option<Tariff>> {
    conn.prepare_cached(&format!(
        "SELECT {TARIFF_COLUMNS} FROM billing_tariffs WHERE api_id IS ?1 AND service = ?2 AND effective_from <= ?3
         ORDER BY effective_from DESC, id DESC LIMIT 1"
    ))?
    .query_row(params![api, service, day], Tariff::from_row)
    .optional()
}

/// The history of `api`'s tariffs (`None`: the platform fee), latest effective day first.
pub fn tariffs(conn: &Connection, api: Option<i64>) -> rusqlite::Result<Vec<Tariff>> {
    conn.prepare_cached(&format!(
        "SELECT {TARIFF_COLUMNS} FROM billing_tariffs WHERE api_id IS ?1 ORDER BY effective_from DESC, id DESC"
    ))?
    .query_map([api], Tariff::from_row)?
    .collect()
}

/// Every row of the tables the prices are read from, for pricing many days at once ([`charges::Plans`]).
pub(crate) fn all_caps_and_tariffs(conn: &Connection) -> rusqlite::Result<(Vec<Cap>, Vec<Tariff>)> {
    let caps = conn
        .prepare_cached(&format!("SELECT {CAP_COLUMNS} FROM billing_caps ORDER BY effective_from, id"))?
        .query_map([], Cap::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let tariffs = conn
        .prepare_cached(&format!("SELECT {TARIFF_COLUMNS} FROM billing_tariffs ORDER BY effective_from, id"))?
        .query_map([], Tariff::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((caps, tariffs))
}

#[allow(clippy::too_many_arguments)]
fn journal(
    tx: &Transaction,
    actor: &Actor,
    organisation: Option<&str>,
    action: &str,
    outcome: Outcome,
    object: Option<String>,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let mut event = Event::new(&actor.name, action, outcome).at(now).source(&actor.source).detail(detail);
    if let Some(bin) = organisation {
        event = event.organisation(bin);
    }
    if let Some(object) = object {
        event = event.object(object);
    }
    audit::append(tx, &event)?;
    Ok(())
}

/// A cap as asked for.
#[derive(Debug, Clone)]
pub struct CapRequest {
    pub payee: Payee,
    pub service: Service,
    pub effective_from: String,
    pub max_tiyn: i64,
}

/// Sets a cap (the regulator's decision; the caller's guard says who may), journalled, and clamps what it lowers.
pub fn set_cap(
    tx: &Transaction,
    request: &CapRequest,
    actor: &Actor,
    today: Date,
    now: OffsetDateTime,
) -> Result<Decided, BillingError> {
    let day = match effective_day(&request.effective_from, today) {
        Ok(day) => day,
        Err(key) => return refuse(tx, actor, None, "billing.cap.set", key, None, now),
    };
    if let Some(key) = price_refusal(request.max_tiyn, 0) {
        return refuse(tx, actor, None, "billing.cap.set", key, None, now);
    }
    let at = crate::clock::rfc3339(now);
    tx.execute(
        "INSERT INTO billing_caps (payee, service, effective_from, max_tiyn, set_by, set_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![request.payee, request.service, day, request.max_tiyn, actor.name, at],
    )?;
    let id = tx.last_insert_rowid();
    journal(
        tx,
        actor,
        None,
        "billing.cap.set",
        Outcome::Success,
        Some(format!("billing_cap:{id}")),
        serde_json::json!({ "payee": request.payee, "service": request.service, "effective_from": day,
                            "max_tiyn": request.max_tiyn }),
        now,
    )?;
    clamp(tx, id, request, &day, actor, now)?;
    Ok(Decided::Done(id))
}

/// The days from `day` until the next cap of the same payee and service takes effect (exclusive; `None`: for ever).
fn cap_reach(tx: &Transaction, cap_id: i64, request: &CapRequest, day: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT min(effective_from) FROM billing_caps
         WHERE payee = ?1 AND service = ?2 AND effective_from > ?3 AND id <> ?4",
        params![request.payee, request.service, day, cap_id],
        |r| r.get(0),
    )
}

/// Adds a clamped row, at the cap's price, wherever a tariff (or the platform fee) in force within the cap's reach is
/// above it: on the cap's day for the tariff then in force, and on each later tariff's day. Each clamp is journalled
/// and its provider notified.
fn clamp(
    tx: &Transaction,
    cap_id: i64,
    request: &CapRequest,
    day: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let until = cap_reach(tx, cap_id, request, day)?;
    let subjects: Vec<Option<i64>> = match request.payee {
        Payee::Platform => vec![None],
        Payee::Provider => tx
            .prepare_cached("SELECT DISTINCT api_id FROM billing_tariffs WHERE api_id IS NOT NULL AND service = ?1")?
            .query_map([request.service], |r| r.get::<_, Option<i64>>(0))?
            .collect::<rusqlite::Result<_>>()?,
    };
    let at = crate::clock::rfc3339(now);
    for api in subjects {
        let mut days: Vec<String> = vec![day.to_string()];
        days.extend(
            tx.prepare_cached(
                "SELECT DISTINCT effective_from FROM billing_tariffs
                 WHERE api_id IS ?1 AND service = ?2 AND effective_from > ?3 AND (?4 IS NULL OR effective_from < ?4)
                 ORDER BY effective_from",
            )?
            .query_map(params![api, request.service, day, until], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        );
        for on in days {
            let Some(tariff) = tariff_in_force(tx, api, request.service, &on)? else { continue };
            if tariff.price_tiyn <= request.max_tiyn {
                continue;
            }
            tx.execute(
                "INSERT INTO billing_tariffs (api_id, service, effective_from, price_tiyn, free_units, clamped_by_cap,
                     set_by, set_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'system', ?7)",
                params![api, request.service, on, request.max_tiyn, tariff.free_units, cap_id, at],
            )?;
            let clamped = tx.last_insert_rowid();
            let provider: Option<(i64, String)> = match api {
                Some(api) => tx
                    .query_row(
                        "SELECT o.id, o.bin FROM apis a JOIN organisations o ON o.id = a.organisation_id
                         WHERE a.id = ?1",
                        [api],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?,
                None => None,
            };
            let detail = serde_json::json!({ "api": api, "service": request.service, "effective_from": on,
                "price_tiyn": request.max_tiyn, "was_tiyn": tariff.price_tiyn, "cap": cap_id });
            journal(
                tx,
                actor,
                provider.as_ref().map(|(_, bin)| bin.as_str()),
                "billing.tariff.clamped",
                Outcome::Success,
                Some(format!("billing_tariff:{clamped}")),
                detail.clone(),
                now,
            )?;
            if let Some((organisation, _)) = provider {
                crate::notify::enqueue(tx, organisation, "billing.tariff.clamped", &detail, now)?;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn refuse(
    tx: &Transaction,
    actor: &Actor,
    organisation: Option<&str>,
    action: &str,
    key: &'static str,
    cap: Option<Cap>,
    now: OffsetDateTime,
) -> Result<Decided, BillingError> {
    let detail = serde_json::json!({ "reason": key, "cap": cap.as_ref().map(|c| c.id) });
    journal(tx, actor, organisation, action, Outcome::Denied, None, detail, now)?;
    Ok(Decided::Refused(Refusal { key, cap }))
}

/// A tariff or fee as asked for.
#[derive(Debug, Clone)]
pub struct TariffRequest {
    pub service: Service,
    pub effective_from: String,
    pub price_tiyn: i64,
    pub free_units: i64,
}

/// Checks a price against the cap on `payee` in force on `day`: above it (or no cap while the price is not zero)
/// is refused, naming the cap.
fn cap_refusal(
    tx: &Transaction,
    payee: Payee,
    service: Service,
    day: &str,
    price: i64,
) -> rusqlite::Result<Option<Refusal>> {
    let cap = cap_in_force(tx, payee, service, day)?;
    Ok(match cap {
        Some(cap) if price > cap.max_tiyn => Some(Refusal { key: "billing.error.above_cap", cap: Some(cap) }),
        None if price > 0 => Some(Refusal::new("billing.error.no_cap")),
        _ => None,
    })
}

/// A provider's administrators set the tariff of one of their APIs' services, journalled. Another organisation's
/// API is [`BillingError::NotFound`].
pub fn set_tariff(
    tx: &Transaction,
    org: &Organisation,
    api_id: i64,
    request: &TariffRequest,
    actor: &Actor,
    today: Date,
    now: OffsetDateTime,
) -> Result<Decided, BillingError> {
    let bin = org.bin.as_str();
    let action = "billing.tariff.set";
    let api = crate::catalog::by_id_for_organisation(tx, org.id, api_id)?.ok_or(BillingError::NotFound)?;
    if crate::catalog::provider_refusal(org).is_some() {
        return refuse(tx, actor, Some(bin), action, "billing.error.not_provider", None, now);
    }
    if !services_of_standard(&api.standard).contains(&request.service) {
        return refuse(tx, actor, Some(bin), action, "billing.error.service", None, now);
    }
    let day = match effective_day(&request.effective_from, today) {
        Ok(day) => day,
        Err(key) => return refuse(tx, actor, Some(bin), action, key, None, now),
    };
    if let Some(key) = price_refusal(request.price_tiyn, request.free_units) {
        return refuse(tx, actor, Some(bin), action, key, None, now);
    }
    if let Some(refusal) = cap_refusal(tx, Payee::Provider, request.service, &day, request.price_tiyn)? {
        return refuse(tx, actor, Some(bin), action, refusal.key, refusal.cap, now);
    }
    let id = insert_tariff(tx, Some(api_id), request, &day, actor, now)?;
    journal(
        tx,
        actor,
        Some(bin),
        action,
        Outcome::Success,
        Some(format!("billing_tariff:{id}")),
        serde_json::json!({ "api": api_id, "service": request.service, "effective_from": day,
                            "price_tiyn": request.price_tiyn, "free_units": request.free_units }),
        now,
    )?;
    Ok(Decided::Done(id))
}

/// The operator sets its platform fee per unit of a service (no free quota), under the platform cap, journalled.
pub fn set_fee(
    tx: &Transaction,
    request: &TariffRequest,
    actor: &Actor,
    today: Date,
    now: OffsetDateTime,
) -> Result<Decided, BillingError> {
    let action = "billing.fee.set";
    let day = match effective_day(&request.effective_from, today) {
        Ok(day) => day,
        Err(key) => return refuse(tx, actor, None, action, key, None, now),
    };
    if let Some(key) = price_refusal(request.price_tiyn, 0) {
        return refuse(tx, actor, None, action, key, None, now);
    }
    if let Some(refusal) = cap_refusal(tx, Payee::Platform, request.service, &day, request.price_tiyn)? {
        return refuse(tx, actor, None, action, refusal.key, refusal.cap, now);
    }
    let request = TariffRequest { free_units: 0, ..request.clone() };
    let id = insert_tariff(tx, None, &request, &day, actor, now)?;
    journal(
        tx,
        actor,
        None,
        action,
        Outcome::Success,
        Some(format!("billing_tariff:{id}")),
        serde_json::json!({ "service": request.service, "effective_from": day, "price_tiyn": request.price_tiyn }),
        now,
    )?;
    Ok(Decided::Done(id))
}

fn insert_tariff(
    tx: &Transaction,
    api: Option<i64>,
    request: &TariffRequest,
    day: &str,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO billing_tariffs (api_id, service, effective_from, price_tiyn, free_units, set_by, set_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            api,
            request.service,
            day,
            request.price_tiyn,
            request.free_units,
            actor.name,
            crate::clock::rfc3339(now)
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Tiyn as tenge with two decimals, `-` for a negative amount: `12345` → `123.45`.
pub fn tenge(tiyn: i64) -> String {
    let sign = if tiyn < 0 { "-" } else { "" };
    let abs = tiyn.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn units_are_one_per_call_and_one_per_started_hundred_transaction_lines() {
        assert_eq!(Service::of_endpoint("account"), Some(Service::Accounts));
        assert_eq!(Service::of_endpoint("consents"), None);
        assert_eq!(Service::Accounts.units(0), 1);
        assert_eq!(Service::Balances.units(500), 1);
        assert_eq!(Service::TransactionsPage.units(0), 1);
        assert_eq!(Service::TransactionsPage.units(1), 1);
        assert_eq!(Service::TransactionsPage.units(100), 1);
        assert_eq!(Service::TransactionsPage.units(101), 2);
        assert_eq!(Service::TransactionsPage.units(250), 3);
    }

    #[test]
    fn effective_days_are_after_today_and_within_a_year() {
        let today = time::macros::date!(2026 - 12 - 03);
        assert_eq!(effective_day("2026-12-04", today), Ok("2026-12-04".into()));
        assert_eq!(effective_day("2026-12-03", today), Err("billing.error.day_past"));
        assert_eq!(effective_day("2027-12-05", today), Err("billing.error.day_far"));
        assert_eq!(effective_day("tomorrow", today), Err("billing.error.day"));
        assert_eq!(tenge(12345), "123.45");
        assert_eq!(tenge(5), "0.05");
        assert_eq!(tenge(-250), "-2.50");
    }
}
