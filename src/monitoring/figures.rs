//! The figures the monitoring gauges show, each read from a small table kept up to date by triggers or by an index:
//! consents by status and customers with live consents — for the whole platform and per bank — and each listed API
//! with its SLA. Read-only: every table here has its owner elsewhere; this module only counts.
//!
//! The consents' figures never read the registry: consents by status are the all-time sums of `consent_totals` (the
//! flows the dashboard reads, `reports::consents`); per bank, `consent_bank_figures` holds the consents naming each
//! bank by status and the customers with an authorised consent naming it, and `consent_bank_customers` each
//! customer's count of those (organisation 0: the whole platform, either environment). Those tables count
//! *authorised* consents; a live consent is also unexpired. The sweeper marks a consent `Expired` within
//! `oauth.expiry_sweep_secs` of its end (60 s by default, 500 a round), so a consent past its end but not yet swept
//! is taken off here: the authorised consents past their end are found through the `consents_expiry` index (status,
//! expiry) — a handful, those the sweeper has not reached — and a customer all of whose authorised consents (for that
//! bank) are among them is not counted. The figures are therefore exactly the registry's at `now`.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use crate::reports::consents::LIVE_CUSTOMER;

/// A count under one label value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub label: String,
    pub count: i64,
}

/// A count of one bank (by BIN) under one label value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCount {
    pub bin: String,
    pub label: String,
    pub count: i64,
}

/// The consent statuses, so that a status with no consent reads 0 rather than vanishing.
pub const CONSENT_STATUSES: [&str; 5] = ["AwaitingAuthorisation", "Authorised", "Rejected", "Revoked", "Expired"];

/// Consents by status, both environments (every status, zeros included).
pub fn consents_by_status(conn: &Connection) -> rusqlite::Result<Vec<Count>> {
    let mut stmt =
        conn.prepare_cached("SELECT figure, sum(entered - exited) AS n FROM consent_totals GROUP BY figure")?;
    let totals: HashMap<String, i64> =
        stmt.query_map([], |r| Ok((r.get("figure")?, r.get("n")?)))?.collect::<rusqlite::Result<_>>()?;
    Ok(CONSENT_STATUSES
        .iter()
        .map(|status| Count { label: status.to_string(), count: totals.get(*status).copied().unwrap_or(0) })
        .collect())
}

/// Per organisation (0: the platform), the customers counted live by the triggers whose every authorised consent
/// (naming that bank, not withdrawn from it) is past its end at `now`: they are no longer live. Reads only the
/// authorised consents past their end (the `consents_expiry` index), which the sweeper marks `Expired` soon after.
fn expired_unswept(conn: &Connection, now: &str) -> rusqlite::Result<HashMap<i64, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.organisation_id AS organisation_id, count(*) AS n
         FROM (SELECT p.organisation_id, c.customer_id, count(*) AS ended
               FROM consents c JOIN consent_providers p ON p.consent_id = c.id AND p.status = 'active'
               WHERE c.status = 'Authorised' AND c.expires_at <= ?1
               GROUP BY 1, 2
               UNION ALL
               SELECT 0, customer_id, count(*) FROM consents WHERE status = 'Authorised' AND expires_at <= ?1
               GROUP BY 2) s
         JOIN consent_bank_customers l ON l.organisation_id = s.organisation_id AND l.customer_id = s.customer_id
         WHERE l.authorised = s.ended
         GROUP BY 1",
    )?;
    let rows = stmt.query_map([now], |r| Ok((r.get("organisation_id")?, r.get("n")?)))?;
    rows.collect()
}

/// Customers with at least one live consent: authorised and unexpired at `now` (both environments).
pub fn customers_with_live_consents(conn: &Connection, now: &str) -> rusqlite::Result<i64> {
    let live: i64 = conn.query_row(
        "SELECT coalesce(sum(count), 0) FROM consent_bank_figures WHERE organisation_id = 0 AND figure = ?1",
        [LIVE_CUSTOMER],
        |r| r.get(0),
    )?;
    Ok(live - expired_unswept(conn, now)?.get(&0).copied().unwrap_or(0))
}

/// Consents naming each bank, by status — a bank the customer withdrew from a consent counts that consent as
/// `Revoked` for that bank. A status a bank once had and no longer has reads 0.
pub fn consents_by_provider(conn: &Connection) -> rusqlite::Result<Vec<ProviderCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.bin AS bin, f.figure AS status, f.count AS n
         FROM consent_bank_figures f JOIN organisations g ON g.id = f.organisation_id
         WHERE f.figure <> ?1
         ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([LIVE_CUSTOMER], |r| {
        Ok(ProviderCount { bin: r.get("bin")?, label: r.get("status")?, count: r.get("n")? })
    })?;
    rows.collect()
}

/// Customers with a live consent (authorised, unexpired at `now`) naming each bank (the bank not withdrawn from it).
pub fn customers_by_provider(conn: &Connection, now: &str) -> rusqlite::Result<Vec<ProviderCount>> {
    let ended = expired_unswept(conn, now)?;
    let mut stmt = conn.prepare_cached(
        "SELECT f.organisation_id AS id, g.bin AS bin, f.count AS n
         FROM consent_bank_figures f JOIN organisations g ON g.id = f.organisation_id
         WHERE f.figure = ?1
         ORDER BY 2",
    )?;
    let rows = stmt.query_map(params![LIVE_CUSTOMER], |r| {
        let (id, bin, n): (i64, String, i64) = (r.get("id")?, r.get("bin")?, r.get("n")?);
        Ok(ProviderCount { bin, label: String::new(), count: n - ended.get(&id).copied().unwrap_or(0) })
    })?;
    rows.collect()
}

/// An API that can carry traffic (published, suspended or deprecated), with what its gauges show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedApi {
    pub id: i64,
    pub bin: String,
    pub name: String,
    pub version: String,
    pub status: String,
    pub sla_ms: i64,
}

pub fn listed_apis(conn: &Connection) -> rusqlite::Result<Vec<ListedApi>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, g.bin, a.name, a.version, a.status, a.sla_response_ms
         FROM apis a JOIN organisations g ON g.id = a.organisation_id
         WHERE a.status IN ('published', 'suspended', 'deprecated')
         ORDER BY a.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ListedApi {
            id: r.get("id")?,
            bin: r.get("bin")?,
            name: r.get("name")?,
            version: r.get("version")?,
            status: r.get("status")?,
            sla_ms: r.get("sla_response_ms")?,
        })
    })?;
    rows.collect()
}

/// The earliest `notAfter` of the participants' client certificates still in force at `now` (unrevoked,
/// unexpired), or `None` when there are none.
pub fn earliest_participant_certificate_expiry(conn: &Connection, now: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT min(not_after) FROM certificates WHERE kind = 'client' AND revoked_at IS NULL AND not_after > ?1",
        [now],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::migrate::{SCHEMA, migrate};

    /// The instant the gauges are read at; consents end before or after it.
    const NOW: &str = "2026-12-04T12:00:00Z";

    /// The queries the gauges ran before, over the whole registry: the oracle.
    fn from_registry(conn: &Connection) -> (Vec<Count>, i64, Vec<ProviderCount>, Vec<ProviderCount>) {
        let mut stmt = conn.prepare("SELECT status, count(*) FROM consents GROUP BY status ORDER BY 1").unwrap();
        let by_status =
            stmt.query_map([], |r| Ok(Count { label: r.get(0)?, count: r.get(1)? })).unwrap().map(Result::unwrap);
        let customers = conn
            .query_row(
                "SELECT count(DISTINCT customer_id) FROM consents WHERE status = 'Authorised' AND expires_at > ?1",
                [NOW],
                |r| r.get(0),
            )
            .unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT g.bin, CASE WHEN p.status = 'revoked' THEN 'Revoked' ELSE c.status END, count(*)
                 FROM consent_providers p JOIN consents c ON c.id = p.consent_id
                 JOIN organisations g ON g.id = p.organisation_id
                 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .unwrap();
        let by_provider = stmt
            .query_map([], |r| Ok(ProviderCount { bin: r.get(0)?, label: r.get(1)?, count: r.get(2)? }))
            .unwrap()
            .map(Result::unwrap);
        let mut stmt = conn
            .prepare(
                "SELECT g.bin, count(DISTINCT c.customer_id)
                 FROM consents c JOIN consent_providers p ON p.consent_id = c.id AND p.status = 'active'
                 JOIN organisations g ON g.id = p.organisation_id
                 WHERE c.status = 'Authorised' AND c.expires_at > ?1
                 GROUP BY 1 ORDER BY 1",
            )
            .unwrap();
        let customers_by_provider = stmt
            .query_map([NOW], |r| Ok(ProviderCount { bin: r.get(0)?, label: String::new(), count: r.get(1)? }))
            .unwrap()
            .map(Result::unwrap);
        (by_status.collect(), customers, by_provider.collect(), customers_by_provider.collect())
    }

    /// The gauges' figures as read now, zeros left out as the registry's queries leave them out.
    fn from_gauges(conn: &Connection) -> (Vec<Count>, i64, Vec<ProviderCount>, Vec<ProviderCount>) {
        let mut by_status: Vec<Count> =
            consents_by_status(conn).unwrap().into_iter().filter(|c| c.count != 0).collect();
        by_status.sort_by(|a, b| a.label.cmp(&b.label));
        let by_provider = consents_by_provider(conn).unwrap().into_iter().filter(|c| c.count != 0).collect();
        let customers_by_provider =
            customers_by_provider(conn, NOW).unwrap().into_iter().filter(|c| c.count != 0).collect();
        (by_status, customers_with_live_consents(conn, NOW).unwrap(), by_provider, customers_by_provider)
    }

    fn setup(conn: &Connection) {
        use crate::store::fixtures;
        fixtures::organisations(
            conn,
            &[(10, "990140000661"), (11, "990140000662"), (12, "990140000664"), (20, "990140000663")],
        );
        fixtures::api_user_applications(conn, 20);
        fixtures::customers(conn, 12);
    }

    /// 240 consents' lives as SQL statements in the order the platform would run them: created naming two or three
    /// banks, one bank sometimes unticked before the customer allows, authorised (ending before or after [`NOW`]),
    /// one bank withdrawn, revoked, expired, or refused; of two environments and 12 customers (so that customers hold
    /// several consents and banks several of a customer's).
    fn history() -> Vec<(String, Vec<rusqlite::types::Value>)> {
        use rusqlite::types::Value::{Integer, Text};
        let mut seed: u64 = 0x90a9_e5ee;
        let mut next = |n: i64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % n as u64) as i64
        };
        let mut lives: Vec<Vec<(String, Vec<rusqlite::types::Value>)>> = Vec::new();
        for n in 0..240 {
            let id = Text(format!("c{n}"));
            let banks: &[i64] = [&[10, 11][..], &[11, 12], &[10, 11, 12]][next(3) as usize];
            // Ends a day before NOW, an hour before, or after it.
            let expires = ["2026-12-03T12:00:00Z", "2026-12-04T11:00:00Z", "2027-06-01T00:00:00Z"][next(3) as usize];
            let mut life = vec![(
                "INSERT INTO consents (id, application_id, permissions, purpose, expires_at, created_at,
                                       status_updated_at)
                 VALUES (?1, ?2, '[]', 'test', ?3, '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z')"
                    .to_string(),
                vec![id.clone(), Integer(1 + next(2)), Text(expires.into())],
            )];
            for bank in banks {
                life.push((
                    "INSERT INTO consent_providers (consent_id, organisation_id) VALUES (?1, ?2)".into(),
                    vec![id.clone(), Integer(*bank)],
                ));
            }
            let status = |s: &str| {
                (
                    "UPDATE consents SET status = ?2, status_updated_at = '2026-12-01T01:00:00Z' WHERE id = ?1"
                        .to_string(),
                    vec![id.clone(), Text(s.into())],
                )
            };
            let withdraw = |bank: i64| {
                (
                    "UPDATE consent_providers SET status = 'revoked', revoked_at = '2026-12-01T02:00:00Z'
                     WHERE consent_id = ?1 AND organisation_id = ?2"
                        .to_string(),
                    vec![id.clone(), Integer(bank)],
                )
            };
            match next(10) {
                0..=7 => {
                    if next(4) == 0 {
                        life.push((
                            "DELETE FROM consent_providers WHERE consent_id = ?1 AND organisation_id = ?2".into(),
                            vec![id.clone(), Integer(banks[0])],
                        ));
                    }
                    life.push((
                        "UPDATE consents SET customer_id = ?2, authorised_at = '2026-12-01T01:00:00Z' WHERE id = ?1"
                            .into(),
                        vec![id.clone(), Integer(1 + next(12))],
                    ));
                    life.push(status("Authorised"));
                    if next(3) == 0 {
                        life.push(withdraw(banks[banks.len() - 1]));
                    }
                    match next(4) {
                        0 => life.push(status("Revoked")),
                        1 => life.push(status("Expired")),
                        _ => {}
                    }
                }
                8 => life.push(status("Rejected")),
                _ => {}
            }
            lives.push(life);
        }
        // Interleaved: each step advances a random consent's life.
        let mut statements = Vec::new();
        let mut at = vec![0usize; lives.len()];
        while at.iter().zip(&lives).any(|(i, life)| *i < life.len()) {
            let n = next(lives.len() as i64) as usize;
            if let Some(statement) = lives[n].get(at[n]) {
                statements.push(statement.clone());
                at[n] += 1;
            }
        }
        statements
    }

    fn run(conn: &Connection, statement: &(String, Vec<rusqlite::types::Value>)) {
        conn.execute(&statement.0, rusqlite::params_from_iter(statement.1.iter())).unwrap();
    }

    /// The sweeper: authorised consents past their end become `Expired`.
    const SWEEP: &str = "UPDATE consents SET status = 'Expired' WHERE status = 'Authorised' AND expires_at <= ?1";

    #[test]
    fn gauges_from_the_kept_tables_equal_the_registry_s_counts_kept_by_triggers_or_back_filled() {
        let statements = history();
        let mut kept = Connection::open_in_memory().unwrap();
        migrate(&mut kept, SCHEMA).unwrap();
        setup(&kept);
        let mut checked = 0;
        for (i, statement) in statements.iter().enumerate() {
            run(&kept, statement);
            if i % 15 == 0 {
                assert_eq!(from_gauges(&kept), from_registry(&kept), "after statement {i}: {}", statement.0);
                checked += 1;
            }
        }
        let before_sweep = from_registry(&kept);
        assert_eq!(from_gauges(&kept), before_sweep);
        let unswept: i64 = kept
            .query_row("SELECT count(*) FROM consents WHERE status = 'Authorised' AND expires_at <= ?1", [NOW], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(unswept > 10 && before_sweep.1 > 3 && checked > 40, "{unswept} {before_sweep:?} {checked}");

        // Written before the migration, then back-filled by it: the same, before and after the sweep.
        let marker = SCHEMA.find("-- migration 23:").unwrap();
        let mut filled = Connection::open_in_memory().unwrap();
        migrate(&mut filled, &SCHEMA[..marker]).unwrap();
        setup(&filled);
        for statement in &statements {
            run(&filled, statement);
        }
        migrate(&mut filled, SCHEMA).unwrap();
        assert_eq!(from_gauges(&filled), before_sweep);
        for conn in [&kept, &filled] {
            conn.execute(SWEEP, [NOW]).unwrap();
            let swept = from_registry(conn);
            assert_eq!(swept.1, before_sweep.1, "the live customers were already counted without the unswept");
            assert_eq!(from_gauges(conn), swept);
        }
        // The platform's row counts both environments' customers once each.
        let live: i64 = kept
            .query_row("SELECT count(DISTINCT customer_id) FROM consent_live_customers WHERE authorised > 0", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(customers_with_live_consents(&kept, NOW).unwrap(), live);
    }
}
