//! What one BMC says about its server: the ComputerSystem it lists (its exact path), identity,
//! power, make, and the host NICs' MACs, from `EthernetInterfaces` or, where a BMC shows MACs
//! only there, from the chassis' `NetworkAdapters` (`Ports` or the older `NetworkPorts`).

use std::cmp::Ordering;

use serde_json::Value;

use super::client::{same_service, Client, Target};
use crate::domain::{MacAddress, Nic, Vendor};
use crate::vendors::BackendError;

/// More members than any server's collection holds: a longer list is a protocol failure.
const MAX_MEMBERS: usize = 64;
/// ComputerSystems one service may list (an emulator's or a chassis manager's several), and
/// network adapters read per system: together with [`MAX_MEMBERS`] they bound one read.
const MAX_SYSTEMS: usize = 16;
const MAX_ADAPTERS: usize = 8;

const SYSTEMS: &str = "GET /redfish/v1/Systems";
const SYSTEM: &str = "GET /redfish/v1/Systems/{id}";

pub struct Facts {
    pub system_path: String,
    pub host_name: Option<String>,
    /// The ComputerSystem's `Name` (an emulator's only name for its systems).
    pub name: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub power_state: Option<String>,
    pub vendor: Vendor,
    pub nics: Vec<Nic>,
}

/// The ComputerSystems the service lists.
pub async fn system_paths(client: &Client, t: &Target) -> Result<Vec<String>, BackendError> {
    let collection = client.get(t, SYSTEMS, "/redfish/v1/Systems").await?;
    member_links(client, SYSTEMS, &collection)
}

/// The ComputerSystem the BMC lists: its only one, or (several) the one whose `SerialNumber`
/// is `serial`.
pub async fn system_path(
    client: &Client,
    t: &Target,
    serial: Option<&str>,
) -> Result<String, BackendError> {
    let paths = system_paths(client, t).await?;
    match paths.as_slice() {
        [] => Err(client.protocol(SYSTEMS, "the BMC lists no ComputerSystem")),
        [one] => Ok(one.clone()),
        several => {
            let wanted = serial.map(str::trim).filter(|s| !s.is_empty());
            if let Some(wanted) = wanted {
                for path in several {
                    let sys = client.get(t, SYSTEM, path).await?;
                    if text(&sys, "SerialNumber").is_some_and(|s| s.eq_ignore_ascii_case(wanted)) {
                        return Ok(path.clone());
                    }
                }
            }
            Err(client.protocol(
                SYSTEMS,
                &format!(
                    "{} ComputerSystems and none of serial number {}",
                    several.len(),
                    wanted.unwrap_or("(unknown)")
                ),
            ))
        }
    }
}

/// Every ComputerSystem of the service behind `t`, and what the gateway answers about each.
/// `known` (the paths a read before found) skips the Systems collection, unless one of them is
/// gone.
pub async fn read_service(
    client: &Client,
    t: &Target,
    known: &[String],
) -> Result<Vec<Facts>, BackendError> {
    let root = client.root(t).await?;
    if !known.is_empty() {
        match read_systems(client, t, &root, known).await {
            Err(BackendError::Status { status: 404, .. }) => {}
            other => return other,
        }
    }
    let paths = system_paths(client, t).await?;
    if paths.len() > MAX_SYSTEMS {
        return Err(client.protocol(
            SYSTEMS,
            &format!(
                "{} ComputerSystems (at most {MAX_SYSTEMS} are read)",
                paths.len()
            ),
        ));
    }
    read_systems(client, t, &root, &paths).await
}

async fn read_systems(
    client: &Client,
    t: &Target,
    root: &Value,
    paths: &[String],
) -> Result<Vec<Facts>, BackendError> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        out.push(read_system(client, t, root, path).await?);
    }
    Ok(out)
}

async fn read_system(
    client: &Client,
    t: &Target,
    root: &Value,
    system_path: &str,
) -> Result<Facts, BackendError> {
    let system_path = system_path.to_owned();
    let system = client.get(t, SYSTEM, &system_path).await?;
    let expand = root
        .pointer("/ProtocolFeaturesSupported/ExpandQuery/Levels")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut nics = match link(&system, "EthernetInterfaces") {
        Some(path) => {
            let key = "GET /redfish/v1/Systems/{id}/EthernetInterfaces";
            members(client, t, key, &path, expand)
                .await?
                .iter()
                .filter_map(|i| interface_nic(i).transpose())
                .collect::<Result<Vec<_>, String>>()
                .map_err(|d| client.protocol(key, &d))?
        }
        None => Vec::new(),
    };
    // The all-zero MAC is an unset slot, never a NIC.
    nics.retain(|n| !n.mac.is_zero());
    if nics.is_empty() {
        nics = adapter_ports(client, t, &system, expand).await?;
    }
    nics.sort_by(|a, b| natural(&a.name, &b.name));
    let manufacturer = text(&system, "Manufacturer");
    Ok(Facts {
        vendor: vendor_of(root, manufacturer),
        host_name: text(&system, "HostName").map(str::to_owned),
        name: text(&system, "Name").map(str::to_owned),
        serial: text(&system, "SerialNumber").map(str::to_owned),
        model: text(&system, "Model").map(str::to_owned),
        power_state: text(&system, "PowerState").map(str::to_ascii_lowercase),
        system_path,
        nics,
    })
}

/// MACs a BMC shows only under its chassis: every adapter's `Ports`
/// (`Ethernet.AssociatedMACAddresses`) or `NetworkPorts` (`AssociatedNetworkAddresses`).
async fn adapter_ports(
    client: &Client,
    t: &Target,
    system: &Value,
    expand: bool,
) -> Result<Vec<Nic>, BackendError> {
    let Some(chassis_path) = system
        .pointer("/Links/Chassis/0/@odata.id")
        .and_then(Value::as_str)
        .filter(|p| same_service(p))
    else {
        return Ok(Vec::new());
    };
    let chassis = client
        .get(t, "GET /redfish/v1/Chassis/{id}", chassis_path)
        .await?;
    let Some(adapters_path) = link(&chassis, "NetworkAdapters") else {
        return Ok(Vec::new());
    };
    let adapters_key = "GET /redfish/v1/Chassis/{id}/NetworkAdapters";
    let mut nics = Vec::new();
    let adapters = members(client, t, adapters_key, &adapters_path, expand).await?;
    if adapters.len() > MAX_ADAPTERS {
        return Err(client.protocol(
            adapters_key,
            &format!(
                "{} network adapters (at most {MAX_ADAPTERS} are read)",
                adapters.len()
            ),
        ));
    }
    for adapter in adapters {
        let adapter_id = text(&adapter, "Id").unwrap_or_default().to_owned();
        let (ports_path, key) = match (link(&adapter, "Ports"), link(&adapter, "NetworkPorts")) {
            (Some(p), _) => (p, "GET /redfish/v1/Chassis/{id}/NetworkAdapters/{id}/Ports"),
            (None, Some(p)) => (
                p,
                "GET /redfish/v1/Chassis/{id}/NetworkAdapters/{id}/NetworkPorts",
            ),
            (None, None) => continue,
        };
        for port in members(client, t, key, &ports_path, expand).await? {
            let raw = port
                .pointer("/Ethernet/AssociatedMACAddresses/0")
                .or_else(|| port.pointer("/AssociatedNetworkAddresses/0"))
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty());
            let Some(raw) = raw else { continue };
            let mac = MacAddress::parse(raw).map_err(|e| client.protocol(key, &e.to_string()))?;
            if mac.is_zero() {
                continue;
            }
            let port_id = text(&port, "Id").unwrap_or_default();
            nics.push(Nic {
                name: format!("{adapter_id}/{port_id}"),
                mac,
                kind: Some("ethernet".into()),
                location: text(&port, "@odata.id").map(str::to_owned),
            });
            if nics.len() > MAX_MEMBERS {
                return Err(client.protocol(key, "more ports than any server has"));
            }
        }
    }
    Ok(nics)
}

/// A collection's members, whole: expanded in one request where the service says it can,
/// else one GET per member link (same service only, at most [`MAX_MEMBERS`]).
async fn members(
    client: &Client,
    t: &Target,
    key: &str,
    path: &str,
    expand: bool,
) -> Result<Vec<Value>, BackendError> {
    let body = if expand {
        // DSP0266: a service that does not implement `$expand` answers 501 (some 400).
        match client
            .get(t, key, &format!("{path}?$expand=.($levels=1)"))
            .await
        {
            Err(BackendError::Status {
                status: 400 | 501, ..
            }) => client.get(t, key, path).await?,
            other => other?,
        }
    } else {
        client.get(t, key, path).await?
    };
    let raw = body
        .get("Members")
        .and_then(Value::as_array)
        .ok_or_else(|| client.protocol(key, "no Members array"))?;
    if raw.len() > MAX_MEMBERS {
        return Err(client.protocol(key, &format!("{} members", raw.len())));
    }
    let mut out = Vec::with_capacity(raw.len());
    for m in raw {
        // An expanded member carries more than its link.
        if m.as_object().is_some_and(|o| o.len() > 1) {
            out.push(m.clone());
            continue;
        }
        let link = m
            .get("@odata.id")
            .and_then(Value::as_str)
            .filter(|l| same_service(l))
            .ok_or_else(|| client.protocol(key, "a member without a same-service @odata.id"))?;
        out.push(client.get(t, &format!("{key}/{{id}}"), link).await?);
    }
    Ok(out)
}

fn member_links(
    client: &Client,
    key: &str,
    collection: &Value,
) -> Result<Vec<String>, BackendError> {
    let raw = collection
        .get("Members")
        .and_then(Value::as_array)
        .ok_or_else(|| client.protocol(key, "no Members array"))?;
    if raw.len() > MAX_MEMBERS {
        return Err(client.protocol(key, &format!("{} members", raw.len())));
    }
    raw.iter()
        .map(|m| {
            m.get("@odata.id")
                .and_then(Value::as_str)
                .filter(|l| same_service(l))
                .map(|l| l.trim_end_matches('/').to_owned())
                .ok_or_else(|| client.protocol(key, "a member without a same-service @odata.id"))
        })
        .collect()
}

/// A Redfish `EthernetInterface` as a NIC (named by its `Id`, else `Name`); `None` without a
/// MAC (an unconfigured port). Also what Intersight's CIMC reader parses.
pub(crate) fn interface_nic(v: &Value) -> Result<Option<Nic>, String> {
    let raw = ["MACAddress", "PermanentMACAddress"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()));
    let Some(raw) = raw else {
        return Ok(None);
    };
    let name = text(v, "Id")
        .or_else(|| text(v, "Name"))
        .unwrap_or_default()
        .to_owned();
    let mac = MacAddress::parse(raw).map_err(|e| format!("interface {name:?}: {e}"))?;
    Ok(Some(Nic {
        location: text(v, "@odata.id").map(str::to_owned),
        name,
        mac,
        kind: Some("ethernet".into()),
    }))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|l| l.get("@odata.id"))
        .and_then(Value::as_str)
        .filter(|p| same_service(p))
        .map(str::to_owned)
}

/// The make: the service root's `Vendor` (Redfish 1.5+), else its `Oem` section's name, else
/// the system's `Manufacturer`.
pub fn vendor_of(root: &Value, manufacturer: Option<&str>) -> Vendor {
    let oem_keys = root
        .get("Oem")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    text(root, "Vendor")
        .into_iter()
        .map(str::to_owned)
        .chain(oem_keys)
        .chain(manufacturer.map(str::to_owned))
        .find_map(|s| make(&s))
        .unwrap_or(Vendor::Other)
}

fn make(s: &str) -> Option<Vendor> {
    let s = s.trim().to_ascii_lowercase();
    if s == "hp" || s.starts_with("hpe") || s.starts_with("hewlett") {
        Some(Vendor::Hpe)
    } else if s.starts_with("dell") {
        Some(Vendor::Dell)
    } else if s.starts_with("cisco") {
        Some(Vendor::Cisco)
    } else if s.starts_with("supermicro") || s.starts_with("super micro") {
        Some(Vendor::Supermicro)
    } else if s.starts_with("lenovo") {
        Some(Vendor::Lenovo)
    } else {
        None
    }
}

/// `2` before `10`: interface ids are often numbers.
fn natural(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_make_comes_from_the_root_then_oem_then_manufacturer() {
        assert_eq!(vendor_of(&json!({"Vendor": "HPE"}), None), Vendor::Hpe);
        assert_eq!(vendor_of(&json!({"Oem": {"Hpe": {}}}), None), Vendor::Hpe);
        assert_eq!(vendor_of(&json!({}), Some("Dell Inc.")), Vendor::Dell);
        assert_eq!(
            vendor_of(&json!({}), Some("Cisco Systems Inc")),
            Vendor::Cisco
        );
        assert_eq!(
            vendor_of(&json!({"Vendor": "Supermicro"}), None),
            Vendor::Supermicro
        );
        assert_eq!(vendor_of(&json!({}), Some("Lenovo")), Vendor::Lenovo);
        assert_eq!(vendor_of(&json!({}), Some("WIWYNN")), Vendor::Other);
        assert_eq!(
            vendor_of(&json!({"Vendor": "Contoso"}), Some("HPE")),
            Vendor::Hpe
        );
    }

    #[test]
    fn interface_ids_sort_as_numbers_where_they_are() {
        let mut ids = vec!["10", "2", "1"];
        ids.sort_by(|a, b| natural(a, b));
        assert_eq!(ids, ["1", "2", "10"]);
    }
}
