//! Route handlers. Thin: parse the edge types, call the lookup service, shape the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::problem::{types, Problem};
use super::request_id::RequestId;
use crate::domain::{ServerName, SystemKind, Vendor};
use crate::lookup::LookupService;

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
    // No cache yet: every answer is fresh, so `refresh` changes nothing but is accepted.
    let _refresh = query.refresh.unwrap_or(false);
    match lookup.lookup(&name, vendor).await {
        Ok(record) => HttpResponse::Ok()
            .insert_header(("X-Cache", "miss"))
            .insert_header(("Age", "0"))
            .json(record),
        Err(e) => {
            tracing::info!(server = %name, error = %e, "lookup failed");
            Problem::from_lookup(&e).at(&instance, &rid.0).response()
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SystemInfo {
    pub name: String,
    pub kind: SystemKind,
    pub vendor: Vendor,
    pub endpoint: String,
}

pub async fn list_vendors(lookup: web::Data<LookupService>) -> HttpResponse {
    let systems: Vec<SystemInfo> = lookup
        .backends()
        .iter()
        .map(|b| SystemInfo {
            name: b.name().to_owned(),
            kind: b.kind(),
            vendor: b.kind().vendor(),
            endpoint: b.endpoint().to_string(),
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "systems": systems }))
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready once the config is loaded and backends are built, which is before the app exists.
pub async fn readyz(lookup: web::Data<LookupService>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ready",
        "systems": lookup.backends().iter().map(|b| b.name()).collect::<Vec<_>>(),
    }))
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
