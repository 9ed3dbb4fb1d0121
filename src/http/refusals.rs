//! Refused requests (401, 403, 429) are counted, not logged one by one: a flood of bad tokens
//! would otherwise write a line per request. A periodic summary line says how many of each kind
//! were refused since the last one (nothing when there were none), and the counts also go to
//! `inventory_gateway_http_refusals_total{reason}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    AuthMissing,
    AuthMalformed,
    AuthInvalid,
    AuthScope,
    /// Too many failed authentications from one peer.
    AuthGuessing,
    /// Over the caller's inbound rate limit.
    RateLimited,
}

impl RefusalKind {
    pub const ALL: [RefusalKind; 6] = [
        Self::AuthMissing,
        Self::AuthMalformed,
        Self::AuthInvalid,
        Self::AuthScope,
        Self::AuthGuessing,
        Self::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthMissing => "no_token",
            Self::AuthMalformed => "malformed_authorization",
            Self::AuthInvalid => "invalid_token",
            Self::AuthScope => "insufficient_scope",
            Self::AuthGuessing => "auth_failures_limited",
            Self::RateLimited => "rate_limited",
        }
    }
}

pub struct Refusals {
    counts: [AtomicU64; 6],
    metrics: Arc<Metrics>,
}

impl Refusals {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            counts: Default::default(),
            metrics,
        }
    }

    pub fn count(&self, kind: RefusalKind) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.metrics.http_refusal(kind.as_str());
    }

    /// Logs what was refused since the last call, and starts counting afresh.
    pub fn log_summary(&self, period: Duration) {
        let taken: Vec<(RefusalKind, u64)> = RefusalKind::ALL
            .iter()
            .map(|&k| (k, self.counts[k as usize].swap(0, Ordering::Relaxed)))
            .collect();
        let total: u64 = taken.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return;
        }
        let parts: Vec<String> = taken
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{}={n}", k.as_str()))
            .collect();
        tracing::warn!(
            target: "refusals",
            total,
            period_s = period.as_secs(),
            "refused requests: {}",
            parts.join(" ")
        );
    }

    /// Logs a summary every `period` until the returned task is aborted (then once more, from
    /// `Application::run_until_stopped`, so the last period is not lost).
    pub fn spawn_summaries(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                me.log_summary(period);
            }
        })
    }
}
