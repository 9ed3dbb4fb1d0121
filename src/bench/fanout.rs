//! Fan-out: a lookup without a vendor hint, of a name the gateway has never seen, asks every
//! system at once. With the systems at different latencies it should cost about the slowest
//! system's critical path, not the sum of all of them.

use std::time::Duration;

use super::client::Endpoint;
use super::cold::{median, ratio};
use super::critical_path::probed_get;
use super::stack::{Upstreams, KINDS};
use super::BenchError;
use crate::domain::SystemKind;

/// Injected latency per system during the fan-out.
pub fn latency_ms(kind: SystemKind) -> u64 {
    match kind {
        SystemKind::Oneview => 10,
        SystemKind::Ucsm
        | SystemKind::UcsCentral
        | SystemKind::Intersight
        | SystemKind::Redfish => 30,
        SystemKind::Ome => 60,
    }
}

/// The system that owns the fan-out's names: the fastest, so that the lookup has to wait for
/// the slower systems' "not found" to know the name is unambiguous.
pub const OWNER: SystemKind = SystemKind::Oneview;

pub struct FanoutResult {
    pub lookups: usize,
    pub measured: Duration,
    pub slowest: Duration,
    pub sum: Duration,
    /// Median over lookups of measured / slowest.
    pub ratio: f64,
    /// (system, calls per lookup, rounds per lookup) of the median lookup.
    pub systems: Vec<(SystemKind, u64, u32)>,
}

/// `names` must belong to [`OWNER`] and never have been looked up.
pub async fn measure(
    gateway: &Endpoint,
    upstreams: &Upstreams,
    names: &[String],
) -> Result<FanoutResult, BenchError> {
    let mut conn = gateway.connect().await?;
    for kind in KINDS {
        upstreams.set_latency(kind, latency_ms(kind));
    }
    let watched = upstreams.watched(latency_ms);
    let mut probes = Vec::with_capacity(names.len());
    let mut outcome = Ok(());
    for name in names {
        let path = format!("/servers/{name}");
        match probed_get(&mut conn, &path, &watched).await {
            Ok(p) if p.reply.status == 200 && p.systems.len() == KINDS.len() => probes.push(p),
            Ok(p) => {
                outcome = Err(BenchError::Measure(format!(
                    "fan-out: {path} answered {} after asking {} system(s); expected 200 from all {}",
                    p.reply.status,
                    p.systems.len(),
                    KINDS.len()
                )));
                break;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    upstreams.clear_faults();
    outcome?;
    let mut measured: Vec<Duration> = probes.iter().map(|p| p.elapsed).collect();
    let mut slowest: Vec<Duration> = probes.iter().map(|p| p.slowest()).collect();
    let mut sum: Vec<Duration> = probes.iter().map(|p| p.sum()).collect();
    let mut ratios: Vec<f64> = probes
        .iter()
        .map(|p| ratio(p.elapsed, p.slowest()))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median_ratio = ratios
        .get(ratios.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0);
    let distance =
        |p: &super::critical_path::Probe| (ratio(p.elapsed, p.slowest()) - median_ratio).abs();
    let typical = probes
        .iter()
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .map(|p| {
            p.systems
                .iter()
                .map(|s| (s.kind, s.calls, s.rounds))
                .collect()
        })
        .unwrap_or_default();
    Ok(FanoutResult {
        lookups: probes.len(),
        measured: median(&mut measured),
        slowest: median(&mut slowest),
        sum: median(&mut sum),
        ratio: median_ratio,
        systems: typical,
    })
}
