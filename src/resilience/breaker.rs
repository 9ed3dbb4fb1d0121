//! A circuit breaker per system: closed → open after N consecutive failures or a failure ratio
//! over the last calls → half-open after a cool-down, admitting a bounded number of probes →
//! closed after M probe successes (by default the first one), any probe failure re-opens it.
//!
//! The cool-down starts short (`open_for`) and doubles with each failed probe up to
//! `max_open_for`: a brief outage costs about a second of fast failures, a long one costs one
//! probe per `max_open_for`, and a healthy answer to a probe closes the breaker at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Open after this many failures in a row.
    pub consecutive_failures: u32,
    /// …or when this fraction of the last `window` calls failed (with at least `min_calls`).
    pub failure_ratio: f64,
    pub window: u32,
    pub min_calls: u32,
    /// How long an open breaker fails fast before letting a probe through (the first time;
    /// doubled after each failed probe, up to `max_open_for`).
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Probes allowed at once while half-open.
    pub half_open_probes: u32,
    /// Probe successes needed to close again.
    pub close_after: u32,
    /// Longest cool-down, reached after repeated failed probes.
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: 20,
            min_calls: 10,
            open_for: Duration::from_secs(1),
            half_open_probes: 1,
            close_after: 1,
            max_open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Refused because the breaker is open (or half-open with all probe slots taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after: Duration,
}

/// Told of every state change: (breaker name, from, to).
pub type BreakerObserver = Arc<dyn Fn(&str, BreakerState, BreakerState) + Send + Sync>;
type Observer = BreakerObserver;

struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// Recent outcomes, `true` = failure; only kept while closed.
    window: VecDeque<bool>,
    opened_at: Instant,
    /// The current cool-down: `open_for`, doubled by each failed probe up to `max_open_for`.
    cool_down: Duration,
    probes_in_flight: u32,
    probe_successes: u32,
}

pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    observer: Option<Observer>,
}

impl CircuitBreaker {
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        Self {
            name: name.into(),
            config: config.clone(),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                window: VecDeque::new(),
                opened_at: Instant::now(),
                cool_down: config.open_for,
                probes_in_flight: 0,
                probe_successes: 0,
            }),
            observer: None,
        }
    }

    /// Called once per state change (metrics); the change is also logged here.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The state a caller would meet now (an open breaker past its cool-down reads half-open).
    pub fn state(&self) -> BreakerState {
        let Ok(inner) = self.inner.lock() else {
            return BreakerState::Closed;
        };
        match inner.state {
            BreakerState::Open if inner.opened_at.elapsed() >= inner.cool_down => {
                BreakerState::HalfOpen
            }
            s => s,
        }
    }

    /// Asks to make one call. Report its outcome on the permit.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let mut transition = None;
        let result = {
            let Ok(mut inner) = self.inner.lock() else {
                // A poisoned lock means a panic elsewhere; failing open keeps lookups working.
                return Ok(Permit::new(self, false));
            };
            if inner.state == BreakerState::Open {
                let elapsed = inner.opened_at.elapsed();
                if elapsed < inner.cool_down {
                    return Err(Rejected {
                        retry_after: inner.cool_down - elapsed,
                    });
                }
                transition = Some(self.set(&mut inner, BreakerState::HalfOpen));
            }
            match inner.state {
                BreakerState::HalfOpen
                    if inner.probes_in_flight >= self.config.half_open_probes =>
                {
                    Err(Rejected {
                        retry_after: Duration::from_secs(1),
                    })
                }
                BreakerState::HalfOpen => {
                    inner.probes_in_flight += 1;
                    Ok(Permit::new(self, true))
                }
                _ => Ok(Permit::new(self, false)),
            }
        };
        if let Some((from, to)) = transition {
            self.notify(from, to);
        }
        result
    }

    fn set(&self, inner: &mut Inner, to: BreakerState) -> (BreakerState, BreakerState) {
        let from = inner.state;
        inner.state = to;
        inner.probes_in_flight = 0;
        inner.probe_successes = 0;
        match to {
            BreakerState::Open => {
                inner.opened_at = Instant::now();
                // A probe that failed means the system is still down: wait longer next time.
                inner.cool_down = if from == BreakerState::HalfOpen {
                    inner
                        .cool_down
                        .saturating_mul(2)
                        .min(self.config.max_open_for.max(self.config.open_for))
                } else {
                    self.config.open_for
                };
            }
            BreakerState::Closed => {
                inner.consecutive_failures = 0;
                inner.window.clear();
                inner.cool_down = self.config.open_for;
            }
            BreakerState::HalfOpen => {}
        }
        (from, to)
    }

    fn notify(&self, from: BreakerState, to: BreakerState) {
        match to {
            BreakerState::Open => {
                tracing::warn!(system = %self.name, from = from.as_str(), "circuit breaker opened: failing fast")
            }
            BreakerState::HalfOpen => {
                tracing::info!(system = %self.name, "circuit breaker half-open: probing")
            }
            BreakerState::Closed => {
                tracing::info!(system = %self.name, from = from.as_str(), "circuit breaker closed: system healthy again")
            }
        }
        if let Some(observer) = &self.observer {
            observer(&self.name, from, to);
        }
    }

    fn record(&self, probe: bool, failed: Option<bool>) {
        let transition = {
            let Ok(mut inner) = self.inner.lock() else {
                return;
            };
            if probe && inner.state == BreakerState::HalfOpen {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
            }
            match (inner.state, failed) {
                (_, None) => None,
                (BreakerState::HalfOpen, Some(true)) if probe => {
                    Some(self.set(&mut inner, BreakerState::Open))
                }
                (BreakerState::HalfOpen, Some(false)) if probe => {
                    inner.probe_successes += 1;
                    (inner.probe_successes >= self.config.close_after.max(1))
                        .then(|| self.set(&mut inner, BreakerState::Closed))
                }
                (BreakerState::Closed, Some(failed)) => {
                    inner.window.push_back(failed);
                    while inner.window.len() > self.config.window as usize {
                        inner.window.pop_front();
                    }
                    inner.consecutive_failures = if failed {
                        inner.consecutive_failures + 1
                    } else {
                        0
                    };
                    let failures = inner.window.iter().filter(|f| **f).count();
                    let calls = inner.window.len();
                    let ratio_tripped = calls >= self.config.min_calls as usize
                        && failures as f64 >= self.config.failure_ratio * calls as f64;
                    (failed
                        && (inner.consecutive_failures >= self.config.consecutive_failures
                            || ratio_tripped))
                        .then(|| self.set(&mut inner, BreakerState::Open))
                }
                // Calls admitted before the breaker opened, or non-probe calls while half-open.
                _ => None,
            }
        };
        if let Some((from, to)) = transition {
            self.notify(from, to);
        }
    }
}

/// One admitted call. Dropping it without an outcome (the caller went away) frees a probe slot
/// and changes nothing else.
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, probe: bool) -> Self {
        Self {
            breaker,
            probe,
            reported: false,
        }
    }

    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, Some(false));
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, Some(true));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.probe, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            window: 10,
            min_calls: 6,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
            close_after: 2,
            max_open_for: Duration::from_secs(40),
        }
    }

    fn fail(b: &CircuitBreaker, n: usize) {
        for _ in 0..n {
            b.try_acquire().expect("admitted").failure();
        }
    }

    fn succeed(b: &CircuitBreaker, n: usize) {
        for _ in 0..n {
            b.try_acquire().expect("admitted").success();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_fails_fast() {
        let b = CircuitBreaker::new("s", config());
        fail(&b, 2);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        let rejected = b.try_acquire().err().expect("rejected");
        assert!(rejected.retry_after <= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_ratio_without_a_streak() {
        let b = CircuitBreaker::new("s", config());
        for _ in 0..3 {
            fail(&b, 1);
            succeed(&b, 1);
        }
        // 3 of 6 failed: ratio 0.5 reached at the min_calls threshold on the next failure.
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_bounded_probes_then_closes() {
        let b = CircuitBreaker::new("s", config());
        fail(&b, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().expect("one probe");
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        succeed(&b, 1);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_restarts_the_cool_down() {
        let b = CircuitBreaker::new("s", config());
        fail(&b, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        b.try_acquire().expect("probe").failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_its_slot() {
        let b = CircuitBreaker::new("s", config());
        fail(&b, 3);
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(b.try_acquire().expect("probe"));
        assert!(b.try_acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn transitions_are_reported_once_each() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let b = CircuitBreaker::new("s", config()).with_observer(Arc::new(move |_, _, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        fail(&b, 3);
        assert!(b.try_acquire().is_err());
        assert_eq!(seen.load(Ordering::SeqCst), 1, "closed→open once");
        tokio::time::advance(Duration::from_secs(10)).await;
        succeed(&b, 2);
        assert_eq!(seen.load(Ordering::SeqCst), 3, "→half-open, →closed");
    }

    #[tokio::test(start_paused = true)]
    async fn by_default_the_first_healthy_probe_closes_it_within_a_second() {
        let b = CircuitBreaker::new(
            "s",
            BreakerConfig {
                consecutive_failures: 3,
                ..BreakerConfig::default()
            },
        );
        fail(&b, 3);
        assert!(b.try_acquire().is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        succeed(&b, 1);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn each_failed_probe_doubles_the_cool_down_up_to_the_cap_and_closing_resets_it() {
        let b = CircuitBreaker::new("s", config());
        fail(&b, 3);
        for expected in [10, 20, 40, 40] {
            let rejected = b.try_acquire().err().expect("open");
            assert_eq!(rejected.retry_after, Duration::from_secs(expected));
            tokio::time::advance(Duration::from_secs(expected)).await;
            b.try_acquire().expect("probe").failure();
        }
        tokio::time::advance(Duration::from_secs(40)).await;
        succeed(&b, 2);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 3);
        let rejected = b.try_acquire().err().expect("open again");
        assert_eq!(rejected.retry_after, Duration::from_secs(10));
    }
}
