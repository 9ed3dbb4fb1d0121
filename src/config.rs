//! One typed configuration, read from a TOML file and overridden by environment variables,
//! validated once at start-up so that a bad key fails the process with its path in the message.
//!
//! Environment overrides use the prefix `IGW__` and `__` between path segments, numeric segments
//! index arrays: `IGW__SERVER__LISTEN=0.0.0.0:8080`, `IGW__SYSTEMS__0__PASSWORD=…`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::domain::SystemKind;
use crate::resilience::{BreakerConfig, RetryPolicy, ThrottleConfig};

pub const ENV_PREFIX: &str = "IGW__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub systems: Vec<SystemConfig>,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Retries of a system's lookup on transient failures.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Default circuit breaker for every system (a system may override it).
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Default outbound throttle for every system (a system may override it).
    #[serde(default)]
    pub throttle: ThrottleConfig,
    /// Bearer-token authentication of callers.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Log format and level.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The fleet index: every system's servers, swept in the background.
    #[serde(default)]
    pub fleet: FleetConfig,
}

/// The fleet index: each system's whole fleet is listed ("swept") on a jittered interval
/// and kept in memory for `GET /servers`, reverse lookups and bulk lookups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `false`: no sweeps; the listing endpoints answer with every system unindexed and
    /// single lookups always take the live path.
    pub enabled: bool,
    /// Time between the end of one sweep of a system and the start of the next, jittered by
    /// up to ±10 % so that systems (and replicas) do not sweep in step.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Delay before each system's first sweep after start (jittered by up to +50 %).
    #[serde(with = "humantime_serde")]
    pub first_sweep_after: Duration,
    /// An index older than this is not used to answer `GET /servers/{name}` (the live path is)
    /// and is flagged `stale` in `/fleet` and the listing.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Share of a system's outbound throttle (`requests_per_second`, `max_in_flight`) a sweep
    /// may use, so that sweeps never crowd out live lookups. Within `(0, 1]`.
    pub sweep_share: f64,
    /// Longest a sweep of one system may take before it is abandoned (the previous index stays;
    /// what a sweep of OME already read is kept for the next). A first sweep of 10,000 OME
    /// devices reads each one's NIC inventory: ~7 min within the default throttle's share.
    #[serde(with = "humantime_serde")]
    pub sweep_timeout: Duration,
    /// Response bytes one sweep of one system may read in all (its pages are held until the
    /// sweep ends): a bigger fleet fails the sweep (the previous index stays), so a hostile or
    /// broken appliance cannot make the gateway hold more.
    pub max_sweep_bytes: u64,
    /// Names `POST /servers/lookup` resolves concurrently (live lookups; index answers cost
    /// nothing). At most `server.max_cold_lookups_per_caller` are used.
    pub lookup_concurrency: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sweep_interval: Duration::from_secs(600),
            first_sweep_after: Duration::from_secs(2),
            max_age: Duration::from_secs(1200),
            sweep_share: 0.25,
            sweep_timeout: Duration::from_secs(1800),
            max_sweep_bytes: 256 * 1024 * 1024,
            lookup_concurrency: 4,
        }
    }
}

/// Callers authenticate with bearer tokens listed (hashed) in `tokens_file`.
///
/// Auth is on unless `enabled = false` is written down: a forgotten section must not open the
/// API. With auth on, `tokens_file` is required when the server starts (checked there rather
/// than here, so that tools which only build backends from a config need no tokens).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub enabled: bool,
    /// TOML file of `[[tokens]]` entries: `name`, `hash` (from `inventory-gateway hash-token`),
    /// `scopes` (`read`, `admin`).
    pub tokens_file: Option<PathBuf>,
    /// `/healthz` and `/readyz` answer without a token (kubelet probes carry none).
    pub open_health: bool,
    /// `/metrics` answers without a token (a Prometheus scrape config may carry one instead).
    pub open_metrics: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tokens_file: None,
            open_health: true,
            open_metrics: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatConfig {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `pretty` for people, `json` for log pipelines. `--log-format`/`IGW_LOG_FORMAT` win.
    pub log_format: LogFormatConfig,
    /// `RUST_LOG`-style filter; the `RUST_LOG` environment variable wins.
    pub log_filter: String,
    /// One compact line per answered request (target `access`): `on`, `off`, or `sampled`
    /// (`access_log_sample_rate` of them). Refused requests (401/403/429) are never logged one
    /// by one; they are summed up every `refusal_summary_interval`.
    pub access_log: AccessLogMode,
    pub access_log_sample_rate: f64,
    #[serde(with = "humantime_serde")]
    pub refusal_summary_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormatConfig::Pretty,
            log_filter: "info".into(),
            access_log: AccessLogMode::On,
            access_log_sample_rate: 0.01,
            refusal_summary_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogMode {
    #[default]
    On,
    Off,
    Sampled,
}

/// What one client connection may cost the server. Defaults suit a lookup API whose requests
/// carry no body and a few small headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted (`Content-Length`); larger ones get 413. Only
    /// `POST /servers/lookup` takes a body: 1,000 names of up to 128 characters fit.
    pub max_body_bytes: usize,
    /// Largest total size of the request headers (names + values); larger ones get 431.
    /// actix-web itself refuses more than 96 headers or 128 KiB of head.
    pub max_header_bytes: usize,
    /// Time a client has to send its complete request head; a slow or stalled client gets 408
    /// and is disconnected (slowloris).
    #[serde(with = "humantime_serde")]
    pub client_request_timeout: Duration,
    /// Idle time after which a kept-alive connection is closed; `0s` disables keep-alive.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// On shutdown, how long in-flight requests may take to finish before they are cut.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, `/readyz` answers 503 at once but the listener keeps serving this long
    /// before the drain starts, so load balancers see not-ready and stop sending first.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 160 * 1024,
            max_header_bytes: 16 * 1024,
            client_request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(75),
            shutdown_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long a found server is served without asking its system again.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long "not found" is remembered.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// How old a record may be and still be served (marked stale) when its system fails.
    #[serde(with = "humantime_serde")]
    pub max_stale: Duration,
    pub max_entries: u64,
    /// How long the gateway remembers which system owns a name (skips the fan-out).
    #[serde(with = "humantime_serde")]
    pub owner_ttl: Duration,
    /// When a record is cached (expired, within `max_stale`) and its revalidation has not
    /// finished within this bound, the cached record is served stale at once and the refresh
    /// finishes in the background.
    #[serde(with = "humantime_serde")]
    pub stale_deadline: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            max_entries: 100_000,
            owner_ttl: Duration::from_secs(24 * 3600),
            stale_deadline: Duration::from_secs(2),
        }
    }
}

/// Inbound rate limit per client (bearer token, else peer IP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundRateLimit {
    pub enabled: bool,
    /// Sustained rate per client; fractions allowed (0.5 = one request every 2 s).
    pub requests_per_second: f64,
    pub burst: u32,
    /// Failed authentications (no, malformed or unknown token) a peer IP may make per second
    /// once its burst is spent; further failures get 429. Applies while auth is on, whether or
    /// not `enabled` is.
    pub failed_auth_per_second: f64,
    pub failed_auth_burst: u32,
}

impl Default for InboundRateLimit {
    fn default() -> Self {
        Self {
            enabled: true,
            requests_per_second: 100.0,
            burst: 200,
            failed_auth_per_second: 1.0,
            failed_auth_burst: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// actix worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Upper bound for one system's whole answer (all its calls and retries) before it counts as
    /// a timeout (504 when no other system answered). Systems are asked concurrently.
    #[serde(with = "humantime_serde")]
    pub lookup_timeout: Duration,
    pub rate_limit: InboundRateLimit,
    pub limits: LimitsConfig,
    /// Cold (upstream-bound) lookups running at once, over all callers.
    pub max_cold_lookups: usize,
    /// Cold lookups one caller (token, else peer IP) may have running at once; the rest wait in
    /// that caller's own queue, served round-robin with the other callers' queues.
    pub max_cold_lookups_per_caller: usize,
    /// Cold lookups one caller may have waiting; beyond that its lookups get 429.
    pub max_queued_per_caller: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            lookup_timeout: Duration::from_secs(30),
            rate_limit: InboundRateLimit::default(),
            limits: LimitsConfig::default(),
            max_cold_lookups: 32,
            max_cold_lookups_per_caller: 4,
            max_queued_per_caller: 64,
        }
    }
}

/// One management system instance (an appliance or a UCS domain).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// Unique name of this instance, used in metrics, errors and `GET /vendors`.
    pub name: String,
    pub kind: SystemKind,
    /// Base URL, e.g. `https://oneview.example.com` (no path for OneView/OME; UCSM posts to `/nuova`).
    /// Every kind but `redfish`, whose BMCs are listed in `bmcs` / `inventory_file`.
    #[serde(default)]
    pub endpoint: Option<Url>,
    /// Every kind but `intersight` (API key) and `redfish` (`[systems.bmc]`).
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Read the password from this file instead (a mounted Kubernetes Secret).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM bundle of CAs to trust for this system, in addition to the public (webpki) roots built
    /// into the binary.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Per upstream HTTP request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Page size asked of the system when a query may return several items.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Stop following pages after this many (guards against a next-link loop).
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// OneView only: `X-API-Version` sent on every call.
    #[serde(default)]
    pub api_version: Option<u32>,
    /// OneView only: `authLoginDomain` (directory name; empty = local users).
    #[serde(default)]
    pub login_domain: Option<String>,
    /// Overrides the top-level `[breaker]` for this system.
    #[serde(default)]
    pub breaker: Option<BreakerConfig>,
    /// Overrides the top-level `[throttle]` for this system.
    #[serde(default)]
    pub throttle: Option<ThrottleConfig>,
    /// Largest response body read from this system; a bigger one is a protocol failure (the
    /// connection is dropped at the cap, or before reading when `Content-Length` says so).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// After the system refuses a login, every lookup gets that refusal for this long before
    /// the next attempt (doubling per further refusal, up to 16 times this).
    #[serde(default = "default_login_backoff", with = "humantime_serde")]
    pub login_backoff: Duration,
    /// UCS Central only (required there): the UCS Manager login valid in every domain Central
    /// manages, and how to reach a domain from the address Central reports for it.
    #[serde(default)]
    pub ucsm: Option<FleetLogin>,
    /// UCS Central only: exceptions for single domains, by the address Central reports.
    #[serde(default)]
    pub domains: Vec<DomainOverride>,
    /// Intersight only (required there): the API key id, as Intersight shows it.
    #[serde(default)]
    pub api_key_id: Option<String>,
    /// Intersight only: the API key's PEM private key (RSA or EC P-256, unencrypted), read
    /// from this file (a mounted Kubernetes Secret)…
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// …or given inline (exactly one of the two).
    #[serde(default)]
    pub private_key: Option<SecretString>,
    /// Intersight only: the Redfish login of the CIMCs of servers Intersight holds no adapter
    /// inventory for (standalone rack servers); without it their records have no NICs.
    #[serde(default)]
    pub cimc: Option<FleetLogin>,
    /// The Redfish login of this system's servers' own BMCs and how to reach them: required for
    /// `kind = "redfish"` (the default credential of its BMCs) and for `verify_bmc`.
    #[serde(default)]
    pub bmc: Option<FleetLogin>,
    /// Not `redfish`: ask each server's BMC (at the address the system reports) for its
    /// Redfish ComputerSystem, answered as `bmc.redfish_system`. Needs `[systems.bmc]`.
    #[serde(default)]
    pub verify_bmc: bool,
    /// `redfish` only: the BMCs, inline…
    #[serde(default)]
    pub bmcs: Vec<BmcEntry>,
    /// …and/or from this TOML file of `[[bmcs]]` entries (read at start).
    #[serde(default)]
    pub inventory_file: Option<PathBuf>,
    /// `redfish` only: TOML file of named credentials (`[<name>] username = … password = …`)
    /// that BMC entries reference with `credentials = "<name>"` (a mounted Secret).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// BMCs read at once by a sweep or by `verify_bmc`.
    #[serde(default = "default_bmc_concurrency")]
    pub bmc_concurrency: usize,
    /// A BMC that refused a credential is not sent that credential again for this long
    /// (iDRAC locks the source address out after 3 failed logins in 60 s).
    #[serde(default = "default_bmc_refusal_hold", with = "humantime_serde")]
    pub bmc_refusal_hold: Duration,
    /// After this many distinct BMCs refused one credential…
    #[serde(default = "default_bmc_suspend_after")]
    pub bmc_suspend_after: usize,
    /// …it is not sent to any BMC for this long.
    #[serde(default = "default_bmc_suspend_for", with = "humantime_serde")]
    pub bmc_suspend_for: Duration,
}

/// One BMC of a `redfish` system.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BmcEntry {
    /// The server's name; without it the BMC's `HostName` (else its serial number) names it.
    #[serde(default)]
    pub name: Option<String>,
    /// IP address or DNS name.
    pub address: String,
    /// Overrides `[systems.bmc] port`.
    #[serde(default)]
    pub port: Option<u16>,
    /// A name in `credentials_file`; without it, the login of `[systems.bmc]`.
    #[serde(default)]
    pub credentials: Option<String>,
}

fn default_bmc_concurrency() -> usize {
    8
}
fn default_bmc_refusal_hold() -> Duration {
    Duration::from_secs(3600)
}
fn default_bmc_suspend_after() -> usize {
    3
}
fn default_bmc_suspend_for() -> Duration {
    Duration::from_secs(900)
}

/// One login valid on many machines a system leads to, and how to reach them from the address
/// the system reports: `[systems.ucsm]` of a `ucs-central` system (its UCS Manager domains),
/// `[systems.cimc]` of an `intersight` system (its standalone servers' CIMCs, over Redfish).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetLogin {
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A machine is reached at `scheme://<address the system reports>:port`.
    #[serde(default = "default_domain_scheme")]
    pub scheme: String,
    #[serde(default = "default_domain_port")]
    pub port: u16,
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn default_domain_scheme() -> String {
    "https".into()
}
fn default_domain_port() -> u16 {
    443
}

/// `[[systems.domains]]`: one UCS Manager domain reached or logged into differently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainOverride {
    /// The domain's address as UCS Central reports it (`lsServer.domain`, `computeSystem.address`).
    pub address: String,
    /// Where to reach it instead (e.g. a name its certificate is issued for).
    #[serde(default)]
    pub endpoint: Option<Url>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
}

/// Reads `password` or `password_file` (exactly one is set: checked by `validate`).
fn read_password(
    key: &str,
    password: &Option<SecretString>,
    file: &Option<PathBuf>,
) -> Result<SecretString, ConfigError> {
    if let Some(p) = password {
        return Ok(p.clone());
    }
    let path = file.as_ref().ok_or_else(|| ConfigError::Invalid {
        key: key.to_owned(),
        reason: "either `password` or `password_file` is required".into(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

impl FleetLogin {
    /// `section` is `ucsm` or `cimc`, for the error message.
    pub fn resolve_password(
        &self,
        system: &str,
        section: &str,
    ) -> Result<SecretString, ConfigError> {
        read_password(
            &format!("systems.{system}.{section}.password"),
            &self.password,
            &self.password_file,
        )
    }
}

impl DomainOverride {
    /// `None` = the fleet-wide UCS Manager password applies.
    pub fn resolve_password(&self, system: &str) -> Result<Option<SecretString>, ConfigError> {
        if self.password.is_none() && self.password_file.is_none() {
            return Ok(None);
        }
        read_password(
            &format!("systems.{system}.domains.password"),
            &self.password,
            &self.password_file,
        )
        .map(Some)
    }
}

fn default_max_response_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_login_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_page_size() -> u32 {
    8
}
fn default_max_pages() -> u32 {
    50
}

impl SystemConfig {
    pub fn breaker_or<'a>(&'a self, default: &'a BreakerConfig) -> &'a BreakerConfig {
        self.breaker.as_ref().unwrap_or(default)
    }

    pub fn throttle_or<'a>(&'a self, default: &'a ThrottleConfig) -> &'a ThrottleConfig {
        self.throttle.as_ref().unwrap_or(default)
    }

    /// The Intersight API key, read from `private_key_file` (validated to be present at load).
    pub fn resolve_api_key(
        &self,
    ) -> Result<crate::vendors::intersight::signing::ApiKey, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: format!("systems.{}.private_key_file", self.name),
            reason,
        };
        let text = match (&self.private_key, &self.private_key_file) {
            (Some(pem), _) => pem.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(SecretString::from)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?,
            (None, None) => return Err(invalid("required for kind = \"intersight\"".into())),
        };
        let id = self.api_key_id.as_deref().unwrap_or_default();
        crate::vendors::intersight::signing::ApiKey::from_pem(id, text.expose_secret())
            .map_err(|e| invalid(e.to_string()))
    }

    /// The password, from `password` or `password_file` (validated to be present at load).
    pub fn resolve_password(&self) -> Result<SecretString, ConfigError> {
        read_password(
            &format!("systems.{}.password", self.name),
            &self.password,
            &self.password_file,
        )
    }
}

impl Config {
    /// Loads `path` (if any), applies `IGW__…` overrides from `env`, deserialises and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut root = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|source| ConfigError::Syntax {
                        path: p.to_owned(),
                        source: Box::new(source),
                    })?
            }
            None => toml::Table::new(),
        };
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        // Deterministic order so that `…__0__…` creates the array entry before `…__1__…`.
        overrides.sort();
        for (var, value) in overrides {
            apply_override(&mut root, &var, &value)?;
        }
        Self::from_table(root)
    }

    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table = text
            .parse::<toml::Table>()
            .map_err(|source| ConfigError::Syntax {
                path: PathBuf::from("<string>"),
                source: Box::new(source),
            })?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    reason: e.inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        if self.systems.is_empty() {
            return Err(invalid(
                "systems".into(),
                "at least one management system must be configured",
            ));
        }
        if self.cache.ttl.is_zero() || self.cache.max_stale < self.cache.ttl {
            return Err(invalid(
                "cache.max_stale".into(),
                "ttl must be > 0 and max_stale >= ttl",
            ));
        }
        let server = &self.server;
        if server.max_cold_lookups == 0 || server.max_cold_lookups_per_caller == 0 {
            return Err(invalid(
                "server.max_cold_lookups".into(),
                "max_cold_lookups and max_cold_lookups_per_caller must be >= 1",
            ));
        }
        let rl = &self.server.rate_limit;
        if !(rl.requests_per_second.is_finite() && rl.requests_per_second > 0.0) || rl.burst == 0 {
            return Err(invalid(
                "server.rate_limit.requests_per_second".into(),
                "requests_per_second must be > 0 and burst >= 1",
            ));
        }
        if !(rl.failed_auth_per_second.is_finite() && rl.failed_auth_per_second > 0.0)
            || rl.failed_auth_burst == 0
        {
            return Err(invalid(
                "server.rate_limit.failed_auth_per_second".into(),
                "failed_auth_per_second must be > 0 and failed_auth_burst >= 1",
            ));
        }
        let t = &self.telemetry;
        if !(0.0..=1.0).contains(&t.access_log_sample_rate) || t.refusal_summary_interval.is_zero()
        {
            return Err(invalid(
                "telemetry.access_log_sample_rate".into(),
                "access_log_sample_rate must be within 0..=1 and refusal_summary_interval > 0",
            ));
        }
        let limits = &self.server.limits;
        if limits.max_body_bytes == 0
            || limits.max_header_bytes == 0
            || limits.client_request_timeout.is_zero()
        {
            return Err(invalid(
                "server.limits".into(),
                "max_body_bytes, max_header_bytes and client_request_timeout must be > 0",
            ));
        }
        if self.auth.enabled {
            if let Some(f) = &self.auth.tokens_file {
                if !f.is_file() {
                    return Err(invalid("auth.tokens_file".into(), "file does not exist"));
                }
            }
        }
        let f = &self.fleet;
        if f.sweep_interval.is_zero()
            || f.max_age.is_zero()
            || f.sweep_timeout.is_zero()
            || !(f.sweep_share > 0.0 && f.sweep_share <= 1.0)
            || f.lookup_concurrency == 0
            || f.max_sweep_bytes == 0
        {
            return Err(invalid(
                "fleet".into(),
                "sweep_interval, max_age and sweep_timeout must be > 0, sweep_share within (0, 1] and lookup_concurrency >= 1",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts".into(), "must be at least 1"));
        }
        let mut names = HashSet::new();
        for (i, s) in self.systems.iter().enumerate() {
            let key = |field: &str| format!("systems[{i}].{field}");
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(invalid(key("name"), "must be non-empty [A-Za-z0-9._-]"));
            }
            if !names.insert(s.name.clone()) {
                return Err(invalid(key("name"), "duplicate system name"));
            }
            match (&s.endpoint, s.kind) {
                (Some(_), SystemKind::Redfish) => {
                    return Err(invalid(
                        key("endpoint"),
                        "kind = \"redfish\" has no endpoint: list its BMCs in `bmcs` or `inventory_file`",
                    ))
                }
                (None, SystemKind::Redfish) => {}
                (None, _) => return Err(invalid(key("endpoint"), "is required")),
                (Some(e), _) if !matches!(e.scheme(), "http" | "https") => {
                    return Err(invalid(key("endpoint"), "scheme must be http or https"));
                }
                (Some(e), _) if e.host_str().is_none() => {
                    return Err(invalid(key("endpoint"), "must have a host"));
                }
                _ => {}
            }
            validate_redfish(s, &key)?;
            validate_login(s, &key)?;
            if s.timeout.is_zero() {
                return Err(invalid(key("timeout"), "must be greater than zero"));
            }
            if s.max_response_bytes < 1024 {
                return Err(invalid(key("max_response_bytes"), "must be at least 1024"));
            }
            if s.page_size == 0 || s.max_pages == 0 {
                return Err(invalid(
                    key("page_size"),
                    "page_size and max_pages must be at least 1",
                ));
            }
            if s.kind != SystemKind::Oneview
                && (s.api_version.is_some() || s.login_domain.is_some())
            {
                return Err(invalid(
                    key("api_version"),
                    "api_version and login_domain apply to kind = \"oneview\" only",
                ));
            }
            check_ca_bundle(&key, &s.ca_bundle)?;
            validate_central(s, &key)?;
        }
        Ok(())
    }
}

/// `[systems.bmc]`, `verify_bmc` and the BMC list: where each applies.
fn validate_redfish(s: &SystemConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let invalid = |key: String, reason: &str| ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    if let Some(bmc) = &s.bmc {
        check_fleet_login(bmc, &|f: &str| key(&format!("bmc.{f}")))?;
    }
    if s.bmc_concurrency == 0 || s.bmc_suspend_after == 0 || s.bmc_suspend_for.is_zero() {
        return Err(invalid(
            key("bmc_concurrency"),
            "bmc_concurrency, bmc_suspend_after and bmc_suspend_for must be > 0",
        ));
    }
    // Shorter than iDRAC's 60 s window, a hold would let three refusals land in it.
    let month = Duration::from_secs(30 * 24 * 3600);
    if s.bmc_refusal_hold < Duration::from_secs(60)
        || s.bmc_refusal_hold > month
        || s.bmc_suspend_for > month
    {
        return Err(invalid(
            key("bmc_refusal_hold"),
            "bmc_refusal_hold must be within 60 s..30 days, and bmc_suspend_for at most 30 days",
        ));
    }
    if s.kind != SystemKind::Redfish {
        if !s.bmcs.is_empty() || s.inventory_file.is_some() || s.credentials_file.is_some() {
            return Err(invalid(
                key("bmcs"),
                "bmcs, inventory_file and credentials_file apply to kind = \"redfish\" only",
            ));
        }
        if s.verify_bmc && s.bmc.is_none() {
            return Err(invalid(
                key("bmc"),
                "verify_bmc needs [systems.bmc]: the Redfish login of the servers' BMCs",
            ));
        }
        return Ok(());
    }
    if s.verify_bmc {
        return Err(invalid(
            key("verify_bmc"),
            "kind = \"redfish\" always reads the BMC itself",
        ));
    }
    if s.bmc.is_none() {
        return Err(invalid(
            key("bmc"),
            "kind = \"redfish\" needs [systems.bmc]: the BMCs' Redfish login and port",
        ));
    }
    if s.bmcs.is_empty() && s.inventory_file.is_none() {
        return Err(invalid(
            key("bmcs"),
            "kind = \"redfish\" needs `bmcs` or `inventory_file`",
        ));
    }
    for (name, f) in [
        ("inventory_file", &s.inventory_file),
        ("credentials_file", &s.credentials_file),
    ] {
        if let Some(f) = f.as_ref().filter(|f| !f.is_file()) {
            return Err(invalid(
                key(name),
                &format!("{} does not exist", f.display()),
            ));
        }
    }
    Ok(())
}

/// A username and password for every kind but Intersight (an API key id and private key file)
/// and Redfish (`[systems.bmc]`), and nothing of another kind's login on any.
fn validate_login(s: &SystemConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let invalid = |key: String, reason: &str| ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    if s.kind != SystemKind::Intersight {
        if s.api_key_id.is_some()
            || s.private_key_file.is_some()
            || s.private_key.is_some()
            || s.cimc.is_some()
        {
            return Err(invalid(
                key("api_key_id"),
                "api_key_id, private_key(_file) and cimc apply to kind = \"intersight\" only",
            ));
        }
        if s.kind == SystemKind::Redfish {
            if !s.username.is_empty() || s.password.is_some() || s.password_file.is_some() {
                return Err(invalid(
                    key("username"),
                    "kind = \"redfish\" logs in with [systems.bmc] (and credentials_file), \
                     not username/password",
                ));
            }
            return Ok(());
        }
        if s.username.is_empty() {
            return Err(invalid(key("username"), "must not be empty"));
        }
        return check_password(key, &s.password, &s.password_file, true);
    }
    if !s.username.is_empty() || s.password.is_some() || s.password_file.is_some() {
        return Err(invalid(
            key("username"),
            "kind = \"intersight\" signs with an API key: give api_key_id and private_key_file, \
             not username/password",
        ));
    }
    if let Some(cimc) = &s.cimc {
        check_fleet_login(cimc, &|f: &str| key(&format!("cimc.{f}")))?;
    }
    match &s.api_key_id {
        // It goes into the Authorization header: visible ASCII, no quote or backslash.
        Some(id)
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') => {}
        _ => {
            return Err(invalid(
                key("api_key_id"),
                "kind = \"intersight\" needs api_key_id (visible ASCII, no quote or backslash)",
            ))
        }
    }
    match (&s.private_key_file, &s.private_key) {
        (Some(_), Some(_)) => Err(invalid(
            key("private_key_file"),
            "give `private_key` or `private_key_file`, not both",
        )),
        (Some(f), None) if !f.is_file() => {
            Err(invalid(key("private_key_file"), "file does not exist"))
        }
        (None, None) => Err(invalid(
            key("private_key_file"),
            "kind = \"intersight\" needs private_key_file (or private_key): the API key's PEM private key",
        )),
        _ => Ok(()),
    }
}

/// A login's `password` / `password_file` (keys named by `key`): never both, and one of them
/// when `required`.
fn check_password(
    key: &dyn Fn(&str) -> String,
    password: &Option<SecretString>,
    file: &Option<PathBuf>,
    required: bool,
) -> Result<(), ConfigError> {
    let invalid = |key: String, reason: &str| ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    match (password, file) {
        (None, None) if required => Err(invalid(
            key("password"),
            "either `password` or `password_file` is required",
        )),
        (Some(_), Some(_)) => Err(invalid(
            key("password_file"),
            "give `password` or `password_file`, not both",
        )),
        _ => Ok(()),
    }
}

/// A configured CA bundle must be a file at start-up, not at the first lookup.
fn check_ca_bundle(key: &dyn Fn(&str) -> String, ca: &Option<PathBuf>) -> Result<(), ConfigError> {
    match ca {
        Some(ca) if !ca.is_file() => Err(ConfigError::Invalid {
            key: key("ca_bundle"),
            reason: "file does not exist".into(),
        }),
        _ => Ok(()),
    }
}

/// A `[systems.ucsm]` or `[systems.cimc]` login (keys named by `key`).
fn check_fleet_login(login: &FleetLogin, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let invalid = |key: String, reason: &str| ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    if login.username.is_empty() {
        return Err(invalid(key("username"), "must not be empty"));
    }
    check_password(key, &login.password, &login.password_file, true)?;
    if !matches!(login.scheme.as_str(), "http" | "https") {
        return Err(invalid(key("scheme"), "must be http or https"));
    }
    check_ca_bundle(key, &login.ca_bundle)
}

/// `[systems.ucsm]` and `[[systems.domains]]` belong to `ucs-central`, which needs the former.
fn validate_central(s: &SystemConfig, key: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let invalid = |key: String, reason: &str| ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    if s.kind != SystemKind::UcsCentral {
        if s.ucsm.is_some() || !s.domains.is_empty() {
            return Err(invalid(
                key("ucsm"),
                "ucsm and domains apply to kind = \"ucs-central\" only",
            ));
        }
        return Ok(());
    }
    let Some(ucsm) = &s.ucsm else {
        return Err(invalid(
            key("ucsm"),
            "kind = \"ucs-central\" needs [systems.ucsm]: the UCS Manager login of its domains",
        ));
    };
    check_fleet_login(ucsm, &|f: &str| key(&format!("ucsm.{f}")))?;
    let mut seen = HashSet::new();
    for (j, d) in s.domains.iter().enumerate() {
        let dkey = |f: &str| key(&format!("domains[{j}].{f}"));
        if d.address.is_empty() || !seen.insert(d.address.to_ascii_lowercase()) {
            return Err(invalid(dkey("address"), "must be non-empty and unique"));
        }
        if let Some(e) = &d.endpoint {
            if !matches!(e.scheme(), "http" | "https") || e.host_str().is_none() {
                return Err(invalid(
                    dkey("endpoint"),
                    "must be an http(s) URL with a host",
                ));
            }
        }
        if d.username.as_deref() == Some("") {
            return Err(invalid(dkey("username"), "must not be empty"));
        }
        check_password(&dkey, &d.password, &d.password_file, false)?;
        check_ca_bundle(&dkey, &d.ca_bundle)?;
    }
    Ok(())
}

fn apply_override(root: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let env_err = |reason: String| ConfigError::Env {
        var: var.to_owned(),
        reason,
    };
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(|s| s.is_empty()) {
        return Err(env_err("empty path segment".into()));
    }
    let mut node = root;
    for (depth, seg) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        let next_is_index = path
            .get(depth + 1)
            .is_some_and(|s| s.parse::<usize>().is_ok());
        if last {
            let existing_is_string = matches!(node.get(seg), Some(toml::Value::String(_)));
            node.insert(seg.clone(), scalar(seg, value, existing_is_string));
            return Ok(());
        }
        let entry = node.entry(seg.clone()).or_insert_with(|| {
            if next_is_index {
                toml::Value::Array(Vec::new())
            } else {
                toml::Value::Table(toml::Table::new())
            }
        });
        node = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                let idx_seg = &path[depth + 1];
                let idx: usize = idx_seg
                    .parse()
                    .map_err(|_| env_err(format!("`{seg}` is a list; expected an index")))?;
                if idx > items.len() {
                    return Err(env_err(format!(
                        "index {idx} skips entries (list has {})",
                        items.len()
                    )));
                }
                if idx == items.len() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                // The index segment is consumed here; descend into the element.
                let elem = &mut items[idx];
                let toml::Value::Table(t) = elem else {
                    return Err(env_err(format!("`{seg}[{idx}]` is not a table")));
                };
                return apply_override(
                    t,
                    &format!("{ENV_PREFIX}{}", path[depth + 2..].join("__")),
                    value,
                )
                .map_err(|e| match e {
                    ConfigError::Env { reason, .. } => env_err(reason),
                    other => other,
                });
            }
            _ => return Err(env_err(format!("`{seg}` is not a table"))),
        };
    }
    Ok(())
}

/// Env values are strings; numbers and booleans are recognised, except where the key already
/// holds a string or is one that may legitimately be all digits (a password of "1234").
fn scalar(key: &str, value: &str, existing_is_string: bool) -> toml::Value {
    const ALWAYS_STRING: [&str; 4] = ["password", "username", "name", "login_domain"];
    if !existing_is_string && !ALWAYS_STRING.contains(&key) {
        if let Ok(b) = value.parse::<bool>() {
            return toml::Value::Boolean(b);
        }
        if let Ok(i) = value.parse::<i64>() {
            return toml::Value::Integer(i);
        }
    }
    toml::Value::String(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [server]
        listen = "127.0.0.1:9999"
        [[systems]]
        name = "ov"
        kind = "oneview"
        endpoint = "https://ov.example"
        username = "admin"
        password = "secret"
        api_version = 4000
    "#;

    fn load_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("igw-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let out = Config::load(Some(&path), env);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[test]
    fn loads_and_defaults() {
        let c = load_with(BASE, &[]).unwrap();
        assert_eq!(c.server.listen.port(), 9999);
        let s = &c.systems[0];
        assert_eq!(s.kind, SystemKind::Oneview);
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.page_size, 8);
        assert!(!s.insecure_skip_verify);
    }

    #[test]
    fn env_overrides_existing_and_new_keys() {
        let c = load_with(
            BASE,
            &[
                ("IGW__SERVER__LISTEN", "0.0.0.0:8081"),
                ("IGW__SYSTEMS__0__PASSWORD", "1234"),
                ("IGW__SYSTEMS__0__PAGE_SIZE", "3"),
                ("IGW__SYSTEMS__1__NAME", "ucs-a"),
                ("IGW__SYSTEMS__1__KIND", "ucsm"),
                ("IGW__SYSTEMS__1__ENDPOINT", "http://ucs-a"),
                ("IGW__SYSTEMS__1__USERNAME", "u"),
                ("IGW__SYSTEMS__1__PASSWORD", "p"),
                ("OTHER_VAR", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 8081);
        assert_eq!(c.systems[0].page_size, 3);
        use secrecy::ExposeSecret;
        assert_eq!(
            c.systems[0].password.as_ref().unwrap().expose_secret(),
            "1234"
        );
        assert_eq!(c.systems[1].kind, SystemKind::Ucsm);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load_with(&BASE.replace("oneview", "lenovo"), &[]).unwrap_err();
        assert!(e.to_string().contains("systems[0].kind"), "{e}");
        let e = load_with(&BASE.replace("username", "user_name"), &[]).unwrap_err();
        assert!(e.to_string().contains("systems[0]"), "{e}");
        let e = load_with("[server]\n", &[]).unwrap_err();
        assert!(e.to_string().contains("`systems`"), "{e}");
        let e = load_with(BASE, &[("IGW__SYSTEMS__0__TIMEOUT", "soon")]).unwrap_err();
        assert!(e.to_string().contains("systems[0].timeout"), "{e}");
        let e = load_with(&BASE.replace("https://", "ftp://"), &[]).unwrap_err();
        assert!(e.to_string().contains("systems[0].endpoint"), "{e}");
        let e = load_with(&BASE.replace("password = \"secret\"", ""), &[]).unwrap_err();
        assert!(e.to_string().contains("systems[0].password"), "{e}");
    }

    #[test]
    fn debug_never_shows_passwords() {
        let c = load_with(BASE, &[]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
    }
}
