//! The committed CRD (`deploy/crd/bmhgen.yaml`) is exactly what the Rust types generate, and
//! exactly what `inventory-gateway crd` prints. Regenerate with
//! `cargo run -q -- crd > deploy/crd/bmhgen.yaml`.

use std::path::Path;
use std::process::Command;

use inventory_gateway::controller::crd::crd_yaml;

fn committed() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd/bmhgen.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_crd_matches_the_rust_types() {
    assert!(
        crd_yaml().unwrap() == committed(),
        "deploy/crd/bmhgen.yaml drifted from src/controller/crd.rs; regenerate it with \
         `cargo run -q -- crd > deploy/crd/bmhgen.yaml`"
    );
}

#[test]
fn crd_subcommand_prints_the_committed_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_inventory-gateway"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap() == committed());
}

#[test]
fn committed_crd_is_a_v1_crd_document() {
    let crd: serde_json::Value = serde_norway::from_str(&committed()).unwrap();
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "bmhgen");
}
