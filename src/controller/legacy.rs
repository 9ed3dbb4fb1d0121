//! What the replaced Python/kopf operator (`roiblum1/BareMetalHostUCS`) left in clusters and
//! configuration, read with the meaning it had there: its annotations, finalizers, settings and
//! its `profiles.yaml` format. Everything here is pure; the reconciler and `migrate-check` use it.

use std::collections::BTreeMap;

use super::crd::MacIndex;

/// The finalizer kopf put on generators (`settings.persistence.finalizer` in the old operator).
pub const OLD_FINALIZER: &str = "bmhgenerator.infra.example.com/finalizer";
/// kopf's default finalizer, present on generators of releases that did not set their own.
pub const KOPF_FINALIZER: &str = "kopf.zalando.org/KopfFinalizerMarker";
/// Finalizers the old operator may have left; none of them has a process behind it any more.
pub const OLD_FINALIZERS: [&str; 2] = [OLD_FINALIZER, KOPF_FINALIZER];

/// Old annotation: vendor (`HP`, `DELL`, `CISCO`), read when `spec.server_vendor` is absent.
pub const VENDOR_ANNOTATION: &str = "server_vendor";
/// Old annotation: VLAN id as a string; like the old operator, it makes an NMStateConfig for
/// Dell servers only. `spec.networkConfig.vlanId` wins and applies to every vendor.
pub const VLAN_ANNOTATION: &str = "vlanId";
/// Old annotation: `redeploy: "true"` recreates the host; removed afterwards, as before.
pub const REDEPLOY_ANNOTATION: &str = "redeploy";

/// The old operator's `str_to_bool` accepted `true/1/yes/on` (any case) and read every other
/// value as false. The same truthy set is read here; of the rest only the usual falsy spellings
/// are accepted, because a typo silently meaning "false" would delete nothing on deletion.
pub fn parse_old_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!(
            "{name}={value:?}: expected true/1/yes/on or false/0/no/off"
        )),
    }
}

/// `BUFFER_CHECK_INTERVAL`: whole seconds, as the old operator's `int()` read it.
pub fn parse_old_seconds(name: &str, value: &str) -> Result<std::time::Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{name}={value:?}: expected a whole number of seconds (e.g. 30)"))
}

/// `LOG_LEVEL` (Python level names) as a tracing filter. The old operator read an unknown
/// name as INFO; so does this.
pub fn log_filter_from_level(level: &str) -> &'static str {
    match level.trim().to_ascii_uppercase().as_str() {
        "DEBUG" => "debug,kube_runtime=info,hyper=info,h2=info,rustls=info",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => "info,kube_runtime=warn",
    }
}

/// A setting that has an old and a new spelling: the value, from whichever is set. Both set is
/// an error naming both, so that nobody has to guess which one wins.
pub fn one_of(
    env: &BTreeMap<String, String>,
    new: &str,
    old: &str,
) -> Result<Option<(String, &'static str)>, String> {
    match (env.get(new), env.get(old)) {
        (Some(_), Some(_)) => Err(format!(
            "both {new} and {old} (its old spelling) are set; keep one"
        )),
        (Some(v), None) => Ok(Some((v.clone(), "new"))),
        (None, Some(v)) => Ok(Some((v.clone(), "old"))),
        (None, None) => Ok(None),
    }
}

/// One entry of the old `profiles.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldProfile {
    /// Case-insensitive substring of the server name; `None` for the `default: true` entry.
    pub pattern: Option<String>,
    pub nic_name: String,
    pub mac_index: MacIndex,
}

/// The old operator's profiles: first matching pattern wins, the default entry (the last one
/// marked `default: true`, as its loop kept overwriting it) applies when none matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OldProfiles {
    pub patterns: Vec<OldProfile>,
    pub default: Option<OldProfile>,
}

impl OldProfiles {
    /// Parses the value under the top key `profiles`.
    pub fn from_value(profiles: &serde_json::Value) -> Result<Self, String> {
        let list = profiles
            .as_array()
            .ok_or("`profiles` must be a list of entries")?;
        if list.is_empty() {
            // The old operator treated an empty list as an error too (and fell back to its
            // built-in table, which this controller does not have).
            return Err("`profiles` is empty".into());
        }
        let mut out = Self::default();
        for (i, entry) in list.iter().enumerate() {
            let obj = entry
                .as_object()
                .ok_or_else(|| format!("profiles[{i}] is not a mapping"))?;
            for key in obj.keys() {
                if !matches!(
                    key.as_str(),
                    "pattern" | "nic_name" | "mac_index" | "default"
                ) {
                    return Err(format!("profiles[{i}]: unknown key {key:?}"));
                }
            }
            let nic_name = obj
                .get("nic_name")
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("profiles[{i}] has no nic_name"))?
                .to_owned();
            let mac_index = match obj.get("mac_index") {
                // The Dell strategy read a missing mac_index as "first".
                None => MacIndex::First,
                Some(serde_json::Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(MacIndex::Index)
                    .ok_or_else(|| format!("profiles[{i}]: mac_index {n} is not an index"))?,
                // The old code compared `== "first"` exactly, then called int().
                Some(serde_json::Value::String(s)) => match s.as_str() {
                    "first" => MacIndex::First,
                    "last" => MacIndex::Last,
                    other => other
                        .trim()
                        .parse::<usize>()
                        .map(MacIndex::Index)
                        .map_err(|_| {
                            format!(
                                "profiles[{i}]: mac_index {other:?} is not first, last or an index"
                            )
                        })?,
                },
                Some(other) => {
                    return Err(format!("profiles[{i}]: mac_index {other} is not valid"));
                }
            };
            let is_default = match obj.get("default") {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(format!("profiles[{i}]: default {other} is not a boolean"))
                }
            };
            let pattern = match obj.get("pattern") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => return Err(format!("profiles[{i}]: pattern {other} is not text")),
            };
            if is_default {
                out.default = Some(OldProfile {
                    pattern: None,
                    nic_name,
                    mac_index,
                });
            } else {
                // A missing pattern was "" there, which is a substring of every name.
                out.patterns.push(OldProfile {
                    pattern: Some(pattern.unwrap_or_default()),
                    nic_name,
                    mac_index,
                });
            }
        }
        Ok(out)
    }

    pub fn lookup(&self, server_name: &str) -> Option<&OldProfile> {
        let name = server_name.to_lowercase();
        self.patterns
            .iter()
            .find(|p| {
                p.pattern
                    .as_deref()
                    .is_some_and(|pat| name.contains(&pat.to_lowercase()))
            })
            .or(self.default.as_ref())
    }
}

/// The old Dell meaning of `mac_index` over OME's NICs (flattened card → port → partition, as
/// the gateway lists them): `first` is the first partition of all, `last` the last one, and `N`
/// is the first partition of the first port of the N-th *card* (not the N-th NIC). A card is
/// named by the FQDD up to its first `-` (`NIC.Slot.3-1-1` → `NIC.Slot.3`).
pub fn old_dell_position(nic_names: &[&str], idx: MacIndex) -> Option<usize> {
    match idx {
        MacIndex::First => (!nic_names.is_empty()).then_some(0),
        MacIndex::Last => nic_names.len().checked_sub(1),
        MacIndex::Index(n) => {
            let mut cards: Vec<&str> = Vec::new();
            for (pos, name) in nic_names.iter().enumerate() {
                let card = name.split('-').next().unwrap_or(name);
                if !cards.contains(&card) {
                    if cards.len() == n {
                        return Some(pos);
                    }
                    cards.push(card);
                }
            }
            None
        }
    }
}

/// The bare BMC host (IP or name) of a Metal3 `bmc.address`, as the old operator wrote it to
/// `status.ipmiAddress`: `idrac-virtualmedia://10.0.0.5/redfish/…` → `10.0.0.5`,
/// `ipmi://[fd00::1]:623` → `fd00::1`. A value without a scheme is already bare.
pub fn bare_bmc_host(address: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_ascii_lowercase();
    }
    // One colon: host:port. More: a bare IPv6 address.
    let host = match authority.matches(':').count() {
        1 => authority.split(':').next().unwrap_or(authority),
        _ => authority,
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delete_resources_on_delete_reads_the_old_spellings() {
        for t in ["true", "True", "1", "yes", "ON"] {
            assert_eq!(parse_old_bool("D", t), Ok(true), "{t}");
        }
        for f in ["false", "FALSE", "0", "no", "off", ""] {
            assert_eq!(parse_old_bool("D", f), Ok(false), "{f}");
        }
        let e = parse_old_bool("DELETE_RESOURCES_ON_DELETE", "maybe").unwrap_err();
        assert!(e.contains("DELETE_RESOURCES_ON_DELETE"), "{e}");
    }

    #[test]
    fn buffer_check_interval_is_bare_seconds() {
        assert_eq!(
            parse_old_seconds("B", "30"),
            Ok(std::time::Duration::from_secs(30))
        );
        for bad in ["30s", "0", "-1", "x"] {
            assert!(
                parse_old_seconds("BUFFER_CHECK_INTERVAL", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn log_level_uses_python_names_and_defaults_to_info() {
        assert!(log_filter_from_level("DEBUG").starts_with("debug"));
        assert_eq!(log_filter_from_level("warning"), "warn");
        assert_eq!(log_filter_from_level("CRITICAL"), "error");
        assert_eq!(log_filter_from_level("ERROR"), "error");
        assert!(log_filter_from_level("verbose").starts_with("info"));
    }

    #[test]
    fn a_setting_in_both_spellings_is_an_error_naming_both() {
        let env = BTreeMap::from([
            ("RESYNC_INTERVAL".to_owned(), "30s".to_owned()),
            ("BUFFER_CHECK_INTERVAL".to_owned(), "30".to_owned()),
        ]);
        let e = one_of(&env, "RESYNC_INTERVAL", "BUFFER_CHECK_INTERVAL").unwrap_err();
        assert!(e.contains("RESYNC_INTERVAL") && e.contains("BUFFER_CHECK_INTERVAL"));
        let env = BTreeMap::from([("BUFFER_CHECK_INTERVAL".to_owned(), "30".to_owned())]);
        assert_eq!(
            one_of(&env, "RESYNC_INTERVAL", "BUFFER_CHECK_INTERVAL"),
            Ok(Some(("30".to_owned(), "old")))
        );
    }

    /// The old operator's own built-in table, written as its ConfigMap.
    fn old_table() -> OldProfiles {
        OldProfiles::from_value(&json!([
            {"pattern": "h100", "nic_name": "ens8f0np0", "mac_index": "2"},
            {"pattern": "H200", "nic_name": "ens33f0np0", "mac_index": 2},
            {"pattern": "10tb-", "nic_name": "ens2f0np0", "mac_index": "last"},
            {"default": true, "nic_name": "eno12399np0", "mac_index": "first"},
        ]))
        .unwrap()
    }

    #[test]
    fn each_old_profile_entry_kind() {
        let t = old_table();
        // pattern + string index, case-insensitive substring
        let p = t.lookup("gpu-H100-07").unwrap();
        assert_eq!(
            (p.nic_name.as_str(), p.mac_index),
            ("ens8f0np0", MacIndex::Index(2))
        );
        // upper-case pattern, integer index
        let p = t.lookup("x-h200").unwrap();
        assert_eq!(
            (p.nic_name.as_str(), p.mac_index),
            ("ens33f0np0", MacIndex::Index(2))
        );
        // "last"
        assert_eq!(t.lookup("store-10TB-1").unwrap().mac_index, MacIndex::Last);
        // default: true
        let d = t.lookup("web-1").unwrap();
        assert_eq!(
            (d.nic_name.as_str(), d.mac_index),
            ("eno12399np0", MacIndex::First)
        );
        // first match wins, in file order
        let t = OldProfiles::from_value(&json!([
            {"pattern": "gpu", "nic_name": "a"}, {"pattern": "gpu-h100", "nic_name": "b"}
        ]))
        .unwrap();
        assert_eq!(t.lookup("gpu-h100-1").unwrap().nic_name, "a");
        assert_eq!(t.lookup("gpu-h100-1").unwrap().mac_index, MacIndex::First);
        assert_eq!(t.lookup("web"), None);
    }

    #[test]
    fn bad_old_profiles_are_errors() {
        for bad in [
            json!([]),
            json!({"pattern": "x"}),
            json!([{"pattern": "x"}]),
            json!([{"pattern": "x", "nic_name": "a", "mac_index": "middle"}]),
            json!([{"pattern": "x", "nic_name": "a", "mac_index": "First"}]),
            json!([{"pattern": "x", "nic_name": "a", "macIndex": "1"}]),
            json!([{"pattern": 5, "nic_name": "a"}]),
        ] {
            assert!(OldProfiles::from_value(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn old_dell_index_counts_cards_not_nics() {
        let nics = [
            "NIC.Integrated.1-1-1",
            "NIC.Integrated.1-2-1",
            "NIC.Slot.3-1-1",
            "NIC.Slot.3-1-2",
            "NIC.Slot.3-2-1",
            "NIC.Slot.4-1-1",
        ];
        assert_eq!(old_dell_position(&nics, MacIndex::First), Some(0));
        assert_eq!(old_dell_position(&nics, MacIndex::Last), Some(5));
        assert_eq!(old_dell_position(&nics, MacIndex::Index(0)), Some(0));
        assert_eq!(old_dell_position(&nics, MacIndex::Index(1)), Some(2));
        assert_eq!(old_dell_position(&nics, MacIndex::Index(2)), Some(5));
        assert_eq!(old_dell_position(&nics, MacIndex::Index(3)), None);
        assert_eq!(old_dell_position(&[], MacIndex::First), None);
    }

    #[test]
    fn bare_bmc_hosts() {
        for (addr, want) in [
            (
                "redfish-virtualmedia://10.0.0.5/redfish/v1/Systems/1",
                "10.0.0.5",
            ),
            ("ipmi://10.0.0.6:623", "10.0.0.6"),
            ("ipmi://[FD00::1]:623", "fd00::1"),
            ("10.0.0.7", "10.0.0.7"),
            ("fd00::2", "fd00::2"),
            (
                "idrac-virtualmedia://bmc.example/redfish/v1/Systems/System.Embedded.1",
                "bmc.example",
            ),
        ] {
            assert_eq!(bare_bmc_host(addr), want, "{addr}");
        }
    }
}
