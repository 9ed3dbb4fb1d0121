//! Route handlers. Thin: parse the edge types, call the lookup service, shape the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::problem::{types, Problem};
use super::request_id::RequestId;
use crate::domain::{ServerName, Vendor};
use crate::lookup::LookupService;
use crate::resilience::BreakerState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerQuery {
    vendor: Option<String>,
    refresh: Option<bool>,
}

pub async fn get_server(
    req: HttpRequest,
    path: web::Path<String>,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    let instance = req.path().to_owned();
    let bad = |type_uri: &str, title: &str, detail: String| {
        Problem::new(StatusCode::BAD_REQUEST, type_uri, title, detail)
            .at(&instance, &rid.0)
            .response()
    };
    let name = match ServerName::parse(&path) {
        Ok(n) => n,
        Err(e) => return bad(types::INVALID_NAME, "Invalid server name", e.to_string()),
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
    match lookup.get(&name, vendor, refresh).await {
        Ok(answer) => HttpResponse::Ok()
            .insert_header(("X-Cache", answer.cache.as_str()))
            .insert_header(("Age", answer.age.as_secs().to_string()))
            .json(answer.record),
        Err(e) => {
            tracing::info!(server = %name, error = %e, "lookup failed");
            Problem::from_lookup(&e).at(&instance, &rid.0).response()
        }
    }
}

/// `DELETE /servers/{name}/cache`: forget what the gateway cached for this name.
pub async fn purge_server(
    req: HttpRequest,
    path: web::Path<String>,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    match ServerName::parse(&path) {
        Ok(name) => {
            let removed = lookup.purge(&name).await;
            tracing::info!(server = %name, removed, "cache purged");
            HttpResponse::NoContent().finish()
        }
        Err(e) => Problem::new(
            StatusCode::BAD_REQUEST,
            types::INVALID_NAME,
            "Invalid server name",
            e.to_string(),
        )
        .at(req.path(), &rid.0)
        .response(),
    }
}

pub async fn list_vendors(lookup: web::Data<LookupService>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "systems": lookup.statuses() }))
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready while at least one system can be asked (its breaker is not open).
pub async fn readyz(lookup: web::Data<LookupService>) -> HttpResponse {
    let statuses = lookup.statuses();
    let usable = statuses.iter().any(|s| s.breaker != BreakerState::Open);
    let systems: Vec<_> = statuses
        .iter()
        .map(|s| serde_json::json!({ "name": s.name, "kind": s.kind, "breaker": s.breaker }))
        .collect();
    let body = serde_json::json!({
        "status": if usable { "ready" } else { "unavailable" },
        "systems": systems,
    });
    if usable {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
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
