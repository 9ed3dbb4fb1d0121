//! The UCS Central backend against the Central simulator and its UCS Manager domains over real
//! HTTP: every field against the fleet, the calls per lookup, sessions per Central and per
//! domain, a dead domain, profiles Central alone knows, and names that must not widen the
//! server-side filter.

use std::sync::Arc;

mod vendor_rig;
use vendor_rig as rig;
use vendor_rig::{count, name, total};

use inventory_gateway::config::Config;
use inventory_gateway::domain::SystemKind;
use inventory_gateway::resilience::BreakerState;
use inventory_gateway::sim::{self, fleet, ucs_central, Faults, SimHandle, SimOptions, SimServer};
use inventory_gateway::vendors::{build_backend, Backend, BackendError};

const DOMAINS: usize = 3;

fn start(fleet: Vec<SimServer>) -> SimHandle {
    let mut opts = SimOptions::new(SystemKind::UcsCentral, fleet);
    opts.domains = DOMAINS;
    sim::start(opts).expect("Central simulator starts")
}

/// The `[[systems]]` entry a user writes for a UCS Central; `extra` goes into `[systems]`.
fn backend_with(sim: &SimHandle, central_pw: &str, ucsm_pw: &str, extra: &str) -> Arc<dyn Backend> {
    let domain = &sim.members[0];
    let toml = format!(
        "[[systems]]\nname = \"central\"\nkind = \"ucs-central\"\nendpoint = \"{}\"\n\
         username = \"admin\"\npassword = {central_pw:?}\n{extra}\n\
         [systems.ucsm]\nusername = \"admin\"\npassword = {ucsm_pw:?}\nscheme = \"http\"\nport = {}\n",
        sim.base_url,
        domain.addr.port()
    );
    let config = Config::from_toml_str(&toml).expect("valid ucs-central config");
    build_backend(&config.systems[0]).expect("backend builds")
}

fn backend(sim: &SimHandle) -> Arc<dyn Backend> {
    backend_with(sim, "sim-password", "sim-password", "")
}

/// The domain (index) that holds fleet server `i`.
fn domain_of(i: usize) -> usize {
    i % DOMAINS
}

fn all_calls(sim: &SimHandle) -> u64 {
    total(sim) + sim.members.iter().map(total).sum::<u64>()
}

#[tokio::test]
async fn every_field_of_every_server_matches_the_fleet_in_three_dependent_calls() {
    let fleet = fleet::generate(SystemKind::UcsCentral, 7, 12);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    let mut domains_used = [false; DOMAINS];
    for (i, s) in fleet.iter().enumerate() {
        let d = domain_of(i);
        let (central_before, domain_before) = (total(&sim), total(&sim.members[d]));
        let found = backend.find(&name(&s.name)).await.unwrap();
        let central_used = total(&sim) - central_before;
        let domain_used = total(&sim.members[d]) - domain_before;
        // Central: its profile query (plus login and the domain list the first time); the
        // domain: the ucsm backend's two calls (plus its login the first time).
        assert_eq!(central_used, if i == 0 { 3 } else { 1 }, "{}", s.name);
        assert_eq!(
            domain_used,
            if domains_used[d] { 2 } else { 3 },
            "{}",
            s.name
        );
        domains_used[d] = true;
        assert_eq!(found.len(), 1, "{}", s.name);
        let r = &found[0];
        assert_eq!(r.name, s.name);
        assert_eq!(r.system, SystemKind::UcsCentral);
        assert_eq!(r.system_name, "central");
        let address = ucs_central::domain_address(d).to_string();
        assert!(
            r.system_id.starts_with(&format!("{address}/org-root")),
            "{}",
            r.system_id
        );
        assert!(r.system_id.ends_with(&format!("/ls-{}", s.name)));
        assert_eq!(r.serial_number.as_deref(), Some(s.serial_number.as_str()));
        assert_eq!(r.model.as_deref(), Some(s.model.as_str()));
        assert_eq!(r.power_state.as_deref(), Some(s.power_state.as_str()));
        let bmc = r.bmc.as_ref().unwrap();
        assert_eq!(bmc.address.to_string(), s.bmc_address);
        assert_eq!(bmc.kind.as_deref(), Some("cimc"));
        rig::assert_nics_match(r, s);
        assert_eq!(r.boot_mac.map(|m| m.to_string()).as_deref(), s.boot_mac());
    }
    assert_eq!(count(&sim, "aaaLogin"), 1);
    for d in &sim.members {
        assert_eq!(count(d, "aaaLogin"), 1, "one session per domain");
    }
    // The profile query is filtered on the server: never the whole lsServer class.
    assert_eq!(count(&sim, "configResolveClass"), fleet.len() as u64 + 1);
    let members = backend.members();
    assert_eq!(members.len(), DOMAINS);
    assert!(members
        .iter()
        .all(|m| m.breaker == BreakerState::Closed && m.last_success.is_some()));
}

#[tokio::test]
async fn names_match_case_insensitively_and_never_widen_the_filter() {
    let fleet = fleet::generate(SystemKind::UcsCentral, 7, 6);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    let upper = fleet[1].name.to_ascii_uppercase();
    let found = backend.find(&name(&upper)).await.unwrap();
    assert_eq!(found[0].name, fleet[1].name);
    // `.` is a regex wildcard in UCS filters: it must go out escaped, so `ucs.central-002`
    // finds nothing although `ucs-central-002` exists.
    let domain_calls: u64 = sim.members.iter().map(total).sum();
    for hostile in [
        fleet[1].name.replacen('-', ".", 1),
        "ucs-central-00.".to_owned(),
        "...".to_owned(),
        "ucs-central-002:".to_owned(),
        "x".repeat(33),
    ] {
        let before = total(&sim);
        let found = backend.find(&name(&hostile)).await.unwrap();
        assert!(found.is_empty(), "{hostile}: {found:?}");
        // A miss costs Central one call at most (none when the name cannot be a profile's)
        // and the domains nothing.
        assert!(total(&sim) - before <= 1, "{hostile}");
    }
    assert_eq!(sim.members.iter().map(total).sum::<u64>(), domain_calls);
}

#[tokio::test]
async fn sessions_are_reused_and_renewed_once_after_expiry_per_system() {
    let fleet = fleet::generate(SystemKind::UcsCentral, 7, 6);
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    backend.find(&name(&fleet[0].name)).await.unwrap();
    backend.find(&name(&fleet[3].name)).await.unwrap();
    assert_eq!(count(&sim, "aaaLogin"), 1);
    assert_eq!(count(&sim.members[0], "aaaLogin"), 1);
    // Central's session dies: one new login there, none at the domain.
    sim.shared.expire_sessions();
    backend.find(&name(&fleet[0].name)).await.unwrap();
    assert_eq!(count(&sim, "aaaLogin"), 2);
    assert_eq!(count(&sim.members[0], "aaaLogin"), 1);
    // The domain's session dies: one new login there, none at Central.
    sim.members[0].shared.expire_sessions();
    backend.find(&name(&fleet[0].name)).await.unwrap();
    assert_eq!(count(&sim, "aaaLogin"), 2);
    assert_eq!(count(&sim.members[0], "aaaLogin"), 2);
    // Logout ends every session that was opened.
    backend.logout().await;
    assert_eq!(count(&sim, "aaaLogout"), 1);
    assert_eq!(count(&sim.members[0], "aaaLogout"), 1);
    assert_eq!(count(&sim.members[1], "aaaLogout"), 0, "never used");
}

#[tokio::test]
async fn a_dead_domain_fails_its_own_servers_and_opens_only_its_own_breaker() {
    let fleet = fleet::generate(SystemKind::UcsCentral, 7, 6);
    let sim = start(fleet.clone());
    let backend = backend_with(
        &sim,
        "sim-password",
        "sim-password",
        "timeout = \"500ms\"\nbreaker = { consecutive_failures = 2, open_for = \"1h\" }",
    );
    sim.members[0].shared.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        ..Default::default()
    });
    let dead = &fleet[0];
    for attempt in 0..2 {
        match backend.find(&name(&dead.name)).await {
            Err(BackendError::Domain { domain, source, .. }) => {
                assert_eq!(domain, "127.0.1.1");
                assert!(
                    matches!(*source, BackendError::Status { status: 503, .. }),
                    "{attempt}: {source}"
                );
            }
            other => panic!("{attempt}: {other:?}"),
        }
    }
    // Two failures opened the domain's breaker: the next lookup does not reach it.
    let before = total(&sim.members[0]);
    match backend.find(&name(&dead.name)).await {
        Err(e @ BackendError::Domain { .. }) => {
            assert!(e.is_throttled(), "{e}");
            assert!(!e.is_system_failure(), "never counts against Central");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(total(&sim.members[0]), before);
    // The other domains answer as before.
    for alive in [&fleet[1], &fleet[2], &fleet[4]] {
        assert_eq!(backend.find(&name(&alive.name)).await.unwrap().len(), 1);
    }
    let states: Vec<(String, BreakerState)> = backend
        .members()
        .into_iter()
        .map(|m| (m.address, m.breaker))
        .collect();
    assert_eq!(
        states,
        [
            ("127.0.1.1".to_owned(), BreakerState::Open),
            ("127.0.1.2".to_owned(), BreakerState::Closed),
            ("127.0.1.3".to_owned(), BreakerState::Closed),
        ]
    );
}

#[tokio::test]
async fn profiles_central_alone_knows_are_clear_problems_not_misses() {
    let fleet = fleet::generate(SystemKind::UcsCentral, 7, 3);
    let sim = start(fleet);
    let backend = backend(&sim);
    match backend.find(&name(&ucs_central::undeployed_name())).await {
        Err(BackendError::Unassigned { system, profile }) => {
            assert_eq!(system, "central");
            assert!(profile.ends_with("ls-ucs-central-undeployed"), "{profile}");
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..2 {
        match backend.find(&name(&ucs_central::orphan_name())).await {
            Err(BackendError::Domain { domain, source, .. }) => {
                assert_eq!(domain, ucs_central::ORPHAN_DOMAIN);
                assert!(
                    matches!(*source, BackendError::Inconsistent { .. }),
                    "{source}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // The domain list was read once: an unknown address lists again at most every 30 s.
    assert_eq!(count(&sim, "configResolveClass"), 2 + 1 + 1);
    assert_eq!(all_calls(&sim), total(&sim), "no domain was contacted");
}

#[tokio::test]
async fn refused_credentials_name_where_they_were_refused() {
    let fleet = fleet::generate(SystemKind::UcsCentral, 7, 3);
    let sim = start(fleet.clone());
    let central = backend_with(&sim, "wrong", "sim-password", "");
    assert!(matches!(
        central.find(&name(&fleet[0].name)).await,
        Err(BackendError::Auth { .. })
    ));
    let ucsm = backend_with(&sim, "sim-password", "wrong", "");
    match ucsm.find(&name(&fleet[0].name)).await {
        Err(BackendError::Domain { source, .. }) => {
            assert!(matches!(*source, BackendError::Auth { .. }), "{source}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_profile_in_two_domains_gives_both_records() {
    let mut fleet = fleet::generate(SystemKind::UcsCentral, 7, 4);
    // Server 3 lands in domain 0 like server 0: give it server 1's name (domain 1).
    fleet[3].name = fleet[1].name.clone();
    let sim = start(fleet.clone());
    let backend = backend(&sim);
    let found = backend.find(&name(&fleet[1].name)).await.unwrap();
    let mut ids: Vec<String> = found.iter().map(|r| r.system_id.clone()).collect();
    ids.sort();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids[0].starts_with("127.0.1.1/") && ids[1].starts_with("127.0.1.2/"));
}
