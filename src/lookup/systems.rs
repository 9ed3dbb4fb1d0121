//! A configured system as the lookup service sees it: its backend, its circuit breaker, and the
//! recent history shown in `GET /vendors`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{SystemKind, Vendor};
use crate::resilience::{BreakerState, CircuitBreaker};
use crate::vendors::{Backend, BackendError, MemberStatus};

const LATENCY_SAMPLES: usize = 512;

pub struct System {
    pub backend: Arc<dyn Backend>,
    pub breaker: CircuitBreaker,
    history: Mutex<History>,
}

#[derive(Default)]
struct History {
    last_success: Option<DateTime<Utc>>,
    last_failure: Option<DateTime<Utc>>,
    last_error: Option<BackendError>,
    latencies: VecDeque<Duration>,
}

/// One system's state, as `GET /vendors` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SystemStatus {
    pub name: String,
    pub kind: SystemKind,
    pub vendor: Option<Vendor>,
    pub endpoint: String,
    pub breaker: BreakerState,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    /// The whole error text (URLs, client error chains, upstream snippets): for `admin`
    /// callers and logs only; see [`SystemStatus::redacted`].
    pub last_error: Option<String>,
    #[serde(skip)]
    error: Option<BackendError>,
    /// Over the last lookups answered by this system (up to 512); null before the first.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// UCS Central: the UCS Manager domains it lists, each with its own breaker.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<MemberStatus>,
    /// Redfish BMCs (`kind = "redfish"`, `verify_bmc`): the credentials sent to them and
    /// whether BMCs refused them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<crate::resilience::refusals::CredentialStatus>,
}

impl System {
    pub fn new(backend: Arc<dyn Backend>, breaker: CircuitBreaker) -> Self {
        Self {
            backend,
            breaker,
            history: Mutex::new(History::default()),
        }
    }

    pub fn name(&self) -> &str {
        self.backend.name()
    }

    pub fn record_success(&self, elapsed: Duration) {
        if let Ok(mut h) = self.history.lock() {
            h.last_success = Some(Utc::now());
            if h.latencies.len() == LATENCY_SAMPLES {
                h.latencies.pop_front();
            }
            h.latencies.push_back(elapsed);
        }
    }

    pub fn record_failure(&self, error: &BackendError) {
        if let Ok(mut h) = self.history.lock() {
            h.last_failure = Some(Utc::now());
            h.last_error = Some(error.clone());
        }
    }

    pub fn status(&self) -> SystemStatus {
        let (last_success, last_failure, error, mut samples) = match self.history.lock() {
            Ok(h) => (
                h.last_success,
                h.last_failure,
                h.last_error.clone(),
                h.latencies.iter().copied().collect::<Vec<_>>(),
            ),
            Err(_) => (None, None, None, Vec::new()),
        };
        samples.sort();
        SystemStatus {
            name: self.name().to_owned(),
            kind: self.backend.kind(),
            vendor: self.backend.kind().vendor(),
            endpoint: self.backend.endpoint().to_string(),
            breaker: self.breaker.state(),
            last_success,
            last_failure,
            last_error: error.as_ref().map(BackendError::to_string),
            error,
            latency_p50_ms: percentile(&samples, 0.50),
            latency_p99_ms: percentile(&samples, 0.99),
            domains: self.backend.members(),
            credentials: self.backend.credentials(),
        }
    }
}

impl SystemStatus {
    /// What a caller without the `admin` scope may see: the failure's kind, not its internals.
    pub fn redacted(mut self) -> Self {
        self.last_error = self.error.as_ref().map(BackendError::public_text);
        self.domains = self
            .domains
            .into_iter()
            .map(MemberStatus::redacted)
            .collect();
        self
    }
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 0.5), Some(50.0));
        assert_eq!(percentile(&ms, 0.99), Some(99.0));
        assert_eq!(percentile(&ms[..1], 0.99), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
