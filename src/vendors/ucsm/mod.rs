//! Cisco UCS Manager: the XML API on `POST /nuova` (see `vendor-notes/ucsm.md`).
//!
//! A cold lookup costs two calls once a session exists:
//! 1. `configResolveClass lsServer`, hierarchical, filtered on the server side by
//!    `and(wcard name ^[Ww][Ee][Bb]-01$, eq type instance)`: the profile arrives with its
//!    `vnicEther` and `vnicIpV4*Addr` children. `eq` is case-sensitive in UCSM, and the
//!    gateway's contract is case-insensitive, so the name goes out as the anchored
//!    `[Xx]`-class regex that ucsmsdk itself generates for `flag="I"`; the exact
//!    case-insensitive comparison is then redone here.
//! 2. `configResolveDns` for every match at once: the blade/rack unit (serial, model, power),
//!    its `mgmt/if-1` (CIMC IP when the profile has none) and the adapter host-eth-ifs behind
//!    `derived` vNICs. Skipped when no match is associated.
//!
//! API errors come inside HTTP 200 bodies. 552 (session invalid) triggers one re-login and one
//! retry; a second 552 is [`BackendError::Auth`]. Login errors are `Auth`. Any other API error
//! is [`BackendError::Protocol`] with `errorCode`/`errorDescr` in the detail: UCSM gives no
//! HTTP status to retry on, and its codes do not say which are transient.

mod api;
pub(crate) mod parse;
pub(crate) mod xml;

use std::collections::HashSet;

use async_trait::async_trait;
use secrecy::SecretString;
use url::Url;

use super::upstream::Upstream;
use super::{Backend, BackendError, FleetListing, Listed};
use crate::config::SystemConfig;
use crate::domain::{ServerName, ServerRecord, SystemKind};
pub(crate) use api::XmlApi;
use xml::{escape_attr, Element};

/// `lsServer.name` is `[\-\.:_a-zA-Z0-9]{2,32}` in the UCSM object model: longer or shorter
/// names cannot exist, so they are answered "not here" without a call.
const PROFILE_NAME_LEN: std::ops::RangeInclusive<usize> = 2..=32;

pub struct Ucsm {
    name: String,
    endpoint: Url,
    api: XmlApi,
    /// Answers with more profiles than this are refused: `page_size × max_pages`, the most
    /// any backend accepts for one name (UCSM answers a class query in one document).
    max_matches: usize,
}

impl Ucsm {
    pub fn new(
        sys: &SystemConfig,
        upstream: Upstream,
        password: SecretString,
    ) -> Result<Self, BackendError> {
        let endpoint = super::endpoint_of(sys)?;
        Ok(Self {
            name: sys.name.clone(),
            endpoint: endpoint.clone(),
            api: XmlApi::new(
                &sys.name,
                api_url(&endpoint),
                upstream,
                &sys.username,
                password,
                sys.login_backoff,
            ),
            max_matches: (sys.page_size as usize).saturating_mul(sys.max_pages as usize),
        })
    }

    async fn resolve_hardware(
        &self,
        profiles: &[&parse::Profile],
    ) -> Result<std::collections::HashMap<String, Element>, BackendError> {
        let mut seen = HashSet::new();
        let dns: Vec<String> = profiles
            .iter()
            .flat_map(|p| p.hardware_dns())
            .filter(|dn| seen.insert(dn.clone()))
            .collect();
        // A sweep resolves every profile's hardware: in batches, so no one request (or
        // answer) grows with the fleet.
        let answers = futures::future::try_join_all(dns.chunks(DNS_BATCH).map(|batch| {
            self.api.query("configResolveDns", move |cookie| {
                resolve_dns_body(cookie, batch)
            })
        }))
        .await?;
        Ok(answers.iter().flat_map(parse::objects_by_dn).collect())
    }

    /// Every associated service profile (an instance bound to hardware), each as
    /// [`Backend::find`] answers it: one hierarchical `configResolveClass lsServer` filtered on
    /// `type = instance` (UCS Manager answers a class query in one document, no paging), then
    /// the hardware of all of them by `configResolveDns` in batches of [`DNS_BATCH`]:
    /// 1 + ⌈hardware DNs / DNS_BATCH⌉ calls.
    /// Unassociated instances are not servers: their names are withheld.
    async fn fleet(&self) -> Result<FleetListing, BackendError> {
        let root = self
            .api
            .query("configResolveClass", |cookie| instances_body(cookie, true))
            .await?;
        let (profiles, unassociated): (Vec<parse::Profile>, Vec<parse::Profile>) =
            parse::profiles(&root)
                .into_iter()
                .filter(parse::Profile::is_instance)
                .partition(|p| p.pn_dn.is_some());
        let refs: Vec<&parse::Profile> = profiles.iter().collect();
        let hardware = self.resolve_hardware(&refs).await?;
        Ok(FleetListing {
            withholds_all: false,
            servers: profiles
                .iter()
                .map(|p| Listed {
                    record: parse::record(p, &hardware, &self.name),
                    aliases: Vec::new(),
                })
                .collect(),
            withheld: unassociated.into_iter().map(|p| p.name).collect(),
        })
    }
}

/// DNs per `configResolveDns` of a sweep (a lookup needs a handful).
const DNS_BATCH: usize = 200;

/// Every service profile instance (not templates); `hierarchical`: with vNICs and IPs.
pub(crate) fn instances_body(cookie: &str, hierarchical: bool) -> String {
    format!(
        concat!(
            r#"<configResolveClass cookie="{}" classId="lsServer" inHierarchical="{}">"#,
            r#"<inFilter><eq class="lsServer" property="type" value="instance" /></inFilter>"#,
            r#"</configResolveClass>"#
        ),
        escape_attr(cookie),
        hierarchical
    )
}

#[async_trait]
impl Backend for Ucsm {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::Ucsm
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    async fn list(&self) -> Result<FleetListing, BackendError> {
        self.fleet().await
    }

    async fn find(&self, name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        let Some(root) = self.api.profiles_named(name, true).await? else {
            return Ok(Vec::new());
        };
        let returned = parse::profiles(&root);
        self.api
            .check_match_count(returned.len(), self.max_matches, name)?;
        let matches: Vec<parse::Profile> = returned
            .into_iter()
            .filter(|p| p.is_instance() && name.matches(&p.name))
            .collect();
        let (associated, unassociated): (Vec<_>, Vec<_>) =
            matches.iter().partition(|p| p.pn_dn.is_some());
        if associated.is_empty() {
            return match unassociated.first() {
                Some(p) => Err(BackendError::Unassigned {
                    system: self.name.clone(),
                    profile: p.dn.clone(),
                }),
                None => Ok(Vec::new()),
            };
        }
        for p in &unassociated {
            tracing::debug!(system = %self.name, profile = %p.dn, "ignoring unassociated service profile with the same name");
        }
        let hardware = self.resolve_hardware(&associated).await?;
        Ok(associated
            .iter()
            .map(|p| parse::record(p, &hardware, &self.name))
            .collect())
    }

    async fn logout(&self) {
        self.api.logout().await;
    }
}

/// `https://ucs.example/` → `https://ucs.example/nuova` (a path in the endpoint is kept).
fn api_url(endpoint: &Url) -> Url {
    let mut url = endpoint.clone();
    let path = url.path().trim_end_matches('/');
    if !path.ends_with("/nuova") {
        let joined = format!("{path}/nuova");
        url.set_path(&joined);
    }
    url
}

/// An anchored regex matching exactly `name` in any letter case: each letter becomes a
/// `[Xx]` class (as ucsmsdk's `flag="I"` does) and `.` is escaped. The other characters a
/// [`ServerName`] may hold (`-`, `_`, `:`, digits) are literal outside brackets.
fn case_insensitive_regex(name: &ServerName) -> String {
    let mut re = String::with_capacity(name.as_str().len() * 4 + 2);
    re.push('^');
    for c in name.as_str().chars() {
        match c {
            c if c.is_ascii_alphabetic() => {
                re.push('[');
                re.push(c.to_ascii_uppercase());
                re.push(c.to_ascii_lowercase());
                re.push(']');
            }
            '.' => re.push_str("\\."),
            c => re.push(c),
        }
    }
    re.push('$');
    re
}

/// `hierarchical`: with the vNIC and IP children (UCS Manager); UCS Central's profile attributes
/// (`domain`, `lsDn`) are all its lookup needs.
fn find_profile_body(cookie: &str, name: &ServerName, hierarchical: bool) -> String {
    format!(
        concat!(
            r#"<configResolveClass cookie="{}" classId="lsServer" inHierarchical="{}">"#,
            r#"<inFilter><and>"#,
            r#"<wcard class="lsServer" property="name" value="{}" />"#,
            r#"<eq class="lsServer" property="type" value="instance" />"#,
            r#"</and></inFilter></configResolveClass>"#
        ),
        escape_attr(cookie),
        hierarchical,
        escape_attr(&case_insensitive_regex(name))
    )
}

fn resolve_dns_body(cookie: &str, dns: &[String]) -> String {
    let mut body = format!(
        r#"<configResolveDns cookie="{}" inHierarchical="false"><inDns>"#,
        escape_attr(cookie)
    );
    for dn in dns {
        body.push_str(&format!(r#"<dn value="{}" />"#, escape_attr(dn)));
    }
    body.push_str("</inDns></configResolveDns>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServerName {
        ServerName::parse(s).unwrap()
    }

    #[test]
    fn regex_is_anchored_case_insensitive_and_escapes_dots() {
        assert_eq!(
            case_insensitive_regex(&name("Web-01.a_b:c")),
            r"^[Ww][Ee][Bb]-01\.[Aa]_[Bb]:[Cc]$"
        );
        assert_eq!(case_insensitive_regex(&name("42")), "^42$");
    }

    #[test]
    fn request_bodies_parse_and_carry_the_values() {
        let body = find_profile_body("1/a&b", &name("web.01"), true);
        let root = xml::parse(body.as_bytes()).unwrap();
        assert_eq!(root.name, "configResolveClass");
        assert_eq!(root.attr("cookie"), Some("1/a&b"));
        assert_eq!(root.attr("inHierarchical"), Some("true"));
        let and = root.child("inFilter").and_then(|f| f.child("and")).unwrap();
        let wcard = and.child("wcard").unwrap();
        assert_eq!(wcard.attr("property"), Some("name"));
        assert_eq!(wcard.attr("value"), Some(r"^[Ww][Ee][Bb]\.01$"));
        assert_eq!(
            and.child("eq").and_then(|e| e.attr("value")),
            Some("instance")
        );

        let body = resolve_dns_body("c", &["sys/rack-unit-1".into(), "x\"y".into()]);
        let root = xml::parse(body.as_bytes()).unwrap();
        let dns: Vec<_> = root
            .child("inDns")
            .unwrap()
            .children
            .iter()
            .filter_map(|d| d.attr("value"))
            .collect();
        assert_eq!(dns, ["sys/rack-unit-1", "x\"y"]);
    }

    #[test]
    fn api_url_appends_nuova_once() {
        for (base, want) in [
            ("https://ucs.example", "https://ucs.example/nuova"),
            ("https://ucs.example/", "https://ucs.example/nuova"),
            (
                "http://10.0.0.1:8080/ucsm/",
                "http://10.0.0.1:8080/ucsm/nuova",
            ),
            ("https://ucs.example/nuova", "https://ucs.example/nuova"),
        ] {
            assert_eq!(api_url(&Url::parse(base).unwrap()).as_str(), want);
        }
    }
}
