//! The lookup service: the cache, request coalescing, fair admission of cold lookups between
//! callers, which systems to ask (all of them concurrently, minus those known not to hold the
//! name, or only the known owner when nothing is cached), retries and circuit breaking per
//! system, stale-if-error and stale-on-deadline, and turning the systems' answers into one
//! record or one well-defined failure (`combine`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use moka::future::Cache;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Config;
use crate::domain::{ServerName, ServerRecord, SystemKind, Vendor};
use crate::fleet::Fleet;
use crate::resilience::{retry, CircuitBreaker, RetryPolicy};
use crate::vendors::{Backend, BackendError};

mod admission;
mod cache;
mod combine;
pub mod singleflight;
mod systems;

use admission::Admission;
pub use admission::{Busy, CallerKey};
use cache::Key;
pub use cache::{Cached, Stored};
use combine::{combine, holders_after, Heard};
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
    /// This caller already has as many cold lookups running and queued as it may.
    #[error("too many lookups in flight for this caller")]
    CallerBusy { retry_after: Duration },
}

impl LookupError {
    pub fn searched(&self) -> &[String] {
        match self {
            Self::NotFound { searched }
            | Self::Ambiguous { searched, .. }
            | Self::Upstream { searched, .. } => searched,
            Self::NoSystemForVendor(_)
            | Self::Unassigned(_)
            | Self::Internal
            | Self::CallerBusy { .. } => &[],
        }
    }
}

/// A record that cannot be rendered as JSON, or parsed back from it: never expected (every field
/// is a string, a number or a list of them), so it is an internal error, not the system's.
fn render_failed(e: serde_json::Error) -> LookupError {
    tracing::error!(error = %e, "cannot render or re-read a server record");
    LookupError::Internal
}

/// Where an answer came from, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
    /// From the fleet index (a sweep), not from a lookup of this name.
    Index,
}

impl CacheStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Index => "index",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    /// The record, rendered once (shared with the cache).
    pub record: Arc<Stored>,
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
    /// A fleet sweep of `system` ended: `ok` or `error`, after `elapsed`, having sent `calls`.
    fn sweep(&self, _system: &str, _outcome: &str, _elapsed: Duration, _calls: u64) {}
}

pub struct NoEvents;
impl LookupEvents for NoEvents {}

#[derive(Debug, Clone)]
pub struct LookupConfig {
    pub cache: crate::config::CacheConfig,
    pub retry: RetryPolicy,
    /// Bound on one system's whole answer, retries included.
    pub deadline: Duration,
    pub admission: admission::Limits,
    pub fleet: crate::config::FleetConfig,
    /// Each system's outbound throttle, in the order of the systems (a sweep's share is
    /// taken from it).
    pub throttles: Vec<crate::resilience::ThrottleConfig>,
}

impl LookupConfig {
    pub fn from_config(config: &Config) -> Self {
        Self {
            cache: config.cache.clone(),
            retry: config.retry.clone(),
            deadline: config.server.lookup_timeout,
            admission: admission::Limits {
                total: config.server.max_cold_lookups,
                per_caller: config.server.max_cold_lookups_per_caller,
                queue_per_caller: config.server.max_queued_per_caller,
            },
            fleet: config.fleet.clone(),
            throttles: config
                .systems
                .iter()
                .map(|s| s.throttle_or(&config.throttle).clone())
                .collect(),
        }
    }
}

type Shared = Arc<Result<Arc<Stored>, LookupError>>;
/// A flight is keyed by the cache key and by whether it asks every system: a lookup that must
/// (refresh, revalidation) never joins one that may take the owner short cut.
type FlightKey = (Key, bool);

struct Inner {
    systems: Vec<Arc<System>>,
    cache: Cache<Key, Arc<Cached>>,
    owners: Cache<String, usize>,
    /// System `i` said "not here" for the folded name (kept `negative_ttl`).
    absent: cache::Absent,
    /// Names seen held by two or more systems, with those holders (kept `owner_ttl`).
    holders: Cache<String, Arc<Vec<Candidate>>>,
    flights: SingleFlight<FlightKey, Shared>,
    admission: Arc<Admission>,
    fleet: Arc<Fleet>,
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
        let systems: Vec<Arc<System>> = systems
            .into_iter()
            .map(|(b, cb)| Arc::new(System::new(b, cb)))
            .collect();
        let fleet = Arc::new(Fleet::new(
            &systems,
            &config.throttles,
            config.fleet.clone(),
            config.retry.clone(),
            events.clone(),
        ));
        Self {
            inner: Arc::new(Inner {
                systems,
                fleet,
                cache: cache::build(&config.cache, Arc::new(move || on_evict.eviction())),
                owners: cache::build_owners(&config.cache),
                absent: cache::Absent::new(&config.cache),
                holders: cache::build_holders(&config.cache),
                flights: SingleFlight::default(),
                admission: Admission::new(config.admission),
                config,
                events,
            }),
        }
    }

    /// The fleet index (sweeps, listings, reverse lookups).
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.inner.fleet
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

    /// Names one bulk lookup resolves at once: never more than one caller may run cold.
    pub fn bulk_concurrency(&self) -> usize {
        let config = &self.inner.config;
        config
            .fleet
            .lookup_concurrency
            .min(config.admission.per_caller)
            .max(1)
    }

    /// Cold lookups running now, over all callers.
    pub fn cold_lookups_running(&self) -> usize {
        self.inner.admission.running()
    }

    /// The record for `name`: from the cache when fresh, else from its system(s), coalesced
    /// with any identical lookup under way and admitted fairly among `caller` and the other
    /// callers; stale from the cache when the systems fail or do not answer within the stale
    /// deadline.
    pub async fn get(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
        refresh: bool,
        caller: &CallerKey,
    ) -> Result<Answer, LookupError> {
        let inner = &self.inner;
        let key: Key = (name.folded(), vendor);
        let cached = inner.cache.get(&key).await;
        if !refresh {
            if let Some(Cached::Found { record, at }) = cached.as_deref() {
                let age = at.elapsed();
                if age < inner.fresh_for(record.provisional()) {
                    inner.events.cache("hit");
                    return Ok(Answer {
                        record: record.clone(),
                        cache: CacheStatus::Hit,
                        age,
                    });
                }
            }
            if let Some((record, age)) = inner.index_answer(name, vendor, cached.as_deref()).await {
                inner.events.cache("index");
                return Ok(Answer {
                    record: Arc::new(Stored::render(&record).map_err(render_failed)?),
                    cache: CacheStatus::Index,
                    age,
                });
            }
            if let Some(Cached::NotFound { searched, .. }) = cached.as_deref() {
                inner.events.cache("negative_hit");
                return Err(LookupError::NotFound {
                    searched: searched.clone(),
                });
            }
        }
        inner.events.cache("miss");
        let stale = match cached.as_deref() {
            Some(Cached::Found { record, at }) if at.elapsed() <= inner.config.cache.max_stale => {
                Some((record.clone(), *at))
            }
            _ => None,
        };
        // Only a name with nothing cached may take the owner short cut: an expired record is
        // revalidated against every system, so a name that appeared in a second system since
        // becomes a 409.
        let thorough = refresh || cached.is_some();
        let this = self.inner.clone();
        let (flight_name, task_key) = (name.clone(), key.clone());
        // Only a lookup that starts a flight takes a place in the admission: joining one under
        // way costs the systems nothing.
        let admission = inner.admission.clone();
        let flight = inner.flights.try_run((key, thorough), move || {
            let reservation = admission.reserve(caller)?;
            Ok(async move {
                let _slot = reservation.admitted().await;
                let result = this.resolve(&flight_name, vendor, thorough, refresh).await;
                Arc::new(this.remember(task_key, result).await)
            })
        });
        let flight = async move {
            flight.await.map_err(|busy: Busy| LookupError::CallerBusy {
                retry_after: busy.retry_after,
            })
        };
        let (shared, role) = match &stale {
            Some((record, at)) if !refresh => {
                match tokio::time::timeout(inner.config.cache.stale_deadline, flight).await {
                    // A caller over its share of cold lookups still gets what the cache holds:
                    // refusing it would take the record away exactly when its system hangs.
                    Ok(Err(LookupError::CallerBusy { .. })) => {
                        tracing::debug!(server = %name, "caller busy: serving the stale record");
                        return inner.serve_stale(name, vendor, record.clone(), *at).await;
                    }
                    Ok(outcome) => outcome?,
                    // The revalidation goes on in its own task and caches what it finds.
                    Err(_) => {
                        tracing::debug!(server = %name, age_s = at.elapsed().as_secs(), "serving a stale record: its systems did not answer within the stale deadline");
                        return inner.serve_stale(name, vendor, record.clone(), *at).await;
                    }
                }
            }
            _ => flight.await?,
        };
        if role == Role::Waiter {
            inner.events.coalesced();
        }
        let Some(shared) = shared else {
            return Err(LookupError::Internal);
        };
        match (&*shared, stale) {
            (Ok(record), _) => Ok(Answer {
                record: record.clone(),
                cache: CacheStatus::Miss,
                age: Duration::ZERO,
            }),
            (Err(e @ LookupError::Upstream { .. }), Some((record, at))) => {
                tracing::debug!(server = %name, error = %e, age_s = at.elapsed().as_secs(), "serving a stale record: its system failed");
                inner.serve_stale(name, vendor, record, at).await
            }
            (Err(e), _) => Err(e.clone()),
        }
    }

    /// Forgets everything cached about `name` (all vendor hints, its owner, which systems said
    /// they do not hold it, and its remembered holders).
    pub async fn purge(&self, name: &ServerName) -> usize {
        let folded = name.folded();
        let mut removed = 0;
        let hints = [
            None,
            Some(Vendor::Hpe),
            Some(Vendor::Cisco),
            Some(Vendor::Dell),
            Some(Vendor::Supermicro),
            Some(Vendor::Lenovo),
            Some(Vendor::Other),
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
        self.inner.absent.forget(&folded).await;
        self.inner.holders.invalidate(&folded).await;
        self.inner.owners.invalidate(&folded).await;
        removed
    }

    /// Ends every vendor session (on shutdown).
    pub async fn logout_all(&self) {
        join_all(self.inner.systems.iter().map(|s| s.backend.logout())).await;
    }
}

impl Inner {
    /// The fleet index's answer, unless the live path knows better: a name it has seen held
    /// by two systems stays for the live path to answer (409), and what it cached after the
    /// sweep the index entry comes from (a record, a "not found") wins over that entry.
    async fn index_answer(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
        cached: Option<&Cached>,
    ) -> Option<(ServerRecord, Duration)> {
        let (record, age) = self.fleet.answer(name, vendor)?;
        // Anything the live path learned about this name after that sweep (an expired record,
        // a "not found") is newer than the index: the live path answers.
        if let Some(Cached::NotFound { at, .. } | Cached::Found { at, .. }) = cached {
            if at.elapsed() < age {
                return None;
            }
        }
        if let Some(known) = self.holders.get(&name.folded()).await {
            let relevant = known
                .iter()
                .filter(|c| vendor.is_none_or(|v| c.system.may_hold(v)))
                .count();
            if relevant >= 2 {
                return None;
            }
        }
        Some((record, age))
    }

    /// An answer that could not hear from every system is only trusted briefly.
    /// Unverified answers, and records whose NICs the system could not tell (a CIMC still
    /// taking inventory), are fresh only for `negative_ttl`.
    fn fresh_for(&self, provisional: bool) -> Duration {
        if !provisional {
            self.config.cache.ttl
        } else {
            self.config.cache.ttl.min(self.config.cache.negative_ttl)
        }
    }

    /// The systems a lookup with this hint asks, with their indexes.
    fn targets(&self, vendor: Option<Vendor>) -> Vec<(usize, &Arc<System>)> {
        self.systems
            .iter()
            .enumerate()
            .filter(|(_, s)| vendor.is_none_or(|v| s.backend.kind().may_hold(v)))
            .collect()
    }

    /// The systems among `targets`, other than `holder`, that might hold the name: not asked
    /// now, and not having said "not here" within `negative_ttl`.
    async fn not_heard_from(
        &self,
        folded: &str,
        targets: &[(usize, &Arc<System>)],
        holder: &str,
    ) -> Vec<String> {
        let mut unheard = Vec::new();
        for (i, s) in targets {
            if s.name() != holder && !self.absent.contains(folded, *i).await {
                unheard.push(s.name().to_owned());
            }
        }
        unheard
    }

    /// The cached record, marked stale, listing every system that might also hold the name and
    /// has not said otherwise lately; a name known to be held by two systems stays a 409.
    async fn serve_stale(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
        stored: Arc<Stored>,
        at: Instant,
    ) -> Result<Answer, LookupError> {
        let mut record = stored.record().map_err(render_failed)?;
        let folded = name.folded();
        let targets = self.targets(vendor);
        if let Some(known) = self.holders.get(&folded).await {
            let relevant: Vec<Candidate> = known
                .iter()
                .filter(|c| targets.iter().any(|(_, s)| s.name() == c.system_name))
                .cloned()
                .collect();
            if relevant.len() >= 2 {
                return Err(LookupError::Ambiguous {
                    searched: targets.iter().map(|(_, s)| s.name().to_owned()).collect(),
                    candidates: relevant,
                });
            }
        }
        record.unverified = self
            .not_heard_from(&folded, &targets, &record.system_name)
            .await;
        record.stale = true;
        self.events.cache("stale");
        Ok(Answer {
            record: Arc::new(Stored::render(&record).map_err(render_failed)?),
            cache: CacheStatus::Stale,
            age: at.elapsed(),
        })
    }

    /// Caches what a flight found (rendered once, here) and hands it to every caller of the
    /// flight.
    async fn remember(
        &self,
        key: Key,
        result: Result<ServerRecord, LookupError>,
    ) -> Result<Arc<Stored>, LookupError> {
        let record = match result {
            Ok(record) => record,
            Err(e) => {
                self.remember_failure(key, &e).await;
                return Err(e);
            }
        };
        let stored = Arc::new(Stored::render(&record).map_err(render_failed)?);
        // Only an answer that heard from every system may spare the next fan-out: not one that
        // asked only the systems of a vendor hint.
        if record.unverified.is_empty() && key.1.is_none() {
            if let Some(idx) = self
                .systems
                .iter()
                .position(|s| s.name() == record.system_name)
            {
                self.owners.insert(key.0.clone(), idx).await;
            }
        }
        let entry = Cached::Found {
            record: stored.clone(),
            at: Instant::now(),
        };
        self.cache.insert(key, Arc::new(entry)).await;
        Ok(stored)
    }

    async fn remember_failure(&self, key: Key, error: &LookupError) {
        match error {
            // A miss in a case-sensitive system says nothing about the name's other spellings,
            // which share this cache key: not remembered here (the per-system "not here"
            // memory still spares that system a second ask for this spelling).
            LookupError::NotFound { searched }
                if self.systems.iter().any(|s| {
                    s.backend.case_sensitive_names() && searched.iter().any(|n| n == s.name())
                }) => {}
            LookupError::NotFound { searched } => {
                let entry = Cached::NotFound {
                    searched: searched.clone(),
                    at: Instant::now(),
                };
                self.cache.insert(key, Arc::new(entry)).await;
            }
            // No record of an ambiguous name may be served later, stale or not.
            LookupError::Ambiguous { .. } => {
                self.owners.invalidate(&key.0).await;
                self.cache.invalidate(&(key.0.clone(), None)).await;
                self.cache.invalidate(&key).await;
            }
            // Failures are not remembered: the previous good record stays for stale-if-error.
            _ => {}
        }
    }

    /// `thorough` = ask every system (no owner short cut); `refresh` = also ask those that said
    /// lately that they do not hold the name.
    async fn resolve(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
        thorough: bool,
        refresh: bool,
    ) -> Result<ServerRecord, LookupError> {
        let folded = name.folded();
        let known = self.holders.get(&folded).await;
        if vendor.is_none() && !thorough && known.is_none() {
            if let Some(answer) = self.ask_known_owner(name).await {
                return answer;
            }
        }
        let targets = self.targets(vendor);
        if targets.is_empty() {
            // Config validation guarantees a system, so only a vendor hint can get here.
            return Err(vendor.map_or(LookupError::Internal, LookupError::NoSystemForVendor));
        }
        let searched: Vec<String> = targets.iter().map(|(_, s)| s.name().to_owned()).collect();
        let answers: Vec<Heard> = join_all(targets.iter().map(|&(i, system)| {
            let folded = &folded;
            async move {
                // A case-sensitive system's miss holds for this spelling only.
                let spelled = if system.backend.case_sensitive_names() {
                    name.as_str().to_owned()
                } else {
                    folded.clone()
                };
                if !refresh && self.absent.contains(&spelled, i).await {
                    return (system.name().to_owned(), Ok(Vec::new()));
                }
                let answer = self.ask(system, name).await;
                if let Ok(found) = &answer {
                    self.absent.set(&spelled, i, !found.is_empty()).await;
                }
                // A set of Redfish BMCs holds servers of every make: the hint filters its
                // answer (after the "not here" memory, which is not per make).
                let answer = answer.map(|found| {
                    found
                        .into_iter()
                        .filter(|r| vendor.is_none_or(|v| r.vendor == v))
                        .collect()
                });
                (system.name().to_owned(), answer)
            }
        }))
        .await;
        let known: &[Candidate] = known.as_deref().map_or(&[], Vec::as_slice);
        match holders_after(&answers, known) {
            Some(holders) => self.holders.insert(folded.clone(), Arc::new(holders)).await,
            None if !known.is_empty() => self.holders.invalidate(&folded).await,
            None => {}
        }
        combine(searched, answers, known)
    }

    /// Asks only the system that owned `name` last time. `None` = no known owner, or the owner
    /// no longer has it (the caller then fans out).
    async fn ask_known_owner(
        &self,
        name: &ServerName,
    ) -> Option<Result<ServerRecord, LookupError>> {
        let folded = name.folded();
        let idx = self.owners.get(&folded).await?;
        let system = self.systems.get(idx)?;
        let searched = vec![system.name().to_owned()];
        match self.ask(system, name).await {
            Ok(found) if found.is_empty() => {
                self.owners.invalidate(&folded).await;
                self.absent.set(&folded, idx, false).await;
                None
            }
            answer => {
                let mut combined = combine(searched, vec![(system.name().to_owned(), answer)], &[]);
                // The other systems were not asked: one of them may hold the name by now. The
                // answer says so, is trusted only briefly and never sets the owner again, so
                // the next lookup asks every system (and a second holder makes it a 409).
                if let Ok(record) = &mut combined {
                    record.unverified = self
                        .not_heard_from(&folded, &self.targets(None), &record.system_name)
                        .await;
                }
                Some(combined)
            }
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
            // A set of BMCs is as healthy as ever when the ones holding this name are slow.
            Err(_) if system.backend.kind() == SystemKind::Redfish => Err(BackendError::Bmc {
                system: system.name().to_owned(),
                server: name.as_str().to_owned(),
                address: "(the BMCs asked)".into(),
                source: Box::new(BackendError::Timeout {
                    system: system.name().to_owned(),
                    timeout: self.config.deadline,
                }),
            }),
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
            // Logged here, once per upstream call (bounded by the throttle and the breaker),
            // not once per inbound request that happens to need the system.
            Err(e) if e.is_system_failure() => {
                permit.failure();
                tracing::warn!(system = system.name(), error = %e, "system lookup failed");
                system.record_failure(e);
            }
            // The system answered sensibly (unassigned) or the gateway held back (throttled).
            Err(BackendError::Unassigned { .. }) => permit.success(),
            Err(_) => drop(permit),
        }
        result
    }
}
