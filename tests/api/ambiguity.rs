//! Ambiguity is a property of the name: a name held by two systems never becomes one system's
//! 200 because the other failed, across `refresh=true` and across the cache's TTL; an answer
//! that could not hear from every system says which (`unverified`, `X-Unverified`).

use std::time::{Duration, Instant};

use inventory_gateway::domain::SystemKind;
use serde_json::{json, Value};

use crate::helpers::{generated_fleets, spawn_stack, StackOptions, TestStack};

const SHARED: &str = "shared-node-01";

/// OneView and OME both hold `SHARED` (their first server); fast, bounded retries; breakers
/// that do not open (each test is about the lookup's reasoning, not the breaker).
async fn two_holder_stack(cache: &str) -> TestStack {
    let mut fleets = generated_fleets(5);
    for kind in [SystemKind::Oneview, SystemKind::Ome] {
        if let Some(first) = fleets.get_mut(&kind).and_then(|f| f.first_mut()) {
            first.name = SHARED.into();
        }
    }
    spawn_stack(StackOptions {
        fleets,
        system_extra: "timeout = \"300ms\"".into(),
        server_extra: "lookup_timeout = \"2s\"".into(),
        extra: format!(
            "[retry]\nmax_attempts = 2\nbase_delay = \"10ms\"\nmax_delay = \"20ms\"\n\
             [server.rate_limit]\nenabled = false\n\
             [breaker]\nconsecutive_failures = 1000\nmin_calls = 1000\n{cache}"
        ),
        ..Default::default()
    })
    .await
}

async fn fail_ome(stack: &TestStack) {
    stack
        .set_faults(
            SystemKind::Ome,
            json!({"error_rate": 1.0, "error_status": 500}),
        )
        .await;
}

fn candidate_systems(body: &Value) -> Vec<String> {
    let mut systems: Vec<String> = body["candidates"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x["system_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    systems.sort();
    systems
}

async fn expect_409_both(stack: &TestStack, path: &str) {
    let resp = stack.get(path).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 409, "{path}: {body}");
    assert_eq!(
        candidate_systems(&body),
        ["ome-sim", "oneview-sim"],
        "{path}"
    );
}

#[tokio::test]
async fn a_name_held_by_two_systems_stays_409_while_one_fails_even_with_refresh() {
    let stack = two_holder_stack("").await;
    let path = format!("/servers/{SHARED}");
    expect_409_both(&stack, &path).await;

    fail_ome(&stack).await;
    // Before: 200 with OneView's server, and the owner short cut kept it so.
    expect_409_both(&stack, &path).await;
    expect_409_both(&stack, &format!("{path}?refresh=true")).await;

    // A vendor hint is the caller's choice: OneView's server, verified as far as asked.
    let resp = stack.get(&format!("{path}?vendor=hpe")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-unverified").is_none());
    let record: Value = resp.json().await.expect("json");
    assert_eq!(record["unverified"], json!([]));

    stack.set_faults(SystemKind::Ome, json!({})).await;
    expect_409_both(&stack, &format!("{path}?refresh=true")).await;
    expect_409_both(&stack, &path).await;
    stack.stop().await;
}

#[tokio::test]
async fn an_answer_that_could_not_hear_from_every_system_says_which() {
    let stack = two_holder_stack("").await;
    let unique = stack.server_name(SystemKind::Oneview, 1).await;
    let path = format!("/servers/{unique}");
    fail_ome(&stack).await;
    for x_cache in ["miss", "hit"] {
        let resp = stack.get(&path).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-cache"], x_cache);
        assert_eq!(resp.headers()["x-unverified"], "ome-sim");
        let record: Value = resp.json().await.expect("json");
        assert_eq!(record["system_name"], json!("oneview-sim"));
        assert_eq!(record["unverified"], json!(["ome-sim"]));
    }
    stack.set_faults(SystemKind::Ome, json!({})).await;
    // refresh asks every system again: now verified.
    let resp = stack.get(&format!("{path}?refresh=true")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-unverified").is_none());
    let record: Value = resp.json().await.expect("json");
    assert_eq!(record["unverified"], json!([]));
    stack.stop().await;
}

#[tokio::test]
async fn an_answer_that_missed_a_holder_becomes_409_when_its_ttl_runs_out() {
    let stack = two_holder_stack("[cache]\nttl = \"300ms\"\nnegative_ttl = \"300ms\"\n").await;
    let path = format!("/servers/{SHARED}");
    // The first lookup meets OME failing: OneView's server, marked unverified.
    fail_ome(&stack).await;
    let resp = stack.get(&path).await;
    assert_eq!(resp.status(), 200);
    let record: Value = resp.json().await.expect("json");
    assert_eq!(record["unverified"], json!(["ome-sim"]));
    stack.set_faults(SystemKind::Ome, json!({})).await;

    // Once the answer is no longer fresh, the next lookup asks every system (before: only the
    // remembered owner, so the 200 stayed for owner_ttl).
    let started = Instant::now();
    loop {
        let resp = stack.get(&path).await;
        if resp.status() == 200 && resp.headers()["x-cache"] == "hit" {
            assert!(started.elapsed() < Duration::from_secs(30), "never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 409, "{body}");
        assert_eq!(candidate_systems(&body), ["ome-sim", "oneview-sim"]);
        break;
    }
    // And it stays so (remembered holders), also on the next expiry.
    fail_ome(&stack).await;
    expect_409_both(&stack, &path).await;
    stack.stop().await;
}

#[tokio::test]
async fn a_stale_record_lists_the_systems_it_could_not_hear_from() {
    let stack =
        two_holder_stack("[cache]\nttl = \"100ms\"\nnegative_ttl = \"50ms\"\nmax_stale = \"1h\"\n")
            .await;
    let unique = stack.server_name(SystemKind::Oneview, 2).await;
    let path = format!("/servers/{unique}");
    let resp = stack.get(&path).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-unverified").is_none());
    // Both OneView (the owner) and OME fail; UCSM still answers "not here".
    for kind in [SystemKind::Oneview, SystemKind::Ome] {
        stack
            .set_faults(kind, json!({"error_rate": 1.0, "error_status": 500}))
            .await;
    }
    let started = Instant::now();
    let stale = loop {
        let resp = stack.get(&path).await;
        assert_eq!(resp.status(), 200);
        if resp.headers()["x-cache"] == "stale" {
            assert_eq!(resp.headers()["x-unverified"], "ome-sim");
            break resp.json::<Value>().await.expect("json");
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never stale");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stale["stale"], json!(true));
    assert_eq!(stale["unverified"], json!(["ome-sim"]));
    stack.stop().await;
}

#[tokio::test]
async fn a_repeat_asks_only_the_systems_that_have_not_said_not_here() {
    let stack = two_holder_stack("").await;
    // Log every system in, so the counters below show only lookups.
    let resp = stack.get("/servers/warm-up-unknown").await;
    assert_eq!(resp.status(), 404);
    fail_ome(&stack).await;
    let path = "/servers/nowhere-to-be-found";
    // OME cannot be asked, so "not found" cannot be claimed.
    assert_eq!(stack.get(path).await.status(), 502);
    stack.reset_all().await;
    fail_ome(&stack).await;
    assert_eq!(stack.get(path).await.status(), 502);
    assert_eq!(stack.total_calls(SystemKind::Oneview).await, 0, "said no");
    assert_eq!(stack.total_calls(SystemKind::Ucsm).await, 0, "said no");
    assert!(stack.total_calls(SystemKind::Ome).await > 0, "asked again");
    stack.stop().await;
}

#[tokio::test]
async fn a_vendor_hinted_answer_never_spares_the_fan_out() {
    let stack = two_holder_stack("").await;
    let path = format!("/servers/{SHARED}");
    // First the hinted lookup: OneView's server, as far as the HPE systems go.
    let resp = stack.get(&format!("{path}?vendor=hpe")).await;
    assert_eq!(resp.status(), 200);
    // Before: that answer set the owner short cut, and the un-hinted lookup asked OneView alone
    // and answered 200 verified for a name OME also holds.
    expect_409_both(&stack, &path).await;
    stack.stop().await;
}

#[tokio::test]
async fn an_answer_from_the_remembered_owner_alone_is_unverified() {
    // The record is gone after max_stale; the owner is remembered for owner_ttl (24 h).
    let stack = two_holder_stack(
        "[cache]\nttl = \"50ms\"\nnegative_ttl = \"50ms\"\nmax_stale = \"100ms\"\n",
    )
    .await;
    let unique = stack.server_name(SystemKind::Oneview, 3).await;
    let path = format!("/servers/{unique}");
    let resp = stack.get(&path).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-unverified").is_none());
    // Nothing to observe from outside but the clock: the record must have outlived max_stale
    // and the "not here" answers negative_ttl.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stack.reset_all().await;
    let resp = stack.get(&path).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cache"], "miss");
    let record: Value = resp.json().await.expect("json");
    assert_eq!(record["system_name"], json!("oneview-sim"));
    // Only the owner was asked (the short cut), so the answer cannot claim the others: before,
    // it said `unverified: []` and a second holder added since would never be seen.
    assert_eq!(stack.total_calls(SystemKind::Ome).await, 0, "short cut");
    let mut unverified: Vec<String> = serde_json::from_value(record["unverified"].clone()).unwrap();
    unverified.sort();
    assert_eq!(
        unverified,
        ["intersight-sim", "ome-sim", "ucs-central-sim", "ucsm-sim"]
    );
    stack.stop().await;
}
