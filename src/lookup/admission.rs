//! Fair admission of cold (upstream-bound) lookups: a bounded number run at once, each caller may
//! run a few of them, and the rest wait in that caller's own bounded queue. A freed slot goes to
//! the next caller in round-robin order, so a caller flooding unique names waits behind itself,
//! never in front of everyone else, and cannot fill the systems' outbound budget on its own.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Who is asking: the authenticated token's name, else the peer address. Lookups are shared
/// fairly between callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
// Shared, not owned: a token's key is made once when the tokens are loaded and cloned per
// request.
pub struct CallerKey(Arc<str>);

impl CallerKey {
    pub fn token(name: &str) -> Self {
        Self(format!("token:{name}").into())
    }

    pub fn peer(ip: IpAddr) -> Self {
        Self(format!("peer:{ip}").into())
    }

    /// For lookups made by the gateway itself (tests, tools): one shared queue.
    pub fn internal() -> Self {
        Self("internal".into())
    }
}

impl fmt::Display for CallerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_caller: usize,
    pub queue_per_caller: usize,
}

/// This caller already has as many lookups running and queued as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_after: Duration,
}

#[derive(Default)]
struct Queue {
    running: usize,
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

#[derive(Default)]
struct State {
    running: usize,
    next_id: u64,
    callers: HashMap<CallerKey, Queue>,
    /// Callers with someone waiting, in the order they will be served.
    ring: VecDeque<CallerKey>,
}

pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits: Limits {
                total: limits.total.max(1),
                per_caller: limits.per_caller.max(1),
                queue_per_caller: limits.queue_per_caller,
            },
            state: Mutex::new(State::default()),
        })
    }

    /// Takes a place for `caller`: a slot now if one is free, else a place in its queue.
    /// Refused when the caller's queue is full.
    pub fn reserve(self: &Arc<Self>, caller: &CallerKey) -> Result<Reservation, Busy> {
        let Ok(mut state) = self.state.lock() else {
            // A poisoned lock means a panic elsewhere; admitting keeps lookups working.
            return Ok(Reservation::granted(self.clone(), caller.clone(), false));
        };
        let state = &mut *state;
        let total_running = state.running;
        let queue = state.callers.entry(caller.clone()).or_default();
        if queue.running < self.limits.per_caller
            && total_running < self.limits.total
            && queue.waiting.is_empty()
        {
            queue.running += 1;
            state.running += 1;
            return Ok(Reservation::granted(self.clone(), caller.clone(), true));
        }
        if queue.waiting.len() >= self.limits.queue_per_caller {
            if queue.running == 0 && queue.waiting.is_empty() {
                state.callers.remove(caller);
            }
            return Err(Busy {
                retry_after: Duration::from_secs(1),
            });
        }
        let id = state.next_id;
        state.next_id += 1;
        let (tx, rx) = oneshot::channel();
        queue.waiting.push_back((id, tx));
        if !state.ring.contains(caller) {
            state.ring.push_back(caller.clone());
        }
        Ok(Reservation {
            admission: self.clone(),
            caller: caller.clone(),
            id,
            wait: Some(rx),
            holds_slot: false,
        })
    }

    /// Lookups running now (for tests and metrics).
    pub fn running(&self) -> usize {
        self.state.lock().map(|s| s.running).unwrap_or(0)
    }

    fn release(&self, caller: &CallerKey) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.running = state.running.saturating_sub(1);
        if let Some(queue) = state.callers.get_mut(caller) {
            queue.running = queue.running.saturating_sub(1);
            if queue.running == 0 && queue.waiting.is_empty() {
                state.callers.remove(caller);
            }
        }
        self.dispatch(&mut state);
    }

    /// Hands free slots to waiting callers, one per caller per turn.
    fn dispatch(&self, state: &mut State) {
        let mut passes_without_grant = 0;
        while state.running < self.limits.total && passes_without_grant < state.ring.len() {
            let Some(caller) = state.ring.pop_front() else {
                break;
            };
            let Some(queue) = state.callers.get_mut(&caller) else {
                continue;
            };
            if queue.running >= self.limits.per_caller {
                state.ring.push_back(caller);
                passes_without_grant += 1;
                continue;
            }
            let mut granted = false;
            while let Some((_, tx)) = queue.waiting.pop_front() {
                // A waiter whose reservation is gone cannot take the slot; try the next.
                if tx.send(()).is_ok() {
                    granted = true;
                    break;
                }
            }
            if granted {
                queue.running += 1;
                state.running += 1;
                passes_without_grant = 0;
            }
            if queue.waiting.is_empty() {
                if queue.running == 0 {
                    state.callers.remove(&caller);
                }
            } else {
                state.ring.push_back(caller);
            }
        }
    }

    fn forget_waiter(&self, caller: &CallerKey, id: u64) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let Some(queue) = state.callers.get_mut(caller) else {
            return false;
        };
        let before = queue.waiting.len();
        queue.waiting.retain(|(w, _)| *w != id);
        let removed = queue.waiting.len() != before;
        if queue.running == 0 && queue.waiting.is_empty() {
            state.callers.remove(caller);
            state.ring.retain(|c| c != caller);
        }
        removed
    }
}

/// A place in the admission: already a slot, or a place in the caller's queue. Dropping it
/// gives the place (or the slot) back.
pub struct Reservation {
    admission: Arc<Admission>,
    caller: CallerKey,
    id: u64,
    wait: Option<oneshot::Receiver<()>>,
    holds_slot: bool,
}

impl Reservation {
    fn granted(admission: Arc<Admission>, caller: CallerKey, holds_slot: bool) -> Self {
        Self {
            admission,
            caller,
            id: u64::MAX,
            wait: None,
            holds_slot,
        }
    }

    /// Waits for this reservation's turn; the slot is held until the returned value is dropped.
    pub async fn admitted(mut self) -> Slot {
        if let Some(rx) = self.wait.as_mut() {
            // The sender only goes away with a grant or with the admission itself; either way
            // the lookup may run.
            let granted = rx.await.is_ok();
            self.wait = None;
            self.holds_slot = granted;
        }
        Slot(self)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(mut rx) = self.wait.take() {
            if self.admission.forget_waiter(&self.caller, self.id) {
                return;
            }
            // Granted between the send and now: the slot is ours to give back.
            self.holds_slot = rx.try_recv().is_ok();
        }
        if self.holds_slot {
            self.admission.release(&self.caller);
        }
    }
}

/// A running cold lookup's slot.
pub struct Slot(#[allow(dead_code)] Reservation);

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_caller: usize, queue: usize) -> Arc<Admission> {
        Admission::new(Limits {
            total,
            per_caller,
            queue_per_caller: queue,
        })
    }

    fn caller(n: &str) -> CallerKey {
        CallerKey::token(n)
    }

    #[tokio::test]
    async fn a_caller_runs_at_most_its_share_and_then_queues_then_is_refused() {
        let a = admission(10, 2, 1);
        let first = a.reserve(&caller("a")).expect("slot").admitted().await;
        let _second = a.reserve(&caller("a")).expect("slot").admitted().await;
        assert_eq!(a.running(), 2);
        let queued = a.reserve(&caller("a")).expect("queued");
        assert!(a.reserve(&caller("a")).is_err(), "queue of one is full");
        // Another caller is not held up by a's backlog.
        let b = a.reserve(&caller("b")).expect("b runs").admitted().await;
        assert_eq!(a.running(), 3);
        drop(first);
        let third = queued.admitted().await;
        assert_eq!(a.running(), 3);
        drop((b, third));
        assert_eq!(a.running(), 1);
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin_between_callers() {
        let a = admission(1, 1, 10);
        let running = a.reserve(&caller("flood")).expect("slot").admitted().await;
        let flood: Vec<_> = (0..5)
            .map(|_| a.reserve(&caller("flood")).expect("queued"))
            .collect();
        let other = a.reserve(&caller("other")).expect("queued");
        drop(running);
        // The flood's first queued lookup got the slot; "other" is next, before the rest.
        let mut flood = flood.into_iter();
        let f1 = flood.next().expect("one").admitted().await;
        drop(f1);
        let o = tokio::time::timeout(Duration::from_secs(5), other.admitted())
            .await
            .expect("other is served second");
        assert_eq!(a.running(), 1);
        drop(o);
        drop(flood);
        assert_eq!(a.running(), 0);
    }

    #[tokio::test]
    async fn an_abandoned_place_frees_its_slot_or_queue_entry() {
        let a = admission(1, 1, 1);
        let running = a.reserve(&caller("a")).expect("slot");
        let queued = a.reserve(&caller("b")).expect("queued");
        drop(queued);
        drop(running);
        assert_eq!(a.running(), 0);
        let again = a.reserve(&caller("b")).expect("slot").admitted().await;
        assert_eq!(a.running(), 1);
        drop(again);
        assert!(a.state.lock().expect("lock").callers.is_empty());
    }
}
