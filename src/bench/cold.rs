//! Cold path: with every call to one system delayed by L, N sequential lookups of names the
//! gateway has never seen (vendor hint given, so only that system is asked), each next to its
//! critical path (dependent rounds × L, see `critical_path`).

use std::time::Duration;

use super::client::Endpoint;
use super::critical_path::{mode, probed_get};
use super::stack::{vendor_param, Upstreams};
use super::BenchError;
use crate::domain::SystemKind;

pub struct ColdResult {
    pub kind: SystemKind,
    pub lookups: usize,
    pub latency: Duration,
    pub median: Duration,
    pub max: Duration,
    /// Calls the system counted per lookup (mean).
    pub calls_per_lookup: f64,
    /// Dependent rounds per lookup (most frequent), and the range seen.
    pub rounds: u32,
    pub rounds_range: (u32, u32),
    /// Lookups whose rounds differed from the most frequent (e.g. an OME profile bound to a
    /// service tag needs one more).
    pub unusual: usize,
    /// Median over lookups of each lookup's rounds × L.
    pub critical: Duration,
    /// Median over lookups of measured / its own critical path.
    pub ratio: f64,
}

pub fn ratio(measured: Duration, reference: Duration) -> f64 {
    if reference.is_zero() {
        0.0
    } else {
        measured.as_secs_f64() / reference.as_secs_f64()
    }
}

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

pub async fn measure(
    gateway: &Endpoint,
    upstreams: &Upstreams,
    kind: SystemKind,
    names: &[String],
    latency_ms: u64,
) -> Result<ColdResult, BenchError> {
    let mut conn = gateway.connect().await?;
    upstreams.set_latency(kind, latency_ms);
    let watched = upstreams.watched(|k| if k == kind { latency_ms } else { 0 });
    let latency = Duration::from_millis(latency_ms);
    let mut elapsed = Vec::with_capacity(names.len());
    let mut rounds = Vec::with_capacity(names.len());
    let mut critical = Vec::with_capacity(names.len());
    let mut ratios = Vec::with_capacity(names.len());
    let mut calls = 0u64;
    let mut outcome = Ok(());
    for name in names {
        let path = format!("/servers/{name}?vendor={}", vendor_param(kind));
        let probe = match probed_get(&mut conn, &path, &watched).await {
            Ok(p) => p,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        if probe.reply.status != 200 || probe.reply.x_cache.as_deref() != Some("miss") {
            outcome = Err(BenchError::Measure(format!(
                "cold {kind}: {path} answered {} (X-Cache {:?}), expected a 200 miss",
                probe.reply.status, probe.reply.x_cache
            )));
            break;
        }
        let sys = probe.of(kind).copied();
        let r = sys.map_or(0, |s| s.rounds);
        calls += sys.map_or(0, |s| s.calls);
        rounds.push(r);
        critical.push(latency * r);
        ratios.push(ratio(probe.elapsed, latency * r));
        elapsed.push(probe.elapsed);
    }
    upstreams.clear_faults();
    outcome?;
    let (rounds_mode, min, max) = mode(&rounds);
    ratios.sort_by(f64::total_cmp);
    Ok(ColdResult {
        kind,
        lookups: elapsed.len(),
        latency,
        max: elapsed.iter().copied().max().unwrap_or_default(),
        median: median(&mut elapsed),
        calls_per_lookup: calls as f64 / names.len().max(1) as f64,
        rounds: rounds_mode,
        rounds_range: (min, max),
        unusual: rounds.iter().filter(|&&r| r != rounds_mode).count(),
        critical: median(&mut critical),
        ratio: ratios
            .get(ratios.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0),
    })
}

/// Median time of a direct GET to a simulator delayed `latency_ms`: what one round costs at the
/// simulator's end (its timer rounds sleeps up to the next millisecond), without the gateway.
pub async fn direct_call(
    upstreams: &Upstreams,
    kind: SystemKind,
    path: &str,
    latency_ms: u64,
    calls: usize,
) -> Result<Duration, BenchError> {
    let addr = upstreams
        .addr(kind)
        .ok_or_else(|| BenchError::Setup(format!("no {kind} simulator")))?;
    let mut conn = Endpoint::new(addr, None)?.connect().await?;
    upstreams.set_latency(kind, latency_ms);
    let mut times = Vec::with_capacity(calls);
    let mut outcome = Ok(());
    for _ in 0..calls {
        let started = tokio::time::Instant::now();
        if let Err(e) = conn.get(path).await {
            outcome = Err(e);
            break;
        }
        times.push(started.elapsed());
    }
    upstreams.clear_faults();
    outcome?;
    Ok(median(&mut times))
}
