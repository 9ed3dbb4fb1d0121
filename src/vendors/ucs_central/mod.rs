//! Cisco UCS Central: one login in front of many UCS Manager domains (see
//! `vendor-notes/central-intersight-redfish-limits.md`). Central speaks the UCS XML API on
//! `POST /xmlIM/central-mgr`; its `lsServer` carries the domain that holds the profile
//! (`domain`, the UCS Manager's address) and the profile's DN there (`lsDn`).
//!
//! A cold lookup, sessions open, costs three dependent calls:
//! 1. Central: `configResolveClass lsServer`, filtered on the server side on the name (the
//!    same anchored case-insensitive regex as UCS Manager) and `type = instance`, flat.
//! 2. + 3. The profile's domain, with the `ucsm` backend's own two-call lookup.
//!
//! The registered domains (`computeSystem`) are listed once and again only when a profile names
//! an address the list lacks (at most every [`RELIST_AFTER`]): the gateway sends the fleet-wide
//! UCS Manager login only to domains Central itself lists. Each domain has its own session,
//! throttle, breaker and metrics label (`<central>/<address>`), so a dead domain fails its own
//! lookups and never the Central's breaker.

mod domains;

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use secrecy::SecretString;
use tokio::time::Instant;
use url::Url;

use super::ucsm::{parse, XmlApi};
use super::upstream::Upstream;
use super::{Backend, BackendEnv, BackendError, FleetListing, Listed};
use crate::config::SystemConfig;
use crate::domain::{ServerName, ServerRecord, SystemKind};
use domains::Domains;
pub use domains::MemberStatus;

/// An unknown domain address makes the next lookup list the domains again, at most this often.
const RELIST_AFTER: Duration = Duration::from_secs(30);

pub struct UcsCentral {
    name: String,
    endpoint: Url,
    central: XmlApi,
    domains: Domains,
    /// When Central's domain list was last read; held while it is read again, so concurrent
    /// lookups naming an unknown address wait for one read instead of each making one.
    listed_at: tokio::sync::Mutex<Option<Instant>>,
    max_matches: usize,
}

/// A UCS Manager domain as UCS Central lists it (`computeSystem`).
#[derive(Debug, Clone)]
pub struct Registered {
    pub address: String,
    pub name: String,
}

/// The attributes of a Central `lsServer` the lookup needs.
#[derive(Debug)]
struct CentralProfile {
    dn: String,
    name: String,
    domain: String,
    ls_dn: String,
}

impl UcsCentral {
    pub fn new(
        sys: &SystemConfig,
        upstream: Upstream,
        password: SecretString,
        env: BackendEnv,
    ) -> Result<Self, BackendError> {
        let endpoint = super::endpoint_of(sys)?;
        Ok(Self {
            name: sys.name.clone(),
            endpoint: endpoint.clone(),
            central: XmlApi::new(
                &sys.name,
                api_url(&endpoint),
                upstream,
                &sys.username,
                password,
                sys.login_backoff,
            ),
            domains: Domains::new(sys, env)?,
            listed_at: tokio::sync::Mutex::new(None),
            max_matches: (sys.page_size as usize).saturating_mul(sys.max_pages as usize),
        })
    }

    /// The registered domain at `address`, listing the domains again when it is unknown.
    async fn registered(&self, address: &str) -> Result<Option<Registered>, BackendError> {
        let mut listed_at = self.listed_at.lock().await;
        if let Some(r) = self.domains.listed(address) {
            return Ok(Some(r));
        }
        if listed_at.is_some_and(|at| at.elapsed() < RELIST_AFTER) {
            return Ok(None);
        }
        self.read_domains().await?;
        *listed_at = Some(Instant::now());
        Ok(self.domains.listed(address))
    }

    /// Central's registered domains (`computeSystem`), read now and remembered.
    async fn read_domains(&self) -> Result<Vec<Registered>, BackendError> {
        let root = self
            .central
            .query("configResolveClass", |cookie| {
                format!(
                    r#"<configResolveClass cookie="{}" classId="computeSystem" inHierarchical="false"/>"#,
                    super::ucsm::xml::escape_attr(cookie)
                )
            })
            .await?;
        let listed: Vec<Registered> = parse::out_configs(&root)
            .filter(|e| e.name == "computeSystem")
            .filter_map(|e| {
                Some(Registered {
                    address: e.attr("address").filter(|a| !a.is_empty())?.to_owned(),
                    name: e.attr("name").unwrap_or_default().to_owned(),
                })
            })
            .collect();
        tracing::debug!(system = %self.name, domains = listed.len(), "UCS Central domains listed");
        self.domains.discovered(listed.clone());
        Ok(listed)
    }

    /// The profile's records from the domain that holds it.
    async fn ask_domain(
        &self,
        profile: &CentralProfile,
        name: &ServerName,
    ) -> Result<Vec<ServerRecord>, BackendError> {
        if profile.domain.is_empty() {
            // A global service profile not deployed to any domain: it exists, without hardware.
            return Err(BackendError::Unassigned {
                system: self.name.clone(),
                profile: profile.dn.clone(),
            });
        }
        let failed = |source: BackendError| BackendError::Domain {
            system: self.name.clone(),
            domain: profile.domain.clone(),
            profile: profile.dn.clone(),
            source: Box::new(source),
        };
        let Some(registered) = self.registered(&profile.domain).await? else {
            return Err(failed(BackendError::Inconsistent {
                system: self.name.clone(),
                detail: format!(
                    "the profile names UCS domain {:?}, which UCS Central does not list among its registered domains",
                    profile.domain
                ),
            }));
        };
        let domain = self.domains.client(&registered).map_err(failed)?;
        let records = match domain.find(name).await {
            Ok(records) => records,
            // The domain answered: the profile is there without hardware.
            Err(BackendError::Unassigned { profile: dn, .. }) => {
                return Err(BackendError::Unassigned {
                    system: self.name.clone(),
                    profile: format!("{}/{dn}", registered.address),
                })
            }
            Err(e) => return Err(failed(e)),
        };
        // Central names the profile's DN in the domain; a same-named profile in another org
        // of that domain is not the one Central means.
        let wanted: Vec<ServerRecord> = if profile.ls_dn.is_empty() {
            records
        } else {
            records
                .into_iter()
                .filter(|r| r.system_id == profile.ls_dn)
                .collect()
        };
        if wanted.is_empty() {
            return Err(failed(BackendError::Inconsistent {
                system: domain.label().to_owned(),
                detail: format!(
                    "UCS Central places service profile {} here, but the domain holds no associated profile {:?}",
                    if profile.ls_dn.is_empty() { &profile.dn } else { &profile.ls_dn },
                    profile.name
                ),
            }));
        }
        Ok(wanted
            .into_iter()
            .map(|r| self.relabel(r, &registered))
            .collect())
    }

    /// A domain's record as the Central's.
    fn relabel(&self, mut r: ServerRecord, registered: &Registered) -> ServerRecord {
        r.system = SystemKind::UcsCentral;
        r.system_name = self.name.clone();
        r.system_id = format!("{}/{}", registered.address, r.system_id);
        r
    }

    /// Every server behind the Central, each as [`Backend::find`] answers it: Central's
    /// registered domains and its service profile instances (flat) read concurrently (2 calls),
    /// then every domain Central places profiles in, listed concurrently through its own
    /// breaker (each `1 + ⌈hardware DNs / 200⌉` calls, see UCS Manager's sweep).
    /// A domain's record is kept when Central places that profile (its `lsDn`) there. A domain
    /// that cannot be listed fails the sweep, naming the domain.
    /// Profiles Central places in no domain it lists, and the ones a domain holds without
    /// hardware, are not servers: their names are withheld.
    async fn fleet(&self) -> Result<FleetListing, BackendError> {
        let (registered, root) = tokio::try_join!(
            self.read_domains(),
            self.central.query("configResolveClass", |cookie| {
                super::ucsm::instances_body(cookie, false)
            }),
        )?;
        // Per domain: each placed profile's DN there, and its name in Central.
        let mut placed: std::collections::HashMap<
            String,
            std::collections::HashMap<String, String>,
        > = std::collections::HashMap::new();
        let listed_domains: std::collections::HashSet<String> = registered
            .iter()
            .map(|r| r.address.to_ascii_lowercase())
            .collect();
        let mut withheld = Vec::new();
        for p in central_profiles(&root) {
            let domain = p.domain.to_ascii_lowercase();
            if !p.ls_dn.is_empty() && listed_domains.contains(&domain) {
                placed.entry(domain).or_default().insert(p.ls_dn, p.name);
            } else {
                withheld.push(p.name);
            }
        }
        let lists = futures::future::try_join_all(
            registered
                .iter()
                .filter_map(|r| Some((r, placed.get(&r.address.to_ascii_lowercase())?)))
                .map(|(r, wanted)| async move {
                    let failed = |source: BackendError| BackendError::Domain {
                        system: self.name.clone(),
                        domain: r.address.clone(),
                        profile: "(every profile: fleet sweep)".into(),
                        source: Box::new(source),
                    };
                    let domain = self.domains.client(r).map_err(failed)?;
                    let listed = domain.list().await.map_err(failed)?;
                    let mut withheld = listed.withheld;
                    let mut servers = Vec::new();
                    let mut found = std::collections::HashSet::new();
                    for l in listed.servers {
                        let Some(central_name) = wanted.get(&l.record.system_id) else {
                            continue;
                        };
                        found.insert(l.record.system_id.clone());
                        // A lookup by Central's name would not find the domain's record under
                        // another name: neither name is the index's to answer.
                        if !central_name.eq_ignore_ascii_case(&l.record.name) {
                            withheld.push(central_name.clone());
                            withheld.push(l.record.name.clone());
                            continue;
                        }
                        servers.push(Listed {
                            record: self.relabel(l.record, r),
                            aliases: l.aliases,
                        });
                    }
                    // Placed by Central, missing from the domain: a lookup says inconsistent.
                    withheld.extend(
                        wanted
                            .iter()
                            .filter(|(dn, _)| !found.contains(*dn))
                            .map(|(_, name)| name.clone()),
                    );
                    Ok::<_, BackendError>((servers, withheld))
                }),
        )
        .await?;
        for (_, domain_withheld) in &lists {
            withheld.extend(domain_withheld.iter().cloned());
        }
        Ok(FleetListing {
            withholds_all: false,
            servers: lists.into_iter().flat_map(|(s, _)| s).collect(),
            withheld,
        })
    }
}

#[async_trait]
impl Backend for UcsCentral {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::UcsCentral
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        self.fleet().await
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        // Flat: Central's profile attributes (`domain`, `lsDn`) are all this step needs.
        let Some(root) = self.central.profiles_named(name, false).await? else {
            return Ok(Vec::new());
        };
        let returned = central_profiles(&root);
        self.central
            .check_match_count(returned.len(), self.max_matches, name)?;
        let profiles: Vec<&CentralProfile> =
            returned.iter().filter(|p| name.matches(&p.name)).collect();
        let answers = join_all(profiles.iter().map(|p| self.ask_domain(p, name))).await;
        let mut found = Vec::new();
        let mut unassigned = None;
        for answer in answers {
            match answer {
                Ok(records) => found.extend(records),
                Err(e @ BackendError::Unassigned { .. }) => unassigned = unassigned.or(Some(e)),
                // One profile of that name could not be read: answering with the others would
                // claim a single match that may not be one.
                Err(e) => return Err(e),
            }
        }
        match (found.is_empty(), unassigned) {
            (true, Some(e)) => Err(e),
            _ => Ok(found),
        }
    }

    fn members(&self) -> Vec<MemberStatus> {
        self.domains.statuses()
    }

    async fn logout(&self) {
        join_all(
            self.domains
                .open()
                .iter()
                .map(|d| async move { d.logout().await }),
        )
        .await;
        self.central.logout().await;
    }
}

/// The service profile instances of a Central `lsServer` answer.
fn central_profiles(root: &super::ucsm::xml::Element) -> Vec<CentralProfile> {
    parse::out_configs(root)
        .filter(|e| e.name == "lsServer")
        .filter(|e| e.attr("type").unwrap_or("instance") == "instance")
        .filter_map(|e| {
            Some(CentralProfile {
                dn: e.attr("dn")?.to_owned(),
                name: e.attr("name")?.to_owned(),
                domain: e.attr("domain").unwrap_or_default().trim().to_owned(),
                ls_dn: e.attr("lsDn").unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// `https://central.example/` → `https://central.example/xmlIM/central-mgr` (a path in the
/// endpoint is kept), where ucscsdk posts.
fn api_url(endpoint: &Url) -> Url {
    let mut url = endpoint.clone();
    let path = url.path().trim_end_matches('/');
    if !path.ends_with("/xmlIM/central-mgr") {
        let joined = format!("{path}/xmlIM/central-mgr");
        url.set_path(&joined);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_appends_the_central_manager_path_once() {
        for (base, want) in [
            ("https://c.example", "https://c.example/xmlIM/central-mgr"),
            ("https://c.example/", "https://c.example/xmlIM/central-mgr"),
            (
                "https://c.example/xmlIM/central-mgr",
                "https://c.example/xmlIM/central-mgr",
            ),
        ] {
            assert_eq!(api_url(&Url::parse(base).unwrap()).as_str(), want);
        }
    }
}
