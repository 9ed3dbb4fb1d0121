//! `inventory-gateway controller`: settings, and the wiring of watches, leader election, the
//! kube-rs `Controller` and the metrics server.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use kube::Api;
use secrecy::SecretString;
use tokio::sync::watch;
use url::Url;

use super::admission::Admission;
use super::context::{Context, Settings};
use super::crd::{BareMetalHostGenerator, Phase};
use super::gateway_client::{GatewayClient, GatewayClientConfig, GatewayError};
use super::leader::{LeaderElector, LeaseConfig};
use super::metrics::ControllerMetrics;
use super::objects::BareMetalHost;
use super::reconcile::{error_policy, generator_key, reconcile, to_chrono};
use super::render::{BootMode, CredentialStore, ProfileRules, RenderOptions};
use super::{legacy, server, watchers};

fn duration(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn boot_mode(s: &str) -> Result<BootMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "uefi" => Ok(BootMode::Uefi),
        "uefisecureboot" => Ok(BootMode::UefiSecureBoot),
        "legacy" => Ok(BootMode::Legacy),
        _ => Err(format!("{s:?}: expected UEFI, UEFISecureBoot or legacy")),
    }
}

/// Every flag also reads the environment variable shown in `--help`.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Base URL of the gateway.
    #[arg(long, env = "GATEWAY_URL")]
    pub gateway_url: Url,
    /// File holding a bearer token with `read` scope for the gateway.
    #[arg(long, env = "GATEWAY_TOKEN_FILE")]
    pub gateway_token_file: Option<PathBuf>,
    /// Per-request timeout towards the gateway.
    #[arg(long, env = "GATEWAY_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub gateway_timeout: Duration,
    /// Secret (in the controller's namespace) with hp-/dell-/cisco- `username` and `password`.
    #[arg(
        long,
        env = "BMC_CREDENTIALS_SECRET",
        default_value = "bmc-credentials"
    )]
    pub bmc_credentials_secret: String,
    /// At most this many hosts in flight (not yet provisioned).
    #[arg(long, env = "MAX_AVAILABLE_SERVERS", default_value_t = 20)]
    pub max_available_servers: usize,
    /// Comma-separated `status.provisioning.state` values that count as in flight ("" = none yet).
    #[arg(
        long,
        env = "COUNTED_STATES",
        default_value = ",registering,inspecting,preparing,available,provisioning"
    )]
    pub counted_states: String,
    /// Label selector: only these BareMetalHosts count towards the limit.
    #[arg(long, env = "BMH_LABEL_SELECTOR")]
    pub bmh_selector: Option<String>,
    /// Safety-net interval for releasing buffered generators. Old spelling:
    /// `BUFFER_CHECK_INTERVAL` (whole seconds).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub resync_interval: Duration,
    /// An admitted host never seen by the watch frees its slot after this long.
    #[arg(long, env = "PENDING_TTL", default_value = "10m", value_parser = duration)]
    pub pending_ttl: Duration,
    /// On generator deletion, delete the BareMetalHost, NMStateConfig and Secret it created
    /// (the old operator's default; env `DELETE_RESOURCES_ON_DELETE` with its spellings
    /// true/1/yes/on, false/0/no/off).
    #[arg(long, default_value = "true", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub delete_resources_on_delete: bool,
    /// NIC rules file, this controller's `rules:` format or the old operator's `profiles:`
    /// format; re-read when it changes. Env `PROFILE_RULES_FILE`, old spelling
    /// `SERVER_PROFILES_PATH`.
    #[arg(long)]
    pub profile_rules: Option<PathBuf>,
    /// Render plain Metal3 hosts, without the assisted-installer annotations and customDeploy.
    #[arg(long, env = "PLAIN_METAL3", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub plain_metal3: bool,
    /// Verify BMC TLS certificates (sets `bmc.disableCertificateVerification: false`).
    #[arg(long, env = "BMC_VERIFY_CERTIFICATES", default_value = "false", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub bmc_verify_certificates: bool,
    /// UEFI, UEFISecureBoot or legacy.
    #[arg(long, env = "BOOT_MODE", default_value = "UEFI", value_parser = boot_mode)]
    pub boot_mode: BootMode,
    /// NIC name used when neither the spec nor a rule names one.
    #[arg(long, env = "DEFAULT_NIC_NAME", default_value = "eno1")]
    pub default_nic_name: String,
    /// Watch generators in this namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:8081")]
    pub metrics_listen: SocketAddr,
    /// Lease-based leader election: only the leader reconciles.
    #[arg(long, env = "LEADER_ELECTION", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub leader_election: bool,
    #[arg(
        long,
        env = "LEASE_NAME",
        default_value = "inventory-gateway-controller"
    )]
    pub lease_name: String,
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// The controller's own namespace (Lease, credentials Secret). Default: the client's.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Leader-election identity. Default: the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Long flags given on the command line (they win over the environment).
    #[arg(skip)]
    pub flags: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("Kubernetes client configuration: {0}")]
    KubeConfig(#[from] kube::config::InferConfigError),
    #[error("gateway client: {0}")]
    Gateway(#[from] GatewayError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Names the file and both settings that can point at it: with an old and a new spelling
    /// for one thing, the operator must learn which file is wrong.
    #[error("NIC rules file {} (PROFILE_RULES_FILE / SERVER_PROFILES_PATH): {reason}", path.display())]
    Rules { path: PathBuf, reason: String },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("metrics server on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("lost the leader Lease; exiting so that only one replica reconciles")]
    LostLeadership,
    #[error("setting: {0}")]
    Setting(String),
}

impl ControllerArgs {
    /// Reads the settings that have an old spelling (the kopf operator's) from the
    /// environment, with the old meaning; one given in both spellings is an error naming both.
    /// Flags given on the command line win over the environment.
    pub fn apply_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), RunError> {
        let bad = RunError::Setting;
        if let Some((v, spelling)) =
            legacy::one_of(env, "RESYNC_INTERVAL", "BUFFER_CHECK_INTERVAL").map_err(bad)?
        {
            if !self.flags.contains("resync-interval") {
                self.resync_interval = if spelling == "old" {
                    legacy::parse_old_seconds("BUFFER_CHECK_INTERVAL", &v).map_err(bad)?
                } else {
                    duration(&v).map_err(|e| bad(format!("RESYNC_INTERVAL={v:?}: {e}")))?
                };
            }
        }
        if let Some((v, _)) =
            legacy::one_of(env, "PROFILE_RULES_FILE", "SERVER_PROFILES_PATH").map_err(bad)?
        {
            if !self.flags.contains("profile-rules") {
                self.profile_rules = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = env.get("DELETE_RESOURCES_ON_DELETE") {
            if !self.flags.contains("delete-resources-on-delete") {
                self.delete_resources_on_delete =
                    legacy::parse_old_bool("DELETE_RESOURCES_ON_DELETE", v).map_err(bad)?;
            }
        }
        Ok(())
    }

    pub fn counted_states(&self) -> Vec<String> {
        self.counted_states
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect()
    }

    fn settings(&self) -> Settings {
        Settings {
            delete_resources_on_delete: self.delete_resources_on_delete,
            render: RenderOptions {
                disable_certificate_verification: !self.bmc_verify_certificates,
                boot_mode: self.boot_mode,
                assisted_installer: !self.plain_metal3,
                default_nic_name: self.default_nic_name.clone(),
            },
            resync_interval: self.resync_interval,
            ..Settings::default()
        }
    }

    fn gateway(&self) -> Result<GatewayClient, RunError> {
        let token = match &self.gateway_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| RunError::File {
                    path: path.clone(),
                    source,
                })?;
                Some(SecretString::from(text.trim().to_owned()))
            }
        };
        let mut config = GatewayClientConfig::new(self.gateway_url.clone());
        config.token = token;
        config.timeout = self.gateway_timeout;
        Ok(GatewayClient::new(config)?)
    }
}

/// The rules at start-up (a bad file stops the start), and the text they came from.
fn load_rules(path: Option<&PathBuf>) -> Result<(ProfileRules, Option<String>), RunError> {
    let Some(path) = path else {
        return Ok((ProfileRules::default(), None));
    };
    let text = std::fs::read_to_string(path).map_err(|source| RunError::File {
        path: path.clone(),
        source,
    })?;
    let rules = ProfileRules::from_yaml(&text).map_err(|e| RunError::Rules {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok((rules, Some(text)))
}

/// Runs until `shutdown` resolves (then drains reconciles and gives the Lease up) or leadership
/// is lost (an error: the process must exit so that it cannot reconcile beside a new leader).
pub async fn run(
    args: ControllerArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let client = kube::Client::try_default().await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let gateway = args.gateway()?;
    let (rules, rules_text) = load_rules(args.profile_rules.as_ref())?;
    let metrics = Arc::new(ControllerMetrics::new()?);
    let states = args.counted_states();
    let states: Vec<&str> = states.iter().map(String::as_str).collect();
    let admission = Admission::new(args.max_available_servers, &states, args.pending_ttl);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let (ready_tx, ready_rx) = watch::channel(false);
    let (http, http_handle, bound) = server::bind(args.metrics_listen, metrics.clone(), ready_rx)
        .map_err(|source| RunError::Bind {
        addr: args.metrics_listen,
        source,
    })?;
    tokio::spawn(http);
    tracing::info!(%bound, "metrics, /healthz and /readyz listening");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let credentials = match secrets.get_opt(&args.bmc_credentials_secret).await? {
        Some(s) => watchers::credentials_from_secret(&s.data.unwrap_or_default()),
        None => {
            tracing::warn!(secret = %args.bmc_credentials_secret, %namespace, "BMC credentials Secret not found; hosts cannot be created until it exists");
            CredentialStore::default()
        }
    };
    // The API server answered: a standby replica is ready too.
    ready_tx.send_replace(true);

    let ctx = Arc::new(Context::new(
        client.clone(),
        gateway,
        admission,
        credentials,
        rules,
        args.settings(),
        metrics.clone(),
    ));

    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("controller-{}", std::process::id()));
    let mut elector = args.leader_election.then(|| {
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &namespace),
            LeaseConfig {
                name: args.lease_name.clone(),
                identity: identity.clone(),
                lease_duration: args.lease_duration,
                retry_period: args.lease_duration / 5,
            },
        )
    });
    if let Some(e) = elector.as_mut() {
        tracing::info!(%identity, lease = %args.lease_name, "waiting to become the leader");
        tokio::select! {
            r = e.acquire() => r?,
            _ = stopped() => {
                http_handle.stop(true).await;
                return Ok(());
            }
        }
        tracing::info!(%identity, "became the leader");
    }
    metrics.leader.set(1);

    // Renewal runs from the first moment of leadership, also while the watches sync: a
    // replica that cannot renew stops before a standby may take over.
    let leading = lead(&args, &namespace, client, ctx, stopped, rules_text);
    let result = match elector.as_mut() {
        Some(e) => tokio::select! {
            r = leading => r,
            _ = e.hold() => Err(RunError::LostLeadership),
        },
        None => leading.await,
    };
    metrics.leader.set(0);
    if let Some(e) = elector.as_mut() {
        if !matches!(result, Err(RunError::LostLeadership)) {
            if let Err(err) = e.release().await {
                tracing::warn!(error = %err, "cannot release the Lease; a standby takes over when it expires");
            }
        }
    }
    http_handle.stop(true).await;
    result
}

async fn lead<F, Fut>(
    args: &ControllerArgs,
    namespace: &str,
    client: kube::Client,
    ctx: Arc<Context>,
    stopped: F,
    rules_text: Option<String>,
) -> Result<(), RunError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + Sync + 'static,
{
    // Hosts first: admission must see every existing host before the first reconcile.
    let hosts: Api<BareMetalHost> = Api::all(client.clone());
    let mut host_watch = watcher::Config::default();
    if let Some(sel) = &args.bmh_selector {
        host_watch = host_watch.labels(sel);
    }
    let (synced_tx, mut synced_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watchers::watch_hosts(
        hosts,
        host_watch,
        ctx.clone(),
        synced_tx,
    ));
    tokio::select! {
        _ = synced_rx.wait_for(|s| *s) => {}
        _ = stopped() => return Ok(()),
    }
    tracing::info!(
        in_flight = ctx.admission.in_flight(),
        limit = ctx.admission.max_in_flight(),
        "BareMetalHost list synced"
    );

    let generators: Api<BareMetalHostGenerator> = match &args.watch_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Generators an earlier leader buffered keep their turn, whatever order they reconcile in.
    let mut seeded = 0;
    for g in generators.list(&Default::default()).await? {
        let buffered_at = g
            .status
            .as_ref()
            .filter(|s| s.phase == Some(Phase::Buffered))
            .and_then(|s| s.buffered_at.as_ref())
            .and_then(to_chrono);
        if let Some(at) = buffered_at {
            ctx.admission.seed(&generator_key(&g), at);
            seeded += 1;
        }
    }
    if seeded > 0 {
        tracing::info!(
            seeded,
            "buffered generators queued in their bufferedAt order"
        );
    }

    let (wake_tx, wake_rx) = futures::channel::mpsc::unbounded();
    ctx.set_waker(wake_tx);
    let controller = Controller::new(generators, watcher::Config::default());
    let store = controller.store();
    let all_generators = move || {
        store
            .state()
            .iter()
            .map(|g| generator_key(g))
            .collect::<Vec<_>>()
    };
    let alive = all_generators.clone();
    tasks.spawn(watchers::watch_credentials(
        Api::namespaced(client.clone(), namespace),
        args.bmc_credentials_secret.clone(),
        ctx.clone(),
        all_generators,
    ));
    if let Some(path) = &args.profile_rules {
        tasks.spawn(watchers::reload_rules(
            path.clone(),
            ctx.clone(),
            Duration::from_secs(5),
            rules_text,
        ));
    }
    tasks.spawn(watchers::periodic_resync(
        ctx.clone(),
        args.resync_interval,
        alive,
    ));

    let run = controller
        .reconcile_on(wake_rx)
        .graceful_shutdown_on(stopped())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(generator = %format!("{}/{}", obj.namespace.as_deref().unwrap_or_default(), obj.name), "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not run"),
            }
        });
    run.await;
    tasks.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn args(flags: &[&str], env: &[(&str, &str)]) -> Result<ControllerArgs, RunError> {
        let mut argv = vec!["x", "--gateway-url", "http://127.0.0.1:1"];
        argv.extend(flags);
        let mut a = Cli::try_parse_from(argv)
            .map_err(|e| RunError::Setting(e.to_string()))?
            .args;
        a.flags = flags
            .iter()
            .filter_map(|f| f.strip_prefix("--"))
            .map(|f| f.split('=').next().unwrap_or(f).to_owned())
            .collect();
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        a.apply_env(&env)?;
        Ok(a)
    }

    #[test]
    fn buffer_check_interval_is_read_as_bare_seconds() {
        let a = args(&[], &[("BUFFER_CHECK_INTERVAL", "45")]).unwrap();
        assert_eq!(a.resync_interval, Duration::from_secs(45));
        let a = args(&[], &[("RESYNC_INTERVAL", "2m")]).unwrap();
        assert_eq!(a.resync_interval, Duration::from_secs(120));
        assert!(args(&[], &[("BUFFER_CHECK_INTERVAL", "45s")]).is_err());
        let e = args(
            &[],
            &[("BUFFER_CHECK_INTERVAL", "45"), ("RESYNC_INTERVAL", "1m")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("BUFFER_CHECK_INTERVAL") && e.contains("RESYNC_INTERVAL"),
            "{e}"
        );
        assert_eq!(
            args(&[], &[]).unwrap().resync_interval,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn delete_resources_on_delete_defaults_to_true_with_the_old_spellings() {
        assert!(args(&[], &[]).unwrap().delete_resources_on_delete);
        for (v, want) in [
            ("no", false),
            ("0", false),
            ("off", false),
            ("yes", true),
            ("On", true),
        ] {
            assert_eq!(
                args(&[], &[("DELETE_RESOURCES_ON_DELETE", v)])
                    .unwrap()
                    .delete_resources_on_delete,
                want,
                "{v}"
            );
        }
        assert!(args(&[], &[("DELETE_RESOURCES_ON_DELETE", "perhaps")]).is_err());
        // The command line wins over the environment.
        let a = args(
            &["--delete-resources-on-delete=false"],
            &[("DELETE_RESOURCES_ON_DELETE", "yes")],
        );
        assert!(!a.unwrap().delete_resources_on_delete);
    }

    #[test]
    fn server_profiles_path_is_an_alias_of_profile_rules_file() {
        let a = args(&[], &[("SERVER_PROFILES_PATH", "/config/profiles.yaml")]).unwrap();
        assert_eq!(
            a.profile_rules,
            Some(PathBuf::from("/config/profiles.yaml"))
        );
        let e = args(
            &[],
            &[("SERVER_PROFILES_PATH", "/a"), ("PROFILE_RULES_FILE", "/b")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("SERVER_PROFILES_PATH") && e.contains("PROFILE_RULES_FILE"),
            "{e}"
        );
    }

    #[test]
    fn max_available_servers_keeps_its_name_and_default() {
        assert_eq!(args(&[], &[]).unwrap().max_available_servers, 20);
    }

    #[test]
    fn a_rules_file_in_neither_format_stops_the_start() {
        let dir = std::env::temp_dir().join(format!("igw-start-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("profiles.yaml");
        std::fs::write(&path, "servers:\n- {pattern: x}\n").unwrap();
        let e = load_rules(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("neither"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        std::fs::write(
            &path,
            "profiles:\n- {default: true, nic_name: eno12399np0, mac_index: first}\n",
        )
        .unwrap();
        assert_eq!(
            load_rules(Some(&path)).unwrap().0.format(),
            "old operator's profiles"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
