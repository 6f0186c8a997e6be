//! Metering of exchanges: one record per bank call (or per refused request), handed to a channel on the request
//! path — never awaited, never blocking — and written by one task in batches (`gateway.meter_batch` records or every
//! `gateway.meter_flush_ms`), together with each consent's last use. A full channel drops records and counts them
//! (`kopir_meter_dropped_total`) rather than slow a customer's request.

use std::time::Duration;

use rusqlite::params;
use tokio::sync::{mpsc, watch};

use crate::store::{Db, StoreError};

/// One exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub at: String,
    pub application_id: i64,
    pub user_organisation_id: i64,
    pub provider_organisation_id: Option<i64>,
    pub api_id: Option<i64>,
    pub consent_id: Option<String>,
    pub endpoint: &'static str,
    pub status: u16,
    pub latency_ms: u64,
    pub bytes: u64,
    pub interaction_id: String,
    /// The ObErrorCode the API user was answered with, when refused or failed.
    pub error_code: Option<crate::standard::error::ObErrorCode>,
    /// The calling application's mode: sandbox exchanges are kept apart from production reporting and billing.
    pub mode: crate::apps::AppMode,
    /// The transaction lines in the bank's answer (0 for other endpoints): counted, never kept — billing charges a
    /// transactions call per page of up to 100 lines.
    pub transaction_lines: u32,
}

/// The request path's end of the channel.
#[derive(Clone)]
pub struct Meter {
    sender: mpsc::Sender<Exchange>,
}

/// How many records may wait for the writer.
const QUEUE: usize = 100_000;

impl Meter {
    pub fn channel() -> (Meter, mpsc::Receiver<Exchange>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (Meter { sender }, receiver)
    }

    pub fn record(&self, exchange: Exchange) {
        if self.sender.try_send(exchange).is_err() {
            metrics::counter!("kopir_meter_dropped_total").increment(1);
        }
    }
}

/// What else a batch updates in its transaction (the usage rollups, the outages): given by the platform that starts
/// the writer (`web::METER_OBSERVERS`), so that the gateway does not import the domains that read its exchanges.
pub type Observer = fn(&rusqlite::Transaction, &[Exchange]) -> rusqlite::Result<()>;

/// Writes one batch: the raw rows, the consents' last use, then each of `observers` (the usage rollups, the
/// outages) — one transaction.
pub fn write(db_tx: &rusqlite::Transaction, batch: &[Exchange], observers: &[Observer]) -> rusqlite::Result<()> {
    let mut insert = db_tx.prepare_cached(
        "INSERT INTO exchanges (at, application_id, user_organisation_id, provider_organisation_id, api_id,
             consent_id, endpoint, status, latency_ms, bytes, interaction_id, environment, error_code, transaction_lines)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut used: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for e in batch {
        insert.execute(params![
            e.at,
            e.application_id,
            e.user_organisation_id,
            e.provider_organisation_id,
            e.api_id,
            e.consent_id,
            e.endpoint,
            e.status,
            e.latency_ms as i64,
            e.bytes as i64,
            e.interaction_id,
            e.mode.as_str(),
            e.error_code.map(|c| c.as_str()),
            e.transaction_lines
        ])?;
        if let Some(consent) = &e.consent_id
            && e.status < 400
        {
            let at = used.entry(consent.as_str()).or_insert(e.at.as_str());
            if e.at.as_str() > *at {
                *at = e.at.as_str();
            }
        }
    }
    let mut touch = db_tx.prepare_cached(
        "UPDATE consents SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
    )?;
    for (consent, at) in used {
        touch.execute(params![consent, at])?;
    }
    for observe in observers {
        observe(db_tx, batch)?;
    }
    Ok(())
}

/// The writer: runs until `stop`, then writes what is left.
pub fn spawn_writer(
    db: Db,
    mut receiver: mpsc::Receiver<Exchange>,
    batch: usize,
    flush: Duration,
    observers: &'static [Observer],
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: Vec<Exchange> = Vec::with_capacity(batch);
        let mut ticker = tokio::time::interval(flush);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                received = receiver.recv() => match received {
                    Some(exchange) => {
                        pending.push(exchange);
                        if pending.len() < batch {
                            continue;
                        }
                    }
                    None => stopping = true,
                },
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    while let Ok(exchange) = receiver.try_recv() {
                        pending.push(exchange);
                    }
                }
            }
            if !pending.is_empty() {
                let rows = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                let count = rows.len();
                if let Err(error) =
                    db.write_bookkeeping(move |tx| write(tx, &rows, observers).map_err(StoreError::from)).await
                {
                    metrics::counter!("kopir_meter_dropped_total").increment(count as u64);
                    tracing::error!(%error, count, "metering batch lost");
                }
            }
            if stopping {
                return;
            }
        }
    })
}
