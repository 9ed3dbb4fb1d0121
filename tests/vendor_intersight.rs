//! The Intersight backend against the Intersight simulator over real HTTP(S): every field, the
//! signature (RSA and EC keys; a wrong key refused), the call budget per cold lookup read from
//! the simulators' counters, standalone servers' NICs from their CIMCs (with and without
//! `$expand`, a dead CIMC, a refused CIMC login, no CIMC login), `$top`/`$skip` paging, 429
//! with `Retry-After`, unassigned profiles, and hostile names kept inside the `$filter` literal.

use std::collections::HashMap;
use std::sync::Arc;

mod vendor_rig;
use vendor_rig as rig;
use vendor_rig::name;

use inventory_gateway::config::Config;
use inventory_gateway::domain::{BmcAddress, MacAddress, ServerRecord, SystemKind};
use inventory_gateway::sim::intersight::query::{parse_query, Predicate};
use inventory_gateway::sim::intersight::UNASSIGNED_PROFILE;
use inventory_gateway::sim::{self, fleet, Faults, SimHandle, SimOptions, SimServer};
use inventory_gateway::vendors::intersight::signing::{ApiKey, PublicKey};
use inventory_gateway::vendors::intersight::{NO_ADAPTER_INVENTORY, NO_HOST_INTERFACES};
use inventory_gateway::vendors::{build_backend, odata, Backend, BackendError};
use secrecy::ExposeSecret;

const SUMMARIES: &str = "GET /api/v1/compute/PhysicalSummaries";
const PROFILES: &str = "GET /api/v1/server/Profiles";
const HOST_ETH: &str = "GET /api/v1/adapter/HostEthInterfaces";

const RSA_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/intersight/rsa-pkcs1.pem"
);
const RSA_PUB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/intersight/rsa-public.pem"
);
const EC_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/intersight/ec-sec1.pem"
);
const EC_PUB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/intersight/ec-public.pem"
);

struct Rig {
    sim: SimHandle,
    backend: Arc<dyn Backend>,
    _ca: Option<rig::CaFile>,
}

/// A simulator with its generated key pair, and a backend signing with it and reading its
/// CIMCs with the simulators' login.
fn start(fleet: Vec<SimServer>, page_size: u32, tls: bool) -> Rig {
    let mut opts = SimOptions::new(SystemKind::Intersight, fleet);
    opts.tls = tls;
    start_with(opts, page_size, Some("sim-password"))
}

/// `cimc_password`: None = no `[systems.cimc]`.
fn start_with(opts: SimOptions, page_size: u32, cimc_password: Option<&str>) -> Rig {
    let tls = opts.tls;
    let sim = sim::start(opts).expect("simulator starts");
    let key = sim.api_key.clone().expect("the simulator generated a key");
    let mut login = format!(
        "api_key_id = {:?}\nprivate_key = '''\n{}'''",
        key.key_id,
        key.private_pem.expose_secret()
    );
    if let (Some(password), Some(cimc)) = (cimc_password, sim.members.first()) {
        login.push_str(&format!(
            "\n[systems.cimc]\nusername = \"admin\"\npassword = {password:?}\nscheme = \"{}\"\nport = {}\n",
            cimc.base_url.scheme(),
            cimc.addr.port()
        ));
    }
    with_login(sim, &login, page_size, tls)
}

fn with_login(sim: SimHandle, login: &str, page_size: u32, tls: bool) -> Rig {
    let ca = tls.then(|| rig::CaFile::new(&sim));
    let ca_line = ca.as_ref().map(rig::CaFile::line).unwrap_or_default();
    // The system's own keys first; `login` may open the [systems.cimc] table (which trusts the
    // same CA: every simulator's certificate chains to it).
    let (own, cimc) = login.split_once("\n[systems.cimc]").unwrap_or((login, ""));
    let cimc = if cimc.is_empty() {
        String::new()
    } else {
        format!("[systems.cimc]{cimc}{ca_line}\n")
    };
    let toml = format!(
        "[[systems]]\nname = \"intersight-lab\"\nkind = \"intersight\"\nendpoint = \"{}\"\n\
         {own}\npage_size = {page_size}\ntimeout = \"5s\"\n{ca_line}\n{cimc}",
        sim.base_url,
    );
    let config = Config::from_toml_str(&toml).expect("valid system config");
    let backend = build_backend(&config.systems[0]).expect("backend builds");
    Rig {
        sim,
        backend,
        _ca: ca,
    }
}

/// A simulator that accepts only `public` under `key_id`.
fn sim_accepting(fleet: Vec<SimServer>, key_id: &str, public: &str) -> SimHandle {
    let pem = std::fs::read_to_string(public).expect("public key fixture");
    let mut opts = SimOptions::new(SystemKind::Intersight, fleet);
    opts.api_keys = vec![(
        key_id.to_owned(),
        PublicKey::from_spki_pem(&pem).expect("public key parses"),
    )];
    sim::start(opts).expect("simulator starts")
}

impl Rig {
    fn count(&self, key: &str) -> u64 {
        rig::count(&self.sim, key)
    }

    async fn find(&self, server: &str) -> Result<Vec<ServerRecord>, BackendError> {
        self.backend.find(&name(server)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_every_server_matches_the_fleet_over_tls() {
    // 20 servers: physical names, profile names (every fourth), standalone rack servers whose
    // NICs only their CIMC knows (every fifth), blades and rack units.
    let servers = fleet::generate(SystemKind::Intersight, 42, 20);
    let rig = start(servers.clone(), 8, true);
    let mut standalone = 0;
    for want in &servers {
        let got = rig.find(&want.name).await.unwrap();
        assert_eq!(got.len(), 1, "{}", want.name);
        let got = &got[0];
        assert_eq!(got.name, want.name);
        assert_eq!(got.system, SystemKind::Intersight);
        assert_eq!(got.system_name, "intersight-lab");
        assert!(
            got.system_id
                .starts_with("/api/v1/compute/PhysicalSummaries/65"),
            "{}",
            got.system_id
        );
        assert_eq!(
            got.serial_number.as_deref(),
            Some(want.serial_number.as_str())
        );
        assert_eq!(got.model.as_deref(), Some(want.model.as_str()));
        assert_eq!(got.power_state.as_deref(), Some(want.power_state.as_str()));
        let bmc = got.bmc.as_ref().unwrap();
        assert_eq!(bmc.address, BmcAddress::parse(&want.bmc_address).unwrap());
        assert_eq!(bmc.kind.as_deref(), Some("cimc"));
        rig::assert_nics_match(got, want);
        assert_eq!(
            got.boot_mac,
            want.boot_mac().map(|m| MacAddress::parse(m).unwrap())
        );
        assert_eq!(got.nics_unavailable, None);
        if want.nics_from_bmc {
            standalone += 1;
            assert!(got.nics[0]
                .location
                .as_deref()
                .unwrap()
                .starts_with("/redfish/v1/Systems/"));
        }
    }
    assert_eq!(standalone, 4, "servers 5, 10, 15, 20 are standalone");
    assert_eq!(rig.sim.members.len(), 4, "one CIMC each");
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_lookup_costs_two_calls_by_server_name_and_four_by_profile() {
    let servers = fleet::generate(SystemKind::Intersight, 5, 8);
    let rig = start(servers.clone(), 8, false);
    let cost = |before: HashMap<String, u64>| {
        let now = rig::counters(&rig.sim);
        [SUMMARIES, PROFILES, HOST_ETH]
            .map(|k| now.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0))
    };
    let snapshot = || {
        rig::counters(&rig.sim)
            .into_iter()
            .collect::<HashMap<_, _>>()
    };

    // Server 1 (index 0) is known by its physical name.
    let before = snapshot();
    rig.find(&servers[0].name).await.unwrap();
    assert_eq!(
        cost(before),
        [1, 0, 1],
        "by server name: summary + interfaces"
    );

    // Server 4 (index 3) is known by its profile name.
    let before = snapshot();
    let r = rig.find(&servers[3].name).await.unwrap();
    assert_eq!(r[0].name, servers[3].name);
    assert_eq!(
        cost(before),
        [2, 1, 1],
        "by profile: miss, profile, summary + interfaces"
    );

    // Server 5 (index 4) is standalone: its CIMC adds one call, on the CIMC.
    let before = snapshot();
    let cimc = &rig.sim.members[0];
    rig.find(&servers[4].name).await.unwrap();
    assert_eq!(
        cost(before),
        [1, 0, 1],
        "standalone: summary + (empty) interfaces…"
    );
    assert_eq!(rig::total(cimc), 1, "…+ one $expand read of the CIMC");

    let before = snapshot();
    assert!(rig.find("intersight-999").await.unwrap().is_empty());
    assert_eq!(
        cost(before),
        [1, 1, 0],
        "a miss: the server query and the profile query"
    );
    eprintln!(
        "Intersight cold lookup: 2 calls by server name, 3 for a standalone server (CIMC), \
         4 by profile name, 2 for a miss"
    );
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_and_ec_keys_from_files_both_sign() {
    let servers = fleet::generate(SystemKind::Intersight, 9, 2);
    for (key, public) in [(RSA_KEY, RSA_PUB), (EC_KEY, EC_PUB)] {
        let sim = sim_accepting(servers.clone(), "acct/user/key", public);
        let login = format!("api_key_id = \"acct/user/key\"\nprivate_key_file = {key:?}");
        let rig = with_login(sim, &login, 8, false);
        let got = rig.find(&servers[0].name).await.unwrap();
        assert_eq!(got.len(), 1, "{key}");
        rig.sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_intersight_does_not_know_is_a_permanent_auth_failure() {
    let servers = fleet::generate(SystemKind::Intersight, 9, 2);
    // The right key id, the wrong private key.
    let sim = sim_accepting(servers.clone(), "acct/user/key", EC_PUB);
    let login = format!("api_key_id = \"acct/user/key\"\nprivate_key_file = {RSA_KEY:?}");
    let rig = with_login(sim, &login, 8, false);
    let err = rig.find(&servers[0].name).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("acct/user/key"), "{err}");
    assert_eq!(rig.count(SUMMARIES), 1);
    rig.sim.stop().await;

    // An unknown key id.
    let sim = sim_accepting(servers.clone(), "another/key/id", EC_PUB);
    let login = format!("api_key_id = \"acct/user/key\"\nprivate_key_file = {EC_KEY:?}");
    let rig = with_login(sim, &login, 8, false);
    let err = rig.find(&servers[0].name).await.unwrap_err();
    assert!(matches!(err, BackendError::Auth { .. }), "{err:?}");
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_are_paged_with_top_and_skip() {
    let mut servers = fleet::generate(SystemKind::Intersight, 3, 1);
    servers[0].nics = (0..5)
        .map(|p| sim::SimNic {
            name: format!("eth{p}"),
            mac: format!("00:5d:73:00:00:0{p}"),
            boot: p == 0,
        })
        .collect();
    let rig = start(servers.clone(), 2, false);
    let got = rig.find(&servers[0].name).await.unwrap();
    rig::assert_nics_match(&got[0], &servers[0]);
    // 2 + 2 + 1: the short page ends it.
    assert_eq!(rig.count(HOST_ETH), 3);
    rig.sim.stop().await;

    // 4 interfaces, pages of 2: `Count` ends it after two full pages (no empty third page).
    servers[0].nics.truncate(4);
    let rig = start(servers.clone(), 2, false);
    let got = rig.find(&servers[0].name).await.unwrap();
    rig::assert_nics_match(&got[0], &servers[0]);
    assert_eq!(rig.count(HOST_ETH), 2);
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_of_one_name_are_both_returned() {
    let mut servers = fleet::generate(SystemKind::Intersight, 3, 3);
    servers[2].name = servers[0].name.clone();
    let rig = start(servers.clone(), 8, false);
    let got = rig.find(&servers[0].name).await.unwrap();
    assert_eq!(got.len(), 2, "the caller decides about ambiguity");
    assert_ne!(got[0].system_id, got[1].system_id);
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_a_429_with_its_retry_after() {
    let servers = fleet::generate(SystemKind::Intersight, 3, 2);
    let rig = start(servers.clone(), 8, false);
    rig.sim.shared.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(429),
        retry_after_s: Some(7),
        ..Faults::default()
    });
    let err = rig.find(&servers[0].name).await.unwrap_err();
    assert!(err.is_transient() && err.is_throttled(), "{err:?}");
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassigned_profile_is_unassigned_not_missing() {
    let servers = fleet::generate(SystemKind::Intersight, 3, 2);
    let rig = start(servers, 8, false);
    let err = rig.find(UNASSIGNED_PROFILE).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Unassigned { profile, .. } if profile == UNASSIGNED_PROFILE),
        "{err:?}"
    );
    rig.sim.stop().await;
}

/// The values a caller (or an appliance) could use to break out of a `$filter` literal or the
/// query string. `ServerName` refuses all of them at the edge; the query builder must still
/// keep each inside its literal, as the simulator's parser (form-decoding like Intersight's
/// front end) reads it back.
#[test]
fn hostile_values_stay_inside_the_filter_literal() {
    let corpus = [
        "x' or Name ne '",
        "x' and Ancestors/any(t:t/Moid eq 'y')",
        "a&$top=1000&$skip=0",
        "a#frag",
        "a+b c",
        "%27%20or%20%27",
        "''",
        "é\u{0}\n",
        "a');DROP",
    ];
    for value in corpus {
        let query = format!(
            "$filter={}&$top=8",
            odata::encode_query_value(&odata::filter_eq("Name", value))
        );
        let parsed = parse_query(&query).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(
            parsed.filter,
            vec![Predicate::Eq("Name".into(), value.to_owned())],
            "{value:?}"
        );
        assert_eq!(parsed.top, Some(8), "{value:?}");
    }
}

#[test]
fn the_config_refuses_half_an_api_key_and_passwords() {
    let base =
        "[[systems]]\nname = \"i\"\nkind = \"intersight\"\nendpoint = \"https://intersight.com\"\n";
    for (extra, key) in [
        (format!("private_key_file = {EC_KEY:?}"), "api_key_id"),
        ("api_key_id = \"a/b/c\"".to_owned(), "private_key_file"),
        (
            format!("api_key_id = \"a/b/c\"\nprivate_key_file = {EC_KEY:?}\nusername = \"admin\"\npassword = \"x\""),
            "username",
        ),
        (
            "api_key_id = \"a/b/c\"\nprivate_key_file = \"/nonexistent/key.pem\"".to_owned(),
            "private_key_file",
        ),
    ] {
        let err = Config::from_toml_str(&format!("{base}{extra}")).unwrap_err();
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
    // A key that is not a key fails when the backend is built, naming the file's key.
    let dir = std::env::temp_dir().join(format!("igw-key-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("key.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let config = Config::from_toml_str(&format!(
        "{base}api_key_id = \"a/b/c\"\nprivate_key_file = {:?}",
        bad.display().to_string()
    ))
    .unwrap();
    let err = build_backend(&config.systems[0]).err().unwrap();
    assert!(matches!(err, BackendError::Config { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
    // The generated demo key reads back.
    assert!(ApiKey::from_pem("k", &ApiKey::generate_ec_pem().unwrap()).is_ok());
}

fn standalone_fleet() -> Vec<SimServer> {
    fleet::generate(SystemKind::Intersight, 11, 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cimc_refusing_expand_is_read_one_interface_at_a_time() {
    let servers = standalone_fleet();
    let mut opts = SimOptions::new(SystemKind::Intersight, servers.clone());
    opts.cimc_expand = false;
    let rig = start_with(opts, 8, Some("sim-password"));
    let got = rig.find(&servers[4].name).await.unwrap();
    rig::assert_nics_match(&got[0], &servers[4]);
    assert_eq!(
        rig::total(&rig.sim.members[0]),
        2 + servers[4].nics.len() as u64,
        "the refused $expand (501), the collection, then each member"
    );
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cimc_login_the_record_says_why_it_has_no_nics() {
    let servers = standalone_fleet();
    let opts = SimOptions::new(SystemKind::Intersight, servers.clone());
    let rig = start_with(opts, 8, None);
    let got = rig.find(&servers[4].name).await.unwrap();
    assert!(got[0].nics.is_empty());
    assert_eq!(got[0].boot_mac, None);
    assert_eq!(
        got[0].nics_unavailable.as_deref(),
        Some(NO_ADAPTER_INVENTORY)
    );
    assert_eq!(rig::total(&rig.sim.members[0]), 0, "no CIMC is asked");
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cimc_fails_its_server_only_and_never_the_system() {
    let servers = standalone_fleet();
    let opts = SimOptions::new(SystemKind::Intersight, servers.clone());
    let rig = start_with(opts, 8, Some("sim-password"));
    rig.sim.members[0].shared.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        ..Faults::default()
    });
    let err = rig.find(&servers[4].name).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Bmc { server, address, .. }
            if *server == servers[4].name && *address == servers[4].bmc_address),
        "{err:?}"
    );
    assert!(err.is_transient(), "a 503 may pass: {err:?}");
    assert!(
        !err.is_system_failure(),
        "Intersight itself answered: {err:?}"
    );
    assert!(
        err.public_text().contains("the BMC of"),
        "{}",
        err.public_text()
    );
    // The other servers are unaffected.
    assert_eq!(rig.find(&servers[0].name).await.unwrap().len(), 1);
    rig.sim.stop().await;

    // A CIMC that refuses the login: an Auth failure of that BMC, not of Intersight.
    let opts = SimOptions::new(SystemKind::Intersight, servers.clone());
    let rig = start_with(opts, 8, Some("wrong-password"));
    let err = rig.find(&servers[4].name).await.unwrap_err();
    match &err {
        BackendError::Bmc { source, .. } => {
            assert!(matches!(**source, BackendError::Auth { .. }), "{err:?}")
        }
        other => panic!("expected a BMC failure, got {other:?}"),
    }
    rig.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fabric_managed_server_without_interfaces_never_costs_a_cimc_call() {
    let mut servers = standalone_fleet();
    // Server 1: managed through a fabric, no vNIC deployed yet.
    servers[0].nics.clear();
    let opts = SimOptions::new(SystemKind::Intersight, servers.clone());
    let rig = start_with(opts, 8, Some("sim-password"));
    let got = rig.find(&servers[0].name).await.unwrap();
    assert!(got[0].nics.is_empty());
    assert_eq!(got[0].nics_unavailable.as_deref(), Some(NO_HOST_INTERFACES));
    assert_eq!(rig::total(&rig.sim.members[0]), 0, "no CIMC is asked");
    rig.sim.stop().await;
}
