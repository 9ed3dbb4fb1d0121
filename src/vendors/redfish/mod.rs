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

use crate::config::{FleetLogin, SystemConfig};
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
    /// The whole read of one BMC (several requests) ends within this: a slow BMC is that
    /// server's failure, long before the lookup's deadline.
    read_budget: std::time::Duration,
}

#[derive(Default)]
struct Learned {
    /// Folded name → the unnamed BMCs whose systems gave themselves that name.
    names: HashMap<String, Vec<usize>>,
    name_of: HashMap<usize, Vec<String>>,
    paths: HashMap<usize, Vec<String>>,
    /// Unnamed BMCs whose last read failed, and when: a lookup of a name nobody is known to
    /// hold reads them again only after [`REREAD_FAILED_AFTER`] (else it is their failure).
    failed: HashMap<usize, (std::time::Instant, BackendError)>,
}

/// How long the failure of an unnamed BMC stands for lookups of unknown names.
const REREAD_FAILED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The refused-credential rules of a system's `bmc_*` settings.
pub fn refusal_config(sys: &SystemConfig) -> RefusalConfig {
    RefusalConfig {
        hold: sys.bmc_refusal_hold,
        suspend_after: sys.bmc_suspend_after,
        suspend_for: sys.bmc_suspend_for,
    }
}

impl RedfishBmcs {
    /// `login` is the system's `[systems.bmc]`, `password` its resolved password.
    pub fn new(
        sys: &SystemConfig,
        login: &FleetLogin,
        upstream: Upstream,
        password: SecretString,
    ) -> Result<Self, BackendError> {
        let config = |detail: String| BackendError::Config {
            system: sys.name.clone(),
            detail,
        };
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
            read_budget: sys.timeout,
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
        let read = tokio::time::timeout(
            self.read_budget,
            read::read_service(&self.client, &bmc.target, &known),
        )
        .await
        .unwrap_or_else(|_| {
            Err(BackendError::Timeout {
                system: self.name.clone(),
                timeout: self.read_budget,
            })
        });
        let all = match read {
            Ok(all) => {
                self.learn(|l| l.failed.remove(&i));
                all
            }
            Err(e) => {
                let e = self.bmc_error(i, e);
                self.learn(|l| l.failed.insert(i, (std::time::Instant::now(), e.clone())));
                return Err(e);
            }
        };
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
                    if let Some(holders) = l.names.get_mut(&old) {
                        holders.retain(|h| *h != i);
                        if holders.is_empty() {
                            l.names.remove(&old);
                        }
                    }
                }
                let names: Vec<String> = records
                    .iter()
                    .map(|r| r.name.to_ascii_lowercase())
                    .collect();
                for n in &names {
                    let holders = l.names.entry(n.clone()).or_default();
                    if !holders.contains(&i) {
                        holders.push(i);
                    }
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
                port: Some(bmc.target.port).filter(|p| *p != 443),
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

    /// The BMCs that might answer to `folded`: the one configured with that name and every
    /// unnamed one whose system gave itself that name; if none, every unnamed BMC whose names
    /// are not known yet (read now), and the failure of any that failed a read lately.
    fn candidates(&self, folded: &str) -> (Vec<usize>, Option<BackendError>) {
        let configured = self.configured.get(folded).copied();
        self.learned(|l| {
            let mut found: Vec<usize> = configured.into_iter().collect();
            found.extend(l.names.get(folded).into_iter().flatten().copied());
            if !found.is_empty() {
                return (found, None);
            }
            let mut recent_failure = None;
            let unknown = (0..self.bmcs.len())
                .filter(|i| self.bmcs[*i].name.is_none() && !l.name_of.contains_key(i))
                .filter(|i| match l.failed.get(i) {
                    Some((at, e)) if at.elapsed() < REREAD_FAILED_AFTER => {
                        recent_failure = Some(e.clone());
                        false
                    }
                    _ => true,
                })
                .collect();
            (unknown, recent_failure)
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
        let (candidates, mut failure) = self.candidates(&folded);
        let mut found = Vec::new();
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
                        None => match self.learned(|l| l.name_of.get(&i).cloned()) {
                            Some(names) => listing.withheld.extend(names),
                            // Never read: its servers could be called anything.
                            None => listing.withholds_all = true,
                        },
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
