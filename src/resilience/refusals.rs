//! Memory of refused credentials, so that the gateway never locks itself out.
//!
//! Many targets (BMCs) often share one credential, and some lock the caller's address out after
//! a few failed logins (iDRAC: 3 in 60 s, for an hour). So: a credential a target refused is not
//! sent to that target again for `hold`; once `suspend_after` distinct targets refused it (within
//! `hold`), it is sent to no target for `suspend_for`; and while a credential has not yet been
//! accepted anywhere, its logins go one at a time, so a wrong password costs at most
//! `suspend_after` refusals, not one per target being read at once. The same holds again as
//! soon as any target refuses it (a password rotated on the targets but not here). A login
//! whose outcome is unknown (no answer in time, a 5xx) may have been a failed one: that target
//! is not sent the credential again for [`DOUBT_HOLD`], which is not counted as a refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Longer than iDRAC's 60 s window, so that unknown outcomes cannot add up to a lockout.
pub const DOUBT_HOLD: Duration = Duration::from_secs(61);

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
    doubtful: HashMap<String, Instant>,
    suspended_until: Option<Instant>,
    accepted_once: bool,
    refusals_total: u64,
}

#[derive(Default)]
pub struct CredentialGuard {
    config: Option<RefusalConfig>,
    states: Mutex<HashMap<String, State>>,
    /// Per credential: `suspend_after` permits for logins (see [`Self::probe`]).
    probes: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
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
        state
            .doubtful
            .retain(|_, at| now.duration_since(*at) < DOUBT_HOLD);
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
            match (s.refused_by.get(target), s.doubtful.get(target)) {
                (Some(at), _) => Verdict::RefusedHere {
                    retry_in: c.hold.saturating_sub(now.duration_since(*at)),
                },
                (None, Some(at)) => Verdict::RefusedHere {
                    retry_in: DOUBT_HOLD.saturating_sub(now.duration_since(*at)),
                },
                (None, None) => Verdict::Go,
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
                s.suspended_until = now.checked_add(c.suspend_for);
                tracing::warn!(
                    credential,
                    refused_by = s.refused_by.len(),
                    suspend_for = ?c.suspend_for,
                    "credential refused by too many BMCs: suspended for every BMC"
                );
            }
        });
    }

    /// `target` was sent the credential and its answer is unknown (timeout, 5xx, a broken
    /// connection): it may have counted as a failed login there.
    pub fn doubtful(&self, credential: &str, target: &str) {
        self.with_state(credential, |s, _| {
            s.doubtful.insert(target.to_owned(), Instant::now());
        });
    }

    pub fn accepted(&self, credential: &str, target: &str) {
        self.with_state(credential, |s, _| {
            s.accepted_once = true;
            s.refused_by.remove(target);
            s.doubtful.remove(target);
        });
    }

    /// Held around every login with `credential`: one permit of `suspend_after` while it is
    /// trusted, all of them while it is in doubt (never accepted yet, or refused somewhere).
    /// So at most `suspend_after` logins are under way at once, and a login in doubt waits
    /// until every one under way has landed and goes alone: a password rotated on the BMCs but
    /// not here costs at most `suspend_after` refusals in all, however many BMCs are read at
    /// once.
    pub async fn probe(&self, credential: &str) -> tokio::sync::OwnedSemaphorePermit {
        let permits = u32::try_from(self.config().suspend_after.max(1)).unwrap_or(u32::MAX);
        let gate = self
            .probes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(credential.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(permits as usize)))
            .clone();
        let trusted = |g: &Self| {
            g.with_state(credential, |s, _| {
                s.accepted_once && s.refused_by.is_empty()
            })
        };
        loop {
            let was_trusted = trusted(self);
            let want = if was_trusted { 1 } else { permits };
            // Never closed, so acquiring cannot fail; if it did, nothing is sent at all.
            let Ok(permit) = gate.clone().acquire_many_owned(want).await else {
                std::future::pending::<()>().await;
                continue;
            };
            // Trusted when it queued, but refused somewhere meanwhile: queue again, in doubt.
            if was_trusted && !trusted(self) {
                drop(permit);
                continue;
            }
            return permit;
        }
    }

    pub fn status(&self, credentials: &[String]) -> Vec<CredentialStatus> {
        credentials
            .iter()
            .map(|name| {
                self.with_state(name, |s, _| CredentialStatus {
                    name: name.clone(),
                    refused_by: s.refused_by.len(),
                    suspended_until: s.suspended_until.map(|u| {
                        let left =
                            chrono::Duration::from_std(u.saturating_duration_since(Instant::now()))
                                .unwrap_or_default();
                        Utc::now()
                            .checked_add_signed(left)
                            .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
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
    fn logins_go_one_at_a_time_while_a_credential_is_in_doubt() {
        let g = guard();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        // How many logins may be under way at once: permits taken until one is not ready.
        let held = |n: usize| {
            use futures::FutureExt as _;
            let _enter = rt.enter();
            let mut permits = Vec::new();
            for _ in 0..n {
                match g.probe("default").now_or_never() {
                    Some(p) => permits.push(p),
                    None => break,
                }
            }
            permits.len()
        };
        assert_eq!(held(5), 1, "never accepted: one at a time");
        g.accepted("default", "a");
        assert_eq!(held(5), 3, "trusted: suspend_after at once");
        g.refused("default", "b");
        assert_eq!(
            held(5),
            1,
            "refused somewhere (rotated?): one at a time again"
        );
        assert!(matches!(
            g.check("default", "b"),
            Verdict::RefusedHere { .. }
        ));
        g.accepted("default", "b");
        assert_eq!(g.check("default", "b"), Verdict::Go);
        assert_eq!(held(5), 3);
    }

    #[test]
    fn an_unknown_outcome_holds_that_target_back_without_counting_as_a_refusal() {
        let g = guard();
        for t in ["a", "b", "c", "d"] {
            g.doubtful("default", t);
        }
        assert!(
            matches!(g.check("default", "a"), Verdict::RefusedHere { retry_in } if retry_in <= DOUBT_HOLD)
        );
        assert_eq!(g.check("default", "e"), Verdict::Go, "not suspended");
        assert_eq!(g.status(&["default".into()])[0].refused_by, 0);
    }
}
