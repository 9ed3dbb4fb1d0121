//! Peak RSS with the cache full: the gateway runs in its own process, so its `/proc/<pid>/status`
//! is its own; the cache is filled with distinct records over HTTP, and VmRSS/VmHWM are read
//! when the gateway is idle after start, just before the fill, and after it.

use std::time::Duration;

use super::client::{drain, get_once, Endpoint};
use super::stack::Memory;
use super::BenchError;

pub struct RssResult {
    pub records: usize,
    pub ok: usize,
    pub failed: usize,
    pub idle: Option<Memory>,
    pub before: Option<Memory>,
    pub after: Option<Memory>,
    /// `inventory_gateway_cache_entries` from `/metrics` after the fill (moka's count is
    /// eventually consistent, so it may trail slightly).
    pub cache_entries: Option<u64>,
    pub fill_time: Duration,
}

impl RssResult {
    /// RSS growth per record filled.
    pub fn bytes_per_record(&self) -> Option<u64> {
        let (before, after) = (self.before?, self.after?);
        (self.ok > 0).then(|| after.rss.saturating_sub(before.rss) / self.ok as u64)
    }
}

pub async fn measure(
    gateway: &Endpoint,
    pid: u32,
    idle: Option<Memory>,
    paths: &[String],
    concurrency: usize,
) -> Result<RssResult, BenchError> {
    let before = Memory::of_pid(pid);
    let started = tokio::time::Instant::now();
    let (ok, failed) = drain(gateway, paths, concurrency).await?;
    let fill_time = started.elapsed();
    let after = Memory::of_pid(pid);
    Ok(RssResult {
        records: paths.len(),
        ok,
        failed,
        idle,
        before,
        after,
        cache_entries: cache_entries(gateway).await,
        fill_time,
    })
}

async fn cache_entries(gateway: &Endpoint) -> Option<u64> {
    let reply = get_once(gateway, "/metrics").await.ok()?;
    let text = String::from_utf8_lossy(&reply.body);
    text.lines()
        .find_map(|l| l.strip_prefix("inventory_gateway_cache_entries "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}
