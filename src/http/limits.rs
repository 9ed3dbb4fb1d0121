//! Request size limits that actix-web does not make configurable: the body (by its declared
//! `Content-Length`; no route reads a body, so an undeclared one is never buffered) and the total
//! size of the request headers. actix itself caps the head at 128 KiB and 96 headers; these
//! limits are lower and configurable. Time limits (request head timeout, keep-alive, shutdown
//! drain) are set on the `HttpServer` in `http::server`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};

use super::problem::{types, Problem};
use super::request_id::RequestId;
use crate::config::LimitsConfig;

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(limits) = req.app_data::<web::Data<LimitsConfig>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
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
    let refusal = if header_bytes > limits.max_header_bytes {
        Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            types::HEADERS_TOO_LARGE,
            "Request headers too large",
            format!(
                "the request headers take {header_bytes} bytes; at most {} are accepted",
                limits.max_header_bytes
            ),
        ))
    } else if body_bytes > limits.max_body_bytes as u64 {
        Some((
            StatusCode::PAYLOAD_TOO_LARGE,
            types::BODY_TOO_LARGE,
            "Request body too large",
            format!(
                "the request body is {body_bytes} bytes; at most {} are accepted",
                limits.max_body_bytes
            ),
        ))
    } else {
        None
    };
    let Some((status, type_uri, title, detail)) = refusal else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let resp = Problem::new(status, type_uri, title, detail)
        .at(req.path(), &rid)
        .response();
    Ok(req.into_response(resp))
}
