//! `kopir status`: what an administrator checks first — versions, whether the listener answers, certificate expiry,
//! queues and counts, the audit chain.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Config;
use crate::pki::{CertKind, certs};
use crate::store::{Db, StoreError, migrate};

use super::Failure;

/// Certificates that expire within this many days are reported as warnings.
const EXPIRY_WARNING_DAYS: i64 = 30;

fn days_left(not_after: &str) -> Option<i64> {
    crate::clock::parse(not_after).ok().map(|t| (t - crate::clock::now()).whole_days())
}

async fn listener_answers(config: &Config) -> bool {
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    matches!(tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

pub async fn run(config: &Config, json_output: bool) -> Result<(), Failure> {
    let (db, _) = Db::open(&config.db_path(), crate::bootstrap::store_options(config), false)?;
    let facts = db
        .read(|c| -> Result<Value, StoreError> {
            let count = |sql: &str| -> rusqlite::Result<i64> { c.query_row(sql, [], |r| r.get(0)) };
            let by_status = |table: &str| -> rusqlite::Result<Value> {
                let mut stmt = c.prepare(&format!("SELECT status, count(*) FROM {table} GROUP BY status ORDER BY status"))?;
                let rows: Vec<(String, i64)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
                Ok(Value::Object(rows.into_iter().map(|(k, v)| (k, v.into())).collect()))
            };
            let schema: u32 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let platform_certs: Vec<Value> = certs::list(c)?
                .into_iter()
                .filter(|r| r.kind != CertKind::Client && r.revoked_at.is_none())
                .map(|r| json!({ "kind": r.kind.as_str(), "serial": r.serial, "not_after": r.not_after, "days_left": days_left(&r.not_after) }))
                .collect();
            let audit = match crate::audit::verify(c) {
                Ok(head) => json!({ "intact": true, "rows": head.rows }),
                Err(crate::audit::AuditError::Broken { seq, reason }) => json!({ "intact": false, "first_bad_row": seq, "reason": reason }),
                Err(crate::audit::AuditError::Sqlite(e)) => return Err(e.into()),
            };
            Ok(json!({
                "instance_id": crate::store::setting(c, "instance_id")?,
                "initialised_at": crate::store::setting(c, "initialised_at")?,
                "schema_version": schema,
                "platform_certificates": platform_certs,
                "organisations": by_status("organisations")?,
                "accreditation_queue": count("SELECT count(*) FROM accreditation_applications WHERE status = 'submitted'")?,
                "applications": by_status("applications")?,
                "client_certificates": {
                    "active": count("SELECT count(*) FROM certificates WHERE kind = 'client' AND revoked_at IS NULL")?,
                    "revoked": count("SELECT count(*) FROM certificates WHERE kind = 'client' AND revoked_at IS NOT NULL")?,
                },
                "active_sessions": count("SELECT count(*) FROM sessions WHERE stage = 'active'")?,
                "signing_key": crate::pki::signing::active_kid(c)?,
                "webhooks": crate::notify::counts(c)?,
                "audit_chain": audit,
            }))
        })
        .await?;
    let listening = listener_answers(config).await;
    let mut warnings = Vec::new();
    if !listening {
        warnings.push(format!("nothing answers on {} (is `kopir serve` running?)", config.server.listen));
    }
    for cert in facts["platform_certificates"].as_array().into_iter().flatten() {
        if let Some(days) = cert["days_left"].as_i64()
            && days < EXPIRY_WARNING_DAYS
        {
            warnings.push(format!("the {} certificate expires in {days} days", cert["kind"].as_str().unwrap_or("?")));
        }
    }
    if let Some(failed) = facts["webhooks"]["failed"].as_i64()
        && failed > 0
    {
        warnings
            .push(format!("{failed} webhook deliveries failed for good (listed on the participants' profile pages)"));
    }
    if facts["audit_chain"]["intact"] == false {
        warnings.push("the audit chain is broken: run `kopir audit verify`".into());
    }
    let binary_schema = migrate::latest_version()?;
    let report = json!({
        "kopir_version": env!("CARGO_PKG_VERSION"),
        "binary_schema_version": binary_schema,
        "data_dir": config.data_dir.display().to_string(),
        "mode": format!("{:?}", config.mode).to_lowercase(),
        "listener": { "address": config.server.listen.to_string(), "answers": listening },
        "facts": facts,
        "warnings": warnings,
    });
    if json_output {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let f = &report["facts"];
    println!(
        "kopir {} ({} mode), data in {}",
        env!("CARGO_PKG_VERSION"),
        report["mode"].as_str().unwrap_or(""),
        config.data_dir.display()
    );
    println!("  instance        {}", f["instance_id"].as_str().unwrap_or("-"));
    println!("  schema          database {} / binary {binary_schema}", f["schema_version"]);
    println!("  listener        {} {}", config.server.listen, if listening { "answers" } else { "does not answer" });
    for cert in f["platform_certificates"].as_array().into_iter().flatten() {
        println!(
            "  {:<15} valid to {} ({} days)",
            cert["kind"].as_str().unwrap_or(""),
            cert["not_after"].as_str().unwrap_or(""),
            cert["days_left"]
        );
    }
    println!("  organisations   {}", f["organisations"]);
    println!("  queue           {} accreditation applications waiting", f["accreditation_queue"]);
    println!("  applications    {}", f["applications"]);
    println!("  client certs    {}", f["client_certificates"]);
    println!("  sessions        {} signed in", f["active_sessions"]);
    println!("  signing key     {}", f["signing_key"].as_str().unwrap_or("-"));
    println!("  webhooks        {} pending, {} failed", f["webhooks"]["pending"], f["webhooks"]["failed"]);
    println!("  audit chain     {}", f["audit_chain"]);
    for w in &warnings {
        println!("warning: {w}");
    }
    Ok(())
}
