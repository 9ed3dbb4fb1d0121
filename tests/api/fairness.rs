//! One caller cannot starve the others: while token A floods unique unknown names, token B's
//! cold lookups of real servers keep close to their unloaded latency, and a caller over its own
//! queue gets a clear 429.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory_gateway::domain::SystemKind;
use serde_json::{json, Value};

use crate::helpers::{
    bearer_client, spawn_stack, StackOptions, TestStack, ADMIN_TOKEN, KINDS, READ_TOKEN,
};

/// Every upstream call takes 20 ms (sleep, not CPU, so the 2-core machine's load hardly moves
/// it); each system lets 8 calls be in flight (the shared outbound budget); the rate limit is
/// out of the way so that the in-flight budget is what a flood competes for.
async fn budget_stack(server_extra: &str) -> TestStack {
    let stack = spawn_stack(StackOptions {
        server_extra: format!("lookup_timeout = \"60s\"\n{server_extra}"),
        extra: "[server.rate_limit]\nenabled = false\n\
                [throttle]\nrequests_per_second = 100000\nburst = 100000\nmax_in_flight = 8\nmax_wait = \"60s\"\n"
            .into(),
        ..Default::default()
    })
    .await;
    for kind in KINDS {
        stack.set_faults(kind, json!({"latency_ms": 20})).await;
    }
    stack
}

/// Real names from every system, none looked up yet.
async fn real_names(stack: &TestStack) -> Vec<String> {
    let mut per_kind = Vec::new();
    for kind in KINDS {
        let names: Vec<String> = stack
            .inventory(kind)
            .await
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect();
        per_kind.push(names);
    }
    // Interleaved, so each batch asks every vendor's slowest path.
    (0..per_kind[0].len())
        .flat_map(|i| per_kind.iter().filter_map(move |n| n.get(i).cloned()))
        .collect()
}

/// Median latency of B's cold lookups of `names`, one after the other.
async fn median_cold_latency(stack: &TestStack, b: &reqwest::Client, names: &[String]) -> Duration {
    let mut samples = Vec::new();
    for name in names {
        let started = Instant::now();
        let resp = b
            .get(format!("{}/servers/{name}", stack.gateway))
            .send()
            .await
            .expect("gateway answers");
        let elapsed = started.elapsed();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["x-cache"], "miss", "{name}");
        samples.push(elapsed);
    }
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn a_flooding_token_does_not_slow_another_tokens_cold_lookups() {
    const FLOODERS: usize = 96;
    let stack = budget_stack("max_queued_per_caller = 256").await;
    let names = real_names(&stack).await;
    let b = bearer_client(ADMIN_TOKEN);
    let unloaded = median_cold_latency(&stack, &b, &names[0..6]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for worker in 0..FLOODERS {
        let (client, gateway) = (stack.client.clone(), stack.gateway.clone());
        let (stop, answered) = (stop.clone(), answered.clone());
        flood.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let url = format!("{gateway}/servers/flood-{worker}-{i}");
                if let Ok(resp) = client.get(url).send().await {
                    assert!(
                        [404, 429].contains(&resp.status().as_u16()),
                        "flood: {}",
                        resp.status()
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    // The flood is under way once its first answers are back (every worker is sending).
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < 2 * FLOODERS / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flood never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let loaded = median_cold_latency(&stack, &b, &names[6..12]).await;
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.expect("flood worker");
    }
    eprintln!(
        "fairness: B's cold lookup median unloaded {:.1} ms, during A's flood of {FLOODERS} \
         connections {:.1} ms ({:.2}x); A got {} answers",
        unloaded.as_secs_f64() * 1000.0,
        loaded.as_secs_f64() * 1000.0,
        loaded.as_secs_f64() / unloaded.as_secs_f64(),
        answered.load(Ordering::Relaxed),
    );
    // Without fair admission B waits behind ~90 flood lookups for each system's 8 slots
    // (measured about 10x); with it, A never holds more than 4 of them.
    assert!(
        loaded <= unloaded * 4,
        "B's cold lookups went from {unloaded:?} to {loaded:?} during the flood"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_caller_over_its_queue_gets_429_while_others_are_served() {
    let stack = budget_stack("max_cold_lookups_per_caller = 1\nmax_queued_per_caller = 1").await;
    stack
        .set_faults(SystemKind::Oneview, json!({"latency_ms": 300}))
        .await;
    let paths: Vec<String> = (0..6)
        .map(|i| format!("/servers/unknown-burst-{i}"))
        .collect();
    let burst = futures::future::join_all(paths.iter().map(|p| stack.get(p))).await;
    let mut refused = 0;
    for resp in burst {
        match resp.status().as_u16() {
            404 => {}
            429 => {
                refused += 1;
                assert_eq!(resp.headers()["retry-after"], "1");
                let body: Value = resp.json().await.expect("problem");
                assert!(
                    body["detail"]
                        .as_str()
                        .unwrap_or("")
                        .contains("too many lookups in flight for this caller"),
                    "{body}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 1, "six at once against one running + one queued");
    // The same name asked many times at once is one lookup: nobody is refused for joining it.
    let same = futures::future::join_all((0..20).map(|_| stack.get("/servers/unknown-same"))).await;
    assert!(same.iter().all(|r| r.status() == 404));
    let b = bearer_client(ADMIN_TOKEN);
    let names = real_names(&stack).await;
    let resp = b
        .get(format!("{}/servers/{}", stack.gateway, names[0]))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), 200);
    stack.stop().await;
}

/// A caller over its queue still gets a record the cache holds: refusing it would take the
/// record away exactly while a system hangs and flights pile up.
#[tokio::test]
async fn a_caller_over_its_queue_still_gets_the_stale_record() {
    let stack = spawn_stack(StackOptions {
        server_extra: "lookup_timeout = \"5s\"\nmax_cold_lookups_per_caller = 1\n\
                       max_queued_per_caller = 1"
            .into(),
        extra: "[server.rate_limit]\nenabled = false\n\
                [cache]\nttl = \"100ms\"\nstale_deadline = \"30s\"\nmax_stale = \"1h\"\n"
            .into(),
        ..Default::default()
    })
    .await;
    let name = stack.server_name(SystemKind::Ucsm, 0).await;
    let path = format!("/servers/{name}");
    assert_eq!(stack.get(&path).await.status(), 200);
    stack
        .set_faults(SystemKind::Oneview, json!({"hang": true}))
        .await;
    // Two unknown names fan out to the hanging OneView: one runs, one waits in the queue.
    let blockers: Vec<_> = (0..2)
        .map(|i| {
            // The caller `stack.get` speaks as.
            let client = bearer_client(READ_TOKEN);
            let url = format!("{}/servers/hung-unknown-{i}", stack.gateway);
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    // Observed, not assumed: a further cold lookup of this caller is refused. A probe that is
    // admitted instead hangs too (and holds its place after the client gives up on it).
    let started = Instant::now();
    let mut probe = 0;
    loop {
        probe += 1;
        let resp = stack
            .client
            .get(format!("{}/servers/probe-unknown-{probe}", stack.gateway))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        if resp.is_ok_and(|r| r.status() == 429) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(4), "never busy");
    }
    // The record's ttl has passed (100 ms); before, this was a 429 as well.
    let resp = stack.get(&path).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-cache"], "stale");
    let record: Value = resp.json().await.expect("json");
    assert_eq!(record["name"], json!(name));
    for b in blockers {
        b.abort();
    }
    stack.stop().await;
}
