//! The appliance configuration: embedded defaults → `appliance.toml` → `KOPIR_*` environment → command-line flags,
//! validated once into one immutable [`Config`] that is passed around (no globals).
//!
//! The documented example at the top of the repository (`appliance.toml`) is embedded in the binary and is the
//! source of the defaults, so the file and the binary cannot drift apart: a test parses it and compares.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// The documented example configuration, shipped as `/etc/kopir/appliance.toml` and printed by
/// `kopir config example`.
pub const EXAMPLE: &str = include_str!("../appliance.toml");

/// Prefix of the environment variables that override single keys: `KOPIR_SERVER_LISTEN` sets `server.listen`.
pub const ENV_PREFIX: &str = "KOPIR_";

/// Environment variables that are flags of the CLI, not configuration keys.
const CLI_ENV: &[&str] = &["KOPIR_CONFIG", "KOPIR_DATA_DIR", "KOPIR_LISTEN", "KOPIR_LOG"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `demo` allows simulated adapters and prints demo credentials; `production` refuses them.
    pub mode: Mode,
    /// Where the database, keys, certificates and logs live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub pki: PkiConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub trust: TrustConfig,
    pub oauth: OauthConfig,
    pub gateway: GatewayConfig,
    pub webhooks: WebhooksConfig,
    pub sandbox: SandboxConfig,
    pub limits: LimitsConfig,
    /// The operator's time zone (an IANA name): the days and months of reports, and the dates pages show.
    pub time_zone: OperatorTimeZone,
    pub reports: ReportsConfig,
    pub requests: RequestsConfig,
    pub billing: BillingConfig,
}

/// The operator's time zone, checked against the time zone database when the configuration is read (the system's
/// `/usr/share/zoneinfo`, or the copy built into the binary where the system has none).
#[derive(Clone)]
pub struct OperatorTimeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl OperatorTimeZone {
    pub fn new(name: &str) -> Result<OperatorTimeZone, String> {
        let zone = jiff::tz::TimeZone::get(name)
            .map_err(|_| format!("`{name}` is not a time zone name of the IANA database, such as \"Asia/Almaty\""))?;
        Ok(OperatorTimeZone { name: name.to_string(), zone })
    }

    /// The IANA name, as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }
}

impl PartialEq for OperatorTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl std::fmt::Debug for OperatorTimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for OperatorTimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        OperatorTimeZone::new(&name).map_err(serde::de::Error::custom)
    }
}

/// Usage reports (`crate::reports`): how long raw exchanges and the rollups are kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// Days raw exchanges are kept (reports read the rollups; the raw rows serve billing disputes and audits).
    pub raw_retention_days: u32,
    /// Days hourly rollups are kept.
    pub hourly_retention_days: u32,
    /// Days daily rollups are kept; 0 keeps them for ever.
    pub daily_retention_days: u32,
}

/// Request management (`crate::requests`): the operator's working calendar the SLA clocks run on, warnings, reopening
/// and attachments.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestsConfig {
    /// When the operator's working day starts and ends (`HH:MM`, in `time_zone`), Monday to Friday.
    pub work_starts: String,
    pub work_ends: String,
    /// Days off besides weekends and Kazakhstan's public holidays (`YYYY-MM-DD`: days moved by government decree).
    pub extra_days_off: Vec<String>,
    /// Weekend days made working days by the same decrees (`YYYY-MM-DD`).
    pub extra_working_days: Vec<String>,
    /// How much of a resolution target (per cent) may pass before the executor is warned.
    pub warning_percent: u32,
    /// Days a closed request may be reopened by its requester.
    pub reopen_days: u32,
    /// The largest attachment accepted, in bytes, and how many one request may carry.
    pub max_attachment_bytes: usize,
    pub max_attachments: usize,
}

/// Billing (`crate::billing`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Days an API user's statement may stay marked overdue (counted from the marking) before the platform warns the
    /// operator and the participant; a warning only, never a suspension. 0 turns the warning off.
    pub suspend_after_days: u32,
}

/// Request rate limits (`crate::web::rate_limit`), checked before a request does any other work, and the bound on
/// password hashing. Rates are sustained rates; a burst is what may come at once on top of an idle period.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Set to false to turn the rate limits off (the bound on concurrent password hashes stays).
    pub enabled: bool,
    /// Open Banking API requests (consents, accounts) per second per client certificate, and the burst.
    pub api_per_second: u32,
    pub api_burst: u32,
    /// Requests to the clients' OAuth endpoints (PAR, token, revocation, introspection) per second per client
    /// certificate, and the burst.
    pub oauth_per_second: u32,
    pub oauth_burst: u32,
    /// Requests per second per source address (IPv6: per /64) for everything else — pages, assets, and API calls
    /// made without a valid client certificate — and the burst.
    pub pages_per_second: u32,
    pub pages_burst: u32,
    /// Sign-in, second-factor, password-change and registration form posts per minute per source address, and the
    /// burst (these run argon2id or guess a code).
    pub sign_in_per_minute: u32,
    pub sign_in_burst: u32,
    /// Password hashes (argon2id, 19 MiB and tens of milliseconds of one CPU each) computed at once; others wait.
    pub max_concurrent_password_hashes: usize,
}

/// The technological sandbox's scheduled checks of published APIs (`crate::sandbox::schedule`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Seconds between two runs of the checks of one API (both environments); 45 gives the pilot's 1,920 a day.
    pub check_interval_secs: u64,
    /// Each run moved at random by up to half this either way, so runs spread out; the mean stays the interval.
    pub check_jitter_secs: u64,
    /// Checks (one environment of one API) in flight at once, so checks never crowd out live traffic.
    pub max_concurrent_checks: usize,
    /// Consecutive failing runs after which an API is taken off the marketplace.
    pub delist_after_failures: u32,
    /// Consecutive passing runs after which a delisted API is put back.
    pub relist_after_passes: u32,
    /// Days the scheduled runs (summaries and kept findings) are kept; hourly rollups are kept a year.
    pub keep_runs_days: u32,
}

/// Signed event notifications to participants (`crate::notify`), kept in an outbox until delivered.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Delay before the first retry, in seconds; each further retry doubles it.
    pub retry_initial_secs: u64,
    /// The longest delay between two attempts, in seconds.
    pub retry_max_secs: u64,
    /// An event not delivered this many hours after it was made is marked failed and no longer attempted.
    pub give_up_after_hours: u64,
    /// Seconds one delivery (connection, TLS, request and answer) may take.
    pub timeout_secs: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Networks (CIDR) that webhook deliveries may reach although they are not public. In production every other
    /// loopback, private, link-local… address is refused after DNS resolution (`crate::egress`).
    pub allowed_networks: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Extra CA certificates (PEM) to trust for providers' API endpoints, besides the system's; empty for none.
    pub provider_ca_file: PathBuf,
    /// Lifetime of the signed consent header sent to a bank with each call, in seconds (10 to 300).
    pub signed_header_secs: u64,
    /// Keep-alive connections kept open per bank (1 to 1024).
    pub max_idle_per_bank: usize,
    /// Metering records written per batch, and the longest they wait before being written (milliseconds).
    pub meter_batch: usize,
    pub meter_flush_ms: u64,
    /// Networks (CIDR) that bank calls and the sandbox's checks may reach although they are not public (banks on a
    /// private network). In production every other loopback, private, link-local… address is refused after DNS
    /// resolution (`crate::egress`).
    pub allowed_networks: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OauthConfig {
    /// Lifetime of access tokens, in seconds (60 to 3600; FAPI wants them short).
    pub access_token_secs: u64,
    /// Lifetime of a pushed authorization request's `request_uri`, in seconds (10 to 599; RFC 9126 / FAPI 2.0).
    pub request_uri_secs: u64,
    /// Lifetime of an authorization code, in seconds (1 to 60; FAPI 2.0).
    pub code_secs: u64,
    /// How long a customer has to pass identification and decide, in minutes (1 to 60).
    pub journey_minutes: u64,
    /// How long `/my` remembers a customer who just answered a consent screen, in minutes (0 to 60; 0: not at all,
    /// `/my` asks them to identify again).
    pub remember_customer_minutes: u64,
    /// The longest a consent may last, in days; a consent without ExpirationDateTime gets this (1 to 3650).
    pub consent_max_days: u64,
    /// How often expired consents are swept, in seconds (expiry is also enforced at every use).
    pub expiry_sweep_secs: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// How one-time codes reach customers' phones.
    pub sms_adapter: SmsAdapter,
    /// For the `command` adapter: the program (JSON request on stdin, JSON answer on stdout).
    pub sms_command: String,
    /// For the `http` adapter: the vendor's https endpoint.
    pub sms_url: String,
    /// How biometric verification (liveness + photo match) is done.
    pub biometric_adapter: BiometricAdapter,
    /// For the `command` adapter: the program (JSON request on stdin, JSON answer on stdout).
    pub biometric_command: String,
    /// For the `http` adapter: the vendor's https endpoint.
    pub biometric_url: String,
    /// For `http` adapters: a file holding the HMAC key (at least 32 bytes) that signs every request.
    pub webhook_secret_file: PathBuf,
    /// For `http` adapters: extra CA certificates (PEM) to trust for the vendors, besides the system's.
    pub vendor_ca_file: PathBuf,
    /// Seconds an adapter may take before the customer's step fails.
    pub adapter_timeout_secs: u64,
    /// How the platform learns that the phone a customer gave is registered to their IIN.
    pub phone_adapter: PhoneAdapter,
    /// For the `command` adapter: the program (JSON request on stdin, JSON answer on stdout).
    pub phone_command: String,
    /// For the `http` adapter: the registry's https endpoint.
    pub phone_url: String,
    /// Face checks per IIN in any hour / any day, across all journeys.
    pub face_checks_per_hour: u32,
    pub face_checks_per_day: u32,
    /// SMS codes sent per IIN and per phone in any hour / any day, across all journeys.
    pub sms_per_hour: u32,
    pub sms_per_day: u32,
    /// Face checks and SMS codes (each counted apart) from one source address in any hour / any day: higher than
    /// the per-person limits, since many customers may share one carrier's address.
    pub per_source_per_hour: u32,
    pub per_source_per_day: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PhoneAdapter {
    /// Demo only: every number belongs to whoever gives it.
    Simulated,
    Command,
    Http,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BiometricAdapter {
    /// Demo only: the customer picks the outcome on the page.
    Simulated,
    Command,
    Http,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmsAdapter {
    /// Demo only: codes are kept on the demo outbox page.
    Outbox,
    Command,
    Http,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Demo,
    Production,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the public HTTPS listener.
    pub listen: SocketAddr,
    /// The base URL participants and customers use to reach the platform (advertised in metadata and pages).
    pub public_url: String,
    /// DNS names the server certificate is issued for.
    pub hostnames: Vec<String>,
    /// IP addresses the server certificate is issued for.
    pub ip_addresses: Vec<IpAddr>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A request that takes longer than this is answered with 503.
    pub request_timeout_secs: u64,
    /// Connections are closed (gracefully) after this age, so a revoked certificate cannot ride an old connection.
    pub max_connection_age_secs: u64,
    /// How long SIGTERM waits for in-flight requests before closing connections.
    pub shutdown_grace_secs: u64,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Time allowed for a request's line and headers to arrive (HTTP/1.1; hyper also holds a keep-alive connection
    /// waiting for its next request to it). A client trickling headers is cut off after this.
    pub header_read_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 and HTTP/2).
    pub idle_timeout_secs: u64,
    /// When a connection is retired (maximum age, idle, shutdown), the longest its in-flight requests may take
    /// before it is closed anyway.
    pub graceful_close_secs: u64,
    /// Open connections allowed at once; further ones are closed at accept (and counted in the metrics).
    pub max_connections: usize,
    /// Open connections allowed at once from one source address (IPv6: one /64); further ones are closed at accept.
    pub max_connections_per_address: usize,
    /// Concurrent requests (streams) on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Largest request head accepted, in bytes: the HTTP/2 header list, and HTTP/1.1's request line with headers
    /// (8192 to 1048576).
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Loopback address of the plain-HTTP admin listener (`/metrics`). Must be a loopback address.
    pub listen: SocketAddr,
    /// Set to false to run without the admin listener.
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PkiConfig {
    /// Organisation name written into every certificate the CA issues.
    pub organization: String,
    /// Two-letter country code of the CA's certificates.
    pub country: String,
    pub root_validity_days: u32,
    pub issuing_validity_days: u32,
    pub server_validity_days: u32,
    pub client_validity_days: u32,
    /// How long a published CRL stays valid (its nextUpdate).
    pub crl_validity_hours: u32,
    /// After a rotation, how long an application's previous certificate stays valid beside the new one.
    pub rotation_grace_hours: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Number of read-only SQLite connections (the writer is always one).
    pub readers: usize,
    /// How long a connection waits for a lock before giving up, in milliseconds.
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Directory of the daily rolling log files; empty means `<data_dir>/logs`.
    pub dir: PathBuf,
    /// Filter in `tracing` syntax, e.g. `info` or `info,kopir=debug`.
    pub level: String,
    /// How many daily files are kept.
    pub max_files: usize,
    /// Also write log lines to standard error.
    pub stderr: bool,
}

/// A configuration problem. The message names the key and where its value came from; the CLI exits with code 2.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{source_name}: cannot read: {error}")]
    Read { source_name: String, error: std::io::Error },
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax { source_name: String, message: String },
    #[error("{source_name}: key `{key}`: {message}")]
    Key { source_name: String, key: String, message: String },
}

impl Config {
    /// The embedded defaults (the documented example file).
    pub fn defaults() -> Result<Config, ConfigError> {
        Loader::new().finish()
    }

    /// Loads defaults, then the file (when given), then `KOPIR_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut loader = Loader::new();
        if let Some(path) = file {
            loader.file(path)?;
        }
        loader.env(env)?;
        loader.finish()
    }

    /// What production mode refuses to start with: adapters that only simulate a vendor. Each names its key.
    pub fn production_problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.mode == Mode::Production && self.trust.sms_adapter == SmsAdapter::Outbox {
            problems.push(ConfigError::Key {
                source_name: "the configuration".into(),
                key: "trust.sms_adapter".into(),
                message: "\"outbox\" only simulates SMS and is refused in production mode; use \"command\"".into(),
            });
        }
        if self.mode == Mode::Production && self.trust.biometric_adapter == BiometricAdapter::Simulated {
            problems.push(ConfigError::Key {
                source_name: "the configuration".into(),
                key: "trust.biometric_adapter".into(),
                message: "\"simulated\" is refused in production mode; use \"command\"".into(),
            });
        }
        if self.mode == Mode::Production && self.trust.phone_adapter == PhoneAdapter::Simulated {
            problems.push(ConfigError::Key {
                source_name: "the configuration".into(),
                key: "trust.phone_adapter".into(),
                message:
                    "\"simulated\" trusts any number and is refused in production mode; use \"command\" or \"http\""
                        .into(),
            });
        }
        problems
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("kopir.db")
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }

    pub fn log_dir(&self) -> PathBuf {
        if self.log.dir.as_os_str().is_empty() { self.data_dir.join("logs") } else { self.log.dir.clone() }
    }

    /// The checks serde cannot express. Each names its key.
    fn validate(&self, origin: &Origins) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| ConfigError::Key {
            source_name: origin.of(key),
            key: key.to_string(),
            message,
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(fail("data_dir", "must not be empty".into()));
        }
        if self.server.hostnames.is_empty() {
            return Err(fail("server.hostnames", "must name at least one host name for the server certificate".into()));
        }
        for name in &self.server.hostnames {
            if !is_dns_name(name) {
                return Err(fail("server.hostnames", format!("`{name}` is not a valid DNS name")));
            }
        }
        if !(self.server.public_url.starts_with("https://") && self.server.public_url.len() > 8) {
            return Err(fail("server.public_url", "must be an https:// URL".into()));
        }
        let positive = [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            ("server.request_timeout_secs", self.server.request_timeout_secs),
            ("server.max_connection_age_secs", self.server.max_connection_age_secs),
            ("server.handshake_timeout_secs", self.server.handshake_timeout_secs),
            ("server.header_read_timeout_secs", self.server.header_read_timeout_secs),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
            ("server.graceful_close_secs", self.server.graceful_close_secs),
            ("server.max_connections", self.server.max_connections as u64),
            ("server.max_connections_per_address", self.server.max_connections_per_address as u64),
            ("server.http2_max_concurrent_streams", self.server.http2_max_concurrent_streams.into()),
            ("pki.root_validity_days", self.pki.root_validity_days.into()),
            ("pki.issuing_validity_days", self.pki.issuing_validity_days.into()),
            ("pki.server_validity_days", self.pki.server_validity_days.into()),
            ("pki.client_validity_days", self.pki.client_validity_days.into()),
            ("pki.crl_validity_hours", self.pki.crl_validity_hours.into()),
            ("pki.rotation_grace_hours", self.pki.rotation_grace_hours.into()),
            ("store.readers", self.store.readers as u64),
            ("log.max_files", self.log.max_files as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(fail(key, "must be greater than zero".into()));
            }
        }
        if self.pki.issuing_validity_days > self.pki.root_validity_days {
            return Err(fail("pki.issuing_validity_days", "must not exceed pki.root_validity_days".into()));
        }
        for (key, days) in [
            ("pki.server_validity_days", self.pki.server_validity_days),
            ("pki.client_validity_days", self.pki.client_validity_days),
        ] {
            if days > self.pki.issuing_validity_days {
                return Err(fail(key, "must not exceed pki.issuing_validity_days".into()));
            }
        }
        if !(8192..=1_048_576).contains(&self.server.max_header_bytes) {
            return Err(fail("server.max_header_bytes", "must be between 8192 and 1048576".into()));
        }
        if self.server.max_connections_per_address > self.server.max_connections {
            return Err(fail("server.max_connections_per_address", "must not exceed server.max_connections".into()));
        }
        if self.store.readers > 64 {
            return Err(fail("store.readers", "must be at most 64".into()));
        }
        if self.pki.country.len() != 2 || !self.pki.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(fail("pki.country", "must be a two-letter upper-case country code".into()));
        }
        if self.pki.organization.trim().is_empty() {
            return Err(fail("pki.organization", "must not be empty".into()));
        }
        if self.admin.enabled && !self.admin.listen.ip().is_loopback() {
            return Err(fail(
                "admin.listen",
                "must be a loopback address (127.0.0.0/8 or ::1): the admin listener has no authentication".into(),
            ));
        }
        if self.server.listen.port() != 0 && self.admin.enabled && self.server.listen == self.admin.listen {
            return Err(fail("admin.listen", "must differ from server.listen".into()));
        }
        if self.trust.sms_adapter == SmsAdapter::Command && self.trust.sms_command.trim().is_empty() {
            return Err(fail("trust.sms_command", "must name the program when trust.sms_adapter = \"command\"".into()));
        }
        if self.trust.biometric_adapter == BiometricAdapter::Command && self.trust.biometric_command.trim().is_empty() {
            return Err(fail(
                "trust.biometric_command",
                "must name the program when trust.biometric_adapter = \"command\"".into(),
            ));
        }
        if self.trust.phone_adapter == PhoneAdapter::Command && self.trust.phone_command.trim().is_empty() {
            return Err(fail(
                "trust.phone_command",
                "must name the program when trust.phone_adapter = \"command\"".into(),
            ));
        }
        for (uses_http, key, url) in [
            (self.trust.sms_adapter == SmsAdapter::Http, "trust.sms_url", &self.trust.sms_url),
            (self.trust.biometric_adapter == BiometricAdapter::Http, "trust.biometric_url", &self.trust.biometric_url),
            (self.trust.phone_adapter == PhoneAdapter::Http, "trust.phone_url", &self.trust.phone_url),
        ] {
            if uses_http && !(url.starts_with("https://") && url.len() > 8) {
                return Err(fail(key, "must be the vendor's https:// URL for the \"http\" adapter".into()));
            }
            if uses_http && self.trust.webhook_secret_file.as_os_str().is_empty() {
                return Err(fail(
                    "trust.webhook_secret_file",
                    "must name the HMAC key file for \"http\" adapters".into(),
                ));
            }
        }
        if self.trust.adapter_timeout_secs == 0 || self.trust.adapter_timeout_secs > 120 {
            return Err(fail("trust.adapter_timeout_secs", "must be between 1 and 120".into()));
        }
        for (key, value, low, high) in [
            ("trust.face_checks_per_hour", self.trust.face_checks_per_hour.into(), 1, 1000),
            ("trust.face_checks_per_day", self.trust.face_checks_per_day.into(), 1, 10_000),
            ("trust.sms_per_hour", self.trust.sms_per_hour.into(), 1, 1000),
            ("trust.sms_per_day", self.trust.sms_per_day.into(), 1, 10_000),
            ("trust.per_source_per_hour", self.trust.per_source_per_hour.into(), 1, 1_000_000),
            ("trust.per_source_per_day", self.trust.per_source_per_day.into(), 1, 10_000_000),
            ("oauth.access_token_secs", self.oauth.access_token_secs, 60, 3600),
            ("oauth.request_uri_secs", self.oauth.request_uri_secs, 10, 599),
            ("oauth.code_secs", self.oauth.code_secs, 1, 60),
            ("oauth.journey_minutes", self.oauth.journey_minutes, 1, 60),
            ("oauth.remember_customer_minutes", self.oauth.remember_customer_minutes, 0, 60),
            ("oauth.consent_max_days", self.oauth.consent_max_days, 1, 3650),
            ("oauth.expiry_sweep_secs", self.oauth.expiry_sweep_secs, 1, 86_400),
            ("gateway.signed_header_secs", self.gateway.signed_header_secs, 10, 300),
            ("gateway.max_idle_per_bank", self.gateway.max_idle_per_bank as u64, 1, 1024),
            ("gateway.meter_batch", self.gateway.meter_batch as u64, 1, 100_000),
            ("gateway.meter_flush_ms", self.gateway.meter_flush_ms, 10, 60_000),
            ("limits.api_per_second", self.limits.api_per_second.into(), 1, 10_000_000),
            ("limits.api_burst", self.limits.api_burst.into(), 1, 10_000_000),
            ("limits.oauth_per_second", self.limits.oauth_per_second.into(), 1, 10_000_000),
            ("limits.oauth_burst", self.limits.oauth_burst.into(), 1, 10_000_000),
            ("limits.pages_per_second", self.limits.pages_per_second.into(), 1, 10_000_000),
            ("limits.pages_burst", self.limits.pages_burst.into(), 1, 10_000_000),
            ("limits.sign_in_per_minute", self.limits.sign_in_per_minute.into(), 1, 10_000_000),
            ("limits.sign_in_burst", self.limits.sign_in_burst.into(), 1, 10_000_000),
            ("limits.max_concurrent_password_hashes", self.limits.max_concurrent_password_hashes as u64, 1, 256),
        ] {
            if !(low..=high).contains(&value) {
                return Err(fail(key, format!("must be between {low} and {high}")));
            }
        }
        let webhooks = &self.webhooks;
        for (key, value, low, high) in [
            ("webhooks.retry_initial_secs", webhooks.retry_initial_secs, 1, 86_400),
            ("webhooks.retry_max_secs", webhooks.retry_max_secs, webhooks.retry_initial_secs, 86_400),
            ("webhooks.give_up_after_hours", webhooks.give_up_after_hours, 1, 720),
            ("webhooks.timeout_secs", webhooks.timeout_secs, 1, 120),
            ("webhooks.concurrency", webhooks.concurrency as u64, 1, 64),
        ] {
            if !(low..=high).contains(&value) {
                return Err(fail(key, format!("must be between {low} and {high}")));
            }
        }
        let sandbox = &self.sandbox;
        for (key, value, low, high) in [
            ("sandbox.check_interval_secs", sandbox.check_interval_secs, 1, 86_400),
            ("sandbox.check_jitter_secs", sandbox.check_jitter_secs, 0, sandbox.check_interval_secs),
            ("sandbox.max_concurrent_checks", sandbox.max_concurrent_checks as u64, 1, 64),
            ("sandbox.delist_after_failures", sandbox.delist_after_failures.into(), 1, 1000),
            ("sandbox.relist_after_passes", sandbox.relist_after_passes.into(), 1, 1000),
            ("sandbox.keep_runs_days", sandbox.keep_runs_days.into(), 1, 366),
        ] {
            if !(low..=high).contains(&value) {
                return Err(fail(key, format!("must be between {low} and {high}")));
            }
        }
        let reports = &self.reports;
        for (key, value, low, high) in [
            ("reports.raw_retention_days", reports.raw_retention_days, 1, 3650),
            ("reports.hourly_retention_days", reports.hourly_retention_days, reports.raw_retention_days.max(1), 3650),
        ] {
            if !(low..=high).contains(&value) {
                return Err(fail(key, format!("must be between {low} and {high}")));
            }
        }
        if reports.daily_retention_days != 0 && reports.daily_retention_days < reports.hourly_retention_days {
            return Err(fail(
                "reports.daily_retention_days",
                "must be 0 (kept for ever) or at least reports.hourly_retention_days".into(),
            ));
        }
        let requests = &self.requests;
        for (key, value, low, high) in [
            ("requests.warning_percent", requests.warning_percent.into(), 1, 99),
            ("requests.reopen_days", requests.reopen_days.into(), 0, 366),
            ("requests.max_attachment_bytes", requests.max_attachment_bytes as u64, 1024, 20 * 1024 * 1024),
            ("requests.max_attachments", requests.max_attachments as u64, 0, 20),
        ] {
            if !(low..=high).contains(&value) {
                return Err(fail(key, format!("must be between {low} and {high}")));
            }
        }
        let mut hours = Vec::new();
        for (key, value) in
            [("requests.work_starts", &requests.work_starts), ("requests.work_ends", &requests.work_ends)]
        {
            match value.parse::<jiff::civil::Time>() {
                Ok(time) => hours.push(time),
                Err(_) => return Err(fail(key, format!("`{value}` is not a time of day such as \"09:00\""))),
            }
        }
        if hours[0] >= hours[1] {
            return Err(fail("requests.work_starts", "must be before requests.work_ends".into()));
        }
        for (key, days) in [
            ("requests.extra_days_off", &requests.extra_days_off),
            ("requests.extra_working_days", &requests.extra_working_days),
        ] {
            if let Some(day) = days.iter().find(|d| d.parse::<jiff::civil::Date>().is_err()) {
                return Err(fail(key, format!("`{day}` is not a date such as \"2027-03-24\"")));
            }
        }
        if self.billing.suspend_after_days > 3650 {
            return Err(fail("billing.suspend_after_days", "must be between 0 and 3650".into()));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(fail("log.level", format!("not a valid filter: {e}")));
        }
        Ok(())
    }
}

/// RFC 1123 host name (letters, digits, hyphens; dot-separated labels of at most 63 characters).
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Remembers where each key's value came from, so an error can name the file or the variable.
#[derive(Default)]
struct Origins {
    file: Option<String>,
    file_keys: Vec<String>,
    env_keys: Vec<(String, String)>,
}

impl Origins {
    fn of(&self, key: &str) -> String {
        if let Some((_, var)) = self.env_keys.iter().rev().find(|(k, _)| k == key) {
            return format!("environment variable {var}");
        }
        match &self.file {
            Some(file) if self.file_keys.iter().any(|k| k == key) => file.clone(),
            Some(file) => format!("{file} (default value)"),
            None => "embedded defaults".to_string(),
        }
    }
}

struct Loader {
    table: toml::Table,
    origins: Origins,
}

impl Loader {
    fn new() -> Loader {
        // The embedded example is part of the binary; a parse failure is caught by the unit tests.
        let table = toml::from_str::<toml::Table>(EXAMPLE).unwrap_or_default();
        Loader { table, origins: Origins::default() }
    }

    fn file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Read { source_name: source_name.clone(), error })?;
        let overlay = toml::from_str::<toml::Table>(&text)
            .map_err(|e| ConfigError::Syntax { source_name: source_name.clone(), message: e.to_string() })?;
        collect_keys(&overlay, "", &mut self.origins.file_keys);
        merge(&mut self.table, overlay);
        self.origins.file = Some(source_name);
        Ok(())
    }

    fn env(&mut self, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
        let mut vars: Vec<(String, String)> =
            env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX) && !CLI_ENV.contains(&k.as_str())).collect();
        vars.sort();
        for (var, raw) in vars {
            let key = env_key(&self.table, &var).ok_or_else(|| ConfigError::Key {
                source_name: format!("environment variable {var}"),
                key: var.trim_start_matches(ENV_PREFIX).to_ascii_lowercase(),
                message: "is not a configuration key".into(),
            })?;
            let value = parse_env_value(&raw);
            let (section, name) = match key.split_once('.') {
                Some((s, n)) => (Some(s.to_string()), n.to_string()),
                None => (None, key.clone()),
            };
            let target = match section {
                Some(s) => self.table.entry(s).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut(),
                None => Some(&mut self.table),
            };
            if let Some(target) = target {
                target.insert(name, value);
            }
            self.origins.env_keys.push((key, var));
        }
        Ok(())
    }

    fn finish(self) -> Result<Config, ConfigError> {
        let value = toml::Value::Table(self.table);
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().message().to_string();
            ConfigError::Key { source_name: self.origins.of(&key), key, message }
        })?;
        config.validate(&self.origins)?;
        Ok(config)
    }
}

/// Maps `KOPIR_SERVER_PUBLIC_URL` to `server.public_url` by matching against the known sections and keys.
fn env_key(defaults: &toml::Table, var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
    for (name, value) in defaults {
        match value {
            toml::Value::Table(section) => {
                if let Some(key) = rest.strip_prefix(&format!("{name}_"))
                    && section.contains_key(key)
                {
                    return Some(format!("{name}.{key}"));
                }
            }
            _ if *name == rest => return Some(rest),
            _ => {}
        }
    }
    None
}

/// Environment values are TOML values when they parse as one (numbers, booleans, arrays), strings otherwise.
fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn collect_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        if let toml::Value::Table(inner) = value {
            collect_keys(inner, &path, out);
        } else {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn embedded_example_parses_and_is_valid() {
        let example = toml::from_str::<toml::Table>(EXAMPLE).expect("appliance.toml is TOML");
        assert!(example.contains_key("server"));
        let config = Config::defaults().expect("defaults are valid");
        assert_eq!(config.mode, Mode::Demo);
        assert_eq!(config.server.listen.port(), 8443);
    }

    #[test]
    fn unknown_key_is_named_with_its_file() {
        let err = load_text("[server]\nlisten_port = 1\n", &[]).unwrap_err().to_string();
        assert!(err.contains("appliance.toml"), "{err}");
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = load_text("[store]\nreaders = \"four\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("store.readers"), "{err}");
    }

    #[test]
    fn port_out_of_range_is_named() {
        let err = load_text("[server]\nlisten = \"0.0.0.0:70000\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    #[test]
    fn empty_hostnames_are_refused() {
        let err = load_text("[server]\nhostnames = []\n", &[]).unwrap_err().to_string();
        assert!(err.contains("server.hostnames"), "{err}");
    }

    #[test]
    fn admin_listener_must_be_loopback() {
        let err = load_text("[admin]\nlisten = \"0.0.0.0:9000\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("admin.listen") && err.contains("loopback"), "{err}");
    }

    #[test]
    fn environment_overrides_file_and_is_named_in_errors() {
        let config = load_text("[store]\nreaders = 2\n", &[("KOPIR_STORE_READERS", "6")]).unwrap();
        assert_eq!(config.store.readers, 6);
        let config = load_text("", &[("KOPIR_SERVER_PUBLIC_URL", "https://bank.example:9443")]).unwrap();
        assert_eq!(config.server.public_url, "https://bank.example:9443");
        let err = load_text("", &[("KOPIR_STORE_READERS", "0")]).unwrap_err().to_string();
        assert!(err.contains("KOPIR_STORE_READERS"), "{err}");
        let err = load_text("", &[("KOPIR_NO_SUCH_KEY", "1")]).unwrap_err().to_string();
        assert!(err.contains("KOPIR_NO_SUCH_KEY"), "{err}");
    }

    #[test]
    fn command_adapters_need_their_program_and_production_refuses_simulated_ones() {
        let err = load_text("[trust]\nsms_adapter = \"command\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("trust.sms_command"), "{err}");
        let demo = load_text("", &[]).unwrap();
        assert!(demo.production_problems().is_empty());
        let production = load_text("mode = \"production\"\n", &[]).unwrap();
        let problems: Vec<String> = production.production_problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3);
        assert!(problems[0].contains("trust.sms_adapter"), "{problems:?}");
        assert!(problems[1].contains("trust.biometric_adapter"), "{problems:?}");
        assert!(problems[2].contains("trust.phone_adapter"), "{problems:?}");
        let err = load_text("[trust]\nbiometric_adapter = \"command\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("trust.biometric_command"), "{err}");
        let configured = load_text(
            "mode = \"production\"\n[trust]\nsms_adapter = \"command\"\nsms_command = \"/usr/lib/kopir/sms\"\n\
             biometric_adapter = \"command\"\nbiometric_command = \"/usr/lib/kopir/bio\"\n\
             phone_adapter = \"command\"\nphone_command = \"/usr/lib/kopir/phone\"\n",
            &[],
        )
        .unwrap();
        assert!(configured.production_problems().is_empty());
    }

    #[test]
    fn http_adapters_need_an_https_url_and_a_key_file() {
        let err = load_text("[trust]\nsms_adapter = \"http\"\nsms_url = \"http://vendor.kz/sms\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("trust.sms_url"), "{err}");
        let err =
            load_text("[trust]\nbiometric_adapter = \"http\"\nbiometric_url = \"https://v.kz/b\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("trust.webhook_secret_file"), "{err}");
        let ok =
            "[trust]\nbiometric_adapter = \"http\"\nbiometric_url = \"https://v.kz/b\"\nwebhook_secret_file = \"/k\"\n";
        assert!(load_text(ok, &[]).is_ok());
    }

    #[test]
    fn webhook_settings_are_checked_and_set_from_the_environment() {
        let config =
            load_text("", &[("KOPIR_WEBHOOKS_RETRY_INITIAL_SECS", "2"), ("KOPIR_WEBHOOKS_CONCURRENCY", "3")]).unwrap();
        assert_eq!((config.webhooks.retry_initial_secs, config.webhooks.concurrency), (2, 3));
        assert_eq!(config.webhooks.give_up_after_hours, 72);
        let err = load_text("[webhooks]\nretry_initial_secs = 60\nretry_max_secs = 30\n", &[]).unwrap_err();
        assert!(err.to_string().contains("webhooks.retry_max_secs"), "{err}");
        let err = load_text("", &[("KOPIR_WEBHOOKS_TIMEOUT_SECS", "0")]).unwrap_err().to_string();
        assert!(err.contains("webhooks.timeout_secs") && err.contains("KOPIR_WEBHOOKS_TIMEOUT_SECS"), "{err}");
        let err = load_text("[webhooks]\nretries = 3\n", &[]).unwrap_err().to_string();
        assert!(err.contains("retries"), "{err}");
    }

    #[test]
    fn time_zone_and_report_retention_are_checked() {
        let config = load_text("", &[]).unwrap();
        assert_eq!(config.time_zone.name(), "Asia/Almaty");
        assert_eq!(
            (
                config.reports.raw_retention_days,
                config.reports.hourly_retention_days,
                config.reports.daily_retention_days
            ),
            (90, 400, 0)
        );
        let config = load_text("time_zone = \"Europe/Berlin\"\n", &[]).unwrap();
        assert_eq!(config.time_zone.name(), "Europe/Berlin");
        let config = load_text("", &[("KOPIR_TIME_ZONE", "Asia/Aqtobe")]).unwrap();
        assert_eq!(config.time_zone.name(), "Asia/Aqtobe");
        let err = load_text("time_zone = \"Asia/Nowhere\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("time_zone") && err.contains("Asia/Nowhere"), "{err}");
        let err = load_text("[reports]\nraw_retention_days = 0\n", &[]).unwrap_err().to_string();
        assert!(err.contains("reports.raw_retention_days"), "{err}");
        let err = load_text("[reports]\nhourly_retention_days = 30\n", &[]).unwrap_err().to_string();
        assert!(err.contains("reports.hourly_retention_days"), "{err}");
        let err = load_text("[reports]\ndaily_retention_days = 100\n", &[]).unwrap_err().to_string();
        assert!(err.contains("reports.daily_retention_days"), "{err}");
    }

    #[test]
    fn the_requests_calendar_keys_are_checked() {
        let config = load_text("", &[]).unwrap();
        assert_eq!((config.requests.work_starts.as_str(), config.requests.reopen_days), ("09:00", 14));
        for (text, key) in [
            ("[requests]\nwork_starts = \"9 am\"\n", "requests.work_starts"),
            ("[requests]\nwork_starts = \"19:00\"\n", "requests.work_starts"),
            ("[requests]\nextra_days_off = [\"24.03.2027\"]\n", "requests.extra_days_off"),
            ("[requests]\nwarning_percent = 100\n", "requests.warning_percent"),
        ] {
            let err = load_text(text, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn cli_variables_are_not_keys() {
        let config = load_text("", &[("KOPIR_DATA_DIR", "/x"), ("KOPIR_LISTEN", "1")]).unwrap();
        assert_ne!(config.data_dir, PathBuf::from("/x"));
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("localhost"));
        assert!(is_dns_name("api.kopir.kz"));
        assert!(!is_dns_name("bad_name"));
        assert!(!is_dns_name("-x.kz"));
        assert!(!is_dns_name(""));
    }
}
