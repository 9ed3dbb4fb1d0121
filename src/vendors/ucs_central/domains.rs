//! The UCS Manager domains behind one UCS Central: each reached with the fleet-wide UCS Manager
//! login (or its override), each with its own session, throttle, breaker and history.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use super::Registered;
use crate::config::{DomainOverride, FleetLogin, SystemConfig};
use crate::domain::{ServerName, ServerRecord, SystemKind};
use crate::resilience::{BreakerState, CircuitBreaker};
use crate::vendors::ucsm::Ucsm;
use crate::vendors::{build_upstream, Backend, BackendEnv, BackendError};

/// One domain behind a UCS Central, as `GET /vendors` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// `<central>/<address>`: the label of its metrics and logs.
    pub name: String,
    /// The domain's name in UCS Central.
    pub domain_name: String,
    /// As UCS Central reports it.
    pub address: String,
    pub endpoint: String,
    pub breaker: BreakerState,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    /// Whole text for `admin` callers; see [`MemberStatus::redacted`].
    pub last_error: Option<String>,
    #[serde(skip)]
    error: Option<BackendError>,
}

impl MemberStatus {
    /// What a caller without the `admin` scope may see: the failure's kind, not its internals.
    pub fn redacted(mut self) -> Self {
        self.last_error = self.error.as_ref().map(BackendError::public_text);
        self
    }
}

pub(super) struct Domains {
    central: String,
    base: SystemConfig,
    login: FleetLogin,
    password: SecretString,
    overrides: Vec<(DomainOverride, Option<SecretString>)>,
    env: BackendEnv,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Every domain Central listed, by lower-cased address.
    listed: HashMap<String, Registered>,
    /// Domains asked at least once, by lower-cased address.
    open: HashMap<String, Arc<Domain>>,
}

impl Domains {
    pub fn new(sys: &SystemConfig, env: BackendEnv) -> Result<Self, BackendError> {
        let config_err = |detail: String| BackendError::Config {
            system: sys.name.clone(),
            detail,
        };
        let login = sys
            .ucsm
            .clone()
            .ok_or_else(|| config_err("[systems.ucsm] is required for ucs-central".into()))?;
        let password = login
            .resolve_password(&sys.name, "ucsm")
            .map_err(|e| config_err(e.to_string()))?;
        let overrides = sys
            .domains
            .iter()
            .map(|d| {
                d.resolve_password(&sys.name)
                    .map(|p| (d.clone(), p))
                    .map_err(|e| config_err(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            central: sys.name.clone(),
            base: sys.clone(),
            login,
            password,
            overrides,
            env,
            state: Mutex::new(State::default()),
        })
    }

    pub fn discovered(&self, listed: Vec<Registered>) {
        if let Ok(mut state) = self.state.lock() {
            state.listed = listed
                .into_iter()
                .map(|r| (r.address.to_ascii_lowercase(), r))
                .collect();
        }
    }

    /// The domain Central lists at `address` (any letter case), as last read.
    pub fn listed(&self, address: &str) -> Option<Registered> {
        let state = self.state.lock().ok()?;
        state.listed.get(&address.to_ascii_lowercase()).cloned()
    }

    /// The domain's client, created on first use.
    pub fn client(&self, registered: &Registered) -> Result<Arc<Domain>, BackendError> {
        let key = registered.address.to_ascii_lowercase();
        let mut state = self
            .state
            .lock()
            .map_err(|_| self.config_error(registered, "domain table poisoned".into()))?;
        if let Some(d) = state.open.get(&key) {
            return Ok(d.clone());
        }
        let domain = Arc::new(self.build(registered)?);
        state.open.insert(key, domain.clone());
        Ok(domain)
    }

    pub fn open(&self) -> Vec<Arc<Domain>> {
        self.state
            .lock()
            .map(|s| s.open.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every listed domain (and any asked one Central no longer lists), sorted by label.
    pub fn statuses(&self) -> Vec<MemberStatus> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut out: Vec<MemberStatus> = state.open.values().map(|d| d.status()).collect();
        for (key, r) in &state.listed {
            if !state.open.contains_key(key) {
                out.push(MemberStatus {
                    name: self.label(&r.address),
                    domain_name: r.name.clone(),
                    address: r.address.clone(),
                    endpoint: self
                        .endpoint(&r.address)
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    breaker: BreakerState::Closed,
                    last_success: None,
                    last_failure: None,
                    last_error: None,
                    error: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn label(&self, address: &str) -> String {
        format!("{}/{address}", self.central)
    }

    fn override_for(&self, address: &str) -> Option<&(DomainOverride, Option<SecretString>)> {
        self.overrides
            .iter()
            .find(|(o, _)| o.address.eq_ignore_ascii_case(address))
    }

    /// `scheme://address:port/` unless an override says otherwise. The address comes from
    /// Central: only an IP or a DNS name is accepted, so it can never smuggle a path, a user
    /// or another port into the URL the domain login is sent to.
    fn endpoint(&self, address: &str) -> Result<Url, String> {
        if let Some(url) = self
            .override_for(address)
            .and_then(|(o, _)| o.endpoint.clone())
        {
            return Ok(url);
        }
        let host = match address.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            Ok(IpAddr::V4(ip)) => ip.to_string(),
            Err(_) if is_dns_name(address) => address.to_owned(),
            Err(_) => {
                return Err(format!(
                    "{address:?} is neither an IP address nor a DNS name"
                ))
            }
        };
        Url::parse(&format!(
            "{}://{host}:{}/",
            self.login.scheme, self.login.port
        ))
        .map_err(|e| format!("no URL for domain address {address:?}: {e}"))
    }

    fn config_error(&self, registered: &Registered, detail: String) -> BackendError {
        BackendError::Config {
            system: self.label(&registered.address),
            detail,
        }
    }

    fn build(&self, registered: &Registered) -> Result<Domain, BackendError> {
        let label = self.label(&registered.address);
        let endpoint = self
            .endpoint(&registered.address)
            .map_err(|d| self.config_error(registered, d))?;
        let over = self.override_for(&registered.address);
        let mut sys = self.base.clone();
        sys.name = label.clone();
        sys.kind = SystemKind::Ucsm;
        sys.endpoint = Some(endpoint.clone());
        sys.username = over
            .and_then(|(o, _)| o.username.clone())
            .unwrap_or_else(|| self.login.username.clone());
        sys.password = None;
        sys.password_file = None;
        sys.ca_bundle = over
            .and_then(|(o, _)| o.ca_bundle.clone())
            .or_else(|| self.login.ca_bundle.clone());
        sys.insecure_skip_verify = self.login.insecure_skip_verify;
        sys.ucsm = None;
        sys.domains = Vec::new();
        let password = over
            .and_then(|(_, p)| p.clone())
            .unwrap_or_else(|| self.password.clone());
        let upstream = build_upstream(&sys, &self.env)?;
        let mut breaker = CircuitBreaker::new(label.clone(), self.env.breaker.clone());
        if let Some(observer) = &self.env.breaker_observer {
            breaker = breaker.with_observer(observer.clone());
        }
        tracing::info!(system = %self.central, domain = %label, endpoint = %endpoint, "UCS domain first used");
        Ok(Domain {
            label,
            address: registered.address.clone(),
            domain_name: registered.name.clone(),
            endpoint,
            ucsm: Ucsm::new(&sys, upstream, password)?,
            breaker,
            history: Mutex::new(History::default()),
        })
    }
}

/// RFC 1123 labels joined by dots.
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub(super) struct Domain {
    label: String,
    address: String,
    domain_name: String,
    endpoint: Url,
    ucsm: Ucsm,
    breaker: CircuitBreaker,
    history: Mutex<History>,
}

#[derive(Default)]
struct History {
    last_success: Option<DateTime<Utc>>,
    last_failure: Option<DateTime<Utc>>,
    last_error: Option<BackendError>,
}

impl Domain {
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The domain's UCS Manager lookup, through the domain's own breaker.
    pub async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        self.guarded(self.ucsm.find(name)).await
    }

    /// The domain's whole fleet (a sweep), through the domain's own breaker, as the gateway
    /// sweeps any system: only while that breaker is closed (a half-open breaker's probes are
    /// for lookups), and an unreadable listing or a timeout (the sweep's own bounds) does not
    /// count against it.
    pub async fn list(&self) -> Result<crate::vendors::FleetListing, BackendError> {
        if self.breaker.state() != crate::resilience::BreakerState::Closed {
            return Err(BackendError::Unavailable {
                system: self.label.clone(),
                reason: "circuit breaker not closed: the sweep waits for it to close".into(),
                retry_after: std::time::Duration::from_secs(1),
            });
        }
        match self.ucsm.list().await {
            Err(e @ (BackendError::Protocol { .. } | BackendError::Timeout { .. })) => Err(e),
            other => self.guarded(async { other }).await,
        }
    }

    /// `call` if the breaker lets it through, its outcome recorded in the breaker and history.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|rejected| BackendError::Unavailable {
                system: self.label.clone(),
                reason: "circuit breaker open after repeated failures".into(),
                retry_after: rejected.retry_after,
            })?;
        let started = Instant::now();
        let result = call.await;
        match &result {
            Ok(_) | Err(BackendError::Unassigned { .. }) => {
                permit.success();
                if let Ok(mut h) = self.history.lock() {
                    h.last_success = Some(Utc::now());
                }
                tracing::debug!(domain = %self.label, elapsed_ms = started.elapsed().as_millis() as u64, "UCS domain answered");
            }
            Err(e) if e.is_system_failure() => {
                permit.failure();
                tracing::warn!(domain = %self.label, error = %e, "UCS domain lookup failed");
                if let Ok(mut h) = self.history.lock() {
                    h.last_failure = Some(Utc::now());
                    h.last_error = Some(e.clone());
                }
            }
            Err(_) => drop(permit),
        }
        result
    }

    pub async fn logout(&self) {
        self.ucsm.logout().await;
    }

    fn status(&self) -> MemberStatus {
        let (last_success, last_failure, error) = match self.history.lock() {
            Ok(h) => (h.last_success, h.last_failure, h.last_error.clone()),
            Err(_) => (None, None, None),
        };
        MemberStatus {
            name: self.label.clone(),
            domain_name: self.domain_name.clone(),
            address: self.address.clone(),
            endpoint: self.endpoint.to_string(),
            breaker: self.breaker.state(),
            last_success,
            last_failure,
            last_error: error.as_ref().map(BackendError::to_string),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_addresses_and_dns_names_become_domain_hosts() {
        for ok in ["10.1.2.3", "ucs-a.example.com", "ucs1"] {
            assert!(ok.parse::<IpAddr>().is_ok() || is_dns_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "user@host", "host:8443", "a..b", "-a.b", "a b"] {
            assert!(bad.parse::<IpAddr>().is_err() && !is_dns_name(bad), "{bad}");
        }
    }
}
