//! One system's swept fleet, indexed for the questions callers ask: by name (and the other
//! names the system answers a server under), MAC, serial number, BMC address and the
//! system's own id. Built once per sweep and never changed afterwards: a new sweep builds a
//! new one and swaps it in whole.

use std::collections::HashMap;
use tokio::time::Instant;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::{BmcAddress, MacAddress, ServerRecord, SystemKind};
use crate::vendors::FleetListing;

/// The order of every listing: folded name, then system, then the system's id.
pub type SortKey = (String, String, String);

pub struct Entry {
    pub record: ServerRecord,
    /// Other names the system answers this server under (exact spelling).
    pub aliases: Vec<String>,
    key: SortKey,
}

impl Entry {
    pub fn key(&self) -> &SortKey {
        &self.key
    }

    /// Whether the system answers this server under `name`: in any letter case, or only in
    /// this exact spelling when the system's names are case-sensitive.
    pub fn answers_to(&self, name: &str, case_sensitive: bool) -> bool {
        self.answers_to_primary(name, case_sensitive)
            || self.alias_for(name, case_sensitive).is_some()
    }

    /// Whether `name` is the record's own name.
    pub fn answers_to_primary(&self, name: &str, case_sensitive: bool) -> bool {
        same_name(&self.record.name, name, case_sensitive)
    }

    /// The alias `name` is, as the system spells it.
    pub fn alias_for(&self, name: &str, case_sensitive: bool) -> Option<&str> {
        self.aliases
            .iter()
            .find(|a| same_name(a, name, case_sensitive))
            .map(String::as_str)
    }
}

fn same_name(a: &str, b: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

pub struct SystemIndex {
    pub system: String,
    pub kind: SystemKind,
    /// Sorted by [`SortKey`].
    entries: Vec<Entry>,
    by_name: HashMap<String, Vec<u32>>,
    by_mac: HashMap<MacAddress, Vec<u32>>,
    by_serial: HashMap<String, Vec<u32>>,
    by_bmc: HashMap<BmcAddress, Vec<u32>>,
    by_id: HashMap<String, u32>,
    /// Folded names the system answers with something other than one of these servers
    /// ([`FleetListing::withheld`]): never answered from the index.
    withheld: std::collections::HashSet<String>,
    /// [`FleetListing::withholds_all`]: no name is answered from this index.
    withholds_all: bool,
    /// When the sweep that built this index started: nothing in it is older news than that.
    pub swept_at: DateTime<Utc>,
    pub swept: Instant,
    /// SHA-256 of the records' content (fetch times left out): equal for two sweeps that
    /// found the same fleet, so listings keep their ETag across sweeps that changed nothing.
    pub digest: [u8; 32],
}

/// Entry `i` under `key`, once (entries are indexed in order, so a repeat is the last one).
fn push<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<u32>>, key: K, i: u32) {
    let v = map.entry(key).or_default();
    if v.last() != Some(&i) {
        v.push(i);
    }
}

impl SystemIndex {
    pub fn build(
        system: &str,
        kind: SystemKind,
        listed: FleetListing,
        swept_at: DateTime<Utc>,
        swept: Instant,
    ) -> Self {
        let withholds_all = listed.withholds_all;
        let withheld = listed
            .withheld
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let mut entries: Vec<Entry> = listed
            .servers
            .into_iter()
            .map(|l| Entry {
                key: (
                    l.record.name.to_ascii_lowercase(),
                    system.to_owned(),
                    l.record.system_id.clone(),
                ),
                record: l.record,
                aliases: l.aliases,
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        // A system listing one id twice (pages that shifted during the sweep) keeps one.
        entries.dedup_by(|a, b| a.key == b.key);
        let mut index = Self {
            system: system.to_owned(),
            kind,
            by_name: HashMap::with_capacity(entries.len()),
            by_mac: HashMap::with_capacity(entries.len() * 2),
            by_serial: HashMap::with_capacity(entries.len()),
            by_bmc: HashMap::with_capacity(entries.len()),
            by_id: HashMap::with_capacity(entries.len()),
            withheld,
            withholds_all,
            swept_at,
            swept,
            digest: [0; 32],
            entries,
        };
        let mut hash = Sha256::new();
        for (i, e) in index.entries.iter().enumerate() {
            let i = i as u32;
            let r = &e.record;
            push(&mut index.by_name, e.key.0.clone(), i);
            for alias in &e.aliases {
                push(&mut index.by_name, alias.to_ascii_lowercase(), i);
            }
            for nic in r.nics.iter().filter(|n| !n.mac.is_zero()) {
                push(&mut index.by_mac, nic.mac, i);
            }
            if let Some(serial) = r.serial_number.as_deref().filter(|s| !s.trim().is_empty()) {
                push(&mut index.by_serial, serial.trim().to_ascii_lowercase(), i);
            }
            if let Some(bmc) = r.bmc.as_ref().filter(|b| b.address.is_usable()) {
                push(&mut index.by_bmc, bmc.address.clone(), i);
            }
            index.by_id.insert(r.system_id.clone(), i);
            let mut content = r.clone();
            content.fetched_at = DateTime::<Utc>::UNIX_EPOCH;
            // Serialising a record cannot fail (no maps with non-string keys); an empty
            // contribution would only make the digest less discriminating.
            hash.update(serde_json::to_vec(&(content, &e.aliases)).unwrap_or_default());
        }
        let mut withheld: Vec<&String> = index.withheld.iter().collect();
        withheld.sort();
        hash.update(serde_json::to_vec(&withheld).unwrap_or_default());
        hash.update([u8::from(index.withholds_all)]);
        index.digest = hash.finalize().into();
        index
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries strictly after `key` in listing order.
    pub fn after(&self, key: Option<&SortKey>) -> &[Entry] {
        match key {
            None => &self.entries,
            Some(k) => {
                let start = self.entries.partition_point(|e| &e.key <= k);
                &self.entries[start..]
            }
        }
    }

    fn pick(&self, ids: Option<&Vec<u32>>) -> Vec<&Entry> {
        ids.into_iter()
            .flatten()
            .filter_map(|&i| self.entries.get(i as usize))
            .collect()
    }

    /// Servers answering to `name` (folded match; the caller applies case sensitivity).
    pub fn by_name(&self, name: &str) -> Vec<&Entry> {
        self.pick(self.by_name.get(&name.to_ascii_lowercase()))
    }

    /// Whether the system answers `name` with something other than an indexed server.
    pub fn withholds(&self, name: &str) -> bool {
        self.withholds_all || self.withheld.contains(&name.to_ascii_lowercase())
    }

    pub fn by_mac(&self, mac: &MacAddress) -> Vec<&Entry> {
        self.pick(self.by_mac.get(mac))
    }

    pub fn by_serial(&self, serial: &str) -> Vec<&Entry> {
        self.pick(self.by_serial.get(&serial.trim().to_ascii_lowercase()))
    }

    pub fn by_bmc(&self, bmc: &BmcAddress) -> Vec<&Entry> {
        self.pick(self.by_bmc.get(bmc))
    }

    pub fn by_id(&self, id: &str) -> Option<&Entry> {
        self.by_id
            .get(id)
            .and_then(|&i| self.entries.get(i as usize))
    }

    /// Every MAC and the entries listing it (for conflict detection).
    pub fn macs(&self) -> impl Iterator<Item = (&MacAddress, Vec<&Entry>)> {
        self.by_mac.iter().map(|(m, ids)| (m, self.pick(Some(ids))))
    }

    pub fn bmcs(&self) -> impl Iterator<Item = (&BmcAddress, Vec<&Entry>)> {
        self.by_bmc.iter().map(|(b, ids)| (b, self.pick(Some(ids))))
    }
}
