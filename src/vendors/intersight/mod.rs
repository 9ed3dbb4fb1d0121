//! Cisco Intersight (SaaS or appliance) over its REST API, every request signed with an API
//! key ([`signing`]); there is no session to open, renew or log out of.
//!
//! Lookup rules:
//! - The name is a **physical server** name first: `GET /api/v1/compute/PhysicalSummaries?
//!   $filter=Name eq '<name>'` (rack units and blades alike, as the replaced operator's fork
//!   asks). Intersight's `eq` is case-sensitive; results are compared case-insensitively on our
//!   side as for every vendor, so a name spelled in another case than Intersight's is not found.
//! - No server of that name: the name is tried as a **server profile** (`server/Profiles`,
//!   `Name eq`), whose `AssignedServer` names the server; an unassigned profile is
//!   [`BackendError::Unassigned`].
//! - NICs come from Intersight's own adapter inventory: `adapter/HostEthInterfaces?$filter=
//!   Ancestors/any(t:t/Moid eq '<server moid>')`, in DN order; the first is the boot MAC
//!   (Intersight does not say which vNIC boots). A server for which Intersight holds no host
//!   Ethernet interfaces and that is standalone (`ManagementMode = IntersightStandalone`: no
//!   fabric, no VIC inventory) has them read from its own CIMC over Redfish
//!   when `[systems.cimc]` gives the login ([`cimc`]: one more call); without it, or when the
//!   CIMC lists none, the record has no NICs and `nics_unavailable` says why.
//! - Cost: found by server name = 2 calls (summary, interfaces), 3 with the CIMC; by profile = 4
//!   calls in 3 dependent rounds (summary miss, profile, then summary and interfaces
//!   concurrently), one more with the CIMC; a miss = 2 calls. Every collection is paged with `$top`/`$skip` (Intersight sends no next link).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::Utc;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use super::upstream::Upstream;
use super::{odata, paging};
use super::{retry_after, snippet, Backend, BackendError, FleetListing, Listed};
use crate::config::SystemConfig;
use crate::domain::{ServerName, ServerRecord, SystemKind, Vendor};

pub mod cimc;
pub mod parse;
pub mod signing;

use parse::PhysicalSummary;
use signing::ApiKey;

const API: &str = "/api/v1";
const SUMMARIES: &str = "/compute/PhysicalSummaries";
const PROFILES: &str = "/server/Profiles";
const HOST_ETH: &str = "/adapter/HostEthInterfaces";
/// Only what the record needs: Intersight's summaries run to 60+ properties each.
const SUMMARY_FIELDS: &str =
    "Moid,Name,Serial,Model,MgmtIpAddress,OperPowerState,SourceObjectType,ManagementMode";
const HOST_ETH_FIELDS: &str = "Name,MacAddress,Dn";
const PROFILE_FIELDS: &str = "Name,AssignedServer";
/// Intersight's own ceiling for `$top`.
const MAX_TOP: u32 = 1000;

/// Why a record has no NICs: Intersight holds no adapter inventory for a server it manages
/// through a fabric (e.g. a blade without a deployed profile); its CIMC is not asked.
pub const NO_HOST_INTERFACES: &str =
    "Intersight holds no host Ethernet interfaces for this server (none deployed)";
/// …a standalone server, and no CIMC login is configured.
pub const NO_ADAPTER_INVENTORY: &str =
    "Intersight holds no host Ethernet interfaces for this server (no managed VIC adapter) and \
     no CIMC login is configured to read them from the server ([systems.cimc])";
/// …or the server has no management IP (or serial) to reach its CIMC with.
pub const NO_CIMC_ADDRESS: &str =
    "Intersight holds no host Ethernet interfaces for this server and reports no management IP \
     and serial number to read them from its CIMC with";
/// …or its CIMC lists none either.
pub const CIMC_LISTS_NONE: &str =
    "neither Intersight nor the server's CIMC lists a host Ethernet interface with a MAC";

pub struct Intersight {
    name: String,
    endpoint: Url,
    /// `<endpoint without trailing slash>/api/v1`.
    base: String,
    upstream: Upstream,
    key: ApiKey,
    page_size: u32,
    max_pages: u32,
    cimc: Option<cimc::Cimc>,
}

impl Intersight {
    pub fn new(
        sys: &SystemConfig,
        upstream: Upstream,
        key: ApiKey,
        cimc: Option<cimc::Cimc>,
    ) -> Result<Self, BackendError> {
        let endpoint = super::endpoint_of(sys)?;
        Ok(Self {
            cimc,
            name: sys.name.clone(),
            endpoint: endpoint.clone(),
            base: format!("{}{API}", endpoint.as_str().trim_end_matches('/')),
            upstream,
            key,
            page_size: sys.page_size.min(MAX_TOP),
            max_pages: sys.max_pages,
        })
    }

    /// One signed GET. The signature covers the path and query exactly as they go on the wire
    /// and the `Host` header exactly as reqwest derives it from the URL.
    async fn get_json(&self, key: &str, url: &str) -> Result<Value, BackendError> {
        let url = Url::parse(url).map_err(|e| self.protocol(key, &format!("bad URL: {e}")))?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(self.protocol(key, "URL without a host")),
        };
        let signed = self
            .key
            .sign("GET", &target, &host, b"", Utc::now())
            .map_err(|e| BackendError::Config {
                system: self.name.clone(),
                detail: format!("cannot sign with the API key: {e}"),
            })?;
        let mut authorization = reqwest::header::HeaderValue::from_str(&signed.authorization)
            .map_err(|_| self.protocol(key, "signature is not a valid header value"))?;
        authorization.set_sensitive(true);
        let request = self
            .upstream
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::DATE, signed.date)
            .header("Digest", signed.digest)
            .header(reqwest::header::AUTHORIZATION, authorization);
        let reply = self.upstream.exchange(key, request).await?;
        let (status, headers, body) = (reply.status, reply.headers, reply.body);
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(BackendError::Auth {
                system: self.name.clone(),
                detail: format!(
                    "{key}: HTTP {} (API key {}): {}",
                    status.as_u16(),
                    self.key.key_id(),
                    detail(&body)
                ),
            });
        }
        if !status.is_success() {
            return Err(BackendError::Status {
                system: self.name.clone(),
                endpoint: key.to_owned(),
                status: status.as_u16(),
                retry_after: retry_after(&headers),
                detail: detail(&body),
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| self.protocol(key, &format!("not JSON ({e}): {}", snippet(&body))))
    }

    /// Every item matching `filter` (an unencoded OData expression), paged with `$top`/`$skip`
    /// until `Count`, a short page or `max_pages`. A page larger than asked, or more than
    /// `max_pages` full pages, is a protocol failure: a partial answer could hide a match.
    async fn query(
        &self,
        collection: &str,
        filter: &str,
        select: &str,
    ) -> Result<Vec<Value>, BackendError> {
        self.pages(
            collection,
            Some(filter),
            select,
            self.page_size,
            self.max_pages,
        )
        .await
    }

    /// Every item of `collection` (matching `filter` when given), `top` per page.
    async fn pages(
        &self,
        collection: &str,
        filter: Option<&str>,
        select: &str,
        top: u32,
        max_pages: u32,
    ) -> Result<Vec<Value>, BackendError> {
        let key = format!("GET {API}{collection}");
        let filter = filter
            .map(|f| format!("$filter={}&", odata::encode_query_value(f)))
            .unwrap_or_default();
        let fetch = |received: u64| {
            let url = format!(
                "{}{collection}?{filter}$select={select}&$inlinecount=allpages&$top={top}&$skip={received}",
                self.base,
            );
            let key = &key;
            async move {
                parse::page(self.get_json(key, &url).await?).map_err(|d| self.protocol(key, &d))
            }
        };
        paging::offset_pages(top, max_pages, fetch, |overrun| {
            super::paging_error(&self.name, &key, overrun, "")
        })
        .await
    }

    async fn summaries_where(
        &self,
        prop: &str,
        value: &str,
    ) -> Result<Vec<PhysicalSummary>, BackendError> {
        let key = format!("GET {API}{SUMMARIES}");
        self.query(SUMMARIES, &odata::filter_eq(prop, value), SUMMARY_FIELDS)
            .await?
            .iter()
            .map(parse::physical_summary)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|d| self.protocol(&key, &d))
    }

    async fn nics(&self, moid: &str) -> Result<Vec<crate::domain::Nic>, BackendError> {
        let key = format!("GET {API}{HOST_ETH}");
        let filter = format!("Ancestors/any(t:t/Moid eq {})", odata::string_literal(moid));
        let items = self.query(HOST_ETH, &filter, HOST_ETH_FIELDS).await?;
        parse::host_eth_interfaces(&items).map_err(|d| self.protocol(&key, &d))
    }

    async fn record_for_server(
        &self,
        server: PhysicalSummary,
    ) -> Result<ServerRecord, BackendError> {
        let nics = self.nics(&server.moid).await?;
        let name = server.name.clone();
        self.complete(name, server, nics, false).await
    }

    /// The record, with the NICs from the server's CIMC when Intersight has none for it.
    ///
    /// `sweeping`: a CIMC that cannot be read leaves this one record without NICs (its
    /// `nics_unavailable` says why) instead of failing the whole sweep; a lookup by name
    /// still asks that CIMC live.
    async fn complete(
        &self,
        name: String,
        server: PhysicalSummary,
        nics: Vec<crate::domain::Nic>,
        sweeping: bool,
    ) -> Result<ServerRecord, BackendError> {
        if !nics.is_empty() {
            return Ok(self.record(name, server, nics, None));
        }
        if !server.is_standalone() {
            return Ok(self.record(name, server, nics, Some(NO_HOST_INTERFACES)));
        }
        let Some(cimc) = &self.cimc else {
            return Ok(self.record(name, server, nics, Some(NO_ADAPTER_INVENTORY)));
        };
        let (Some(bmc), Some(serial)) = (&server.bmc, &server.serial) else {
            return Ok(self.record(name, server, nics, Some(NO_CIMC_ADDRESS)));
        };
        let nics = match cimc.nics(&bmc.address, serial).await {
            Ok(nics) => nics,
            Err(source) => {
                let failure = BackendError::Bmc {
                    system: self.name.clone(),
                    server: name.clone(),
                    address: bmc.address.to_string(),
                    source: Box::new(source),
                };
                if !sweeping {
                    return Err(failure);
                }
                let reason = format!("the sweep could not read them: {}", failure.public_text());
                return Ok(self.record(name, server, Vec::new(), Some(&reason)));
            }
        };
        let reason = nics.is_empty().then_some(CIMC_LISTS_NONE);
        Ok(self.record(name, server, nics, reason))
    }

    /// The name as a server profile: the server it is assigned to, read concurrently with that
    /// server's interfaces (both need only its Moid).
    async fn records_for_profiles(
        &self,
        name: &ServerName,
    ) -> Result<Vec<ServerRecord>, BackendError> {
        let profiles: Vec<Value> = self
            .query(
                PROFILES,
                &odata::filter_eq("Name", name.as_str()),
                PROFILE_FIELDS,
            )
            .await?
            .into_iter()
            .filter(|p| parse::profile_name(p).is_some_and(|n| name.matches(&n)))
            .collect();
        let assigned: Vec<(String, String)> = profiles
            .iter()
            .filter_map(|p| Some((parse::profile_name(p)?, parse::assigned_server(p)?)))
            .collect();
        if assigned.is_empty() {
            return match profiles.first().and_then(parse::profile_name) {
                Some(profile) => Err(BackendError::Unassigned {
                    system: self.name.clone(),
                    profile,
                }),
                None => Ok(Vec::new()),
            };
        }
        futures::future::try_join_all(assigned.into_iter().map(|(profile, moid)| async move {
            let (servers, nics) =
                tokio::try_join!(self.summaries_where("Moid", &moid), self.nics(&moid))?;
            let server = servers.into_iter().find(|s| s.moid == moid).ok_or_else(|| {
                BackendError::Inconsistent {
                    system: self.name.clone(),
                    detail: format!(
                        "server profile {profile} is assigned to server {moid}, which Intersight does not list"
                    ),
                }
            })?;
            self.complete(profile, server, nics, false).await
        }))
        .await
    }

    fn record(
        &self,
        name: String,
        server: PhysicalSummary,
        nics: Vec<crate::domain::Nic>,
        nics_unavailable: Option<&str>,
    ) -> ServerRecord {
        let nics_unavailable = nics_unavailable.map(str::to_owned);
        ServerRecord {
            name,
            vendor: Vendor::Cisco,
            system: SystemKind::Intersight,
            system_name: self.name.clone(),
            system_id: format!("{API}{SUMMARIES}/{}", server.moid),
            bmc: server.bmc,
            boot_mac: nics.first().map(|n| n.mac),
            nics,
            serial_number: server.serial,
            model: server.model,
            power_state: server.power_state,
            fetched_at: Utc::now(),
            stale: false,
            unverified: Vec::new(),
            nics_unavailable,
        }
    }

    /// Every server Intersight holds, each as [`Backend::find`] answers it (under its assigned
    /// profile's name when it has one, its physical name then an alias), read in full pages
    /// (`$top` = 1,000, Intersight's ceiling): the summaries, every host Ethernet interface
    /// (grouped by the server among its `Ancestors`) and the profiles, concurrently. Cost:
    /// ⌈servers/1000⌉ + ⌈interfaces/1000⌉ + ⌈profiles/1000⌉ calls, plus one CIMC read per
    /// standalone server without adapter inventory (at most 8 at once, within the CIMCs'
    /// throttle): Intersight offers no bulk read of those.
    /// Profiles assigned to no server Intersight lists are not servers: their names are
    /// withheld.
    async fn fleet(&self) -> Result<FleetListing, BackendError> {
        let key = format!("GET {API}{SUMMARIES}");
        let (summaries, interfaces, profiles) = tokio::try_join!(
            self.pages(
                SUMMARIES,
                None,
                SUMMARY_FIELDS,
                MAX_TOP,
                paging::SWEEP_MAX_PAGES
            ),
            self.pages(
                HOST_ETH,
                None,
                "Name,MacAddress,Dn,Ancestors",
                MAX_TOP,
                paging::SWEEP_MAX_PAGES
            ),
            self.pages(
                PROFILES,
                None,
                PROFILE_FIELDS,
                MAX_TOP,
                paging::SWEEP_MAX_PAGES
            ),
        )?;
        let servers = summaries
            .iter()
            .map(parse::physical_summary)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|d| self.protocol(&key, &d))?;
        let known: HashSet<&str> = servers.iter().map(|s| s.moid.as_str()).collect();
        let mut by_server: HashMap<String, Vec<Value>> = HashMap::new();
        for interface in interfaces {
            let owner = parse::ancestor_moids(&interface)
                .into_iter()
                .find(|m| known.contains(m.as_str()));
            if let Some(owner) = owner {
                by_server.entry(owner).or_default().push(interface);
            }
        }
        let mut profile_of: HashMap<String, String> = HashMap::new();
        let mut withheld = Vec::new();
        for p in &profiles {
            match (parse::profile_name(p), parse::assigned_server(p)) {
                (Some(name), Some(moid)) if known.contains(moid.as_str()) => {
                    profile_of.insert(moid, name);
                }
                (Some(name), _) => withheld.push(name),
                (None, _) => {}
            }
        }
        let host_eth_key = format!("GET {API}{HOST_ETH}");
        let listed = futures::stream::iter(servers.into_iter().map(|server| {
            let interfaces = by_server.remove(&server.moid).unwrap_or_default();
            let profile = profile_of.remove(&server.moid);
            let host_eth_key = &host_eth_key;
            async move {
                let nics = parse::host_eth_interfaces(&interfaces)
                    .map_err(|d| self.protocol(host_eth_key, &d))?;
                let physical = server.name.clone();
                let (name, aliases) = match profile {
                    Some(profile) if profile != physical => (profile, vec![physical]),
                    _ => (physical, Vec::new()),
                };
                let record = self.complete(name, server, nics, true).await?;
                Ok::<_, BackendError>(Listed { record, aliases })
            }
        }))
        .buffer_unordered(8);
        Ok(FleetListing {
            withholds_all: false,
            servers: futures::TryStreamExt::try_collect(listed).await?,
            withheld,
        })
    }

    fn protocol(&self, endpoint: &str, detail: &str) -> BackendError {
        BackendError::Protocol {
            system: self.name.clone(),
            endpoint: endpoint.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

/// Intersight's error message when the body is its error envelope, else the start of the body.
fn detail(body: &[u8]) -> String {
    parse::error_message(body).unwrap_or_else(|| snippet(body))
}

#[async_trait]
impl Backend for Intersight {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::Intersight
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        self.fleet().await
    }

    fn case_sensitive_names(&self) -> bool {
        true
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        let servers: Vec<PhysicalSummary> = self
            .summaries_where("Name", name.as_str())
            .await?
            .into_iter()
            .filter(|s| name.matches(&s.name))
            .collect();
        if servers.is_empty() {
            return self.records_for_profiles(name).await;
        }
        futures::future::try_join_all(servers.into_iter().map(|s| self.record_for_server(s))).await
    }

    /// Nothing to end: every request carries its own signature (and CIMCs are read with
    /// Basic authentication).
    async fn logout(&self) {
        self.upstream.detach_pool();
        if let Some(cimc) = &self.cimc {
            cimc.detach_pool();
        }
    }
}
