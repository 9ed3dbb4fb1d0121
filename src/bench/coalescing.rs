//! Coalescing: many concurrent cold requests for one name must cost one upstream lookup. The
//! system is slowed down enough that every request arrives while that lookup is in flight; the
//! answers' `X-Cache` says how many joined it (`miss`) and how many came after it (`hit`).

use std::time::Duration;

use super::client::{burst, Endpoint};
use super::stack::{total_calls, vendor_param, Upstreams};
use super::BenchError;
use crate::domain::SystemKind;

pub const SYSTEM: SystemKind = SystemKind::Oneview;
/// The call that starts a OneView lookup (the one counted as "an upstream lookup").
pub const QUERY_KEY: &str = "GET /rest/server-profiles";
/// Latency injected per call, so that the lookup is still in flight while the burst arrives.
pub const LATENCY: Duration = Duration::from_millis(500);

pub struct CoalescingResult {
    pub requests: usize,
    pub ok: usize,
    /// Answers that joined the in-flight lookup (`X-Cache: miss`).
    pub joined: usize,
    /// Answers served from the cache after the lookup finished.
    pub hits: usize,
    pub query_calls: u64,
    pub total_calls: u64,
    pub elapsed: Duration,
}

pub async fn measure(
    gateway: &Endpoint,
    upstreams: &Upstreams,
    name: &str,
    requests: usize,
) -> Result<CoalescingResult, BenchError> {
    let sim = upstreams
        .shared(SYSTEM)
        .ok_or_else(|| BenchError::Setup("no OneView simulator".into()))?;
    let query_calls = || sim.counters().get(QUERY_KEY).copied().unwrap_or(0);
    let (query_before, total_before) = (query_calls(), total_calls(&sim));
    upstreams.set_latency(SYSTEM, LATENCY.as_millis() as u64);
    let path = format!("/servers/{name}?vendor={}", vendor_param(SYSTEM));
    let started = tokio::time::Instant::now();
    let replies = burst(gateway, &path, requests).await;
    let elapsed = started.elapsed();
    upstreams.clear_faults();
    let replies = replies?;
    let mut result = CoalescingResult {
        requests,
        ok: 0,
        joined: 0,
        hits: 0,
        query_calls: query_calls() - query_before,
        total_calls: total_calls(&sim) - total_before,
        elapsed,
    };
    for reply in replies.iter().flatten() {
        if reply.status == 200 {
            result.ok += 1;
        }
        match reply.x_cache.as_deref() {
            Some("miss") => result.joined += 1,
            Some("hit") => result.hits += 1,
            _ => {}
        }
    }
    Ok(result)
}
