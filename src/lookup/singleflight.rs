//! Request coalescing: concurrent callers asking for the same key share one computation.
//! The computation runs in its own task, so it finishes (and its result is cached) even if every
//! caller that wanted it has gone away.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

type Flight<V> = Shared<BoxFuture<'static, Option<V>>>;

pub struct SingleFlight<K, V: Clone> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V>
where
    V: Clone,
{
    fn default() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// How a caller got its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This caller started the computation.
    Leader,
    /// This caller joined one already under way.
    Waiter,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `make()` unless a computation for `key` is already under way, in which case this
    /// waits for that one. `None` = the computation panicked.
    pub async fn run<F>(&self, key: K, make: impl FnOnce() -> F) -> (Option<V>, Role)
    where
        F: Future<Output = V> + Send + 'static,
    {
        match self
            .try_run(key, || Ok::<_, std::convert::Infallible>(make()))
            .await
        {
            Ok(outcome) => outcome,
            Err(never) => match never {},
        }
    }

    /// Like [`run`](Self::run), but a leader's `make` may refuse to start (then nothing is
    /// registered and its error is returned). Joining a computation under way never fails.
    pub async fn try_run<F, E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<F, E>,
    ) -> Result<(Option<V>, Role), E>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, role) = {
            let Ok(mut flights) = self.flights.lock() else {
                return Ok((None, Role::Leader));
            };
            match flights.get(&key) {
                Some(f) => (f.clone(), Role::Waiter),
                None => {
                    let work = make()?;
                    let registry = self.flights.clone();
                    let task_key = key.clone();
                    // The lock is held until the flight is registered, so the task cannot remove
                    // its entry before it exists. The task carries the leader's span, so the
                    // vendor calls it makes log under the request id that started them.
                    let task = tokio::spawn(tracing::Instrument::instrument(
                        async move {
                            let value = work.await;
                            if let Ok(mut flights) = registry.lock() {
                                flights.remove(&task_key);
                            }
                            value
                        },
                        tracing::Span::current(),
                    ));
                    let flight = async move { task.await.ok() }.boxed().shared();
                    flights.insert(key, flight.clone());
                    (flight, Role::Leader)
                }
            }
        };
        Ok((flight.await, role))
    }

    pub fn in_flight(&self) -> usize {
        self.flights.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let sf: Arc<SingleFlight<&str, usize>> = Arc::new(SingleFlight::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let entered = Arc::new(AtomicUsize::new(0));
        let mut callers = Vec::new();
        for _ in 0..50 {
            let (sf, runs, gate, entered) =
                (sf.clone(), runs.clone(), gate.clone(), entered.clone());
            callers.push(tokio::spawn(async move {
                entered.fetch_add(1, Ordering::SeqCst);
                sf.run("k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    42
                })
                .await
            }));
        }
        // On this single-threaded runtime a caller runs from its increment to its first pending
        // await (the flight) without interruption, so 50 entries = 50 registered callers.
        while entered.load(Ordering::SeqCst) < 50 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut leaders = 0;
        for c in callers {
            let (v, role) = c.await.expect("caller");
            assert_eq!(v, Some(42));
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(sf.in_flight(), 0, "finished flights are forgotten");
    }

    #[tokio::test]
    async fn a_finished_flight_is_not_reused() {
        let sf: SingleFlight<&str, usize> = SingleFlight::default();
        assert_eq!(sf.run("k", || async { 1 }).await.0, Some(1));
        assert_eq!(sf.run("k", || async { 2 }).await.0, Some(2));
    }

    #[tokio::test]
    async fn the_computation_survives_its_callers() {
        let sf: Arc<SingleFlight<&str, usize>> = Arc::new(SingleFlight::default());
        let done = Arc::new(Notify::new());
        let signal = done.clone();
        let caller = {
            let sf = sf.clone();
            tokio::spawn(async move {
                sf.run("k", || async move {
                    tokio::task::yield_now().await;
                    signal.notify_one();
                    7
                })
                .await
            })
        };
        // Let the caller start the flight, then make it go away.
        while sf.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        caller.abort();
        done.notified().await;
        while sf.in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_refused_start_registers_nothing_and_a_waiter_is_never_refused() {
        let sf: Arc<SingleFlight<&str, usize>> = Arc::new(SingleFlight::default());
        let refused = sf
            .try_run("k", || Err::<std::future::Ready<usize>, _>("busy"))
            .await;
        assert_eq!(refused.err(), Some("busy"));
        assert_eq!(sf.in_flight(), 0);
        let gate = Arc::new(Notify::new());
        let leader = {
            let (sf, gate) = (sf.clone(), gate.clone());
            tokio::spawn(async move {
                sf.run("k", || async move {
                    gate.notified().await;
                    5
                })
                .await
            })
        };
        while sf.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let sf = sf.clone();
            tokio::spawn(async move {
                sf.try_run("k", || Err::<std::future::Ready<usize>, _>("busy"))
                    .await
            })
        };
        tokio::task::yield_now().await;
        gate.notify_one();
        assert_eq!(leader.await.expect("leader").0, Some(5));
        let joined = waiter.await.expect("waiter").expect("a waiter joins");
        assert_eq!(joined, (Some(5), Role::Waiter));
    }
}
