//! One `reconcile` + `error_policy` pair for `BareMetalHostGenerator`.
//!
//! Order of a reconcile: finalizer → redeploy request → parse the spec → (already done? keep the
//! credential Secret current and stop) → dry run → admission → gateway lookup → render → apply
//! → status. Admission comes before the lookup so that buffered generators cost the gateway
//! nothing, and every failure after admission gives the slot back.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::admission::Decision;
use super::adoption::{plan_host, Candidate, HostPlan};
use super::context::{Context, FINALIZER};
use super::crd::{
    parse_spec_vendor, spec_vendor_name, BareMetalHostGenerator, BareMetalHostGeneratorStatus,
    GeneratorRequest, Phase, REDEPLOY_ANNOTATION,
};
use super::gateway_client::GatewayError;
use super::legacy;
use super::objects::{host_key, BareMetalHost, NMStateConfig};
use super::render::{self, nmstate_config_name, RenderError, Rendered};
use super::writes;

/// Failures that make the controller retry the reconcile (everything else ends in a status).
/// The variant names the cause in `reconcile_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the generator has no {0}")]
    MissingField(&'static str),
}

impl Error {
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Self::Kube(_) => "kube_api",
            Self::MissingField(_) => "invalid_object",
        }
    }
}

/// Condition reasons (also the `cause` label of failures that end in a status).
mod reason {
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const NOT_FOUND: &str = "ServerNotFound";
    pub const REJECTED: &str = "LookupRejected";
    pub const GATEWAY: &str = "GatewayUnavailable";
    pub const RENDER: &str = "RenderFailed";
    pub const CREDENTIALS: &str = "MissingCredentials";
    pub const BUFFERED: &str = "WaitingForSlot";
    pub const CREATED: &str = "HostCreated";
    pub const DRY_RUN: &str = "DryRun";
    pub const REDEPLOY: &str = "Redeploying";
    pub const HOST_DELETING: &str = "PreviousHostDeleting";
    pub const HOST_TAKEN: &str = "HostBelongsToAnother";
    pub const ACCEPTED: &str = "Accepted";
}

const READY: &str = "Ready";
const DRY_RUN_CONDITION: &str = "DryRun";

pub async fn reconcile(
    gen: Arc<BareMetalHostGenerator>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_generator(&gen, &ctx).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconcile_duration
        .with_label_values(&[outcome])
        .observe(started.elapsed().as_secs_f64());
    ctx.update_gauges();
    result
}

pub fn error_policy(gen: Arc<BareMetalHostGenerator>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[err.cause()])
        .inc();
    let key = generator_key(&gen);
    let wait = ctx.backoff(&key);
    tracing::warn!(generator = %key, error = %err, ?wait, "reconcile failed; retrying");
    Action::requeue(wait)
}

pub fn generator_key(gen: &BareMetalHostGenerator) -> String {
    format!("{}/{}", gen.namespace().unwrap_or_default(), gen.name_any())
}

async fn reconcile_generator(gen: &BareMetalHostGenerator, ctx: &Context) -> Result<Action, Error> {
    let ns = gen
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<BareMetalHostGenerator> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = gen.finalizers().iter().any(|f| f == FINALIZER);
    // The old operator's finalizer has no process behind it any more: this controller does
    // the cleanup it stood for, then removes it with its own.
    let has_old_finalizer = gen
        .finalizers()
        .iter()
        .any(|f| legacy::OLD_FINALIZERS.contains(&f.as_str()));
    if gen.metadata.deletion_timestamp.is_some() {
        if has_finalizer || has_old_finalizer {
            cleanup(gen, ctx).await?;
            writes::remove_finalizer(&api, gen).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        let mut current = gen.clone();
        if gen.status.as_ref().and_then(|s| s.phase).is_none() {
            current = accept(&api, gen, ctx).await?;
        }
        let updated = writes::add_finalizer(&api, &current).await?;
        return apply(&api, &updated, ctx).await;
    }
    apply(&api, gen, ctx).await
}

/// A generator seen for the first time, or one whose phase the old operator left outside the
/// enum: status becomes Processing first. The whole status is rewritten from what was read, so
/// values outside the schema are cleared; API servers without validation ratcheting (before
/// Kubernetes 1.30) check the stored status on every write, and would refuse the finalizer.
async fn accept(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    ctx: &Context,
) -> Result<BareMetalHostGenerator, Error> {
    let status = gen.status.clone().unwrap_or_default();
    let message = "accepted: the server will be looked up".to_owned();
    let written = set_phase(
        api,
        gen,
        ctx,
        status,
        Phase::Processing,
        reason::ACCEPTED,
        message,
    )
    .await?;
    Ok(written.unwrap_or_else(|| gen.clone()))
}

/// Where the generator's objects are (or would be): what status recorded, else the spec
/// (objects are named after the server name, which defaults to the generator's name).
fn targets(gen: &BareMetalHostGenerator) -> (String, String) {
    let status = gen.status.as_ref();
    let ns = status
        .and_then(|s| s.bmh_namespace.clone())
        .or_else(|| gen.spec.namespace.clone().filter(|n| !n.trim().is_empty()))
        .or_else(|| gen.namespace())
        .unwrap_or_default();
    let name = status
        .and_then(|s| s.bmh_name.clone())
        .or_else(|| {
            gen.spec
                .server_name
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| gen.name_any());
    (ns, name)
}

/// The redeploy annotations present: ours (any value) and the old operator's (`"true"` only,
/// as it read it).
fn redeploy_requests(gen: &BareMetalHostGenerator) -> Vec<&'static str> {
    let a = gen.annotations();
    let mut keys = Vec::new();
    if a.contains_key(REDEPLOY_ANNOTATION) {
        keys.push(REDEPLOY_ANNOTATION);
    }
    if a.get(legacy::REDEPLOY_ANNOTATION).map(|v| v.trim()) == Some("true") {
        keys.push(legacy::REDEPLOY_ANNOTATION);
    }
    keys
}

async fn remove_redeploy_requests(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
) -> Result<(), Error> {
    for key in redeploy_requests(gen) {
        writes::remove_annotation(api, gen, key).await?;
    }
    Ok(())
}

async fn cleanup(gen: &BareMetalHostGenerator, ctx: &Context) -> Result<(), Error> {
    let key = generator_key(gen);
    let gen_ns = gen.namespace().unwrap_or_default();
    let (ns, name) = targets(gen);
    // A slot reserved for this host is not given back here: the host may have been created
    // already, and it is counted until the watch shows it gone (or the pending TTL ends).
    ctx.admission.forget_generator(&key);
    ctx.clear_backoff(&key);
    let note = if ctx.settings.delete_resources_on_delete {
        let client = ctx.client.clone();
        let hosts = writes::delete_produced(
            &Api::<BareMetalHost>::namespaced(client.clone(), &ns),
            &gen_ns,
            &gen.name_any(),
        )
        .await?;
        let nmstate = writes::delete_produced(
            &Api::<NMStateConfig>::namespaced(client.clone(), &ns),
            &gen_ns,
            &gen.name_any(),
        )
        .await?;
        // The Secret by name, not by a label query: listing Secrets cluster-wide would need
        // read access to every Secret in the cluster. Its name is known once status records the
        // vendor; a dry run created none.
        let status = gen.status.clone().unwrap_or_default();
        let vendor = status
            .server_vendor
            .as_deref()
            .and_then(|v| parse_spec_vendor(v).ok())
            .filter(|_| !has_condition(&status, DRY_RUN_CONDITION));
        let mut secrets = 0;
        let secret = match vendor {
            Some(vendor) => Some(render::secret_name(vendor, &name)),
            // The old operator's status may hold a vendor text of its own; it named the
            // Secret from it (`bmc-cred-` for anything else). Not for a dry run.
            None if status.server_vendor.is_some()
                && !has_condition(&status, DRY_RUN_CONDITION) =>
            {
                Some(render::old_secret_name(
                    status.server_vendor.as_deref(),
                    &name,
                ))
            }
            None => None,
        };
        // The Secret cannot be read (write-only access), so its owner is told by the host of the
        // same server: a host another generator owns (two old CRs naming one server, one of
        // them adopted it) keeps its credentials.
        let host_owner = Api::<BareMetalHost>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await?
            .and_then(|h| h.generator());
        let someone_elses = host_owner.is_some_and(|o| o != (gen_ns.clone(), gen.name_any()));
        if let Some(secret) = secret.filter(|_| !someone_elses) {
            let api = Api::<Secret>::namespaced(client.clone(), &ns);
            if writes::delete_if_present(&api, &secret).await? {
                secrets += 1;
            }
        }
        // Objects the old operator created and this controller never adopted carry no labels;
        // status names them, as the old operator's delete handler read it.
        let mut hosts = hosts.len();
        let mut nmstate = nmstate.len();
        if status.bmh_name.is_some() {
            let host_api = Api::<BareMetalHost>::namespaced(client.clone(), &ns);
            if writes::delete_if_unowned(&host_api, &name).await? {
                hosts += 1;
            }
            let nm_api = Api::<NMStateConfig>::namespaced(client, &ns);
            if writes::delete_if_unowned(&nm_api, &nmstate_config_name(&name)).await? {
                nmstate += 1;
            }
        }
        format!(
            "deleted {hosts} BareMetalHost(s), {nmstate} NMStateConfig(s) and {secrets} Secret(s) in {ns}"
        )
    } else {
        format!("left the BareMetalHost {ns}/{name} and its objects in place (DELETE_RESOURCES_ON_DELETE is off)")
    };
    tracing::info!(generator = %key, "{note}");
    publish(ctx, gen, EventType::Normal, "Deleted", note).await;
    Ok(())
}

async fn apply(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    ctx: &Context,
) -> Result<Action, Error> {
    let key = generator_key(gen);
    let status = gen.status.clone().unwrap_or_default();

    let req = match gen.parse() {
        Ok(r) => r,
        Err(e) => {
            return fail(api, gen, ctx, reason::INVALID_SPEC, e.to_string()).await;
        }
    };

    if !redeploy_requests(gen).is_empty() {
        if req.dry_run {
            // Nothing was created: there is nothing to recreate.
            remove_redeploy_requests(api, gen).await?;
        } else {
            return redeploy(api, gen, ctx).await;
        }
    }

    let up_to_date = status.observed_generation == gen.metadata.generation;
    let was_dry_run = has_condition(&status, DRY_RUN_CONDITION);
    match status.phase {
        Some(Phase::Completed) if up_to_date && was_dry_run == req.dry_run => {
            ctx.admission.forget_generator(&key);
            if !req.dry_run {
                keep_credentials_current(gen, &req, &status, ctx).await?;
            }
            return Ok(Action::await_change());
        }
        // Permanent until the spec changes; missing credentials are retried when they change
        // (rotation wakes every generator).
        Some(Phase::Failed)
            if up_to_date && condition_reason(&status) != Some(reason::CREDENTIALS) =>
        {
            ctx.admission.forget_generator(&key);
            return Ok(Action::await_change());
        }
        _ => {}
    }

    if req.dry_run {
        ctx.admission.forget_generator(&key);
        return dry_run(api, gen, &req, ctx).await;
    }

    let host = host_key(&req.target_namespace, &req.object_name);
    if let Decision::Buffered { since, .. } = admit(&key, &host, &status, ctx) {
        return buffer(api, gen, ctx, since).await;
    }
    admitted(api, gen, &req, ctx).await
}

fn admit(key: &str, host: &str, status: &BareMetalHostGeneratorStatus, ctx: &Context) -> Decision {
    let buffered_at = status.buffered_at.as_ref().and_then(to_chrono);
    let decision = ctx.admission.request(key, host, buffered_at);
    ctx.update_gauges();
    decision
}

async fn buffer(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    ctx: &Context,
    since: DateTime<Utc>,
) -> Result<Action, Error> {
    let mut next = gen.status.clone().unwrap_or_default();
    next.buffered_at = Some(to_time(since));
    // No counts or queue position in the message: it would change, and be written, at every
    // admission elsewhere (the metrics carry them).
    let message = format!(
        "waiting for an admission slot: {} hosts in flight is the limit",
        ctx.admission.max_in_flight()
    );
    set_phase(
        api,
        gen,
        ctx,
        next,
        Phase::Buffered,
        reason::BUFFERED,
        message,
    )
    .await?;
    // Released by the host watch or the periodic resync.
    Ok(Action::await_change())
}

/// Whose host this is, by the labels the controller puts on it. A host without them (created
/// by the replaced operator, or by hand) belongs to the generator of the same name.
fn foreign_owner(host: &BareMetalHost, gen: &BareMetalHostGenerator) -> Option<String> {
    let (ns, name) = host.generator()?;
    let mine = Some(ns.as_str()) == gen.namespace().as_deref() && name == gen.name_any();
    (!mine).then(|| format!("{ns}/{name}"))
}

/// Admitted: look the server up, render, apply. The reserved slot is given back on every
/// return before the apply is sent, and kept after (the host may exist from then on).
async fn admitted(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    req: &GeneratorRequest,
    ctx: &Context,
) -> Result<Action, Error> {
    let key = generator_key(gen);
    let host = host_key(&req.target_namespace, &req.object_name);
    let status = gen.status.clone().unwrap_or_default();
    let give_back = || ctx.wake(ctx.admission.cancel(&host));

    let hosts: Api<BareMetalHost> = Api::namespaced(ctx.client.clone(), &req.target_namespace);
    let in_namespace = match hosts.list(&Default::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            give_back();
            return Err(e.into());
        }
    };
    let gen_ns = gen.namespace().unwrap_or_default();
    let gen_name = gen.name_any();
    let candidate = |mac: Option<&'_ str>, bmc: Option<&'_ str>| {
        let c = Candidate {
            generator: (gen_ns.as_str(), gen_name.as_str()),
            object_name: req.object_name.as_str(),
            recorded: status.bmh_name.as_deref(),
            vendor: req.vendor,
            mac,
            bmc,
        };
        plan_host(&c, &in_namespace)
    };
    // By name and owner first: where the objects go, and whether this generator may have them.
    let plan = candidate(None, None);
    let target = match (&plan, plan.host_name()) {
        (_, Some(name)) => name.to_owned(),
        (HostPlan::Refuse(why), None) => {
            give_back();
            return fail(api, gen, ctx, reason::HOST_TAKEN, why.to_string()).await;
        }
        (_, None) => return Err(Error::MissingField("a host name")),
    };
    let existing = in_namespace
        .iter()
        .find(|h| h.name_any() == target)
        .cloned();
    let host = host_key(&req.target_namespace, &target);
    match &existing {
        Some(h) if h.metadata.deletion_timestamp.is_some() => {
            give_back();
            let message = format!("waiting for the previous BareMetalHost {host} to be deleted");
            set_phase(
                api,
                gen,
                ctx,
                status,
                Phase::Processing,
                reason::HOST_DELETING,
                message,
            )
            .await?;
            return Ok(Action::requeue(ctx.settings.redeploy_poll));
        }
        Some(_) => {}
        // Admission let it through as an existing host, but the API says it is gone (the
        // watch has not caught up, e.g. right after a redeploy): it needs a real slot.
        None if !ctx.admission.is_pending(&host) => {
            ctx.wake(ctx.admission.observe(&host, None));
            if let Decision::Buffered { since, .. } = admit(&key, &host, &status, ctx) {
                return buffer(api, gen, ctx, since).await;
            }
        }
        None => {}
    }

    // A host kept under an earlier name keeps it; its Secret and NMStateConfig follow it.
    let mut req = req.clone();
    req.object_name = target.clone();
    let mut rendered = match lookup_and_render(api, gen, &req, ctx).await {
        Ok(Ok(r)) => r,
        Ok(Err(action)) => {
            give_back();
            return Ok(action);
        }
        Err(e) => {
            give_back();
            return Err(e);
        }
    };
    // With the server's MAC and BMC known: no second host may carry them.
    let mac = rendered.selection.mac.to_string();
    let bare_bmc = legacy::bare_bmc_host(&rendered.bmc_address);
    if let HostPlan::Refuse(why) = candidate(Some(&mac), Some(&bare_bmc)) {
        give_back();
        return fail(api, gen, ctx, reason::HOST_TAKEN, why.to_string()).await;
    }
    // Metal3 refuses to change a host's bootMACAddress or BMC address once set, and a host
    // that exists (one taken over from the old operator, say) must not be re-aimed behind its
    // back: it keeps them byte for byte (baremetal-operator compares the MAC string exactly),
    // and a real difference is reported. Redeploy takes the new values.
    let mut kept = Vec::new();
    if let Some(h) = &existing {
        let spec = &mut rendered.bare_metal_host.spec;
        if let (Some(old), Some(target)) = (h.boot_mac(), spec.boot_mac_address.as_mut()) {
            if !old.eq_ignore_ascii_case(&mac) {
                kept.push(format!(
                    "bootMACAddress {old} (the gateway now gives {mac})"
                ));
            }
            old.clone_into(target);
            // The installer must configure the NIC the host boots from.
            if let Some(nm) = rendered.nmstate_config.as_mut() {
                nm.retarget_mac(&mac, old);
            }
        }
        if let (Some(old), Some(bmc)) = (h.bmc_address(), spec.bmc.as_mut()) {
            if !old.eq_ignore_ascii_case(&rendered.bmc_address) {
                kept.push(format!(
                    "bmc.address {old} (the gateway now gives {})",
                    rendered.bmc_address
                ));
            }
            old.clone_into(&mut bmc.address);
        }
    }
    let adopted = matches!(plan, HostPlan::Adopt { .. });
    let req = &req;

    // From here the host may exist: the slot is kept even if a write fails.
    writes::apply_rendered(ctx, &rendered).await?;
    if rendered.nmstate_config.is_none() {
        // No VLAN (any more): an NMStateConfig left from an earlier spec would still be applied
        // by the installer.
        writes::delete_own_nmstate(
            ctx,
            &rendered.namespace,
            &nmstate_config_name(&req.object_name),
            gen,
        )
        .await?;
    }

    let mut next = completed_status(&status, req, &rendered);
    next.mac_address = rendered.bare_metal_host.boot_mac().map(str::to_owned);
    next.bmc_address = rendered.bare_metal_host.bmc_address().map(str::to_owned);
    next.ipmi_address = next.bmc_address.as_deref().map(legacy::bare_bmc_host);
    if !kept.is_empty() {
        let note = format!(
            "BareMetalHost {host} keeps its {}; annotate {REDEPLOY_ANNOTATION} to recreate it",
            kept.join(" and its ")
        );
        publish(ctx, gen, EventType::Warning, "HostKept", note).await;
    }
    next.buffered_at = None;
    if status.phase == Some(Phase::Buffered) {
        if let Some(since) = status.buffered_at.as_ref().and_then(to_chrono) {
            let waited = (Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0;
            ctx.metrics.buffer_wait.observe(waited);
        }
        ctx.metrics.releases.inc();
    }
    if existing.is_none() {
        ctx.metrics
            .hosts_created
            .with_label_values(&[spec_vendor_name(rendered.vendor)])
            .inc();
    }
    let message = format!(
        "BareMetalHost {host} {} with boot MAC {} (NIC {}, from {})",
        if existing.is_none() {
            "created"
        } else if adopted {
            "adopted from the old operator"
        } else {
            "updated"
        },
        next.mac_address.as_deref().unwrap_or_default(),
        rendered.selection.nic_name,
        rendered.selection.source,
    );
    ctx.mark_credentials_applied(&key);
    set_phase(
        api,
        gen,
        ctx,
        next,
        Phase::Completed,
        reason::CREATED,
        message,
    )
    .await?;
    Ok(Action::await_change())
}

/// Ask the gateway, then render. `Err(action)`: the generator's status already says why, and
/// this is what to do next.
async fn lookup_and_render(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    req: &GeneratorRequest,
    ctx: &Context,
) -> Result<Result<Rendered, Action>, Error> {
    let key = generator_key(gen);
    let status = gen.status.clone().unwrap_or_default();
    let record = match ctx.gateway.server(&req.server_name, req.vendor).await {
        Ok(r) => r,
        Err(e) if e.is_permanent() => {
            let why = match e {
                GatewayError::NotFound { .. } => reason::NOT_FOUND,
                _ => reason::REJECTED,
            };
            return fail(api, gen, ctx, why, e.to_string()).await.map(Err);
        }
        Err(e) => {
            ctx.metrics
                .reconcile_errors
                .with_label_values(&["gateway"])
                .inc();
            let wait = ctx.backoff(&key).max(e.retry_after().unwrap_or_default());
            // No delay in the message: a changed status would trigger a reconcile at once,
            // ahead of the backoff.
            let message = format!("{e}; retrying with backoff");
            set_phase(
                api,
                gen,
                ctx,
                status,
                Phase::Processing,
                reason::GATEWAY,
                message,
            )
            .await?;
            return Ok(Err(Action::requeue(wait)));
        }
    };
    let rules = ctx.rules();
    match render::render(
        req,
        &record,
        &ctx.credentials(),
        &rules,
        &ctx.settings.render,
    ) {
        Ok(r) => Ok(Ok(r)),
        Err(e) => {
            let why = match e {
                RenderError::NoCredentials(_) | RenderError::EmptyCredentials(_) => {
                    reason::CREDENTIALS
                }
                _ => reason::RENDER,
            };
            fail(api, gen, ctx, why, e.to_string()).await.map(Err)
        }
    }
}

fn completed_status(
    prev: &BareMetalHostGeneratorStatus,
    req: &GeneratorRequest,
    r: &Rendered,
) -> BareMetalHostGeneratorStatus {
    BareMetalHostGeneratorStatus {
        mac_address: Some(r.selection.mac.to_string()),
        ipmi_address: Some(legacy::bare_bmc_host(&r.bmc_address)),
        bmc_address: Some(r.bmc_address.clone()),
        bmh_name: Some(r.bmh_name.clone()),
        bmh_namespace: Some(r.namespace.clone()),
        server_vendor: Some(spec_vendor_name(r.vendor).to_owned()),
        vlan_id: req.vlan_for(r.vendor).map(i64::from),
        selected_nic_name: Some(r.selection.nic_name.clone()),
        selected_mac_index: Some(r.selection.mac_index.to_string()),
        ..prev.clone()
    }
}

async fn dry_run(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    req: &GeneratorRequest,
    ctx: &Context,
) -> Result<Action, Error> {
    let rendered = match lookup_and_render(api, gen, req, ctx).await? {
        Ok(r) => r,
        Err(action) => return Ok(action),
    };
    let status = gen.status.clone().unwrap_or_default();
    let mut next = completed_status(&status, req, &rendered);
    next.buffered_at = None;
    let mut would = vec![
        format!("Secret {}", rendered.secret.name()),
        format!("BareMetalHost {}", rendered.bmh_name),
    ];
    if rendered.nmstate_config.is_some() {
        would.push(format!(
            "NMStateConfig {}",
            nmstate_config_name(&rendered.bmh_name)
        ));
    }
    let message = format!(
        "dry run: would create {} in namespace {} (boot MAC {}, BMC {})",
        would.join(", "),
        rendered.namespace,
        rendered.selection.mac,
        rendered.bmc_address
    );
    set_condition(
        &mut next.conditions,
        DRY_RUN_CONDITION,
        true,
        reason::DRY_RUN,
        &message,
        gen.metadata.generation,
    );
    set_phase(
        api,
        gen,
        ctx,
        next,
        Phase::Completed,
        reason::DRY_RUN,
        message,
    )
    .await?;
    Ok(Action::await_change())
}

/// Rotation: a completed host's credential Secret follows the current BMC credentials, with no
/// gateway lookup and no change to the host.
async fn keep_credentials_current(
    gen: &BareMetalHostGenerator,
    req: &GeneratorRequest,
    status: &BareMetalHostGeneratorStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let key = generator_key(gen);
    if !ctx.credentials_changed_for(&key) {
        return Ok(());
    }
    let Some(vendor) = status
        .server_vendor
        .as_deref()
        .and_then(|v| parse_spec_vendor(v).ok())
    else {
        return Ok(());
    };
    let mut req = req.clone();
    if let Some(ns) = &status.bmh_namespace {
        req.target_namespace = ns.clone();
    }
    match render::credential_secret(&req, vendor, &ctx.credentials()) {
        Ok(secret) => {
            writes::apply_secret(ctx, secret).await?;
            ctx.mark_credentials_applied(&key);
            Ok(())
        }
        Err(e) => {
            // The host exists and keeps its last good Secret; say so instead of failing it.
            tracing::warn!(generator = %generator_key(gen), error = %e, "cannot refresh the BMC credential Secret");
            Ok(())
        }
    }
}

async fn redeploy(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    ctx: &Context,
) -> Result<Action, Error> {
    let (ns, name) = targets(gen);
    let hosts: Api<BareMetalHost> = Api::namespaced(ctx.client.clone(), &ns);
    let status = gen.status.clone().unwrap_or_default();
    let message = match hosts.get_opt(&name).await? {
        Some(h) if foreign_owner(&h, gen).is_some() => {
            let message = format!(
                "redeploy ignored: BareMetalHost {ns}/{name} belongs to generator {}",
                foreign_owner(&h, gen).unwrap_or_default()
            );
            remove_redeploy_requests(api, gen).await?;
            publish(ctx, gen, EventType::Warning, "Redeploy", message).await;
            return Ok(Action::await_change());
        }
        Some(_) => {
            writes::delete_if_present(&hosts, &name).await?;
            writes::delete_own_nmstate(ctx, &ns, &nmstate_config_name(&name), gen).await?;
            format!(
                "redeploy requested: deleted BareMetalHost {ns}/{name}; it will be created again"
            )
        }
        None => format!(
            "redeploy requested: BareMetalHost {ns}/{name} does not exist; it will be created"
        ),
    };
    // Processing first, so that a crash between the two writes cannot leave "Completed" behind
    // with the annotation gone.
    set_phase(
        api,
        gen,
        ctx,
        status,
        Phase::Processing,
        reason::REDEPLOY,
        message.clone(),
    )
    .await?;
    remove_redeploy_requests(api, gen).await?;
    publish(ctx, gen, EventType::Normal, "Redeploy", message).await;
    Ok(Action::requeue(ctx.settings.redeploy_poll))
}

async fn fail(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    ctx: &Context,
    why: &'static str,
    message: String,
) -> Result<Action, Error> {
    ctx.metrics.reconcile_errors.with_label_values(&[why]).inc();
    // A generator that fails no longer waits for a slot; it must not hold a queue place.
    ctx.admission.forget_generator(&generator_key(gen));
    let status = gen.status.clone().unwrap_or_default();
    set_phase(api, gen, ctx, status, Phase::Failed, why, message).await?;
    Ok(Action::await_change())
}

/// Writes the status (only when it changed, so a status write never feeds a reconcile loop)
/// and publishes an Event when the phase changes. Returns the generator as written, if it was.
async fn set_phase(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    ctx: &Context,
    mut next: BareMetalHostGeneratorStatus,
    phase: Phase,
    why: &str,
    message: String,
) -> Result<Option<BareMetalHostGenerator>, Error> {
    let previous = gen.status.clone().unwrap_or_default();
    next.phase = Some(phase);
    next.message = Some(message.clone());
    next.observed_generation = gen.metadata.generation;
    if phase != Phase::Buffered {
        next.buffered_at = None;
    }
    set_condition(
        &mut next.conditions,
        READY,
        phase == Phase::Completed,
        why,
        &message,
        gen.metadata.generation,
    );
    if why != reason::DRY_RUN {
        next.conditions.retain(|c| c.type_ != DRY_RUN_CONDITION);
    }
    if phase != Phase::Processing {
        // Only a transient failure keeps growing the backoff; any other outcome resets it.
        ctx.clear_backoff(&generator_key(gen));
    }
    if next == previous {
        return Ok(None);
    }
    let written = writes::write_status(api, &gen.name_any(), &next).await?;
    if previous.phase != Some(phase) {
        ctx.metrics
            .phase_transitions
            .with_label_values(&[&phase.to_string()])
            .inc();
        let kind = if phase == Phase::Failed {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(ctx, gen, kind, &phase.to_string(), message).await;
    }
    Ok(Some(written))
}

fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    why: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    let keep_time = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: why.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: keep_time.unwrap_or_else(|| to_time(Utc::now())),
    });
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

// k8s-openapi speaks jiff; admission and metrics speak chrono.
pub(super) fn to_chrono(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.0.as_millisecond())
}

/// To the second, as `Time` is stored: a status compared before and after a round trip through
/// the API server must compare equal, or every reconcile would write it again.
fn to_time(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn has_condition(status: &BareMetalHostGeneratorStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn condition_reason(status: &BareMetalHostGeneratorStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.reason.as_str())
}

/// Events are best effort: a reconcile never fails because an Event could not be recorded.
async fn publish(
    ctx: &Context,
    gen: &BareMetalHostGenerator,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &gen.object_ref(&())).await {
        tracing::debug!(generator = %generator_key(gen), error = %e, "cannot record an Event");
    }
}
