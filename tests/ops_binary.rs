//! The real binary (`inventory-gateway serve`) against simulators: graceful shutdown on SIGTERM
//! and request ids in the JSON logs. The simulators run in this test process, so their
//! counters show what the gateway did (logins, logouts) from the outside.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use inventory_gateway::demo::{self, TokenSpec};
use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::{fleet, SimHandle};
use serde_json::Value;

const TOKEN: &str = "binary-test-token-0123456789abcdef";
const KINDS: [SystemKind; 5] = demo::KINDS;

struct Gateway {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, in order.
    seen: Vec<String>,
    url: String,
    client: reqwest::Client,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Only reached with the process still running when a test failed half-way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sims() -> Vec<SimHandle> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleets = KINDS
        .iter()
        .map(|&k| (k, fleet::generate(k, 5, 10)))
        .collect();
    let ports: Vec<_> = KINDS.iter().map(|&k| (k, 0)).collect();
    demo::start_sims(&fleets, &ports, false).expect("simulators start")
}

impl Gateway {
    /// Starts `inventory-gateway serve` with JSON logs and waits for its "listening" line.
    fn start(sims: &[SimHandle], rust_log: &str) -> Self {
        Self::start_with(sims, rust_log, &[])
    }

    /// As `start`, with `IGW__…` config overrides.
    fn start_with(sims: &[SimHandle], rust_log: &str, env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("igw-bin-{}", uuid::Uuid::new_v4()));
        let tokens = [TokenSpec::new(
            "binary-tests",
            TOKEN.to_owned().into(),
            &["read", "admin"],
        )];
        let (_, config) = demo::write_gateway_config(&dir, sims, 0, &tokens).expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_inventory-gateway"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let (tx, lines) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut gw = Self {
            child,
            lines,
            seen: Vec::new(),
            url: String::new(),
            client: reqwest::Client::new(),
            _dir: TempDir(dir),
        };
        let listening = gw.wait_for(|l| message(l) == "gateway listening");
        let port = json(&listening)["fields"]["port"]
            .as_u64()
            .expect("port in the listening line");
        gw.url = format!("http://127.0.0.1:{port}");
        gw
    }

    /// The next line that satisfies `pred` (reading up to 30 s).
    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no such log line; saw:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    async fn get(&self, path: &str, request_id: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .header("x-request-id", request_id)
            .send()
            .await
            .expect("gateway answers")
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, then reads the rest of its output.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status
    }
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or(Value::Null)
}

fn is_access(line: &str) -> bool {
    json(line)["target"] == "access"
}

fn message(line: &str) -> String {
    json(line)["fields"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Requests per endpoint key, as the simulator counted them.
async fn counters(sim: &SimHandle) -> Value {
    let v: Value = reqwest::get(format!("{}_sim/counters", sim.base_url))
        .await
        .expect("control plane")
        .json()
        .await
        .expect("json");
    v["endpoints"].clone()
}

fn logouts(counters: &Value) -> u64 {
    counters
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.contains("logout") || (k.starts_with("delete") && k.contains("session"))
        })
        .filter_map(|(_, v)| v.as_u64())
        .sum()
}

fn counter(counters: &Value, key: &str) -> u64 {
    counters[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_logs_out_of_every_system_and_exits_0() {
    let sims = start_sims();
    let mut gw = Gateway::start(&sims, "info");
    for sim in &sims {
        let name = &sim.shared.fleet()[0].name;
        let resp = gw.get(&format!("/servers/{name}"), "warm-up").await;
        assert_eq!(resp.status(), 200, "{}", sim.kind);
    }
    for sim in &sims {
        assert_eq!(logouts(&counters(sim).await), 0, "{}", sim.kind);
    }

    // One request held in flight by a slow OneView, then SIGTERM.
    let oneview = sims
        .iter()
        .find(|s| s.kind == SystemKind::Oneview)
        .expect("oneview");
    let query = "GET /rest/server-profiles";
    let before = counter(&counters(oneview).await, query);
    let r = reqwest::Client::new()
        .put(format!("{}_sim/faults", oneview.base_url))
        .json(&serde_json::json!({"endpoint": query, "latency_ms": 1500}))
        .send()
        .await
        .expect("faults");
    assert!(r.status().is_success());
    let name = oneview.shared.fleet()[1].name.clone();
    let client = gw.client.clone();
    let url = format!("{}/servers/{name}?vendor=hpe", gw.url);
    let in_flight = tokio::spawn(async move { client.get(url).bearer_auth(TOKEN).send().await });
    // The request is in flight once the simulator has counted it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while counter(&counters(oneview).await, query) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never reached OneView"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.sigterm();

    let resp = in_flight
        .await
        .expect("task")
        .expect("the in-flight request got an answer");
    assert_eq!(resp.status(), 200, "the in-flight request was drained");
    let status = tokio::task::block_in_place(|| gw.wait_exit());
    assert!(status.success(), "exit status {status:?}");
    // Intersight has no session to end: every request is signed.
    for sim in sims.iter().filter(|s| s.kind != SystemKind::Intersight) {
        assert_eq!(
            logouts(&counters(sim).await),
            1,
            "{} logout; counters {}",
            sim.kind,
            counters(sim).await
        );
    }
    assert!(gw
        .seen
        .iter()
        .any(|l| message(l).starts_with("shutting down")));
    assert!(
        !gw.seen.iter().any(|l| l.contains(TOKEN)),
        "a log line carries the token"
    );
    for sim in &sims {
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_a_request_carries_its_request_id_and_no_token() {
    let sims = start_sims();
    let mut gw = Gateway::start(&sims, "info,inventory_gateway=debug");
    let start = gw.seen.len();

    // A cold lookup (login, queries) and a fan-out that finds nothing, one after the other.
    let dell = &sims
        .iter()
        .find(|s| s.kind == SystemKind::Ome)
        .expect("ome")
        .shared
        .fleet()[0]
        .name;
    let resp = gw.get(&format!("/servers/{dell}"), "rid-test-aaaa").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "rid-test-aaaa");
    gw.wait_for(|l| is_access(l) && l.contains("rid-test-aaaa"));
    let resp = gw
        .get("/servers/no-such-server-here", "rid-test-bbbb")
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "rid-test-bbbb");
    gw.wait_for(|l| is_access(l) && l.contains("rid-test-bbbb"));
    let window: Vec<String> = gw.seen[start..].to_vec();

    gw.sigterm();
    let status = tokio::task::block_in_place(|| gw.wait_exit());
    assert!(status.success(), "exit status {status:?}");

    // Between start-up and shutdown only these two requests ran: each line is one of theirs.
    let ours = |l: &&String| {
        !json(l)["target"]
            .as_str()
            .unwrap_or("")
            .starts_with("actix_server")
    };
    let lines: Vec<&String> = window.iter().filter(ours).collect();
    let a = lines.iter().filter(|l| l.contains("rid-test-aaaa")).count();
    let b = lines.iter().filter(|l| l.contains("rid-test-bbbb")).count();
    for l in &lines {
        assert!(
            l.contains("rid-test-aaaa") ^ l.contains("rid-test-bbbb"),
            "a log line without its request id: {l}"
        );
    }
    assert!(a >= 2 && b >= 2, "too few lines to tell: {a} and {b}");
    // The token itself is never written anywhere.
    assert!(
        !gw.seen.iter().any(|l| l.contains(TOKEN)),
        "a log line carries the token"
    );
    for sim in &sims {
        sim.stop().await;
    }
}

#[test]
fn hash_token_makes_entries_the_gateway_accepts() {
    use std::io::Write;
    let bin = env!("CARGO_BIN_EXE_inventory-gateway");
    // A token given on stdin: the entry holds its SHA-256, never the token.
    let mut child = Command::new(bin)
        .args([
            "hash-token",
            "--name",
            "ci",
            "--scope",
            "read",
            "--scope",
            "admin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{TOKEN}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("runs");
    assert!(out.status.success());
    let entry = String::from_utf8_lossy(&out.stdout);
    assert!(!entry.contains(TOKEN));
    let parsed: toml::Table = toml::from_str(&entry).expect("a TOML entry");
    let t = &parsed["tokens"][0];
    assert_eq!(
        t["hash"].as_str(),
        Some(inventory_gateway::http::auth::hash_token(TOKEN).as_str())
    );
    assert_eq!(t["scopes"].as_array().map(Vec::len), Some(2));

    // A generated token: on stderr, its hash on stdout.
    let out = Command::new(bin)
        .args(["hash-token", "--generate"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let token = stderr.trim().rsplit(' ').next().expect("token on stderr");
    assert!(token.starts_with("igw_") && token.len() == 68, "{stderr}");
    let parsed: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(
        parsed["tokens"][0]["hash"].as_str(),
        Some(inventory_gateway::http::auth::hash_token(token).as_str())
    );
}

#[test]
fn serve_refuses_to_start_without_tokens_unless_auth_is_explicitly_off() {
    let dir = std::env::temp_dir().join(format!("igw-noauth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let system =
        "[[systems]]\nname = \"ov\"\nkind = \"oneview\"\nendpoint = \"http://127.0.0.1:9\"\n\
                  username = \"u\"\npassword = \"p\"\n";
    let bin = env!("CARGO_BIN_EXE_inventory-gateway");
    let path = dir.join("no-auth-section.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{system}"),
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.tokens_file"), "{stderr}");

    let path = dir.join("auth-off.toml");
    std::fs::write(&path, format!("[auth]\nenabled = false\n{system}")).unwrap();
    let out = Command::new(bin)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("auth: DISABLED"));
}

/// Defect 9: logouts at shutdown rode pooled connections whose driving tasks lived on the
/// stopped actix workers' runtimes, so some failed with "dispatch task is gone" after reaching
/// the appliance. Repeated, because it was a race (2 of 10 before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigterms_log_out_of_every_system_without_a_false_warning() {
    const ROUNDS: u64 = 8;
    let sims = start_sims();
    for round in 1..=ROUNDS {
        let mut gw = Gateway::start(&sims, "info");
        for sim in &sims {
            let name = &sim.shared.fleet()[0].name;
            let resp = gw
                .get(&format!("/servers/{name}?refresh=true"), "warm-up")
                .await;
            assert_eq!(resp.status(), 200, "{}", sim.kind);
        }
        gw.sigterm();
        let status = tokio::task::block_in_place(|| gw.wait_exit());
        assert!(status.success(), "round {round}: exit status {status:?}");
        let warnings: Vec<&String> = gw
            .seen
            .iter()
            .filter(|l| l.to_ascii_lowercase().contains("logout failed"))
            .collect();
        assert!(warnings.is_empty(), "round {round}: {warnings:?}");
        for sim in sims.iter().filter(|s| s.kind != SystemKind::Intersight) {
            assert_eq!(
                logouts(&counters(sim).await),
                round,
                "{} logouts after round {round}",
                sim.kind
            );
        }
    }
    for sim in &sims {
        sim.stop().await;
    }
}

/// Defect 7: every request wrote ~0.5-1 KB at INFO, refused ones included. Now an answered
/// request is one compact access line (caller's name, never the token), and refusals are only
/// summed up periodically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_are_compact_and_refusals_are_summed_up_not_logged_one_by_one() {
    let sims = start_sims();
    let mut gw = Gateway::start_with(
        &sims,
        "info",
        &[("IGW__TELEMETRY__REFUSAL_SUMMARY_INTERVAL", "1s")],
    );
    let start = gw.seen.len();
    let name = sims[0].shared.fleet()[0].name.clone();
    let resp = gw
        .get(&format!("/servers/{name}?_=1"), "rid-access-1")
        .await;
    assert_eq!(resp.status(), 200);
    let line = gw.wait_for(|l| is_access(l) && l.contains("rid-access-1"));
    let msg = message(&line);
    let expected = format!("GET /servers/{name} 200 ");
    assert!(msg.starts_with(&expected), "{msg}");
    assert!(
        msg.ends_with("cache=miss rid=rid-access-1 caller=binary-tests"),
        "{msg}"
    );
    assert_eq!(json(&line)["level"], "INFO");

    for i in 0..10 {
        let resp = gw
            .client
            .get(format!("{}/servers/{name}", gw.url))
            .bearer_auth(format!("wrong-token-{i}-0123456789"))
            .header("x-request-id", format!("rid-refused-{i}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 401);
    }
    let summary = gw.wait_for(|l| json(l)["target"] == "refusals");
    assert!(message(&summary).contains("invalid_token=10"), "{summary}");
    assert_eq!(json(&summary)["level"], "WARN");
    gw.sigterm();
    let status = tokio::task::block_in_place(|| gw.wait_exit());
    assert!(status.success(), "exit status {status:?}");
    let window = &gw.seen[start..];
    assert!(
        !window.iter().any(|l| l.contains("rid-refused-")),
        "a refused request was logged on its own"
    );
    // Client errors are never ERROR.
    assert!(
        !window.iter().any(|l| json(l)["level"] == "ERROR"),
        "{}",
        window.join("\n")
    );
    for sim in &sims {
        sim.stop().await;
    }
}

/// Defect 3: on SIGTERM the process reports not-ready at once and keeps serving for
/// `shutdown_delay`, so that load balancers stop sending before the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_503_while_the_gateway_still_serves_then_it_exits_0() {
    let sims = start_sims();
    let mut gw = Gateway::start_with(
        &sims,
        "info",
        &[("IGW__SERVER__LIMITS__SHUTDOWN_DELAY", "8s")],
    );
    let ready = reqwest::get(format!("{}/readyz", gw.url))
        .await
        .expect("answer");
    assert_eq!(ready.status(), 200);
    gw.sigterm();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let resp = reqwest::get(format!("{}/readyz", gw.url))
            .await
            .expect("still listening");
        if resp.status() == 503 {
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body["status"], "shutting_down");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never went 503"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not ready, but still answering lookups during the delay.
    let name = sims[0].shared.fleet()[0].name.clone();
    let resp = gw.get(&format!("/servers/{name}"), "during-delay").await;
    assert_eq!(resp.status(), 200);
    // A second signal is not needed: the delay ends by itself, then the drain, then exit 0.
    let status = tokio::task::block_in_place(|| gw.wait_exit());
    assert!(status.success(), "exit status {status:?}");
    for sim in &sims {
        sim.stop().await;
    }
}
