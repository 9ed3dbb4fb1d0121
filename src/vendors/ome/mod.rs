//! Dell OpenManage Enterprise (OME) over its OData REST API.
//!
//! Lookup rules (see `vendor-notes/ome.md`):
//! - The name is a server **profile** name first: `GET /api/ProfileService/Profiles?$filter=
//!   ProfileName eq '<name>'`. A profile bound to a device (`TargetId > 0`) gives the device
//!   Id; a profile in state 1 (reserved for a service tag) is resolved with `Devices?$filter=
//!   Identifier eq '<TargetName>'`; an unbound profile is [`BackendError::Unassigned`].
//! - No profile of that name: the name is tried as a **device name** (`DeviceName eq`), since
//!   many OME installations never use profiles. Only servers (`Type` 1000) count.
//! - Every `eq` result is compared case-insensitively on our side, because OME's own `eq`
//!   semantics are undocumented.
//! - Cost after login: a server found by profile = 3 calls (profile query, then the device and
//!   its NIC inventory concurrently); by service tag or device name = 3 (query, which returns
//!   the device, then the inventory); a miss = 2 (profile query, device-name query).
//! - `system_id` is the device's OData id, `/api/DeviceService/Devices(<Id>)`: it exists on
//!   every path (a device found by name has no profile) and is what the NIC/BMC data describes.
//! - `name` is the `ProfileName`, or the `DeviceName` when found by device name.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::future::try_join_all;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::session::{Issued, Lifetime, SessionManager, SessionProtocol};
use super::upstream::Upstream;
use super::{odata, paging};
use super::{retry_after, snippet, Backend, BackendError, FleetListing, Listed};
use crate::config::SystemConfig;
use crate::domain::{Nic, ServerName, ServerRecord, SystemKind, Vendor};

pub mod parse;

use parse::{Device, Profile, ProfileTarget};

const SESSIONS: &str = "/api/SessionService/Sessions";
const PROFILES: &str = "/api/ProfileService/Profiles";
const DEVICES: &str = "/api/DeviceService/Devices";

/// OME's default `SessionTimeout` for API sessions (30 min of inactivity, OME 3.10
/// `SessionConfiguration`): an idle session that old is replaced before use.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct Ome {
    name: String,
    endpoint: Url,
    /// The endpoint without a trailing `/`, so `base + "/api/…"` is always one slash.
    base: String,
    upstream: Upstream,
    username: String,
    password: SecretString,
    page_size: u32,
    max_pages: u32,
    sessions: SessionManager<Session>,
    /// NICs read by the last sweep, by device Id, with the `LastInventoryTime` they were read
    /// at: a sweep reads a device's inventory again only when OME took a new one.
    swept_nics: std::sync::Mutex<HashMap<i64, (String, Vec<Nic>)>>,
}

pub struct Session {
    token: SecretString,
    /// Needed for logout; OME's session Id is not the token.
    id: Option<String>,
}

/// A call's outcome when the session may have to be renewed.
enum Reply {
    Body(bytes::Bytes),
    Unauthorized,
}

impl Ome {
    pub fn new(
        sys: &SystemConfig,
        upstream: Upstream,
        password: SecretString,
    ) -> Result<Self, BackendError> {
        let endpoint = super::endpoint_of(sys)?;
        Ok(Self {
            name: sys.name.clone(),
            endpoint: endpoint.clone(),
            base: endpoint.as_str().trim_end_matches('/').to_owned(),
            upstream,
            username: sys.username.clone(),
            password,
            page_size: sys.page_size,
            max_pages: sys.max_pages,
            sessions: SessionManager::new(&sys.name, sys.login_backoff),
            swept_nics: std::sync::Mutex::new(HashMap::new()),
        })
    }

    async fn login_now(&self) -> Result<Session, BackendError> {
        let key = "POST /api/SessionService/Sessions";
        let body = serde_json::json!({
            "UserName": self.username,
            "Password": self.password.expose_secret(),
            "SessionType": "API",
        });
        let request = self
            .upstream
            .http()
            .post(format!("{}{SESSIONS}", self.base))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body);
        let reply = self.upstream.exchange(key, request).await?;
        let status = reply.status;
        let token = reply
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(|t| SecretString::from(t.to_owned()));
        let headers = reply.headers;
        let bytes = reply.body;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(BackendError::Auth {
                system: self.name.clone(),
                detail: format!(
                    "login refused (HTTP {}): {}",
                    status.as_u16(),
                    detail(&bytes)
                ),
            });
        }
        if !status.is_success() {
            return Err(self.status_error(key, status, &headers, &bytes));
        }
        let token = token.ok_or_else(|| self.protocol(key, "login answer without X-Auth-Token"))?;
        let id = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("Id")?.as_str().map(str::to_owned));
        if id.is_none() {
            tracing::warn!(system = %self.name, "OME session without an Id; logout will be skipped");
        }
        tracing::debug!(system = %self.name, "logged in to OME");
        Ok(Session { token, id })
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        url: &str,
        session: &Session,
    ) -> Result<Reply, BackendError> {
        let mut token = reqwest::header::HeaderValue::from_str(session.token.expose_secret())
            .map_err(|_| self.protocol(key, "session token is not a valid header value"))?;
        token.set_sensitive(true);
        let request = self
            .upstream
            .http()
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Auth-Token", token);
        let reply = self.upstream.exchange(key, request).await?;
        let (status, headers, bytes) = (reply.status, reply.headers, reply.body);
        match status {
            StatusCode::UNAUTHORIZED => Ok(Reply::Unauthorized),
            s if s.is_success() => Ok(Reply::Body(bytes)),
            s => Err(self.status_error(key, s, &headers, &bytes)),
        }
    }

    /// GET with the shared session; on 401 one new login and one retry.
    async fn get_json(&self, key: &str, url: &str) -> Result<Value, BackendError> {
        let session = self.sessions.session(self).await?;
        let bytes = match self.send(Method::GET, key, url, &session).await? {
            Reply::Body(b) => b,
            Reply::Unauthorized => {
                tracing::info!(system = %self.name, "OME session rejected; logging in again");
                let renewed = self.sessions.renew(self, &session).await?;
                match self.send(Method::GET, key, url, &renewed).await? {
                    Reply::Body(b) => b,
                    Reply::Unauthorized => {
                        return Err(BackendError::Auth {
                            system: self.name.clone(),
                            detail: format!("{key}: HTTP 401 right after a fresh login"),
                        })
                    }
                }
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| self.protocol(key, &format!("not JSON ({e}): {}", snippet(&bytes))))
    }

    /// Every item of a filtered collection, paging with explicit `$top`/`$skip` (OME's
    /// nextLink drops the filter) until `@odata.count`, a short page or `max_pages`.
    ///
    /// Bounded whatever the appliance sends: a page larger than the `$top` asked, or more
    /// than `max_pages` full pages, is a protocol failure (a partial answer could hide a match).
    async fn query_eq(
        &self,
        path: &str,
        prop: &str,
        value: &str,
    ) -> Result<Vec<Value>, BackendError> {
        self.pages(
            path,
            &odata::filter_param(prop, value),
            self.page_size,
            self.max_pages,
        )
        .await
    }

    /// Every item of `path` selected by `filter` (a ready `$filter=…` parameter, or empty),
    /// `top` per page; the bounds of [`Self::query_eq`].
    async fn pages(
        &self,
        path: &str,
        filter: &str,
        top: u32,
        max_pages: u32,
    ) -> Result<Vec<Value>, BackendError> {
        let key = format!("GET {path}");
        let fetch = |received: u64| {
            let query = if filter.is_empty() {
                format!("$top={top}&$skip={received}")
            } else {
                odata::page_query(filter, top, received)
            };
            let url = format!("{}{path}?{query}", self.base);
            let key = &key;
            async move {
                parse::collection(self.get_json(key, &url).await?)
                    .map_err(|d| self.protocol(key, &d))
            }
        };
        paging::offset_pages(top, max_pages, fetch, |overrun| {
            super::paging_error(&self.name, &key, overrun, &format!(" for {filter:?}"))
        })
        .await
    }

    /// Every server OME holds, each as [`Backend::find`] answers it: a device bound to a
    /// profile under the profile's name (its device name an alias), a device without one under
    /// its device name. Profiles and server devices (`Type eq 1000`) are read in pages of
    /// `LIST_TOP` concurrently: ⌈profiles/LIST_TOP⌉ + ⌈servers/LIST_TOP⌉ calls; then one
    /// `serverNetworkInterfaces` inventory read per server that is new or whose
    /// `LastInventoryTime` moved since the last sweep (at most 8 at once, within the throttle),
    /// because OME has no bulk read of NIC inventory.
    /// Profiles bound to no server OME lists (unassigned, or reserved for a service tag not
    /// discovered yet) are not servers: their names are withheld.
    async fn fleet(&self) -> Result<FleetListing, BackendError> {
        const LIST_TOP: u32 = 500;
        let server_filter = format!(
            "$filter={}",
            odata::encode_query_value(&format!("Type eq {}", parse::DEVICE_TYPE_SERVER))
        );
        let (profiles, devices) = tokio::try_join!(
            self.pages(PROFILES, "", LIST_TOP, paging::SWEEP_MAX_PAGES),
            self.pages(DEVICES, &server_filter, LIST_TOP, paging::SWEEP_MAX_PAGES),
        )?;
        let key = format!("GET {DEVICES}");
        let devices = devices
            .iter()
            .map(parse::device)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|d| self.protocol(&key, &d))?;
        let mut profile_of: std::collections::HashMap<i64, String> =
            std::collections::HashMap::new();
        let mut withheld = Vec::new();
        for p in profiles.iter().filter_map(parse::profile) {
            let bound = match p.target() {
                ProfileTarget::Device(id) => Some(id),
                ProfileTarget::ServiceTag(tag) => {
                    devices.iter().find(|d| d.has_tag(&tag)).map(|d| d.id)
                }
                ProfileTarget::Unassigned => None,
            };
            match bound {
                // A second profile bound to the same device is not what the index lists for it.
                Some(id) if profile_of.contains_key(&id) => withheld.push(p.name),
                Some(id) => {
                    profile_of.insert(id, p.name);
                }
                None => withheld.push(p.name),
            }
        }
        let listed =
            futures::stream::iter(devices.into_iter().filter(Device::is_server).map(|device| {
                let profile = profile_of.remove(&device.id);
                async move {
                    let nics = self.swept_device_nics(&device).await?;
                    let device_name = device.name.clone();
                    let (name, aliases) = match (profile, device_name) {
                        (Some(p), Some(d)) if !d.eq_ignore_ascii_case(&p) => (p, vec![d]),
                        (Some(p), _) => (p, Vec::new()),
                        (None, Some(d)) => (d, Vec::new()),
                        (None, None) => (format!("{DEVICES}({})", device.id), Vec::new()),
                    };
                    Ok::<_, BackendError>(Listed {
                        record: self.record(name, device, nics),
                        aliases,
                    })
                }
            }))
            .buffer_unordered(8);
        let listed: Vec<Listed> = futures::TryStreamExt::try_collect(listed).await?;
        // Profiles bound to a device that is not a listed server.
        withheld.extend(profile_of.into_values());
        // Devices gone from OME are forgotten.
        let present: std::collections::HashSet<&str> =
            listed.iter().map(|l| l.record.system_id.as_str()).collect();
        if let Ok(mut swept) = self.swept_nics.lock() {
            swept.retain(|id, _| present.contains(format!("{DEVICES}({id})").as_str()));
        }
        Ok(FleetListing {
            withholds_all: false,
            servers: listed,
            withheld,
        })
    }

    /// The device's NICs: from the last sweep when its inventory has not changed since.
    async fn swept_device_nics(&self, device: &Device) -> Result<Vec<Nic>, BackendError> {
        let time = device.inventory_time.clone();
        if let Some(time) = &time {
            let kept = self.swept_nics.lock().ok().and_then(|swept| {
                swept
                    .get(&device.id)
                    .filter(|(at, _)| at == time)
                    .map(|(_, nics)| nics.clone())
            });
            if let Some(nics) = kept {
                return Ok(nics);
            }
        }
        let nics = self.nics(device.id).await?;
        if let (Some(time), Ok(mut swept)) = (time, self.swept_nics.lock()) {
            swept.insert(device.id, (time, nics.clone()));
        }
        Ok(nics)
    }

    async fn profiles_named(&self, name: &ServerName) -> Result<Vec<Profile>, BackendError> {
        let items = self
            .query_eq(PROFILES, "ProfileName", name.as_str())
            .await?;
        Ok(items
            .iter()
            .filter_map(parse::profile)
            .filter(|p| name.matches(&p.name))
            .collect())
    }

    async fn devices_where(
        &self,
        prop: &str,
        value: &str,
        keep: impl Fn(&Device) -> bool,
    ) -> Result<Vec<Device>, BackendError> {
        let key = format!("GET {DEVICES}");
        let items = self.query_eq(DEVICES, prop, value).await?;
        let devices = items
            .iter()
            .map(parse::device)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|d| self.protocol(&key, &d))?;
        Ok(devices.into_iter().filter(keep).collect())
    }

    async fn device(&self, id: i64) -> Result<Device, BackendError> {
        let key = "GET /api/DeviceService/Devices({id})";
        let body = self
            .get_json(key, &format!("{}{DEVICES}({id})", self.base))
            .await?;
        parse::device(&body).map_err(|d| self.protocol(key, &d))
    }

    async fn nics(&self, id: i64) -> Result<Vec<Nic>, BackendError> {
        let key = "GET /api/DeviceService/Devices({id})/InventoryDetails";
        let url = format!(
            "{}{DEVICES}({id})/InventoryDetails('serverNetworkInterfaces')",
            self.base
        );
        let body = self.get_json(key, &url).await?;
        parse::network_interfaces(&body).map_err(|d| self.protocol(key, &d))
    }

    async fn record_for_profile(&self, profile: &Profile) -> Result<ServerRecord, BackendError> {
        let device = match profile.target() {
            ProfileTarget::Device(id) => {
                let (device, nics) = tokio::try_join!(self.device(id), self.nics(id))?;
                return Ok(self.record(profile.name.clone(), device, nics));
            }
            ProfileTarget::ServiceTag(tag) => self
                .devices_where("Identifier", &tag, |d| d.has_tag(&tag))
                .await?
                .into_iter()
                .next()
                // Reserved for hardware OME has not discovered yet.
                .ok_or_else(|| self.unassigned(profile))?,
            ProfileTarget::Unassigned => return Err(self.unassigned(profile)),
        };
        let nics = self.nics(device.id).await?;
        Ok(self.record(profile.name.clone(), device, nics))
    }

    async fn records_for_devices(
        &self,
        name: &ServerName,
    ) -> Result<Vec<ServerRecord>, BackendError> {
        let devices = self
            .devices_where("DeviceName", name.as_str(), |d| {
                d.is_server() && d.name.as_deref().is_some_and(|n| name.matches(n))
            })
            .await?;
        try_join_all(devices.into_iter().map(|device| async move {
            let nics = self.nics(device.id).await?;
            let vendor_name = device.name.clone().unwrap_or_else(|| name.to_string());
            Ok(self.record(vendor_name, device, nics))
        }))
        .await
    }

    fn record(&self, name: String, device: Device, nics: Vec<Nic>) -> ServerRecord {
        ServerRecord {
            name,
            vendor: Vendor::Dell,
            system: SystemKind::Ome,
            system_name: self.name.clone(),
            system_id: format!("{DEVICES}({})", device.id),
            bmc: device.bmc,
            boot_mac: parse::boot_mac(&nics),
            nics,
            serial_number: device.service_tag,
            model: device.model,
            power_state: device.power_state,
            fetched_at: Utc::now(),
            stale: false,
            unverified: Vec::new(),
            nics_unavailable: None,
        }
    }

    fn unassigned(&self, profile: &Profile) -> BackendError {
        BackendError::Unassigned {
            system: self.name.clone(),
            profile: profile.name.clone(),
        }
    }

    fn protocol(&self, endpoint: &str, detail: &str) -> BackendError {
        BackendError::Protocol {
            system: self.name.clone(),
            endpoint: endpoint.to_owned(),
            detail: detail.to_owned(),
        }
    }

    fn status_error(
        &self,
        endpoint: &str,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> BackendError {
        BackendError::Status {
            system: self.name.clone(),
            endpoint: endpoint.to_owned(),
            status: status.as_u16(),
            retry_after: retry_after(headers),
            detail: detail(body),
        }
    }
}

/// OME's error message when the body is its error envelope, else the start of the body.
fn detail(body: &[u8]) -> String {
    parse::error_message(body).unwrap_or_else(|| snippet(body))
}

#[async_trait]
impl Backend for Ome {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::Ome
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        self.fleet().await
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        let profiles = self.profiles_named(name).await?;
        if profiles.is_empty() {
            return self.records_for_devices(name).await;
        }
        let bound: Vec<&Profile> = profiles
            .iter()
            .filter(|p| p.target() != ProfileTarget::Unassigned)
            .collect();
        // An unbound profile names no server; it only matters when nothing else matched.
        if bound.is_empty() {
            return Err(self.unassigned(&profiles[0]));
        }
        try_join_all(bound.into_iter().map(|p| self.record_for_profile(p))).await
    }

    async fn logout(&self) {
        self.upstream.detach_pool();
        self.sessions.logout(self).await;
    }
}

#[async_trait]
impl SessionProtocol for Ome {
    type Session = Session;

    async fn login(&self) -> Result<Issued<Session>, BackendError> {
        Ok(Issued {
            session: self.login_now().await?,
            lifetime: Lifetime::Idle(IDLE_TIMEOUT),
        })
    }

    async fn logout(&self, session: &Session) -> Result<(), BackendError> {
        let Some(id) = session.id.as_deref() else {
            tracing::debug!(system = %self.name, "OME session without an Id; not logged out");
            return Ok(());
        };
        let key = "DELETE /api/SessionService/Sessions('{id}')";
        let url = format!(
            "{}{SESSIONS}('{}')",
            self.base,
            odata::encode_query_value(id)
        );
        // Unauthorized: the session had already expired, which is what a logout wants.
        match self.send(Method::DELETE, key, &url, session).await? {
            Reply::Body(_) | Reply::Unauthorized => Ok(()),
        }
    }
}
