//! `kind = "redfish"`: servers managed by nothing but their own BMCs, a configured set of them.
//!
//! A lookup by name is the configured name → BMC mapping (or the name a BMC gave itself,
//! learned when it was read) plus one read of that BMC: its ComputerSystem, then its NICs.
//! A sweep reads every BMC, `bmc_concurrency` at a time, inside the sweep's background share.
//! One BMC failing is that server's failure (`BackendError::Bmc`), never the set's: a dead BMC
//! must not open the breaker in front of all the others, and a sweep lists the servers whose
//! BMCs answered (the others' names are withheld, so the index never answers for them).
//!
//! Sessions, Basic authentication and the refused-credential memory are in [`client`]; what
//! is read from a BMC in [`read`]; [`verify`] asks managed servers' BMCs for their system path.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use secrecy::SecretString;

use crate::config::SystemConfig;
use crate::domain::{Bmc as BmcInfo, ServerName, ServerRecord, SystemKind, Vendor};
use crate::resilience::refusals::{CredentialGuard, CredentialStatus, RefusalConfig};
use crate::vendors::upstream::Upstream;
use crate::vendors::{Backend, BackendError, FleetListing, Listed};

pub mod client;
pub mod inventory;
pub mod read;
pub mod verify;

use client::Client;
use inventory::Bmc;

pub struct RedfishBmcs {
    name: String,
    description: String,
    client: Client,
    bmcs: Vec<Bmc>,
    /// Folded configured names → BMC.
    configured: HashMap<String, usize>,
    /// Folded names BMCs without a configured name gave themselves when last read, and each
    /// BMC's ComputerSystem path (a later read skips the Systems collection).
    learned: RwLock<Learned>,
    concurrency: usize,
    credentials: Vec<String>,
}

#[derive(Default)]
struct Learned {
    names: HashMap<String, usize>,
    name_of: HashMap<usize, Vec<String>>,
    paths: HashMap<usize, Vec<String>>,
}

/// The refused-credential rules of a system's `bmc_*` settings.
pub fn refusal_config(sys: &SystemConfig) -> RefusalConfig {
    RefusalConfig {
        hold: sys.bmc_refusal_hold,
        suspend_after: sys.bmc_suspend_after,
        suspend_for: sys.bmc_suspend_for,
    }
}

impl RedfishBmcs {
    pub fn new(
        sys: &SystemConfig,
        upstream: Upstream,
        password: SecretString,
    ) -> Result<Self, BackendError> {
        let config = |detail: String| BackendError::Config {
            system: sys.name.clone(),
            detail,
        };
        let login = sys
            .bmc
            .as_ref()
            .ok_or_else(|| config("[systems.bmc] is required".into()))?;
        let (bmcs, credentials) = inventory::resolve(sys, login, password).map_err(config)?;
        let configured = bmcs
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.name.as_ref().map(|n| (n.folded(), i)))
            .collect();
        let client = Client::new(
            sys.name.clone(),
            upstream,
            login.scheme.clone(),
            Arc::new(CredentialGuard::new(refusal_config(sys))),
        );
        Ok(Self {
            name: sys.name.clone(),
            description: format!(
                "{} Redfish BMCs ({}, port {})",
                bmcs.len(),
                login.scheme,
                login.port
            ),
            client,
            bmcs,
            configured,
            learned: RwLock::new(Learned::default()),
            concurrency: sys.bmc_concurrency,
            credentials,
        })
    }

    fn learned<T>(&self, f: impl FnOnce(&Learned) -> T) -> T {
        f(&self.learned.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn learn<T>(&self, f: impl FnOnce(&mut Learned) -> T) -> T {
        f(&mut self.learned.write().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads BMC `i`: one record per ComputerSystem it lists, as `find` answers them.
    async fn read(&self, i: usize) -> Result<Vec<ServerRecord>, BackendError> {
        let bmc = &self.bmcs[i];
        let known = self.learned(|l| l.paths.get(&i).cloned().unwrap_or_default());
        let all = read::read_service(&self.client, &bmc.target, &known)
            .await
            .map_err(|e| self.bmc_error(i, e))?;
        if bmc.name.is_some() && all.len() != 1 {
            return Err(self.bmc_error(
                i,
                self.client.protocol(
                    "GET /redfish/v1/Systems",
                    &format!(
                        "{} ComputerSystems behind one configured name: leave `name` out and \
                         each is named by its HostName or serial number",
                        all.len()
                    ),
                ),
            ));
        }
        let mut records = Vec::with_capacity(all.len());
        for facts in all {
            let name = match &bmc.name {
                Some(n) => n.as_str().to_owned(),
                None => [&facts.host_name, &facts.serial, &facts.name]
                    .into_iter()
                    .flatten()
                    .find(|n| ServerName::parse(n).is_ok())
                    .cloned()
                    .ok_or_else(|| {
                        self.bmc_error(
                            i,
                            self.client.protocol(
                                "GET /redfish/v1/Systems/{id}",
                                "no name configured, and none of HostName, SerialNumber and Name is a server name",
                            ),
                        )
                    })?,
            };
            records.push(self.record(bmc, name, facts));
        }
        self.learn(|l| {
            l.paths.insert(
                i,
                records
                    .iter()
                    .filter_map(|r| r.bmc.as_ref().and_then(|b| b.redfish_system.clone()))
                    .collect(),
            );
            if bmc.name.is_none() {
                for old in l.name_of.remove(&i).unwrap_or_default() {
                    l.names.remove(&old);
                }
                let names: Vec<String> = records
                    .iter()
                    .map(|r| r.name.to_ascii_lowercase())
                    .collect();
                for n in &names {
                    l.names.insert(n.clone(), i);
                }
                l.name_of.insert(i, names);
            }
        });
        Ok(records)
    }

    fn record(&self, bmc: &Bmc, name: String, facts: read::Facts) -> ServerRecord {
        let boot_mac = facts.nics.first().map(|n| n.mac);
        ServerRecord {
            name,
            vendor: facts.vendor,
            system: SystemKind::Redfish,
            system_name: self.name.clone(),
            system_id: format!("{}{}", self.client.base(&bmc.target), facts.system_path),
            bmc: Some(BmcInfo {
                address: bmc.target.address.clone(),
                kind: bmc_kind(facts.vendor).map(str::to_owned),
                redfish_system: Some(facts.system_path),
                answered: Some(true),
            }),
            nics: facts.nics,
            boot_mac,
            serial_number: facts.serial,
            model: facts.model,
            power_state: facts.power_state,
            fetched_at: Utc::now(),
            stale: false,
            unverified: Vec::new(),
            nics_unavailable: None,
        }
    }

    fn bmc_error(&self, i: usize, source: BackendError) -> BackendError {
        let bmc = &self.bmcs[i];
        BackendError::Bmc {
            system: self.name.clone(),
            server: bmc
                .name
                .as_ref()
                .map(|n| n.as_str().to_owned())
                .or_else(|| self.learned(|l| l.name_of.get(&i).map(|n| n.join(","))))
                .unwrap_or_else(|| "(unnamed)".into()),
            address: bmc.target.address.to_string(),
            source: Box::new(source),
        }
    }

    /// The BMCs that might answer to `folded`: its configured or learned BMC; if none, every
    /// unnamed BMC whose name is not known yet.
    fn candidates(&self, folded: &str) -> Vec<usize> {
        if let Some(&i) = self.configured.get(folded) {
            return vec![i];
        }
        self.learned(|l| match l.names.get(folded) {
            Some(&i) => vec![i],
            None => (0..self.bmcs.len())
                .filter(|i| self.bmcs[*i].name.is_none() && !l.name_of.contains_key(i))
                .collect(),
        })
    }
}

/// What the record says the BMC is, by make (null where the make does not name it).
fn bmc_kind(vendor: Vendor) -> Option<&'static str> {
    match vendor {
        Vendor::Hpe => Some("ilo"),
        Vendor::Dell => Some("idrac"),
        Vendor::Cisco => Some("cimc"),
        Vendor::Lenovo => Some("xcc"),
        Vendor::Supermicro | Vendor::Other => None,
    }
}

#[async_trait]
impl Backend for RedfishBmcs {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::Redfish
    }

    fn endpoint(&self) -> String {
        self.description.clone()
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        let folded = name.folded();
        let candidates = self.candidates(&folded);
        let mut found = Vec::new();
        let mut failure = None;
        let reads = stream::iter(candidates.into_iter().map(|i| self.read(i)))
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        for result in reads {
            match result {
                Ok(records) => found.extend(records.into_iter().filter(|r| name.matches(&r.name))),
                Err(e) => failure = Some(e),
            }
        }
        // A failed read leaves the answer open only when nothing was found.
        match (found.is_empty(), failure) {
            (true, Some(e)) => Err(e),
            _ => Ok(found),
        }
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        let reads =
            stream::iter((0..self.bmcs.len()).map(|i| async move { (i, self.read(i).await) }))
                .buffer_unordered(self.concurrency)
                .collect::<Vec<_>>()
                .await;
        let mut listing = FleetListing::default();
        let mut failed = Vec::new();
        for (i, result) in reads {
            match result {
                Ok(records) => listing
                    .servers
                    .extend(records.into_iter().map(|record| Listed {
                        record,
                        aliases: Vec::new(),
                    })),
                Err(e) => {
                    // Its names (if known) must never be answered from the index.
                    match &self.bmcs[i].name {
                        Some(n) => listing.withheld.push(n.as_str().to_owned()),
                        None => listing.withheld.extend(
                            self.learned(|l| l.name_of.get(&i).cloned().unwrap_or_default()),
                        ),
                    }
                    failed.push(e);
                }
            }
        }
        if !failed.is_empty() {
            tracing::warn!(
                system = %self.name,
                failed = failed.len(),
                read = listing.servers.len(),
                first = %failed[0],
                "sweep: some BMCs could not be read; their servers are looked up live"
            );
        }
        if listing.servers.is_empty() {
            if let Some(e) = failed.into_iter().next() {
                return Err(e);
            }
        }
        Ok(listing)
    }

    fn credentials(&self) -> Vec<CredentialStatus> {
        self.client.guard().status(&self.credentials)
    }

    async fn logout(&self) {
        let targets: Vec<_> = self.bmcs.iter().map(|b| b.target.clone()).collect();
        self.client.logout(&targets).await;
    }
}
