//! The BareMetalHost: Metal3's record of the server, with the boot NIC, the BMC URL in the
//! scheme the old operator used per vendor, and the assisted installer's marks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{RenderOptions, ASSISTED_DEPLOY_METHOD, HOSTNAME_ANNOTATION, INSPECT_ANNOTATION};
use crate::controller::objects::{BareMetalHost, BareMetalHostSpec, BmcDetails, CustomDeploy};
use crate::domain::{BmcAddress, MacAddress, Vendor};

/// `bmc.address` for a vendor: the URL schemes the old operator used, IPv6 in brackets.
/// `redfish_system` is the ComputerSystem path the BMC itself lists (the gateway's
/// `bmc.redfish_system`): when known it replaces the path the old operator assumed per vendor
/// (`Systems/1` for HPE, `System.Embedded.1` for Dell), which is wrong on a BMC that numbers
/// its systems otherwise. Cisco keeps `ipmi://` (no path), the scheme its existing hosts carry.
pub fn bmc_address(
    vendor: Vendor,
    addr: &BmcAddress,
    redfish_system: Option<&str>,
    redfish_port: Option<u16>,
) -> String {
    let host = match addr {
        BmcAddress::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        BmcAddress::Ip(IpAddr::V4(v4)) => v4.to_string(),
        BmcAddress::Host(h) => h.clone(),
    };
    // The Redfish URLs carry the BMC's port when it is not 443; IPMI has its own (623).
    let redfish_host = match redfish_port.filter(|p| *p != 443) {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    // Only a path that is one Redfish ComputerSystem, nothing a URL could be bent with.
    let discovered = redfish_system.filter(|p| {
        p.starts_with("/redfish/v1/Systems/")
            && p.len() > "/redfish/v1/Systems/".len()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
            && !p.contains("..")
    });
    let path = |assumed: &'static str| discovered.unwrap_or(assumed).to_owned();
    match vendor {
        Vendor::Hpe | Vendor::Supermicro | Vendor::Lenovo | Vendor::Other => format!(
            "redfish-virtualmedia://{redfish_host}{}",
            path("/redfish/v1/Systems/1")
        ),
        Vendor::Dell => format!(
            "idrac-virtualmedia://{redfish_host}{}",
            path("/redfish/v1/Systems/System.Embedded.1")
        ),
        Vendor::Cisco => format!("ipmi://{host}:623"),
    }
}

/// What the host is made of; names and labels are checked by the caller.
pub(super) struct HostParts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: BTreeMap<String, String>,
    pub boot_mac: MacAddress,
    pub bmc_address: &'a str,
    pub credentials_name: String,
}

pub(super) fn bare_metal_host(parts: HostParts<'_>, opts: &RenderOptions) -> BareMetalHost {
    let assisted = opts.assisted_installer;
    let annotations = assisted.then(|| {
        BTreeMap::from([
            (INSPECT_ANNOTATION.to_owned(), "disabled".to_owned()),
            (HOSTNAME_ANNOTATION.to_owned(), parts.name.to_owned()),
        ])
    });
    let spec = BareMetalHostSpec {
        online: Some(true),
        boot_mac_address: Some(parts.boot_mac.to_string()),
        boot_mode: Some(opts.boot_mode.as_str().to_owned()),
        bmc: Some(BmcDetails {
            address: parts.bmc_address.to_owned(),
            credentials_name: parts.credentials_name,
            disable_certificate_verification: Some(opts.disable_certificate_verification),
            fields: Default::default(),
        }),
        automated_cleaning_mode: assisted.then(|| "disabled".to_owned()),
        custom_deploy: assisted.then(|| CustomDeploy {
            method: ASSISTED_DEPLOY_METHOD.to_owned(),
        }),
        fields: Default::default(),
    };
    BareMetalHost {
        metadata: ObjectMeta {
            name: Some(parts.name.to_owned()),
            namespace: Some(parts.namespace.to_owned()),
            labels: Some(parts.labels),
            annotations,
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}
