//! Simulators of HPE OneView, Cisco UCS Manager and Dell OME: the gateway's test peers, the
//! demo's backends and the benchmark's upstreams. Each runs on its own port and speaks its
//! vendor's protocol; all share the `/_sim/` control plane (counters, faults, inventory).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::SystemKind;

pub mod control;
pub mod faults;
pub mod fleet;
pub mod intersight;
pub mod ome;
pub mod oneview;
pub mod redfish;
pub mod tls;
pub mod ucs_central;
pub mod ucsm;

pub use fleet::{SimNic, SimServer};

/// Fault knobs, set through `PUT /_sim/faults`. All default to "no fault".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Only requests whose endpoint key contains this string are affected (None = all).
    pub endpoint: Option<String>,
    /// Added to every affected request.
    pub latency_ms: u64,
    /// Uniform extra latency in [0, jitter_ms).
    pub jitter_ms: u64,
    /// Fraction (0.0–1.0) of affected requests answered with `error_status`.
    pub error_rate: f64,
    pub error_status: Option<u16>,
    /// Sent with 429/503 fault answers.
    pub retry_after_s: Option<u64>,
    /// Affected requests never get an answer.
    pub hang: bool,
    /// Fraction of affected requests whose body is cut in half (malformed JSON/XML).
    pub malformed_rate: f64,
    /// Fraction of affected requests whose connection is dropped half-way through the body.
    pub drop_rate: f64,
    /// Setting this expires every session at once (then it reads back false).
    pub expire_sessions: bool,
}

/// What a vendor handler must do after [`SimShared::enter`].
pub enum Entry {
    /// Serve normally.
    Proceed,
    /// Answer with this injected error instead.
    Respond(HttpResponse),
}

/// State shared by a simulator's vendor handlers and its control plane.
pub struct SimShared {
    pub kind: SystemKind,
    pub fleet: RwLock<Arc<Vec<SimServer>>>,
    counters: Mutex<BTreeMap<String, u64>>,
    faults: RwLock<Faults>,
    rng: Mutex<fleet::Rng>,
    /// Sessions created before the current epoch are expired (`POST /_sim/expire-sessions`).
    session_epoch: AtomicU64,
    /// The credentials the simulator accepts.
    pub username: String,
    pub password: String,
}

impl SimShared {
    pub fn new(kind: SystemKind, fleet: Vec<SimServer>, username: &str, password: &str) -> Self {
        Self {
            kind,
            fleet: RwLock::new(Arc::new(fleet)),
            counters: Mutex::new(BTreeMap::new()),
            faults: RwLock::new(Faults::default()),
            rng: Mutex::new(fleet::Rng::new(0x5eed)),
            session_epoch: AtomicU64::new(0),
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    pub fn fleet(&self) -> Arc<Vec<SimServer>> {
        self.fleet.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Call first in every vendor handler: counts the request under `endpoint` (e.g.
    /// `"GET /rest/server-profiles"`, `"configResolveClass"`) and applies the configured faults.
    pub async fn enter(&self, endpoint: &str) -> Entry {
        self.count(endpoint);
        let faults = self.faults.read().map(|f| f.clone()).unwrap_or_default();
        if faults
            .endpoint
            .as_deref()
            .is_some_and(|e| !endpoint.contains(e))
        {
            return Entry::Proceed;
        }
        let (jitter, roll) = match self.rng.lock() {
            Ok(mut rng) => (
                rng.below(faults.jitter_ms.max(1)),
                (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64,
            ),
            Err(_) => (0, 1.0),
        };
        let delay = faults.latency_ms + if faults.jitter_ms > 0 { jitter } else { 0 };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if faults.hang {
            // Long enough for any client deadline; the connection closes when the server stops.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        // One roll decides among the rate-based faults, so their rates add up instead of
        // masking each other.
        let drop_until = faults.drop_rate;
        let malformed_until = drop_until + faults.malformed_rate;
        if roll < drop_until {
            faults::request(faults::PostFault::Drop);
            return Entry::Proceed;
        }
        if roll < malformed_until {
            faults::request(faults::PostFault::Truncate);
            return Entry::Proceed;
        }
        if let Some(status) = faults.error_status {
            if roll - malformed_until < faults.error_rate {
                let status = actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
                let mut resp = HttpResponse::build(status);
                if let Some(ra) = faults.retry_after_s {
                    resp.insert_header(("Retry-After", ra.to_string()));
                }
                return Entry::Respond(
                    resp.content_type("text/plain")
                        .body(format!("simulated fault: HTTP {}", status.as_u16())),
                );
            }
        }
        Entry::Proceed
    }

    /// Counts one event under `key` (a request, or what a handler noticed: `login refused`).
    pub(crate) fn count(&self, key: &str) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(key.to_owned()).or_default() += 1;
        }
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn set_faults(&self, mut faults: Faults) {
        if std::mem::take(&mut faults.expire_sessions) {
            self.expire_sessions();
        }
        if let Ok(mut f) = self.faults.write() {
            *f = faults;
        }
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.counters.lock() {
            c.clear();
        }
        self.set_faults(Faults::default());
    }

    /// The epoch a new session is stamped with.
    pub fn session_epoch(&self) -> u64 {
        self.session_epoch.load(Ordering::SeqCst)
    }

    /// A session stamped with `epoch` is still valid.
    pub fn session_alive(&self, epoch: u64) -> bool {
        epoch == self.session_epoch()
    }

    pub fn expire_sessions(&self) {
        self.session_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn credentials_ok(&self, user: &str, password: &str) -> bool {
        user == self.username && password == self.password
    }
}

/// A value derived from the simulator's fleet (a vendor simulator's render index), rebuilt
/// only when the fleet `Arc` is replaced (a test swapping the fleet).
pub struct FleetDerived<T> {
    slot: RwLock<(Arc<Vec<SimServer>>, Arc<T>)>,
    build: fn(&[SimServer]) -> T,
}

impl<T> FleetDerived<T> {
    pub fn new(shared: &SimShared, build: fn(&[SimServer]) -> T) -> Self {
        let fleet = shared.fleet();
        let value = Arc::new(build(&fleet));
        Self {
            slot: RwLock::new((fleet, value)),
            build,
        }
    }

    pub fn get(&self, shared: &SimShared) -> Arc<T> {
        let fleet = shared.fleet();
        if let Ok(guard) = self.slot.read() {
            if Arc::ptr_eq(&guard.0, &fleet) {
                return guard.1.clone();
            }
        }
        let value = Arc::new((self.build)(&fleet));
        if let Ok(mut guard) = self.slot.write() {
            *guard = (fleet, value.clone());
        }
        value
    }
}

/// A vendor simulator's HTTP routes, given its shared state.
pub type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The credentials a simulator accepts unless told otherwise (the demo's, the tests').
pub const DEFAULT_USERNAME: &str = "admin";
pub const DEFAULT_PASSWORD: &str = "sim-password";

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub kind: SystemKind,
    pub bind: IpAddr,
    /// 0 = any free port.
    pub port: u16,
    pub tls: bool,
    pub fleet: Vec<SimServer>,
    pub username: String,
    pub password: String,
    pub workers: usize,
    /// UCS Central only: how many UCS Manager domains it fronts (the fleet is dealt out
    /// among them).
    pub domains: usize,
    /// Intersight only: API keys (id, public key) whose signatures it accepts besides the key
    /// pair it generates and hands out in [`SimHandle::api_key`] (unless an id here is the
    /// generated key's, which then stays unusable: a test of a wrong key).
    pub api_keys: Vec<(String, crate::vendors::intersight::signing::PublicKey)>,
    /// Intersight only: its CIMCs honour Redfish `$expand` (else they answer links only).
    pub cimc_expand: bool,
}

/// An API key the Intersight simulator generated: what a gateway needs to sign for it.
#[derive(Clone)]
pub struct SimApiKey {
    pub key_id: String,
    pub private_pem: secrecy::SecretString,
}

/// The key id the simulator's generated key pair carries (Intersight's shape: three Moids).
pub const SIM_API_KEY_ID: &str =
    "65ff00000000000000000001/65ff00000000000000000002/65ff00000000000000000003";

impl SimOptions {
    pub fn new(kind: SystemKind, fleet: Vec<SimServer>) -> Self {
        Self {
            kind,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            tls: false,
            fleet,
            username: DEFAULT_USERNAME.into(),
            password: DEFAULT_PASSWORD.into(),
            workers: 2,
            domains: 3,
            api_keys: Vec::new(),
            cimc_expand: true,
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    pub kind: SystemKind,
    pub base_url: Url,
    pub addr: SocketAddr,
    pub shared: Arc<SimShared>,
    pub server: actix_web::dev::ServerHandle,
    /// PEM of the CA to trust when `tls` is on.
    pub ca_pem: Option<String>,
    /// The systems this one fronts, each on its own listener (UCS Central's domains).
    pub members: Vec<SimHandle>,
    /// Intersight: the key pair it generated, what a gateway signs with.
    pub api_key: Option<SimApiKey>,
}

impl SimHandle {
    pub async fn stop(&self) {
        self.server.stop(false).await;
        for m in &self.members {
            m.server.stop(false).await;
        }
    }
}

/// Binds and starts a simulator on the current tokio runtime.
pub fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
    // Simulators that front others (domains, CIMCs) start those first.
    let routes: fn(Arc<SimShared>) -> Routes = match opts.kind {
        SystemKind::Oneview => oneview::routes,
        SystemKind::Ucsm => ucsm::routes,
        SystemKind::Ome => ome::routes,
        SystemKind::UcsCentral => return ucs_central::start(opts),
        SystemKind::Intersight => return intersight::start(opts),
        SystemKind::Redfish => return redfish::start(opts),
    };
    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port))?;
    let shared = Arc::new(SimShared::new(
        opts.kind,
        opts.fleet.clone(),
        &opts.username,
        &opts.password,
    ));
    serve(&opts, listener, shared.clone(), routes(shared), Vec::new())
}

/// One listener per address, all on the same port: a free one on the first address, then the
/// same on the others (tried again with another port when one of those is taken). UCS
/// Central's domains and Intersight's CIMCs listen this way.
pub(crate) fn shared_port_listeners(addrs: &[Ipv4Addr]) -> std::io::Result<Vec<TcpListener>> {
    let Some((&first_addr, rest)) = addrs.split_first() else {
        return Ok(Vec::new());
    };
    let mut last_err = None;
    for _ in 0..32 {
        let first = TcpListener::bind(SocketAddr::new(IpAddr::V4(first_addr), 0))?;
        let port = first.local_addr()?.port();
        let mut all = vec![first];
        for &addr in rest {
            match TcpListener::bind(SocketAddr::new(IpAddr::V4(addr), port)) {
                Ok(l) => all.push(l),
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
        if all.len() == addrs.len() {
            return Ok(all);
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no common port for the listeners")))
}

/// Serves `routes` (and the `/_sim/` control plane) on `listener`.
pub(crate) fn serve(
    opts: &SimOptions,
    listener: TcpListener,
    shared: Arc<SimShared>,
    routes: Routes,
    members: Vec<SimHandle>,
) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let data = web::Data::from(shared.clone());
    let factory = move || {
        let routes = routes.clone();
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(faults::middleware))
            .configure(control::routes)
            .configure(move |cfg| routes(cfg))
    };
    let server = HttpServer::new(factory)
        .workers(opts.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1);
    let (server, ca_pem) = if opts.tls {
        let tls = tls::get().map_err(std::io::Error::other)?;
        (
            server.listen_rustls_0_23(listener, (*tls.server_config).clone())?,
            Some(tls.ca_pem.clone()),
        )
    } else {
        (server.listen(listener)?, None)
    };
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    let scheme = if opts.tls { "https" } else { "http" };
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let base_url =
        Url::parse(&format!("{scheme}://{host}:{}", addr.port())).map_err(std::io::Error::other)?;
    Ok(SimHandle {
        kind: opts.kind,
        base_url,
        addr,
        shared,
        server: handle,
        ca_pem,
        members,
        api_key: None,
    })
}
