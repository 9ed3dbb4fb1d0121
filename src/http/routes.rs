//! Route handlers. Thin: parse the edge types, call the lookup service, shape the answer.

use actix_web::http::header::{ContentType, HeaderName, HeaderValue, AGE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::is_admin;
use super::problem::{types, Problem};
use super::request_id::RequestId;
use crate::domain::{DomainError, ServerName, Vendor};
use crate::lookup::{CallerKey, LookupService};
use crate::metrics::Metrics;
use crate::resilience::BreakerState;

/// Unknown parameters are ignored, so that cache busters (`?_=1`) and tracing tags work.
#[derive(Debug, Deserialize)]
struct ServerQuery {
    vendor: Option<String>,
    refresh: Option<bool>,
}

/// Looks a server up by name in the management systems (case-insensitive).
///
/// Without `vendor`, every configured system is asked concurrently (or only the one known to own
/// the name). Answers come from the cache while fresh (`X-Cache: hit`), from the systems
/// otherwise (`miss`), or, when the owning system fails, from the last good record up to the
/// configured staleness (`stale`, with `"stale": true`). A record that could not hear from every
/// system that might hold the name lists those systems in `unverified` (and `X-Unverified`): the
/// name might still be ambiguous, so do not act on it as if verified.
#[utoipa::path(
    get,
    path = "/servers/{name}",
    tag = "servers",
    params(
        ("name" = String, Path, description = "Server name: 1-128 characters of `[A-Za-z0-9._:-]`, matched case-insensitively.",
            pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "hpe-synergy-001"),
        ("vendor" = Option<super::openapi::VendorParam>, Query, description = "Ask only this vendor's systems: `hpe` (alias `hp`), `cisco` (alias `ucs`), `dell`. The gateway also accepts any letter case (`HPE`), which the enum does not list."),
        ("refresh" = Option<bool>, Query, description = "Bypass the cache (the lookup is still coalesced with identical ones under way)."),
    ),
    responses(
        (status = 200, description = "The server's NICs and BMC", body = crate::domain::ServerRecord,
            headers(
                ("X-Cache" = String, description = "`hit`, `miss` or `stale`"),
                ("Age" = u64, description = "Seconds since the record was fetched from its system"),
                ("X-Unverified" = String, description = "Present when the answer could not hear from every system that might hold the name: those systems, comma-separated (as in `unverified`)"),
                ("X-Request-Id" = String, description = "The caller's id when valid, else a generated one"),
            ),
            examples(
                ("hpe" = (summary = "HPE OneView", value = json!(super::openapi::example(super::openapi::EXAMPLE_HPE)))),
                ("cisco" = (summary = "Cisco UCS Manager", value = json!(super::openapi::example(super::openapi::EXAMPLE_CISCO)))),
                ("cisco-central" = (summary = "Cisco UCS Manager domain behind UCS Central", value = json!(super::openapi::example(super::openapi::EXAMPLE_CISCO_CENTRAL)))),
                ("dell" = (summary = "Dell OpenManage Enterprise", value = json!(super::openapi::example(super::openapi::EXAMPLE_DELL)))),
                ("cisco-intersight" = (summary = "Cisco Intersight", value = json!(super::openapi::example(super::openapi::EXAMPLE_INTERSIGHT)))),
            )),
        (status = 400, description = "Invalid name, vendor or query parameter (unknown parameters are ignored)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown bearer token (`WWW-Authenticate` says which)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in any searched system, or no system for the vendor", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name matches servers in more than one system (`candidates`), or its profile has no hardware", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited, or too many lookups in flight for this caller; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A system answered garbage or an error (`failures`; full internals for `admin` callers only)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every relevant system is unavailable (breaker open, gateway budget spent, or the system answered 429); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The systems did not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_server(
    req: HttpRequest,
    path: web::Path<String>,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    get_server_named(req, &path, lookup, rid).await
}

/// `GET /servers/lookup`: the server named `lookup` (the path's POST is the bulk lookup).
pub async fn get_server_named_lookup(
    req: HttpRequest,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    get_server_named(req, "lookup", lookup, rid).await
}

async fn get_server_named(
    req: HttpRequest,
    path: &str,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    let instance = req.path();
    let name = match ServerName::parse(path) {
        Ok(n) => n,
        Err(e) => return invalid_name(e, instance, &rid),
    };
    let bad = |type_uri: &str, title: &str, detail: String| {
        bad_request(type_uri, title, detail, instance, &rid)
    };
    let query = match web::Query::<ServerQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return bad(types::INVALID_QUERY, "Invalid query", e.to_string()),
    };
    let vendor = match query.vendor.as_deref().map(Vendor::parse).transpose() {
        Ok(v) => v,
        Err(e) => return bad(types::INVALID_QUERY, "Invalid vendor", e.to_string()),
    };
    let refresh = query.refresh.unwrap_or(false);
    let caller = caller_key(&req);
    match lookup.get(&name, vendor, refresh, &caller).await {
        Ok(answer) => {
            let mut resp = HttpResponse::Ok();
            resp.insert_header(ContentType::json())
                .insert_header((
                    HeaderName::from_static("x-cache"),
                    HeaderValue::from_static(answer.cache.as_str()),
                ))
                .insert_header((AGE, HeaderValue::from(answer.age.as_secs())));
            if let Some(systems) = answer.record.unverified() {
                resp.insert_header(("X-Unverified", systems));
            }
            resp.body(answer.record.json())
        }
        Err(e) => {
            // The access log has the status and the system failures are logged where they happen.
            tracing::debug!(server = %name, error = %e, "lookup failed");
            Problem::from_lookup(&e, is_admin(&req))
                .at(instance, &rid.0)
                .response()
        }
    }
}

/// Whom a lookup is admitted for: the token's name, else the peer address.
pub fn caller_key(req: &HttpRequest) -> CallerKey {
    req.extensions()
        .get::<super::auth::Caller>()
        .map(|c| c.key.clone())
        .or_else(|| req.peer_addr().map(|a| CallerKey::peer(a.ip())))
        .unwrap_or_else(CallerKey::internal)
}

/// Forgets what the gateway cached for this name (every vendor hint, and its owner). Needs a
/// token with the `admin` scope.
#[utoipa::path(
    delete,
    path = "/servers/{name}/cache",
    tag = "servers",
    params(("name" = String, Path, description = "Server name", pattern = "^[A-Za-z0-9._:-]{1,128}$")),
    responses(
        (status = 204, description = "Forgotten (also when nothing was cached)"),
        (status = 400, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` scope", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn purge_server(
    req: HttpRequest,
    path: web::Path<String>,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    if let Some(refused) = super::auth::refuse_unless_admin(&req, &rid.0) {
        return refused;
    }
    match ServerName::parse(&path) {
        Ok(name) => {
            let removed = lookup.purge(&name).await;
            tracing::info!(server = %name, removed, "cache purged");
            HttpResponse::NoContent().finish()
        }
        Err(e) => invalid_name(e, req.path(), &rid),
    }
}

/// The 400 problem every route answers for an invalid server name.
fn invalid_name(e: DomainError, instance: &str, rid: &RequestId) -> HttpResponse {
    bad_request(
        types::INVALID_NAME,
        "Invalid server name",
        e.to_string(),
        instance,
        rid,
    )
}

pub(super) fn bad_request(
    type_uri: &str,
    title: &str,
    detail: String,
    instance: &str,
    rid: &RequestId,
) -> HttpResponse {
    Problem::new(StatusCode::BAD_REQUEST, type_uri, title, detail)
        .at(instance, &rid.0)
        .response()
}

/// Every configured system: kind, endpoint, circuit breaker state, last success and failure,
/// latency percentiles.
#[utoipa::path(
    get,
    path = "/vendors",
    tag = "operations",
    responses(
        (status = 200, description = "The configured systems", body = super::openapi::VendorsResponse),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_vendors(req: HttpRequest, lookup: web::Data<LookupService>) -> HttpResponse {
    let admin = is_admin(&req);
    let systems: Vec<_> = lookup
        .statuses()
        .into_iter()
        .map(|s| if admin { s } else { s.redacted() })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "systems": systems }))
}

/// Liveness: the process answers. Open without a token unless configured otherwise.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Alive", body = super::openapi::HealthResponse))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Upstream health, for people and dashboards, never for probes: each system's breaker state.
/// `ok` when every breaker is closed, `degraded` when some are not, `down` when all are open
/// (still 200: the gateway serves stale records then, and it is not this report's job to take
/// it out of service). Needs a `read` token.
#[utoipa::path(
    get,
    path = "/healthz/deep",
    tag = "operations",
    responses(
        (status = 200, description = "Each system's breaker state", body = super::openapi::DeepHealthResponse),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn healthz_deep(lookup: web::Data<LookupService>) -> HttpResponse {
    let statuses = lookup.statuses();
    let open = statuses
        .iter()
        .filter(|s| s.breaker == BreakerState::Open)
        .count();
    let closed = statuses
        .iter()
        .filter(|s| s.breaker == BreakerState::Closed)
        .count();
    let status = if closed == statuses.len() {
        "ok"
    } else if open == statuses.len() {
        "down"
    } else {
        "degraded"
    };
    let systems: Vec<_> = statuses
        .iter()
        .map(|s| serde_json::json!({ "name": s.name, "kind": s.kind, "breaker": s.breaker }))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "status": status, "systems": systems }))
}

/// Readiness: this process can serve (config loaded, listener up, not shutting down). Never
/// upstream health: with every system down the gateway still answers from its cache, and a
/// probe that failed then would take every replica out at once. Open without a token unless
/// configured otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Ready", body = super::openapi::ReadyResponse),
        (status = 503, description = "Shutting down", body = super::openapi::ReadyResponse),
    )
)]
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    if readiness.is_shutting_down() {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "shutting_down" }))
    } else {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    }
}

/// Whether the process is still taking new work; flipped once, when shutdown begins.
#[derive(Debug, Default)]
pub struct Readiness {
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Readiness {
    pub fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Prometheus metrics, text exposition format 0.0.4. Open without a token unless configured
/// otherwise.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("bearer" = [])),
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    match metrics.render(&lookup) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                types::INTERNAL,
                "Internal error",
                "metrics could not be rendered",
            )
            .at(req.path(), &rid.0)
            .response()
        }
    }
}

pub async fn not_found(req: HttpRequest, rid: RequestId) -> HttpResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        types::ROUTE_NOT_FOUND,
        "No such route",
        format!("{} {} is not part of this API", req.method(), req.path()),
    )
    .at(req.path(), &rid.0)
    .response()
}

/// 405 for a method the route does not declare, with the `Allow` it does.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest, rid: RequestId| async move {
        let mut resp = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            types::METHOD_NOT_ALLOWED,
            "Method not allowed",
            format!(
                "{} is not allowed on {}; use {allow}",
                req.method(),
                req.path()
            ),
        )
        .at(req.path(), &rid.0)
        .response();
        resp.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        resp
    })
}

/// problem+json for requests actix's extractors refuse (path, query, JSON body), instead of
/// actix's plain-text 400.
pub fn extractor_problem(
    req: &HttpRequest,
    status: StatusCode,
    title: &str,
    detail: String,
) -> actix_web::Error {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let resp = Problem::new(status, types::INVALID_REQUEST, title, detail)
        .at(req.path(), &rid)
        .response();
    actix_web::error::InternalError::from_response(title.to_owned(), resp).into()
}
