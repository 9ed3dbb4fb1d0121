//! The OME backend against the OME simulator over real HTTP(S): field-by-field answers, the
//! session rules and the per-lookup call budget, read from the simulator's counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod vendor_rig;
use vendor_rig as rig;
use vendor_rig::name;

use inventory_gateway::config::Config;
use inventory_gateway::domain::{BmcAddress, MacAddress, SystemKind};
use inventory_gateway::sim::{fleet, Faults, SimHandle, SimServer};
use inventory_gateway::vendors::odata;
use inventory_gateway::vendors::{build_backend, Backend, BackendError};

const LOGIN: &str = "POST /api/SessionService/Sessions";
const PROFILES: &str = "GET /api/ProfileService/Profiles";
const DEVICES: &str = "GET /api/DeviceService/Devices";
const LOGOUT: &str = "DELETE /api/SessionService/Sessions('{id}')";

struct Rig {
    sim: SimHandle,
    backend: Arc<dyn Backend>,
    _ca: Option<rig::CaFile>,
}

fn start(fleet: Vec<SimServer>, page_size: u32, tls: bool) -> Rig {
    let sim = rig::start(SystemKind::Ome, fleet, tls);
    let ca = tls.then(|| rig::CaFile::new(&sim));
    let extra = format!(
        "page_size = {page_size}\ntimeout = \"5s\"\n{}",
        ca.as_ref().map(rig::CaFile::line).unwrap_or_default()
    );
    let backend = rig::backend(&sim, "ome-lab", "sim-password", &extra);
    Rig {
        sim,
        backend,
        _ca: ca,
    }
}

impl Rig {
    fn counters(&self) -> BTreeMap<String, u64> {
        rig::counters(&self.sim)
    }

    fn count(&self, key: &str) -> u64 {
        rig::count(&self.sim, key)
    }

    fn total(&self) -> u64 {
        rig::total(&self.sim)
    }

    async fn find(
        &self,
        server: &str,
    ) -> Result<Vec<inventory_gateway::domain::ServerRecord>, BackendError> {
        self.backend.find(&name(server)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_matches_the_fleet() {
    // 30 servers cover deployed and service-tag profiles, profile-less devices and IPv6-only
    // iDRACs (every seventh server).
    let servers = fleet::generate(SystemKind::Ome, 42, 30);
    let rig = start(servers.clone(), 8, false);
    let mut ipv6_seen = 0;
    for (i, want) in servers.iter().enumerate() {
        let got = rig.find(&want.name).await.unwrap();
        assert_eq!(got.len(), 1, "{}", want.name);
        let got = &got[0];
        assert_eq!(got.name, want.name);
        assert_eq!(got.system, SystemKind::Ome);
        assert_eq!(got.system_name, "ome-lab");
        assert_eq!(
            got.system_id,
            format!("/api/DeviceService/Devices({})", 25_000 + i)
        );
        assert_eq!(
            got.serial_number.as_deref(),
            Some(want.serial_number.as_str())
        );
        assert_eq!(got.model.as_deref(), Some(want.model.as_str()));
        assert_eq!(got.power_state.as_deref(), Some(want.power_state.as_str()));
        let bmc = got.bmc.as_ref().unwrap();
        assert_eq!(bmc.address, BmcAddress::parse(&want.bmc_address).unwrap());
        assert_eq!(bmc.kind.as_deref(), Some("idrac9"));
        if bmc.address.to_string().contains(':') {
            ipv6_seen += 1;
        }
        let nics: Vec<(&str, String)> = got
            .nics
            .iter()
            .map(|n| (n.name.as_str(), n.mac.to_string()))
            .collect();
        let want_nics: Vec<(&str, String)> = want
            .nics
            .iter()
            .map(|n| (n.name.as_str(), n.mac.clone()))
            .collect();
        assert_eq!(nics, want_nics, "{}", want.name);
        assert_eq!(
            got.boot_mac,
            want.boot_mac().map(|m| MacAddress::parse(m).unwrap())
        );
        assert!(!got.stale);
    }
    assert_eq!(
        ipv6_seen, 4,
        "servers 7, 14, 21 and 28 have IPv6-only iDRACs"
    );
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_for_fifty_concurrent_lookups() {
    let servers = fleet::generate(SystemKind::Ome, 1, 10);
    let rig = start(servers.clone(), 8, false);
    let lookups = (0..50).map(|k| {
        let backend = rig.backend.clone();
        let n = name(&servers[k % servers.len()].name);
        tokio::spawn(async move { backend.find(&n).await })
    });
    for result in futures::future::join_all(lookups).await {
        assert_eq!(result.unwrap().unwrap().len(), 1);
    }
    assert_eq!(rig.count(LOGIN), 1);
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_lookups_stay_within_three_calls() {
    let servers = fleet::generate(SystemKind::Ome, 5, 10);
    let rig = start(servers.clone(), 8, false);
    rig.find(&servers[0].name).await.unwrap();
    // Server 1: deployed profile; 3: profile reserved for its service tag; 4: no profile.
    for (i, path) in [(1, "profile"), (3, "service tag"), (4, "device name")] {
        rig.sim.shared.reset();
        assert_eq!(rig.find(&servers[i].name).await.unwrap().len(), 1);
        let calls = rig.total();
        eprintln!("cold lookup by {path}: {calls} calls {:?}", rig.counters());
        assert!(calls <= 3, "{path}: {calls} calls: {:?}", rig.counters());
    }
    rig.sim.shared.reset();
    assert!(rig.find("no-such-server").await.unwrap().is_empty());
    assert_eq!(rig.count(PROFILES), 1);
    assert_eq!(rig.count(DEVICES), 1);
    assert_eq!(
        rig.total(),
        2,
        "a miss asks for the profile, then the device name"
    );
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_match_case_insensitively() {
    let mut servers = fleet::generate(SystemKind::Ome, 9, 5);
    // Every punctuation character a ServerName allows, through the OData escaping.
    servers[2].name = "Rack1.node_2:eth-9".into();
    let rig = start(servers.clone(), 8, false);
    let got = rig.find("rack1.NODE_2:ETH-9").await.unwrap();
    assert_eq!(got[0].name, "Rack1.node_2:eth-9");
    for i in [0, 4] {
        let got = rig.find(&servers[i].name.to_uppercase()).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].name, servers[i].name,
            "the vendor's spelling is kept"
        );
    }
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_profiles_are_paged_and_reported_as_ambiguous() {
    let mut servers = fleet::generate(SystemKind::Ome, 3, 3);
    for (s, spelled) in servers.iter_mut().zip(["dup-01", "DUP-01", "Dup-01"]) {
        s.name = spelled.into();
    }
    let rig = start(servers.clone(), 1, false);
    let got = rig.find("dup-01").await.unwrap();
    let mut names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["DUP-01", "Dup-01", "dup-01"]);
    let serials: Vec<_> = got.iter().map(|r| r.serial_number.clone()).collect();
    assert_eq!(serials.len(), 3);
    assert_eq!(rig.count(PROFILES), 3, "page_size 1: one page per profile");
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_costs_exactly_one_relogin() {
    let servers = fleet::generate(SystemKind::Ome, 11, 10);
    let rig = start(servers.clone(), 8, false);
    rig.find(&servers[0].name).await.unwrap();
    assert_eq!(rig.count(LOGIN), 1);
    rig.sim.shared.expire_sessions();
    let lookups = (0..10).map(|k| {
        let backend = rig.backend.clone();
        let n = name(&servers[k].name);
        tokio::spawn(async move { backend.find(&n).await })
    });
    for result in futures::future::join_all(lookups).await {
        assert_eq!(result.unwrap().unwrap().len(), 1);
    }
    assert_eq!(rig.count(LOGIN), 2, "{:?}", rig.counters());
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_deletes_the_session() {
    let servers = fleet::generate(SystemKind::Ome, 2, 3);
    let rig = start(servers.clone(), 8, false);
    rig.backend.logout().await;
    assert_eq!(rig.count(LOGOUT), 0, "no session, nothing to delete");
    rig.find(&servers[0].name).await.unwrap();
    rig.backend.logout().await;
    assert_eq!(rig.count(LOGOUT), 1);
    // The deleted session is gone on the appliance: the next lookup logs in again.
    rig.find(&servers[0].name).await.unwrap();
    assert_eq!(rig.count(LOGIN), 2);
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_profile_is_unassigned() {
    let mut servers = fleet::generate(SystemKind::Ome, 2, 2);
    servers[1].assigned = false;
    let rig = start(servers.clone(), 8, false);
    match rig.find(&servers[1].name).await {
        Err(BackendError::Unassigned { profile, .. }) => assert_eq!(profile, servers[1].name),
        other => panic!("expected Unassigned, got {other:?}"),
    }
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error() {
    let servers = fleet::generate(SystemKind::Ome, 2, 1);
    let sim = rig::start(SystemKind::Ome, servers.clone(), false);
    let backend = rig::backend(&sim, "ome", "nope", "");
    let err = backend.find(&name(&servers[0].name)).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    assert!(!format!("{err:?}").contains("nope"));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_keep_status_and_retry_after() {
    let servers = fleet::generate(SystemKind::Ome, 2, 2);
    let rig = start(servers.clone(), 8, false);
    rig.sim.shared.set_faults(Faults {
        endpoint: Some("ProfileService".into()),
        error_rate: 1.0,
        error_status: Some(503),
        retry_after_s: Some(7),
        ..Faults::default()
    });
    match rig.find(&servers[0].name).await {
        Err(e @ BackendError::Status { status: 503, .. }) => {
            assert!(e.is_transient());
            assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        }
        other => panic!("expected a 503 Status error, got {other:?}"),
    }
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_tls_with_the_configured_ca() {
    let servers = fleet::generate(SystemKind::Ome, 4, 3);
    let rig = start(servers.clone(), 8, true);
    assert_eq!(rig.sim.base_url.scheme(), "https");
    let got = rig.find(&servers[2].name).await.unwrap();
    assert_eq!(
        got[0].serial_number.as_deref(),
        Some(servers[2].serial_number.as_str())
    );
    rig.sim.stop().await;
}

/// The escaping layer on its own: a hostile value built by the backend's filter function is
/// read by the simulator as one literal (no match, not a syntax error, not every row), while
/// the same text sent unescaped is refused, so an unescaped value could not pass unnoticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_filter_values_stay_literals() {
    let servers = fleet::generate(SystemKind::Ome, 2, 5);
    let rig = start(servers.clone(), 8, false);
    let http = reqwest::Client::new();
    let base = rig.sim.base_url.as_str().trim_end_matches('/');
    let get = |query: String| {
        http.get(format!("{base}/api/ProfileService/Profiles?{query}"))
            .basic_auth("admin", Some("sim-password"))
            .send()
    };
    let hostile = format!("{}' or ProfileName ne '", servers[0].name);

    let escaped = get(odata::filter_param("ProfileName", &hostile))
        .await
        .unwrap();
    assert_eq!(escaped.status(), 200);
    let body: serde_json::Value = escaped.json().await.unwrap();
    assert_eq!(body["@odata.count"], 0);

    let raw = get(format!("$filter=ProfileName eq '{hostile}'").replace(' ', "%20"))
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);

    // A `+` is not a space to OME; the backend never sends one.
    let plus = get(format!("$filter=ProfileName+eq+'{}'", servers[0].name))
        .await
        .unwrap();
    assert_eq!(plus.status(), 400);

    // The unpaged first page of the same name through the doubled-quote path matches it.
    let exact = get(odata::filter_param("ProfileName", &servers[0].name))
        .await
        .unwrap();
    let body: serde_json::Value = exact.json().await.unwrap();
    assert_eq!(body["@odata.count"], 1);
    rig.sim.stop().await;
}

/// The simulator's paging quirk the backend must not rely on: nextLink drops the filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_link_drops_the_filter_like_ome() {
    let mut servers = fleet::generate(SystemKind::Ome, 2, 4);
    servers[1].name = servers[0].name.clone();
    let rig = start(servers.clone(), 8, false);
    let http = reqwest::Client::new();
    let base = rig.sim.base_url.as_str().trim_end_matches('/');
    let filter = odata::filter_param("ProfileName", &servers[0].name);
    let first: serde_json::Value = http
        .get(format!(
            "{base}/api/ProfileService/Profiles?{filter}&$top=1"
        ))
        .basic_auth("admin", Some("sim-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["@odata.count"], 2);
    assert_eq!(first["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        first["@odata.nextLink"],
        "/api/ProfileService/Profiles?$skip=1&$top=1"
    );
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_expired_tokens_get_the_error_envelope() {
    let rig = start(fleet::generate(SystemKind::Ome, 2, 1), 8, false);
    let base = rig.sim.base_url.as_str().trim_end_matches('/');
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{base}/api/DeviceService/Devices"))
        .header("X-Auth-Token", "bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"]["@Message.ExtendedInfo"][0]["MessageId"].is_string());

    // Login without SessionType and with a (wrong) Basic header still works: only the body counts.
    let login = http
        .post(format!("{base}/api/SessionService/Sessions"))
        .basic_auth("someone", Some("else"))
        .json(&serde_json::json!({"UserName": "admin", "Password": "sim-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    let token = login.headers()["x-auth-token"].to_str().unwrap().to_owned();
    let location = login.headers()["location"].to_str().unwrap().to_owned();
    let session: serde_json::Value = login.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "/api/SessionService/Sessions('{}')",
            session["Id"].as_str().unwrap()
        )
    );
    let ok = http
        .get(format!("{base}/api//DeviceService/Devices"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    rig.sim.shared.expire_sessions();
    let expired = http
        .get(format!("{base}/api/DeviceService/Devices"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    rig.sim.stop().await;
}

/// An appliance that misbehaves on purpose: logs in fine, then answers every GET with `reply`.
async fn broken_appliance(
    reply: fn() -> actix_web::HttpResponse,
) -> (
    actix_web::dev::ServerHandle,
    String,
    Arc<std::sync::atomic::AtomicU64>,
) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let logins = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = logins.clone();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new()
            .route(
                "/api/SessionService/Sessions",
                web::post().to(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async {
                        HttpResponse::Created()
                            .insert_header(("x-auth-token", "t0k3n"))
                            .json(serde_json::json!({"Id": "s-1"}))
                    }
                }),
            )
            .default_service(web::to(move || async move { reply() }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (handle, format!("http://{addr}"), logins)
}

fn backend_for(endpoint: &str) -> Arc<dyn Backend> {
    let toml = format!(
        "[[systems]]\nname = \"ome\"\nkind = \"ome\"\nendpoint = \"{endpoint}\"\nusername = \"admin\"\npassword = \"pw\"\n"
    );
    build_backend(&Config::from_toml_str(&toml).unwrap().systems[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_a_protocol_error() {
    let (server, url, _) = broken_appliance(|| {
        actix_web::HttpResponse::Ok()
            .content_type("text/html")
            .body("<html>maintenance</html>")
    })
    .await;
    let err = backend_for(&url).find(&name("web01")).await.unwrap_err();
    assert!(matches!(err, BackendError::Protocol { .. }), "{err:?}");

    server.stop(false).await;
    let (server, url, _) = broken_appliance(|| {
        actix_web::HttpResponse::Ok().json(serde_json::json!({"@odata.count": 1}))
    })
    .await;
    let err = backend_for(&url).find(&name("web01")).await.unwrap_err();
    assert!(matches!(err, BackendError::Protocol { .. }), "{err:?}");
    server.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_after_a_fresh_login_is_an_auth_error() {
    let (server, url, logins) =
        broken_appliance(|| actix_web::HttpResponse::Unauthorized().finish()).await;
    let err = backend_for(&url).find(&name("web01")).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    assert_eq!(logins.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        !format!("{err:?}").contains("t0k3n"),
        "the token never reaches an error"
    );
    server.stop(false).await;
}
