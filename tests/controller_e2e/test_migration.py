"""Drop-in migration from the kopf operator (issue 10): the old repository's documented CRs and the
objects the old operator created for them (migration_fixtures/old_state, rendered the way its
yaml_generators.py renders them), reconciled by the real controller process against the emulator,
the real gateway and simulators that hold the servers those CRs name (migration_fixtures/
inventory.json). Every wait polls observable state with a deadline.
"""

import json
from pathlib import Path

import pytest
import yaml

from conftest import CONTROLLER_NS, NS, demo_gateway, wait_for

FIXTURES = Path(__file__).resolve().parent / "migration_fixtures"
OLD_FINALIZER = "bmhgenerator.infra.example.com/finalizer"
KOPF_MARKER = "kopf.zalando.org/KopfFinalizerMarker"
OUR_FINALIZER = "infra.example.com/bmhgen-finalizer"
GENERATOR_LABEL = "infra.example.com/generator"
GENERATOR_NAMESPACE_LABEL = "infra.example.com/generator-namespace"
PLURALS = {"BareMetalHostGenerator": "baremetalhostgenerators", "BareMetalHost": "baremetalhosts",
           "Secret": "secrets", "NMStateConfig": "nmstateconfigs"}
WITH_STATUS = {"BareMetalHostGenerator", "BareMetalHost"}
# The old Helm chart's Deployment environment (values.yaml defaults, `quote`d by the template).
OLD_HELM_ENV = {"LOG_LEVEL": "INFO", "MAX_AVAILABLE_SERVERS": "20", "BUFFER_CHECK_INTERVAL": "30",
                "DELETE_RESOURCES_ON_DELETE": "true"}
RECONCILE_TIMEOUT = 45.0


@pytest.fixture(scope="module")
def gateway():
    """Overrides conftest's fleet: the simulators hold the servers the documented CRs name."""
    yield from demo_gateway("--inventory", str(FIXTURES / "inventory.json"))


def inventory_macs(server):
    inv = json.loads((FIXTURES / "inventory.json").read_text())
    for servers in inv.values():
        for s in servers:
            if s["name"] == server:
                return [n["mac"] for n in s["nics"]]
    raise KeyError(server)


def old_state(*prefixes):
    """The fixture documents (every file, or those whose name starts with one of `prefixes`)."""
    docs = []
    for path in sorted((FIXTURES / "old_state").glob("*.yaml")):
        if not prefixes or path.name.startswith(prefixes):
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def load(cluster, docs):
    """Writes the old state as the old operator left it: objects, then their status through the
    status subresource (a create drops it, as the API server does). Returns what was stored."""
    stored = {}
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        body = {k: v for k, v in doc.items() if k != "status"}
        obj = cluster.create(PLURALS[kind], meta["namespace"], body)
        if kind in WITH_STATUS and "status" in doc:
            obj = cluster.merge(PLURALS[kind], meta["namespace"], meta["name"],
                                {"status": doc["status"]}, sub="status")
        stored[(kind, meta["namespace"], meta["name"])] = obj
    return stored


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def mount_profiles(tmp_path):
    """The old ConfigMap's `profiles.yaml` key as a file, the way the kubelet mounts it."""
    cm = yaml.safe_load((FIXTURES / "configmap-bmh-server-profiles.yaml").read_text())
    path = tmp_path / "config" / "profiles.yaml"
    path.parent.mkdir()
    path.write_text(cm["data"]["profiles.yaml"])
    return path


def reconciled(cluster, ns, name):
    """The controller has settled this generator (Completed or Failed) for its current generation
    and carries its own finalizer. The old operator never wrote observedGeneration, so its status
    (already Completed or Failed) cannot pass for the controller's."""
    g = cluster.get("baremetalhostgenerators", ns, name)
    if g is None:
        return None
    st = g.get("status") or {}
    done = (st.get("observedGeneration") == g["metadata"]["generation"]
            and st.get("phase") in ("Completed", "Failed")
            and OUR_FINALIZER in (g["metadata"].get("finalizers") or []))
    return g if done else None


def wait_reconciled(cluster, ns, name, timeout=RECONCILE_TIMEOUT):
    return wait_for(f"{ns}/{name} reconciled by the controller",
                    lambda: reconciled(cluster, ns, name), timeout=timeout)


def names(objs):
    return sorted((o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs)


def user_secrets(cluster):
    return [s for s in cluster.list_all("secrets")
            if s["metadata"]["namespace"] != CONTROLLER_NS]


def assert_ours(obj, gen):
    labels = obj["metadata"].get("labels") or {}
    where = f'{obj["kind"]} {obj["metadata"]["namespace"]}/{obj["metadata"]["name"]}'
    assert labels.get(GENERATOR_LABEL) == gen["metadata"]["name"], (where, labels)
    assert labels.get(GENERATOR_NAMESPACE_LABEL) == gen["metadata"]["namespace"], (where, labels)


def generator_of(docs, target_ns, server):
    for g in of_kind(docs, "BareMetalHostGenerator"):
        spec = g["spec"]
        if spec.get("serverName", g["metadata"]["name"]) == server and \
                spec.get("namespace", g["metadata"]["namespace"]) == target_ns:
            return g
    raise KeyError((target_ns, server))


# ---------------------------------------------------------------------------------------------


class Findings:
    """Collects every broken promise of one scenario, so that a failure lists all of them."""

    def __init__(self):
        self.items = []

    def check(self, ok, what):
        if not ok:
            self.items.append(str(what))
        return ok

    def assert_none(self):
        assert not self.items, f"{len(self.items)} finding(s):\n- " + "\n- ".join(self.items)


def test_the_documented_crs_are_adopted_in_place(cluster, start_controller, tmp_path):
    docs = old_state()
    before = load(cluster, docs)
    gens = of_kind(docs, "BareMetalHostGenerator")
    # The old Helm chart's settings as they were; the old Deployment set no RUST_LOG.
    start_controller(RUST_LOG=None, SERVER_PROFILES_PATH=mount_profiles(tmp_path), **OLD_HELM_ENV)

    for g in gens:
        wait_reconciled(cluster, g["metadata"]["namespace"], g["metadata"]["name"])
    f = Findings()

    # Nothing duplicated, nothing recreated: exactly the old hosts, Secrets and NMStateConfigs,
    # with the uids the old operator's objects had, plus the objects of the CR it had buffered.
    released = {("BareMetalHost", "inventory", "ocp4-h100-01"),
                ("Secret", "inventory", "dell-cred-ocp4-h100-01"),
                ("NMStateConfig", "inventory", "nmstate-config-ocp4-h100-01")}
    for kind, listed in (("BareMetalHost", cluster.list_all("baremetalhosts")),
                         ("Secret", user_secrets(cluster)),
                         ("NMStateConfig", cluster.list_all("nmstateconfigs"))):
        expected = sorted(names(of_kind(docs, kind))
                          + [(ns, n) for k, ns, n in released if k == kind])
        f.check(names(listed) == expected,
                f"{kind}s: expected exactly {expected}, found {names(listed)}")
        for obj in listed:
            key = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            if key in before:
                f.check(obj["metadata"]["uid"] == before[key]["metadata"]["uid"],
                        f"{key} was recreated, not adopted")
            elif key not in released:
                continue
            gen = generator_of(docs, key[1], obj["metadata"]["name"].split("-cred-")[-1]
                               .removeprefix("nmstate-config-"))
            labels = obj["metadata"].get("labels") or {}
            f.check(labels.get(GENERATOR_LABEL) == gen["metadata"]["name"]
                    and labels.get(GENERATOR_NAMESPACE_LABEL) == gen["metadata"]["namespace"],
                    f"{key} not labelled as {gen['metadata']['name']}'s: {labels}")

    macs = [h["spec"]["bootMACAddress"].lower() for h in cluster.list_all("baremetalhosts")]
    f.check(len(macs) == len(set(macs)), f"two BareMetalHosts with one MAC: {sorted(macs)}")
    for old in of_kind(docs, "BareMetalHost"):
        key = (old["metadata"]["namespace"], old["metadata"]["name"])
        new = cluster.get("baremetalhosts", *key)
        if not f.check(new is not None, f"old BareMetalHost {key} gone"):
            continue
        # baremetal-operator v0.11 compares these exactly: byte for byte as the vendor gave them.
        f.check(new["spec"]["bootMACAddress"] == old["spec"]["bootMACAddress"],
                f"{key} bootMACAddress {new['spec']['bootMACAddress']!r}, "
                f"was {old['spec']['bootMACAddress']!r}")
        f.check(new["spec"]["bmc"] == old["spec"]["bmc"], f"{key} bmc {new['spec']['bmc']}")
        for k, v in old["metadata"]["labels"].items():
            f.check(new["metadata"]["labels"].get(k) == v, f"{key} lost label {k}={v!r}")
    for old in of_kind(docs, "Secret"):
        key = (old["metadata"]["namespace"], old["metadata"]["name"])
        new = cluster.get("secrets", *key)
        f.check(new is not None and new["data"] == old["data"], f"Secret {key} data changed")

    # The VLAN CRs' NMStateConfigs: the adopted one, and the released one with the NIC the old
    # profiles choose for an H100 (index 2, ens8f0np0).
    for server, nic, mac, vlan_id in (("ocp4-test1", "eno12399np0", "b0:26:28:4d:30:0a", 24),
                                      ("ocp4-h100-01", "ens8f0np0", "b0:26:28:50:02:e2", 30)):
        nm = cluster.get("nmstateconfigs", "inventory", f"nmstate-config-{server}")
        if not f.check(nm is not None, f"no NMStateConfig nmstate-config-{server}"):
            continue
        iface, vlan = nm["spec"]["config"]["interfaces"]
        got = (iface["name"], iface["mac-address"].lower(), vlan["name"], vlan["vlan"],
               [(i["name"], i["macAddress"].lower()) for i in nm["spec"]["interfaces"]])
        want = (nic, mac, f"{nic}.{vlan_id}", {"base-iface": nic, "id": vlan_id}, [(nic, mac)])
        f.check(got == want, f"nmstate-config-{server}: {got}, expected {want}")
    released_host = cluster.get("baremetalhosts", "inventory", "ocp4-h100-01")
    f.check(released_host is not None
            and released_host["spec"]["bootMACAddress"].lower() == "b0:26:28:50:02:e2",
            f"the buffered CR's host: {released_host and released_host['spec']}")

    for g in gens:
        ns, name = g["metadata"]["namespace"], g["metadata"]["name"]
        now = cluster.get("baremetalhostgenerators", ns, name)
        fins = now["metadata"].get("finalizers") or []
        f.check(OLD_FINALIZER not in fins and KOPF_MARKER not in fins,
                f"{name}: old finalizer kept: {fins}")
        st, old_st = now["status"], g["status"]
        if old_st["phase"] == "Failed":
            continue
        want = {"phase": "Completed", "bmhName": g["spec"]["serverName"],
                "bmhNamespace": g["spec"].get("namespace", ns),
                "ipmiAddress": old_st["ipmiAddress"],  # the bare BMC IP, as before
                "macAddress": old_st["macAddress"].lower()}
        got = {k: st.get(k) for k in want}
        got["macAddress"] = str(got["macAddress"]).lower()
        if "vlanId" in old_st:
            want["vlanId"], got["vlanId"] = old_st["vlanId"], str(st.get("vlanId"))
        f.check(got == want, f"{name} status {got}, expected {want}")

    # README's CR names "ESXi-Host-01", not a DNS-1123 name: Failed, saying so in the
    # controller's own words, and no object under an invented name.
    st = cluster.get("baremetalhostgenerators", "default", "worker-01")["status"]
    old_message = generator_of(docs, "default", "ESXi-Host-01")["status"]["message"]
    f.check(st["phase"] == "Failed" and st["message"] != old_message
            and "ESXi-Host-01" in st["message"], f"worker-01 (ESXi-Host-01): {st}")
    f.assert_none()


@pytest.mark.parametrize("variable", ["SERVER_PROFILES_PATH", "PROFILE_RULES_FILE"])
def test_the_old_profiles_file_chooses_nic_and_mac(cluster, start_controller, tmp_path, variable):
    # (server, index into the vendor's NIC list, nic_name). Each NIC is its own OME card, where the
    # old `mac_index` (card, first port, first partition) and a flat index agree; the boot NIC is
    # index 1 on every one, which no entry picks.
    cases = [
        ("ocp4-h100-01", 2, "ens8f0np0"),          # pattern, numeric index
        ("ocp4-10tb-03", 4, "ens2f0np0"),          # "last"
        ("ocp4-xl-04", 3, "ens5f0np0"),            # "XL" matches "xl"; listed after the default
        ("ocp4-plain-05", 0, "eno12399np0"),       # no pattern: the default entry, "first"
        ("ocp4-h200-h100-06", 2, "ens8f0np0"),     # h100 and h200 match: the first entry wins
    ]
    start_controller(**{variable: mount_profiles(tmp_path)})
    for server, _, _ in cases:
        cluster.create("baremetalhostgenerators", NS, {
            "apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
            "metadata": {"name": f"gen-{server}", "namespace": NS,
                         "annotations": {"server_vendor": "DELL", "vlanId": "30"}},
            "spec": {"serverName": server, "infraEnv": "env"}})

    for server, index, nic in cases:
        g = wait_reconciled(cluster, NS, f"gen-{server}")
        assert g["status"]["phase"] == "Completed", g["status"]
        mac = inventory_macs(server)[index]
        bmh = cluster.get("baremetalhosts", NS, server)
        assert bmh is not None, f"no BareMetalHost named after serverName {server}"
        assert bmh["spec"]["bootMACAddress"].lower() == mac, server
        nm = cluster.get("nmstateconfigs", NS, f"nmstate-config-{server}")
        assert nm is not None, f"no NMStateConfig for {server} (vlanId annotation)"
        iface, vlan = nm["spec"]["config"]["interfaces"]
        assert (iface["name"], iface["mac-address"].lower()) == (nic, mac), server
        assert vlan["name"] == f"{nic}.30" and vlan["vlan"] == {"base-iface": nic, "id": 30}
        assert [(i["name"], i["macAddress"].lower()) for i in nm["spec"]["interfaces"]] == \
            [(nic, mac)]
    assert len(cluster.list_all("baremetalhosts")) == len(cases)


@pytest.mark.parametrize("variable", ["SERVER_PROFILES_PATH", "PROFILE_RULES_FILE"])
def test_a_profiles_file_of_unknown_format_stops_the_controller(cluster, start_controller,
                                                                 variable):
    bad = FIXTURES / "profiles-unknown-format.yaml"
    ctl = start_controller(wait_ready=False, **{variable: bad})
    wait_for("the controller to refuse the file", lambda: ctl.proc.poll() is not None,
             timeout=30)
    assert ctl.proc.returncode != 0
    # The operator must learn which file (or which setting) is wrong.
    out = full_log(ctl)
    assert "profiles" in out and (bad.name in out or variable in out), out


@pytest.mark.parametrize("setting, deletes", [
    (None, True), ("true", True), ("yes", True), ("On", True), ("1", True),
    ("false", False), ("no", False), ("0", False),
])
def test_deleting_a_migrated_cr_completes_and_honours_the_setting(cluster, start_controller,
                                                                   setting, deletes):
    docs = old_state("2-")  # the Dell CR: host, Secret and NMStateConfig
    before = load(cluster, docs)
    start_controller(DELETE_RESOURCES_ON_DELETE=setting)
    wait_reconciled(cluster, "inventory", "dell-server-01")

    cluster.delete("baremetalhostgenerators", "inventory", "dell-server-01")
    wait_for("the generator deleted (the old finalizer does not hold it)",
             lambda: cluster.get("baremetalhostgenerators", "inventory", "dell-server-01")
             is None, timeout=RECONCILE_TIMEOUT)
    left = [(k, ns, n) for (k, ns, n) in before if k != "BareMetalHostGenerator"]
    if deletes:
        wait_for("host, Secret and NMStateConfig deleted",
                 lambda: all(cluster.get(PLURALS[k], ns, n) is None for k, ns, n in left))
    else:
        for k, ns, n in left:
            obj = cluster.get(PLURALS[k], ns, n)
            uid = before[(k, ns, n)]["metadata"]["uid"]
            assert obj is not None and obj["metadata"]["uid"] == uid, \
                (k, n, "must be kept with DELETE_RESOURCES_ON_DELETE", setting)


def test_a_cr_deleted_while_no_operator_ran_is_finalized(cluster, start_controller):
    # Deleted between stopping kopf and starting the controller: deletionTimestamp set, only the
    # old finalizer left, and no finalizer can be added any more.
    docs = old_state("2-")
    before = load(cluster, docs)
    cluster.delete("baremetalhostgenerators", "inventory", "dell-server-01")
    g = cluster.get("baremetalhostgenerators", "inventory", "dell-server-01")
    assert g["metadata"]["deletionTimestamp"] and g["metadata"]["finalizers"] == [OLD_FINALIZER]

    start_controller(DELETE_RESOURCES_ON_DELETE=None)
    wait_for("the generator deleted",
             lambda: cluster.get("baremetalhostgenerators", "inventory", "dell-server-01")
             is None, timeout=RECONCILE_TIMEOUT)
    left = [(k, ns, n) for (k, ns, n) in before if k != "BareMetalHostGenerator"]
    wait_for("host, Secret and NMStateConfig deleted (default: true, as before)",
             lambda: all(cluster.get(PLURALS[k], ns, n) is None for k, ns, n in left))


def test_an_old_nmstateconfig_whose_vlan_is_gone_is_deleted(cluster, start_controller):
    # The user removed the vlanId annotation while kopf ran; its update handler ignored that, so
    # the NMStateConfig outlived its VLAN. Adoption deletes it and keeps the host as it is.
    docs = old_state("2-")
    cr = of_kind(docs, "BareMetalHostGenerator")[0]
    del cr["metadata"]["annotations"]["vlanId"]
    before = load(cluster, docs)
    start_controller()
    g = wait_reconciled(cluster, "inventory", "dell-server-01")
    assert g["status"]["phase"] == "Completed", g["status"]
    wait_for("the NMStateConfig deleted",
             lambda: cluster.get("nmstateconfigs", "inventory", "nmstate-config-ocp4-test1")
             is None)
    host = cluster.get("baremetalhosts", "inventory", "ocp4-test1")
    assert host["metadata"]["uid"] == \
        before[("BareMetalHost", "inventory", "ocp4-test1")]["metadata"]["uid"]
    assert host["spec"]["bootMACAddress"] == "B0:26:28:4D:30:0A"


def test_the_old_redeploy_annotation_recreates_the_host(cluster, start_controller):
    docs = old_state("3-")  # Cisco: CR in default, host in baremetal
    before = load(cluster, docs)
    start_controller()
    wait_reconciled(cluster, "default", "cisco-server-01")
    old_uid = before[("BareMetalHost", "baremetal", "my-ucs-server")]["metadata"]["uid"]

    cluster.merge("baremetalhostgenerators", "default", "cisco-server-01",
                  {"metadata": {"annotations": {"redeploy": "true"}}})

    def redeployed():
        g = cluster.get("baremetalhostgenerators", "default", "cisco-server-01")
        host = cluster.get("baremetalhosts", "baremetal", "my-ucs-server")
        return ("redeploy" not in (g["metadata"].get("annotations") or {})
                and g.get("status", {}).get("phase") == "Completed"
                and host is not None and host["metadata"]["uid"] != old_uid and host)

    host = wait_for("a new host and the annotation removed", redeployed, timeout=RECONCILE_TIMEOUT)
    assert host["spec"]["bootMACAddress"].lower() == inventory_macs("my-ucs-server")[0]
    assert names(cluster.list_all("baremetalhosts")) == [("baremetal", "my-ucs-server")]
    assert_ours(host, docs[0])
    assert cluster.get("secrets", "baremetal", "cisco-cred-my-ucs-server") is not None


@pytest.mark.parametrize("case", ["same MAC, as the vendor writes it", "same MAC, lower case",
                                  "same BMC address"])
def test_a_host_with_the_same_mac_or_bmc_fails_the_generator(cluster, start_controller, case):
    mac = inventory_macs("ocp4-dup-01")[0]
    spec = {"online": True, "bootMACAddress": "00:25:B5:99:99:01",
            "bmc": {"address": "ipmi://10.20.9.9:623", "credentialsName": "rack7-node3-bmc"}}
    if case.startswith("same MAC"):
        spec["bootMACAddress"] = mac.upper() if "vendor" in case else mac
    else:
        spec["bmc"]["address"] = "ipmi://10.20.1.13:623"
    other = cluster.create("baremetalhosts", "default", {
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": "rack7-node3", "namespace": "default"}, "spec": spec})
    start_controller()
    cluster.create("baremetalhostgenerators", "default", {
        "apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
        "metadata": {"name": "dup", "namespace": "default",
                     "annotations": {"server_vendor": "CISCO"}},
        "spec": {"serverName": "ocp4-dup-01", "infraEnv": "env"}})

    g = wait_reconciled(cluster, "default", "dup")
    assert g["status"]["phase"] == "Failed", g["status"]
    assert "rack7-node3" in g["status"]["message"], g["status"]
    assert names(cluster.list_all("baremetalhosts")) == [("default", "rack7-node3")]
    now = cluster.get("baremetalhosts", "default", "rack7-node3")
    assert now["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]


@pytest.mark.parametrize("old, new", [("BUFFER_CHECK_INTERVAL", "RESYNC_INTERVAL"),
                                      ("SERVER_PROFILES_PATH", "PROFILE_RULES_FILE")])
def test_a_setting_spelled_both_ways_is_refused_naming_both(cluster, start_controller, tmp_path,
                                                            old, new):
    values = {"BUFFER_CHECK_INTERVAL": "30", "RESYNC_INTERVAL": "30s"}
    profiles = mount_profiles(tmp_path)
    ctl = start_controller(wait_ready=False, **{k: values.get(k, profiles) for k in (old, new)})
    wait_for("the controller to refuse", lambda: ctl.proc.poll() is not None, timeout=30)
    assert ctl.proc.returncode != 0
    out = full_log(ctl)
    assert old in out and new in out, out


def full_log(ctl):
    return Path(ctl.proc.log_path).read_text(errors="replace")


def log_levels(ctl):
    levels = []
    for line in full_log(ctl).splitlines():
        try:
            levels.append(str(json.loads(line).get("level", "")).upper())
        except ValueError:
            continue
    return levels


@pytest.mark.parametrize("level", ["DEBUG", "WARNING"])
def test_log_level_is_read_with_its_old_names(cluster, start_controller, level):
    ctl = start_controller(RUST_LOG=None, LOG_LEVEL=level)
    cluster.create("baremetalhostgenerators", NS, {
        "apiVersion": "infra.example.com/v1alpha1", "kind": "BareMetalHostGenerator",
        "metadata": {"name": "logged", "namespace": NS},
        "spec": {"serverName": "my-server-01", "infraEnv": "env"}})
    g = wait_reconciled(cluster, NS, "logged")
    assert g["status"]["phase"] == "Completed", g["status"]
    if level == "DEBUG":
        wait_for("a DEBUG line", lambda: "DEBUG" in log_levels(ctl), timeout=10)
    else:
        assert not {"INFO", "DEBUG", "TRACE"} & set(log_levels(ctl)), ctl.log()
