//! The NMStateConfig the assisted installer applies at boot: the boot NIC up, and a VLAN
//! interface on it with DHCP. Only rendered when the generator asks for a VLAN.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controller::objects::{
    MacInterface, NMStateConfig, NMStateConfigSpec, NmInterface, NmIp, NmState, NmVlan,
};
use crate::domain::MacAddress;

/// The VLAN interface's name on `base`: `<base>.<vlan>`, as the old operator named it.
pub(super) fn vlan_interface(base: &str, vlan: u16) -> String {
    format!("{base}.{vlan}")
}

pub(super) struct NmStateParts<'a> {
    pub name: String,
    pub namespace: &'a str,
    pub labels: BTreeMap<String, String>,
    /// The logical name of the boot NIC (what `interfaces` maps to its MAC).
    pub base: &'a str,
    pub mac: MacAddress,
    pub vlan: u16,
}

pub(super) fn nmstate_config(parts: NmStateParts<'_>) -> NMStateConfig {
    let base = parts.base.to_owned();
    let mac = parts.mac.to_string();
    let ethernet = NmInterface {
        name: base.clone(),
        kind: "ethernet".into(),
        state: Some("up".into()),
        mac_address: Some(mac.clone()),
        ..NmInterface::default()
    };
    let vlan = NmInterface {
        name: vlan_interface(&base, parts.vlan),
        kind: "vlan".into(),
        state: Some("up".into()),
        vlan: Some(NmVlan {
            base_iface: base.clone(),
            id: parts.vlan,
        }),
        ipv4: Some(NmIp {
            enabled: Some(true),
            dhcp: Some(true),
            fields: Default::default(),
        }),
        ..NmInterface::default()
    };
    NMStateConfig {
        metadata: ObjectMeta {
            name: Some(parts.name),
            namespace: Some(parts.namespace.to_owned()),
            labels: Some(parts.labels),
            ..ObjectMeta::default()
        },
        spec: NMStateConfigSpec {
            config: Some(NmState {
                interfaces: vec![ethernet, vlan],
                fields: Default::default(),
            }),
            interfaces: vec![MacInterface {
                name: base,
                mac_address: mac,
            }],
            fields: Default::default(),
        },
    }
}
