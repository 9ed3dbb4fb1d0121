//! The OpenAPI 3.1 document, generated from the handlers' annotations and the domain types
//! (utoipa), served at `/api-docs/openapi.json` and browsable in Swagger UI at `/swagger-ui/`.
//! `openapi/openapi.json` in the repository is this document, committed; a test fails when the
//! two differ (`inventory-gateway openapi > openapi/openapi.json` refreshes it).
//!
//! The `ServerRecord` examples are real answers of the gateway against the demo's simulated
//! fleet (`openapi/examples/*.json`); a test asks the gateway for the same servers and compares.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::problem::{Failure, Problem};
use crate::domain::{Bmc, Nic, ServerRecord, SystemKind, Vendor};

/// A real record per vendor, as the gateway answered it (see the module comment).
pub const EXAMPLE_HPE: &str = include_str!("../../openapi/examples/hpe.json");
pub const EXAMPLE_CISCO: &str = include_str!("../../openapi/examples/cisco.json");
pub const EXAMPLE_CISCO_CENTRAL: &str = include_str!("../../openapi/examples/cisco-central.json");
pub const EXAMPLE_DELL: &str = include_str!("../../openapi/examples/dell.json");
pub const EXAMPLE_INTERSIGHT: &str = include_str!("../../openapi/examples/intersight.json");

/// An example, parsed; an unparsable file shows up as `null` in the spec and fails the
/// example test.
pub fn example(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// A circuit breaker's state, as `/vendors` and `/readyz` show it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStateSchema {
    Closed,
    Open,
    HalfOpen,
}

/// A server the name matched (in a 409).
#[derive(Serialize, ToSchema)]
pub struct CandidateSchema {
    /// The configured name of the system instance.
    pub system_name: String,
    pub system: SystemKind,
    pub system_id: String,
    pub name: String,
}

/// One configured system's state.
#[derive(Serialize, ToSchema)]
pub struct SystemStatusSchema {
    pub name: String,
    pub kind: SystemKind,
    /// Null for a set of Redfish BMCs (`kind = "redfish"`): each server says its own make.
    pub vendor: Option<Vendor>,
    /// The appliance's URL; for a set of Redfish BMCs, how many and how they are reached.
    pub endpoint: String,
    pub breaker: BreakerStateSchema,
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
    pub last_failure: Option<chrono::DateTime<chrono::Utc>>,
    /// The last failure: its kind for most callers (`ome-dc1: timed out after 30000 ms`), the
    /// full text (URLs, client errors, upstream snippets) for `admin` tokens.
    pub last_error: Option<String>,
    /// Over the last lookups answered by this system (up to 512); null before the first.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// `ucs-central` only (absent otherwise): the UCS Manager domains it lists, each with its
    /// own session, throttle and breaker.
    #[schema(required = false)]
    pub domains: Option<Vec<DomainStatusSchema>>,
    /// Systems that read BMCs themselves (`kind = "redfish"`, `verify_bmc`), absent otherwise:
    /// each credential they send, how many BMCs refused it, and whether it is suspended.
    #[schema(required = false)]
    pub credentials: Option<Vec<crate::resilience::refusals::CredentialStatus>>,
}

/// One UCS Manager domain behind a UCS Central.
#[derive(Serialize, ToSchema)]
pub struct DomainStatusSchema {
    /// `<central>/<address>`: the `system` label of its metrics.
    #[schema(example = "ucs-central-1/10.20.0.10")]
    pub name: String,
    /// The domain's name in UCS Central.
    pub domain_name: String,
    /// The domain's address, as UCS Central reports it.
    pub address: String,
    pub endpoint: String,
    pub breaker: BreakerStateSchema,
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
    pub last_failure: Option<chrono::DateTime<chrono::Utc>>,
    /// As for the system: the kind for most callers, the full text for `admin` tokens.
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct VendorsResponse {
    pub systems: Vec<SystemStatusSchema>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReadySystem {
    pub name: String,
    pub kind: SystemKind,
    pub breaker: BreakerStateSchema,
}

/// Readiness says nothing of the systems: see `/healthz/deep` and `/vendors` for those.
#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    pub status: ReadyStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    ShuttingDown,
}

#[derive(Serialize, ToSchema)]
pub struct DeepHealthResponse {
    pub status: DeepHealthStatus,
    pub systems: Vec<ReadySystem>,
}

/// `ok`: every breaker closed; `degraded`: some open or half-open; `down`: every one open.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeepHealthStatus {
    Ok,
    Degraded,
    Down,
}

/// The `vendor` query parameter's documented values (the gateway ignores their case).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VendorParam {
    Hpe,
    Hp,
    Cisco,
    Ucs,
    Dell,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token listed (hashed) in the gateway's tokens file; scope `read` for \
                         lookups, `admin` for cache purges.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every operation the inbound limiter guards can answer 429, whatever its own handler does;
/// declared here, from the limiter's own exemption list, so no route can be added without it.
struct RateLimitedResponses;

impl Modify for RateLimitedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for (path, item) in openapi.paths.paths.iter_mut() {
            if super::rate_limit::EXEMPT.contains(&path.as_str()) {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                op.responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(
                                "Rate limited: this caller (its token, or its address when it \
                                 sends none or a wrong one) is over its budget; see `Retry-After`",
                            )
                            .content(
                                "application/problem+json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("Problem")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "inventory-gateway",
        description = "Server name → NIC MAC addresses and BMC address, from HPE OneView, Cisco \
                       UCS Manager and Dell OpenManage Enterprise, cached and protected by \
                       retries, circuit breakers and rate limits. Errors are RFC 9457 \
                       `application/problem+json`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::routes::get_server,
        super::routes::purge_server,
        super::fleet::list_servers,
        super::fleet::lookup_servers,
        super::fleet::fleet_status,
        super::fleet::fleet_conflicts,
        super::fleet::sweep_now,
        super::routes::list_vendors,
        super::routes::healthz,
        super::routes::healthz_deep,
        super::routes::readyz,
        super::routes::metrics,
    ),
    components(schemas(
        ServerRecord, Bmc, Nic, Vendor, SystemKind, Problem, Failure, CandidateSchema,
        SystemStatusSchema, DomainStatusSchema, BreakerStateSchema, VendorsResponse, HealthResponse, ReadyResponse,
        ReadySystem, ReadyStatus, DeepHealthResponse, DeepHealthStatus, VendorParam,
        super::fleet::ServerList, super::fleet::LookupRequest, super::fleet::LookupResult,
        super::fleet::LookupResponse, super::fleet::FleetResponse, super::fleet::ConflictsResponse,
        crate::fleet::FleetSystem, crate::fleet::SweepReport, crate::fleet::Conflict,
        crate::fleet::ConflictKind
    )),
    modifiers(&BearerAuth, &RateLimitedResponses),
    security(("bearer" = [])),
    tags(
        (name = "servers", description = "Server lookups"),
        (name = "fleet", description = "The fleet index: listings, reverse lookups by MAC, serial or BMC, sweeps and conflicts"),
        (name = "operations", description = "Health, readiness, metrics and system status")
    )
)]
pub struct ApiDoc;

/// The document, pretty-printed with a trailing newline (the committed file's exact form).
pub fn spec_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        for p in [
            "/servers/{name}",
            "/servers/{name}/cache",
            "/servers",
            "/servers/lookup",
            "/fleet",
            "/fleet/conflicts",
            "/fleet/sweep",
            "/vendors",
            "/healthz",
            "/healthz/deep",
            "/readyz",
            "/metrics",
        ] {
            assert!(paths.contains_key(p), "{p} missing from the spec");
        }
        assert_eq!(
            spec["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn every_rate_limited_operation_documents_429() {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap();
        for (path, item) in spec["paths"].as_object().unwrap() {
            let limited = !crate::http::rate_limit::EXEMPT.contains(&path.as_str());
            for (method, op) in item.as_object().unwrap() {
                assert_eq!(
                    op["responses"].get("429").is_some(),
                    limited,
                    "{method} {path}: 429 documented iff the limiter guards it"
                );
            }
        }
    }

    #[test]
    fn the_committed_spec_matches_the_code() {
        let committed = include_str!("../../openapi/openapi.json");
        assert!(
            committed == spec_json(),
            "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
        );
    }

    #[test]
    fn examples_are_records_of_each_vendor() {
        for (text, vendor) in [
            (EXAMPLE_HPE, Vendor::Hpe),
            (EXAMPLE_CISCO, Vendor::Cisco),
            (EXAMPLE_CISCO_CENTRAL, Vendor::Cisco),
            (EXAMPLE_DELL, Vendor::Dell),
            (EXAMPLE_INTERSIGHT, Vendor::Cisco),
        ] {
            let record: ServerRecord = serde_json::from_str(text).unwrap();
            assert_eq!(record.vendor, vendor);
            assert!(!record.nics.is_empty());
        }
    }
}
