//! The `BareMetalHostGenerator` custom resource, kept wire-compatible with the Python/kopf operator
//! it replaces: same group, version, kind, short name and field names (including the one
//! snake_case key, `server_vendor`), so existing CRs reconcile unchanged.
//!
//! The Rust types *are* the schema: `inventory-gateway crd` prints the CRD generated from them and
//! `deploy/crd/bmhgen.yaml` is checked against that output in tests.
//!
//! Two layers of validation:
//! - the OpenAPI schema (and one CEL rule) lets the API server reject bad new objects;
//! - [`BareMetalHostGenerator::parse`] turns a spec into a [`GeneratorRequest`] that is valid by
//!   construction. It re-checks everything the controller relies on, because objects stored
//!   under the old operator's looser CRD (or written to an API emulator that runs no CEL) were never
//!   validated by this schema.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::legacy;
use crate::domain::{ServerName, Vendor};

pub const GROUP: &str = "infra.example.com";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "BareMetalHostGenerator";
/// Annotation that turns dry-run on, like `spec.dryRun` (for CRs whose spec should stay as it was).
pub const DRY_RUN_ANNOTATION: &str = "infra.example.com/dry-run";
/// Annotation that asks for the host to be deleted and created again; removed once done.
pub const REDEPLOY_ANNOTATION: &str = "infra.example.com/redeploy";

/// What the user asks for. Field names follow the old operator's CRs exactly.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "infra.example.com",
    version = "v1alpha1",
    kind = "BareMetalHostGenerator",
    derive = "Default",
    plural = "baremetalhostgenerators",
    shortname = "bmhgen",
    namespaced,
    status = "BareMetalHostGeneratorStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Server","type":"string","jsonPath":".spec.serverName"}"#,
    printcolumn = r#"{"name":"Vendor","type":"string","jsonPath":".status.serverVendor"}"#,
    printcolumn = r#"{"name":"MAC","type":"string","jsonPath":".status.macAddress"}"#,
    printcolumn = r#"{"name":"BMC","type":"string","priority":1,"jsonPath":".status.ipmiAddress"}"#,
    printcolumn = r#"{"name":"BMH","type":"string","jsonPath":".status.bmhName"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_infra_env)]
pub struct BareMetalHostGeneratorSpec {
    /// Server name as the management systems know it. Defaults to the generator's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._:-]+$"))]
    pub server_name: Option<String>,
    /// Namespace of the created objects. Defaults to the generator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Name of the assisted-installer InfraEnv the host joins.
    // `default` on read: a stored CR without it must fail on its own (status Failed), not make
    // the list of all generators undecodable. The schema still requires it.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub infra_env: String,
    /// Extra labels put on the BareMetalHost.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub labels: BTreeMap<String, String>,
    /// HP, DELL or CISCO (any case; SUPERMICRO, LENOVO, OTHER for servers behind their own
    /// Redfish BMCs). Without it every management system is asked.
    #[serde(
        rename = "server_vendor",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^([Hh][Pp]|[Dd][Ee][Ll][Ll]|[Cc][Ii][Ss][Cc][Oo])$"))]
    pub server_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<NetworkConfig>,
    /// Record in status what would be created, and create nothing (also: annotation
    /// `infra.example.com/dry-run: "true"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// Network settings: a VLAN for the NMStateConfig, and which NIC boots.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.nicName) == has(self.macIndex)",
    "message": "nicName and macIndex must be set together, or neither"
}]))]
pub struct NetworkConfig {
    /// VLAN id (1-4094); when set, an NMStateConfig with a VLAN interface is created.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_integer"
    )]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan_id: Option<i64>,
    /// Name of the NIC (as the management system names it) that carries the VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub nic_name: Option<String>,
    /// Which NIC's MAC boots: `first`, `last`, or a 0-based index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_mac_index_schema")]
    pub mac_index: Option<MacIndexValue>,
}

/// `macIndex` as users write it: `first`, `last`, `2` or `"2"`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum MacIndexValue {
    Number(i64),
    Text(String),
    /// Anything else (a float, a list…): kept so that the object still deserializes and the
    /// generator can be marked Failed with a message, instead of breaking the watch.
    Other(serde_json::Value),
}

impl JsonSchema for MacIndexValue {
    fn schema_name() -> Cow<'static, str> {
        "MacIndexValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // The same shape Kubernetes uses for IntOrString; the exact values are checked by `parse`.
        json_schema!({
            "description": "first, last, or a 0-based NIC index",
            "x-kubernetes-int-or-string": true,
            "anyOf": [{ "type": "integer" }, { "type": "string" }]
        })
    }
}

/// `Option<MacIndexValue>` without the `anyOf [.., null]` wrapper schemars would add: a structural
/// schema allows no types inside junctors except the exact IntOrString form.
fn optional_mac_index_schema(g: &mut SchemaGenerator) -> Schema {
    let mut schema = MacIndexValue::json_schema(g);
    schema.insert("nullable".into(), true.into());
    schema
}

/// Where a generator is in its life. A Rust enum: no other value can ever be written to status.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    Processing,
    Buffered,
    Completed,
    Failed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Processing => "Processing",
            Self::Buffered => "Buffered",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
        })
    }
}

/// What the controller observed and did. Keys follow the old operator's status.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BareMetalHostGeneratorStatus {
    // Read leniently: a value outside the enum (the replaced operator wrote some) reads as
    // unset instead of making the whole list of generators undecodable.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the generator entered the buffer (release order is FIFO by this time).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub buffered_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// The BMC address the host was enrolled with (the old operator's name for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipmi_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmh_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmh_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_vendor: Option<String>,
    /// An integer; the old operator wrote the annotation's string (`"24"`), which reads as 24.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_vlan"
    )]
    #[schemars(schema_with = "int_or_string_schema")]
    pub vlan_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_nic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_mac_index: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub observed_generation: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient"
    )]
    pub conditions: Vec<Condition>,
    /// The BMC URL the host was enrolled with (`bmc.address`); `ipmiAddress` keeps the bare IP
    /// the old operator wrote there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_address: Option<String>,
}

/// Which NIC of a server's list (in the vendor's stable order) is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacIndex {
    First,
    Last,
    Index(usize),
}

impl MacIndex {
    pub fn parse_str(s: &str) -> Result<Self, SpecError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "first" => Ok(Self::First),
            "last" => Ok(Self::Last),
            _ => t
                .parse::<usize>()
                .map(Self::Index)
                .map_err(|_| SpecError::MacIndex(s.to_owned())),
        }
    }

    fn from_value(v: &MacIndexValue) -> Result<Self, SpecError> {
        match v {
            MacIndexValue::Number(n) => usize::try_from(*n)
                .map(Self::Index)
                .map_err(|_| SpecError::MacIndex(n.to_string())),
            MacIndexValue::Text(s) => Self::parse_str(s),
            MacIndexValue::Other(v) => Err(SpecError::MacIndex(v.to_string())),
        }
    }

    /// The position this index designates in a list of `len` NICs, if any.
    pub fn resolve(&self, len: usize) -> Option<usize> {
        match *self {
            _ if len == 0 => None,
            Self::First => Some(0),
            Self::Last => Some(len - 1),
            Self::Index(i) => (i < len).then_some(i),
        }
    }
}

impl fmt::Display for MacIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::First => f.write_str("first"),
            Self::Last => f.write_str("last"),
            Self::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A spec the controller cannot act on. Permanent: the generator goes to `Failed` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("the generator has no name")]
    NoName,
    #[error("no target namespace: set spec.namespace or create the generator in a namespace")]
    NoNamespace,
    #[error("invalid serverName {name:?}: {reason}")]
    ServerName { name: String, reason: String },
    #[error("spec.infraEnv is required")]
    InfraEnv,
    #[error("unknown server_vendor {0:?} (expected HP, DELL, CISCO, SUPERMICRO, LENOVO or OTHER)")]
    Vendor(String),
    #[error("networkConfig.vlanId must be 1-4094, got {0}")]
    VlanId(i64),
    #[error("networkConfig.macIndex must be first, last or a non-negative index, got {0:?}")]
    MacIndex(String),
    #[error("networkConfig.nicName and networkConfig.macIndex must be set together, or neither")]
    NicOverrideIncomplete,
    #[error("annotation vlanId must be 1-4094, got {0:?}")]
    VlanAnnotation(String),
}

/// `networkConfig.nicName` + `macIndex`: the user's explicit NIC choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicOverride {
    pub nic_name: String,
    pub mac_index: MacIndex,
}

/// A generator's spec after parsing: everything here is valid and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorRequest {
    /// The generator's own name; generated objects are named after it.
    pub name: String,
    /// The namespace the generator lives in.
    pub generator_namespace: Option<String>,
    pub server_name: ServerName,
    pub target_namespace: String,
    pub infra_env: String,
    pub labels: BTreeMap<String, String>,
    pub vendor: Option<Vendor>,
    pub vlan_id: Option<u16>,
    pub nic_override: Option<NicOverride>,
    /// `spec.dryRun` or the dry-run annotation set to `true`.
    pub dry_run: bool,
    /// What the BareMetalHost, Secret and NMStateConfig are named after: the server name, as
    /// the old operator named them (not the generator's name).
    pub object_name: String,
    /// The old `vlanId` annotation (used when `networkConfig.vlanId` is absent). Like the old
    /// operator, it makes an NMStateConfig for Dell servers only.
    pub annotation_vlan_id: Option<u16>,
}

impl GeneratorRequest {
    /// The VLAN that applies once the vendor is known.
    pub fn vlan_for(&self, vendor: Vendor) -> Option<u16> {
        self.vlan_id
            .or(self.annotation_vlan_id.filter(|_| vendor == Vendor::Dell))
    }
}

/// The old operator's vendor names: HP, DELL, CISCO, in any case; and the makes only found
/// behind standalone Redfish BMCs: SUPERMICRO, LENOVO, OTHER.
pub fn parse_spec_vendor(s: &str) -> Result<Vendor, SpecError> {
    match s.trim().to_ascii_uppercase().as_str() {
        "HP" => Ok(Vendor::Hpe),
        "DELL" => Ok(Vendor::Dell),
        "CISCO" => Ok(Vendor::Cisco),
        "SUPERMICRO" => Ok(Vendor::Supermicro),
        "LENOVO" => Ok(Vendor::Lenovo),
        "OTHER" => Ok(Vendor::Other),
        _ => Err(SpecError::Vendor(s.to_owned())),
    }
}

/// The old operator's annotation: only the three vendors it knew are a hint (it guessed from
/// the server name for anything else, so such a CR keeps asking every system).
pub fn parse_legacy_vendor(s: &str) -> Result<Vendor, SpecError> {
    match parse_spec_vendor(s)? {
        v @ (Vendor::Hpe | Vendor::Dell | Vendor::Cisco) => Ok(v),
        _ => Err(SpecError::Vendor(s.to_owned())),
    }
}

/// The spelling the old operator used in status and names (`HP`, `DELL`, `CISCO`).
pub fn spec_vendor_name(v: Vendor) -> &'static str {
    match v {
        Vendor::Hpe => "HP",
        Vendor::Dell => "DELL",
        Vendor::Cisco => "CISCO",
        Vendor::Supermicro => "SUPERMICRO",
        Vendor::Lenovo => "LENOVO",
        Vendor::Other => "OTHER",
    }
}

impl BareMetalHostGenerator {
    /// Parse the spec into a request the controller can act on, applying the defaults.
    pub fn parse(&self) -> Result<GeneratorRequest, SpecError> {
        let name = self
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(SpecError::NoName)?;
        let generator_namespace = self.metadata.namespace.clone().filter(|n| !n.is_empty());
        let spec = &self.spec;
        let raw_server = spec
            .server_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(&name);
        let server_name = ServerName::parse(raw_server).map_err(|e| SpecError::ServerName {
            name: raw_server.to_owned(),
            reason: e.to_string(),
        })?;
        let target_namespace = spec
            .namespace
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| generator_namespace.clone())
            .ok_or(SpecError::NoNamespace)?;
        let infra_env = spec.infra_env.trim();
        if infra_env.is_empty() {
            return Err(SpecError::InfraEnv);
        }
        let annotations = self.metadata.annotations.clone().unwrap_or_default();
        // The old operator read the vendor and the VLAN from annotations; the spec fields win.
        // An annotation naming no vendor it knew made it guess from the server name; here the
        // hint is dropped and every system is asked, so such a CR keeps working.
        let vendor = match spec
            .server_vendor
            .as_deref()
            .filter(|v| !v.trim().is_empty())
        {
            Some(v) => Some(parse_spec_vendor(v)?),
            None => annotations
                .get(legacy::VENDOR_ANNOTATION)
                .and_then(|v| parse_legacy_vendor(v).ok()),
        };
        let annotation_vlan_id = annotations
            .get(legacy::VLAN_ANNOTATION)
            .map(|v| v.trim())
            // The old operator skipped "" and "None" (Python's str(None)).
            .filter(|v| !v.is_empty() && *v != "None")
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|n| (1..=4094).contains(n))
                    .ok_or_else(|| SpecError::VlanAnnotation(v.to_owned()))
            })
            .transpose()?;
        let (vlan_id, nic_override) = match &spec.network_config {
            None => (None, None),
            Some(nc) => {
                let vlan_id = nc
                    .vlan_id
                    .map(|v| {
                        u16::try_from(v)
                            .ok()
                            .filter(|v| (1..=4094).contains(v))
                            .ok_or(SpecError::VlanId(v))
                    })
                    .transpose()?;
                let nic_name = nc
                    .nic_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty());
                let nic_override = match (nic_name, &nc.mac_index) {
                    (None, None) => None,
                    (Some(nic_name), Some(idx)) => Some(NicOverride {
                        nic_name: nic_name.to_owned(),
                        mac_index: MacIndex::from_value(idx)?,
                    }),
                    _ => return Err(SpecError::NicOverrideIncomplete),
                };
                (vlan_id, nic_override)
            }
        };
        let object_name = server_name.as_str().to_owned();
        Ok(GeneratorRequest {
            name,
            generator_namespace,
            server_name,
            target_namespace,
            infra_env: infra_env.to_owned(),
            labels: spec.labels.clone(),
            vendor,
            vlan_id,
            nic_override,
            dry_run: spec.dry_run.unwrap_or(false)
                || self
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DRY_RUN_ANNOTATION))
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            object_name,
            annotation_vlan_id,
        })
    }
}

/// The schema keeps `infraEnv` required although the Rust field reads a missing one as empty.
fn require_infra_env(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("required".into(), serde_json::json!(["infraEnv"]));
        if let Some(field) = obj
            .get_mut("properties")
            .and_then(|p| p.get_mut("infraEnv"))
            .and_then(|f| f.as_object_mut())
        {
            field.remove("default");
        }
    }
}

/// Reads a field, or its default when the stored value does not fit the type. Objects written
/// under the replaced operator's looser CRD must not make every generator undecodable: kube-rs
/// decodes a whole list at once, and one bad item would stop the controller.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// `status.vlanId`: an integer, or the string the old operator wrote. Anything else reads as
/// unset (status is rewritten from the spec anyway).
fn lenient_vlan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Stored status written by the old operator holds strings where this one writes integers.
fn int_or_string_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "nullable": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }]
    })
}

/// An integer, also when written as a string (`"120"`). Anything else reads as 0, which
/// [`BareMetalHostGenerator::parse`] rejects with a message.
fn lenient_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::Number(n) => Some(n.as_i64().unwrap_or(0)),
        serde_json::Value::String(s) => Some(s.trim().parse().unwrap_or(0)),
        _ => Some(0),
    })
}

/// Label values written as numbers or booleans (`rack: 12`) read as their text.
fn scalar_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            serde_json::Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect())
}

/// The CRD as YAML, exactly what `inventory-gateway crd` prints and `deploy/crd/bmhgen.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    use kube::CustomResourceExt;
    serde_norway::to_string(&BareMetalHostGenerator::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(yaml: &str) -> BareMetalHostGenerator {
        serde_norway::from_str(yaml).unwrap()
    }

    const OLD_OPERATOR_EXAMPLE: &str = r#"
apiVersion: infra.example.com/v1alpha1
kind: BareMetalHostGenerator
metadata:
  name: worker-01
  namespace: ztp
spec:
  serverName: OV-SRV-0001
  namespace: cluster-a
  infraEnv: cluster-a-env
  labels:
    rack: r12
  server_vendor: hp
  networkConfig:
    vlanId: 120
    nicName: ens1f0
    macIndex: last
"#;

    #[test]
    fn old_operator_cr_parses_with_its_field_names() {
        let g = generator(OLD_OPERATOR_EXAMPLE);
        let r = g.parse().unwrap();
        assert_eq!(r.name, "worker-01");
        assert_eq!(r.server_name.as_str(), "OV-SRV-0001");
        assert_eq!(r.target_namespace, "cluster-a");
        assert_eq!(r.infra_env, "cluster-a-env");
        assert_eq!(r.vendor, Some(Vendor::Hpe));
        assert_eq!(r.vlan_id, Some(120));
        assert_eq!(
            r.nic_override,
            Some(NicOverride {
                nic_name: "ens1f0".into(),
                mac_index: MacIndex::Last
            })
        );
        // Round trip keeps the snake_case key the old operator used.
        let back = serde_json::to_value(&g.spec).unwrap();
        assert_eq!(back["server_vendor"], "hp");
        assert!(back.get("serverVendor").is_none());
    }

    #[test]
    fn defaults_come_from_the_generator() {
        let g = generator("metadata: {name: web-7, namespace: ztp}\nspec: {infraEnv: env}\n");
        let r = g.parse().unwrap();
        assert_eq!(r.server_name.as_str(), "web-7");
        assert_eq!(r.target_namespace, "ztp");
        assert_eq!(r.vendor, None);
        assert_eq!((r.vlan_id, r.nic_override), (None, None));
    }

    #[test]
    fn vendors_are_case_insensitive_the_old_three_and_the_redfish_makes() {
        for (s, v) in [
            ("HP", Vendor::Hpe),
            ("dell", Vendor::Dell),
            ("Cisco", Vendor::Cisco),
            ("SUPERMICRO", Vendor::Supermicro),
            ("lenovo", Vendor::Lenovo),
            ("Other", Vendor::Other),
        ] {
            assert_eq!(parse_spec_vendor(s), Ok(v));
            assert_eq!(spec_vendor_name(v).to_lowercase(), s.to_lowercase());
        }
        for bad in ["hpe", "ucs", "ibm", ""] {
            assert!(parse_spec_vendor(bad).is_err(), "{bad}");
        }
        // The old operator's annotation knew only three.
        assert!(parse_legacy_vendor("lenovo").is_err());
        assert_eq!(parse_legacy_vendor("dell"), Ok(Vendor::Dell));
    }

    #[test]
    fn mac_index_forms() {
        for (yaml, want) in [
            ("first", MacIndex::First),
            ("LAST", MacIndex::Last),
            ("2", MacIndex::Index(2)),
            ("\"3\"", MacIndex::Index(3)),
        ] {
            let g = generator(&format!(
                "metadata: {{name: a, namespace: n}}\nspec: {{infraEnv: e, networkConfig: {{nicName: eth0, macIndex: {yaml}}}}}\n"
            ));
            assert_eq!(
                g.parse().unwrap().nic_override.unwrap().mac_index,
                want,
                "{yaml}"
            );
        }
        for bad in ["-1", "middle", "1.5"] {
            let g = generator(&format!(
                "metadata: {{name: a, namespace: n}}\nspec: {{infraEnv: e, networkConfig: {{nicName: eth0, macIndex: {bad}}}}}\n"
            ));
            assert!(matches!(g.parse(), Err(SpecError::MacIndex(_))), "{bad}");
        }
        assert_eq!(MacIndex::Last.resolve(3), Some(2));
        assert_eq!(MacIndex::Index(3).resolve(3), None);
        assert_eq!(MacIndex::First.resolve(0), None);
    }

    #[test]
    fn invalid_specs_fail_with_a_clear_reason() {
        let cases = [
            (
                "{infraEnv: e, networkConfig: {nicName: eth0}}",
                SpecError::NicOverrideIncomplete,
            ),
            (
                "{infraEnv: e, networkConfig: {macIndex: 0}}",
                SpecError::NicOverrideIncomplete,
            ),
            (
                "{infraEnv: e, networkConfig: {vlanId: 0}}",
                SpecError::VlanId(0),
            ),
            (
                "{infraEnv: e, networkConfig: {vlanId: 4095}}",
                SpecError::VlanId(4095),
            ),
            ("{infraEnv: ' '}", SpecError::InfraEnv),
            (
                "{infraEnv: e, server_vendor: IBM}",
                SpecError::Vendor("IBM".into()),
            ),
        ];
        for (spec, want) in cases {
            let g = generator(&format!(
                "metadata: {{name: a, namespace: n}}\nspec: {spec}\n"
            ));
            assert_eq!(g.parse(), Err(want), "{spec}");
        }
        let g = generator("metadata: {name: a}\nspec: {infraEnv: e}\n");
        assert_eq!(g.parse(), Err(SpecError::NoNamespace));
        let g = generator(
            "metadata: {name: a, namespace: n}\nspec: {infraEnv: e, serverName: \"a b\"}\n",
        );
        assert!(matches!(g.parse(), Err(SpecError::ServerName { .. })));
    }

    #[test]
    fn phase_is_a_closed_set() {
        let s: BareMetalHostGeneratorStatus =
            serde_json::from_value(serde_json::json!({"phase": "Buffered"})).unwrap();
        assert_eq!(s.phase, Some(Phase::Buffered));
        // The enum is closed for writing; an unknown stored value reads as unset.
        assert!(serde_json::from_value::<Phase>(serde_json::json!("Waiting")).is_err());
        let legacy: BareMetalHostGeneratorStatus = serde_json::from_value(serde_json::json!({
            "phase": "Waiting", "bufferedAt": "yesterday", "vlanId": "x", "conditions": "none"
        }))
        .unwrap();
        assert_eq!(legacy.phase, None);
        assert_eq!(legacy.buffered_at, None);
        assert!(legacy.conditions.is_empty());
    }

    #[test]
    fn status_written_by_the_old_operator_reads_without_loss() {
        let old: BareMetalHostGeneratorStatus = serde_json::from_value(serde_json::json!({
            "phase": "Buffered", "message": "Server buffered - limit reached (20 available)",
            "bufferedAt": "2025-01-02T03:04:05.123456Z", "macAddress": "B0:7B:25:00:00:01",
            "ipmiAddress": "10.0.0.5", "serverVendor": "DELL", "vlanId": "24"
        }))
        .unwrap();
        assert_eq!(old.phase, Some(Phase::Buffered));
        assert_eq!(old.vlan_id, Some(24));
        assert!(old.buffered_at.is_some(), "Python's isoformat() + Z");
        assert_eq!(old.mac_address.as_deref(), Some("B0:7B:25:00:00:01"));
        assert_eq!(old.ipmi_address.as_deref(), Some("10.0.0.5"));
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(BareMetalHostGenerator::crd()).unwrap();
        let vlan = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["vlanId"];
        assert_eq!(
            vlan["x-kubernetes-int-or-string"], true,
            "a stored \"24\" fits the schema"
        );
    }

    #[test]
    fn old_annotations_are_fallbacks_behind_the_spec() {
        let g = generator(
            "metadata: {name: a, namespace: n, annotations: {server_vendor: dell, vlanId: '24'}}\nspec: {infraEnv: e}\n",
        );
        let r = g.parse().unwrap();
        assert_eq!(
            (r.vendor, r.annotation_vlan_id, r.vlan_id),
            (Some(Vendor::Dell), Some(24), None)
        );
        let g = generator(
            "metadata: {name: a, namespace: n, annotations: {server_vendor: dell, vlanId: '24'}}\nspec: {infraEnv: e, server_vendor: HP, networkConfig: {vlanId: 30}}\n",
        );
        let r = g.parse().unwrap();
        assert_eq!(r.vendor, Some(Vendor::Hpe));
        assert_eq!(r.vlan_for(Vendor::Hpe), Some(30));
        // A vendor annotation the old operator did not know (it guessed from the name): no
        // hint, every system is asked. The spec field stays strict.
        let g = generator(
            "metadata: {name: a, namespace: n, annotations: {server_vendor: lenovo}}\nspec: {infraEnv: e}\n",
        );
        assert_eq!(g.parse().unwrap().vendor, None);
        let g = generator(
            "metadata: {name: a, namespace: n, annotations: {vlanId: 'x'}}\nspec: {infraEnv: e}\n",
        );
        assert_eq!(g.parse(), Err(SpecError::VlanAnnotation("x".into())));
        let g = generator(
            "metadata: {name: a, namespace: n, annotations: {vlanId: None}}\nspec: {infraEnv: e}\n",
        );
        assert_eq!(g.parse().unwrap().annotation_vlan_id, None);
    }

    #[test]
    fn crd_identity_and_schema() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(BareMetalHostGenerator::crd()).unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            "baremetalhostgenerators.infra.example.com"
        );
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["kind"], KIND);
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "bmhgen");
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["name"], VERSION);
        assert!(v["subresources"]["status"].is_object());
        let schema = &v["schema"]["openAPIV3Schema"]["properties"];
        let spec = &schema["spec"]["properties"];
        assert!(spec["server_vendor"].is_object());
        let mac_index = &spec["networkConfig"]["properties"]["macIndex"];
        assert_eq!(mac_index["x-kubernetes-int-or-string"], true);
        // `x-kubernetes-int-or-string` is what admits both; kube 4 empties the anyOf branches'
        // types, which Kubernetes accepts as a structural schema.
        assert!(mac_index.get("type").is_none());
        assert_eq!(
            spec["networkConfig"]["properties"]["vlanId"]["maximum"],
            4094.0
        );
        assert_eq!(
            schema["status"]["properties"]["phase"]["enum"],
            // `null` because the field is optional (kube marks optional enums nullable).
            serde_json::json!(["Processing", "Buffered", "Completed", "Failed", null])
        );
        assert_eq!(schema["spec"]["required"], serde_json::json!(["infraEnv"]));
    }
}
