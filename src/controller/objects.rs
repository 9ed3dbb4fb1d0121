//! The other operators' resources the controller writes and watches. Only the fields the
//! controller reads are typed; everything else round-trips untouched through `fields`, so these
//! types never drop what Metal3 or the assisted installer put there.

use std::collections::BTreeMap;

use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::render::{GENERATOR_LABEL, GENERATOR_NAMESPACE_LABEL};

/// `metal3.io/v1alpha1` BareMetalHost, owned by the baremetal-operator.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metal3.io",
    version = "v1alpha1",
    kind = "BareMetalHost",
    derive = "Default",
    plural = "baremetalhosts",
    namespaced,
    status = "BareMetalHostStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct BareMetalHostSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Kept as the string the API holds: baremetal-operator compares it byte for byte, so a
    /// host written with upper-case hex must keep it.
    #[serde(
        default,
        rename = "bootMACAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub boot_mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BmcDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated_cleaning_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_deploy: Option<CustomDeploy>,
    /// Everything else Metal3 or a user put in the spec.
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

/// `spec.bmc`. The Metal3 CRD requires `address` and `credentialsName`, and the API server
/// validates stored hosts against it, so reading them typed cannot fail on a real cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BmcDetails {
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub credentials_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_certificate_verification: Option<bool>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

/// `spec.customDeploy`: the assisted installer's deploy method.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CustomDeploy {
    pub method: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct BareMetalHostStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<Provisioning>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Provisioning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

impl BareMetalHost {
    /// `status.provisioning.state`; `""` when the operator has not written a status yet.
    pub fn provisioning_state(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.provisioning.as_ref())
            .and_then(|p| p.state.as_deref())
            .unwrap_or("")
    }

    /// `spec.bootMACAddress` as stored.
    pub fn boot_mac(&self) -> Option<&str> {
        self.spec.boot_mac_address.as_deref()
    }

    /// `spec.bmc.address` as stored.
    pub fn bmc_address(&self) -> Option<&str> {
        self.spec.bmc.as_ref().map(|b| b.address.as_str())
    }

    /// `namespace/name`, the admission key of a host.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.namespace().unwrap_or_default(),
            self.name_any()
        )
    }

    /// The generator that created this host, from the labels the controller puts on it.
    pub fn generator(&self) -> Option<(String, String)> {
        generator_of(self.labels(), self.namespace().as_deref())
    }
}

/// `agent-install.openshift.io/v1beta1` NMStateConfig, read by the assisted installer.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "agent-install.openshift.io",
    version = "v1beta1",
    kind = "NMStateConfig",
    plural = "nmstateconfigs",
    namespaced,
    schema = "disabled"
)]
pub struct NMStateConfigSpec {
    /// An nmstate document (free-form in the agent-install CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<NmState>,
    /// Logical interface name → MAC, how the installer finds the NIC `config` speaks of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<MacInterface>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

/// The part of an nmstate document the controller writes; the rest round-trips in `fields`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NmState {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<NmInterface>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

/// One nmstate interface: the ethernet NIC, or the VLAN on top of it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct NmInterface {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<NmVlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<NmIp>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct NmVlan {
    pub base_iface: String,
    pub id: u16,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct NmIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<bool>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MacInterface {
    pub name: String,
    pub mac_address: String,
}

impl NMStateConfig {
    /// Points every interface that names MAC `from` at `to` instead (compared ignoring case):
    /// when a host keeps the boot MAC it was created with, its NMStateConfig must speak of that
    /// NIC too, not of the one chosen today.
    pub fn retarget_mac(&mut self, from: &str, to: &str) {
        let same = |m: &str| m.eq_ignore_ascii_case(from);
        if let Some(config) = self.spec.config.as_mut() {
            for i in &mut config.interfaces {
                if let Some(m) = i.mac_address.as_mut().filter(|m| same(m)) {
                    to.clone_into(m);
                }
            }
        }
        for i in &mut self.spec.interfaces {
            if same(&i.mac_address) {
                to.clone_into(&mut i.mac_address);
            }
        }
    }
}

/// `(namespace, name)` of the generator named by an object's labels. The namespace label is
/// absent on objects created in the generator's own namespace.
pub fn generator_of(
    labels: &BTreeMap<String, String>,
    object_namespace: Option<&str>,
) -> Option<(String, String)> {
    let name = labels.get(GENERATOR_LABEL)?;
    let ns = labels
        .get(GENERATOR_NAMESPACE_LABEL)
        .map(String::as_str)
        .or(object_namespace)?;
    Some((ns.to_owned(), name.clone()))
}

/// The admission key of a host that does not exist yet.
pub fn host_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip_and_the_state_is_read() {
        let raw = serde_json::json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": "w1", "namespace": "ztp",
                         "labels": {GENERATOR_LABEL: "w1"}},
            "spec": {"online": true, "bootMACAddress": "aa:bb:cc:dd:ee:01",
                     "bmc": {"address": "ipmi://10.0.0.1:623", "credentialsName": "c"}},
            "status": {"operationalStatus": "OK", "provisioning": {"state": "inspecting", "ID": "x"}}
        });
        let bmh: BareMetalHost = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(bmh.provisioning_state(), "inspecting");
        assert_eq!(bmh.boot_mac(), Some("aa:bb:cc:dd:ee:01"));
        assert_eq!(bmh.bmc_address(), Some("ipmi://10.0.0.1:623"));
        assert_eq!(bmh.key(), "ztp/w1");
        assert_eq!(bmh.generator(), Some(("ztp".into(), "w1".into())));
        assert_eq!(serde_json::to_value(&bmh).unwrap(), raw);
    }

    #[test]
    fn an_nmstateconfig_is_retargeted_to_the_kept_mac() {
        let mut nm: NMStateConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "agent-install.openshift.io/v1beta1", "kind": "NMStateConfig",
            "metadata": {"name": "nmstate-config-d1", "namespace": "ztp"},
            "spec": {
                "config": {"interfaces": [
                    {"name": "eno1", "type": "ethernet", "state": "up", "mac-address": "b0:7b:25:00:00:02"},
                    {"name": "eno1.24", "type": "vlan", "state": "up",
                     "vlan": {"base-iface": "eno1", "id": 24}, "ipv4": {"enabled": true, "dhcp": true}}
                ]},
                "interfaces": [{"name": "eno1", "macAddress": "b0:7b:25:00:00:02"}]
            }
        }))
        .unwrap();
        nm.retarget_mac("B0:7B:25:00:00:02", "B0:7B:25:00:00:01");
        let v = serde_json::to_value(&nm).unwrap();
        assert_eq!(
            v["spec"]["config"]["interfaces"][0]["mac-address"],
            "B0:7B:25:00:00:01"
        );
        assert_eq!(
            v["spec"]["interfaces"][0]["macAddress"],
            "B0:7B:25:00:00:01"
        );
        assert_eq!(v["spec"]["config"]["interfaces"][1]["vlan"]["id"], 24);
    }

    #[test]
    fn a_host_without_status_is_in_the_empty_state() {
        let bmh: BareMetalHost = serde_json::from_value(serde_json::json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": "w1", "namespace": "ztp"}, "spec": {}
        }))
        .unwrap();
        assert_eq!(bmh.provisioning_state(), "");
        assert_eq!(bmh.generator(), None);
    }
}
