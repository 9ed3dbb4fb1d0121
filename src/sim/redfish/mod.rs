//! Redfish BMCs: one simulated BMC per server, each on the server's own loopback BMC address
//! (one port shared by all, see [`crate::sim::shared_port_listeners`]) with its own `/_sim/`
//! control plane, counters and faults. Each speaks its make's dialect ([`Flavour`]): system
//! path, MAC location, sessions or Basic only, `$expand` or not, iDRAC's lockout. What it
//! serves is the slice of DSP0266 a client of inventory needs, shaped to pass DMTF's
//! `redfish-service-validator`: `/redfish`, the service root, `$metadata`, the OData service
//! document, `Systems`, `Chassis` (with `NetworkAdapters`), `Managers`, `SessionService`.
//!
//! The same simulator serves managed servers' BMCs (a OneView or OME fleet whose BMC addresses
//! are loopback), so that `verify_bmc` reads the BMC of the very server its manager reported.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::Value;

use crate::sim::{Entry, Routes, SimHandle, SimOptions, SimServer, SimShared};

pub mod flavour;
mod render;

pub use flavour::{Flavour, MacLocation};

/// iDRAC's lockout: failures counted over this window…
const LOCKOUT_WINDOW: Duration = Duration::from_secs(60);
/// …this many lock the client's address out…
const LOCKOUT_FAILURES: usize = 3;
/// …for this long.
const LOCKOUT_FOR: Duration = Duration::from_secs(3600);

/// Starts one BMC per server whose `bmc_address` is a loopback IPv4 address. The returned
/// handle is a control-only listener on `opts.bind` (its `/_sim/inventory` lists every BMC's
/// server); `members` are the BMCs, in fleet order.
pub fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
    let bmcs: Vec<(Ipv4Addr, SimServer)> = opts
        .fleet
        .iter()
        .filter_map(|s| {
            let ip: Ipv4Addr = s.bmc_address.parse().ok()?;
            ip.is_loopback().then(|| (ip, s.clone()))
        })
        .collect();
    let addrs: Vec<Ipv4Addr> = bmcs.iter().map(|(a, _)| *a).collect();
    let mut members = Vec::with_capacity(bmcs.len());
    for ((_, server), listener) in bmcs.into_iter().zip(super::shared_port_listeners(&addrs)?) {
        let shared = Arc::new(SimShared::new(
            opts.kind,
            vec![server.clone()],
            &opts.username,
            &opts.password,
        ));
        let routes = routes(shared.clone(), server);
        // A BMC serves one client at a time or so; one worker each keeps many of them cheap.
        let one = SimOptions {
            workers: 1,
            ..opts.clone()
        };
        members.push(super::serve(&one, listener, shared, routes, Vec::new())?);
    }
    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port))?;
    let shared = Arc::new(SimShared::new(
        opts.kind,
        opts.fleet.clone(),
        &opts.username,
        &opts.password,
    ));
    let none: Routes = Arc::new(|_| {});
    super::serve(&opts, listener, shared, none, members)
}

/// The routes of one BMC serving `server`.
pub fn routes(shared: Arc<SimShared>, server: SimServer) -> Routes {
    let flavour = Flavour::of_model(&server.model);
    let bmc = web::Data::new(Bmc {
        shared,
        flavour,
        server,
        sessions: Mutex::new(HashMap::new()),
        next_session: AtomicU64::new(1),
        failures: Mutex::new(Lockout::default()),
    });
    Arc::new(move |cfg| {
        cfg.app_data(bmc.clone())
            .route("/redfish", web::route().to(handle))
            .route("/redfish/{tail:.*}", web::route().to(handle));
    })
}

pub(crate) struct Bmc {
    shared: Arc<SimShared>,
    flavour: Flavour,
    server: SimServer,
    /// token → (session id, session epoch).
    sessions: Mutex<HashMap<String, (u64, u64)>>,
    next_session: AtomicU64,
    failures: Mutex<Lockout>,
}

#[derive(Default)]
struct Lockout {
    recent: VecDeque<Instant>,
    until: Option<Instant>,
}

enum Auth {
    Ok,
    Refused,
    /// iDRAC has locked this client out: even good credentials are refused.
    LockedOut,
}

impl Bmc {
    fn locked_out(&self) -> bool {
        self.failures
            .lock()
            .map(|l| l.until.is_some_and(|u| Instant::now() < u))
            .unwrap_or(false)
    }

    /// Counts a failed login (`login refused` counter) and applies the lockout rule.
    fn failed_login(&self) {
        self.shared.count("login refused");
        if !self.flavour.locks_out() {
            return;
        }
        if let Ok(mut l) = self.failures.lock() {
            let now = Instant::now();
            l.recent.push_back(now);
            while l
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > LOCKOUT_WINDOW)
            {
                l.recent.pop_front();
            }
            if l.recent.len() >= LOCKOUT_FAILURES {
                l.until = Some(now + LOCKOUT_FOR);
                self.shared.count("locked out");
            }
        }
    }

    fn check_credentials(&self, user: &str, password: &str) -> Auth {
        if self.locked_out() {
            self.shared.count("login refused");
            return Auth::LockedOut;
        }
        if self.shared.credentials_ok(user, password) {
            Auth::Ok
        } else {
            self.failed_login();
            Auth::Refused
        }
    }

    fn authorize(&self, req: &HttpRequest) -> Auth {
        let headers = req.headers();
        if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
            if self.locked_out() {
                return Auth::LockedOut;
            }
            let alive = self
                .sessions
                .lock()
                .ok()
                .and_then(|s| s.get(token).copied())
                .is_some_and(|(_, epoch)| self.shared.session_alive(epoch));
            return if alive { Auth::Ok } else { Auth::Refused };
        }
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        match basic.as_deref().and_then(|s| s.split_once(':')) {
            Some((user, password)) => self.check_credentials(user, password),
            None => Auth::Refused,
        }
    }
}

/// Unauthenticated by DSP0266: the version document, the service root, `$metadata` and the
/// OData service document.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/redfish" | "/redfish/v1" | "/redfish/v1/$metadata" | "/redfish/v1/odata"
    )
}

/// Every request to `/redfish…`: DSP0266's rules for headers, methods and query parameters,
/// then the resource.
async fn handle(req: HttpRequest, bmc: web::Data<Bmc>, body: web::Bytes) -> HttpResponse {
    let path = req.path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    // A client asking for another OData version than the one served.
    if req
        .headers()
        .get("odata-version")
        .is_some_and(|v| v.as_bytes() != b"4.0")
    {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "Base.1.8.HeaderInvalid",
            "Only OData-Version 4.0 is supported",
        );
    }
    let sessions_path = "/redfish/v1/SessionService/Sessions";
    let sessions = bmc.flavour.sessions();
    if method == actix_web::http::Method::POST
        && sessions
        && (path == sessions_path || path == format!("{sessions_path}/Members"))
    {
        return login(bmc, body).await;
    }
    if method == actix_web::http::Method::DELETE && sessions {
        if let Some(id) = path
            .strip_prefix(&format!("{sessions_path}/"))
            .and_then(|id| id.parse::<u64>().ok())
        {
            return logout(req, bmc, id).await;
        }
    }
    let key = render::endpoint_key(&bmc, &path);
    if let Entry::Respond(r) = bmc.shared.enter(&format!("{method} {key}")).await {
        return r;
    }
    if !is_public(&path) {
        match bmc.authorize(&req) {
            Auth::Ok => {}
            Auth::Refused | Auth::LockedOut => return unauthorized(),
        }
    }
    let head = method == actix_web::http::Method::HEAD;
    if method != actix_web::http::Method::GET && !head {
        return match allowed(&bmc, &path) {
            Some(allow) => {
                let mut r = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Base.1.8.OperationNotAllowed",
                    "The method is not allowed on this resource",
                );
                r.headers_mut().insert(
                    actix_web::http::header::ALLOW,
                    actix_web::http::header::HeaderValue::from_static(allow),
                );
                r
            }
            None => not_found(),
        };
    }
    if path == "/redfish/v1/$metadata" {
        return HttpResponse::Ok()
            .content_type("application/xml")
            .insert_header(("OData-Version", "4.0"))
            .insert_header(("Cache-Control", "no-cache"))
            .body(if head {
                String::new()
            } else {
                render::metadata()
            });
    }
    // `$expand` (where the make supports it) is the one query parameter served; DSP0266:
    // any other `$` parameter is a 501.
    let query = req.query_string();
    let dollar: Vec<&str> = query
        .split('&')
        .filter_map(|p| p.split('=').next())
        .filter(|k| k.starts_with('$') || k.starts_with("%24"))
        .collect();
    let expand = dollar.iter().any(|k| *k == "$expand" || *k == "%24expand");
    if dollar
        .iter()
        .any(|k| !(*k == "$expand" || *k == "%24expand"))
        || (expand && !bmc.flavour.expand())
    {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "Base.1.8.QueryNotSupported",
            "Querying is not supported by the implementation",
        );
    }
    let open: Vec<u64> = bmc
        .sessions
        .lock()
        .map(|s| s.values().map(|(id, _)| *id).collect())
        .unwrap_or_default();
    match render::resource(&bmc, &path, expand, &open) {
        Some(body) => {
            let mut r = json(StatusCode::OK, &body);
            let headers = r.headers_mut();
            if let Some(allow) = allowed(&bmc, &path) {
                headers.insert(
                    actix_web::http::header::ALLOW,
                    actix_web::http::header::HeaderValue::from_static(allow),
                );
            }
            let etag = render::etag(&body);
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&etag) {
                headers.insert(actix_web::http::header::ETAG, v);
            }
            if let Some(link) = render::described_by(&body) {
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&link) {
                    headers.insert(actix_web::http::header::LINK, v);
                }
            }
            if head {
                let (req_head, _) = r.into_parts();
                return req_head.set_body(actix_web::body::BoxBody::new(()));
            }
            r
        }
        None => not_found(),
    }
}

/// The methods a resource takes (`Allow`), or `None` when there is no such resource.
fn allowed(bmc: &Bmc, path: &str) -> Option<&'static str> {
    if is_public(path) || render::resource(bmc, path, false, &[]).is_some() {
        return Some(if path == "/redfish/v1/SessionService/Sessions" {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        });
    }
    path.starts_with("/redfish/v1/SessionService/Sessions/")
        .then_some("GET, HEAD, DELETE")
}

fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "Base.1.8.ResourceMissingAtURI",
        "The resource at the URI was not found",
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials {
    user_name: String,
    password: String,
}

async fn login(bmc: web::Data<Bmc>, body: web::Bytes) -> HttpResponse {
    let key = "POST /redfish/v1/SessionService/Sessions";
    if let Entry::Respond(r) = bmc.shared.enter(key).await {
        return r;
    }
    if !bmc.flavour.sessions() {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "The service does not support sessions",
        );
    }
    let Ok(creds) = serde_json::from_slice::<Credentials>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Base.1.8.MalformedJSON",
            "The request body is not a UserName and a Password",
        );
    };
    match bmc.check_credentials(&creds.user_name, &creds.password) {
        Auth::Ok => {}
        Auth::Refused | Auth::LockedOut => return unauthorized(),
    }
    let id = bmc.next_session.fetch_add(1, Ordering::SeqCst);
    let token = render::token(&bmc.server.serial_number, id);
    if let Ok(mut s) = bmc.sessions.lock() {
        s.insert(token.clone(), (id, bmc.shared.session_epoch()));
    }
    let location = format!("/redfish/v1/SessionService/Sessions/{id}");
    HttpResponse::Created()
        .insert_header(("X-Auth-Token", token))
        .insert_header(("Location", location))
        .insert_header(("OData-Version", "4.0"))
        .json(render::session(id, &creds.user_name))
}

async fn logout(req: HttpRequest, bmc: web::Data<Bmc>, id: u64) -> HttpResponse {
    let key = "DELETE /redfish/v1/SessionService/Sessions/{id}";
    if let Entry::Respond(r) = bmc.shared.enter(key).await {
        return r;
    }
    if !matches!(bmc.authorize(&req), Auth::Ok) {
        return unauthorized();
    }
    let removed = bmc
        .sessions
        .lock()
        .map(|mut s| {
            let before = s.len();
            s.retain(|_, (sid, _)| *sid != id);
            before != s.len()
        })
        .unwrap_or(false);
    if removed {
        HttpResponse::NoContent().finish()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "Base.1.8.ResourceMissingAtURI",
            "No such session",
        )
    }
}

fn json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("OData-Version", "4.0"))
        .insert_header(("Cache-Control", "no-cache"))
        .content_type("application/json;charset=utf-8")
        .body(body.to_string())
}

fn unauthorized() -> HttpResponse {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "Base.1.8.NoValidSession",
        "There is no valid session established with the implementation",
    );
    r.headers_mut().insert(
        actix_web::http::header::WWW_AUTHENTICATE,
        actix_web::http::header::HeaderValue::from_static("Basic realm=\"Redfish\""),
    );
    r
}

/// Redfish's error envelope.
fn error(status: StatusCode, id: &str, message: &str) -> HttpResponse {
    json(
        status,
        &serde_json::json!({
            "error": {
                "code": id,
                "message": message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": id,
                    "Message": message,
                    "Severity": "Critical",
                    "Resolution": "None",
                }],
            }
        }),
    )
}
