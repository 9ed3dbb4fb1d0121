//! What the per-vendor backend tests share: a simulator of one kind, a backend built from the
//! same TOML a user writes, the simulator's CA written where `ca_bundle` can point, and the
//! simulator's per-endpoint call counters.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use inventory_gateway::config::Config;
use inventory_gateway::domain::{ServerName, ServerRecord, SystemKind};
use inventory_gateway::sim::{self, SimHandle, SimOptions, SimServer};
use inventory_gateway::vendors::{build_backend, Backend};

pub fn start(kind: SystemKind, fleet: Vec<SimServer>, tls: bool) -> SimHandle {
    let mut opts = SimOptions::new(kind, fleet);
    opts.tls = tls;
    sim::start(opts).expect("simulator starts")
}

/// One `[[systems]]` entry for the simulator; `extra` adds keys (`page_size = 2`, `timeout`…).
pub fn backend(sim: &SimHandle, system: &str, password: &str, extra: &str) -> Arc<dyn Backend> {
    let toml = format!(
        "[[systems]]\nname = {system:?}\nkind = {:?}\nendpoint = \"{}\"\n\
         username = \"admin\"\npassword = {password:?}\n{extra}\n",
        sim.kind.as_str(),
        sim.base_url
    );
    let config = Config::from_toml_str(&toml).expect("valid system config");
    build_backend(&config.systems[0]).expect("backend builds")
}

/// The simulator's CA in a temporary file, removed on drop; `line()` is the `ca_bundle` key.
pub struct CaFile(PathBuf);

impl CaFile {
    pub fn new(sim: &SimHandle) -> Self {
        let dir = std::env::temp_dir().join(format!("igw-ca-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ca.pem");
        std::fs::write(&path, sim.ca_pem.as_deref().expect("a TLS simulator")).expect("CA written");
        Self(path)
    }

    pub fn line(&self) -> String {
        format!("ca_bundle = {:?}", self.0.display().to_string())
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn name(s: &str) -> ServerName {
    ServerName::parse(s).expect("valid server name")
}

pub fn counters(sim: &SimHandle) -> BTreeMap<String, u64> {
    sim.shared.counters()
}

pub fn count(sim: &SimHandle, key: &str) -> u64 {
    counters(sim).get(key).copied().unwrap_or(0)
}

pub fn total(sim: &SimHandle) -> u64 {
    counters(sim).values().sum()
}

/// The record's NICs are the server's, names and MACs, in the vendor's order.
pub fn assert_nics_match(r: &ServerRecord, s: &SimServer) {
    let got: Vec<(String, String)> = r
        .nics
        .iter()
        .map(|n| (n.name.clone(), n.mac.to_string()))
        .collect();
    let want: Vec<(String, String)> = s
        .nics
        .iter()
        .map(|n| (n.name.clone(), n.mac.clone()))
        .collect();
    assert_eq!(got, want, "{}", s.name);
}
