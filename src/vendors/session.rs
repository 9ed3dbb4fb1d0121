//! The one session manager every backend logs in through (OneView, UCS Manager, OME today;
//! UCS Central, Intersight and Redfish sessions have the same shape).
//!
//! - **Single flight**: one login at a time per system; lookups that queued behind it share
//!   its outcome instead of each logging in (appliances cap sessions per user or client IP).
//! - **Refusals are remembered**: a refused login (`Auth`) is handed to every lookup for a
//!   backoff window (doubling per further refusal) before the next attempt, so a wrong
//!   password never becomes a login storm or a locked service account.
//! - **Refresh before expiry** where the vendor states a lifetime: a UCSM session must be
//!   refreshed within `outRefreshPeriod`; OneView and OME sessions end after an idle timeout,
//!   so one left idle that long is replaced before it is used rather than after a 401.
//! - **Exactly one re-login** on a rejected session: [`SessionManager::renew`] knows which
//!   session was rejected, so lookups that saw the same rejection share one new login, and a
//!   rejection of a session already replaced costs nothing.
//! - **Logout** of the live session, once, on shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::BackendError;

/// How long a session lives, as the vendor states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// No stated lifetime: used until the appliance rejects it.
    Unbounded,
    /// Must be refreshed within this since it was issued (UCSM `outRefreshPeriod`).
    RefreshWithin(Duration),
    /// Ends after this long without use (OneView's idle timeout, OME's `SessionTimeout`).
    Idle(Duration),
}

impl Lifetime {
    /// When to act: a minute before the end, or at 90 % for lifetimes shorter than 10 minutes
    /// (ucsmsdk refreshes `outRefreshPeriod - 60` s after a login).
    fn due_after(self) -> Option<Duration> {
        let total = match self {
            Self::Unbounded => return None,
            Self::RefreshWithin(d) | Self::Idle(d) => d,
        };
        Some(total - (total / 10).min(Duration::from_secs(60)))
    }
}

/// A session as a vendor's login or refresh hands it out.
pub struct Issued<S> {
    pub session: S,
    pub lifetime: Lifetime,
}

/// The vendor half: how to log in, refresh and log out. The manager decides when.
#[async_trait]
pub trait SessionProtocol: Send + Sync {
    type Session: Send + Sync + 'static;

    async fn login(&self) -> Result<Issued<Self::Session>, BackendError>;

    /// Extends or replaces a live session without a full login, where the vendor has such a
    /// call. `None`: it has not, and a new login replaces the session instead.
    async fn refresh(
        &self,
        _current: &Self::Session,
    ) -> Option<Result<Issued<Self::Session>, BackendError>> {
        None
    }

    /// Ends the session on the appliance. A session the appliance had already forgotten is
    /// success: the goal is reached.
    async fn logout(&self, session: &Self::Session) -> Result<(), BackendError>;
}

/// A live session handed to a lookup. Pass it back to [`SessionManager::renew`] when the
/// appliance rejects it.
pub struct Lease<S> {
    session: S,
    generation: u64,
    issued: Instant,
    lifetime: Lifetime,
    /// Milliseconds after `issued` of the last hand-out (idle lifetimes count from it).
    last_used_ms: AtomicU64,
}

impl<S> std::ops::Deref for Lease<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.session
    }
}

impl<S> Lease<S> {
    fn new(issued: Issued<S>, generation: u64) -> Self {
        Self {
            session: issued.session,
            generation,
            issued: Instant::now(),
            lifetime: issued.lifetime,
            last_used_ms: AtomicU64::new(0),
        }
    }

    fn due(&self, now: Instant) -> bool {
        let Some(after) = self.lifetime.due_after() else {
            return false;
        };
        let since_issue = now.saturating_duration_since(self.issued);
        let since = match self.lifetime {
            Lifetime::Idle(_) => since_issue.saturating_sub(Duration::from_millis(
                self.last_used_ms.load(Ordering::Relaxed),
            )),
            _ => since_issue,
        };
        since >= after
    }

    fn touch(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.issued).as_millis();
        self.last_used_ms
            .fetch_max(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// The longest a refusal is remembered, as a multiple of the configured backoff.
const MAX_BACKOFF_FACTOR: u32 = 16;

pub struct SessionManager<S> {
    system: String,
    backoff: Duration,
    current: RwLock<Option<Arc<Lease<S>>>>,
    /// Held while logging in, refreshing or logging out.
    gate: tokio::sync::Mutex<Gate>,
    /// Login/refresh attempts finished, so a lookup that queued behind one can tell that it
    /// ran and share its outcome.
    attempts: AtomicU64,
    generations: AtomicU64,
    refusal: Mutex<Option<Refusal>>,
}

#[derive(Default)]
struct Gate {
    last_error: Option<BackendError>,
}

struct Refusal {
    error: BackendError,
    until: Instant,
    streak: u32,
}

impl<S: Send + Sync + 'static> SessionManager<S> {
    pub fn new(system: &str, backoff: Duration) -> Self {
        Self {
            system: system.to_owned(),
            backoff,
            current: RwLock::new(None),
            gate: tokio::sync::Mutex::new(Gate::default()),
            attempts: AtomicU64::new(0),
            generations: AtomicU64::new(0),
            refusal: Mutex::new(None),
        }
    }

    /// The live session, logging in (or refreshing) first when there is none or it is due.
    pub async fn session<P>(&self, protocol: &P) -> Result<Arc<Lease<S>>, BackendError>
    where
        P: SessionProtocol<Session = S> + ?Sized,
    {
        self.acquire(protocol, None).await
    }

    /// A session to replace `rejected`, which the appliance just refused: the one another
    /// lookup already obtained, or a new login. Call it once per rejection; a second rejection
    /// of a fresh session is the caller's `Auth` error.
    pub async fn renew<P>(
        &self,
        protocol: &P,
        rejected: &Lease<S>,
    ) -> Result<Arc<Lease<S>>, BackendError>
    where
        P: SessionProtocol<Session = S> + ?Sized,
    {
        self.acquire(protocol, Some(rejected.generation)).await
    }

    /// Logs the live session out and forgets it; logs the outcome (the one place that does).
    pub async fn logout<P>(&self, protocol: &P)
    where
        P: SessionProtocol<Session = S> + ?Sized,
    {
        let _gate = self.gate.lock().await;
        let Some(lease) = self.replace(None) else {
            return;
        };
        match protocol.logout(&lease.session).await {
            Ok(()) => tracing::debug!(system = %self.system, "session closed"),
            Err(e) => tracing::warn!(system = %self.system, error = %e, "logout failed"),
        }
    }

    /// Login attempts made so far (tests, metrics).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    async fn acquire<P>(
        &self,
        protocol: &P,
        rejected: Option<u64>,
    ) -> Result<Arc<Lease<S>>, BackendError>
    where
        P: SessionProtocol<Session = S> + ?Sized,
    {
        if let Some(lease) = self.usable(rejected) {
            return Ok(lease);
        }
        self.refused()?;
        let attempts_seen = self.attempts.load(Ordering::SeqCst);
        let mut gate = self.gate.lock().await;
        if let Some(lease) = self.usable(rejected) {
            return Ok(lease);
        }
        if self.attempts.load(Ordering::SeqCst) != attempts_seen {
            if let Some(e) = &gate.last_error {
                return Err(e.clone());
            }
        }
        self.refused()?;
        // A due session is refreshed in place where the vendor can; a rejected one never is.
        let live = self.replace(None);
        // Lookups wait on this gate: a sweep holding it must not wait for its background share.
        let outcome = crate::resilience::Background::unpaced(async {
            let refreshed = match (&live, rejected) {
                (Some(lease), None) => protocol.refresh(&lease.session).await,
                _ => None,
            };
            match refreshed {
                Some(Ok(issued)) => Ok(issued),
                Some(Err(e)) => {
                    tracing::info!(system = %self.system, error = %e, "session refresh failed; logging in again");
                    protocol.login().await
                }
                None => protocol.login().await,
            }
        })
        .await;
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match outcome {
            Ok(issued) => {
                let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
                let lease = Arc::new(Lease::new(issued, generation));
                self.replace(Some(lease.clone()));
                gate.last_error = None;
                if let Ok(mut r) = self.refusal.lock() {
                    *r = None;
                }
                Ok(lease)
            }
            Err(e) => {
                if matches!(e, BackendError::Auth { .. }) {
                    self.remember_refusal(&e);
                }
                gate.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn usable(&self, rejected: Option<u64>) -> Option<Arc<Lease<S>>> {
        let now = Instant::now();
        let lease = self.current.read().ok()?.clone()?;
        if Some(lease.generation) == rejected || lease.due(now) {
            return None;
        }
        lease.touch(now);
        Some(lease)
    }

    fn replace(&self, new: Option<Arc<Lease<S>>>) -> Option<Arc<Lease<S>>> {
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *slot, new)
    }

    /// The remembered refusal, while its window lasts.
    fn refused(&self) -> Result<(), BackendError> {
        let r = self
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*r {
            Some(refusal) if Instant::now() < refusal.until => Err(refusal.error.clone()),
            _ => Ok(()),
        }
    }

    fn remember_refusal(&self, e: &BackendError) {
        let mut r = self
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let streak = r.as_ref().map_or(0, |r| r.streak).saturating_add(1);
        let factor = 2u32
            .saturating_pow(streak.saturating_sub(1))
            .min(MAX_BACKOFF_FACTOR);
        let window = self.backoff.saturating_mul(factor);
        let error = match e {
            BackendError::Auth { system, detail } => BackendError::Auth {
                system: system.clone(),
                detail: format!(
                    "{detail} (no new login attempt for {}s)",
                    window.as_secs_f64().ceil()
                ),
            },
            other => other.clone(),
        };
        tracing::warn!(system = %self.system, error = %e, backoff_s = window.as_secs(), "login refused; sharing the refusal until the backoff ends");
        *r = Some(Refusal {
            error,
            until: Instant::now() + window,
            streak,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Fake {
        logins: AtomicU64,
        refresh_calls: AtomicU64,
        refuse: AtomicBool,
        lifetime: Lifetime,
        can_refresh: bool,
    }

    impl Fake {
        fn new(lifetime: Lifetime, can_refresh: bool) -> Self {
            Self {
                logins: AtomicU64::new(0),
                refresh_calls: AtomicU64::new(0),
                refuse: AtomicBool::new(false),
                lifetime,
                can_refresh,
            }
        }
    }

    #[async_trait]
    impl SessionProtocol for Fake {
        type Session = u64;
        async fn login(&self) -> Result<Issued<u64>, BackendError> {
            let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::task::yield_now().await;
            if self.refuse.load(Ordering::SeqCst) {
                return Err(BackendError::Auth {
                    system: "s".into(),
                    detail: "bad password".into(),
                });
            }
            Ok(Issued {
                session: n,
                lifetime: self.lifetime,
            })
        }
        async fn refresh(&self, current: &u64) -> Option<Result<Issued<u64>, BackendError>> {
            if !self.can_refresh {
                return None;
            }
            self.refresh_calls.fetch_add(1, Ordering::SeqCst);
            Some(Ok(Issued {
                session: current + 100,
                lifetime: self.lifetime,
            }))
        }
        async fn logout(&self, _: &u64) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_login_and_one_refusal() {
        let fake = Fake::new(Lifetime::Unbounded, false);
        let m = SessionManager::<u64>::new("s", Duration::from_secs(60));
        let got = futures::future::join_all((0..16).map(|_| m.session(&fake))).await;
        assert!(got.iter().all(|r| r.as_ref().is_ok_and(|l| ***l == 1)));
        assert_eq!(fake.logins.load(Ordering::SeqCst), 1);

        let fake = Fake::new(Lifetime::Unbounded, false);
        fake.refuse.store(true, Ordering::SeqCst);
        let m = SessionManager::<u64>::new("s", Duration::from_secs(60));
        for _ in 0..2 {
            let got = futures::future::join_all((0..16).map(|_| m.session(&fake))).await;
            assert!(got
                .iter()
                .all(|r| matches!(r, Err(BackendError::Auth { .. }))));
        }
        assert_eq!(
            fake.logins.load(Ordering::SeqCst),
            1,
            "one attempt per window"
        );
    }

    #[tokio::test]
    async fn a_rejection_costs_one_login_for_all_who_saw_it() {
        let fake = Fake::new(Lifetime::Unbounded, false);
        let m = SessionManager::<u64>::new("s", Duration::from_secs(60));
        let first = m.session(&fake).await.unwrap();
        let renewed = futures::future::join_all((0..8).map(|_| m.renew(&fake, &first))).await;
        assert!(renewed.iter().all(|r| r.as_ref().is_ok_and(|l| ***l == 2)));
        assert_eq!(fake.logins.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn sessions_are_due_a_minute_or_a_tenth_before_their_end() {
        assert_eq!(
            Lifetime::RefreshWithin(Duration::from_secs(600)).due_after(),
            Some(Duration::from_secs(540))
        );
        assert_eq!(
            Lifetime::Idle(Duration::from_secs(100)).due_after(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(Lifetime::Unbounded.due_after(), None);
    }

    #[tokio::test]
    async fn a_due_session_is_refreshed_in_place() {
        let fake = Fake::new(Lifetime::RefreshWithin(Duration::from_millis(1)), true);
        let m = SessionManager::<u64>::new("s", Duration::from_secs(60));
        assert_eq!(**m.session(&fake).await.unwrap(), 1);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(**m.session(&fake).await.unwrap(), 101);
        assert_eq!(fake.refresh_calls.load(Ordering::SeqCst), 1);
        assert_eq!(fake.logins.load(Ordering::SeqCst), 1);

        let fake = Fake::new(Lifetime::Idle(Duration::from_millis(1)), false);
        let m = SessionManager::<u64>::new("s", Duration::from_secs(60));
        assert_eq!(**m.session(&fake).await.unwrap(), 1);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            **m.session(&fake).await.unwrap(),
            2,
            "idle session replaced"
        );
    }
}
