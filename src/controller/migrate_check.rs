//! `inventory-gateway migrate-check`: what the controller would do with each generator and the
//! objects the old operator left, before it is started. Read-only (GET and LIST only). The host
//! decision is [`plan_host`], the same function the reconciler calls.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, ResourceExt};

use super::adoption::{plan_host, Candidate, HostPlan};
use super::context::FINALIZER;
use super::crd::{parse_spec_vendor, BareMetalHostGenerator, REDEPLOY_ANNOTATION};
use super::legacy;
use super::objects::{BareMetalHost, NMStateConfig};
use super::render::{nmstate_config_name, secret_name, GENERATOR_LABEL};

#[derive(clap::Args, Debug, Clone)]
pub struct MigrateCheckArgs {
    /// Kubeconfig file (default: `KUBECONFIG`, then `~/.kube/config`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Only generators in this namespace (default: all).
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("Kubernetes client configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What one generator would get, one action per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub generator: String,
    /// `adopt`, `create`, `keep`, `rename-on-redeploy` or `refuse`.
    pub verdict: &'static str,
    pub lines: Vec<String>,
}

/// The NMStateConfig of that name in the target namespace, if any: `Some(true)` when it carries
/// controller labels.
pub type NmState = Option<bool>;

/// Pure: one generator, the hosts of its target namespace, and its NMStateConfig.
pub fn assess(gen: &BareMetalHostGenerator, hosts: &[BareMetalHost], nm: NmState) -> Assessment {
    let key = format!("{}/{}", gen.namespace().unwrap_or_default(), gen.name_any());
    let refuse = |why: String| Assessment {
        generator: key.clone(),
        verdict: "refuse",
        lines: vec![format!("refuse   {why} (status Failed)")],
    };
    let req = match gen.parse() {
        Ok(r) => r,
        Err(e) => return refuse(format!("invalid spec: {e}")),
    };
    let status = gen.status.clone().unwrap_or_default();
    let vendor = req.vendor.or_else(|| {
        status
            .server_vendor
            .as_deref()
            .and_then(|v| parse_spec_vendor(v).ok())
    });
    let bmc = status.ipmi_address.as_deref().map(legacy::bare_bmc_host);
    let gen_ns = gen.namespace().unwrap_or_default();
    let gen_name = gen.name_any();
    let c = Candidate {
        generator: (&gen_ns, &gen_name),
        object_name: &req.object_name,
        recorded: status.bmh_name.as_deref(),
        vendor,
        mac: status.mac_address.as_deref(),
        bmc: bmc.as_deref(),
    };
    let ns = &req.target_namespace;
    let plan = plan_host(&c, hosts);
    let mut lines = Vec::new();
    let (verdict, host) = match &plan {
        HostPlan::Refuse(why) => return refuse(why.to_string()),
        HostPlan::Create { name } => {
            lines.push(format!("create   BareMetalHost {ns}/{name}"));
            ("create", name.clone())
        }
        HostPlan::Keep { name } => {
            lines.push(format!(
                "keep     BareMetalHost {ns}/{name} (already this controller's)"
            ));
            ("keep", name.clone())
        }
        HostPlan::KeepRenamedOnRedeploy { name, wanted } => {
            lines.push(format!(
                "keep     BareMetalHost {ns}/{name} (named after the generator by an earlier \
                 version; a redeploy recreates it as {ns}/{wanted})"
            ));
            ("rename-on-redeploy", name.clone())
        }
        HostPlan::Adopt { name } => {
            let mac = hosts
                .iter()
                .find(|h| h.name_any() == *name)
                .and_then(BareMetalHost::boot_mac)
                .unwrap_or("?")
                .to_owned();
            lines.push(format!(
                "adopt    BareMetalHost {ns}/{name} (no owner labels: the old operator's); \
                 bootMACAddress {mac} kept as written"
            ));
            ("adopt", name.clone())
        }
    };
    if c.mac.is_none() && c.bmc.is_none() && verdict == "create" {
        lines.push(
            "note     boot MAC and BMC unknown until the gateway answers; a host already \
             holding either is refused then"
                .to_owned(),
        );
    }
    match vendor {
        Some(v) => lines.push(format!("apply    Secret {ns}/{}", secret_name(v, &host))),
        None => lines.push(format!(
            "apply    Secret {ns}/<vendor>-cred-{host} (vendor known after the lookup)"
        )),
    }
    let nm_name = nmstate_config_name(&host);
    let vlan = match vendor {
        Some(v) => req.vlan_for(v),
        None => req.vlan_id.or(req.annotation_vlan_id),
    };
    match (vlan, nm) {
        (Some(id), Some(false)) => {
            lines.push(format!("adopt    NMStateConfig {ns}/{nm_name} (VLAN {id})"))
        }
        (Some(id), Some(true)) => {
            lines.push(format!("keep     NMStateConfig {ns}/{nm_name} (VLAN {id})"))
        }
        (Some(id), None) => {
            lines.push(format!("create   NMStateConfig {ns}/{nm_name} (VLAN {id})"))
        }
        (None, Some(_)) => lines.push(format!(
            "delete   NMStateConfig {ns}/{nm_name} (no VLAN any more)"
        )),
        (None, None) => {}
    }
    let a = gen.annotations();
    let spec = &gen.spec;
    if spec.server_vendor.is_none() {
        if let Some(v) = a.get(legacy::VENDOR_ANNOTATION) {
            lines.push(format!(
                "read     annotation server_vendor={v} (spec.server_vendor unset)"
            ));
        }
    }
    if spec
        .network_config
        .as_ref()
        .and_then(|n| n.vlan_id)
        .is_none()
    {
        if let Some(v) = a.get(legacy::VLAN_ANNOTATION) {
            let scope = if vendor == Some(crate::domain::Vendor::Dell) || vendor.is_none() {
                "makes an NMStateConfig on Dell servers, as before"
            } else {
                "ignored: not a Dell server, as before"
            };
            lines.push(format!("read     annotation vlanId={v} ({scope})"));
        }
    }
    if a.get(legacy::REDEPLOY_ANNOTATION).map(|v| v.trim()) == Some("true")
        || a.contains_key(REDEPLOY_ANNOTATION)
    {
        lines.push(
            "redeploy the host is deleted and created again; the annotation is removed".into(),
        );
    }
    for f in gen.finalizers() {
        if legacy::OLD_FINALIZERS.contains(&f.as_str()) {
            lines.push(format!("replace  finalizer {f} -> {FINALIZER}"));
        }
    }
    if let Some(ip) = status.ipmi_address.as_deref().filter(|i| i.contains("://")) {
        lines.push(format!(
            "rewrite  status.ipmiAddress {ip} -> {} (the URL moves to status.bmcAddress)",
            legacy::bare_bmc_host(ip)
        ));
    }
    Assessment {
        generator: key,
        verdict,
        lines,
    }
}

/// The report for a set of assessments, as the command prints it.
pub fn report(all: &[Assessment]) -> String {
    let mut out = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in all {
        *counts.entry(a.verdict).or_default() += 1;
        let _ = writeln!(out, "{} [{}]", a.generator, a.verdict);
        for l in &a.lines {
            let _ = writeln!(out, "  {l}");
        }
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(
        out,
        "{} generator(s): {}",
        all.len(),
        if summary.is_empty() {
            "none".to_owned()
        } else {
            summary.join(", ")
        }
    );
    out
}

pub async fn run(args: MigrateCheckArgs) -> Result<String, CheckError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(config)?;
    let gens: Api<BareMetalHostGenerator> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut generators = gens.list(&ListParams::default()).await?.items;
    generators.sort_by_key(|g| (g.namespace(), g.name_any()));
    let mut hosts_by_ns: BTreeMap<String, Vec<BareMetalHost>> = BTreeMap::new();
    let mut out = Vec::new();
    for g in &generators {
        let ns = g
            .parse()
            .map(|r| r.target_namespace)
            .unwrap_or_else(|_| g.namespace().unwrap_or_default());
        if !hosts_by_ns.contains_key(&ns) {
            let api: Api<BareMetalHost> = Api::namespaced(client.clone(), &ns);
            hosts_by_ns.insert(ns.clone(), api.list(&ListParams::default()).await?.items);
        }
        let hosts = hosts_by_ns.get(&ns).map(Vec::as_slice).unwrap_or_default();
        let object = g.parse().ok().map(|r| {
            let c_gen = (g.namespace().unwrap_or_default(), g.name_any());
            let status = g.status.clone().unwrap_or_default();
            let c = Candidate {
                generator: (&c_gen.0, &c_gen.1),
                object_name: &r.object_name,
                recorded: status.bmh_name.as_deref(),
                vendor: r.vendor,
                mac: None,
                bmc: None,
            };
            plan_host(&c, hosts)
                .host_name()
                .map(str::to_owned)
                .unwrap_or(r.object_name.clone())
        });
        let nm = match object {
            Some(name) => {
                let api: Api<NMStateConfig> = Api::namespaced(client.clone(), &ns);
                match api.get_opt(&nmstate_config_name(&name)).await {
                    Ok(found) => found.map(|n| n.labels().contains_key(GENERATOR_LABEL)),
                    // The kind is not installed.
                    Err(kube::Error::Api(e)) if e.code == 404 => None,
                    Err(e) => return Err(e.into()),
                }
            }
            None => None,
        };
        out.push(assess(g, hosts, nm));
    }
    Ok(report(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gen(v: serde_json::Value) -> BareMetalHostGenerator {
        serde_json::from_value(v).unwrap()
    }

    fn host(name: &str, labels: serde_json::Value, mac: &str) -> BareMetalHost {
        serde_json::from_value(json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": name, "namespace": "ztp", "labels": labels},
            "spec": {"bootMACAddress": mac, "bmc": {"address": "idrac-virtualmedia://10.0.0.5/redfish/v1/Systems/System.Embedded.1"}}
        }))
        .unwrap()
    }

    fn old_gen() -> BareMetalHostGenerator {
        gen(json!({
            "apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
            "metadata": {"name": "worker-1", "namespace": "ztp",
                         "finalizers": [legacy::OLD_FINALIZER],
                         "annotations": {"server_vendor": "DELL", "vlanId": "24"}},
            "spec": {"serverName": "srv-1", "infraEnv": "env"},
            "status": {"phase": "Completed", "bmhName": "srv-1", "bmhNamespace": "ztp",
                       "macAddress": "B0:7B:25:00:00:01", "ipmiAddress": "10.0.0.5",
                       "serverVendor": "DELL", "vlanId": "24"}
        }))
    }

    #[test]
    fn an_old_operators_generator_is_adopted_with_everything_it_left() {
        let hosts = [host("srv-1", json!({}), "B0:7B:25:00:00:01")];
        let a = assess(&old_gen(), &hosts, Some(false));
        assert_eq!(a.verdict, "adopt");
        let text = a.lines.join("\n");
        for want in [
            "adopt    BareMetalHost ztp/srv-1",
            "bootMACAddress B0:7B:25:00:00:01 kept as written",
            "apply    Secret ztp/dell-cred-srv-1",
            "adopt    NMStateConfig ztp/nmstate-config-srv-1 (VLAN 24)",
            "read     annotation server_vendor=DELL",
            "read     annotation vlanId=24",
            "replace  finalizer bmhgenerator.infra.example.com/finalizer",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn a_host_holding_the_mac_is_refused_by_name() {
        let hosts = [host("hand-made", json!({}), "b0:7b:25:00:00:01")];
        let a = assess(&old_gen(), &hosts, None);
        assert_eq!(a.verdict, "refuse");
        assert!(a.lines[0].contains("ztp/hand-made"), "{:?}", a.lines);
    }

    #[test]
    fn other_verdicts() {
        let theirs = host(
            "srv-1",
            json!({GENERATOR_LABEL: "other"}),
            "b0:7b:25:00:00:01",
        );
        let a = assess(&old_gen(), &[theirs], None);
        assert_eq!(a.verdict, "refuse");
        assert!(a.lines[0].contains("belongs to generator ztp/other"));
        let invalid = gen(json!({
            "apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
            "metadata": {"name": "w", "namespace": "ztp"},
            "spec": {"serverName": "OV-SRV-0001", "infraEnv": "env"}
        }));
        let a = assess(&invalid, &[], None);
        assert_eq!(a.verdict, "refuse");
        assert!(a.lines[0].contains("OV-SRV-0001"));
        let mine = host(
            "worker-1",
            json!({GENERATOR_LABEL: "worker-1"}),
            "b0:7b:25:00:00:01",
        );
        let a = assess(&old_gen(), &[mine], Some(true));
        assert_eq!(a.verdict, "rename-on-redeploy");
        let report = report(&[a]);
        assert!(
            report.ends_with("1 generator(s): 1 rename-on-redeploy\n"),
            "{report}"
        );
    }
}
