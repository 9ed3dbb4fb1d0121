//! The access log: one compact line per answered request under the target `access`, e.g.
//! `GET /servers/x 200 3ms cache=hit rid=… caller=ci`. Never the token (only the caller's
//! name). Refusals (401, 403, 429 from auth and the limiter) are not logged here: they are
//! counted and summed up by `refusals`, so a flood costs no log bytes per request.

use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::HttpMessage;

use super::auth::Caller;
use crate::config::{AccessLogMode, TelemetryConfig};

pub struct AccessLog {
    mode: AccessLogMode,
    sample_rate: f64,
}

impl AccessLog {
    pub fn from_config(t: &TelemetryConfig) -> Self {
        Self {
            mode: t.access_log,
            sample_rate: t.access_log_sample_rate,
        }
    }

    fn wants(&self, status: u16) -> bool {
        if matches!(status, 401 | 403 | 429) {
            return false;
        }
        match self.mode {
            AccessLogMode::On => true,
            AccessLogMode::Off => false,
            AccessLogMode::Sampled => fastrand::f64() < self.sample_rate,
        }
    }

    pub fn record<B>(&self, res: &ServiceResponse<B>, request_id: &str, elapsed: Duration) {
        let status = res.status().as_u16();
        if !self.wants(status) {
            return;
        }
        let enabled = if status >= 500 {
            tracing::enabled!(target: "access", tracing::Level::WARN)
        } else {
            tracing::enabled!(target: "access", tracing::Level::INFO)
        };
        if !enabled {
            return;
        }
        let req = res.request();
        let cache = res
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let extensions = req.extensions();
        let caller = extensions.get::<Caller>().map_or("-", |c| &c.name);
        let (method, path, ms) = (req.method(), req.path(), elapsed.as_millis());
        // Formatted once, by the subscriber (a line formatted first and logged as `{line}` was
        // formatted twice).
        // Client errors are the client's problem: INFO like the rest, never ERROR.
        if status >= 500 {
            tracing::warn!(target: "access", "{method} {path} {status} {ms}ms cache={cache} rid={request_id} caller={caller}");
        } else {
            tracing::info!(target: "access", "{method} {path} {status} {ms}ms cache={cache} rid={request_id} caller={caller}");
        }
    }
}
