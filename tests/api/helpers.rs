use std::collections::HashMap;
use std::sync::Once;

use actix_web::dev::ServerHandle;
use inventory_gateway::demo;
use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::{fleet, SimHandle, SimServer};
use inventory_gateway::startup::Application;
use serde_json::Value;

pub const KINDS: [SystemKind; 5] = demo::KINDS;
/// The stack's client sends this (scope `read`) unless a test says otherwise.
pub const READ_TOKEN: &str = "test-read-token-0123456789abcdef";
/// Scope `admin`, for cache purges.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if std::env::var_os("TEST_LOG").is_some() {
            // Kept for the whole test binary: dropping it would stop the log writer.
            std::mem::forget(inventory_gateway::telemetry::init(
                inventory_gateway::telemetry::LogFormat::Pretty,
                "debug",
            ));
        }
    });
}

pub struct TestStack {
    pub gateway: String,
    pub client: reqwest::Client,
    pub sims: HashMap<SystemKind, SimHandle>,
    /// The gateway's readiness, to begin a shutdown as SIGTERM would.
    pub readiness: std::sync::Arc<inventory_gateway::http::routes::Readiness>,
    handle: ServerHandle,
    dir: std::path::PathBuf,
}

pub fn generated_fleets(servers: usize) -> HashMap<SystemKind, Vec<SimServer>> {
    KINDS
        .iter()
        .map(|&k| (k, fleet::generate(k, 42, servers)))
        .collect()
}

pub struct StackOptions {
    pub fleets: HashMap<SystemKind, Vec<SimServer>>,
    pub tls: bool,
    /// Extra TOML appended to every `[[systems]]` entry (e.g. `timeout = "300ms"`).
    pub system_extra: String,
    /// Extra keys of the `[server]` table (e.g. `lookup_timeout = "2s"`).
    pub server_extra: String,
    /// Extra top-level TOML tables (e.g. `[cache]\nttl = "100ms"`).
    pub extra: String,
    /// Configure `READ_TOKEN` and `ADMIN_TOKEN`; false = auth explicitly disabled.
    pub auth: bool,
    /// Extra keys of the `[auth]` table (e.g. `open_metrics = false`).
    pub auth_extra: String,
    /// The keys of the `[fleet]` table. Sweeps are off by default: they would add calls to
    /// the simulators' counters that the lookup tests count.
    pub fleet: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            fleets: generated_fleets(20),
            tls: false,
            system_extra: String::new(),
            server_extra: String::new(),
            extra: String::new(),
            auth: true,
            auth_extra: String::new(),
            fleet: "enabled = false\n".into(),
        }
    }
}

pub async fn spawn_stack(opts: StackOptions) -> TestStack {
    init();
    // Simulated Redfish BMCs only when a test gives them a fleet.
    let redfish = opts
        .fleets
        .get(&SystemKind::Redfish)
        .is_some_and(|f| !f.is_empty())
        .then_some(SystemKind::Redfish);
    let ports: Vec<(SystemKind, u16)> = KINDS
        .iter()
        .copied()
        .chain(redfish)
        .map(|k| (k, 0))
        .collect();
    let sims = demo::start_sims(&opts.fleets, &ports, opts.tls).expect("simulators start");
    let dir = std::env::temp_dir().join(format!("igw-test-{}", uuid::Uuid::new_v4()));
    let tokens = if opts.auth {
        vec![
            demo::TokenSpec::new("tests-read", READ_TOKEN.to_owned().into(), &["read"]),
            demo::TokenSpec::new("tests-admin", ADMIN_TOKEN.to_owned().into(), &["admin"]),
        ]
    } else {
        Vec::new()
    };
    let (_, path) = demo::write_gateway_config(&dir, &sims, 0, &tokens).expect("config written");
    let mut toml = std::fs::read_to_string(&path).expect("config readable");
    if !opts.system_extra.is_empty() {
        toml = toml.replace(
            "timeout = \"10s\"\n",
            &format!("{}\n", opts.system_extra.trim_end()),
        );
    }
    toml = toml.replacen(
        "[server]\n",
        &format!("[server]\n{}\n", opts.server_extra),
        1,
    );
    toml = toml.replacen("[auth]\n", &format!("[auth]\n{}\n", opts.auth_extra), 1);
    toml.push_str(&format!("\n[fleet]\n{}\n", opts.fleet));
    toml.push_str(&opts.extra);
    let config = inventory_gateway::config::Config::from_toml_str(&toml).expect("valid config");
    let app = Application::build(&config).expect("gateway builds");
    let gateway = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let readiness = app.readiness();
    tokio::spawn(app.run_until_stopped());
    TestStack {
        gateway,
        client: bearer_client(READ_TOKEN),
        sims: sims.into_iter().map(|s| (s.kind, s)).collect(),
        readiness,
        handle,
        dir,
    }
}

impl TestStack {
    pub fn sim(&self, kind: SystemKind) -> &SimHandle {
        &self.sims[&kind]
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path_and_query}", self.gateway))
            .send()
            .await
            .expect("gateway answers")
    }

    /// The simulator's fleet, read over its HTTP control plane like any tool would.
    pub async fn inventory(&self, kind: SystemKind) -> Vec<Value> {
        let v: Value = self
            .client
            .get(format!("{}_sim/inventory", self.sim(kind).base_url))
            .send()
            .await
            .expect("inventory answers")
            .json()
            .await
            .expect("inventory is JSON");
        v["servers"].as_array().cloned().unwrap_or_default()
    }

    /// The name of the `i`-th server of a simulator's fleet.
    pub async fn server_name(&self, kind: SystemKind, i: usize) -> String {
        self.inventory(kind).await[i]["name"]
            .as_str()
            .expect("name")
            .to_owned()
    }

    pub async fn counters(&self, kind: SystemKind) -> Value {
        self.client
            .get(format!("{}_sim/counters", self.sim(kind).base_url))
            .send()
            .await
            .expect("counters answer")
            .json()
            .await
            .expect("counters are JSON")
    }

    pub async fn total_calls(&self, kind: SystemKind) -> u64 {
        self.counters(kind).await["total"].as_u64().unwrap_or(0)
    }

    pub async fn sim_post(&self, kind: SystemKind, path: &str) {
        let r = self
            .client
            .post(format!("{}_sim/{path}", self.sim(kind).base_url))
            .send()
            .await
            .expect("control plane answers");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    pub async fn set_faults(&self, kind: SystemKind, faults: Value) {
        let r = self
            .client
            .put(format!("{}_sim/faults", self.sim(kind).base_url))
            .json(&faults)
            .send()
            .await
            .expect("control plane answers");
        assert!(r.status().is_success(), "faults: {}", r.status());
    }

    pub async fn reset_all(&self) {
        for k in KINDS {
            self.sim_post(k, "reset").await;
        }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        for s in self.sims.values() {
            s.stop().await;
        }
    }
}

/// Removes the config directory even when a test panics before `stop`.
impl Drop for TestStack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client that sends `Authorization: Bearer <token>` on every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("token is a valid header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client builds")
}

/// The counter key of each simulator's login call; None for Intersight, which has no session
/// (every request carries its own signature).
pub fn login_key(kind: SystemKind) -> Option<&'static str> {
    match kind {
        SystemKind::Oneview => Some("POST /rest/login-sessions"),
        SystemKind::Ucsm | SystemKind::UcsCentral => Some("aaaLogin"),
        SystemKind::Ome => Some("POST /api/SessionService/Sessions"),
        SystemKind::Intersight => None,
        SystemKind::Redfish => Some("POST /redfish/v1/SessionService/Sessions"),
    }
}

pub fn vendor_param(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Oneview => "hpe",
        SystemKind::Ucsm | SystemKind::UcsCentral | SystemKind::Intersight => "cisco",
        SystemKind::Ome => "dell",
        SystemKind::Redfish => "other",
    }
}
