//! The same MAC or BMC address in two records. Ironic refuses to enrol a host whose MAC is
//! already registered, and two servers answering at one BMC address are one wrong BareMetalHost
//! away from powering off the wrong machine, so such pairs are listed for people to resolve.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::index::SystemIndex;
use crate::lookup::Candidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConflictKind {
    Mac,
    Bmc,
}

impl ConflictKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Mac => "mac",
            Self::Bmc => "bmc",
        }
    }
}

/// One address claimed by two or more servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// The MAC (lower-case, colon-separated) or BMC address.
    pub value: String,
    /// Every server claiming it, in listing order.
    #[schema(value_type = Vec<crate::http::openapi::CandidateSchema>)]
    pub servers: Vec<Candidate>,
}

/// Every conflict across the indexes, sorted by kind then value.
pub fn find(indexes: &[Arc<SystemIndex>]) -> Vec<Conflict> {
    let mut macs: HashMap<String, Vec<Candidate>> = HashMap::new();
    let mut bmcs: HashMap<String, Vec<Candidate>> = HashMap::new();
    for index in indexes {
        for (mac, entries) in index.macs() {
            let v = macs.entry(mac.to_string()).or_default();
            v.extend(entries.iter().map(|e| Candidate::from(&e.record)));
        }
        for (bmc, entries) in index.bmcs() {
            let v = bmcs.entry(bmc.to_string()).or_default();
            v.extend(entries.iter().map(|e| Candidate::from(&e.record)));
        }
    }
    let mut out: Vec<Conflict> = [(ConflictKind::Mac, macs), (ConflictKind::Bmc, bmcs)]
        .into_iter()
        .flat_map(|(kind, map)| {
            map.into_iter()
                .filter(|(_, servers)| servers.len() >= 2)
                .map(move |(value, mut servers)| {
                    servers.sort_by(|a, b| {
                        (a.name.to_ascii_lowercase(), &a.system_name, &a.system_id).cmp(&(
                            b.name.to_ascii_lowercase(),
                            &b.system_name,
                            &b.system_id,
                        ))
                    });
                    Conflict {
                        kind,
                        value,
                        servers,
                    }
                })
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.value).cmp(&(b.kind, &b.value)));
    out
}
