//! The fleet index: every configured system's whole fleet, listed ("swept") in the background
//! with the system's bulk endpoints, kept in memory per system and swapped whole when a sweep
//! completes, so a reader sees one sweep or the next, never half of one. It answers listings,
//! reverse lookups (MAC, serial, BMC address), and single-name lookups while it is fresh; a
//! name it lacks still goes to the live path.
//!
//! Sweeps share each system's session, throttle and circuit breaker with live lookups, but
//! run in a [`Background`] scope holding a bounded share of the system's outbound budget.
//! A failed sweep keeps the previous index, which then ages (and is flagged `stale` past
//! `max_age`, when it also stops answering single lookups).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::config::FleetConfig;
use crate::domain::{BmcAddress, MacAddress, ServerName, ServerRecord, SystemKind, Vendor};
use crate::lookup::{LookupEvents, System};
use crate::resilience::{retry, Background, BreakerState, RetryPolicy, ThrottleConfig};
use crate::vendors::BackendError;

pub mod conflicts;
pub mod index;

pub use conflicts::{Conflict, ConflictKind};
pub use index::{SortKey, SystemIndex};

/// What one sweep did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SweepReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Requests the sweep sent to the system (and to the systems it reaches through).
    pub calls: u64,
    /// Servers listed; null when the sweep failed.
    pub servers: Option<usize>,
    /// Why the sweep failed (its kind for most callers, in full for `admin` tokens); null
    /// when it succeeded.
    pub error: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    failure: Option<BackendError>,
}

#[derive(Default)]
struct History {
    running_since: Option<DateTime<Utc>>,
    last: Option<SweepReport>,
    ok: u64,
    failed: u64,
    next_at: Option<DateTime<Utc>>,
}

struct Slot {
    system: Arc<System>,
    throttle: ThrottleConfig,
    index: RwLock<Option<Arc<SystemIndex>>>,
    history: Mutex<History>,
    /// One sweep of a system at a time (the scheduled one or one asked for).
    sweeping: tokio::sync::Mutex<()>,
}

/// One system's index, as `GET /fleet` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FleetSystem {
    pub name: String,
    pub kind: SystemKind,
    /// Null for a set of Redfish BMCs (`kind = "redfish"`): each server says its own make.
    pub vendor: Option<Vendor>,
    #[schema(value_type = crate::http::openapi::BreakerStateSchema)]
    pub breaker: BreakerState,
    /// Servers in the index; null before the first successful sweep.
    pub indexed: Option<usize>,
    /// When the sweep the index comes from started.
    pub indexed_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<u64>,
    /// The index is older than `fleet.max_age` (sweeps are failing): listed, flagged, and not
    /// used to answer single lookups.
    pub stale: bool,
    pub sweeping: bool,
    pub last_sweep: Option<SweepReport>,
    pub sweeps_ok: u64,
    pub sweeps_failed: u64,
    pub next_sweep_at: Option<DateTime<Utc>>,
    /// Systems that read BMCs themselves (`kind = "redfish"`, `verify_bmc`): each credential,
    /// how many BMCs refused it, and whether it is suspended for every BMC (absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub credentials: Vec<crate::resilience::refusals::CredentialStatus>,
}

/// Filters of a listing; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub vendor: Option<Vendor>,
    pub system: Option<String>,
    /// Case-insensitive substring of the model.
    pub model: Option<String>,
    pub mac: Option<MacAddress>,
    /// Case-insensitive, exact.
    pub serial: Option<String>,
    pub bmc: Option<BmcAddress>,
    /// Case-insensitive substring of the name (or one of its aliases).
    pub q: Option<String>,
}

impl Filter {
    fn matches(&self, e: &index::Entry) -> bool {
        let r = &e.record;
        let contains = |hay: &str, needle: &str| {
            hay.to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase())
        };
        self.vendor.is_none_or(|v| r.vendor == v)
            && self.mac.is_none_or(|m| r.nics.iter().any(|n| n.mac == m))
            && self.serial.as_deref().is_none_or(|s| {
                r.serial_number
                    .as_deref()
                    .is_some_and(|rs| rs.trim().eq_ignore_ascii_case(s.trim()))
            })
            && self
                .bmc
                .as_ref()
                .is_none_or(|b| r.bmc.as_ref().is_some_and(|rb| &rb.address == b))
            && self
                .model
                .as_deref()
                .is_none_or(|m| r.model.as_deref().is_some_and(|rm| contains(rm, m)))
            && self
                .q
                .as_deref()
                .is_none_or(|q| contains(&r.name, q) || e.aliases.iter().any(|a| contains(a, q)))
    }
}

/// One page of a listing.
pub struct Listing {
    pub items: Vec<ServerRecord>,
    /// The last item's key when more may follow.
    pub next: Option<SortKey>,
    /// Systems the listing covers that have no index yet (their servers are missing).
    pub unindexed: Vec<String>,
    /// Systems whose index is older than `max_age` (listed, but old news).
    pub stale: Vec<String>,
    /// Changes whenever a covered system's indexed content does: for the ETag.
    pub version: String,
}

pub struct Fleet {
    slots: Vec<Slot>,
    config: FleetConfig,
    /// A sweep that fails transiently (a collection that changed while it was paged, a
    /// timeout) is read again, as a lookup would be.
    retry: RetryPolicy,
    conflicts: RwLock<Arc<Vec<Conflict>>>,
    events: Arc<dyn LookupEvents>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// Hands memory freed since back to the operating system. A sweep parses whole listings
/// (tens of MB for a large system) and frees them once the index is built; glibc's allocator
/// keeps such freed memory mapped, so without this the gateway's RSS would carry the largest
/// sweep's garbage for good.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() {
    // SAFETY: malloc_trim only releases free heap memory; it reads or invalidates no
    // allocation and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}

/// `d` scaled by a random factor within `[lo, hi)`.
fn jittered(d: Duration, lo: f64, hi: f64) -> Duration {
    d.mul_f64(lo + fastrand::f64() * (hi - lo))
}

impl Fleet {
    /// `systems[i]` is swept within `throttles[i]`'s share.
    pub fn new(
        systems: &[Arc<System>],
        throttles: &[ThrottleConfig],
        config: FleetConfig,
        retry: RetryPolicy,
        events: Arc<dyn LookupEvents>,
    ) -> Self {
        let slots = systems
            .iter()
            .enumerate()
            .map(|(i, system)| Slot {
                system: system.clone(),
                throttle: throttles.get(i).cloned().unwrap_or_default(),
                index: RwLock::new(None),
                history: Mutex::new(History::default()),
                sweeping: tokio::sync::Mutex::new(()),
            })
            .collect();
        Self {
            slots,
            config,
            retry,
            conflicts: RwLock::new(Arc::new(Vec::new())),
            events,
        }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    fn index(&self, i: usize) -> Option<Arc<SystemIndex>> {
        self.slots.get(i).and_then(|s| read(&s.index))
    }

    fn is_fresh(&self, index: &SystemIndex) -> bool {
        index.swept.elapsed() < self.config.max_age
    }

    /// The record for `name` when every system the lookup would ask has a fresh index and
    /// exactly one server among them answers to the name (with its NICs known), with the
    /// index's age. `None` sends the lookup down the live path: a system without a fresh
    /// index might hold the name, two holders are for the live path to confirm as a 409,
    /// and a name no index holds may have appeared since the last sweep.
    pub fn answer(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
    ) -> Option<(ServerRecord, Duration)> {
        if !self.config.enabled {
            return None;
        }
        let mut found: Option<(ServerRecord, Duration)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            let backend = &slot.system.backend;
            if vendor.is_some_and(|v| !backend.kind().may_hold(v)) {
                continue;
            }
            let index = self.index(i).filter(|x| self.is_fresh(x))?;
            if index.withholds(name.as_str()) {
                return None;
            }
            let case_sensitive = backend.case_sensitive_names();
            for entry in index.by_name(name.as_str()) {
                if !entry.answers_to(name.as_str(), case_sensitive)
                    || vendor.is_some_and(|v| entry.record.vendor != v)
                {
                    continue;
                }
                if found.is_some() || entry.record.nics_unavailable.is_some() {
                    return None;
                }
                let mut record = entry.record.clone();
                // Asked by another name the system answers it under: the system's lookup by
                // that name reports it under that name.
                if !entry.answers_to_primary(name.as_str(), case_sensitive) {
                    if let Some(alias) = entry.alias_for(name.as_str(), case_sensitive) {
                        record.name = alias.to_owned();
                    }
                }
                found = Some((record, index.swept.elapsed()));
            }
        }
        found
    }

    /// Up to `limit` servers after `after`, in listing order, matching `filter`.
    pub fn list(&self, filter: &Filter, after: Option<&SortKey>, limit: usize) -> Listing {
        let mut unindexed = Vec::new();
        let mut stale = Vec::new();
        let mut version = Sha256::new();
        let mut items: Vec<(&SortKey, ServerRecord)> = Vec::new();
        let indexes: Vec<(usize, Option<Arc<SystemIndex>>)> =
            (0..self.slots.len()).map(|i| (i, self.index(i))).collect();
        for (i, index) in &indexes {
            let slot = &self.slots[*i];
            let name = slot.system.name();
            let kind = slot.system.backend.kind();
            if filter.vendor.is_some_and(|v| !kind.may_hold(v))
                || filter.system.as_deref().is_some_and(|s| s != name)
            {
                continue;
            }
            version.update(name.as_bytes());
            let Some(index) = index else {
                version.update(b"\0unindexed\0");
                unindexed.push(name.to_owned());
                continue;
            };
            let is_stale = !self.is_fresh(index);
            version.update(index.digest);
            version.update([u8::from(is_stale)]);
            if is_stale {
                stale.push(name.to_owned());
            }
            // The narrowest index the filter allows (unordered), else the ordered entries past
            // the cursor, where a page (and one more, to know whether more follow) suffices.
            let narrowed = if let Some(mac) = &filter.mac {
                Some(index.by_mac(mac))
            } else if let Some(bmc) = &filter.bmc {
                Some(index.by_bmc(bmc))
            } else {
                filter
                    .serial
                    .as_deref()
                    .map(|serial| index.by_serial(serial))
            };
            let page: Vec<&index::Entry> = match narrowed {
                Some(candidates) => candidates
                    .into_iter()
                    .filter(|e| after.is_none_or(|k| e.key() > k) && filter.matches(e))
                    .collect(),
                None => index
                    .after(after)
                    .iter()
                    .filter(|e| filter.matches(e))
                    .take(limit + 1)
                    .collect(),
            };
            items.extend(page.into_iter().map(|e| {
                let mut record = e.record.clone();
                record.stale = is_stale;
                (e.key(), record)
            }));
        }
        items.sort_by(|a, b| a.0.cmp(b.0));
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|(k, _)| (*k).clone())
        } else {
            None
        };
        Listing {
            items: items.into_iter().map(|(_, r)| r).collect(),
            next,
            unindexed,
            stale,
            version: hex::encode(&version.finalize()[..16]),
        }
    }

    pub fn conflicts(&self) -> Arc<Vec<Conflict>> {
        read(&self.conflicts)
    }

    /// Servers indexed over all systems.
    pub fn indexed(&self) -> usize {
        (0..self.slots.len())
            .filter_map(|i| self.index(i))
            .map(|x| x.len())
            .sum()
    }

    /// Each system's index and sweep history; errors in full when `admin`.
    pub fn systems(&self, admin: bool) -> Vec<FleetSystem> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, slot)| {
                let index = self.index(i);
                let history = slot
                    .history
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut last = history.last.clone();
                if let Some(report) = &mut last {
                    if !admin {
                        report.error = report.failure.as_ref().map(BackendError::public_text);
                    }
                }
                let kind = slot.system.backend.kind();
                FleetSystem {
                    name: slot.system.name().to_owned(),
                    kind,
                    vendor: kind.vendor(),
                    breaker: slot.system.breaker.state(),
                    indexed: index.as_ref().map(|x| x.len()),
                    indexed_at: index.as_ref().map(|x| x.swept_at),
                    age_seconds: index.as_ref().map(|x| x.swept.elapsed().as_secs()),
                    stale: index.as_ref().is_some_and(|x| !self.is_fresh(x)),
                    sweeping: history.running_since.is_some(),
                    last_sweep: last,
                    sweeps_ok: history.ok,
                    sweeps_failed: history.failed,
                    next_sweep_at: history.next_at,
                    credentials: slot.system.backend.credentials(),
                }
            })
            .collect()
    }

    /// For metrics: (system, servers indexed, index age) of every indexed system.
    pub fn gauges(&self) -> Vec<(String, usize, Duration)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let index = self.index(i)?;
                Some((
                    slot.system.name().to_owned(),
                    index.len(),
                    index.swept.elapsed(),
                ))
            })
            .collect()
    }

    /// Sweeps the named systems (all when `None`) now, concurrently, each after any sweep of
    /// it under way; `false` when a name is not a configured system.
    pub async fn sweep_now(self: &Arc<Self>, system: Option<&str>) -> bool {
        let targets: Vec<usize> = (0..self.slots.len())
            .filter(|&i| system.is_none_or(|s| self.slots[i].system.name() == s))
            .collect();
        if targets.is_empty() {
            return false;
        }
        // In tasks of their own: a caller that gives up does not abandon a sweep half-way.
        let sweeps = targets.into_iter().map(|i| {
            let fleet = self.clone();
            tokio::spawn(async move { fleet.sweep(i).await })
        });
        futures::future::join_all(sweeps).await;
        true
    }

    /// One sweep of system `i`: its whole fleet through its breaker, within the background
    /// share of its throttle and `sweep_timeout`; the index is replaced only by a complete
    /// listing. Whether it succeeded.
    pub async fn sweep(&self, i: usize) -> bool {
        let Some(slot) = self.slots.get(i) else {
            return false;
        };
        let _one_at_a_time = slot.sweeping.lock().await;
        let system = &slot.system;
        let started_at = Utc::now();
        let started = Instant::now();
        self.set_history(slot, |h| h.running_since = Some(started_at));
        let scope = Background::new(
            self.config.sweep_share,
            &slot.throttle,
            self.config.sweep_timeout,
            self.config.max_sweep_bytes,
        );
        // Only a closed breaker is swept: while it is half-open its few probes belong to live
        // lookups, which a sweep holding one for minutes would otherwise turn away.
        let permit = match system.breaker.state() {
            BreakerState::Closed => system.breaker.try_acquire().ok(),
            _ => None,
        };
        let result = match permit {
            None => Err(BackendError::Unavailable {
                system: system.name().to_owned(),
                reason: "circuit breaker not closed: the sweep waits for it to close".into(),
                retry_after: Duration::from_secs(1),
            }),
            Some(permit) => {
                let deadline = Instant::now() + self.config.sweep_timeout;
                let attempts = retry(
                    &self.retry,
                    deadline,
                    || {
                        scope.restart_reading();
                        system.backend.list()
                    },
                    |e, attempt, wait| {
                        tracing::info!(system = system.name(), attempt, wait_ms = wait.as_millis() as u64, error = %e, "sweeping again");
                    },
                );
                let listing = scope.run(attempts);
                let result = match tokio::time::timeout_at(deadline, listing).await {
                    Ok(r) => r,
                    Err(_) => Err(BackendError::Timeout {
                        system: system.name().to_owned(),
                        timeout: self.config.sweep_timeout,
                    }),
                };
                match &result {
                    Ok(_) => permit.success(),
                    // A listing the gateway cannot read (say, larger than max_response_bytes)
                    // says nothing about whether the system answers lookups.
                    Err(BackendError::Protocol { .. }) => drop(permit),
                    // Its own share (and sweep_timeout) may be what ran out, not the system.
                    Err(BackendError::Timeout { .. }) => drop(permit),
                    Err(e) if e.is_system_failure() => permit.failure(),
                    Err(_) => drop(permit),
                }
                result
            }
        };
        let elapsed = started.elapsed();
        let calls = scope.calls();
        let ok = result.is_ok();
        let report = |servers: Option<usize>, failure: Option<BackendError>| SweepReport {
            started_at,
            finished_at: Utc::now(),
            duration_ms: elapsed.as_millis() as u64,
            calls,
            servers,
            error: failure.as_ref().map(BackendError::to_string),
            failure,
        };
        match result {
            Ok(listed) => {
                let kind = system.backend.kind();
                let index = SystemIndex::build(system.name(), kind, listed, started_at, started);
                let servers = index.len();
                tracing::info!(
                    system = system.name(),
                    servers,
                    calls,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "fleet swept"
                );
                *slot
                    .index
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(index));
                self.refresh_conflicts();
                release_freed_memory();
                self.set_history(slot, |h| {
                    h.running_since = None;
                    h.ok += 1;
                    h.last = Some(report(Some(servers), None));
                });
            }
            Err(e) => {
                tracing::warn!(system = system.name(), error = %e, calls, "fleet sweep failed; the previous index stays");
                self.set_history(slot, |h| {
                    h.running_since = None;
                    h.failed += 1;
                    h.last = Some(report(None, Some(e)));
                });
            }
        }
        self.events.sweep(
            system.name(),
            if ok { "ok" } else { "error" },
            elapsed,
            calls,
        );
        ok
    }

    fn set_history(&self, slot: &Slot, f: impl FnOnce(&mut History)) {
        let mut h = slot
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut h);
    }

    fn refresh_conflicts(&self) {
        let indexes: Vec<Arc<SystemIndex>> = (0..self.slots.len())
            .filter_map(|i| self.index(i))
            .collect();
        let found = conflicts::find(&indexes);
        *self
            .conflicts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(found);
    }

    /// One task per system sweeping on the jittered interval (a failed sweep is retried after
    /// a fifth of it). Nothing when the index is disabled. Abort the handles to stop.
    pub fn spawn_sweepers(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        if !self.config.enabled {
            return Vec::new();
        }
        (0..self.slots.len())
            .map(|i| {
                let fleet = self.clone();
                tokio::spawn(async move {
                    let mut wait = jittered(fleet.config.first_sweep_after, 1.0, 1.5);
                    loop {
                        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                        fleet.set_history(&fleet.slots[i], |h| h.next_at = Some(at));
                        tokio::time::sleep(wait).await;
                        let ok = fleet.sweep(i).await;
                        let interval = fleet.config.sweep_interval;
                        wait = if ok {
                            jittered(interval, 0.9, 1.1)
                        } else {
                            jittered(interval / 5, 0.9, 1.1)
                        };
                    }
                })
            })
            .collect()
    }
}
