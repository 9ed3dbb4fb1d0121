use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::fleet;
use serde_json::{json, Value};

use crate::helpers::{
    generated_fleets, login_key, spawn_stack, vendor_param, StackOptions, TestStack, KINDS,
};

/// Checks every field the gateway must take from the simulator's fleet.
fn assert_matches_inventory(kind: SystemKind, record: &Value, expected: &Value) {
    let ctx = format!("{kind}: {record}");
    assert_eq!(record["name"], expected["name"], "{ctx}");
    assert_eq!(record["system"], json!(kind.as_str()), "{ctx}");
    assert_eq!(
        record["vendor"],
        json!(kind.vendor().map(|v| v.as_str())),
        "{ctx}"
    );
    assert_eq!(record["serial_number"], expected["serial_number"], "{ctx}");
    assert_eq!(record["model"], expected["model"], "{ctx}");
    assert_eq!(record["power_state"], expected["power_state"], "{ctx}");
    assert_eq!(record["bmc"]["address"], expected["bmc_address"], "{ctx}");
    assert!(record["bmc"]["kind"].is_string(), "{ctx}");
    let got: Vec<(&Value, &Value)> = record["nics"]
        .as_array()
        .expect("nics")
        .iter()
        .map(|n| (&n["name"], &n["mac"]))
        .collect();
    let want: Vec<(&Value, &Value)> = expected["nics"]
        .as_array()
        .expect("nics")
        .iter()
        .map(|n| (&n["name"], &n["mac"]))
        .collect();
    assert_eq!(got, want, "{ctx}");
    let boot = expected["nics"]
        .as_array()
        .and_then(|nics| {
            nics.iter()
                .find(|n| n["boot"] == json!(true))
                .or(nics.first())
        })
        .map(|n| n["mac"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(record["boot_mac"], boot, "{ctx}");
    assert_eq!(record["stale"], json!(false), "{ctx}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(record["fetched_at"].as_str().unwrap_or("")).is_ok(),
        "{ctx}"
    );
    assert!(
        record["system_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{ctx}"
    );
}

#[tokio::test]
async fn every_vendor_answers_with_the_simulators_facts() {
    let stack = spawn_stack(StackOptions::default()).await;
    for kind in KINDS {
        let inventory = stack.inventory(kind).await;
        // First, a middle one and the last: covers the OME IPv6-only iDRAC (every 7th).
        for idx in [0, 6, inventory.len() - 1] {
            let expected = &inventory[idx];
            let name = expected["name"].as_str().expect("name");
            for query in ["", &format!("?vendor={}", vendor_param(kind))] {
                let resp = stack.get(&format!("/servers/{name}{query}")).await;
                assert_eq!(resp.status(), 200, "{kind} {name}{query}");
                assert!(resp.headers().contains_key("x-request-id"));
                assert!(resp.headers().contains_key("x-cache"));
                let record: Value = resp.json().await.expect("json");
                assert_matches_inventory(kind, &record, expected);
            }
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn names_match_case_insensitively_and_keep_the_vendor_spelling() {
    let stack = spawn_stack(StackOptions::default()).await;
    for kind in KINDS {
        let inventory = stack.inventory(kind).await;
        let name = inventory[1]["name"].as_str().expect("name");
        let resp = stack
            .get(&format!("/servers/{}", name.to_uppercase()))
            .await;
        // Intersight's `eq` is case-sensitive and its query language offers the gateway no
        // case-insensitive match it can rely on: a name must be spelled in Intersight's case
        // (README, "How each vendor is asked").
        if kind == SystemKind::Intersight {
            assert_eq!(resp.status(), 404, "{kind}");
            // …and that miss is not remembered for Intersight's own spelling.
            let resp = stack.get(&format!("/servers/{name}")).await;
            assert_eq!(
                resp.status(),
                200,
                "{kind}: the exact spelling after a miss"
            );
            continue;
        }
        assert_eq!(resp.status(), 200, "{kind}");
        let record: Value = resp.json().await.expect("json");
        assert_eq!(record["name"], json!(name));
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_vendor_hint_asks_only_that_system_and_no_hint_asks_all() {
    let stack = spawn_stack(StackOptions::default()).await;
    let name = fleet::generate(SystemKind::Ucsm, 42, 20)[3].name.clone();
    // Both aliases are the same hint: the first asks UCS Manager, the second is a cache hit.
    for (alias, ucsm_asked, x_cache) in [("cisco", true, "miss"), ("UCS", false, "hit")] {
        stack.reset_all().await;
        let resp = stack.get(&format!("/servers/{name}?vendor={alias}")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-cache"], x_cache);
        assert_eq!(stack.total_calls(SystemKind::Oneview).await, 0);
        assert_eq!(stack.total_calls(SystemKind::Ome).await, 0);
        assert_eq!(stack.total_calls(SystemKind::Ucsm).await > 0, ucsm_asked);
    }
    // The hint is honoured even when the name lives elsewhere: not found in the hinted system.
    let resp = stack.get(&format!("/servers/{name}?vendor=dell")).await;
    assert_eq!(resp.status(), 404);

    // A name never looked up before, so no cache entry or known owner short-cuts the fan-out.
    let fresh = fleet::generate(SystemKind::Ucsm, 42, 20)[4].name.clone();
    stack.reset_all().await;
    let resp = stack.get(&format!("/servers/{fresh}")).await;
    assert_eq!(resp.status(), 200);
    for kind in KINDS {
        assert!(stack.total_calls(kind).await > 0, "{kind} was not asked");
    }
    stack.stop().await;
}

/// The `system_name` of each candidate in a 409 problem, in order.
fn candidate_systems(body: &Value) -> Vec<&str> {
    body["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["system_name"].as_str())
        .collect()
}

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "problem content type"
    );
    let rid = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = resp.json().await.expect("problem json");
    for field in [
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "request_id",
    ] {
        assert!(!body[field].is_null(), "missing {field}: {body}");
    }
    assert_eq!(body["status"], json!(status));
    assert_eq!(body["request_id"], json!(rid));
    body
}

#[tokio::test]
async fn invalid_names_and_vendors_are_400_before_any_system_is_asked() {
    let stack = spawn_stack(StackOptions::default()).await;
    stack.reset_all().await;
    let long = "a".repeat(129);
    for path in [
        "/servers/bad%20name",
        "/servers/o'neil",
        "/servers/a%22b",
        "/servers/%3Cx%3E",
        "/servers/name%2Fslash",
        &format!("/servers/{long}"),
        "/servers/ok?vendor=ibm",
        "/servers/ok?refresh=maybe",
    ] {
        let body = problem(stack.get(path).await, 400).await;
        assert!(
            body["type"].as_str().unwrap_or("").contains("invalid"),
            "{path}: {body}"
        );
    }
    for kind in KINDS {
        assert_eq!(stack.total_calls(kind).await, 0, "{kind} was asked");
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_unknown_name_is_404_listing_the_systems_searched() {
    let stack = spawn_stack(StackOptions::default()).await;
    let body = problem(stack.get("/servers/no-such-server").await, 404).await;
    let searched: Vec<&str> = body["searched"]
        .as_array()
        .expect("searched")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        searched,
        [
            "oneview-sim",
            "ucsm-sim",
            "ucs-central-sim",
            "ome-sim",
            "intersight-sim"
        ]
    );
    assert_eq!(body["instance"], json!("/servers/no-such-server"));
    stack.stop().await;
}

#[tokio::test]
async fn a_name_in_two_systems_is_409_listing_both() {
    let mut fleets = generated_fleets(5);
    let shared_name = "shared-node-01";
    for kind in [SystemKind::Oneview, SystemKind::Ome] {
        if let Some(first) = fleets.get_mut(&kind).and_then(|f| f.first_mut()) {
            first.name = shared_name.into();
        }
    }
    let stack = spawn_stack(StackOptions {
        fleets,
        ..Default::default()
    })
    .await;
    let body = problem(stack.get(&format!("/servers/{shared_name}")).await, 409).await;
    let systems = candidate_systems(&body);
    assert_eq!(systems, ["oneview-sim", "ome-sim"]);
    // A vendor hint resolves the ambiguity.
    let resp = stack
        .get(&format!("/servers/{shared_name}?vendor=dell"))
        .await;
    assert_eq!(resp.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn an_unassigned_profile_is_a_clear_409() {
    let mut fleets = generated_fleets(3);
    if let Some(ov) = fleets.get_mut(&SystemKind::Oneview) {
        ov[1].assigned = false;
    }
    let name = fleets[&SystemKind::Oneview][1].name.clone();
    let stack = spawn_stack(StackOptions {
        fleets,
        ..Default::default()
    })
    .await;
    let body = problem(stack.get(&format!("/servers/{name}?vendor=hpe")).await, 409).await;
    assert!(
        body["type"].as_str().unwrap_or("").contains("unassigned"),
        "{body}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_system_error_is_502_and_a_hung_system_is_504() {
    let stack = spawn_stack(StackOptions {
        system_extra: "timeout = \"500ms\"".into(),
        ..Default::default()
    })
    .await;
    for kind in KINDS {
        let name = stack.server_name(kind, 0).await;
        let hinted = format!("/servers/{name}?vendor={}", vendor_param(kind));
        stack
            .set_faults(kind, json!({"error_rate": 1.0, "error_status": 500}))
            .await;
        let body = problem(stack.get(&hinted).await, 502).await;
        assert_eq!(
            body["failures"][0]["system"],
            json!(format!("{kind}-sim")),
            "{body}"
        );

        stack.set_faults(kind, json!({"hang": true})).await;
        let body = problem(stack.get(&hinted).await, 504).await;
        assert!(
            body["type"].as_str().unwrap_or("").contains("timeout"),
            "{body}"
        );

        stack.sim_post(kind, "reset").await;
        assert_eq!(stack.get(&hinted).await.status(), 200, "{kind} recovers");
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_expired_session_costs_exactly_one_login() {
    let stack = spawn_stack(StackOptions::default()).await;
    for kind in KINDS {
        let Some(login) = login_key(kind) else {
            continue;
        };
        let names: Vec<String> = stack
            .inventory(kind)
            .await
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect();
        let hinted = |n: &str| format!("/servers/{n}?vendor={}", vendor_param(kind));
        assert_eq!(stack.get(&hinted(&names[0])).await.status(), 200);
        stack.sim_post(kind, "reset").await;
        stack.sim_post(kind, "expire-sessions").await;
        assert_eq!(stack.get(&hinted(&names[1])).await.status(), 200);
        assert_eq!(stack.get(&hinted(&names[2])).await.status(), 200);
        let counters = stack.counters(kind).await;
        assert_eq!(counters["endpoints"][login], json!(1), "{kind}: {counters}");
    }
    stack.stop().await;
}

/// The economy the issue demands of each protocol: upstream calls for one cold lookup, with the
/// session already open. Printed so the numbers can be quoted.
#[tokio::test]
async fn a_cold_lookup_costs_few_upstream_calls() {
    let stack = spawn_stack(StackOptions::default()).await;
    for (kind, budget) in [
        (SystemKind::Oneview, 2),
        (SystemKind::Ucsm, 3),
        (SystemKind::Ome, 3),
    ] {
        let inventory = stack.inventory(kind).await;
        let warm_up = inventory[0]["name"].as_str().expect("name");
        let hinted = |n: &str| format!("/servers/{n}?vendor={}", vendor_param(kind));
        assert_eq!(stack.get(&hinted(warm_up)).await.status(), 200);
        stack.sim_post(kind, "reset").await;
        let name = inventory[4]["name"].as_str().expect("name");
        assert_eq!(stack.get(&hinted(name)).await.status(), 200);
        let counters = stack.counters(kind).await;
        let calls = counters["total"].as_u64().expect("total");
        eprintln!(
            "{kind}: {calls} upstream call(s) per cold lookup: {}",
            counters["endpoints"]
        );
        assert!(calls <= budget, "{kind}: {calls} > {budget}: {counters}");

        stack.sim_post(kind, "reset").await;
        assert_eq!(stack.get(&hinted("not-there-at-all")).await.status(), 404);
        let miss = stack.total_calls(kind).await;
        eprintln!("{kind}: {miss} upstream call(s) per cold miss");
    }
    stack.stop().await;
}

#[tokio::test]
async fn tls_to_every_system_is_verified_against_its_ca_bundle() {
    let stack = spawn_stack(StackOptions {
        tls: true,
        ..Default::default()
    })
    .await;
    for kind in KINDS {
        assert_eq!(stack.sim(kind).base_url.scheme(), "https");
        let expected = &stack.inventory_tls(kind).await[2];
        let name = expected["name"].as_str().expect("name");
        let resp = stack.get(&format!("/servers/{name}")).await;
        assert_eq!(resp.status(), 200, "{kind}");
        let record: Value = resp.json().await.expect("json");
        assert_matches_inventory(kind, &record, expected);
    }
    stack.stop().await;
}

impl TestStack {
    /// Reads a TLS simulator's inventory, trusting its CA like the gateway does.
    async fn inventory_tls(&self, kind: SystemKind) -> Vec<Value> {
        let sim = self.sim(kind);
        let ca = reqwest::Certificate::from_pem(sim.ca_pem.as_deref().expect("ca").as_bytes())
            .expect("ca pem");
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .build()
            .expect("client");
        let v: Value = client
            .get(format!("{}_sim/inventory", sim.base_url))
            .send()
            .await
            .expect("inventory over TLS")
            .json()
            .await
            .expect("json");
        v["servers"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn several_ucs_domains_are_searched_and_named_apart() {
    // A second UCS Manager domain whose fleet shares one name with the first domain.
    let mut fleet_b = fleet::generate(SystemKind::Ucsm, 7, 4);
    for (i, s) in fleet_b.iter_mut().enumerate() {
        s.name = format!("pod-b-sp-{i:03}");
    }
    let shared = fleet::generate(SystemKind::Ucsm, 42, 20)[2].name.clone();
    fleet_b[3].name = shared.clone();
    let mut opts = inventory_gateway::sim::SimOptions::new(SystemKind::Ucsm, fleet_b);
    opts.username = inventory_gateway::demo::SIM_USERNAME.into();
    opts.password = inventory_gateway::demo::SIM_PASSWORD.into();
    let domain_b = inventory_gateway::sim::start(opts).expect("second UCSM domain starts");
    let stack = spawn_stack(StackOptions {
        extra: format!(
            "[[systems]]\nname = \"ucs-pod-b\"\nkind = \"ucsm\"\nendpoint = \"{}\"\n\
             username = \"{}\"\npassword = \"{}\"\n",
            domain_b.base_url.as_str().trim_end_matches('/'),
            inventory_gateway::demo::SIM_USERNAME,
            inventory_gateway::demo::SIM_PASSWORD,
        ),
        ..Default::default()
    })
    .await;

    for path in [
        "/servers/pod-b-sp-001",
        "/servers/POD-B-SP-001?vendor=cisco",
    ] {
        let resp = stack.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let record: Value = resp.json().await.expect("json");
        assert_eq!(record["system_name"], json!("ucs-pod-b"), "{path}");
        assert_eq!(record["name"], json!("pod-b-sp-001"));
    }
    let first_domain = fleet::generate(SystemKind::Ucsm, 42, 20)[5].name.clone();
    let record: Value = stack
        .get(&format!("/servers/{first_domain}?vendor=ucs"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(record["system_name"], json!("ucsm-sim"));

    let body = problem(
        stack.get(&format!("/servers/{shared}?vendor=cisco")).await,
        409,
    )
    .await;
    let systems = candidate_systems(&body);
    assert_eq!(systems, ["ucsm-sim", "ucs-pod-b"]);
    assert_eq!(
        body["searched"],
        json!(["ucsm-sim", "ucs-central-sim", "intersight-sim", "ucs-pod-b"]),
        "only the Cisco systems are asked with ?vendor=cisco"
    );
    stack.stop().await;
    domain_b.stop().await;
}
