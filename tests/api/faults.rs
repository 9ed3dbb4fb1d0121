//! The fault matrix: for each system and each simulator fault, the gateway answers correctly or
//! with the documented error, retries stop at their bound, the breaker opens and recovers, and
//! stale-if-error serves and then expires.

use inventory_gateway::domain::SystemKind;
use serde_json::{json, Value};

use crate::helpers::{login_key, spawn_stack, vendor_param, StackOptions, TestStack, KINDS};

/// The call each system's lookup makes first (after login): where query faults are aimed.
fn query_key(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Oneview => "GET /rest/server-profiles",
        SystemKind::Ucsm | SystemKind::UcsCentral => "configResolveClass",
        SystemKind::Ome => "GET /api/ProfileService/Profiles",
        SystemKind::Intersight => "GET /api/v1/compute/PhysicalSummaries",
        SystemKind::Redfish => "GET /redfish/v1/Systems",
    }
}

/// Retries fast and bounded; no inbound limit (these tests poll and burst on purpose).
const RETRY: &str = "[retry]\nmax_attempts = 3\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n\
                     [server.rate_limit]\nenabled = false\n";

async fn fault_stack(extra: &str) -> TestStack {
    spawn_stack(StackOptions {
        system_extra: "timeout = \"300ms\"".into(),
        server_extra: "lookup_timeout = \"2s\"".into(),
        extra: format!("{RETRY}{extra}"),
        ..Default::default()
    })
    .await
}

/// Logs in (one good lookup) so that later counters show only the faulted calls.
async fn warm(stack: &TestStack, kind: SystemKind) -> Vec<String> {
    let names: Vec<String> = stack
        .inventory(kind)
        .await
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    let resp = stack.get(&hinted(kind, &names[0])).await;
    assert_eq!(resp.status(), 200, "{kind} warm-up");
    names
}

fn hinted(kind: SystemKind, name: &str) -> String {
    format!("/servers/{name}?vendor={}", vendor_param(kind))
}

async fn calls_to(stack: &TestStack, kind: SystemKind, key: &str) -> u64 {
    stack.counters(kind).await["endpoints"][key]
        .as_u64()
        .unwrap_or(0)
}

async fn status_and_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn added_latency_still_gives_the_right_answer() {
    let stack = fault_stack("").await;
    for kind in KINDS {
        let names = warm(&stack, kind).await;
        stack
            .set_faults(kind, json!({"latency_ms": 40, "jitter_ms": 30}))
            .await;
        let resp = stack.get(&hinted(kind, &names[2])).await;
        let (status, body) = status_and_body(resp).await;
        assert_eq!(status, 200, "{kind}: {body}");
        let expected = &stack.inventory(kind).await[2];
        assert_eq!(body["nics"][0]["mac"], expected["nics"][0]["mac"], "{kind}");
        assert_eq!(body["bmc"]["address"], expected["bmc_address"], "{kind}");
    }
    stack.stop().await;
}

/// What one lookup met when `fault` was aimed at a warmed-up system's query call.
struct Outcome {
    status: u16,
    body: Value,
    retry_after: Option<String>,
    /// Query calls the lookup made (attempts).
    attempts: u64,
}

/// Sets `fault` (the endpoint is filled in) on each system in turn, makes one hinted lookup of
/// a never-cached name, and hands back what happened for each system.
async fn each_system_under(fault: Value) -> Vec<(SystemKind, Outcome)> {
    let stack = fault_stack("").await;
    let mut outcomes = Vec::new();
    for kind in KINDS {
        let names = warm(&stack, kind).await;
        stack.sim_post(kind, "reset").await;
        let mut fault = fault.clone();
        fault["endpoint"] = json!(query_key(kind));
        stack.set_faults(kind, fault).await;
        let resp = stack.get(&hinted(kind, &names[3])).await;
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) = status_and_body(resp).await;
        // Clear the fault (not the counters) so that the next system starts healthy.
        stack.set_faults(kind, json!({})).await;
        let attempts = calls_to(&stack, kind, query_key(kind)).await;
        outcomes.push((
            kind,
            Outcome {
                status,
                body,
                retry_after,
                attempts,
            },
        ));
    }
    stack.stop().await;
    outcomes
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_bound_then_502() {
    for (kind, o) in each_system_under(json!({"error_rate": 1.0, "error_status": 500})).await {
        assert_eq!(o.status, 502, "{kind}: {}", o.body);
        let detail = o.body["detail"].as_str().unwrap_or("");
        assert!(detail.contains("500"), "{kind}: {}", o.body);
        assert_eq!(o.attempts, 3, "{kind}");
    }
}

#[tokio::test]
async fn client_errors_other_than_429_are_not_retried() {
    for (kind, o) in each_system_under(json!({"error_rate": 1.0, "error_status": 400})).await {
        assert_eq!(o.status, 502, "{kind}: {}", o.body);
        assert_eq!(o.attempts, 1, "{kind}");
    }
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_within_the_deadline() {
    let fault = json!({"error_rate": 1.0, "error_status": 429, "retry_after_s": 1});
    for (kind, o) in each_system_under(fault).await {
        // Throttled is "come back later" (503 + Retry-After), not a broken system (502).
        assert_eq!(o.status, 503, "{kind}: {}", o.body);
        assert_eq!(o.retry_after.as_deref(), Some("1"), "{kind}");
        // A 1 s wait fits once into the 2 s deadline; a second wait would overrun it.
        assert_eq!(o.attempts, 2, "{kind}");
    }
}

#[tokio::test]
async fn a_hung_system_is_a_504_within_the_deadline() {
    for (kind, o) in each_system_under(json!({"hang": true})).await {
        assert_eq!(o.status, 504, "{kind}: {}", o.body);
    }
}

#[tokio::test]
async fn dropped_connections_are_retried_then_502() {
    for (kind, o) in each_system_under(json!({"drop_rate": 1.0})).await {
        assert_eq!(o.status, 502, "{kind}: {}", o.body);
        assert_eq!(o.attempts, 3, "{kind}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_502_and_not_retried() {
    for (kind, o) in each_system_under(json!({"malformed_rate": 1.0})).await {
        assert_eq!(o.status, 502, "{kind}: {}", o.body);
        assert_eq!(o.attempts, 1, "{kind}");
    }
}

#[tokio::test]
async fn session_expiry_set_as_a_fault_costs_one_login() {
    let stack = fault_stack("").await;
    for kind in KINDS {
        let Some(login) = login_key(kind) else {
            continue;
        };
        let names = warm(&stack, kind).await;
        stack.sim_post(kind, "reset").await;
        stack
            .set_faults(kind, json!({"expire_sessions": true}))
            .await;
        assert_eq!(stack.get(&hinted(kind, &names[4])).await.status(), 200);
        assert_eq!(calls_to(&stack, kind, login).await, 1, "{kind}");
    }
    stack.stop().await;
}

async fn breaker_of(stack: &TestStack, system: &str) -> String {
    let v: Value = stack.get("/vendors").await.json().await.expect("json");
    v["systems"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == json!(system)))
        .and_then(|x| x["breaker"].as_str())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_the_first_healthy_probe_closes_it() {
    let stack = fault_stack("[breaker]\nconsecutive_failures = 3\nopen_for = \"300ms\"\n").await;
    for kind in KINDS {
        let system = format!("{kind}-sim");
        let names = warm(&stack, kind).await;
        stack
            .set_faults(kind, json!({"error_rate": 1.0, "error_status": 503}))
            .await;
        for name in &names[1..4] {
            assert_eq!(stack.get(&hinted(kind, name)).await.status(), 502, "{kind}");
        }
        assert_eq!(breaker_of(&stack, &system).await, "open");
        stack.sim_post(kind, "reset").await;
        let resp = stack.get(&hinted(kind, &names[5])).await;
        assert!(resp.headers().contains_key("retry-after"), "{kind}");
        let (status, body) = status_and_body(resp).await;
        assert_eq!(status, 503, "{kind}: {body}");
        assert_eq!(
            stack.total_calls(kind).await,
            0,
            "{kind}: open = no upstream call"
        );
        // The other systems keep the gateway ready.
        assert_eq!(stack.get("/readyz").await.status(), 200);

        // Cool-down elapses; /vendors shows it as half-open before any probe is sent.
        while breaker_of(&stack, &system).await != "half_open" {
            tokio::task::yield_now().await;
        }
        assert_eq!(stack.get(&hinted(kind, &names[6])).await.status(), 200);
        assert_eq!(breaker_of(&stack, &system).await, "closed");
        assert_eq!(stack.get(&hinted(kind, &names[7])).await.status(), 200);
    }
    stack.stop().await;
}

#[tokio::test]
async fn stale_if_error_serves_the_last_good_record_then_expires() {
    let stack = fault_stack(
        "[cache]\nttl = \"100ms\"\nmax_stale = \"1500ms\"\n[breaker]\nconsecutive_failures = 1000\nmin_calls = 1000\n",
    )
    .await;
    for kind in KINDS {
        let names = warm(&stack, kind).await;
        let path = hinted(kind, &names[0]);
        let good: Value = stack.get(&path).await.json().await.expect("json");
        stack
            .set_faults(kind, json!({"error_rate": 1.0, "error_status": 500}))
            .await;
        // Fresh hits until the ttl passes, then stale answers from the failing system.
        let stale = loop {
            let resp = stack.get(&path).await;
            assert_eq!(resp.status(), 200, "{kind}");
            match resp.headers()["x-cache"].to_str().expect("ascii") {
                "hit" => continue,
                "stale" => break resp.json::<Value>().await.expect("json"),
                other => panic!("{kind}: unexpected X-Cache {other}"),
            }
        };
        assert_eq!(stale["stale"], json!(true));
        assert_eq!(stale["nics"], good["nics"]);
        assert_eq!(stale["bmc"], good["bmc"]);
        // Past max_stale the error comes through.
        let status = loop {
            let resp = stack.get(&path).await;
            if resp.status() != 200 {
                break resp.status().as_u16();
            }
            assert_eq!(resp.headers()["x-cache"], "stale");
        };
        assert_eq!(status, 502, "{kind}");
        stack.sim_post(kind, "reset").await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn concurrent_identical_cold_requests_make_one_upstream_lookup() {
    let stack = fault_stack("").await;
    for kind in KINDS {
        let names = warm(&stack, kind).await;
        stack.sim_post(kind, "reset").await;
        // Slow the system down so that all requests arrive while the first is in flight.
        stack.set_faults(kind, json!({"latency_ms": 100})).await;
        let path = hinted(kind, &names[9]);
        let answers = futures::future::join_all((0..150).map(|_| stack.get(&path))).await;
        for a in &answers {
            assert_eq!(a.status(), 200, "{kind}");
        }
        assert_eq!(calls_to(&stack, kind, query_key(kind)).await, 1, "{kind}");
    }
    stack.stop().await;
}

/// With the default breaker, a system that is healthy again serves cold lookups within about a
/// second of its recovery (before: `open_for` was 30 s and two probes were needed).
#[tokio::test]
async fn after_a_short_outage_cold_lookups_succeed_again_within_seconds() {
    let stack = fault_stack("").await;
    let kind = SystemKind::Ome;
    let system = format!("{kind}-sim");
    let names = warm(&stack, kind).await;
    stack
        .set_faults(kind, json!({"error_rate": 1.0, "error_status": 503}))
        .await;
    let mut i = 1;
    while breaker_of(&stack, &system).await != "open" {
        assert!(i < 10, "the default breaker opens after 5 failures");
        stack.get(&hinted(kind, &names[i])).await;
        i += 1;
    }
    stack.set_faults(kind, json!({})).await;
    let healthy_at = std::time::Instant::now();
    let mut name = names[i..].iter().cycle();
    loop {
        let resp = stack.get(&hinted(kind, name.next().expect("names"))).await;
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 503);
        assert!(
            healthy_at.elapsed() < std::time::Duration::from_secs(10),
            "still refused 10 s after the system recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let recovered = healthy_at.elapsed();
    assert_eq!(breaker_of(&stack, &system).await, "closed");
    eprintln!(
        "breaker: first 200 {:.0} ms after the system was healthy again",
        recovered.as_secs_f64() * 1000.0
    );
    stack.stop().await;
}

/// A hanging system with a cached (expired) record: the caller gets the stale record after the
/// stale deadline, not after the whole lookup timeout, and it says whom it could not hear from.
#[tokio::test]
async fn a_hanging_system_gives_its_stale_answer_at_the_stale_deadline() {
    let stack = spawn_stack(StackOptions {
        // Production-like bounds: 10 s per request, 30 s per system answer.
        server_extra: "lookup_timeout = \"30s\"".into(),
        extra: "[server.rate_limit]\nenabled = false\n\
                [cache]\nttl = \"100ms\"\nstale_deadline = \"1s\"\n"
            .into(),
        ..Default::default()
    })
    .await;
    for kind in KINDS {
        let name = stack.server_name(kind, 0).await;
        for path in [hinted(kind, &name), format!("/servers/{name}")] {
            let resp = stack.get(&path).await;
            assert_eq!(resp.status(), 200, "{kind} {path}");
            stack.set_faults(kind, json!({"hang": true})).await;
            // Fresh hits until the ttl passes; the first lookup after it meets the hang.
            let (answer, waited) = loop {
                let started = std::time::Instant::now();
                let resp = stack.get(&path).await;
                if resp.headers()["x-cache"] != "hit" {
                    break (resp, started.elapsed());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            };
            assert_eq!(answer.status(), 200, "{kind} {path}");
            assert_eq!(answer.headers()["x-cache"], "stale", "{kind} {path}");
            let record: Value = answer.json().await.expect("json");
            assert_eq!(record["stale"], json!(true));
            assert_eq!(
                record["unverified"],
                json!([]),
                "{kind} {path}: the others said no"
            );
            assert!(
                waited < std::time::Duration::from_secs(8),
                "{kind} {path}: stale answer took {waited:?}"
            );
            eprintln!(
                "stale deadline: {kind} {path}: stale answer in {:.0} ms",
                waited.as_secs_f64() * 1000.0
            );
            stack.set_faults(kind, json!({})).await;
        }
    }
    stack.stop().await;
}
