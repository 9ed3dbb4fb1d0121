//! RFC 9457 `application/problem+json` answers. Every error the API returns goes through here,
//! so the shape (type, title, status, detail, instance, request_id, searched) never varies.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

use crate::lookup::{Candidate, LookupError};
use crate::vendors::BackendError;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem. `type` is a stable URN per kind of failure; `searched`, `candidates`
/// and `failures` appear where they apply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "urn:inventory-gateway:problem:not-found",
    "title": "Server not found",
    "status": 404,
    "detail": "no server of that name in oneview-sim, ucsm-sim, ome-sim",
    "instance": "/servers/no-such-server",
    "request_id": "6f1c2a9e-3b1d-4c55-9a57-0f6c1d2b8e11",
    "searched": ["oneview-sim", "ucsm-sim", "ome-sim"]
}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub instance: String,
    pub request_id: String,
    /// The configured systems that were asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searched: Option<Vec<String>>,
    /// On 409: every server the name matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<super::openapi::CandidateSchema>>)]
    pub candidates: Option<Vec<Candidate>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<Failure>>,
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

/// One system's failure, as a caller may see it: which system failed and how for most callers,
/// the full error (endpoint, client error, body snippet; never credentials) for `admin` ones.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Failure {
    pub system: String,
    pub error: String,
}

/// Problem types: stable URNs rather than links to a site that does not exist.
pub mod types {
    pub const INVALID_NAME: &str = "urn:inventory-gateway:problem:invalid-name";
    pub const INVALID_QUERY: &str = "urn:inventory-gateway:problem:invalid-query";
    pub const NOT_FOUND: &str = "urn:inventory-gateway:problem:not-found";
    pub const AMBIGUOUS: &str = "urn:inventory-gateway:problem:ambiguous";
    pub const UNASSIGNED: &str = "urn:inventory-gateway:problem:profile-unassigned";
    pub const UPSTREAM: &str = "urn:inventory-gateway:problem:upstream-error";
    pub const UPSTREAM_TIMEOUT: &str = "urn:inventory-gateway:problem:upstream-timeout";
    pub const UNAVAILABLE: &str = "urn:inventory-gateway:problem:system-unavailable";
    pub const INTERNAL: &str = "urn:inventory-gateway:problem:internal";
    pub const NO_SYSTEM: &str = "urn:inventory-gateway:problem:no-system-for-vendor";
    pub const ROUTE_NOT_FOUND: &str = "urn:inventory-gateway:problem:route-not-found";
    pub const UNAUTHORIZED: &str = "urn:inventory-gateway:problem:unauthorized";
    pub const FORBIDDEN: &str = "urn:inventory-gateway:problem:forbidden";
    pub const RATE_LIMITED: &str = "urn:inventory-gateway:problem:rate-limited";
    pub const BODY_TOO_LARGE: &str = "urn:inventory-gateway:problem:body-too-large";
    pub const HEADERS_TOO_LARGE: &str = "urn:inventory-gateway:problem:headers-too-large";
    pub const METHOD_NOT_ALLOWED: &str = "urn:inventory-gateway:problem:method-not-allowed";
    pub const INVALID_REQUEST: &str = "urn:inventory-gateway:problem:invalid-request";
    pub const FLEET_DISABLED: &str = "urn:inventory-gateway:problem:fleet-disabled";
    pub const NO_SUCH_SYSTEM: &str = "urn:inventory-gateway:problem:no-such-system";
}

impl Problem {
    pub fn new(status: StatusCode, type_uri: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: type_uri.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: String::new(),
            request_id: String::new(),
            searched: None,
            candidates: None,
            failures: None,
            retry_after: None,
        }
    }

    pub fn at(mut self, instance: &str, request_id: &str) -> Self {
        self.instance = instance.to_owned();
        self.request_id = request_id.to_owned();
        self
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = HttpResponse::build(status);
        resp.content_type(CONTENT_TYPE);
        if let Some(ra) = self.retry_after {
            // Round up: "retry after 0 s" would invite an immediate retry storm.
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            resp.insert_header(("Retry-After", secs.max(1).to_string()));
        }
        resp.json(self)
    }

    /// `admin`: the caller holds the admin scope and is shown the failures in full (endpoints,
    /// HTTP-client errors, upstream body snippets); everyone else gets `BackendError::public_text`.
    pub fn from_lookup(err: &LookupError, admin: bool) -> Self {
        let searched = Some(err.searched().to_vec());
        match err {
            LookupError::NoSystemForVendor(v) => Problem::new(
                StatusCode::NOT_FOUND,
                types::NO_SYSTEM,
                "No system for this vendor",
                format!("no management system is configured for vendor {v}"),
            ),
            LookupError::NotFound { searched: s } => Problem {
                searched,
                ..Problem::new(
                    StatusCode::NOT_FOUND,
                    types::NOT_FOUND,
                    "Server not found",
                    format!("no server of that name in {}", s.join(", ")),
                )
            },
            LookupError::Ambiguous { candidates, .. } => Problem {
                searched,
                candidates: Some(candidates.clone()),
                ..Problem::new(
                    StatusCode::CONFLICT,
                    types::AMBIGUOUS,
                    "Server name is ambiguous",
                    format!(
                        "the name matches {} servers: {}; ask with ?vendor= or rename one",
                        candidates.len(),
                        candidates
                            .iter()
                            .map(|c| format!("{} in {}", c.system_id, c.system_name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            },
            LookupError::Unassigned(e) => Problem::new(
                StatusCode::CONFLICT,
                types::UNASSIGNED,
                "Server profile has no hardware",
                e.to_string(),
            ),
            LookupError::Internal => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                types::INTERNAL,
                "Internal error",
                err.to_string(),
            ),
            LookupError::CallerBusy { retry_after } => Problem {
                retry_after: Some(*retry_after),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    types::RATE_LIMITED,
                    "Too many lookups in flight",
                    "too many lookups in flight for this caller; retry later",
                )
            },
            LookupError::Upstream { failures, .. } => {
                let all = |f: fn(&BackendError) -> bool| failures.iter().all(f);
                let (status, type_uri, title) = if all(BackendError::is_throttled) {
                    // The gateway holding back (breaker open, no outbound slot) and appliances
                    // answering 429 both mean "come back later", not "broken".
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        types::UNAVAILABLE,
                        "Management system unavailable",
                    )
                } else if all(BackendError::is_timeout) {
                    (
                        StatusCode::GATEWAY_TIMEOUT,
                        types::UPSTREAM_TIMEOUT,
                        "Management system timed out",
                    )
                } else {
                    (
                        StatusCode::BAD_GATEWAY,
                        types::UPSTREAM,
                        "Management system error",
                    )
                };
                let describe = |f: &BackendError| {
                    if admin {
                        f.to_string()
                    } else {
                        f.public_text()
                    }
                };
                Problem {
                    searched,
                    failures: Some(
                        failures
                            .iter()
                            .map(|f| Failure {
                                system: f.system().to_owned(),
                                error: describe(f),
                            })
                            .collect(),
                    ),
                    retry_after: failures.iter().filter_map(BackendError::retry_after).min(),
                    ..Problem::new(
                        status,
                        type_uri,
                        title,
                        failures.iter().map(describe).collect::<Vec<_>>().join("; "),
                    )
                }
            }
        }
    }
}
