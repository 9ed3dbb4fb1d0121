//! Cisco Intersight simulator: `compute/PhysicalSummaries`, `server/Profiles` and
//! `adapter/HostEthInterfaces` under `/api/v1`, every request's HTTP signature verified against
//! the registered API keys' public keys (see [`verify`]), Intersight's `*.List` envelope,
//! `$top`/`$skip` paging without a next link, `$select`, `$inlinecount`, `$count`.
//!
//! How the neutral fleet is laid out (see `render`): every fourth server is known by its
//! server **profile** name (its physical name is `srv-<serial>`); servers without NICs in the
//! fleet are standalone rack servers for which Intersight holds no host Ethernet interfaces;
//! one extra profile, [`UNASSIGNED_PROFILE`], is assigned to no server.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{
    Entry, FleetDerived, Routes, SimApiKey, SimHandle, SimOptions, SimServer, SimShared,
    SIM_API_KEY_ID,
};
use crate::domain::SystemKind;
use crate::vendors::intersight::signing::{ApiKey, KeyError, PublicKey};

pub mod cimc;
pub mod query;
pub mod render;
pub mod verify;

use query::{Predicate, Query};
use render::Index;

pub use render::UNASSIGNED_PROFILE;

/// The Intersight simulator, and one CIMC simulator per standalone server (`nics_from_bmc`) on
/// the server's BMC address (`127.0.2.k`, one port shared by all, see
/// [`crate::sim::fleet::standalone_cimc`]): the gateway reaches a CIMC exactly as it would a real
/// one, and each has its own `/_sim/` control plane. The handle's `api_key` is the generated key
/// pair; `opts.api_keys` are accepted too.
pub fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
    let (generated, public) = generate_api_key().map_err(std::io::Error::other)?;
    let mut keys: HashMap<_, _> = opts.api_keys.iter().cloned().collect();
    keys.entry(generated.key_id.clone()).or_insert(public);
    let standalone: Vec<(Ipv4Addr, SimServer)> = opts
        .fleet
        .iter()
        .filter(|s| s.nics_from_bmc)
        .filter_map(|s| Some((s.bmc_address.parse().ok()?, s.clone())))
        .collect();
    let addrs: Vec<Ipv4Addr> = standalone.iter().map(|(a, _)| *a).collect();
    let mut members = Vec::with_capacity(standalone.len());
    for ((_, server), listener) in standalone
        .into_iter()
        .zip(super::shared_port_listeners(&addrs)?)
    {
        let shared = Arc::new(SimShared::new(
            SystemKind::Intersight,
            vec![server.clone()],
            &opts.username,
            &opts.password,
        ));
        let routes = cimc::routes(shared.clone(), server, opts.cimc_expand);
        members.push(super::serve(&opts, listener, shared, routes, Vec::new())?);
    }
    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port))?;
    let shared = Arc::new(SimShared::new(
        SystemKind::Intersight,
        opts.fleet.clone(),
        &opts.username,
        &opts.password,
    ));
    let routes = routes(shared.clone(), keys);
    let mut handle = super::serve(&opts, listener, shared, routes, members)?;
    handle.api_key = Some(generated);
    Ok(handle)
}

/// A fresh EC P-256 key pair under [`SIM_API_KEY_ID`].
fn generate_api_key() -> Result<(SimApiKey, PublicKey), KeyError> {
    let pem = ApiKey::generate_ec_pem()?;
    let public = ApiKey::from_pem(SIM_API_KEY_ID, &pem)?.public_key();
    Ok((
        SimApiKey {
            key_id: SIM_API_KEY_ID.to_owned(),
            private_pem: pem.into(),
        },
        public,
    ))
}

pub fn routes(shared: Arc<SimShared>, keys: HashMap<String, PublicKey>) -> Routes {
    let sim = web::Data::new(IntersightSim::new(shared, keys));
    Arc::new(move |cfg| {
        cfg.app_data(sim.clone())
            .route("/api/v1/{tail:.*}", web::route().to(dispatch));
    })
}

pub struct IntersightSim {
    shared: Arc<SimShared>,
    keys: HashMap<String, PublicKey>,
    index: FleetDerived<Index>,
}

impl IntersightSim {
    fn new(shared: Arc<SimShared>, keys: HashMap<String, PublicKey>) -> Self {
        Self {
            index: FleetDerived::new(&shared, Index::build),
            shared,
            keys,
        }
    }

    fn index(&self) -> Arc<Index> {
        self.index.get(&self.shared)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    Summaries,
    Profiles,
    HostEth,
}

impl Collection {
    fn key(&self) -> &'static str {
        match self {
            Self::Summaries => "GET /api/v1/compute/PhysicalSummaries",
            Self::Profiles => "GET /api/v1/server/Profiles",
            Self::HostEth => "GET /api/v1/adapter/HostEthInterfaces",
        }
    }

    fn object_type(&self) -> &'static str {
        match self {
            Self::Summaries => "compute.PhysicalSummary",
            Self::Profiles => "server.Profile",
            Self::HostEth => "adapter.HostEthInterface",
        }
    }
}

/// (collection, Moid when one object is addressed).
fn route(method: &Method, path: &str) -> Option<(Collection, Option<String>)> {
    if method != Method::GET {
        return None;
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (collection, rest) = match segs.as_slice() {
        ["api", "v1", "compute", "PhysicalSummaries", rest @ ..] => (Collection::Summaries, rest),
        ["api", "v1", "server", "Profiles", rest @ ..] => (Collection::Profiles, rest),
        ["api", "v1", "adapter", "HostEthInterfaces", rest @ ..] => (Collection::HostEth, rest),
        _ => return None,
    };
    match rest {
        [] => Some((collection, None)),
        [moid] => Some((collection, Some((*moid).to_owned()))),
        _ => None,
    }
}

async fn dispatch(
    req: HttpRequest,
    body: web::Bytes,
    sim: web::Data<IntersightSim>,
) -> HttpResponse {
    let route = route(req.method(), req.path());
    let key = route.as_ref().map_or("unknown", |(c, _)| c.key());
    if let Entry::Respond(r) = sim.shared.enter(key).await {
        return r;
    }
    if let Err(why) = verify::request(&req, &body, &sim.keys, chrono::Utc::now()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            why.message_id(),
            &why.to_string(),
        );
    }
    let Some((collection, moid)) = route else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "barcelona_request_path_not_found",
            "The requested resource path does not exist",
        );
    };
    let index = sim.index();
    if let Some(moid) = moid {
        return match index.by_moid(collection_items(&index, collection), &moid) {
            Some(obj) => HttpResponse::Ok().json(obj),
            None => error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "barcelona_mo_not_found",
                &format!(
                    "The specified {} {moid} does not exist",
                    collection.object_type()
                ),
            ),
        };
    }
    let query = match query::parse_query(req.query_string()) {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "barcelona_invalid_query",
                &e,
            )
        }
    };
    list(&index, collection, &query)
}

fn collection_items(index: &Index, c: Collection) -> &[Value] {
    match c {
        Collection::Summaries => &index.summaries,
        Collection::Profiles => &index.profiles,
        Collection::HostEth => &index.host_eth,
    }
}

fn list(index: &Index, collection: Collection, q: &Query) -> HttpResponse {
    let items = collection_items(index, collection);
    // An indexed predicate narrows the scan; every predicate is still applied.
    let narrowed = q.filter.iter().find_map(|p| {
        let (lookup, key) = match (collection, p) {
            (Collection::Summaries, Predicate::Eq(prop, v)) if prop == "Name" => {
                (render::Lookup::SummaryName, v)
            }
            (Collection::Summaries, Predicate::Eq(prop, v)) if prop == "Moid" => {
                (render::Lookup::SummaryMoid, v)
            }
            (Collection::Profiles, Predicate::Eq(prop, v)) if prop == "Name" => {
                (render::Lookup::ProfileName, v)
            }
            (Collection::HostEth, Predicate::AncestorMoid(v)) => {
                (render::Lookup::HostEthAncestor, v)
            }
            _ => return None,
        };
        Some(index.candidates(lookup, key))
    });
    let matching: Vec<&Value> = match narrowed {
        Some(positions) => positions
            .iter()
            .filter_map(|&n| items.get(n))
            .filter(|v| matches(v, &q.filter))
            .collect(),
        None => items.iter().filter(|v| matches(v, &q.filter)).collect(),
    };
    if q.count_only {
        return HttpResponse::Ok().json(json!({
            "ObjectType": "mo.DocumentCount",
            "Count": matching.len(),
        }));
    }
    let top = q.top.unwrap_or(query::DEFAULT_TOP);
    let page: Vec<Value> = matching
        .iter()
        .skip(q.skip)
        .take(top)
        .map(|v| select(v, q.select.as_deref()))
        .collect();
    let mut body = json!({
        "ObjectType": format!("{}.List", collection.object_type()),
        "Results": page,
    });
    if q.inline_count {
        body["Count"] = json!(matching.len());
    }
    HttpResponse::Ok().json(body)
}

fn matches(v: &Value, filter: &[Predicate]) -> bool {
    filter.iter().all(|p| match p {
        Predicate::Eq(prop, value) => v.get(prop).and_then(Value::as_str) == Some(value.as_str()),
        Predicate::AncestorMoid(moid) => {
            v.get("Ancestors")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter()
                        .any(|r| r.get("Moid").and_then(Value::as_str) == Some(moid))
                })
        }
    })
}

/// Intersight always sends the identity properties, whatever `$select` says.
fn select(v: &Value, fields: Option<&[String]>) -> Value {
    let Some(fields) = fields else {
        return v.clone();
    };
    let mut out = serde_json::Map::new();
    for key in ["ClassId", "ObjectType", "Moid"]
        .into_iter()
        .chain(fields.iter().map(String::as_str))
    {
        if let Some(value) = v.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// Intersight's error envelope.
fn error(status: StatusCode, code: &str, message_id: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "code": code,
        "message": message,
        "messageId": message_id,
        "traceId": format!("sim-{:016x}", fastrand::u64(..)),
    }))
}
