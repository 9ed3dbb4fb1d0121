//! The benchmark harness runs end to end with tiny settings: it completes, prints a table with
//! every row and writes BENCHMARKS.md. Numbers are never asserted (timing belongs to the
//! benchmark, not to tests).

use std::process::Command;

use inventory_gateway::bench::report::ROW_LABELS;

#[test]
fn bench_subcommand_completes_and_prints_every_row() {
    let dir = std::env::temp_dir().join(format!("igw-bench-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out_file = dir.join("BENCHMARKS.md");
    let output = Command::new(env!("CARGO_BIN_EXE_inventory-gateway"))
        .args([
            "bench",
            "--duration",
            "400ms",
            "--concurrency",
            "4",
            "--latency-ms",
            "5",
            "--records",
            "60",
            "--cold-lookups",
            "2",
            "--coalesce",
            "20",
            "--fleet-servers",
            "60",
            "--out",
        ])
        .arg(&out_file)
        .env_remove("RUST_LOG")
        .output()
        .expect("the bench subcommand runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let written = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("| Measure | Gateway | Reference | Ratio | Target | Met |"),
        "{stdout}"
    );
    for label in ROW_LABELS {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {label}")))
            .unwrap_or_else(|| panic!("no row {label:?} in\n{stdout}"));
        assert!(!row.contains("NOT MEASURED"), "{row}\nstderr:\n{stderr}");
        assert!(written.contains(row), "BENCHMARKS.md lacks {row:?}");
    }
    for section in [
        "## Machine",
        "## Setup",
        "Produced by `inventory-gateway bench",
    ] {
        assert!(written.contains(section), "BENCHMARKS.md lacks {section:?}");
    }
}
