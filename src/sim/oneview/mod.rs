//! HPE OneView simulator: the REST calls the gateway and HPE's `hpeOneView` SDK make to find a
//! server profile and its hardware (vendor-notes/oneview.md §8): `/rest/version`, login
//! sessions in the `auth` header, `X-API-Version` checks, filtered and paged collections.

mod filter;
mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::{Entry, Routes, SimServer, SimShared};

pub const MIN_API_VERSION: u32 = 120;
pub const CURRENT_API_VERSION: u32 = 8600;
/// Appliances cut pages short "due to response time constraints"; `count=-1` and large counts
/// get at most this many members per page, so clients must follow `nextPageUri`.
pub const PAGE_CAP: usize = 64;
/// Sessions from expired epochs are dropped once the table grows past this.
const SESSION_TABLE_PRUNE: usize = 4096;

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn routes(shared: Arc<SimShared>) -> Routes {
    let sim = web::Data::new(OneViewSim {
        shared,
        sessions: Mutex::new(HashMap::new()),
        index: RwLock::new(None),
    });
    Arc::new(move |cfg| {
        cfg.app_data(sim.clone())
            .route("/rest/version", web::get().to(version))
            .route("/rest/login-sessions", web::post().to(login))
            .route("/rest/login-sessions", web::put().to(resume_session))
            .route("/rest/login-sessions", web::delete().to(logout))
            .route("/rest/server-profiles", web::get().to(list_profiles))
            .route("/rest/server-profiles/{id}", web::get().to(get_profile))
            .route("/rest/server-hardware", web::get().to(list_hardware))
            .route("/rest/server-hardware/{id}", web::get().to(get_hardware))
            .default_service(web::to(not_found));
    })
}

struct OneViewSim {
    shared: Arc<SimShared>,
    /// session id → epoch it was created in.
    sessions: Mutex<HashMap<String, u64>>,
    index: RwLock<Option<Arc<Index>>>,
}

/// Lookups by lower-cased name and by id, built once per fleet so that a filtered query costs
/// O(matches), not O(fleet).
struct Index {
    fleet: Arc<Vec<SimServer>>,
    profile_names: HashMap<String, Vec<usize>>,
    profile_ids: HashMap<String, usize>,
    hardware_names: HashMap<String, Vec<usize>>,
    hardware_ids: HashMap<String, usize>,
}

impl Index {
    fn build(fleet: Arc<Vec<SimServer>>) -> Self {
        let mut idx = Self {
            fleet: fleet.clone(),
            profile_names: HashMap::new(),
            profile_ids: HashMap::new(),
            hardware_names: HashMap::new(),
            hardware_ids: HashMap::new(),
        };
        for (i, s) in fleet.iter().enumerate() {
            idx.profile_names
                .entry(s.name.to_lowercase())
                .or_default()
                .push(i);
            idx.profile_ids.insert(render::profile_id(i), i);
            if s.assigned {
                idx.hardware_names
                    .entry(render::hardware_name(i).to_lowercase())
                    .or_default()
                    .push(i);
                idx.hardware_ids.insert(render::hardware_id(i), i);
            }
        }
        idx
    }
}

#[derive(Clone, Copy)]
enum Collection {
    Profiles,
    Hardware,
}

impl Collection {
    fn path(self) -> &'static str {
        match self {
            Self::Profiles => render::PROFILES,
            Self::Hardware => render::HARDWARE,
        }
    }

    fn names(self, idx: &Index) -> &HashMap<String, Vec<usize>> {
        match self {
            Self::Profiles => &idx.profile_names,
            Self::Hardware => &idx.hardware_names,
        }
    }

    fn ids(self, idx: &Index) -> &HashMap<String, usize> {
        match self {
            Self::Profiles => &idx.profile_ids,
            Self::Hardware => &idx.hardware_ids,
        }
    }

    fn render(self, i: usize, s: &SimServer, api: u32) -> Value {
        match self {
            Self::Profiles => render::profile(i, s, api),
            Self::Hardware => render::hardware(i, s, api),
        }
    }

    fn members(self, idx: &Index) -> Vec<usize> {
        match self {
            Self::Profiles => (0..idx.fleet.len()).collect(),
            Self::Hardware => (0..idx.fleet.len())
                .filter(|&i| idx.fleet[i].assigned)
                .collect(),
        }
    }

    fn list_type(self, api: u32) -> String {
        match self {
            Self::Profiles => format!("ServerProfileListV{}", render::profile_type(api)),
            Self::Hardware => "server-hardware-list-3".to_owned(),
        }
    }

    fn category(self) -> &'static str {
        match self {
            Self::Profiles => "server-profiles",
            Self::Hardware => "server-hardware",
        }
    }
}

impl OneViewSim {
    fn index(&self) -> Arc<Index> {
        let fleet = self.shared.fleet();
        if let Ok(guard) = self.index.read() {
            if let Some(idx) = guard.as_ref().filter(|i| Arc::ptr_eq(&i.fleet, &fleet)) {
                return idx.clone();
            }
        }
        let idx = Arc::new(Index::build(fleet));
        if let Ok(mut guard) = self.index.write() {
            *guard = Some(idx.clone());
        }
        idx
    }

    /// The API version of a request that needs one, or the 412 a real appliance sends.
    fn api_version(req: &HttpRequest) -> Result<u32, Refusal> {
        // Without the header the appliance assumes version 1, which no API has any more, so
        // the path itself is not found (OneView 3.0 help, "REST API version").
        let v = match req.headers().get("X-API-Version") {
            None => {
                return Err(Refusal::Error(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_NOT_FOUND",
                    format!("{} does not exist in API version 1.", req.path()),
                ))
            }
            Some(h) => h
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    Refusal::Error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_API_VERSION",
                        "The X-API-Version header is not a number.".into(),
                    )
                })?,
        };
        if (MIN_API_VERSION..=CURRENT_API_VERSION).contains(&v) {
            Ok(v)
        } else {
            Err(Refusal::Error(
                StatusCode::PRECONDITION_FAILED,
                "UNSUPPORTED_API_VERSION",
                format!(
                    "The API version {v} is not supported. Supported versions: {MIN_API_VERSION} to {CURRENT_API_VERSION}."
                ),
            ))
        }
    }

    fn session_of(&self, req: &HttpRequest) -> Option<String> {
        let token = req.headers().get("auth")?.to_str().ok()?.trim().to_owned();
        let epoch = *self.sessions.lock().ok()?.get(&token)?;
        self.shared.session_alive(epoch).then_some(token)
    }

    /// Version and session checks every protected call makes.
    fn authorise(&self, req: &HttpRequest) -> Result<(u32, String), Refusal> {
        let api = Self::api_version(req)?;
        let token = self.session_of(req).ok_or(Refusal::Unauthorized)?;
        Ok((api, token))
    }

    fn new_session(&self) -> String {
        let token = format!("LTE{}", uuid::Uuid::new_v4().simple());
        let epoch = self.shared.session_epoch();
        if let Ok(mut s) = self.sessions.lock() {
            if s.len() >= SESSION_TABLE_PRUNE {
                s.retain(|_, e| self.shared.session_alive(*e));
            }
            s.insert(token.clone(), epoch);
        }
        token
    }
}

/// Why a request is refused, turned into OneView's error answer at the handler's edge.
enum Refusal {
    /// Missing, invalid or expired session.
    Unauthorized,
    Error(StatusCode, &'static str, String),
}

impl Refusal {
    fn respond(self) -> HttpResponse {
        match self {
            Self::Unauthorized => unauthorized(),
            Self::Error(status, code, message) => error(status, code, &message),
        }
    }
}

fn ov_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json;charset=UTF-8")
        .body(body.to_string())
}

/// OneView's ErrorMessage body, which every 4xx/5xx carries.
fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    ov_json(
        status,
        &json!({
            "errorCode": code,
            "message": message,
            "details": "",
            "recommendedActions": [],
            "nestedErrors": [],
            "errorSource": null,
            "data": {},
        }),
    )
}

/// The body observed for missing, invalid and expired sessions alike.
fn unauthorized() -> HttpResponse {
    ov_json(
        StatusCode::UNAUTHORIZED,
        &json!({
            "errorCode": "AUTHORIZATION",
            "message": "Authorization error: User not authorized for this operation.",
            "details": "",
            "recommendedActions": ["Request authorization from your administrator and try again."],
            "nestedErrors": [],
            "errorSource": null,
            "data": {},
        }),
    )
}

macro_rules! enter {
    ($sim:expr, $key:expr) => {
        if let Entry::Respond(r) = $sim.shared.enter($key).await {
            return r;
        }
    };
}

macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(refusal) => return Refusal::respond(refusal),
        }
    };
}

async fn version(sim: web::Data<OneViewSim>) -> HttpResponse {
    enter!(sim, "GET /rest/version");
    ov_json(
        StatusCode::OK,
        &json!({"currentVersion": CURRENT_API_VERSION, "minimumVersion": MIN_API_VERSION}),
    )
}

async fn login(sim: web::Data<OneViewSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    enter!(sim, "POST /rest/login-sessions");
    attempt!(OneViewSim::api_version(&req));
    let Ok(creds) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "The request body is not valid JSON.",
        );
    };
    let field = |k: &str| creds.get(k).and_then(Value::as_str).unwrap_or_default();
    let domain = field("authLoginDomain");
    if !(domain.is_empty() || domain.eq_ignore_ascii_case("local")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHN_AUTH_FAIL_LOGINDOMAINNOTFOUND",
            &format!("The login domain {domain} was not found."),
        );
    }
    if !sim
        .shared
        .credentials_ok(field("userName"), field("password"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHN_AUTH_FAIL",
            "Invalid username or password or directory or domain.",
        );
    }
    let token = sim.new_session();
    ov_json(
        StatusCode::OK,
        &json!({"partnerData": {}, "sessionID": token}),
    )
}

/// The SDK's way of adopting an existing session id: PUT with `auth` echoes it back.
async fn resume_session(sim: web::Data<OneViewSim>, req: HttpRequest) -> HttpResponse {
    enter!(sim, "PUT /rest/login-sessions");
    let (_, token) = attempt!(sim.authorise(&req));
    ov_json(
        StatusCode::OK,
        &json!({"partnerData": {}, "sessionID": token}),
    )
}

async fn logout(sim: web::Data<OneViewSim>, req: HttpRequest) -> HttpResponse {
    enter!(sim, "DELETE /rest/login-sessions");
    let (_, token) = attempt!(sim.authorise(&req));
    if let Ok(mut s) = sim.sessions.lock() {
        s.remove(&token);
    }
    HttpResponse::NoContent().finish()
}

async fn list_profiles(sim: web::Data<OneViewSim>, req: HttpRequest) -> HttpResponse {
    enter!(sim, "GET /rest/server-profiles");
    list(&sim, &req, Collection::Profiles)
}

async fn list_hardware(sim: web::Data<OneViewSim>, req: HttpRequest) -> HttpResponse {
    enter!(sim, "GET /rest/server-hardware");
    list(&sim, &req, Collection::Hardware)
}

async fn get_profile(
    sim: web::Data<OneViewSim>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    enter!(sim, "GET /rest/server-profiles/{id}");
    one(&sim, &req, Collection::Profiles, &id)
}

async fn get_hardware(
    sim: web::Data<OneViewSim>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    enter!(sim, "GET /rest/server-hardware/{id}");
    one(&sim, &req, Collection::Hardware, &id)
}

async fn not_found(sim: web::Data<OneViewSim>, req: HttpRequest) -> HttpResponse {
    enter!(sim, &format!("{} (unknown path)", req.method()));
    resource_not_found(req.path())
}

fn resource_not_found(path: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        &format!("The requested resource {path} could not be found."),
    )
}

fn one(sim: &OneViewSim, req: &HttpRequest, coll: Collection, id: &str) -> HttpResponse {
    let (api, _) = attempt!(sim.authorise(req));
    let idx = sim.index();
    match coll.ids(&idx).get(id) {
        Some(&i) => ov_json(StatusCode::OK, &coll.render(i, &idx.fleet[i], api)),
        None => resource_not_found(req.path()),
    }
}

struct ListQuery {
    start: usize,
    /// -1 = everything (still capped per page).
    count: i64,
    filters: Vec<String>,
}

fn list_query(req: &HttpRequest) -> Result<ListQuery, Refusal> {
    let bad = |what: &str| {
        Refusal::Error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            format!("Invalid {what} parameter."),
        )
    };
    let mut q = ListQuery {
        start: 0,
        count: -1,
        filters: Vec::new(),
    };
    // form_urlencoded decodes both %20 and + as a space: the Go SDK sends the latter.
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "start" => q.start = v.trim().parse().map_err(|_| bad("start"))?,
            "count" => {
                q.count = v.trim().parse().map_err(|_| bad("count"))?;
                if q.count < -1 {
                    return Err(bad("count"));
                }
            }
            "filter" => q.filters.push(v.into_owned()),
            _ => {}
        }
    }
    Ok(q)
}

fn list(sim: &OneViewSim, req: &HttpRequest, coll: Collection) -> HttpResponse {
    let (api, _) = attempt!(sim.authorise(req));
    let q = attempt!(list_query(req));
    let conds = attempt!(q
        .filters
        .iter()
        .map(|f| filter::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Refusal::Error(StatusCode::BAD_REQUEST, "INVALID_FILTER", e)));
    let idx = sim.index();
    let want = if q.count < 0 {
        PAGE_CAP
    } else {
        (q.count as usize).min(PAGE_CAP)
    };
    // Unfiltered (a sweep's pages): only the page is rendered, so that paging a large fleet
    // costs the simulator per page, not per member, and stays out of measured sweep times.
    let (total, page): (usize, Vec<Value>) = if conds.is_empty() {
        let members = coll.members(&idx);
        let page = members
            .iter()
            .skip(q.start)
            .take(want)
            .map(|&i| coll.render(i, &idx.fleet[i], api))
            .collect();
        (members.len(), page)
    } else {
        let matches = matching(&idx, coll, &conds, api);
        let total = matches.len();
        (
            total,
            matches.into_iter().skip(q.start).take(want).collect(),
        )
    };
    let end = q.start.saturating_add(page.len());
    let next = (end < total && !page.is_empty()).then(|| page_uri(coll, end, q.count, &q.filters));
    let prev = (q.start > 0).then(|| {
        let back = if q.count > 0 { q.count as usize } else { want };
        page_uri(coll, q.start.saturating_sub(back), q.count, &q.filters)
    });
    ov_json(
        StatusCode::OK,
        &json!({
            "type": coll.list_type(api),
            "uri": req.uri().to_string(),
            "category": coll.category(),
            "eTag": "1526058827348",
            "created": render::CREATED,
            "modified": render::MODIFIED,
            "start": q.start,
            "count": page.len(),
            "total": total,
            "prevPageUri": prev,
            "nextPageUri": next,
            "members": page,
        }),
    )
}

/// Members matching every condition, in fleet order. An equality on `name` narrows the
/// candidates through the index; other conditions are checked on the rendered documents.
fn matching(idx: &Index, coll: Collection, conds: &[filter::Cond], api: u32) -> Vec<Value> {
    let candidates: Vec<usize> = match conds.iter().find_map(filter::Cond::indexed_name) {
        Some(name) => coll
            .names(idx)
            .get(&name.to_lowercase())
            .cloned()
            .unwrap_or_default(),
        None => coll.members(idx),
    };
    candidates
        .into_iter()
        .map(|i| coll.render(i, &idx.fleet[i], api))
        .filter(|doc| {
            conds.iter().all(|c| {
                let actual = doc.get(&c.attr).and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                });
                c.accepts(actual.as_deref())
            })
        })
        .collect()
}

fn page_uri(coll: Collection, start: usize, count: i64, filters: &[String]) -> String {
    let mut uri = format!("{}?start={start}&count={count}", coll.path());
    for f in filters {
        uri.push_str("&filter=");
        uri.extend(utf8_percent_encode(f, QUERY_VALUE));
    }
    uri
}
