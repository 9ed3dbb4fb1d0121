//! Servers behind their own Redfish BMCs through the HTTP API: a vendor hint answers only
//! servers of that make (live and from the index, although one set of BMCs holds every make),
//! `/vendors` and `/fleet` show the set and its credentials.

use std::collections::HashMap;

use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::fleet;
use serde_json::Value;

use crate::helpers::{bearer_client, spawn_stack, StackOptions, ADMIN_TOKEN};

async fn stack() -> crate::helpers::TestStack {
    let fleets = HashMap::from([(
        SystemKind::Redfish,
        fleet::generate(SystemKind::Redfish, 5, 6),
    )]);
    spawn_stack(StackOptions {
        fleets,
        fleet: "first_sweep_after = \"1h\"\n".into(),
        extra: "[server.rate_limit]\nenabled = false\n".into(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_vendor_hint_answers_only_servers_of_that_make_live_and_from_the_index() {
    let stack = stack().await;
    let servers = stack.inventory(SystemKind::Redfish).await;
    // rack-002 is a PowerEdge behind an iDRAC.
    let dell = servers[1]["name"].as_str().expect("name").to_owned();
    assert_eq!(servers[1]["model"], "PowerEdge R750");
    for (hint, status) in [
        ("", 200),
        ("?vendor=dell", 200),
        ("?vendor=hpe", 404),
        ("?vendor=lenovo", 404),
    ] {
        let resp = stack.get(&format!("/servers/{dell}{hint}")).await;
        assert_eq!(resp.status(), status, "live {hint}");
    }
    let resp = bearer_client(ADMIN_TOKEN)
        .post(format!("{}/fleet/sweep", stack.gateway))
        .send()
        .await
        .expect("sweep");
    assert_eq!(resp.status(), 200);
    let listed: Value = stack
        .get("/servers?vendor=lenovo")
        .await
        .json()
        .await
        .expect("JSON");
    let names: Vec<&str> = listed["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["rack-005"], "{listed}");
    for (hint, status, cache) in [("?vendor=dell", 200, "index"), ("?vendor=hpe", 404, "")] {
        let resp = stack
            .get(&format!("/servers/{dell}{hint}&refresh=false"))
            .await;
        assert_eq!(resp.status(), status, "after the sweep {hint}");
        if status == 200 {
            let got = resp
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(got == cache || got == "hit", "{hint}: X-Cache {got}");
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn vendors_and_fleet_show_the_set_of_bmcs_and_its_credentials() {
    let stack = stack().await;
    let vendors: Value = stack.get("/vendors").await.json().await.expect("JSON");
    let rf = vendors["systems"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == "redfish"))
        .cloned()
        .expect("the redfish system");
    assert_eq!(rf["vendor"], Value::Null);
    assert!(
        rf["endpoint"]
            .as_str()
            .unwrap_or_default()
            .starts_with("6 Redfish BMCs"),
        "{rf}"
    );
    assert_eq!(rf["credentials"][0]["name"], "default");
    let fleet: Value = stack.get("/fleet").await.json().await.expect("JSON");
    let rf = fleet["systems"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["kind"] == "redfish"))
        .cloned()
        .expect("in /fleet");
    assert_eq!(rf["credentials"][0]["refused_by"], 0);
    assert_eq!(rf["credentials"][0]["suspended_until"], Value::Null);
    stack.stop().await;
}
