//! The figures the monitoring gauges show, read with a few cheap aggregate queries (each served by an index or a
//! small table): consents by status, customers with live consents — for the whole platform and per bank — and each
//! listed API with its SLA. Read-only: every table here has its owner elsewhere; this module only counts.

use rusqlite::{Connection, params};

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

/// Consents by status (the `consents_expiry` index covers the scan).
pub fn consents_by_status(conn: &Connection) -> rusqlite::Result<Vec<Count>> {
    let mut stmt = conn.prepare_cached("SELECT status, count(*) AS n FROM consents GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok(Count { label: r.get("status")?, count: r.get("n")? }))?;
    rows.collect()
}

/// Customers with at least one live consent: authorised and unexpired at `now`.
pub fn customers_with_live_consents(conn: &Connection, now: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(DISTINCT customer_id) FROM consents WHERE status = 'Authorised' AND expires_at > ?1",
        [now],
        |r| r.get(0),
    )
}

/// Consents naming each bank, by status — a bank the customer withdrew from a consent counts that consent as
/// `Revoked` for that bank.
pub fn consents_by_provider(conn: &Connection) -> rusqlite::Result<Vec<ProviderCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.bin AS bin,
                CASE WHEN p.status = 'revoked' THEN 'Revoked' ELSE c.status END AS status,
                count(*) AS n
         FROM consent_providers p
         JOIN consents c ON c.id = p.consent_id
         JOIN organisations g ON g.id = p.organisation_id
         GROUP BY 1, 2",
    )?;
    let rows =
        stmt.query_map([], |r| Ok(ProviderCount { bin: r.get("bin")?, label: r.get("status")?, count: r.get("n")? }))?;
    rows.collect()
}

/// Customers with a live consent naming each bank (the bank not withdrawn from it).
pub fn customers_by_provider(conn: &Connection, now: &str) -> rusqlite::Result<Vec<ProviderCount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT g.bin AS bin, count(DISTINCT c.customer_id) AS n
         FROM consents c
         JOIN consent_providers p ON p.consent_id = c.id AND p.status = 'active'
         JOIN organisations g ON g.id = p.organisation_id
         WHERE c.status = 'Authorised' AND c.expires_at > ?1
         GROUP BY 1",
    )?;
    let rows = stmt.query_map(params![now], |r| {
        Ok(ProviderCount { bin: r.get("bin")?, label: String::new(), count: r.get("n")? })
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
