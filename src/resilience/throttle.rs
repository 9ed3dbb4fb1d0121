//! Outbound throttling per system: a GCRA rate limit (governor) and a cap on requests in
//! flight, because appliances limit both. Callers wait up to `max_wait`, then give up.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Sustained upstream requests per second.
    pub requests_per_second: u32,
    /// Requests that may go out back to back above the sustained rate.
    pub burst: u32,
    /// Requests in flight at once.
    pub max_in_flight: u32,
    /// Longest a caller waits for a slot before the lookup fails with 503.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            requests_per_second: 100,
            burst: 100,
            max_in_flight: 16,
            max_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    #[error("upstream rate limit: no request slot within {0:?}")]
    Rate(Duration),
    #[error("upstream concurrency limit: no free slot within {0:?}")]
    InFlight(Duration),
}

pub struct Throttle {
    limiter: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    max_wait: Duration,
}

/// Holds one in-flight slot until dropped.
pub struct ThrottlePermit {
    _slot: OwnedSemaphorePermit,
}

impl Throttle {
    pub fn new(config: &ThrottleConfig) -> Self {
        let rate = NonZeroU32::new(config.requests_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Self::with_quota(Quota::per_second(rate), config)
    }

    fn with_quota(quota: Quota, config: &ThrottleConfig) -> Self {
        let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(quota.allow_burst(burst)),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1) as usize)),
            max_wait: config.max_wait,
        }
    }

    pub async fn acquire(&self) -> Result<ThrottlePermit, Throttled> {
        let deadline = Instant::now() + self.max_wait;
        if self.limiter.check().is_err() {
            tokio::time::timeout_at(deadline, self.limiter.until_ready())
                .await
                .map_err(|_| Throttled::Rate(self.max_wait))?;
        }
        let slot = tokio::time::timeout_at(deadline, self.in_flight.clone().acquire_owned())
            .await
            .map_err(|_| Throttled::InFlight(self.max_wait))?
            .map_err(|_| Throttled::InFlight(self.max_wait))?;
        Ok(ThrottlePermit { _slot: slot })
    }

    pub fn available_slots(&self) -> usize {
        self.in_flight.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rps: u32, burst: u32, in_flight: u32, wait_ms: u64) -> ThrottleConfig {
        ThrottleConfig {
            requests_per_second: rps,
            burst,
            max_in_flight: in_flight,
            max_wait: Duration::from_millis(wait_ms),
        }
    }

    #[tokio::test]
    async fn the_burst_passes_and_the_next_request_is_refused_without_waiting() {
        // One request per hour: nothing refills during the test, whatever the machine's speed.
        let hourly = Quota::with_period(Duration::from_secs(3600)).expect("non-zero period");
        let t = Throttle::with_quota(hourly, &config(1, 3, 10, 0));
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(t.acquire().await.expect("within burst"));
        }
        assert_eq!(
            t.acquire().await.err(),
            Some(Throttled::Rate(Duration::ZERO))
        );
    }

    #[tokio::test]
    async fn in_flight_slots_are_capped_and_released_on_drop() {
        let t = Throttle::new(&config(1000, 1000, 2, 0));
        let a = t.acquire().await.expect("slot 1");
        let _b = t.acquire().await.expect("slot 2");
        assert_eq!(
            t.acquire().await.err(),
            Some(Throttled::InFlight(Duration::ZERO))
        );
        drop(a);
        assert!(t.acquire().await.is_ok());
    }
}
