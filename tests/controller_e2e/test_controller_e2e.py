"""The controller process end to end: emulator (watches over HTTP) + real gateway + simulators."""

import signal
import subprocess

from conftest import (CONTROLLER_NS, NS, TOKEN, b64, binary, generator, http, phase, usable_servers,
                      wait_for)


def gateway_record(gateway, name):
    status, body = http("GET", f"{gateway['url']}/servers/{name}", token=TOKEN, timeout=10)
    assert status == 200, body
    return body


def test_a_generator_becomes_secret_host_and_nmstateconfig(cluster, gateway, start_controller):
    ctl = start_controller(MAX_AVAILABLE_SERVERS=20)
    hp = usable_servers(gateway, "oneview")[0]
    dell = usable_servers(gateway, "ome")[0]
    cluster.create("baremetalhostgenerators", NS, generator(
        "worker-hp", serverName=hp, server_vendor="hp", labels={"rack": "r1"},
        networkConfig={"vlanId": 120}))
    cluster.create("baremetalhostgenerators", NS, generator("worker-dell", serverName=dell))

    for name in ("worker-hp", "worker-dell"):
        wait_for(f"{name} Completed", lambda n=name: phase(cluster, n) == "Completed")

    g = cluster.get("baremetalhostgenerators", NS, "worker-hp")
    st = g["status"]
    record = gateway_record(gateway, hp)
    assert st["macAddress"] in [n["mac"] for n in record["nics"]]
    # The bare BMC IP, as the old operator wrote it; the URL the host uses is in bmcAddress.
    assert st["ipmiAddress"] == record["bmc"]["address"]
    assert st["bmcAddress"] == \
        f"redfish-virtualmedia://{record['bmc']['address']}/redfish/v1/Systems/1"
    assert st["observedGeneration"] == g["metadata"]["generation"]
    assert "infra.example.com/bmhgen-finalizer" in g["metadata"]["finalizers"]

    # Named after the server, as the old operator named them.
    bmh = cluster.get("baremetalhosts", NS, hp)
    assert bmh["spec"]["bootMACAddress"] == st["macAddress"]
    assert bmh["spec"]["bmc"]["address"] == st["bmcAddress"]
    assert bmh["spec"]["bmc"]["credentialsName"] == f"hp-cred-{hp}"
    assert bmh["metadata"]["labels"]["infraenvs.agent-install.openshift.io"] == "env"
    assert bmh["metadata"]["labels"]["rack"] == "r1"
    secret = cluster.get("secrets", NS, f"hp-cred-{hp}")
    assert secret["data"] == {"username": b64("ilo-admin"), "password": b64("ilo-pw")}
    nm = cluster.get("nmstateconfigs", NS, f"nmstate-config-{hp}")
    assert nm["spec"]["interfaces"][0]["macAddress"] == st["macAddress"]
    assert cluster.get("nmstateconfigs", NS, f"nmstate-config-{dell}") is None
    assert cluster.get("baremetalhosts", NS, dell)["spec"]["bmc"]["address"] \
        .startswith("idrac-virtualmedia://")

    # Every phase change is an Event on the generator.
    events = [e for e in cluster.list("events", NS)
              if e.get("regarding", {}).get("name") == "worker-hp"]
    assert "Completed" in {e["reason"] for e in events}, events
    assert ctl.metric('bmhgen_controller_hosts_created_total{vendor="HP"}') == 1

    # Rotation: editing the source Secret updates the generated one, and not the host.
    host_rv = bmh["metadata"]["resourceVersion"]
    cluster.merge("secrets", CONTROLLER_NS, "bmc-credentials",
                  {"stringData": {"hp-password": "rotated-pw"}})
    wait_for("rotated credential Secret",
             lambda: cluster.get("secrets", NS, f"hp-cred-{hp}")["data"]["password"]
             == b64("rotated-pw"))
    assert cluster.get("baremetalhosts", NS, hp)["metadata"]["resourceVersion"] == host_rv


def test_a_host_behind_a_redfish_bmc_gets_the_system_path_its_bmc_lists(
        cluster, gateway, start_controller):
    start_controller(MAX_AVAILABLE_SERVERS=20)
    # A server managed only by its own BMC, an OpenBMC that numbers its system `system`: the
    # old operator's `Systems/1` would name no system there.
    name = next(s["name"] for s in http("GET", f"{gateway['sims']['redfish']}/_sim/inventory")[1]
                ["servers"] if s["model"] == "Mt.Jade")
    record = gateway_record(gateway, name)
    assert record["system"] == "redfish" and record["vendor"] == "other"
    assert record["bmc"]["redfish_system"] == "/redfish/v1/Systems/system"
    cluster.create("baremetalhostgenerators", NS, generator("worker-rack", serverName=name))
    wait_for("worker-rack Completed", lambda: phase(cluster, "worker-rack") == "Completed")
    bmh = cluster.get("baremetalhosts", NS, name)
    # The simulated BMCs share a port that is not 443: the URL carries it.
    assert record["bmc"]["port"] not in (None, 443)
    assert bmh["spec"]["bmc"]["address"] == (
        f"redfish-virtualmedia://{record['bmc']['address']}:{record['bmc']['port']}"
        "/redfish/v1/Systems/system")
    assert bmh["spec"]["bmc"]["credentialsName"] == f"other-cred-{name}"
    assert bmh["spec"]["bootMACAddress"] == record["nics"][0]["mac"]
    secret = cluster.get("secrets", NS, f"other-cred-{name}")
    assert secret["data"] == {"username": b64("bmc-admin"), "password": b64("bmc-pw")}


def test_buffering_is_released_by_the_host_watch(cluster, gateway, start_controller):
    # The resync is an hour away: only a watch event can release the buffered generators.
    ctl = start_controller(MAX_AVAILABLE_SERVERS=2, RESYNC_INTERVAL="1h")
    servers = usable_servers(gateway, "ucsm")[:5]
    names = [f"node-{i}" for i in range(5)]
    for name, server in zip(names, servers):
        cluster.create("baremetalhostgenerators", NS, generator(name, serverName=server))

    def phases():
        return sorted(phase(cluster, n) or "" for n in names)

    wait_for("2 Completed, 3 Buffered",
             lambda: phases() == ["Buffered"] * 3 + ["Completed"] * 2)
    hosts = cluster.list("baremetalhosts", NS)
    assert len(hosts) == 2
    assert ctl.metric("bmhgen_controller_buffer_length") == 3
    buffered = [n for n in names if phase(cluster, n) == "Buffered"]
    g = cluster.get("baremetalhostgenerators", NS, buffered[0])
    assert "waiting for an admission slot" in g["status"]["message"]
    assert g["status"]["bufferedAt"]

    # Metal3 moves one host past the counted states: exactly one generator is released.
    cluster.merge("baremetalhosts", NS, hosts[0]["metadata"]["name"],
                  {"status": {"provisioning": {"state": "provisioned"}}}, sub="status")
    wait_for("a third host", lambda: len(cluster.list("baremetalhosts", NS)) == 3)
    wait_for("3 Completed", lambda: phases().count("Completed") == 3)
    assert phases().count("Buffered") == 2
    assert len(cluster.list("baremetalhosts", NS)) == 3

    # A host deleted frees its slot too.
    cluster.delete("baremetalhosts", NS, hosts[1]["metadata"]["name"])
    wait_for("4 Completed", lambda: phases().count("Completed") == 4)
    assert ctl.metric("bmhgen_controller_in_flight_peak") == 2
    assert ctl.metric("bmhgen_controller_releases_total") == 2


def test_deleting_a_generator_runs_the_finalizer(cluster, gateway, start_controller):
    start_controller(DELETE_RESOURCES_ON_DELETE="true")
    server = usable_servers(gateway, "ucsm")[0]
    cluster.create("baremetalhostgenerators", NS, generator(
        "gone", serverName=server, networkConfig={"vlanId": 5}))
    wait_for("Completed", lambda: phase(cluster, "gone") == "Completed")
    cluster.delete("baremetalhostgenerators", NS, "gone")
    wait_for("generator deleted", lambda: cluster.get("baremetalhostgenerators", NS, "gone") is None)
    assert cluster.get("baremetalhosts", NS, server) is None
    assert cluster.get("nmstateconfigs", NS, f"nmstate-config-{server}") is None
    assert cluster.get("secrets", NS, f"cisco-cred-{server}") is None


def test_a_missing_server_fails_with_the_systems_searched(cluster, gateway, start_controller):
    start_controller()
    cluster.create("baremetalhostgenerators", NS, generator("ghost", serverName="no-such-server"))
    wait_for("Failed", lambda: phase(cluster, "ghost") == "Failed")
    msg = cluster.get("baremetalhostgenerators", NS, "ghost")["status"]["message"]
    assert "not found" in msg and "oneview" in msg and "ucsm" in msg and "ome" in msg, msg


def test_only_the_leader_reconciles_and_a_standby_takes_over(cluster, gateway, start_controller):
    a = start_controller("controller-a")
    wait_for("a leads", lambda: a.metric("bmhgen_controller_leader") == 1)
    b = start_controller("controller-b")
    lease = cluster.get("leases", CONTROLLER_NS, "inventory-gateway-controller")
    assert lease["spec"]["holderIdentity"] == "controller-a"
    assert b.metric("bmhgen_controller_leader") == 0

    servers = usable_servers(gateway, "ome")
    cluster.create("baremetalhostgenerators", NS, generator("first", serverName=servers[0]))
    wait_for("first Completed", lambda: phase(cluster, "first") == "Completed")
    assert b.metric("bmhgen_controller_reconcile_duration_seconds_count") is None

    # SIGTERM: the leader drains, gives the Lease up and exits 0; the standby takes over.
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(timeout=20) == 0, a.log()
    wait_for("b leads", lambda: b.metric("bmhgen_controller_leader") == 1)
    lease = cluster.get("leases", CONTROLLER_NS, "inventory-gateway-controller")
    assert lease["spec"]["holderIdentity"] == "controller-b"
    cluster.create("baremetalhostgenerators", NS, generator("second", serverName=servers[1]))
    wait_for("second Completed", lambda: phase(cluster, "second") == "Completed")


def test_crs_left_by_the_old_operator_are_taken_over(cluster, gateway, start_controller):
    # Written before the controller starts, as the kopf operator left them: a phase outside the
    # enum, an unparsable bufferedAt, a VLAN as a string, a numeric label and kopf's finalizer.
    servers = usable_servers(gateway, "oneview")
    legacy = generator("legacy", serverName=servers[0], labels={"rack": 12},
                       networkConfig={"vlanId": "120"})
    legacy["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    cluster.create("baremetalhostgenerators", NS, legacy)
    cluster.merge("baremetalhostgenerators", NS, "legacy",
                  {"status": {"phase": "Waiting", "bufferedAt": "yesterday"}}, sub="status")
    cluster.create("baremetalhostgenerators", NS, generator("plain", serverName=servers[1]))
    assert cluster.get("baremetalhostgenerators", NS, "legacy")["status"]["phase"] == "Waiting"

    start_controller()
    for name in ("legacy", "plain"):
        wait_for(f"{name} Completed", lambda n=name: phase(cluster, n) == "Completed")
    g = cluster.get("baremetalhostgenerators", NS, "legacy")
    assert g["metadata"]["finalizers"] == ["infra.example.com/bmhgen-finalizer"]
    assert g["status"]["vlanId"] == 120
    bmh = cluster.get("baremetalhosts", NS, servers[0])
    assert bmh["metadata"]["labels"]["rack"] == "12"
    assert cluster.get("nmstateconfigs", NS, f"nmstate-config-{servers[0]}") is not None


def test_migrate_check_lists_what_would_be_adopted_and_writes_nothing(cluster, gateway):
    # What the kopf operator left for one Dell server: host, Secret, NMStateConfig (no controller
    # labels), and its generator with the old annotations, finalizer and status.
    server = usable_servers(gateway, "ome")[0]
    record = gateway_record(gateway, server)
    mac, ip = record["nics"][0]["mac"].upper(), record["bmc"]["address"]
    cluster.create("baremetalhosts", NS, {
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": server, "namespace": NS,
                     "labels": {"infraenvs.agent-install.openshift.io": "env"}},
        "spec": {"online": True, "bootMACAddress": mac,
                 "bmc": {"address": f"idrac-virtualmedia://{ip}/redfish/v1/Systems/System.Embedded.1",
                         "credentialsName": f"dell-cred-{server}"}}})
    cluster.create("nmstateconfigs", NS, {
        "apiVersion": "agent-install.openshift.io/v1beta1", "kind": "NMStateConfig",
        "metadata": {"name": f"nmstate-config-{server}", "namespace": NS}, "spec": {}})
    old = generator("worker-dell", serverName=server)
    old["metadata"]["annotations"] = {"server_vendor": "DELL", "vlanId": "24"}
    old["metadata"]["finalizers"] = ["bmhgenerator.infra.example.com/finalizer"]
    cluster.create("baremetalhostgenerators", NS, old)
    cluster.merge("baremetalhostgenerators", NS, "worker-dell", {"status": {
        "phase": "Completed", "bmhName": server, "bmhNamespace": NS, "macAddress": mac,
        "ipmiAddress": ip, "serverVendor": "DELL", "vlanId": "24"}}, sub="status")
    # A second generator whose server's MAC sits on a hand-made host: refused, by name.
    other = usable_servers(gateway, "ome")[1]
    other_mac = gateway_record(gateway, other)["nics"][0]["mac"]
    cluster.create("baremetalhosts", NS, {
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": "hand-made", "namespace": NS},
        "spec": {"bootMACAddress": other_mac, "bmc": {"address": "ipmi://192.0.2.9:623"}}})
    twin = generator("twin", serverName=other)
    cluster.create("baremetalhostgenerators", NS, twin)
    cluster.merge("baremetalhostgenerators", NS, "twin", {"status": {
        "phase": "Completed", "macAddress": other_mac}}, sub="status")
    cluster.create("baremetalhostgenerators", NS, generator("bad-name", serverName="OV-SRV-0001"))

    def versions():
        return sorted((kind, o["metadata"]["name"], o["metadata"]["resourceVersion"])
                      for kind in ("baremetalhosts", "nmstateconfigs", "baremetalhostgenerators")
                      for o in cluster.list(kind, NS))

    before = versions()
    out = subprocess.run([binary(), "migrate-check", "--kubeconfig", cluster.kubeconfig],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    text = out.stdout
    assert f"ztp/worker-dell [adopt]" in text
    assert f"adopt    BareMetalHost ztp/{server}" in text
    assert f"bootMACAddress {mac} kept as written" in text
    assert f"adopt    NMStateConfig ztp/nmstate-config-{server} (VLAN 24)" in text
    assert "replace  finalizer bmhgenerator.infra.example.com/finalizer" in text
    assert "ztp/twin [refuse]" in text and "ztp/hand-made" in text
    assert "ztp/bad-name [refuse]" in text and "OV-SRV-0001" in text
    assert text.rstrip().endswith("3 generator(s): 1 adopt, 2 refuse")
    assert versions() == before, "migrate-check wrote something"
