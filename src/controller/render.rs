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

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::crd::{GeneratorRequest, MacIndex};
use super::legacy;
use crate::domain::{BmcAddress, MacAddress, ServerRecord, Vendor};

/// Label that joins a host (and its NMStateConfig) to an assisted-installer InfraEnv.
pub const INFRAENV_LABEL: &str = "infraenvs.agent-install.openshift.io";
/// Label naming the generator that created an object (how the controller finds what it owns).
pub const GENERATOR_LABEL: &str = "infra.example.com/generator";
/// Label naming the generator's namespace (generators and targets may live in different ones).
pub const GENERATOR_NAMESPACE_LABEL: &str = "infra.example.com/generator-namespace";
pub const HOSTNAME_ANNOTATION: &str = "bmac.agent-install.openshift.io/hostname";
pub const INSPECT_ANNOTATION: &str = "inspect.metal3.io";
pub const ASSISTED_DEPLOY_METHOD: &str = "start_assisted_install";

/// The BMC account for one vendor. The password is a [`SecretString`]: it never appears in
/// `Debug` output or logs.
#[derive(Clone, Debug)]
pub struct BmcCredentials {
    pub username: String,
    pub password: SecretString,
}

/// Per-vendor BMC credentials, as the controller is given them.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    by_vendor: BTreeMap<&'static str, BmcCredentials>,
}

impl CredentialStore {
    pub fn insert(&mut self, vendor: Vendor, creds: BmcCredentials) {
        self.by_vendor.insert(vendor.as_str(), creds);
    }

    pub fn get(&self, vendor: Vendor) -> Option<&BmcCredentials> {
        self.by_vendor.get(vendor.as_str())
    }

    /// Same vendors, usernames and passwords (compares the secrets without printing them).
    pub fn same_as(&self, other: &Self) -> bool {
        self.by_vendor.len() == other.by_vendor.len()
            && self.by_vendor.iter().all(|(k, v)| {
                other.by_vendor.get(k).is_some_and(|o| {
                    o.username == v.username
                        && o.password.expose_secret() == v.password.expose_secret()
                })
            })
    }
}

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

/// One server-profile rule: servers whose name matches `pattern` boot from `macIndex`, and carry
/// the VLAN on `nicName`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRule {
    /// Glob over the server name, case-insensitive: `*` any run, `?` one character.
    pub pattern: String,
    pub nic_name: String,
    /// `first`, `last` or an index; YAML users write `1` as readily as `"1"`.
    #[serde(deserialize_with = "string_or_integer")]
    pub mac_index: String,
}

fn string_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(u64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::N(n) => n.to_string(),
    })
}

/// The server-profile rules file, in one of two formats told apart by the top key:
/// - this controller's `rules: [{pattern, nicName, macIndex}]` (glob, flat NIC index);
/// - the kopf operator's `profiles: [{pattern, nic_name, mac_index}, {default: true, …}]`
///   (substring, its per-vendor index meaning; see [`legacy::old_dell_position`]).
///
/// First match wins in both. Any other file is an error: it must never load as "no rules".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileRules {
    rules: Vec<(ProfileRule, MacIndex)>,
    old: Option<legacy::OldProfiles>,
}

impl ProfileRules {
    pub fn from_yaml(text: &str) -> Result<Self, RenderError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            rules: Vec<ProfileRule>,
        }
        let top: Value =
            serde_norway::from_str(text).map_err(|e| RenderError::Rules(e.to_string()))?;
        let keys: Vec<&str> = top
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if keys == ["profiles"] {
            let old = legacy::OldProfiles::from_value(&top["profiles"])
                .map_err(|e| RenderError::Rules(format!("old operator's profiles format: {e}")))?;
            for p in old.patterns.iter().chain(old.default.as_ref()) {
                check_interface_name(&p.nic_name)?;
            }
            return Ok(Self {
                rules: Vec::new(),
                old: Some(old),
            });
        }
        if keys != ["rules"] {
            return Err(RenderError::Rules(format!(
                "neither this controller's format (top key `rules`) nor the old operator's \
                 (top key `profiles`); found {}",
                if keys.is_empty() {
                    "no keys".to_owned()
                } else {
                    format!("keys {}", keys.join(", "))
                }
            )));
        }
        let file: File =
            serde_json::from_value(top).map_err(|e| RenderError::Rules(e.to_string()))?;
        let rules = file
            .rules
            .into_iter()
            .map(|r| {
                let idx = MacIndex::parse_str(&r.mac_index)
                    .map_err(|e| RenderError::Rules(format!("rule {:?}: {e}", r.pattern)))?;
                check_interface_name(&r.nic_name)?;
                Ok((r, idx))
            })
            .collect::<Result<_, RenderError>>()?;
        Ok(Self { rules, old: None })
    }

    /// Which format the rules were read from (for logs and Events).
    pub fn format(&self) -> &'static str {
        if self.old.is_some() {
            "old operator's profiles"
        } else {
            "rules"
        }
    }

    /// The first rule whose pattern matches the server name.
    pub fn find(&self, server_name: &str) -> Option<(&ProfileRule, MacIndex)> {
        self.rules
            .iter()
            .find(|(r, _)| glob_match(&r.pattern, server_name))
            .map(|(r, i)| (r, *i))
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    // Iterative matcher with backtracking to the last `*`: linear in practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Why a NIC was chosen (recorded in status and events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicSource {
    /// `spec.networkConfig.nicName` + `macIndex`.
    Override,
    /// A server-profile rule (the pattern is in [`NicSelection::rule`]).
    ProfileRule,
    /// Neither: the NIC the vendor marks as boot, else the first one.
    VendorDefault,
}

impl fmt::Display for NicSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Override => "spec.networkConfig",
            Self::ProfileRule => "a server-profile rule",
            Self::VendorDefault => "the default choice",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSelection {
    pub nic_name: String,
    /// Position in the record's NIC list (vendor order).
    pub mac_index: usize,
    pub mac: MacAddress,
    pub source: NicSource,
    pub rule: Option<String>,
}

/// Choose the boot NIC: `networkConfig` override > profile rule > vendor default (boot NIC, else first).
pub fn select_nic(
    req: &GeneratorRequest,
    record: &ServerRecord,
    rules: &ProfileRules,
    opts: &RenderOptions,
) -> Result<NicSelection, RenderError> {
    let nics = &record.nics;
    if nics.is_empty() {
        return Err(RenderError::NoNics(record.name.clone()));
    }
    let pick = |idx: MacIndex, nic_name: &str, source, rule: Option<String>| {
        let i = idx
            .resolve(nics.len())
            .ok_or(RenderError::MacIndexOutOfRange {
                index: idx.to_string(),
                nics: nics.len(),
            })?;
        Ok(NicSelection {
            nic_name: nic_name.to_owned(),
            mac_index: i,
            mac: nics[i].mac,
            source,
            rule,
        })
    };
    if let Some(o) = &req.nic_override {
        return pick(o.mac_index, &o.nic_name, NicSource::Override, None);
    }
    if let Some(p) = rules
        .old
        .as_ref()
        .and_then(|o| o.lookup(record.name.as_str()))
    {
        // The old operator applied mac_index on Dell only (cards, not NICs); on HP and Cisco it
        // took its own vendor choice of MAC and used the profile for the NIC name alone.
        let rule = Some(p.pattern.clone().unwrap_or_else(|| "default".to_owned()));
        let i = if record.vendor == Vendor::Dell {
            let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
            legacy::old_dell_position(&names, p.mac_index).ok_or(
                RenderError::MacIndexOutOfRange {
                    index: format!("{} (old meaning: card {0})", p.mac_index),
                    nics: nics.len(),
                },
            )?
        } else {
            vendor_default_position(record)
        };
        return pick(
            MacIndex::Index(i),
            &p.nic_name,
            NicSource::ProfileRule,
            rule,
        );
    }
    if let Some((rule, idx)) = rules.find(record.name.as_str()) {
        return pick(
            idx,
            &rule.nic_name,
            NicSource::ProfileRule,
            Some(rule.pattern.clone()),
        );
    }
    let i = vendor_default_position(record);
    pick(
        MacIndex::Index(i),
        &opts.default_nic_name,
        NicSource::VendorDefault,
        None,
    )
}

/// The NIC the vendor marks as boot, else the first one.
fn vendor_default_position(record: &ServerRecord) -> usize {
    record
        .boot_mac
        .and_then(|m| record.nics.iter().position(|n| n.mac == m))
        .unwrap_or(0)
}

/// A permanent reason not to create a host: the generator goes to `Failed` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("server {0:?} has no NICs in its management system")]
    NoNics(String),
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

/// The BMC credential Secret. Its `Debug` shows the name only: the password never reaches a log.
#[derive(Clone, PartialEq)]
pub struct CredentialSecret(Secret);

impl CredentialSecret {
    pub fn name(&self) -> &str {
        self.0.metadata.name.as_deref().unwrap_or_default()
    }

    /// The object to send to the API server. Handle with care: it holds the password.
    pub fn into_secret(self) -> Secret {
        self.0
    }

    pub fn as_secret(&self) -> &Secret {
        &self.0
    }
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSecret")
            .field("name", &self.name())
            .field("data", &"[REDACTED]")
            .finish()
    }
}

/// Everything one generator produces.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub secret: CredentialSecret,
    pub bare_metal_host: Value,
    pub nmstate_config: Option<Value>,
    pub selection: NicSelection,
    /// `bmc.address` as rendered (recorded as `status.ipmiAddress`).
    pub bmc_address: String,
    pub bmh_name: String,
    pub namespace: String,
    pub vendor: Vendor,
}

/// The old operator's vendor spelling in object names: `hp`, `dell`, `cisco`.
pub fn vendor_prefix(v: Vendor) -> &'static str {
    match v {
        Vendor::Hpe => "hp",
        Vendor::Dell => "dell",
        Vendor::Cisco => "cisco",
    }
}

/// `<vendor>-cred-<server>`, the old operator's name for the BMC credential Secret.
pub fn secret_name(vendor: Vendor, server: &str) -> String {
    format!("{}-cred-{server}", vendor_prefix(vendor))
}

/// The Secret name the old operator derived from whatever vendor text it had (status
/// `serverVendor`): `bmc-cred-<server>` for anything but HP, DELL and CISCO.
pub fn old_secret_name(vendor: Option<&str>, server: &str) -> String {
    match vendor.map(str::to_lowercase).as_deref() {
        Some(v @ ("hp" | "dell" | "cisco")) => format!("{v}-cred-{server}"),
        _ => format!("bmc-cred-{server}"),
    }
}

pub fn nmstate_config_name(server: &str) -> String {
    format!("nmstate-config-{server}")
}

/// Whether a name is one Kubernetes (and Metal3) accepts for the objects of a server; the
/// message says why not. Names are never altered to fit.
pub fn check_object_names(server: &str, vendor: Option<Vendor>) -> Result<(), RenderError> {
    check_host_name(server)?;
    check_dns_subdomain(&nmstate_config_name(server))?;
    if let Some(v) = vendor {
        check_dns_subdomain(&secret_name(v, server))?;
    }
    Ok(())
}

/// `bmc.address` for a vendor: the URL schemes the old operator used, IPv6 in brackets.
pub fn bmc_address(vendor: Vendor, addr: &BmcAddress) -> String {
    let host = match addr {
        BmcAddress::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        BmcAddress::Ip(IpAddr::V4(v4)) => v4.to_string(),
        BmcAddress::Host(h) => h.clone(),
    };
    match vendor {
        Vendor::Hpe => format!("redfish-virtualmedia://{host}/redfish/v1/Systems/1"),
        Vendor::Dell => {
            format!("idrac-virtualmedia://{host}/redfish/v1/Systems/System.Embedded.1")
        }
        Vendor::Cisco => format!("ipmi://{host}:623"),
    }
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

/// The BMC credential Secret alone: what credential rotation re-applies for hosts that exist,
/// without asking the gateway again.
pub fn credential_secret(
    req: &GeneratorRequest,
    vendor: Vendor,
    creds: &CredentialStore,
) -> Result<CredentialSecret, RenderError> {
    let credentials = creds
        .get(vendor)
        .ok_or(RenderError::NoCredentials(vendor))?;
    let username = credentials.username.trim();
    let password = credentials.password.expose_secret().trim();
    if username.is_empty() || password.is_empty() {
        return Err(RenderError::EmptyCredentials(vendor));
    }
    let name = secret_name(vendor, &req.object_name);
    check_dns_subdomain(&name)?;
    Ok(CredentialSecret(Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(req.target_namespace.clone()),
            labels: Some(owner_labels(req)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            ("username".to_owned(), username.to_owned()),
            ("password".to_owned(), password.to_owned()),
        ])),
        ..Secret::default()
    }))
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
    check_host_name(&bmh_name)?;
    check_dns_subdomain(&secret_name(vendor, &bmh_name))?;

    let bmc = record
        .bmc
        .as_ref()
        .filter(|b| b.address.is_usable())
        .ok_or_else(|| RenderError::NoBmc(record.name.clone()))?;
    let address = bmc_address(vendor, &bmc.address);
    if vendor == Vendor::Cisco && opts.boot_mode == BootMode::UefiSecureBoot {
        return Err(RenderError::SecureBootOnIpmi(vendor));
    }

    let selection = select_nic(req, record, rules, opts)?;
    check_interface_name(&selection.nic_name)?;
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
        check_label(k, v)?;
    }

    let mut bmh_spec = json!({
        "online": true,
        "bootMACAddress": mac.to_string(),
        "bootMode": opts.boot_mode.as_str(),
        "bmc": {
            "address": address,
            "credentialsName": secret_name(vendor, &bmh_name),
            "disableCertificateVerification": opts.disable_certificate_verification,
        },
    });
    let mut metadata = json!({
        "name": bmh_name,
        "namespace": namespace,
        "labels": labels,
    });
    if opts.assisted_installer {
        metadata["annotations"] = json!({
            INSPECT_ANNOTATION: "disabled",
            HOSTNAME_ANNOTATION: bmh_name,
        });
        bmh_spec["automatedCleaningMode"] = json!("disabled");
        bmh_spec["customDeploy"] = json!({ "method": ASSISTED_DEPLOY_METHOD });
    }
    let bare_metal_host = json!({
        "apiVersion": "metal3.io/v1alpha1",
        "kind": "BareMetalHost",
        "metadata": metadata,
        "spec": bmh_spec,
    });

    let nmstate_config = match req.vlan_for(vendor) {
        None => None,
        Some(vlan) => {
            let base = selection.nic_name.as_str();
            let vlan_iface = format!("{base}.{vlan}");
            check_interface_name(&vlan_iface)?;
            let mut nm_labels =
                BTreeMap::from([(INFRAENV_LABEL.to_owned(), req.infra_env.clone())]);
            nm_labels.extend(owned);
            let name = nmstate_config_name(&bmh_name);
            check_dns_subdomain(&name)?;
            Some(json!({
                "apiVersion": "agent-install.openshift.io/v1beta1",
                "kind": "NMStateConfig",
                "metadata": { "name": name, "namespace": namespace, "labels": nm_labels },
                "spec": {
                    "config": {
                        "interfaces": [
                            {
                                "name": base,
                                "type": "ethernet",
                                "state": "up",
                                "mac-address": mac.to_string(),
                            },
                            {
                                "name": vlan_iface,
                                "type": "vlan",
                                "state": "up",
                                "vlan": { "base-iface": base, "id": vlan },
                                "ipv4": { "enabled": true, "dhcp": true },
                            },
                        ],
                    },
                    "interfaces": [{ "name": base, "macAddress": mac.to_string() }],
                },
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

/// Metal3's webhook: host names use `[A-Za-z0-9._-]` and are not UUIDs. Kubernetes adds the
/// DNS-1123 subdomain rules (lower case, at most 253 characters).
fn check_host_name(name: &str) -> Result<(), RenderError> {
    check_dns_subdomain(name)?;
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(RenderError::ObjectName {
            name: name.to_owned(),
            reason: "Metal3 rejects host names that are UUIDs",
        });
    }
    Ok(())
}

fn check_dns_subdomain(name: &str) -> Result<(), RenderError> {
    let err = |reason| {
        Err(RenderError::ObjectName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 253 {
        return err("must be 1-253 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return err("only a-z, 0-9, '-' and '.' are allowed");
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return err("must start and end with a letter or digit");
    }
    Ok(())
}

/// Linux interface names (what NMState configures): 1-15 bytes, no '/', ':' or whitespace.
fn check_interface_name(name: &str) -> Result<(), RenderError> {
    let err = |reason| {
        Err(RenderError::InterfaceName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 15 {
        return err("must be 1-15 characters");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || !c.is_ascii())
    {
        return err("no '/', ':', whitespace or non-ASCII characters");
    }
    if name == "." || name == ".." {
        return err("reserved");
    }
    Ok(())
}

fn check_label(key: &str, value: &str) -> Result<(), RenderError> {
    let err = |reason| {
        Err(RenderError::Label {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        })
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if !name_ok(name) {
        return err("the key's name must be 1-63 of [A-Za-z0-9_.-], alphanumeric at both ends");
    }
    if let Some(p) = prefix {
        if check_dns_subdomain(p).is_err() {
            return err("the key's prefix must be a DNS subdomain");
        }
    }
    if !value.is_empty() && !name_ok(value) {
        return err("values must be empty or 1-63 of [A-Za-z0-9_.-], alphanumeric at both ends");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use chrono::TimeZone;

    use super::*;
    use crate::controller::crd::BareMetalHostGenerator;
    use crate::domain::{Bmc, Nic, SystemKind};

    fn creds() -> CredentialStore {
        let mut c = CredentialStore::default();
        for (v, user) in [
            (Vendor::Hpe, "ilo-admin"),
            (Vendor::Dell, "root"),
            (Vendor::Cisco, "ipmi-user"),
        ] {
            c.insert(
                v,
                BmcCredentials {
                    username: user.into(),
                    password: SecretString::from(format!("{user}-secret-pw")),
                },
            );
        }
        c
    }

    fn record(vendor: Vendor, name: &str, bmc: &str, macs: &[&str]) -> ServerRecord {
        let system = match vendor {
            Vendor::Hpe => SystemKind::Oneview,
            Vendor::Cisco => SystemKind::Ucsm,
            Vendor::Dell => SystemKind::Ome,
        };
        ServerRecord {
            name: name.into(),
            vendor,
            system,
            system_name: format!("{system}-1"),
            system_id: "id-1".into(),
            bmc: Some(Bmc {
                address: BmcAddress::parse(bmc).unwrap(),
                kind: None,
            }),
            nics: macs
                .iter()
                .enumerate()
                .map(|(i, m)| Nic {
                    name: format!("nic-{i}"),
                    mac: MacAddress::parse(m).unwrap(),
                    kind: None,
                    location: None,
                })
                .collect(),
            boot_mac: macs.first().map(|m| MacAddress::parse(m).unwrap()),
            serial_number: None,
            model: None,
            power_state: None,
            fetched_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            stale: false,
        }
    }

    fn request(yaml: &str) -> GeneratorRequest {
        serde_norway::from_str::<BareMetalHostGenerator>(yaml)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// All rendered objects as one multi-document YAML, the golden files' format.
    fn to_yaml(r: &Rendered) -> String {
        let mut docs = vec![
            serde_norway::to_string(r.secret.as_secret()).unwrap(),
            serde_norway::to_string(&r.bare_metal_host).unwrap(),
        ];
        if let Some(nm) = &r.nmstate_config {
            docs.push(serde_norway::to_string(nm).unwrap());
        }
        docs.join("---\n")
    }

    /// Compare with `tests/fixtures/controller/<name>.yaml`; `UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, r: &Rendered) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/controller")
            .join(format!("{name}.yaml"));
        let got = to_yaml(r);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
        assert!(
            got == want,
            "{name}: rendered output differs from {}\n--- got ---\n{got}",
            path.display()
        );
    }

    const MACS: [&str; 3] = [
        "AA:BB:CC:00:00:01",
        "aa:bb:cc:00:00:02",
        "aa:bb:cc:00:00:03",
    ];

    #[test]
    fn hpe_old_operator_example_with_vlan_and_override() {
        let req = request(
            "metadata: {name: worker-01, namespace: ztp}
spec:
  serverName: ov-srv-0001
  namespace: cluster-a
  infraEnv: cluster-a-env
  labels: {rack: r12}
  server_vendor: HP
  networkConfig: {vlanId: 120, nicName: ens1f0, macIndex: last}
",
        );
        let rec = record(Vendor::Hpe, "OV-SRV-0001", "10.10.0.5", &MACS);
        let r = render(
            &req,
            &rec,
            &creds(),
            &ProfileRules::default(),
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(r.selection.source, NicSource::Override);
        assert_eq!(r.selection.mac_index, 2);
        // Named after the server, as the old operator named them, not after the generator.
        assert_eq!(r.secret.name(), "hp-cred-ov-srv-0001");
        assert_eq!(r.bmh_name, "ov-srv-0001");
        golden("hpe-vlan-override", &r);
        // A server name that is no valid object name fails; it is never rewritten to fit.
        let mut upper = req.clone();
        upper.object_name = "OV-SRV-0001".into();
        let e = render(
            &upper,
            &rec,
            &creds(),
            &ProfileRules::default(),
            &RenderOptions::default(),
        );
        assert!(
            matches!(e, Err(RenderError::ObjectName { ref name, .. }) if name == "OV-SRV-0001"),
            "{e:?}"
        );
    }

    #[test]
    fn dell_default_nic_is_the_vendor_boot_nic() {
        let req = request("metadata: {name: db-3, namespace: ztp}\nspec: {infraEnv: env}\n");
        let mut rec = record(Vendor::Dell, "db-3", "idrac-db3.lab.example", &MACS);
        rec.boot_mac = Some(MacAddress::parse(MACS[1]).unwrap());
        let r = render(
            &req,
            &rec,
            &creds(),
            &ProfileRules::default(),
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (r.selection.source, r.selection.mac_index),
            (NicSource::VendorDefault, 1)
        );
        assert!(r.nmstate_config.is_none());
        golden("dell-default", &r);
    }

    #[test]
    fn cisco_ipv6_profile_rule_plain_metal3() {
        let rules = ProfileRules::from_yaml(
            "rules:\n- {pattern: 'UCS-*-db?', nicName: enp94s0f1, macIndex: '1'}\n- {pattern: '*', nicName: eno1, macIndex: first}\n",
        )
        .unwrap();
        let req = request(
            "metadata: {name: ucs-a-db1, namespace: ztp}\nspec: {serverName: ucs-a-db1, infraEnv: env, server_vendor: cisco, networkConfig: {vlanId: 42}}\n",
        );
        let rec = record(Vendor::Cisco, "ucs-a-db1", "fd00:10::20", &MACS);
        let opts = RenderOptions {
            assisted_installer: false,
            disable_certificate_verification: false,
            boot_mode: BootMode::Legacy,
            ..RenderOptions::default()
        };
        let r = render(&req, &rec, &creds(), &rules, &opts).unwrap();
        assert_eq!(r.selection.source, NicSource::ProfileRule);
        assert_eq!(r.selection.rule.as_deref(), Some("UCS-*-db?"));
        assert_eq!(r.bmc_address, "ipmi://[fd00:10::20]:623");
        golden("cisco-ipv6-rule-plain", &r);
    }

    #[test]
    fn bmc_addresses_per_vendor() {
        let v4 = BmcAddress::parse("10.0.0.9").unwrap();
        let v6 = BmcAddress::parse("2001:db8::10").unwrap();
        assert_eq!(
            bmc_address(Vendor::Hpe, &v4),
            "redfish-virtualmedia://10.0.0.9/redfish/v1/Systems/1"
        );
        assert_eq!(
            bmc_address(Vendor::Hpe, &v6),
            "redfish-virtualmedia://[2001:db8::10]/redfish/v1/Systems/1"
        );
        assert_eq!(
            bmc_address(Vendor::Dell, &v6),
            "idrac-virtualmedia://[2001:db8::10]/redfish/v1/Systems/System.Embedded.1"
        );
        assert_eq!(bmc_address(Vendor::Cisco, &v4), "ipmi://10.0.0.9:623");
    }

    #[test]
    fn what_the_metal3_webhook_would_reject_fails_here() {
        let ok = request("metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env}\n");
        let rec = record(Vendor::Hpe, "h1", "10.0.0.1", &MACS);
        let none = ProfileRules::default();
        let opts = RenderOptions::default();
        let run = |req: &GeneratorRequest, rec: &ServerRecord, opts: &RenderOptions| {
            render(req, rec, &creds(), &none, opts).map(|_| ())
        };
        assert_eq!(run(&ok, &rec, &opts), Ok(()));

        let uuid = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, serverName: 123e4567-e89b-12d3-a456-426614174000}\n",
        );
        assert!(matches!(
            run(&uuid, &rec, &opts),
            Err(RenderError::ObjectName { .. })
        ));

        let mut zero = rec.clone();
        zero.nics[0].mac = MacAddress::parse("00:00:00:00:00:00").unwrap();
        assert!(matches!(
            run(&ok, &zero, &opts),
            Err(RenderError::BadMac(_))
        ));

        let mut no_bmc = rec.clone();
        no_bmc.bmc = None;
        assert!(matches!(
            run(&ok, &no_bmc, &opts),
            Err(RenderError::NoBmc(_))
        ));
        let mut link_local = rec.clone();
        link_local.bmc = Some(Bmc {
            address: BmcAddress::parse("fe80::1").unwrap(),
            kind: None,
        });
        assert!(matches!(
            run(&ok, &link_local, &opts),
            Err(RenderError::NoBmc(_))
        ));

        let cisco = record(Vendor::Cisco, "h1", "10.0.0.1", &MACS);
        let secure = RenderOptions {
            boot_mode: BootMode::UefiSecureBoot,
            ..RenderOptions::default()
        };
        assert_eq!(
            run(&ok, &cisco, &secure),
            Err(RenderError::SecureBootOnIpmi(Vendor::Cisco))
        );

        let out_of_range = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, networkConfig: {nicName: eth0, macIndex: 7}}\n",
        );
        assert!(matches!(
            run(&out_of_range, &rec, &opts),
            Err(RenderError::MacIndexOutOfRange { nics: 3, .. })
        ));

        let long_vlan_iface = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, networkConfig: {vlanId: 4094, nicName: enp175s0f1np1, macIndex: 0}}\n",
        );
        assert!(matches!(
            run(&long_vlan_iface, &rec, &opts),
            Err(RenderError::InterfaceName { .. })
        ));

        let bad_label = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, labels: {rack: 'r 12'}}\n",
        );
        assert!(matches!(
            run(&bad_label, &rec, &opts),
            Err(RenderError::Label { .. })
        ));

        let mut no_nics = rec.clone();
        no_nics.nics.clear();
        assert!(matches!(
            run(&ok, &no_nics, &opts),
            Err(RenderError::NoNics(_))
        ));
    }

    #[test]
    fn credentials_are_required_and_never_debug_printed() {
        let req = request("metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env}\n");
        let rec = record(Vendor::Dell, "h1", "10.0.0.1", &MACS);
        let none = ProfileRules::default();
        let opts = RenderOptions::default();
        assert_eq!(
            render(&req, &rec, &CredentialStore::default(), &none, &opts).map(|_| ()),
            Err(RenderError::NoCredentials(Vendor::Dell))
        );
        let mut blank = CredentialStore::default();
        blank.insert(
            Vendor::Dell,
            BmcCredentials {
                username: "root".into(),
                password: SecretString::from("  "),
            },
        );
        assert_eq!(
            render(&req, &rec, &blank, &none, &opts).map(|_| ()),
            Err(RenderError::EmptyCredentials(Vendor::Dell))
        );
        let r = render(&req, &rec, &creds(), &none, &opts).unwrap();
        let debug = format!("{r:?} {:?}", creds());
        assert!(!debug.contains("root-secret-pw"), "{debug}");
        assert!(debug.contains("dell-cred-h1"));
    }

    #[test]
    fn profile_rules() {
        assert!(glob_match("web-*", "WEB-01"));
        assert!(glob_match("*-db?", "ucs-a-db1"));
        assert!(!glob_match("*-db?", "ucs-a-db12"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("*", ""));
        let rules = ProfileRules::from_yaml(
            "rules:\n- {pattern: 'web-*', nicName: ens3, macIndex: last}\n",
        )
        .unwrap();
        let (rule, idx) = rules.find("Web-7").unwrap();
        assert_eq!((rule.nic_name.as_str(), idx), ("ens3", MacIndex::Last));
        assert!(rules.find("db-1").is_none());
        assert!(
            ProfileRules::from_yaml("rules:\n- {pattern: x, nicName: e, macIndex: middle}\n")
                .is_err()
        );
        assert!(
            ProfileRules::from_yaml("rules:\n- {pattern: x, nicName: 'a b', macIndex: 0}\n")
                .is_err()
        );
        // A file in neither format never loads as "no rules".
        for neither in [
            "{}",
            "",
            "profile:\n- {pattern: x, nic_name: e}\n",
            "rules: []\nprofiles: []\n",
            "- a\n",
        ] {
            let e = ProfileRules::from_yaml(neither).unwrap_err().to_string();
            assert!(
                e.contains("neither") || e.contains("rules"),
                "{neither:?}: {e}"
            );
        }
        assert_eq!(
            ProfileRules::from_yaml("rules: []\n").unwrap(),
            ProfileRules::default()
        );
    }

    #[test]
    fn the_old_operators_profiles_file_is_read_with_its_meaning() {
        let old = "profiles:\n  - pattern: \"h100\"\n    nic_name: \"ens8f0np0\"\n    mac_index: \"2\"\n  - pattern: \"10tb-\"\n    nic_name: \"ens2f0np0\"\n    mac_index: \"last\"\n  - default: true\n    nic_name: \"eno12399np0\"\n    mac_index: \"first\"\n";
        let rules = ProfileRules::from_yaml(old).unwrap();
        assert_eq!(rules.format(), "old operator's profiles");
        let none = ProfileRules::default();
        let _ = none;
        let req = request("metadata: {name: gpu-h100-7, namespace: ztp}\nspec: {infraEnv: env}\n");
        // Dell: index 2 is the third *card*; here cards 1 and 3 have two partitions each.
        let mut dell = record(Vendor::Dell, "GPU-H100-7", "10.0.0.8", &MACS);
        let names = [
            "NIC.Integrated.1-1-1",
            "NIC.Integrated.1-2-1",
            "NIC.Slot.2-1-1",
        ];
        for (n, name) in dell.nics.iter_mut().zip(names) {
            n.name = name.into();
        }
        dell.nics.push(Nic {
            name: "NIC.Slot.3-1-1".into(),
            mac: MacAddress::parse("aa:bb:cc:00:00:04").unwrap(),
            kind: None,
            location: None,
        });
        let s = select_nic(&req, &dell, &rules, &RenderOptions::default()).unwrap();
        assert_eq!((s.nic_name.as_str(), s.mac_index), ("ens8f0np0", 3));
        // The new format's index 2 is the third NIC: the two formats differ here.
        let new = ProfileRules::from_yaml(
            "rules:\n- {pattern: '*h100*', nicName: ens8f0np0, macIndex: 2}\n",
        )
        .unwrap();
        assert_eq!(
            select_nic(&req, &dell, &new, &RenderOptions::default())
                .unwrap()
                .mac_index,
            2
        );
        // HP/Cisco: the old operator ignored mac_index and took the vendor's boot NIC.
        let mut hp = record(Vendor::Hpe, "gpu-h100-7", "10.0.0.9", &MACS);
        hp.boot_mac = Some(MacAddress::parse(MACS[1]).unwrap());
        let s = select_nic(&req, &hp, &rules, &RenderOptions::default()).unwrap();
        assert_eq!((s.nic_name.as_str(), s.mac_index), ("ens8f0np0", 1));
        // The default entry
        let web = request("metadata: {name: web-1, namespace: ztp}\nspec: {infraEnv: env}\n");
        let s = select_nic(
            &web,
            &record(Vendor::Dell, "web-1", "10.0.0.7", &MACS),
            &rules,
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (s.nic_name.as_str(), s.mac_index, s.rule.as_deref()),
            ("eno12399np0", 0, Some("default"))
        );
        // last
        let st = request("metadata: {name: st-10tb-1, namespace: ztp}\nspec: {infraEnv: env}\n");
        let s = select_nic(
            &st,
            &record(Vendor::Dell, "st-10tb-1", "10.0.0.6", &MACS),
            &rules,
            &RenderOptions::default(),
        )
        .unwrap();
        assert_eq!((s.nic_name.as_str(), s.mac_index), ("ens2f0np0", 2));
    }

    #[test]
    fn the_vlan_annotation_makes_an_nmstateconfig_for_dell_only() {
        let req = request("metadata: {name: d1, namespace: ztp, annotations: {vlanId: '24', server_vendor: DELL}}\nspec: {infraEnv: env}\n");
        assert_eq!(
            (req.vendor, req.annotation_vlan_id),
            (Some(Vendor::Dell), Some(24))
        );
        let none = ProfileRules::default();
        let r = render(
            &req,
            &record(Vendor::Dell, "d1", "10.0.0.2", &MACS),
            &creds(),
            &none,
            &RenderOptions::default(),
        )
        .unwrap();
        let nm = r.nmstate_config.unwrap();
        assert_eq!(nm["metadata"]["name"], "nmstate-config-d1");
        assert_eq!(nm["spec"]["config"]["interfaces"][1]["vlan"]["id"], 24);
        let r = render(
            &req,
            &record(Vendor::Hpe, "d1", "10.0.0.2", &MACS),
            &creds(),
            &none,
            &RenderOptions::default(),
        )
        .unwrap();
        assert!(r.nmstate_config.is_none());
    }
}
