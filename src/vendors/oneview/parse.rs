//! Pure OneView payload handling: the name filter, the profile list envelope, connections and
//! server hardware. No I/O here, so every rule is unit-tested against captured payloads.
//!
//! Decoding is lenient in the way OneView needs: every field is optional and unknown fields and
//! enum values are ignored, because `type` versions and enum sets grow between releases.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Deserializer};

use crate::domain::{Bmc, BmcAddress, MacAddress, Nic, ServerName};

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const PROFILES_PATH: &str = "/rest/server-profiles";
pub const HARDWARE_PATH: &str = "/rest/server-hardware";
pub const HARDWARE_PREFIX: &str = "/rest/server-hardware/";

/// The `filter` query value selecting profiles named `name` (`=` is case-insensitive on the
/// appliance), in the SDK's spelling `"name='X'"`, percent-encoded.
///
/// OneView documents no escape for a quote inside a filter value, so a name holding `'`, `"` or
/// `\` is refused rather than guessed at. `ServerName` already excludes them; this is the second
/// layer that keeps the filter safe if that type ever widens.
pub fn name_filter(name: &str) -> Option<String> {
    if name.is_empty() || name.chars().any(|c| matches!(c, '\'' | '"' | '\\')) {
        return None;
    }
    let raw = format!("\"name='{name}'\"");
    Some(utf8_percent_encode(&raw, NOT_UNRESERVED).to_string())
}

/// First page of the profile query.
pub fn first_page_path(name: &str, page_size: u32) -> Option<String> {
    let filter = name_filter(name)?;
    Some(format!(
        "{PROFILES_PATH}?start=0&count={page_size}&filter={filter}"
    ))
}

/// A `nextPageUri` is followed only if it stays inside the profile collection on the same
/// appliance: the session token goes with it, so an absolute or scheme-relative URI is refused.
pub fn valid_next_page(uri: &str) -> bool {
    valid_next_page_in(PROFILES_PATH, uri)
}

/// The same rule for any collection path.
pub fn valid_next_page_in(collection: &str, uri: &str) -> bool {
    uri.strip_prefix(collection)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
        && !uri.contains('#')
}

/// One page of a collection as JSON values (members) and its next link.
/// A page's members, its `nextPageUri` and its `total` (the collection's size as the
/// appliance counts it on this page).
pub type ValuePage = (Vec<serde_json::Value>, Option<String>, Option<u64>);

pub fn value_page(body: &[u8]) -> Result<ValuePage, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("collection is not JSON: {e}"))?;
    let members = v
        .get("members")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .ok_or("collection has no `members` array")?;
    let next = v
        .get("nextPageUri")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let total = v.get("total").and_then(serde_json::Value::as_u64);
    Ok((members, next, total))
}

/// `serverHardwareUri` must name one hardware item by a relative path; anything else (another
/// collection, a query, `..`, an absolute URL) is a protocol error rather than a URL to follow.
pub fn valid_hardware_path(uri: &str) -> bool {
    uri.strip_prefix(HARDWARE_PREFIX).is_some_and(|id| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && id != "."
            && id != ".."
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub name: Option<String>,
    pub uri: Option<String>,
    pub server_hardware_uri: Option<String>,
    pub connection_settings: Option<ConnectionSettings>,
    /// API versions before connectionSettings existed (OneView 2.0 era) put the list here.
    pub connections: Option<Vec<Connection>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectionSettings {
    pub connections: Option<Vec<Connection>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    #[serde(default, deserialize_with = "lenient_int")]
    pub id: Option<i64>,
    pub name: Option<String>,
    pub function_type: Option<String>,
    pub port_id: Option<String>,
    pub mac: Option<String>,
    pub boot: Option<ConnectionBoot>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectionBoot {
    pub priority: Option<String>,
}

/// Connection ids are integers in every sample, but OneView sends several numbers as strings
/// (`requestedMbps`), so a numeric string is accepted too; anything else counts as absent.
fn lenient_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// One page of `GET /rest/server-profiles`.
#[derive(Debug, Default)]
pub struct ProfilePage {
    pub members: Vec<Profile>,
    pub next_page_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Listing {
    Envelope {
        members: Option<Vec<Profile>>,
        #[serde(rename = "nextPageUri")]
        next_page_uri: Option<String>,
    },
    /// The SDK's `get_all()` output (and some tooling dumps) is a bare array of profiles.
    Bare(Vec<Profile>),
}

pub fn profile_page(body: &[u8]) -> Result<ProfilePage, String> {
    let listing: Listing = serde_json::from_slice(body)
        .map_err(|e| format!("profile list is not a OneView collection: {e}"))?;
    match listing {
        Listing::Envelope {
            members: Some(members),
            next_page_uri,
        } => Ok(ProfilePage {
            members,
            next_page_uri: next_page_uri.filter(|u| !u.trim().is_empty()),
        }),
        Listing::Envelope { members: None, .. } => {
            Err("profile list has no `members` array".to_owned())
        }
        Listing::Bare(members) => Ok(ProfilePage {
            members,
            next_page_uri: None,
        }),
    }
}

/// The profiles that are really called `name`. The appliance filter is case-insensitive and has
/// been known to be ignored, so the match is re-checked here. Among case variants an exact-case
/// match wins; otherwise every case-insensitive match is returned and the caller reports the
/// ambiguity.
pub fn select_candidates(members: Vec<Profile>, name: &ServerName) -> Vec<Profile> {
    let matching: Vec<Profile> = members
        .into_iter()
        .filter(|p| p.name.as_deref().is_some_and(|n| name.matches(n)))
        .collect();
    if matching.len() > 1 {
        let exact: Vec<Profile> = matching
            .iter()
            .filter(|p| p.name.as_deref() == Some(name.as_str()))
            .cloned()
            .collect();
        if !exact.is_empty() {
            return exact;
        }
    }
    matching
}

/// NICs of a profile, in connection `id` order, and the boot MAC.
///
/// - Only Ethernet connections with a MAC: FibreChannel/iSCSI-only functions and connections
///   whose MAC is not allocated yet name no NIC.
/// - `name` is the connection name, or the FlexNIC label (`portId`) when the name is empty;
///   `location` is always `portId`; `kind` is `functionType` lower-cased (`ethernet`), the
///   interface type, so that callers can tell it apart from other vendors' kinds.
/// - boot MAC: the first Ethernet connection whose `boot.priority` is `Primary`, else the first NIC.
pub fn profile_nics(profile: &Profile) -> Result<(Vec<Nic>, Option<MacAddress>), String> {
    let mut connections: Vec<&Connection> = profile
        .connection_settings
        .as_ref()
        .and_then(|s| s.connections.as_ref())
        .or(profile.connections.as_ref())
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    // Missing ids sort last, keeping the vendor's order among themselves (stable sort).
    connections.sort_by_key(|c| c.id.map_or((1, 0), |id| (0, id)));
    let mut nics = Vec::new();
    let mut boot = None;
    for c in connections {
        let Some(nic) = ethernet_nic(c)? else {
            continue;
        };
        let primary = c
            .boot
            .as_ref()
            .and_then(|b| b.priority.as_deref())
            .is_some_and(|p| p.eq_ignore_ascii_case("Primary"));
        if primary && boot.is_none() {
            boot = Some(nic.mac);
        }
        nics.push(nic);
    }
    let boot = boot.or_else(|| nics.first().map(|n| n.mac));
    Ok((nics, boot))
}

fn ethernet_nic(c: &Connection) -> Result<Option<Nic>, String> {
    let ethernet = c
        .function_type
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("Ethernet"));
    let mac_text = c.mac.as_deref().map(str::trim).unwrap_or_default();
    if !ethernet || mac_text.is_empty() {
        return Ok(None);
    }
    let mac = MacAddress::parse(mac_text)
        .map_err(|_| format!("connection {:?} has an unreadable MAC", c.id))?;
    if mac.is_zero() {
        return Ok(None);
    }
    let port = c
        .port_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let name = c
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .or(port)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(format!(
            "connection {:?} has neither a name nor a portId",
            c.id
        ));
    }
    Ok(Some(Nic {
        name: name.to_owned(),
        mac,
        kind: c.function_type.as_deref().map(str::to_ascii_lowercase),
        location: port.map(str::to_owned),
    }))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hardware {
    mp_host_info: Option<MpHostInfo>,
    /// Before API 200 the iLO address and name were top-level fields.
    mp_ip_address: Option<String>,
    mp_dns_name: Option<String>,
    mp_model: Option<String>,
    serial_number: Option<String>,
    model: Option<String>,
    power_state: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MpHostInfo {
    mp_host_name: Option<String>,
    mp_ip_addresses: Option<Vec<MpIpAddress>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct MpIpAddress {
    address: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// What the gateway takes from a server-hardware resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardwareFacts {
    pub bmc: Option<Bmc>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub power_state: Option<String>,
}

pub fn hardware(body: &[u8]) -> Result<HardwareFacts, String> {
    let hw: Hardware = serde_json::from_slice(body)
        .map_err(|e| format!("server hardware is not a OneView resource: {e}"))?;
    Ok(facts(hw))
}

/// A member of the server-hardware collection: its `uri` and facts.
pub fn hardware_member(v: &serde_json::Value) -> Result<(String, HardwareFacts), String> {
    let uri = v
        .get("uri")
        .and_then(serde_json::Value::as_str)
        .filter(|u| valid_hardware_path(u))
        .ok_or("a server-hardware member without a /rest/server-hardware/<id> uri")?
        .to_owned();
    let hw: Hardware = serde_json::from_value(v.clone())
        .map_err(|e| format!("server hardware {uri} is not a OneView resource: {e}"))?;
    Ok((uri, facts(hw)))
}

/// A profile member of a listing page.
pub fn profile_member(v: &serde_json::Value) -> Result<Profile, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("profile is not a OneView resource: {e}"))
}

fn facts(hw: Hardware) -> HardwareFacts {
    let bmc = ilo_address(&hw).map(|address| {
        Bmc::reported(
            address,
            non_empty(hw.mp_model.as_deref()).map(|m| m.to_ascii_lowercase()),
        )
    });
    HardwareFacts {
        bmc,
        serial_number: non_empty(hw.serial_number.as_deref()).map(str::to_owned),
        model: non_empty(hw.model.as_deref()).map(str::to_owned),
        power_state: non_empty(hw.power_state.as_deref()).map(str::to_ascii_lowercase),
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The iLO address. `mpIpAddresses` usually lists a link-local address first, so the list is
/// ranked: Static, DHCP, SLAAC, Undefined (IPv4 before IPv6 within a type); LinkLocal, Lookup and
/// types this code does not know are never chosen. Then `mpHostName` if it is an address or host
/// name, then the pre-API-200 `mpIpAddress` / `mpDnsName`.
fn ilo_address(hw: &Hardware) -> Option<BmcAddress> {
    let info = hw.mp_host_info.as_ref();
    let mut ranked: Vec<(usize, bool, BmcAddress)> = info
        .and_then(|i| i.mp_ip_addresses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let rank = type_rank(a.kind.as_deref()?)?;
            let addr = usable(a.address.as_deref())?;
            let v6 = matches!(addr, BmcAddress::Ip(std::net::IpAddr::V6(_)));
            Some((rank, v6, addr))
        })
        .collect();
    ranked.sort_by_key(|(rank, v6, _)| (*rank, *v6));
    ranked
        .into_iter()
        .map(|(_, _, a)| a)
        .next()
        .or_else(|| usable(info.and_then(|i| i.mp_host_name.as_deref())))
        .or_else(|| usable(hw.mp_ip_address.as_deref()))
        .or_else(|| usable(hw.mp_dns_name.as_deref()))
}

fn type_rank(kind: &str) -> Option<usize> {
    ["Static", "DHCP", "SLAAC", "Undefined"]
        .iter()
        .position(|t| t.eq_ignore_ascii_case(kind.trim()))
}

fn usable(s: Option<&str>) -> Option<BmcAddress> {
    BmcAddress::parse(non_empty(s)?)
        .ok()
        .filter(BmcAddress::is_usable)
}

/// `errorCode: message` of a OneView ErrorMessage body, if it is one.
pub fn error_summary(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorMessage {
        error_code: Option<String>,
        message: Option<String>,
    }
    let e: ErrorMessage = serde_json::from_slice(body).ok()?;
    match (e.error_code, e.message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (Some(c), None) => Some(c),
        (None, Some(m)) => Some(m),
        (None, None) => None,
    }
}

/// `sessionID` of a login answer.
pub fn session_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Login {
        #[serde(rename = "sessionID")]
        session_id: Option<String>,
    }
    serde_json::from_slice::<Login>(body)
        .ok()?
        .session_id
        .filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vendor-payloads/oneview")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn name(s: &str) -> ServerName {
        ServerName::parse(s).unwrap()
    }

    fn macs(nics: &[Nic]) -> Vec<String> {
        nics.iter().map(|n| n.mac.to_string()).collect()
    }

    #[test]
    fn every_fixture_is_covered() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vendor-payloads/oneview");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        // A new capture must get a test below before it is added here.
        assert_eq!(
            files,
            [
                "sdkjava_ServerProfileGetAll.json",
                "sdkjava_ServerProfileGetByName.json",
                "toolkit_ServerHardware.json",
                "toolkit_ServerHardwareFibreChannel.json",
                "toolkit_ServerProfile.json",
                "toolkit_ServerProfileList.json",
            ]
        );
    }

    #[test]
    fn filter_is_quoted_and_percent_encoded() {
        assert_eq!(name_filter("web-01").unwrap(), "%22name%3D%27web-01%27%22");
        assert_eq!(
            name_filter("rack1.node_2:eth~x").unwrap(),
            "%22name%3D%27rack1.node_2%3Aeth~x%27%22"
        );
        assert_eq!(
            name_filter("a b,c&d=e/f+g%h").unwrap(),
            "%22name%3D%27a%20b%2Cc%26d%3De%2Ff%2Bg%25h%27%22"
        );
        assert_eq!(name_filter("é").unwrap(), "%22name%3D%27%C3%A9%27%22");
        for bad in ["", "a'b", "a\"b", "a\\b", "' or name matches '%"] {
            assert_eq!(name_filter(bad), None, "{bad}");
        }
        assert_eq!(
            first_page_path("Web-01", 8).unwrap(),
            "/rest/server-profiles?start=0&count=8&filter=%22name%3D%27Web-01%27%22"
        );
    }

    #[test]
    fn only_same_collection_next_pages_are_followed() {
        assert!(valid_next_page(
            "/rest/server-profiles?start=8&count=8&filter=%22name%3D%27x%27%22"
        ));
        assert!(valid_next_page("/rest/server-profiles"));
        for bad in [
            "https://evil.example/rest/server-profiles?start=8",
            "//evil.example/rest/server-profiles",
            "/rest/server-profiles-templates?start=8",
            "/rest/server-hardware?start=8",
            "rest/server-profiles?start=8",
            "/rest/server-profiles?start=8#x",
        ] {
            assert!(!valid_next_page(bad), "{bad}");
        }
    }

    #[test]
    fn hardware_uris_are_checked() {
        assert!(valid_hardware_path(
            "/rest/server-hardware/30303437-3034-4D32-3230-313130304752"
        ));
        for bad in [
            "/rest/server-hardware/",
            "/rest/server-hardware",
            "/rest/server-hardware/..",
            "/rest/server-hardware/../login-sessions",
            "/rest/server-hardware/x?filter=a",
            "/rest/server-hardware/a/b",
            "https://evil.example/rest/server-hardware/x",
            "/rest/server-profiles/x",
            "/rest/server-hardware/x y",
        ] {
            assert!(!valid_hardware_path(bad), "{bad}");
        }
    }

    #[test]
    fn envelope_by_name_with_top_level_empty_connections() {
        let page = profile_page(&fixture("sdkjava_ServerProfileGetByName.json")).unwrap();
        assert_eq!(page.next_page_uri, None);
        let c = select_candidates(page.members, &name("serverprofile_template"));
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].uri.as_deref(),
            Some("/rest/server-profiles/random-UUID")
        );
        assert_eq!(c[0].server_hardware_uri, None);
        let (nics, boot) = profile_nics(&c[0]).unwrap();
        assert!(nics.is_empty());
        assert_eq!(boot, None);
    }

    #[test]
    fn old_top_level_connections_skip_fibre_channel() {
        let page = profile_page(&fixture("sdkjava_ServerProfileGetAll.json")).unwrap();
        assert_eq!(page.members.len(), 1);
        let (nics, boot) = profile_nics(&page.members[0]).unwrap();
        // Connections 3 and 4 are FibreChannel even though they carry MACs.
        assert_eq!(macs(&nics), ["26:76:ef:30:00:00", "26:76:ef:30:00:01"]);
        assert_eq!(nics[0].name, "Prod_401");
        assert_eq!(nics[0].location.as_deref(), Some("Flb 1:1-a"));
        assert_eq!(nics[0].kind.as_deref(), Some("ethernet"));
        // Nothing is Primary: the first NIC.
        assert_eq!(boot.unwrap().to_string(), "26:76:ef:30:00:00");
    }

    #[test]
    fn single_profile_connection_settings() {
        let p: Profile = serde_json::from_slice(&fixture("toolkit_ServerProfile.json")).unwrap();
        assert_eq!(
            p.server_hardware_uri.as_deref(),
            Some("/rest/server-hardware/30303437-3034-4D32-3230-313130304752")
        );
        assert!(valid_hardware_path(
            p.server_hardware_uri.as_deref().unwrap()
        ));
        let (nics, boot) = profile_nics(&p).unwrap();
        assert_eq!(macs(&nics), ["9a:a0:22:90:00:01", "9a:a0:22:90:00:20"]);
        assert_eq!(nics[1].name, "test_conn_using_network_set");
        assert_eq!(nics[1].location.as_deref(), Some("Mezz 3:2-a"));
        assert_eq!(boot, Some(nics[0].mac));
    }

    #[test]
    fn bare_array_listing_and_its_edge_cases() {
        let page = profile_page(&fixture("toolkit_ServerProfileList.json")).unwrap();
        assert_eq!(page.members.len(), 3);
        assert_eq!(page.next_page_uri, None);

        let c = select_candidates(page.members.clone(), &name("test"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].server_hardware_uri, None, "the unassigned profile");

        // "Composed System using Redfish" has connections: [] -> no NICs, no boot MAC.
        let empty = &page.members[0];
        assert_eq!(profile_nics(empty).unwrap(), (vec![], None));

        let pxe = &page.members[1];
        let (nics, boot) = profile_nics(pxe).unwrap();
        assert_eq!(macs(&nics), ["52:08:e0:40:00:2e"]);
        assert_eq!(boot, Some(nics[0].mac));
        assert_eq!(nics[0].name, "conn_1");
    }

    #[test]
    fn hardware_prefers_static_ipv4_over_leading_link_local() {
        let hw = hardware(&fixture("toolkit_ServerHardware.json")).unwrap();
        assert_eq!(
            hw,
            HardwareFacts {
                bmc: Some(Bmc::reported(
                    BmcAddress::parse("172.18.6.23").unwrap(),
                    Some("ilo4".into())
                )),
                serial_number: Some("2M201136GR".into()),
                model: Some("HPE Synergy 480 Gen9 Compute Module".into()),
                power_state: Some("on".into()),
            }
        );
    }

    #[test]
    fn hardware_with_sas_and_fc_ports() {
        // portMap (SAS with null MACs, FC with WWNs, empty slots) is not a NIC source and
        // must not disturb decoding.
        let hw = hardware(&fixture("toolkit_ServerHardwareFibreChannel.json")).unwrap();
        assert_eq!(hw.bmc.unwrap().address.to_string(), "172.18.6.6");
        assert_eq!(hw.serial_number.as_deref(), Some("2M201501GR"));
        assert_eq!(
            hw.model.as_deref(),
            Some("HPE Synergy 660 Gen9 Compute Module")
        );
    }

    fn hw_json(v: serde_json::Value) -> HardwareFacts {
        hardware(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn ilo_address_ranking_and_fallbacks() {
        let addrs = |list: serde_json::Value| {
            hw_json(serde_json::json!({"mpHostInfo": {"mpIpAddresses": list}}))
                .bmc
                .map(|b| b.address.to_string())
        };
        use serde_json::json;
        assert_eq!(
            addrs(json!([
                {"address": "fd00::5", "type": "DHCP"},
                {"address": "10.0.0.9", "type": "Undefined"},
                {"address": "fd00::6", "type": "Static"},
                {"address": "10.0.0.7", "type": "Static"},
                {"address": "fe80::1", "type": "LinkLocal"}
            ])),
            Some("10.0.0.7".into())
        );
        assert_eq!(
            addrs(json!([
                {"address": "10.0.0.9", "type": "Undefined"},
                {"address": "fd00::8", "type": "SLAAC"},
                {"address": "fd00::5", "type": "DHCP"}
            ])),
            Some("fd00::5".into())
        );
        // A link-local address mislabelled Static is still skipped; unknown types never win.
        assert_eq!(
            addrs(json!([
                {"address": "fe80::2", "type": "Static"},
                {"address": "10.1.1.1", "type": "SomethingNew"},
                {"address": "10.0.0.9", "type": "Undefined"}
            ])),
            Some("10.0.0.9".into())
        );
        assert_eq!(
            addrs(json!([{"address": "fe80::2", "type": "LinkLocal"}, {"address": null}])),
            None
        );
        let host = hw_json(json!({
            "mpHostInfo": {"mpHostName": "ILO2M201136GR.lab.example", "mpIpAddresses": []},
            "mpModel": "iLO5"
        }));
        assert_eq!(
            host.bmc,
            Some(Bmc::reported(
                BmcAddress::Host("ilo2m201136gr.lab.example".into()),
                Some("ilo5".into())
            ))
        );
        let legacy = hw_json(json!({"mpIpAddress": "10.2.3.4", "mpHostInfo": null}));
        assert_eq!(legacy.bmc.unwrap().address.to_string(), "10.2.3.4");
        let garbage_host = hw_json(json!({"mpHostInfo": {"mpHostName": "not a host"}}));
        assert_eq!(garbage_host.bmc, None);
        assert_eq!(hw_json(json!({})), HardwareFacts::default());
    }

    #[test]
    fn connections_in_id_order_with_primary_boot_and_skips() {
        use serde_json::json;
        let p: Profile = serde_json::from_value(json!({
            "name": "x",
            "connectionSettings": {"connections": [
                {"id": 3, "name": "", "portId": "Mezz 3:2-a", "functionType": "Ethernet",
                 "mac": "9A:A0:22:90:00:03", "boot": {"priority": "Primary", "ethernetBootType": "PXE"}},
                {"id": "1", "name": "mgmt", "portId": "Mezz 3:1-a", "functionType": "Ethernet",
                 "mac": "9a-a0-22-90-00-01", "boot": {"priority": "NotBootable"}},
                {"id": 2, "name": "fc", "functionType": "FibreChannel", "mac": "9A:A0:22:90:00:02",
                 "boot": {"priority": "Primary"}},
                {"id": 4, "name": "pending", "functionType": "Ethernet", "mac": null},
                {"id": 5, "name": "zero", "functionType": "Ethernet", "mac": "00:00:00:00:00:00"},
                {"id": 6, "name": "second", "functionType": "Ethernet", "mac": "9A:A0:22:90:00:06",
                 "boot": {"priority": "Primary"}},
                {"id": 7, "name": "iscsi", "functionType": "iSCSI", "mac": "9A:A0:22:90:00:07"},
                {"id": 8, "name": "new", "functionType": "Ethernet", "mac": "9A:A0:22:90:00:08",
                 "boot": {"priority": "SomeFuturePriority"}, "futureField": {"x": 1}}
            ]},
            "connections": [{"id": 1, "functionType": "Ethernet", "mac": "11:11:11:11:11:11", "name": "ignored"}]
        }))
        .unwrap();
        let (nics, boot) = profile_nics(&p).unwrap();
        assert_eq!(
            macs(&nics),
            [
                "9a:a0:22:90:00:01",
                "9a:a0:22:90:00:03",
                "9a:a0:22:90:00:06",
                "9a:a0:22:90:00:08"
            ]
        );
        assert_eq!(
            nics[1].name, "Mezz 3:2-a",
            "empty name falls back to portId"
        );
        assert_eq!(nics[0].location.as_deref(), Some("Mezz 3:1-a"));
        assert_eq!(nics[2].location, None);
        assert_eq!(boot.unwrap().to_string(), "9a:a0:22:90:00:03");
    }

    #[test]
    fn unreadable_mac_is_an_error_not_a_silent_skip() {
        let p: Profile = serde_json::from_value(serde_json::json!({"connectionSettings": {
            "connections": [{"id": 1, "name": "a", "functionType": "Ethernet", "mac": "derived"}]
        }}))
        .unwrap();
        assert!(profile_nics(&p).is_err());
    }

    #[test]
    fn candidates_case_handling() {
        let p = |n: &str| Profile {
            name: Some(n.into()),
            ..Profile::default()
        };
        let names = |v: Vec<Profile>| v.into_iter().filter_map(|p| p.name).collect::<Vec<_>>();
        let members = vec![p("WEB-01"), p("web-01"), p("web-011"), Profile::default()];
        assert_eq!(
            names(select_candidates(members.clone(), &name("web-01"))),
            ["web-01"]
        );
        assert_eq!(
            names(select_candidates(members.clone(), &name("Web-01"))),
            ["WEB-01", "web-01"],
            "no exact-case match: ambiguous"
        );
        assert_eq!(
            names(select_candidates(members, &name("WEB-01"))),
            ["WEB-01"]
        );
        // The appliance ignored the filter: only real matches survive.
        assert!(select_candidates(vec![p("other")], &name("web-01")).is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        for body in [
            &b""[..],
            b"null",
            b"{}",
            b"[1,2]",
            b"{\"members\": null}",
            b"{\"members\": [{\"name\": 5}]}",
            b"<html>",
            b"\xff\xfe",
        ] {
            assert!(
                profile_page(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [&b""[..], b"[]", b"\"x\"", b"{\"mpHostInfo\": 3}"] {
            assert!(hardware(body).is_err());
        }
        let page = profile_page(br#"{"members": [], "nextPageUri": ""}"#).unwrap();
        assert_eq!(page.next_page_uri, None);
    }

    #[test]
    fn login_and_error_bodies() {
        assert_eq!(
            session_id(br#"{"partnerData": {}, "sessionID": "LTE4NDk"}"#).as_deref(),
            Some("LTE4NDk")
        );
        assert_eq!(session_id(br#"{"sessionID": ""}"#), None);
        assert_eq!(session_id(b"oops"), None);
        assert_eq!(
            error_summary(
                br#"{"errorCode":"AUTHORIZATION","message":"Authorization error: User not authorized for this operation.","details":"","recommendedActions":["Re-authenticate"],"nestedErrors":[],"errorSource":null,"data":{}}"#
            )
            .as_deref(),
            Some("AUTHORIZATION: Authorization error: User not authorized for this operation.")
        );
        assert_eq!(error_summary(b"<html>"), None);
    }
}
