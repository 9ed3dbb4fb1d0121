//! The controller's reconcile against a stateful in-memory Kubernetes API (`kube-fake-client`:
//! resourceVersion conflicts, status subresource, label selectors) and the real gateway and
//! simulators over HTTP. The fake API has no watch, so each test plays the watch itself: it
//! lists the hosts and hands the list to admission exactly as the watcher's re-list does
//! (`watchers::resync_hosts`), then reconciles the generators that were woken.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpers::{spawn_stack, StackOptions, TestStack};
use inventory_gateway::controller::admission::{Admission, DEFAULT_COUNTED_STATES};
use inventory_gateway::controller::context::{Context, Settings, FIELD_MANAGER, FINALIZER};
use inventory_gateway::controller::crd::{
    BareMetalHostGenerator, BareMetalHostGeneratorStatus, Phase, REDEPLOY_ANNOTATION,
};
use inventory_gateway::controller::gateway_client::{GatewayClient, GatewayClientConfig};
use inventory_gateway::controller::leader::{LeaderElector, LeaseConfig};
use inventory_gateway::controller::metrics::ControllerMetrics;
use inventory_gateway::controller::objects::{BareMetalHost, NMStateConfig};
use inventory_gateway::controller::reconcile::reconcile;
use inventory_gateway::controller::render::{BmcCredentials, CredentialStore, ProfileRules};
use inventory_gateway::controller::watchers::resync_hosts;
use inventory_gateway::domain::{SystemKind, Vendor};
use inventory_gateway::sim::fleet::{SimNic, SimServer};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use kube_fake_client::{interceptor, ClientBuilder};
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;

const NS: &str = "ztp";

struct Options {
    max: usize,
    delete_on_delete: bool,
    fleets: Option<HashMap<SystemKind, Vec<SimServer>>>,
    gateway_timeout: Duration,
    settings: Settings,
    /// Ask this gateway instead of the stack's (a canned answer).
    gateway_url: Option<Url>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max: 20,
            delete_on_delete: false,
            fleets: None,
            gateway_timeout: Duration::from_secs(5),
            settings: Settings::default(),
            gateway_url: None,
        }
    }
}

/// Hosts created through server-side apply, and hosts the test has marked provisioned: at the
/// instant of every host write, in flight = created - provisioned.
#[derive(Default)]
struct HostLedger {
    created: Mutex<HashSet<String>>,
    provisioned: Mutex<HashSet<String>>,
    peak: AtomicUsize,
}

impl HostLedger {
    fn in_flight(&self) -> usize {
        let created = self.created.lock().unwrap();
        let done = self.provisioned.lock().unwrap();
        created.iter().filter(|h| !done.contains(*h)).count()
    }
}

struct Harness {
    stack: TestStack,
    client: kube::Client,
    ctx: Arc<Context>,
    ledger: Arc<HostLedger>,
}

fn creds(suffix: &str) -> CredentialStore {
    let mut c = CredentialStore::default();
    for (v, user) in [
        (Vendor::Hpe, "ilo-admin"),
        (Vendor::Dell, "root"),
        (Vendor::Cisco, "ipmi-user"),
    ] {
        c.insert(
            v,
            BmcCredentials {
                username: user.into(),
                password: SecretString::from(format!("{user}-secret-pw{suffix}")),
            },
        );
    }
    c
}

async fn harness(opts: Options) -> Harness {
    let mut stack_opts = StackOptions {
        extra: "[server.rate_limit]\nenabled = false\n".into(),
        ..StackOptions::default()
    };
    if let Some(f) = opts.fleets {
        stack_opts.fleets = f;
    }
    let stack = spawn_stack(stack_opts).await;

    let ledger = Arc::new(HostLedger::default());
    let l = ledger.clone();
    let client = ClientBuilder::new()
        .with_resource::<BareMetalHostGenerator>()
        .with_status_subresource::<BareMetalHostGenerator>()
        .with_resource::<BareMetalHost>()
        .with_status_subresource::<BareMetalHost>()
        .with_resource::<NMStateConfig>()
        .with_interceptor_funcs(interceptor::Funcs::new().patch(move |c| {
            if c.patch["kind"] == "BareMetalHost"
                && c.params.field_manager.as_deref() == Some(FIELD_MANAGER)
            {
                l.created
                    .lock()
                    .unwrap()
                    .insert(format!("{}/{}", c.namespace, c.name));
                let now = l.in_flight();
                l.peak.fetch_max(now, Ordering::SeqCst);
            }
            Ok(None)
        }))
        .build()
        .await
        .expect("fake client");

    let url = opts
        .gateway_url
        .clone()
        .unwrap_or_else(|| Url::parse(&stack.gateway).unwrap());
    let mut gw = GatewayClientConfig::new(url);
    gw.token = Some(SecretString::from(helpers::READ_TOKEN));
    gw.timeout = opts.gateway_timeout;
    gw.max_attempts = 2;
    gw.base_backoff = Duration::from_millis(10);
    let gateway = GatewayClient::new(gw).unwrap();
    let mut settings = opts.settings;
    settings.delete_resources_on_delete = opts.delete_on_delete;
    let ctx = Arc::new(Context::new(
        client.clone(),
        gateway,
        Admission::new(opts.max, &DEFAULT_COUNTED_STATES, Duration::from_secs(600)),
        creds(""),
        ProfileRules::default(),
        settings,
        Arc::new(ControllerMetrics::new().unwrap()),
    ));
    let h = Harness {
        stack,
        client,
        ctx,
        ledger,
    };
    // The watch's first list: nothing exists yet.
    h.sync_hosts().await;
    h
}

impl Harness {
    fn generators(&self) -> Api<BareMetalHostGenerator> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn hosts(&self, ns: &str) -> Api<BareMetalHost> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn create(&self, name: &str, spec: Value) -> BareMetalHostGenerator {
        let gen: BareMetalHostGenerator = serde_json::from_value(json!({
            "apiVersion": "infra.example.com/v1alpha1",
            "kind": "BareMetalHostGenerator",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .unwrap();
        self.generators()
            .create(&PostParams::default(), &gen)
            .await
            .unwrap()
    }

    async fn get(&self, name: &str) -> BareMetalHostGenerator {
        self.generators().get(name).await.unwrap()
    }

    async fn status(&self, name: &str) -> BareMetalHostGeneratorStatus {
        self.get(name).await.status.unwrap_or_default()
    }

    /// One reconcile of the generator as it is stored now.
    async fn reconcile(&self, name: &str) -> Action {
        let gen = self.get(name).await;
        reconcile(Arc::new(gen), self.ctx.clone())
            .await
            .unwrap_or_else(|e| panic!("reconcile {name}: {e}"))
    }

    /// Plays the host watch: the current list of hosts, as the watcher's re-list hands it over.
    /// Returns the woken generators' names (namespace stripped), in release order.
    async fn sync_hosts(&self) -> Vec<String> {
        let hosts = Api::<BareMetalHost>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        resync_hosts(&self.ctx, &hosts.items)
            .into_iter()
            .map(|k| k.split_once('/').unwrap().1.to_owned())
            .collect()
    }

    /// Hosts in the store in a counted state (what "in flight" means on the API side).
    async fn counted_hosts_in_store(&self) -> usize {
        let counted: HashSet<&str> = DEFAULT_COUNTED_STATES.into_iter().collect();
        Api::<BareMetalHost>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|h| counted.contains(h.provisioning_state()))
            .count()
    }

    /// What Metal3 would do: move a host to a provisioning state.
    async fn set_host_state(&self, ns: &str, name: &str, state: &str) {
        if state == "provisioned" {
            self.ledger
                .provisioned
                .lock()
                .unwrap()
                .insert(format!("{ns}/{name}"));
        }
        self.hosts(ns)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"provisioning": {"state": state}}})),
            )
            .await
            .unwrap();
    }

    /// The fake API deletes at once (finalizers ignored) and refuses to store a
    /// deletionTimestamp, so the test hands reconcile the generator as a watch shows it after a
    /// DELETE on a real API server: unchanged but for deletionTimestamp. The end-to-end test
    /// covers the real sequence against the emulator.
    async fn reconcile_deleted(&self, name: &str) {
        let mut gen = self.get(name).await;
        assert!(gen.finalizers().iter().any(|f| f == FINALIZER));
        gen.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        reconcile(Arc::new(gen), self.ctx.clone())
            .await
            .unwrap_or_else(|e| panic!("reconcile {name}: {e}"));
    }

    async fn finalizer_removed(&self, name: &str) -> bool {
        !self
            .get(name)
            .await
            .finalizers()
            .iter()
            .any(|f| f == FINALIZER)
    }
}

/// Names of servers the simulators hold with hardware, NICs and a BMC, per kind.
async fn usable_servers(stack: &TestStack, kind: SystemKind) -> Vec<String> {
    stack
        .inventory(kind)
        .await
        .into_iter()
        .filter(|s| {
            s["assigned"] != false
                && s["nics"].as_array().is_some_and(|n| !n.is_empty())
                && s["bmc_address"].as_str().is_some_and(|a| a.contains('.'))
        })
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Server-set metadata removed, Secret data decoded: what a controller's writes decide.
fn comparable(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
        if let Some(Value::Object(data)) = obj.remove("data") {
            let decoded: BTreeMap<String, String> = data
                .into_iter()
                .map(|(k, b64)| {
                    let bytes: k8s_openapi::ByteString = serde_json::from_value(b64).unwrap();
                    (k, String::from_utf8(bytes.0).unwrap())
                })
                .collect();
            obj.insert("stringData".into(), json!(decoded));
        }
    }
    v
}

#[tokio::test]
async fn an_old_operator_cr_reconciles_to_the_objects_it_produced() {
    // The server of the old operator's example, held by the OneView simulator.
    let mut fleets = helpers::generated_fleets(5);
    let nic = |name: &str, mac: &str| SimNic {
        name: name.into(),
        mac: mac.into(),
        boot: false,
    };
    let mut example = fleets[&SystemKind::Oneview][0].clone();
    // Lower case: the old operator named the host after it, so an upper-case name never had one.
    example.name = "ov-srv-0001".into();
    example.bmc_address = "10.10.0.5".into();
    example.decoy_bmc_addresses.clear();
    example.nics = vec![
        nic("nic-0", "aa:bb:cc:00:00:01"),
        nic("nic-1", "aa:bb:cc:00:00:02"),
        nic("nic-2", "aa:bb:cc:00:00:03"),
    ];
    example.assigned = true;
    fleets.get_mut(&SystemKind::Oneview).unwrap().push(example);
    let h = harness(Options {
        fleets: Some(fleets),
        ..Options::default()
    })
    .await;

    // Exactly as users have it today (the old operator's field names, `server_vendor` included).
    h.create(
        "worker-01",
        json!({
            "serverName": "ov-srv-0001", "namespace": "cluster-a", "infraEnv": "cluster-a-env",
            "labels": {"rack": "r12"}, "server_vendor": "HP",
            "networkConfig": {"vlanId": 120, "nicName": "ens1f0", "macIndex": "last"}
        }),
    )
    .await;
    assert_eq!(h.reconcile("worker-01").await, Action::await_change());

    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/controller/hpe-vlan-override.yaml"
    ))
    .unwrap();
    let want: Vec<Value> = golden
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).unwrap())
        .collect();
    let secret = Api::<Secret>::namespaced(h.client.clone(), "cluster-a")
        .get("hp-cred-ov-srv-0001")
        .await
        .unwrap();
    let host = h.hosts("cluster-a").get("ov-srv-0001").await.unwrap();
    let nm = Api::<NMStateConfig>::namespaced(h.client.clone(), "cluster-a")
        .get("nmstate-config-ov-srv-0001")
        .await
        .unwrap();
    assert_eq!(comparable(serde_json::to_value(&secret).unwrap()), want[0]);
    assert_eq!(comparable(serde_json::to_value(&host).unwrap()), want[1]);
    assert_eq!(comparable(serde_json::to_value(&nm).unwrap()), want[2]);

    let gen = h.get("worker-01").await;
    assert!(gen.finalizers().iter().any(|f| f == FINALIZER));
    let st = gen.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Completed));
    assert_eq!(st.mac_address.as_deref(), Some("aa:bb:cc:00:00:03"));
    // The bare IP, as the old operator wrote it; the URL has its own field.
    assert_eq!(st.ipmi_address.as_deref(), Some("10.10.0.5"));
    assert_eq!(
        st.bmc_address.as_deref(),
        Some("redfish-virtualmedia://10.10.0.5/redfish/v1/Systems/1")
    );
    assert_eq!(
        (st.bmh_name.as_deref(), st.bmh_namespace.as_deref()),
        (Some("ov-srv-0001"), Some("cluster-a"))
    );
    assert_eq!(st.server_vendor.as_deref(), Some("HP"));
    assert_eq!(st.vlan_id, Some(120));
    assert_eq!(
        (
            st.selected_nic_name.as_deref(),
            st.selected_mac_index.as_deref()
        ),
        (Some("ens1f0"), Some("2"))
    );
    assert_eq!(st.observed_generation, gen.metadata.generation);
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "HostCreated")
    );

    // Idempotent: a second reconcile changes nothing in the store.
    let before = h.hosts("cluster-a").get("ov-srv-0001").await.unwrap();
    let gen_rv = h.get("worker-01").await.resource_version();
    h.reconcile("worker-01").await;
    let after = h.hosts("cluster-a").get("ov-srv-0001").await.unwrap();
    assert_eq!(before.resource_version(), after.resource_version());
    assert_eq!(gen_rv, h.get("worker-01").await.resource_version());
    h.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_generators_never_exceed_twenty_in_flight() {
    let h = harness(Options {
        max: 20,
        ..Options::default()
    })
    .await;
    let mut servers = Vec::new();
    for kind in [SystemKind::Oneview, SystemKind::Ucsm, SystemKind::Ome] {
        servers.extend(usable_servers(&h.stack, kind).await);
    }
    assert!(
        servers.len() >= 50,
        "need 50 usable servers, have {}",
        servers.len()
    );
    let names: Vec<String> = (0..50).map(|i| format!("gen-{i:02}")).collect();
    for (name, server) in names.iter().zip(&servers) {
        h.create(name, json!({"serverName": server, "infraEnv": "env"}))
            .await;
    }

    let h = Arc::new(h);
    let reconcile_all = |batch: Vec<String>| {
        let h = h.clone();
        async move {
            let tasks: Vec<_> = batch
                .into_iter()
                .map(|n| {
                    let h = h.clone();
                    tokio::spawn(async move { h.reconcile(&n).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    let phases = |h: Arc<Harness>| async move {
        let mut count: HashMap<Option<Phase>, usize> = HashMap::new();
        for g in h.generators().list(&ListParams::default()).await.unwrap() {
            *count.entry(g.status.and_then(|s| s.phase)).or_default() += 1;
        }
        count
    };

    // Step 1: all fifty at once.
    reconcile_all(names.clone()).await;
    let counted = h.counted_hosts_in_store().await;
    assert_eq!(counted, 20, "hosts in the store after the first burst");
    let p = phases(h.clone()).await;
    assert_eq!(p.get(&Some(Phase::Completed)), Some(&20));
    assert_eq!(p.get(&Some(Phase::Buffered)), Some(&30));
    let buffered = h.ctx.admission.buffered();
    assert_eq!(buffered, 30);

    // Then Metal3 provisions hosts a few at a time; each change releases as many generators.
    let mut steps = 0;
    let mut max_seen = counted;
    let mut provisioned: Vec<String> = Vec::new();
    while h.ctx.admission.buffered() > 0 {
        steps += 1;
        assert!(steps < 50, "buffer does not drain");
        let hosts = Api::<BareMetalHost>::namespaced(h.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap();
        let mut fresh: Vec<String> = hosts
            .items
            .iter()
            .filter(|b| b.provisioning_state() != "provisioned")
            .map(|b| b.name_any())
            .collect();
        fresh.sort();
        for name in fresh.iter().take(7) {
            h.set_host_state(NS, name, "provisioned").await;
            provisioned.push(name.clone());
        }
        let woken = h.sync_hosts().await;
        assert_eq!(woken.len(), 7.min(h.ctx.admission.buffered()));
        // The woken ones, released by the watch's view of the store.
        reconcile_all(woken).await;
        let counted = h.counted_hosts_in_store().await;
        max_seen = max_seen.max(counted);
        assert!(counted <= 20, "step {steps}: {counted} hosts in flight");
    }
    let p = phases(h.clone()).await;
    assert_eq!(p.get(&Some(Phase::Completed)), Some(&50));
    let peak_at_writes = h.ledger.peak.load(Ordering::SeqCst);
    println!(
        "50 generators, MAX=20: max in flight in the store after each step = {max_seen}, \
         at the instant of every host write = {peak_at_writes}, admission peak = {}, steps = {steps}",
        h.ctx.admission.peak()
    );
    assert!(peak_at_writes <= 20);
    assert_eq!(h.ctx.admission.peak(), 20);
    let metrics = h.ctx.metrics.render();
    assert!(
        metrics.contains("bmhgen_controller_releases_total 30"),
        "{metrics}"
    );
}

#[tokio::test]
async fn buffered_generators_are_released_fifo_by_buffered_at() {
    let h = harness(Options {
        max: 1,
        ..Options::default()
    })
    .await;
    let servers = usable_servers(&h.stack, SystemKind::Ome).await;
    h.create(
        "first",
        json!({"serverName": servers[0], "infraEnv": "env"}),
    )
    .await;
    h.reconcile("first").await;
    // Three generators buffered by an earlier controller instance, in this bufferedAt order
    // (created in another order).
    let at = |s: i64| {
        k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + s)
            .unwrap()
            .to_string()
    };
    for (name, server, offset) in [
        ("c-late", &servers[1], 30),
        ("a-early", &servers[2], 10),
        ("b-middle", &servers[3], 20),
    ] {
        h.create(name, json!({"serverName": server, "infraEnv": "env"}))
            .await;
        h.generators()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Buffered", "bufferedAt": at(offset)}})),
            )
            .await
            .unwrap();
    }
    // A newcomer without bufferedAt queues behind all of them.
    h.create(
        "d-new",
        json!({"serverName": servers[4], "infraEnv": "env"}),
    )
    .await;
    for n in ["d-new", "b-middle", "c-late", "a-early"] {
        h.reconcile(n).await;
        assert_eq!(h.status(n).await.phase, Some(Phase::Buffered), "{n}");
    }
    let mut order = Vec::new();
    let mut previous = "first".to_owned();
    for _ in 0..4 {
        let host = h.status(&previous).await.bmh_name.unwrap();
        h.set_host_state(NS, &host, "provisioned").await;
        let woken = h.sync_hosts().await;
        assert_eq!(woken.len(), 1);
        h.reconcile(&woken[0]).await;
        assert_eq!(h.status(&woken[0]).await.phase, Some(Phase::Completed));
        previous = woken[0].clone();
        order.push(previous.clone());
    }
    assert_eq!(order, ["a-early", "b-middle", "c-late", "d-new"]);
    h.stack.stop().await;
}

#[tokio::test]
async fn gateway_404_fails_and_503_or_timeout_stay_processing() {
    let h = harness(Options {
        gateway_timeout: Duration::from_millis(700),
        ..Options::default()
    })
    .await;

    h.create(
        "ghost",
        json!({"serverName": "no-such-server", "infraEnv": "env"}),
    )
    .await;
    assert_eq!(h.reconcile("ghost").await, Action::await_change());
    let st = h.status("ghost").await;
    assert_eq!(st.phase, Some(Phase::Failed));
    let msg = st.message.unwrap();
    assert!(msg.contains("not found"), "{msg}");
    for system in ["oneview", "ucsm", "ome"] {
        assert!(
            msg.contains(system),
            "message names the systems searched: {msg}"
        );
    }
    // The slot taken for the lookup was given back.
    assert_eq!(h.ctx.admission.in_flight(), 0);

    // Every system failing: the gateway answers 5xx; the generator waits, with a reason.
    let server = usable_servers(&h.stack, SystemKind::Ome).await.remove(0);
    h.stack
        .set_faults(
            SystemKind::Ome,
            json!({"error_rate": 1.0, "error_status": 503}),
        )
        .await;
    h.create(
        "flaky",
        json!({"serverName": server, "infraEnv": "env", "server_vendor": "DELL"}),
    )
    .await;
    let action = h.reconcile("flaky").await;
    assert_ne!(action, Action::await_change(), "transient errors requeue");
    let st = h.status("flaky").await;
    assert_eq!(st.phase, Some(Phase::Processing));
    let msg = st.message.unwrap();
    assert!(msg.contains("retrying with backoff"), "{msg}");
    assert_eq!(h.ctx.admission.in_flight(), 0);

    // The appliance recovers: the next reconcile completes.
    h.stack.set_faults(SystemKind::Ome, json!({})).await;
    h.reconcile("flaky").await;
    assert_eq!(h.status("flaky").await.phase, Some(Phase::Completed));

    // A hanging appliance: the gateway does not answer within the controller's timeout.
    let server = usable_servers(&h.stack, SystemKind::Ome).await.remove(1);
    h.stack
        .set_faults(SystemKind::Ome, json!({"hang": true}))
        .await;
    h.create(
        "stuck",
        json!({"serverName": server, "infraEnv": "env", "server_vendor": "DELL"}),
    )
    .await;
    let action = h.reconcile("stuck").await;
    assert_ne!(action, Action::await_change());
    let st = h.status("stuck").await;
    assert_eq!(st.phase, Some(Phase::Processing));
    assert!(
        st.message.as_deref().unwrap().contains("did not answer"),
        "{:?}",
        st.message
    );
    assert_eq!(h.ctx.admission.in_flight(), 1, "only the completed host");
    let events = h.ctx.metrics.render();
    assert!(events.contains("bmhgen_controller_reconcile_errors_total{cause=\"gateway\"}"));
    assert!(events.contains("bmhgen_controller_reconcile_errors_total{cause=\"ServerNotFound\"} 1"));
    // No graceful stop: it would wait for the request the simulator is told to hang on. The
    // runtime's end closes everything.
}

#[tokio::test]
async fn an_invalid_spec_fails_without_asking_the_gateway() {
    let h = harness(Options::default()).await;
    h.create(
        "bad",
        json!({"infraEnv": "env", "networkConfig": {"nicName": "eno1"}}),
    )
    .await;
    let calls: u64 = h.stack.total_calls(SystemKind::Oneview).await;
    h.reconcile("bad").await;
    let st = h.status("bad").await;
    assert_eq!(st.phase, Some(Phase::Failed));
    assert!(st
        .message
        .unwrap()
        .contains("nicName and networkConfig.macIndex"));
    assert_eq!(h.stack.total_calls(SystemKind::Oneview).await, calls);
    h.stack.stop().await;
}

async fn completed(h: &Harness, name: &str) -> String {
    let server = usable_servers(&h.stack, SystemKind::Ucsm).await.remove(0);
    h.create(
        name,
        json!({"serverName": server, "infraEnv": "env", "networkConfig": {"vlanId": 7}}),
    )
    .await;
    h.reconcile(name).await;
    assert_eq!(h.status(name).await.phase, Some(Phase::Completed));
    server
}

#[tokio::test]
async fn deleting_a_generator_keeps_its_objects_unless_configured() {
    let h = harness(Options::default()).await;
    let server = completed(&h, "keep").await;
    h.reconcile_deleted("keep").await;
    assert!(h.finalizer_removed("keep").await);
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_some());
    assert!(Api::<Secret>::namespaced(h.client.clone(), NS)
        .get_opt(&format!("cisco-cred-{server}"))
        .await
        .unwrap()
        .is_some());
    h.stack.stop().await;

    let h = harness(Options {
        delete_on_delete: true,
        ..Options::default()
    })
    .await;
    let server = completed(&h, "drop").await;
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_some());
    h.reconcile_deleted("drop").await;
    assert!(h.finalizer_removed("drop").await);
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_none());
    assert!(Api::<NMStateConfig>::namespaced(h.client.clone(), NS)
        .get_opt(&format!("nmstate-config-{server}"))
        .await
        .unwrap()
        .is_none());
    assert!(Api::<Secret>::namespaced(h.client.clone(), NS)
        .get_opt(&format!("cisco-cred-{server}"))
        .await
        .unwrap()
        .is_none());
    h.stack.stop().await;
}

#[tokio::test]
async fn an_existing_host_keeps_its_boot_mac() {
    let h = harness(Options::default()).await;
    let server = usable_servers(&h.stack, SystemKind::Oneview)
        .await
        .remove(0);
    // A host the old operator created, booting from another NIC than the one chosen now.
    let old: BareMetalHost = serde_json::from_value(json!({
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": server, "namespace": NS},
        "spec": {"online": true, "bootMACAddress": "02:00:00:00:00:99",
                 "bmc": {"address": "redfish-virtualmedia://10.0.0.1/redfish/v1/Systems/1",
                         "credentialsName": format!("hp-cred-{server}")}}
    }))
    .unwrap();
    h.hosts(NS)
        .create(&PostParams::default(), &old)
        .await
        .unwrap();
    h.set_host_state(NS, &server, "provisioned").await;
    h.sync_hosts().await;
    h.create("legacy", json!({"serverName": server, "infraEnv": "env"}))
        .await;
    h.reconcile("legacy").await;
    let st = h.status("legacy").await;
    assert_eq!(st.phase, Some(Phase::Completed));
    assert_eq!(st.mac_address.as_deref(), Some("02:00:00:00:00:99"));
    let host = h.hosts(NS).get(&server).await.unwrap();
    assert_eq!(host.boot_mac(), Some("02:00:00:00:00:99"));
    assert_eq!(
        h.ctx.admission.in_flight(),
        0,
        "an existing host takes no slot"
    );
    h.stack.stop().await;
}

#[tokio::test]
async fn the_redeploy_annotation_recreates_the_host_once() {
    let h = harness(Options::default()).await;
    let server = completed(&h, "again").await;
    let first_uid = h.hosts(NS).get(&server).await.unwrap().uid();
    h.generators()
        .patch(
            "again",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {REDEPLOY_ANNOTATION: "now"}}})),
        )
        .await
        .unwrap();
    h.reconcile("again").await;
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_none());
    let gen = h.get("again").await;
    assert!(!gen.annotations().contains_key(REDEPLOY_ANNOTATION));
    assert_eq!(gen.status.unwrap().phase, Some(Phase::Processing));
    // No host event yet: admission still believes the old host exists. The reconcile must
    // see that it is gone and reserve a real slot for the new one.
    h.reconcile("again").await;
    let host = h.hosts(NS).get(&server).await.unwrap();
    assert_ne!(host.uid(), first_uid, "a new host");
    assert!(
        h.ctx.admission.is_pending(&format!("ztp/{server}")),
        "the new host holds a slot"
    );
    assert_eq!(h.ctx.admission.in_flight(), 1);
    assert_eq!(h.status("again").await.phase, Some(Phase::Completed));
    h.stack.stop().await;
}

#[tokio::test]
async fn dry_run_records_what_would_be_created_and_creates_nothing() {
    let h = harness(Options::default()).await;
    let server = usable_servers(&h.stack, SystemKind::Oneview)
        .await
        .remove(0);
    h.create(
        "preview",
        json!({"serverName": server, "infraEnv": "env", "dryRun": true,
               "networkConfig": {"vlanId": 9}}),
    )
    .await;
    h.reconcile("preview").await;
    let st = h.status("preview").await;
    assert_eq!(st.phase, Some(Phase::Completed));
    let msg = st.message.clone().unwrap();
    assert!(
        msg.starts_with(&format!("dry run: would create Secret hp-cred-{server}, BareMetalHost {server}, NMStateConfig nmstate-config-{server}")),
        "{msg}"
    );
    assert!(st.mac_address.is_some() && st.ipmi_address.is_some());
    assert!(st
        .conditions
        .iter()
        .any(|c| c.type_ == "DryRun" && c.status == "True"));
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_none());
    assert!(Api::<Secret>::namespaced(h.client.clone(), NS)
        .get_opt(&format!("hp-cred-{server}"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(h.ctx.admission.in_flight(), 0, "a dry run takes no slot");

    // Turning dry-run off creates the host for real.
    h.generators()
        .patch(
            "preview",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"dryRun": false}})),
        )
        .await
        .unwrap();
    h.reconcile("preview").await;
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_some());
    let st = h.status("preview").await;
    assert!(!st.conditions.iter().any(|c| c.type_ == "DryRun"));
    h.stack.stop().await;
}

#[tokio::test]
async fn rotated_bmc_credentials_update_the_secret_and_leave_the_host_alone() {
    let h = harness(Options::default()).await;
    let server = completed(&h, "rotate").await;
    let host_rv = h.hosts(NS).get(&server).await.unwrap().resource_version();
    let calls = h.stack.total_calls(SystemKind::Ucsm).await;
    assert!(h.ctx.set_credentials(creds("-v2")));
    h.reconcile("rotate").await;
    let secret = Api::<Secret>::namespaced(h.client.clone(), NS)
        .get(&format!("cisco-cred-{server}"))
        .await
        .unwrap();
    let v = comparable(serde_json::to_value(&secret).unwrap());
    assert_eq!(v["stringData"]["password"], "ipmi-user-secret-pw-v2");
    assert_eq!(
        h.hosts(NS).get(&server).await.unwrap().resource_version(),
        host_rv
    );
    assert_eq!(
        h.stack.total_calls(SystemKind::Ucsm).await,
        calls,
        "no gateway lookup for a rotation"
    );
    h.stack.stop().await;
}

#[tokio::test]
async fn only_one_candidate_holds_the_lease() {
    let client = ClientBuilder::new().build().await.unwrap();
    let api: Api<Lease> = Api::namespaced(client, "igw");
    let config = |id: &str| LeaseConfig {
        name: "inventory-gateway-controller".into(),
        identity: id.into(),
        lease_duration: Duration::from_secs(15),
        retry_period: Duration::from_secs(3),
    };
    let mut a = LeaderElector::new(api.clone(), config("a"));
    let mut b = LeaderElector::new(api.clone(), config("b"));
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap(), "held and fresh");
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");
    let lease = api.get("inventory-gateway-controller").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("a"));
    a.release().await.unwrap();
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "released: taken at once"
    );
    let spec = api
        .get("inventory-gateway-controller")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

#[tokio::test]
async fn a_stale_lease_write_loses_with_a_conflict() {
    let client = ClientBuilder::new().build().await.unwrap();
    let api: Api<Lease> = Api::namespaced(client, "igw");
    let mut a = LeaderElector::new(
        api.clone(),
        LeaseConfig {
            name: "l".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(3),
        },
    );
    assert!(a.try_acquire_or_renew().await.unwrap());
    // Someone else's write between our read and our write: replacing with the old
    // resourceVersion must fail, as the elector relies on.
    let stale = api.get("l").await.unwrap();
    let mut newer = stale.clone();
    newer.spec.as_mut().unwrap().holder_identity = Some("b".into());
    api.replace("l", &PostParams::default(), &newer)
        .await
        .unwrap();
    let err = api
        .replace("l", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(e) if e.code == 409));
    assert!(!a.try_acquire_or_renew().await.unwrap(), "b holds it now");
}

/// The objects the old operator left for one Dell server, rendered as its `yaml_generators.py`
/// rendered them (no controller labels), and its generator with the old annotations, finalizer
/// and status (string `vlanId`, bare `ipmiAddress`).
async fn old_operator_leftovers(h: &Harness, gen: &str, server: &str, mac: &str, ip: &str) {
    let labels = json!({"infraenvs.agent-install.openshift.io": "env"});
    let bmh: BareMetalHost = serde_json::from_value(json!({
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": server, "namespace": NS, "labels": labels,
                     "annotations": {"inspect.metal3.io": "disabled",
                                     "bmac.agent-install.openshift.io/hostname": server}},
        "spec": {"online": true, "bootMACAddress": mac, "hardwareProfile": "empty",
                 "customDeploy": {"method": "start_assisted_install"},
                 "automatedCleaningMode": "disabled", "bootMode": "UEFI",
                 "bmc": {"address": format!("idrac-virtualmedia://{ip}/redfish/v1/Systems/System.Embedded.1"),
                         "credentialsName": format!("dell-cred-{server}"),
                         "disableCertificateVerification": true}}
    }))
    .unwrap();
    h.hosts(NS)
        .create(&PostParams::default(), &bmh)
        .await
        .unwrap();
    h.set_host_state(NS, server, "provisioned").await;
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": format!("dell-cred-{server}"), "namespace": NS},
        "data": {"username": "b2xk", "password": "b2xk"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let nm: NMStateConfig = serde_json::from_value(json!({
        "apiVersion": "agent-install.openshift.io/v1beta1", "kind": "NMStateConfig",
        "metadata": {"name": format!("nmstate-config-{server}"), "namespace": NS, "labels": labels},
        "spec": {"config": {"interfaces": []}, "interfaces": [{"name": "eno12399np0", "macAddress": mac}]}
    }))
    .unwrap();
    Api::<NMStateConfig>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &nm)
        .await
        .unwrap();
    let g: BareMetalHostGenerator = serde_json::from_value(json!({
        "apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
        "metadata": {"name": gen, "namespace": NS,
                     "finalizers": ["bmhgenerator.infra.example.com/finalizer"],
                     "annotations": {"server_vendor": "DELL", "vlanId": "24"}},
        "spec": {"serverName": server, "infraEnv": "env"}
    }))
    .unwrap();
    h.generators()
        .create(&PostParams::default(), &g)
        .await
        .unwrap();
    h.generators()
        .patch_status(
            gen,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Completed", "message": format!("Successfully created BareMetalHost {server}"),
                "bmhName": server, "bmhNamespace": NS, "macAddress": mac, "ipmiAddress": ip,
                "serverVendor": "DELL", "vlanId": "24"}})),
        )
        .await
        .unwrap();
    h.sync_hosts().await;
}

/// What the controller would choose for a server (the vendor's boot NIC), and its BMC IP.
async fn boot_mac_and_ip(h: &Harness, server: &str) -> (String, String) {
    let name = inventory_gateway::domain::ServerName::parse(server).unwrap();
    let rec = h.ctx.gateway.server(&name, None).await.unwrap();
    let mac = rec.boot_mac.unwrap_or(rec.nics[0].mac).to_string();
    let ip = match rec.bmc.unwrap().address {
        inventory_gateway::domain::BmcAddress::Ip(ip) => ip.to_string(),
        other => panic!("{other:?}"),
    };
    (mac, ip)
}

#[tokio::test]
async fn an_old_operators_objects_are_adopted_never_duplicated() {
    let h = harness(Options::default()).await;
    let servers = usable_servers(&h.stack, SystemKind::Ome).await;
    let server = servers[0].clone();
    let (mac, ip) = boot_mac_and_ip(&h, &server).await;
    // baremetal-operator v0.11 compares bootMACAddress exactly: the old upper-case string stays.
    let old_mac = mac.to_uppercase();
    old_operator_leftovers(&h, "old-gen", &server, &old_mac, &ip).await;

    h.reconcile("old-gen").await;
    let gen = h.get("old-gen").await;
    let st = gen.status.clone().unwrap();
    assert_eq!(st.phase, Some(Phase::Completed), "{:?}", st.message);
    assert!(
        st.message.as_deref().unwrap().contains("adopted"),
        "{:?}",
        st.message
    );
    assert!(gen.finalizers().iter().any(|f| f == FINALIZER));
    assert!(!gen
        .finalizers()
        .iter()
        .any(|f| f.starts_with("bmhgenerator.")));
    assert_eq!(st.vlan_id, Some(24));
    assert_eq!(st.ipmi_address.as_deref(), Some(ip.as_str()));
    assert_eq!(st.mac_address.as_deref(), Some(old_mac.as_str()));

    let hosts = h
        .hosts(NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(hosts.len(), 1, "one host for the server, not two");
    let host = &hosts[0];
    assert_eq!(host.name_any(), server);
    assert_eq!(host.boot_mac(), Some(old_mac.as_str()));
    assert_eq!(host.labels()["infra.example.com/generator"], "old-gen");
    let nm = Api::<NMStateConfig>::namespaced(h.client.clone(), NS)
        .get(&format!("nmstate-config-{server}"))
        .await
        .unwrap();
    assert_eq!(nm.labels()["infra.example.com/generator"], "old-gen");
    let nm = serde_json::to_value(&nm).unwrap();
    assert_eq!(nm["spec"]["config"]["interfaces"][1]["vlan"]["id"], 24);
    let secret = Api::<Secret>::namespaced(h.client.clone(), NS)
        .get(&format!("dell-cred-{server}"))
        .await
        .unwrap();
    assert_eq!(secret.labels()["infra.example.com/generator"], "old-gen");

    // A second generator whose server's MAC is already on a host it did not create: refused,
    // naming that host; no second host appears.
    let other = servers[1].clone();
    let (other_mac, _) = boot_mac_and_ip(&h, &other).await;
    let stray: BareMetalHost = serde_json::from_value(json!({
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": "hand-made", "namespace": NS},
        "spec": {"bootMACAddress": other_mac.to_uppercase(),
                 "bmc": {"address": "ipmi://192.0.2.1:623", "credentialsName": "x"}}
    }))
    .unwrap();
    h.hosts(NS)
        .create(&PostParams::default(), &stray)
        .await
        .unwrap();
    h.sync_hosts().await;
    h.create("twin", json!({"serverName": other, "infraEnv": "env"}))
        .await;
    h.reconcile("twin").await;
    let st = h.status("twin").await;
    assert_eq!(st.phase, Some(Phase::Failed));
    assert!(
        st.message.as_deref().unwrap().contains("ztp/hand-made"),
        "{:?}",
        st.message
    );
    assert!(h.hosts(NS).get_opt(&other).await.unwrap().is_none());
    h.stack.stop().await;
}

/// A harness that deletes produced objects, and the old operator's CR `old-gen` with the
/// objects it left for the first OME server (returned).
async fn deleting_harness_with_old_leftovers() -> (Harness, String) {
    let h = harness(Options {
        delete_on_delete: true,
        ..Options::default()
    })
    .await;
    let server = usable_servers(&h.stack, SystemKind::Ome).await.remove(0);
    let (mac, ip) = boot_mac_and_ip(&h, &server).await;
    old_operator_leftovers(&h, "old-gen", &server, &mac, &ip).await;
    (h, server)
}

#[tokio::test]
async fn deleting_a_generator_with_only_the_old_finalizer_completes_and_cleans_up() {
    let (h, server) = deleting_harness_with_old_leftovers().await;
    // Deleted before this controller ever reconciled it: only kopf's finalizer is on it.
    let mut gen = h.get("old-gen").await;
    gen.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    reconcile(Arc::new(gen), h.ctx.clone()).await.unwrap();
    assert!(h.get("old-gen").await.finalizers().is_empty());
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_none());
    assert!(Api::<NMStateConfig>::namespaced(h.client.clone(), NS)
        .get_opt(&format!("nmstate-config-{server}"))
        .await
        .unwrap()
        .is_none());
    assert!(Api::<Secret>::namespaced(h.client.clone(), NS)
        .get_opt(&format!("dell-cred-{server}"))
        .await
        .unwrap()
        .is_none());
    h.stack.stop().await;
}

#[tokio::test]
async fn the_old_redeploy_annotation_recreates_the_host_and_is_removed() {
    let h = harness(Options::default()).await;
    let server = completed(&h, "old-style").await;
    let first_uid = h.hosts(NS).get(&server).await.unwrap().uid();
    h.generators()
        .patch(
            "old-style",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"redeploy": "true"}}})),
        )
        .await
        .unwrap();
    h.reconcile("old-style").await;
    assert!(!h
        .get("old-style")
        .await
        .annotations()
        .contains_key("redeploy"));
    h.reconcile("old-style").await;
    let host = h.hosts(NS).get(&server).await.unwrap();
    assert_ne!(host.uid(), first_uid, "a new host");
    assert_eq!(h.status("old-style").await.phase, Some(Phase::Completed));
    h.stack.stop().await;
}

/// A loopback gateway answering every request with 200 and the current `body`.
async fn canned_gateway(body: Arc<Mutex<String>>) -> Url {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = sock.read(&mut buf).await;
            let text = body.lock().unwrap().clone();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = sock.write_all(answer.as_bytes()).await;
        }
    });
    url
}

#[tokio::test]
async fn no_host_is_created_from_an_answer_with_unverified_systems() {
    let body = Arc::new(Mutex::new(String::new()));
    let url = canned_gateway(body.clone()).await;
    let h = harness(Options {
        gateway_url: Some(url),
        ..Options::default()
    })
    .await;
    let server = usable_servers(&h.stack, SystemKind::Ome).await.remove(0);
    let mut record: Value = reqwest::Client::new()
        .get(format!("{}/servers/{server}", h.stack.gateway))
        .bearer_auth(helpers::READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    record["unverified"] = json!(["oneview-1"]);
    *body.lock().unwrap() = record.to_string();

    h.create("waits", json!({"serverName": server, "infraEnv": "env"}))
        .await;
    let action = h.reconcile("waits").await;
    assert_ne!(action, Action::await_change(), "requeued with backoff");
    let st = h.status("waits").await;
    assert_eq!(st.phase, Some(Phase::Processing));
    let msg = st.message.unwrap();
    assert!(msg.contains("waiting for oneview-1"), "{msg}");
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_none());
    assert_eq!(h.ctx.admission.in_flight(), 0, "the slot is given back");

    // Every system answered: the host is created.
    record["unverified"] = json!([]);
    *body.lock().unwrap() = record.to_string();
    h.reconcile("waits").await;
    assert_eq!(h.status("waits").await.phase, Some(Phase::Completed));
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_some());
    h.stack.stop().await;
}

/// A host kept with the boot MAC it was created with (another NIC than the one chosen today):
/// its NMStateConfig speaks of that NIC too. Before, the NMStateConfig was rewritten to today's
/// choice and configured a NIC the host does not boot from.
#[tokio::test]
async fn an_adopted_nmstateconfig_follows_the_mac_the_host_keeps() {
    let h = harness(Options::default()).await;
    let server = usable_servers(&h.stack, SystemKind::Ome).await.remove(0);
    let (chosen, ip) = boot_mac_and_ip(&h, &server).await;
    let name = inventory_gateway::domain::ServerName::parse(&server).unwrap();
    let rec = h.ctx.gateway.server(&name, None).await.unwrap();
    let other = rec
        .nics
        .iter()
        .map(|n| n.mac.to_string())
        .find(|m| *m != chosen)
        .expect("a second NIC");
    let kept = other.to_uppercase();
    old_operator_leftovers(&h, "old-gen", &server, &kept, &ip).await;
    h.reconcile("old-gen").await;
    assert_eq!(h.status("old-gen").await.phase, Some(Phase::Completed));
    let host = h.hosts(NS).get(&server).await.unwrap();
    assert_eq!(host.boot_mac(), Some(kept.as_str()));
    let nm = Api::<NMStateConfig>::namespaced(h.client.clone(), NS)
        .get(&format!("nmstate-config-{server}"))
        .await
        .unwrap();
    let nm = serde_json::to_value(&nm).unwrap();
    assert_eq!(
        nm["spec"]["config"]["interfaces"][0]["mac-address"],
        kept.as_str()
    );
    assert_eq!(nm["spec"]["interfaces"][0]["macAddress"], kept.as_str());
    h.stack.stop().await;
}

/// Two old CRs named one server (the old operator let the second one "continue"); one adopts
/// the host, the other fails. Deleting the failed one must not take the host's BMC Secret with
/// it, though deletion removes produced objects by default.
#[tokio::test]
async fn deleting_a_refused_twin_keeps_the_credentials_of_the_host_it_does_not_own() {
    let (h, server) = deleting_harness_with_old_leftovers().await;
    h.reconcile("old-gen").await;
    assert_eq!(h.status("old-gen").await.phase, Some(Phase::Completed));

    h.create("old-twin", json!({"serverName": server, "infraEnv": "env"}))
        .await;
    h.generators()
        .patch_status(
            "old-twin",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Completed", "bmhName": server, "bmhNamespace": NS,
                "serverVendor": "DELL"}})),
        )
        .await
        .unwrap();
    h.reconcile("old-twin").await;
    assert_eq!(h.status("old-twin").await.phase, Some(Phase::Failed));
    h.reconcile_deleted("old-twin").await;
    assert!(h.finalizer_removed("old-twin").await);
    assert!(h.hosts(NS).get_opt(&server).await.unwrap().is_some());
    assert!(
        Api::<Secret>::namespaced(h.client.clone(), NS)
            .get_opt(&format!("dell-cred-{server}"))
            .await
            .unwrap()
            .is_some(),
        "the adopted host's Secret was deleted with the twin"
    );
    h.stack.stop().await;
}
