//! What the gateway remembers: found records (kept up to `max_stale` so they can be served
//! stale when their system fails; fresh only for `ttl`), and not-found answers (`negative_ttl`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use moka::Expiry;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::domain::{ServerRecord, Vendor};

/// Folded (lower-case) name and the vendor hint the caller gave.
pub type Key = (String, Option<Vendor>);

#[derive(Debug, Clone)]
pub enum Cached {
    Found { record: Arc<Stored>, at: Instant },
    NotFound { searched: Vec<String>, at: Instant },
}

/// A record as the gateway keeps and answers it: its JSON, rendered once when it was fetched.
/// A cache hit then costs two reference counts, not a deep copy and a serialisation, and one
/// allocation holds what a `ServerRecord` spreads over a dozen. The record is parsed back only
/// on the rare paths that change it (serving it stale).
#[derive(Debug)]
pub struct Stored {
    json: Bytes,
    /// The systems not heard from, comma-separated as `X-Unverified` says them.
    unverified: Option<Box<str>>,
    /// Unverified, or its NICs unknown: such a record is fresh only briefly.
    provisional: bool,
}

impl Stored {
    pub fn render(record: &ServerRecord) -> Result<Self, serde_json::Error> {
        Ok(Self {
            // Shrunk to its length: the serialiser's buffer grows by doubling, and a `Bytes`
            // made from it would keep the whole buffer for the record's life.
            json: Bytes::from(serde_json::to_vec(record)?.into_boxed_slice()),
            unverified: (!record.unverified.is_empty())
                .then(|| record.unverified.join(",").into_boxed_str()),
            provisional: !record.unverified.is_empty() || record.nics_unavailable.is_some(),
        })
    }

    /// The record's JSON, as `GET /servers/{name}` answers it.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// `X-Unverified`, when some system that might hold the name was not heard from.
    pub fn unverified(&self) -> Option<&str> {
        self.unverified.as_deref()
    }

    pub fn provisional(&self) -> bool {
        self.provisional
    }

    /// The record itself, parsed back from its JSON.
    pub fn record(&self) -> Result<ServerRecord, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }
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
///
/// One entry per name, listing the systems and when each said so, rather than one per (name,
/// system): a name looked up without a hint is absent from every system but its owner, and
/// each cache entry costs a few hundred bytes besides its key.
pub struct Absent {
    cache: Cache<String, Arc<[(usize, Instant)]>>,
    ttl: Duration,
}

impl Absent {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            // The entry lives as long as its newest "not here"; each one is checked by its own
            // age.
            cache: Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.negative_ttl)
                .build(),
            ttl: config.negative_ttl,
        }
    }

    /// Whether system `system` said lately that it does not hold `name`.
    pub async fn contains(&self, name: &str, system: usize) -> bool {
        self.cache.get(name).await.is_some_and(|said| {
            said.iter()
                .any(|(i, at)| *i == system && at.elapsed() < self.ttl)
        })
    }

    /// Remembers that `system` does not hold `name` (or, `held`, forgets it).
    pub async fn set(&self, name: &str, system: usize, held: bool) {
        let ttl = self.ttl;
        self.cache
            .entry_by_ref(name)
            .and_compute_with(|entry| {
                let mut said: Vec<(usize, Instant)> =
                    entry.map(|e| e.into_value().to_vec()).unwrap_or_default();
                said.retain(|(i, at)| *i != system && at.elapsed() < ttl);
                if !held {
                    said.push((system, Instant::now()));
                }
                std::future::ready(if said.is_empty() {
                    moka::ops::compute::Op::Remove
                } else {
                    moka::ops::compute::Op::Put(said.into())
                })
            })
            .await;
    }

    /// Forgets every system's "not here" for `name`.
    pub async fn forget(&self, name: &str) {
        // Through the key's lock like `set`, so an answer being remembered meanwhile cannot
        // write back what it read before the purge.
        self.cache
            .entry_by_ref(name)
            .and_compute_with(|_| std::future::ready(moka::ops::compute::Op::Remove))
            .await;
    }
}

/// Names seen held by two or more systems, and by which: they stay ambiguous while one of those
/// systems cannot be asked.
pub fn build_holders(config: &CacheConfig) -> Cache<String, Arc<Vec<super::Candidate>>> {
    Cache::builder()
        .max_capacity(config.max_entries)
        .time_to_live(config.owner_ttl)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_system_is_remembered_absent_for_its_own_ttl() {
        let config = CacheConfig {
            negative_ttl: Duration::from_secs(30),
            ..CacheConfig::default()
        };
        let absent = Absent::new(&config);
        absent.set("web-01", 0, false).await;
        tokio::time::advance(Duration::from_secs(20)).await;
        absent.set("web-01", 2, false).await;
        assert!(absent.contains("web-01", 0).await);
        assert!(absent.contains("web-01", 2).await);
        assert!(!absent.contains("web-01", 1).await);
        assert!(!absent.contains("web-02", 0).await);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(!absent.contains("web-01", 0).await, "35 s after it said so");
        assert!(absent.contains("web-01", 2).await, "15 s after it said so");
        // A system that now holds the name is forgotten alone.
        absent.set("web-01", 3, false).await;
        absent.set("web-01", 2, true).await;
        assert!(!absent.contains("web-01", 2).await);
        assert!(absent.contains("web-01", 3).await);
        absent.forget("web-01").await;
        assert!(!absent.contains("web-01", 3).await);
    }
}
