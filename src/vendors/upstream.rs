//! The one way a backend talks to its system: every request goes through the system's outbound
//! throttle, is timed and traced with its endpoint class, and comes back fully read (so the
//! in-flight slot covers the whole exchange, body included).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use tracing::Instrument;

use super::{transport_error, BackendError};
use crate::resilience::{Throttle, Throttled};

/// Told about every upstream exchange (metrics). `outcome` is a small fixed vocabulary:
/// `ok`, `http_4xx`, `http_5xx`, `timeout`, `connect`, `throttled`.
pub trait UpstreamObserver: Send + Sync {
    fn exchange(&self, system: &str, endpoint: &str, outcome: &str, elapsed: Duration);
}

/// An observer that ignores everything (tools and tests that do not export metrics).
pub struct NoObserver;

impl UpstreamObserver for NoObserver {
    fn exchange(&self, _: &str, _: &str, _: &str, _: Duration) {}
}

/// A fully read HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

pub struct Upstream {
    system: String,
    http: reqwest::Client,
    timeout: Duration,
    throttle: Throttle,
    observer: Arc<dyn UpstreamObserver>,
}

impl Upstream {
    pub fn new(
        system: &str,
        http: reqwest::Client,
        timeout: Duration,
        throttle: Throttle,
        observer: Arc<dyn UpstreamObserver>,
    ) -> Self {
        Self {
            system: system.to_owned(),
            http,
            timeout,
            throttle,
            observer,
        }
    }

    /// The pooled client, to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` and reads the whole answer. `endpoint` names the call in metrics and
    /// traces (a fixed string such as `"GET /rest/server-profiles"`, never a raw URL).
    pub async fn exchange(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply, BackendError> {
        let _slot = match self.throttle.acquire().await {
            Ok(slot) => slot,
            Err(t) => {
                self.observer
                    .exchange(&self.system, endpoint, "throttled", Duration::ZERO);
                return Err(throttled(&self.system, t));
            }
        };
        let span = tracing::debug_span!("upstream", system = %self.system, endpoint);
        let started = Instant::now();
        let result = async {
            let resp = request.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                headers,
                body,
            })
        }
        .instrument(span)
        .await;
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(r) if r.status.is_success() => "ok",
            Ok(r) if r.status.is_server_error() => "http_5xx",
            Ok(_) => "http_4xx",
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "connect",
        };
        self.observer
            .exchange(&self.system, endpoint, outcome, elapsed);
        result.map_err(|e| transport_error(&self.system, self.timeout, e))
    }
}

fn throttled(system: &str, t: Throttled) -> BackendError {
    let wait = match t {
        Throttled::Rate(d) | Throttled::InFlight(d) => d,
    };
    BackendError::Unavailable {
        system: system.to_owned(),
        reason: t.to_string(),
        retry_after: wait.max(Duration::from_secs(1)),
    }
}
