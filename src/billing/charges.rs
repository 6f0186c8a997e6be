//! Pricing units: each day's units of an (API user, API, service) at the tariff and cap in force that day, the
//! provider's free quota consumed in day order within the month, and the operator's platform fee on every unit.
//! Integer tiyn throughout.
//!
//! The free quota: a month's units of one API user at one API's service are taken in day order; the quota of the
//! tariff in force on a day frees what of it the month's earlier units have not used (`quota − units before`, at
//! least 0, at most the day's units). The platform fee is the operator's and is charged on every unit, free or not.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::Date;

use super::{Cap, Payee, Service, Tariff, day_text};

/// Every cap and tariff, by what they price, in effective order: a day's price is found in memory.
pub struct Plans {
    caps: HashMap<(Payee, Service), Vec<Cap>>,
    tariffs: HashMap<(Option<i64>, Service), Vec<Tariff>>,
}

impl Plans {
    pub fn load(conn: &Connection) -> rusqlite::Result<Plans> {
        let (all_caps, all_tariffs) = super::all_caps_and_tariffs(conn)?;
        let mut caps: HashMap<(Payee, Service), Vec<Cap>> = HashMap::new();
        for cap in all_caps {
            caps.entry((cap.payee, cap.service)).or_default().push(cap);
        }
        let mut tariffs: HashMap<(Option<i64>, Service), Vec<Tariff>> = HashMap::new();
        for tariff in all_tariffs {
            tariffs.entry((tariff.api_id, tariff.service)).or_default().push(tariff);
        }
        Ok(Plans { caps, tariffs })
    }

    /// The last row in effect on `day` (rows are sorted by effective day, then id).
    fn in_force<'a, T>(rows: Option<&'a Vec<T>>, day: &str, from: impl Fn(&T) -> &str) -> Option<&'a T> {
        let rows = rows?;
        let after = rows.partition_point(|r| from(r) <= day);
        after.checked_sub(1).and_then(|i| rows.get(i))
    }

    pub fn cap(&self, payee: Payee, service: Service, day: &str) -> Option<&Cap> {
        Plans::in_force(self.caps.get(&(payee, service)), day, |c| c.effective_from.as_str())
    }

    pub fn tariff(&self, api: Option<i64>, service: Service, day: &str) -> Option<&Tariff> {
        Plans::in_force(self.tariffs.get(&(api, service)), day, |t| t.effective_from.as_str())
    }

    /// The price per unit on `day`: the tariff, never above the cap then in force (none: free).
    fn price(&self, payee: Payee, api: Option<i64>, service: Service, day: &str) -> (i64, i64) {
        let Some(tariff) = self.tariff(api, service, day) else { return (0, 0) };
        let price = match self.cap(payee, service, day) {
            Some(cap) => tariff.price_tiyn.min(cap.max_tiyn),
            None => tariff.price_tiyn,
        };
        (price, tariff.free_units)
    }
}

/// One day's units of an API user at one API's service, as read from `billing_units_daily`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub day: String,
    pub user_organisation_id: i64,
    pub provider_organisation_id: i64,
    pub api_id: i64,
    pub service: Service,
    pub exchanges: i64,
    pub units: i64,
}

/// The same, priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charge {
    pub day: String,
    pub user_organisation_id: i64,
    pub provider_organisation_id: i64,
    pub api_id: i64,
    pub service: Service,
    pub exchanges: i64,
    pub units: i64,
    pub free_units: i64,
    pub price_tiyn: i64,
    /// The provider's charge: `(units − free_units) × price_tiyn`.
    pub charge_tiyn: i64,
    pub fee_price_tiyn: i64,
    /// The platform's fee: `units × fee_price_tiyn`.
    pub fee_tiyn: i64,
}

/// Who the rows are read for.
#[derive(Debug, Clone, Copy)]
pub enum Party {
    User(i64),
    Provider(i64),
    Everyone,
}

/// The units of `[from, to]` (days, both included) of `party`, in day order.
pub fn units(conn: &Connection, party: Party, from: Date, to: Date) -> rusqlite::Result<Vec<UnitRow>> {
    let (column, id) = match party {
        Party::User(id) => ("user_organisation_id", id),
        Party::Provider(id) => ("provider_organisation_id", id),
        Party::Everyone => ("0", 0),
    };
    conn.prepare_cached(&format!(
        "SELECT day, user_organisation_id, provider_organisation_id, api_id, service, exchanges, units
         FROM billing_units_daily WHERE day BETWEEN ?1 AND ?2 AND {column} = ?3 ORDER BY day"
    ))?
    .query_map(params![day_text(from), day_text(to), id], |r| {
        Ok(UnitRow {
            day: r.get(0)?,
            user_organisation_id: r.get(1)?,
            provider_organisation_id: r.get(2)?,
            api_id: r.get(3)?,
            service: r.get(4)?,
            exchanges: r.get(5)?,
            units: r.get(6)?,
        })
    })?
    .collect()
}

/// Prices the units of one month (`rows` in day order, any parties): the quota is consumed per (API user, API,
/// service) within the month the rows belong to.
pub fn price(plans: &Plans, rows: &[UnitRow]) -> Vec<Charge> {
    let mut used: HashMap<(String, i64, i64, Service), i64> = HashMap::new();
    rows.iter()
        .map(|r| {
            let month = r.day.get(..7).unwrap_or_default().to_string();
            let before = used.entry((month, r.user_organisation_id, r.api_id, r.service)).or_default();
            let (price, quota) = plans.price(Payee::Provider, Some(r.api_id), r.service, &r.day);
            let free_units = (quota - *before).clamp(0, r.units);
            *before += r.units;
            let (fee_price, _) = plans.price(Payee::Platform, None, r.service, &r.day);
            Charge {
                day: r.day.clone(),
                user_organisation_id: r.user_organisation_id,
                provider_organisation_id: r.provider_organisation_id,
                api_id: r.api_id,
                service: r.service,
                exchanges: r.exchanges,
                units: r.units,
                free_units,
                price_tiyn: price,
                charge_tiyn: (r.units - free_units) * price,
                fee_price_tiyn: fee_price,
                fee_tiyn: r.units * fee_price,
            }
        })
        .collect()
}

/// A month's charges so far of one party: per counterparty (bank or API user), per day, and the projection.
#[derive(Debug, Clone, Serialize)]
pub struct RunningTotals {
    pub month: String,
    pub from: String,
    pub to: String,
    pub days_in_month: i64,
    pub days_elapsed: i64,
    pub units: i64,
    pub charge_tiyn: i64,
    pub fee_tiyn: i64,
    /// What the party pays (an API user: charges and fees) or earns (a provider: its charges).
    pub total_tiyn: i64,
    /// The total at this month's pace, over the whole month (rounded to the nearest tiyn).
    pub projected_tiyn: i64,
    pub counterparties: Vec<Counterparty>,
    pub days: Vec<DayTotal>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counterparty {
    pub organisation_id: i64,
    pub name: String,
    pub bin: String,
    pub exchanges: i64,
    pub units: i64,
    pub free_units: i64,
    pub charge_tiyn: i64,
    pub fee_tiyn: i64,
    pub total_tiyn: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayTotal {
    pub day: String,
    pub units: i64,
    pub total_tiyn: i64,
}

/// The first day of `today`'s month.
pub fn month_start(today: Date) -> Date {
    today.replace_day(1).unwrap_or(today)
}

/// `today`'s month's charges so far for `party` (an API user pays charges and fees; a provider earns its charges).
pub fn running(conn: &Connection, party: Party, today: Date) -> rusqlite::Result<RunningTotals> {
    let from = month_start(today);
    let days_in_month = i64::from(today.month().length(today.year()));
    let days_elapsed = i64::from(today.day());
    let plans = Plans::load(conn)?;
    let charges = price(&plans, &units(conn, party, from, today)?);
    let mut by_counterparty: BTreeMap<i64, Counterparty> = BTreeMap::new();
    let mut by_day: BTreeMap<String, DayTotal> = BTreeMap::new();
    let mut d = from;
    while d <= today {
        let day = day_text(d);
        by_day.insert(day.clone(), DayTotal { day, units: 0, total_tiyn: 0 });
        d = d.next_day().unwrap_or(today + time::Duration::days(1));
    }
    let user = matches!(party, Party::User(_));
    for c in &charges {
        let total = if user { c.charge_tiyn + c.fee_tiyn } else { c.charge_tiyn };
        let other = if user { c.provider_organisation_id } else { c.user_organisation_id };
        let entry = by_counterparty.entry(other).or_insert_with(|| Counterparty {
            organisation_id: other,
            name: String::new(),
            bin: String::new(),
            exchanges: 0,
            units: 0,
            free_units: 0,
            charge_tiyn: 0,
            fee_tiyn: 0,
            total_tiyn: 0,
        });
        entry.exchanges += c.exchanges;
        entry.units += c.units;
        entry.free_units += c.free_units;
        entry.charge_tiyn += c.charge_tiyn;
        if user {
            entry.fee_tiyn += c.fee_tiyn;
        }
        entry.total_tiyn += total;
        if let Some(day) = by_day.get_mut(&c.day) {
            day.units += c.units;
            day.total_tiyn += total;
        }
    }
    let mut counterparties: Vec<Counterparty> = by_counterparty.into_values().collect();
    for c in &mut counterparties {
        if let Some((name, bin)) = conn
            .prepare_cached("SELECT name, bin FROM organisations WHERE id = ?1")?
            .query_row([c.organisation_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .optional()?
        {
            c.name = name;
            c.bin = bin;
        }
    }
    counterparties.sort_by(|a, b| b.total_tiyn.cmp(&a.total_tiyn).then(a.name.cmp(&b.name)));
    let units = counterparties.iter().map(|c| c.units).sum();
    let charge_tiyn = counterparties.iter().map(|c| c.charge_tiyn).sum();
    let fee_tiyn = counterparties.iter().map(|c| c.fee_tiyn).sum();
    let total_tiyn: i64 = counterparties.iter().map(|c| c.total_tiyn).sum();
    Ok(RunningTotals {
        month: day_text(from).get(..7).unwrap_or_default().to_string(),
        from: day_text(from),
        to: day_text(today),
        days_in_month,
        days_elapsed,
        units,
        charge_tiyn,
        fee_tiyn,
        total_tiyn,
        projected_tiyn: project(total_tiyn, days_elapsed, days_in_month),
        counterparties,
        days: by_day.into_values().collect(),
    })
}

/// `total` at the same daily pace over `of` days, `elapsed` of which have begun: rounded half up, in integers.
pub fn project(total: i64, elapsed: i64, of: i64) -> i64 {
    if elapsed <= 0 {
        return total;
    }
    let scaled = i128::from(total) * i128::from(of);
    i64::try_from((scaled + i128::from(elapsed) / 2) / i128::from(elapsed)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tariff(id: i64, api: Option<i64>, from: &str, price: i64, free: i64) -> Tariff {
        Tariff {
            id,
            api_id: api,
            service: Service::Accounts,
            effective_from: from.into(),
            price_tiyn: price,
            free_units: free,
            clamped_by_cap: None,
            set_by: "t".into(),
            set_at: "t".into(),
        }
    }

    fn cap(id: i64, payee: Payee, from: &str, max: i64) -> Cap {
        Cap {
            id,
            payee,
            service: Service::Accounts,
            effective_from: from.into(),
            max_tiyn: max,
            set_by: "r".into(),
            set_at: "r".into(),
        }
    }

    fn row(day: &str, units: i64) -> UnitRow {
        UnitRow {
            day: day.into(),
            user_organisation_id: 2,
            provider_organisation_id: 1,
            api_id: 10,
            service: Service::Accounts,
            exchanges: units,
            units,
        }
    }

    fn plans(caps: Vec<Cap>, tariffs: Vec<Tariff>) -> Plans {
        let mut p = Plans { caps: HashMap::new(), tariffs: HashMap::new() };
        for c in caps {
            p.caps.entry((c.payee, c.service)).or_default().push(c);
        }
        for t in tariffs {
            p.tariffs.entry((t.api_id, t.service)).or_default().push(t);
        }
        p
    }

    #[test]
    fn each_day_is_priced_at_its_tariff_under_its_cap_after_the_month_s_free_quota() {
        let p = plans(
            vec![
                cap(1, Payee::Provider, "2026-11-01", 500),
                cap(2, Payee::Provider, "2026-12-20", 300),
                cap(3, Payee::Platform, "2026-11-01", 50),
            ],
            vec![
                tariff(1, Some(10), "2026-12-01", 400, 10),
                // Mid-month change; a later decision for the same day wins.
                tariff(2, Some(10), "2026-12-10", 450, 0),
                tariff(3, Some(10), "2026-12-10", 450, 5),
                tariff(4, None, "2026-12-01", 20, 0),
            ],
        );
        let rows = vec![
            row("2026-11-30", 7),
            row("2026-12-01", 6),
            row("2026-12-09", 6),
            row("2026-12-10", 3),
            row("2026-12-20", 4),
        ];
        let charges = price(&p, &rows);
        let got: Vec<(i64, i64, i64, i64)> =
            charges.iter().map(|c| (c.free_units, c.price_tiyn, c.charge_tiyn, c.fee_tiyn)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 0, 0),       // no tariff yet: free, no fee either
                (6, 400, 0, 120),   // within the quota of 10
                (4, 400, 800, 120), // 4 more free, 2 billed
                (0, 450, 1350, 60), // the new tariff's quota (5) is used up by the month's 12 earlier units
                (0, 300, 1200, 80), // the lowered cap
            ]
        );
        assert_eq!(project(1000, 3, 31), 10333);
        assert_eq!(project(0, 1, 30), 0);
    }
}
