//! The controller's gateway client over real HTTP, against the real gateway and the simulators
//! (spawned in-process the same way as tests/api): found, 404, 502/503 with Retry-After, timeouts,
//! and an unreachable gateway, each classified as the reconcile loop needs.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{spawn_stack, StackOptions, TestStack};
use inventory_gateway::controller::gateway_client::{
    GatewayClient, GatewayClientConfig, GatewayError,
};
use inventory_gateway::domain::{ServerName, SystemKind, Vendor};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

const QUIET: &str = "[retry]\nmax_attempts = 1\n[server.rate_limit]\nenabled = false\n";

async fn stack(extra: &str) -> TestStack {
    stack_with_system_timeout("300ms", extra).await
}

async fn stack_with_system_timeout(timeout: &str, extra: &str) -> TestStack {
    spawn_stack(StackOptions {
        system_extra: format!("timeout = \"{timeout}\""),
        server_extra: "lookup_timeout = \"6s\"".into(),
        extra: format!("{QUIET}{extra}"),
        ..Default::default()
    })
    .await
}

fn client(stack: &TestStack, f: impl FnOnce(&mut GatewayClientConfig)) -> GatewayClient {
    let mut cfg = GatewayClientConfig::new(Url::parse(&stack.gateway).unwrap());
    // The gateway checks tokens; the controller reads with the read scope like any client.
    cfg.token = Some(SecretString::from(helpers::READ_TOKEN));
    cfg.timeout = Duration::from_secs(5);
    cfg.base_backoff = Duration::from_millis(20);
    f(&mut cfg);
    GatewayClient::new(cfg).unwrap()
}

async fn first_name(stack: &TestStack, kind: SystemKind) -> ServerName {
    let inv = stack.inventory(kind).await;
    ServerName::parse(inv[0]["name"].as_str().unwrap()).unwrap()
}

fn vendor(kind: SystemKind) -> Vendor {
    kind.vendor().unwrap_or(Vendor::Other)
}

#[tokio::test]
async fn finds_servers_of_every_vendor_with_and_without_a_hint() {
    let stack = stack("").await;
    let c = client(&stack, |_| {});
    for kind in helpers::KINDS {
        let name = first_name(&stack, kind).await;
        let hinted = c.server(&name, Some(vendor(kind))).await.unwrap();
        assert!(name.matches(&hinted.name), "{kind}");
        assert_eq!(hinted.system, kind);
        assert!(!hinted.nics.is_empty(), "{kind}");
        assert!(hinted.bmc.is_some(), "{kind}");
        // Lower-cased: the gateway matches names case-insensitively, as the old operator did.
        let lower = ServerName::parse(&name.folded()).unwrap();
        let fanned = c.server(&lower, None).await.unwrap();
        assert_eq!(fanned.system_id, hinted.system_id, "{kind}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn unknown_servers_are_permanent_and_name_the_systems_searched() {
    let stack = stack("").await;
    let c = client(&stack, |_| {});
    let name = ServerName::parse("no-such-server-42").unwrap();
    let err = c.server(&name, None).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    match &err {
        GatewayError::NotFound { searched, .. } => assert_eq!(searched.len(), 5, "{err}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let hinted = c.server(&name, Some(Vendor::Dell)).await.unwrap_err();
    match &hinted {
        GatewayError::NotFound { searched, .. } => {
            assert_eq!(searched.len(), 1, "{hinted}");
            assert!(hinted.to_string().contains(&searched[0]));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    stack.stop().await;
}

#[tokio::test]
async fn upstream_errors_are_transient_and_retried_a_bounded_number_of_times() {
    let stack = stack("[breaker]\nconsecutive_failures = 1000\nmin_calls = 1000\n").await;
    let kind = SystemKind::Ome;
    let inv = stack.inventory(kind).await;
    let names: Vec<ServerName> = inv
        .iter()
        .map(|s| ServerName::parse(s["name"].as_str().unwrap()).unwrap())
        .collect();
    let c = client(&stack, |c| c.max_attempts = 3);
    // Log in first, so that only the faulted lookups are counted below.
    c.server(&names[0], Some(vendor(kind))).await.unwrap();
    let profiles = || async {
        stack.counters(kind).await["endpoints"]["GET /api/ProfileService/Profiles"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = profiles().await;
    stack
        .set_faults(kind, json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    let err = c.server(&names[1], Some(vendor(kind))).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(
        matches!(err, GatewayError::Unavailable { status: 502, .. }),
        "{err:?}"
    );
    // Three gateway lookups, each one upstream call (gateway retries are off in this stack).
    assert_eq!(profiles().await - before, 3);
    stack.stop().await;
}

#[tokio::test]
async fn an_open_breaker_is_a_503_whose_retry_after_is_honoured() {
    let stack =
        stack("[breaker]\nconsecutive_failures = 2\nopen_for = \"800ms\"\nclose_after = 1\n").await;
    let kind = SystemKind::Oneview;
    let inv = stack.inventory(kind).await;
    let names: Vec<ServerName> = inv
        .iter()
        .map(|s| ServerName::parse(s["name"].as_str().unwrap()).unwrap())
        .collect();
    let once = client(&stack, |c| c.max_attempts = 1);
    stack
        .set_faults(kind, json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    for n in &names[0..2] {
        assert!(once.server(n, Some(Vendor::Hpe)).await.is_err());
    }
    stack.sim_post(kind, "reset").await;

    // Open: 503 with Retry-After, returned as is when the caller will not wait that long.
    let impatient = client(&stack, |c| {
        c.max_attempts = 3;
        c.max_wait = Duration::from_millis(100);
    });
    let err = impatient
        .server(&names[2], Some(Vendor::Hpe))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::Unavailable { status: 503, .. }),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    let retry_after = err.retry_after().expect("503 carries Retry-After");
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");

    // A patient client waits the Retry-After out, and the half-open probe succeeds.
    let patient = client(&stack, |c| {
        c.max_attempts = 3;
        c.max_wait = Duration::from_secs(3);
    });
    let started = Instant::now();
    let record = patient.server(&names[3], Some(Vendor::Hpe)).await.unwrap();
    assert!(names[3].matches(&record.name));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_upstream_timeout_is_a_transient_504() {
    let stack = stack("").await;
    let kind = SystemKind::Ucsm;
    let name = first_name(&stack, kind).await;
    stack
        .set_faults(
            kind,
            json!({"endpoint": "configResolveClass", "hang": true}),
        )
        .await;
    let c = client(&stack, |c| c.max_attempts = 1);
    let err = c.server(&name, Some(Vendor::Cisco)).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Unavailable { status: 504, .. }),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    stack.stop().await;
}

#[tokio::test]
async fn a_gateway_slower_than_the_timeout_is_a_transient_timeout() {
    // The gateway waits 1 s for the hung system; the client gives up after 150 ms.
    let stack = stack_with_system_timeout("1s", "").await;
    let kind = SystemKind::Ucsm;
    let name = first_name(&stack, kind).await;
    stack
        .set_faults(
            kind,
            json!({"endpoint": "configResolveClass", "hang": true}),
        )
        .await;
    let c = client(&stack, |c| {
        c.timeout = Duration::from_millis(150);
        c.max_attempts = 2;
    });
    let started = Instant::now();
    let err = c.server(&name, Some(Vendor::Cisco)).await.unwrap_err();
    assert_eq!(err, GatewayError::Timeout(Duration::from_millis(150)));
    assert!(!err.is_permanent());
    assert!(started.elapsed() < Duration::from_secs(2), "bounded");
    stack.stop().await;
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_transient_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg =
        GatewayClientConfig::new(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap());
    cfg.max_attempts = 2;
    cfg.base_backoff = Duration::from_millis(10);
    let c = GatewayClient::new(cfg).unwrap();
    let err = c
        .server(&ServerName::parse("x").unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Transport(_)), "{err:?}");
    assert!(!err.is_permanent());
}

/// Serves `body` as a 200 JSON answer to every request, on loopback (a gateway of the issue-11
/// contract, which names the systems that did not answer in `unverified`).
async fn canned_gateway(body: serde_json::Value) -> (Url, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let text = body.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = sock.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = sock.write_all(answer.as_bytes()).await;
        }
    });
    (url, task)
}

#[tokio::test]
async fn an_answer_with_unverified_systems_is_transient_and_names_them() {
    let stack = stack("").await;
    let name = first_name(&stack, SystemKind::Ome).await;
    // A real record from the real gateway, as the base of the canned answers.
    let mut record: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/servers/{name}", stack.gateway))
        .bearer_auth(helpers::READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stack.stop().await;

    record["unverified"] = json!(["oneview-1", "ucsm-1"]);
    let (url, task) = canned_gateway(record.clone()).await;
    let mut cfg = GatewayClientConfig::new(url);
    cfg.max_attempts = 3;
    let c = GatewayClient::new(cfg).unwrap();
    let err = c.server(&name, None).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    match &err {
        GatewayError::Unverified { systems, .. } => {
            assert_eq!(systems, &["oneview-1".to_owned(), "ucsm-1".to_owned()])
        }
        other => panic!("expected Unverified, got {other:?}"),
    }
    assert!(err.to_string().contains("oneview-1, ucsm-1"), "{err}");
    task.abort();

    // `[]`, and absent (older gateways), both mean every system answered.
    for unverified in [Some(json!([])), None] {
        let mut r = record.clone();
        match unverified {
            Some(v) => r["unverified"] = v,
            None => {
                r.as_object_mut().unwrap().remove("unverified");
            }
        }
        let (url, task) = canned_gateway(r).await;
        let c = GatewayClient::new(GatewayClientConfig::new(url)).unwrap();
        assert!(name.matches(&c.server(&name, None).await.unwrap().name));
        task.abort();
    }
}
