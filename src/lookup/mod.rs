//! The lookup service: the cache, request coalescing, which systems to ask (the known owner, or
//! all of them concurrently), retries and circuit breaking per system, stale-if-error, and
//! turning the systems' answers into one record or one well-defined failure.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use moka::future::Cache;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Config;
use crate::domain::{ServerName, ServerRecord, SystemKind, Vendor};
use crate::resilience::{retry, CircuitBreaker, RetryPolicy};
use crate::vendors::{Backend, BackendError};

mod cache;
pub mod singleflight;
mod systems;

pub use cache::Cached;
use cache::Key;
use singleflight::{Role, SingleFlight};
pub use systems::{System, SystemStatus};

/// A server found in some system, as listed in an ambiguity error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub system_name: String,
    pub system: SystemKind,
    pub system_id: String,
    pub name: String,
}

impl From<&ServerRecord> for Candidate {
    fn from(r: &ServerRecord) -> Self {
        Self {
            system_name: r.system_name.clone(),
            system: r.system,
            system_id: r.system_id.clone(),
            name: r.name.clone(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error("no management system is configured for vendor {0}")]
    NoSystemForVendor(Vendor),
    #[error("server not found in {searched:?}")]
    NotFound { searched: Vec<String> },
    #[error("the name matches {} servers", candidates.len())]
    Ambiguous {
        searched: Vec<String>,
        candidates: Vec<Candidate>,
    },
    #[error("{0}")]
    Unassigned(BackendError),
    /// Some systems could not answer and none of the others found the server, so "not found"
    /// cannot be claimed.
    #[error("{} system(s) failed", failures.len())]
    Upstream {
        searched: Vec<String>,
        failures: Vec<BackendError>,
    },
    #[error("internal error: the lookup task failed")]
    Internal,
}

impl LookupError {
    pub fn searched(&self) -> &[String] {
        match self {
            Self::NotFound { searched }
            | Self::Ambiguous { searched, .. }
            | Self::Upstream { searched, .. } => searched,
            Self::NoSystemForVendor(_) | Self::Unassigned(_) | Self::Internal => &[],
        }
    }
}

/// Where an answer came from, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub record: ServerRecord,
    pub cache: CacheStatus,
    /// Time since the record was fetched from its system.
    pub age: Duration,
}

/// Told about what the lookup service does (metrics). All methods default to nothing.
pub trait LookupEvents: Send + Sync {
    /// `hit`, `miss`, `stale` or `negative_hit`.
    fn cache(&self, _outcome: &str) {}
    fn coalesced(&self) {}
    fn retry(&self, _system: &str) {}
    fn eviction(&self) {}
}

pub struct NoEvents;
impl LookupEvents for NoEvents {}

#[derive(Debug, Clone)]
pub struct LookupConfig {
    pub cache: crate::config::CacheConfig,
    pub retry: RetryPolicy,
    /// Bound on one system's whole answer, retries included.
    pub deadline: Duration,
}

impl LookupConfig {
    pub fn from_config(config: &Config) -> Self {
        Self {
            cache: config.cache.clone(),
            retry: config.retry.clone(),
            deadline: config.server.lookup_timeout,
        }
    }
}

type Shared = Arc<Result<ServerRecord, LookupError>>;

struct Inner {
    systems: Vec<Arc<System>>,
    cache: Cache<Key, Arc<Cached>>,
    owners: Cache<String, usize>,
    flights: SingleFlight<Key, Shared>,
    config: LookupConfig,
    events: Arc<dyn LookupEvents>,
}

#[derive(Clone)]
pub struct LookupService {
    inner: Arc<Inner>,
}

impl LookupService {
    pub fn new(
        systems: Vec<(Arc<dyn Backend>, CircuitBreaker)>,
        config: LookupConfig,
        events: Arc<dyn LookupEvents>,
    ) -> Self {
        let on_evict = events.clone();
        Self {
            inner: Arc::new(Inner {
                systems: systems
                    .into_iter()
                    .map(|(b, cb)| Arc::new(System::new(b, cb)))
                    .collect(),
                cache: cache::build(&config.cache, Arc::new(move || on_evict.eviction())),
                owners: cache::build_owners(&config.cache),
                flights: SingleFlight::default(),
                config,
                events,
            }),
        }
    }

    pub fn systems(&self) -> &[Arc<System>] {
        &self.inner.systems
    }

    pub fn statuses(&self) -> Vec<SystemStatus> {
        self.inner.systems.iter().map(|s| s.status()).collect()
    }

    pub fn cached_entries(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// The record for `name`: from the cache when fresh, else from its system(s), coalesced
    /// with any identical lookup under way; stale from the cache when the systems fail.
    pub async fn get(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
        refresh: bool,
    ) -> Result<Answer, LookupError> {
        let inner = &self.inner;
        let key: Key = (name.folded(), vendor);
        let cached = inner.cache.get(&key).await;
        if !refresh {
            match cached.as_deref() {
                Some(Cached::Found { record, at }) if at.elapsed() < inner.config.cache.ttl => {
                    inner.events.cache("hit");
                    return Ok(Answer {
                        record: record.clone(),
                        cache: CacheStatus::Hit,
                        age: at.elapsed(),
                    });
                }
                Some(Cached::NotFound { searched, .. }) => {
                    inner.events.cache("negative_hit");
                    return Err(LookupError::NotFound {
                        searched: searched.clone(),
                    });
                }
                _ => {}
            }
        }
        inner.events.cache("miss");
        let this = self.inner.clone();
        let (flight_name, task_key) = (name.clone(), key.clone());
        let (shared, role) = inner
            .flights
            .run(key, move || async move {
                let result = this.resolve(&flight_name, vendor).await;
                this.remember(task_key, &result).await;
                Arc::new(result)
            })
            .await;
        if role == Role::Waiter {
            inner.events.coalesced();
        }
        let Some(shared) = shared else {
            return Err(LookupError::Internal);
        };
        match (&*shared, cached.as_deref()) {
            (Ok(record), _) => Ok(Answer {
                record: record.clone(),
                cache: CacheStatus::Miss,
                age: Duration::ZERO,
            }),
            (Err(e @ LookupError::Upstream { .. }), Some(Cached::Found { record, at }))
                if at.elapsed() <= inner.config.cache.max_stale =>
            {
                tracing::warn!(server = %name, error = %e, age_s = at.elapsed().as_secs(), "serving a stale record: its system failed");
                inner.events.cache("stale");
                let mut record = record.clone();
                record.stale = true;
                Ok(Answer {
                    record,
                    cache: CacheStatus::Stale,
                    age: at.elapsed(),
                })
            }
            (Err(e), _) => Err(e.clone()),
        }
    }

    /// Forgets everything cached about `name` (all vendor hints, and its owner).
    pub async fn purge(&self, name: &ServerName) -> usize {
        let folded = name.folded();
        let mut removed = 0;
        let hints = [
            None,
            Some(Vendor::Hpe),
            Some(Vendor::Cisco),
            Some(Vendor::Dell),
        ];
        for hint in hints {
            if self
                .inner
                .cache
                .remove(&(folded.clone(), hint))
                .await
                .is_some()
            {
                removed += 1;
            }
        }
        self.inner.owners.invalidate(&folded).await;
        removed
    }

    /// Ends every vendor session (on shutdown).
    pub async fn logout_all(&self) {
        join_all(self.inner.systems.iter().map(|s| s.backend.logout())).await;
    }
}

impl Inner {
    async fn remember(&self, key: Key, result: &Result<ServerRecord, LookupError>) {
        match result {
            Ok(record) => {
                if let Some(idx) = self
                    .systems
                    .iter()
                    .position(|s| s.name() == record.system_name)
                {
                    self.owners.insert(key.0.clone(), idx).await;
                }
                let at = Instant::now();
                let entry = Cached::Found {
                    record: record.clone(),
                    at,
                };
                self.cache.insert(key, Arc::new(entry)).await;
            }
            Err(LookupError::NotFound { searched }) => {
                let entry = Cached::NotFound {
                    searched: searched.clone(),
                    at: Instant::now(),
                };
                self.cache.insert(key, Arc::new(entry)).await;
            }
            // Failures are not remembered: the previous good record stays for stale-if-error.
            Err(_) => {}
        }
    }

    async fn resolve(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
    ) -> Result<ServerRecord, LookupError> {
        if vendor.is_none() {
            if let Some(answer) = self.ask_known_owner(name).await {
                return answer;
            }
        }
        let targets: Vec<&Arc<System>> = self
            .systems
            .iter()
            .filter(|s| vendor.is_none_or(|v| s.backend.kind().vendor() == v))
            .collect();
        if targets.is_empty() {
            // Config validation guarantees a system, so only a vendor hint can get here.
            return Err(vendor.map_or(LookupError::Internal, LookupError::NoSystemForVendor));
        }
        let searched: Vec<String> = targets.iter().map(|s| s.name().to_owned()).collect();
        let answers = join_all(targets.iter().map(|s| self.ask(s, name))).await;
        combine(searched, answers)
    }

    /// Asks only the system that owned `name` last time. `None` = no known owner, or the owner
    /// no longer has it (the caller then fans out).
    async fn ask_known_owner(
        &self,
        name: &ServerName,
    ) -> Option<Result<ServerRecord, LookupError>> {
        let folded = name.folded();
        let system = self.systems.get(self.owners.get(&folded).await?)?;
        let searched = vec![system.name().to_owned()];
        match self.ask(system, name).await {
            Ok(found) if found.is_empty() => {
                self.owners.invalidate(&folded).await;
                None
            }
            answer => Some(combine(searched, vec![answer])),
        }
    }

    /// One system's answer, through its breaker, with retries, within the deadline.
    async fn ask(
        &self,
        system: &System,
        name: &ServerName,
    ) -> Result<Vec<ServerRecord>, BackendError> {
        let permit = match system.breaker.try_acquire() {
            Ok(p) => p,
            Err(rejected) => {
                return Err(BackendError::Unavailable {
                    system: system.name().to_owned(),
                    reason: "circuit breaker open after repeated failures".into(),
                    retry_after: rejected.retry_after,
                })
            }
        };
        let span = tracing::info_span!("system_lookup", system = system.name(), kind = %system.backend.kind());
        let started = Instant::now();
        let deadline = started + self.config.deadline;
        let attempts = retry(
            &self.config.retry,
            deadline,
            || system.backend.find(name),
            |e, attempt, wait| {
                self.events.retry(system.name());
                tracing::info!(system = system.name(), attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
            },
        );
        let result = match tokio::time::timeout_at(deadline, attempts.instrument(span)).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout {
                system: system.name().to_owned(),
                timeout: self.config.deadline,
            }),
        };
        match &result {
            Ok(_) => {
                permit.success();
                system.record_success(started.elapsed());
            }
            Err(e) if e.is_system_failure() => {
                permit.failure();
                system.record_failure(&e.to_string());
            }
            // The system answered sensibly (unassigned) or the gateway held back (throttled).
            Err(BackendError::Unassigned { .. }) => permit.success(),
            Err(_) => drop(permit),
        }
        result
    }
}

/// One record when exactly one server matched; otherwise the reason why not.
fn combine(
    searched: Vec<String>,
    answers: Vec<Result<Vec<ServerRecord>, BackendError>>,
) -> Result<ServerRecord, LookupError> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for answer in answers {
        match answer {
            Ok(records) => found.extend(records),
            Err(e) => failures.push(e),
        }
    }
    match found.len() {
        // A system that failed might also hold the name, but one good answer is worth more to a
        // caller than a 502; the failure is logged for the operator.
        1 => {
            for f in &failures {
                tracing::warn!(system = f.system(), error = %f, "system failed during fan-out; answering from the system that found the server");
            }
            found.pop().ok_or(LookupError::NotFound { searched })
        }
        0 if failures.is_empty() => Err(LookupError::NotFound { searched }),
        0 => {
            if failures.len() == 1 && matches!(failures[0], BackendError::Unassigned { .. }) {
                let only = failures.remove(0);
                return Err(LookupError::Unassigned(only));
            }
            Err(LookupError::Upstream { searched, failures })
        }
        _ => Err(LookupError::Ambiguous {
            searched,
            candidates: found.iter().map(Candidate::from).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(system: &str) -> ServerRecord {
        ServerRecord {
            name: "web-01".into(),
            vendor: Vendor::Hpe,
            system: SystemKind::Oneview,
            system_name: system.into(),
            system_id: format!("/rest/server-profiles/{system}"),
            bmc: None,
            nics: vec![],
            boot_mac: None,
            serial_number: None,
            model: None,
            power_state: None,
            fetched_at: chrono::Utc::now(),
            stale: false,
        }
    }

    fn timeout(system: &str) -> BackendError {
        BackendError::Timeout {
            system: system.into(),
            timeout: Duration::from_secs(1),
        }
    }

    fn searched() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn one_match_wins_even_if_another_system_failed() {
        let r = combine(searched(), vec![Ok(vec![record("a")]), Err(timeout("b"))]).unwrap();
        assert_eq!(r.system_name, "a");
    }

    #[test]
    fn nothing_anywhere_is_not_found() {
        let e = combine(searched(), vec![Ok(vec![]), Ok(vec![])]).unwrap_err();
        assert!(matches!(e, LookupError::NotFound { .. }));
        assert_eq!(e.searched(), &["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_failure_prevents_claiming_not_found() {
        let e = combine(searched(), vec![Ok(vec![]), Err(timeout("b"))]).unwrap_err();
        assert!(matches!(e, LookupError::Upstream { ref failures, .. } if failures.len() == 1));
    }

    #[test]
    fn two_matches_are_ambiguous() {
        let e = combine(
            searched(),
            vec![Ok(vec![record("a")]), Ok(vec![record("b")])],
        )
        .unwrap_err();
        let LookupError::Ambiguous { candidates, .. } = e else {
            panic!("expected ambiguity, got {e:?}")
        };
        assert_eq!(candidates.len(), 2);
    }

    #[test]
    fn unassigned_profile_is_reported_as_such() {
        let unassigned = BackendError::Unassigned {
            system: "a".into(),
            profile: "web-01".into(),
        };
        let e = combine(searched(), vec![Err(unassigned), Ok(vec![])]).unwrap_err();
        assert!(matches!(e, LookupError::Unassigned(_)));
    }
}
