//! Retries with exponential backoff and full jitter, bounded by attempts and by a deadline.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// What the retry loop needs to know about an error.
pub trait Transient {
    /// A later attempt may succeed (connect errors, timeouts, 5xx, 429).
    fn is_transient(&self) -> bool;
    /// The server asked for this wait (`Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub base_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniform in [0, min(max_delay, base·2^retry)], so that many callers retrying
    /// after one outage spread out instead of arriving together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Runs `op` until it succeeds, fails permanently, runs out of attempts, or the next wait would
/// end past `deadline`. `on_retry` is told about each retry (for metrics and logs).
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    deadline: Instant,
    mut op: F,
    mut on_retry: impl FnMut(&E, u32, Duration),
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        let err = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !err.is_transient() || attempt >= policy.max_attempts {
            return Err(err);
        }
        let wait = err
            .retry_after()
            .map(|ra| ra.max(policy.backoff(attempt - 1)))
            .unwrap_or_else(|| policy.backoff(attempt - 1));
        if Instant::now() + wait >= deadline {
            return Err(err);
        }
        on_retry(&err, attempt, wait);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    struct E {
        transient: bool,
        after: Option<Duration>,
    }
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn backoff_is_bounded_by_the_exponential_ceiling() {
        let p = policy(10);
        for retry in 0..8 {
            let ceiling =
                Duration::from_millis(10 * 2u64.pow(retry)).min(Duration::from_millis(40));
            for _ in 0..200 {
                assert!(p.backoff(retry) <= ceiling);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_up_to_the_bound() {
        let calls = AtomicU32::new(0);
        let mut retries = 0;
        let out: Result<(), E> = retry(
            &policy(4),
            far(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E {
                    transient: true,
                    after: None,
                })
            },
            |_, _, _| retries += 1,
        )
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(retries, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), E> = retry(
            &policy(5),
            far(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E {
                    transient: false,
                    after: None,
                })
            },
            |_, _, _| {},
        )
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn success_after_a_transient_failure() {
        let calls = AtomicU32::new(0);
        let out = retry(
            &policy(3),
            far(),
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(E {
                        transient: true,
                        after: None,
                    })
                } else {
                    Ok(7)
                }
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(out, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_the_deadline_stops_retries() {
        let started = Instant::now();
        let calls = AtomicU32::new(0);
        let out: Result<(), E> = retry(
            &policy(10),
            started + Duration::from_secs(5),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E {
                    transient: true,
                    after: Some(Duration::from_secs(2)),
                })
            },
            |_, _, wait| assert!(wait >= Duration::from_secs(2)),
        )
        .await;
        assert!(out.is_err());
        // Waits of 2 s fit twice before the 5 s deadline; the third would overrun it.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(Instant::now() - started < Duration::from_secs(5));
    }
}
