//! The delivery worker: every second it takes the due events from the outbox (a small batch, at most
//! `webhooks.concurrency` in flight), signs each as a JWS and POSTs it to the organisation's webhook URL over HTTPS,
//! presenting the platform's client certificate, and records the outcome in the event's row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::{DueEvent, EVENT_ID_HEADER, JWT_TYPE, Next, NotifyError};
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::egress::{Guard, GuardedClient, Outbound, OutboundError, SendError};
use crate::pki::signing::Signer;
use crate::store::{Db, StoreError};
use crate::web::AppState;
use time::OffsetDateTime;

/// How often the outbox is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How often events that can never be attempted are checked against their deadline.
const SWEEP: Duration = Duration::from_secs(5);
/// How often a broken HTTP client set-up (unreadable certificate files) is retried and logged.
const CLIENT_RETRY: Duration = Duration::from_secs(60);
/// A signed event is accepted for this long after it was signed; each attempt signs afresh.
const JWS_LIFETIME_SECS: i64 = 600;

/// What every delivery needs.
struct Context {
    db: Db,
    clock: Clock,
    config: Arc<Config>,
    signer: Signer,
    client: GuardedClient,
    /// The `iss` of every event: the platform's public base URL.
    issuer: String,
}

/// Starts the worker; it stops when `stop` turns true, after the deliveries in flight have finished (each is bounded
/// by `webhooks.timeout_secs`) and been recorded. A delivery cut short by a crash stays pending and is attempted
/// again after the restart — at least once, never lost.
pub fn spawn_worker(state: AppState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Passes are timed on the platform's clock (tests move it to make retries due).
        let clock = state.clock.clone();
        let mut worker = Worker::new(state);
        let mut next_pass = clock.now();
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
                Some(done) = worker.running.join_next_with_id(), if !worker.running.is_empty() => {
                    let task = match done {
                        Ok((task, ())) => task,
                        Err(error) => {
                            tracing::error!(%error, "webhook delivery task failed");
                            error.id()
                        }
                    };
                    worker.in_flight.remove(&task);
                    continue;
                }
                () = clock.sleep(Duration::try_from(next_pass - clock.now()).unwrap_or_default()) => {}
            }
            next_pass = clock.now() + POLL;
            worker.pass().await;
        }
        while worker.running.join_next().await.is_some() {}
        tracing::debug!("webhook worker stopped");
    })
}

struct Worker {
    state: AppState,
    signer: Signer,
    context: Option<Arc<Context>>,
    client_failed_at: Option<OffsetDateTime>,
    last_sweep: Option<OffsetDateTime>,
    running: JoinSet<()>,
    /// Outbox row of each delivery in flight, so the next pass does not pick it again.
    in_flight: HashMap<tokio::task::Id, i64>,
}

impl Worker {
    fn new(state: AppState) -> Worker {
        let signer = Signer::new(state.config.clone());
        Worker {
            state,
            signer,
            context: None,
            client_failed_at: None,
            last_sweep: None,
            running: JoinSet::new(),
            in_flight: HashMap::new(),
        }
    }

    /// The delivery context, made on first use. A failure (say, an unreadable client certificate) is logged and
    /// retried a minute later rather than stopping the worker: events wait in the outbox meanwhile.
    fn context(&mut self) -> Option<Arc<Context>> {
        if let Some(context) = &self.context {
            return Some(context.clone());
        }
        let now = self.state.clock.now();
        if self.client_failed_at.is_some_and(|at| now - at < CLIENT_RETRY) {
            return None;
        }
        let guard = self.state.egress.webhooks.clone();
        match build_client(&self.state.config, self.state.authority.trust_anchor_pem(), guard) {
            Ok(client) => {
                let context = Arc::new(Context {
                    db: self.state.db.clone(),
                    clock: self.state.clock.clone(),
                    config: self.state.config.clone(),
                    signer: self.signer.clone(),
                    client,
                    issuer: self.state.public_url.to_string(),
                });
                self.context = Some(context.clone());
                Some(context)
            }
            Err(error) => {
                tracing::error!(%error, "webhooks cannot be delivered; retrying in a minute");
                self.client_failed_at = Some(now);
                None
            }
        }
    }

    async fn pass(&mut self) {
        let now = self.state.clock.now();
        if self.last_sweep.is_none_or(|at| now - at >= SWEEP) {
            self.last_sweep = Some(now);
            self.sweep(now).await;
        }
        let free = self.state.config.webhooks.concurrency.saturating_sub(self.running.len());
        if free == 0 {
            return;
        }
        let busy: Vec<i64> = self.in_flight.values().copied().collect();
        let limit = free + busy.len();
        let now_text = clock::rfc3339(now);
        let due = match self.state.db.read(move |c| super::due(c, &now_text, limit).map_err(StoreError::from)).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read the webhook outbox");
                return;
            }
        };
        let due: Vec<DueEvent> = due.into_iter().filter(|e| !busy.contains(&e.id)).take(free).collect();
        if due.is_empty() {
            return;
        }
        let Some(context) = self.context() else { return };
        for event in due {
            let row = event.id;
            let handle = self.running.spawn(deliver(context.clone(), event));
            self.in_flight.insert(handle.id(), row);
        }
    }

    /// Enforces the deadline of events nobody can receive, and updates the pending gauge.
    async fn sweep(&self, now: time::OffsetDateTime) {
        let cutoff = clock::rfc3339(now - time::Duration::hours(self.state.config.webhooks.give_up_after_hours as i64));
        let swept = self
            .state
            .db
            .write(move |tx| -> Result<(usize, super::Counts), StoreError> {
                let given_up = super::give_up_unreachable(tx, &cutoff)?;
                Ok((given_up, super::counts(tx)?))
            })
            .await;
        match swept {
            Ok((given_up, counts)) => {
                if given_up > 0 {
                    tracing::warn!(
                        events = given_up,
                        "webhook events given up: their organisation could not receive them"
                    );
                    metrics::counter!("kopir_webhook_deliveries_total", "outcome" => "failed")
                        .increment(given_up as u64);
                }
                metrics::gauge!("kopir_webhook_pending").set(counts.pending as f64);
                metrics::gauge!("kopir_webhook_failed").set(counts.failed as f64);
            }
            Err(error) => tracing::error!(%error, "webhook outbox sweep failed"),
        }
    }
}

/// The HTTP client of every delivery: https only, no redirects, the configured time-out, the platform's client
/// certificate, trust in the system's roots plus the platform's own CA (for participants whose receiving endpoint
/// uses a certificate the platform issued), and only addresses the egress guard permits
/// (`webhooks.allowed_networks`).
fn build_client(config: &Config, platform_root_pem: &str, guard: Guard) -> Result<GuardedClient, NotifyError> {
    let outbound = |e: OutboundError| match e {
        OutboundError::File { path, error } => NotifyError::File { path, error },
        invalid => NotifyError::Client(invalid.to_string()),
    };
    Outbound::new()
        .platform_identity(config)
        .map_err(outbound)?
        .trust_pem(platform_root_pem)
        .timeout(Duration::from_secs(config.webhooks.timeout_secs))
        .user_agent(concat!("kopir/", env!("CARGO_PKG_VERSION")))
        .build(guard)
        .map_err(outbound)
}

/// One attempt at one event, and its record.
async fn deliver(context: Arc<Context>, event: DueEvent) {
    let outcome = attempt(&context, &event).await;
    let now = context.clock.now();
    let now_text = clock::rfc3339(now);
    let attempts = u32::try_from(event.attempts.saturating_add(1)).unwrap_or(u32::MAX);
    let (label, next) = match &outcome {
        Ok(()) => ("delivered", None),
        Err(_) => {
            let created = clock::parse(&event.created_at).unwrap_or(now);
            match super::after_failure(&context.config.webhooks, created, now, attempts, rand::random::<f64>()) {
                Next::Retry(at) => ("retry", Some(clock::rfc3339(at))),
                Next::GiveUp => ("failed", None),
            }
        }
    };
    let row = event.id;
    let failure = outcome.as_ref().err().cloned().unwrap_or_default();
    let error = failure.detail.clone();
    let recorded = {
        let (now_text, failure, next) = (now_text.clone(), failure.clone(), next.clone());
        let delivered = outcome.is_ok();
        context
            .db
            .write(move |tx| -> Result<usize, StoreError> {
                Ok(if delivered {
                    super::record_delivered(tx, row, &now_text)?
                } else {
                    super::record_failure(tx, row, &now_text, &failure, next.as_deref())?
                })
            })
            .await
    };
    if let Err(e) = recorded {
        // The row stays as it was: the event is attempted again, which at-least-once delivery allows.
        tracing::error!(error = %e, event_id = %event.event_id, "cannot record a webhook attempt");
        return;
    }
    metrics::counter!("kopir_webhook_deliveries_total", "outcome" => label).increment(1);
    match label {
        "delivered" => tracing::info!(event_id = %event.event_id, bin = %event.bin, attempts, "webhook delivered"),
        "retry" => {
            tracing::warn!(event_id = %event.event_id, bin = %event.bin, attempts, %error, next = ?next, "webhook attempt failed")
        }
        _ => tracing::warn!(event_id = %event.event_id, bin = %event.bin, attempts, %error, "webhook given up"),
    }
}

/// Signs and POSTs the event. `Err` holds the short, non-secret reason, coarse for the participant and in detail
/// for the operator: a status code or the kind of failure, never the receiver's answer.
async fn attempt(context: &Context, event: &DueEvent) -> Result<(), Failure> {
    let data: Value =
        serde_json::from_str(&event.payload).map_err(|_| Failure::platform("the stored payload is not valid JSON"))?;
    let now = context.clock.now().unix_timestamp();
    let occurred_at = clock::parse(&event.created_at).map(|t| t.unix_timestamp()).unwrap_or(now);
    let claims = json!({
        "iss": context.issuer,
        "aud": event.bin,
        "iat": now,
        "exp": now + JWS_LIFETIME_SECS,
        "jti": event.event_id,
        "event": event.event_type,
        "occurred_at": occurred_at,
        "data": data,
    });
    let jws = context.signer.sign(&context.db, JWT_TYPE, &claims).await.map_err(|error| {
        tracing::error!(%error, "cannot sign a webhook event");
        Failure::platform("the platform could not sign the event")
    })?;
    let request = context
        .client
        .post(&event.url)
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .header(EVENT_ID_HEADER, &event.event_id)
        .body(jws);
    let response =
        context.client.send(request).await.map_err(|e| describe(&e, context.config.webhooks.timeout_secs))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let shown = format!("HTTP {}", status.as_u16());
        Err(Failure { shown: shown.clone(), detail: shown })
    }
}

/// Why an attempt failed, twice: `shown` to the participant's members, coarse ("could not connect", "timed out",
/// "TLS failed", "HTTP 500") so that the delivery log cannot be used to probe which hosts and ports answer; `detail`
/// for the operator (console, logs): the I/O error kind, rustls' description, the egress guard's refusal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure {
    pub shown: String,
    pub detail: String,
}

impl Failure {
    /// A failure on the platform's side, the same for both readers.
    fn platform(text: &str) -> Failure {
        Failure { shown: text.to_string(), detail: text.to_string() }
    }
}

/// A transport failure in a few words. The URL is left out: it is on the page already.
fn describe(error: &SendError, timeout_secs: u64) -> Failure {
    let failure = |shown: &str, detail: String| Failure { shown: shown.to_string(), detail };
    if let Some(refused) = error.refusal() {
        if !refused.is_refusal() {
            return failure("could not connect", format!("DNS: {refused}"));
        }
        return failure("could not connect", format!("refused by the egress guard: {refused}"));
    }
    let SendError::Http(error) = error else { return failure("could not connect", error.to_string()) };
    if error.is_timeout() {
        return failure("timed out", format!("timed out after {timeout_secs} s"));
    }
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return failure("TLS failed", format!("TLS: {tls}"));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return failure("TLS failed", format!("TLS: {tls}"));
            }
            io_kind.get_or_insert(io.kind());
        }
        source = current.source();
    }
    match (error.is_connect(), io_kind) {
        (true, Some(kind)) => failure("could not connect", format!("connection failed: {kind}")),
        (true, None) => failure("could not connect", "connection failed".into()),
        _ if error.is_builder() => failure("the webhook URL cannot be used", "the webhook URL cannot be used".into()),
        (false, Some(kind)) => failure("the request failed", format!("request failed: {kind}")),
        (false, None) => failure("the request failed", "request failed".into()),
    }
}
