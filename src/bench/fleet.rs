//! The fleet index at scale: every system simulated with `--fleet-servers` servers (10,000 by
//! default) answering each call `L` late, swept one system at a time (`POST /fleet/sweep`)
//! with the shipped throttle and sweep share; the gateway's RSS before and after; then reverse
//! lookups by MAC and bulk lookups of 1,000 names answered from the index, timed one request at
//! a time. Its own simulators and gateway, so the lookup sections' counters never see a sweep.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::time::Instant;

use super::stack::{Gateway, GatewaySpec, Memory, Sims, KINDS};
use super::BenchError;
use crate::domain::SystemKind;

/// Reverse lookups timed, and bulk lookups of `BULK_NAMES` names timed.
const MAC_LOOKUPS: usize = 300;
const BULK_REQUESTS: usize = 20;
pub const BULK_NAMES: usize = 1000;

pub struct Sweep {
    pub kind: SystemKind,
    pub servers: u64,
    pub calls: u64,
    pub wall: Duration,
    pub error: Option<String>,
}

pub struct FleetResult {
    pub servers_per_system: usize,
    pub latency_ms: u64,
    pub sweeps: Vec<Sweep>,
    /// OME's second sweep of an unchanged fleet (per-device inventory only when it changed).
    pub ome_again: Option<Sweep>,
    pub before: Option<Memory>,
    pub after: Option<Memory>,
    pub indexed: u64,
    /// Sorted latencies (µs) of `GET /servers?mac=`, and how many answered exactly one server.
    pub mac: Vec<u64>,
    pub mac_exact: usize,
    /// Sorted latencies (µs) of `POST /servers/lookup` with `BULK_NAMES` names, and the names
    /// found.
    pub bulk: Vec<u64>,
    pub bulk_found: usize,
    /// Names of the bulk lookups answered from the index (`cache: index`), not live.
    pub bulk_from_index: usize,
}

impl FleetResult {
    /// RSS growth of the gateway per 10,000 indexed servers.
    pub fn rss_per_10k(&self) -> Option<u64> {
        let (before, after) = (self.before?, self.after?);
        (self.indexed > 0).then(|| after.rss.saturating_sub(before.rss) * 10_000 / self.indexed)
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, BenchError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?;
        if !status.is_success() {
            return Err(BenchError::Measure(format!("HTTP {status}: {body}")));
        }
        Ok(body)
    }

    async fn sweep(&self, kind: SystemKind) -> Result<Sweep, BenchError> {
        let name = format!("{kind}-sim");
        let started = Instant::now();
        let body = self
            .send(
                self.http
                    .post(format!("{}/fleet/sweep?system={name}", self.base)),
            )
            .await?;
        let wall = started.elapsed();
        let system = body["systems"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let last = &system["last_sweep"];
        Ok(Sweep {
            kind,
            servers: last["servers"].as_u64().unwrap_or(0),
            calls: last["calls"].as_u64().unwrap_or(0),
            wall,
            error: last["error"].as_str().map(str::to_owned),
        })
    }
}

pub async fn measure(
    exe: &std::path::Path,
    servers: usize,
    latency_ms: u64,
) -> Result<FleetResult, BenchError> {
    let sims = Sims::start(servers)?;
    let dir = std::env::temp_dir().join(format!(
        "inventory-gateway-bench-fleet-{}",
        std::process::id()
    ));
    let spec = GatewaySpec {
        exe,
        dir: &dir,
        workers: super::WORKERS,
        max_entries: 1000,
        fleet: true,
        shipped_logs: false,
    };
    let outcome = match Gateway::start(&spec, &sims).await {
        Ok(mut gateway) => {
            for kind in KINDS {
                sims.upstreams.set_latency(kind, latency_ms);
            }
            let result = run(&gateway, &sims, servers, latency_ms).await;
            gateway.stop();
            result
        }
        Err(e) => Err(e),
    };
    sims.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn run(
    gateway: &Gateway,
    sims: &Sims,
    servers: usize,
    latency_ms: u64,
) -> Result<FleetResult, BenchError> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(1800))
            .build()
            .map_err(|e| BenchError::Setup(e.to_string()))?,
        base: format!("http://{}", gateway.endpoint.addr),
        token: gateway.admin_token.expose_secret().to_owned(),
    };
    let before = gateway.memory();
    let mut sweeps = Vec::new();
    for kind in KINDS {
        eprintln!("bench: fleet sweep of {kind} ({servers} servers, L = {latency_ms} ms)");
        sweeps.push(client.sweep(kind).await?);
    }
    eprintln!("bench: fleet sweep of ome again (unchanged)");
    let ome_again = Some(client.sweep(SystemKind::Ome).await?);
    let after = gateway.memory();
    let fleet = client
        .send(client.http.get(format!("{}/fleet", client.base)))
        .await?;
    let indexed = fleet["servers"].as_u64().unwrap_or(0);

    // Every MAC and name the simulators hold, sampled deterministically.
    let mut macs = Vec::new();
    let mut names = Vec::new();
    for kind in KINDS {
        if let Some(shared) = sims.upstreams.shared(kind) {
            for s in shared.fleet().iter() {
                names.push(s.name.clone());
                if let Some(nic) = s.nics.first() {
                    macs.push(nic.mac.clone());
                }
            }
        }
    }
    let mut rng = fastrand::Rng::with_seed(7);
    eprintln!("bench: {MAC_LOOKUPS} reverse lookups by MAC");
    let mut mac = Vec::new();
    let mut mac_exact = 0;
    for _ in 0..MAC_LOOKUPS.min(macs.len().max(1)) {
        let Some(m) = macs.get(rng.usize(..macs.len().max(1))) else {
            break;
        };
        let started = Instant::now();
        let body = client
            .send(client.http.get(format!("{}/servers?mac={m}", client.base)))
            .await?;
        mac.push(started.elapsed().as_micros() as u64);
        if body["servers"].as_array().map(Vec::len) == Some(1) {
            mac_exact += 1;
        }
    }
    mac.sort();
    eprintln!("bench: {BULK_REQUESTS} bulk lookups of {BULK_NAMES} names");
    let mut bulk = Vec::new();
    let mut bulk_found = 0;
    let mut bulk_from_index = 0;
    for _ in 0..BULK_REQUESTS {
        let batch: Vec<&String> = (0..BULK_NAMES)
            .filter_map(|_| names.get(rng.usize(..names.len().max(1))))
            .collect();
        let started = Instant::now();
        let body = client
            .send(
                client
                    .http
                    .post(format!("{}/servers/lookup", client.base))
                    .json(&serde_json::json!({ "names": batch })),
            )
            .await?;
        bulk.push(started.elapsed().as_micros() as u64);
        bulk_found += body["found"].as_u64().unwrap_or(0) as usize;
        bulk_from_index += body["results"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|r| r["cache"] == "index").count());
    }
    bulk.sort();
    Ok(FleetResult {
        servers_per_system: servers,
        latency_ms,
        sweeps,
        ome_again,
        before,
        after,
        indexed,
        mac,
        mac_exact,
        bulk,
        bulk_found,
        bulk_from_index,
    })
}
