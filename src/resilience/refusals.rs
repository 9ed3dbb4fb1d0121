//! Memory of refused credentials, so that the gateway never locks itself out.
//!
//! Many targets (BMCs) often share one credential, and some lock the caller's address out after
//! a few failed logins (iDRAC: 3 in 60 s, for an hour). So: a credential a target refused is not
//! sent to that target again for `hold`; once `suspend_after` distinct targets refused it (within
//! `hold`), it is sent to no target for `suspend_for`; and while a credential has not yet been
//! accepted anywhere, its logins go one at a time, so a wrong password costs at most
//! `suspend_after` refusals, not one per target being read at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct RefusalConfig {
    pub hold: Duration,
    pub suspend_after: usize,
    pub suspend_for: Duration,
}

/// Whether a login with a credential may be sent to a target now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// This target refused it; not before `retry_in`.
    RefusedHere {
        retry_in: Duration,
    },
    /// Refused by too many targets: sent nowhere for `retry_in`.
    Suspended {
        retry_in: Duration,
        refused_by: usize,
    },
}

/// One credential's state, as `/fleet` and `/vendors` show it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CredentialStatus {
    /// The credential's name in the configuration (`default` for `[systems.bmc]`).
    pub name: String,
    /// Distinct targets that refused it within the hold period.
    pub refused_by: usize,
    /// Set while it is suspended for every target.
    pub suspended_until: Option<DateTime<Utc>>,
    /// Refusals since the start.
    pub refusals_total: u64,
}

#[derive(Default)]
struct State {
    refused_by: HashMap<String, Instant>,
    suspended_until: Option<Instant>,
    accepted_once: bool,
    refusals_total: u64,
}

#[derive(Default)]
pub struct CredentialGuard {
    config: Option<RefusalConfig>,
    states: Mutex<HashMap<String, State>>,
    probes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl CredentialGuard {
    pub fn new(config: RefusalConfig) -> Self {
        Self {
            config: Some(config),
            ..Self::default()
        }
    }

    fn config(&self) -> RefusalConfig {
        self.config.clone().unwrap_or(RefusalConfig {
            hold: Duration::from_secs(3600),
            suspend_after: 3,
            suspend_for: Duration::from_secs(900),
        })
    }

    fn with_state<T>(
        &self,
        credential: &str,
        f: impl FnOnce(&mut State, &RefusalConfig) -> T,
    ) -> T {
        let config = self.config();
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let state = states.entry(credential.to_owned()).or_default();
        let now = Instant::now();
        state
            .refused_by
            .retain(|_, at| now.duration_since(*at) < config.hold);
        if state.suspended_until.is_some_and(|u| u <= now) {
            state.suspended_until = None;
        }
        f(state, &config)
    }

    pub fn check(&self, credential: &str, target: &str) -> Verdict {
        self.with_state(credential, |s, c| {
            let now = Instant::now();
            if let Some(until) = s.suspended_until {
                return Verdict::Suspended {
                    retry_in: until - now,
                    refused_by: s.refused_by.len(),
                };
            }
            match s.refused_by.get(target) {
                Some(at) => Verdict::RefusedHere {
                    retry_in: c.hold.saturating_sub(now.duration_since(*at)),
                },
                None => Verdict::Go,
            }
        })
    }

    /// `target` refused `credential`: remembered, and the credential suspended when enough
    /// distinct targets refused it.
    pub fn refused(&self, credential: &str, target: &str) {
        self.with_state(credential, |s, c| {
            let now = Instant::now();
            s.refused_by.insert(target.to_owned(), now);
            s.refusals_total += 1;
            if s.refused_by.len() >= c.suspend_after {
                s.suspended_until = Some(now + c.suspend_for);
                tracing::warn!(
                    credential,
                    refused_by = s.refused_by.len(),
                    suspend_for = ?c.suspend_for,
                    "credential refused by too many BMCs: suspended for every BMC"
                );
            }
        });
    }

    pub fn accepted(&self, credential: &str, target: &str) {
        self.with_state(credential, |s, _| {
            s.accepted_once = true;
            s.refused_by.remove(target);
        });
    }

    /// Held around a login while the credential has never been accepted: such logins go one
    /// at a time (`None` once it has been accepted somewhere).
    pub async fn probe(&self, credential: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if self.with_state(credential, |s, _| s.accepted_once) {
            return None;
        }
        let lock = self
            .probes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(credential.to_owned())
            .or_default()
            .clone();
        Some(lock.lock_owned().await)
    }

    pub fn status(&self, credentials: &[String]) -> Vec<CredentialStatus> {
        credentials
            .iter()
            .map(|name| {
                self.with_state(name, |s, _| CredentialStatus {
                    name: name.clone(),
                    refused_by: s.refused_by.len(),
                    suspended_until: s.suspended_until.map(|u| {
                        Utc::now()
                            + chrono::Duration::from_std(u - Instant::now()).unwrap_or_default()
                    }),
                    refusals_total: s.refusals_total,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> CredentialGuard {
        CredentialGuard::new(RefusalConfig {
            hold: Duration::from_secs(3600),
            suspend_after: 3,
            suspend_for: Duration::from_secs(900),
        })
    }

    #[test]
    fn a_refusing_target_is_not_asked_again_and_others_still_are() {
        let g = guard();
        assert_eq!(g.check("default", "a"), Verdict::Go);
        g.refused("default", "a");
        assert!(matches!(
            g.check("default", "a"),
            Verdict::RefusedHere { .. }
        ));
        assert_eq!(g.check("default", "b"), Verdict::Go);
        assert_eq!(g.check("other", "a"), Verdict::Go);
    }

    #[test]
    fn refusals_by_enough_distinct_targets_suspend_the_credential_everywhere() {
        let g = guard();
        g.refused("default", "a");
        g.refused("default", "a");
        g.refused("default", "b");
        assert_eq!(g.check("default", "z"), Verdict::Go);
        g.refused("default", "c");
        assert!(matches!(
            g.check("default", "z"),
            Verdict::Suspended { refused_by: 3, .. }
        ));
        let status = g.status(&["default".into()]);
        assert_eq!(status[0].refused_by, 3);
        assert_eq!(status[0].refusals_total, 4);
        assert!(status[0].suspended_until.is_some());
    }

    #[test]
    fn an_acceptance_clears_that_target_and_ends_one_at_a_time_logins() {
        let g = guard();
        g.refused("default", "a");
        g.accepted("default", "a");
        assert_eq!(g.check("default", "a"), Verdict::Go);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(rt.block_on(g.probe("default")).is_none());
        assert!(rt.block_on(g.probe("never-accepted")).is_some());
    }
}
