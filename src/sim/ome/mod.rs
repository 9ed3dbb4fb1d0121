//! Dell OpenManage Enterprise simulator: sessions, `ProfileService/Profiles`,
//! `DeviceService/Devices` (collection, entity, NIC inventory), with OME's quirks kept:
//! `@odata.count` on every page, a relative `@odata.nextLink` that drops the filter, a default
//! page of 50, 401 with OME's error envelope for a missing or expired token, 400 for a filter
//! it cannot read. Paths are matched after percent-decoding and with empty segments dropped,
//! so RestOME's `/api//DeviceService/…` and `Sessions(%27id%27)` work. See `render` for how a
//! fleet is laid out as profiles and devices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::{Entry, FleetDerived, Routes, SimShared};

pub mod query;
pub mod render;

use query::{Filter, Literal};
use render::Index;

pub fn routes(shared: Arc<SimShared>) -> Routes {
    let sim = web::Data::new(OmeSim::new(shared));
    Arc::new(move |cfg| {
        cfg.app_data(sim.clone())
            .route("/api/{tail:.*}", web::route().to(dispatch));
    })
}

pub struct OmeSim {
    shared: Arc<SimShared>,
    index: FleetDerived<Index>,
    /// By token.
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Clone)]
struct Session {
    id: String,
    epoch: u64,
}

/// Beyond this many sessions, logins drop the expired ones.
const SESSION_PRUNE_AT: usize = 1024;

impl OmeSim {
    fn new(shared: Arc<SimShared>) -> Self {
        Self {
            index: FleetDerived::new(&shared, Index::build),
            shared,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn index(&self) -> Arc<Index> {
        self.index.get(&self.shared)
    }

    fn token_alive(&self, token: &str) -> bool {
        let epoch = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(token).map(|s| s.epoch));
        epoch.is_some_and(|e| self.shared.session_alive(e))
    }

    /// `X-Auth-Token` of a live session, or (no token) Basic credentials, as OME allows.
    fn authorized(&self, req: &HttpRequest) -> bool {
        if let Some(token) = header(req, "x-auth-token") {
            return self.token_alive(token);
        }
        header(req, "authorization")
            .and_then(basic_credentials)
            .is_some_and(|(u, p)| self.shared.credentials_ok(&u, &p))
    }
}

/// What a request asks for, decided before `enter` so faults and counters use a stable key.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Login,
    ListSessions,
    Logout(String),
    Profiles,
    Profile(String),
    Devices,
    Device(String),
    Inventory(String, Option<String>),
    Unknown,
}

impl Route {
    fn parse(method: &Method, raw_path: &str) -> Self {
        let path = percent_decode_str(raw_path).decode_utf8_lossy();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let get = method == Method::GET;
        match segs.as_slice() {
            ["api", "SessionService", "Sessions"] if method == Method::POST => Self::Login,
            ["api", "SessionService", "Sessions"] if get => Self::ListSessions,
            ["api", "SessionService", s] if method == Method::DELETE => {
                match call(s, "Sessions").and_then(unquote) {
                    Some(id) => Self::Logout(id.to_owned()),
                    None => Self::Unknown,
                }
            }
            ["api", "ProfileService", "Profiles"] if get => Self::Profiles,
            ["api", "ProfileService", p] if get => match call(p, "Profiles") {
                Some(id) => Self::Profile(id.to_owned()),
                None => Self::Unknown,
            },
            ["api", "DeviceService", "Devices"] if get => Self::Devices,
            ["api", "DeviceService", d] if get => match call(d, "Devices") {
                Some(id) => Self::Device(id.to_owned()),
                None => Self::Unknown,
            },
            ["api", "DeviceService", d, inv] if get => match call(d, "Devices") {
                Some(id) if *inv == "InventoryDetails" => Self::Inventory(id.to_owned(), None),
                Some(id) => match call(inv, "InventoryDetails").and_then(unquote) {
                    Some(t) => Self::Inventory(id.to_owned(), Some(t.to_owned())),
                    None => Self::Unknown,
                },
                None => Self::Unknown,
            },
            _ => Self::Unknown,
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Self::Login => "POST /api/SessionService/Sessions",
            Self::ListSessions => "GET /api/SessionService/Sessions",
            Self::Logout(_) => "DELETE /api/SessionService/Sessions('{id}')",
            Self::Profiles => "GET /api/ProfileService/Profiles",
            Self::Profile(_) => "GET /api/ProfileService/Profiles({id})",
            Self::Devices => "GET /api/DeviceService/Devices",
            Self::Device(_) => "GET /api/DeviceService/Devices({id})",
            Self::Inventory(..) => "GET /api/DeviceService/Devices({id})/InventoryDetails",
            Self::Unknown => "unknown",
        }
    }
}

/// `Name(args)` → `args`.
fn call<'a>(seg: &'a str, name: &str) -> Option<&'a str> {
    seg.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')?.strip_suffix('\'')
}

async fn dispatch(req: HttpRequest, body: web::Bytes, sim: web::Data<OmeSim>) -> HttpResponse {
    let route = Route::parse(req.method(), req.path());
    if let Entry::Respond(r) = sim.shared.enter(route.key()).await {
        return r;
    }
    if route == Route::Login {
        return login(&sim, &req, &body);
    }
    if route == Route::Unknown {
        return error(
            StatusCode::NOT_FOUND,
            "CGEN1006",
            "Unable to complete the request because the resource URI does not exist or is not implemented.",
        );
    }
    if !sim.authorized(&req) {
        return unauthorized();
    }
    match route {
        Route::ListSessions => list_sessions(&sim),
        Route::Logout(id) => logout(&sim, &id),
        Route::Profiles => collection(&sim, &req, Kind::Profiles),
        Route::Devices => collection(&sim, &req, Kind::Devices),
        Route::Profile(id) => entity(&sim, Kind::Profiles, &id),
        Route::Device(id) => entity(&sim, Kind::Devices, &id),
        Route::Inventory(id, kind) => inventory(&sim, &id, kind.as_deref()),
        Route::Login | Route::Unknown => unauthorized(),
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name)?.to_str().ok()
}

fn login(sim: &OmeSim, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    // Any Authorization header is ignored here: RestOME and ome_session send Basic auth on
    // the login POST itself, and only the body counts.
    let Ok(creds) = serde_json::from_slice::<Value>(body) else {
        return bad_request("The request body is not valid JSON.");
    };
    let field = |k: &str| creds.get(k).and_then(Value::as_str).unwrap_or_default();
    let (user, password) = (field("UserName"), field("Password"));
    if !sim.shared.credentials_ok(user, password) {
        return unauthorized();
    }
    let session_type = creds
        .get("SessionType")
        .and_then(Value::as_str)
        .unwrap_or("API");
    let id = uuid::Uuid::new_v4().to_string();
    let token = uuid::Uuid::new_v4().simple().to_string();
    store_session(sim, &token, &id);
    let now = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let location = format!("/api/SessionService/Sessions('{id}')");
    HttpResponse::Created()
        .insert_header(("X-Auth-Token", token))
        .insert_header(("Location", location.clone()))
        .insert_header(("OData-Version", "4.0"))
        .content_type("application/json; odata.metadata=minimal")
        .body(
            json!({
                "@odata.context": "/api/$metadata#SessionService.Session",
                "@odata.type": "#SessionService.Session",
                "@odata.id": location,
                "Id": id,
                "Description": user,
                "Name": session_type,
                "UserName": user,
                "UserId": 10078,
                "Password": null,
                "Roles": ["ADMINISTRATOR"],
                "IpAddress": peer,
                "StartTimeStamp": now,
                "LastAccessedTimeStamp": now,
                "DirectoryGroup": [],
            })
            .to_string(),
        )
}

fn store_session(sim: &OmeSim, token: &str, id: &str) {
    let epoch = sim.shared.session_epoch();
    if let Ok(mut sessions) = sim.sessions.lock() {
        if sessions.len() >= SESSION_PRUNE_AT {
            sessions.retain(|_, s| sim.shared.session_alive(s.epoch));
        }
        sessions.insert(
            token.to_owned(),
            Session {
                id: id.to_owned(),
                epoch,
            },
        );
    }
}

fn list_sessions(sim: &OmeSim) -> HttpResponse {
    let items: Vec<Value> = sim
        .sessions
        .lock()
        .map(|s| {
            s.values()
                .filter(|s| sim.shared.session_alive(s.epoch))
                .map(|s| {
                    json!({
                        "@odata.type": "#SessionService.Session",
                        "@odata.id": format!("/api/SessionService/Sessions('{}')", s.id),
                        "Id": s.id,
                        "Name": "API",
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    odata_json(
        StatusCode::OK,
        json!({
            "@odata.context": "/api/$metadata#Collection(SessionService.Session)",
            "@odata.count": items.len(),
            "value": items,
        })
        .to_string(),
    )
}

fn logout(sim: &OmeSim, id: &str) -> HttpResponse {
    let removed = sim.sessions.lock().is_ok_and(|mut sessions| {
        let before = sessions.len();
        sessions.retain(|_, s| s.id != id);
        sessions.len() < before
    });
    if removed {
        HttpResponse::NoContent().finish()
    } else {
        not_found()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Profiles,
    Devices,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Self::Profiles => "/api/ProfileService/Profiles",
            Self::Devices => "/api/DeviceService/Devices",
        }
    }

    fn entity_type(self) -> &'static str {
        match self {
            Self::Profiles => "ProfileService.Profile",
            Self::Devices => "DeviceService.Device",
        }
    }

    fn items(self, index: &Index) -> &[String] {
        match self {
            Self::Profiles => &index.profiles,
            Self::Devices => &index.devices,
        }
    }
}

/// Positions an `eq` filter selects, through the indexes (never a scan for a name).
fn select(index: &Index, kind: Kind, filter: &Filter) -> Result<Vec<usize>, String> {
    let unsupported = || format!("unsupported $filter on {}: {filter:?}", kind.path());
    Ok(match (kind, filter.prop.as_str(), &filter.value) {
        (Kind::Profiles, "ProfileName", Literal::Str(v)) => index.profiles_named(v).to_vec(),
        (Kind::Profiles, "Id", Literal::Int(id)) => index.profile_id(*id).into_iter().collect(),
        (Kind::Devices, "DeviceName", Literal::Str(v)) => index.devices_named(v).to_vec(),
        (Kind::Devices, "DeviceServiceTag" | "Identifier", Literal::Str(v)) => {
            index.devices_tagged(v).to_vec()
        }
        (Kind::Devices, "Id", Literal::Int(id)) => index.device_id(*id).into_iter().collect(),
        (Kind::Devices, "Type", Literal::Int(t)) => match *t {
            render::DEVICE_TYPE_SERVER => (0..index.devices.len()).collect(),
            _ => Vec::new(),
        },
        _ => return Err(unsupported()),
    })
}

fn collection(sim: &OmeSim, req: &HttpRequest, kind: Kind) -> HttpResponse {
    let query = match query::parse_query(req.query_string()) {
        Ok(q) => q,
        Err(e) => return bad_request(&e),
    };
    let index = sim.index();
    let all = kind.items(&index);
    let selected = match &query.filter {
        None => None,
        Some(f) => match select(&index, kind, f) {
            Ok(rows) => Some(rows),
            Err(e) => return bad_request(&e),
        },
    };
    let total = selected.as_ref().map_or(all.len(), Vec::len);
    let start = query.skip.min(total);
    let end = start.saturating_add(query.top).min(total);
    let page: Vec<&str> = (start..end)
        .map(|k| selected.as_ref().map_or(k, |rows| rows[k]))
        .filter_map(|pos| all.get(pos).map(String::as_str))
        .collect();
    let mut body = format!(
        "{{\"@odata.context\":\"/api/$metadata#Collection({})\",\"@odata.count\":{total},\"value\":[{}]",
        kind.entity_type(),
        page.join(",")
    );
    if end < total {
        // The real quirk: the filter is not carried into the next link.
        body.push_str(&format!(
            ",\"@odata.nextLink\":\"{}?$skip={end}&$top={}\"",
            kind.path(),
            query.top
        ));
    }
    body.push('}');
    odata_json(StatusCode::OK, body)
}

fn entity(sim: &OmeSim, kind: Kind, id: &str) -> HttpResponse {
    let index = sim.index();
    let pos = id.parse::<i64>().ok().and_then(|id| match kind {
        Kind::Profiles => index.profile_id(id),
        Kind::Devices => index.device_id(id),
    });
    match pos.and_then(|p| kind.items(&index).get(p)) {
        Some(item) => odata_json(
            StatusCode::OK,
            format!(
                "{{\"@odata.context\":\"/api/$metadata#{}/$entity\",{}",
                kind.entity_type(),
                item.strip_prefix('{').unwrap_or(item)
            ),
        ),
        None => not_found(),
    }
}

const NIC_INVENTORY: &str = "serverNetworkInterfaces";

fn inventory(sim: &OmeSim, id: &str, kind: Option<&str>) -> HttpResponse {
    let index = sim.index();
    let Some(pos) = id.parse::<i64>().ok().and_then(|id| index.device_id(id)) else {
        return not_found();
    };
    let info = index.nic_inventories.get(pos).cloned().unwrap_or_default();
    let entry = |context: Option<&str>| {
        let mut v = json!({
            "@odata.type": "#DeviceService.InventoryDetail",
            "@odata.id": format!("/api/DeviceService/Devices({id})/InventoryDetails('{NIC_INVENTORY}')"),
            "InventoryType": NIC_INVENTORY,
            "InventoryInfo": info.clone(),
        });
        if let (Some(ctx), Some(map)) = (context, v.as_object_mut()) {
            map.insert("@odata.context".into(), ctx.into());
        }
        v
    };
    match kind {
        Some(NIC_INVENTORY) => odata_json(
            StatusCode::OK,
            entry(Some("/api/$metadata#DeviceService.InventoryDetail")).to_string(),
        ),
        Some(other) => bad_request(&format!(
            "Inventory type {other} is not available for this device."
        )),
        None => odata_json(
            StatusCode::OK,
            json!({
                "@odata.context": "/api/$metadata#Collection(DeviceService.InventoryDetail)",
                "@odata.count": 1,
                "value": [entry(None)],
            })
            .to_string(),
        ),
    }
}

fn odata_json(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("OData-Version", "4.0"))
        .content_type("application/json; odata.metadata=minimal")
        .body(body)
}

/// OME's error envelope; every error status carries one (Dell's modules parse it).
fn error(status: StatusCode, message_id: &str, message: &str) -> HttpResponse {
    odata_json(
        status,
        json!({"error": {
            "code": "Base.1.0.GeneralError",
            "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{
                "MessageId": message_id,
                "RelatedProperties": [],
                "Message": message,
                "MessageArgs": [],
                "Severity": "Critical",
                "Resolution": "Retry the operation. If the issue persists, contact your system administrator.",
            }],
        }})
        .to_string(),
    )
}

/// No Dell source shows the body of an expired-token 401; this message id is the simulator's.
fn unauthorized() -> HttpResponse {
    error(
        StatusCode::UNAUTHORIZED,
        "CSEC5002",
        "Unable to complete the operation because the session is missing, expired or invalid, or the credentials are wrong.",
    )
}

fn bad_request(detail: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, "CGEN1004", detail)
}

fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "CGEN1006",
        "Unable to complete the request because the resource URI does not exist or is not implemented.",
    )
}

/// `Basic <base64(user:password)>` → (user, password).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard-alphabet base64 with optional padding (no base64 crate among the dependencies).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (k, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * k);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_raw_paths() {
        let get = Method::GET;
        assert_eq!(
            Route::parse(&get, "/api//DeviceService/Devices"),
            Route::Devices
        );
        assert_eq!(
            Route::parse(
                &get,
                "/api/DeviceService/Devices(25003)/InventoryDetails(%27serverNetworkInterfaces%27)"
            ),
            Route::Inventory("25003".into(), Some("serverNetworkInterfaces".into()))
        );
        assert_eq!(
            Route::parse(&get, "/api/DeviceService/Devices(7)/InventoryDetails"),
            Route::Inventory("7".into(), None)
        );
        assert_eq!(
            Route::parse(&Method::DELETE, "/api/SessionService/Sessions('ab-1')"),
            Route::Logout("ab-1".into())
        );
        assert_eq!(
            Route::parse(&Method::DELETE, "/api/SessionService/Sessions(ab)"),
            Route::Unknown
        );
        assert_eq!(
            Route::parse(&Method::POST, "/api/SessionService/Sessions"),
            Route::Login
        );
        assert_eq!(
            Route::parse(&get, "/api/ProfileService/Profiles(3)"),
            Route::Profile("3".into())
        );
        assert_eq!(Route::parse(&get, "/api/Nope"), Route::Unknown);
    }

    #[test]
    fn basic_auth_header() {
        // "admin:sim-password"
        assert_eq!(
            basic_credentials("Basic YWRtaW46c2ltLXBhc3N3b3Jk"),
            Some(("admin".into(), "sim-password".into()))
        );
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("@@@@"), None);
        assert_eq!(basic_credentials("Bearer x"), None);
    }
}
