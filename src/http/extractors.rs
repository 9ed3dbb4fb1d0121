//! Error handlers for actix's extractors, so that a bad path segment (invalid percent-encoding
//! or UTF-8), an unparsable query or a bad JSON body is answered with problem+json like every
//! other error, at WARN at most in the logs (it is the client's mistake, not ours).

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::web;

use super::routes::extractor_problem;

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, req| {
        tracing::debug!(error = %err, "path refused");
        extractor_problem(
            req,
            StatusCode::BAD_REQUEST,
            "Invalid path",
            err.to_string(),
        )
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, req| {
        tracing::debug!(error = %err, "query refused");
        extractor_problem(
            req,
            StatusCode::BAD_REQUEST,
            "Invalid query",
            err.to_string(),
        )
    })
}

/// Bodies without a `Content-Length` (chunked) escape the limits middleware; this bounds them.
const MAX_JSON_BODY: usize = 1024 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BODY)
        .error_handler(|err: JsonPayloadError, req| {
            tracing::debug!(error = %err, "JSON body refused");
            let status = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                JsonPayloadError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            extractor_problem(req, status, "Invalid JSON body", err.to_string())
        })
}
