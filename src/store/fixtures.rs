//! Rows that unit tests of several domains build on: accredited organisations named by their BIN, an API user's
//! production and sandbox applications, customers. (Tests only.)
#![allow(clippy::unwrap_used)]

use rusqlite::{Connection, params};

/// Accredited organisations with these ids and BINs (the BIN is also the name).
pub fn organisations(conn: &Connection, organisations: &[(i64, &str)]) {
    for (id, bin) in organisations {
        conn.execute(
            "INSERT INTO organisations (id, bin, name, licence_number, contact_email, contact_phone, status,
                                        created_at, updated_at)
             VALUES (?1, ?2, ?2, '1', 'a@b.kz', '+77272500000', 'accredited', 't', 't')",
            params![id, bin],
        )
        .unwrap();
    }
}

/// Application 1 (client id `p`, production) and application 2 (`s`, sandbox) of the API user `organisation_id`.
pub fn api_user_applications(conn: &Connection, organisation_id: i64) {
    conn.execute(
        "INSERT INTO applications (id, organisation_id, client_id, name, kind, created_at, mode)
         VALUES (1, ?1, 'p', 'Production app', 'api_user', 't', 'production'),
                (2, ?1, 's', 'Sandbox app', 'api_user', 't', 'sandbox')",
        params![organisation_id],
    )
    .unwrap();
}

/// Customers 1 to `count`, with distinct IINs.
pub fn customers(conn: &Connection, count: i64) {
    for customer in 1..=count {
        conn.execute(
            "INSERT INTO customers (id, iin, created_at, last_seen_at) VALUES (?1, ?2, 't', 't')",
            params![customer, format!("{:012}", 900_000_000_000_i64 + customer)],
        )
        .unwrap();
    }
}
