//! Which NIC a host boots from, and under which interface name: the generator's
//! `networkConfig`, else a server-profile rule (this controller's format or the old
//! operator's), else the NIC the vendor marks as boot.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::names::check_interface_name;
use super::{RenderError, RenderOptions};
use crate::controller::crd::{GeneratorRequest, MacIndex};
use crate::controller::legacy;
use crate::domain::{MacAddress, ServerRecord, Vendor};

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

pub(super) fn glob_match(pattern: &str, text: &str) -> bool {
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
        return Err(RenderError::NoNics(
            record.name.clone(),
            record.nics_unavailable.clone(),
        ));
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
