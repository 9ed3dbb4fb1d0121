//! Request size limits that actix-web does not make configurable: the body (by its declared
//! `Content-Length`; no route reads a body, so an undeclared one is never buffered) and the total
//! size of the request headers. actix itself caps the head at 128 KiB and 96 headers; these
//! limits are lower and configurable. Time limits (request head timeout, keep-alive, shutdown
//! drain) are set on the `HttpServer` in `http::server`.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::problem::{types, Problem};
use crate::config::LimitsConfig;

/// The refusal of a request over a limit, or `None`.
pub fn refuse(limits: &LimitsConfig, req: &ServiceRequest, rid: &str) -> Option<HttpResponse> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    let body_bytes = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let (status, type_uri, title, detail) = if header_bytes > limits.max_header_bytes {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            types::HEADERS_TOO_LARGE,
            "Request headers too large",
            format!(
                "the request headers take {header_bytes} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        )
    } else if body_bytes > limits.max_body_bytes as u64 {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            types::BODY_TOO_LARGE,
            "Request body too large",
            format!(
                "the request body is {body_bytes} bytes; at most {} are accepted",
                limits.max_body_bytes
            ),
        )
    } else {
        return None;
    };
    Some(
        Problem::new(status, type_uri, title, detail)
            .at(req.path(), rid)
            .response(),
    )
}
