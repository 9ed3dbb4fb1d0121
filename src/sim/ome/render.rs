//! The OME simulator's view of a fleet: every profile, device and NIC inventory rendered once
//! as JSON text, plus the indexes the `eq` filters use, so a request is a hash lookup and a
//! string splice.
//!
//! Fleet layout (server `i`, 0-based, in fleet order), so every OME lookup path is exercised:
//! - device Id `25000 + i`, `DeviceName` = the server name, `DeviceServiceTag` = `Identifier`
//!   = its serial number;
//! - `assigned == false`: only an unbound profile (state 0, `TargetId` 0), no device;
//! - `i % 5 == 4`: no profile at all (found through `DeviceName`);
//! - otherwise a profile with Id `i + 1`: state 1 reserved for the service tag (`TargetId` 0,
//!   `TargetName` = tag) when `i % 4 == 3`, else deployed (state 4, `TargetId` = device Id).
//!
//! `DeviceManagement[]` holds the iDRAC address and the decoys the gateway must skip (`[::]`):
//! IPv4 first, as OME shows it; for an IPv6-only iDRAC the decoys come first and the address
//! is unbracketed, URL included, as in captured payloads. NICs are grouped into
//! `NicId`/`PortId`/partition from their FQDD names, in fleet order (which must be FQDD order:
//! OME has no boot order, so the gateway derives order and boot NIC from FQDDs).

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{json, Value};

use crate::sim::SimServer;

pub const DEVICE_ID_BASE: i64 = 25_000;
pub const DEVICE_TYPE_SERVER: i64 = 1000;
const STATE_UNASSIGNED: i64 = 0;
const STATE_ASSIGNED_TO_TAG: i64 = 1;
const STATE_DEPLOYED: i64 = 4;
const STAMP: &str = "2024-05-14 09:12:31.417";

#[derive(Default)]
pub struct Index {
    pub profiles: Vec<String>,
    pub devices: Vec<String>,
    /// Aligned with `devices`.
    pub nic_inventories: Vec<Vec<Value>>,
    profile_by_name: HashMap<String, Vec<usize>>,
    profile_by_id: HashMap<i64, usize>,
    device_by_name: HashMap<String, Vec<usize>>,
    device_by_tag: HashMap<String, Vec<usize>>,
    device_by_id: HashMap<i64, usize>,
}

impl Index {
    pub fn build(fleet: &[SimServer]) -> Self {
        let mut index = Self::default();
        for (i, server) in fleet.iter().enumerate() {
            let device_id = DEVICE_ID_BASE + i as i64;
            if server.assigned {
                index.add_device(i, device_id, server);
            }
            if !server.assigned || i % 5 != 4 {
                index.add_profile(i, device_id, server);
            }
        }
        index
    }

    fn add_device(&mut self, i: usize, id: i64, server: &SimServer) {
        let pos = self.devices.len();
        self.devices.push(device_json(i, id, server).to_string());
        self.nic_inventories.push(nic_inventory(server));
        self.device_by_id.insert(id, pos);
        push(&mut self.device_by_name, &server.name, pos);
        push(&mut self.device_by_tag, &server.serial_number, pos);
    }

    fn add_profile(&mut self, i: usize, device_id: i64, server: &SimServer) {
        let id = i as i64 + 1;
        let (state, target_id, target_name) = if !server.assigned {
            (STATE_UNASSIGNED, 0, None)
        } else if i % 4 == 3 {
            (
                STATE_ASSIGNED_TO_TAG,
                0,
                Some(server.serial_number.as_str()),
            )
        } else {
            (
                STATE_DEPLOYED,
                device_id,
                Some(server.serial_number.as_str()),
            )
        };
        let pos = self.profiles.len();
        self.profiles
            .push(profile_json(id, server, state, target_id, target_name).to_string());
        self.profile_by_id.insert(id, pos);
        push(&mut self.profile_by_name, &server.name, pos);
    }

    /// Profile positions matching `ProfileName eq` (OME's case rules are undocumented; the
    /// simulator matches case-insensitively so lookups in any case can be tested).
    pub fn profiles_named(&self, name: &str) -> &[usize] {
        lookup(&self.profile_by_name, name)
    }

    pub fn profile_id(&self, id: i64) -> Option<usize> {
        self.profile_by_id.get(&id).copied()
    }

    pub fn devices_named(&self, name: &str) -> &[usize] {
        lookup(&self.device_by_name, name)
    }

    pub fn devices_tagged(&self, tag: &str) -> &[usize] {
        lookup(&self.device_by_tag, tag)
    }

    pub fn device_id(&self, id: i64) -> Option<usize> {
        self.device_by_id.get(&id).copied()
    }
}

fn push(map: &mut HashMap<String, Vec<usize>>, key: &str, pos: usize) {
    map.entry(key.to_ascii_lowercase()).or_default().push(pos);
}

fn lookup<'a>(map: &'a HashMap<String, Vec<usize>>, key: &str) -> &'a [usize] {
    map.get(&key.to_ascii_lowercase())
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn profile_json(
    id: i64,
    server: &SimServer,
    state: i64,
    target_id: i64,
    target_name: Option<&str>,
) -> Value {
    json!({
        "@odata.type": "#ProfileService.Profile",
        "@odata.id": format!("/api/ProfileService/Profiles({id})"),
        "Id": id,
        "ProfileName": server.name,
        "ProfileDescription": "",
        "TemplateId": 11,
        "TemplateName": format!("{} baseline", server.model),
        "DataSchemaId": 9,
        "TargetId": target_id,
        "TargetName": target_name,
        "TargetTypeId": if target_id > 0 { DEVICE_TYPE_SERVER } else { 0 },
        "DeviceIdInSlot": 0,
        "ChassisId": 0,
        "ChassisName": null,
        "GroupId": 0,
        "GroupName": null,
        "NetworkBootToIso": null,
        "ProfileState": state,
        "DeploymentTaskId": if state == STATE_DEPLOYED { 41_000 + id } else { 0 },
        "LastRunStatus": if state == STATE_DEPLOYED { 2060 } else { 2200 },
        "ProfileModified": 0,
        "CreatedBy": "admin",
        "EditedBy": null,
        "CreatedDate": STAMP,
        "LastEditDate": STAMP,
        "LastDeployDate": if state == STATE_DEPLOYED { STAMP } else { "" },
    })
}

fn device_json(i: usize, id: i64, server: &SimServer) -> Value {
    let link = |what: &str| format!("/api/DeviceService/Devices({id})/{what}");
    json!({
        "@odata.type": "#DeviceService.Device",
        "@odata.id": format!("/api/DeviceService/Devices({id})"),
        "Id": id,
        "Type": DEVICE_TYPE_SERVER,
        "Identifier": server.serial_number,
        "DeviceServiceTag": server.serial_number,
        "ChassisServiceTag": null,
        "Model": server.model,
        "PowerState": if server.power_state == "on" { 17 } else { 18 },
        "ManagedState": 3000,
        "Status": 1000,
        "ConnectionState": true,
        "AssetTag": null,
        "SystemId": 1894,
        "DeviceName": server.name,
        "LastInventoryTime": inventory_time(server),
        "LastStatusTime": STAMP,
        "DeviceSubscription": null,
        "DeviceCapabilities": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30, 31, 41, 1001],
        "SlotConfiguration": {"ChassisName": null},
        "DeviceManagement": device_management(i, server),
        "Enabled": true,
        "ConnectionStateReason": 101,
        "ChassisIp": "",
        "InventoryDetails@odata.navigationLink": link("InventoryDetails"),
        "HardwareLogs@odata.navigationLink": link("HardwareLogs"),
        "SubSystemHealth@odata.navigationLink": link("SubSystemHealth"),
        "RecentActivity@odata.navigationLink": link("RecentActivity"),
        "Settings@odata.navigationLink": link("Settings"),
        "DeployRequired": false,
    })
}

/// When OME last took the device's inventory: a function of the NICs the simulator serves, so
/// changing a server's NICs (a test replacing the fleet) moves it, as a new inventory would.
fn inventory_time(server: &SimServer) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in server
        .nics
        .iter()
        .flat_map(|n| n.name.bytes().chain(n.mac.bytes()))
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let secs = h % (86_400 * 28);
    format!(
        "2024-05-{:02} {:02}:{:02}:{:02}.000",
        secs / 86_400 + 1,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

fn device_management(i: usize, server: &SimServer) -> Value {
    let real_is_v4 = matches!(server.bmc_address.parse::<IpAddr>(), Ok(IpAddr::V4(_)));
    let real = management_entry(i, 0, server, &server.bmc_address);
    let decoys = server
        .decoy_bmc_addresses
        .iter()
        .enumerate()
        .map(|(k, addr)| management_entry(i, k + 1, server, addr));
    let entries: Vec<Value> = if real_is_v4 {
        std::iter::once(real).chain(decoys).collect()
    } else {
        decoys.chain(std::iter::once(real)).collect()
    };
    Value::Array(entries)
}

fn management_entry(i: usize, k: usize, server: &SimServer, address: &str) -> Value {
    let mgmt_id = 5000 + 10 * i as i64 + k as i64;
    let [a, b, c] = [(i >> 16) as u8, (i >> 8) as u8, i as u8];
    json!({
        "ManagementId": mgmt_id,
        "NetworkAddress": address,
        "MacAddress": format!("d0:94:66:{a:02x}:{b:02x}:{c:02x}"),
        "ManagementType": 2,
        "InstrumentationName": server.name,
        "DnsName": format!("iDRAC-{}", server.serial_number),
        "ManagementProfile": [{
            "ManagementProfileId": mgmt_id + 3,
            "ProfileId": "",
            "ManagementId": mgmt_id,
            "AgentName": "iDRAC",
            "Version": "7.00.00.00",
            // OME writes the host as it stores it: `[::]` bracketed, a real IPv6 bare.
            "ManagementURL": format!("https://{address}:443"),
            "HasCreds": 1,
            "Status": 1000,
            "StatusDateTime": STAMP,
        }],
    })
}

struct Card {
    id: String,
    ports: Vec<Port>,
}

struct Port {
    id: String,
    partitions: Vec<Value>,
}

/// `InventoryInfo` of `serverNetworkInterfaces`: cards → ports → partitions.
fn nic_inventory(server: &SimServer) -> Vec<Value> {
    let mut cards: Vec<Card> = Vec::new();
    for nic in &server.nics {
        let (card_id, port_id) = fqdd_parents(&nic.name);
        if cards.last().is_none_or(|c| c.id != card_id) {
            cards.push(Card {
                id: card_id,
                ports: Vec::new(),
            });
        }
        let Some(card) = cards.last_mut() else {
            continue;
        };
        if card.ports.last().is_none_or(|p| p.id != port_id) {
            card.ports.push(Port {
                id: port_id,
                partitions: Vec::new(),
            });
        }
        if let Some(port) = card.ports.last_mut() {
            port.partitions
                .push(partition_json(&nic.name, &nic.mac.to_ascii_uppercase()));
        }
    }
    cards
        .into_iter()
        .map(|card| {
            let ports: Vec<Value> = card.ports.into_iter().map(port_json).collect();
            json!({"NicId": card.id, "VendorName": "Broadcom Corp", "Ports": ports})
        })
        .collect()
}

/// `NIC.Integrated.1-2-1` → (`NIC.Integrated.1`, `NIC.Integrated.1-2`); a name that is not a
/// partition FQDD is its own card and port.
fn fqdd_parents(name: &str) -> (String, String) {
    let parts: Vec<&str> = name.split('-').collect();
    match parts.as_slice() {
        [card, port, _partition] => (card.to_string(), format!("{card}-{port}")),
        [card, _port] => (card.to_string(), name.to_owned()),
        _ => (name.to_owned(), name.to_owned()),
    }
}

fn port_json(port: Port) -> Value {
    let first_mac = port
        .partitions
        .first()
        .and_then(|p| p.get("PermanentMacAddress"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    json!({
        "PortId": port.id,
        "ProductName": format!("Broadcom Adv. Dual 25Gb Ethernet - {first_mac}"),
        "LinkStatus": "Up",
        "LinkSpeed": 25000,
        "Partitions": port.partitions,
    })
}

fn partition_json(fqdd: &str, mac_upper: &str) -> Value {
    json!({
        "Fqdd": fqdd,
        "CurrentMacAddress": mac_upper,
        "PermanentMacAddress": mac_upper,
        "PermanentIscsiMacAddress": "",
        "PermanentFcoeMacAddress": "",
        "Wwn": "",
        "Wwpn": "",
        "VirtualWwn": "",
        "VirtualWwpn": "",
        "VirtualMacAddress": "00:00:00:00:00:00",
        "NicMode": "Unknown",
        "FcoeMode": "Unknown",
        "IscsiMode": "Unknown",
        "MinBandwidth": 0,
        "MaxBandwidth": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SystemKind;
    use crate::sim::fleet;

    #[test]
    fn layout_covers_every_lookup_path() {
        let mut servers = fleet::generate(SystemKind::Ome, 1, 10);
        servers[1].assigned = false;
        let index = Index::build(&servers);
        // 9 assigned servers have devices; servers 4 and 9 have no profile.
        assert_eq!(index.devices.len(), 9);
        assert_eq!(index.profiles.len(), 8);
        let profile = |name: &str| -> Value {
            let pos = index.profiles_named(name)[0];
            serde_json::from_str(&index.profiles[pos]).unwrap()
        };
        assert_eq!(profile(&servers[0].name)["ProfileState"], 4);
        assert_eq!(profile(&servers[0].name)["TargetId"], 25_000);
        assert_eq!(profile(&servers[1].name)["ProfileState"], 0);
        assert_eq!(profile(&servers[1].name)["TargetName"], Value::Null);
        assert_eq!(profile(&servers[3].name)["ProfileState"], 1);
        assert_eq!(
            profile(&servers[3].name)["TargetName"],
            servers[3].serial_number
        );
        assert!(index.profiles_named(&servers[4].name).is_empty());
        assert_eq!(
            index.devices_named(&servers[4].name.to_uppercase()).len(),
            1
        );
        assert_eq!(index.devices_tagged(&servers[3].serial_number).len(), 1);
        assert!(index.device_id(25_001).is_none());
    }

    #[test]
    fn fqdds_group_into_cards_and_ports() {
        assert_eq!(
            fqdd_parents("NIC.Integrated.1-2-1"),
            ("NIC.Integrated.1".into(), "NIC.Integrated.1-2".into())
        );
        assert_eq!(fqdd_parents("eth0"), ("eth0".into(), "eth0".into()));
        let server = &fleet::generate(SystemKind::Ome, 3, 1)[0];
        let cards = nic_inventory(server);
        assert_eq!(cards.len(), 1);
        assert_eq!(
            cards[0]["Ports"].as_array().unwrap().len(),
            server.nics.len()
        );
        let part = &cards[0]["Ports"][0]["Partitions"][0];
        assert_eq!(part["CurrentMacAddress"], server.nics[0].mac.to_uppercase());
    }
}
