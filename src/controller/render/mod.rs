//! Pure rendering: a parsed generator ([`GeneratorRequest`]) plus the gateway's [`ServerRecord`]
//! become the objects the controller applies. No I/O here; golden-file tests pin the output.
//!
//! - Secret `<vendor>-cred-<name>` with `username`/`password` (the BMC credentials);
//! - BareMetalHost `metal3.io/v1alpha1` (`online: true`, `bootMACAddress`, `bmc.*`, `bootMode`,
//!   the InfraEnv label, and, in assisted-installer mode, the annotations and `customDeploy` the
//!   old operator set);
//! - NMStateConfig `agent-install.openshift.io/v1beta1` (`nmstate-config-<name>`) when a VLAN is set.
//!
//! Before anything is rendered, the rules Metal3's validating webhook enforces (and which an API
//! server with only the CRD installed would not) are checked here, so a bad host fails with a clear
//! message instead of a webhook rejection — or, without the webhook, a host Ironic cannot enrol.
//!
//! One submodule per object (`credentials`, `host`, `nmstate`), the NIC choice (`nic`) and the
//! names and the rules they must follow (`names`); the objects are the typed structs of
//! [`super::objects`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::crd::GeneratorRequest;
use super::objects::{BareMetalHost, NMStateConfig};
use crate::domain::{MacAddress, ServerRecord, Vendor};

mod credentials;
mod host;
pub mod names;
mod nic;
mod nmstate;
#[cfg(test)]
mod tests;

pub use credentials::{credential_secret, BmcCredentials, CredentialSecret, CredentialStore};
pub use host::bmc_address;
pub use names::{
    check_object_names, nmstate_config_name, old_secret_name, secret_name, vendor_prefix,
};
pub use nic::{select_nic, NicSelection, NicSource, ProfileRule, ProfileRules};

/// Label that joins a host (and its NMStateConfig) to an assisted-installer InfraEnv.
pub const INFRAENV_LABEL: &str = "infraenvs.agent-install.openshift.io";
/// Label naming the generator that created an object (how the controller finds what it owns).
pub const GENERATOR_LABEL: &str = "infra.example.com/generator";
/// Label naming the generator's namespace (generators and targets may live in different ones).
pub const GENERATOR_NAMESPACE_LABEL: &str = "infra.example.com/generator-namespace";
pub const HOSTNAME_ANNOTATION: &str = "bmac.agent-install.openshift.io/hostname";
pub const INSPECT_ANNOTATION: &str = "inspect.metal3.io";
pub const ASSISTED_DEPLOY_METHOD: &str = "start_assisted_install";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BootMode {
    #[default]
    #[serde(rename = "UEFI")]
    Uefi,
    #[serde(rename = "UEFISecureBoot")]
    UefiSecureBoot,
    #[serde(rename = "legacy")]
    Legacy,
}

impl BootMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Uefi => "UEFI",
            Self::UefiSecureBoot => "UEFISecureBoot",
            Self::Legacy => "legacy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// `bmc.disableCertificateVerification` (BMCs usually have self-signed certificates).
    pub disable_certificate_verification: bool,
    pub boot_mode: BootMode,
    /// Render what the old operator rendered for the assisted installer (annotations,
    /// `customDeploy`, `automatedCleaningMode: disabled`). Off: a plain Metal3 host.
    pub assisted_installer: bool,
    /// NMState interface name when neither `networkConfig` nor a profile rule names one. It is a
    /// logical name: NMStateConfig's `interfaces` map it to the chosen NIC's MAC.
    pub default_nic_name: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            disable_certificate_verification: true,
            boot_mode: BootMode::Uefi,
            assisted_installer: true,
            default_nic_name: "eno1".into(),
        }
    }
}

/// A permanent reason not to create a host: the generator goes to `Failed` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The server, and why its system has no NICs for it when it says (`nics_unavailable`).
    #[error("server {0:?} has no NICs in its management system{reason}", reason = because(.1))]
    NoNics(String, Option<String>),
    #[error("macIndex {index} does not exist: the server has {nics} NIC(s)")]
    MacIndexOutOfRange { index: String, nics: usize },
    #[error("server {0:?} has no usable BMC address in its management system")]
    NoBmc(String),
    #[error("the chosen NIC has MAC {0}, which Metal3 cannot boot from")]
    BadMac(MacAddress),
    #[error("no BMC credentials configured for vendor {0}")]
    NoCredentials(Vendor),
    #[error("the BMC credentials for vendor {0} have an empty username or password")]
    EmptyCredentials(Vendor),
    #[error("invalid object name {name:?}: {reason}")]
    ObjectName { name: String, reason: &'static str },
    #[error("invalid interface name {name:?}: {reason}")]
    InterfaceName { name: String, reason: &'static str },
    #[error("invalid label {key}={value:?}: {reason}")]
    Label {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error("bootMode UEFISecureBoot is not supported with an ipmi:// BMC (vendor {0})")]
    SecureBootOnIpmi(Vendor),
    #[error("server-profile rules: {0}")]
    Rules(String),
}

/// Everything one generator produces.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub secret: CredentialSecret,
    pub bare_metal_host: BareMetalHost,
    pub nmstate_config: Option<NMStateConfig>,
    pub selection: NicSelection,
    /// `bmc.address` as rendered (recorded as `status.ipmiAddress`).
    pub bmc_address: String,
    pub bmh_name: String,
    pub namespace: String,
    pub vendor: Vendor,
}

/// The labels naming the generator on every object it produces.
fn owner_labels(req: &GeneratorRequest) -> BTreeMap<String, String> {
    let mut owned = BTreeMap::new();
    owned.insert(GENERATOR_LABEL.to_owned(), req.name.clone());
    if let Some(ns) = &req.generator_namespace {
        owned.insert(GENERATOR_NAMESPACE_LABEL.to_owned(), ns.clone());
    }
    owned
}

/// Render the Secret, the BareMetalHost and (with a VLAN) the NMStateConfig for one generator.
pub fn render(
    req: &GeneratorRequest,
    record: &ServerRecord,
    creds: &CredentialStore,
    rules: &ProfileRules,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let vendor = record.vendor;
    let bmh_name = req.object_name.clone();
    let namespace = req.target_namespace.clone();
    names::check_host_name(&bmh_name)?;
    names::check_dns_subdomain(&secret_name(vendor, &bmh_name))?;

    let bmc = record
        .bmc
        .as_ref()
        .filter(|b| b.address.is_usable())
        .ok_or_else(|| RenderError::NoBmc(record.name.clone()))?;
    let address = bmc_address(
        vendor,
        &bmc.address,
        bmc.redfish_system.as_deref(),
        bmc.port,
    );
    if vendor == Vendor::Cisco && opts.boot_mode == BootMode::UefiSecureBoot {
        return Err(RenderError::SecureBootOnIpmi(vendor));
    }

    let selection = select_nic(req, record, rules, opts)?;
    names::check_interface_name(&selection.nic_name)?;
    let mac = selection.mac;
    if mac.is_zero() || mac.octets()[0] & 1 == 1 {
        // All-zero is "unset"; a multicast address is never a NIC's own.
        return Err(RenderError::BadMac(mac));
    }

    let secret = credential_secret(req, vendor, creds)?;
    let owned = owner_labels(req);

    // Spec labels first, then the ones the controller relies on (they win on a clash).
    let mut labels = req.labels.clone();
    labels.insert(INFRAENV_LABEL.to_owned(), req.infra_env.clone());
    labels.extend(owned.clone());
    for (k, v) in &labels {
        names::check_label(k, v)?;
    }

    let bare_metal_host = host::bare_metal_host(
        host::HostParts {
            name: &bmh_name,
            namespace: &namespace,
            labels,
            boot_mac: mac,
            bmc_address: &address,
            credentials_name: secret.name().to_owned(),
        },
        opts,
    );

    let nmstate_config = match req.vlan_for(vendor) {
        None => None,
        Some(vlan) => {
            let base = selection.nic_name.as_str();
            names::check_interface_name(&nmstate::vlan_interface(base, vlan))?;
            let mut nm_labels =
                BTreeMap::from([(INFRAENV_LABEL.to_owned(), req.infra_env.clone())]);
            nm_labels.extend(owned);
            let name = nmstate_config_name(&bmh_name);
            names::check_dns_subdomain(&name)?;
            Some(nmstate::nmstate_config(nmstate::NmStateParts {
                name,
                namespace: &namespace,
                labels: nm_labels,
                base,
                mac,
                vlan,
            }))
        }
    };

    Ok(Rendered {
        secret,
        bare_metal_host,
        nmstate_config,
        selection,
        bmc_address: address,
        bmh_name,
        namespace,
        vendor,
    })
}

/// `": <reason>"`, or nothing.
fn because(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}
