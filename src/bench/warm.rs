//! Warm path: `GET /servers/{name}` answered from the gateway's cache, next to a bare actix-web
//! JSON handler, with the same client, connections and concurrency, in interleaved phases
//! (bare, gateway, bare, gateway) so that a change in background load hits both alike.

use std::time::Duration;

use super::client::{closed_loop, drain, Endpoint, LoadResult, LoadSpec};
use super::stack::process_cpu;
use super::BenchError;

pub struct WarmResult {
    pub gateway: LoadResult,
    pub bare: LoadResult,
    /// CPU the gateway process used during its phases (warm-ups included).
    pub gateway_cpu: Option<Duration>,
    /// Wall time of the gateway phases (warm-ups included).
    pub gateway_wall: Duration,
    pub names: usize,
}

impl WarmResult {
    pub fn ratio(&self) -> f64 {
        let bare = self.bare.per_second();
        if bare > 0.0 {
            self.gateway.per_second() / bare
        } else {
            0.0
        }
    }
}

/// `paths` must be lookups the gateway can answer (they are looked up once first, so that
/// every measured request is a cache hit).
pub async fn measure(
    gateway: &Endpoint,
    gateway_pid: u32,
    bare: &Endpoint,
    paths: &[String],
    spec: LoadSpec,
) -> Result<WarmResult, BenchError> {
    let (ok, failed) = drain(gateway, paths, 8).await?;
    if failed > 0 {
        return Err(BenchError::Measure(format!(
            "warm path: {failed} of {} cache-filling lookups failed",
            ok + failed
        )));
    }
    let half = LoadSpec {
        duration: spec.duration / 2,
        ..spec
    };
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
    Ok(WarmResult {
        gateway: gw_total.finish(),
        bare: bare_total.finish(),
        gateway_cpu: cpu,
        gateway_wall: wall,
        names: paths.len(),
    })
}
