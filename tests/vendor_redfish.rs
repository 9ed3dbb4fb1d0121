//! The Redfish backend (`kind = "redfish"`) and `verify_bmc` against simulated BMCs over real
//! HTTP(S): every make's system path and MAC location, names configured or learned from the
//! BMC, one session per BMC (Basic where there are none), a sweep with a dead BMC, and the
//! refused-credential rules that keep an iDRAC from locking the gateway out.

use std::sync::Arc;

mod vendor_rig;
use vendor_rig as rig;
use vendor_rig::name;

use inventory_gateway::config::Config;
use inventory_gateway::domain::{SystemKind, Vendor};
use inventory_gateway::sim::redfish::Flavour;
use inventory_gateway::sim::{self, fleet, Faults, SimHandle, SimOptions};
use inventory_gateway::vendors::{build_backend, Backend, BackendError};

const LOGIN: &str = "POST /redfish/v1/SessionService/Sessions";
const LOGOUT: &str = "DELETE /redfish/v1/SessionService/Sessions/{id}";
const REFUSED: &str = "login refused";
const SYSTEMS: &str = "GET /redfish/v1/Systems";

fn bmcs(count: usize, tls: bool) -> SimHandle {
    let mut opts = SimOptions::new(
        SystemKind::Redfish,
        fleet::generate(SystemKind::Redfish, 7, count),
    );
    opts.tls = tls;
    sim::start(opts).expect("BMC simulators start")
}

/// A `redfish` system over `sim`'s BMCs (every other one named in the configuration, the rest
/// named by their HostName); `bmc_extra` goes into `[systems.bmc]`, `entry` into BMC `i`'s entry.
fn backend(
    sim: &SimHandle,
    password: &str,
    ca: Option<&rig::CaFile>,
    entry: impl Fn(usize) -> String,
    extra: &str,
) -> Arc<dyn Backend> {
    let first = &sim.members[0];
    let mut toml = format!(
        "[[systems]]\nname = \"racks\"\nkind = \"redfish\"\ntimeout = \"5s\"\n{extra}\n\
         [systems.bmc]\nusername = \"admin\"\npassword = {password:?}\nscheme = \"{}\"\nport = {}\n{}\n",
        first.base_url.scheme(),
        first.addr.port(),
        ca.map(rig::CaFile::line).unwrap_or_default(),
    );
    for (i, (member, server)) in sim
        .members
        .iter()
        .zip(sim.shared.fleet().iter())
        .enumerate()
    {
        toml.push_str(&format!(
            "[[systems.bmcs]]\naddress = \"{}\"\n{}{}\n",
            member.addr.ip(),
            if i % 2 == 0 {
                format!("name = {:?}\n", server.name)
            } else {
                String::new()
            },
            entry(i)
        ));
    }
    let config = Config::from_toml_str(&toml).expect("valid redfish config");
    build_backend(&config.systems[0]).expect("backend builds")
}

fn vendor_of(f: Flavour) -> Vendor {
    match f {
        Flavour::Hpe => Vendor::Hpe,
        Flavour::Dell => Vendor::Dell,
        Flavour::Cisco => Vendor::Cisco,
        Flavour::Supermicro => Vendor::Supermicro,
        Flavour::Lenovo => Vendor::Lenovo,
        Flavour::OpenBmc => Vendor::Other,
    }
}

fn sum(sim: &SimHandle, key: &str) -> u64 {
    sim.members.iter().map(|m| rig::count(m, key)).sum()
}

#[tokio::test]
async fn every_make_answers_what_its_bmc_holds_at_the_path_it_lists() {
    let sim = bmcs(12, true);
    let ca = rig::CaFile::new(&sim.members[0]);
    let backend = backend(&sim, "sim-password", Some(&ca), |_| String::new(), "");
    for (server, member) in sim.shared.fleet().iter().zip(&sim.members) {
        let found = backend.find(&name(&server.name)).await.expect("lookup");
        assert_eq!(found.len(), 1, "{}", server.name);
        let r = &found[0];
        let flavour = Flavour::of_model(&server.model);
        assert_eq!(r.name, server.name);
        assert_eq!(r.system, SystemKind::Redfish);
        assert_eq!(r.vendor, vendor_of(flavour), "{}", server.model);
        assert_eq!(
            r.serial_number.as_deref(),
            Some(server.serial_number.as_str())
        );
        assert_eq!(r.model.as_deref(), Some(server.model.as_str()));
        assert_eq!(r.power_state.as_deref(), Some(server.power_state.as_str()));
        let bmc = r.bmc.as_ref().expect("bmc");
        assert_eq!(bmc.address.to_string(), member.addr.ip().to_string());
        assert_eq!(
            bmc.redfish_system.as_deref(),
            Some(
                format!(
                    "/redfish/v1/Systems/{}",
                    flavour.system_id(&server.serial_number)
                )
                .as_str()
            )
        );
        assert_eq!(bmc.answered, Some(true));
        let macs: Vec<String> = r.nics.iter().map(|n| n.mac.to_string()).collect();
        let want: Vec<String> = server.nics.iter().map(|n| n.mac.clone()).collect();
        assert_eq!(macs, want, "{} ({flavour:?})", server.name);
        assert_eq!(r.boot_mac.map(|m| m.to_string()), want.first().cloned());
    }
    // Every make is in the fleet, each MAC location and system numbering with it.
    let makes: std::collections::HashSet<_> = sim
        .shared
        .fleet()
        .iter()
        .map(|s| Flavour::of_model(&s.model))
        .collect();
    assert_eq!(makes.len(), 6);
    assert!(backend
        .find(&name("rack-999"))
        .await
        .expect("miss")
        .is_empty());
}

#[tokio::test]
async fn one_session_per_bmc_is_reused_renewed_once_and_ended_and_basic_only_where_there_are_none()
{
    let sim = bmcs(6, false);
    let backend = backend(&sim, "sim-password", None, |_| String::new(), "");
    let fleet = sim.shared.fleet();
    for _ in 0..3 {
        for s in fleet.iter() {
            assert_eq!(backend.find(&name(&s.name)).await.expect("lookup").len(), 1);
        }
    }
    for (s, m) in fleet.iter().zip(&sim.members) {
        let sessions = Flavour::of_model(&s.model).sessions();
        assert_eq!(rig::count(m, LOGIN), u64::from(sessions), "{}", s.name);
        assert_eq!(rig::count(m, REFUSED), 0, "{}", s.name);
    }
    // A BMC that forgot its sessions: one new login, then the read goes on.
    sim.members[0].shared.expire_sessions();
    backend
        .find(&name(&fleet[0].name))
        .await
        .expect("after expiry");
    backend.find(&name(&fleet[0].name)).await.expect("again");
    assert_eq!(rig::count(&sim.members[0], LOGIN), 2);
    backend.logout().await;
    for (s, m) in fleet.iter().zip(&sim.members) {
        let sessions = Flavour::of_model(&s.model).sessions();
        assert_eq!(rig::count(m, LOGOUT), u64::from(sessions), "{}", s.name);
    }
}

#[tokio::test]
async fn a_sweep_lists_every_bmc_and_withholds_the_server_of_a_dead_one() {
    let sim = bmcs(12, false);
    let backend = backend(
        &sim,
        "sim-password",
        None,
        |_| String::new(),
        "bmc_concurrency = 4",
    );
    let fleet = sim.shared.fleet();
    let down = Faults {
        error_rate: 1.0,
        error_status: Some(500),
        ..Faults::default()
    };
    // BMC 3 has no configured name and fails before it ever answered: its server could be
    // called anything, so the index must answer no name of this system itself.
    sim.members[3].shared.set_faults(down.clone());
    let listing = backend.list().await.expect("a sweep with an unread BMC");
    assert_eq!(listing.servers.len(), 11);
    assert!(listing.withholds_all && listing.withheld.is_empty());
    sim.members[3].shared.set_faults(Faults::default());
    let listing = backend.list().await.expect("sweep");
    assert!(!listing.withholds_all);
    let mut names: Vec<_> = listing
        .servers
        .iter()
        .map(|l| l.record.name.clone())
        .collect();
    names.sort();
    let mut want: Vec<_> = fleet.iter().map(|s| s.name.clone()).collect();
    want.sort();
    assert_eq!(names, want);
    assert!(listing.withheld.is_empty());

    sim.members[3].shared.set_faults(down);
    let listing = backend.list().await.expect("a sweep with one BMC down");
    assert_eq!(listing.servers.len(), 11);
    // Known by now: only its own name is withheld.
    assert_eq!(listing.withheld, vec![fleet[3].name.to_ascii_lowercase()]);
    assert!(!listing.withholds_all);
    // Its own lookup fails as that BMC's failure, not the system's.
    let err = backend.find(&name(&fleet[3].name)).await.unwrap_err();
    assert!(matches!(err, BackendError::Bmc { .. }), "{err}");
    assert!(!err.is_system_failure());
}

#[tokio::test]
async fn a_wrong_password_costs_three_refusals_in_all_and_never_locks_an_idrac_out() {
    let sim = bmcs(12, false);
    let backend = backend(&sim, "wrong-password", None, |_| String::new(), "");
    let fleet = sim.shared.fleet();
    // A sweep reads 8 BMCs at once; then every server is asked for, twice.
    let swept = backend.list().await;
    assert!(swept.is_err(), "no BMC accepted the login");
    for _ in 0..2 {
        for s in fleet.iter() {
            let err = backend.find(&name(&s.name)).await.unwrap_err();
            assert!(
                matches!(&err, BackendError::Bmc { source, .. } if matches!(**source, BackendError::Auth { .. })),
                "{err}"
            );
        }
    }
    assert_eq!(
        sum(&sim, REFUSED),
        3,
        "{:?}",
        sim.members.iter().map(rig::counters).collect::<Vec<_>>()
    );
    for m in &sim.members {
        assert!(rig::count(m, REFUSED) <= 1);
        assert_eq!(rig::count(m, "locked out"), 0);
    }
    let status = backend.credentials();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, "default");
    assert_eq!(status[0].refused_by, 3);
    assert!(status[0].suspended_until.is_some());
}

#[tokio::test]
async fn a_bmc_that_refuses_its_own_credential_is_not_sent_it_again() {
    let sim = bmcs(6, false);
    let dir = std::env::temp_dir().join(format!("igw-rf-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let creds = dir.join("bmc-credentials.toml");
    std::fs::write(
        &creds,
        "[dell-root]\nusername = \"root\"\npassword = \"calvin\"\n",
    )
    .expect("credentials file");
    let extra = format!("credentials_file = {:?}", creds.display().to_string());
    // BMC 1 (an iDRAC) is configured with a credential it does not accept.
    let backend = backend(
        &sim,
        "sim-password",
        None,
        |i| {
            if i == 1 {
                "credentials = \"dell-root\"".into()
            } else {
                String::new()
            }
        },
        &extra,
    );
    let fleet = sim.shared.fleet();
    assert_eq!(Flavour::of_model(&fleet[1].model), Flavour::Dell);
    let listing = backend.list().await.expect("the other BMCs answer");
    assert_eq!(listing.servers.len(), 5);
    for _ in 0..5 {
        assert!(backend.find(&name(&fleet[0].name)).await.is_ok());
        let _ = backend.list().await;
    }
    assert_eq!(rig::count(&sim.members[1], REFUSED), 1);
    assert_eq!(rig::count(&sim.members[1], "locked out"), 0);
    let status = backend.credentials();
    let dell = status
        .iter()
        .find(|c| c.name == "dell-root")
        .expect("listed");
    assert_eq!((dell.refused_by, dell.suspended_until), (1, None));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn verify_bmc_answers_the_system_path_a_managed_servers_bmc_lists() {
    // Four OneView servers; the BMCs of the first three are simulated on 127.0.4.k, one of
    // them an OpenBMC numbering its system `system`; the fourth's BMC does not answer.
    let mut servers = fleet::generate(SystemKind::Oneview, 3, 4);
    for (k, s) in servers.iter_mut().enumerate() {
        s.bmc_address = format!("127.0.4.{}", if k == 3 { 60 } else { k + 1 });
    }
    servers[1].model = "Mt.Jade".into();
    let oneview = rig::start(SystemKind::Oneview, servers.clone(), false);
    let mut opts = SimOptions::new(SystemKind::Redfish, servers[..3].to_vec());
    opts.tls = false;
    let bmcs = sim::start(opts).expect("BMCs");
    let port = bmcs.members[0].addr.port();
    let extra = format!(
        "verify_bmc = true\n[systems.bmc]\nusername = \"admin\"\npassword = \"sim-password\"\n\
         scheme = \"http\"\nport = {port}\n"
    );
    let backend = rig::backend(&oneview, "ov", "sim-password", &extra);
    let plain = rig::backend(&oneview, "ov", "sim-password", "");
    let expect = [
        Some("/redfish/v1/Systems/1"),
        Some("/redfish/v1/Systems/system"),
        Some("/redfish/v1/Systems/1"),
        None,
    ];
    for (s, want) in servers.iter().zip(expect) {
        let r = backend
            .find(&name(&s.name))
            .await
            .expect("lookup")
            .remove(0);
        let bmc = r.bmc.clone().expect("bmc");
        assert_eq!(bmc.redfish_system.as_deref(), want, "{}", s.name);
        assert_eq!(bmc.answered, Some(want.is_some()), "{}", s.name);
        // Everything else is the manager's answer.
        let mut unverified = plain.find(&name(&s.name)).await.expect("plain").remove(0);
        unverified.fetched_at = r.fetched_at;
        unverified.bmc = Some(bmc);
        assert_eq!(unverified, r);
    }
    // A path once read is kept: the BMC is not asked again.
    let before = rig::count(&bmcs.members[0], SYSTEMS);
    backend.find(&name(&servers[0].name)).await.expect("again");
    assert_eq!(rig::count(&bmcs.members[0], SYSTEMS), before);
    // A sweep carries the paths into the index.
    let listing = backend.list().await.expect("sweep");
    let swept = listing
        .servers
        .iter()
        .find(|l| l.record.name == servers[1].name)
        .expect("listed");
    assert_eq!(
        swept
            .record
            .bmc
            .as_ref()
            .and_then(|b| b.redfish_system.as_deref()),
        Some("/redfish/v1/Systems/system")
    );
}

#[test]
fn configurations_that_cannot_work_are_refused_at_load() {
    let bmc = "[systems.bmc]\nusername = \"root\"\npassword = \"x\"\n";
    let entry = "[[systems.bmcs]]\naddress = \"10.0.0.5\"\n";
    let cases = [
        (
            format!("[[systems]]\nname = \"r\"\nkind = \"redfish\"\nendpoint = \"https://x\"\n{bmc}{entry}"),
            "has no endpoint",
        ),
        (
            format!("[[systems]]\nname = \"r\"\nkind = \"redfish\"\n{entry}"),
            "needs [systems.bmc]",
        ),
        (
            format!("[[systems]]\nname = \"r\"\nkind = \"redfish\"\n{bmc}"),
            "needs `bmcs` or `inventory_file`",
        ),
        (
            format!("[[systems]]\nname = \"r\"\nkind = \"redfish\"\nusername = \"u\"\npassword = \"p\"\n{bmc}{entry}"),
            "not username/password",
        ),
        (
            "[[systems]]\nname = \"o\"\nkind = \"oneview\"\nendpoint = \"https://x\"\nusername = \"u\"\npassword = \"p\"\nverify_bmc = true\n".to_owned(),
            "verify_bmc needs [systems.bmc]",
        ),
        (
            format!("[[systems]]\nname = \"o\"\nkind = \"oneview\"\nendpoint = \"https://x\"\nusername = \"u\"\npassword = \"p\"\n{entry}"),
            "apply to kind = \"redfish\" only",
        ),
    ];
    for (toml, why) in cases {
        let err = Config::from_toml_str(&toml).unwrap_err().to_string();
        assert!(err.contains(why), "{err}\n--- for ---\n{toml}");
    }
    // A name given twice, or an address that is not one, is refused when the system is built.
    let twice = format!(
        "[[systems]]\nname = \"r\"\nkind = \"redfish\"\n{bmc}{entry}name = \"a\"\n\
         [[systems.bmcs]]\naddress = \"10.0.0.6\"\nname = \"A\"\n"
    );
    let config = Config::from_toml_str(&twice).expect("loads");
    let err = build_backend(&config.systems[0])
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("given twice"), "{err}");
}

/// The simulated iDRAC does lock out, so the tests above that it never does are not vacuous.
#[tokio::test]
async fn the_simulated_idrac_locks_out_after_three_failed_logins_in_a_minute() {
    let sim = bmcs(2, false);
    let dell = &sim.members[1];
    assert_eq!(
        Flavour::of_model(&sim.shared.fleet()[1].model),
        Flavour::Dell
    );
    let url = format!("{}redfish/v1/SessionService/Sessions", dell.base_url);
    let login = |password: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({"UserName": "admin", "Password": password}))
                .send()
                .await
                .expect("answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(login("sim-password").await, 201);
    for _ in 0..3 {
        assert_eq!(login("wrong").await, 401);
    }
    assert_eq!(rig::count(dell, "locked out"), 1);
    assert_eq!(
        login("sim-password").await,
        401,
        "locked out: even the right password"
    );
}

/// A password rotated on some BMCs but not in the gateway: the credential was trusted (accepted
/// elsewhere), and still no more than 3 BMCs ever see it refused, however many a sweep reads at
/// once.
#[tokio::test]
async fn a_password_rotated_on_the_bmcs_costs_at_most_three_refusals_too() {
    let start = |password: &str, count: usize| {
        let mut opts = SimOptions::new(
            SystemKind::Redfish,
            fleet::generate(SystemKind::Redfish, 11, count),
        );
        opts.password = password.into();
        sim::start(opts).expect("BMCs")
    };
    let kept = start("sim-password", 3);
    let rotated = start("rotated-password", 9);
    let mut toml = format!(
        "[[systems]]\nname = \"racks\"\nkind = \"redfish\"\ntimeout = \"5s\"\n\
         [systems.bmc]\nusername = \"admin\"\npassword = \"sim-password\"\nscheme = \"http\"\nport = {}\n",
        kept.members[0].addr.port()
    );
    for (prefix, sim) in [("kept", &kept), ("rotated", &rotated)] {
        for (i, m) in sim.members.iter().enumerate() {
            toml.push_str(&format!(
                "[[systems.bmcs]]\nname = \"{prefix}-{i}\"\naddress = \"{}\"\nport = {}\n",
                m.addr.ip(),
                m.addr.port()
            ));
        }
    }
    let config = Config::from_toml_str(&toml).expect("config");
    let backend = build_backend(&config.systems[0]).expect("backend");
    // Sessions open on the BMCs that kept the password: the credential is trusted.
    for i in 0..3 {
        let found = backend
            .find(&name(&format!("kept-{i}")))
            .await
            .expect("trusted");
        assert_eq!(found.len(), 1);
    }
    let listing = backend.list().await.expect("the kept BMCs answer");
    assert_eq!(listing.servers.len(), 3);
    for _ in 0..2 {
        let _ = backend.list().await;
    }
    assert_eq!(
        sum(&rotated, REFUSED),
        3,
        "{:?}",
        rotated
            .members
            .iter()
            .map(rig::counters)
            .collect::<Vec<_>>()
    );
    assert_eq!(sum(&kept, REFUSED), 0);
    assert!(rotated.members.iter().all(|m| rig::count(m, REFUSED) <= 1));
    assert!(backend.credentials()[0].suspended_until.is_some());
}

/// What a lookup costs a BMC, from its own counters: cold (service root, login, Systems, the
/// system, its interfaces expanded) and warm (session open, path known: the system and its
/// interfaces); a make without `$expand` pays one GET per interface.
#[tokio::test]
async fn a_lookup_costs_five_calls_cold_and_two_warm() {
    let sim = bmcs(4, false);
    let backend = backend(&sim, "sim-password", None, |_| String::new(), "");
    let fleet = sim.shared.fleet();
    let total = |m: &SimHandle| rig::total(m) - rig::count(m, REFUSED);
    // rack-001: an iLO (sessions, $expand).
    backend.find(&name(&fleet[0].name)).await.expect("cold");
    assert_eq!(
        total(&sim.members[0]),
        5,
        "{:?}",
        rig::counters(&sim.members[0])
    );
    backend.find(&name(&fleet[0].name)).await.expect("warm");
    assert_eq!(total(&sim.members[0]), 7);
    // rack-003: a CIMC (no $expand here): 1 + one GET per interface instead of 1.
    backend.find(&name(&fleet[2].name)).await.expect("cold");
    let nics = fleet[2].nics.len() as u64;
    assert_eq!(
        total(&sim.members[2]),
        4 + 1 + nics,
        "{:?}",
        rig::counters(&sim.members[2])
    );
}
