//! `X-Request-Id`: taken from the caller when it is a sane token, generated otherwise, echoed on
//! the response and carried by the request's tracing span so every log line of a request has it.
//! The access-log line is written here, outermost, once the final status is known.

use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

use super::access_log::AccessLog;

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid(v))
            .map(|v| Self(v.to_owned()))
            .unwrap_or_else(|| Self(uuid::Uuid::new_v4().to_string()))
    }
}

/// Caller-supplied ids end up in logs and headers: keep them short and free of anything a log
/// parser or a header could misread.
fn is_valid(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl FromRequest for RequestId {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_header(req.headers().get(HEADER)));
        ready(Ok(id))
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = RequestId::from_header(req.headers().get(HEADER));
    req.extensions_mut().insert(id.clone());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "http_request",
        request_id = %id.0,
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    let elapsed = started.elapsed();
    span.record("status", res.status().as_u16());
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    if let Some(log) = res.request().app_data::<web::Data<AccessLog>>() {
        log.record(&res, &id.0, elapsed);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_kept_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_header(Some(&ok)).0, "abc-123_x.y:z");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let got = RequestId::from_header(Some(&v)).0;
            assert_ne!(got, bad);
            assert!(uuid::Uuid::parse_str(&got).is_ok());
        }
    }
}
