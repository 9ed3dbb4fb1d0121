//! Admission (buffering): at most `max_in_flight` hosts may wait unprovisioned. In flight =
//! hosts observed in a counted provisioning state, plus hosts admitted here but not yet observed
//! (created, but the watch has not shown them). Every decision is taken under one short lock
//! that does no I/O, so concurrent reconciles can never over-admit; buffered generators are
//! released first-in first-out by `bufferedAt`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// `namespace/name` of a generator or a host.
pub type Key = String;

/// The `status.provisioning.state` values that count as "in flight" by default (empty = the
/// host has no status yet).
pub const DEFAULT_COUNTED_STATES: [&str; 6] = [
    "",
    "registering",
    "inspecting",
    "preparing",
    "available",
    "provisioning",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead and create the host; a slot is reserved for it.
    Admitted,
    /// Wait; `position` is 0-based in the FIFO queue.
    Buffered {
        since: DateTime<Utc>,
        position: usize,
    },
}

#[derive(Default)]
struct State {
    /// Hosts the watch shows in a counted state.
    observed: HashSet<Key>,
    /// Every host the watch shows, in any state: an existing host needs no slot (a generator
    /// taken over from the old operator, or one whose host is already provisioned).
    known: HashSet<Key>,
    /// Hosts admitted here and not yet observed, with when they were admitted.
    pending: HashMap<Key, Instant>,
    /// Buffered generators in release order.
    queue: BTreeSet<(DateTime<Utc>, Key)>,
    since: HashMap<Key, DateTime<Utc>>,
    peak: usize,
}

impl State {
    fn in_flight(&self) -> usize {
        self.observed.len() + self.pending.len()
    }

    fn position(&self, generator: &str) -> Option<usize> {
        self.queue.iter().position(|(_, g)| g == generator)
    }

    fn dequeue(&mut self, generator: &str) {
        if let Some(since) = self.since.remove(generator) {
            self.queue.remove(&(since, generator.to_owned()));
        }
    }
}

pub struct Admission {
    max_in_flight: usize,
    counted_states: HashSet<String>,
    /// An admitted host never observed after this long (its creation failed) frees its slot.
    pending_ttl: Duration,
    state: Mutex<State>,
}

impl Admission {
    pub fn new(max_in_flight: usize, counted_states: &[&str], pending_ttl: Duration) -> Self {
        Self {
            max_in_flight,
            counted_states: counted_states.iter().map(|s| s.to_string()).collect(),
            pending_ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is a few inserts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to create `host` for `generator`. Idempotent: asking again for an admitted generator
    /// admits again; a buffered one keeps its place. `buffered_at` (from the generator's status)
    /// keeps the FIFO order across controller restarts.
    pub fn request(
        &self,
        generator: &str,
        host: &str,
        buffered_at: Option<DateTime<Utc>>,
    ) -> Decision {
        let mut s = self.lock();
        self.expire_pending(&mut s);
        // The host is the identity: one that exists or is already counted needs no second slot.
        if s.known.contains(host) || s.pending.contains_key(host) {
            s.dequeue(generator);
            return Decision::Admitted;
        }
        let free = self.max_in_flight.saturating_sub(s.in_flight());
        // FIFO: a newcomer may not take a slot that an earlier-buffered generator is owed.
        let owed = match s.position(generator) {
            Some(pos) => pos < free,
            None => s.queue.len() < free,
        };
        if owed {
            s.dequeue(generator);
            s.pending.insert(host.to_owned(), Instant::now());
            s.peak = s.peak.max(s.in_flight());
            return Decision::Admitted;
        }
        let since = *s
            .since
            .entry(generator.to_owned())
            .or_insert_with(|| buffered_at.unwrap_or_else(Utc::now));
        s.queue.insert((since, generator.to_owned()));
        let position = s.position(generator).unwrap_or(0);
        Decision::Buffered { since, position }
    }

    /// What the BMH watch saw: `state` = `status.provisioning.state` (None = host deleted).
    /// Returns the buffered generators that may now be admitted, oldest first.
    pub fn observe(&self, host: &str, state: Option<&str>) -> Vec<Key> {
        let mut s = self.lock();
        self.record(&mut s, host, state);
        s.peak = s.peak.max(s.in_flight());
        self.releasable(&s)
    }

    fn record(&self, s: &mut State, host: &str, state: Option<&str>) {
        s.pending.remove(host);
        match state {
            Some(st) => {
                s.known.insert(host.to_owned());
                if self.counted_states.contains(st) {
                    s.observed.insert(host.to_owned());
                } else {
                    s.observed.remove(host);
                }
            }
            None => {
                s.known.remove(host);
                s.observed.remove(host);
            }
        }
    }

    /// A complete list from the watch (its initial list, or a re-list after it lost track):
    /// replaces everything observed. Admitted hosts absent from the list stay pending: they may
    /// have been created after the list was taken.
    pub fn resync<'a>(&self, hosts: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Key> {
        let mut s = self.lock();
        s.observed.clear();
        s.known.clear();
        for (host, state) in hosts {
            self.record(&mut s, host, Some(state));
        }
        s.peak = s.peak.max(s.in_flight());
        self.releasable(&s)
    }

    /// The host admitted for this slot will not be created after all (its lookup or creation
    /// failed): the slot is free again. An observed host is unaffected.
    pub fn cancel(&self, host: &str) -> Vec<Key> {
        let mut s = self.lock();
        s.pending.remove(host);
        self.releasable(&s)
    }

    /// Whether this generator is waiting in the queue.
    pub fn is_buffered(&self, generator: &str) -> bool {
        self.lock().since.contains_key(generator)
    }

    /// Queues a generator that an earlier instance buffered (its `status.bufferedAt`), before any
    /// reconcile runs: after a restart the oldest keep their turn, whichever reconciles first.
    pub fn seed(&self, generator: &str, buffered_at: DateTime<Utc>) {
        let mut s = self.lock();
        if !s.since.contains_key(generator) {
            s.since.insert(generator.to_owned(), buffered_at);
            s.queue.insert((buffered_at, generator.to_owned()));
        }
    }

    /// Drops queued generators that no longer exist (deleted without our finalizer running).
    pub fn retain_queued(&self, alive: &HashSet<Key>) {
        let mut s = self.lock();
        let gone: Vec<Key> = s
            .since
            .keys()
            .filter(|g| !alive.contains(*g))
            .cloned()
            .collect();
        for g in gone {
            s.dequeue(&g);
        }
    }

    /// Whether a slot is reserved for this host (admitted, not yet observed).
    pub fn is_pending(&self, host: &str) -> bool {
        self.lock().pending.contains_key(host)
    }

    /// Forgets a generator (deleted, or no longer asking): frees its queue place.
    pub fn forget_generator(&self, generator: &str) {
        let mut s = self.lock();
        s.dequeue(generator);
    }

    /// The periodic resync's question: who may be admitted now.
    pub fn releasable_now(&self) -> Vec<Key> {
        let mut s = self.lock();
        self.expire_pending(&mut s);
        self.releasable(&s)
    }

    fn releasable(&self, s: &State) -> Vec<Key> {
        let free = self.max_in_flight.saturating_sub(s.in_flight());
        s.queue.iter().take(free).map(|(_, g)| g.clone()).collect()
    }

    fn expire_pending(&self, s: &mut State) {
        let ttl = self.pending_ttl;
        s.pending.retain(|_, at| at.elapsed() < ttl);
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    pub fn in_flight(&self) -> usize {
        self.lock().in_flight()
    }

    pub fn buffered(&self) -> usize {
        self.lock().queue.len()
    }

    /// Highest in-flight count ever reached (for metrics and tests).
    pub fn peak(&self) -> usize {
        self.lock().peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn admission(max: usize) -> Admission {
        Admission::new(max, &DEFAULT_COUNTED_STATES, Duration::from_secs(600))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_requests_never_exceed_the_limit() {
        let a = Arc::new(admission(20));
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move {
                    let d = a.request(&format!("ns/gen-{i}"), &format!("ns/host-{i}"), None);
                    assert!(a.in_flight() <= 20);
                    d
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            if t.await.expect("task") == Decision::Admitted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 20);
        assert_eq!(a.buffered(), 30);
        assert_eq!(a.peak(), 20);
    }

    #[test]
    fn hosts_admitted_but_not_yet_observed_count() {
        let a = admission(2);
        assert_eq!(a.request("g1", "h1", None), Decision::Admitted);
        assert_eq!(a.request("g2", "h2", None), Decision::Admitted);
        // Neither host is visible to the watch yet; a third must still wait.
        assert!(matches!(
            a.request("g3", "h3", None),
            Decision::Buffered { .. }
        ));
        // Observing the admitted hosts does not double-count them.
        a.observe("h1", Some("registering"));
        a.observe("h2", Some(""));
        assert_eq!(a.in_flight(), 2);
    }

    #[test]
    fn release_is_fifo_by_buffered_at() {
        let a = admission(1);
        assert_eq!(a.request("g0", "h0", None), Decision::Admitted);
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0);
        // Buffered out of order of arrival; bufferedAt decides.
        a.request("late", "h-late", t(30));
        a.request("early", "h-early", t(10));
        a.request("middle", "h-middle", t(20));
        assert_eq!(
            a.observe("h0", Some("provisioned")),
            vec!["early".to_string()]
        );
        // A newcomer cannot jump the queue, and the queued ones keep their order.
        assert!(matches!(
            a.request("new", "h-new", None),
            Decision::Buffered { .. }
        ));
        assert!(matches!(
            a.request("middle", "h-middle", t(20)),
            Decision::Buffered { position: 1, .. }
        ));
        assert_eq!(a.request("early", "h-early", t(10)), Decision::Admitted);
        a.observe("h-early", Some("provisioned"));
        assert_eq!(a.releasable_now(), vec!["middle".to_string()]);
    }

    #[test]
    fn an_existing_host_in_any_state_needs_no_slot() {
        let a = admission(1);
        a.observe("h-busy", Some("inspecting"));
        a.observe("h-done", Some("provisioned"));
        // Full, but the generator whose host already exists goes ahead without a slot.
        assert_eq!(a.request("g-done", "h-done", None), Decision::Admitted);
        assert_eq!(a.in_flight(), 1);
        assert!(matches!(
            a.request("g-new", "h-new", None),
            Decision::Buffered { .. }
        ));
    }

    #[test]
    fn a_resync_replaces_what_was_observed_but_keeps_pending_hosts() {
        let a = admission(2);
        a.observe("gone", Some("inspecting"));
        assert_eq!(a.request("g1", "h1", None), Decision::Admitted);
        // The re-list shows neither `gone` (deleted meanwhile) nor h1 (created after the list).
        assert!(a.resync([("other", "provisioned")]).is_empty());
        assert_eq!(a.in_flight(), 1, "h1 is still pending");
        a.resync([("h1", "registering")]);
        assert_eq!(a.in_flight(), 1, "h1 observed, not pending twice");
    }

    #[test]
    fn a_cancelled_admission_frees_its_slot() {
        let a = admission(1);
        assert_eq!(a.request("g1", "h1", None), Decision::Admitted);
        a.request("g2", "h2", None);
        assert_eq!(a.cancel("h1"), vec!["g2".to_string()]);
        assert!(a.is_buffered("g2"));
        assert_eq!(a.request("g2", "h2", None), Decision::Admitted);
        assert!(!a.is_buffered("g2"));
    }

    #[test]
    fn seeded_and_pruned_queue_entries() {
        let a = admission(1);
        a.request("g0", "h0", None);
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap();
        a.seed("old", t(5));
        // A generator reconciled before `old` after a restart still queues behind it.
        assert!(matches!(
            a.request("new", "h-new", None),
            Decision::Buffered { position: 1, .. }
        ));
        a.retain_queued(&HashSet::from(["new".to_string()]));
        assert_eq!(a.observe("h0", None), vec!["new".to_string()]);
    }

    #[test]
    fn requests_are_idempotent() {
        let a = admission(1);
        assert_eq!(a.request("g1", "h1", None), Decision::Admitted);
        assert_eq!(a.request("g1", "h1", None), Decision::Admitted);
        assert_eq!(a.in_flight(), 1);
        let first = a.request("g2", "h2", None);
        assert_eq!(a.request("g2", "h2", None), first);
    }

    #[test]
    fn a_deleted_host_or_generator_frees_its_place() {
        let a = admission(1);
        a.request("g1", "h1", None);
        a.request("g2", "h2", None);
        a.request("g3", "h3", None);
        a.forget_generator("g2");
        assert_eq!(a.observe("h1", None), vec!["g3".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_admitted_host_never_observed_frees_its_slot_after_the_ttl() {
        let a = Admission::new(1, &DEFAULT_COUNTED_STATES, Duration::from_secs(60));
        a.request("g1", "h1", None);
        assert!(matches!(
            a.request("g2", "h2", None),
            Decision::Buffered { .. }
        ));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(a.releasable_now(), vec!["g2".to_string()]);
        // The expired generator asking again queues behind g2 instead of slipping in.
        assert!(matches!(
            a.request("g1", "h1", None),
            Decision::Buffered { .. }
        ));
        assert_eq!(a.request("g2", "h2", None), Decision::Admitted);
        assert_eq!(a.in_flight(), 1);
    }
}
