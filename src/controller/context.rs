//! What every reconcile shares: the Kubernetes client, the gateway client, admission, the
//! current BMC credentials and NIC rules, metrics, and the channel that wakes buffered generators.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use super::admission::Admission;
use super::crd::BareMetalHostGenerator;
use super::gateway_client::GatewayClient;
use super::metrics::ControllerMetrics;
use super::render::{CredentialStore, ProfileRules, RenderOptions};

/// Field manager for every server-side apply and patch the controller makes.
pub const FIELD_MANAGER: &str = "inventory-gateway-controller";
/// Finalizer on generators, so that deleting one can clean up (or deliberately keep) its objects.
pub const FINALIZER: &str = "infra.example.com/bmhgen-finalizer";

/// Behaviour switches, fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub delete_resources_on_delete: bool,
    pub render: RenderOptions,
    /// Safety-net interval: buffered generators are re-offered admission this often.
    pub resync_interval: Duration,
    /// Backoff after a transient failure (gateway down, API conflict): doubles per consecutive
    /// failure of the same generator, capped.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long to wait before checking again that a host being redeployed is gone.
    pub redeploy_poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delete_resources_on_delete: false,
            render: RenderOptions::default(),
            resync_interval: Duration::from_secs(30),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            redeploy_poll: Duration::from_secs(5),
        }
    }
}

pub struct Context {
    pub client: kube::Client,
    pub gateway: GatewayClient,
    pub admission: Admission,
    pub credentials: RwLock<CredentialStore>,
    pub rules: RwLock<Arc<ProfileRules>>,
    pub settings: Settings,
    pub metrics: Arc<ControllerMetrics>,
    pub recorder: Recorder,
    /// Wakes generators outside the generator watch (releases, credential rotation).
    wake: Mutex<Option<UnboundedSender<ObjectRef<BareMetalHostGenerator>>>>,
    /// Consecutive transient failures per generator, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Bumped whenever the BMC credentials change; each generator remembers the version its
    /// Secret was last applied with, so host events do not re-apply unchanged Secrets.
    credentials_version: std::sync::atomic::AtomicU64,
    applied_version: Mutex<HashMap<String, u64>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        gateway: GatewayClient,
        admission: Admission,
        credentials: CredentialStore,
        rules: ProfileRules,
        settings: Settings,
        metrics: Arc<ControllerMetrics>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            client,
            gateway,
            admission,
            credentials: RwLock::new(credentials),
            rules: RwLock::new(Arc::new(rules)),
            settings,
            metrics,
            recorder,
            wake: Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
            credentials_version: std::sync::atomic::AtomicU64::new(1),
            applied_version: Mutex::new(HashMap::new()),
        }
    }

    /// Where [`Context::wake`] sends (the controller's `reconcile_on` stream).
    pub fn set_waker(&self, tx: UnboundedSender<ObjectRef<BareMetalHostGenerator>>) {
        *self.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Asks for a reconcile of these generators (`namespace/name` keys). Without a running
    /// controller (tests drive reconcile themselves) this is a no-op.
    pub fn wake<I: IntoIterator<Item = String>>(&self, keys: I) {
        let guard = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        for key in keys {
            if let Some((ns, name)) = key.split_once('/') {
                let _ = tx.unbounded_send(ObjectRef::new(name).within(ns));
            }
        }
    }

    pub fn credentials(&self) -> CredentialStore {
        self.credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the BMC credentials; returns whether they changed.
    pub fn set_credentials(&self, creds: CredentialStore) -> bool {
        let mut cur = self.credentials.write().unwrap_or_else(|p| p.into_inner());
        let changed = !cur.same_as(&creds);
        *cur = creds;
        if changed {
            self.credentials_version
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        changed
    }

    /// Whether this generator's credential Secret predates the current credentials (or was never
    /// applied by this process).
    pub fn credentials_changed_for(&self, generator: &str) -> bool {
        let now = self
            .credentials_version
            .load(std::sync::atomic::Ordering::SeqCst);
        self.applied_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(generator)
            != Some(&now)
    }

    pub fn mark_credentials_applied(&self, generator: &str) {
        let now = self
            .credentials_version
            .load(std::sync::atomic::Ordering::SeqCst);
        self.applied_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(generator.to_owned(), now);
    }

    pub fn rules(&self) -> Arc<ProfileRules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_rules(&self, rules: ProfileRules) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }

    /// Records a transient failure and returns how long to wait before the next attempt.
    pub fn backoff(&self, generator: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(generator.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let exp = self
            .settings
            .backoff_base
            .saturating_mul(1u32 << (*n - 1).min(16));
        exp.min(self.settings.backoff_max)
    }

    pub fn clear_backoff(&self, generator: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(generator);
    }

    /// Publishes the admission gauges.
    pub fn update_gauges(&self) {
        self.metrics
            .buffer_length
            .set(self.admission.buffered() as i64);
        self.metrics
            .in_flight
            .set(self.admission.in_flight() as i64);
        self.metrics
            .in_flight_peak
            .set(self.admission.peak() as i64);
    }
}
