//! Each backend against a hostile fake appliance (tests/hostile): oversized, endless and
//! dripping bodies, deep nesting, page loops, oversized pages and header floods. Every case
//! must end quickly with the right error, counted as a system failure (the breaker's input),
//! after the gateway read no more than its cap and closed the connection.

mod hostile;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hostile::{query_key, Attack, Hostile, GIB};
use inventory_gateway::config::Config;
use inventory_gateway::domain::{ServerName, SystemKind};
use inventory_gateway::vendors::{build_backend, Backend, BackendError};

const KINDS: [SystemKind; 6] = [
    SystemKind::Oneview,
    SystemKind::Ome,
    SystemKind::Ucsm,
    SystemKind::UcsCentral,
    SystemKind::Intersight,
    SystemKind::Redfish,
];
/// Intersight signs with an API key: any key does, the hostile appliance checks nothing.
const TEST_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/intersight/ec-sec1.pem"
);
/// The default `max_response_bytes`.
const CAP: u64 = 8 * 1024 * 1024;
/// Per-request timeout of the backends under test; every case must end well within a few.
const TIMEOUT: Duration = Duration::from_secs(3);

fn backend(kind: SystemKind, url: &str) -> std::sync::Arc<dyn Backend> {
    if kind == SystemKind::Redfish {
        // The hostile appliance is the one BMC of the set, `web-01`.
        let port = url.rsplit(':').next().unwrap_or_default();
        let toml = format!(
            "[[systems]]\nname = \"hostile\"\nkind = \"redfish\"\ntimeout = \"{}s\"\n\
             [systems.bmc]\nusername = \"admin\"\npassword = \"pw\"\nscheme = \"http\"\nport = {port}\n\
             [[systems.bmcs]]\naddress = \"127.0.0.1\"\nname = \"web-01\"\n",
            TIMEOUT.as_secs()
        );
        let config = Config::from_toml_str(&toml).expect("valid config");
        return build_backend(&config.systems[0]).expect("backend builds");
    }
    let login = if kind == SystemKind::Intersight {
        format!("api_key_id = \"hostile/key\"\nprivate_key_file = {TEST_KEY:?}")
    } else {
        "username = \"admin\"\npassword = \"pw\"".to_owned()
    };
    let toml = format!(
        "[[systems]]\nname = \"hostile\"\nkind = {:?}\nendpoint = \"{url}\"\n\
         {login}\ntimeout = \"{}s\"\nmax_pages = 5\n",
        kind.as_str(),
        TIMEOUT.as_secs()
    );
    // The hostile appliance is the Central itself: its domains are never reached.
    let toml = if kind == SystemKind::UcsCentral {
        format!("{toml}[systems.ucsm]\nusername = \"admin\"\npassword = \"pw\"\n")
    } else {
        toml
    };
    let config = Config::from_toml_str(&toml).expect("valid config");
    build_backend(&config.systems[0]).expect("backend builds")
}

/// One lookup against `attack`, bounded in time whatever happens.
async fn attack(kind: SystemKind, attack: Attack) -> (Hostile, BackendError, Duration) {
    let server = hostile::start(kind, attack).await;
    let backend = backend(kind, &server.url);
    let name = ServerName::parse("web-01").expect("name");
    let started = Instant::now();
    let outcome = tokio::time::timeout(TIMEOUT * 4, backend.find(&name))
        .await
        .unwrap_or_else(|_| panic!("{kind}: {attack:?} hung the lookup"));
    let elapsed = started.elapsed();
    let err = match outcome {
        Ok(records) => panic!("{kind}: {attack:?} was answered {records:?}"),
        Err(e) => e,
    };
    // One BMC of a set failing is that server's failure; the set's breaker stays closed.
    let err = match err {
        BackendError::Bmc { source, .. } if kind == SystemKind::Redfish => {
            assert!(source.is_system_failure(), "{attack:?}: {source:?}");
            *source
        }
        err => {
            assert!(
                err.is_system_failure(),
                "{kind}: {attack:?} must count against the breaker: {err:?}"
            );
            err
        }
    };
    (server, err, elapsed)
}

fn assert_protocol(kind: SystemKind, what: &str, err: &BackendError) {
    assert!(
        matches!(err, BackendError::Protocol { .. }),
        "{kind}: {what} gave {err:?}"
    );
}

/// The server notices the closed connection once its next write fails; wait for that.
async fn closed_early(server: &Hostile) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if server.seen.closed_early.load(Ordering::SeqCst) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_body_is_refused_without_reading_it() {
    for kind in KINDS {
        let rss_before = vm_kib("VmRSS:");
        let (server, err, elapsed) = attack(kind, Attack::Huge(GIB)).await;
        assert_protocol(kind, "1 GiB body", &err);
        assert!(closed_early(&server).await, "{kind}: connection not closed");
        let sent = server.seen.attack_bytes.load(Ordering::SeqCst);
        assert!(sent < GIB / 8, "{kind}: the gateway took {sent} bytes");
        eprintln!(
            "{kind}: 1 GiB Content-Length body: {err} after {elapsed:?}; {sent} bytes accepted by the socket; \
             RSS {rss_before} kB -> {} kB (peak {} kB)",
            vm_kib("VmRSS:"),
            vm_kib("VmHWM:")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_chunked_body_stops_at_the_cap() {
    for kind in KINDS {
        let (server, err, _) = attack(kind, Attack::HugeChunked(GIB)).await;
        assert_protocol(kind, "1 GiB chunked body", &err);
        assert!(closed_early(&server).await, "{kind}: connection not closed");
        let sent = server.seen.attack_bytes.load(Ordering::SeqCst);
        // The cap plus what socket buffers hold.
        assert!(sent < CAP * 4, "{kind}: the gateway took {sent} bytes");
        assert!(
            err.to_string().contains("max_response_bytes"),
            "{kind}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunked_body_stops_at_the_cap() {
    for kind in KINDS {
        let (server, err, _) = attack(kind, Attack::Endless).await;
        assert_protocol(kind, "endless body", &err);
        assert!(closed_early(&server).await, "{kind}: connection not closed");
        let sent = server.seen.attack_bytes.load(Ordering::SeqCst);
        assert!(sent < CAP * 4, "{kind}: the gateway took {sent} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_ends_at_the_request_timeout() {
    for kind in KINDS {
        let (server, err, elapsed) = attack(kind, Attack::Drip(Duration::from_millis(100))).await;
        assert!(
            matches!(err, BackendError::Timeout { .. }),
            "{kind}: drip gave {err:?}"
        );
        assert!(elapsed >= TIMEOUT, "{kind}: ended before the timeout");
        assert!(closed_early(&server).await, "{kind}: connection not closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_a_protocol_error() {
    for kind in KINDS {
        let (_server, err, _) = attack(kind, Attack::Deep(100_000)).await;
        assert_protocol(kind, "deep nesting", &err);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_loop_is_a_protocol_error_after_a_bounded_number_of_gets() {
    for kind in [SystemKind::Oneview, SystemKind::Ome, SystemKind::Intersight] {
        let (server, err, _) = attack(kind, Attack::PageLoop).await;
        assert_protocol(kind, "page loop", &err);
        let gets = server.seen.count(query_key(kind));
        assert!(
            (2..=5).contains(&gets),
            "{kind}: {gets} GETs for a page loop (max_pages = 5)"
        );
        eprintln!("{kind}: page loop: {err}; {gets} GETs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_page_costs_one_get() {
    for kind in KINDS {
        let (server, err, _) = attack(kind, Attack::Oversized(20_000)).await;
        assert_protocol(kind, "20 000 items where 8 were asked", &err);
        let total: u64 = server
            .seen
            .requests
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|(k, _)| {
                        (k.starts_with("GET") && k.as_str() != "GET /redfish/v1/")
                            || k.as_str() == "configResolveClass"
                            || k.starts_with("config")
                    })
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(total, 1, "{kind}: upstream queries for an oversized page");
        eprintln!("{kind}: oversized page: {err}; {total} upstream queries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_flood_is_a_protocol_error() {
    for kind in KINDS {
        let (server, err, _) = attack(kind, Attack::HeaderFlood(20_000)).await;
        assert_protocol(kind, "header flood", &err);
        assert!(closed_early(&server).await, "{kind}: connection not closed");
        let sent = server.seen.attack_bytes.load(Ordering::SeqCst);
        assert!(
            sent < 20_000 * 1024 / 2,
            "{kind}: the gateway read all {sent} header bytes"
        );
    }
}
