//! The neutral fleet as Intersight's managed objects: one `compute.PhysicalSummary` per server,
//! a `server.Profile` for every fourth, one `adapter.HostEthInterface` per NIC (with the server
//! among its `Ancestors`, as Intersight's inventory tree has it).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::sim::SimServer;

/// A server profile assigned to no server.
pub const UNASSIGNED_PROFILE: &str = "intersight-profile-unassigned";

pub struct Index {
    pub summaries: Vec<Value>,
    pub profiles: Vec<Value>,
    pub host_eth: Vec<Value>,
    moids: HashMap<String, usize>,
    /// (collection, key) → positions: `Name` of summaries and profiles, `Moid` of summaries,
    /// each `Ancestors` Moid of interfaces. Lets a filtered query skip the full scan, so the
    /// simulator's own cost stays out of the gateway's measured latency at fleet scale.
    lookup: HashMap<(Lookup, String), Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    SummaryName,
    SummaryMoid,
    ProfileName,
    HostEthAncestor,
}

/// Deterministic 24-hex-digit Moids, the shape of Intersight's ObjectIds.
fn moid(kind: u8, i: usize) -> String {
    format!("65{kind:02x}{:020x}", i as u64)
}

fn moref(object_type: &str, moid: &str, collection: &str) -> Value {
    json!({
        "ClassId": "mo.MoRef",
        "ObjectType": object_type,
        "Moid": moid,
        "link": format!("https://www.intersight.com/api/v1/{collection}/{moid}"),
    })
}

/// Servers known by a profile name.
pub fn profile_named(i: usize) -> bool {
    i % 4 == 3
}

impl Index {
    pub fn build(fleet: &[SimServer]) -> Self {
        let mut summaries = Vec::with_capacity(fleet.len());
        let mut profiles = Vec::new();
        let mut host_eth = Vec::new();
        for (i, s) in fleet.iter().enumerate() {
            let server_moid = moid(0x01, i);
            let blade = s.model.starts_with("UCSX") || s.model.starts_with("UCSB");
            let (source_type, collection, dn) = if blade {
                (
                    "compute.Blade",
                    "compute/Blades",
                    format!("sys/chassis-{}/blade-{}", i / 8 + 1, i % 8 + 1),
                )
            } else {
                (
                    "compute.RackUnit",
                    "compute/RackUnits",
                    format!("sys/rack-unit-{}", i + 1),
                )
            };
            let standalone = s.nics_from_bmc;
            let physical_name = if profile_named(i) {
                format!("srv-{}", s.serial_number.to_ascii_lowercase())
            } else {
                s.name.clone()
            };
            summaries.push(json!({
                "ClassId": "compute.PhysicalSummary",
                "ObjectType": "compute.PhysicalSummary",
                "Moid": server_moid,
                "Name": physical_name,
                "Dn": dn,
                "Serial": s.serial_number,
                "Model": s.model,
                "Vendor": "Cisco Systems Inc",
                "MgmtIpAddress": s.bmc_address,
                "OperPowerState": s.power_state,
                "SourceObjectType": source_type,
                "ManagementMode": if standalone { "IntersightStandalone" } else { "Intersight" },
                "PlatformType": if standalone { "IMCRack" } else if blade { "IMCBlade" } else { "IMCM5" },
                "NumEthHostInterfaces": managed_nics_count(s),
                "NumAdaptors": usize::from(!standalone),
                "Firmware": "4.3(2.240002)",
                "AccountMoid": "5f0000000000000000000001",
                "Ancestors": [],
                "Tags": [],
            }));
            if profile_named(i) {
                profiles.push(json!({
                    "ClassId": "server.Profile",
                    "ObjectType": "server.Profile",
                    "Moid": moid(0x02, i),
                    "Name": s.name,
                    "TargetPlatform": if blade { "FIAttached" } else { "Standalone" },
                    "AssignedServer": moref(source_type, &server_moid, collection),
                    "Tags": [],
                }));
            }
            let adapter_moid = moid(0x03, i);
            // A standalone server's NICs are its CIMC's to tell.
            let managed_nics = if standalone { &[][..] } else { &s.nics[..] };
            for (p, nic) in managed_nics.iter().enumerate() {
                host_eth.push(json!({
                    "ClassId": "adapter.HostEthInterface",
                    "ObjectType": "adapter.HostEthInterface",
                    "Moid": moid(0x04, i * 16 + p),
                    "Name": nic.name,
                    "MacAddress": nic.mac.to_ascii_uppercase(),
                    "Dn": format!("{dn}/adaptor-1/host-eth-{}", nic.name),
                    "HostEthInterfaceId": p + 1,
                    "OperState": "up",
                    "AdminState": "enabled",
                    "AdapterUnit": moref("adapter.Unit", &adapter_moid, "adapter/Units"),
                    "Ancestors": [
                        moref("adapter.Unit", &adapter_moid, "adapter/Units"),
                        moref(source_type, &server_moid, collection),
                    ],
                    "Tags": [],
                }));
            }
        }
        profiles.push(json!({
            "ClassId": "server.Profile",
            "ObjectType": "server.Profile",
            "Moid": moid(0x02, fleet.len() + 1),
            "Name": UNASSIGNED_PROFILE,
            "TargetPlatform": "Standalone",
            "AssignedServer": null,
            "Tags": [],
        }));
        let moids = summaries
            .iter()
            .chain(&profiles)
            .chain(&host_eth)
            .enumerate()
            .filter_map(|(n, v)| Some((v.get("Moid")?.as_str()?.to_owned(), n)))
            .collect();
        let mut lookup: HashMap<(Lookup, String), Vec<usize>> = HashMap::new();
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        for (n, v) in summaries.iter().enumerate() {
            for (l, k) in [(Lookup::SummaryName, "Name"), (Lookup::SummaryMoid, "Moid")] {
                if let Some(t) = text(v, k) {
                    lookup.entry((l, t)).or_default().push(n);
                }
            }
        }
        for (n, v) in profiles.iter().enumerate() {
            if let Some(t) = text(v, "Name") {
                lookup.entry((Lookup::ProfileName, t)).or_default().push(n);
            }
        }
        for (n, v) in host_eth.iter().enumerate() {
            for a in v
                .get("Ancestors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = text(a, "Moid") {
                    lookup
                        .entry((Lookup::HostEthAncestor, t))
                        .or_default()
                        .push(n);
                }
            }
        }
        Self {
            summaries,
            profiles,
            host_eth,
            moids,
            lookup,
        }
    }

    /// Positions that can match `key` (a superset of the matches: the filter still applies).
    pub fn candidates(&self, lookup: Lookup, key: &str) -> &[usize] {
        self.lookup
            .get(&(lookup, key.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// The object of `items` with this Moid.
    pub fn by_moid<'a>(&self, items: &'a [Value], moid: &str) -> Option<&'a Value> {
        // Moids are unique across collections, but the caller asked one collection.
        self.moids.get(moid)?;
        items
            .iter()
            .find(|v| v.get("Moid").and_then(Value::as_str) == Some(moid))
    }
}

fn managed_nics_count(s: &SimServer) -> usize {
    if s.nics_from_bmc {
        0
    } else {
        s.nics.len()
    }
}
