//! The shared session manager seen from the simulators' counters, for every backend kind: a
//! refusing appliance gets one login attempt per backoff window however many lookups arrive,
//! sessions are reused, and an expired session costs exactly one new login.

mod vendor_rig;

use std::time::Duration;

use futures::future::join_all;
use inventory_gateway::domain::SystemKind;
use inventory_gateway::sim::fleet;
use inventory_gateway::vendors::BackendError;
use vendor_rig::{backend, count, name, start};

const KINDS: [SystemKind; 3] = [SystemKind::Oneview, SystemKind::Ucsm, SystemKind::Ome];

fn login_key(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Oneview => "POST /rest/login-sessions",
        SystemKind::Ucsm | SystemKind::UcsCentral => "aaaLogin",
        SystemKind::Ome => "POST /api/SessionService/Sessions",
        SystemKind::Intersight => unreachable!("Intersight has no sessions"),
        SystemKind::Redfish => "POST /redfish/v1/SessionService/Sessions",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_appliance_gets_one_login_attempt_per_backoff_window() {
    for kind in KINDS {
        let servers = fleet::generate(kind, 3, 4);
        let sim = start(kind, servers.clone(), false);
        let b = backend(&sim, "refused", "wrong-password", "login_backoff = \"1s\"");
        let target = name(&servers[0].name);
        for wave in 0..2 {
            let results = join_all((0..20).map(|_| b.find(&target))).await;
            for r in &results {
                assert!(
                    matches!(r, Err(BackendError::Auth { .. })),
                    "{kind} wave {wave}: {r:?}"
                );
            }
        }
        assert_eq!(
            count(&sim, login_key(kind)),
            1,
            "{kind}: 40 lookups inside one backoff window"
        );
        // Once the window has passed, the next lookup tries again (and only one of them).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let results = join_all((0..20).map(|_| b.find(&target))).await;
        assert!(results.iter().all(|r| r.is_err()));
        assert_eq!(count(&sim, login_key(kind)), 2, "{kind}: after the window");
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_reused_and_an_expired_one_costs_one_relogin() {
    for kind in KINDS {
        let servers = fleet::generate(kind, 3, 4);
        let sim = start(kind, servers.clone(), false);
        let b = backend(&sim, "ok", inventory_gateway::sim::DEFAULT_PASSWORD, "");
        for s in &servers {
            assert_eq!(b.find(&name(&s.name)).await.unwrap().len(), 1, "{kind}");
        }
        assert_eq!(
            count(&sim, login_key(kind)),
            1,
            "{kind}: one session reused"
        );
        sim.shared.expire_sessions();
        let names: Vec<_> = servers.iter().map(|s| name(&s.name)).collect();
        let results = join_all(names.iter().map(|n| b.find(n))).await;
        assert!(results.iter().all(|r| r.is_ok()), "{kind}: {results:?}");
        assert_eq!(count(&sim, login_key(kind)), 2, "{kind}: one re-login");
        b.logout().await;
        sim.stop().await;
    }
}
