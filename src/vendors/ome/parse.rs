//! Pure decoding of OME payloads into the gateway's terms. Everything is read from untyped JSON
//! so that unknown fields, unknown enum codes and oddly typed optional fields never fail a
//! lookup; only the fields a lookup cannot do without (a collection's `value`, a device `Id`)
//! are required. A field the appliance does not send stays `None`.

use std::cmp::Ordering;
use std::net::IpAddr;

use serde_json::Value;

use crate::domain::{Bmc, BmcAddress, MacAddress, Nic};
use crate::vendors::paging::Page;

/// One page of an OData collection (`@odata.count`: matches after `$filter`, on every page).
pub fn collection(body: Value) -> Result<Page, String> {
    let Value::Object(mut map) = body else {
        return Err("expected an OData collection object".into());
    };
    let count = map.get("@odata.count").and_then(as_u64);
    match map.remove("value") {
        Some(Value::Array(items)) => Ok(Page { count, items }),
        Some(_) => Err("`value` is not an array".into()),
        None => Err("OData collection without `value`".into()),
    }
}

/// A server profile, as far as a lookup needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: Option<i64>,
    pub name: String,
    pub target_id: Option<i64>,
    pub target_name: Option<String>,
    pub state: Option<i64>,
}

/// What a profile points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileTarget {
    /// Bound (deployed or assigned to a discovered device): the device Id.
    Device(i64),
    /// State 1: reserved for a service tag, deployed when that server shows up.
    ServiceTag(String),
    Unassigned,
}

/// `ProfileState` 1: assigned to a service tag for auto-deploy (`TargetName` holds the tag).
const PROFILE_STATE_ASSIGNED_TO_TAG: i64 = 1;

impl Profile {
    pub fn target(&self) -> ProfileTarget {
        if let Some(id) = self.target_id.filter(|id| *id > 0) {
            return ProfileTarget::Device(id);
        }
        match (&self.target_name, self.state) {
            (Some(tag), Some(PROFILE_STATE_ASSIGNED_TO_TAG)) => {
                ProfileTarget::ServiceTag(tag.clone())
            }
            // Codes 2/3 are undocumented; a TargetName alone is not proof of a binding.
            _ => ProfileTarget::Unassigned,
        }
    }
}

/// `None` for an item without a `ProfileName`: it cannot match any name.
pub fn profile(item: &Value) -> Option<Profile> {
    Some(Profile {
        id: item.get("Id").and_then(as_i64),
        name: text(item, "ProfileName")?,
        target_id: item.get("TargetId").and_then(as_i64),
        target_name: text(item, "TargetName"),
        state: item.get("ProfileState").and_then(as_i64),
    })
}

/// OME `Type` of a server (1000 server, 2000 chassis, 3000 storage, 4000 IOM, …).
pub const DEVICE_TYPE_SERVER: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    pub name: Option<String>,
    pub type_code: Option<i64>,
    pub identifier: Option<String>,
    pub service_tag: Option<String>,
    pub model: Option<String>,
    pub power_state: Option<String>,
    pub bmc: Option<Bmc>,
    /// `LastInventoryTime`: changes when OME takes a new inventory of the device.
    pub inventory_time: Option<String>,
}

impl Device {
    /// Devices without a `Type` are given the benefit of the doubt; a known other type is not
    /// a server.
    pub fn is_server(&self) -> bool {
        self.type_code.is_none_or(|t| t == DEVICE_TYPE_SERVER)
    }

    /// The tag a state-1 profile names may be in `Identifier` or `DeviceServiceTag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        [&self.identifier, &self.service_tag]
            .into_iter()
            .flatten()
            .any(|t| t.eq_ignore_ascii_case(tag))
    }
}

pub fn device(item: &Value) -> Result<Device, String> {
    let id = item
        .get("Id")
        .and_then(as_i64)
        .ok_or("device without a numeric `Id`")?;
    let management = item
        .get("DeviceManagement")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(Device {
        id,
        name: text(item, "DeviceName"),
        type_code: item.get("Type").and_then(as_i64),
        identifier: text(item, "Identifier"),
        service_tag: text(item, "DeviceServiceTag"),
        model: text(item, "Model"),
        power_state: power_state(item.get("PowerState").and_then(as_i64)),
        bmc: bmc(management),
        inventory_time: text(item, "LastInventoryTime"),
    })
}

/// OME `PowerState` codes (1 unknown, 17 on, 18 off, 20 powering on, 21 powering off). Unknown
/// and unlisted codes give `None`: a bare number would tell a caller nothing.
pub fn power_state(code: Option<i64>) -> Option<String> {
    let s = match code? {
        17 => "on",
        18 => "off",
        20 => "poweringon",
        21 => "poweringoff",
        _ => return None,
    };
    Some(s.to_owned())
}

/// The iDRAC among `DeviceManagement[]`: the first entry whose `NetworkAddress` is usable
/// (servers list an IPv4 entry and an IPv6 one that is often `[::]`); failing that, the host of
/// a `ManagementURL`. Link-local and unspecified addresses are never reported.
pub fn bmc(management: &[Value]) -> Option<Bmc> {
    let from_address = management
        .iter()
        .filter_map(|m| m.get("NetworkAddress").and_then(Value::as_str))
        .find_map(usable_address);
    let address = from_address.or_else(|| {
        management_profiles(management)
            .filter_map(|p| p.get("ManagementURL").and_then(Value::as_str))
            .filter_map(url_host)
            .find_map(usable_address)
    })?;
    Some(Bmc::reported(
        address,
        Some(idrac_kind(management).to_owned()),
    ))
}

fn management_profiles(management: &[Value]) -> impl Iterator<Item = &Value> {
    management
        .iter()
        .filter_map(|m| m.get("ManagementProfile").and_then(Value::as_array))
        .flatten()
}

fn usable_address(raw: &str) -> Option<BmcAddress> {
    BmcAddress::parse(raw).ok().filter(BmcAddress::is_usable)
}

/// iDRAC9 firmware is numbered 3.x–7.x, so those majors name the generation. 1.x is shared
/// by iDRAC7 and iDRAC10 and 2.x by iDRAC7 and iDRAC8, so anything else stays plain `idrac`
/// (an OME-managed server's BMC is an iDRAC; `AgentName` says so).
pub fn idrac_kind(management: &[Value]) -> &'static str {
    let idrac9 = management_profiles(management)
        .filter(|p| {
            p.get("AgentName")
                .and_then(Value::as_str)
                .is_none_or(|a| a.eq_ignore_ascii_case("idrac"))
        })
        .filter_map(|p| p.get("Version").and_then(Value::as_str))
        .filter_map(|v| v.trim().split('.').next()?.parse::<u32>().ok())
        .any(|major| (3..=7).contains(&major));
    if idrac9 {
        "idrac9"
    } else {
        "idrac"
    }
}

/// The host of a management URL. OME writes IPv6 hosts unbracketed with the port appended
/// (`https://fe80::1:443`); there the trailing `:<digits>` is taken as the port when what is
/// left is still an IPv6 address, since every URL OME was seen to produce carries a port.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(inner) = host_port.strip_prefix('[') {
        return inner.split_once(']').map(|(h, _)| h);
    }
    let host = match host_port.matches(':').count() {
        0 => host_port,
        1 => host_port.split_once(':').map(|(h, _)| h)?,
        _ => match host_port.rsplit_once(':') {
            Some((h, port))
                if port.bytes().all(|b| b.is_ascii_digit()) && h.parse::<IpAddr>().is_ok() =>
            {
                h
            }
            _ => host_port,
        },
    };
    (!host.is_empty()).then_some(host)
}

/// NICs from an `InventoryDetails('serverNetworkInterfaces')` answer, one per partition with a
/// real `CurrentMacAddress` (the MAC the port uses now, virtual if the profile set one), in
/// natural FQDD order. Accepts the single-type envelope, the all-types collection and a bare
/// list, since OME was seen sending each.
pub fn network_interfaces(body: &Value) -> Result<Vec<Nic>, String> {
    let mut nics: Vec<Nic> = inventory_info(body)?
        .iter()
        .flat_map(nic_partitions)
        .collect();
    nics.sort_by(|a, b| fqdd_cmp(&a.name, &b.name));
    Ok(nics)
}

const NIC_INVENTORY: &str = "serverNetworkInterfaces";

fn inventory_info(body: &Value) -> Result<&[Value], String> {
    match body {
        Value::Object(map) if map.contains_key("InventoryInfo") => {
            match map.get("InventoryType").and_then(Value::as_str) {
                Some(t) if t != NIC_INVENTORY => Err(format!("inventory of type {t:?}")),
                _ => info_list(body).ok_or_else(|| "`InventoryInfo` is not an array".into()),
            }
        }
        Value::Object(map) => match map.get("value").and_then(Value::as_array) {
            // The whole-inventory collection: a device without NIC inventory has no entry.
            Some(entries) => Ok(nic_entry(entries).unwrap_or_default()),
            None => Err("neither `InventoryInfo` nor `value` in the NIC inventory".into()),
        },
        Value::Array(items) if items.iter().any(|e| e.get("InventoryType").is_some()) => {
            Ok(nic_entry(items).unwrap_or_default())
        }
        Value::Array(items) => Ok(items),
        _ => Err("NIC inventory is not a JSON object or array".into()),
    }
}

fn info_list(entry: &Value) -> Option<&[Value]> {
    entry
        .get("InventoryInfo")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
}

fn nic_entry(entries: &[Value]) -> Option<&[Value]> {
    entries
        .iter()
        .find(|e| e.get("InventoryType").and_then(Value::as_str) == Some(NIC_INVENTORY))
        .and_then(info_list)
}

fn nic_partitions(card: &Value) -> Vec<Nic> {
    let nic_id = text(card, "NicId");
    let ports = card
        .get("Ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    ports
        .iter()
        .flat_map(|port| {
            let port_id = text(port, "PortId");
            let location = port_id.clone().or_else(|| nic_id.clone());
            port.get("Partitions")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(move |part| partition(part, location.clone()))
        })
        .collect()
}

fn partition(part: &Value, location: Option<String>) -> Option<Nic> {
    let mac = MacAddress::parse(part.get("CurrentMacAddress")?.as_str()?).ok()?;
    if mac.is_zero() {
        return None;
    }
    let name = text(part, "Fqdd").or_else(|| location.clone())?;
    Some(Nic {
        kind: fqdd_class(&name),
        name,
        mac,
        location,
    })
}

/// `NIC.Integrated.1-1-1` → `integrated` (Integrated, Embedded, Slot, Mezzanine).
fn fqdd_class(fqdd: &str) -> Option<String> {
    let class = fqdd.split('.').nth(1)?;
    (!class.is_empty()).then(|| class.to_ascii_lowercase())
}

/// The boot NIC, since OME's NIC inventory carries no boot order: the first partition of the
/// first integrated NIC (rNDC/OCP, the factory PXE default), else of the first embedded one
/// (LOM), else the first NIC, all in FQDD order.
pub fn boot_mac(nics: &[Nic]) -> Option<MacAddress> {
    ["integrated", "embedded"]
        .iter()
        .find_map(|class| nics.iter().find(|n| n.kind.as_deref() == Some(class)))
        .or_else(|| nics.first())
        .map(|n| n.mac)
}

/// FQDDs compared with digit runs as numbers, so `NIC.Slot.10-1-1` sorts after `NIC.Slot.2-1-1`.
pub fn fqdd_cmp(a: &str, b: &str) -> Ordering {
    natural_chunks(a).cmp(&natural_chunks(b))
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk<'a> {
    Num(u128),
    Text(&'a str),
}

fn natural_chunks(s: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    while start < bytes.len() {
        let digit = bytes[start].is_ascii_digit();
        let len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit() == digit)
            .count();
        let piece = &s[start..start + len];
        out.push(match piece.parse::<u128>() {
            Ok(n) if digit => Chunk::Num(n),
            _ => Chunk::Text(piece),
        });
        start += len;
    }
    out
}

/// A non-empty trimmed string field.
fn text(item: &Value, key: &str) -> Option<String> {
    let s = item.get(key)?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Integers may arrive as numbers or numeric strings depending on the OME release.
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    as_i64(v).and_then(|n| u64::try_from(n).ok())
}

/// The OME error envelope's first message (`MessageId: Message`), for error details.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let info = err
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let id = info
        .and_then(|i| i.get("MessageId"))
        .and_then(Value::as_str);
    let msg = info
        .and_then(|i| i.get("Message"))
        .or_else(|| err.get("message"))
        .and_then(Value::as_str)?;
    Some(match id {
        Some(id) => format!("{id}: {msg}"),
        None => msg.to_owned(),
    })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
