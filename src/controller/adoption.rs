//! Which BareMetalHost a generator uses: one it already has, one the old operator left (adopted),
//! or a new one, and when it must refuse instead. One pure function, [`plan_host`], decides for
//! both the reconciler and `migrate-check`, so the two cannot disagree.

use std::fmt;

use kube::ResourceExt;

use super::legacy::bare_bmc_host;
use super::objects::BareMetalHost;
use super::render::check_object_names;
use crate::domain::Vendor;

/// The generator asking, and what it knows about its server.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// `(namespace, name)` of the generator.
    pub generator: (&'a str, &'a str),
    /// The name its objects get: the server name.
    pub object_name: &'a str,
    /// `status.bmhName`: the host it recorded last time, if any.
    pub recorded: Option<&'a str>,
    pub vendor: Option<Vendor>,
    /// Boot MAC and bare BMC host, when known (the gateway's answer, or the old status).
    pub mac: Option<&'a str>,
    pub bmc: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPlan {
    /// No host yet, and none that clashes: create `name`.
    Create {
        name: String,
    },
    /// The generator's own host (by the controller's labels).
    Keep {
        name: String,
    },
    /// The generator's own host under another name (made by an earlier controller version,
    /// which named hosts after the generator): kept, as a rename would re-enrol the server;
    /// a redeploy recreates it under `wanted`.
    KeepRenamedOnRedeploy {
        name: String,
        wanted: String,
    },
    /// A host of this name with no owner labels: the old operator's. Taken over in place.
    Adopt {
        name: String,
    },
    Refuse(Refusal),
}

impl HostPlan {
    /// The host the generator's objects are applied to.
    pub fn host_name(&self) -> Option<&str> {
        match self {
            Self::Create { name }
            | Self::Keep { name }
            | Self::KeepRenamedOnRedeploy { name, .. }
            | Self::Adopt { name } => Some(name),
            Self::Refuse(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InvalidName(String),
    OwnedByOther {
        host: String,
        owner: String,
    },
    MacTaken {
        host: String,
        mac: String,
        owner: Option<String>,
    },
    BmcTaken {
        host: String,
        bmc: String,
        owner: Option<String>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = |o: &Option<String>| match o {
            Some(o) => format!("generator {o}"),
            None => "no generator (not created by this controller)".to_owned(),
        };
        match self {
            Self::InvalidName(m) => write!(f, "{m}; the name is not changed to fit"),
            Self::OwnedByOther { host, owner } => {
                write!(f, "BareMetalHost {host} belongs to generator {owner}")
            }
            Self::MacTaken { host, mac, owner } => write!(
                f,
                "boot MAC {mac} is already on BareMetalHost {host}, owned by {}",
                by(owner)
            ),
            Self::BmcTaken { host, bmc, owner } => write!(
                f,
                "BMC {bmc} is already on BareMetalHost {host}, owned by {}",
                by(owner)
            ),
        }
    }
}

/// Decides for one generator over the hosts of its target namespace.
pub fn plan_host(c: &Candidate<'_>, hosts: &[BareMetalHost]) -> HostPlan {
    let me = (c.generator.0.to_owned(), c.generator.1.to_owned());
    let owner = |h: &BareMetalHost| h.generator();
    let ours: Vec<&BareMetalHost> = hosts
        .iter()
        .filter(|h| owner(h).as_ref() == Some(&me))
        .collect();
    let by_name = |n: &str| ours.iter().find(|h| h.name_any() == n);
    if let Some(h) = by_name(c.object_name)
        .or_else(|| c.recorded.and_then(by_name))
        .or(ours.first())
    {
        let name = h.name_any();
        return if name == c.object_name {
            HostPlan::Keep { name }
        } else {
            HostPlan::KeepRenamedOnRedeploy {
                name,
                wanted: c.object_name.to_owned(),
            }
        };
    }
    if let Err(e) = check_object_names(c.object_name, c.vendor) {
        return HostPlan::Refuse(Refusal::InvalidName(e.to_string()));
    }
    let ns = c.generator.0;
    let key = |h: &BareMetalHost| {
        format!(
            "{}/{}",
            h.namespace().unwrap_or_else(|| ns.into()),
            h.name_any()
        )
    };
    let same = hosts.iter().find(|h| h.name_any() == c.object_name);
    if let Some(h) = same {
        if let Some((ons, oname)) = owner(h) {
            return HostPlan::Refuse(Refusal::OwnedByOther {
                host: key(h),
                owner: format!("{ons}/{oname}"),
            });
        }
    }
    for h in hosts.iter().filter(|h| h.name_any() != c.object_name) {
        let owner = owner(h).map(|(a, b)| format!("{a}/{b}"));
        if let (Some(mac), Some(theirs)) = (c.mac, h.boot_mac()) {
            if theirs.trim().eq_ignore_ascii_case(mac.trim()) {
                return HostPlan::Refuse(Refusal::MacTaken {
                    host: key(h),
                    mac: theirs.to_owned(),
                    owner,
                });
            }
        }
        if let (Some(bmc), Some(theirs)) = (c.bmc, h.bmc_address()) {
            if bare_bmc_host(theirs) == bare_bmc_host(bmc) {
                return HostPlan::Refuse(Refusal::BmcTaken {
                    host: key(h),
                    bmc: bare_bmc_host(theirs),
                    owner,
                });
            }
        }
    }
    match same {
        Some(h) => HostPlan::Adopt { name: h.name_any() },
        None => HostPlan::Create {
            name: c.object_name.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::render::GENERATOR_LABEL;
    use serde_json::json;

    fn host(name: &str, owner: Option<&str>, mac: &str, bmc: &str) -> BareMetalHost {
        let mut labels = serde_json::Map::new();
        if let Some(o) = owner {
            labels.insert(GENERATOR_LABEL.into(), json!(o));
        }
        serde_json::from_value(json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": name, "namespace": "ztp", "labels": labels},
            "spec": {"bootMACAddress": mac, "bmc": {"address": bmc}}
        }))
        .unwrap()
    }

    fn cand<'a>(object: &'a str, mac: Option<&'a str>, bmc: Option<&'a str>) -> Candidate<'a> {
        Candidate {
            generator: ("ztp", "gen-a"),
            object_name: object,
            recorded: None,
            vendor: Some(Vendor::Dell),
            mac,
            bmc,
        }
    }

    const MAC: Option<&str> = Some("b0:7b:25:00:00:01");
    const BMC: Option<&str> = Some("10.0.0.5");

    #[test]
    fn nothing_there_creates_under_the_server_name() {
        let plan = plan_host(&cand("srv-1", MAC, BMC), &[]);
        assert_eq!(
            plan,
            HostPlan::Create {
                name: "srv-1".into()
            }
        );
    }

    #[test]
    fn an_unowned_host_of_that_name_is_adopted() {
        let old = host(
            "srv-1",
            None,
            "B0:7B:25:00:00:01",
            "idrac-virtualmedia://10.0.0.5/redfish/v1/Systems/System.Embedded.1",
        );
        let plan = plan_host(&cand("srv-1", MAC, BMC), &[old]);
        assert_eq!(
            plan,
            HostPlan::Adopt {
                name: "srv-1".into()
            }
        );
    }

    #[test]
    fn own_hosts_are_kept_even_under_the_generator_name() {
        let mine = host(
            "gen-a",
            Some("gen-a"),
            "b0:7b:25:00:00:01",
            "ipmi://10.0.0.5:623",
        );
        let plan = plan_host(&cand("srv-1", MAC, BMC), &[mine]);
        assert_eq!(
            plan,
            HostPlan::KeepRenamedOnRedeploy {
                name: "gen-a".into(),
                wanted: "srv-1".into()
            }
        );
        let mine = host("srv-1", Some("gen-a"), "x", "y");
        assert_eq!(
            plan_host(&cand("srv-1", MAC, BMC), &[mine]),
            HostPlan::Keep {
                name: "srv-1".into()
            }
        );
    }

    #[test]
    fn a_clash_on_mac_or_bmc_refuses_and_names_the_host() {
        let other = host(
            "elsewhere",
            None,
            "B0:7B:25:00:00:01",
            "ipmi://10.9.9.9:623",
        );
        let plan = plan_host(&cand("srv-1", MAC, BMC), &[other]);
        let HostPlan::Refuse(r) = plan else {
            panic!("{plan:?}")
        };
        assert!(r.to_string().contains("ztp/elsewhere"), "{r}");
        assert!(matches!(r, Refusal::MacTaken { .. }));
        let other = host(
            "bmc-twin",
            Some("gen-b"),
            "aa:aa:aa:aa:aa:aa",
            "redfish-virtualmedia://10.0.0.5/redfish/v1/Systems/1",
        );
        let HostPlan::Refuse(r) = plan_host(&cand("srv-1", MAC, BMC), &[other]) else {
            panic!()
        };
        assert!(matches!(r, Refusal::BmcTaken { .. }), "{r}");
        assert!(r.to_string().contains("ztp/bmc-twin") && r.to_string().contains("ztp/gen-b"));
        // Even when the host of the right name is there to adopt.
        let old = host("srv-1", None, "b0:7b:25:00:00:01", "ipmi://10.0.0.5:623");
        let twin = host(
            "srv-1-copy",
            None,
            "b0:7b:25:00:00:01",
            "ipmi://10.0.0.6:623",
        );
        assert!(matches!(
            plan_host(&cand("srv-1", MAC, BMC), &[old, twin]),
            HostPlan::Refuse(Refusal::MacTaken { .. })
        ));
    }

    #[test]
    fn another_generators_host_of_that_name_refuses() {
        let theirs = host("srv-1", Some("gen-b"), "x", "y");
        let plan = plan_host(&cand("srv-1", MAC, BMC), &[theirs]);
        assert_eq!(
            plan,
            HostPlan::Refuse(Refusal::OwnedByOther {
                host: "ztp/srv-1".into(),
                owner: "ztp/gen-b".into()
            })
        );
    }

    #[test]
    fn an_invalid_name_refuses_and_is_not_rewritten() {
        let plan = plan_host(&cand("OV-SRV-0001", MAC, BMC), &[]);
        let HostPlan::Refuse(Refusal::InvalidName(m)) = plan else {
            panic!("{plan:?}")
        };
        assert!(m.contains("OV-SRV-0001"), "{m}");
    }

    #[test]
    fn unknown_mac_and_bmc_only_decide_by_name() {
        let other = host(
            "elsewhere",
            None,
            "b0:7b:25:00:00:01",
            "ipmi://10.0.0.5:623",
        );
        assert_eq!(
            plan_host(&cand("srv-1", None, None), &[other]),
            HostPlan::Create {
                name: "srv-1".into()
            }
        );
    }
}
