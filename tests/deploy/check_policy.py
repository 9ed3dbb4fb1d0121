"""Project rules over the rendered manifests, beyond what a schema can say.

    python check_policy.py --out-dir DIR BUILD.yaml...       (kustomize build outputs)
    python check_policy.py --compose COMPOSE_CONFIG.yaml      (`docker-compose config` output)

For every kustomize build: no Secret objects (deploy/secrets/ are templates, never applied by
kustomize); every container non-root, read-only root file system, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp, memory limit and requests, /healthz and /readyz
probes; the gateway's ServiceAccount mounts no token and no (Cluster)RoleBinding names it; the
controller gets POD_NAME/POD_NAMESPACE from the downward API; every file the gateway config
names lies under a mounted volume, the --config path is the mounted ConfigMap key, the listen
port is the container's `http` port, the system names match the keys of the Secret/ConfigMap
templates; the controller's GATEWAY_URL names the gateway Service and port. The gateway config
of each build is written to DIR/<build>.gateway.toml for `inventory-gateway check-config`.
`--controller-env BUILD` prints the controller's environment and args, for the CLI check.
"""

import argparse
import os
import posixpath
import sys
import tomllib
from urllib.parse import urlsplit

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
errors = []


def fail(where, msg):
    errors.append(f"{where}: {msg}")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


def mounted_dir(pod, container, path):
    """The volume under whose mountPath `path` lies, or None."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/") + "/"
        if path.startswith(mp):
            return volumes.get(m["name"]), path[len(mp):]
    return None, None


def template_keys(file):
    doc = load(os.path.join(ROOT, "deploy/secrets", file))[0]
    return set((doc.get("stringData") or doc.get("data") or {}).keys())


def check_build(path, out_dir):
    docs = load(path)
    where = os.path.basename(path)
    for d in docs:
        if d["kind"] == "Secret":
            fail(where, f"Secret {d['metadata']['name']} is rendered: secrets must stay templates")
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        name = d["metadata"]["name"]
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            fail(where, f"{name}: pod securityContext.runAsNonRoot must be true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(where, f"{name}: pod seccompProfile must be RuntimeDefault")
        if "podAntiAffinity" not in pod.get("affinity", {}):
            fail(where, f"{name}: no podAntiAffinity")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            cname = f"{name}/{c['name']}"
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(where, f"{cname}: readOnlyRootFilesystem must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(where, f"{cname}: allowPrivilegeEscalation must be false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                fail(where, f"{cname}: capabilities must drop ALL")
            res = c.get("resources", {})
            if not res.get("requests") or "memory" not in res.get("limits", {}):
                fail(where, f"{cname}: resources.requests and limits.memory are required")
            for probe, path_ in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                if c.get(probe, {}).get("httpGet", {}).get("path") != path_:
                    fail(where, f"{cname}: {probe} must GET {path_}")

    gateway = next((d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "inventory-gateway"), None)
    controller = next((d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "inventory-gateway-controller"), None)
    if not gateway or not controller:
        fail(where, "the gateway and controller Deployments must both be rendered")
        return

    # The gateway never talks to the API server.
    gw_pod = gateway["spec"]["template"]["spec"]
    gw_sa = gw_pod.get("serviceAccountName")
    sa = next((d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == gw_sa), None)
    if not sa or sa.get("automountServiceAccountToken") is not False or gw_pod.get("automountServiceAccountToken") is not False:
        fail(where, "the gateway's ServiceAccount and pod must set automountServiceAccountToken: false")
    for d in docs:
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for s in d.get("subjects", []):
                if s.get("kind") == "ServiceAccount" and s.get("name") == gw_sa:
                    fail(where, f"{d['kind']} {d['metadata']['name']} grants RBAC to the gateway")

    # The gateway config and the files it names.
    gw = gw_pod["containers"][0]
    args = gw.get("args", [])
    if "--config" not in args:
        fail(where, "the gateway must be started with --config")
        return
    config_path = args[args.index("--config") + 1]
    volume, key = mounted_dir(gw_pod, gw, config_path)
    if not volume or "configMap" not in volume:
        fail(where, f"--config {config_path} is not in a mounted ConfigMap")
        return
    cm = next((d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]), None)
    if not cm or key not in cm.get("data", {}):
        fail(where, f"ConfigMap {volume['configMap']['name']} has no key {key}")
        return
    text = cm["data"][key]
    with open(os.path.join(out_dir, where.replace(".yaml", "") + ".gateway.toml"), "w") as f:
        f.write(text)
    config = tomllib.loads(text)
    files = [("auth.tokens_file", config.get("auth", {}).get("tokens_file"))]
    # A UCS Central's fleet-wide UCS Manager login ([systems.ucsm]) names files the same way.
    logins = [(f"systems[{i}]", s) for i, s in enumerate(config.get("systems", []))]
    logins += [(f"systems[{i}].ucsm", s["ucsm"]) for i, s in enumerate(config.get("systems", [])) if "ucsm" in s]
    for label, s in logins:
        files += [(f"{label}.password_file", s.get("password_file")), (f"{label}.ca_bundle", s.get("ca_bundle"))]
        # Intersight's API key lives in the same Secret as the passwords.
        files += [(f"{label}.private_key_file", s.get("private_key_file"))]
    for label, file in files:
        if file and mounted_dir(gw_pod, gw, file)[0] is None:
            fail(where, f"{label} = {file} is under no volume mount of the gateway")
    names = {s["name"] for s in config.get("systems", [])}
    pw_keys = {posixpath.basename(s["password_file"]) for _, s in logins if s.get("password_file")}
    pw_keys |= {posixpath.basename(s["private_key_file"]) for _, s in logins if s.get("private_key_file")}
    ca_keys = {posixpath.basename(s["ca_bundle"]) for _, s in logins if s.get("ca_bundle")}
    if pw_keys and pw_keys != template_keys("appliance-credentials.yaml"):
        fail(where, f"password files {sorted(pw_keys)} != keys of deploy/secrets/appliance-credentials.yaml")
    if ca_keys and ca_keys != template_keys("ca-bundles.yaml"):
        fail(where, f"ca bundles {sorted(ca_keys)} != keys of deploy/secrets/ca-bundles.yaml")
    if not names:
        fail(where, "the gateway config names no system")
    listen_port = int(config.get("server", {}).get("listen", "127.0.0.1:8080").rsplit(":", 1)[1])
    http_ports = [p["containerPort"] for p in gw.get("ports", []) if p.get("name") == "http"]
    if http_ports != [listen_port]:
        fail(where, f"server.listen port {listen_port} != the gateway container's http port {http_ports}")

    # The controller: downward API, mounted files, the gateway's address.
    c_pod = controller["spec"]["template"]["spec"]
    ctl = c_pod["containers"][0]
    env = env_map(ctl)
    for var, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        if env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != field:
            fail(where, f"controller: {var} must come from the downward API ({field})")
    for var in ("GATEWAY_TOKEN_FILE", "PROFILE_RULES_FILE"):
        value = env.get(var, {}).get("value")
        if value and mounted_dir(c_pod, ctl, value)[0] is None:
            fail(where, f"controller: {var}={value} is under no volume mount")
    url = urlsplit(env.get("GATEWAY_URL", {}).get("value", ""))
    service = next((d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "inventory-gateway"), None)
    if service:
        expected_host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
        ports = [p["port"] for p in service["spec"]["ports"]]
        if url.hostname not in (expected_host, expected_host + ".cluster.local") or url.port not in ports:
            fail(where, f"controller: GATEWAY_URL {url.geturl()} is not the gateway Service {expected_host}:{ports}")
    else:
        fail(where, "no gateway Service")
    print(f"ok    {where}: policy and wiring ({len(docs)} objects)")


def check_compose(path):
    where = os.path.basename(path)
    with open(path) as f:
        compose = yaml.safe_load(f)
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        cmd = next(l for l in f if l.startswith("CMD "))
    default_config = yaml.safe_load(cmd[4:])[-1]
    targets = {}
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            source, target = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
            if source.startswith("/") and not os.path.exists(source):
                fail(where, f"{name}: bind-mount source {source} does not exist")
            targets.setdefault(name, []).append(target)
    if default_config not in targets.get("gateway", []):
        fail(where, f"the gateway service must mount its config at the image's default {default_config}")
    print(f"ok    {where}: bind mounts exist, gateway config at the image default {default_config}")


def controller_env(path):
    """NAME=VALUE lines of the controller container's environment (downward API: placeholders)."""
    docs = load(path)
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "inventory-gateway-controller")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    for e in container.get("env", []):
        print(f"{e['name']}={e.get('value', 'downward-api-placeholder')}")
    print("ARGS=" + " ".join(container.get("args", [])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir")
    ap.add_argument("--compose")
    ap.add_argument("--controller-env", help="print the controller's env of this build and exit")
    ap.add_argument("builds", nargs="*")
    args = ap.parse_args()
    if args.controller_env:
        controller_env(args.controller_env)
        return 0
    for b in args.builds:
        check_build(b, args.out_dir)
    if args.compose:
        check_compose(args.compose)
    for e in errors:
        print(f"ERROR {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
