//! One module per management system, all behind the [`Backend`] trait. Nothing outside this
//! folder knows a vendor's URLs, payloads or session rules.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::config::{Config, ConfigError, SystemConfig};
use crate::domain::{ServerName, ServerRecord, SystemKind};
use crate::resilience::{BreakerConfig, BreakerObserver, Throttle, ThrottleConfig};
use upstream::{Upstream, UpstreamObserver};

pub mod intersight;
pub mod odata;
pub mod ome;
pub mod oneview;
pub mod paging;
pub mod redfish;
pub mod session;
pub mod ucs_central;
pub mod ucsm;
pub mod upstream;

pub use ucs_central::MemberStatus;

/// Why a backend could not answer. Variants say whether a retry can help ([`Self::is_transient`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to {system}: {detail}")]
    Connect { system: String, detail: String },
    #[error("{system} did not answer within {timeout:?}")]
    Timeout { system: String, timeout: Duration },
    #[error("{system} answered HTTP {status} to {endpoint}: {detail}")]
    Status {
        system: String,
        endpoint: String,
        status: u16,
        retry_after: Option<Duration>,
        detail: String,
    },
    #[error("{system} refused the credentials or the session: {detail}")]
    Auth { system: String, detail: String },
    #[error("{system} sent a response the gateway cannot read ({endpoint}): {detail}")]
    Protocol {
        system: String,
        endpoint: String,
        detail: String,
    },
    /// The system's own data contradicts itself (e.g. UCS Central names a domain it does not
    /// list, or a domain that does not hold the profile Central places there).
    #[error("{system} answered inconsistently: {detail}")]
    Inconsistent { system: String, detail: String },
    /// A collection changed while it was being paged (its reported count moved): offsets
    /// shifted, so the answer could miss an item. Reading it again will usually succeed.
    #[error("{system} changed {endpoint} while it was being paged: {detail}")]
    Changed {
        system: String,
        endpoint: String,
        detail: String,
    },
    #[error("server profile {profile} in {system} is not assigned to any server hardware")]
    Unassigned { system: String, profile: String },
    #[error("system {system} is misconfigured: {detail}")]
    Config { system: String, detail: String },
    /// One UCS Manager domain behind a UCS Central failed (or cannot be used): the domain
    /// has its own breaker, so this never counts against the Central's.
    #[error("{system}: UCS domain {domain} (service profile {profile}): {source}")]
    Domain {
        system: String,
        domain: String,
        profile: String,
        source: Box<BackendError>,
    },
    /// A server's own BMC, read because its manager lacks what the record needs (Intersight's
    /// standalone servers: their CIMC's Redfish NICs). One BMC failing says nothing about the
    /// manager's health, so this never counts against the manager's breaker.
    #[error("{system}: the BMC of {server} at {address}: {source}")]
    Bmc {
        system: String,
        server: String,
        address: String,
        source: Box<BackendError>,
    },
    /// The gateway itself holds back: circuit open, or no outbound slot within the wait bound.
    #[error("{system} is unavailable: {reason}")]
    Unavailable {
        system: String,
        reason: String,
        retry_after: Duration,
    },
}

impl BackendError {
    /// Connect errors, timeouts, 5xx and 429 may succeed on a retry; nothing else will.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Changed { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Domain { source, .. } | Self::Bmc { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// Server-requested wait before retrying (429/503 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::Unavailable { retry_after, .. } => Some(*retry_after),
            Self::Domain { source, .. } | Self::Bmc { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// Says the system is unhealthy (counts against its circuit breaker). Not-found answers,
    /// unassigned profiles, the gateway's own refusals and a failure of one domain behind a
    /// UCS Central (counted by that domain's breaker) do not.
    pub fn is_system_failure(&self) -> bool {
        !matches!(
            self,
            Self::Unassigned { .. }
                | Self::Unavailable { .. }
                | Self::Changed { .. }
                | Self::Config { .. }
                | Self::Domain { .. }
                | Self::Bmc { .. }
        )
    }

    /// No answer in time, wherever it happened.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Domain { source, .. } | Self::Bmc { source, .. } => source.is_timeout(),
            _ => false,
        }
    }

    /// Gateway-side throttling (breaker open, outbound budget spent) or the appliance's 429,
    /// wherever it happened: "come back later", not "broken".
    pub fn is_throttled(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Status { status: 429, .. } => true,
            Self::Domain { source, .. } | Self::Bmc { source, .. } => source.is_throttled(),
            _ => false,
        }
    }

    /// Which system failed and how, in words that carry no internals: no URL, no HTTP-client
    /// error chain, no upstream body. Those stay in the logs (and in admin callers' problems).
    pub fn public_text(&self) -> String {
        let system = self.system();
        match self {
            Self::Connect { .. } => format!("{system}: connection failed"),
            Self::Timeout { timeout, .. } => {
                format!("{system}: timed out after {} ms", timeout.as_millis())
            }
            Self::Status { status: 429, .. } => {
                format!("{system}: throttled the gateway (HTTP 429)")
            }
            Self::Status { status, .. } => format!("{system}: answered HTTP status {status}"),
            Self::Auth { .. } => format!("{system}: refused the gateway's credentials"),
            Self::Protocol { .. } => {
                format!("{system}: sent an answer the gateway cannot read")
            }
            Self::Unassigned { profile, .. } => {
                format!("{system}: server profile {profile} has no hardware assigned")
            }
            Self::Config { .. } => format!("{system}: misconfigured in the gateway"),
            Self::Inconsistent { .. } => format!("{system}: its inventory is inconsistent"),
            Self::Changed { .. } => {
                format!("{system}: its inventory changed while it was being read")
            }
            // The inner text names the domain's own label (`central/10.0.0.1`).
            Self::Domain {
                domain,
                profile,
                source,
                ..
            } => format!(
                "{system}: UCS domain {domain} (service profile {profile}): {}",
                source.public_text()
            ),
            Self::Bmc {
                server,
                address,
                source,
                ..
            } => format!(
                "{system}: the BMC of {server} at {address}: {}",
                source.public_text()
            ),
            // The gateway's own words (circuit open, outbound budget spent): no internals.
            Self::Unavailable { reason, .. } => format!("{system}: unavailable ({reason})"),
        }
    }

    pub fn system(&self) -> &str {
        match self {
            Self::Connect { system, .. }
            | Self::Timeout { system, .. }
            | Self::Status { system, .. }
            | Self::Auth { system, .. }
            | Self::Protocol { system, .. }
            | Self::Unassigned { system, .. }
            | Self::Config { system, .. }
            | Self::Inconsistent { system, .. }
            | Self::Changed { system, .. }
            | Self::Domain { system, .. }
            | Self::Bmc { system, .. }
            | Self::Unavailable { system, .. } => system,
        }
    }
}

impl crate::resilience::Transient for BackendError {
    fn is_transient(&self) -> bool {
        BackendError::is_transient(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        BackendError::retry_after(self)
    }
}

/// The configured endpoint of a system that has one (every kind but `redfish`; `validate`
/// checks it is there).
pub(crate) fn endpoint_of(sys: &SystemConfig) -> Result<Url, BackendError> {
    sys.endpoint.clone().ok_or_else(|| BackendError::Config {
        system: sys.name.clone(),
        detail: "no endpoint configured".into(),
    })
}

/// What a backend makes of a paging overrun: a changed collection is worth reading again,
/// anything else is a protocol failure.
pub(crate) fn paging_error(
    system: &str,
    endpoint: &str,
    overrun: paging::Overrun,
    context: &str,
) -> BackendError {
    match overrun {
        paging::Overrun::Changed { .. } => BackendError::Changed {
            system: system.to_owned(),
            endpoint: endpoint.to_owned(),
            detail: format!("{overrun}{context}"),
        },
        _ => BackendError::Protocol {
            system: system.to_owned(),
            endpoint: endpoint.to_owned(),
            detail: format!("{overrun}{context}"),
        },
    }
}

/// One server of a system's whole fleet (a sweep), as [`Backend::find`] answers it under
/// `record.name`, with the other names `find` also answers it under (e.g. an Intersight
/// server's physical name when its profile's name is the record's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub record: ServerRecord,
    pub aliases: Vec<String>,
}

/// A system's whole fleet, as one sweep read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetListing {
    pub servers: Vec<Listed>,
    /// Names [`Backend::find`] answers with something other than one of `servers` (a profile
    /// without hardware, a profile pointing at a server the system does not list): a fleet
    /// index must never answer them itself, so that a lookup of one gets the live answer
    /// (409 unassigned or ambiguous) rather than another server of that name.
    pub withheld: Vec<String>,
    /// Servers of this system whose names are not known could not be read (a Redfish BMC with
    /// no configured name that failed before it ever answered): any name could be theirs, so
    /// the index answers none of this system's names itself.
    pub withholds_all: bool,
}

/// A management system that can find servers by name.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The configured instance name (unique across the config).
    fn name(&self) -> &str;
    fn kind(&self) -> SystemKind;
    /// Where the system answers, as `/vendors` shows it (its URL; for a set of BMCs, how many
    /// and how they are reached).
    fn endpoint(&self) -> String;
    /// Every server this system knows under `name` (case-insensitive). Empty = not here;
    /// more than one = ambiguous within this system.
    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError>;
    /// Every server the system holds (a sweep, for the fleet index), read with the vendor's
    /// bulk endpoints page by page; each backend's `fleet` says what a sweep costs.
    async fn list(&self) -> Result<FleetListing, BackendError>;
    /// Whether the system matches names only in their exact spelling (Intersight's `eq`):
    /// then a miss says nothing about another spelling of the name, and the lookup layer keys
    /// its "not here" memory by the exact spelling for this system.
    fn case_sensitive_names(&self) -> bool {
        false
    }
    /// Systems this one reaches through (UCS Central's domains), as discovered so far.
    fn members(&self) -> Vec<MemberStatus> {
        Vec::new()
    }
    /// The BMC credentials this system sends and whether BMCs refused them (Redfish BMCs,
    /// `verify_bmc`).
    fn credentials(&self) -> Vec<crate::resilience::refusals::CredentialStatus> {
        Vec::new()
    }
    /// End the session on the appliance, if one is open. Best effort; errors are logged.
    /// Called at shutdown, after the HTTP workers stopped: it must not reuse connections
    /// their runtimes drove ([`upstream::Upstream::detach_pool`]).
    async fn logout(&self);
}

/// Builds one backend per configured system, each with its own pooled client and throttle.
/// What a backend needs besides its own config: the throttle and breaker settings that apply
/// to it (and to the systems it reaches through, such as UCS Central's domains), and who
/// observes its exchanges and breakers.
#[derive(Clone)]
pub struct BackendEnv {
    pub throttle: ThrottleConfig,
    pub breaker: BreakerConfig,
    pub observer: Arc<dyn UpstreamObserver>,
    pub breaker_observer: Option<BreakerObserver>,
}

impl BackendEnv {
    /// Default throttle and breaker, no metrics (tools, tests).
    pub fn standalone(sys: &SystemConfig) -> Self {
        Self {
            throttle: sys.throttle_or(&ThrottleConfig::default()).clone(),
            breaker: sys.breaker_or(&BreakerConfig::default()).clone(),
            observer: Arc::new(upstream::NoObserver),
            breaker_observer: None,
        }
    }
}

pub fn build_backends(
    config: &Config,
    observer: Arc<dyn UpstreamObserver>,
    breaker_observer: Option<BreakerObserver>,
) -> Result<Vec<Arc<dyn Backend>>, BackendError> {
    config
        .systems
        .iter()
        .map(|sys| {
            let env = BackendEnv {
                throttle: sys.throttle_or(&config.throttle).clone(),
                breaker: sys.breaker_or(&config.breaker).clone(),
                observer: observer.clone(),
                breaker_observer: breaker_observer.clone(),
            };
            build_backend_with(sys, &env)
        })
        .collect()
}

/// One backend with the default throttle and no metrics (tools, tests).
pub fn build_backend(sys: &SystemConfig) -> Result<Arc<dyn Backend>, BackendError> {
    build_backend_with(sys, &BackendEnv::standalone(sys))
}

pub fn build_backend_with(
    sys: &SystemConfig,
    env: &BackendEnv,
) -> Result<Arc<dyn Backend>, BackendError> {
    let backend = build_manager(sys, env)?;
    match (&sys.bmc, sys.verify_bmc) {
        (Some(login), true) => {
            let password = login
                .resolve_password(&sys.name, "bmc")
                .map_err(|e| config_err(sys, e))?;
            Ok(Arc::new(redfish::verify::Verified::new(
                backend,
                bmc_upstream(sys, login, env)?,
                login,
                password,
                redfish::refusal_config(sys),
                sys.bmc_concurrency,
                sys.timeout,
            )))
        }
        _ => Ok(backend),
    }
}

/// The pooled client, throttle and metrics label (`<system>/bmc`) of a system's reads of its
/// servers' own BMCs, with `[systems.bmc]`'s CA bundle and TLS setting.
fn bmc_upstream(
    sys: &SystemConfig,
    login: &crate::config::FleetLogin,
    env: &BackendEnv,
) -> Result<Upstream, BackendError> {
    login_upstream(sys, login, format!("{}/bmc", sys.name), env)
}

/// The upstream of the machines a system leads to with one `FleetLogin` (CIMCs, BMCs): the
/// system's settings with the login's CA bundle and TLS setting, under `label`.
fn login_upstream(
    sys: &SystemConfig,
    login: &crate::config::FleetLogin,
    label: String,
    env: &BackendEnv,
) -> Result<Upstream, BackendError> {
    let mut machines = sys.clone();
    machines.name = label;
    machines.ca_bundle = login.ca_bundle.clone();
    machines.insecure_skip_verify = login.insecure_skip_verify;
    build_upstream(&machines, env)
}

fn build_manager(sys: &SystemConfig, env: &BackendEnv) -> Result<Arc<dyn Backend>, BackendError> {
    // Built per arm: a set of BMCs has no upstream of the system's own.
    let upstream = || build_upstream(sys, env);
    let password = || sys.resolve_password().map_err(|e| config_err(sys, e));
    Ok(match sys.kind {
        SystemKind::Redfish => redfish_bmcs(sys, env)?,
        SystemKind::Oneview => Arc::new(oneview::OneView::new(sys, upstream()?, password()?)?),
        SystemKind::Ucsm => Arc::new(ucsm::Ucsm::new(sys, upstream()?, password()?)?),
        SystemKind::UcsCentral => Arc::new(ucs_central::UcsCentral::new(
            sys,
            upstream()?,
            password()?,
            env.clone(),
        )?),
        SystemKind::Ome => Arc::new(ome::Ome::new(sys, upstream()?, password()?)?),
        SystemKind::Intersight => {
            let key = sys.resolve_api_key().map_err(|e| config_err(sys, e))?;
            let cimc = match &sys.cimc {
                Some(login) => Some(cimc_reader(sys, login, env)?),
                None => None,
            };
            Arc::new(intersight::Intersight::new(sys, upstream()?, key, cimc)?)
        }
    })
}

/// A `redfish` system: its BMCs, reached with `[systems.bmc]`'s CA bundle and TLS setting.
fn redfish_bmcs(sys: &SystemConfig, env: &BackendEnv) -> Result<Arc<dyn Backend>, BackendError> {
    let login = sys.bmc.as_ref().ok_or_else(|| BackendError::Config {
        system: sys.name.clone(),
        detail: "[systems.bmc] is required".into(),
    })?;
    let password = login
        .resolve_password(&sys.name, "bmc")
        .map_err(|e| config_err(sys, e))?;
    let upstream = login_upstream(sys, login, sys.name.clone(), env)?;
    Ok(Arc::new(redfish::RedfishBmcs::new(
        sys, login, upstream, password,
    )?))
}

/// The reader of an Intersight system's CIMCs: their own clients (CA bundle, TLS setting),
/// throttle and metrics label `<system>/cimc`.
fn cimc_reader(
    sys: &SystemConfig,
    login: &crate::config::FleetLogin,
    env: &BackendEnv,
) -> Result<intersight::cimc::Cimc, BackendError> {
    let password = login
        .resolve_password(&sys.name, "cimc")
        .map_err(|e| config_err(sys, e))?;
    let label = format!("{}/cimc", sys.name);
    Ok(intersight::cimc::Cimc::new(
        label.clone(),
        login_upstream(sys, login, label, env)?,
        login,
        password,
    ))
}

/// The pooled clients, throttle and observer of one system's (or domain's) exchanges.
pub(crate) fn build_upstream(
    sys: &SystemConfig,
    env: &BackendEnv,
) -> Result<Upstream, BackendError> {
    Ok(Upstream::new(
        &sys.name,
        [http_client(sys)?, build_http_client(sys)?],
        sys.timeout,
        sys.max_response_bytes,
        Throttle::new(&env.throttle),
        env.observer.clone(),
    ))
}

fn config_err(sys: &SystemConfig, e: ConfigError) -> BackendError {
    BackendError::Config {
        system: sys.name.clone(),
        detail: e.to_string(),
    }
}

/// One pooled HTTPS client per system: rustls, per-request timeout, the system's CA bundle.
pub fn http_client(sys: &SystemConfig) -> Result<reqwest::Client, BackendError> {
    if sys.insecure_skip_verify {
        tracing::warn!(
            system = %sys.name,
            endpoint = ?sys.endpoint.as_ref().map(Url::as_str),
            "TLS certificate verification is DISABLED for this system (insecure_skip_verify = true); \
             anyone on the path can impersonate it and read its credentials"
        );
    }
    build_http_client(sys)
}

fn build_http_client(sys: &SystemConfig) -> Result<reqwest::Client, BackendError> {
    let cfg_err = |detail: String| BackendError::Config {
        system: sys.name.clone(),
        detail,
    };
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(sys.timeout)
        .connect_timeout(sys.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("inventory-gateway/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &sys.ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|e| cfg_err(format!("cannot read ca_bundle {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| cfg_err(format!("ca_bundle {} is not PEM: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(cfg_err(format!(
                "ca_bundle {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if sys.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| cfg_err(format!("cannot build HTTP client: {e}")))
}

/// Maps a transport-level reqwest error to a backend error.
pub fn transport_error(sys: &str, timeout: Duration, e: reqwest::Error) -> BackendError {
    if e.is_timeout() {
        BackendError::Timeout {
            system: sys.to_owned(),
            timeout,
        }
    } else {
        // The chain holds the useful part (refused, TLS verification failure, reset).
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        BackendError::Connect {
            system: sys.to_owned(),
            detail,
        }
    }
}

/// Parses `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Truncates an upstream body for an error message (never the whole page in a log line).
pub fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        s.push('…');
    }
    s
}
