//! Renders vendor-neutral `SimServer`s as OneView server profiles and server hardware, in the
//! shapes of the captured samples (tests/fixtures/vendor-payloads/oneview/).

use serde_json::{json, Value};

use crate::sim::fleet::Rng;
use crate::sim::{SimNic, SimServer};

pub const PROFILES: &str = "/rest/server-profiles";
pub const HARDWARE: &str = "/rest/server-hardware";

/// Before API 600 (OneView 2.0/3.0) connections sat at the top level of a profile.
const CONNECTION_SETTINGS_SINCE: u32 = 600;
const BAYS_PER_ENCLOSURE: usize = 12;

/// Stable ids for server `i`, so that URIs survive simulator restarts with the same fleet.
pub fn profile_id(i: usize) -> String {
    let mut rng = Rng::new(0x0e_u64 << 56 | i as u64);
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// Blade ids look like `30303437-3034-4D32-3230-313130304752` (hex of an ASCII serial).
pub fn hardware_id(i: usize) -> String {
    format!("30303437-3034-4D32-3230-3131{:08X}", i)
}

pub fn hardware_name(i: usize) -> String {
    format!(
        "0000A6{:04X}, bay {}",
        0x6100 + i / BAYS_PER_ENCLOSURE,
        i % BAYS_PER_ENCLOSURE + 1
    )
}

fn enclosure_uri(i: usize) -> String {
    format!(
        "/rest/enclosures/0000000000A6{:04X}",
        0x6100 + i / BAYS_PER_ENCLOSURE
    )
}

pub fn profile_type(api: u32) -> u32 {
    match api {
        1600.. => 12,
        1200.. => 11,
        1000.. => 10,
        800.. => 9,
        600.. => 8,
        500.. => 7,
        300.. => 6,
        _ => 5,
    }
}

fn hardware_type(api: u32) -> &'static str {
    match api {
        1600.. => "server-hardware-12",
        800.. => "server-hardware-8",
        300.. => "server-hardware-5",
        _ => "server-hardware-4",
    }
}

/// Fixed timestamps: payloads are deterministic, like the fleet.
pub const CREATED: &str = "2024-03-11T09:12:44.105Z";
pub const MODIFIED: &str = "2024-06-02T17:01:37.783Z";

pub fn profile(i: usize, s: &SimServer, api: u32) -> Value {
    let id = profile_id(i);
    let uri = format!("{PROFILES}/{id}");
    let hw_uri = s.assigned.then(|| format!("{HARDWARE}/{}", hardware_id(i)));
    let connections = connections(i, s);
    let mut p = json!({
        "type": format!("ServerProfileV{}", profile_type(api)),
        "uri": uri,
        "name": s.name,
        "description": "",
        "serialNumber": format!("VCGU{:06}", i),
        "uuid": id,
        "serverProfileTemplateUri": null,
        "templateCompliance": "Unknown",
        "serverHardwareUri": hw_uri,
        "serverHardwareTypeUri": "/rest/server-hardware-types/FE50A6FE-B1AC-4E42-8D40-B73CA8CC0CD2",
        "enclosureGroupUri": "/rest/enclosure-groups/bc41f38d-e8ce-4241-acd1-00b2d8c5d0fa",
        "enclosureUri": s.assigned.then(|| enclosure_uri(i)),
        "enclosureBay": s.assigned.then_some(i % BAYS_PER_ENCLOSURE + 1),
        "affinity": "Bay",
        "associatedServer": null,
        "hideUnusedFlexNics": true,
        "macType": "Virtual",
        "wwnType": "Virtual",
        "serialNumberType": "Virtual",
        "category": "server-profiles",
        "created": CREATED,
        "modified": MODIFIED,
        "status": "OK",
        "state": "Normal",
        "inProgress": false,
        "taskUri": null,
        "bootMode": {"manageMode": true, "mode": "UEFI", "pxeBootPolicy": "Auto", "secureBoot": "Disabled"},
        "boot": {"manageBoot": true, "order": ["PXE", "HardDisk"]},
        "bios": {"manageBios": false, "overriddenSettings": [], "reapplyState": "NotApplying"},
        "scopesUri": format!("/rest/scopes/resources{uri}"),
        "eTag": format!("1526058827348/{}", i % 97),
        "refreshState": "NotRefreshing",
    });
    if api >= CONNECTION_SETTINGS_SINCE {
        p["connectionSettings"] =
            json!({"reapplyState": "NotApplying", "connections": connections});
    } else {
        p["connections"] = Value::Array(connections);
    }
    p
}

/// `Mezz 3:1-a` style FlexNIC labels are used as they are (with an empty connection name, as
/// profiles built without names show them); other NIC names become connection names on
/// generated FlexNIC ports.
fn port_label(nic: &SimNic, p: usize) -> (String, String) {
    if parse_port(&nic.name).is_some() {
        return (String::new(), nic.name.clone());
    }
    let function = char::from(b'a' + (p / 2 % 8) as u8);
    (nic.name.clone(), format!("Mezz 3:{}-{function}", p % 2 + 1))
}

/// `Mezz 3:1-a` → ("Mezz", 3, 1, 'a').
fn parse_port(label: &str) -> Option<(&str, u32, u32, char)> {
    let (location, rest) = label.split_once(' ')?;
    let (slot, rest) = rest.split_once(':')?;
    let (port, function) = rest.split_once('-')?;
    let mut f = function.chars();
    let (Some(function), None) = (f.next(), f.next()) else {
        return None;
    };
    matches!(location, "Mezz" | "Flb" | "Lom").then_some(())?;
    Some((location, slot.parse().ok()?, port.parse().ok()?, function))
}

/// Every third server also has a FibreChannel connection (it carries a MAC in real data too),
/// placed between the Ethernet ones by `id`.
fn connections(i: usize, s: &SimServer) -> Vec<Value> {
    let fc_after = (i.is_multiple_of(3) && !s.nics.is_empty()).then_some(1);
    let mut out = Vec::new();
    let mut id = 1;
    for (p, nic) in s.nics.iter().enumerate() {
        if fc_after == Some(p) {
            out.push(fc_connection(i, id, s.assigned));
            id += 1;
        }
        out.push(ethernet_connection(i, id, p, nic, s.assigned));
        id += 1;
    }
    out
}

fn ethernet_connection(i: usize, id: usize, p: usize, nic: &SimNic, assigned: bool) -> Value {
    let (name, port_id) = port_label(nic, p);
    let boot = if nic.boot {
        json!({"priority": "Primary", "ethernetBootType": "PXE", "bootVolumeSource": "AdapterBIOS"})
    } else {
        json!({"priority": "NotBootable"})
    };
    json!({
        "id": id,
        "name": name,
        "functionType": "Ethernet",
        "networkUri": format!("/rest/ethernet-networks/19638712-679d-4232-9743-c7cb6c7b{:04x}", p),
        "portId": port_id,
        "requestedVFs": "0",
        "allocatedVFs": 0,
        "interconnectUri": assigned.then(|| format!("/rest/interconnects/f3b2b71e-4f7d-41d1-abc7-5f62145{:05x}", (i * 2 + p % 2) % 0x10_0000)),
        "macType": "Virtual",
        "wwpnType": "Virtual",
        "mac": nic.mac.to_ascii_uppercase(),
        "wwnn": null,
        "wwpn": null,
        "requestedMbps": "2500",
        "allocatedMbps": 2500,
        "maximumMbps": 20000,
        "ipv4": null,
        "boot": boot,
        "state": if assigned { "Deployed" } else { "Reserved" },
        "status": if assigned { "OK" } else { "Disabled" },
        "managed": true,
        "networkName": null,
        "lagName": null,
    })
}

fn fc_connection(i: usize, id: usize, assigned: bool) -> Value {
    let low = (i as u32) & 0x00ff_ffff;
    let [_, a, b, c] = low.to_be_bytes();
    json!({
        "id": id,
        "name": "FC-Fabric-A",
        "functionType": "FibreChannel",
        "networkUri": "/rest/fc-networks/2d19d40b-d348-49da-9510-421acb0598af",
        "portId": "Mezz 3:1-b",
        "requestedVFs": null,
        "allocatedVFs": null,
        "interconnectUri": null,
        "macType": "Virtual",
        "wwpnType": "Virtual",
        "mac": format!("26:76:EF:{a:02X}:{b:02X}:{c:02X}"),
        "wwnn": format!("10:00:42:D9:{a:02X}:{b:02X}:{c:02X}:01"),
        "wwpn": format!("10:00:42:D9:{a:02X}:{b:02X}:{c:02X}:00"),
        "requestedMbps": "8000",
        "allocatedMbps": 8000,
        "maximumMbps": 8000,
        "boot": {"priority": "NotBootable"},
        "state": if assigned { "Deployed" } else { "Reserved" },
        "status": if assigned { "OK" } else { "Disabled" },
    })
}

fn ilo_model(model: &str) -> &'static str {
    if model.contains("Gen11") {
        "iLO6"
    } else if model.contains("Gen9") || model.contains("Gen8") {
        "iLO4"
    } else {
        "iLO5"
    }
}

/// Link-local decoys come first, as on real appliances; the address to report is Static.
fn mp_addresses(s: &SimServer) -> Vec<Value> {
    let mut out: Vec<Value> = s
        .decoy_bmc_addresses
        .iter()
        .map(|a| {
            let kind = if a.to_ascii_lowercase().starts_with("fe80") {
                "LinkLocal"
            } else {
                "Undefined"
            };
            json!({"address": a, "type": kind})
        })
        .collect();
    out.push(json!({"address": s.bmc_address, "type": "Static"}));
    out
}

pub fn hardware(i: usize, s: &SimServer, api: u32) -> Value {
    let id = hardware_id(i);
    let power = match s.power_state.as_str() {
        "on" => "On".to_owned(),
        "off" => "Off".to_owned(),
        other => other.to_owned(),
    };
    json!({
        "type": hardware_type(api),
        "uri": format!("{HARDWARE}/{id}"),
        "category": "server-hardware",
        "name": hardware_name(i),
        "uuid": id,
        "serialNumber": s.serial_number,
        "virtualSerialNumber": format!("VCGU{:06}", i),
        "partNumber": "871940-B21",
        "model": s.model,
        "shortModel": s.model.replace("HPE Synergy ", "SY ").replace(" Compute Module", ""),
        "formFactor": "HalfHeight",
        "position": i % BAYS_PER_ENCLOSURE + 1,
        "locationUri": enclosure_uri(i),
        "powerState": power,
        "powerLock": false,
        "state": "ProfileApplied",
        "stateReason": "NotApplicable",
        "status": "OK",
        "mpModel": ilo_model(&s.model),
        "mpFirmwareVersion": "2.72 Sep 04 2022",
        "mpState": "OK",
        "mpHostInfo": {
            "mpHostName": format!("ILO{}", s.serial_number),
            "mpIpAddresses": mp_addresses(s),
        },
        "serverProfileUri": format!("{PROFILES}/{}", profile_id(i)),
        "processorCount": 2,
        "processorCoreCount": 16,
        "processorType": "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz",
        "memoryMb": 262144,
        "romVersion": "I42 v2.68 (07/14/2022)",
        "portMap": port_map(i, s),
        "created": CREATED,
        "modified": MODIFIED,
        "eTag": format!("1504511998{:03}", i % 1000),
    })
}

/// The adapter view: a SAS controller without MACs and the converged adapter with its
/// burned-in FlexNIC MACs, which are not the profile's virtual MACs (clients must not report
/// them as the server's NICs).
fn port_map(i: usize, s: &SimServer) -> Value {
    let base = (i as u32).wrapping_mul(32) & 0x00ff_ffff;
    let burned = |n: u32| {
        let [_, a, b, c] = (base.wrapping_add(n) & 0x00ff_ffff).to_be_bytes();
        format!("02:23:13:{a:02X}:{b:02X}:{c:02X}")
    };
    let physical = |port: u32| {
        let virtual_ports: Vec<Value> = (0..4u32)
            .map(|f| {
                json!({
                    "mac": burned(port * 8 + f + 1),
                    "wwnn": null,
                    "wwpn": null,
                    "portNumber": f + 1,
                    "portFunction": char::from(b'a' + f as u8).to_string(),
                    "currentAllocatedVirtualFunctionCount": 16,
                })
            })
            .collect();
        json!({
            "type": "Ethernet",
            "portNumber": port + 1,
            "mac": burned(port * 8),
            "wwn": null,
            "interconnectPort": 5,
            "virtualPorts": virtual_ports,
        })
    };
    let mut slots = vec![json!({
        "location": "Mezz", "slotNumber": 1, "deviceNumber": 1,
        "deviceName": "Smart Array P542D Controller",
        "physicalPorts": [{"type": "SAS", "portNumber": 1, "mac": null, "wwn": null, "virtualPorts": []}],
    })];
    if !s.nics.is_empty() {
        slots.push(json!({
            "location": "Mezz", "slotNumber": 3, "deviceNumber": 3,
            "deviceName": "HPE Synergy 3820C 10/20Gb Converged Network Adapter",
            "physicalPorts": [physical(0), physical(1)],
        }));
    }
    json!({"deviceSlots": slots})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(profile_id(3), profile_id(3));
        assert_ne!(profile_id(3), profile_id(4));
        assert_eq!(profile_id(0).len(), 36);
        assert_eq!(hardware_id(10), "30303437-3034-4D32-3230-31310000000A");
        assert_eq!(hardware_name(13), "0000A66101, bay 2");
    }

    #[test]
    fn port_labels() {
        assert_eq!(parse_port("Mezz 3:1-a"), Some(("Mezz", 3, 1, 'a')));
        assert_eq!(parse_port("Flb 1:2-b"), Some(("Flb", 1, 2, 'b')));
        for bad in ["eth0", "Mezz 3:1", "Mezz 3:1-ab", "Bay 3:1-a", "Mezz x:1-a"] {
            assert_eq!(parse_port(bad), None, "{bad}");
        }
    }
}
