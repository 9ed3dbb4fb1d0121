//! Inbound rate limit per client: a GCRA limiter (governor) keyed by the caller's bearer token,
//! or by its peer IP when it sends none. Over the limit: 429 problem with `Retry-After`.
//! (Written here rather than taken from actix-governor, which is GPL-3.0.)

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::problem::Problem;
use super::request_id::RequestId;
use crate::config::InboundRateLimit;

/// Probes and scrapes must never be refused for load.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// Forget idle clients once the table holds this many.
const PRUNE_AT: usize = 10_000;

type Keyed =
    RateLimiter<u64, DefaultKeyedStateStore<u64>, DefaultClock, StateInformationMiddleware>;

pub struct InboundLimiter {
    limiter: Keyed,
    burst: u32,
    /// Hashes tokens so the table never holds a credential.
    hasher: RandomState,
    seen: AtomicU64,
}

impl InboundLimiter {
    pub fn new(config: &InboundRateLimit) -> Self {
        let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        // Validated > 0 at load; the fallback only guards a hand-built config.
        let period = Duration::try_from_secs_f64(1.0 / config.requests_per_second)
            .unwrap_or(Duration::from_secs(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst: burst.get(),
            hasher: RandomState::new(),
            seen: AtomicU64::new(0),
        }
    }

    fn client_key(&self, req: &ServiceRequest) -> u64 {
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            Some(t) => self.hasher.hash_one(("token", t)),
            None => {
                let ip = req.peer_addr().map(|a| a.ip());
                self.hasher.hash_one(("ip", ip))
            }
        }
    }

    /// `Ok(remaining)` or `Err(wait)`.
    fn check(&self, key: u64) -> Result<u32, Duration> {
        if self
            .seen
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
            && self.limiter.len() > PRUNE_AT
        {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&key) {
            Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

fn header(name: &'static str, value: String) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(&value).ok()?,
    ))
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let limiter = req.app_data::<web::Data<InboundLimiter>>().cloned();
    let Some(limiter) = limiter.filter(|_| !EXEMPT.contains(&req.path())) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let limit = header("x-ratelimit-limit", limiter.burst.to_string());
    match limiter.check(limiter.client_key(&req)) {
        Ok(remaining) => {
            let mut res = next.call(req).await?.map_into_boxed_body();
            let remaining = header("x-ratelimit-remaining", remaining.to_string());
            for (name, value) in [limit, remaining].into_iter().flatten() {
                res.headers_mut().insert(name, value);
            }
            Ok(res)
        }
        Err(wait) => {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "inbound rate limit: request refused"
            );
            let rid = req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default();
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "urn:inventory-gateway:problem:rate-limited",
                "Too many requests",
                format!(
                    "this client may send {} requests in a burst; retry after {} ms",
                    limiter.burst,
                    wait.as_millis()
                ),
            )
            .at(req.path(), &rid);
            problem.retry_after = Some(wait);
            let mut resp = problem.response();
            let reset = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let extra = [
                limit,
                header("x-ratelimit-remaining", "0".into()),
                header("x-ratelimit-reset", reset.max(1).to_string()),
            ];
            for (name, value) in extra.into_iter().flatten() {
                resp.headers_mut().insert(name, value);
            }
            Ok(req.into_response(resp))
        }
    }
}
