//! Inbound rate limit per client: a GCRA limiter (governor) keyed by the caller's bearer token,
//! or by its peer IP when it sends none. Over the limit: 429 problem with `Retry-After`.
//! The token is read by `auth::parse_credential`, the parser auth uses, so every spelling of a
//! header that authenticates as T (`Bearer T`, `bearer  T`, `Bearer\tT`) draws on T's bucket.
//! A second limiter, keyed by peer IP, counts failed authentications (`FailedAuthLimiter`):
//! invalid tokens get fresh buckets above, so guessing is bounded there.
//! (Written here rather than taken from actix-governor, which is GPL-3.0.)

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;

use super::auth::Credential;
use super::problem::{types, Problem};
use super::refusals::{RefusalKind, Refusals};
use crate::config::InboundRateLimit;

/// Probes and scrapes must never be refused for load. The OpenAPI document reads this list:
/// every other operation is documented with its 429.
pub(crate) const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// Forget idle clients once the table holds this many.
const PRUNE_AT: usize = 10_000;

type Keyed =
    RateLimiter<u64, DefaultKeyedStateStore<u64>, DefaultClock, StateInformationMiddleware>;

/// A GCRA quota of `per_second` with `burst` back to back, and the burst as applied.
fn quota(per_second: f64, burst: u32) -> (Quota, u32) {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    // Validated > 0 at load; the fallback only guards a hand-built config.
    let period = Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(Duration::from_secs(1));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    (quota, burst.get())
}

/// Every 1024th check, forgets keys that are back to a full burst once the table is large, so
/// a stream of unique keys cannot grow it without bound.
fn prune_now_and_then<K, MW>(
    seen: &AtomicU64,
    limiter: &RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, MW>,
) where
    K: std::hash::Hash + Eq + Clone,
    MW: governor::middleware::RateLimitingMiddleware<
        <DefaultClock as governor::clock::Clock>::Instant,
    >,
{
    if seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(1024) && limiter.len() > PRUNE_AT {
        limiter.retain_recent();
    }
}

pub struct InboundLimiter {
    limiter: Keyed,
    burst: u32,
    limit_value: HeaderValue,
    /// Hashes tokens so the table never holds a credential.
    hasher: RandomState,
    seen: AtomicU64,
}

impl InboundLimiter {
    pub fn new(config: &InboundRateLimit) -> Self {
        let (quota, burst) = quota(config.requests_per_second, config.burst);
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst,
            limit_value: HeaderValue::from(burst),
            hasher: RandomState::new(),
            seen: AtomicU64::new(0),
        }
    }

    fn client_key(&self, req: &ServiceRequest, credential: &Credential) -> u64 {
        match credential {
            Credential::Bearer(t) => self.hasher.hash_one(("token", t.expose())),
            Credential::Absent | Credential::Malformed => {
                let ip = req.peer_addr().map(|a| a.ip());
                self.hasher.hash_one(("ip", ip))
            }
        }
    }

    /// `Ok(remaining)` or `Err(wait)`.
    fn check(&self, key: u64) -> Result<u32, Duration> {
        prune_now_and_then(&self.seen, &self.limiter);
        match self.limiter.check_key(&key) {
            Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

/// Failed authentications per peer IP. Over its budget a peer's next failure is answered 429
/// instead of 401, and costs no token comparison. Valid tokens are checked first and never
/// counted, so a guesser cannot lock out callers with a real token, even behind the same NAT.
pub struct FailedAuthLimiter {
    limiter: RateLimiter<
        Option<IpAddr>,
        DefaultKeyedStateStore<Option<IpAddr>>,
        DefaultClock,
        governor::middleware::NoOpMiddleware,
    >,
    seen: AtomicU64,
}

impl FailedAuthLimiter {
    pub fn new(config: &InboundRateLimit) -> Self {
        let (quota, _) = quota(config.failed_auth_per_second, config.failed_auth_burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            seen: AtomicU64::new(0),
        }
    }

    /// Counts one failure of `peer`; `Err(wait)` once it is over its budget.
    pub fn check(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        prune_now_and_then(&self.seen, &self.limiter);
        self.limiter
            .check_key(&peer)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The 429 problem both limiters answer.
pub fn too_many(wait: Duration, instance: &str, rid: &str, detail: &str) -> HttpResponse {
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        types::RATE_LIMITED,
        "Too many requests",
        detail,
    )
    .at(instance, rid);
    problem.retry_after = Some(wait);
    problem.response()
}

impl InboundLimiter {
    /// Draws one request from the caller's bucket: `Ok(remaining)`, or the 429 to answer.
    /// `credential` is the request's `Authorization`, parsed once for the limiter and auth.
    pub fn admit(
        &self,
        req: &ServiceRequest,
        credential: &Credential,
        refusals: &Refusals,
        rid: &str,
    ) -> Result<u32, Box<HttpResponse>> {
        let wait = match self.check(self.client_key(req, credential)) {
            Ok(remaining) => return Ok(remaining),
            Err(wait) => wait,
        };
        refusals.count(RefusalKind::RateLimited);
        let mut resp = too_many(
            wait,
            req.path(),
            rid,
            &format!(
                "this client may send {} requests in a burst; retry after {} ms",
                self.burst,
                wait.as_millis()
            ),
        );
        let reset = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let headers = resp.headers_mut();
        headers.insert(LIMIT.clone(), self.limit_value.clone());
        headers.insert(REMAINING.clone(), HeaderValue::from_static("0"));
        headers.insert(RESET.clone(), HeaderValue::from(reset.max(1)));
        Err(Box::new(resp))
    }

    /// `X-RateLimit-Limit` and `-Remaining` on an admitted request's answer.
    pub fn stamp(&self, headers: &mut HeaderMap, remaining: u32) {
        headers.insert(LIMIT.clone(), self.limit_value.clone());
        headers.insert(REMAINING.clone(), HeaderValue::from(remaining));
    }
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
