//! What the gateway remembers: found records (kept up to `max_stale` so they can be served
//! stale when their system fails; fresh only for `ttl`), and not-found answers (`negative_ttl`).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use moka::Expiry;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::domain::{ServerRecord, Vendor};

/// Folded (lower-case) name and the vendor hint the caller gave.
pub type Key = (String, Option<Vendor>);

// Entries live behind an `Arc`, so the enum's size costs nothing per entry beyond the record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Cached {
    Found { record: ServerRecord, at: Instant },
    NotFound { searched: Vec<String>, at: Instant },
}

impl Cached {
    pub fn age(&self) -> Duration {
        match self {
            Self::Found { at, .. } | Self::NotFound { at, .. } => at.elapsed(),
        }
    }
}

struct Lifetimes {
    found: Duration,
    not_found: Duration,
}

impl Expiry<Key, Arc<Cached>> for Lifetimes {
    fn expire_after_create(
        &self,
        _: &Key,
        value: &Arc<Cached>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value.as_ref() {
            Cached::Found { .. } => self.found,
            Cached::NotFound { .. } => self.not_found,
        })
    }

    fn expire_after_update(
        &self,
        key: &Key,
        value: &Arc<Cached>,
        now: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, now)
    }
}

pub type Evictions = Arc<dyn Fn() + Send + Sync>;

pub fn build(config: &CacheConfig, on_eviction: Evictions) -> Cache<Key, Arc<Cached>> {
    Cache::builder()
        .max_capacity(config.max_entries)
        .expire_after(Lifetimes {
            found: config.max_stale,
            not_found: config.negative_ttl,
        })
        .eviction_listener(move |_, _, cause| {
            // Expiry is the normal life of an entry; only capacity pressure is worth counting.
            if cause == moka::notification::RemovalCause::Size {
                on_eviction();
            }
        })
        .build()
}

/// Which system owns a name, so a later cold lookup can skip the fan-out.
pub fn build_owners(config: &CacheConfig) -> Cache<String, usize> {
    Cache::builder()
        .max_capacity(config.max_entries)
        .time_to_live(config.owner_ttl)
        .build()
}

/// Which systems said they do not hold a name: a repeat lookup skips them for `negative_ttl`.
pub fn build_absent(config: &CacheConfig) -> Cache<(String, usize), ()> {
    Cache::builder()
        .max_capacity(config.max_entries)
        .time_to_live(config.negative_ttl)
        .build()
}

/// Names seen held by two or more systems, and by which: they stay ambiguous while one of those
/// systems cannot be asked.
pub fn build_holders(config: &CacheConfig) -> Cache<String, Arc<Vec<super::Candidate>>> {
    Cache::builder()
        .max_capacity(config.max_entries)
        .time_to_live(config.owner_ttl)
        .build()
}
