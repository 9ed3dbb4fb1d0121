//! The names of the objects a server gets, as the old operator chose them, and the rules
//! Kubernetes and Metal3's webhook hold them to. Names are checked, never altered to fit.

use super::RenderError;
use crate::domain::Vendor;

/// The old operator's vendor spelling in object names: `hp`, `dell`, `cisco` (and the makes
/// it never knew, reached through their own BMCs: `supermicro`, `lenovo`, `other`).
pub fn vendor_prefix(v: Vendor) -> &'static str {
    match v {
        Vendor::Hpe => "hp",
        Vendor::Dell => "dell",
        Vendor::Cisco => "cisco",
        Vendor::Supermicro => "supermicro",
        Vendor::Lenovo => "lenovo",
        Vendor::Other => "other",
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

/// Metal3's webhook: host names use `[A-Za-z0-9._-]` and are not UUIDs. Kubernetes adds the
/// DNS-1123 subdomain rules (lower case, at most 253 characters).
pub(super) fn check_host_name(name: &str) -> Result<(), RenderError> {
    check_dns_subdomain(name)?;
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(RenderError::ObjectName {
            name: name.to_owned(),
            reason: "Metal3 rejects host names that are UUIDs",
        });
    }
    Ok(())
}

pub(super) fn check_dns_subdomain(name: &str) -> Result<(), RenderError> {
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
pub(super) fn check_interface_name(name: &str) -> Result<(), RenderError> {
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

pub(super) fn check_label(key: &str, value: &str) -> Result<(), RenderError> {
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
