//! `Backend::list` (a fleet sweep) of every kind against its simulator: the sweep holds every
//! server the simulator serves, each record equal to what `find` answers for its name (and for
//! each alias), at a cost counted from the simulators' counters that grows with the number of
//! pages, not of servers, except where the vendor has no bulk read (OME NIC inventory,
//! Intersight standalone servers' CIMCs).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod vendor_rig;
use vendor_rig::name;

use inventory_gateway::config::Config;
use inventory_gateway::demo;
use inventory_gateway::domain::{ServerRecord, SystemKind};
use inventory_gateway::sim::{self, fleet, SimHandle, SimOptions};
use inventory_gateway::vendors::{build_backend, Backend, Listed};

struct Rig {
    sim: SimHandle,
    backend: Arc<dyn Backend>,
}

fn start(kind: SystemKind, servers: usize) -> Rig {
    let opts = SimOptions::new(kind, fleet::generate(kind, 21, servers));
    let sim = sim::start(opts).expect("simulator starts");
    let toml = demo::systems_toml(std::slice::from_ref(&sim), None);
    let config = Config::from_toml_str(&toml).expect("valid system config");
    let backend = build_backend(&config.systems[0]).expect("backend builds");
    Rig { sim, backend }
}

/// Calls per endpoint on the simulator and the systems it fronts, summed by endpoint.
fn calls(sim: &SimHandle) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in std::iter::once(sim).chain(&sim.members) {
        for (k, v) in s.shared.counters() {
            *out.entry(k).or_default() += v;
        }
    }
    out
}

fn reset(sim: &SimHandle) {
    sim.shared.reset();
    for m in &sim.members {
        m.shared.reset();
    }
}

/// A record without the time it was read.
fn timeless(r: &ServerRecord) -> ServerRecord {
    let mut r = r.clone();
    r.fetched_at = chrono::DateTime::default();
    r
}

/// Every listed record is what `find` answers under its name and each alias (the name
/// aside), and the sweep holds exactly the servers the simulator serves.
async fn check_against_find(rig: &Rig, listed: &[Listed]) {
    let served: BTreeSet<String> = rig
        .sim
        .shared
        .fleet()
        .iter()
        .map(|s| s.name.to_ascii_lowercase())
        .collect();
    let got: BTreeSet<String> = listed
        .iter()
        .map(|l| l.record.name.to_ascii_lowercase())
        .collect();
    assert_eq!(got, served, "{}: the sweep's servers", rig.sim.kind);
    assert_eq!(got.len(), listed.len(), "one record per server");
    for l in listed {
        let found = rig.backend.find(&name(&l.record.name)).await.unwrap();
        assert_eq!(found.len(), 1, "{}", l.record.name);
        assert_eq!(
            timeless(&found[0]),
            timeless(&l.record),
            "{}",
            l.record.name
        );
        for alias in &l.aliases {
            let found = rig.backend.find(&name(alias)).await.unwrap();
            let mut by_alias = timeless(&found[0]);
            by_alias.name = l.record.name.clone();
            assert_eq!(by_alias, timeless(&l.record), "alias {alias}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_sweeps_what_find_answers() {
    for kind in demo::KINDS {
        let rig = start(kind, 24);
        let listed = rig.backend.list().await.unwrap().servers;
        check_against_find(&rig, &listed).await;
        let aliases: usize = listed.iter().map(|l| l.aliases.len()).sum();
        eprintln!(
            "{kind}: sweep of {} servers, {aliases} aliases",
            listed.len()
        );
        rig.sim.stop().await;
    }
}

/// Calls per endpoint one sweep must make.
type Expected = &'static [(&'static str, u64)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_costs_pages_not_servers() {
    // (kind, servers, the calls one sweep makes once sessions are open)
    let cases: [(SystemKind, usize, Expected); 5] = [
        (
            SystemKind::Oneview,
            600,
            // 256 asked per page, but the appliance (like the simulator) may answer fewer: it
            // pages at 64, so ⌈600/64⌉ = 10 pages of each collection, no per-server call.
            &[
                ("GET /rest/server-profiles", 10),
                ("GET /rest/server-hardware", 10),
                ("GET /rest/server-hardware/{id}", 0),
            ],
        ),
        (
            SystemKind::Intersight,
            1200,
            // 1,000 per page; one CIMC read per standalone server (16 at most in the simulator).
            &[
                ("GET /api/v1/compute/PhysicalSummaries", 2),
                ("GET /api/v1/server/Profiles", 1),
                ("GET /redfish/v1/Systems/{serial}/EthernetInterfaces", 16),
            ],
        ),
        (
            SystemKind::Ucsm,
            300,
            // One class query; hardware DNs in batches of 200 (checked below).
            &[("configResolveClass", 1)],
        ),
        (
            SystemKind::UcsCentral,
            300,
            // Central: its domains and its profiles (2); each of its 3 domains: one class query.
            &[("configResolveClass", 5)],
        ),
        (
            SystemKind::Ome,
            120,
            // 500 per page; NIC inventory (no bulk read) only for devices whose
            // LastInventoryTime moved since the first sweep: none.
            &[
                ("GET /api/ProfileService/Profiles", 1),
                ("GET /api/DeviceService/Devices", 1),
                ("GET /api/DeviceService/Devices({id})/InventoryDetails", 0),
            ],
        ),
    ];
    for (kind, servers, want) in cases {
        let rig = start(kind, servers);
        // Open the session (and, for OME, read every NIC inventory) first: a sweep is
        // measured as it runs every few minutes.
        rig.backend.list().await.unwrap();
        reset(&rig.sim);
        let listed = rig.backend.list().await.unwrap().servers;
        assert_eq!(listed.len(), servers, "{kind}");
        let counted = calls(&rig.sim);
        for (endpoint, n) in want {
            assert_eq!(
                counted.get(*endpoint).copied().unwrap_or(0),
                *n,
                "{kind} {endpoint}: {counted:?}"
            );
        }
        // A profile's hardware is a handful of DNs (blade or rack unit, its management
        // interface, adapter interfaces): batches of 200, never one call per server.
        let dns_calls = counted.get("configResolveDns").copied().unwrap_or(0);
        assert!(
            dns_calls <= (servers * 8).div_ceil(200) as u64,
            "{kind}: {counted:?}"
        );
        let total: u64 = counted.values().sum();
        eprintln!("{kind}: sweep of {servers} servers = {total} calls {counted:?}");
        rig.sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ome_sweeps_read_nic_inventory_only_when_it_changed() {
    const INVENTORY: &str = "GET /api/DeviceService/Devices({id})/InventoryDetails";
    let rig = start(SystemKind::Ome, 30);
    rig.backend.list().await.unwrap();
    assert_eq!(
        calls(&rig.sim).get(INVENTORY).copied(),
        Some(30),
        "first sweep: all"
    );

    // OME takes a new inventory of one server: its NICs changed, and so its LastInventoryTime.
    let mut servers = (*rig.sim.shared.fleet()).clone();
    servers[7].nics[0].mac = "b0:26:28:ff:ff:01".into();
    if let Ok(mut fleet) = rig.sim.shared.fleet.write() {
        *fleet = Arc::new(servers.clone());
    }
    reset(&rig.sim);
    let listed = rig.backend.list().await.unwrap().servers;
    assert_eq!(
        calls(&rig.sim).get(INVENTORY).copied(),
        Some(1),
        "only the changed one"
    );
    let changed = listed
        .iter()
        .find(|l| l.record.name == servers[7].name)
        .expect("still swept");
    assert_eq!(changed.record.nics[0].mac.to_string(), "b0:26:28:ff:ff:01");
    rig.sim.stop().await;
}
