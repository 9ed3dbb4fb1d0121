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
    static SCOPE: Scope;
}

#[derive(Clone)]
struct Scope {
    work: Arc<Background>,
    /// False inside [`Background::unpaced`]: counted, but not held to the share.
    paced: bool,
}

pub struct Background {
    budget: Throttle,
    calls: AtomicU64,
    bytes: AtomicU64,
    max_bytes: u64,
}

impl Background {
    /// A scope allowed `share` (within `(0, 1]`) of `of`'s rate and in-flight slots (at
    /// least one of each), waiting up to `max_wait` for a slot, reading at most `max_bytes`
    /// of response bodies in all.
    pub fn new(share: f64, of: &ThrottleConfig, max_wait: Duration, max_bytes: u64) -> Arc<Self> {
        let part = |n: u32| ((f64::from(n) * share).floor() as u32).max(1);
        Arc::new(Self {
            budget: Throttle::new(&ThrottleConfig {
                requests_per_second: part(of.requests_per_second),
                burst: part(of.burst),
                max_in_flight: part(of.max_in_flight),
                max_wait,
            }),
            calls: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_bytes,
        })
    }

    /// `n` more bytes were read; `Err(total)` once the work has read more than it may. A
    /// sweep keeps what it reads until it ends, so what one may make the gateway hold is
    /// bounded here, whatever pages an appliance sends.
    pub fn read(&self, n: u64) -> Result<(), u64> {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_bytes {
            Err(total)
        } else {
            Ok(())
        }
    }

    /// A new attempt of the work starts: what earlier attempts read was dropped with them.
    pub fn restart_reading(&self) {
        self.bytes.store(0, Ordering::Relaxed);
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Runs `work` inside this scope: the exchanges it makes, in this task, are counted and
    /// throttled here.
    pub async fn run<F: Future>(self: &Arc<Self>, work: F) -> F::Output {
        let scope = Scope {
            work: self.clone(),
            paced: true,
        };
        SCOPE.scope(scope, work).await
    }

    /// Runs `work` (a login, a session refresh) without waiting for the background share,
    /// still counted. Such work holds a gate live lookups queue behind: it must not wait for
    /// the background's slots while they wait for it.
    pub async fn unpaced<F: Future>(work: F) -> F::Output {
        match SCOPE.try_with(Scope::clone) {
            Ok(scope) => {
                let scope = Scope {
                    paced: false,
                    ..scope
                };
                SCOPE.scope(scope, work).await
            }
            Err(_) => work.await,
        }
    }

    /// The scope the current task runs in, if any, and whether it is held to the share.
    pub fn current() -> Option<(Arc<Self>, bool)> {
        SCOPE.try_with(|s| (s.work.clone(), s.paced)).ok()
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
        let bg = Background::new(0.25, &of, Duration::ZERO, 10);
        assert!(Background::current().is_none());
        let held = bg
            .run(async {
                let (scope, paced) = Background::current().expect("inside the scope");
                assert!(paced);
                scope.count();
                let a = scope.admit().await.expect("slot 1");
                let b = scope.admit().await.expect("slot 2");
                // 25 % of 8 in-flight slots.
                assert!(scope.admit().await.is_err());
                let inner = Background::unpaced(async { Background::current() }).await;
                assert!(inner.is_some_and(|(_, paced)| !paced));
                (a, b)
            })
            .await;
        drop(held);
        assert_eq!(bg.calls(), 1);
        assert_eq!(bg.read(10), Ok(()));
        assert_eq!(bg.read(1), Err(11));
        assert!(Background::current().is_none());
    }
}
