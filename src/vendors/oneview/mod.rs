//! HPE OneView backend (see `vendor-notes/oneview.md`).
//!
//! Per lookup, with a live session: one `GET /rest/server-profiles?filter="name='X'"` (more only
//! if the appliance pages the matches), then one `GET <serverHardwareUri>` per matching profile.
//! The session is created lazily by the first lookup, shared by all of them, and renewed once
//! when the appliance answers 401.

mod parse;
mod session;

use async_trait::async_trait;
use futures::future::try_join_all;
use secrecy::SecretString;
use url::Url;

use super::upstream::Upstream;
use super::{Backend, BackendError, FleetListing, Listed};
use crate::config::SystemConfig;
use crate::domain::{ServerName, ServerRecord, SystemKind};
use parse::{HardwareFacts, Profile};
use session::Sessions;

pub use parse::name_filter;

/// `X-API-Version` when the config does not pin one: 4000 is OneView 7.0. Appliances accept
/// every version from their `minimumVersion` up to their own, so this works with 7.0 and later;
/// older appliances need `api_version` set (e.g. 2000 for 5.40).
pub const DEFAULT_API_VERSION: u32 = 4000;

const PROFILES_KEY: &str = "GET /rest/server-profiles";
const HARDWARE_KEY: &str = "GET /rest/server-hardware/{id}";
const HARDWARE_LIST_KEY: &str = "GET /rest/server-hardware";

pub struct OneView {
    name: String,
    endpoint: Url,
    page_size: u32,
    max_pages: u32,
    sessions: Sessions,
}

impl OneView {
    pub fn new(
        sys: &SystemConfig,
        upstream: Upstream,
        password: SecretString,
    ) -> Result<Self, BackendError> {
        let endpoint = super::endpoint_of(sys)?;
        if endpoint.cannot_be_a_base() {
            return Err(BackendError::Config {
                system: sys.name.clone(),
                detail: format!("endpoint {endpoint} cannot carry a path"),
            });
        }
        Ok(Self {
            name: sys.name.clone(),
            endpoint: endpoint.clone(),
            page_size: sys.page_size,
            max_pages: sys.max_pages,
            sessions: Sessions {
                system: sys.name.clone(),
                endpoint: endpoint.clone(),
                upstream,
                username: sys.username.clone(),
                password,
                login_domain: sys.login_domain.clone().filter(|d| !d.is_empty()),
                api_version: sys.api_version.unwrap_or(DEFAULT_API_VERSION),
                manager: super::session::SessionManager::new(&sys.name, sys.login_backoff),
            },
        })
    }

    fn protocol(&self, endpoint: &str, detail: String) -> BackendError {
        BackendError::Protocol {
            system: self.name.clone(),
            endpoint: endpoint.to_owned(),
            detail,
        }
    }

    /// Every profile the appliance returns for the name filter, pages followed, re-checked here.
    ///
    /// Bounded whatever the appliance sends: at most `max_pages` GETs, each page at most the
    /// `count` asked (`page_size`), and a `nextPageUri` that returns to an earlier page is a
    /// loop. All three are protocol failures, because returning what was collected could hide
    /// a match on a later page.
    async fn candidates(&self, name: &ServerName) -> Result<Vec<Profile>, BackendError> {
        let mut path = parse::first_page_path(name.as_str(), self.page_size).ok_or_else(|| {
            self.protocol(
                PROFILES_KEY,
                format!("{name:?} cannot be expressed in a OneView filter"),
            )
        })?;
        let mut seen = std::collections::HashSet::new();
        let mut members = Vec::new();
        for _ in 0..self.max_pages {
            seen.insert(path.clone());
            let body = self.sessions.get(&path, PROFILES_KEY).await?;
            let page = parse::profile_page(&body).map_err(|d| self.protocol(PROFILES_KEY, d))?;
            if page.members.len() > self.page_size as usize {
                return Err(self.protocol(
                    PROFILES_KEY,
                    format!(
                        "a page of {} profiles where count = {} was asked",
                        page.members.len(),
                        self.page_size
                    ),
                ));
            }
            members.extend(page.members);
            // An empty page with a next link is not the end (the appliance may cut pages short).
            match page.next_page_uri {
                None => return self.matching(members, name),
                // The SDK's end condition: the last page links to itself.
                Some(next) if next == path => return self.matching(members, name),
                Some(next) if seen.contains(&next) => {
                    return Err(self.protocol(
                        PROFILES_KEY,
                        format!("nextPageUri {next:?} returns to an earlier page"),
                    ))
                }
                Some(next) if !parse::valid_next_page(&next) => {
                    return Err(self.protocol(
                        PROFILES_KEY,
                        format!("nextPageUri {next:?} leaves the profile collection"),
                    ))
                }
                Some(next) => path = next,
            }
        }
        Err(self.protocol(
            PROFILES_KEY,
            format!(
                "more than max_pages = {} pages of profiles named {name:?}",
                self.max_pages
            ),
        ))
    }

    /// The profiles really named `name`. At most `page_size × max_pages` arrive, so at most
    /// that many hardware GETs follow.
    fn matching(
        &self,
        members: Vec<Profile>,
        name: &ServerName,
    ) -> Result<Vec<Profile>, BackendError> {
        Ok(parse::select_candidates(members, name))
    }

    async fn hardware(&self, profile: &Profile) -> Result<Option<HardwareFacts>, BackendError> {
        let Some(uri) = profile.server_hardware_uri.as_deref() else {
            return Ok(None);
        };
        if !parse::valid_hardware_path(uri) {
            return Err(self.protocol(
                PROFILES_KEY,
                format!("serverHardwareUri {uri:?} is not a /rest/server-hardware/<id> path"),
            ));
        }
        let body = self.sessions.get(uri, HARDWARE_KEY).await?;
        parse::hardware(&body)
            .map(Some)
            .map_err(|d| self.protocol(HARDWARE_KEY, d))
    }

    async fn record(&self, profile: Profile) -> Result<ServerRecord, BackendError> {
        let hw = self.hardware(&profile).await?.unwrap_or_default();
        self.record_with(profile, hw)
    }

    fn record_with(
        &self,
        profile: Profile,
        hw: HardwareFacts,
    ) -> Result<ServerRecord, BackendError> {
        let (nics, boot_mac) =
            parse::profile_nics(&profile).map_err(|d| self.protocol(PROFILES_KEY, d))?;
        let (Some(name), Some(uri)) = (profile.name, profile.uri) else {
            return Err(self.protocol(PROFILES_KEY, "profile without name or uri".into()));
        };
        Ok(ServerRecord {
            name,
            vendor: crate::domain::Vendor::Hpe,
            system: SystemKind::Oneview,
            system_name: self.name.clone(),
            system_id: uri,
            bmc: hw.bmc,
            nics,
            boot_mac,
            serial_number: hw.serial_number,
            model: hw.model,
            power_state: hw.power_state,
            fetched_at: chrono::Utc::now(),
            stale: false,
            unverified: Vec::new(),
            nics_unavailable: None,
        })
    }
}

impl OneView {
    /// Every page of `collection` from `first`, as JSON members. Bounded like
    /// [`Self::candidates`]: `max_pages` GETs, pages of at most `count`, no loop, no link out of
    /// the collection.
    async fn all_pages(
        &self,
        collection: &str,
        key: &str,
        count: u32,
    ) -> Result<Vec<serde_json::Value>, BackendError> {
        let mut path = format!("{collection}?start=0&count={count}");
        let mut seen = std::collections::HashSet::new();
        let mut members = Vec::new();
        let mut totals = super::paging::CountWatch::default();
        for _ in 0..super::paging::SWEEP_MAX_PAGES {
            seen.insert(path.clone());
            let body = self.sessions.get(&path, key).await?;
            let (page, next, total) =
                parse::value_page(&body).map_err(|d| self.protocol(key, d))?;
            totals.observe(total).map_err(|overrun| {
                super::paging_error(&self.name, key, overrun, &format!(" ({collection})"))
            })?;
            if page.len() > count as usize {
                return Err(self.protocol(
                    key,
                    format!(
                        "a page of {} members where count = {count} was asked",
                        page.len()
                    ),
                ));
            }
            members.extend(page);
            match next {
                None => return Ok(members),
                Some(next) if next == path => return Ok(members),
                Some(next) if seen.contains(&next) => {
                    return Err(self.protocol(
                        key,
                        format!("nextPageUri {next:?} returns to an earlier page"),
                    ))
                }
                Some(next) if !parse::valid_next_page_in(collection, &next) => {
                    return Err(
                        self.protocol(key, format!("nextPageUri {next:?} leaves the collection"))
                    )
                }
                Some(next) => path = next,
            }
        }
        Err(self.protocol(
            key,
            format!(
                "more than {} pages of {collection}",
                super::paging::SWEEP_MAX_PAGES
            ),
        ))
    }

    /// Every server the appliance holds: every profile with hardware assigned, joined with
    /// that hardware, each as [`Backend::find`] answers it. Two collections paged concurrently,
    /// `LIST_COUNT` per page (OneView's largest): ⌈profiles/256⌉ + ⌈hardware/256⌉ calls.
    /// Profiles without hardware are not servers: their names are withheld.
    async fn fleet(&self) -> Result<FleetListing, BackendError> {
        const LIST_COUNT: u32 = 256;
        let (profiles, hardware) = tokio::try_join!(
            self.all_pages(parse::PROFILES_PATH, PROFILES_KEY, LIST_COUNT),
            self.all_pages(parse::HARDWARE_PATH, HARDWARE_LIST_KEY, LIST_COUNT),
        )?;
        let mut facts = std::collections::HashMap::new();
        for member in &hardware {
            let (uri, hw) =
                parse::hardware_member(member).map_err(|d| self.protocol(HARDWARE_LIST_KEY, d))?;
            facts.insert(uri, hw);
        }
        let mut listed = Vec::new();
        let mut withheld = Vec::new();
        for member in &profiles {
            let profile =
                parse::profile_member(member).map_err(|d| self.protocol(PROFILES_KEY, d))?;
            let Some(uri) = profile.server_hardware_uri.clone() else {
                withheld.extend(profile.name.clone());
                continue;
            };
            // Hardware added between the two reads: asked for on its own; hardware that is
            // gone leaves a profile a lookup cannot answer either, so its name is withheld.
            let hw = match facts.remove(&uri) {
                Some(hw) => hw,
                None => match self.hardware(&profile).await {
                    Ok(hw) => hw.unwrap_or_default(),
                    Err(BackendError::Status { status: 404, .. }) => {
                        withheld.extend(profile.name.clone());
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            listed.push(Listed {
                record: self.record_with(profile, hw)?,
                aliases: Vec::new(),
            });
        }
        Ok(FleetListing {
            withholds_all: false,
            servers: listed,
            withheld,
        })
    }
}

#[async_trait]
impl Backend for OneView {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::Oneview
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        self.fleet().await
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        let mut candidates = self.candidates(name).await?;
        if candidates.len() == 1 && candidates[0].server_hardware_uri.is_none() {
            let profile = candidates.remove(0);
            return Err(BackendError::Unassigned {
                system: self.name.clone(),
                profile: profile.name.unwrap_or_else(|| name.to_string()),
            });
        }
        // Ambiguous matches are all returned (with whatever hardware each has) so that the
        // caller can list them; an unassigned one among them simply has no BMC.
        try_join_all(candidates.into_iter().map(|p| self.record(p))).await
    }

    async fn logout(&self) {
        self.sessions.logout().await;
    }
}
