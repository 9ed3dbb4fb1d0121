//! The inputs besides generators: the BareMetalHost watch that feeds admission and wakes
//! buffered generators, the BMC credentials Secret, the NIC rules file, and the periodic resync.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use secrecy::SecretString;
use tokio::sync::watch;

use super::context::Context;
use super::objects::BareMetalHost;
use super::render::{BmcCredentials, CredentialStore, ProfileRules};
use crate::domain::Vendor;

/// What the host watch saw, applied to admission. Returns the generators to wake: buffered ones
/// that may now be admitted, plus the generator that produced this host (its host changed).
pub fn observe_host(ctx: &Context, host: &BareMetalHost, deleted: bool) -> Vec<String> {
    let state = (!deleted).then(|| host.provisioning_state());
    let mut wake = ctx.admission.observe(&host.key(), state);
    if let Some((ns, name)) = host.generator() {
        wake.push(format!("{ns}/{name}"));
    }
    wake
}

/// A complete list of hosts (the watch's initial list or a re-list): replaces what admission saw.
pub fn resync_hosts<'a>(
    ctx: &Context,
    hosts: impl IntoIterator<Item = &'a BareMetalHost>,
) -> Vec<String> {
    let snapshot: Vec<(String, String)> = hosts
        .into_iter()
        .map(|h| (h.key(), h.provisioning_state().to_owned()))
        .collect();
    ctx.admission
        .resync(snapshot.iter().map(|(k, s)| (k.as_str(), s.as_str())))
}

/// Runs the host watch until the stream ends. `synced` turns true after the first complete
/// list: before that, admission would count too few hosts, so reconciles must not start.
pub async fn watch_hosts(
    api: Api<BareMetalHost>,
    config: watcher::Config,
    ctx: Arc<Context>,
    synced: watch::Sender<bool>,
) {
    let mut listing: Vec<BareMetalHost> = Vec::new();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let wake = match event {
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(h)) => {
                listing.push(h);
                continue;
            }
            Ok(Event::InitDone) => {
                let wake = resync_hosts(&ctx, &listing);
                listing.clear();
                synced.send_replace(true);
                wake
            }
            Ok(Event::Apply(h)) => observe_host(&ctx, &h, false),
            Ok(Event::Delete(h)) => observe_host(&ctx, &h, true),
            Err(e) => {
                tracing::warn!(error = %e, "BareMetalHost watch error; it retries with backoff");
                continue;
            }
        };
        if !wake.is_empty() {
            ctx.wake(wake);
        }
        ctx.update_gauges();
    }
}

/// The per-vendor BMC credentials from the Secret's `hp-username`, `hp-password`,
/// `dell-…`, `cisco-…` keys. A vendor with either key missing is left out (its generators fail
/// with a clear message until the Secret has them).
pub fn credentials_from_secret(data: &BTreeMap<String, ByteString>) -> CredentialStore {
    let mut store = CredentialStore::default();
    for vendor in [
        Vendor::Hpe,
        Vendor::Dell,
        Vendor::Cisco,
        Vendor::Supermicro,
        Vendor::Lenovo,
        Vendor::Other,
    ] {
        let prefix = crate::controller::render::names::vendor_prefix(vendor);
        let get = |k: &str| {
            data.get(&format!("{prefix}-{k}"))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        if let (Some(username), Some(password)) = (get("username"), get("password")) {
            store.insert(
                vendor,
                BmcCredentials {
                    username,
                    password: SecretString::from(password),
                },
            );
        }
    }
    store
}

/// Watches the BMC credentials Secret. On a change, every generator is woken: completed ones
/// re-apply their credential Secret (rotation), ones failed for missing credentials retry.
pub async fn watch_credentials(
    api: Api<Secret>,
    name: String,
    ctx: Arc<Context>,
    all_generators: impl Fn() -> Vec<String>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(secret) => {
                let store = credentials_from_secret(&secret.data.unwrap_or_default());
                if ctx.set_credentials(store) {
                    tracing::info!(secret = %name, "BMC credentials changed; refreshing generated Secrets");
                    ctx.wake(all_generators());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "credentials Secret watch error; it retries with backoff")
            }
        }
    }
}

/// What one look at the rules file found.
#[derive(Debug)]
pub enum RulesFile {
    Unchanged,
    Loaded(ProfileRules),
    Rejected(String),
    Unreadable(String),
}

/// Reads the rules file; parses it only if its content differs from `last` (updated).
pub async fn read_rules(path: &std::path::Path, last: &mut Option<String>) -> RulesFile {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) => return RulesFile::Unreadable(e.to_string()),
    };
    if last.as_deref() == Some(text.as_str()) {
        return RulesFile::Unchanged;
    }
    let outcome = match ProfileRules::from_yaml(&text) {
        Ok(rules) => RulesFile::Loaded(rules),
        Err(e) => RulesFile::Rejected(e.to_string()),
    };
    *last = Some(text);
    outcome
}

/// Re-reads the NIC rules file when its content changes. Kubernetes updates a mounted
/// ConfigMap by swapping a symlink, which file-event APIs report unreliably; comparing content
/// on a short interval sees every update. A file that does not parse keeps the previous rules.
pub async fn reload_rules(
    path: PathBuf,
    ctx: Arc<Context>,
    every: Duration,
    mut last: Option<String>,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match read_rules(&path, &mut last).await {
            RulesFile::Unchanged => {}
            RulesFile::Loaded(rules) => {
                tracing::info!(path = %path.display(), format = rules.format(), "NIC rules loaded");
                ctx.set_rules(rules);
            }
            RulesFile::Rejected(e) => {
                tracing::error!(path = %path.display(), error = %e, "NIC rules file rejected; keeping the previous rules");
                ctx.metrics.rules_rejected.inc();
                rules_rejected_event(&ctx, &path, &e).await;
            }
            RulesFile::Unreadable(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the NIC rules file");
            }
        }
    }
}

/// An Event on the controller's Pod (when it knows its name) saying why the rules file was
/// refused; best effort, like every Event.
async fn rules_rejected_event(ctx: &Context, path: &std::path::Path, error: &str) {
    let (Ok(name), Ok(ns)) = (std::env::var("POD_NAME"), std::env::var("POD_NAMESPACE")) else {
        return;
    };
    let pod = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name),
        namespace: Some(ns),
        ..Default::default()
    };
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "ProfileRulesRejected".into(),
        note: Some(format!(
            "{}: {error}; the last good rules stay in force",
            path.display()
        )),
        action: "Reload".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &pod).await {
        tracing::debug!(error = %e, "cannot record an Event");
    }
}

/// The safety net: buffered generators that may be admitted are woken even if no host event
/// arrives (an admitted host whose creation failed frees its slot after a TTL, for example).
pub async fn periodic_resync(ctx: Arc<Context>, every: Duration, alive: impl Fn() -> Vec<String>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        // A generator deleted without our finalizer running (someone removed it) must not keep
        // a queue place that the ones behind it are waiting for.
        // (An empty list is the store not filled yet, not proof that nobody is left.)
        let alive: std::collections::HashSet<String> = alive().into_iter().collect();
        if !alive.is_empty() {
            ctx.admission.retain_queued(&alive);
        }
        let wake = ctx.admission.releasable_now();
        if !wake.is_empty() {
            tracing::debug!(
                count = wake.len(),
                "periodic resync releases buffered generators"
            );
            ctx.wake(wake);
        }
        ctx.update_gauges();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_vendor_prefixed_keys() {
        let data: BTreeMap<String, ByteString> = [
            ("hp-username", "ilo"),
            ("hp-password", "pw1"),
            ("dell-username", "root"),
            // dell-password missing: Dell is left out, not half-filled.
            ("cisco-username", "ipmi"),
            ("cisco-password", "pw3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
        let store = credentials_from_secret(&data);
        assert_eq!(
            store.get(Vendor::Hpe).map(|c| c.username.as_str()),
            Some("ilo")
        );
        assert!(store.get(Vendor::Dell).is_none());
        assert_eq!(
            store.get(Vendor::Cisco).map(|c| c.username.as_str()),
            Some("ipmi")
        );
        // Debug output never shows a password.
        assert!(!format!("{store:?}").contains("pw1"));
    }

    #[tokio::test]
    async fn the_rules_file_is_reparsed_only_when_it_changes_and_a_bad_one_is_rejected() {
        let dir = std::env::temp_dir().join(format!("igw-rules-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rules.yaml");
        let mut last = None;
        assert!(matches!(
            read_rules(&path, &mut last).await,
            RulesFile::Unreadable(_)
        ));
        std::fs::write(
            &path,
            "rules:\n- {pattern: 'rack1-*', nicName: ens1f0, macIndex: last}\n",
        )
        .unwrap();
        let RulesFile::Loaded(rules) = read_rules(&path, &mut last).await else {
            panic!("expected the rules to load");
        };
        assert!(rules.find("rack1-node3").is_some());
        std::fs::write(
            &path,
            "rules:\n- {pattern: 'db-*', nicName: eno2, macIndex: 1}\n",
        )
        .unwrap();
        let RulesFile::Loaded(rules) = read_rules(&path, &mut last).await else {
            panic!("an integer macIndex is accepted");
        };
        assert_eq!(
            rules.find("db-7").map(|(r, _)| r.mac_index.as_str()),
            Some("1")
        );
        assert!(matches!(
            read_rules(&path, &mut last).await,
            RulesFile::Unchanged
        ));
        std::fs::write(
            &path,
            "rules:\n- {pattern: '*', nicName: 'bad name', macIndex: first}\n",
        )
        .unwrap();
        assert!(matches!(
            read_rules(&path, &mut last).await,
            RulesFile::Rejected(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
