use serde_json::Value;

use crate::helpers::{bearer_client, spawn_stack, StackOptions, ADMIN_TOKEN};

#[tokio::test]
async fn a_client_over_its_burst_gets_429_with_retry_after_and_others_do_not() {
    let stack = spawn_stack(StackOptions {
        // One request per 1000 s: nothing refills during the test, however slow the machine.
        extra: "[server.rate_limit]\nrequests_per_second = 0.001\nburst = 3\n".into(),
        ..Default::default()
    })
    .await;
    for expected_remaining in ["2", "1", "0"] {
        let resp = stack.get("/vendors").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "3");
        assert_eq!(resp.headers()["x-ratelimit-remaining"], expected_remaining);
    }
    let resp = stack.get("/servers/anything").await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("numeric Retry-After");
    assert!(retry_after >= 1);
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    assert!(resp.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.expect("problem");
    assert_eq!(body["status"], 429);
    assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    // Probes are never rate limited.
    assert_eq!(stack.get("/healthz").await.status(), 200);
    assert_eq!(stack.get("/readyz").await.status(), 200);

    // Another client (another bearer token) has its own budget.
    let other = bearer_client(ADMIN_TOKEN)
        .get(format!("{}/vendors", stack.gateway))
        .send()
        .await
        .expect("answer");
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["x-ratelimit-remaining"], "2");
    stack.stop().await;
}
