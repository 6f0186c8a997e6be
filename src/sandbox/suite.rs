//! The conformance suite: does a provider's endpoint implement kopir AIS v1 the way the served standard says?
//!
//! It runs against one base URL, as the platform calls banks: HTTPS with the platform's client certificate and the
//! signed consent header (`x-kopir-consent`), for the standard's sandbox test customers (or the IINs given). The
//! cases are listed in [`super::cases`]; each ends passed, failed or skipped (when an earlier failure makes it
//! pointless, e.g. no account was found for any test customer). Every answer is validated against the standard's
//! JSON Schemas.
//!
//! About thirty calls per run, at most [`CONCURRENCY`] at a time, each within the API's time-out; a run whose
//! first call finds no endpoint stops there. The evidence kept for a case is the request line (account ids and
//! customers never named), and of the answer its status, content type, size, error codes and the JSON pointers and
//! rules of schema violations — never a value, a name, an IBAN, an amount, nor the header itself.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::cases::{self, CASES, Case};
use super::evidence::{FindingOutcome, describe, describe_send, error_shape, excerpt};
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::egress::{Guard, GuardedClient, Outbound};
use crate::pki::signing::Signer;
use crate::standard::{self, CONSENT_HEADER, CONSENT_TYP, ConsentClaims, PAGE_SIZE, SANDBOX_CUSTOMERS};
use crate::store::Db;

/// Calls in flight at once, per run.
pub const CONCURRENCY: usize = 4;
/// Transaction pages read by the pagination case, the first included.
pub const MAX_PAGES: usize = 4;
/// Most of an answer's body read.
const BODY_MAX: usize = 512 * 1024;
/// Lifetime of the suite's signed headers.
const HEADER_SECS: i64 = 120;

const DETAIL: &[&str] = &[
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadTransactionsDetail",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
];
const BASIC: &[&str] =
    &["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits", "ReadTransactionsDebits"];
const CREDITS: &[&str] = &["ReadAccountsBasic", "ReadTransactionsBasic", "ReadTransactionsCredits"];
const ACCOUNTS_ONLY: &[&str] = &["ReadAccountsBasic"];

/// What the suite runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The API's base URL, e.g. `https://bank.example/open-banking/v1/aisp` (a trailing slash is ignored).
    pub base_url: String,
    /// The bank's BIN: the `aud` of the signed header.
    pub bin: String,
    /// The API's SLA response time.
    pub sla_ms: u64,
    /// The time-out of each call.
    pub timeout_ms: u64,
    /// The test customers' IINs; empty: the standard's sandbox customers.
    pub customers: Vec<String>,
    /// Whether the endpoint holds the test customers (a sandbox does; a production endpoint does not, and only the
    /// cases without customer data run against it).
    pub with_customers: bool,
}

/// Who signs the consent header.
#[derive(Clone)]
pub enum HeaderSigner {
    /// The platform's active signing key (the platform's own runs).
    Platform { signer: Signer, db: Db },
    /// A key given on the command line, published in the JWKS the bank trusts under `kid`.
    Key { key: Arc<jsonwebtoken::EncodingKey>, kid: String },
}

impl HeaderSigner {
    async fn sign(&self, claims: &ConsentClaims) -> Result<String, String> {
        match self {
            HeaderSigner::Platform { signer, db } => {
                signer.sign(db, CONSENT_TYP, claims).await.map_err(|e| e.to_string())
            }
            HeaderSigner::Key { key, kid } => jws(key, kid, claims),
        }
    }
}

/// The credentials of a run: the clients with and without the client certificate, the signer and the issuer.
#[derive(Clone)]
pub struct Credentials {
    /// Presents the platform's client certificate.
    pub client: GuardedClient,
    /// The same trust, no client certificate.
    pub anonymous: GuardedClient,
    pub signer: HeaderSigner,
    /// The header's `iss`: the platform's URL.
    pub issuer: String,
}

/// Why the suite's credentials cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Client(#[from] crate::egress::OutboundError),
    #[error("the signing key is not a PEM private key: {0}")]
    SigningKeyPem(String),
    #[error("the signing key is not a P-256 (ES256) key in PKCS#8")]
    SigningKeyKind,
    /// The kept credentials' lock was poisoned (a panic while it was held).
    #[error("the credentials' lock is poisoned")]
    Poisoned,
}

impl Credentials {
    /// The platform's: its client certificate, the platform root and `gateway.provider_ca_file` trusted, its
    /// active signing key; only addresses `guard` permits (`gateway.allowed_networks`), as for bank calls.
    pub fn platform(
        config: &Config,
        db: Db,
        signer: Signer,
        issuer: &str,
        guard: Guard,
    ) -> Result<Credentials, CredentialsError> {
        let trusting = Outbound::new().trust_platform_and_providers(config)?;
        let identified = trusting.clone().platform_identity(config)?;
        Ok(Credentials {
            client: identified.build(guard.clone())?,
            anonymous: trusting.build(guard)?,
            signer: HeaderSigner::Platform { signer, db },
            issuer: issuer.trim_end_matches('/').to_string(),
        })
    }

    /// Credentials given explicitly (PEM texts): a bank testing itself with a client certificate, CA and signing
    /// key it controls. Without `ca_pem` the system's roots are trusted. The URL is the operator's own choice on the
    /// command line, so any address may be reached.
    pub fn explicit(
        cert_pem: &str,
        key_pem: &str,
        ca_pem: Option<&str>,
        signing_key_pem: &str,
        kid: &str,
        issuer: &str,
    ) -> Result<Credentials, CredentialsError> {
        let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(signing_key_pem.as_bytes())
            .map_err(|e| CredentialsError::SigningKeyPem(e.to_string()))?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_der())
            .map_err(|_| CredentialsError::SigningKeyKind)?;
        let key = jsonwebtoken::EncodingKey::from_ec_der(der.secret_der());
        let trusting = Outbound::new().trust_pem(ca_pem.unwrap_or_default());
        let identified = trusting.clone().identity_pem(cert_pem, key_pem);
        Ok(Credentials {
            client: identified.build(Guard::unrestricted())?,
            anonymous: trusting.build(Guard::unrestricted())?,
            signer: HeaderSigner::Key { key: Arc::new(key), kid: kid.to_string() },
            issuer: issuer.trim_end_matches('/').to_string(),
        })
    }
}

/// A compact ES256 JWS of `typ` `kopir-consent+jwt`.
fn jws(key: &jsonwebtoken::EncodingKey, kid: &str, claims: &ConsentClaims) -> Result<String, String> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    header.typ = Some(CONSENT_TYP.to_string());
    jsonwebtoken::encode(&header, claims, key).map_err(|e| format!("signing failed: {e}"))
}

/// The `kid` of a compact JWS's protected header.
fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// A header signed by a fresh key the platform never published, under the platform's real key id: a bank must
/// verify the signature, not only look the key id up.
fn forged(kid: &str, claims: &ConsentClaims) -> Result<String, String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "key generation failed".to_string())?;
    jws(&jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), kid, claims)
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    pub case: &'static Case,
    pub outcome: FindingOutcome,
    /// A short, redacted excerpt of what was seen.
    pub evidence: String,
    /// Time spent on the case's calls.
    pub elapsed_ms: i64,
}

/// A run of the suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub base_url: String,
    pub cases: Vec<CaseResult>,
    /// HTTP calls made.
    pub calls: usize,
    /// Over the calls that were answered.
    pub p95_ms: Option<i64>,
    pub max_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
}

impl SuiteReport {
    pub fn failed(&self) -> usize {
        self.count(FindingOutcome::Failed)
    }

    pub fn count(&self, outcome: FindingOutcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome).count()
    }

    pub fn outcome(&self, id: &str) -> Option<FindingOutcome> {
        self.cases.iter().find(|c| c.case.id == id).map(|c| c.outcome)
    }
}

/// A case's verdict: `Ok(evidence)` passed, `Err(evidence)` failed.
type Verdict = Result<String, String>;

/// What a run has found so far, by case id.
#[derive(Default)]
struct Results {
    found: Vec<(&'static str, FindingOutcome, String, i64)>,
}

impl Results {
    fn set(&mut self, id: &'static str, verdict: Verdict, elapsed_ms: i64) {
        let (outcome, evidence) = match verdict {
            Ok(evidence) => (FindingOutcome::Passed, evidence),
            Err(evidence) => (FindingOutcome::Failed, evidence),
        };
        self.found.push((id, outcome, evidence, elapsed_ms));
    }

    fn skip(&mut self, id: &'static str, why: &str) {
        self.found.push((id, FindingOutcome::Skipped, why.to_string(), 0));
    }

    /// Every case in order; one not reached is skipped with `why`.
    fn finish(self, why: &str) -> Vec<CaseResult> {
        CASES
            .iter()
            .map(|case| match self.found.iter().find(|(id, ..)| *id == case.id) {
                Some((_, outcome, evidence, elapsed_ms)) => {
                    CaseResult { case, outcome: *outcome, evidence: excerpt(evidence, 400), elapsed_ms: *elapsed_ms }
                }
                None => CaseResult { case, outcome: FindingOutcome::Skipped, evidence: why.to_string(), elapsed_ms: 0 },
            })
            .collect()
    }
}

/// An answer, as far as the suite keeps it.
struct Answer {
    /// `GET /accounts/{AccountId}/…`: what was asked, without ids.
    line: String,
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `GET /accounts → 401 (application/json, 312 bytes)`.
    fn summary(&self) -> String {
        format!("{} → {} ({}, {} bytes)", self.line, self.status, self.content_type, self.body.len())
    }

    /// The `ErrorCode`s of an error body.
    fn codes(&self) -> Vec<String> {
        self.json()
            .and_then(|v| v["Errors"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["ErrorCode"].as_str().map(|c| excerpt(c, 60)))
            .take(5)
            .collect()
    }

    /// A refusal with `status`, the standard's error body and `code` among its error codes.
    fn refusal(&self, statuses: &[u16], code: &str) -> Verdict {
        let codes = self.codes();
        let seen = format!(
            "{} → {}{}",
            self.line,
            self.status,
            if codes.is_empty() { String::new() } else { format!(", ErrorCode {}", codes.join(", ")) }
        );
        if !statuses.contains(&self.status) {
            let wanted: Vec<String> = statuses.iter().map(u16::to_string).collect();
            return Err(format!("{}; expected {} {code}", self.summary(), wanted.join(" or ")));
        }
        let body = self.json().ok_or_else(|| format!("{seen}; the body is not JSON"))?;
        if let Err(errors) = standard::violations("ErrorResponse", &body) {
            return Err(format!("{seen}; not the schema ErrorResponse: {}", errors_excerpt(&errors)));
        }
        if !codes.iter().any(|c| c == code) {
            return Err(format!("{seen}; expected ErrorCode {code}"));
        }
        Ok(seen)
    }

    /// A 200 answer in JSON valid against `schema`; the parsed body.
    fn ok(&self, schema: &str) -> Result<Value, String> {
        if self.status != 200 {
            let codes = self.codes();
            let codes = if codes.is_empty() { String::new() } else { format!(", ErrorCode {}", codes.join(", ")) };
            return Err(format!("{}{codes}; expected 200", self.summary()));
        }
        if !self.content_type.starts_with("application/json") {
            return Err(format!("{}; expected application/json", self.summary()));
        }
        let body = self.json().ok_or_else(|| format!("{}; the body is not JSON", self.summary()))?;
        standard::violations(schema, &body)
            .map_err(|errors| format!("{}; not the schema {schema}: {}", self.summary(), errors_excerpt(&errors)))?;
        Ok(body)
    }
}

fn errors_excerpt(errors: &[String]) -> String {
    let shown: Vec<&str> = errors.iter().take(4).map(String::as_str).collect();
    let more = if errors.len() > shown.len() { format!(" and {} more", errors.len() - shown.len()) } else { "".into() };
    format!("{}{more}", shown.join(", "))
}

/// A call that got no answer: why, in a few words.
struct NoAnswer {
    line: String,
    why: String,
}

impl NoAnswer {
    fn evidence(&self) -> String {
        format!("{}: {}", self.line, self.why)
    }
}

/// Which client a call uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum With {
    Certificate,
    NoCertificate,
}

/// A run in progress: the target, the credentials, the bound on calls in flight and what was measured.
struct Run<'a> {
    target: &'a Target,
    base: &'a str,
    credentials: &'a Credentials,
    /// Times the run and its signed headers.
    clock: &'a Clock,
    permits: Semaphore,
    calls: AtomicUsize,
    /// Latencies of the answered calls.
    latencies: Mutex<Vec<i64>>,
    /// Answers that echoed the interaction id, and answers.
    echoed: Mutex<(usize, usize)>,
}

impl Run<'_> {
    /// `GET url` (absolute), shown as `line`; with the consent header if given.
    async fn get(&self, with: With, url: &str, line: String, header: Option<&str>) -> Result<Answer, NoAnswer> {
        let _permit = self.permits.acquire().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let client = match with {
            With::Certificate => &self.credentials.client,
            With::NoCertificate => &self.credentials.anonymous,
        };
        let interaction = crate::random::uuid_v4().to_string();
        let mut request = client
            .get(url)
            .timeout(Duration::from_millis(self.target.timeout_ms))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(crate::standard::X_FAPI_INTERACTION_ID, &interaction);
        if let Some(header) = header {
            request = request.header(CONSENT_HEADER, header);
        }
        let timeout_ms = i64::try_from(self.target.timeout_ms).unwrap_or(i64::MAX);
        let started = Instant::now();
        let mut response = client
            .send(request)
            .await
            .map_err(|e| NoAnswer { line: line.clone(), why: describe_send(&e, timeout_ms) })?;
        let status = response.status().as_u16();
        let header_text = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header_text(reqwest::header::CONTENT_TYPE.as_str())
            .map(|v| excerpt(&v, 60))
            .unwrap_or("no content type".into());
        let echoed = header_text(crate::standard::X_FAPI_INTERACTION_ID.as_str()).is_some_and(|v| v == interaction);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > BODY_MAX {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(NoAnswer {
                        line,
                        why: format!("{status}, then the body: {}", describe(&e, timeout_ms)),
                    });
                }
            }
        }
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies.push(ms);
        }
        if let Ok(mut counts) = self.echoed.lock() {
            counts.1 += 1;
            if echoed {
                counts.0 += 1;
            }
        }
        Ok(Answer { line, status, content_type, body })
    }

    /// `GET {base}{path}` with the client certificate.
    async fn call(&self, path: &str, line: &str, header: Option<&str>) -> Result<Answer, NoAnswer> {
        self.get(With::Certificate, &format!("{}{path}", self.base), format!("GET {line}"), header).await
    }

    fn claims(&self, sub: &str, permissions: &[&str]) -> ConsentClaims {
        let now = self.clock.now().unix_timestamp();
        ConsentClaims {
            iss: self.credentials.issuer.clone(),
            aud: self.target.bin.clone(),
            sub: sub.to_string(),
            consent_id: format!("conformance-{}", crate::random::uuid_v4().simple()),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            transaction_from: None,
            transaction_to: None,
            interaction_id: crate::random::uuid_v4().to_string(),
            iat: now,
            exp: now + HEADER_SECS,
            jti: crate::random::uuid_v4().to_string(),
        }
    }

    async fn header(&self, sub: &str, permissions: &[&str]) -> Result<String, String> {
        self.credentials.signer.sign(&self.claims(sub, permissions)).await
    }
}

/// A future's output and how long it took.
async fn timed<F: std::future::Future>(future: F) -> (F::Output, i64) {
    let started = Instant::now();
    let out = future.await;
    (out, millis(started))
}

fn millis(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// The 95th percentile (nearest rank) and the maximum.
fn p95_max(latencies: &[i64]) -> Option<(i64, i64)> {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let max = *sorted.last()?;
    let rank = (sorted.len() * 95).div_ceil(100).max(1);
    Some((sorted[rank - 1], max))
}

/// Runs the suite against `target`, timed by `clock` (the platform's, or the system's for the command line).
pub async fn run(target: &Target, credentials: &Credentials, clock: &Clock) -> SuiteReport {
    let started_at = clock.now_rfc3339();
    let base = target.base_url.trim_end_matches('/').to_string();
    let run = Run {
        target,
        base: &base,
        credentials,
        clock,
        permits: Semaphore::new(CONCURRENCY),
        calls: AtomicUsize::new(0),
        latencies: Mutex::new(Vec::new()),
        echoed: Mutex::new((0, 0)),
    };
    let mut results = Results::default();
    let why = execute(&run, &mut results).await;
    let latencies = run.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let stats = p95_max(&latencies);
    if results.found.iter().any(|(id, outcome, ..)| *id == cases::TLS_REACHABLE && *outcome == FindingOutcome::Passed) {
        let (echoed, answers) = run.echoed.lock().map(|c| *c).unwrap_or_default();
        let verdict = if echoed == answers {
            Ok(format!("{echoed} of {answers} answers echoed it"))
        } else {
            Err(format!("{} of {answers} answers did not echo it", answers - echoed))
        };
        results.set(cases::INTERACTION_ID, verdict, 0);
        if let Some((p95, max)) = stats {
            let seen = format!("p95 {p95} ms, max {max} ms over {} answers; SLA {} ms", latencies.len(), target.sla_ms);
            let within = u64::try_from(p95).is_ok_and(|p| p <= target.sla_ms);
            results.set(cases::SLA, if within { Ok(seen) } else { Err(seen) }, 0);
        }
    }
    SuiteReport {
        base_url: base.clone(),
        cases: results.finish(&why),
        calls: run.calls.load(Ordering::Relaxed),
        p95_ms: stats.map(|s| s.0),
        max_ms: stats.map(|s| s.1),
        started_at,
        finished_at: clock.now_rfc3339(),
    }
}

/// The customers of a run.
fn customers(target: &Target) -> Vec<String> {
    if target.customers.is_empty() {
        SANDBOX_CUSTOMERS.iter().map(|c| c.iin.to_string()).collect()
    } else {
        target.customers.clone()
    }
}

/// A valid BIN that is not `bin`.
fn other_bin(bin: &str) -> String {
    ["99014000038", "00074000130"]
        .iter()
        .filter_map(|digits| crate::kz::with_control_digit(digits))
        .find(|other| other != bin)
        .unwrap_or_default()
}

/// The cases, phase by phase; returns why the cases not reached were skipped.
async fn execute(run: &Run<'_>, results: &mut Results) -> String {
    // 1. The endpoint answers, and refuses a call without the header.
    let started = Instant::now();
    let probe = run.call("/accounts", "/accounts (no x-kopir-consent)", None).await;
    let elapsed = millis(started);
    let probe = match probe {
        Ok(answer) => answer,
        Err(no) => {
            results.set(cases::TLS_REACHABLE, Err(no.evidence()), elapsed);
            return "not run: the endpoint did not answer".into();
        }
    };
    results.set(cases::TLS_REACHABLE, Ok(format!("{} in {elapsed} ms", probe.summary())), elapsed);
    let refused = if probe.status == 401 {
        probe.refusal(&[401], "UK.OBIE.Header.Missing")
    } else {
        // The body of an answer that is not a refusal may hold account data: only its size is kept.
        Err(format!("{}; expected 401 UK.OBIE.Header.Missing", probe.summary()))
    };
    results.set(cases::AUTH_REFUSED, refused, elapsed);
    let shape = match error_shape(&probe.body) {
        Ok(seen) => match probe.json().map(|body| standard::violations("ErrorResponse", &body)) {
            Some(Err(errors)) => Err(format!("{seen}; not the schema ErrorResponse: {}", errors_excerpt(&errors))),
            _ => Ok(seen),
        },
        Err(why) if probe.status == 401 => Err(why),
        Err(_) => Err(format!("{}: not an error body", probe.line)),
    };
    results.set(cases::ERROR_SHAPE, shape, elapsed);

    // 2. Headers: a valid one per customer (to learn the platform's key id), and the ones a bank must refuse.
    let customers = customers(run.target);
    let Some(first) = customers.first().cloned() else {
        return "not run: no test customer".into();
    };
    let mut detail = Vec::new();
    for customer in &customers {
        match run.header(customer, DETAIL).await {
            Ok(header) => detail.push(header),
            Err(error) => {
                tracing::error!(%error, "the conformance suite cannot sign the consent header");
                return "not run: the consent header could not be signed (the operator has been told in the log)"
                    .into();
            }
        }
    }
    let kid = detail.first().and_then(|h| kid_of(h)).unwrap_or_default();
    let mut expired = run.claims(&first, DETAIL);
    expired.iat -= 900;
    expired.exp = expired.iat + 300;
    let mut audience = run.claims(&first, DETAIL);
    audience.aud = other_bin(&run.target.bin);
    let signed = (
        forged(&kid, &run.claims(&first, DETAIL)),
        run.credentials.signer.sign(&expired).await,
        run.credentials.signer.sign(&audience).await,
    );
    let (Ok(forged), Ok(expired), Ok(audience)) = signed else {
        return "not run: a test header could not be signed".into();
    };

    let refusals = async {
        let started = Instant::now();
        let no_certificate = run
            .get(
                With::NoCertificate,
                &format!("{}/accounts", run.base),
                "GET /accounts (no client certificate)".into(),
                Some(&detail[0]),
            )
            .await;
        let certificate = match no_certificate {
            Err(no) if no.why.contains("time-out") => Err(no.evidence()),
            Err(no) => Ok(format!("refused: {}", no.evidence())),
            Ok(answer) if [401, 403].contains(&answer.status) => {
                Ok(format!("refused: {} → {}", answer.line, answer.status))
            }
            Ok(answer) => Err(format!("{}; expected a refusal", answer.summary())),
        };
        (certificate, millis(started))
    };
    let refused_with = |header: String, line: &'static str| async move {
        let started = Instant::now();
        let verdict = match run.call("/accounts", line, Some(&header)).await {
            Ok(answer) => answer.refusal(&[401], "UK.OBIE.Signature.Invalid"),
            Err(no) => Err(no.evidence()),
        };
        (verdict, millis(started))
    };
    let accounts = async {
        let started = Instant::now();
        let mut answers = Vec::new();
        if !run.target.with_customers {
            return (answers, 0);
        }
        let calls = customers.iter().zip(&detail).enumerate().map(|(i, (_, header))| {
            let line = format!("/accounts (test customer {} of {})", i + 1, customers.len());
            async move { run.call("/accounts", &line, Some(header)).await }
        });
        for answer in futures_util::future::join_all(calls).await {
            answers.push(answer);
        }
        (answers, millis(started))
    };
    let (certificate, forged, expired, audience, (accounts, accounts_ms)) = tokio::join!(
        refusals,
        refused_with(forged, "/accounts (header signed by a key outside the JWKS)"),
        refused_with(expired, "/accounts (expired header)"),
        refused_with(audience, "/accounts (header for another bank)"),
        accounts,
    );
    results.set(cases::CLIENT_CERTIFICATE, certificate.0, certificate.1);
    results.set(cases::AUTH_FORGED, forged.0, forged.1);
    results.set(cases::AUTH_EXPIRED, expired.0, expired.1);
    results.set(cases::AUTH_AUDIENCE, audience.0, audience.1);

    if !run.target.with_customers {
        return "not run against production: the test customers are in the sandbox".into();
    }

    // 3. The customers' accounts.
    let mut owners: Vec<(usize, String, String)> = Vec::new(); // (customer index, account id, currency)
    let mut failures = Vec::new();
    let mut without_kzt = Vec::new();
    for (i, answer) in accounts.iter().enumerate() {
        let body = match answer {
            Ok(answer) => answer.ok("KzReadAccount"),
            Err(no) => Err(no.evidence()),
        };
        match body {
            Ok(body) => {
                let list = body["Data"]["Account"].as_array().cloned().unwrap_or_default();
                for (n, account) in list.iter().enumerate() {
                    if let Err(errors) = standard::violations("KzAccountDetail", account) {
                        failures.push(format!(
                            "test customer {}: /Data/Account/{n} not KzAccountDetail: {}",
                            i + 1,
                            errors_excerpt(&errors)
                        ));
                    }
                    if let Some(id) = account["AccountId"].as_str() {
                        owners.push((i, id.to_string(), account["Currency"].as_str().unwrap_or_default().to_string()));
                    }
                }
                if !list.iter().any(|a| a["Currency"] == "KZT") {
                    without_kzt.push((i + 1).to_string());
                }
            }
            Err(why) => failures.push(format!("test customer {}: {why}", i + 1)),
        }
    }
    let answered = accounts.len() - failures.len();
    if failures.is_empty() {
        results.set(
            cases::ACCOUNTS_SCHEMA,
            Ok(format!("GET /accounts → 200 for {} test customers, {} accounts", accounts.len(), owners.len())),
            accounts_ms,
        );
    } else {
        results.set(cases::ACCOUNTS_SCHEMA, Err(failures.join("; ")), accounts_ms);
    }
    if answered > 0 {
        let verdict = if without_kzt.is_empty() {
            Ok(format!("each of {} test customers has a KZT account", accounts.len()))
        } else {
            Err(format!("no KZT account for test customer {} of {}", without_kzt.join(", "), accounts.len()))
        };
        results.set(cases::SANDBOX_CUSTOMERS, verdict, 0);
    }
    let chosen = owners.iter().find(|(_, _, currency)| currency == "KZT").or(owners.first()).cloned();
    let Some((owner, account_id, _)) = chosen else {
        return "not run: no account found for any test customer".into();
    };
    data_cases(run, results, &customers, owner, &account_id, &detail[owner]).await;
    "not run".into()
}

/// The cases on one account of one customer (`owner`, whose Detail header is `header`).
async fn data_cases(
    run: &Run<'_>,
    results: &mut Results,
    customers: &[String],
    owner: usize,
    account_id: &str,
    header: &str,
) {
    let customer = &customers[owner];
    let path = format!("/accounts/{account_id}");
    let tx = format!("{path}/transactions");
    let signed = tokio::join!(
        run.header(customer, BASIC),
        run.header(customer, CREDITS),
        run.header(customer, ACCOUNTS_ONLY),
        // Another customer asking for this account; or, with a single customer, one the bank cannot know.
        run.header(customers.iter().find(|c| *c != customer).map_or("000101500011", String::as_str), DETAIL),
    );
    let (Ok(basic), Ok(credits), Ok(accounts_only), Ok(stranger)) = signed else {
        return;
    };
    let unknown = format!("/accounts/kopir-conformance-{}", &crate::random::uuid_v4().simple().to_string()[..12]);
    let balances_path = format!("{path}/balances");
    let bad_date_path = format!("{tx}?fromBookingDateTime=not-a-date");
    let bad_page_path = format!("{tx}?page=0");

    let (one, balances, page, unknown, stranger, bad_date, bad_page, mismatch, basic_accounts, basic_tx, credit_tx) = tokio::join!(
        timed(run.call(&path, "/accounts/{AccountId}", Some(header))),
        timed(run.call(&balances_path, "/accounts/{AccountId}/balances", Some(header))),
        timed(run.call(&tx, "/accounts/{AccountId}/transactions", Some(header))),
        timed(run.call(&unknown, "/accounts/{unknown AccountId}", Some(header))),
        timed(run.call(&path, "/accounts/{AccountId} (another customer's header)", Some(&stranger))),
        timed(run.call(
            &bad_date_path,
            "/accounts/{AccountId}/transactions?fromBookingDateTime=not-a-date",
            Some(header)
        )),
        timed(run.call(&bad_page_path, "/accounts/{AccountId}/transactions?page=0", Some(header))),
        timed(run.call(
            &balances_path,
            "/accounts/{AccountId}/balances (consent without ReadBalances)",
            Some(&accounts_only)
        )),
        timed(run.call("/accounts", "/accounts (Basic consent)", Some(&basic))),
        timed(run.call(&tx, "/accounts/{AccountId}/transactions (Basic consent)", Some(&basic))),
        timed(run.call(&tx, "/accounts/{AccountId}/transactions (credits only)", Some(&credits))),
    );

    let account_verdict = one.0.map_err(|no| no.evidence()).and_then(|answer| {
        let body = answer.ok("KzReadAccount")?;
        let list = body["Data"]["Account"].as_array().cloned().unwrap_or_default();
        if list.len() != 1 || list[0]["AccountId"] != account_id {
            return Err(format!(
                "{}; expected exactly the account asked for, got {} accounts",
                answer.summary(),
                list.len()
            ));
        }
        Ok(answer.summary())
    });
    results.set(cases::ACCOUNT_SCHEMA, account_verdict, one.1);

    let balance_verdict = balances.0.map_err(|no| no.evidence()).and_then(|answer| {
        let body = answer.ok("KzReadBalance")?;
        let list = body["Data"]["Balance"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return Err(format!("{}; no balance", answer.summary()));
        }
        if list.iter().any(|b| b["AccountId"] != account_id) {
            return Err(format!("{}; a balance of another account", answer.summary()));
        }
        Ok(format!("{}, {} balances", answer.summary(), list.len()))
    });
    results.set(cases::BALANCES_SCHEMA, balance_verdict, balances.1);

    let page_one = page.0.map_err(|no| no.evidence()).and_then(|answer| {
        let body = answer.ok("KzReadTransaction")?;
        let list = transactions(&body);
        if list.len() > PAGE_SIZE {
            return Err(format!("{}; {} transactions on a page (at most {PAGE_SIZE})", answer.summary(), list.len()));
        }
        for (n, t) in list.iter().enumerate() {
            if t["AccountId"] != account_id {
                return Err(format!("{}; /Data/Transaction/{n} of another account", answer.summary()));
            }
            if let Err(errors) = standard::violations("KzTransactionDetail", t) {
                return Err(format!(
                    "{}; /Data/Transaction/{n} not KzTransactionDetail: {}",
                    answer.summary(),
                    errors_excerpt(&errors)
                ));
            }
        }
        if let Some(n) = out_of_order(&list) {
            return Err(format!("{}; not newest first at /Data/Transaction/{n}", answer.summary()));
        }
        Ok((body, format!("{}, {} transactions", answer.summary(), list.len())))
    });
    let page_one = match page_one {
        Ok((body, evidence)) => {
            results.set(cases::TRANSACTIONS_SCHEMA, Ok(evidence), page.1);
            Some(body)
        }
        Err(evidence) => {
            results.set(cases::TRANSACTIONS_SCHEMA, Err(evidence), page.1);
            None
        }
    };

    let not_found = match (unknown.0, stranger.0) {
        (Ok(a), Ok(b)) => a.refusal(&[404], "UK.OBIE.Resource.NotFound").and_then(|first| {
            b.refusal(&[404], "UK.OBIE.Resource.NotFound").map(|second| format!("{first}; {second}"))
        }),
        (Err(no), _) | (_, Err(no)) => Err(no.evidence()),
    };
    results.set(cases::NOT_FOUND, not_found, unknown.1.max(stranger.1));
    let refusal = |answer: Result<Answer, NoAnswer>, status: u16, code: &str| {
        answer.map_err(|no| no.evidence()).and_then(|a| a.refusal(&[status], code))
    };
    results.set(cases::INVALID_DATE, refusal(bad_date.0, 400, "UK.OBIE.Field.InvalidDate"), bad_date.1);
    results.set(cases::INVALID_PAGE, refusal(bad_page.0, 400, "UK.OBIE.Field.Invalid"), bad_page.1);
    results.set(cases::PERMISSION_MISMATCH, refusal(mismatch.0, 403, "UK.OBIE.Resource.ConsentMismatch"), mismatch.1);

    let basic_verdict = basic_accounts.0.map_err(|no| no.evidence()).and_then(|accounts| {
        let body = accounts.ok("KzReadAccount")?;
        let list = body["Data"]["Account"].as_array().cloned().unwrap_or_default();
        detail_fields(&list, "KzAccountBasic", "KzAccountDetail", &accounts.line, "accounts")?;
        let transactions_answer = basic_tx.0.map_err(|no| no.evidence())?;
        let body = transactions_answer.ok("KzReadTransaction")?;
        let txns = transactions(&body);
        detail_fields(&txns, "KzTransactionBasic", "KzTransactionDetail", &transactions_answer.line, "transactions")?;
        Ok(format!("{} accounts and {} transactions without Detail fields", list.len(), txns.len()))
    });
    results.set(cases::PERMISSION_BASIC, basic_verdict, basic_accounts.1.max(basic_tx.1));

    let had_credits =
        page_one.as_ref().is_some_and(|b| transactions(b).iter().any(|t| t["CreditDebitIndicator"] == "Credit"));
    let credit_verdict = credit_tx.0.map_err(|no| no.evidence()).and_then(|answer| {
        let body = answer.ok("KzReadTransaction")?;
        let txns = transactions(&body);
        let debits = txns.iter().filter(|t| t["CreditDebitIndicator"] != "Credit").count();
        if debits > 0 {
            return Err(format!("{}; {debits} of {} transactions are not credits", answer.summary(), txns.len()));
        }
        if txns.is_empty() && had_credits {
            return Err(format!("{}; no transaction, though the account has credits", answer.summary()));
        }
        Ok(format!("{}, {} credits", answer.summary(), txns.len()))
    });
    results.set(cases::PERMISSION_CREDITS, credit_verdict, credit_tx.1);

    let Some(page_one) = page_one else {
        return;
    };
    let started = Instant::now();
    let (paging, windows) =
        tokio::join!(pagination(run, &tx, header, &page_one), windows(run, customer, &tx, header, &page_one));
    let elapsed = millis(started);
    results.set(cases::PAGINATION, paging, elapsed);
    match windows {
        Some((filter, consent)) => {
            results.set(cases::DATE_FILTER, filter, elapsed);
            results.set(cases::CONSENT_WINDOW, consent, elapsed);
        }
        None => {
            let why = "not run: too few transactions on the first page to choose a window";
            results.skip(cases::DATE_FILTER, why);
            results.skip(cases::CONSENT_WINDOW, why);
        }
    }
}

fn transactions(body: &Value) -> Vec<Value> {
    body["Data"]["Transaction"].as_array().cloned().unwrap_or_default()
}

/// The first position where a transaction is booked after the one before it (newest first is the rule).
fn out_of_order(list: &[Value]) -> Option<usize> {
    let times: Vec<&str> = list.iter().map(|t| t["BookingDateTime"].as_str().unwrap_or_default()).collect();
    // RFC 3339 in UTC with `Z` and the same precision sorts as text; the schema has checked the format.
    (1..times.len()).find(|&i| booked(times[i]) > booked(times[i - 1]))
}

/// Unix seconds of a `BookingDateTime` (0 if unreadable: the schema reports that).
fn booked(text: &str) -> i64 {
    clock::parse(text).map(|t| t.unix_timestamp()).unwrap_or(0)
}

/// `Err` naming the Detail-only fields (the properties of `detail` that `basic` lacks) present in `items`.
fn detail_fields(items: &[Value], basic: &str, detail: &str, line: &str, what: &str) -> Result<(), String> {
    let allowed = standard::properties(basic);
    let detail_only: Vec<&str> = standard::properties(detail).into_iter().filter(|p| !allowed.contains(p)).collect();
    let mut seen: Vec<&str> = Vec::new();
    let mut leaking = 0;
    for item in items {
        let present: Vec<&str> = detail_only.iter().copied().filter(|f| item.get(*f).is_some()).collect();
        if !present.is_empty() {
            leaking += 1;
        }
        for field in present {
            if !seen.contains(&field) {
                seen.push(field);
            }
        }
    }
    if leaking > 0 {
        return Err(format!("{line}: Detail fields {} in {leaking} of {} {what}", seen.join(", "), items.len()));
    }
    for (n, item) in items.iter().enumerate() {
        if let Err(errors) = standard::violations(basic, item) {
            return Err(format!("{line}: item {n} not {basic}: {}", errors_excerpt(&errors)));
        }
    }
    Ok(())
}

/// Follows `Links.Next` from the first page for at most [`MAX_PAGES`] pages.
async fn pagination(run: &Run<'_>, tx_path: &str, header: &str, page_one: &Value) -> Verdict {
    let url = format!("{}{tx_path}", run.base);
    let self_one = page_one["Links"]["Self"].as_str().unwrap_or_default();
    if !self_one.starts_with(&url) {
        return Err(format!("page 1: Links.Self is not the transactions of this account at {}", run.base));
    }
    let total = page_one["Meta"]["TotalPages"].as_u64().unwrap_or(1);
    let mut seen: HashSet<String> = HashSet::new();
    let mut last_time = i64::MAX;
    let mut body = page_one.clone();
    let mut pages = 1;
    let mut count = 0;
    loop {
        let list = transactions(&body);
        let ids: Vec<String> = list.iter().filter_map(|t| t["TransactionId"].as_str().map(str::to_string)).collect();
        let repeated = ids.iter().filter(|id| seen.contains(*id)).count();
        if repeated > 0 {
            return Err(format!("page {pages} repeats {repeated} of {} transactions of earlier pages", ids.len()));
        }
        if let Some(first) = list.first().and_then(|t| t["BookingDateTime"].as_str()).map(booked)
            && first > last_time
        {
            return Err(format!("page {pages} is not older than page {}: not newest first", pages - 1));
        }
        last_time = list.last().and_then(|t| t["BookingDateTime"].as_str()).map(booked).unwrap_or(last_time);
        count += ids.len();
        seen.extend(ids);
        let Some(next) = body["Links"]["Next"].as_str().map(str::to_string) else {
            if pages == 1 && total > 1 {
                return Err(format!("page 1 of {total} has no Links.Next"));
            }
            if u64::try_from(pages).is_ok_and(|p| p != total) {
                return Err(format!("the last page reached is page {pages}, Meta.TotalPages says {total}"));
            }
            if body["Links"]["Last"].is_null() || body["Links"]["First"].is_null() {
                return Err(format!("page {pages}: Links.First and Links.Last are required"));
            }
            return Ok(format!("{pages} of {total} pages followed to the end, {count} distinct transactions"));
        };
        if pages >= MAX_PAGES {
            return Ok(format!("{pages} of {total} pages followed, {count} distinct transactions"));
        }
        if !next.starts_with(&url) {
            return Err(format!("page {pages}: Links.Next is not at {url}"));
        }
        let line = format!("GET /accounts/{{AccountId}}/transactions (Links.Next of page {pages})");
        let answer = run.get(With::Certificate, &next, line, Some(header)).await.map_err(|no| no.evidence())?;
        pages += 1;
        body = answer.ok("KzReadTransaction")?;
        if body["Links"]["Self"].as_str() != Some(next.as_str()) {
            return Err(format!("page {pages}: Links.Self is not the Links.Next that led to it"));
        }
    }
}

/// The date filter and the consent window, on a window inside the first page; `None` if the page is too short.
async fn windows(
    run: &Run<'_>,
    customer: &str,
    tx_path: &str,
    header: &str,
    page_one: &Value,
) -> Option<(Verdict, Verdict)> {
    let list = transactions(page_one);
    if list.len() < 3 {
        return None;
    }
    let time = |i: usize| list[i]["BookingDateTime"].as_str().unwrap_or_default().to_string();
    // Newest first: the window runs from an older transaction to a newer one.
    let (to, from) = (time(list.len() / 4), time(list.len() * 3 / 4));
    let (lo, hi) = (booked(&from), booked(&to));
    let expected: Vec<String> = list
        .iter()
        .filter(|t| (lo..=hi).contains(&booked(t["BookingDateTime"].as_str().unwrap_or_default())))
        .filter_map(|t| t["TransactionId"].as_str().map(str::to_string))
        .collect();
    let check = |answer: Result<Answer, NoAnswer>| -> Verdict {
        let answer = answer.map_err(|no| no.evidence())?;
        let body = answer.ok("KzReadTransaction")?;
        let txns = transactions(&body);
        let outside = txns
            .iter()
            .filter(|t| !(lo..=hi).contains(&booked(t["BookingDateTime"].as_str().unwrap_or_default())))
            .count();
        if outside > 0 {
            return Err(format!(
                "{}; {outside} of {} transactions booked outside the window",
                answer.summary(),
                txns.len()
            ));
        }
        let got: HashSet<&str> = txns.iter().filter_map(|t| t["TransactionId"].as_str()).collect();
        let missing = expected.iter().filter(|id| !got.contains(id.as_str())).count();
        if missing > 0 {
            return Err(format!("{}; {missing} transactions booked within the window left out", answer.summary()));
        }
        Ok(format!("{}; {} transactions, all within the window", answer.summary(), txns.len()))
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("fromBookingDateTime", &from)
        .append_pair("toBookingDateTime", &to)
        .finish();
    let mut claims = run.claims(customer, DETAIL);
    claims.transaction_from = Some(from);
    claims.transaction_to = Some(to);
    let windowed = run.credentials.signer.sign(&claims).await;
    let filtered_path = format!("{tx_path}?{query}");
    let filtered = run.call(
        &filtered_path,
        "/accounts/{AccountId}/transactions?fromBookingDateTime=…&toBookingDateTime=…",
        Some(header),
    );
    let (filtered, consent) = match &windowed {
        Ok(windowed) => {
            let (a, b) = tokio::join!(
                filtered,
                run.call(
                    tx_path,
                    "/accounts/{AccountId}/transactions (consent with a transaction window)",
                    Some(windowed)
                )
            );
            (check(a), check(b))
        }
        Err(why) => (check(filtered.await), Err(format!("the header could not be signed: {why}"))),
    };
    Some((filtered, consent))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        assert_eq!(p95_max(&[]), None);
        assert_eq!(p95_max(&[7]), Some((7, 7)));
        let twenty: Vec<i64> = (1..=20).collect();
        assert_eq!(p95_max(&twenty), Some((19, 20)));
        let thirty: Vec<i64> = (1..=30).rev().collect();
        assert_eq!(p95_max(&thirty), Some((29, 30)));
    }

    #[test]
    fn detail_fields_are_named_and_basic_items_pass() {
        let basic = json!({
            "AccountId": "a", "TransactionId": "t", "CreditDebitIndicator": "Credit", "Status": "Booked",
            "BookingDateTime": "2026-01-01T00:00:00Z", "Amount": { "MinorUnits": 1, "Currency": "KZT" }
        });
        assert_eq!(
            detail_fields(std::slice::from_ref(&basic), "KzTransactionBasic", "KzTransactionDetail", "GET x", "t"),
            Ok(())
        );
        let mut leaky = basic;
        leaky["TransactionInformation"] = json!("Coffee at Ainur's, Almaty");
        let why = detail_fields(&[leaky], "KzTransactionBasic", "KzTransactionDetail", "GET x", "t").unwrap_err();
        assert_eq!(why, "GET x: Detail fields TransactionInformation in 1 of 1 t");
    }

    #[test]
    fn order_and_kids_are_read() {
        let t = |at: &str| json!({ "BookingDateTime": at });
        let list = [t("2026-01-03T00:00:00Z"), t("2026-01-02T00:00:00Z"), t("2026-01-04T00:00:00Z")];
        assert_eq!(out_of_order(&list), Some(2));
        assert_eq!(out_of_order(&list[..2]), None);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let claims = ConsentClaims {
            iss: "https://p".into(),
            aud: "000740001307".into(),
            sub: "900514401235".into(),
            consent_id: "c".into(),
            permissions: vec!["ReadAccountsBasic".into()],
            transaction_from: None,
            transaction_to: None,
            interaction_id: "i".into(),
            iat: 1,
            exp: 2,
            jti: "j".into(),
        };
        let token = jws(&key, "kid-1", &claims).unwrap();
        assert_eq!(kid_of(&token).as_deref(), Some("kid-1"));
        assert_eq!(kid_of(&forged("kid-1", &claims).unwrap()).as_deref(), Some("kid-1"));
        assert_ne!(other_bin("000740001307"), "000740001307");
        assert!(crate::kz::Bin::parse(&other_bin("000740001307")).is_ok());
    }
}
