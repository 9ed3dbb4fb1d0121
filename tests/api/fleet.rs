//! The fleet index end to end: sweeps of every simulator (asked for with `POST /fleet/sweep`,
//! so nothing waits on the schedule), listings and reverse lookups that return exactly what the
//! simulators hold, ETags, bulk lookups, conflicts, a sweep that fails half-way, pages that
//! change during a sweep, and single lookups answered from the index only when that is safe.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::SimServer;
use serde_json::{json, Value};

use crate::helpers::{
    bearer_client, generated_fleets, spawn_stack, StackOptions, TestStack, ADMIN_TOKEN, KINDS,
};

/// Sweeps only when asked: the schedule's first sweep is an hour away.
const ON_DEMAND: &str = "first_sweep_after = \"1h\"\n";

fn options(fleets: HashMap<SystemKind, Vec<SimServer>>) -> StackOptions {
    StackOptions {
        fleets,
        fleet: ON_DEMAND.into(),
        extra: "[server.rate_limit]\nenabled = false\n\
                [retry]\nmax_attempts = 3\nbase_delay = \"10ms\"\nmax_delay = \"20ms\"\n"
            .into(),
        ..Default::default()
    }
}

async fn sweep(stack: &TestStack, system: Option<&str>) -> Value {
    let url = match system {
        Some(s) => format!("{}/fleet/sweep?system={s}", stack.gateway),
        None => format!("{}/fleet/sweep", stack.gateway),
    };
    let resp = bearer_client(ADMIN_TOKEN)
        .post(url)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON")
}

async fn get_json(stack: &TestStack, path: &str) -> Value {
    let resp = stack.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("JSON")
}

fn system_of(body: &Value, name: &str) -> Value {
    body["systems"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Every page of `GET /servers?<query>`, `limit` at a time.
async fn all_pages(stack: &TestStack, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/servers?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(stack, &path).await;
        let items = page["servers"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= limit);
        out.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("paging did not end");
}

fn sim_system(kind: SystemKind) -> String {
    format!("{kind}-sim")
}

/// (system, name) of every server the simulators hold.
async fn simulated(stack: &TestStack) -> BTreeSet<(String, String)> {
    let mut all = BTreeSet::new();
    for kind in KINDS {
        for s in stack.inventory(kind).await {
            all.insert((
                sim_system(kind),
                s["name"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    all
}

fn listed(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|r| {
            (
                r["system_name"].as_str().unwrap_or("").to_owned(),
                r["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_sweep_lists_every_simulated_server_once_in_a_stable_keyset_order() {
    let stack = spawn_stack(options(generated_fleets(23))).await;
    let before = get_json(&stack, "/servers").await;
    assert_eq!(before["servers"], json!([]));
    assert_eq!(
        before["unindexed"].as_array().map(Vec::len),
        Some(KINDS.len())
    );

    let fleet = sweep(&stack, None).await;
    for kind in KINDS {
        let s = system_of(&fleet, &sim_system(kind));
        assert_eq!(s["indexed"], 23, "{kind}: {s}");
        assert_eq!(s["last_sweep"]["error"], Value::Null, "{kind}: {s}");
        assert!(s["last_sweep"]["calls"].as_u64() > Some(0), "{kind}: {s}");
    }
    assert_eq!(fleet["servers"], 23 * KINDS.len());
    assert_eq!(fleet["conflicts"], 0);

    let items = all_pages(&stack, "", 7).await;
    let pairs = listed(&items);
    let unique: BTreeSet<_> = pairs.iter().cloned().collect();
    assert_eq!(unique.len(), pairs.len(), "a server listed twice");
    assert_eq!(unique, simulated(&stack).await);
    let keys: Vec<(String, String, String)> = items
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_ascii_lowercase(),
                r["system_name"].as_str().unwrap_or("").to_owned(),
                r["system_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "listing order is name, system, id");

    // Filters narrow the same listing.
    let ome = all_pages(&stack, "vendor=dell", 1000).await;
    assert_eq!(ome.len(), 23);
    assert!(ome.iter().all(|r| r["vendor"] == "dell"));
    let one = all_pages(
        &stack,
        &format!("system={}", sim_system(SystemKind::Ucsm)),
        5,
    )
    .await;
    assert_eq!(one.len(), 23);
    let q = all_pages(&stack, "q=-00", 1000).await;
    assert!(
        !q.is_empty()
            && q.iter()
                .all(|r| r["name"].as_str().unwrap_or("").contains("-00"))
    );

    for bad in [
        "limit=0",
        "limit=1001",
        "cursor=not%2Fa%2Fcursor",
        "mac=zz",
        "vendor=acme",
        "vendor=",
    ] {
        let resp = stack.get(&format!("/servers?{bad}")).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn reverse_lookups_return_exactly_the_server_the_simulator_holds() {
    let stack = spawn_stack(options(generated_fleets(12))).await;
    sweep(&stack, None).await;
    for kind in KINDS {
        for server in stack.inventory(kind).await.iter().step_by(5) {
            let name = server["name"].as_str().unwrap_or("");
            let mac = server["nics"][0]["mac"].as_str().unwrap_or("");
            let serial = server["serial_number"].as_str().unwrap_or("");
            let bmc = server["bmc_address"].as_str().unwrap_or("");
            // Any common notation of the MAC finds it.
            let dashed = mac.replace(':', "-").to_ascii_uppercase();
            for query in [
                format!("mac={mac}"),
                format!("mac={dashed}"),
                format!("serial={serial}"),
                format!("bmc={bmc}"),
            ] {
                let found = get_json(&stack, &format!("/servers?{query}")).await;
                assert_eq!(
                    listed(found["servers"].as_array().unwrap()),
                    vec![(sim_system(kind), name.to_owned())],
                    "{kind} {query}"
                );
            }
        }
    }
    // Searches that can find nothing are answered so.
    for nothing in ["mac=02:00:00:00:00:01", "bmc=..", "system=nope"] {
        let none = get_json(&stack, &format!("/servers?{nothing}")).await;
        assert_eq!(none["servers"], json!([]), "{nothing}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_etag_holds_across_sweeps_that_change_nothing_and_moves_when_the_fleet_does() {
    let stack = spawn_stack(options(generated_fleets(6))).await;
    sweep(&stack, None).await;
    let first = stack.get("/servers?vendor=hpe").await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let again = |etag: String| {
        let client = stack.client.clone();
        let url = format!("{}/servers?vendor=hpe", stack.gateway);
        async move {
            client
                .get(url)
                .header("If-None-Match", etag)
                .send()
                .await
                .expect("gateway answers")
        }
    };
    assert_eq!(again(etag.clone()).await.status(), 304);
    sweep(&stack, None).await;
    assert_eq!(again(etag.clone()).await.status(), 304, "nothing changed");

    let sim = &stack.sim(SystemKind::Oneview).shared;
    let fewer: Vec<SimServer> = sim.fleet().iter().skip(1).cloned().collect();
    *sim.fleet.write().unwrap() = Arc::new(fewer);
    sweep(&stack, Some("oneview-sim")).await;
    let changed = again(etag.clone()).await;
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["servers"].as_array().map(Vec::len), Some(5));
    stack.stop().await;
}

#[tokio::test]
async fn a_fresh_index_answers_single_lookups_without_calling_any_system_and_new_servers_are_still_found(
) {
    let stack = spawn_stack(options(generated_fleets(8))).await;
    sweep(&stack, None).await;
    stack.reset_all().await;
    for kind in KINDS {
        let name = stack.server_name(kind, 3).await;
        let resp = stack.get(&format!("/servers/{name}")).await;
        assert_eq!(resp.status(), 200, "{kind}");
        assert_eq!(resp.headers()["x-cache"], "index", "{kind}");
        let record: Value = resp.json().await.unwrap();
        assert_eq!(record["name"], name);
        assert_eq!(record["unverified"], json!([]));
    }
    for kind in KINDS {
        assert_eq!(stack.total_calls(kind).await, 0, "{kind} was called");
    }
    // A server added after the sweep: the index lacks it, the live path finds it.
    let sim = &stack.sim(SystemKind::Ome).shared;
    let mut more: Vec<SimServer> = sim.fleet().as_ref().clone();
    let mut added = more[0].clone();
    added.name = "ome-added-after-sweep".into();
    added.serial_number = "ADDED0001".into();
    for (i, nic) in added.nics.iter_mut().enumerate() {
        nic.mac = format!("02:ad:de:d0:00:{i:02x}");
    }
    more.push(added);
    *sim.fleet.write().unwrap() = Arc::new(more);
    let resp = stack.get("/servers/ome-added-after-sweep").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cache"], "miss");
    stack.stop().await;
}

#[tokio::test]
async fn the_index_never_answers_for_an_ambiguous_name_a_case_sensitive_miss_or_when_stale() {
    let mut fleets = generated_fleets(5);
    for kind in [SystemKind::Oneview, SystemKind::Ome] {
        fleets.get_mut(&kind).unwrap()[0].name = "held-twice-01".into();
    }
    let stack = spawn_stack(options(fleets)).await;
    sweep(&stack, None).await;
    let resp = stack.get("/servers/held-twice-01").await;
    assert_eq!(resp.status(), 409);
    // Intersight matches names in their exact spelling only.
    let name = stack.server_name(SystemKind::Intersight, 1).await;
    let resp = stack
        .get(&format!("/servers/{}", name.to_ascii_uppercase()))
        .await;
    assert_eq!(resp.status(), 404);
    stack.stop().await;

    let stack = spawn_stack(StackOptions {
        fleet: format!("{ON_DEMAND}max_age = \"1ms\"\n"),
        ..options(generated_fleets(4))
    })
    .await;
    let fleet = sweep(&stack, None).await;
    assert!(fleet["systems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["stale"] == true));
    let name = stack.server_name(SystemKind::Ucsm, 0).await;
    let resp = stack.get(&format!("/servers/{name}")).await;
    assert_eq!(
        resp.headers()["x-cache"],
        "miss",
        "a stale index does not answer"
    );
    let page = get_json(&stack, "/servers?vendor=dell").await;
    assert_eq!(page["stale"], json!(["ome-sim"]));
    assert!(page["servers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["stale"] == true));
    stack.stop().await;
}

#[tokio::test]
async fn a_sweep_that_fails_half_way_keeps_the_previous_index() {
    let stack = spawn_stack(options(generated_fleets(10))).await;
    sweep(&stack, None).await;
    let before = all_pages(&stack, "vendor=hpe", 1000).await;
    assert_eq!(before.len(), 10);
    // Profiles still answer; the hardware collection fails.
    stack
        .set_faults(
            SystemKind::Oneview,
            json!({"endpoint": "server-hardware", "error_rate": 1.0, "error_status": 500}),
        )
        .await;
    let fleet = sweep(&stack, Some("oneview-sim")).await;
    let s = system_of(&fleet, "oneview-sim");
    assert_eq!(s["sweeps_failed"], 1, "{s}");
    assert_eq!(s["sweeps_ok"], 1, "{s}");
    assert!(s["last_sweep"]["error"].as_str().is_some(), "{s}");
    assert_eq!(s["indexed"], 10, "{s}");
    let after = all_pages(&stack, "vendor=hpe", 1000).await;
    assert_eq!(listed(&after), listed(&before));
    stack.stop().await;
}

/// Profile pages the OneView simulator has been asked for.
async fn profile_pages(stack: &TestStack) -> u64 {
    let counters = stack.counters(SystemKind::Oneview).await;
    counters["endpoints"]
        .as_object()
        .map(|e| {
            e.iter()
                .filter(|(k, _)| k.contains("server-profiles"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_collection_that_changes_while_it_is_paged_is_read_again_and_nothing_is_skipped() {
    // 150 servers: three pages of each OneView collection (the simulator caps a page at 64).
    let stack = spawn_stack(options(generated_fleets(150))).await;
    let sim = stack.sim(SystemKind::Oneview).shared.clone();
    stack
        .set_faults(
            SystemKind::Oneview,
            json!({"endpoint": "server-profiles", "latency_ms": 2000}),
        )
        .await;
    let sweeping = {
        let (gateway, client) = (stack.gateway.clone(), bearer_client(ADMIN_TOKEN));
        tokio::spawn(async move {
            client
                .post(format!("{gateway}/fleet/sweep?system=oneview-sim"))
                .send()
                .await
                .expect("gateway answers")
                .json::<Value>()
                .await
                .expect("JSON")
        })
    };
    // Every profile page waits 2 s after the simulator counts it and before it reads the
    // fleet: once page 2 is counted, page 1 has been read and page 2 has not, for 2 s.
    let second_page_asked = async {
        loop {
            let pages = profile_pages(&stack).await;
            if pages >= 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), second_page_asked)
        .await
        .expect("the sweep asked for a second profile page");
    // The first server leaves: every later one moves one place up.
    let fewer: Vec<SimServer> = sim.fleet().iter().skip(1).cloned().collect();
    *sim.fleet.write().unwrap() = Arc::new(fewer.clone());
    stack.set_faults(SystemKind::Oneview, json!({})).await;
    let fleet = sweeping.await.expect("sweep task");
    let s = system_of(&fleet, "oneview-sim");
    assert_eq!(s["last_sweep"]["error"], Value::Null, "{s}");
    assert_eq!(s["indexed"], 149, "{s}");
    // Read again: two pages of the first attempt (the second saw the new count), three of
    // the second.
    let pages = profile_pages(&stack).await;
    assert!(pages >= 5, "{pages} profile pages");
    let items = all_pages(&stack, "system=oneview-sim", 1000).await;
    let names: BTreeSet<String> = listed(&items).into_iter().map(|(_, n)| n).collect();
    let expected: BTreeSet<String> = fewer.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, expected);
    stack.stop().await;
}

#[tokio::test]
async fn a_sweep_counts_every_call_it_sends() {
    let stack = spawn_stack(options(generated_fleets(70))).await;
    stack.reset_all().await;
    let fleet = sweep(&stack, None).await;
    for kind in [SystemKind::Oneview, SystemKind::Ucsm, SystemKind::Ome] {
        let s = system_of(&fleet, &sim_system(kind));
        assert_eq!(
            s["last_sweep"]["calls"].as_u64(),
            Some(stack.total_calls(kind).await),
            "{kind}: {s}"
        );
    }
    let metrics = stack.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("inventory_gateway_fleet_index_servers{system=\"ome-sim\"} 70"),
        "{metrics}"
    );
    assert!(metrics
        .contains("inventory_gateway_fleet_sweeps_total{outcome=\"ok\",system=\"ome-sim\"} 1"));
    stack.stop().await;
}

#[tokio::test]
async fn conflicting_macs_and_bmc_addresses_are_listed_and_counted() {
    let mut fleets = generated_fleets(5);
    let hpe = fleets[&SystemKind::Oneview][2].clone();
    let dell = &mut fleets.get_mut(&SystemKind::Ome).unwrap()[3];
    dell.nics[0].mac = hpe.nics[0].mac.clone();
    dell.bmc_address = hpe.bmc_address.clone();
    let dell_name = dell.name.clone();
    let stack = spawn_stack(options(fleets)).await;
    sweep(&stack, None).await;
    let body = get_json(&stack, "/fleet/conflicts").await;
    let conflicts = body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 2, "{body}");
    assert_eq!(conflicts[0]["kind"], "mac");
    assert_eq!(conflicts[0]["value"], hpe.nics[0].mac);
    assert_eq!(conflicts[1]["kind"], "bmc");
    assert_eq!(conflicts[1]["value"], hpe.bmc_address);
    for c in conflicts {
        let names: BTreeSet<&str> = c["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from([hpe.name.as_str(), dell_name.as_str()])
        );
    }
    let metrics = stack.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("inventory_gateway_fleet_conflicts{kind=\"mac\"} 1"));
    assert!(metrics.contains("inventory_gateway_fleet_conflicts{kind=\"bmc\"} 1"));
    stack.stop().await;
}

async fn bulk(stack: &TestStack, body: Value) -> reqwest::Response {
    stack
        .client
        .post(format!("{}/servers/lookup", stack.gateway))
        .json(&body)
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test]
async fn a_bulk_lookup_answers_every_name_in_order_and_looks_a_repeated_name_up_once() {
    let stack = spawn_stack(options(generated_fleets(10))).await;
    // No index yet: every name is a live lookup.
    let a = stack.server_name(SystemKind::Ucsm, 1).await;
    let b = stack.server_name(SystemKind::Ucsm, 2).await;
    // Sessions opened first, so that both measured requests pay for lookups only.
    let warm = stack.server_name(SystemKind::Ucsm, 3).await;
    assert_eq!(bulk(&stack, json!({ "names": [warm] })).await.status(), 200);
    stack.reset_all().await;
    let resp = bulk(&stack, json!({"names": [a]})).await;
    assert_eq!(resp.status(), 200);
    let mut one = 0;
    for kind in KINDS {
        one += stack.total_calls(kind).await;
    }
    stack.reset_all().await;
    let repeated = vec![b.clone(); 8];
    let body: Value = bulk(&stack, json!({ "names": repeated }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["found"], 8);
    let mut eight = 0;
    for kind in KINDS {
        eight += stack.total_calls(kind).await;
    }
    assert_eq!(eight, one, "eight times one name costs one lookup");
    // Repeats in one request are looked up once; lookups of one name running at once (from
    // several requests) are coalesced by the lookup layer (tests/api/servers.rs, the bench).

    let names = json!([
        a,
        "no-such-server-01",
        "bad name",
        b,
        a.to_ascii_uppercase()
    ]);
    let body: Value = bulk(&stack, json!({ "names": names }))
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![200, 404, 400, 200, 200]);
    assert_eq!(body["results"][0]["record"]["name"], a);
    assert_eq!(body["results"][1]["problem"]["status"], 404);
    assert_eq!(
        (
            body["found"].clone(),
            body["not_found"].clone(),
            body["failed"].clone()
        ),
        (json!(3), json!(1), json!(1))
    );

    // After a sweep the same request costs the systems nothing.
    sweep(&stack, None).await;
    stack.reset_all().await;
    let many: Vec<String> = {
        let mut v = Vec::new();
        for kind in KINDS {
            for s in stack.inventory(kind).await {
                v.push(s["name"].as_str().unwrap().to_owned());
            }
        }
        v
    };
    let body: Value = bulk(&stack, json!({ "names": many }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["found"], 10 * KINDS.len());
    // The names looked up above are still cached; every other one comes from the index.
    let from: BTreeSet<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["cache"].as_str())
        .collect();
    assert_eq!(from, BTreeSet::from(["hit", "index"]));
    for kind in KINDS {
        assert_eq!(stack.total_calls(kind).await, 0, "{kind}");
    }

    for bad in [
        json!({"names": []}),
        json!({"names": vec!["x"; 1001]}),
        json!({"nams": ["x"]}),
        json!({"names": ["x"], "vendor": "acme"}),
    ] {
        assert_eq!(bulk(&stack, bad.clone()).await.status(), 400, "{bad}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn names_a_system_answers_with_an_unassigned_profile_are_never_answered_from_the_index() {
    let mut fleets = generated_fleets(5);
    let oneview = fleets.get_mut(&SystemKind::Oneview).unwrap();
    oneview[0].name = "twin-01".into();
    let mut unassigned = oneview[1].clone();
    unassigned.name = "twin-01".into();
    unassigned.assigned = false;
    unassigned.serial_number = "UNASSIGNED1".into();
    for (i, nic) in unassigned.nics.iter_mut().enumerate() {
        nic.mac = format!("02:0a:55:19:00:{i:02x}");
    }
    oneview.push(unassigned);
    let stack = spawn_stack(options(fleets)).await;
    let fleet = sweep(&stack, None).await;
    assert_eq!(system_of(&fleet, "oneview-sim")["indexed"], 5, "{fleet}");
    let from_index = stack.get("/servers/twin-01").await;
    let status = from_index.status();
    assert_ne!(
        from_index
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap()),
        Some("index")
    );
    let live = stack.get("/servers/twin-01?refresh=true").await;
    assert_eq!(status, live.status());
    assert_ne!(status, 200);
    stack.stop().await;
}

#[tokio::test]
async fn a_second_holder_the_live_path_saw_after_the_sweep_keeps_the_name_out_of_the_index() {
    let stack = spawn_stack(options(generated_fleets(5))).await;
    sweep(&stack, None).await;
    let name = stack.server_name(SystemKind::Oneview, 2).await;
    // OME gains a server of that name after the sweep: the index still answers (up to a sweep
    // interval, as documented) ...
    let sim = &stack.sim(SystemKind::Ome).shared;
    let mut more: Vec<SimServer> = sim.fleet().as_ref().clone();
    let mut twin = more[0].clone();
    twin.name = name.clone();
    twin.serial_number = "TWIN0001".into();
    for (i, nic) in twin.nics.iter_mut().enumerate() {
        nic.mac = format!("02:7e:1a:00:00:{i:02x}");
    }
    more.push(twin);
    *sim.fleet.write().unwrap() = Arc::new(more);
    let resp = stack.get(&format!("/servers/{name}")).await;
    assert_eq!(resp.headers()["x-cache"], "index");
    // ... until the live path sees both: from then on it is a 409, index or not.
    assert_eq!(
        stack
            .get(&format!("/servers/{name}?refresh=true"))
            .await
            .status(),
        409
    );
    assert_eq!(stack.get(&format!("/servers/{name}")).await.status(), 409);
    stack.stop().await;
}

#[tokio::test]
async fn sweeping_needs_the_admin_scope_however_the_path_is_spelled() {
    let stack = spawn_stack(options(generated_fleets(2))).await;
    for path in ["/fleet/sweep", "/fleet/%73weep", "/%66leet/sweep"] {
        let resp = stack
            .client
            .post(format!("{}{path}", stack.gateway))
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(resp.status(), 403, "{path} with a read token");
    }
    for path in ["/servers/x/cache", "/servers/x/%63ache"] {
        let resp = stack
            .client
            .delete(format!("{}{path}", stack.gateway))
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(resp.status(), 403, "{path} with a read token");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_sweep_follows_more_pages_than_a_lookup_may_and_stops_at_its_byte_budget() {
    // 150 servers: three OneView pages of each collection (64 at most per page), more than the
    // two a lookup may follow here; OME and Intersight pages of 500 and 1,000 hold them all.
    let stack = spawn_stack(StackOptions {
        system_extra: "timeout = \"10s\"\nmax_pages = 2".into(),
        ..options(generated_fleets(150))
    })
    .await;
    let fleet = sweep(&stack, Some("oneview-sim")).await;
    let s = system_of(&fleet, "oneview-sim");
    assert_eq!(s["indexed"], 150, "{s}");
    stack.stop().await;

    let stack = spawn_stack(StackOptions {
        fleet: format!("{ON_DEMAND}max_sweep_bytes = 20000\n"),
        ..options(generated_fleets(150))
    })
    .await;
    let fleet = sweep(&stack, None).await;
    for kind in [SystemKind::Oneview, SystemKind::Ome, SystemKind::Intersight] {
        let s = system_of(&fleet, &sim_system(kind));
        assert_eq!(s["indexed"], Value::Null, "{kind}: {s}");
        let error = s["last_sweep"]["error"].as_str().unwrap_or("");
        assert!(error.contains("max_sweep_bytes"), "{kind}: {error}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_server_asked_by_another_name_its_system_knows_is_answered_as_the_system_would() {
    let stack = spawn_stack(options(generated_fleets(8))).await;
    sweep(&stack, None).await;
    let mut compared = 0;
    for server in stack.inventory(SystemKind::Intersight).await {
        // Intersight answers a server under its physical name as well as its profile's.
        let physical = format!(
            "srv-{}",
            server["serial_number"]
                .as_str()
                .unwrap_or("")
                .to_ascii_lowercase()
        );
        if physical == server["name"].as_str().unwrap_or("") {
            continue;
        }
        let indexed = stack.get(&format!("/servers/{physical}")).await;
        if indexed.status() != 200 {
            continue;
        }
        assert_eq!(indexed.headers()["x-cache"], "index");
        let indexed: Value = indexed.json().await.unwrap();
        let live: Value = stack
            .get(&format!("/servers/{physical}?refresh=true"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(indexed["name"], live["name"], "{physical}");
        assert_eq!(indexed["system_id"], live["system_id"], "{physical}");
        assert_eq!(indexed["nics"], live["nics"], "{physical}");
        compared += 1;
    }
    assert!(
        compared > 0,
        "no profile-named Intersight server in the fleet"
    );
    stack.stop().await;
}
