//! What the benchmark measures against: the three simulators (in this process), the gateway
//! (`inventory-gateway serve` in a child process, so that its memory and CPU are its own), and
//! a bare actix-web JSON handler (in this process) as the warm-path reference.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use secrecy::ExposeSecret;

use super::client::{get_once, Endpoint};
use super::critical_path::Watched;
use super::BenchError;
use crate::demo::{SIM_PASSWORD, SIM_USERNAME};
use crate::domain::SystemKind;
use crate::sim::{self, fleet, Faults, SimHandle, SimOptions, SimShared};

pub const KINDS: [SystemKind; 5] = crate::demo::KINDS;

/// The `vendor` query value that selects a kind's systems.
pub fn vendor_param(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Oneview => "hpe",
        SystemKind::Ucsm | SystemKind::UcsCentral | SystemKind::Intersight => "cisco",
        SystemKind::Ome => "dell",
        SystemKind::Redfish => "other",
    }
}

/// The simulators' shared state and fleets: everything the client side needs (Send + Sync).
#[derive(Clone)]
pub struct Upstreams {
    /// Each kind's simulator, then the systems it fronts (UCS Central's domains).
    sims: Vec<(SystemKind, Vec<Arc<SimShared>>)>,
    addrs: Vec<(SystemKind, SocketAddr)>,
    names: HashMap<SystemKind, Vec<String>>,
}

impl Upstreams {
    pub fn shared(&self, kind: SystemKind) -> Option<Arc<SimShared>> {
        self.sims
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, s)| s.first().cloned())
    }

    /// Server names of `kind`'s fleet, in fleet order.
    pub fn names(&self, kind: SystemKind) -> &[String] {
        self.names.get(&kind).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn addr(&self, kind: SystemKind) -> Option<SocketAddr> {
        self.addrs.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
    }

    /// `kind`'s simulator (and the systems it fronts) answers each call `latency_ms` late
    /// (0 = no fault).
    pub fn set_latency(&self, kind: SystemKind, latency_ms: u64) {
        for (_, sims) in self.sims.iter().filter(|(k, _)| *k == kind) {
            for s in sims {
                s.set_faults(Faults {
                    latency_ms,
                    ..Faults::default()
                });
            }
        }
    }

    pub fn clear_faults(&self) {
        for s in self.sims.iter().flat_map(|(_, s)| s) {
            s.set_faults(Faults::default());
        }
    }

    /// Every simulator, watched for call arrivals, with the latency it injects.
    pub fn watched(&self, latency_ms: impl Fn(SystemKind) -> u64) -> Vec<Watched> {
        self.sims
            .iter()
            .map(|(kind, sims)| Watched {
                kind: *kind,
                sims: sims.clone(),
                latency: Duration::from_millis(latency_ms(*kind)),
            })
            .collect()
    }
}

/// The running simulators.
pub struct Sims {
    handles: Vec<SimHandle>,
    pub upstreams: Upstreams,
}

impl Sims {
    /// One simulator per kind with `servers` generated servers each, 2 workers each.
    pub fn start(servers: usize) -> Result<Self, BenchError> {
        let mut handles = Vec::new();
        let mut names = HashMap::new();
        for kind in KINDS {
            let fleet = fleet::generate(kind, 1, servers);
            names.insert(kind, fleet.iter().map(|s| s.name.clone()).collect());
            let mut opts = SimOptions::new(kind, fleet);
            opts.username = SIM_USERNAME.into();
            opts.password = SIM_PASSWORD.into();
            let handle = sim::start(opts)
                .map_err(|e| BenchError::Setup(format!("{kind} simulator: {e}")))?;
            handles.push(handle);
        }
        let sims = handles
            .iter()
            .map(|h| {
                let fronted = h.members.iter().map(|m| m.shared.clone());
                (
                    h.kind,
                    std::iter::once(h.shared.clone()).chain(fronted).collect(),
                )
            })
            .collect();
        let addrs = handles.iter().map(|h| (h.kind, h.addr)).collect();
        Ok(Self {
            handles,
            upstreams: Upstreams { sims, addrs, names },
        })
    }

    pub fn handles(&self) -> &[SimHandle] {
        &self.handles
    }

    pub async fn stop(&self) {
        for h in &self.handles {
            h.stop().await;
        }
    }
}

/// Total calls a simulator has counted.
pub fn total_calls(sim: &SimShared) -> u64 {
    sim.counters().values().sum()
}

/// The gateway's knobs that the benchmark sets.
pub struct GatewaySpec<'a> {
    pub exe: &'a Path,
    pub dir: &'a Path,
    pub workers: usize,
    pub max_entries: u64,
    /// Whether the fleet index is on (swept on demand only: `POST /fleet/sweep`). Off for the
    /// lookup measurements, whose call counts and cache fill must see lookups alone.
    pub fleet: bool,
    /// The shipped log settings (`info`: one access log line per request) instead of `warn`.
    pub shipped_logs: bool,
}

/// `inventory-gateway serve` in a child process; killed on drop.
pub struct Gateway {
    child: Child,
    pub endpoint: Endpoint,
    pub pid: u32,
    pub config_text: String,
    stderr_path: PathBuf,
    /// Scope `admin` (sweeps on demand).
    pub admin_token: secrecy::SecretString,
}

impl Gateway {
    pub async fn start(spec: &GatewaySpec<'_>, sims: &Sims) -> Result<Self, BenchError> {
        let io = |what: &str, e: std::io::Error| BenchError::Setup(format!("{what}: {e}"));
        std::fs::create_dir_all(spec.dir).map_err(|e| io("temp dir", e))?;
        let token = crate::http::auth::generate_token();
        let admin_token = crate::http::auth::generate_token();
        let tokens_path = spec.dir.join("tokens.toml");
        std::fs::write(
            &tokens_path,
            format!(
                "[[tokens]]\nname = \"bench\"\nhash = \"{}\"\nscopes = [\"read\"]\n\n\
                 [[tokens]]\nname = \"bench-admin\"\nhash = \"{}\"\nscopes = [\"admin\"]\n",
                crate::http::auth::hash_token(token.expose_secret()),
                crate::http::auth::hash_token(admin_token.expose_secret())
            ),
        )
        .map_err(|e| io("tokens file", e))?;
        let port = free_port().map_err(|e| io("free port", e))?;
        let config_text = config_toml(spec, sims, port, &tokens_path);
        let config_path = spec.dir.join("gateway.toml");
        std::fs::write(&config_path, &config_text).map_err(|e| io("config file", e))?;
        let stderr_path = spec.dir.join("gateway.log");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| io("log file", e))?;
        let mut cmd = match super::wrk::server_core() {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(spec.exe);
                c
            }
            None => Command::new(spec.exe),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", if spec.shipped_logs { "info" } else { "warn" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        // The config file alone decides; no operator overrides leak in from this environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("IGW_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| io(&format!("cannot run {}", spec.exe.display()), e))?;
        let pid = child.id();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut gw = Self {
            child,
            endpoint: Endpoint::new(addr, Some(token.expose_secret()))?,
            pid,
            config_text,
            stderr_path,
            admin_token,
        };
        gw.wait_ready().await?;
        Ok(gw)
    }

    async fn wait_ready(&mut self) -> Result<(), BenchError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Setup(format!(
                    "the gateway exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if let Ok(r) = get_once(&self.endpoint, "/healthz").await {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(BenchError::Setup(format!(
                    "the gateway did not become healthy within 30 s: {}",
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines the gateway logged (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// `VmRSS` and `VmHWM` of the gateway process, in bytes.
    pub fn memory(&self) -> Option<Memory> {
        Memory::of_pid(self.pid)
    }

    /// User + system CPU time the gateway process has used so far.
    pub fn cpu(&self) -> Option<Duration> {
        process_cpu(self.pid)
    }

    /// Stops the child (SIGKILL; it holds nothing worth a graceful shutdown here).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

impl Memory {
    pub fn of_pid(pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb = |key: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(key))?;
            let n: u64 = line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(n * 1024)
        };
        Some(Self {
            rss: kb("VmRSS:")?,
            hwm: kb("VmHWM:")?,
        })
    }
}

/// User + system CPU time process `pid` has used so far.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command; utime and stime are the 12th and 13th.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture the gateway targets.
    Some(Duration::from_millis(ticks * 10))
}

fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// The gateway's config: auth on (one read token), metrics as always, the inbound rate limit on
/// but out of reach (its cost is measured, its refusals are not), the outbound throttle raised
/// so that the cache fill is not paced at 100 lookups/s, and a cache large enough for the fill.
///
/// With the fleet index on (its own run), the outbound throttle and the sweep share are the
/// shipped defaults, sweeps run on demand only, and every system may answer up to 64 MiB (one
/// simulated UCS Manager domain of 10,000 servers answers its class query with ~21 MB).
fn config_toml(spec: &GatewaySpec<'_>, sims: &Sims, port: u16, tokens: &Path) -> String {
    let mut out = format!(
        "[auth]\ntokens_file = \"{}\"\n\n[telemetry]\nlog_filter = \"warn\"\n\n\
         [server]\nlisten = \"127.0.0.1:{port}\"\nworkers = {}\n\n\
         [server.rate_limit]\nrequests_per_second = 1000000000.0\nburst = 1000000000\n\n\
         [cache]\nmax_entries = {}\n\n",
        tokens.display(),
        spec.workers,
        spec.max_entries,
    );
    if spec.fleet {
        out.push_str("[fleet]\nfirst_sweep_after = \"1h\"\n");
        let systems = crate::demo::systems_toml(sims.handles(), None);
        out.push_str(&systems.replace(
            "timeout = \"10s\"\n",
            "timeout = \"60s\"\nmax_response_bytes = 67108864\n",
        ));
    } else {
        out.push_str(
            "[throttle]\nrequests_per_second = 1000000\nburst = 100000\nmax_in_flight = 512\n\n\
             [fleet]\nenabled = false\n",
        );
        out.push_str(&crate::demo::systems_toml(sims.handles(), None));
    }
    out
}

/// One answer of the gateway, as the bare reference serves it back: the same body bytes and
/// the same headers (those a server sets itself, `content-length` and `date`, excepted).
#[derive(Clone)]
pub struct Captured {
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl Captured {
    pub fn of(reply: &super::client::Reply) -> Self {
        let skip = [
            "content-length",
            "date",
            "connection",
            "keep-alive",
            "transfer-encoding",
        ];
        Self {
            headers: reply
                .headers
                .iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body: reply.body.clone(),
        }
    }
}

async fn bare_handler(
    req: actix_web::HttpRequest,
    answers: web::Data<HashMap<String, Captured>>,
) -> HttpResponse {
    match answers.get(req.path()) {
        Some(c) => {
            let mut resp = HttpResponse::Ok();
            for (k, v) in &c.headers {
                resp.append_header((k.as_str(), v.as_str()));
            }
            resp.body(c.body.clone())
        }
        None => HttpResponse::NotFound().finish(),
    }
}

/// A bare actix-web app on `workers` workers: `GET /servers/{name}` → the gateway's own answer
/// for that path, from memory, with nothing in between (no middleware, no lookup).
pub struct Bare {
    pub endpoint: Endpoint,
    handle: actix_web::dev::ServerHandle,
}

impl Bare {
    /// Serves `answers` (by request path); requests carry `like`'s headers.
    pub fn start(
        workers: usize,
        answers: HashMap<String, Captured>,
        like: &Endpoint,
    ) -> Result<Self, BenchError> {
        let io = |e: std::io::Error| BenchError::Setup(format!("bare app: {e}"));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let answers = web::Data::new(answers);
        let server = HttpServer::new(move || {
            // Runs on each worker thread as it starts.
            if let Some(core) = super::wrk::server_core() {
                super::wrk::pin_current_thread(core);
            }
            App::new()
                .app_data(answers.clone())
                .route("/servers/{name}", web::get().to(bare_handler))
        })
        .workers(workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(io)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            endpoint: like.at(addr)?,
            handle,
        })
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}
