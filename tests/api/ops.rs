//! Operations surface against the real app: auth, OpenAPI document and its examples, metrics,
//! health and readiness, request limits.

use std::time::{Duration, Instant};

use inventory_gateway::demo::{self, FleetSpec};
use inventory_gateway::domain::SystemKind;
use inventory_gateway::http::openapi;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    bearer_client, spawn_stack, vendor_param, StackOptions, TestStack, ADMIN_TOKEN, KINDS,
};

async fn get_with(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.expect("gateway answers")
}

fn first_name(stack: &TestStack, kind: SystemKind) -> String {
    stack.sim(kind).shared.fleet()[0].name.clone()
}

#[tokio::test]
async fn tokens_are_required_checked_and_scoped() {
    let stack = spawn_stack(StackOptions::default()).await;
    let name = first_name(&stack, SystemKind::Oneview);
    let url = format!("{}/servers/{name}", stack.gateway);
    let anonymous = reqwest::Client::new();

    let resp = get_with(&anonymous, url.clone()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"inventory-gateway\""
    );
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "urn:inventory-gateway:problem:unauthorized");
    assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    let resp = get_with(&bearer_client("not-a-token-anyone-knows"), url.clone()).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The default (read) token reads, but may not purge.
    assert_eq!(stack.get(&format!("/servers/{name}")).await.status(), 200);
    let purge = format!("{}/servers/{name}/cache", stack.gateway);
    let resp = stack.client.delete(&purge).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // Admin purges, and admin includes read.
    let admin = bearer_client(ADMIN_TOKEN);
    assert_eq!(admin.delete(&purge).send().await.unwrap().status(), 204);
    let resp = get_with(&admin, url).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cache"], "miss", "the purge took effect");

    // Open by the default config: probes, metrics, the spec and the UI.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api-docs/openapi.json",
        "/swagger-ui/",
    ] {
        let resp = get_with(&anonymous, format!("{}{path}", stack.gateway)).await;
        assert_eq!(resp.status(), 200, "{path}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn closed_probes_and_disabled_auth_follow_the_config() {
    let closed = spawn_stack(StackOptions {
        auth_extra: "open_health = false\nopen_metrics = false\n".into(),
        ..Default::default()
    })
    .await;
    let anonymous = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = get_with(&anonymous, format!("{}{path}", closed.gateway)).await;
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(closed.get(path).await.status(), 200, "{path} with a token");
    }
    closed.stop().await;

    // Auth off only when written down (`[auth] enabled = false`).
    let open = spawn_stack(StackOptions {
        auth: false,
        ..Default::default()
    })
    .await;
    let name = first_name(&open, SystemKind::Ucsm);
    let resp = get_with(&anonymous, format!("{}/servers/{name}", open.gateway)).await;
    assert_eq!(resp.status(), 200);
    open.stop().await;
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one_and_its_examples_are_real() {
    let fleets = demo::fleets(&FleetSpec {
        seed: 1,
        servers: 50,
        redfish_bmcs: 0,
        inventory: None,
    })
    .unwrap();
    let stack = spawn_stack(StackOptions {
        fleets,
        ..Default::default()
    })
    .await;
    let served: Value = stack
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let committed: Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    assert!(
        served == committed,
        "/api-docs/openapi.json differs from openapi/openapi.json"
    );

    // Each example is what the gateway answers for that server today (but for fetched_at).
    for text in [
        openapi::EXAMPLE_HPE,
        openapi::EXAMPLE_CISCO,
        openapi::EXAMPLE_CISCO_CENTRAL,
        openapi::EXAMPLE_DELL,
        openapi::EXAMPLE_INTERSIGHT,
    ] {
        let mut example: Value = serde_json::from_str(text).unwrap();
        let name = example["name"].as_str().unwrap().to_owned();
        let resp = stack
            .get(&format!(
                "/servers/{name}?vendor={}",
                example["vendor"].as_str().unwrap()
            ))
            .await;
        assert_eq!(resp.status(), 200, "{name}");
        let mut live: Value = resp.json().await.unwrap();
        live["fetched_at"] = Value::Null;
        example["fetched_at"] = Value::Null;
        assert_eq!(live, example, "openapi/examples for {name} is out of date");
    }

    // The hand-written schemas of /vendors, /readyz and /healthz/deep have exactly the served
    // fields.
    let schemas = &committed["components"]["schemas"];
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let vendors: Value = stack.get("/vendors").await.json().await.unwrap();
    // The Central (looked up above) is the one system with `domains`.
    let central = vendors["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "ucs-central")
        .unwrap();
    // `credentials` is served only by systems that read BMCs (checked in tests/api/redfish.rs).
    let mut served = keys(central);
    served.push("credentials".into());
    served.sort();
    assert_eq!(served, keys(&schemas["SystemStatusSchema"]["properties"]));
    assert_eq!(
        keys(&central["domains"][0]),
        keys(&schemas["DomainStatusSchema"]["properties"])
    );
    let ready: Value = stack.get("/readyz").await.json().await.unwrap();
    assert_eq!(keys(&ready), keys(&schemas["ReadyResponse"]["properties"]));
    let deep: Value = stack.get("/healthz/deep").await.json().await.unwrap();
    assert_eq!(
        keys(&deep),
        keys(&schemas["DeepHealthResponse"]["properties"])
    );
    assert_eq!(
        keys(&deep["systems"][0]),
        keys(&schemas["ReadySystem"]["properties"])
    );
    stack.stop().await;
}

#[tokio::test]
async fn metrics_count_lookups_per_system_by_route_template() {
    let stack = spawn_stack(StackOptions::default()).await;
    for kind in KINDS {
        let name = first_name(&stack, kind);
        let q = format!("/servers/{name}?vendor={}", vendor_param(kind));
        assert_eq!(stack.get(&q).await.status(), 200);
        assert_eq!(stack.get(&q).await.status(), 200);
    }
    assert_eq!(stack.get("/servers/no-such-server-xyz").await.status(), 404);
    assert_eq!(stack.get("/no/such/route/abc").await.status(), 404);
    let text = stack.get("/metrics").await.text().await.unwrap();

    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    };
    assert!(
        value(
            r#"inventory_gateway_http_requests_total{method="GET",route="/servers/{name}",status="200"}"#
        ) >= 6.0
    );
    assert_eq!(
        value(r#"inventory_gateway_cache_requests_total{outcome="hit"}"#),
        KINDS.len() as f64
    );
    for system in ["oneview-sim", "ucsm-sim", "ucs-central-sim", "ome-sim"] {
        assert_eq!(
            value(&format!(
                r#"inventory_gateway_circuit_breaker_state{{state="closed",system="{system}"}}"#
            )),
            1.0
        );
        assert!(
            text.contains(&format!(
                r#"operation="login",outcome="ok",system="{system}"}} 1"#
            )),
            "{system} login"
        );
        assert!(
            text.lines().any(|l| l
                .starts_with("inventory_gateway_upstream_request_duration_seconds_count{")
                && l.contains(&format!("system=\"{system}\""))),
            "{system} upstream latency"
        );
    }
    // UCS Central's domains: a breaker and upstream series of their own.
    assert!(text.contains(
        r#"inventory_gateway_circuit_breaker_state{state="closed",system="ucs-central-sim/127.0.1."#
    ));
    assert!(text.contains(r#"operation="login",outcome="ok",system="ucs-central-sim/127.0.1."#));
    // Raw paths never become label values.
    assert!(!text.contains("no-such-server-xyz"));
    assert!(!text.contains("/no/such/route"));
    assert!(text.contains(r#"route="unmatched""#));
    #[cfg(target_os = "linux")]
    assert!(text.contains("process_resident_memory_bytes"));
    stack.stop().await;
}

/// Defect 3: readiness used to follow the breakers, so a total outage took every replica out
/// of service exactly while it was serving stale records.
#[tokio::test]
async fn readiness_stays_200_through_a_total_outage_while_stale_records_are_served() {
    let stack = spawn_stack(StackOptions {
        extra: "[cache]\nttl = \"1s\"\n[retry]\nmax_attempts = 1\n\
                [breaker]\nconsecutive_failures = 1\nopen_for = \"1h\"\n"
            .into(),
        ..Default::default()
    })
    .await;
    let names: Vec<String> = KINDS.iter().map(|&k| first_name(&stack, k)).collect();
    for name in &names {
        assert_eq!(stack.get(&format!("/servers/{name}")).await.status(), 200);
    }
    let deep: Value = stack.get("/healthz/deep").await.json().await.unwrap();
    assert_eq!(deep["status"], "ok");
    for kind in KINDS {
        stack
            .set_faults(
                kind,
                serde_json::json!({"error_rate": 1.0, "error_status": 500}),
            )
            .await;
    }
    // Fresh records would be served from the cache without asking: wait them out (observed,
    // not slept for a guessed time).
    for name in &names {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resp = stack.get(&format!("/servers/{name}?refresh=false")).await;
            if resp.headers()["x-cache"] == "stale" {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["stale"], true);
                break;
            }
            assert!(Instant::now() < deadline, "{name} never went stale");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Nothing cached for this one: every breaker is open, so 503 (not a readiness matter).
    assert_eq!(stack.get("/servers/never-cached-name").await.status(), 503);
    let deep: Value = stack.get("/healthz/deep").await.json().await.unwrap();
    assert_eq!(deep["status"], "down", "{deep}");
    assert!(deep["systems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["breaker"] == "open"));
    let vendors: Value = stack.get("/vendors").await.json().await.unwrap();
    assert!(vendors["systems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["breaker"] == "open"));

    let resp = stack.get("/readyz").await;
    assert_eq!(
        resp.status(),
        200,
        "every breaker open must not mean not-ready"
    );
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(stack.get("/healthz").await.status(), 200);

    // Shutting down is the one thing that makes the process not ready.
    stack.readiness.begin_shutdown();
    let resp = stack.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["status"], "shutting_down");
    // ...while it still serves what it can until the drain.
    let resp = stack.get(&format!("/servers/{}", names[0])).await;
    assert_eq!(resp.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused() {
    let stack = spawn_stack(StackOptions {
        extra: "[server.limits]\nmax_header_bytes = 2048\nmax_body_bytes = 64\n".into(),
        ..Default::default()
    })
    .await;
    let name = first_name(&stack, SystemKind::Ome);
    let url = format!("{}/servers/{name}", stack.gateway);
    let resp = stack
        .client
        .get(&url)
        .header("x-padding", "p".repeat(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = stack
        .client
        .get(&url)
        .body("b".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let resp = stack
        .client
        .get(&url)
        .body("b".repeat(10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_cut_off_after_the_request_timeout() {
    let stack = spawn_stack(StackOptions {
        extra: "[server.limits]\nclient_request_timeout = \"400ms\"\nkeep_alive = \"1s\"\n".into(),
        ..Default::default()
    })
    .await;
    let addr = stack.gateway.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Half a request head, then nothing (slowloris).
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    assert!(
        read.is_ok(),
        "the server kept a stalled connection open for 10 s"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    stack.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_time() {
    // A generous head timeout, so that only keep-alive can close the connection, even on a
    // loaded machine.
    let stack = spawn_stack(StackOptions {
        extra: "[server.limits]\nclient_request_timeout = \"10s\"\nkeep_alive = \"1s\"\n".into(),
        ..Default::default()
    })
    .await;
    let addr = stack.gateway.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(9), conn.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "an idle kept-alive connection stayed open for 9 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{read:?}: {answer}");
    stack.stop().await;
}
