//! The UCS Manager backend against the UCSM simulator over real HTTP: every field against the
//! fleet, the call budget, session reuse/expiry/logout, and the error mapping.

use std::sync::Arc;
use std::time::Duration;

mod vendor_rig;
use vendor_rig as rig;
use vendor_rig::{count, name, total};

use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::{fleet, Faults, SimHandle, SimNic, SimServer};
use inventory_gateway::vendors::{Backend, BackendError};

fn start(fleet: Vec<SimServer>) -> SimHandle {
    rig::start(SystemKind::Ucsm, fleet, false)
}

fn backend_with(sim: &SimHandle, password: &str, extra: &str) -> Arc<dyn Backend> {
    rig::backend(sim, "ucs-a", password, extra)
}

fn backend(sim: &SimHandle) -> Arc<dyn Backend> {
    backend_with(sim, "sim-password", "")
}

fn calls(sim: &SimHandle) -> std::collections::BTreeMap<String, u64> {
    rig::counters(sim)
}

fn server(name: &str, macs: &[&str], bmc: &str) -> SimServer {
    SimServer {
        name: name.into(),
        serial_number: format!("FCH{}", name.len()),
        model: "UCSB-B200-M5".into(),
        power_state: "on".into(),
        bmc_address: bmc.into(),
        decoy_bmc_addresses: vec![],
        nics: macs
            .iter()
            .enumerate()
            .map(|(i, m)| SimNic {
                name: format!("eth{i}"),
                mac: (*m).into(),
                boot: i == 0,
            })
            .collect(),
        assigned: true,
        nics_from_bmc: false,
    }
}

/// A raw XML API exchange, to look at what the simulator publishes.
async fn raw(sim: &SimHandle, body: String) -> String {
    reqwest::Client::new()
        .post(sim.base_url.join("nuova").unwrap())
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn raw_cookie(sim: &SimHandle) -> String {
    let login = raw(
        sim,
        r#"<aaaLogin inName="admin" inPassword="sim-password" />"#.into(),
    )
    .await;
    let start = login.find("outCookie=\"").unwrap() + "outCookie=\"".len();
    login[start..start + login[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn every_field_of_every_server_matches_the_fleet_within_the_call_budget() {
    let fleet = fleet::generate(SystemKind::Ucsm, 7, 20);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    for (i, s) in fleet.iter().enumerate() {
        let before = total(&sim);
        let found = backend.find(&name(&s.name)).await.unwrap();
        let used = total(&sim) - before;
        // Login once, then the profile query and the hardware query.
        let budget = if i == 0 { 3 } else { 2 };
        assert_eq!(used, budget, "{}: upstream calls {:?}", s.name, calls(&sim));
        // The same-named template in org-Templates (first server) is not a second match.
        assert_eq!(found.len(), 1, "{}", s.name);
        let r = &found[0];
        assert_eq!(r.name, s.name);
        assert_eq!(r.system, SystemKind::Ucsm);
        assert_eq!(r.system_name, "ucs-a");
        assert!(r.system_id.starts_with("org-root"), "{}", r.system_id);
        assert!(r.system_id.ends_with(&format!("/ls-{}", s.name)));
        assert_eq!(r.serial_number.as_deref(), Some(s.serial_number.as_str()));
        assert_eq!(r.model.as_deref(), Some(s.model.as_str()));
        assert_eq!(r.power_state.as_deref(), Some(s.power_state.as_str()));
        let bmc = r.bmc.as_ref().unwrap();
        assert_eq!(bmc.address.to_string(), s.bmc_address, "{}", s.name);
        assert_eq!(bmc.kind.as_deref(), Some("cimc"));
        rig::assert_nics_match(r, s);
        assert_eq!(
            r.boot_mac.map(|m| m.to_string()).as_deref(),
            s.boot_mac(),
            "{}",
            s.name
        );
        assert!(!r.stale);
    }
    assert_eq!(count(&sim, "aaaLogin"), 1);
    assert_eq!(count(&sim, "configResolveClass"), 20);
    assert_eq!(count(&sim, "configResolveDns"), 20);
    assert!(
        fleet
            .iter()
            .any(|s| s.boot_mac() != Some(s.nics[0].mac.as_str())),
        "the fleet must exercise a boot vNIC other than the first"
    );
}

#[tokio::test]
async fn both_cimc_ip_paths_and_derived_macs_are_exercised() {
    let fleet = fleet::generate(SystemKind::Ucsm, 7, 20);
    let sim = start(fleet.clone());
    let cookie = raw_cookie(&sim).await;
    let profile_ips = |sp: &str| {
        format!(
            r#"<configResolveChildren cookie="{cookie}" classId="vnicIpV4Addr" inDn="{sp}" inHierarchical="false"/>"#
        )
    };
    // ucs-sp-004 publishes no profile IP: only its blade's mgmt/if-1 has the CIMC address.
    let ips = raw(&sim, profile_ips("org-root/ls-ucs-sp-004")).await;
    assert!(ips.contains(r#"addr="0.0.0.0""#), "{ips}");
    assert!(!ips.contains(&fleet[3].bmc_address), "{ips}");
    // ucs-sp-001 has a pooled profile IP, and its CIMC interface shows another address.
    let ips = raw(&sim, profile_ips("org-root/org-Prod/ls-ucs-sp-001")).await;
    assert!(ips.contains(&fleet[0].bmc_address), "{ips}");
    // ucs-sp-005's second vNIC is `derived`: its MAC is only on the adapter.
    let vnics = raw(
        &sim,
        format!(
            r#"<configResolveChildren cookie="{cookie}" classId="vnicEther" inDn="org-root/org-Prod/ls-ucs-sp-005" inHierarchical="false"/>"#
        ),
    )
    .await;
    assert!(vnics.contains(r#"addr="derived""#), "{vnics}");
    assert!(!vnics.contains(&fleet[4].nics[1].mac.to_ascii_uppercase()));

    let backend = backend(&sim);
    for i in [0, 1, 3, 4] {
        let r = backend.find(&name(&fleet[i].name)).await.unwrap().remove(0);
        assert_eq!(r.bmc.unwrap().address.to_string(), fleet[i].bmc_address);
        let macs: Vec<String> = r.nics.iter().map(|n| n.mac.to_string()).collect();
        let want: Vec<String> = fleet[i].nics.iter().map(|n| n.mac.clone()).collect();
        assert_eq!(macs, want);
    }
}

#[tokio::test]
async fn concurrent_cold_lookups_log_in_once() {
    let fleet = fleet::generate(SystemKind::Ucsm, 3, 10);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    let lookups = (0..50).map(|i| {
        let backend = backend.clone();
        let n = name(&fleet[i % fleet.len()].name);
        tokio::spawn(async move { backend.find(&n).await })
    });
    for answer in futures::future::join_all(lookups).await {
        assert_eq!(answer.unwrap().unwrap().len(), 1);
    }
    assert_eq!(count(&sim, "aaaLogin"), 1, "{:?}", calls(&sim));
    assert_eq!(count(&sim, "configResolveClass"), 50);
}

#[tokio::test]
async fn names_match_case_insensitively_and_misses_cost_one_call() {
    let fleet = fleet::generate(SystemKind::Ucsm, 7, 5);
    let sim = start(fleet);
    let backend = backend(&sim);
    let found = backend.find(&name("UCS-Sp-003")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "ucs-sp-003", "as the vendor spells it");

    let before = total(&sim);
    assert!(backend.find(&name("ucs-sp-999")).await.unwrap().is_empty());
    // A regex that is not anchored would also match ucs-sp-0030 and similar; "ucs-sp-00" must not.
    assert!(backend.find(&name("ucs-sp-00")).await.unwrap().is_empty());
    // `.` is escaped: "ucs.sp-001" is not "ucs-sp-001".
    assert!(backend.find(&name("ucs.sp-001")).await.unwrap().is_empty());
    assert_eq!(total(&sim) - before, 3, "one class query per miss");

    // UCS profile names are 2–32 characters: anything else is a miss without a call.
    let before = total(&sim);
    assert!(backend.find(&name("u")).await.unwrap().is_empty());
    assert!(backend
        .find(&name(&"u".repeat(33)))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(total(&sim), before);
}

#[tokio::test]
async fn the_same_name_in_several_orgs_gives_every_record_in_two_calls() {
    // Names are unique per org only; the simulator puts repeats in other orgs.
    let sim = start(vec![
        server(
            "dup-01",
            &["00:25:b5:00:00:01", "00:25:b5:00:00:02"],
            "10.20.0.11",
        ),
        server("other", &["00:25:b5:00:00:03"], "10.20.0.12"),
        server("dup-01", &["00:25:b5:00:00:04"], "10.20.0.13"),
        server("DUP-01", &["00:25:b5:00:00:05"], "10.20.0.14"),
    ]);
    let backend = backend(&sim);
    let _ = backend.find(&name("other")).await.unwrap();
    let before = total(&sim);
    let mut found = backend.find(&name("dup-01")).await.unwrap();
    assert_eq!(total(&sim) - before, 2, "{:?}", calls(&sim));
    assert_eq!(found.len(), 3);
    found.sort_by(|a, b| {
        a.bmc
            .as_ref()
            .unwrap()
            .address
            .to_string()
            .cmp(&b.bmc.as_ref().unwrap().address.to_string())
    });
    let ids: std::collections::HashSet<_> = found.iter().map(|r| r.system_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let macs: Vec<Vec<String>> = found
        .iter()
        .map(|r| r.nics.iter().map(|n| n.mac.to_string()).collect())
        .collect();
    assert_eq!(
        macs,
        [
            vec!["00:25:b5:00:00:01", "00:25:b5:00:00:02"],
            vec!["00:25:b5:00:00:04"],
            vec!["00:25:b5:00:00:05"]
        ]
    );
    assert_eq!(found[2].name, "DUP-01", "as the vendor spells it");
}

#[tokio::test]
async fn an_expired_session_costs_exactly_one_relogin() {
    let fleet = fleet::generate(SystemKind::Ucsm, 7, 5);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    backend.find(&name(&fleet[0].name)).await.unwrap();
    sim.shared.expire_sessions();
    let found = backend.find(&name(&fleet[1].name)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(count(&sim, "aaaLogin"), 2);
    // First attempt refused with 552, retried once on the new session.
    assert_eq!(count(&sim, "configResolveClass"), 3);
    backend.find(&name(&fleet[2].name)).await.unwrap();
    assert_eq!(count(&sim, "aaaLogin"), 2, "the new session is reused");
}

#[tokio::test]
async fn logout_ends_the_session_and_the_next_lookup_logs_in_again() {
    let fleet = fleet::generate(SystemKind::Ucsm, 7, 3);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    backend.logout().await;
    assert_eq!(count(&sim, "aaaLogout"), 0, "no session, nothing to end");
    backend.find(&name(&fleet[0].name)).await.unwrap();
    backend.logout().await;
    assert_eq!(count(&sim, "aaaLogout"), 1);
    backend.find(&name(&fleet[0].name)).await.unwrap();
    assert_eq!(count(&sim, "aaaLogin"), 2);
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error() {
    let sim = start(fleet::generate(SystemKind::Ucsm, 7, 3));
    let backend = backend_with(&sim, "wrong & <bad>", "");
    let err = backend.find(&name("ucs-sp-001")).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("551"), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "no password in errors: {err}"
    );
}

#[tokio::test]
async fn an_unassociated_profile_is_unassigned() {
    let mut lonely = server("lonely-01", &["00:25:b5:00:00:09"], "10.20.0.20");
    lonely.assigned = false;
    let sim = start(vec![lonely]);
    let err = backend(&sim).find(&name("lonely-01")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Unassigned { profile, .. } if profile.ends_with("/ls-lonely-01")),
        "{err}"
    );
    assert_eq!(count(&sim, "configResolveDns"), 0, "no hardware to ask for");
}

#[tokio::test]
async fn http_errors_keep_status_and_retry_after() {
    let sim = start(fleet::generate(SystemKind::Ucsm, 7, 3));
    let backend = backend(&sim);
    sim.shared.set_faults(Faults {
        endpoint: Some("configResolveClass".into()),
        error_rate: 1.0,
        error_status: Some(503),
        retry_after_s: Some(7),
        ..Faults::default()
    });
    let err = backend.find(&name("ucs-sp-001")).await.unwrap_err();
    match &err {
        BackendError::Status {
            status,
            retry_after,
            ..
        } => {
            assert_eq!(*status, 503);
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected Status, got {other}"),
    }
    assert!(err.is_transient());
}

#[tokio::test]
async fn tls_is_verified_against_the_configured_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = rig::start(
        SystemKind::Ucsm,
        fleet::generate(SystemKind::Ucsm, 7, 3),
        true,
    );
    let ca = rig::CaFile::new(&sim);

    let untrusted = backend(&sim).find(&name("ucs-sp-001")).await.unwrap_err();
    assert!(
        matches!(untrusted, BackendError::Connect { .. }),
        "{untrusted}"
    );
    let trusted = backend_with(&sim, "sim-password", &ca.line());
    assert_eq!(trusted.find(&name("ucs-sp-001")).await.unwrap().len(), 1);
}
