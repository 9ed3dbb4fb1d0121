use serde_json::Value;

use crate::helpers::{bearer_client, spawn_stack, StackOptions, ADMIN_TOKEN, READ_TOKEN};

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

fn client_with_authorization(value: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(value).expect("valid header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client builds")
}

/// Defect 5: the limiter keyed on the raw text after `"Bearer "` while auth trimmed and split,
/// so each of these spellings authenticated as the same token with a fresh bucket.
#[tokio::test]
async fn every_spelling_of_a_token_draws_on_that_tokens_bucket() {
    let stack = spawn_stack(StackOptions {
        extra: "[server.rate_limit]\nrequests_per_second = 0.001\nburst = 4\n".into(),
        ..Default::default()
    })
    .await;
    let spellings = [
        format!("Bearer {READ_TOKEN}"),
        format!("bearer {READ_TOKEN}"),
        format!("Bearer  {READ_TOKEN}"),
        format!("BEARER \t{READ_TOKEN} "),
    ];
    for (i, spelling) in spellings.iter().enumerate() {
        let resp = client_with_authorization(spelling)
            .get(format!("{}/vendors", stack.gateway))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200, "{spelling:?} authenticates");
        assert_eq!(
            resp.headers()["x-ratelimit-remaining"],
            (3 - i).to_string().as_str(),
            "{spelling:?} shares the token's bucket"
        );
    }
    for spelling in &spellings {
        let resp = client_with_authorization(spelling)
            .get(format!("{}/vendors", stack.gateway))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 429, "{spelling:?} is over the shared budget");
    }
    // Not a token68 (RFC 6750): refused, never taken for a token with its own bucket.
    for junk in [
        format!("Bearer {READ_TOKEN} extra"),
        format!("Bearer{READ_TOKEN}"),
        "Bearer ".to_owned(),
        format!("Basic {READ_TOKEN}"),
    ] {
        let resp = client_with_authorization(&junk)
            .get(format!("{}/servers/x", stack.gateway))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 401, "{junk:?}");
    }
    stack.stop().await;
}

/// Defect 5: invalid tokens were never rate limited (each got a fresh bucket), so tokens could
/// be guessed at line rate. Now a peer's failures are limited, and a valid caller is not.
#[tokio::test]
async fn guessing_tokens_is_limited_per_peer_and_valid_callers_are_unaffected() {
    let stack = spawn_stack(StackOptions {
        extra: "[server.rate_limit]\nfailed_auth_per_second = 0.001\nfailed_auth_burst = 3\n"
            .into(),
        ..Default::default()
    })
    .await;
    let url = format!("{}/servers/anything", stack.gateway);
    for i in 0..3 {
        let resp = bearer_client(&format!("guess-{i}-0123456789abcdef"))
            .get(&url)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 401, "guess {i}");
    }
    let resp = bearer_client("guess-3-0123456789abcdef")
        .get(&url)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.expect("problem");
    assert_eq!(body["type"], "urn:inventory-gateway:problem:rate-limited");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("failed authentication")),
        "{body}"
    );
    // No token at all from the same peer: also a failed attempt, also limited.
    let resp = reqwest::get(&url).await.expect("answer");
    assert_eq!(resp.status(), 429);

    // A valid token, from the very same address, is served.
    assert_eq!(stack.get("/vendors").await.status(), 200);
    let admin = bearer_client(ADMIN_TOKEN)
        .get(format!("{}/vendors", stack.gateway))
        .send()
        .await
        .expect("answer");
    assert_eq!(admin.status(), 200);

    let metrics = stack.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics
            .contains("inventory_gateway_http_refusals_total{reason=\"auth_failures_limited\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("inventory_gateway_http_refusals_total{reason=\"invalid_token\"} 3"),
        "{metrics}"
    );
    stack.stop().await;
}
