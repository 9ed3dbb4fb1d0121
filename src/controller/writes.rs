//! The controller's writes to the API server: server-side apply of the generated objects, their
//! deletion, the generator's finalizer and status. Every write names the controller's field
//! manager; finalizer edits carry the object's resourceVersion, so a concurrent writer gets a
//! 409 instead of a lost update.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use super::context::{Context, FIELD_MANAGER, FINALIZER};
use super::crd::{BareMetalHostGenerator, BareMetalHostGeneratorStatus};
use super::legacy::OLD_FINALIZERS;
use super::objects::{BareMetalHost, NMStateConfig};
use super::render::{CredentialSecret, Rendered, GENERATOR_LABEL, GENERATOR_NAMESPACE_LABEL};

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn apply_params() -> PatchParams {
    // `force`: the controller owns these objects' fields, including those the replaced
    // operator wrote, which it takes over on the first apply.
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies the credential Secret.
pub async fn apply_secret(ctx: &Context, secret: CredentialSecret) -> Result<(), kube::Error> {
    let ns = secret
        .as_secret()
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let name = secret.name().to_owned();
    let mut object = secret.into_secret();
    object.metadata.managed_fields = None;
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object.metadata,
        "type": object.type_,
        "stringData": object.string_data,
    });
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map(|_| ())
}

/// Applies everything a generator produces: the Secret first (the host refers to it), the
/// NMStateConfig next (the installer must find it when the host boots), the host last.
pub async fn apply_rendered(ctx: &Context, r: &Rendered) -> Result<(), kube::Error> {
    apply_secret(ctx, r.secret.clone()).await?;
    if let Some(nm) = &r.nmstate_config {
        let api: Api<NMStateConfig> = Api::namespaced(ctx.client.clone(), &r.namespace);
        api.patch(&nm.name_any(), &apply_params(), &Patch::Apply(nm))
            .await?;
    }
    let api: Api<BareMetalHost> = Api::namespaced(ctx.client.clone(), &r.namespace);
    api.patch(
        &r.bmh_name,
        &apply_params(),
        &Patch::Apply(&r.bare_metal_host),
    )
    .await?;
    Ok(())
}

/// Deletes one object; already gone is fine.
pub async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes every object of one kind labelled as produced by this generator. Returns the names.
pub async fn delete_produced<K>(
    api: &Api<K>,
    generator_ns: &str,
    generator: &str,
) -> Result<Vec<String>, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let selector =
        format!("{GENERATOR_LABEL}={generator},{GENERATOR_NAMESPACE_LABEL}={generator_ns}");
    let list = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(l) => l,
        // The kind is not installed (no assisted installer: no NMStateConfig): nothing to delete.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut deleted = Vec::new();
    for obj in list {
        let name = obj.name_any();
        if delete_if_present(api, &name).await? {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// Deletes one object if it carries no generator label (the old operator created it and this
/// controller never adopted it); already gone is fine.
pub async fn delete_if_unowned<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let existing = match api.get_opt(name).await {
        Ok(e) => e,
        // The kind is not installed: there is none.
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => return Err(e),
    };
    match existing {
        Some(o) if !o.labels().contains_key(GENERATOR_LABEL) => delete_if_present(api, name).await,
        _ => Ok(false),
    }
}

/// Deletes the NMStateConfig of this name if this generator produced it (by its labels), or
/// the old operator did (no generator label: one it left when the VLAN went away).
pub async fn delete_own_nmstate(
    ctx: &Context,
    ns: &str,
    name: &str,
    gen: &BareMetalHostGenerator,
) -> Result<(), kube::Error> {
    let api: Api<NMStateConfig> = Api::namespaced(ctx.client.clone(), ns);
    let existing = match api.get_opt(name).await {
        Ok(e) => e,
        // The kind is not installed: there is none.
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => return Err(e),
    };
    let Some(nm) = existing else { return Ok(()) };
    let labels = nm.labels();
    let ours = labels.get(GENERATOR_LABEL).map(String::as_str) == Some(gen.name_any().as_str())
        && labels.get(GENERATOR_NAMESPACE_LABEL).map(String::as_str) == gen.namespace().as_deref();
    let old_operators = !labels.contains_key(GENERATOR_LABEL);
    if ours || old_operators {
        delete_if_present(&api, name).await?;
    }
    Ok(())
}

/// Adds the finalizer, guarded by resourceVersion. Returns the updated generator.
pub async fn add_finalizer(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
) -> Result<BareMetalHostGenerator, kube::Error> {
    let mut finalizers: Vec<String> = gen
        .finalizers()
        .iter()
        .filter(|f| !OLD_FINALIZERS.contains(&f.as_str()))
        .cloned()
        .collect();
    finalizers.push(FINALIZER.to_owned());
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": gen.resource_version(),
    }});
    api.patch(&gen.name_any(), &merge_params(), &Patch::Merge(&patch))
        .await
}

/// Removes the finalizer, ours and the old operator's (nothing else), guarded by
/// resourceVersion.
pub async fn remove_finalizer(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
) -> Result<(), kube::Error> {
    let finalizers: Vec<&String> = gen
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER && !OLD_FINALIZERS.contains(&f.as_str()))
        .collect();
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": gen.resource_version(),
    }});
    match api
        .patch(&gen.name_any(), &merge_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // The last finalizer gone, the object may vanish before the answer is built.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes one annotation (the redeploy request). Not guarded by resourceVersion: the status
/// was just written, and removing a single key cannot lose anyone else's change.
pub async fn remove_annotation(
    api: &Api<BareMetalHostGenerator>,
    gen: &BareMetalHostGenerator,
    key: &str,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": { key: null }}});
    api.patch(&gen.name_any(), &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The status fields a merge patch must clear when they are unset (a JSON merge patch only
/// removes what it sets to null).
const STATUS_FIELDS: [&str; 13] = [
    "phase",
    "message",
    "bufferedAt",
    "macAddress",
    "ipmiAddress",
    "bmhName",
    "bmhNamespace",
    "serverVendor",
    "vlanId",
    "selectedNicName",
    "selectedMacIndex",
    "observedGeneration",
    "bmcAddress",
];

/// Replaces the generator's status through the status subresource.
pub async fn write_status(
    api: &Api<BareMetalHostGenerator>,
    name: &str,
    status: &BareMetalHostGeneratorStatus,
) -> Result<BareMetalHostGenerator, kube::Error> {
    let mut body = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    if let Value::Object(map) = &mut body {
        for f in STATUS_FIELDS {
            map.entry(f).or_insert(Value::Null);
        }
    }
    api.patch_status(
        name,
        &merge_params(),
        &Patch::Merge(&json!({ "status": body })),
    )
    .await
}
