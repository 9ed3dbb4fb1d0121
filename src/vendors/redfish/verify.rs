//! `verify_bmc = true`: a managed system's answers, each checked against the server's own BMC.
//! The BMC at the address the manager reports is asked for its Systems collection, and the
//! ComputerSystem it lists (the one of the server's serial number, if it lists several) is
//! answered as `bmc.redfish_system`, with `bmc.answered`. A BMC that cannot be read leaves the
//! manager's answer as it was, with `answered = false`: the manager's answer is still right,
//! only the path is unknown, and the controller falls back to its per-vendor rule.
//!
//! A path, once read, is kept for [`PATH_TTL`]: a ComputerSystem's id does not change while
//! the server lives, and sweeps would otherwise read every BMC again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use secrecy::SecretString;

use super::client::{Client, Credential, Target};
use crate::config::FleetLogin;
use crate::domain::{ServerName, ServerRecord, SystemKind};
use crate::resilience::refusals::{CredentialGuard, CredentialStatus, RefusalConfig};
use crate::vendors::upstream::Upstream;
use crate::vendors::{Backend, BackendError, FleetListing, MemberStatus};

/// How long a system path read from a BMC is reused.
pub const PATH_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct Verified {
    inner: Arc<dyn Backend>,
    client: Client,
    credential: Arc<Credential>,
    port: u16,
    concurrency: usize,
    budget: Duration,
    paths: Mutex<HashMap<String, (String, Instant)>>,
    targets: Mutex<HashMap<String, Target>>,
}

impl Verified {
    pub fn new(
        inner: Arc<dyn Backend>,
        upstream: Upstream,
        login: &FleetLogin,
        password: SecretString,
        refusals: RefusalConfig,
        concurrency: usize,
        budget: Duration,
    ) -> Self {
        Self {
            client: Client::new(
                format!("{}/bmc", inner.name()),
                upstream,
                login.scheme.clone(),
                Arc::new(CredentialGuard::new(refusals)),
            ),
            inner,
            credential: Arc::new(Credential {
                name: super::inventory::DEFAULT_CREDENTIAL.into(),
                username: login.username.clone(),
                password,
            }),
            port: login.port,
            concurrency,
            budget,
            paths: Mutex::new(HashMap::new()),
            targets: Mutex::new(HashMap::new()),
        }
    }

    async fn verify(&self, mut record: ServerRecord) -> ServerRecord {
        let Some(bmc) = record.bmc.as_mut().filter(|b| b.address.is_usable()) else {
            return record;
        };
        let target = Target {
            address: bmc.address.clone(),
            port: self.port,
            credential: self.credential.clone(),
        };
        // A BMC may list several systems (the one of this serial number is answered).
        let key = format!(
            "{} {}",
            self.client.base(&target),
            record.serial_number.as_deref().unwrap_or_default()
        );
        let cached = self.paths.lock().ok().and_then(|p| {
            p.get(&key)
                .filter(|(_, at)| at.elapsed() < PATH_TTL)
                .map(|(p, _)| p.clone())
        });
        let path = match cached {
            Some(p) => Ok(p),
            None => {
                if let Ok(mut t) = self.targets.lock() {
                    t.insert(self.client.base(&target), target.clone());
                }
                // The manager's answer must not wait on a slow BMC past its own deadline.
                let read = super::read::system_path(
                    &self.client,
                    &target,
                    record.serial_number.as_deref(),
                );
                tokio::time::timeout(self.budget, read)
                    .await
                    .unwrap_or_else(|_| {
                        Err(BackendError::Timeout {
                            system: format!("{}/bmc", self.inner.name()),
                            timeout: self.budget,
                        })
                    })
            }
        };
        match path {
            Ok(path) => {
                if let Ok(mut p) = self.paths.lock() {
                    p.insert(key, (path.clone(), Instant::now()));
                }
                bmc.redfish_system = Some(path);
                bmc.answered = Some(true);
                bmc.port = Some(self.port).filter(|p| *p != 443);
            }
            Err(e) => {
                tracing::info!(
                    system = %self.inner.name(),
                    server = %record.name,
                    error = %e,
                    "verify_bmc: the server's BMC could not be read"
                );
                if let Some(bmc) = record.bmc.as_mut() {
                    bmc.redfish_system = None;
                    bmc.answered = Some(false);
                }
            }
        }
        record
    }

    async fn verify_all(&self, records: Vec<ServerRecord>) -> Vec<ServerRecord> {
        stream::iter(records.into_iter().map(|r| self.verify(r)))
            .buffered(self.concurrency)
            .collect()
            .await
    }
}

#[async_trait]
impl Backend for Verified {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> SystemKind {
        self.inner.kind()
    }

    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        let records = self.inner.find(name).await?;
        Ok(self.verify_all(records).await)
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        let mut listing = self.inner.list().await?;
        let records = std::mem::take(&mut listing.servers);
        let aliases: Vec<_> = records.iter().map(|l| l.aliases.clone()).collect();
        let verified = self
            .verify_all(records.into_iter().map(|l| l.record).collect())
            .await;
        listing.servers = verified
            .into_iter()
            .zip(aliases)
            .map(|(record, aliases)| crate::vendors::Listed { record, aliases })
            .collect();
        Ok(listing)
    }

    fn case_sensitive_names(&self) -> bool {
        self.inner.case_sensitive_names()
    }

    fn members(&self) -> Vec<MemberStatus> {
        self.inner.members()
    }

    fn credentials(&self) -> Vec<CredentialStatus> {
        self.client
            .guard()
            .status(&[super::inventory::DEFAULT_CREDENTIAL.to_owned()])
    }

    async fn logout(&self) {
        self.inner.logout().await;
        let targets: Vec<Target> = self
            .targets
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        self.client.logout(&targets).await;
    }
}
