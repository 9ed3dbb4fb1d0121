//! The OneView backend against the OneView simulator over real HTTP(S).

use std::sync::Arc;

mod vendor_rig;
use vendor_rig as rig;
use vendor_rig::{count, counters, name, total};

use inventory_gateway::domain::{SystemKind, Vendor};
use inventory_gateway::sim::{fleet, Faults, SimHandle, SimNic, SimServer};
use inventory_gateway::vendors::{Backend, BackendError};

const PROFILES: &str = "GET /rest/server-profiles";
const HARDWARE: &str = "GET /rest/server-hardware/{id}";
const LOGIN: &str = "POST /rest/login-sessions";
const LOGOUT: &str = "DELETE /rest/login-sessions";

fn start(fleet: Vec<SimServer>) -> SimHandle {
    rig::start(SystemKind::Oneview, fleet, false)
}

fn backend(sim: &SimHandle, extra: &str) -> Arc<dyn Backend> {
    rig::backend(sim, "ov-sim", "sim-password", extra)
}

fn server(name: &str, n: u8, assigned: bool) -> SimServer {
    SimServer {
        name: name.into(),
        serial_number: format!("MXQ00000{n:02}"),
        model: "HPE Synergy 480 Gen10 Compute Module".into(),
        power_state: "on".into(),
        bmc_address: format!("10.9.0.{n}"),
        decoy_bmc_addresses: vec![format!("fe80::9:{n}")],
        nics: vec![
            SimNic {
                name: "Mezz 3:1-a".into(),
                mac: format!("9a:a0:22:00:{n:02x}:01"),
                boot: false,
            },
            SimNic {
                name: "Deployment".into(),
                mac: format!("9a:a0:22:00:{n:02x}:02"),
                boot: true,
            },
        ],
        assigned,
        nics_from_bmc: false,
    }
}

#[tokio::test]
async fn every_field_matches_the_fleet_with_one_login() {
    let fleet = fleet::generate(SystemKind::Oneview, 7, 12);
    let sim = start(fleet.clone());
    let ov = backend(&sim, "");
    for s in &fleet {
        let found = ov.find(&name(&s.name)).await.unwrap();
        assert_eq!(found.len(), 1, "{}", s.name);
        let r = &found[0];
        assert_eq!(r.name, s.name);
        assert_eq!(r.vendor, Vendor::Hpe);
        assert_eq!(r.system, SystemKind::Oneview);
        assert_eq!(r.system_name, "ov-sim");
        assert!(
            r.system_id.starts_with("/rest/server-profiles/"),
            "{}",
            r.system_id
        );
        assert_eq!(r.serial_number.as_deref(), Some(s.serial_number.as_str()));
        assert_eq!(r.model.as_deref(), Some(s.model.as_str()));
        assert_eq!(r.power_state.as_deref(), Some(s.power_state.as_str()));
        let bmc = r.bmc.as_ref().unwrap();
        assert_eq!(
            bmc.address.to_string(),
            s.bmc_address,
            "not the link-local decoy"
        );
        assert!(bmc.kind.as_deref().is_some_and(|k| k.starts_with("ilo")));
        rig::assert_nics_match(r, s);
        assert_eq!(r.boot_mac.map(|m| m.to_string()).as_deref(), s.boot_mac());
        assert!(!r.stale);
    }
    assert_eq!(count(&sim, LOGIN), 1);
    assert_eq!(count(&sim, PROFILES), fleet.len() as u64);
    assert_eq!(count(&sim, HARDWARE), fleet.len() as u64);
}

#[tokio::test]
async fn fifty_concurrent_cold_lookups_share_one_login() {
    let fleet = fleet::generate(SystemKind::Oneview, 3, 50);
    let sim = start(fleet.clone());
    let ov = backend(&sim, "");
    let lookups = fleet.iter().map(|s| {
        let ov = ov.clone();
        let n = name(&s.name);
        async move { ov.find(&n).await }
    });
    for r in futures::future::join_all(lookups).await {
        assert_eq!(r.unwrap().len(), 1);
    }
    assert_eq!(count(&sim, LOGIN), 1);
    assert_eq!(count(&sim, PROFILES), 50);
}

#[tokio::test]
async fn a_cold_lookup_costs_two_calls_and_a_miss_one() {
    let fleet = fleet::generate(SystemKind::Oneview, 5, 4);
    let sim = start(fleet.clone());
    let ov = backend(&sim, "");
    assert!(ov.find(&name("no-such-server")).await.unwrap().is_empty());
    assert_eq!(count(&sim, LOGIN), 1);
    assert_eq!(total(&sim), 2, "{:?}", counters(&sim));

    sim.shared.reset();
    assert_eq!(ov.find(&name(&fleet[2].name)).await.unwrap().len(), 1);
    assert_eq!(total(&sim), 2, "{:?}", counters(&sim));
    assert_eq!(count(&sim, PROFILES), 1);
    assert_eq!(count(&sim, HARDWARE), 1);

    sim.shared.reset();
    assert!(ov.find(&name("also-missing")).await.unwrap().is_empty());
    assert_eq!(total(&sim), 1, "{:?}", counters(&sim));
}

#[tokio::test]
async fn names_match_case_insensitively_and_keep_the_vendor_spelling() {
    let sim = start(fleet::generate(SystemKind::Oneview, 1, 3));
    let ov = backend(&sim, "");
    let r = ov.find(&name("HPE-SYNERGY-002")).await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].name, "hpe-synergy-002");
}

#[tokio::test]
async fn expired_sessions_are_renewed_once() {
    let fleet = fleet::generate(SystemKind::Oneview, 9, 20);
    let sim = start(fleet.clone());
    let ov = backend(&sim, "");
    ov.find(&name(&fleet[0].name)).await.unwrap();
    sim.shared.expire_sessions();
    sim.shared.reset();

    let lookups = fleet.iter().map(|s| {
        let ov = ov.clone();
        let n = name(&s.name);
        async move { ov.find(&n).await }
    });
    for r in futures::future::join_all(lookups).await {
        assert_eq!(r.unwrap().len(), 1);
    }
    assert_eq!(count(&sim, LOGIN), 1, "{:?}", counters(&sim));
    assert_eq!(count(&sim, HARDWARE), 20);
}

#[tokio::test]
async fn a_second_401_is_an_auth_error() {
    let sim = start(fleet::generate(SystemKind::Oneview, 9, 2));
    let ov = backend(&sim, "");
    sim.shared.set_faults(Faults {
        endpoint: Some(PROFILES.into()),
        error_rate: 1.0,
        error_status: Some(401),
        ..Faults::default()
    });
    let err = ov.find(&name("hpe-synergy-001")).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    assert!(!format!("{err:?}{err}").contains("sim-password"));
    assert_eq!(count(&sim, LOGIN), 2, "initial login + one renewal");
    assert_eq!(count(&sim, PROFILES), 2);
}

#[tokio::test]
async fn bad_credentials_are_an_auth_error_and_concurrent_lookups_share_the_failure() {
    let sim = start(fleet::generate(SystemKind::Oneview, 9, 2));
    let ov = rig::backend(&sim, "ov-sim", "wrong", "");
    let lookups = (0..20).map(|_| {
        let ov = ov.clone();
        async move { ov.find(&name("hpe-synergy-001")).await }
    });
    for r in futures::future::join_all(lookups).await {
        let err = r.unwrap_err();
        assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
        assert!(!format!("{err:?}{err}").contains("wrong"));
    }
    assert_eq!(count(&sim, LOGIN), 1, "{:?}", counters(&sim));
    assert_eq!(count(&sim, PROFILES), 0);
}

#[tokio::test]
async fn pages_are_followed_and_case_variants_resolved() {
    let fleet = vec![
        server("web-01", 1, true),
        server("other", 2, true),
        server("WEB-01", 3, true),
        server("Web-01", 4, true),
        server("web-011", 5, true),
    ];
    let sim = start(fleet);
    let ov = backend(&sim, "page_size = 1");

    // No exact-case match: all three variants come back, one page each.
    let all = ov.find(&name("wEb-01")).await.unwrap();
    let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["web-01", "WEB-01", "Web-01"]);
    assert_eq!(count(&sim, PROFILES), 3);
    assert_eq!(all[1].bmc.as_ref().unwrap().address.to_string(), "10.9.0.3");

    sim.shared.reset();
    let exact = ov.find(&name("WEB-01")).await.unwrap();
    assert_eq!(exact.len(), 1);
    assert_eq!(exact[0].name, "WEB-01");
    assert_eq!(exact[0].serial_number.as_deref(), Some("MXQ0000003"));
    assert_eq!(
        count(&sim, HARDWARE),
        1,
        "only the winner's hardware is read"
    );

    let capped = backend(&sim, "page_size = 1\nmax_pages = 2");
    let err = capped.find(&name("web-01")).await.unwrap_err();
    assert!(matches!(err, BackendError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unassigned_profile_is_reported_as_such() {
    let sim = start(vec![
        server("spare-01", 1, false),
        server("live-01", 2, true),
    ]);
    let ov = backend(&sim, "");
    let err = ov.find(&name("SPARE-01")).await.unwrap_err();
    match err {
        BackendError::Unassigned { system, profile } => {
            assert_eq!(system, "ov-sim");
            assert_eq!(profile, "spare-01");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&sim, HARDWARE), 0);
}

#[tokio::test]
async fn logout_deletes_the_session_and_the_next_lookup_logs_in_again() {
    let sim = start(fleet::generate(SystemKind::Oneview, 2, 2));
    let ov = backend(&sim, "");
    ov.logout().await;
    assert_eq!(count(&sim, LOGOUT), 0, "no session, nothing to delete");
    ov.find(&name("hpe-synergy-001")).await.unwrap();
    ov.logout().await;
    assert_eq!(count(&sim, LOGOUT), 1);
    ov.find(&name("hpe-synergy-001")).await.unwrap();
    assert_eq!(count(&sim, LOGIN), 2);
    assert_eq!(count(&sim, PROFILES), 2, "no 401 round trip after logout");
}

#[tokio::test]
async fn old_api_versions_with_top_level_connections_give_the_same_nics() {
    let fleet = fleet::generate(SystemKind::Oneview, 4, 3);
    let sim = start(fleet.clone());
    let ov = backend(&sim, "api_version = 300");
    let r = ov.find(&name(&fleet[0].name)).await.unwrap();
    let macs: Vec<String> = r[0].nics.iter().map(|n| n.mac.to_string()).collect();
    let want: Vec<String> = fleet[0].nics.iter().map(|n| n.mac.clone()).collect();
    assert_eq!(macs, want);
}

#[tokio::test]
async fn unsupported_api_version_is_a_status_error() {
    let sim = start(fleet::generate(SystemKind::Oneview, 4, 1));
    let ov = backend(&sim, "api_version = 99999");
    match ov.find(&name("hpe-synergy-001")).await.unwrap_err() {
        BackendError::Status {
            status, endpoint, ..
        } => {
            assert_eq!(status, 412);
            assert_eq!(endpoint, LOGIN);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn upstream_errors_keep_status_and_retry_after() {
    let sim = start(fleet::generate(SystemKind::Oneview, 4, 1));
    let ov = backend(&sim, "");
    sim.shared.set_faults(Faults {
        endpoint: Some(HARDWARE.into()),
        error_rate: 1.0,
        error_status: Some(503),
        retry_after_s: Some(7),
        ..Faults::default()
    });
    let err = ov.find(&name("hpe-synergy-001")).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert!(
        matches!(err, BackendError::Status { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls_verifies_with_the_ca_bundle_and_fails_without() {
    let fleet = fleet::generate(SystemKind::Oneview, 6, 2);
    let sim = rig::start(SystemKind::Oneview, fleet.clone(), true);
    let ca = rig::CaFile::new(&sim);

    let trusted = backend(&sim, &ca.line());
    let r = trusted.find(&name(&fleet[1].name)).await.unwrap();
    assert_eq!(
        r[0].bmc.as_ref().unwrap().address.to_string(),
        fleet[1].bmc_address
    );

    let untrusted = backend(&sim, "");
    let err = untrusted.find(&name(&fleet[1].name)).await.unwrap_err();
    assert!(matches!(err, BackendError::Connect { .. }), "{err:?}");
}

/// The simulator's own protocol rules, as a raw client sees them.
#[tokio::test]
async fn simulator_speaks_oneview_on_the_wire() {
    let fleet = vec![
        server("web-01", 1, true),
        server("WEB-01", 2, true),
        server("db 01", 3, true),
    ];
    let sim = start(fleet);
    let http = reqwest::Client::new();
    let url = |p: &str| sim.base_url.join(p).unwrap();
    let v: serde_json::Value = http
        .get(url("/rest/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["currentVersion"], 8600);

    let login = |version: &'static str| {
        http.post(url("/rest/login-sessions"))
            .header("X-API-Version", version)
            .json(&serde_json::json!({"userName": "admin", "password": "sim-password", "loginMsgAck": true}))
            .send()
    };
    assert_eq!(login("99999").await.unwrap().status(), 412);
    let body: serde_json::Value = login("4000").await.unwrap().json().await.unwrap();
    let token = body["sessionID"].as_str().unwrap().to_owned();

    let get = |path: &str, auth: Option<&str>| {
        let mut req = http.get(url(path)).header("X-API-Version", "4000");
        if let Some(a) = auth {
            req = req.header("auth", a);
        }
        req.send()
    };
    let status = |path: &'static str| {
        let token = token.clone();
        let get = &get;
        async move { get(path, Some(&token)).await.unwrap().status().as_u16() }
    };
    let denied = get("/rest/server-profiles", None).await.unwrap();
    assert_eq!(denied.status(), 401);
    let denied: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(denied["errorCode"], "AUTHORIZATION");
    assert_eq!(
        status("/rest/server-profiles?filter=%22name%3D%27x%22").await,
        400
    );
    assert_eq!(
        status("/rest/server-profiles?filter=name%3D%27x").await,
        400
    );
    assert_eq!(status("/rest/no-such-thing").await, 404);
    assert_eq!(status("/rest/server-hardware/nope").await, 404);
    let no_version = http
        .get(url("/rest/server-profiles"))
        .header("auth", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 404);

    // Go-SDK style '+' for spaces; case-sensitive `==`; pages with relative links.
    let page = |path: String| {
        let token = token.clone();
        let get = &get;
        async move {
            let r = get(&path, Some(&token)).await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let db = page("/rest/server-profiles?filter=\"name='db+01'\"".into()).await;
    assert_eq!(db["total"], 1);
    assert_eq!(db["members"][0]["name"], "db 01");
    let cs = page("/rest/server-profiles?filter=%22name%3D%3D%27web-01%27%22".into()).await;
    assert_eq!(cs["total"], 1);
    let first =
        page("/rest/server-profiles?start=0&count=1&filter=%22name%3D%27WeB-01%27%22".into()).await;
    assert_eq!(
        (first["count"].clone(), first["total"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(first["prevPageUri"], serde_json::Value::Null);
    let next = first["nextPageUri"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with("/rest/server-profiles?start=1&count=1&filter="),
        "{next}"
    );
    let second = page(next).await;
    assert_eq!(second["members"][0]["name"], "WEB-01");
    assert_eq!(second["nextPageUri"], serde_json::Value::Null);
    assert!(second["prevPageUri"].as_str().unwrap().contains("start=0"));

    let logout = http
        .delete(url("/rest/login-sessions"))
        .header("X-API-Version", "4000")
        .header("auth", &token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(status("/rest/server-profiles").await, 401);
}
