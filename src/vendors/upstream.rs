//! The one way a backend talks to its system: every request goes through the system's outbound
//! throttle, is timed and traced with its endpoint class, and comes back fully read (so the
//! in-flight slot covers the whole exchange, body included).
//!
//! The body is read chunk by chunk up to the system's `max_response_bytes`: an appliance (or
//! whatever answers at its address) cannot make the gateway buffer more than that, and the
//! whole exchange, headers and body, stays under the per-request timeout however slowly the
//! bytes drip in.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use tracing::Instrument;

use super::{transport_error, BackendError};
use crate::resilience::{Background, Throttle, Throttled};

/// Told about every upstream exchange (metrics). `outcome` is a small fixed vocabulary:
/// `ok`, `http_4xx`, `http_5xx`, `timeout`, `connect`, `throttled`, `oversized`, `protocol`.
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
    http: RwLock<reqwest::Client>,
    /// A second client whose pool stays empty until [`Self::detach_pool`] swaps it in. The
    /// first pool's connections are driven by tasks on whichever runtime opened them (an
    /// actix worker's); once those runtimes stop, a request on such a connection dies with
    /// "dispatch task is gone" even after it reached the appliance.
    standby: reqwest::Client,
    timeout: Duration,
    max_body: u64,
    throttle: Throttle,
    observer: Arc<dyn UpstreamObserver>,
}

/// Why an exchange produced no [`Reply`].
enum Failure {
    Transport(reqwest::Error),
    /// The body (announced or read so far) is larger than the cap.
    Oversized(u64),
    /// The whole exchange outlived the per-request timeout.
    Deadline,
    /// Background work (a sweep) has read more than it may in all: (read, allowed).
    BackgroundBudget(u64, u64),
}

impl Upstream {
    /// `clients`: the one lookups use, and a standby built the same way (see [`Self::detach_pool`]).
    pub fn new(
        system: &str,
        clients: [reqwest::Client; 2],
        timeout: Duration,
        max_body: u64,
        throttle: Throttle,
        observer: Arc<dyn UpstreamObserver>,
    ) -> Self {
        let [http, standby] = clients;
        Self {
            system: system.to_owned(),
            http: RwLock::new(http),
            standby,
            timeout,
            max_body,
            throttle,
            observer,
        }
    }

    /// The pooled client, to build requests with.
    pub fn http(&self) -> reqwest::Client {
        self.http
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// From now on, requests open connections owned by the calling task's runtime instead of
    /// reusing ones opened by request handlers. Called before the logouts at shutdown, which
    /// run after the HTTP workers (and their runtimes) have stopped.
    pub fn detach_pool(&self) {
        let mut http = self
            .http
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *http = self.standby.clone();
    }

    /// Sends `request` and reads the whole answer. `endpoint` names the call in metrics and
    /// traces (a fixed string such as `"GET /rest/server-profiles"`, never a raw URL).
    pub async fn exchange(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply, BackendError> {
        // Background work (a sweep) first takes a slot of its own bounded share.
        let background = Background::current();
        let _background_slot = match &background {
            Some((scope, true)) => match scope.admit().await {
                Ok(slot) => Some(slot),
                Err(t) => {
                    self.observer
                        .exchange(&self.system, endpoint, "throttled", Duration::ZERO);
                    return Err(throttled(&self.system, t));
                }
            },
            _ => None,
        };
        let _slot = match self.throttle.acquire().await {
            Ok(slot) => slot,
            Err(t) => {
                self.observer
                    .exchange(&self.system, endpoint, "throttled", Duration::ZERO);
                return Err(throttled(&self.system, t));
            }
        };
        if let Some((scope, _)) = &background {
            scope.count();
        }
        let span = tracing::debug_span!("upstream", system = %self.system, endpoint);
        let started = Instant::now();
        let exchange = async {
            let mut resp = request.send().await.map_err(Failure::Transport)?;
            let status = resp.status();
            // Refused before reading a byte of the body; dropping `resp` closes the connection.
            if let Some(len) = resp.content_length().filter(|&l| l > self.max_body) {
                return Err(Failure::Oversized(len));
            }
            let headers = std::mem::take(resp.headers_mut());
            let expected = resp.content_length().unwrap_or(0).min(self.max_body);
            let mut body = bytes::BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
            while let Some(chunk) = resp.chunk().await.map_err(Failure::Transport)? {
                let len = (body.len() + chunk.len()) as u64;
                if len > self.max_body {
                    return Err(Failure::Oversized(len));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Reply {
                status,
                headers,
                body: body.freeze(),
            })
        };
        // reqwest's own timeout covers the body too; this bound does not depend on that.
        let result = match tokio::time::timeout(self.timeout, exchange.instrument(span)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Deadline),
        };
        // Background work is bounded by what it reads in all, not only per answer.
        let result = match (result, &background) {
            (Ok(reply), Some((scope, _))) => match scope.read(reply.body.len() as u64) {
                Ok(()) => Ok(reply),
                Err(total) => Err(Failure::BackgroundBudget(total, scope.max_bytes())),
            },
            (other, _) => other,
        };
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(r) if r.status.is_success() => "ok",
            Ok(r) if r.status.is_server_error() => "http_5xx",
            Ok(_) => "http_4xx",
            Err(Failure::Deadline) => "timeout",
            Err(Failure::Transport(e)) if e.is_timeout() => "timeout",
            Err(Failure::Transport(e)) if is_unparsable(e) => "protocol",
            Err(Failure::Transport(_)) => "connect",
            Err(Failure::Oversized(_) | Failure::BackgroundBudget(..)) => "oversized",
        };
        self.observer
            .exchange(&self.system, endpoint, outcome, elapsed);
        result.map_err(|f| match f {
            Failure::Transport(e) if is_unparsable(&e) => BackendError::Protocol {
                system: self.system.clone(),
                endpoint: endpoint.to_owned(),
                detail: "the HTTP response head is malformed or too large".into(),
            },
            Failure::Transport(e) => transport_error(&self.system, self.timeout, e),
            Failure::Deadline => BackendError::Timeout {
                system: self.system.clone(),
                timeout: self.timeout,
            },
            Failure::BackgroundBudget(total, max) => BackendError::Protocol {
                system: self.system.clone(),
                endpoint: endpoint.to_owned(),
                detail: format!(
                    "the sweep has read {total} bytes, more than fleet.max_sweep_bytes = {max}"
                ),
            },
            Failure::Oversized(len) => BackendError::Protocol {
                system: self.system.clone(),
                endpoint: endpoint.to_owned(),
                detail: format!(
                    "response body of at least {len} bytes exceeds max_response_bytes = {}",
                    self.max_body
                ),
            },
        })
    }
}

/// The answer was not HTTP the client accepts (hyper's parse errors: a header block over its
/// limits, a bad status line): the system answered garbage, it did not fail to connect.
fn is_unparsable(e: &reqwest::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return true;
        }
        src = err.source();
    }
    false
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
