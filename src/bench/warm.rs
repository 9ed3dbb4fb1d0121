//! Warm path: `GET /servers/{name}` answered from the gateway's cache, next to a bare actix-web
//! handler serving **the gateway's own answers** (body bytes and headers captured from it at the
//! start of the run) from memory, with the same connections and concurrency, in interleaved
//! phases (bare, gateway, bare, gateway) so that a change in background load hits both alike.
//! The harness's client measures both; when `wrk` is installed it measures them again from its
//! own core (see [`super::wrk`]), and that is the figure to trust: the harness's client shares
//! the machine with what it measures.

use std::collections::HashMap;
use std::time::Duration;

use super::client::{closed_loop, drain, get_once, Endpoint, LoadResult, LoadSpec};
use super::stack::{process_cpu, Bare, Captured};
use super::wrk::{self, WrkResult};
use super::BenchError;

pub struct WarmResult {
    pub gateway: LoadResult,
    pub bare: LoadResult,
    /// CPU the gateway process used during its phases (warm-ups included).
    pub gateway_cpu: Option<Duration>,
    /// Wall time of the gateway phases (warm-ups included).
    pub gateway_wall: Duration,
    pub names: usize,
    /// The same comparison with `wrk` as the client, when it is installed (gateway, bare).
    pub external: Option<Result<(WrkResult, WrkResult), String>>,
    /// Latency at `WIDE` connections (after the main comparison, same phases).
    pub wide: Result<Latencies, String>,
}

/// Connections of the second latency measurement.
pub const WIDE: usize = 256;

/// Median and 99th percentile latency of both targets at one concurrency, and who measured.
pub struct Latencies {
    pub gateway: (Option<Duration>, Option<Duration>),
    pub bare: (Option<Duration>, Option<Duration>),
    pub client: &'static str,
}

impl Latencies {
    pub fn of_wrk((gw, bare): &(WrkResult, WrkResult)) -> Self {
        Self {
            gateway: (gw.p50, gw.p99),
            bare: (bare.p50, bare.p99),
            client: "wrk",
        }
    }

    pub fn of_client(gw: &LoadResult, bare: &LoadResult) -> Self {
        let of = |r: &LoadResult| (Some(r.percentile(50.0)), Some(r.percentile(99.0)));
        Self {
            gateway: of(gw),
            bare: of(bare),
            client: "harness client",
        }
    }
}

impl WarmResult {
    /// Gateway req/s over bare req/s: `wrk`'s when it ran, else the harness client's.
    pub fn ratio(&self) -> f64 {
        let (gw, bare) = match &self.external {
            Some(Ok((gw, bare))) => (gw.per_second, bare.per_second),
            _ => (self.gateway.per_second(), self.bare.per_second()),
        };
        if bare > 0.0 {
            gw / bare
        } else {
            0.0
        }
    }

    /// The harness client's own ratio.
    pub fn internal_ratio(&self) -> f64 {
        let bare = self.bare.per_second();
        if bare > 0.0 {
            self.gateway.per_second() / bare
        } else {
            0.0
        }
    }
}

/// `paths` must be lookups the gateway can answer (they are looked up once first, so that
/// every measured request is a cache hit). The bare reference runs on `workers` workers.
pub async fn measure(
    gateway: &Endpoint,
    gateway_pid: u32,
    paths: &[String],
    spec: LoadSpec,
    workers: usize,
) -> Result<WarmResult, BenchError> {
    let (ok, failed) = drain(gateway, paths, 8).await?;
    if failed > 0 {
        return Err(BenchError::Measure(format!(
            "warm path: {failed} of {} cache-filling lookups failed",
            ok + failed
        )));
    }
    // What the bare reference serves: the gateway's cached answers, byte for byte.
    let mut answers = HashMap::with_capacity(paths.len());
    for path in paths {
        let reply = get_once(gateway, path).await?;
        if reply.status != 200 {
            return Err(BenchError::Measure(format!(
                "warm path: {path} answered {} when captured",
                reply.status
            )));
        }
        answers.insert(path.clone(), Captured::of(&reply));
    }
    let bare_app = Bare::start(workers, answers, gateway)?;
    let result = compare(gateway, gateway_pid, &bare_app.endpoint, paths, spec).await;
    bare_app.stop().await;
    result
}

fn half_of(spec: LoadSpec) -> LoadSpec {
    LoadSpec {
        duration: spec.duration / 2,
        ..spec
    }
}

async fn compare(
    gateway: &Endpoint,
    gateway_pid: u32,
    bare: &Endpoint,
    paths: &[String],
    spec: LoadSpec,
) -> Result<WarmResult, BenchError> {
    let half = half_of(spec);
    let mut gw_total = LoadResult::default();
    let mut bare_total = LoadResult::default();
    let mut cpu = Some(Duration::ZERO);
    let mut wall = Duration::ZERO;
    for _ in 0..2 {
        bare_total.merge(closed_loop(bare, paths, half).await?);
        let cpu_before = process_cpu(gateway_pid);
        let started = tokio::time::Instant::now();
        gw_total.merge(closed_loop(gateway, paths, half).await?);
        wall += started.elapsed();
        cpu = match (cpu, cpu_before, process_cpu(gateway_pid)) {
            (Some(sum), Some(a), Some(b)) => Some(sum + b.saturating_sub(a)),
            _ => None,
        };
    }
    let wide_spec = LoadSpec {
        concurrency: WIDE,
        ..spec
    };
    let (external, wide) = match wrk::available() {
        Some(exe) => {
            let at = external(&exe, gateway, bare, paths, spec).await;
            let wide = external(&exe, gateway, bare, paths, wide_spec).await;
            (
                Some(at.map_err(|e| e.to_string())),
                wide.map(|r| Latencies::of_wrk(&r))
                    .map_err(|e| e.to_string()),
            )
        }
        None => {
            let wide = async {
                let bare = closed_loop(bare, paths, half_of(wide_spec)).await?;
                let gw = closed_loop(gateway, paths, half_of(wide_spec)).await?;
                Ok::<_, BenchError>(Latencies::of_client(&gw.finish(), &bare.finish()))
            };
            (None, wide.await.map_err(|e| e.to_string()))
        }
    };
    Ok(WarmResult {
        gateway: gw_total.finish(),
        bare: bare_total.finish(),
        gateway_cpu: cpu,
        gateway_wall: wall,
        names: paths.len(),
        external,
        wide,
    })
}

/// `wrk` against both, interleaved (bare, gateway, bare, gateway), half the duration each.
async fn external(
    exe: &std::path::Path,
    gateway: &Endpoint,
    bare: &Endpoint,
    paths: &[String],
    spec: LoadSpec,
) -> Result<(WrkResult, WrkResult), BenchError> {
    let dir = std::env::temp_dir().join(format!("inventory-gateway-wrk-{}", std::process::id()));
    let half = (spec.duration / 2).max(Duration::from_secs(1));
    let mut runs = Vec::new();
    for _ in 0..2 {
        for target in [bare, gateway] {
            runs.push(wrk::run(exe, target, paths, spec.concurrency, half, &dir).await?);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let sum = |pick: &[usize]| {
        let parts: Vec<&WrkResult> = pick.iter().map(|&i| &runs[i]).collect();
        WrkResult {
            per_second: parts.iter().map(|r| r.per_second).sum::<f64>() / parts.len() as f64,
            requests: parts.iter().map(|r| r.requests).sum(),
            // Of the second run: percentiles do not add up.
            p50: parts.last().and_then(|r| r.p50),
            p99: parts.last().and_then(|r| r.p99),
            non_2xx: parts.iter().map(|r| r.non_2xx).sum(),
            socket_errors: parts.iter().map(|r| r.socket_errors).sum(),
        }
    };
    Ok((sum(&[1, 3]), sum(&[0, 2])))
}
