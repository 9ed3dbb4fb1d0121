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
pub struct BareMetalHostSpec {
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
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
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: Map<String, Value>,
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
        assert_eq!(bmh.key(), "ztp/w1");
        assert_eq!(bmh.generator(), Some(("ztp".into(), "w1".into())));
        assert_eq!(serde_json::to_value(&bmh).unwrap(), raw);
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
