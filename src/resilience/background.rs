//! Background work (such as a sweep of a system's whole inventory) runs inside a
//! [`Background`] scope. Every outbound exchange made inside it first takes a slot from the
//! scope's own, smaller throttle, a bounded share of the system's budget, so that background
//! work never crowds out the calls callers are waiting for; and it is counted, so that the
//! work can say what it cost.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::throttle::{Throttle, ThrottleConfig, ThrottlePermit, Throttled};

tokio::task_local! {
    static SCOPE: Arc<Background>;
}

pub struct Background {
    budget: Throttle,
    calls: AtomicU64,
}

impl Background {
    /// A scope allowed `share` (within `(0, 1]`) of `of`'s rate and in-flight slots (at
    /// least one of each), waiting up to `max_wait` for a slot.
    pub fn new(share: f64, of: &ThrottleConfig, max_wait: Duration) -> Arc<Self> {
        let part = |n: u32| ((f64::from(n) * share).floor() as u32).max(1);
        Arc::new(Self {
            budget: Throttle::new(&ThrottleConfig {
                requests_per_second: part(of.requests_per_second),
                burst: part(of.burst),
                max_in_flight: part(of.max_in_flight),
                max_wait,
            }),
            calls: AtomicU64::new(0),
        })
    }

    /// Runs `work` inside this scope: the exchanges it makes, in this task, are counted and
    /// throttled here.
    pub async fn run<F: Future>(self: &Arc<Self>, work: F) -> F::Output {
        SCOPE.scope(self.clone(), work).await
    }

    /// The scope the current task runs in, if any.
    pub fn current() -> Option<Arc<Self>> {
        SCOPE.try_with(Arc::clone).ok()
    }

    /// A slot of the background share; hold it for the whole exchange.
    pub async fn admit(&self) -> Result<ThrottlePermit, Throttled> {
        self.budget.acquire().await
    }

    /// One exchange went out.
    pub fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_is_seen_inside_run_only_and_gets_a_share_of_the_slots() {
        let of = ThrottleConfig {
            requests_per_second: 1000,
            burst: 1000,
            max_in_flight: 8,
            max_wait: Duration::ZERO,
        };
        let bg = Background::new(0.25, &of, Duration::ZERO);
        assert!(Background::current().is_none());
        let held = bg
            .run(async {
                let scope = Background::current().expect("inside the scope");
                scope.count();
                let a = scope.admit().await.expect("slot 1");
                let b = scope.admit().await.expect("slot 2");
                // 25 % of 8 in-flight slots.
                assert!(scope.admit().await.is_err());
                (a, b)
            })
            .await;
        drop(held);
        assert_eq!(bg.calls(), 1);
        assert!(Background::current().is_none());
    }
}
