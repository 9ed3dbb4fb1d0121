//! What deploy/ ships is read by the controller's own types: the NIC profile rules ConfigMap
//! source and the example BareMetalHostGenerators. (Schemas, kustomize builds, compose and the
//! gateway configs are checked by `.ci/deploy-checks` with external tools.)

use std::path::Path;

use inventory_gateway::controller::crd::{BareMetalHostGenerator, MacIndex};
use inventory_gateway::controller::render::ProfileRules;
use inventory_gateway::domain::Vendor;
use serde::Deserialize;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn shipped_profile_rules_load_and_match() {
    let rules = ProfileRules::from_yaml(&read("deploy/base/config/profile-rules.yaml"))
        .unwrap_or_else(|e| panic!("deploy/base/config/profile-rules.yaml: {e}"));
    let (rule, index) = rules
        .find("RACK1-node-07")
        .expect("rack1-* matches, case-insensitively");
    assert_eq!(rule.nic_name, "ens1f0");
    assert_eq!(index, MacIndex::First);
    let (rule, index) = rules.find("UCS-prod-db1").expect("UCS-*-db? matches");
    assert_eq!(rule.nic_name, "enp94s0f1");
    assert_eq!(index, MacIndex::Index(1));
    assert!(rules.find("dell-r650-001").is_none());
}

#[test]
fn example_generators_parse_into_valid_requests() {
    let text = read("deploy/examples/bmhgen-example.yaml");
    let generators: Vec<BareMetalHostGenerator> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| BareMetalHostGenerator::deserialize(doc).unwrap())
        .collect();
    assert_eq!(generators.len(), 2);
    let requests: Vec<_> = generators
        .iter()
        .map(|g| {
            g.parse()
                .unwrap_or_else(|e| panic!("{:?}: {e}", g.metadata.name))
        })
        .collect();
    assert_eq!(requests[0].server_name.as_str(), "hpe-synergy-001");
    assert_eq!(requests[0].vendor, Some(Vendor::Hpe));
    assert_eq!(requests[1].server_name.as_str(), "dell-r650-007");
    assert_eq!(requests[1].vlan_id, Some(120));
    let nic = requests[1]
        .nic_override
        .as_ref()
        .expect("networkConfig nicName + macIndex");
    assert_eq!(
        (nic.nic_name.as_str(), nic.mac_index),
        ("ens1f0", MacIndex::First)
    );
}
